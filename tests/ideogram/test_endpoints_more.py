"""The endpoint table's new entries: stored forms with extra image parts, and their prices."""

from __future__ import annotations

import json

from bot.commands.endpoints import (
    ENDPOINTS,
    EditJob,
    GenerateJob,
    InpaintJob,
    LegacyGenerateJob,
    StoredImage,
    StoredParts,
    dump_request,
    load_request,
)
from bot.config import PriceTable
from bot.ideogram.models import GenerateRequestV3, RenderingSpeed
from bot.ideogram.models_edit import EditRequestV1, InpaintRequestV3
from bot.ideogram.models_legacy import GenerateImageRequest, ImageRequest, ModelEnum

_SHA = "ab" * 32


def _image(name: str) -> StoredImage:
    return StoredImage(sha256=_SHA, content_type="image/png", filename=name)


def test_extra_image_parts_round_trip_and_are_left_out_when_absent() -> None:
    job = InpaintJob(
        request=InpaintRequestV3(prompt="a door"),
        parts=StoredParts(mask=_image("mask.png"), style_reference_images=(_image("s.png"),)),
    )
    stored = json.loads(json.dumps(dump_request(job)))
    assert set(stored["parts"]) == {"mask", "style_reference_images"}
    assert load_request(stored) == job
    plain = dump_request(EditJob(request=EditRequestV1(prompt="x")))
    assert plain == {"endpoint": "edit", "request": {"prompt": "x"}}


def test_new_endpoints_have_prices_legacy_by_model_and_character_surcharge() -> None:
    prices = PriceTable(_env_file=None)  # type: ignore[call-arg]
    for name in ("edit", "inpaint", "layerize", "legacy-generate", "legacy-remix"):
        assert ENDPOINTS[name].cost_usd(prices, 1, None) > 0
    assert ENDPOINTS["layerize"].per_request
    legacy = LegacyGenerateJob(
        request=GenerateImageRequest(
            image_request=ImageRequest(prompt="x", model=ModelEnum.V_2A_TURBO)
        )
    )
    assert ENDPOINTS["legacy-generate"].cost_of(prices, 2, legacy) == 2 * prices.legacy_v2a_turbo
    default = LegacyGenerateJob(
        request=GenerateImageRequest(image_request=ImageRequest(prompt="x"))
    )
    assert ENDPOINTS["legacy-generate"].cost_of(prices, 1, default) == prices.legacy_v2
    character = GenerateJob(
        request=GenerateRequestV3(prompt="x", rendering_speed=RenderingSpeed.TURBO),
        parts=StoredParts(character_reference_images=(_image("me.png"),)),
    )
    assert ENDPOINTS["generate"].cost_of(prices, 1, character) == round(
        prices.turbo + prices.character, 4
    )
    inpaint = InpaintJob(
        request=InpaintRequestV3(prompt="x", rendering_speed=RenderingSpeed.QUALITY)
    )
    assert ENDPOINTS["inpaint"].cost_of(prices, 1, inpaint) == prices.quality
