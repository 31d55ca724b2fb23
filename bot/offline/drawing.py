"""What the offline engine's stand-in model does with a validated job.

Given a :class:`~bot.offline.validation.Job`: MagicPrompt rewrites, ``AUTO`` style resolution,
the prompt each answer reports, and the drawing of one image with :mod:`bot.offline.render`.
Everything here is deterministic: the same job, seed and salt give the same prompt, style and
PNG bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Final

from PIL import Image

from bot.ideogram.models import MagicPromptOption, RenderingSpeed, StyleTypeV3
from bot.offline import render, render_more
from bot.offline.forms import BadRequest
from bot.offline.validation import Job, Kind

__all__ = ["Rendered", "decode_source", "draw", "reported_prompt", "resolved_style"]

_MAGIC_SUFFIXES: Final = (
    ", highly detailed, soft natural light",
    ", cinematic composition, dramatic lighting, rich colour",
    ", crisp focus, vibrant palette, studio quality",
    ", atmospheric depth, golden hour glow, fine texture",
)
_AUTO_STYLES: Final = (
    StyleTypeV3.GENERAL,
    StyleTypeV3.REALISTIC,
    StyleTypeV3.DESIGN,
    StyleTypeV3.FICTION,
)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One drawn image: its PNG bytes and ``(width, height)`` in pixels."""

    png: bytes
    size: tuple[int, int]


def _stable_index(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % modulo


def _final_prompt(prompt: str, magic: MagicPromptOption | None) -> str:
    """Return the prompt the "model" used: a deterministic rewrite when MagicPrompt applies.

    ``ON`` always rewrites; ``AUTO`` (also the default) rewrites short prompts (< 6 words);
    ``OFF`` never does.
    """
    short = len(prompt.split()) < 6
    if magic is MagicPromptOption.ON or (magic in (None, MagicPromptOption.AUTO) and short):
        return prompt.rstrip(" ,.") + _MAGIC_SUFFIXES[_stable_index(prompt, len(_MAGIC_SUFFIXES))]
    return prompt


def resolved_style(style: StyleTypeV3 | None, prompt: str, seed: int) -> StyleTypeV3:
    """Return the style type reported: AUTO is resolved to a concrete type, as the API does."""
    if style is None:
        return StyleTypeV3.GENERAL
    if style is StyleTypeV3.AUTO:
        return _AUTO_STYLES[_stable_index(f"{prompt}|{seed}", len(_AUTO_STYLES))]
    return style


def reported_prompt(job: Job, source: Image.Image | None) -> str:
    """Return the ``prompt`` reported (and drawn) for every image of ``job``."""
    if job.kind is Kind.REMOVE_BACKGROUND:
        return ""
    if job.prompt:
        # Upscale's prompt only guides the upscaler; MagicPrompt rewrites the others.
        return job.prompt if job.kind is Kind.UPSCALE else _final_prompt(job.prompt, job.magic)
    if source is not None:
        # Reframe and prompt-less upscale: the API reports a caption of the image.
        return render.describe(source)[1]
    return ""


async def decode_source(job: Job) -> Image.Image | None:
    """Decode the input image of ``job`` in a worker thread (None if the job has none).

    Raises:
        BadRequest: the image part is not a JPEG, PNG or WebP picture that decodes.
    """
    if job.image is None:
        return None
    try:
        return await asyncio.to_thread(render.decode_image, job.image)
    except render.ImageDecodeError as exc:
        raise BadRequest(
            f"{job.image_field}: {exc} (accepted: JPEG, PNG and WebP, at most 10 MB)"
        ) from exc


def draw(
    job: Job, source: Image.Image | None, seed: int, prompt: str, *, salt: str, draft_scale: int
) -> Rendered:
    """Draw one image of ``job`` with ``seed`` (CPU-bound: call it in a worker thread).

    Args:
        job: the validated request.
        source: its decoded input image (None for generate and generate-transparent).
        seed: this image's seed.
        prompt: the prompt reported for it (see :func:`reported_prompt`).
        salt: mixed into the drawing, so differently salted engines draw different pictures.
        draft_scale: generated images are drawn at 1/``draft_scale`` of the requested size.
    """
    style = resolved_style(job.style_type, job.prompt or "", seed)
    options = render.DrawOptions(
        speed=(job.speed or RenderingSpeed.DEFAULT).value,
        style=style.value,
        preset=job.preset.value if job.preset else None,
        palette=job.palette,
        salt=salt,
    )
    size = job.resolution.size if job.resolution else (1024, 1024)
    size = (max(1, size[0] // draft_scale), max(1, size[1] // draft_scale))
    image: Image.Image
    if job.kind in _MORE:
        image = _draw_more(job, source, seed, prompt, options, draft_scale)
    elif job.kind is Kind.GENERATE:
        image = render.render_generated(prompt, seed, size, options)
    elif job.kind is Kind.TRANSPARENT:
        image = render.render_generated(prompt, seed, size, options, transparent=True)
        image = render.upscale_by(image, job.upscale_factor)
    else:
        assert source is not None
        if job.kind is Kind.REMIX:
            image = render.render_remix(source, prompt, seed, size, job.image_weight, options)
        elif job.kind is Kind.REFRAME:
            image = render.render_reframe(source, seed, size, options)
        elif job.kind is Kind.REPLACE_BACKGROUND:
            size = render.resolution_for_size(*source.size).size
            image = render.render_replace_background(source, prompt, seed, size, options)
        elif job.kind is Kind.REMOVE_BACKGROUND:
            image = render.render_remove_background(source)
        else:
            image = render.render_upscale(source, seed)
    if job.kind not in (Kind.INPAINT, Kind.LEGACY_EDIT):  # inpaint tints its region only
        image = render_more.tint(image, job.reference_colours, seed)
    return Rendered(png=render.encode_png(image), size=image.size)


_MORE: Final = frozenset(
    {Kind.EDIT, Kind.INPAINT, Kind.LEGACY_GENERATE, Kind.LEGACY_REMIX, Kind.LEGACY_EDIT}
    | {Kind.LEGACY_REFRAME}
)


def _draw_more(
    job: Job,
    source: Image.Image | None,
    seed: int,
    prompt: str,
    options: render.DrawOptions,
    draft_scale: int,
) -> Image.Image:
    """Draw one image of the edit, inpaint and legacy endpoints (see :mod:`render_more`)."""
    assert job.kind is Kind.LEGACY_GENERATE or source is not None
    image: Image.Image
    if job.kind is Kind.EDIT:
        assert source is not None and job.resolution is not None
        sources = [source, *(render.decode_image(data) for data in job.images)]
        w, h = job.resolution.size
        size = (max(1, w // draft_scale), max(1, h // draft_scale))
        return render_more.render_edit(
            sources, prompt, seed, size, options, transparent=job.transparent
        )
    if job.kind in (Kind.INPAINT, Kind.LEGACY_EDIT):
        assert source is not None and job.mask is not None
        mask = render.decode_image(job.mask)
        image = render_more.render_inpaint(
            source, mask, prompt, seed, options, job.reference_colours
        )
    elif job.kind is Kind.LEGACY_GENERATE:
        size = render_more.legacy_size(job.size, draft_scale)
        image = render.render_generated(prompt, seed, size, options)
    elif job.kind is Kind.LEGACY_REMIX:
        assert source is not None
        size = render_more.legacy_size(job.size, 1)
        image = render.render_remix(source, prompt, seed, size, job.image_weight, options)
    else:
        assert source is not None
        size = render_more.legacy_size(job.size, 1)
        image = render.render_reframe(source, seed, size, options)
    if job.model:
        render_more.model_badge(image, job.model)
    return image
