"""Drawings of the offline engine's edit, inpaint, layerize, legacy and reference effects.

Each effect is visible and deterministic (same inputs, seed and salt: same pixels):

* ``/v1/edit`` draws the instruction over an equal blend of its input images;
* inpaint (and legacy ``/edit``) redraws only the mask's **black** pixels (luminance below
  128); every other pixel keeps the input's exact value;
* layerize returns the input (flattened) as the text-free base, and the same picture with the
  text blocks it drew as the "original", with the blocks' positions, font, size and colour;
* reference images tint the result toward their dominant colours;
* legacy models write their model name (``V_2A_TURBO`` …) in a badge at the top left.

Built on the primitives of :mod:`bot.offline.render`; CPU-bound, so call it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from PIL import Image, ImageDraw, ImageOps, ImageStat

from bot.offline import render
from bot.offline.render import (
    RGB,
    DrawOptions,
    _composite_region,
    _flatten,
    _font,
    _footer,
    _footer_text,
    _luminance,
    _pattern,
    _prompt_font_px,
    _rng,
    _subject_mask,
    _text_box,
)

__all__ = [
    "black_region",
    "dominant_colours",
    "layerize",
    "mask_has_black",
    "model_badge",
    "render_edit",
    "render_inpaint",
    "tint",
]

#: Mask pixels darker than this (luminance 0..255) are "black": the region to redraw.
BLACK_BELOW: Final = 128
#: How far reference colours pull a result (0 = not at all, 1 = the references' pattern alone).
TINT_STRENGTH: Final = 0.35
#: The font family the offline engine draws text blocks with (Pillow's built-in font).
FONT_FAMILY: Final = "Aileron"


def black_region(mask: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    """Return an ``L`` image: 255 where ``mask`` is black, 0 elsewhere (at ``size`` if given)."""
    grey = _flatten(mask).convert("L")
    if size is not None and grey.size != size:
        grey = grey.resize(size, Image.Resampling.NEAREST)
    return grey.point(lambda v: 255 if v < BLACK_BELOW else 0)


def mask_has_black(mask: Image.Image) -> bool:
    """Return whether ``mask`` has at least one black pixel (something to redraw)."""
    return black_region(mask).getbbox() is not None


def dominant_colours(image: Image.Image, count: int = 3) -> tuple[RGB, ...]:
    """Return up to ``count`` main colours of ``image``, most frequent first."""
    small = _flatten(image).resize((64, 64), Image.Resampling.BOX)
    quantized = small.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    ranked = sorted(
        ((n, i) for i, n in enumerate(quantized.histogram()) if n), key=lambda item: -item[0]
    )
    return tuple(
        (palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2]) for _, i in ranked[:count]
    )


def tint(image: Image.Image, colours: Sequence[RGB], seed: int = 0) -> Image.Image:
    """Return ``image`` pulled :data:`TINT_STRENGTH` toward a pattern in ``colours``."""
    if not colours:
        return image
    layer = _pattern(_rng("tint", seed, tuple(colours)), image.size, tuple(colours))
    if image.mode == "RGBA":
        alpha = image.getchannel("A")
        out = Image.blend(image.convert("RGB"), layer, TINT_STRENGTH).convert("RGBA")
        out.putalpha(alpha)
        return out
    return Image.blend(image.convert("RGB"), layer, TINT_STRENGTH)


def model_badge(image: Image.Image, model: str) -> None:
    """Write ``model`` in a badge at the top left of ``image``, in place."""
    w, h = image.size
    font_px = max(14, min(w, h) // 24)
    font = _font(font_px)
    pad = font_px // 2
    box = (round(font.getlength(model)) + 2 * pad, round(font_px * 1.3) + pad)
    overlay = Image.new("RGBA", (min(box[0], w), min(box[1], h)), (20, 20, 20, 210))
    ImageDraw.Draw(overlay).text((pad, pad // 2), model, font=font, fill=(255, 220, 0, 255))
    _composite_region(image, overlay, (0, 0))


def render_edit(
    sources: Sequence[Image.Image],
    prompt: str,
    seed: int,
    size: tuple[int, int],
    options: DrawOptions,
    *,
    transparent: bool = False,
) -> Image.Image:
    """Draw ``/v1/edit``: the inputs fitted to ``size`` and blended equally, a seeded pattern
    faintly over them, the instruction in a banner at the bottom.

    Returns:
        An ``RGB`` image of ``size`` (``RGBA`` with a transparent surround when
        ``transparent``).
    """
    fitted = [ImageOps.fit(_flatten(s), size, Image.Resampling.BILINEAR) for s in sources]
    blend = fitted[0]
    for k, picture in enumerate(fitted[1:], start=2):
        blend = Image.blend(blend, picture, 1 / k)  # running mean: every input weighs the same
    rng = _rng(options.salt, "edit", prompt, seed, size, options.palette)
    image = Image.blend(blend, _pattern(rng, size, options.palette), 0.2)
    _text_box(image, prompt, anchor="bottom", max_lines=3, font_px=_prompt_font_px(size))
    _footer(image, _footer_text(seed, options))
    if transparent:
        cut = Image.new("RGBA", size, (0, 0, 0, 0))
        cut.paste(image, (0, 0), _subject_mask(rng, size))
        return cut
    return image


def render_inpaint(
    source: Image.Image,
    mask: Image.Image,
    prompt: str,
    seed: int,
    options: DrawOptions,
    reference_colours: Sequence[RGB] = (),
) -> Image.Image:
    """Draw inpaint: a seeded pattern with the prompt, shown only through ``mask``'s black.

    Returns:
        An ``RGB`` image of the source's size whose pixels outside the black region are the
        flattened source's, exactly.
    """
    base = _flatten(source)
    size = base.size
    rng = _rng(options.salt, "inpaint", prompt, seed, size, options.palette)
    fill = Image.blend(base, _pattern(rng, size, options.palette), 0.7)
    fill = tint(fill, reference_colours, seed)
    region = black_region(mask, size)
    left, top, right, bottom = region.getbbox() or (0, 0, *size)
    # The prompt is written inside the region's bounding box, so it shows where it was drawn.
    patch = fill.crop((left, top, right, bottom))
    _text_box(patch, prompt, anchor="centre", max_lines=4, font_px=_prompt_font_px(patch.size))
    fill.paste(patch, (left, top))
    return Image.composite(fill, base, region)


def layerize(
    source: Image.Image, prompt: str, seed: int
) -> tuple[Image.Image, Image.Image, list[dict[str, Any]]]:
    """Return ``(base, original, blocks)`` for layerize-text.

    ``base`` is the flattened input (the picture without text); ``original`` is ``base`` with
    up to two text blocks drawn from ``prompt`` (a headline at the top, the rest lower down);
    ``blocks`` describe what was drawn: ``text``, ``x``, ``y``, ``width``, ``height`` (pixels),
    ``font_family``, ``font_size`` (pixels), ``color`` (``#RRGGBB``).
    """
    base = _flatten(source)
    original = base.copy()
    w, h = base.size
    words = prompt.split()
    texts = [" ".join(words[:4]), " ".join(words[4:12])]
    rng = _rng("layerize", prompt, seed, base.size)
    blocks: list[dict[str, Any]] = []
    for n, text in enumerate(t for t in texts if t):
        font_px = max(12, min(w, h) // (10 if n == 0 else 18))
        font = _font(font_px)
        while font_px > 8 and font.getlength(text) > w * 0.9:
            font_px -= 2
            font = _font(font_px)
        left, top, right, bottom = font.getbbox(text)
        x = max(0, round((w - (right - left)) * rng.uniform(0.1, 0.9)))
        y = round(h * (0.08 if n == 0 else 0.72))
        under = base.crop((x, y, min(w, x + right), min(h, y + bottom)))
        dark = _luminance(ImageStat.Stat(under).mean) < 128 if under.width and under.height else 1
        colour: RGB = (250, 250, 245) if dark else (20, 20, 30)
        ImageDraw.Draw(original).text((x, y), text, font=font, fill=colour)
        blocks.append(
            {
                "text": text,
                "x": x + left,
                "y": y + top,
                "width": right - left,
                "height": bottom - top,
                "font_family": FONT_FAMILY,
                "font_size": font_px,
                "color": "#{:02X}{:02X}{:02X}".format(*colour),
            }
        )
    return base, original, blocks


def legacy_size(size: tuple[int, int] | None, draft_scale: int) -> tuple[int, int]:
    """The drawing size of a legacy generation (1024x1024 by default), draft scale applied."""
    w, h = size or (1024, 1024)
    return max(1, w // draft_scale), max(1, h // draft_scale)


def resolution_text(size: tuple[int, int]) -> str:
    """``WxH`` for a legacy answer's ``resolution`` (``ImageObject``: the final image's)."""
    return f"{size[0]}x{size[1]}"


def fit_resolution(image: Image.Image) -> str:
    """The ``ResolutionV3`` value closest to ``image``'s shape."""
    return render.resolution_for_size(*image.size).value
