"""Check, convert and shrink images: user input for the API, results for the chat platforms.

Accepted input (``docs/commands.md``, "Input images"): PNG, JPEG and WebP up to the API's
10 MB (and :data:`MAX_SENT_SIDE` pixels, without metadata) are sent as they are; GIF, BMP,
TIFF (and HEIC when ``pillow-heif`` is installed) are converted to PNG; larger ones are
downscaled; anything else is refused with one sentence and nothing is sent. The type of
an image is always sniffed from its bytes by Pillow, opening only those formats; names and
claimed content types are ignored. Results are posted with their exact bytes and re-encoded only
when they exceed the platform's upload limit (:func:`fit_for_upload`).

Untrusted bytes are decoded under three bounds, so a small file cannot take the memory of the
process (a 265 KiB TIFF can claim 6300×6300 pixels, 150 MiB once decoded):

* a **pixel budget** checked on the header before any decoding (:data:`MAX_INPUT_PIXELS`;
  JPEG up to :data:`MAX_JPEG_PIXELS`, decoded at reduced scale with ``Image.draft``);
* a **sent size**: what goes to the API is at most :data:`MAX_SENT_SIDE` pixels on its longer
  side, shrunk in place (``thumbnail``) before it is turned upright, checked for transparency
  and converted, so those copies are small;
* a **decode pool** of :data:`DECODE_SLOTS` threads that every decode runs on: async code
  calls :func:`prepare_input_image_async` / :func:`fit_for_upload_async`, which queue for the
  pool without holding a thread while they wait; :func:`prepare_input_image` and
  :func:`fit_for_upload` called from any other thread hand their work to the pool and wait.
  Decoding on the pool's threads only also keeps the memory the C allocator retains after a
  decode to one arena per slot, instead of one per thread that ever decoded.

What is sent and stored carries no EXIF, XMP, IPTC or comments (camera, GPS position, time):
an image with any of them is re-encoded, its EXIF orientation applied first.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import math
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from typing import ParamSpec, TypeVar

from PIL import ExifTags, Image, UnidentifiedImageError

from bot.errors import InvalidImage

__all__ = [
    "DECODE_MEMORY_BUDGET_BYTES",
    "DECODE_SLOTS",
    "MAX_INPUT_PIXELS",
    "MAX_JPEG_PIXELS",
    "MAX_RAW_INPUT_BYTES",
    "MAX_SENT_SIDE",
    "MAX_UPLOAD_BYTES",
    "MIN_FIT_SIDE",
    "InputImage",
    "fit_for_upload",
    "fit_for_upload_async",
    "image_size",
    "prepare_input_image",
    "prepare_input_image_async",
    "sniff_content_type",
]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""Largest image file the Ideogram API takes: 10 MB."""

MAX_RAW_INPUT_BYTES = 100 * 1024 * 1024
"""Input larger than this is refused before any decoding (and downloads stop past it)."""

MAX_SENT_SIDE = 2048
"""Longest side, pixels, of an input image sent to the API; larger ones are downscaled.

The API generates at most 1536 pixels on a side (``ResolutionV3`` in the API spec,
``tests/ideogram/ideogram-openapi.yaml``) and takes files of at most 10 MB: 2048 pixels keep
more detail than any output has, and 2048×2048 fits 10 MB as a JPEG.
"""

MAX_INPUT_PIXELS = 4096 * 3072
"""Pixel budget: the most width × height decoded at full size (12,582,912, e.g. 4096×3072).

Twice the sent size on each side of a 4:3 picture, so that a 12-megapixel phone photo
(4032×3024), a 4K screenshot or a 30 MB scan converts, and small enough that the worst decode
stays within :data:`DECODE_MEMORY_BUDGET_BYTES`: 8-bit RGBA is 48 MiB of pixels, plus a 48 MiB
premultiplied copy while it is shrunk, plus the shrinking passes, the shrunk picture and the
encoder — about 140 MiB measured. A larger PNG, GIF, BMP or TIFF is refused from its header,
before any decoding; WebP gets half of it (Pillow's WebP decoder keeps two more full-size
canvases) and a baseline JPEG more (:data:`MAX_JPEG_PIXELS`).
"""

MAX_JPEG_PIXELS = 64 * 1024 * 1024
"""The most width × height of a baseline JPEG (67,108,864: cameras up to 64 megapixels).

Such a JPEG is decoded at a half, a quarter or an eighth of its size with ``Image.draft``
(within :data:`MAX_INPUT_PIXELS`), which never holds the full-size pixels. A progressive JPEG
keeps the coefficients of the whole image while it decodes (up to 6 bytes a pixel), so it gets
:data:`MAX_INPUT_PIXELS` only.
"""

DECODE_MEMORY_BUDGET_BYTES = 160 * 1024 * 1024
"""Memory the decoding of untrusted images may take at once, bytes (160 MiB)."""

_PEAK_BYTES_PER_PIXEL = 12
"""Measured peak of one decode per pixel of :data:`MAX_INPUT_PIXELS`, bytes: 4 for the decoded
8-bit RGBA pixels (Pillow keeps RGB in 4 bytes too), 4 for one full-size working copy (a
palette converted to RGBA, the premultiplied copy Pillow resizes RGBA through, or a progressive
JPEG's coefficients), 4 for the shrinking passes, the result and the encoder."""

DECODE_SLOTS = max(1, DECODE_MEMORY_BUDGET_BYTES // (_PEAK_BYTES_PER_PIXEL * MAX_INPUT_PIXELS))
"""Images decoded at the same time: 1 (one worst-case decode, 144 MiB, fits the budget; two
would not)."""

MIN_FIT_SIDE = 256
"""Shrinking stops (with :class:`~bot.errors.InvalidImage`) once the longer side is this small."""

_MIB = 1024 * 1024
_JPEG_QUALITY = 90
#: Formats the product takes (``docs/commands.md``, "Input images"); Pillow opens no others.
_INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_PASS_THROUGH = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
}
#: Lossy sources are re-encoded as JPEG (when opaque); lossless ones as PNG.
_LOSSY = frozenset({"JPEG", "MPO", "WEBP", "HEIF"})
#: ``info`` keys through which Pillow exposes EXIF, XMP, IPTC and comments.
_METADATA_KEYS = (
    "exif",
    "xmp",
    "XML:com.adobe.xmp",
    "photoshop",
    "iptc",
    "comment",
    "Raw profile type exif",
    "Raw profile type iptc",
    "Raw profile type xmp",
)
#: JPEG segments that only describe how to decode: JFIF (APP0), ICC profile (APP2), Adobe (APP14).
_JPEG_PLAIN_SEGMENTS = frozenset({"APP0", "APP2", "APP14"})
#: EXIF orientation → the transpose that makes the picture upright (as ``ImageOps.exif_transpose``).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
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

_P = ParamSpec("_P")
_T = TypeVar("_T")

_ON_POOL = threading.local()


def _mark_pool_thread() -> None:
    _ON_POOL.active = True


_DECODE_POOL = ThreadPoolExecutor(
    max_workers=DECODE_SLOTS, thread_name_prefix="image-decode", initializer=_mark_pool_thread
)


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
def _register_optional_openers() -> tuple[str, ...]:
    """Let Pillow read HEIC/HEIF when ``pillow-heif`` is installed (it is not a dependency).

    Returns:
        The formats :func:`prepare_input_image` opens: :data:`_INPUT_FORMATS`, plus ``HEIF``
        when the opener was registered.
    """
    try:
        module = importlib.import_module("pillow_heif")
    except ImportError:
        return _INPUT_FORMATS
    register = getattr(module, "register_heif_opener", None)
    if not callable(register):
        return _INPUT_FORMATS
    register()
    return (*_INPUT_FORMATS, "HEIF")


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


def _pixel_limit(image: Image.Image, max_pixels: int) -> int:
    """The most pixels the header of ``image`` may claim: ``max_pixels``; for a baseline JPEG
    (decoded at reduced scale) :data:`MAX_JPEG_PIXELS`; for WebP half of ``max_pixels``."""
    if image.format in ("JPEG", "MPO") and not image.info.get("progressive"):
        return max(max_pixels, MAX_JPEG_PIXELS)
    if image.format == "WEBP":
        return max_pixels // 2
    return max_pixels


def _draft(image: Image.Image, max_pixels: int, box: int | None) -> None:
    """Ask the JPEG decoder for a smaller image, before any pixel is decoded.

    The scale (½, ¼, ⅛) is the least that brings the image within ``max_pixels``, or the most
    that keeps its longer side at least twice ``box``, whichever reduces more (``thumbnail``
    finishes the job with a good filter). Other formats are left as they are.
    """
    if image.format not in ("JPEG", "MPO"):
        return
    width, height = image.size
    scale = 1
    while scale < 8 and math.ceil(width / scale) * math.ceil(height / scale) > max_pixels:
        scale *= 2
    if box is not None:
        while scale < 8 and max(width, height) // (scale * 2) >= 2 * box:
            scale *= 2
    if scale > 1:
        image.draft(None, (max(1, width // scale), max(1, height // scale)))


def _decode(
    data: bytes, name: str, max_pixels: int, *, box: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Open, verify and load ``data`` as one of the accepted formats; ``format`` is set.

    The pixel limit is checked on the header before any decoding; a JPEG is decoded at a
    reduced scale when that keeps it within ``max_pixels`` (or near ``box``, the longest side
    wanted). Pillow's own global guard (``Image.MAX_IMAGE_PIXELS``) is left as it is for other
    code; when it fires first, its error (or its warning, if warnings are errors) becomes the
    same message.

    Args:
        data: the file.
        name: its display name, for messages.
        max_pixels: the pixel budget (:data:`MAX_INPUT_PIXELS`).
        box: the longest side the caller will shrink to, or ``None`` to keep the full size.

    Returns:
        The loaded image (smaller than the file's when a JPEG was decoded at reduced scale)
        and the ``(width, height)`` the file's header gives.

    Raises:
        InvalidImage: not an image (or not a format the bot takes), damaged or truncated, or
            too many pixels.
    """
    formats = _register_optional_openers()
    try:
        with Image.open(BytesIO(data), formats=formats) as probe:
            limit = _pixel_limit(probe, max_pixels)
            if probe.width * probe.height > limit:
                raise _too_many_pixels(name, limit, probe.size)
            header_size = probe.size
            probe.verify()
        image = Image.open(BytesIO(data), formats=formats)
        try:
            _draft(image, max_pixels, box)
            if image.width * image.height > max_pixels:
                raise _too_many_pixels(name, max_pixels, image.size)
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
    return image, header_size


def _carries_metadata(image: Image.Image) -> bool:
    """Whether ``image`` holds EXIF (GPS, camera, time, orientation), XMP, IPTC or comments."""
    if image.getexif() or any(key in image.info for key in _METADATA_KEYS):
        return True
    if image.format == "JPEG":
        applist: list[tuple[str, bytes]] = getattr(image, "applist", [])
        return any(marker not in _JPEG_PLAIN_SEGMENTS for marker, _ in applist)
    if image.format == "PNG":
        return bool(getattr(image, "text", None))
    return False


def _has_alpha(image: Image.Image) -> bool:
    """Return whether ``image`` has transparency that is actually used (some alpha < 255)."""
    if not image.has_transparency_data:
        return False
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else image.convert("RGBA")
    if alpha.mode != "L":
        alpha = alpha.getchannel("A")
    low, _high = alpha.getextrema()
    return bool(low < 255)  # type: ignore[operator]


def _workable(image: Image.Image) -> Image.Image:
    """``image`` in a mode that resizes well: palettes and bilevel expanded, 16-bit grey widened.

    The decoded image is closed (its pixels freed) when a converted copy replaces it.
    """
    if image.mode.startswith("I;16"):
        wide = image.convert("I")
    elif image.mode in ("P", "PA"):
        wide = image.convert("RGBA" if image.has_transparency_data else "RGB")
    elif image.mode == "1":
        wide = image.convert("L")
    else:
        return image
    image.close()
    return wide


def _normalised(image: Image.Image, box: int | None) -> tuple[Image.Image, bool]:
    """Return the first frame of ``image`` upright as RGB or RGBA, and whether it has alpha.

    With ``box``, the picture is first shrunk in place to at most ``box`` pixels on its longer
    side (aspect kept), so the conversions below work on the small copy. ``image`` may be
    closed: use only the returned picture.
    """
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    frame = _workable(image)
    if box is not None and max(frame.size) > box:
        frame.thumbnail((box, box), Image.Resampling.LANCZOS, reducing_gap=3.0)
    method = _UPRIGHT.get(orientation)
    if method is not None:
        frame = frame.transpose(method)
    alpha = _has_alpha(frame)
    if alpha:
        return frame.convert("RGBA"), True
    if frame.mode == "RGB":
        return frame, False
    if frame.mode in ("I", "F"):
        # 16-bit / float grey (TIFF): Pillow clips when converting; scale 16-bit down first.
        scale = 1 / 256 if image.mode.startswith("I;16") else 1
        frame = frame.point(lambda value: value * scale).convert("L")
    return frame.convert("RGB"), False


def _encode(image: Image.Image, fmt: str, *, optimize: bool = False) -> bytes:
    """Encode ``image`` (RGB or RGBA) as PNG or JPEG (quality 90), with no metadata."""
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


def _on_decode_pool(func: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run ``func`` on the decode pool, whichever thread calls it (blocking that thread)."""

    @functools.wraps(func)
    def bounded(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        if getattr(_ON_POOL, "active", False):
            return func(*args, **kwargs)
        return _DECODE_POOL.submit(func, *args, **kwargs).result()

    return bounded


@_on_decode_pool
def prepare_input_image(
    data: bytes,
    filename: str = "image",
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> InputImage:
    """Check an uploaded image and make it acceptable to the Ideogram API (at most 10 MB).

    * PNG, JPEG or WebP (still) of at most ``max_bytes`` and :data:`MAX_SENT_SIDE` pixels,
      without metadata: returned with the exact bytes.
    * GIF (first frame), BMP, TIFF (first page), HEIC when ``pillow-heif`` is installed,
      animated PNG/WebP (first frame): converted to PNG, alpha kept.
    * With EXIF, XMP, IPTC or comments: made upright by its EXIF orientation and re-encoded
      without them (JPEG quality 90 for an opaque JPEG or WebP, else PNG).
    * More than :data:`MAX_SENT_SIDE` pixels on its longer side: downscaled to it, aspect kept.
    * Larger than ``max_bytes`` (after conversion): re-encoded as JPEG quality 90 (PNG when it
      has transparency) and downscaled in steps, aspect kept, until it fits.

    Runs on the decode pool and blocks the calling thread until its turn is over (up to a
    second for a large image); async code calls :func:`prepare_input_image_async` instead.

    Args:
        data: the file as uploaded.
        filename: its name, only for messages and the returned name (extension fixed to match).
        max_bytes: the largest file to return, bytes.
        max_pixels: the pixel budget (width × height decoded at full size); a baseline JPEG
            may claim up to :data:`MAX_JPEG_PIXELS`, as it is decoded at reduced scale.
            Pillow's global decompression-bomb limit (``2 × Image.MAX_IMAGE_PIXELS``) also
            still applies.

    Returns:
        The :class:`InputImage`, ``content_type`` one of ``image/png``, ``image/jpeg``,
        ``image/webp``.

    Raises:
        InvalidImage: one sentence naming the file: empty, over :data:`MAX_RAW_INPUT_BYTES`
            (refused without decoding), not an image or not a format the bot takes, damaged or
            truncated, too many pixels (from the header, without decoding), or not small enough
            even at :data:`MIN_FIT_SIDE` pixels.
    """
    name = _display_name(filename)
    if not data:
        raise InvalidImage(f"`{name}` is empty; please attach the image again.")
    if len(data) > MAX_RAW_INPUT_BYTES:
        raise InvalidImage(
            f"`{name}` is {_mb(len(data))}, more than the {_mb(MAX_RAW_INPUT_BYTES)} this bot"
            " reads; please attach a smaller image."
        )
    image, header_size = _decode(data, name, max_pixels, box=MAX_SENT_SIDE)
    picture: Image.Image | None = None
    try:
        fmt = image.format or ""
        animated = bool(getattr(image, "is_animated", False))
        if (
            fmt in _PASS_THROUGH
            and not animated
            and len(data) <= max_bytes
            and image.size == header_size
            and max(header_size) <= MAX_SENT_SIDE
            and not _carries_metadata(image)
        ):
            content_type = _PASS_THROUGH[fmt]
            return InputImage(
                data=data,
                filename=_with_extension(filename, _EXTENSIONS[content_type]),
                content_type=content_type,
                width=image.width,
                height=image.height,
            )
        try:
            picture, alpha = _normalised(image, MAX_SENT_SIDE)
        except Exception:  # a mode Pillow decodes but cannot convert
            raise _damaged(name) from None
    finally:
        if picture is not image:  # an RGB image that needed no change is the picture itself
            image.close()

    size = picture.size
    # Opaque photos stay JPEG; everything else is PNG first, JPEG only if that is too large.
    out_format = "JPEG" if fmt in _LOSSY and not alpha else "PNG"
    encoded = _encode(picture, out_format)
    if len(encoded) > max_bytes and out_format == "PNG" and not alpha:
        out_format = "JPEG"
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


async def prepare_input_image_async(
    data: bytes,
    filename: str = "image",
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> InputImage:
    """:func:`prepare_input_image` on the decode pool: the event loop never blocks, and at most
    :data:`DECODE_SLOTS` images are decoded at once (the others wait their turn without a
    thread). Arguments, result and errors are those of :func:`prepare_input_image`.
    """
    call = functools.partial(
        prepare_input_image, data, filename, max_bytes=max_bytes, max_pixels=max_pixels
    )
    return await asyncio.get_running_loop().run_in_executor(_DECODE_POOL, call)


@_on_decode_pool
def fit_for_upload(data: bytes, content_type: str, max_bytes: int) -> tuple[bytes, str, str]:
    """Return an image file that fits a chat platform's upload limit (results are posted as files).

    Unchanged when ``len(data) <= max_bytes``. Otherwise re-encoded, trying in order: an
    optimised PNG (when the source is PNG), JPEG quality 90 (when there is no transparency),
    then the same format downscaled by 0.75 per step, aspect kept. Runs on the decode pool
    (see :func:`prepare_input_image`); async code calls :func:`fit_for_upload_async`.

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
    image, _ = _decode(data, "image", MAX_INPUT_PIXELS)
    source_format = image.format
    picture: Image.Image | None = None
    try:
        picture, alpha = _normalised(image, None)
    except Exception:
        raise _damaged("image") from None
    finally:
        if picture is not image:
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


async def fit_for_upload_async(
    data: bytes, content_type: str, max_bytes: int
) -> tuple[bytes, str, str]:
    """:func:`fit_for_upload` on the decode pool (see :func:`prepare_input_image_async`)."""
    call = functools.partial(fit_for_upload, data, content_type, max_bytes)
    return await asyncio.get_running_loop().run_in_executor(_DECODE_POOL, call)


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
