"""Input images from attachments (fake CDN), the three context menus, and fitting results to the
upload limit an interaction reports."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.conftest import DEMO_PHOTO
from tests.discord.conftest import ALICE, BOB, DiscordBot
from tests.discord.fake_discord import FakeDiscord

KIB = 1024


def _photo() -> bytes:
    return DEMO_PHOTO.read_bytes()


async def _refusal(bot: DiscordBot, payload: dict[str, Any]) -> str:
    """Send an interaction that must be refused; return the private answer's text once it is
    known that nothing reached the API."""
    reply = await bot.ephemeral_reply(await bot.send(payload))
    await bot.settle()
    assert bot.api_calls == 0
    return str(reply["content"])


async def test_remix_reads_the_attachment_from_the_cdn(bot: DiscordBot) -> None:
    """/remix image prompt: the attachment (from data.resolved.attachments) is fetched from the
    CDN and sent to the API as the image; flags in the prompt apply."""
    fake = bot.fake
    photo = _photo()
    attachment = fake.add_file("coffee.jpg", photo, "image/jpeg")
    record = await bot.send(
        fake.slash(
            "remix",
            user=ALICE,
            attachments={"image": attachment},
            prompt="as a watercolor --weight 30",
        )
    )
    message = await bot.result_of(record)
    assert fake.cdn_hits == [attachment["id"]]
    request = bot.offline.requests[0]
    assert request.path == "/v1/ideogram-v3/remix"
    assert photo in request.body  # the exact attachment bytes (a JPEG under 10 MB)
    assert b'name="image_weight"\r\n\r\n30' in request.body
    assert "**as a watercolor**" in message["content"]
    assert fake.custom_ids(message)[0].startswith("ig:upscale:")


async def test_describe_offers_imagine_buttons(bot: DiscordBot) -> None:
    """/describe lists the descriptions; Imagine 1 runs /imagine with the first one."""
    fake = bot.fake
    attachment = fake.add_file("coffee.jpg", _photo(), "image/jpeg")
    record = await bot.send(fake.slash("describe", user=ALICE, attachments={"image": attachment}))
    message = await bot.result_of(record)
    job_id = fake.custom_ids(message)[0].split(":")[2]
    result = await bot.app.engine.result(job_id)
    assert result.descriptions
    assert "**1.**" in message["content"]
    labels = [c["label"] for row in message["components"] for c in row["components"]]
    assert labels == [f"Imagine {i}" for i in range(1, len(result.descriptions) + 1)]

    click = await bot.send(fake.click(message, fake.custom_ids(message)[0], user=BOB))
    imagined = await bot.result_of(click)
    new_job = fake.custom_ids(imagined)[0].split(":")[2]
    assert (await bot.app.engine.result(new_job)).caption.prompt == result.descriptions[0]


async def test_a_non_image_attachment_is_refused_without_any_call(bot: DiscordBot) -> None:
    """A text file is refused privately by its content type: not downloaded, no API call."""
    fake = bot.fake
    attachment = fake.add_file("notes.txt", b"not an image at all", "text/plain")
    refusal = await _refusal(
        bot, fake.slash("describe", user=ALICE, attachments={"image": attachment})
    )
    assert refusal == "`notes.txt` is not an image. Please attach a PNG, JPEG or WebP file."
    assert fake.cdn_hits == []


async def test_a_file_pretending_to_be_an_image_is_refused_by_its_bytes(bot: DiscordBot) -> None:
    """A file claiming image/png whose bytes are not an image: read, sniffed, refused."""
    fake = bot.fake
    attachment = fake.add_file("fake.png", b"%PDF-1.7 definitely a pdf", "image/png")
    refusal = await _refusal(
        bot, fake.slash("remix", user=ALICE, attachments={"image": attachment}, prompt="anything")
    )
    assert "is not an image" in refusal


async def test_attachments_only_from_discord_hosts(bot: DiscordBot) -> None:
    """An attachment URL on another host is never fetched."""
    fake = bot.fake
    attachment = fake.add_file("coffee.jpg", _photo(), "image/jpeg")
    attachment["url"] = "http://198.51.100.7/coffee.jpg"
    refusal = await _refusal(
        bot, fake.slash("describe", user=ALICE, attachments={"image": attachment})
    )
    assert "not hosted by Discord" in refusal


async def test_describe_and_upscale_context_menus(bot: DiscordBot) -> None:
    """ "Describe this image" and "Upscale this image" on a user's message with a photo."""
    fake = bot.fake
    photo = fake.add_file("coffee.jpg", _photo(), "image/jpeg")
    target = fake.user_message(author=BOB, attachments=[photo], content="look at this")

    described = await bot.result_of(
        await bot.send(fake.message_command("Describe this image", target, user=ALICE))
    )
    assert fake.custom_ids(described)[0].startswith("ig:imagine:")
    upscaled = await bot.result_of(
        await bot.send(fake.message_command("Upscale this image", target, user=ALICE))
    )
    labels = [c["label"] for row in upscaled["components"] for c in row["components"]]
    assert labels == ["Vary (Subtle)", "Vary (Strong)", "Zoom Out", "Remove BG"]
    assert [r.path for r in bot.offline.requests] == ["/describe", "/upscale"]


async def test_remix_context_menu_asks_for_the_prompt_in_a_modal(bot: DiscordBot) -> None:
    """ "Remix this image" on the bot's own result opens a modal; its submission remixes it."""
    fake = bot.fake
    record = await bot.send(fake.slash("imagine", user=ALICE, prompt="a teapot"))
    result = await bot.result_of(record)

    menu = await bot.send(fake.message_command("Remix this image", result, user=BOB))
    await fake.wait_for(lambda: menu.callback)
    assert menu.callback["type"] == 9  # MODAL
    modal = menu.callback["data"]
    assert modal["title"] == "Remix this image"
    prompt_id = modal["components"][0]["component"]["custom_id"]

    submit = await bot.send(
        fake.modal_submit(modal, {prompt_id: "the same teapot in gold --weight 60"}, user=BOB)
    )
    remixed = await bot.result_of(submit)
    assert "**the same teapot in gold**" in remixed["content"]
    assert f"<@{BOB.id}>" in remixed["content"]
    remix_request = bot.offline.requests[-1]
    assert remix_request.path == "/v1/ideogram-v3/remix"
    assert b'name="image_weight"\r\n\r\n60' in remix_request.body
    posted = fake.calls_to("PATCH", f"/{record.token}/messages/@original")[-1].files[0].data
    assert posted in remix_request.body  # the image of the result message


async def test_context_menu_on_a_message_without_an_image(bot: DiscordBot) -> None:
    """A context menu on a message with no image is refused at once, privately."""
    fake = bot.fake
    text_file = fake.add_file("notes.txt", b"hello", "text/plain")
    target = fake.user_message(author=BOB, attachments=[text_file])
    record = await bot.send(fake.message_command("Describe this image", target, user=ALICE))
    reply = await bot.ephemeral_reply(record)
    assert reply["content"] == "That message has no image attached; pick a message with an image."
    assert record.callback["type"] == 4
    assert bot.api_calls == 0


async def test_a_result_too_large_for_the_limit_is_delivered_downscaled(
    fake_discord: FakeDiscord, discord_settings
) -> None:
    """The interaction reports a 16 KiB upload limit, which no re-encoding of a 1024x1024 image
    meets: the images are downscaled to fit and still delivered, not refused."""
    fake_discord.attachment_size_limit = 16 * KIB
    running = await DiscordBot(fake_discord, discord_settings).start()
    try:
        record = await running.send(
            fake_discord.slash("imagine", user=ALICE, prompt="a city --n 2")
        )
        message = await running.result_of(record)
        job_id = fake_discord.custom_ids(message)[0].split(":")[2]
        stored = (await running.app.engine.result(job_id)).images
        assert all(len(img.data or b"") > 16 * KIB for img in stored)
        uploaded = fake_discord.calls_to("PATCH", "/messages/@original")[-1].files
        assert len(uploaded) == 2
        for file, original in zip(uploaded, stored, strict=True):
            assert len(file.data) <= 16 * KIB
            with Image.open(io.BytesIO(file.data)) as image:
                assert image.width < original.width  # downscaled, not cropped:
                assert abs(image.width / image.height - original.width / original.height) < 0.01
        assert all(a["size"] <= 16 * KIB for a in message["attachments"])
        assert not [c for c in fake_discord.calls if c.status >= 400]
    finally:
        await running.stop()
