"""Building Ideogram requests from a command's prompt, options and server defaults.

Pure functions (no I/O): the engine calls them to turn a parsed command or a button press into
the request fields of the spec's endpoint (``shared/ideogram-openapi.yaml``), with server
settings filling what the user left out (SPEC §2, §5).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from PIL import Image

from bot import messages
from bot.commands.grammar import GenerationOptions, suggest
from bot.errors import InvalidInput
from bot.ideogram.models import (
    AspectRatioV3,
    DescribeRequest,
    GenerateRequestV3,
    GenerateTransparentRequestV3,
    ReframeRequestV3,
    RemixRequestV3,
    RenderingSpeed,
    ReplaceBackgroundRequestV3,
    ResolutionV3,
    UpscaleInitialImageRequest,
    dump,
)
from bot.images import InputImage, prepare_input_image
from bot.server_settings import ServerSettings
from storage import JobRecord


def typed_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The typed generation options, without prompt/command arguments and unset values."""
    skip = {"prompt", "image", "count", "job_id", "action", "key", "value"}
    return {k: v for k, v in options.items() if k not in skip and v is not None}


def closest_aspect(width: int, height: int) -> AspectRatioV3:
    ratio = width / max(1, height)
    return min(AspectRatioV3, key=lambda a: abs(a.ratio - ratio))


def request_for(
    command: str,
    prompt: str,
    opts: GenerationOptions,
    server: ServerSettings,
    image: InputImage | None,
) -> tuple[str, dict[str, Any]]:
    """Build ``(endpoint, request fields)`` for a typed command; server defaults fill gaps.

    Raises:
        InvalidInput: options the endpoint cannot take (e.g. ``--transparent --style``).
    """
    speed = opts.rendering_speed or server.default_speed
    magic = opts.magic_prompt or server.default_magic_prompt
    num = opts.num_images or server.default_num_images
    # The fields generate and remix share, under the spec's names.
    shared: dict[str, Any] = {
        "prompt": prompt,
        "seed": opts.seed,
        "resolution": opts.resolution,
        "rendering_speed": speed,
        "magic_prompt": magic,
        "negative_prompt": opts.negative_prompt,
        "num_images": num,
        "color_palette": opts.color_palette,
        "style_type": opts.style_type or (None if opts.style_preset else server.default_style),
        "style_preset": opts.style_preset,
    }
    if command == "imagine":
        aspect = None if opts.resolution else (opts.aspect_ratio or server.default_aspect_ratio)
        if opts.transparent:
            # The user's own conflicting options were refused by grammar.check_options; only a
            # server default can still be FLASH here.
            if speed is RenderingSpeed.FLASH:
                speed = RenderingSpeed.TURBO  # the server default; the API refuses FLASH here
            return "generate-transparent", dump(
                GenerateTransparentRequestV3(
                    prompt=prompt,
                    seed=opts.seed,
                    aspect_ratio=aspect,
                    rendering_speed=speed,
                    magic_prompt=magic,
                    negative_prompt=opts.negative_prompt,
                    num_images=num,
                )
            )
        return "generate", dump(GenerateRequestV3(**shared, aspect_ratio=aspect))
    assert image is not None
    if command == "remix":
        aspect = None
        if not opts.resolution:
            # Remix crops the input to the aspect ratio: keep the photo's own shape by default.
            aspect = opts.aspect_ratio or closest_aspect(image.width, image.height)
        return "remix", dump(
            RemixRequestV3(**shared, aspect_ratio=aspect, image_weight=opts.image_weight)
        )
    if command == "describe":
        return "describe", dump(DescribeRequest())
    if command == "upscale":
        return "upscale", dump(
            UpscaleInitialImageRequest(
                prompt=prompt or None,
                seed=opts.seed,
                magic_prompt_option=opts.magic_prompt,
            )
        )
    if command == "reframe":
        resolution = opts.resolution or parse_resolution(prompt)
        return "reframe", dump(
            ReframeRequestV3(
                resolution=resolution,
                num_images=opts.num_images or 1,
                seed=opts.seed,
                rendering_speed=speed,
                style_preset=opts.style_preset,
                color_palette=opts.color_palette,
            )
        )
    if command == "replace-bg":
        return "replace-bg", dump(
            ReplaceBackgroundRequestV3(
                prompt=prompt,
                magic_prompt=magic,
                num_images=num,
                seed=opts.seed,
                rendering_speed=speed,
                style_preset=opts.style_preset,
                color_palette=opts.color_palette,
            )
        )
    if command == "remove-bg":
        return "remove-bg", {}
    raise InvalidInput(f"/{command} does not make images.")


def parse_resolution(text: str) -> ResolutionV3:
    """Read a ``WxH`` resolution from /reframe's text.

    Raises:
        InvalidInput: missing or not one of ResolutionV3, naming the closest.
    """
    raw = text.strip().lower().replace(" ", "").replace("×", "x").replace(":", "x")
    if not raw:
        raise InvalidInput(messages.NEEDS_RESOLUTION)
    try:
        return ResolutionV3(raw)
    except ValueError:
        values = [r.value for r in ResolutionV3]
        hint = suggest(raw, values, 2)
        did = f" Did you mean {' or '.join(hint)}?" if hint else ""
        raise InvalidInput(
            f"`{text.strip()}` is not a resolution Ideogram can reframe to.{did} "
            f"Valid sizes run from 512x1536 to 1536x512, e.g. 1024x1024, 1344x768, 768x1344."
        ) from None


def vary_request(
    parent: JobRecord, prompt: str, weight: int, server: ServerSettings, image: InputImage
) -> dict[str, Any]:
    """A remix of one result image with the original prompt and options (SPEC §3, V1…Vn)."""
    base = parent.request.get("request", {})
    resolution = base.get("resolution")
    aspect = base.get("aspect_ratio") or (
        None if resolution else closest_aspect(image.width, image.height).value
    )
    return dump(
        RemixRequestV3(
            prompt=prompt or "a variation of this image",
            image_weight=weight,
            resolution=resolution,
            aspect_ratio=aspect,
            rendering_speed=base.get("rendering_speed") or server.default_speed,
            magic_prompt=base.get("magic_prompt") or server.default_magic_prompt,
            negative_prompt=base.get("negative_prompt"),
            num_images=base.get("num_images") or server.default_num_images,
            color_palette=base.get("color_palette"),
            style_type=base.get("style_type"),
            style_preset=base.get("style_preset"),
        )
    )


def zoom_out_input(image: InputImage) -> tuple[InputImage, ResolutionV3]:
    """Shrink ``image`` to 2/3 of the largest ResolutionV3 of its shape, for a 1.5x zoom-out.

    Reframe extends the picture to the target resolution, so the smaller the input sits in
    it, the more new surroundings appear.
    """
    ratio = image.width / max(1, image.height)
    target = min(
        ResolutionV3, key=lambda r: (abs(r.size[0] / r.size[1] - ratio), -r.size[0] * r.size[1])
    )
    tw, th = target.size
    scale = min(tw / image.width, th / image.height) * 2 / 3
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    with Image.open(io.BytesIO(image.data)) as src:
        small = src.convert("RGBA" if src.mode in ("RGBA", "LA", "P") else "RGB").resize(
            size, Image.Resampling.LANCZOS
        )
        out = io.BytesIO()
        small.save(out, format="PNG")
    return prepare_input_image(out.getvalue(), "zoom-out.png"), target
