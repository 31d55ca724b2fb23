"""The Slack adapter: a Bolt :class:`~slack_bolt.async_app.AsyncApp` whose listeners translate
Slack payloads into core calls and core replies into Slack messages (STYLE.md, "The shape").

What arrives and what the bot does (SPEC §2-5):

* Slash commands (any name ending in a core command, so ``/ig-imagine`` works as ``/imagine``):
  ``ack()`` at once, then commands that need an image open a modal with a ``file_input``
  (``views.open`` with the ``trigger_id``); the others run through :meth:`Engine.handle`.
* The modal's ``view_submission``: the file is downloaded and checked before the ``ack``, so a
  bad file (or a bad flag) is answered with ``response_action: errors`` on the field.
* Message shortcuts ``remix_image`` / ``describe_image`` / ``upscale_image`` on a message with
  an image file.
* Buttons (``block_actions``, ``action_id`` ``ig:<kind>:<job_id>:<index>``): anyone may press;
  the new job is theirs; state comes from SQLite, so old buttons work after a restart.
* ``app_home_opened``: the App Home tab with the viewer's usage and, to admins, the settings.

Jobs show an in-channel status message (queue position, "Generating…") that is edited as the
job moves and removed when the result is posted: files via ``files_upload_v2``, then a message
with the caption and the buttons. Refusals and text answers are ephemeral. Everything that
goes wrong is turned into words in one place, the ``@app.error`` handler.

Slack docs followed: "Handling user interaction" (3-second ack), "Modals", "Block Kit", "Using
the Slack Events API" (retries), "Bolt for Python: Async", "Working with files".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.files import SlackFiles, check_file_type, pick_image_file
from bot import messages
from bot.commands import registry
from bot.config import Settings
from bot.engine import Engine
from bot.errors import InvalidImage, UserError, new_reference_id
from bot.images import InputImage
from bot.types import (
    Caller,
    Invocation,
    JobResult,
    Press,
    Progress,
    ProgressCallback,
    Reply,
    TextReply,
    parse_action_id,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bot token scopes the app asks for (also in ``slack-manifest.yaml``).
BOT_SCOPES = ("commands", "chat:write", "files:read", "files:write", "users:read", "im:write")

#: Message shortcuts (SPEC §2) → core command.
SHORTCUTS = {"remix_image": "remix", "describe_image": "describe", "upscale_image": "upscale"}

#: Slack errors that mean "the bot may not post here"; results then go to the user by DM.
NOT_POSTABLE = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "access_denied"}
)

#: Where a listener keeps its :class:`Conversation` in the Bolt context, for the error handler.
CONVERSATION_KEY = "ig_conversation"

#: Seconds a view submission may spend checking the image and starting the job before it must
#: ``ack`` (Slack allows 3 s for the whole round trip).
MODAL_ACK_BUDGET_S = 2.0

#: Minimum seconds between two edits of one status message (Slack: ~1 message/s per channel).
STATUS_EDIT_INTERVAL_S = 1.0

_COMMAND_NAMES = sorted(registry.COMMANDS, key=len, reverse=True)


def command_name(slash: str) -> str:
    """The core command behind a Slack slash command name.

    ``/imagine`` → ``imagine``; a prefixed name such as ``/ig-imagine`` or ``/ig_replace-bg``
    → ``imagine`` / ``replace-bg`` (workspaces may rename commands that clash with other apps'
    in the manifest). Unknown names are returned without the slash, for the core to refuse.
    """
    name = slash.strip().lstrip("/").lower()
    if name in registry.COMMANDS:
        return name
    for known in _COMMAND_NAMES:
        if name.endswith(("-" + known, "_" + known)):
            return known
    return name


def _error_code(exc: SlackApiError) -> str:
    response = getattr(exc, "response", None)
    try:
        return str(response.get("error", "")) if response is not None else ""
    except Exception:  # a response that is not a dict-like: no code to read
        return ""


def _is_retry(request: AsyncBoltRequest | None) -> bool:
    """Whether Slack marked this delivery as a retry (``X-Slack-Retry-Num``; in Socket Mode,
    Bolt copies the envelope's ``retry_attempt`` into the same header)."""
    if request is None:
        return False
    values = request.headers.get("x-slack-retry-num") or []
    return any(str(v).strip() not in ("", "0") for v in values)


class _EnvTokenNotice(logging.Filter):
    """Drop Bolt's "`token` will be unused" warning: AsyncApp reads ``SLACK_BOT_TOKEN`` from
    the environment by itself and warns that our ``client`` (which already holds that token,
    and the configured ``SLACK_API_URL``) wins — true, expected, and alarming to operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _listener(
    func: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    """Wrap a Bolt listener method: count it as in flight, and hand any exception to
    :meth:`SlackAdapter._on_error` itself instead of letting it reach Bolt.

    Why: when a listener raises shortly after ``ack()``, Bolt's asyncio runner (1.30,
    ``run_ack_function_asynchronously``) resets ``ack.response`` to ``None`` before its poller
    has seen it, so the HTTP response waits the full 3 s and goes out as 404 — Slack then shows
    the user a dispatch error on top of ours. The error handler is still the one registered
    with ``@app.error`` (it also gets errors from Bolt's middleware).
    """

    @functools.wraps(func)
    async def guarded(self: SlackAdapter, **kwargs: Any) -> None:
        self._track()
        try:
            await func(self, **kwargs)
        except Exception as error:
            ack = kwargs.get("ack")
            if ack is not None and ack.response is None:
                await ack()  # never leave Slack waiting, whatever failed
            await self._on_error(error, kwargs.get("body") or {}, kwargs.get("context") or {})

    return guarded


# -- where a reply goes ----------------------------------------------------------------------


@dataclass(slots=True)
class Where:
    """The conversation an interaction came from and its answers go to.

    Attributes:
        team_id: the workspace (``T…``); the core's ``server_id``.
        channel_id: the channel the command ran in.
        user_id: who acted.
        thread_ts: answer in this thread, if set.
        response_url: the interaction's ``response_url`` for ephemeral replies, if any.
        is_retry: Slack re-delivered this request (``X-Slack-Retry-Num``).
        dm_channel_id: set once the channel refused the bot; results then go to this DM.
    """

    team_id: str
    channel_id: str
    user_id: str
    thread_ts: str | None = None
    response_url: str | None = None
    is_retry: bool = False
    dm_channel_id: str | None = None

    def caller(self, *, is_admin: bool = False) -> Caller:
        """The core's :class:`~bot.types.Caller` for this conversation."""
        return Caller(
            platform="slack",
            user_id=self.user_id,
            server_id=self.team_id,
            channel_id=self.channel_id,
            is_admin=is_admin,
            display_name=blocks.mention(self.user_id),
        )

    def request_key(self, delivery_id: str, kind: str = "trigger") -> str | None:
        """A globally unique key for one Slack delivery (a ``trigger_id``, a view id), for the
        core's duplicate check; ``None`` when Slack sent no id."""
        return f"slack:{self.team_id}:{kind}:{delivery_id}" if delivery_id else None


@dataclass(frozen=True, slots=True)
class Posted:
    """A message the bot posted: its channel and ``ts``."""

    channel_id: str
    ts: str


class Conversation:
    """Posting in one :class:`Where`, falling back to a DM when the channel refuses the bot.

    Args:
        client: a Web API client with the workspace's bot token.
        where: the conversation.
        respond: the interaction's ``respond`` (``response_url``) for ephemeral replies.
    """

    def __init__(
        self, client: AsyncWebClient, where: Where, respond: AsyncRespond | None = None
    ) -> None:
        self.client = client
        self.where = where
        self.respond = respond
        self.status: StatusMessage | None = None

    async def _in_channel(self, send: Callable[[str, str | None], Awaitable[T]]) -> T:
        """Run ``send(channel_id, thread_ts)`` in the channel, or in a DM once it refused us."""
        if self.where.dm_channel_id is None:
            try:
                return await send(self.where.channel_id, self.where.thread_ts)
            except SlackApiError as exc:
                if _error_code(exc) not in NOT_POSTABLE:
                    raise
                log.info(
                    "cannot post in %s/%s (%s): answering %s by DM",
                    self.where.team_id,
                    self.where.channel_id,
                    _error_code(exc),
                    self.where.user_id,
                )
                await self._switch_to_dm()
        assert self.where.dm_channel_id is not None
        return await send(self.where.dm_channel_id, None)

    async def _switch_to_dm(self) -> None:
        opened = await self.client.conversations_open(users=self.where.user_id)
        self.where.dm_channel_id = str(opened["channel"]["id"])
        if self.respond is not None and self.where.response_url:
            with contextlib.suppress(Exception):  # the note is a courtesy; the DM is the answer
                await self.respond(
                    text=blocks.NOT_IN_CHANNEL, response_type="ephemeral", replace_original=False
                )

    async def post(self, text: str, message_blocks: list[dict[str, Any]] | None = None) -> Posted:
        """``chat.postMessage`` in the conversation; returns where it landed."""

        async def send(channel: str, thread_ts: str | None) -> Posted:
            response = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=message_blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
            return Posted(str(response.get("channel") or channel), str(response["ts"]))

        return await self._in_channel(send)

    async def update(self, posted: Posted, text: str, message_blocks: list[dict[str, Any]]) -> None:
        """``chat.update`` of a message the bot posted; ``message_blocks`` replace its blocks."""
        await self.client.chat_update(
            channel=posted.channel_id, ts=posted.ts, text=text, blocks=message_blocks
        )

    async def delete(self, posted: Posted) -> None:
        """``chat.delete`` of a message the bot posted."""
        await self.client.chat_delete(channel=posted.channel_id, ts=posted.ts)

    async def ephemeral(self, text: str) -> None:
        """Show ``text`` (core Markdown subset) to the user only (SPEC: refusals are private).

        Uses the interaction's ``response_url`` when there is one (works in any channel), else
        ``chat.postEphemeral``; a DM when the channel refuses the bot.
        """
        body = blocks.ephemeral_text(text)
        if self.respond is not None and self.where.response_url:
            await self.respond(text=body, response_type="ephemeral", replace_original=False)
            return
        try:
            await self.client.chat_postEphemeral(
                channel=self.where.channel_id,
                user=self.where.user_id,
                text=body,
                thread_ts=self.where.thread_ts,
            )
        except SlackApiError as exc:
            if _error_code(exc) not in NOT_POSTABLE:
                raise
            if self.where.dm_channel_id is None:
                await self._switch_to_dm()
            assert self.where.dm_channel_id is not None
            await self.client.chat_postMessage(channel=self.where.dm_channel_id, text=body)

    async def post_result(self, result: JobResult) -> Posted:
        """Share the result's files, then post its caption and buttons (SPEC §3)."""
        text, message_blocks = blocks.result_message(result)

        async def send(channel: str, thread_ts: str | None) -> Posted:
            await SlackFiles.upload_images(self.client, channel, result, thread_ts)
            response = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=message_blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
            return Posted(str(response.get("channel") or channel), str(response["ts"]))

        return await self._in_channel(send)


class StatusMessage:
    """The in-channel status of one job: posted at its first progress, edited as it moves.

    :meth:`progress` is the core's :data:`~bot.types.ProgressCallback`. It never waits on
    Slack — the job queue calls it inline — but records the newest state and wakes a small
    updater task, which coalesces bursts (queue positions move often) into at most one edit
    per ``min_interval_s``.

    Attributes:
        accepted: set at the first progress: the core stored the job (it passed every check).
        job_id: the job, once known.
        posted: the status message, once posted.
    """

    def __init__(self, conversation: Conversation, headline: str, *, min_interval_s: float) -> None:
        self.conversation = conversation
        self.headline = headline
        self.accepted = asyncio.Event()
        self.job_id: str | None = None
        self.posted: Posted | None = None
        self._min_interval = min_interval_s
        self._latest: tuple[str, list[dict[str, Any]]] | None = None
        self._shown: tuple[str, list[dict[str, Any]]] | None = None
        self._running = False
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def progress(self, progress: Progress) -> None:
        """Record ``progress``; the updater shows queued/running states (final ones are shown
        by :meth:`finish_ok` / :meth:`finish_failed`)."""
        self.job_id = progress.job_id
        self.accepted.set()
        if progress.state not in ("queued", "running") or self._closed.is_set():
            return
        if progress.state == "queued" and self._running:
            return  # a late queue-position notice must not cover "Generating…"
        self._running = self._running or progress.state == "running"
        self._latest = blocks.status_message(self.headline, progress.text, progress.cancel)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"slack-status-{progress.job_id}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_edit = float("-inf")
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closed.is_set():
                return
            pause = self._min_interval - (loop.time() - last_edit)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), pause)
                    return
            latest = self._latest
            if latest is None or latest == self._shown:
                continue
            text, message_blocks = latest
            try:
                if self.posted is None:
                    self.posted = await self.conversation.post(text, message_blocks)
                else:
                    await self.conversation.update(self.posted, text, message_blocks)
                self._shown = latest
            except Exception:
                # Showing progress is best effort: a Slack hiccup must not fail the job.
                log.warning("status update for job %s failed", self.job_id, exc_info=True)
            last_edit = loop.time()

    async def stop(self) -> None:
        """Stop the updater, letting a Slack call in flight finish (so ``posted`` is known)."""
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def finish_ok(self) -> None:
        """The result is posted: remove the status message."""
        if self.posted is None:
            return
        try:
            await self.conversation.delete(self.posted)
        except SlackApiError:
            log.warning("could not delete the status of job %s", self.job_id, exc_info=True)

    async def finish_failed(self, text: str) -> None:
        """Show a failure (``mrkdwn``) in place of the status, without buttons (posted now if
        there was no status yet)."""
        message_blocks = [blocks.section(text)]
        if self.posted is None:
            self.posted = await self.conversation.post(text, message_blocks)
        else:
            await self.conversation.update(self.posted, text, message_blocks)


# -- the adapter -----------------------------------------------------------------------------


class SlackAdapter:
    """Slack ⇄ core translation, built on one Bolt ``AsyncApp`` (:attr:`bolt`).

    Single-workspace when ``SLACK_BOT_TOKEN`` is set and no OAuth credentials are; multi-
    workspace (Bolt's OAuth flow, installations in a SQLite file beside the database) when
    ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` are set. Requests over HTTP are verified by
    Bolt with ``SLACK_SIGNING_SECRET``; the transport (HTTP or Socket Mode) is chosen by
    :mod:`adapters.slack.cli`.

    Args:
        engine: the started core engine; its ``slack`` deliverer is set to :meth:`deliver`.
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
        self._status_interval = status_interval_s
        self._modal_budget = modal_ack_budget_s
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
            self.oauth_flow = AsyncOAuthFlow.sqlite3(
                database=str(installations_path(settings)),
                client_id=settings.slack_client_id,
                client_secret=settings.slack_client_secret.get_secret_value(),
                scopes=list(BOT_SCOPES),
                user_scopes=[],
                client=self.client,
                logger=bolt_logger,
            )
            self.installation_store = self.oauth_flow.settings.installation_store
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
        self._register()
        engine.set_deliverer("slack", self.deliver)

    def _web_client(self, token: str | None) -> AsyncWebClient:
        client = AsyncWebClient(token=token, base_url=self.api_url, session=self._session)
        # 429 means Slack did not act on the call, so a bounded retry is safe.
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        return client

    def _register(self) -> None:
        app = self.bolt
        app.command(re.compile(r"^/.+"))(self._on_command)
        app.view_submission(blocks.MODAL_CALLBACK_ID)(self._on_modal_submit)
        app.message_shortcut(re.compile("^(" + "|".join(SHORTCUTS) + ")$"))(self._on_shortcut)
        app.block_action(re.compile(r"^ig:"))(self._on_button)
        app.event("app_home_opened")(self._on_home_opened)
        if self.installation_store is not None:
            # Forget a workspace's tokens when it uninstalls the app (Bolt's own listeners).
            app.enable_token_revocation_listeners()
        else:
            # Subscribed in the manifest; answered so Slack does not retry them.
            app.event("app_uninstalled")(self._on_uninstalled)
            app.event("tokens_revoked")(self._on_uninstalled)
        app.error(self._on_error)

    # -- lifecycle -----------------------------------------------------------------------

    def _track(self) -> None:
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

    # -- listeners -----------------------------------------------------------------------

    @_listener
    async def _on_command(
        self,
        ack: Any,
        command: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: dict[str, Any],
        request: AsyncBoltRequest,
        respond: AsyncRespond,
    ) -> None:
        """A slash command: ack, then a modal (image commands) or a core call."""
        await ack()
        where = Where(
            team_id=str(context.get("team_id") or command.get("team_id") or ""),
            channel_id=str(command.get("channel_id") or ""),
            user_id=str(command.get("user_id") or ""),
            response_url=command.get("response_url"),
            is_retry=_is_retry(request),
        )
        conversation = Conversation(client, where, respond)
        context[CONVERSATION_KEY] = conversation
        name = command_name(str(command.get("command") or ""))
        text = str(command.get("text") or "")
        spec = registry.get(name)

        if spec is not None and spec.takes_image:
            if where.is_retry:
                return  # the first delivery opened the modal; its trigger_id is spent anyway
            state = blocks.ModalState(command=spec.name, channel_id=where.channel_id)
            await client.views_open(
                trigger_id=command["trigger_id"], view=blocks.image_modal(spec, state, text)
            )
            return

        is_admin = False
        words = text.split()
        if name == "settings" and words and words[0].lower() in ("set", "reset"):
            # Only changes need the users.info round trip; the core checks the flag again.
            is_admin = await self._is_admin(client, where.user_id)
        trigger_id = str(command.get("trigger_id") or "")
        invocation = Invocation(
            command=name,
            caller=where.caller(is_admin=is_admin),
            text=text,
            request_key=where.request_key(trigger_id),
        )
        if name == "help":
            reply = await self.engine.handle(invocation)
            if isinstance(reply, TextReply):
                await conversation.ephemeral(blocks.help_text(reply.text))
            return
        headline = blocks.command_headline(where.user_id, name, text)
        await self._run_job(
            conversation, headline, lambda progress: self.engine.handle(invocation, progress)
        )

    @_listener
    async def _on_modal_submit(
        self,
        ack: Any,
        view: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: dict[str, Any],
    ) -> None:
        """An image-command modal was submitted: check the image, start the job, then ack.

        Errors found within :data:`MODAL_ACK_BUDGET_S` keep the modal open with the message
        on the field (``response_action: errors``); later ones are shown ephemerally.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._modal_budget
        try:
            state = blocks.ModalState.load(str(view.get("private_metadata") or ""))
        except ValueError:
            await ack()
            log.warning("a %s modal without our metadata was submitted", blocks.MODAL_CALLBACK_ID)
            return
        spec = registry.get(state.command)
        if spec is None or not spec.takes_image:
            await ack()
            return
        user = body.get("user") or {}
        where = Where(
            team_id=str(context.get("team_id") or user.get("team_id") or ""),
            channel_id=state.channel_id,
            user_id=str(user.get("id") or ""),
            thread_ts=state.thread_ts,
        )
        conversation = Conversation(client, where)
        context[CONVERSATION_KEY] = conversation
        token = str(context.get("bot_token") or context.get("token") or "")
        files = [state.source] if state.source else blocks.submitted_files(view)
        text = blocks.submitted_text(view)
        status = StatusMessage(
            conversation,
            blocks.command_headline(where.user_id, spec.name, text),
            min_interval_s=self._status_interval,
        )
        conversation.status = status

        async def run() -> Reply:
            if not files:
                raise InvalidImage(messages.NEEDS_IMAGE.format(command=spec.name))
            image = await self.files.fetch_image(files[0], token)
            invocation = Invocation(
                command=spec.name,
                caller=where.caller(),
                text=text,
                images=(image,),
                # One view is one request: a double submit or a retry starts one job.
                request_key=where.request_key(str(view.get("id") or ""), kind="view"),
            )
            return await self.engine.handle(invocation, status.progress)

        job = asyncio.create_task(run(), name="slack-modal-job")
        accepted = asyncio.create_task(status.accepted.wait())
        try:
            await asyncio.wait(
                {job, accepted},
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            job.cancel()  # shutting down: do not leave the check running on its own
            raise
        finally:
            accepted.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await accepted
        if job.done() and not job.cancelled() and isinstance(job.exception(), UserError):
            error = job.exception()
            assert isinstance(error, UserError)
            block = (
                blocks.modal_error_block(spec, state)
                if isinstance(error, InvalidImage)
                else (blocks.PROMPT_BLOCK_ID if blocks.takes_text(spec) else blocks.IMAGE_BLOCK_ID)
            )
            await ack(response_action="errors", errors={block: error.message})
            await status.stop()
            return
        await ack()
        try:
            reply = await job
        finally:
            await status.stop()
        await self._render(conversation, reply)

    @_listener
    async def _on_shortcut(
        self,
        ack: Any,
        shortcut: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: dict[str, Any],
        request: AsyncBoltRequest,
        respond: AsyncRespond,
    ) -> None:
        """A message shortcut on a message with an image: describe/upscale run at once;
        remix opens a modal for the prompt."""
        await ack()
        message = shortcut.get("message") or {}
        where = Where(
            team_id=str(context.get("team_id") or (shortcut.get("team") or {}).get("id") or ""),
            channel_id=str((shortcut.get("channel") or {}).get("id") or ""),
            user_id=str((shortcut.get("user") or {}).get("id") or ""),
            thread_ts=message.get("thread_ts"),
            response_url=shortcut.get("response_url"),
            is_retry=_is_retry(request),
        )
        conversation = Conversation(client, where, respond)
        context[CONVERSATION_KEY] = conversation
        command = SHORTCUTS[str(shortcut.get("callback_id"))]
        spec = registry.COMMANDS[command]
        file = pick_image_file([f for f in message.get("files") or [] if isinstance(f, dict)])
        if file is None:
            await conversation.ephemeral(blocks.SHORTCUT_NEEDS_IMAGE)
            return
        check_file_type(file)
        if command == "remix":
            if where.is_retry:
                return
            state = blocks.ModalState(
                command=command,
                channel_id=where.channel_id,
                thread_ts=where.thread_ts,
                source=file,
            )
            await client.views_open(
                trigger_id=shortcut["trigger_id"], view=blocks.image_modal(spec, state)
            )
            return
        token = str(context.get("bot_token") or context.get("token") or "")
        image: InputImage = await self.files.fetch_image(file, token)
        invocation = Invocation(
            command=command,
            caller=where.caller(),
            images=(image,),
            request_key=where.request_key(str(shortcut.get("trigger_id") or "")),
        )
        headline = blocks.command_headline(where.user_id, command, "")
        await self._run_job(
            conversation, headline, lambda progress: self.engine.handle(invocation, progress)
        )

    @_listener
    async def _on_button(
        self,
        ack: Any,
        action: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: dict[str, Any],
        request: AsyncBoltRequest,
        respond: AsyncRespond,
    ) -> None:
        """A button under a result: a follow-up job owned by whoever pressed it."""
        await ack()
        container = body.get("container") or {}
        message = body.get("message") or {}
        where = Where(
            team_id=str(context.get("team_id") or (body.get("team") or {}).get("id") or ""),
            channel_id=str(
                (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
            ),
            user_id=str((body.get("user") or {}).get("id") or ""),
            thread_ts=container.get("thread_ts") or message.get("thread_ts"),
            response_url=body.get("response_url"),
            is_retry=_is_retry(request),
        )
        conversation = Conversation(client, where, respond)
        context[CONVERSATION_KEY] = conversation
        action_id = str(action.get("action_id") or action.get("value") or "")
        label = str((action.get("text") or {}).get("text") or action_id)
        parsed = parse_action_id(action_id)
        press = Press(
            action_id=action_id,
            caller=where.caller(),
            request_key=where.request_key(str(body.get("trigger_id") or "")),
        )
        job_id = parsed[1] if parsed else "?"
        headline = blocks.press_headline(where.user_id, label, job_id)
        await self._run_job(
            conversation, headline, lambda progress: self.engine.press(press, progress)
        )

    @_listener
    async def _on_home_opened(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: dict[str, Any],
    ) -> None:
        """Publish the App Home tab: the viewer's usage; to admins, the workspace settings."""
        if event.get("tab", "home") != "home":
            return
        user_id = str(event.get("user") or "")
        is_admin = await self._is_admin(client, user_id)
        where = Where(
            team_id=str(context.get("team_id") or ""),
            channel_id=str(event.get("channel") or ""),
            user_id=user_id,
        )
        caller = where.caller(is_admin=is_admin)
        usage = await self.engine.handle(Invocation("usage", caller))
        settings_text = None
        if is_admin:
            shown = await self.engine.handle(Invocation("settings", caller, text="show"))
            settings_text = shown.text if isinstance(shown, TextReply) else None
        usage_text = usage.text if isinstance(usage, TextReply) else ""
        await client.views_publish(
            user_id=user_id, view=blocks.home_view(usage_text, settings_text)
        )

    async def _on_uninstalled(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        """The single workspace removed the app or its tokens: nothing to forget but a log."""
        log.warning("Slack %s for team %s", event.get("type"), context.get("team_id"))

    async def _on_error(
        self, error: Exception, body: dict[str, Any], context: dict[str, Any]
    ) -> None:
        """The one place errors become words (STYLE.md, habit 5).

        A :class:`~bot.errors.UserError` is shown as is; anything else as a sentence with a
        short reference id, logged in full with the command, user, workspace and job. Shown
        in the job's status message when there is one, else ephemerally.
        """
        conversation = context.get(CONVERSATION_KEY) if context else None
        status = conversation.status if isinstance(conversation, Conversation) else None
        if isinstance(error, UserError):
            text = error.message
        else:
            reference = new_reference_id()
            log.error(
                "slack %s failed (reference %s): %s user=%s team=%s channel=%s job=%s",
                body.get("type") or ("command" if "command" in body else "request"),
                reference,
                body.get("command") or body.get("callback_id") or _first_action_id(body),
                _user_of(body),
                (context or {}).get("team_id"),
                conversation.where.channel_id if isinstance(conversation, Conversation) else "",
                status.job_id if status else None,
                exc_info=(type(error), error, error.__traceback__),
            )
            text = messages.unexpected(reference)
        if not isinstance(conversation, Conversation):
            return
        try:
            if status is not None and status.posted is not None:
                await status.finish_failed(f":x: {blocks.to_mrkdwn(text)}")
            else:
                await conversation.ephemeral(text)
        except Exception:
            log.warning("could not show an error to %s", conversation.where.user_id, exc_info=True)

    # -- shared steps --------------------------------------------------------------------

    async def _run_job(
        self,
        conversation: Conversation,
        headline: str,
        start: Callable[[ProgressCallback], Awaitable[Reply]],
    ) -> None:
        """Run one core call with a status message, then show its reply."""
        status = StatusMessage(conversation, headline, min_interval_s=self._status_interval)
        conversation.status = status
        try:
            reply = await start(status.progress)
        finally:
            await status.stop()
        await self._render(conversation, reply)

    async def _render(self, conversation: Conversation, reply: Reply) -> None:
        """Show a core reply: text privately; a result as files + caption + buttons; a failed
        job in place of its status message."""
        if isinstance(reply, TextReply):
            if reply.duplicate and conversation.where.is_retry:
                log.info("Slack retry of a request already running: %s", reply.text)
                return
            await conversation.ephemeral(reply.text)
            return
        status = conversation.status
        if reply.ok:
            await conversation.post_result(reply)
            if status is not None:
                await status.finish_ok()
            return
        text = blocks.failure_text(reply)
        if status is not None:
            await status.finish_failed(text)
        else:
            await conversation.post(text, [blocks.section(text)])

    async def _is_admin(self, client: AsyncWebClient, user_id: str) -> bool:
        """Workspace admins/owners (``users.info``) and ``SLACK_ADMIN_USER_IDS`` (SPEC §5)."""
        if user_id in self.settings.slack_admin_user_ids:
            return True
        response = await client.users_info(user=user_id)
        user = response.get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    # -- results nobody awaits -----------------------------------------------------------

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
        conversation = Conversation(
            client,
            Where(team_id=result.server_id, channel_id=result.channel_id, user_id=result.owner_id),
        )
        if result.ok:
            await conversation.post_result(result)
        else:
            text = blocks.failure_text(result)
            await conversation.post(text, [blocks.section(text)])


def installations_path(settings: Settings) -> Path:
    """Where multi-workspace installations are kept: ``DATA_DIR/slack-installations.sqlite3``
    (slack-sdk's own schema, so it stays out of the bot's migrated database)."""
    return settings.data_dir / "slack-installations.sqlite3"


def _first_action_id(body: Mapping[str, Any]) -> str:
    actions = body.get("actions") or []
    if actions and isinstance(actions[0], Mapping):
        return str(actions[0].get("action_id") or "")
    view = body.get("view") or {}
    return str(view.get("callback_id") or "") if isinstance(view, Mapping) else ""


def _user_of(body: Mapping[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, Mapping):
        return str(user.get("id") or "")
    return str(body.get("user_id") or "")
