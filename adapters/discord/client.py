"""The Discord client: gateway connection, command tree, start-up sync, shutdown.

:class:`IdeogramBot` is a :class:`discord.Client` with a
:class:`~adapters.discord.commands.BotCommandTree`. In :meth:`IdeogramBot.setup_hook` (after
login, before the gateway connects) it registers the slash commands, the three message context
menus and the restart-safe :class:`~adapters.discord.views.ResultButton` and syncs the commands —
to ``DISCORD_GUILD_ID`` when set (fast, for development), else globally. On construction it
registers as the engine's deliverer for ``discord`` results nobody awaits (jobs resumed after a
restart), which are posted once the REST login and sync are done; the composition root
(:mod:`adapters.discord.cli`) builds the client before it starts the engine's queue.

Intents: guilds, guild and DM reactions — no privileged intent. Interactions arrive whatever the
intents; reactions drive ✉️ and ❌ (:mod:`adapters.discord.reactions`).

``DISCORD_API_BASE_URL`` (Discord-compatible servers, tests): discord.py builds every REST URL,
interaction callbacks and webhooks included, from the class attribute
``discord.http.Route.BASE`` and connects to ``DiscordWebSocket.DEFAULT_GATEWAY``. Both are
process-wide; when the root differs from Discord's, :meth:`IdeogramBot.login` sets the REST
root and :meth:`IdeogramBot.setup_hook` the gateway address from ``GET {root}/gateway/bot``;
:meth:`IdeogramBot.close` restores both.

Platform doc followed: discord-api-docs "Gateway" (Get Gateway Bot) and "Interactions ›
Application commands" (Bulk Overwrite Global / Guild Application Commands).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import commands, reactions
from adapters.discord.flow import InteractionFlow
from adapters.discord.inputs import file_hosts
from adapters.discord.views import ResultButton
from bot.engine import Engine

log = logging.getLogger(__name__)

#: discord.py's REST root; a configured ``DISCORD_API_BASE_URL`` equal to it changes nothing.
DISCORD_API_BASE_URL = "https://discord.com/api/v10"

#: Seconds :meth:`IdeogramBot.close` lets interactions in flight finish before cancelling them
#: (their jobs stay queued in SQLite and resume at the next start).
SHUTDOWN_GRACE_S = 5.0

#: Name prefixes of the tasks discord.py creates per interaction (tree commands, dynamic
#: buttons, modal submits) and per reaction, and of ours: progress editors.
_INTERACTION_TASK_PREFIXES = (
    "CommandTree-invoker",
    "discord-ui-dynamic-item-",
    "discord-ui-modal-dispatch-",
    "discord-progress",
    "discord.py: on_raw_reaction_add",
)


def bot_intents() -> discord.Intents:
    """Guilds plus guild and DM reactions: no privileged intent (no message content, members)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_reactions = True
    intents.dm_reactions = True
    return intents


class IdeogramBot(discord.Client):
    """The bot on Discord.

    Args:
        engine: the core engine (from :class:`bot.app.BotApp`), its queue not yet started.
        session: the process's shared HTTP session (``BotApp.session``), for attachments.
        api_base_url: ``DISCORD_API_BASE_URL``, the REST root.
        guild_id: ``DISCORD_GUILD_ID``: sync commands to this guild only; ``None`` = globally.
        shutdown_grace_s: seconds :meth:`close` lets interactions in flight finish.
        **options: passed to :class:`discord.Client` (e.g. ``guild_ready_timeout``).

    Attributes:
        engine: the core engine.
        flow: runs interactions (:class:`~adapters.discord.flow.InteractionFlow`).
        tree: the command tree.
        synced: the commands the last sync returned.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        session: aiohttp.ClientSession,
        api_base_url: str = DISCORD_API_BASE_URL,
        guild_id: int | None = None,
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
        **options: Any,
    ) -> None:
        # The bot never joins voice: skip discord.py's start-up warnings about voice libraries.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        super().__init__(intents=bot_intents(), **options)
        self.engine = engine
        self.shutdown_grace_s = shutdown_grace_s
        self.api_base_url = api_base_url.rstrip("/")
        self.guild_id = guild_id
        self.flow = InteractionFlow(
            self, engine, session=session, allowed_hosts=file_hosts(self.api_base_url)
        )
        self.tree = commands.BotCommandTree(
            self,
            allowed_contexts=discord.app_commands.AppCommandContext(guild=True, dm_channel=True),
            allowed_installs=discord.app_commands.AppInstallationType(guild=True),
        )
        self.synced: list[discord.app_commands.AppCommand] = []
        self._saved_endpoints: tuple[str, yarl.URL] | None = None
        # Set once logged in and synced: results of resumed jobs wait for it before posting.
        self.rest_ready = asyncio.Event()
        # Registered on construction, before the composition root starts the engine's queue:
        # the start reports jobs the last run left and resumes queued ones, which may finish
        # before setup_hook runs, and their results must not be dropped.
        engine.set_deliverer("discord", self.flow.deliver_unattended)

    @property
    def custom_api(self) -> bool:
        """True when ``DISCORD_API_BASE_URL`` points somewhere other than Discord."""
        return self.api_base_url != DISCORD_API_BASE_URL

    async def login(self, token: str) -> None:
        """Point discord.py at the configured REST root, then log in (``GET /users/@me``).

        Raises:
            discord.LoginFailure: the token was refused.
        """
        if self.custom_api and self._saved_endpoints is None:
            self._saved_endpoints = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
            Route.BASE = self.api_base_url
        await super().login(token)

    async def setup_hook(self) -> None:
        """Register commands, menus and buttons; find the gateway; sync the commands."""
        for command in commands.build_commands():
            self.tree.add_command(command)
        for menu in commands.build_context_menus():
            self.tree.add_command(menu)
        self.add_dynamic_items(ResultButton)
        if self.custom_api:
            _shards, url, _limits = await self.http.get_bot_gateway()
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            log.info("using gateway %s from %s/gateway/bot", url, self.api_base_url)
        await self.sync_commands()
        self.rest_ready.set()

    async def sync_commands(self) -> list[discord.app_commands.AppCommand]:
        """PUT the command list: to ``DISCORD_GUILD_ID`` when set, else globally."""
        if self.guild_id is not None:
            guild = discord.Object(self.guild_id)
            self.tree.copy_global_to(guild=guild)
            self.synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(self.synced), self.guild_id)
        else:
            self.synced = await self.tree.sync()
            log.info("synced %d commands globally", len(self.synced))
        return self.synced

    async def on_ready(self) -> None:
        """Log who we are (no token, no secrets)."""
        log.info("connected to Discord as %s (%s)", self.user, self.user.id if self.user else "?")

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """✉️ DMs the images; ❌ by the requester deletes the result."""
        await reactions.on_reaction(self, payload)

    async def close(self) -> None:
        """Let interactions in flight finish briefly, then disconnect and restore endpoints."""
        await self.drain(self.shutdown_grace_s)
        await super().close()
        if self._saved_endpoints is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved_endpoints
            self._saved_endpoints = None

    async def drain(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` seconds for interaction tasks in flight; cancel the rest."""
        current = asyncio.current_task()
        tasks = [
            task
            for task in asyncio.all_tasks()
            if task is not current
            and not task.done()
            and task.get_name().startswith(_INTERACTION_TASK_PREFIXES)
        ]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
