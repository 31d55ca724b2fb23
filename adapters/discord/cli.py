"""The ``discord`` subcommand, registered through the ``ideogram_bot.adapters`` entry
point: ``ideogram-bot discord`` runs the bot with ``DISCORD_TOKEN``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import discord

from adapters.discord.client import IdeogramBot
from bot.app import BotApp
from bot.config import Settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``discord`` to the ``ideogram-bot`` command line."""
    parser = subparsers.add_parser(
        "discord", help="run the Discord bot (DISCORD_TOKEN; DISCORD_GUILD_ID for a test guild)"
    )
    parser.set_defaults(run=run_discord)


def build_client(app: BotApp, settings: Settings, **options: Any) -> IdeogramBot:
    """The Discord client over the app's engine, configured from ``settings``."""
    return IdeogramBot(
        app.engine,
        session=app.session,
        api_base_url=settings.discord_api_base_url,
        guild_id=settings.discord_guild_id,
        **options,
    )


async def run_discord(args: argparse.Namespace, settings: Settings) -> int:
    """Run until interrupted; exit 2 without a token, 1 when Discord refuses it.

    The composition root owns everything: :class:`~bot.app.BotApp` (database, session, offline
    engine when no ``IDEOGRAM_API_KEY``, engine) outlives the client, which closes first.
    """
    if settings.discord_token is None:
        print("ideogram-bot: DISCORD_TOKEN is not set; see .env.example.", file=sys.stderr)
        return 2
    token = settings.discord_token.get_secret_value()
    async with BotApp(settings, platforms=frozenset({"discord"})) as app:
        client = build_client(app, settings)
        await app.start()
        try:
            async with client:
                await client.start(token)
        except discord.LoginFailure:
            # Never echo the token, or discord.py's message that may quote it.
            print("ideogram-bot: Discord refused DISCORD_TOKEN.", file=sys.stderr)
            return 1
    return 0
