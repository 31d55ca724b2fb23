"""The Discord adapter under test: the real discord.py client and the real engine (offline
Ideogram engine) against the loopback :class:`FakeDiscord` — REST, CDN and gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.discord.cli import build_client
from adapters.discord.client import IdeogramBot
from bot.app import BotApp
from bot.config import Settings
from bot.offline import OfflineIdeogram
from tests.conftest import eventually
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_store import FakeUser, InteractionRecord

ALICE = FakeUser("1300000000000001001", "alice")
BOB = FakeUser("1300000000000001002", "bob")
ADMIN = FakeUser("1300000000000001003", "admin", manage_guild=True)


class DiscordBot:
    """The bot process: :class:`BotApp` + :class:`IdeogramBot`, connected to the fake.

    :meth:`restart` closes both and opens new ones on the same database and data directory,
    as a process restart would.
    """

    def __init__(self, fake: FakeDiscord, settings: Settings) -> None:
        self.fake = fake
        self.settings = settings
        self.app: BotApp
        self.client: IdeogramBot
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> DiscordBot:
        self.app = BotApp(self.settings)
        await self.app.__aenter__()
        self.client = build_client(
            self.app, self.settings, guild_ready_timeout=0.0, shutdown_grace_s=1.0
        )
        await self.app.start()
        assert self.settings.discord_token is not None
        await self.client.login(self.settings.discord_token.get_secret_value())
        self._task = asyncio.create_task(self.client.connect(reconnect=False))
        await self.fake.wait_for(lambda: self.fake.ready.is_set())
        return self

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            await self._task
            self._task = None
        await self.app.__aexit__(None, None, None)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def offline(self) -> OfflineIdeogram:
        assert self.app.offline is not None
        return self.app.offline

    @property
    def api_calls(self) -> int:
        """Requests the offline Ideogram engine has received (this process)."""
        return len(self.offline.requests)

    async def send(self, payload: dict[str, Any]) -> InteractionRecord:
        return await self.fake.send_interaction(payload)

    async def send_in_turn(self, payloads: Iterable[dict[str, Any]]) -> list[InteractionRecord]:
        """Send interactions one by one, each once the previous was acknowledged, so their
        jobs are queued in that order."""
        records = []
        for payload in payloads:
            record = await self.send(payload)
            await self.fake.wait_for(lambda sent=record: sent.acked_type)
            records.append(record)
        return records

    async def until(self, predicate: Any, limit_s: float = 15.0) -> Any:
        """Poll ``predicate`` (sync or async) until truthy, for state outside the fake."""
        return await eventually(predicate, limit_s)

    async def settle(self) -> None:
        """Wait until every interaction task in flight has finished."""
        await self.client.drain(grace_s=15.0)

    async def result_of(self, record: InteractionRecord) -> dict[str, Any]:
        """Wait for the job's result: the original response once it has files, result buttons
        or an error (not while it is the loading or progress message with its Cancel button)."""

        def done() -> dict[str, Any] | None:
            message = self.fake.original(record)
            if message is None or message["flags"] & 128:
                return None
            buttons = [i for i in self.fake.custom_ids(message) if not i.startswith("ig:cancel:")]
            if message["attachments"] or buttons or "✖" in message["content"]:
                return message
            return None

        return await self.fake.wait_for(done)

    async def ephemeral_reply(self, record: InteractionRecord) -> dict[str, Any]:
        """Wait for the ephemeral answer (flags 64) of an interaction; return its message."""

        def found() -> dict[str, Any] | None:
            for message in self.fake.followups(record):
                if message["flags"] & 64:
                    return message
            original = self.fake.original(record)
            if original is not None and original["flags"] & 64 and not original["flags"] & 128:
                return original
            if record.callback and record.callback.get("type") == 4:
                data = record.callback.get("data") or {}
                if int(data.get("flags") or 0) & 64:
                    return data
            return None

        return await self.fake.wait_for(found)


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = await FakeDiscord().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def discord_settings(settings: Settings, fake_discord: FakeDiscord) -> Settings:
    return settings.model_copy(
        update={
            "discord_token": SecretStr(fake_discord.token),
            "discord_api_base_url": fake_discord.api_base,
        }
    )


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, settings: Settings) -> AsyncIterator[DiscordBot]:
    """A started :class:`DiscordBot`, stopped on the way out."""
    running = await DiscordBot(fake, settings).start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def bot(fake_discord: FakeDiscord, discord_settings: Settings) -> AsyncIterator[DiscordBot]:
    async with running_bot(fake_discord, discord_settings) as running:
        yield running


@pytest.fixture
async def one_lane_bot(
    fake_discord: FakeDiscord, discord_settings: Settings
) -> AsyncIterator[DiscordBot]:
    """The bot with one image in flight at a time, so later jobs wait in the queue."""
    settings = discord_settings.model_copy(update={"ideogram_max_in_flight": 1})
    async with running_bot(fake_discord, settings) as running:
        yield running
