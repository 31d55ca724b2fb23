"""Attachments from strangers: limits are checked before any download, downloads stop at the
cap whatever size the attachment claims, and images that decode to too many pixels are refused
without being decoded."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from tests.conftest import DEMO_PHOTO
from tests.discord.conftest import ADMIN, ALICE, DiscordBot

MIB = 1024 * 1024


class EndlessFile:
    """A file host on loopback that streams 64 KiB chunks until the client goes away (or
    ``give_up_bytes`` are sent), counting what it sent."""

    def __init__(self, give_up_bytes: int = 64 * MIB) -> None:
        self.give_up_bytes = give_up_bytes
        self.sent = 0
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        self.server = TestServer(app, host="127.0.0.1")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        # A PNG signature first, so the start looks like an image.
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        chunk = b"\x89PNG\r\n\x1a\n" + bytes(64 * 1024 - 8)
        try:
            while self.sent < self.give_up_bytes:
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading and closed the connection
        return response

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/{name}"))


@pytest.fixture
async def endless() -> AsyncIterator[EndlessFile]:
    host = EndlessFile()
    await host.server.start_server()
    try:
        yield host
    finally:
        await host.server.close()


async def _set_daily_quota(bot: DiscordBot, value: int) -> None:
    record = await bot.send(
        bot.fake.slash(
            "settings", user=ADMIN, subcommand="set", key="daily_quota", value=str(value)
        )
    )
    assert f"`daily_quota` is now `{value}`" in (await bot.ephemeral_reply(record))["content"]


async def test_a_user_over_quota_is_refused_before_the_attachment_is_downloaded(
    bot: DiscordBot,
) -> None:
    """Alice used her one image of the day; her /remix with a photo is refused privately and
    the attachment is never fetched from the CDN (nor decoded, nor sent)."""
    fake = bot.fake
    await _set_daily_quota(bot, 1)
    await bot.result_of(await bot.send(fake.slash("imagine", user=ALICE, prompt="a fox")))
    calls = bot.api_calls

    photo = fake.add_file("coffee.jpg", DEMO_PHOTO.read_bytes(), "image/jpeg")
    record = await bot.send(
        fake.slash("remix", user=ALICE, attachments={"image": photo}, prompt="as a watercolor")
    )
    reply = await bot.ephemeral_reply(record)
    assert reply["content"].startswith("That would exceed your daily quota of 1 image:")
    await bot.settle()
    assert fake.cdn_hits == []
    assert bot.api_calls == calls


async def test_a_user_over_quota_is_refused_before_a_context_menu_downloads(
    bot: DiscordBot,
) -> None:
    """The same through "Describe this image" on someone's message."""
    fake = bot.fake
    await _set_daily_quota(bot, 1)
    await bot.result_of(await bot.send(fake.slash("imagine", user=ALICE, prompt="a fox")))
    photo = fake.add_file("coffee.jpg", DEMO_PHOTO.read_bytes(), "image/jpeg")
    target = fake.user_message(author=ADMIN, attachments=[photo])
    record = await bot.send(fake.message_command("Describe this image", target, user=ALICE))
    reply = await bot.ephemeral_reply(record)
    assert "daily quota" in reply["content"]
    await bot.settle()
    assert fake.cdn_hits == []


async def test_an_attachment_larger_than_it_claims_is_cut_off_at_the_cap(
    bot: DiscordBot, endless: EndlessFile
) -> None:
    """The attachment object claims 1,000 bytes; its URL (on an allowed host) never stops
    sending. The download stops at the cap and the user is told the file is too large."""
    fake = bot.fake
    bot.client.flow.max_input_bytes = 1 * MIB
    attachment = fake.add_file("tiny.png", b"", "image/png")
    attachment["size"] = 1000
    attachment["url"] = attachment["proxy_url"] = endless.url("tiny.png")
    record = await bot.send(fake.slash("describe", user=ALICE, attachments={"image": attachment}))
    reply = await bot.ephemeral_reply(record)
    assert reply["content"] == "`tiny.png` is too large to read; please attach a smaller image."
    await bot.settle()
    assert bot.api_calls == 0
    # Stopped near the cap (socket buffers hold a few MiB more), far from the 64 MiB it offered.
    assert endless.sent < endless.give_up_bytes // 2


async def test_a_decompression_bomb_attachment_is_refused_without_decoding(
    bot: DiscordBot,
) -> None:
    """A 6300×6300 one-colour deflate TIFF of a few hundred KiB, end to end: downloaded (it is
    small), refused from its header in one sentence, nothing sent to the API."""
    fake = bot.fake
    buffer = io.BytesIO()
    Image.new("L", (6300, 6300), 200).save(buffer, "TIFF", compression="tiff_deflate")
    assert len(buffer.getvalue()) < MIB
    bomb = fake.add_file("scan.tiff", buffer.getvalue(), "image/tiff")
    record = await bot.send(fake.slash("describe", user=ALICE, attachments={"image": bomb}))
    reply = await bot.ephemeral_reply(record)
    assert reply["content"] == (
        "`scan.tiff` has too many pixels (6300×6300) to process; please attach an image of at"
        " most 12,582,912 pixels."
    )
    await bot.settle()
    assert bot.api_calls == 0
