"""Input images are sniffed, converted and shrunk for the API; results fit upload limits."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import ExifTags, Image, PngImagePlugin

from bot.errors import InvalidImage
from bot.images import (
    MAX_RAW_INPUT_BYTES,
    MAX_UPLOAD_BYTES,
    InputImage,
    fit_for_upload,
    fit_for_upload_async,
    image_size,
    prepare_input_image,
    prepare_input_image_async,
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
    assert "(7000×7000)" in text and "12,582,912 pixels" in text
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


# ------------------------------------------------------------------------------------------
# Hostile input: memory bombs, metadata, formats outside the contract

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

_BUILD_BOMBS = """
import sys
from pathlib import Path
from PIL import Image

out = Path(sys.argv[1])
# 119 MiB of RGB once decoded, a few hundred KiB on disk.
Image.new("RGB", (6300, 6300), (200, 30, 30)).save(
    out / "bomb.tiff", "TIFF", compression="tiff_deflate"
)
Image.new("RGB", (6300, 6300), (30, 200, 30)).save(out / "bomb.png", "PNG")
# Within the pixel budget, the worst kind: 8-bit RGBA, 4096x2048.
Image.new("RGBA", (4096, 2048), (30, 30, 200, 128)).save(
    out / "large.tiff", "TIFF", compression="tiff_deflate"
)
"""

_DECODE_AT_ONCE = """
import asyncio, json, resource, sys
from pathlib import Path
from bot.errors import InvalidImage
from bot.images import prepare_input_image

mode, paths = sys.argv[1], [Path(p) for p in sys.argv[2:]]
files = [(path.name, path.read_bytes()) for path in paths]


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def one(name, data):
    try:
        if mode == "async":
            from bot.images import prepare_input_image_async

            image = await prepare_input_image_async(data, name)
        else:  # what the adapters did: the blocking call on the default thread pool
            image = await asyncio.to_thread(prepare_input_image, data, name)
    except InvalidImage as exc:
        return {"refused": str(exc)}
    return {"size": [image.width, image.height], "type": image.content_type}


async def main():
    return await asyncio.gather(*(one(name, data) for name, data in files))


baseline = peak_mib()
outcomes = asyncio.run(main())
print(json.dumps({"grew_mib": peak_mib() - baseline, "outcomes": outcomes}))
"""

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small files that decode to a lot of memory, built in a child process (so building
    them does not raise this process's peak)."""
    folder = tmp_path_factory.mktemp("bombs")
    subprocess.run([sys.executable, "-c", _BUILD_BOMBS, str(folder)], check=True, timeout=120)
    return folder


def _decode_at_once(mode: str, paths: list[Path]) -> dict[str, Any]:
    """Prepare ``paths`` all at once in a fresh interpreter; its RSS growth and the outcomes."""
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_AT_ONCE, mode, *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@linux_only
@pytest.mark.parametrize("mode", ["async", "threads"])
def test_eight_memory_bombs_at_once_are_refused_within_150_mib(bombs: Path, mode: str) -> None:
    """A 6300×6300 deflate TIFF and a one-colour 39.7-megapixel PNG (a few hundred KiB each),
    eight at once: each is refused from its header with a sentence naming its size, and the
    process grows by far less than the 119 MiB one of them takes decoded."""
    tiff, png = bombs / "bomb.tiff", bombs / "bomb.png"
    assert tiff.stat().st_size < 1 * MIB and png.stat().st_size < 1 * MIB
    files = [tiff, png] * 4
    measured = _decode_at_once(mode, files)
    for path, outcome in zip(files, measured["outcomes"], strict=True):
        assert outcome == {
            "refused": f"`{path.name}` has too many pixels (6300×6300) to process; please"
            " attach an image of at most 12,582,912 pixels."
        }
    assert measured["grew_mib"] < 150


@linux_only
@pytest.mark.parametrize("mode", ["async", "threads"])
def test_eight_large_images_at_once_are_downscaled_within_150_mib(bombs: Path, mode: str) -> None:
    """Eight RGBA images at the pixel budget (4096×2048, 32 MiB each decoded) at once: each is
    downscaled to 2048 pixels wide, one decode at a time, within 150 MiB."""
    measured = _decode_at_once(mode, [bombs / "large.tiff"] * 8)
    assert measured["outcomes"] == [{"size": [2048, 1024], "type": "image/png"}] * 8
    assert measured["grew_mib"] < 150


@linux_only
def test_the_console_refuses_a_bomb_end_to_end_within_150_mib(bombs: Path, tmp_path: Path) -> None:
    """``ideogram-bot console`` with ``/describe bomb.tiff``: refused in one sentence, no
    download of the pixels into memory — the process peaks within 150 MiB of the same run on
    a small photo."""

    def peak_mib(image: Path) -> tuple[float, str]:
        work = tmp_path / image.stem
        work.mkdir()
        script = work / "lines.txt"
        script.write_text(f'/describe "{image}"\n', encoding="utf-8")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("IDEOGRAM_", "DISCORD_", "SLACK_"))
        }
        env["LOG_LEVEL"] = "WARNING"
        out = work / "stdout.txt"
        with out.open("w") as stdout:
            child = subprocess.Popen(
                [sys.executable, "-m", "bot", "console", "--script", str(script)],
                cwd=work,
                env=env,
                stdout=stdout,
                stderr=subprocess.DEVNULL,
            )
            _, _, usage = os.wait4(child.pid, 0)
            child.returncode = 0  # reaped by wait4
        return usage.ru_maxrss / 1024, out.read_text(encoding="utf-8")

    from tests.conftest import DEMO_PHOTO

    small_peak, small_out = peak_mib(DEMO_PHOTO)
    bomb_peak, bomb_out = peak_mib(bombs / "bomb.tiff")
    assert "✖" not in small_out
    assert "✖ `bomb.tiff` has too many pixels (6300×6300) to process" in bomb_out
    assert bomb_peak - small_peak < 150


def _jpeg_with_gps(size: tuple[int, int], orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    return encode(noise(*size), "JPEG", quality=95, exif=exif.tobytes())


def _no_metadata(data: bytes) -> None:
    result = opened(data)
    assert not result.getexif()
    assert not {"exif", "xmp", "comment"} & set(result.info)
    assert b"Exif\x00\x00" not in data and b"PhoneCo" not in data


def test_gps_exif_is_stripped_from_a_small_valid_jpeg() -> None:
    """A small JPEG that needs no change but carries GPS EXIF: re-encoded without it."""
    data = _jpeg_with_gps((64, 48), orientation=1)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    image = prepare_input_image(data, "holiday.jpg")
    assert image.data != data
    assert (image.content_type, image.width, image.height) == ("image/jpeg", 64, 48)
    _no_metadata(image.data)


def test_exif_orientation_is_applied_before_it_is_stripped() -> None:
    """Orientation 6 (rotate 90°): the picture sent is upright, and says nothing more."""
    source = Image.new("RGB", (60, 30), "white")
    source.paste((255, 0, 0), (0, 0, 30, 30))  # red on the left half, as stored
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    data = encode(source, "JPEG", quality=95, exif=exif.tobytes())
    image = prepare_input_image(data, "phone.jpg")
    assert (image.width, image.height) == (30, 60)
    result = opened(image.data)
    red, green, blue = result.convert("RGB").getpixel((15, 10))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60  # rotated clockwise: red on top
    _no_metadata(image.data)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_is_stripped_from_png_and_webp(fmt: str) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    data = encode(Image.new("RGB", (40, 30), "teal"), fmt, exif=exif.tobytes())
    image = prepare_input_image(data, "shot")
    assert image.data != data and (image.width, image.height) == (40, 30)
    _no_metadata(image.data)


def test_png_text_chunks_are_stripped_losslessly() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "taken at 12 Rue Exemple")
    source = noise(20, 20)
    image = prepare_input_image(encode(source, "PNG", pnginfo=info), "note.png")
    result = opened(image.data)
    assert image.content_type == "image/png" and not getattr(result, "text", {})
    assert result.tobytes() == source.tobytes()


@pytest.mark.parametrize(("fmt", "name"), [("ICO", "favicon.ico"), ("PPM", "raw.ppm")])
def test_formats_outside_the_contract_are_not_opened(fmt: str, name: str) -> None:
    """Only PNG, JPEG, WebP, GIF, BMP and TIFF (and HEIC with pillow-heif) are opened."""
    data = encode(Image.new("RGB", (32, 32), "red"), fmt)
    assert message(data, name) == (
        f"`{name}` is not an image. Please attach a PNG, JPEG or WebP file."
    )


def test_a_small_file_with_many_pixels_is_downscaled_not_passed_on() -> None:
    """A one-colour 3000×1000 PNG is tiny on disk, but more than the API uses: downscaled."""
    data = encode(Image.new("RGB", (3000, 1000), "orange"), "PNG")
    image = prepare_input_image(data, "banner.png")
    assert (image.content_type, image.width, image.height) == ("image/png", 2048, 683)
    assert opened(image.data).size == (2048, 683)


def test_a_large_baseline_jpeg_is_decoded_at_reduced_scale() -> None:
    """24 megapixels (over the pixel budget) of baseline JPEG: decoded at half size by the
    JPEG decoder, then sent at 2048 pixels wide."""
    data = encode(Image.new("L", (6000, 4000), 128), "JPEG")
    image = prepare_input_image(data, "camera.jpg")
    assert (image.content_type, image.width, image.height) == ("image/jpeg", 2048, 1365)


def test_a_progressive_jpeg_over_the_budget_is_refused() -> None:
    """A progressive JPEG holds all its coefficients while decoding: the budget applies."""
    data = encode(Image.new("L", (4000, 4000), 128), "JPEG", progressive=True)
    assert "has too many pixels (4000×4000)" in message(data, "p.jpg")


async def test_the_async_wrapper_gives_the_same_image() -> None:
    data = encode(noise(64, 48), "PNG")
    assert await prepare_input_image_async(data, "a.png") == prepare_input_image(data, "a.png")
    with pytest.raises(InvalidImage, match="not an image"):
        await prepare_input_image_async(b"nope", "n.txt")
    big = encode(noise(400, 300), "PNG")
    limit = len(big) // 4
    assert await fit_for_upload_async(big, "image/png", limit) == fit_for_upload(
        big, "image/png", limit
    )
