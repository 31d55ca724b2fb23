"""Check, convert and shrink images: user input for the API, results for the chat platforms.

Accepted input: PNG, JPEG, WebP up to the API limit (10 MB); GIF/BMP/TIFF/HEIC that Pillow
can read are converted to PNG; larger images are downscaled to fit; anything else is a clear
error and no API call. Results are posted with their exact bytes and re-encoded only
when they exceed the platform's upload limit (:func:`fit_for_upload`).

The type of an image is always sniffed from its bytes with Pillow; names and claimed content
types are ignored. Every function here is synchronous and may take a second on a large image:
call it through ``asyncio.to_thread`` from async code so the event loop never blocks.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import re
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import InvalidImage

__all__ = [
    "MAX_INPUT_PIXELS",
    "MAX_RAW_INPUT_BYTES",
    "MAX_UPLOAD_BYTES",
    "MIN_FIT_SIDE",
    "InputImage",
    "fit_for_upload",
    "image_size",
    "prepare_input_image",
    "sniff_content_type",
]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""Largest image file the Ideogram API takes: 10 MB."""

MAX_RAW_INPUT_BYTES = 100 * 1024 * 1024
"""Input larger than this is refused before any decoding."""

MAX_INPUT_PIXELS = 40_000_000
"""Default limit on width × height of an image we decode (decompression-bomb guard)."""

MIN_FIT_SIDE = 256
"""Shrinking stops (with :class:`~bot.errors.InvalidImage`) once the longer side is this small."""

_MIB = 1024 * 1024
_JPEG_QUALITY = 90
_PASS_THROUGH = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
}
_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f`]")


def extension_for(content_type: str | None, default: str = "png") -> str:
    """The file extension (no dot) for an image MIME type, ``default`` when unknown."""
    return _EXTENSIONS.get(content_type or "", default)


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image ready to send to the API, platform-neutral.

    Build it with :func:`prepare_input_image`, which checks and converts the bytes; the engine
    trusts an ``InputImage`` it is given.

    Attributes:
        data: the file bytes (PNG, JPEG or WebP, at most the ``max_bytes`` it was prepared for).
        filename: a base name whose extension matches ``content_type`` (``"photo.png"``).
        content_type: MIME type sniffed from ``data`` (``"image/png"``), never the claimed one.
        width: pixels.
        height: pixels.
    """

    data: bytes
    filename: str
    content_type: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        """Return the SHA-256 of :attr:`data` as 64 lowercase hex characters."""
        return hashlib.sha256(self.data).hexdigest()


@functools.cache
def _register_optional_openers() -> bool:
    """Let Pillow read HEIC/HEIF when ``pillow-heif`` is installed (it is not a dependency)."""
    try:
        module = importlib.import_module("pillow_heif")
    except ImportError:
        return False
    register = getattr(module, "register_heif_opener", None)
    if not callable(register):
        return False
    register()
    return True


def _display_name(filename: str) -> str:
    """Return the base name of ``filename`` safe to quote in a message (no path, no backticks)."""
    name = re.split(r"[/\\]", filename)[-1]
    name = _CONTROL.sub("", name).strip()
    if len(name) > 60:
        name = name[:59] + "…"
    return name or "image"


def _with_extension(filename: str, extension: str) -> str:
    """Return the base name of ``filename`` with its extension replaced by ``extension``."""
    name = _display_name(filename)
    stem, dot, _ = name.rpartition(".")
    if not dot or not stem:
        stem = name
    return f"{stem}.{extension}"


def _mb(size: int) -> str:
    return f"{size / _MIB:.1f}".removesuffix(".0") + " MB"


def _not_an_image(name: str) -> InvalidImage:
    return InvalidImage(f"`{name}` is not an image. Please attach a PNG, JPEG or WebP file.")


def _damaged(name: str) -> InvalidImage:
    return InvalidImage(
        f"`{name}` looks damaged or incomplete and can't be read; please attach it again."
    )


def _too_many_pixels(name: str, max_pixels: int, size: tuple[int, int] | None) -> InvalidImage:
    dimensions = f" ({size[0]}×{size[1]})" if size else ""
    return InvalidImage(
        f"`{name}` has too many pixels{dimensions} to process; please attach an image of at most"
        f" {max_pixels:,} pixels."
    )


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open, verify and fully load ``data``; the returned image's ``format`` is set.

    The pixel limit is checked on the header before any decoding. Pillow's own global guard
    (``Image.MAX_IMAGE_PIXELS``) is left as it is for other code; when it fires first, its error
    (or its warning, if warnings are errors) becomes the same message.

    Raises:
        InvalidImage: not an image, damaged or truncated, or too many pixels.
    """
    try:
        with Image.open(BytesIO(data)) as probe:
            if probe.width * probe.height > max_pixels:
                raise _too_many_pixels(name, max_pixels, probe.size)
            probe.verify()
        image = Image.open(BytesIO(data))
        try:
            image.load()
        except BaseException:
            image.close()
            raise
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        # A known signature Pillow cannot identify is a damaged image, not some other file.
        if _signature_type(data) is not None:
            raise _damaged(name) from None
        raise _not_an_image(name) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(name, max_pixels, None) from None
    except Exception:  # any decoder failure on untrusted bytes: truncated, bad CRC, bad header
        raise _damaged(name) from None
    return image


def _has_alpha(image: Image.Image) -> bool:
    """Return whether ``image`` has transparency that is actually used (some alpha < 255)."""
    if not image.has_transparency_data:
        return False
    alpha = image.convert("RGBA").getchannel("A")
    low, _high = alpha.getextrema()
    return bool(low < 255)  # type: ignore[operator]


def _normalised(image: Image.Image) -> tuple[Image.Image, bool]:
    """Return the first frame of ``image`` upright as RGB or RGBA, and whether it has alpha."""
    frame = ImageOps.exif_transpose(image)
    alpha = _has_alpha(frame)
    if alpha:
        return frame.convert("RGBA"), True
    if frame.mode == "RGB":
        return frame, False
    if frame.mode.startswith("I") or frame.mode == "F":
        # 16-bit / float grey (TIFF): Pillow clips when converting; scale 16-bit down first.
        scale = 1 / 256 if frame.mode.startswith("I;16") else 1
        frame = frame.convert("I").point(lambda value: value * scale).convert("L")
    return frame.convert("RGB"), False


def _encode(image: Image.Image, fmt: str, *, optimize: bool = False) -> bytes:
    """Encode ``image`` (RGB or RGBA) as PNG or JPEG (quality 90)."""
    buffer = BytesIO()
    if fmt == "PNG":
        image.save(buffer, "PNG", optimize=optimize)
    else:
        image.save(buffer, "JPEG", quality=_JPEG_QUALITY, optimize=optimize)
    return buffer.getvalue()


def _shrink(
    image: Image.Image, fmt: str, max_bytes: int, last_size: int, factor: float | None
) -> tuple[bytes, tuple[int, int]] | None:
    """Downscale ``image`` in steps and encode as ``fmt`` until the file fits ``max_bytes``.

    Args:
        image: the full-size picture (RGB or RGBA); each step resizes from it (best quality).
        fmt: ``"PNG"`` or ``"JPEG"``.
        max_bytes: the limit, bytes.
        last_size: bytes of the last full-size attempt, to size the first step.
        factor: a fixed scale per step (``0.75``), or ``None`` to estimate it from the sizes.

    Returns:
        ``(bytes, (width, height))``, or ``None`` once the longer side reached
        :data:`MIN_FIT_SIDE` without fitting.
    """
    scale = 1.0
    size = last_size
    while max(image.size) * scale > MIN_FIT_SIDE:
        if factor is None:
            step = math.sqrt(max_bytes / size) * 0.95
            step = min(0.9, max(0.5, step))
        else:
            step = factor
        scale = max(scale * step, MIN_FIT_SIDE / max(image.size))
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        resized = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        encoded = _encode(resized, fmt)
        if len(encoded) <= max_bytes:
            return encoded, resized.size
        size = len(encoded)
    return None


def prepare_input_image(
    data: bytes,
    filename: str = "image",
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> InputImage:
    """Check an uploaded image and make it acceptable to the Ideogram API (at most 10 MB).

    * PNG, JPEG or WebP (still) of at most ``max_bytes``: returned with the exact bytes.
    * Any other format Pillow reads (GIF first frame, BMP, TIFF, ICO, animated PNG/WebP first
      frame, HEIC when ``pillow-heif`` is installed): converted to PNG, alpha kept.
    * Larger than ``max_bytes`` (after conversion): EXIF-rotated upright, then re-encoded as JPEG
      quality 90 (PNG when it has transparency) and downscaled in steps, aspect kept, until it
      fits.

    Args:
        data: the file as uploaded.
        filename: its name, only for messages and the returned name (extension fixed to match).
        max_bytes: the largest file to return, bytes.
        max_pixels: the largest width × height to decode; Pillow's global decompression-bomb
            limit (``2 × Image.MAX_IMAGE_PIXELS``) also still applies.

    Returns:
        The :class:`InputImage`, ``content_type`` one of ``image/png``, ``image/jpeg``,
        ``image/webp``.

    Raises:
        InvalidImage: one sentence naming the file: empty, over :data:`MAX_RAW_INPUT_BYTES`
            (refused without decoding), not an image, damaged or truncated, too many pixels, or
            not small enough even at :data:`MIN_FIT_SIDE` pixels.
    """
    name = _display_name(filename)
    if not data:
        raise InvalidImage(f"`{name}` is empty; please attach the image again.")
    if len(data) > MAX_RAW_INPUT_BYTES:
        raise InvalidImage(
            f"`{name}` is {_mb(len(data))}, more than the {_mb(MAX_RAW_INPUT_BYTES)} this bot"
            " reads; please attach a smaller image."
        )
    _register_optional_openers()
    image = _decode(data, name, max_pixels)
    try:
        fmt = image.format or ""
        animated = bool(getattr(image, "is_animated", False))
        if fmt in _PASS_THROUGH and not animated and len(data) <= max_bytes:
            content_type = _PASS_THROUGH[fmt]
            return InputImage(
                data=data,
                filename=_with_extension(filename, _EXTENSIONS[content_type]),
                content_type=content_type,
                width=image.width,
                height=image.height,
            )
        try:
            picture, alpha = _normalised(image)
        except Exception:  # a mode Pillow decodes but cannot convert
            raise _damaged(name) from None
    finally:
        image.close()

    size = picture.size
    png: bytes | None = None
    if fmt not in _PASS_THROUGH or animated:
        png = _encode(picture, "PNG")
        if len(png) <= max_bytes:
            return InputImage(
                data=png,
                filename=_with_extension(filename, "png"),
                content_type="image/png",
                width=size[0],
                height=size[1],
            )
    # Too large: JPEG when opaque, PNG when transparent, then smaller in steps.
    out_format = "PNG" if alpha else "JPEG"
    if out_format == "PNG" and png is not None:
        encoded = png
    else:
        encoded = _encode(picture, out_format)
    if len(encoded) > max_bytes:
        shrunk = _shrink(picture, out_format, max_bytes, len(encoded), None)
        if shrunk is None:
            raise InvalidImage(
                f"`{name}` could not be made smaller than {_mb(max_bytes)}; please attach a"
                " smaller image."
            )
        encoded, size = shrunk
    content_type = "image/png" if out_format == "PNG" else "image/jpeg"
    return InputImage(
        data=encoded,
        filename=_with_extension(filename, _EXTENSIONS[content_type]),
        content_type=content_type,
        width=size[0],
        height=size[1],
    )


def fit_for_upload(data: bytes, content_type: str, max_bytes: int) -> tuple[bytes, str, str]:
    """Return an image file that fits a chat platform's upload limit (results are posted as files).

    Unchanged when ``len(data) <= max_bytes``. Otherwise re-encoded, trying in order: an
    optimised PNG (when the source is PNG), JPEG quality 90 (when there is no transparency),
    then the same format downscaled by 0.75 per step, aspect kept.

    Args:
        data: the image file (a stored job result).
        content_type: its MIME type, returned as is when nothing changes.
        max_bytes: the platform's limit, bytes.

    Returns:
        ``(bytes, content_type, extension)``, e.g. ``(b"…", "image/jpeg", "jpg")``; the
        extension has no dot (``"bin"`` for an unknown type left unchanged).

    Raises:
        InvalidImage: the bytes are not a readable image, or it does not fit even with its
            longer side at :data:`MIN_FIT_SIDE` pixels.
    """
    if len(data) <= max_bytes:
        extension = _EXTENSIONS.get(content_type)
        if extension is None:
            extension = _EXTENSIONS.get(sniff_content_type(data) or "", "bin")
        return data, content_type, extension
    image = _decode(data, "image", MAX_INPUT_PIXELS)
    try:
        source_format = image.format
        try:
            picture, alpha = _normalised(image)
        except Exception:
            raise _damaged("image") from None
    finally:
        image.close()
    attempts: list[bytes] = []
    if source_format == "PNG":
        attempts.append(_encode(picture, "PNG", optimize=True))
        if len(attempts[-1]) <= max_bytes:
            return attempts[-1], "image/png", "png"
    out_format = "PNG" if alpha else "JPEG"
    if out_format == "JPEG":
        attempts.append(_encode(picture, "JPEG", optimize=True))
        if len(attempts[-1]) <= max_bytes:
            return attempts[-1], "image/jpeg", "jpg"
    last = attempts[-1] if attempts else data
    shrunk = _shrink(picture, out_format, max_bytes, len(last), 0.75)
    if shrunk is None:
        raise InvalidImage(
            f"The image is too large to post here even after shrinking it (limit {_mb(max_bytes)})."
        )
    content = "image/png" if out_format == "PNG" else "image/jpeg"
    return shrunk[0], content, _EXTENSIONS[content]


def image_size(data: bytes) -> tuple[int, int]:
    """Return ``(width, height)`` in pixels from the image header, without decoding pixels.

    Raises:
        InvalidImage: ``data`` is not an image Pillow can identify, or claims too many pixels.
    """
    _register_optional_openers()
    try:
        with Image.open(BytesIO(data)) as image:
            return image.size
    except UnidentifiedImageError:
        raise _not_an_image("image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels("image", MAX_INPUT_PIXELS, None) from None
    except Exception:
        raise _damaged("image") from None


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def _signature_type(data: bytes) -> str | None:
    """Return the MIME type of a PNG, JPEG, GIF, TIFF or WebP signature at the start, if any."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def sniff_content_type(data: bytes) -> str | None:
    """Return the MIME type the bytes of an image file show (``"image/png"``), or ``None``.

    Looks at the signature of the common formats, then asks Pillow (header only). Says nothing
    about whether the file is complete; :func:`prepare_input_image` checks that.
    """
    found = _signature_type(data)
    if found is not None:
        return found
    _register_optional_openers()
    try:
        with Image.open(BytesIO(data)) as image:
            return Image.MIME.get(image.format or "")
    except Exception:  # not an image, or not one Pillow can open: no type to report
        return None
