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
from tests.conftest import DEMO_PHOTO, make_client, png_bytes

#: A copy of the contract of record, so the repository is self-contained.
LOCAL_SPEC = Path(__file__).resolve().parent / "ideogram-openapi.yaml"
#: The API spec of record, when a checkout of it is found beside the repository.
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "ideogram-openapi.yaml"


def _text_part(value: bytes, **parameters: str) -> object:
    """A multipart text part. RFC 7578 sends the spec's integers and booleans as text, and
    openapi-core does not cast form parts, so canonical integers are read back as numbers and
    ``true`` / ``false`` as booleans."""
    text = value.decode(parameters.get("charset", "utf-8"))
    if text in ("true", "false"):
        return text == "true"
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


def _mask_png(size: tuple[int, int]) -> bytes:
    """A white mask of ``size`` with a black rectangle in its middle (the part to redraw)."""
    import io

    from PIL import Image, ImageDraw

    mask = Image.new("L", size, 255)
    w, h = size
    ImageDraw.Draw(mask).rectangle((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=0)
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


async def test_edit_inpaint_layerize_references_and_legacy_send_spec_valid_requests(
    session, offline
):
    """Every request shape added for the rest of Ideogram 3.0 validates against the spec:
    /v1/edit (files, URLs, boolean), inpaint (mask, codes, references), layerize-text, style
    and character references with masks on the v3 endpoints, custom_model_uri, and the legacy
    endpoints (JSON /generate, image_request part of /remix, multipart /edit and /reframe)."""
    from bot.ideogram.client import References
    from bot.ideogram.models_edit import EditRequestV1, InpaintRequestV3, LayerizeTextRequestV3
    from bot.ideogram.models_legacy import (
        AspectRatio,
        GenerateImageRequest,
        ImageRequest,
        InitialImageRequest,
        LegacyEditRequest,
        LegacyReframeRequest,
        ModelEnum,
        Resolution,
        StyleType,
    )

    client = make_client(session, offline)
    photo = prepare_input_image(DEMO_PHOTO.read_bytes(), "coffee.jpg")
    red = prepare_input_image(png_bytes((64, 64), "red"), "red.png")
    blue = prepare_input_image(png_bytes((64, 64), "blue"), "blue.png")
    mask = prepare_input_image(_mask_png((photo.width, photo.height)), "mask.png")
    cref_mask = prepare_input_image(_mask_png((64, 64)), "cref-mask.png")
    both = References(style=(red, blue), character=(red,), character_mask=(cref_mask,))
    style_only = References(style=(blue,))

    first = await client.edit(
        EditRequestV1(
            prompt="put the cup on a beach",
            num_images=1,
            seed=4,
            magic_prompt=MagicPromptOption.OFF,
            aspect_ratio=AspectRatioV3.R_3x2,
            transparent_background=False,
        ),
        [photo, red],
    )
    assert first[0].data is not None
    await client.edit(
        EditRequestV1(
            prompt="make it night",
            resolution=ResolutionV3.R_1024x1024,
            transparent_background=True,
        ),
        [photo],
    )
    await client.inpaint(
        InpaintRequestV3(
            prompt="a red door",
            rendering_speed=RenderingSpeed.TURBO,
            style_codes=("1a2b3c4d", "DEADBEEF"),
            color_palette=ColorPaletteWithPresetName(name="EMBER"),
            seed=2,
        ),
        photo,
        mask,
    )
    await client.inpaint(
        InpaintRequestV3(prompt="a red door", style_type=StyleTypeV3.DESIGN), photo, mask, both
    )
    await client.layerize_text(LayerizeTextRequestV3(prompt="SALE today only", seed=5), photo)
    await client.layerize_text(LayerizeTextRequestV3(), photo)
    await client.generate(GenerateRequestV3(prompt="a fox", num_images=1), both)
    await client.generate(
        GenerateRequestV3(prompt="a fox", custom_model_uri="model/abc123/version/1")
    )
    await client.remix(RemixRequestV3(prompt="watercolor"), photo, both)
    await client.reframe(ReframeRequestV3(resolution=ResolutionV3.R_1344x768), photo, style_only)
    await client.replace_background(ReplaceBackgroundRequestV3(prompt="a beach"), photo, style_only)
    await client.legacy_generate(
        GenerateImageRequest(
            image_request=ImageRequest(
                prompt="a fox",
                model=ModelEnum.V_2A_TURBO,
                aspect_ratio=AspectRatio.ASPECT_16_9,
                magic_prompt_option=MagicPromptOption.OFF,
                style_type=StyleType.ANIME,
                seed=9,
                num_images=1,
            )
        )
    )
    await client.legacy_generate(
        GenerateImageRequest(
            image_request=ImageRequest(
                prompt="a fox",
                model=ModelEnum.V_2,
                resolution=Resolution.R_1280_720,
                negative_prompt="dogs",
                color_palette=ColorPaletteWithPresetName(name="JUNGLE"),
            )
        )
    )
    await client.legacy_remix(
        InitialImageRequest(prompt="pixel art", model=ModelEnum.V_1, image_weight=30), photo
    )
    await client.legacy_edit(
        LegacyEditRequest(prompt="a red door", model=ModelEnum.V_2_TURBO, num_images=1),
        photo,
        mask,
    )
    await client.legacy_reframe(
        LegacyReframeRequest(resolution=Resolution.R_1280_720, model=ModelEnum.V_2), photo
    )

    openapi = _spec()
    paths = []
    for recorded in offline.requests:
        assert recorded.status == 200, (recorded.path, recorded.status)
        paths.append(recorded.path)
        openapi.validate_request(WireRequest(recorded))  # raises on any violation
    assert set(paths) == {
        "/v1/edit",
        "/v1/ideogram-v3/inpaint",
        "/v1/ideogram-v3/layerize-text",
        "/v1/ideogram-v3/generate",
        "/v1/ideogram-v3/remix",
        "/v1/ideogram-v3/reframe",
        "/v1/ideogram-v3/replace-background",
        "/generate",
        "/remix",
        "/edit",
        "/reframe",
    }
    legacy_json = next(r for r in offline.requests if r.path == "/generate")
    assert legacy_json.content_type == "application/json"
    assert json.loads(legacy_json.body)["image_request"]["model"] == "V_2A_TURBO"
