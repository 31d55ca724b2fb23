"""Every request the client sends is valid against the API contract of record.

The offline engine records the raw wire requests (method, path, headers, body bytes); each is
validated by openapi-core against the vendored API spec, ``tests/ideogram/ideogram-openapi.yaml``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from bot.ideogram.models import (
    AspectRatioV3,
    ColorPaletteMember,
    ColorPaletteWithMembers,
    ColorPaletteWithPresetName,
    DescribeRequest,
    GenerateRequestV3,
    GenerateTransparentRequestV3,
    MagicPromptOption,
    ReframeRequestV3,
    RemixRequestV3,
    RenderingSpeed,
    ReplaceBackgroundRequestV3,
    ResolutionV3,
    StylePresetV3,
    StyleTypeV3,
    UpscaleInitialImageRequest,
)
from bot.images import prepare_input_image
from tests.conftest import DEMO_PHOTO, make_client

#: A copy of the contract of record, so the repository is self-contained.
LOCAL_SPEC = Path(__file__).resolve().parent / "ideogram-openapi.yaml"
#: The API spec of record, when a checkout of it is found beside the repository.
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "ideogram-openapi.yaml"


def _text_part(value: bytes, **parameters: str) -> object:
    """A multipart text part. RFC 7578 sends the spec's integers as their decimal text, and
    openapi-core does not cast form parts, so canonical integers are read back as numbers."""
    text = value.decode(parameters.get("charset", "utf-8"))
    return int(text) if re.fullmatch(r"-?[1-9][0-9]*|0", text) else text


def _octet_part(value: bytes, **parameters: str) -> object:
    """An octet-stream part: a ``format: binary`` file, or a part whose schema has no type
    (``color_palette`` is a ``oneOf``), which the client sends as JSON. OAS 3.1 validates
    binary strings as strings, so files are handed over as latin-1 text, byte for byte."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value.decode("latin-1")
    return decoded if isinstance(decoded, dict) else value.decode("latin-1")


def _spec() -> OpenAPI:
    config = Config(
        extra_media_type_deserializers={
            "text/plain": _text_part,
            "application/octet-stream": _octet_part,
        }
    )
    return OpenAPI.from_file_path(str(LOCAL_SPEC), config=config)


def test_the_local_copy_is_the_contract_of_record():
    """The vendored spec must not drift from the API spec of record, when a checkout of it is
    found beside the repository."""
    if SHARED_SPEC.exists():
        assert LOCAL_SPEC.read_bytes() == SHARED_SPEC.read_bytes()
    assert b"/v1/ideogram-v3/generate:" in LOCAL_SPEC.read_bytes()


class WireRequest:
    """A recorded request in the shape openapi-core's Request protocol reads."""

    def __init__(self, recorded) -> None:  # type: ignore[no-untyped-def]
        # Sent to the loopback engine, validated as if sent to the spec's server.
        self.host_url = "https://api.ideogram.ai"
        self.path = recorded.path
        self.full_url_pattern = self.host_url + recorded.path
        self.method = recorded.method.lower()
        self.body = recorded.body
        self.content_type = recorded.content_type
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(),
            header=Headers(list(recorded.headers.items())),
            cookie=ImmutableMultiDict(),
        )


async def test_every_endpoint_the_client_uses_sends_spec_valid_requests(session, offline):
    client = make_client(session, offline)
    photo = prepare_input_image(DEMO_PHOTO.read_bytes(), "coffee.jpg")
    palette = ColorPaletteWithMembers(
        members=(
            ColorPaletteMember(color_hex="#AA3300", color_weight=0.6),
            ColorPaletteMember(color_hex="#0033AA"),
        )
    )
    await client.generate(
        GenerateRequestV3(
            prompt="a fox",
            seed=3,
            aspect_ratio=AspectRatioV3.R_16x9,
            rendering_speed=RenderingSpeed.TURBO,
            magic_prompt=MagicPromptOption.OFF,
            negative_prompt="dogs",
            num_images=2,
            color_palette=palette,
            style_type=StyleTypeV3.REALISTIC,
        )
    )
    await client.generate(
        GenerateRequestV3(
            prompt="a fox",
            resolution=ResolutionV3.R_1344x768,
            color_palette=ColorPaletteWithPresetName(name="EMBER"),
            style_preset=StylePresetV3.WATERCOLOR,
        )
    )
    await client.generate_transparent(
        GenerateTransparentRequestV3(
            prompt="a sticker of a fox",
            aspect_ratio=AspectRatioV3.R_1x1,
            rendering_speed=RenderingSpeed.TURBO,
        )
    )
    await client.remix(RemixRequestV3(prompt="watercolor", image_weight=40, seed=1), photo)
    await client.reframe(ReframeRequestV3(resolution=ResolutionV3.R_1344x768, num_images=1), photo)
    await client.replace_background(ReplaceBackgroundRequestV3(prompt="a beach"), photo)
    await client.remove_background(photo)
    await client.upscale(UpscaleInitialImageRequest(prompt="crisp", resemblance=60), photo)
    await client.describe(photo, DescribeRequest())

    openapi = _spec()
    paths = []
    for recorded in offline.requests:
        paths.append(recorded.path)
        request = WireRequest(recorded)
        openapi.validate_request(request)  # raises on any violation
    assert sorted(set(paths)) == sorted(
        {
            "/v1/ideogram-v3/generate",
            "/v1/ideogram-v3/generate-transparent",
            "/v1/ideogram-v3/remix",
            "/v1/ideogram-v3/reframe",
            "/v1/ideogram-v3/replace-background",
            "/v1/remove-background",
            "/upscale",
            "/describe",
        }
    )


async def test_the_validator_catches_a_bad_request(session, offline):
    """The check can fail: a request with a bad enum value is rejected by the validator."""
    async with session.post(
        offline.base_url + "/v1/ideogram-v3/generate",
        data=__import__("aiohttp").FormData(
            {"prompt": "x", "rendering_speed": "WARP"}, default_to_multipart=True
        ),
        headers={"Api-Key": "k"},
    ) as resp:
        assert resp.status == 400
    with pytest.raises(Exception, match=r"(?i)invalid|error"):
        _spec().validate_request(WireRequest(offline.requests[-1]))
