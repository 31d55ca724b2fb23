"""The Slack adapter: one Bolt :class:`~slack_bolt.async_app.AsyncApp` (with its OAuth flow and
installation store when the app is distributed to several workspaces) whose listeners
(:mod:`adapters.slack.listeners`) translate Slack payloads into core calls, and the posting of
results, including results of jobs nobody awaits any more (resumed after a restart).

Layers and the flow of a command are described in ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.oauth import OAuthStateUtils
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.sqlite3 import SQLite3InstallationStore
from slack_sdk.oauth.state_store.sqlite3 import SQLite3OAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.conversation import Conversation, Posted, Where
from adapters.slack.files import SlackFiles
from adapters.slack.installations import EncryptedInstallationStore, create_private_file
from adapters.slack.listeners import MODAL_ACK_BUDGET_S, Listeners
from bot.config import Settings
from bot.encryption import SecretBox, load_keys
from bot.engine import Engine
from bot.types import JobResult

log = logging.getLogger(__name__)

#: Bot token scopes the app asks for (also in ``slack-manifest.yaml``).
BOT_SCOPES = ("commands", "chat:write", "files:read", "files:write", "users:read", "im:write")

#: Minimum seconds between two edits of one status message (Slack: ~1 message/s per channel).
STATUS_EDIT_INTERVAL_S = 1.0


class _EnvTokenNotice(logging.Filter):
    """Drop Bolt's "`token` will be unused" warning: AsyncApp reads ``SLACK_BOT_TOKEN`` from
    the environment by itself and warns that our ``client`` (which already holds that token,
    and the configured ``SLACK_API_URL``) wins — true, expected, and alarming to operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


class SlackAdapter:
    """Slack ⇄ core translation, built on one Bolt ``AsyncApp`` (:attr:`bolt`).

    Single-workspace when ``SLACK_BOT_TOKEN`` is set and no OAuth credentials are; multi-
    workspace (Bolt's OAuth flow, installations in a SQLite file beside the database, see
    :func:`open_installation_store`) when ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` are
    set. Requests over HTTP are verified by Bolt with ``SLACK_SIGNING_SECRET``; the transport
    (HTTP or Socket Mode) is chosen by :mod:`adapters.slack.cli`.

    Args:
        engine: the core engine; its ``slack`` deliverer is set to :meth:`deliver` (start the
            engine after this, so resumed jobs find it).
        settings: the process settings (``SLACK_*``).
        session: the aiohttp session for Web API calls and file downloads (borrowed).
        status_interval_s: minimum seconds between edits of a status message.
        modal_ack_budget_s: seconds a modal submission may take before it must be acked.
        bolt_logger: the logger Bolt writes to (default ``adapters.slack.bolt``).

    Raises:
        ValueError: neither a bot token nor OAuth credentials are configured.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        session: aiohttp.ClientSession,
        status_interval_s: float = STATUS_EDIT_INTERVAL_S,
        modal_ack_budget_s: float = MODAL_ACK_BUDGET_S,
        bolt_logger: logging.Logger | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self._session = session
        bolt_logger = bolt_logger or logging.getLogger("adapters.slack.bolt")
        if not any(isinstance(f, _EnvTokenNotice) for f in bolt_logger.filters):
            bolt_logger.addFilter(_EnvTokenNotice())
        self.status_interval_s = status_interval_s
        self.modal_ack_budget_s = modal_ack_budget_s
        self._tasks: set[asyncio.Task[Any]] = set()
        self.api_url = settings.slack_api_url.rstrip("/") + "/"
        self.files = SlackFiles(session, api_url=self.api_url)

        oauth = bool(settings.slack_client_id and settings.slack_client_secret)
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        if not token and not oauth:
            raise ValueError("SLACK_BOT_TOKEN or SLACK_CLIENT_ID + SLACK_CLIENT_SECRET is needed")
        self.client = self._web_client(None if oauth else token)
        self.oauth_flow: AsyncOAuthFlow | None = None
        self.installation_store: AsyncInstallationStore | None = None
        if oauth:
            assert settings.slack_client_id and settings.slack_client_secret
            self.installation_store = open_installation_store(
                settings, client_id=settings.slack_client_id, logger=bolt_logger
            )
            self.oauth_flow = AsyncOAuthFlow(
                client=self.client,
                logger=bolt_logger,
                settings=AsyncOAuthSettings(
                    client_id=settings.slack_client_id,
                    client_secret=settings.slack_client_secret.get_secret_value(),
                    scopes=list(BOT_SCOPES),
                    user_scopes=[],
                    installation_store=self.installation_store,
                    state_store=SQLite3OAuthStateStore(
                        database=str(installations_path(settings)),
                        expiration_seconds=OAuthStateUtils.default_expiration_seconds,
                        logger=bolt_logger,
                    ),
                ),
            )
        signing_secret = (
            settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret
            else ""
        )
        self.bolt = AsyncApp(
            name="ideogram-bot",
            client=self.client,
            signing_secret=signing_secret,
            oauth_flow=self.oauth_flow,
            logger=bolt_logger,
        )
        self.listeners = Listeners(self)
        self.listeners.register(self.bolt, multi_workspace=self.installation_store is not None)
        engine.set_deliverer("slack", self.deliver)

    def _web_client(self, token: str | None) -> AsyncWebClient:
        client = AsyncWebClient(token=token, base_url=self.api_url, session=self._session)
        # 429 means Slack did not act on the call, so a bounded retry is safe.
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        return client

    # -- lifecycle -----------------------------------------------------------------------

    def track(self) -> None:
        """Count the running listener as in flight, so :meth:`drain` can wait for it."""
        task = asyncio.current_task()
        if task is not None and task not in self._tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every listener started so far (and its error handling) has finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, grace_s: float = 10.0) -> None:
        """Give listeners ``grace_s`` seconds to finish, then cancel the rest.

        Jobs themselves live in the core: queued ones resume at the next start and are
        delivered by :meth:`deliver`.
        """
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- results -------------------------------------------------------------------------

    async def link(self, posted: Posted, job_id: str) -> None:
        """Record that ``posted`` shows ``job_id`` (``Engine.link_message``), so the message
        leads back to its job after restarts. Best effort: the message is already shown."""
        try:
            await self.engine.link_message("slack", posted.channel_id, posted.ts, job_id)
        except Exception:
            log.warning("could not link message %s to job %s", posted.ts, job_id, exc_info=True)

    async def publish(self, conversation: Conversation, result: JobResult) -> None:
        """Show a finished job in ``conversation``: its files, caption and buttons (then the
        status message goes), or its failure in place of the status message; the message
        showing it is linked to the job."""
        status = conversation.status
        if result.ok:
            await self.link(await conversation.post_result(result), result.job_id)
            if status is not None:
                await status.finish_ok()
            return
        text = blocks.failure_text(result)
        if status is not None:
            await status.finish_failed(text)
        else:
            await self.link(await conversation.post(text, [blocks.section(text)]), result.job_id)

    async def client_for_team(self, team_id: str) -> AsyncWebClient:
        """A Web API client with ``team_id``'s bot token (the one token, single-workspace).

        Raises:
            LookupError: multi-workspace and the workspace has no installation.
        """
        if self.installation_store is None:
            return self.client
        bot = await self.installation_store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            raise LookupError(f"no Slack installation for team {team_id}")
        return self._web_client(bot.bot_token)

    async def deliver(self, result: JobResult) -> None:
        """Post a result nobody is waiting for (a job resumed or interrupted by a restart)
        in its channel; the core calls this through ``Engine.set_deliverer("slack", …)``."""
        client = await self.client_for_team(result.server_id)
        where = Where(
            team_id=result.server_id, channel_id=result.channel_id, user_id=result.owner_id
        )
        await self.publish(Conversation(client, where), result)


def installations_path(settings: Settings) -> Path:
    """Where multi-workspace installations are kept: ``DATA_DIR/slack-installations.sqlite3``
    (slack-sdk's own schema, so it stays out of the bot's migrated database)."""
    return settings.data_dir / "slack-installations.sqlite3"


def open_installation_store(
    settings: Settings, *, client_id: str, logger: logging.Logger
) -> EncryptedInstallationStore:
    """The installation store of the OAuth flow: slack-sdk's SQLite store in
    :func:`installations_path`, created 0600 in a 0700 ``DATA_DIR``, its tokens encrypted with
    ``BOT_ENCRYPTION_KEY`` when set (in clear otherwise).

    Raises:
        OSError: the data directory or the file cannot be created.
    """
    path = installations_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    create_private_file(path)
    key = settings.bot_encryption_key
    box = SecretBox(load_keys(key.get_secret_value()) if key is not None else None)
    inner = SQLite3InstallationStore(database=str(path), client_id=client_id, logger=logger)
    return EncryptedInstallationStore(inner, box)
