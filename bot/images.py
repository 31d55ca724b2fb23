"""Check, convert and shrink images: user input for the API, results for the chat platforms.

Accepted input (``docs/commands.md``, "Input images"): PNG, JPEG and WebP up to the API's
10 MB (and :data:`MAX_SENT_SIDE` pixels, without metadata) are sent as they are; GIF, BMP,
TIFF (and HEIC when ``pillow-heif`` is installed) are converted to PNG; larger ones are
downscaled; anything else is refused with one sentence and nothing is sent. The type of
an image is always sniffed from its bytes by Pillow, opening only those formats; names and
claimed content types are ignored. Results are posted with their exact bytes and re-encoded only
when they exceed the platform's upload limit (:func:`fit_for_upload`).

Untrusted bytes are decoded within the pixel budget and on the bounded decode pool of
:mod:`bot.image_decode` (whose limits are re-exported here), and what goes to the API is at most
:data:`MAX_SENT_SIDE` pixels on its longer side, shrunk in place (``thumbnail``) before it is
turned upright, checked for transparency and converted, so those copies are small. Async code
calls :func:`prepare_input_image_async` / :func:`fit_for_upload_async`, which queue for the pool
without holding a thread while they wait; :func:`prepare_input_image` and :func:`fit_for_upload`
called from any other thread hand their work to the pool and wait.

What is sent and stored carries no EXIF, XMP, IPTC or comments (camera, GPS position, time):
an image with any of them is re-encoded, its EXIF orientation applied first.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from io import BytesIO

from PIL import ExifTags, Image

from bot.errors import InvalidImage
from bot.image_decode import (
    DECODE_MEMORY_BUDGET_BYTES,
    DECODE_SLOTS,
    MAX_INPUT_PIXELS,
    MAX_JPEG_PIXELS,
    damaged,
    decode,
    image_size,
    on_decode_pool,
    run_on_decode_pool,
    sniff_content_type,
)

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
    "extension_for",
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

MIN_FIT_SIDE = 256
"""Shrinking stops (with :class:`~bot.errors.InvalidImage`) once the longer side is this small."""

_MIB = 1024 * 1024
_JPEG_QUALITY = 90
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


@on_decode_pool
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
    image, header_size = decode(data, name, max_pixels, box=MAX_SENT_SIDE)
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
            raise damaged(name) from None
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
    return await run_on_decode_pool(call)


@on_decode_pool
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
    image, _ = decode(data, "image", MAX_INPUT_PIXELS)
    source_format = image.format
    picture: Image.Image | None = None
    try:
        picture, alpha = _normalised(image, None)
    except Exception:
        raise damaged("image") from None
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
    return await run_on_decode_pool(call)
