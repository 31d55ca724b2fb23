"""Input images are sniffed, converted and shrunk for the API; results fit upload limits."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image

from bot.errors import InvalidImage
from bot.images import (
    MAX_RAW_INPUT_BYTES,
    MAX_UPLOAD_BYTES,
    InputImage,
    fit_for_upload,
    image_size,
    prepare_input_image,
    sniff_content_type,
)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """An image of random pixels: it compresses badly, so files are large."""
    return Image.frombytes(mode, (width, height), os.urandom(width * height * len(mode)))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR claims ``width`` × ``height`` (CRC fixed)."""
    png = bytearray(encode(Image.new("RGB", (8, 8), "red"), "PNG"))
    # signature (8) + length (4) + b"IHDR" (4), then width and height; the CRC covers type + data
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def message(data: bytes, filename: str = "image", **kwargs: int) -> str:
    with pytest.raises(InvalidImage) as caught:
        prepare_input_image(data, filename, **kwargs)
    return str(caught.value)


# ------------------------------------------------------------------------------------------
# Accepted as they are


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [("JPEG", "image/jpeg", "jpg"), ("PNG", "image/png", "png"), ("WEBP", "image/webp", "webp")],
)
def test_png_jpeg_webp_within_limit_are_returned_byte_for_byte(
    fmt: str, content_type: str, extension: str
) -> None:
    data = encode(noise(64, 48), fmt)
    image = prepare_input_image(data, f"photo.{extension}")
    assert image == InputImage(
        data=data, filename=f"photo.{extension}", content_type=content_type, width=64, height=48
    )
    assert image.data is data


def test_content_type_comes_from_the_bytes_not_the_name() -> None:
    """A JPEG named .png is a JPEG; the returned name gets the matching extension."""
    data = encode(noise(20, 20), "JPEG")
    image = prepare_input_image(data, "uploads/../holiday.png")
    assert (image.content_type, image.filename, image.data) == ("image/jpeg", "holiday.jpg", data)


def test_sha256_is_hex_of_the_bytes() -> None:
    image = prepare_input_image(encode(Image.new("RGB", (4, 4)), "PNG"))
    assert len(image.sha256) == 64 and int(image.sha256, 16) >= 0
    assert image.filename == "image.png"


# ------------------------------------------------------------------------------------------
# Converted to PNG


def test_bmp_is_converted_to_png() -> None:
    source = Image.new("RGB", (30, 20), (10, 200, 30))
    image = prepare_input_image(encode(source, "BMP"), "scan.bmp")
    assert (image.content_type, image.filename, image.width, image.height) == (
        "image/png",
        "scan.png",
        30,
        20,
    )
    result = opened(image.data)
    assert result.format == "PNG" and result.getpixel((0, 0)) == (10, 200, 30)


def test_gif_first_frame_becomes_png_keeping_transparency() -> None:
    first = Image.new("P", (16, 16), 1)
    first.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    first.paste(0, (0, 0, 8, 16))  # left half is palette index 0: transparent
    second = Image.new("P", (16, 16), 2)
    second.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    gif = encode(first, "GIF", save_all=True, append_images=[second], transparency=0)
    image = prepare_input_image(gif, "anim.gif")
    assert (image.content_type, image.filename) == ("image/png", "anim.png")
    result = opened(image.data)
    assert result.mode == "RGBA"
    assert result.getpixel((0, 0))[3] == 0
    assert result.getpixel((12, 0)) == (255, 0, 0, 255)


def test_tiff_and_16_bit_grey_are_converted() -> None:
    grey16 = Image.new("I;16", (10, 10), 40000)
    image = prepare_input_image(encode(grey16, "TIFF"), "scan.tif")
    assert image.content_type == "image/png"
    assert opened(image.data).getpixel((0, 0)) == (156, 156, 156)


# ------------------------------------------------------------------------------------------
# Too large: downscaled to fit


def test_a_30_mb_image_is_downscaled_to_fit_10_mb() -> None:
    """Random pixels: even as JPEG the full size is over 10 MB, so it is made smaller."""
    big = encode(noise(3600, 3400), "BMP")
    assert len(big) > 30 * 1024 * 1024
    image = prepare_input_image(big, "huge.bmp")
    assert len(image.data) <= MAX_UPLOAD_BYTES
    assert image.content_type == "image/jpeg" and image.filename == "huge.jpg"
    result = opened(image.data)
    assert result.format == "JPEG" and result.size == (image.width, image.height)
    assert image.width < 3600
    assert abs(image.width / image.height - 36 / 34) < 0.01


def test_a_30_mb_transparent_image_is_downscaled_as_png() -> None:
    big = encode(noise(2800, 2800, "RGBA"), "TIFF")
    assert len(big) > 29 * 1024 * 1024
    image = prepare_input_image(big, "huge.tiff")
    assert len(image.data) <= MAX_UPLOAD_BYTES
    assert (image.content_type, image.filename) == ("image/png", "huge.png")
    assert image.width == image.height < 2800
    assert opened(image.data).mode == "RGBA"


def test_oversized_png_with_alpha_stays_png_and_keeps_aspect() -> None:
    data = encode(noise(1000, 500, "RGBA"), "PNG")
    image = prepare_input_image(data, "cutout.png", max_bytes=len(data) // 3)
    assert len(image.data) <= len(data) // 3
    assert image.content_type == "image/png"
    result = opened(image.data)
    assert result.mode == "RGBA"
    assert abs(result.width / result.height - 2) < 0.05


def test_oversized_jpeg_is_reencoded_upright() -> None:
    """EXIF orientation 6 (rotate 90°) is applied when the image has to be re-encoded."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(noise(300, 100), "JPEG", quality=100, exif=exif.tobytes())
    image = prepare_input_image(data, "phone.jpg", max_bytes=len(data) - 1)
    assert (image.width, image.height) == (100, 300)
    assert len(image.data) < len(data)


def test_an_image_that_cannot_shrink_enough_is_refused() -> None:
    data = encode(noise(600, 600), "BMP")
    assert "could not be made smaller than" in message(data, "x.bmp", max_bytes=100)


# ------------------------------------------------------------------------------------------
# Refused with one clear sentence


def test_text_file_is_not_an_image() -> None:
    assert message(b"shopping list\nmilk\n", "notes.txt") == (
        "`notes.txt` is not an image. Please attach a PNG, JPEG or WebP file."
    )


def test_truncated_png_looks_damaged() -> None:
    data = encode(noise(100, 100), "PNG")
    text = message(data[: len(data) // 2], "cut.png")
    assert text.startswith("`cut.png` looks damaged or incomplete")


def test_truncated_jpeg_looks_damaged() -> None:
    data = encode(noise(100, 100), "JPEG")
    assert "damaged or incomplete" in message(data[:-200], "cut.jpg")


def test_decompression_bomb_is_refused_without_decoding() -> None:
    """A small file claiming 50000×50000 pixels; Pillow's global limit is left unchanged."""
    before = Image.MAX_IMAGE_PIXELS
    text = message(png_claiming_size(50_000, 50_000), "bomb.png")
    assert text.startswith("`bomb.png` has too many pixels")
    assert Image.MAX_IMAGE_PIXELS == before


def test_pixel_limit_is_local_and_names_the_size() -> None:
    text = message(png_claiming_size(7000, 7000), "big.png")
    assert "(7000×7000)" in text and "40,000,000 pixels" in text
    small = encode(Image.new("RGB", (100, 100)), "PNG")
    assert "(100×100)" in message(small, "p.png", max_pixels=5000)
    assert prepare_input_image(small, max_pixels=10_000).width == 100


def test_empty_data_is_refused() -> None:
    assert message(b"", "e.png") == "`e.png` is empty; please attach the image again."


def test_more_than_100_mb_is_refused_before_decoding() -> None:
    text = message(b"\x89PNG" + bytes(MAX_RAW_INPUT_BYTES), "huge.png")
    assert "100 MB" in text


def test_filenames_are_made_safe_for_messages() -> None:
    text = message(b"nope", "a/b/`evil`\nname.txt")
    assert text.startswith("`evilname.txt` is not an image.")


# ------------------------------------------------------------------------------------------
# Results posted to a platform


def test_fit_for_upload_leaves_a_small_file_untouched() -> None:
    data = encode(noise(50, 50), "PNG")
    assert fit_for_upload(data, "image/png", len(data)) == (data, "image/png", "png")
    assert fit_for_upload(data, "application/x-unknown", len(data))[2] == "png"


def test_fit_for_upload_shrinks_a_big_png_below_the_limit() -> None:
    data = encode(noise(800, 600), "PNG")
    limit = len(data) // 4
    out, content_type, extension = fit_for_upload(data, "image/png", limit)
    assert len(out) <= limit
    assert (content_type, extension) == ("image/jpeg", "jpg")
    result = opened(out)
    assert result.format == "JPEG" and result.width * 3 == result.height * 4


def test_fit_for_upload_downscales_transparent_png_as_png() -> None:
    data = encode(noise(800, 400, "RGBA"), "PNG")
    limit = len(data) // 5
    out, content_type, extension = fit_for_upload(data, "image/png", limit)
    assert len(out) <= limit and (content_type, extension) == ("image/png", "png")
    result = opened(out)
    assert result.mode == "RGBA" and result.width < 800
    assert abs(result.width / result.height - 2) < 0.05


def test_fit_for_upload_gives_up_below_256_px() -> None:
    data = encode(noise(600, 600), "PNG")
    with pytest.raises(InvalidImage, match="too large to post"):
        fit_for_upload(data, "image/png", 1000)
    with pytest.raises(InvalidImage, match="not an image"):
        fit_for_upload(b"x" * 100, "image/png", 10)


# ------------------------------------------------------------------------------------------
# Header helpers


def test_image_size_and_sniffing() -> None:
    jpeg = encode(Image.new("RGB", (7, 5)), "JPEG")
    assert image_size(jpeg) == (7, 5)
    assert sniff_content_type(jpeg) == "image/jpeg"
    assert sniff_content_type(encode(Image.new("RGB", (2, 2)), "WEBP")) == "image/webp"
    assert sniff_content_type(encode(Image.new("RGB", (2, 2)), "BMP")) == "image/bmp"
    assert sniff_content_type(png_claiming_size(50_000, 50_000)) == "image/png"
    assert sniff_content_type(b"hello") is None
    assert sniff_content_type(b"") is None
    with pytest.raises(InvalidImage, match="not an image"):
        image_size(b"hello")
