"""The offline engine over real loopback HTTP: shapes, pictures, validation, faults, URLs.

Every test talks to a started :class:`OfflineIdeogram` with ``aiohttp.ClientSession`` and
multipart bodies, as the bot's client does; response bodies are checked against the schemas of
the API contract of record (``ideogram-openapi.yaml``) and every PNG is decoded.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import jsonschema
import pytest
import yaml
from PIL import Image, ImageChops, ImageDraw, ImageStat

from bot.ideogram.models import ResolutionV3
from bot.offline import FaultPlan, OfflineIdeogram
from bot.offline.server import serve_forever
from tests.conftest import eventually

SPEC = Path(__file__).resolve().parents[1] / "ideogram" / "ideogram-openapi.yaml"

GENERATE = "/v1/ideogram-v3/generate"
TRANSPARENT = "/v1/ideogram-v3/generate-transparent"
REMIX = "/v1/ideogram-v3/remix"
REFRAME = "/v1/ideogram-v3/reframe"
REPLACE_BG = "/v1/ideogram-v3/replace-background"
REMOVE_BG = "/v1/remove-background"
UPSCALE = "/upscale"
DESCRIBE = "/describe"


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture
async def ideogram() -> AsyncIterator[OfflineIdeogram]:
    async with OfflineIdeogram() as engine:
        yield engine


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())["components"]  # type: ignore[no-any-return]


def check_schema(components: dict[str, Any], name: str, body: Any) -> None:
    """Fail unless ``body`` is valid against ``components/schemas/<name>`` of the contract."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": components}
    jsonschema.Draft202012Validator(schema).validate(body)


def solid(colour: tuple[int, ...], size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
    mode = "RGBA" if len(colour) == 4 else "RGB"
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format=fmt)
    return buf.getvalue()


def square_on_white(size: tuple[int, int] = (200, 160)) -> bytes:
    """A black square in the middle of a white picture (a "subject" on a plain background)."""
    image = Image.new("RGB", size, (255, 255, 255))
    w, h = size
    ImageDraw.Draw(image).rectangle((w // 3, h // 3, 2 * w // 3, 2 * h // 3), fill=(0, 0, 0))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def form(*files: tuple[str, bytes], **fields: object) -> aiohttp.FormData:
    """A multipart body (always multipart, even without files, as the real client must send)."""
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            data.add_field(name, item if isinstance(item, str) else json.dumps(item))
    for name, content in files:
        data.add_field(name, content, filename=f"{name}.png", content_type="image/png")
    return data


async def post(
    http: aiohttp.ClientSession, engine: OfflineIdeogram, path: str, data: Any = None, **kw: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(engine.base_url + path, data=data, **kw) as response:
        assert response.headers["Content-Type"] == "application/json"
        return response.status, await response.json(), response


async def fetch_png(http: aiohttp.ClientSession, url: str) -> tuple[Image.Image, bytes]:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "image/png"
        raw = await response.read()
    image = Image.open(io.BytesIO(raw))
    image.load()
    assert image.format == "PNG"
    return image, raw


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute per-channel difference of two RGB images, 0..255."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


# ---------------------------------------------------------------------------------------------
# Happy paths, one per endpoint


async def test_generate_returns_spec_shaped_images_of_the_aspect_ratio(ideogram, http, schemas):
    """Two images at 16x9: the closest ResolutionV3, consecutive seeds, fetchable PNGs."""
    status, body, _ = await post(
        http,
        ideogram,
        GENERATE,
        form(prompt="a red fox", aspect_ratio="16x9", num_images="2", seed="41"),
    )
    assert status == 200, body
    check_schema(schemas, "ImageGenerationResponseV3", body)
    assert [d["seed"] for d in body["data"]] == [41, 42]
    for item in body["data"]:
        assert item["resolution"] == "1312x736"
        assert item["is_image_safe"] is True
        assert item["style_type"] == "GENERAL"
        # MagicPrompt AUTO rewrites short prompts, keeping the user's words first.
        assert item["prompt"].startswith("a red fox, ") and item["prompt"] != "a red fox"
        image, _ = await fetch_png(http, item["url"])
        assert image.size == (1312, 736)
        assert image.mode == "RGB"


async def test_generate_accepts_json_bodies_and_honours_resolution(ideogram, http, schemas):
    """The bearer gateways send JSON; resolution sets the pixel size; OFF keeps the prompt."""
    payload = {"prompt": "tiny", "resolution": "704x1472", "magic_prompt": "OFF", "seed": 3}
    status, body, _ = await post(http, ideogram, GENERATE, json=payload)
    assert status == 200, body
    check_schema(schemas, "ImageGenerationResponseV3", body)
    (item,) = body["data"]
    assert item["prompt"] == "tiny"
    assert item["resolution"] == "704x1472"
    image, _ = await fetch_png(http, item["url"])
    assert image.size == (704, 1472)


async def test_generate_defaults_to_1024_square_and_picks_a_seed(ideogram, http):
    """No size and no seed: 1024x1024, and the seed used is returned."""
    status, body, _ = await post(http, ideogram, GENERATE, form(prompt="default sized picture"))
    assert status == 200, body
    (item,) = body["data"]
    assert 0 <= item["seed"] <= 2147483647
    image, _ = await fetch_png(http, item["url"])
    assert image.size == (1024, 1024)


async def test_magic_prompt_on_rewrites_long_prompts_and_auto_keeps_them(ideogram, http):
    long_prompt = "a quiet harbour town at dawn with fishing boats"
    results = {}
    for magic in ("ON", "AUTO"):
        status, body, _ = await post(
            http, ideogram, GENERATE, form(prompt=long_prompt, magic_prompt=magic, seed="1")
        )
        assert status == 200, body
        results[magic] = body["data"][0]["prompt"]
    assert results["ON"].startswith(long_prompt) and results["ON"] != long_prompt
    assert results["AUTO"] == long_prompt


async def test_style_auto_is_resolved_and_repeated_style_codes_are_accepted(ideogram, http):
    status, body, _ = await post(
        http, ideogram, GENERATE, form(prompt="poster", style_type="AUTO", seed="5")
    )
    assert status == 200, body
    assert body["data"][0]["style_type"] in {"GENERAL", "REALISTIC", "DESIGN", "FICTION"}
    status, body, _ = await post(
        http, ideogram, GENERATE, form(prompt="poster", style_codes=["0A1B2C3D", "ffeeddcc"])
    )
    assert status == 200, body


async def test_generate_transparent_has_a_transparent_background(ideogram, http, schemas):
    status, body, _ = await post(
        http, ideogram, TRANSPARENT, form(prompt="a sticker of a cat", aspect_ratio="1x1")
    )
    assert status == 200, body
    check_schema(schemas, "ImageGenerationResponseV3", body)
    (item,) = body["data"]
    assert item["resolution"] == "1024x1024"
    assert "upscaled_resolution" not in item
    image, _ = await fetch_png(http, item["url"])
    assert image.mode == "RGBA" and image.size == (1024, 1024)
    alpha = image.getchannel("A")
    assert alpha.getpixel((2, 2)) == 0  # corner: background
    assert alpha.getpixel((512, 300)) == 255  # middle: the subject


async def test_generate_transparent_upscale_factor_reports_both_sizes(ideogram, http):
    status, body, _ = await post(
        http, ideogram, TRANSPARENT, form(prompt="icon", aspect_ratio="3x1", upscale_factor="X2")
    )
    assert status == 200, body
    (item,) = body["data"]
    assert item["resolution"] == "1536x512"  # the selected resolution, as the spec says
    assert item["upscaled_resolution"] == "3072x1024"
    image, _ = await fetch_png(http, item["url"])
    assert image.size == (3072, 1024)


async def test_remix_blends_the_input_by_image_weight(ideogram, http, schemas):
    """Weight 100 stays close to the (cropped) input, weight 1 moves far from it."""
    red = solid((255, 0, 0), (300, 200))
    distances = {}
    for weight in (100, 1):
        status, body, _ = await post(
            http,
            ideogram,
            REMIX,
            form(("image", red), prompt="make it blue", image_weight=str(weight), seed="9"),
        )
        assert status == 200, body
        check_schema(schemas, "ImageGenerationResponseV3", body)
        image, _ = await fetch_png(http, body["data"][0]["url"])
        assert image.size == (1024, 1024)  # default aspect ratio 1x1
        top = image.crop((0, 0, 1024, 600))  # above the prompt banner
        distances[weight] = mean_difference(top, Image.new("RGB", top.size, (255, 0, 0)))
    assert distances[100] < 3
    assert distances[1] > 30


async def test_remix_crops_to_the_requested_aspect_ratio(ideogram, http):
    status, body, _ = await post(
        http,
        ideogram,
        REMIX,
        form(("image", solid((0, 0, 255))), prompt="wide", aspect_ratio="2x1"),
    )
    assert status == 200, body
    assert body["data"][0]["resolution"] == "1408x704"
    image, _ = await fetch_png(http, body["data"][0]["url"])
    assert image.size == (1408, 704)


async def test_reframe_centres_the_input_on_a_larger_canvas(ideogram, http, schemas):
    status, body, _ = await post(
        http,
        ideogram,
        REFRAME,
        form(("image", solid((0, 0, 255), (100, 100))), resolution="1536x640", seed="4"),
    )
    assert status == 200, body
    check_schema(schemas, "ImageGenerationResponseV3", body)
    (item,) = body["data"]
    assert item["resolution"] == "1536x640"
    assert item["prompt"]  # the API reports a caption of the image
    image, _ = await fetch_png(http, item["url"])
    assert image.size == (1536, 640)
    assert image.getpixel((768, 320)) == (0, 0, 255)  # the input, centred
    assert image.getpixel((20, 20)) != (0, 0, 255)  # generated surroundings


async def test_replace_background_keeps_the_centre_and_replaces_the_edges(ideogram, http, schemas):
    green = solid((0, 200, 0), (800, 600))
    status, body, _ = await post(
        http, ideogram, REPLACE_BG, form(("image", green), prompt="on the moon", seed="2")
    )
    assert status == 200, body
    check_schema(schemas, "ImageGenerationResponseV3", body)
    (item,) = body["data"]
    assert item["resolution"] in {r.value for r in ResolutionV3}
    image, _ = await fetch_png(http, item["url"])
    assert image.size == ResolutionV3(item["resolution"]).size
    w, h = image.size
    centre = image.getpixel((w // 2, h // 3))
    assert isinstance(centre, tuple)
    assert max(abs(a - b) for a, b in zip(centre, (0, 200, 0), strict=True)) <= 2
    assert image.getpixel((3, 3)) != (0, 200, 0)


async def test_remove_background_makes_the_border_colour_transparent(ideogram, http, schemas):
    status, body, _ = await post(http, ideogram, REMOVE_BG, form(("image", square_on_white())))
    assert status == 200, body
    check_schema(schemas, "RemoveBackgroundResponse", body)
    (item,) = body["data"]
    assert set(item) == {"url", "is_image_safe"} and item["is_image_safe"] is True
    image, _ = await fetch_png(http, item["url"])
    assert image.mode == "RGBA" and image.size == (200, 160)
    alpha = image.getchannel("A")
    assert alpha.getpixel((5, 5)) == 0  # white background removed
    assert alpha.getpixel((100, 80)) == 255  # the black subject kept


async def test_upscale_doubles_the_size(ideogram, http, schemas):
    status, body, _ = await post(
        http,
        ideogram,
        UPSCALE,
        form(("image_file", solid((10, 120, 200), (300, 200))), image_request={"seed": 7}),
    )
    assert status == 200, body
    check_schema(schemas, "GenerateImageResponse", body)
    (item,) = body["data"]
    assert item["upscaled_resolution"] == "600x400" and item["seed"] == 7
    image, _ = await fetch_png(http, item["url"])
    assert image.size == (600, 400)


async def test_upscale_caps_the_longest_side(ideogram, http):
    status, body, _ = await post(
        http,
        ideogram,
        UPSCALE,
        form(("image_file", solid((0, 0, 0), (3000, 100))), image_request={"prompt": "a line"}),
    )
    assert status == 200, body
    (item,) = body["data"]
    assert item["prompt"] == "a line"
    image, _ = await fetch_png(http, item["url"])
    assert image.size == (4096, 137)


@pytest.mark.parametrize(
    ("colour", "word"),
    [
        ((255, 0, 0), "red"),
        ((0, 0, 255), "blue"),
        ((0, 255, 0), "green"),
        ((255, 255, 0), "yellow"),
    ],
)
async def test_describe_names_the_dominant_colour(ideogram, http, schemas, colour, word):
    status, body, _ = await post(
        http, ideogram, DESCRIBE, form(("image_file", solid(colour, (640, 480))))
    )
    assert status == 200, body
    check_schema(schemas, "DescribeResponse", body)
    texts = [d["text"] for d in body["descriptions"]]
    assert len(texts) >= 1
    for text in texts:
        assert re.search(rf"\b{word}\b", text), text
        assert 2 <= text.count(". ") + 1 <= 4  # a few sentences, usable as a prompt
    assert "landscape" in texts[0].lower() and "640x480" in texts[0]


async def test_describe_reads_darkness_orientation_and_transparency(ideogram, http):
    dark = Image.new("RGB", (300, 600), (20, 20, 20))
    ImageDraw.Draw(dark).rectangle((0, 0, 150, 600), fill=(60, 0, 0))
    buf = io.BytesIO()
    dark.save(buf, format="JPEG")
    status, body, _ = await post(
        http,
        ideogram,
        DESCRIBE,
        form(("image_file", buf.getvalue()), describe_model_version="V_2"),
    )
    assert status == 200, body
    text = body["descriptions"][0]["text"].lower()
    assert "dark" in text and "portrait" in text and "transparent" not in text

    clear = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(clear).ellipse((50, 50, 150, 150), fill=(255, 255, 255, 255))
    buf = io.BytesIO()
    clear.save(buf, format="PNG")
    status, body, _ = await post(http, ideogram, DESCRIBE, form(("image_file", buf.getvalue())))
    assert status == 200, body
    text = body["descriptions"][0]["text"].lower()
    assert "transparent background" in text and "white" in text and "square" in text


# ---------------------------------------------------------------------------------------------
# Determinism


async def _generate_bytes(
    http: aiohttp.ClientSession, engine: OfflineIdeogram, **fields: str
) -> list[bytes]:
    status, body, _ = await post(http, engine, GENERATE, form(**fields))
    assert status == 200, body
    return [(await fetch_png(http, item["url"]))[1] for item in body["data"]]


async def test_same_prompt_and_seed_give_identical_bytes(ideogram, http):
    fields = {"prompt": "a lighthouse", "seed": "123", "aspect_ratio": "4x3"}
    first = await _generate_bytes(http, ideogram, **fields)
    second = await _generate_bytes(http, ideogram, **fields)
    assert first == second
    other_seed = await _generate_bytes(http, ideogram, **{**fields, "seed": "124"})
    assert other_seed != first
    other_prompt = await _generate_bytes(http, ideogram, **{**fields, "prompt": "a windmill"})
    assert other_prompt != first


async def test_each_image_of_a_batch_is_reproducible_from_its_seed(ideogram, http):
    """Image k of a batch has seed base+k; asking for that seed alone gives the same bytes."""
    status, body, _ = await post(
        http, ideogram, GENERATE, form(prompt="boats", num_images="3", magic_prompt="OFF")
    )
    assert status == 200, body
    batch = [(await fetch_png(http, item["url"]))[1] for item in body["data"]]
    assert len(set(batch)) == 3
    alone = await _generate_bytes(
        http, ideogram, prompt="boats", seed=str(body["data"][2]["seed"]), magic_prompt="OFF"
    )
    assert alone == [batch[2]]


async def test_engines_with_the_same_salt_agree_and_other_salts_differ(ideogram, http):
    fields = {"prompt": "salted", "seed": "77"}
    reference = await _generate_bytes(http, ideogram, **fields)
    async with OfflineIdeogram() as twin, OfflineIdeogram(seed_salt="other") as salted:
        assert await _generate_bytes(http, twin, **fields) == reference
        assert await _generate_bytes(http, salted, **fields) != reference


# ---------------------------------------------------------------------------------------------
# Validation: 400 naming the field


PNG = solid((1, 2, 3))
GIF = solid((1, 2, 3), fmt="GIF")
TRUNCATED_PNG = PNG[: len(PNG) // 2]


def _invalid_cases() -> list[tuple[str, dict[str, Any], list[tuple[str, bytes]], str]]:
    """(path, fields, files, what the error must start with: the field and the reason)."""
    return [
        (GENERATE, {}, [], "prompt:"),
        (GENERATE, {"prompt": "   "}, [], "prompt:"),
        (GENERATE, {"prompt": "x", "aspect_ratio": "16:9"}, [], "aspect_ratio:"),
        (GENERATE, {"prompt": "x", "resolution": "1000x1000"}, [], "resolution:"),
        (GENERATE, {"prompt": "x", "resolution": "1024x1024", "aspect_ratio": "1x1"}, [],
         "aspect_ratio and resolution"),
        (GENERATE, {"prompt": "x", "rendering_speed": "FAST"}, [], "rendering_speed:"),
        (GENERATE, {"prompt": "x", "magic_prompt": "MAYBE"}, [], "magic_prompt:"),
        (GENERATE, {"prompt": "x", "style_type": "ANIME"}, [], "style_type:"),
        (GENERATE, {"prompt": "x", "style_preset": "CUBIST"}, [], "style_preset:"),
        (GENERATE, {"prompt": "x", "num_images": "0"}, [], "num_images:"),
        (GENERATE, {"prompt": "x", "num_images": "9"}, [], "num_images:"),
        (GENERATE, {"prompt": "x", "seed": "-1"}, [], "seed:"),
        (GENERATE, {"prompt": "x", "seed": "2147483648"}, [], "seed:"),
        (GENERATE, {"prompt": "x", "seed": "twelve"}, [], "seed:"),
        (GENERATE, {"prompt": "x", "color_palette": {"name": "NEON"}}, [], "color_palette.name:"),
        (GENERATE, {"prompt": "x", "color_palette": "not json"}, [], "color_palette:"),
        (GENERATE, {"prompt": "x", "color_palette": {"members": [{"color_hex": "red"}]}}, [],
         "color_palette.members[0].color_hex:"),
        (GENERATE,
         {"prompt": "x", "color_palette": {"members": [{"color_hex": "#FF0000",
                                                        "color_weight": 2}]}},
         [], "color_palette.members[0].color_weight:"),
        (GENERATE, {"prompt": "x", "color_palette": {"name": "EMBER", "members": []}}, [],
         "color_palette:"),
        (GENERATE, {"prompt": "x", "style_codes": "0A1B2C3D", "style_type": "GENERAL"}, [],
         "style_codes:"),
        (GENERATE, {"prompt": "x", "style_codes": "nothex!!"}, [], "style_codes:"),
        (TRANSPARENT, {"prompt": "x", "rendering_speed": "FLASH"}, [],
         "rendering_speed: FLASH is not supported"),
        (TRANSPARENT, {"prompt": "x", "upscale_factor": "X3"}, [], "upscale_factor:"),
        (REMIX, {"prompt": "x"}, [], "image:"),
        (REMIX, {"prompt": "x"}, [("image", b"just some text, not a picture")],
         "image: is not a JPEG"),
        (REMIX, {"prompt": "x"}, [("image", GIF)], "image: is not a JPEG"),
        (REMIX, {"prompt": "x"}, [("image", TRUNCATED_PNG)],
         "image: PNG data could not be decoded"),
        (REMIX, {"prompt": "x"}, [("image", PNG + b"\0" * 10_000_000)],
         "image: larger than the maximum size of 10 MB"),
        (REMIX, {"prompt": "x", "image_weight": "0"}, [("image", PNG)], "image_weight:"),
        (REMIX, {"prompt": "x", "image_weight": "101"}, [("image", PNG)], "image_weight:"),
        (REMIX, {}, [("image", PNG)], "prompt:"),
        (REFRAME, {}, [("image", PNG)], "resolution:"),
        (REFRAME, {"resolution": "16x9"}, [("image", PNG)], "resolution:"),
        (REPLACE_BG, {"prompt": "x"}, [], "image:"),
        (REMOVE_BG, {}, [], "image:"),
        (UPSCALE, {}, [("image_file", PNG)], "image_request:"),
        (UPSCALE, {"image_request": "{oops"}, [("image_file", PNG)], "image_request:"),
        (UPSCALE, {"image_request": {"num_images": 9}}, [("image_file", PNG)],
         "image_request.num_images:"),
        (UPSCALE, {"image_request": {"resemblance": 0}}, [("image_file", PNG)],
         "image_request.resemblance:"),
        (UPSCALE, {"image_request": {}}, [], "image_file:"),
        (DESCRIBE, {}, [], "image_file:"),
        (DESCRIBE, {"describe_model_version": "V_9"}, [("image_file", PNG)],
         "describe_model_version:"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "fields", "files", "needle"),
    _invalid_cases(),
    ids=[f"{case[0].rsplit('/', 1)[1]}-{i}" for i, case in enumerate(_invalid_cases())],
)
async def test_invalid_requests_are_refused_naming_the_field(
    ideogram, http, path, fields, files, needle
):
    status, body, _ = await post(http, ideogram, path, form(*files, **fields))
    assert status == 400, body
    assert body["error"].startswith(needle), body["error"]
    assert ideogram.requests[-1].status == 400


async def test_enum_errors_list_the_valid_values(ideogram, http):
    status, body, _ = await post(http, ideogram, GENERATE, form(prompt="x", aspect_ratio="16:9"))
    assert status == 400
    assert "16x9" in body["error"] and "1x1" in body["error"]


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        # aiohttp's FormData without files sends urlencoded unless told otherwise.
        (GENERATE, {"data": aiohttp.FormData({"prompt": "x"})}),
        (REMIX, {"json": {"prompt": "x"}}),
    ],
)
async def test_wrong_content_types_are_refused(ideogram, http, path, kwargs):
    status, body, _ = await post(http, ideogram, path, **kwargs)
    assert status == 400
    assert "multipart/form-data" in body["error"]


async def test_webp_and_jpeg_inputs_are_accepted(ideogram, http):
    for fmt in ("WEBP", "JPEG"):
        image = solid((200, 100, 0), (120, 90), fmt=fmt)
        status, body, _ = await post(http, ideogram, DESCRIBE, form(("image_file", image)))
        assert status == 200, (fmt, body)
        assert "orange" in body["descriptions"][0]["text"]


# ---------------------------------------------------------------------------------------------
# Authentication


async def test_a_configured_key_is_required_as_api_key_or_bearer(http):
    async with OfflineIdeogram(api_key="k-123") as engine:
        for headers in ({}, {"Api-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            status, body, _ = await post(http, engine, DESCRIBE, form(), headers=headers)
            assert status == 401 and "error" in body
            assert "k-123" not in body["error"]
        for headers in ({"Api-Key": "k-123"}, {"Authorization": "Bearer k-123"}):
            status, body, _ = await post(
                http, engine, DESCRIBE, form(("image_file", PNG)), headers=headers
            )
            assert status == 200, body
        assert [r.status for r in engine.requests] == [401, 401, 401, 200, 200]


# ---------------------------------------------------------------------------------------------
# Faults


async def test_rate_limit_next_answers_429_with_retry_after(ideogram, http):
    ideogram.faults.rate_limit_next = 2
    ideogram.faults.retry_after_s = 1.5
    for _ in range(2):
        status, body, response = await post(http, ideogram, GENERATE, form(prompt="x"))
        assert status == 429 and "error" in body
        assert response.headers["Retry-After"] == "1.5"
    ideogram.faults.rate_limit_next = 1
    ideogram.faults.retry_after_s = 2.0
    status, _, response = await post(http, ideogram, GENERATE, form(prompt="x"))
    assert status == 429 and response.headers["Retry-After"] == "2"
    status, body, _ = await post(http, ideogram, GENERATE, form(prompt="x"))
    assert status == 200, body
    assert [r.status for r in ideogram.requests] == [429, 429, 429, 200]


async def test_server_error_next_answers_500_once(ideogram, http):
    ideogram.faults.server_error_next = 1
    status, body, _ = await post(http, ideogram, DESCRIBE, form(("image_file", PNG)))
    assert status == 500 and "error" in body
    status, _, _ = await post(http, ideogram, DESCRIBE, form(("image_file", PNG)))
    assert status == 200


async def test_safety_rejections_answer_422(ideogram, http):
    ideogram.faults.safety_reject_next = 1
    # An invalid request is refused first (400) and does not use up the rejection.
    status, _, _ = await post(http, ideogram, GENERATE, form())
    assert status == 400
    status, body, _ = await post(http, ideogram, GENERATE, form(prompt="a kitten"))
    assert (status, body) == (422, {"error": "Prompt failed the safety check."})
    status, _, _ = await post(http, ideogram, GENERATE, form(prompt="a kitten"))
    assert status == 200
    # The trigger word always fails, on any endpoint with a prompt; look-alikes do not.
    status, body, _ = await post(
        http, ideogram, REMIX, form(("image", PNG), prompt="an Unsafe-Test picture")
    )
    assert status == 422 and body["error"] == "Prompt failed the safety check."
    status, _, _ = await post(http, ideogram, GENERATE, form(prompt="unsafe-testing is fine"))
    assert status == 200


async def test_withheld_images_have_no_url(ideogram, http, schemas):
    ideogram.faults.withhold_indices = {1}
    status, body, _ = await post(
        http, ideogram, GENERATE, form(prompt="three cats", num_images="3", seed="10")
    )
    assert status == 200, body
    check_schema(schemas, "ImageGenerationResponseV3", body)
    safe = [(d["is_image_safe"], d["url"] is not None) for d in body["data"]]
    assert safe == [(True, True), (False, False), (True, True)]
    assert body["data"][1]["url"] is None and body["data"][1]["seed"] == 11
    await fetch_png(http, body["data"][2]["url"])

    ideogram.faults.withhold_indices = {0}
    status, body, _ = await post(http, ideogram, REMOVE_BG, form(("image", PNG)))
    assert status == 200
    assert body["data"] == [{"url": None, "is_image_safe": False}]


async def test_latency_delays_the_answer(ideogram, http):
    ideogram.faults.latency_s = 0.3
    ideogram.faults.latency_jitter_s = 0.1
    started = time.perf_counter()
    status, _, _ = await post(http, ideogram, GENERATE, form())
    elapsed = time.perf_counter() - started
    assert status == 400  # latency applies to every answer
    assert elapsed >= 0.3  # at least the injected latency (no upper bound: machines vary)


async def test_a_hanging_request_is_cut_by_the_client_timeout(ideogram, http):
    ideogram.faults.hang_next = 1
    with pytest.raises(asyncio.TimeoutError):
        await post(
            http,
            ideogram,
            GENERATE,
            form(prompt="x", num_images="4"),
            timeout=aiohttp.ClientTimeout(total=0.3),
        )
    # The handler is cancelled when the client goes away: nothing stays in flight.
    await eventually(lambda: ideogram.in_flight_images == 0, 5)
    assert ideogram.peak_in_flight_images == 4
    assert ideogram.requests[0].status == 499
    status, _, _ = await post(http, ideogram, GENERATE, form(prompt="x"))
    assert status == 200


async def test_close_ends_hanging_requests(http):
    engine = OfflineIdeogram()
    await engine.start()
    engine.faults.hang_next = 1
    request = asyncio.create_task(post(http, engine, GENERATE, form(prompt="x")))
    await eventually(lambda: engine.requests, 5)  # until the request has arrived
    # Closing does not wait for the hanging handler (the bound only catches a hang).
    await asyncio.wait_for(engine.close(), 10)
    try:
        status, _, _ = await asyncio.wait_for(request, 2)
    except aiohttp.ClientError:
        pass  # the connection may close before the 503 is read; either way it ended
    else:
        assert status == 503


async def test_fault_ratios_are_deterministic_for_a_seed(ideogram, http):
    async def statuses() -> list[int]:
        # Invalid bodies: a request not failed by the plan answers 400, quickly.
        return [(await post(http, ideogram, GENERATE, form()))[0] for _ in range(16)]

    ideogram.faults = FaultPlan(rate_limit_ratio=0.4, server_error_ratio=0.2, seed=7)
    first = await statuses()
    ideogram.faults = FaultPlan(rate_limit_ratio=0.4, server_error_ratio=0.2, seed=7)
    second = await statuses()
    ideogram.faults.seed = 7  # reassigning the seed restarts the sequence too
    third = await statuses()
    assert first == second == third
    assert {429, 500, 400} <= set(first)
    ideogram.faults.seed = 8
    assert await statuses() != first


# ---------------------------------------------------------------------------------------------
# Image URLs


async def test_image_urls_are_signed_and_expire(http):
    async with OfflineIdeogram(url_ttl_s=0.4) as engine:
        status, body, _ = await post(http, engine, GENERATE, form(prompt="brief", seed="1"))
        assert status == 200
        url = body["data"][0]["url"]
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert set(query) == {"exp", "sig"} and parts.path.endswith(".png")
        await fetch_png(http, url)

        forged = {"exp": str(int(query["exp"][0]) + 3600), "sig": query["sig"][0]}
        async with http.get(urlunsplit(parts._replace(query=urlencode(forged)))) as response:
            assert response.status == 403
        async with http.get(urlunsplit(parts._replace(query=""))) as response:
            assert response.status == 403

        async def expired() -> bool:
            async with http.get(url) as response:
                return response.status == 403 and "expired" in (await response.json())["error"]

        await eventually(expired, 10)
        # Downloads are not API requests.
        assert [r.path for r in engine.requests] == [GENERATE]


# ---------------------------------------------------------------------------------------------
# Bookkeeping


async def test_peak_in_flight_counts_images_of_concurrent_requests(ideogram, http):
    """Ideogram counts a 3-image request as 3: overlapping 2 + 3 + 1 peak at 6."""
    ideogram.faults.latency_s = 0.3
    results = await asyncio.gather(
        post(http, ideogram, GENERATE, form(prompt="a", num_images="2")),
        post(http, ideogram, GENERATE, form(prompt="b", num_images="3")),
        post(http, ideogram, DESCRIBE, form(("image_file", PNG))),
    )
    assert [r[0] for r in results] == [200, 200, 200]
    assert ideogram.peak_in_flight_images == 6
    assert ideogram.in_flight_images == 0
    # Sequential requests do not add up.
    ideogram.faults.latency_s = 0
    await post(http, ideogram, GENERATE, form(prompt="c", num_images="4"))
    await post(http, ideogram, GENERATE, form(prompt="d", num_images="4"))
    assert ideogram.peak_in_flight_images == 6


async def test_requests_are_recorded_raw(ideogram, http):
    await post(http, ideogram, GENERATE, form(prompt="recorded prompt"), headers={"X-Trace": "t1"})
    await post(http, ideogram, "/v1/no-such-endpoint", form(prompt="x"))
    first, second = ideogram.requests
    assert (first.method, first.path, first.status) == ("POST", GENERATE, 200)
    assert first.headers["x-trace"] == "t1"
    assert all(key == key.lower() for key in first.headers)
    assert first.content_type.startswith("multipart/form-data; boundary=")
    assert b'name="prompt"' in first.body and b"recorded prompt" in first.body
    assert (second.path, second.status) == ("/v1/no-such-endpoint", 404)


async def test_serve_forever_logs_its_address_and_serves(http, caplog):
    caplog.set_level(logging.INFO, logger="bot.offline.server")
    task = asyncio.create_task(serve_forever("127.0.0.1", 0))
    try:
        pattern = r"Offline Ideogram engine listening on (http://127\.0\.0\.1:\d+)"
        match = await eventually(lambda: re.search(pattern, caplog.text), 5)
        assert isinstance(match, re.Match), caplog.text
        async with http.post(match.group(1) + DESCRIBE, data=form(("image_file", PNG))) as response:
            assert response.status == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
