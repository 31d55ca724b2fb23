"""Decoding untrusted image bytes within bounds: the pixel budget and the bounded decode pool.

A small file cannot take the memory of the process (a 265 KiB TIFF can claim 6300×6300
pixels, 150 MiB once decoded), so every decode of :mod:`bot.images` runs here:

* a **pixel budget** checked on the header before any decoding (:data:`MAX_INPUT_PIXELS`;
  JPEG up to :data:`MAX_JPEG_PIXELS`, decoded at reduced scale with ``Image.draft``);
* a **decode pool** of :data:`DECODE_SLOTS` threads that every decode runs on: async code
  queues for the pool with :func:`run_on_decode_pool` without holding a thread while it waits;
  functions wrapped in :func:`on_decode_pool` and called from any other thread hand their work
  to the pool and wait. Decoding on the pool's threads only also keeps the memory the C
  allocator retains after a decode to one arena per slot, instead of one per thread that ever
  decoded.

The type of an image is always sniffed from its bytes by Pillow, opening only the accepted
formats (``docs/commands.md``, "Input images"); names and claimed content types are ignored.
Failures are :class:`~bot.errors.InvalidImage` with one sentence naming the file.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from typing import ParamSpec, TypeVar

from PIL import Image, UnidentifiedImageError

from bot.errors import InvalidImage

__all__ = [
    "DECODE_MEMORY_BUDGET_BYTES",
    "DECODE_SLOTS",
    "MAX_INPUT_PIXELS",
    "MAX_JPEG_PIXELS",
    "damaged",
    "decode",
    "image_size",
    "not_an_image",
    "on_decode_pool",
    "register_optional_openers",
    "run_on_decode_pool",
    "signature_type",
    "sniff_content_type",
    "too_many_pixels",
]

MAX_INPUT_PIXELS = 4096 * 3072
"""Pixel budget: the most width × height decoded at full size (12,582,912, e.g. 4096×3072).

Twice the sent size (:data:`bot.images.MAX_SENT_SIDE`) on each side of a 4:3 picture, so that a
12-megapixel phone photo (4032×3024), a 4K screenshot or a 30 MB scan converts, and small enough
that the worst decode stays within :data:`DECODE_MEMORY_BUDGET_BYTES`: 8-bit RGBA is 48 MiB of
pixels, plus a 48 MiB premultiplied copy while it is shrunk, plus the shrinking passes, the shrunk
picture and the encoder — about 140 MiB measured. A larger PNG, GIF, BMP or TIFF is refused from its
header, before any decoding; WebP gets half of it (Pillow's WebP decoder keeps two more full-size
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


#: Formats the product takes (``docs/commands.md``, "Input images"); Pillow opens no others.
_INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

_P = ParamSpec("_P")
_T = TypeVar("_T")

_ON_POOL = threading.local()


def _mark_pool_thread() -> None:
    _ON_POOL.active = True


_DECODE_POOL = ThreadPoolExecutor(
    max_workers=DECODE_SLOTS, thread_name_prefix="image-decode", initializer=_mark_pool_thread
)


def on_decode_pool(func: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run ``func`` on the decode pool, whichever thread calls it (blocking that thread)."""

    @functools.wraps(func)
    def bounded(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        if getattr(_ON_POOL, "active", False):
            return func(*args, **kwargs)
        return _DECODE_POOL.submit(func, *args, **kwargs).result()

    return bounded


async def run_on_decode_pool(call: Callable[[], _T]) -> _T:
    """Run ``call`` on the decode pool and wait for it without blocking the event loop or
    holding a thread: at most :data:`DECODE_SLOTS` decodes run at once, the others queue."""
    return await asyncio.get_running_loop().run_in_executor(_DECODE_POOL, call)


@functools.cache
def register_optional_openers() -> tuple[str, ...]:
    """Let Pillow read HEIC/HEIF when ``pillow-heif`` is installed (it is not a dependency).

    Returns:
        The formats :func:`decode` opens: :data:`_INPUT_FORMATS`, plus ``HEIF``
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


def not_an_image(name: str) -> InvalidImage:
    return InvalidImage(f"`{name}` is not an image. Please attach a PNG, JPEG or WebP file.")


def damaged(name: str) -> InvalidImage:
    return InvalidImage(
        f"`{name}` looks damaged or incomplete and can't be read; please attach it again."
    )


def too_many_pixels(name: str, max_pixels: int, size: tuple[int, int] | None) -> InvalidImage:
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


def decode(
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
    formats = register_optional_openers()
    try:
        with Image.open(BytesIO(data), formats=formats) as probe:
            limit = _pixel_limit(probe, max_pixels)
            if probe.width * probe.height > limit:
                raise too_many_pixels(name, limit, probe.size)
            header_size = probe.size
            probe.verify()
        image = Image.open(BytesIO(data), formats=formats)
        try:
            _draft(image, max_pixels, box)
            if image.width * image.height > max_pixels:
                raise too_many_pixels(name, max_pixels, image.size)
            image.load()
        except BaseException:
            image.close()
            raise
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        # A known signature Pillow cannot identify is a damaged image, not some other file.
        if signature_type(data) is not None:
            raise damaged(name) from None
        raise not_an_image(name) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels(name, max_pixels, None) from None
    except Exception:  # any decoder failure on untrusted bytes: truncated, bad CRC, bad header
        raise damaged(name) from None
    return image, header_size


def image_size(data: bytes) -> tuple[int, int]:
    """Return ``(width, height)`` in pixels from the image header, without decoding pixels.

    Raises:
        InvalidImage: ``data`` is not an image Pillow can identify, or claims too many pixels.
    """
    register_optional_openers()
    try:
        with Image.open(BytesIO(data)) as image:
            return image.size
    except UnidentifiedImageError:
        raise not_an_image("image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels("image", MAX_INPUT_PIXELS, None) from None
    except Exception:
        raise damaged("image") from None


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def signature_type(data: bytes) -> str | None:
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
    about whether the file is complete; :func:`bot.images.prepare_input_image` checks that.
    """
    found = signature_type(data)
    if found is not None:
        return found
    register_optional_openers()
    try:
        with Image.open(BytesIO(data)) as image:
            return Image.MIME.get(image.format or "")
    except Exception:  # not an image, or not one Pillow can open: no type to report
        return None
