"""Pillow drawing for the offline engine: real, legible, deterministic PNGs.

Every function here is synchronous and CPU-bound; :mod:`bot.offline.drawing` and
:mod:`bot.offline.server` call them through ``asyncio.to_thread`` so concurrent requests overlap
(CPU-bound work must not block the event loop). None of them touch the network or global state,
and every output depends only on the arguments: the same prompt, seed, size and options give
byte-identical PNGs, a different seed a different picture.

Speed matters more than beauty (the engine backs tests and demos): drawing happens with whole-image
Pillow operations (gradients, shapes drawn at a quarter of the size and scaled up, alpha
compositing of small regions), never per-pixel Python loops, and PNGs are written with
``compress_level=1``. A 1024x1024 image takes a few tens of milliseconds.

The endpoints these stand in for are described in the API spec,
``tests/ideogram/ideogram-openapi.yaml`` (paths ``/v1/ideogram-v3/*``,
``/v1/remove-background``, ``/upscale``, ``/describe``).
"""

from __future__ import annotations

import colorsys
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps, ImageStat

from bot.ideogram.models import AspectRatioV3, ColorPalettePresetName, ResolutionV3
from bot.images import sniff_content_type

__all__ = [
    "MAX_OUTPUT_SIDE",
    "PALETTE_PRESETS",
    "RGB",
    "DrawOptions",
    "ImageDecodeError",
    "cap_size",
    "decode_image",
    "describe",
    "encode_png",
    "render_generated",
    "render_reframe",
    "render_remix",
    "render_remove_background",
    "render_replace_background",
    "render_upscale",
    "resolution_for_aspect",
    "resolution_for_size",
    "upscale_by",
]

RGB = tuple[int, int, int]

#: Longest side, in pixels, of any image the engine writes (upscale and remove-background cap
#: their output here so one request cannot make the engine encode a 100-megapixel PNG).
MAX_OUTPUT_SIDE = 4096

#: Colours of the ``ColorPalettePresetName`` presets. Ideogram does not publish its palettes;
#: these are stand-ins chosen to match the names, so a preset visibly changes the picture.
PALETTE_PRESETS: dict[ColorPalettePresetName, tuple[RGB, ...]] = {
    ColorPalettePresetName.EMBER: ((255, 94, 58), (214, 40, 40), (255, 178, 56), (61, 12, 2)),
    ColorPalettePresetName.FRESH: (
        (134, 227, 206),
        (208, 230, 165),
        (255, 221, 148),
        (250, 137, 123),
    ),
    ColorPalettePresetName.JUNGLE: ((16, 79, 45), (46, 139, 87), (154, 205, 50), (85, 60, 20)),
    ColorPalettePresetName.MAGIC: ((88, 24, 150), (199, 0, 181), (70, 140, 255), (20, 10, 60)),
    ColorPalettePresetName.MELON: (
        (255, 111, 105),
        (255, 204, 92),
        (136, 216, 176),
        (255, 238, 173),
    ),
    ColorPalettePresetName.MOSAIC: ((0, 119, 182), (255, 183, 3), (230, 57, 70), (42, 157, 143)),
    ColorPalettePresetName.PASTEL: (
        (255, 209, 220),
        (204, 229, 255),
        (220, 255, 220),
        (255, 250, 205),
    ),
    ColorPalettePresetName.ULTRAMARINE: (
        (18, 10, 143),
        (63, 0, 255),
        (0, 71, 171),
        (173, 216, 230),
    ),
}

# Named colours for /describe, matched by nearest "redmean" distance (a cheap perceptual
# approximation). Pure primaries land on their own names: (255, 0, 0) is "red".
_NAMED_COLOURS: tuple[tuple[str, RGB], ...] = (
    ("black", (0, 0, 0)),
    ("charcoal grey", (60, 60, 60)),
    ("grey", (128, 128, 128)),
    ("light grey", (200, 200, 200)),
    ("white", (255, 255, 255)),
    ("red", (225, 20, 20)),
    ("maroon", (120, 10, 20)),
    ("orange", (255, 140, 0)),
    ("yellow", (255, 225, 20)),
    ("olive", (128, 128, 0)),
    ("green", (40, 200, 40)),
    ("dark green", (0, 95, 30)),
    ("teal", (0, 128, 128)),
    ("cyan", (0, 225, 235)),
    ("sky blue", (130, 200, 240)),
    ("blue", (20, 60, 235)),
    ("navy", (0, 0, 120)),
    ("purple", (120, 30, 160)),
    ("magenta", (255, 0, 255)),
    ("pink", (255, 165, 200)),
    ("brown", (130, 75, 30)),
    ("beige", (230, 210, 170)),
)

#: Pillow format of each MIME type the API accepts for input images.
_ACCEPTED_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_FOOTER_SEPARATOR = " \u00b7 "  # middle dot; the default font covers Latin-1


class ImageDecodeError(ValueError):
    """An uploaded image is not a decodable JPEG, PNG or WebP; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class DrawOptions:
    """What a generated picture depends on besides its prompt and seed.

    Attributes:
        speed: ``RenderingSpeed`` value shown in the footer (e.g. ``"TURBO"``).
        style: ``StyleTypeV3`` value shown in the footer (e.g. ``"GENERAL"``).
        preset: ``StylePresetV3`` value or ``None``; shown in the footer.
        palette: colours to paint with (from ``color_palette``), or empty for seeded colours.
        salt: mixed into the random key, so engines with different salts draw different
            pictures for the same prompt and seed.
    """

    speed: str = "DEFAULT"
    style: str = "GENERAL"
    preset: str | None = None
    palette: tuple[RGB, ...] = ()
    salt: str = ""


# ---------------------------------------------------------------------------------------------
# Sizes


def resolution_for_aspect(aspect: AspectRatioV3 | None) -> ResolutionV3:
    """Return the ``ResolutionV3`` whose width/height is closest to ``aspect``.

    ``None`` means the API default ``1x1`` (1024x1024). Ties go to the larger area, so the
    choice is the "maximum supported resolution at the specified aspect ratio" that
    ``generate-transparent`` promises.
    """
    if aspect is None:
        return ResolutionV3.R_1024x1024
    return _closest_resolution(aspect.ratio)


def resolution_for_size(width: int, height: int) -> ResolutionV3:
    """Return the ``ResolutionV3`` whose aspect ratio is closest to ``width`` x ``height``."""
    return _closest_resolution(width / height)


def _closest_resolution(ratio: float) -> ResolutionV3:
    def key(res: ResolutionV3) -> tuple[float, int]:
        w, h = res.size
        return (abs(w / h - ratio), -w * h)

    return min(ResolutionV3, key=key)


# ---------------------------------------------------------------------------------------------
# Decoding and encoding


def decode_image(data: bytes) -> Image.Image:
    """Decode an uploaded image after checking its magic bytes.

    Args:
        data: the raw bytes of the part.

    Returns:
        The fully loaded image (any mode).

    Raises:
        ImageDecodeError: the bytes are not JPEG, PNG or WebP by signature (the formats the
            spec accepts), or Pillow cannot decode them, or they decode to a decompression bomb.
    """
    expected = _ACCEPTED_FORMATS.get(sniff_content_type(data) or "")
    if expected is None:
        raise ImageDecodeError("is not a JPEG, PNG or WebP image")
    try:
        with Image.open(io.BytesIO(data), formats=[expected]) as opened:
            opened.load()
            image = opened.copy()
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("has too many pixels to decode") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        # Truncated or corrupt files raise OSError; some plugins raise ValueError/SyntaxError.
        raise ImageDecodeError(
            f"{expected} data could not be decoded (corrupt or truncated)"
        ) from exc
    if image.width < 1 or image.height < 1:
        raise ImageDecodeError("is an empty image")
    return image


def encode_png(image: Image.Image) -> bytes:
    """Return ``image`` as PNG bytes (fast compression; no metadata, so bytes are stable)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def cap_size(size: tuple[int, int], limit: int = MAX_OUTPUT_SIDE) -> tuple[int, int]:
    """Return ``size`` scaled down (aspect kept) so neither side exceeds ``limit`` pixels."""
    w, h = size
    scale = min(1.0, limit / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


# ---------------------------------------------------------------------------------------------
# Drawing primitives


def _rng(*parts: object) -> random.Random:
    # A string key: random.Random(str) hashes it with SHA-512, stable across runs and
    # independent of PYTHONHASHSEED.
    return random.Random("|".join(str(p) for p in parts))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # A fresh font per call: FreeType faces are not safe to share between the worker threads
    # that render concurrently, and loading the built-in font costs ~0.1 ms.
    return ImageFont.load_default(size=size)


def _random_colour(rng: random.Random) -> RGB:
    h = rng.random()
    s = rng.uniform(0.45, 0.95)
    v = rng.uniform(0.35, 0.98)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _colours(rng: random.Random, palette: Sequence[RGB], n: int) -> list[RGB]:
    if palette:
        return [palette[rng.randrange(len(palette))] for _ in range(n)]
    return [_random_colour(rng) for _ in range(n)]


def _gradient_mask(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """Return an ``L`` mask mixing a linear and a radial gradient in a seeded direction."""
    linear = Image.linear_gradient("L").rotate(90 * rng.randrange(4))
    if rng.random() < 0.5:
        linear = ImageOps.mirror(linear)
    radial = Image.radial_gradient("L")
    mask = Image.blend(linear, radial, rng.uniform(0.0, 0.7))
    return mask.resize(size, Image.Resampling.BILINEAR)


def _pattern(rng: random.Random, size: tuple[int, int], palette: Sequence[RGB]) -> Image.Image:
    """Return an RGB seeded gradient with soft shapes over it, at ``size``.

    The whole pattern is composed at a quarter of the size and scaled up once: compositing at
    full size costs more than the PNG encoding, and the upscale (after a slight blur of the
    small image) softens the shapes' edges into a painterly look.
    """
    w, h = size
    small = (max(8, w // 4), max(8, h // 4))
    sw, sh = small
    c1, c2 = _colours(rng, palette, 2)
    base = Image.composite(
        Image.new("RGB", small, c1), Image.new("RGB", small, c2), _gradient_mask(rng, small)
    ).convert("RGBA")
    layer = Image.new("RGBA", small, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randint(6, 14)):
        colour = (*_colours(rng, palette, 1)[0], rng.randint(70, 170))
        x0, y0 = rng.uniform(-0.2, 1.0) * sw, rng.uniform(-0.2, 1.0) * sh
        x1 = x0 + rng.uniform(0.1, 0.6) * sw
        y1 = y0 + rng.uniform(0.1, 0.6) * sh
        kind = rng.randrange(4)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.rounded_rectangle((x0, y0, x1, y1), radius=min(sw, sh) // 12, fill=colour)
        elif kind == 2:
            points = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(3)]
            draw.polygon(points, fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=max(1, min(sw, sh) // 30))
        # Composite shape by shape so overlapping translucent shapes mix their colours.
        base.alpha_composite(layer)
        draw.rectangle((0, 0, sw, sh), fill=(0, 0, 0, 0))
    soft = base.convert("RGB").filter(ImageFilter.GaussianBlur(0.7))
    return soft.resize(size, Image.Resampling.BILINEAR)


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        # Break words longer than a line (URLs, hashes) so nothing runs off the image.
        while font.getlength(word) > width and len(word) > 1:
            cut = len(word)
            while cut > 1 and font.getlength(word[:cut]) > width:
                cut -= 1
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _luminance(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _text_box(
    image: Image.Image,
    text: str,
    *,
    anchor: str,
    max_lines: int,
    font_px: int,
) -> None:
    """Draw ``text`` word-wrapped on a translucent rounded box, in place (RGB or RGBA).

    ``anchor`` is ``"centre"`` or ``"bottom"``. The box colour contrasts with the pixels under
    it, so the words stay legible over any background.
    """
    w, h = image.size
    font = _font(font_px)
    margin = max(8, w // 20)
    lines = _wrap(text, font, w - 4 * margin)
    if not lines:
        return
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and font.getlength(last + "\u2026") > w - 4 * margin:
            last = last[:-1]
        lines[-1] = last.rstrip() + "\u2026"
    line_h = round(font_px * 1.25)
    text_w = max(font.getlength(line) for line in lines)
    box_w = round(text_w + 2 * margin)
    box_h = line_h * len(lines) + margin
    x = (w - box_w) // 2
    y = (h - box_h) // 2 if anchor == "centre" else h - box_h - 2 * margin
    x, y = max(0, x), max(0, y)
    region = image.crop((x, y, x + box_w, y + box_h))
    dark_under = _luminance(ImageStat.Stat(region.convert("RGB")).mean) < 128
    fill = (255, 255, 255, 200) if dark_under else (0, 0, 0, 170)
    ink = (20, 20, 20, 255) if dark_under else (255, 255, 255, 255)
    overlay = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rounded_rectangle((0, 0, box_w - 1, box_h - 1), radius=margin // 2, fill=fill)
    for i, line in enumerate(lines):
        lx = (box_w - font.getlength(line)) / 2
        draw.text((lx, margin / 2 + i * line_h), line, font=font, fill=ink)
    _composite_region(image, overlay, (x, y))


def _composite_region(image: Image.Image, overlay: Image.Image, xy: tuple[int, int]) -> None:
    """Alpha-composite the RGBA ``overlay`` onto ``image`` (RGB or RGBA) at ``xy``, in place.

    Only the covered region is converted and composited: a full-size RGBA round trip would
    cost more than the drawing itself.
    """
    x, y = xy
    region = image.crop((x, y, x + overlay.width, y + overlay.height)).convert("RGBA")
    region.alpha_composite(overlay)
    image.paste(region if image.mode == "RGBA" else region.convert(image.mode), (x, y))


def _footer(image: Image.Image, text: str) -> None:
    """Draw a small caption (``seed N · SPEED · STYLE``) at the bottom left, in place."""
    w, h = image.size
    font_px = max(12, min(w, h) // 48)
    font = _font(font_px)
    pad = font_px // 2
    box_w = round(font.getlength(text)) + 2 * pad
    box_h = round(font_px * 1.2) + pad
    overlay = Image.new("RGBA", (min(box_w, w), min(box_h, h)), (0, 0, 0, 150))
    ImageDraw.Draw(overlay).text((pad, pad // 2), text, font=font, fill=(255, 255, 255, 255))
    _composite_region(image, overlay, (0, max(0, h - box_h)))


def _footer_text(seed: int, options: DrawOptions) -> str:
    parts = [f"seed {seed}", options.speed, options.style]
    if options.preset:
        parts.append(options.preset)
    return _FOOTER_SEPARATOR.join(parts)


def _prompt_font_px(size: tuple[int, int]) -> int:
    return max(16, min(size) // 18)


# ---------------------------------------------------------------------------------------------
# Endpoints


def render_generated(
    prompt: str,
    seed: int,
    size: tuple[int, int],
    options: DrawOptions,
    *,
    transparent: bool = False,
) -> Image.Image:
    """Draw the picture for ``/v1/ideogram-v3/generate`` (or ``generate-transparent``).

    Args:
        prompt: the prompt drawn on the picture (word-wrapped, centred).
        seed: 0..2147483647; with ``prompt``, ``size`` and ``options`` fixes every pixel.
        size: ``(width, height)`` in pixels.
        options: footer fields, palette and salt.
        transparent: draw a subject on a fully transparent background (RGBA result).

    Returns:
        An ``RGB`` image, or ``RGBA`` when ``transparent``.
    """
    rng = _rng(options.salt, "generate", prompt, seed, size, options.palette)
    pattern = _pattern(rng, size, options.palette)
    if transparent:
        image = Image.new("RGBA", size, (0, 0, 0, 0))
        image.paste(pattern, (0, 0), _subject_mask(rng, size))
    else:
        image = pattern
    _text_box(image, prompt, anchor="centre", max_lines=8, font_px=_prompt_font_px(size))
    _footer(image, _footer_text(seed, options))
    return image


def _subject_mask(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """Return an ``L`` mask of a seeded "subject" blob that leaves the corners empty."""
    w, h = size
    sw, sh = max(8, w // 4), max(8, h // 4)
    mask = Image.new("L", (sw, sh), 0)
    draw = ImageDraw.Draw(mask)
    inset_x, inset_y = sw * rng.uniform(0.08, 0.16), sh * rng.uniform(0.08, 0.16)
    box = (inset_x, inset_y, sw - inset_x, sh - inset_y)
    if rng.random() < 0.5:
        draw.ellipse(box, fill=255)
    else:
        draw.rounded_rectangle(box, radius=min(sw, sh) // 5, fill=255)
    return mask.resize(size, Image.Resampling.BICUBIC)


def render_remix(
    source: Image.Image,
    prompt: str,
    seed: int,
    size: tuple[int, int],
    image_weight: int,
    options: DrawOptions,
) -> Image.Image:
    """Draw ``/v1/ideogram-v3/remix``: the input cropped to ``size`` blended with a pattern.

    Args:
        source: the decoded input image (any mode); cropped to the aspect ratio of ``size``
            around its centre, as the spec says the API does.
        prompt: drawn in a banner at the bottom, so the input stays visible.
        seed: fixes the pattern.
        size: output ``(width, height)`` in pixels.
        image_weight: 1..100, the share of the input in the blend (100 = the input alone).
        options: footer fields, palette and salt.

    Returns:
        An ``RGB`` image of ``size``.
    """
    rng = _rng(options.salt, "remix", prompt, seed, size, options.palette)
    base = ImageOps.fit(_flatten(source), size, Image.Resampling.BILINEAR)
    pattern = _pattern(rng, size, options.palette)
    image = Image.blend(pattern, base, image_weight / 100)
    _text_box(image, prompt, anchor="bottom", max_lines=3, font_px=_prompt_font_px(size))
    _footer(image, _footer_text(seed, options))
    return image


def render_reframe(
    source: Image.Image, seed: int, size: tuple[int, int], options: DrawOptions
) -> Image.Image:
    """Draw ``/v1/ideogram-v3/reframe``: the input centred on a canvas of ``size``.

    The input is scaled to fit 80 % of the canvas (keeping its aspect ratio); the surroundings
    are a seeded pattern blended with one in the input's edge colours, so the "zoom out" reads
    as an extension of the picture.

    Returns:
        An ``RGB`` image of ``size``.
    """
    rng = _rng(options.salt, "reframe", seed, size, options.palette)
    flat = _flatten(source)
    # Half seeded pattern, half one in the input's edge colours: the surroundings continue the
    # picture's colours yet stay visibly generated (even around a plain input).
    image = Image.blend(
        _pattern(rng, size, options.palette), _pattern(rng, size, _edge_palette(flat)), 0.5
    )
    w, h = size
    inner = ImageOps.contain(flat, (max(1, w * 8 // 10), max(1, h * 8 // 10)))
    image.paste(inner, ((w - inner.width) // 2, (h - inner.height) // 2))
    _footer(image, _footer_text(seed, options))
    return image


def render_replace_background(
    source: Image.Image,
    prompt: str,
    seed: int,
    size: tuple[int, int],
    options: DrawOptions,
) -> Image.Image:
    """Draw ``/v1/ideogram-v3/replace-background``: the input's centre over a new background.

    The "subject" is the central ellipse of the input (feathered); everything else becomes a
    seeded pattern, and the prompt is drawn in a banner at the bottom.

    Returns:
        An ``RGB`` image of ``size``.
    """
    rng = _rng(options.salt, "replace-background", prompt, seed, size, options.palette)
    subject = ImageOps.fit(_flatten(source), size, Image.Resampling.BILINEAR)
    image = _pattern(rng, size, options.palette)
    image.paste(subject, (0, 0), _centre_ellipse(size))
    _text_box(image, prompt, anchor="bottom", max_lines=2, font_px=_prompt_font_px(size))
    _footer(image, _footer_text(seed, options))
    return image


def render_remove_background(source: Image.Image) -> Image.Image:
    """Draw ``/v1/remove-background``: the input as RGBA with its background transparent.

    The background is taken to be the colour of the image border: pixels within a tolerance of
    it become transparent, the rest stay opaque (edges feathered by a small blur). When that
    leaves almost nothing (a uniform picture) or almost everything (a busy border), a centred
    ellipse stands in for the subject instead. Already-transparent pixels stay transparent.
    The size is kept, capped at :data:`MAX_OUTPUT_SIDE`.

    Returns:
        An ``RGBA`` image.
    """
    rgba = source.convert("RGBA")
    size = cap_size(rgba.size)
    if size != rgba.size:
        rgba = rgba.resize(size, Image.Resampling.LANCZOS)
    rgb = rgba.convert("RGB")
    border = _border_colour(rgb)
    diff = ImageChops.difference(rgb, Image.new("RGB", size, border)).convert("L")
    mask = diff.point(lambda v: 255 if v > 24 else 0)
    kept = ImageStat.Stat(mask).mean[0] / 255
    if not 0.02 <= kept <= 0.95:
        mask = _centre_ellipse(size)
    else:
        mask = mask.filter(ImageFilter.MedianFilter(3)).filter(ImageFilter.GaussianBlur(1))
    alpha = ImageChops.multiply(mask, rgba.getchannel("A"))
    rgba.putalpha(alpha)
    return rgba


def render_upscale(source: Image.Image, seed: int) -> Image.Image:
    """Draw ``/upscale``: the input resized 2x with LANCZOS, capped at :data:`MAX_OUTPUT_SIDE`.

    A light seeded unsharp mask stands in for the model's "detail", so images with different
    seeds differ slightly. Transparency is kept.

    Returns:
        An ``RGB`` or ``RGBA`` image about twice the input's width and height.
    """
    mode = "RGBA" if _has_alpha(source) else "RGB"
    image = source.convert(mode)
    size = cap_size((image.width * 2, image.height * 2))
    image = image.resize(size, Image.Resampling.LANCZOS)
    rng = _rng("upscale", seed)
    return image.filter(
        ImageFilter.UnsharpMask(radius=rng.uniform(1.0, 2.5), percent=rng.randint(40, 120))
    )


def upscale_by(image: Image.Image, factor: int) -> Image.Image:
    """Return ``image`` enlarged ``factor`` times (``generate-transparent``'s ``upscale_factor``).

    The result is capped at :data:`MAX_OUTPUT_SIDE` on its longest side.
    """
    if factor <= 1:
        return image
    size = cap_size((image.width * factor, image.height * factor))
    return image.resize(size, Image.Resampling.BICUBIC)


# ---------------------------------------------------------------------------------------------
# Helpers over input images


def _has_alpha(image: Image.Image) -> bool:
    """Return whether ``image`` has at least one pixel that is not fully opaque."""
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
    elif image.mode == "PA" or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
    else:
        return False
    low, _ = alpha.getextrema()
    return bool(low < 255)  # type: ignore[operator]


def _flatten(image: Image.Image) -> Image.Image:
    """Return ``image`` as RGB, compositing any transparency over white."""
    if not _has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    return white.convert("RGB")


def _border_colour(rgb: Image.Image) -> RGB:
    """Return the mean colour of the 1-pixel frame of ``rgb``."""
    w, h = rgb.size
    strips = [
        rgb.crop((0, 0, w, 1)),
        rgb.crop((0, h - 1, w, h)),
        rgb.crop((0, 0, 1, h)).rotate(90, expand=True),
        rgb.crop((w - 1, 0, w, h)).rotate(90, expand=True),
    ]
    frame = Image.new("RGB", (sum(s.width for s in strips), 1))
    x = 0
    for strip in strips:
        frame.paste(strip, (x, 0))
        x += strip.width
    r, g, b = ImageStat.Stat(frame).mean[:3]
    return round(r), round(g), round(b)


def _edge_palette(rgb: Image.Image) -> tuple[RGB, ...]:
    """Return a few colours from the edges of ``rgb`` (to extend a picture convincingly)."""
    small = rgb.resize((8, 8), Image.Resampling.BOX)
    edge = [(0, 0), (7, 0), (0, 7), (7, 7), (3, 0), (0, 3), (7, 4), (4, 7)]
    colours: list[RGB] = []
    for xy in edge:
        px = small.getpixel(xy)
        assert isinstance(px, tuple)
        colours.append((int(px[0]), int(px[1]), int(px[2])))
    return tuple(colours)


def _centre_ellipse(size: tuple[int, int]) -> Image.Image:
    """Return a feathered ``L`` ellipse mask covering the central ~70 % of ``size``."""
    w, h = size
    sw, sh = max(8, w // 4), max(8, h // 4)
    mask = Image.new("L", (sw, sh), 0)
    ImageDraw.Draw(mask).ellipse((sw * 0.15, sh * 0.12, sw * 0.85, sh * 0.92), fill=255)
    return mask.resize(size, Image.Resampling.BICUBIC)


# ---------------------------------------------------------------------------------------------
# Describe


def _nearest_colour_name(rgb: Sequence[float]) -> str:
    def distance(ref: RGB) -> float:
        rmean = (rgb[0] + ref[0]) / 2
        dr, dg, db = rgb[0] - ref[0], rgb[1] - ref[1], rgb[2] - ref[2]
        return (2 + rmean / 256) * dr * dr + 4 * dg * dg + (2 + (255 - rmean) / 256) * db * db

    return min(_NAMED_COLOURS, key=lambda item: distance(item[1]))[0]


def _dominant_colours(rgb: Image.Image, mask: Image.Image | None) -> list[tuple[str, float]]:
    """Return ``(colour name, share 0..1)`` of the main colours, largest share first."""
    quantized = rgb.quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    histogram = quantized.histogram(mask=mask)
    total = sum(histogram) or 1
    shares: dict[str, float] = {}
    for index, count in enumerate(histogram):
        if not count:
            continue
        colour = palette[index * 3 : index * 3 + 3]
        name = _nearest_colour_name(colour)
        shares[name] = shares.get(name, 0.0) + count / total
    return sorted(shares.items(), key=lambda item: -item[1])


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def describe(source: Image.Image) -> list[str]:
    """Describe ``source`` for ``/describe``: two prompt-ready descriptions from its pixels.

    Each description is 2-4 sentences naming the format (orientation and pixel size), the
    dominant colours (nearest of a small set of named colours, by share of the opaque pixels),
    the brightness (dark / mid-toned / bright), contrast and saturation, where the light sits,
    and "transparent background" when the image has transparent pixels.

    Returns:
        Two description texts (the API returns a list of ``{"text": ...}``).
    """
    w, h = source.size
    alpha = _has_alpha(source)
    # Everything below works on a thumbnail: a few thousand pixels say enough about colour.
    thumb = source.copy()
    thumb.thumbnail((96, 96), Image.Resampling.BILINEAR)
    thumb = thumb.convert("RGBA")
    rgb = thumb.convert("RGB")
    mask: Image.Image | None = None
    if alpha:
        mask = thumb.getchannel("A").point(lambda v: 255 if v >= 128 else 0)
        if not mask.getbbox():  # fully transparent: describe the colours anyway
            mask = None
    colours = _dominant_colours(rgb, mask)
    main = colours[0][0]
    accents = [name for name, share in colours[1:4] if share >= 0.08]

    grey = rgb.convert("L")
    mean = ImageStat.Stat(grey, mask).mean[0]
    # Spread over the colour channels, not luminance: red next to grey of the same lightness
    # is not a uniform picture.
    spread = max(ImageStat.Stat(rgb, mask).stddev)
    saturation = ImageStat.Stat(rgb.convert("HSV").getchannel("S"), mask).mean[0]

    if abs(w / h - 1) < 0.05:
        shape = "square"
    elif w > h:
        shape = "panoramic" if w / h >= 2 else "landscape"
    else:
        shape = "tall portrait" if h / w >= 2 else "portrait"
    tone = "dark, low-key" if mean < 70 else "bright, high-key" if mean > 185 else "mid-toned"
    if saturation < 25:
        chroma = "monochrome"
    elif saturation < 90:
        chroma = "muted"
    else:
        chroma = "vivid"

    if spread < 6:
        body = f"A plain, uniform field of solid {main}"
        detail = f"It is {tone}, with no visible subject or texture, just flat, even colour."
    else:
        body = f"An abstract composition dominated by {main}"
        if accents:
            body += f" with accents of {_join(accents)}"
        contrast = "strong contrast" if spread > 60 else "soft, gentle contrast"
        detail = f"The image is {tone} and {chroma}, with {contrast}. " + _light_sentence(grey)
    first = f"{body}, in a {shape} format ({w}x{h} pixels). {detail}"
    if alpha:
        first += " The subject sits on a transparent background."

    palette_words = _join([main, *accents])
    second = (
        f"{shape.capitalize()} {chroma} artwork in {palette_words} tones, {tone} lighting. "
        f"Minimalist, clean, {'isolated on a transparent background' if alpha else 'full-bleed'}."
    )
    return [first.strip(), second]


def _light_sentence(grey: Image.Image) -> str:
    w, h = grey.size
    centre = ImageStat.Stat(grey.crop((w // 4, h // 4, w * 3 // 4, h * 3 // 4))).mean[0]
    whole = ImageStat.Stat(grey).mean[0]
    top = ImageStat.Stat(grey.crop((0, 0, w, max(1, h // 3)))).mean[0]
    bottom = ImageStat.Stat(grey.crop((0, h - max(1, h // 3), w, h))).mean[0]
    if centre - whole > 15:
        return "Light gathers in the centre against darker edges."
    if whole - centre > 15:
        return "The centre is darker, framed by lighter edges."
    if top - bottom > 20:
        return "Light falls from the top, fading towards the bottom."
    if bottom - top > 20:
        return "The lower part is brighter than the top."
    return "Light is spread evenly across the frame."
