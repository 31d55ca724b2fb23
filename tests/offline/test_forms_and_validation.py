"""The offline engine's body parser and request validation, without HTTP.

Bodies are written by aiohttp's own ``FormData`` (as the bot's client writes them) and read back
by :func:`bot.offline.forms.read_multipart`; requests are checked by
:func:`bot.offline.validation.validate` against the pydantic request models.
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import pytest

from bot.ideogram.models import ResolutionV3
from bot.offline.forms import BadRequest, Form, read_body, read_multipart
from bot.offline.validation import Kind, images_hint, validate


async def multipart(
    *fields: tuple[str, str | bytes], filename: str | None = None
) -> tuple[bytes, str]:
    """Return ``(body, content_type)`` of a multipart body aiohttp writes for ``fields``."""
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields:
        if isinstance(value, bytes):
            data.add_field(name, value, filename=filename or name, content_type="image/png")
        else:
            data.add_field(name, value)
    writer = data()
    return await writer.as_bytes(), writer.content_type


async def test_read_multipart_returns_every_part_in_order() -> None:
    # Binary data that holds CRLFs, dashes and a near-boundary, across many 8 KiB chunks.
    blob = random.Random(1).randbytes(50_000) + b"\r\n--\r\n--not-the-boundary\r\n" * 500
    body, content_type = await multipart(
        ("prompt", "a red fox"), ("style_codes", "0A1B2C3D"), ("style_codes", "FFEEDDCC"),
        ("image", blob), filename="fox.png",
    )  # fmt: skip
    parts = await read_multipart(body, content_type)
    assert [(p.name, p.filename) for p in parts] == [
        ("prompt", None),
        ("style_codes", None),
        ("style_codes", None),
        ("image", "fox.png"),
    ]
    assert [p.data for p in parts[:3]] == [b"a red fox", b"0A1B2C3D", b"FFEEDDCC"]
    assert parts[3].data == blob


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"--b\r\n", "multipart/form-data", "Content-Type multipart/form-data has no boundary"),
        (b"no boundary here", "multipart/form-data; boundary=b", "malformed multipart body"),
    ],
)
async def test_read_multipart_refuses_bodies_it_cannot_split(
    body: bytes, content_type: str, needle: str
) -> None:
    with pytest.raises(BadRequest, match=needle):
        await read_multipart(body, content_type)


async def test_read_body_takes_json_only_where_allowed() -> None:
    form = await read_body("application/json", "application/json", b'{"prompt": "x"}', json_ok=True)
    assert form.raw("prompt") == "x"
    with pytest.raises(BadRequest, match="must be multipart/form-data"):
        await read_body("application/json", "application/json", b"{}", json_ok=False)
    with pytest.raises(BadRequest, match="must be a JSON object"):
        await read_body("application/json", "application/json", b"[1]", json_ok=True)


def test_multipart_text_is_read_as_the_models_types() -> None:
    form = Form(values={"prompt": "x", "seed": " 12 ", "num_images": "3", "aspect_ratio": "16x9"})
    job = validate(Kind.GENERATE, form)
    assert (job.seed, job.num_images) == (12, 3)
    assert job.resolution is ResolutionV3("1312x736")


@pytest.mark.parametrize("seed", ["5.0", "1_0", True, 5.0])
def test_integers_must_be_integers(seed: Any) -> None:
    """pydantic's lax mode would take these; the engine refuses them, naming the field."""
    with pytest.raises(BadRequest, match=r"^seed: must be an integer from 0 to 2147483647"):
        validate(Kind.GENERATE, Form(values={"prompt": "x", "seed": seed}))


@pytest.mark.parametrize("weight", ["0.5", True])
def test_palette_weights_must_be_json_numbers(weight: Any) -> None:
    palette = {"members": [{"color_hex": "#FF0000", "color_weight": weight}]}
    with pytest.raises(BadRequest, match=r"^color_palette\.members\[0\]\.color_weight: "):
        validate(Kind.GENERATE, Form(values={"prompt": "x", "color_palette": palette}))


def test_unknown_fields_are_ignored() -> None:
    palette = {"members": [{"color_hex": "#00FF00", "note": "extra"}], "extra": 1}
    job = validate(
        Kind.GENERATE, Form(values={"prompt": "x", "color_palette": palette, "mood": "calm"})
    )
    assert job.palette == ((0, 255, 0),)


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        (Kind.GENERATE, {"num_images": "4"}, 4),
        (Kind.GENERATE, {"num_images": "9"}, 1),
        (Kind.GENERATE, {"num_images": "many"}, 1),
        (Kind.UPSCALE, {"image_request": '{"num_images": 2}'}, 2),
        (Kind.UPSCALE, {"image_request": "{oops"}, 1),
    ],
)
def test_images_hint_counts_what_is_readable(
    kind: Kind, values: dict[str, Any], expected: int
) -> None:
    assert images_hint(kind, Form(values=values)) == expected
