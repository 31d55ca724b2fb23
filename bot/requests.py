"""Building a job's request from a command's prompt, options and the server's defaults.

Pure functions (no I/O). Each job command of :data:`bot.commands.registry.COMMANDS` names one
builder here; it turns the parsed prompt and options into the typed request of the endpoint it
calls (:data:`bot.commands.endpoints.JobRequest`), with server settings filling what the user left
out. Follow-ups (vary, zoom out) are built from the parent's stored request the same way.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Mapping
from typing import Any

from PIL import Image

from bot import messages
from bot.commands.endpoints import (
    ENDPOINTS,
    DescribeJob,
    EditJob,
    GenerateJob,
    GenerateTransparentJob,
    InpaintJob,
    JobRequest,
    LayerizeJob,
    LegacyGenerateJob,
    LegacyRemixJob,
    ReframeJob,
    RemixJob,
    RemoveBackgroundJob,
    ReplaceBackgroundJob,
    UpscaleJob,
    dump_request,
)
from bot.commands.grammar import GenerationOptions, suggest
from bot.config import PriceTable
from bot.errors import InvalidImage, InvalidInput
from bot.ideogram.models import (
    AspectRatioV3,
    GenerateRequestV3,
    GenerateTransparentRequestV3,
    ReframeRequestV3,
    RemixRequestV3,
    RenderingSpeed,
    ReplaceBackgroundRequestV3,
    ResolutionV3,
    UpscaleInitialImageRequest,
)
from bot.ideogram.models_edit import EditRequestV1, InpaintRequestV3, LayerizeTextRequestV3
from bot.ideogram.models_legacy import (
    NEGATIVE_PROMPT_MODELS,
    NO_PALETTE_MODELS,
    NO_STYLE_MODELS,
    AspectRatio,
    GenerateImageRequest,
    ImageRequest,
    InitialImageRequest,
    ModelEnum,
    StyleType,
)
from bot.images import InputImage, prepare_input_image
from bot.server_settings import ServerSettings
from bot.types import Caller
from storage import JobRecord, NewJob

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def typed_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The typed generation options, without prompt/command arguments and unset values."""
    skip = {"prompt", "image", "count", "job_id", "action", "key", "value", "reference_files"}
    return {k: v for k, v in options.items() if k not in skip and v is not None}


def closest_aspect(width: int, height: int) -> AspectRatioV3:
    """The API aspect ratio nearest to ``width``/``height`` (pixels)."""
    ratio = width / max(1, height)
    return min(AspectRatioV3, key=lambda a: abs(a.ratio - ratio))


def _shared(prompt: str, opts: GenerationOptions, server: ServerSettings) -> dict[str, Any]:
    """The fields generate and remix share, under the spec's names, defaults filled in."""
    return {
        "prompt": prompt,
        "seed": opts.seed,
        "resolution": opts.resolution,
        "rendering_speed": opts.rendering_speed or server.default_speed,
        "magic_prompt": opts.magic_prompt or server.default_magic_prompt,
        "negative_prompt": opts.negative_prompt,
        "num_images": opts.num_images or server.default_num_images,
        "color_palette": opts.color_palette,
        # Style codes and style references replace the style type (the server's default too).
        "style_type": opts.style_type
        or (None if opts.style_preset or opts.sref else server.default_style),
        "style_preset": opts.style_preset,
        "style_codes": opts.style_codes,
    }


def _edit_fields(opts: GenerationOptions, server: ServerSettings) -> dict[str, Any]:
    """The fields reframe and replace-background share (no style type, no negative prompt)."""
    return {
        "seed": opts.seed,
        "rendering_speed": opts.rendering_speed or server.default_speed,
        "style_preset": opts.style_preset,
        "color_palette": opts.color_palette,
    }


def _image(image: InputImage | None) -> InputImage:
    # The engine refuses a missing image (NEEDS_IMAGE) before it calls a builder.
    if image is None:
        raise InvalidImage("This command needs an image.")
    return image


def build_imagine(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/imagine``: ``POST /v1/ideogram-v3/generate``, or ``generate-transparent`` when
    ``--transparent`` (which takes no style or palette)."""
    aspect = None if opts.resolution else (opts.aspect_ratio or server.default_aspect_ratio)
    if opts.legacy:
        fields = _legacy_fields(prompt, opts, server, aspect)
        return LegacyGenerateJob(request=GenerateImageRequest(image_request=ImageRequest(**fields)))
    if not opts.transparent:
        return GenerateJob(
            request=GenerateRequestV3(**_shared(prompt, opts, server), aspect_ratio=aspect)
        )
    speed = opts.rendering_speed or server.default_speed
    # The user's own conflicting options were refused by grammar.check_options; only a server
    # default can still be FLASH here, which the transparent endpoint refuses.
    if speed is RenderingSpeed.FLASH:
        speed = RenderingSpeed.TURBO
    return GenerateTransparentJob(
        request=GenerateTransparentRequestV3(
            prompt=prompt,
            seed=opts.seed,
            aspect_ratio=aspect,
            rendering_speed=speed,
            magic_prompt=opts.magic_prompt or server.default_magic_prompt,
            negative_prompt=opts.negative_prompt,
            num_images=opts.num_images or server.default_num_images,
        )
    )


def build_remix(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/remix``: ``POST /v1/ideogram-v3/remix``; keeps the photo's own shape by default
    (remix crops the input to the aspect ratio)."""
    aspect = None
    if not opts.resolution:
        source = _image(image)
        aspect = opts.aspect_ratio or closest_aspect(source.width, source.height)
    if opts.legacy:
        fields = _legacy_fields(prompt, opts, server, aspect)
        return LegacyRemixJob(request=InitialImageRequest(**fields, image_weight=opts.image_weight))
    return RemixJob(
        request=RemixRequestV3(
            **_shared(prompt, opts, server), aspect_ratio=aspect, image_weight=opts.image_weight
        )
    )


#: ``--v`` values of the legacy models.
_LEGACY_MODELS = {
    "2a": ModelEnum.V_2A,
    "2a-turbo": ModelEnum.V_2A_TURBO,
    "2": ModelEnum.V_2,
    "2-turbo": ModelEnum.V_2_TURBO,
    "1": ModelEnum.V_1,
    "1-turbo": ModelEnum.V_1_TURBO,
}


def _legacy_fields(
    prompt: str, opts: GenerationOptions, server: ServerSettings, aspect: AspectRatioV3 | None
) -> dict[str, Any]:
    """The ``ImageRequest`` fields of a legacy ``--v`` (``POST /generate``, ``POST /remix``).

    Raises:
        InvalidInput: a flag the model lacks (``--no``, ``--palette``, ``--style``), or an
            aspect ratio the legacy models do not have; the flag is named.
    """
    version = opts.version or "2"
    model = _LEGACY_MODELS[version]

    def refuse(flag: str) -> InvalidInput:
        return InvalidInput(
            f"`{flag}` doesn't work with `--v {version}`; remove it, or use another `--v`."
        )

    if opts.negative_prompt and model not in NEGATIVE_PROMPT_MODELS:
        raise refuse("--no")
    if opts.color_palette is not None and model in NO_PALETTE_MODELS:
        raise refuse("--palette")
    if opts.style_type is not None and model in NO_STYLE_MODELS:
        raise refuse("--style")
    legacy_aspect = None
    if aspect is not None:
        w, _, h = aspect.value.partition("x")
        try:
            legacy_aspect = AspectRatio(f"ASPECT_{w}_{h}")
        except ValueError:
            raise refuse(f"--ar {w}:{h}") from None
    style = opts.style_type or server.default_style
    return {
        "prompt": prompt,
        "model": model,
        "aspect_ratio": legacy_aspect,
        "magic_prompt_option": opts.magic_prompt or server.default_magic_prompt,
        "seed": opts.seed,
        "style_type": StyleType(style.value)
        if style is not None and model not in NO_STYLE_MODELS
        else None,
        "negative_prompt": opts.negative_prompt,
        "num_images": opts.num_images or server.default_num_images,
        "color_palette": opts.color_palette,
    }


def build_describe(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/describe``: ``POST /describe``."""
    return DescribeJob()


def build_upscale(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/upscale``: ``POST /upscale``, the prompt optional."""
    return UpscaleJob(
        request=UpscaleInitialImageRequest(
            prompt=prompt or None, seed=opts.seed, magic_prompt_option=opts.magic_prompt
        )
    )


def build_reframe(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/reframe``: ``POST /v1/ideogram-v3/reframe``; the resolution is ``--res`` or the text.

    Raises:
        InvalidInput: no resolution, or not one the API takes.
    """
    return ReframeJob(
        request=ReframeRequestV3(
            resolution=opts.resolution or parse_resolution(prompt),
            num_images=opts.num_images or 1,
            **_edit_fields(opts, server),
        )
    )


def build_replace_bg(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/replace-bg``: ``POST /v1/ideogram-v3/replace-background``."""
    return ReplaceBackgroundJob(
        request=ReplaceBackgroundRequestV3(
            prompt=prompt,
            magic_prompt=opts.magic_prompt or server.default_magic_prompt,
            num_images=opts.num_images or server.default_num_images,
            **_edit_fields(opts, server),
        )
    )


def build_remove_bg(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/remove-bg``: ``POST /v1/remove-background``."""
    return RemoveBackgroundJob()


def build_edit(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/edit``: ``POST /v1/edit``; the engine adds the images after the first as parts."""
    return EditJob(
        request=EditRequestV1(
            prompt=prompt,
            num_images=opts.num_images or server.default_num_images,
            seed=opts.seed,
            magic_prompt=opts.magic_prompt or server.default_magic_prompt,
            resolution=opts.resolution,
            aspect_ratio=None if opts.resolution else opts.aspect_ratio,
        )
    )


def build_blend(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/blend``: an edit of 2–5 images, with :data:`bot.messages.BLEND_PROMPT` when the user
    gave no prompt."""
    return build_edit(prompt or messages.BLEND_PROMPT, opts, server, image)


def build_inpaint(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/inpaint``: ``POST /v1/ideogram-v3/inpaint``; the engine adds the mask part."""
    return InpaintJob(
        request=InpaintRequestV3(
            prompt=prompt,
            magic_prompt=opts.magic_prompt or server.default_magic_prompt,
            num_images=opts.num_images or server.default_num_images,
            seed=opts.seed,
            rendering_speed=opts.rendering_speed or server.default_speed,
            style_type=opts.style_type,
            style_preset=opts.style_preset,
            color_palette=opts.color_palette,
        )
    )


def build_layerize(
    prompt: str, opts: GenerationOptions, server: ServerSettings, image: InputImage | None
) -> JobRequest:
    """``/layerize``: ``POST /v1/ideogram-v3/layerize-text``, the prompt optional."""
    return LayerizeJob(request=LayerizeTextRequestV3(prompt=prompt or None, seed=opts.seed))


def mask_for(mask: InputImage, image: InputImage) -> InputImage:
    """The inpaint mask as the API takes it: black (redraw) and white, at ``image``'s size.

    Pixels darker than mid-grey count as black; a mask of another size is scaled to the image.

    Raises:
        InvalidImage: the mask has no black pixel (nothing to redraw).
    """
    with Image.open(io.BytesIO(mask.data)) as src:
        rgba = src.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    grey = flat.convert("L")
    if grey.size != (image.width, image.height):
        grey = grey.resize((image.width, image.height), Image.Resampling.NEAREST)
    bw = grey.point(lambda v: 0 if v < _MASK_BLACK_BELOW else 255)
    if bw.getextrema()[0] != 0:
        raise InvalidImage(messages.MASK_NO_BLACK)
    out = io.BytesIO()
    bw.convert("RGB").save(out, format="PNG")
    return prepare_input_image(out.getvalue(), "mask.png")


#: Mask pixels darker than this luminance (0..255) are black: the region to redraw.
_MASK_BLACK_BELOW = 128


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
    parent: JobRequest, prompt: str, weight: int, server: ServerSettings, image: InputImage
) -> JobRequest:
    """A remix of one result image with the parent's prompt and options (V1…Vn, Vary).

    Args:
        parent: the stored request of the job whose image is varied.
        prompt: the parent's prompt ("a variation of this image" when it had none).
        weight: ``image_weight`` 1–100 (the server's subtle or strong weight).
        server: fills what the parent's request did not set.
        image: the result image, as sent.
    """
    base = parent.request
    resolution = getattr(base, "resolution", None)
    aspect = getattr(base, "aspect_ratio", None) or (
        None if resolution else closest_aspect(image.width, image.height)
    )
    return RemixJob(
        request=RemixRequestV3(
            prompt=prompt or "a variation of this image",
            image_weight=weight,
            resolution=resolution,
            aspect_ratio=aspect,
            rendering_speed=getattr(base, "rendering_speed", None) or server.default_speed,
            magic_prompt=getattr(base, "magic_prompt", None) or server.default_magic_prompt,
            negative_prompt=getattr(base, "negative_prompt", None),
            num_images=getattr(base, "num_images", None) or server.default_num_images,
            color_palette=getattr(base, "color_palette", None),
            style_type=getattr(base, "style_type", None),
            style_preset=getattr(base, "style_preset", None),
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


def new_job_id() -> str:
    """Return a fresh job id: 12 lowercase base32 characters (60 random bits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def new_job(
    request: JobRequest,
    *,
    command: str,
    caller: Caller,
    prompt: str,
    input_image: InputImage | None,
    input_sha: str | None,
    request_key: str | None,
    prices: PriceTable,
    now: float,
    parent: JobRecord | None = None,
    parent_index: int | None = None,
    action: str | None = None,
) -> NewJob:
    """The job to store for ``request``, owned by ``caller``, with its estimated cost.

    Args:
        request: the typed request (its endpoint decides the price).
        command: the command the job runs as (``remix`` for a V button …).
        caller: who ran it and where; the job is theirs and charged to them.
        prompt: the prompt as the user gave it.
        input_image, input_sha: the input image and its stored SHA-256, if any.
        request_key: the platform's delivery id, so a retried delivery starts one job.
        prices: the price table in force.
        now: Unix seconds.
        parent, parent_index: the job and 0-based image a button was pressed on.
        action: ``kind:index`` of that button.
    """
    fields = request.request
    num_images = int(getattr(fields, "num_images", None) or 1)
    speed = getattr(fields, "rendering_speed", None)
    speed_text = str(speed) if speed else None
    endpoint = ENDPOINTS[request.endpoint]
    return NewJob(
        id=new_job_id(),
        platform=caller.platform,
        server_id=caller.server_id,
        channel_id=caller.channel_id,
        owner_id=caller.user_id,
        command=command,
        action=action,
        parent_job_id=parent.id if parent else None,
        parent_index=parent_index,
        prompt=prompt,
        request=dump_request(request),
        input_sha256=input_sha,
        input_content_type=input_image.content_type if input_image else None,
        num_images=num_images,
        rendering_speed=speed_text,
        request_key=request_key,
        created_at=now,
        estimated_cost_usd=endpoint.cost_of(prices, num_images, request),
    )
