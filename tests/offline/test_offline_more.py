"""The offline engine's edit, inpaint, layerize, reference and legacy endpoints: validation
(400 naming the field) and their visible, deterministic effects."""

from __future__ import annotations

import io

import aiohttp
import pytest
from PIL import Image, ImageDraw, ImageStat

from bot.errors import IdeogramInvalidRequest
from bot.ideogram.client import References
from bot.ideogram.models import GenerateRequestV3, StyleTypeV3
from bot.ideogram.models_edit import EditRequestV1, InpaintRequestV3, LayerizeTextRequestV3
from bot.ideogram.models_legacy import (
    GenerateImageRequest,
    ImageRequest,
    LegacyEditRequest,
    LegacyReframeRequest,
    ModelEnum,
    Resolution,
)
from bot.images import prepare_input_image
from bot.offline.render_more import black_region, dominant_colours
from tests.conftest import make_client, png_bytes


def _picture(size: tuple[int, int] = (96, 64)) -> bytes:
    """A PNG with distinct pixels everywhere (a gradient), so any change shows."""
    w, h = size
    image = Image.new("RGB", size)
    image.putdata(
        [((x * 255) // w, (y * 255) // h, (x + y) % 256) for y in range(h) for x in range(w)]
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _mask(size: tuple[int, int], box: tuple[int, int, int, int] | None) -> bytes:
    mask = Image.new("L", size, 255)
    if box:
        ImageDraw.Draw(mask).rectangle(box, fill=0)
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


def _rgb(data: bytes | None) -> Image.Image:
    assert data is not None
    with Image.open(io.BytesIO(data)) as opened:
        return opened.convert("RGB")


async def test_inpaint_changes_only_the_black_region_pixel_by_pixel(session, offline):
    client = make_client(session, offline)
    source = prepare_input_image(_picture(), "photo.png")
    mask_bytes = _mask((96, 64), (30, 20, 70, 50))
    mask = prepare_input_image(mask_bytes, "mask.png")
    [result] = await client.inpaint(InpaintRequestV3(prompt="a red door", seed=3), source, mask)
    before, after = _rgb(source.data), _rgb(result.data)
    assert after.size == before.size
    region = black_region(Image.open(io.BytesIO(mask_bytes)))
    changed = 0
    for y in range(64):
        for x in range(96):
            if region.getpixel((x, y)) == 0:
                assert after.getpixel((x, y)) == before.getpixel((x, y)), (x, y)
            elif after.getpixel((x, y)) != before.getpixel((x, y)):
                changed += 1
    assert changed > 0.5 * 41 * 31  # most of the black region was redrawn
    again = await client.inpaint(InpaintRequestV3(prompt="a red door", seed=3), source, mask)
    assert _rgb(again[0].data).tobytes() == after.tobytes()  # deterministic


async def test_bad_masks_are_refused_naming_the_mask(session, offline):
    client = make_client(session, offline)
    source = prepare_input_image(_picture(), "photo.png")
    no_black = prepare_input_image(_mask((96, 64), None), "mask.png")
    with pytest.raises(IdeogramInvalidRequest, match="mask: has no black"):
        await client.inpaint(InpaintRequestV3(prompt="x"), source, no_black)
    wrong_size = prepare_input_image(_mask((50, 50), (1, 1, 20, 20)), "mask.png")
    with pytest.raises(IdeogramInvalidRequest, match="mask: must be the size"):
        await client.inpaint(InpaintRequestV3(prompt="x"), source, wrong_size)


async def test_edit_blends_its_inputs_and_draws_the_instruction(session, offline):
    client = make_client(session, offline)
    red = prepare_input_image(png_bytes((64, 64), "red"), "red.png")
    blue = prepare_input_image(png_bytes((64, 64), "blue"), "blue.png")
    [both] = await client.edit(
        EditRequestV1(prompt="blend", seed=1, magic_prompt="OFF"), [red, blue]
    )
    [alone] = await client.edit(EditRequestV1(prompt="blend", seed=1, magic_prompt="OFF"), [red])
    corner_both = _rgb(both.data).getpixel((both.width // 2, 5))
    corner_alone = _rgb(alone.data).getpixel((alone.width // 2, 5))
    assert corner_both[2] > corner_alone[2] + 40  # the blue input shows in the blend
    assert both.prompt == "blend"
    transparent = await client.edit(
        EditRequestV1(prompt="sticker", transparent_background=True), [red]
    )
    with Image.open(io.BytesIO(transparent[0].data or b"")) as decoded:
        assert decoded.mode == "RGBA"


async def test_edit_takes_the_engines_own_image_urls_and_refuses_others(session, offline):
    client = make_client(session, offline)
    [made] = await client.generate(GenerateRequestV3(prompt="a fox", seed=1))
    async with session.post(
        offline.base_url + "/v1/ideogram-v3/generate",
        data=aiohttp.FormData({"prompt": "a fox"}, default_to_multipart=True),
    ) as resp:
        image_url = (await resp.json())["data"][0]["url"]
    [edited] = await client.edit(EditRequestV1(prompt="make it night", image_urls=(image_url,)))
    assert edited.data is not None and made.data is not None
    with pytest.raises(IdeogramInvalidRequest, match="image_urls"):
        await client.edit(EditRequestV1(prompt="x", image_urls=("https://example.com/a.png",)))


async def test_layerize_returns_a_text_free_base_and_the_blocks_it_drew(session, offline):
    client = make_client(session, offline)
    source = prepare_input_image(_picture((200, 120)), "poster.png")
    layers = await client.layerize_text(
        LayerizeTextRequestV3(prompt="GRAND OPENING this Saturday at noon", seed=2), source
    )
    assert layers.seed == 2
    assert [b.text for b in layers.blocks] == ["GRAND OPENING this Saturday", "at noon"]
    base, original = _rgb(layers.base.data), _rgb(layers.original.data if layers.original else None)
    assert base.tobytes() == _rgb(source.data).tobytes()  # no text on the base
    assert original.tobytes() != base.tobytes()
    for block in layers.blocks:
        assert block.font_family and block.font_size and block.color
        assert block.x is not None and block.width and block.height


async def test_references_tint_the_result_toward_their_colours(session, offline):
    client = make_client(session, offline)
    red = prepare_input_image(png_bytes((64, 64), "red"), "red.png")
    request = GenerateRequestV3(prompt="a calm sea", seed=5, style_type=StyleTypeV3.GENERAL)
    [plain] = await client.generate(request)
    [tinted] = await client.generate(request, References(style=(red,)))
    r_plain = ImageStat.Stat(_rgb(plain.data)).mean[0]
    r_tinted = ImageStat.Stat(_rgb(tinted.data)).mean[0]
    assert r_tinted > r_plain
    assert dominant_colours(Image.new("RGB", (8, 8), "red"))[0] == (255, 0, 0)


async def test_reference_rules_are_checked(session, offline):
    client = make_client(session, offline)
    red = prepare_input_image(png_bytes((64, 64), "red"), "red.png")
    with pytest.raises(IdeogramInvalidRequest, match="style_codes"):
        await client.generate(
            GenerateRequestV3(prompt="x", style_codes=("1a2b3c4d",)), References(style=(red,))
        )
    with pytest.raises(IdeogramInvalidRequest, match="only 1 character"):
        await client.generate(GenerateRequestV3(prompt="x"), References(character=(red, red)))
    with pytest.raises(ValueError, match="character"):
        await client.generate(
            GenerateRequestV3(prompt="x"), References(character=(red,), character_mask=(red, red))
        )


async def test_legacy_models_mark_the_model_and_check_its_rules(session, offline):
    client = make_client(session, offline)
    plain = GenerateImageRequest(image_request=ImageRequest(prompt="a fox", seed=1))
    marked = GenerateImageRequest(
        image_request=ImageRequest(prompt="a fox", seed=1, model=ModelEnum.V_2A_TURBO)
    )
    [v2] = await client.legacy_generate(plain)
    [v2a] = await client.legacy_generate(marked)
    assert (
        _rgb(v2.data).crop((0, 0, 300, 60)).tobytes()
        != _rgb(v2a.data).crop((0, 0, 300, 60)).tobytes()
    )
    with pytest.raises(IdeogramInvalidRequest, match="negative_prompt"):
        await client.legacy_generate(
            GenerateImageRequest(
                image_request=ImageRequest(prompt="x", model=ModelEnum.V_2A, negative_prompt="y")
            )
        )
    source = prepare_input_image(_picture(), "photo.png")
    mask = prepare_input_image(_mask((96, 64), (10, 10, 40, 40)), "mask.png")
    with pytest.raises(IdeogramInvalidRequest, match="model"):
        await client.legacy_edit(LegacyEditRequest(prompt="x", model=ModelEnum.V_1), source, mask)
    [reframed] = await client.legacy_reframe(
        LegacyReframeRequest(resolution=Resolution.R_1280_720, model=ModelEnum.V_2), source
    )
    assert (reframed.width, reframed.height) == (1280, 720)
