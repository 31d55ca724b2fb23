"""Connecting: login, the gateway from GET /gateway/bot, heartbeats, the command line."""

from __future__ import annotations

import argparse
import logging
import math

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import SecretStr

from adapters.discord.cli import run_discord
from bot.cli import build_parser
from tests.discord.conftest import DiscordBot
from tests.discord.fake_discord import FakeDiscord


async def test_gateway_handshake_and_heartbeats(discord_settings) -> None:
    """The client logs in over REST, takes the gateway address from GET /gateway/bot,
    IDENTIFYs with its token and intents, and its heartbeats are acknowledged."""
    fake = await FakeDiscord(heartbeat_interval_ms=50).start()
    settings = discord_settings.model_copy(update={"discord_api_base_url": fake.api_base})
    running = await DiscordBot(fake, settings).start()
    try:
        paths = [c.path for c in fake.calls[:4]]
        assert paths[:3] == [
            "/api/v10/users/@me",
            "/api/v10/oauth2/applications/@me",
            "/api/v10/gateway/bot",
        ]
        assert all(c.auth == f"Bot {fake.token}" for c in fake.calls[:4])
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == f"{fake.root.replace('http', 'ws')}/gateway"
        assert fake.identified == 1
        await running.until(lambda: fake.heartbeats >= 2)
        await running.until(lambda: math.isfinite(running.client.latency))
        intents = running.client.intents
        assert intents.guild_reactions and intents.dm_reactions and intents.guilds
        assert not (intents.message_content or intents.members or intents.presences)
    finally:
        await running.stop()
        await fake.close()
    # The process-wide discord.py endpoints are put back.
    assert Route.BASE == "https://discord.com/api/v10"
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"


def test_the_discord_subcommand_is_registered() -> None:
    args = build_parser().parse_args(["discord"])
    assert args.run is run_discord


async def test_run_without_a_token_exits_2(settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_discord(argparse.Namespace(), settings) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err


async def test_a_refused_token_exits_1_without_showing_it(
    fake_discord: FakeDiscord,
    discord_settings,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Discord answers 401 to the login: exit 1, and the token appears nowhere."""
    secret = "wrong-token-" + "s3cr3t" * 4
    settings = discord_settings.model_copy(update={"discord_token": SecretStr(secret)})
    with caplog.at_level(logging.DEBUG):
        code = await run_discord(argparse.Namespace(), settings)
    assert code == 1
    captured = capsys.readouterr()
    assert "refused DISCORD_TOKEN" in captured.err
    assert secret not in captured.err + captured.out
    assert not any(secret in r.getMessage() for r in caplog.records)
    assert fake_discord.calls[0].path == "/api/v10/users/@me"
