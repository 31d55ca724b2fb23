"""The Bolt listeners: Slack payloads in, core calls out, core replies back as Slack messages.

What arrives and what the bot does (the commands are listed in ``docs/commands.md``):

* Slash commands (any name ending in a core command, so ``/ig-imagine`` works as ``/imagine``):
  ``ack()`` at once, then commands that need an image open a modal with a ``file_input``
  (``views.open`` with the ``trigger_id``); the others run through :meth:`Engine.handle`.
* The modal's ``view_submission``: the user's limits (:meth:`Engine.admit`) are checked, then
  the file is downloaded and checked before the ``ack``, so a refusal, a bad file (or a bad
  flag) is answered with ``response_action: errors`` on the field.
* Message shortcuts ``remix_image`` / ``describe_image`` / ``upscale_image`` on a message with
  an image file (downloaded only once the user passed :meth:`Engine.admit`).
* Buttons (``block_actions``, ``action_id`` ``ig:<kind>:<job_id>:<index>``): anyone may press;
  the new job is theirs; state comes from SQLite, so old buttons work after a restart.
* ``app_home_opened``: the App Home tab with the viewer's usage and, to admins, the settings.

Who acted, in which workspace and conversation, comes from what Bolt already read off each
payload (``context.team_id``, ``user_id``, ``channel_id``, ``thread_ts``, ``response_url``,
``client``, ``respond``). Jobs show an in-channel status message
(:class:`~adapters.slack.status.StatusMessage`) that is removed when the result is posted.
Refusals and text answers are ephemeral. Everything that goes wrong is turned into words in one
place, :meth:`Listeners.on_error` (also Bolt's ``@app.error`` handler).

Slack docs followed: "Handling user interaction" (3-second ack), "Modals", "Block Kit", "Using
the Slack Events API" (retries), "Bolt for Python: Async".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.kwargs_injection.async_args import AsyncArgs
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.conversation import Conversation, Where
from adapters.slack.files import check_file_type, pick_image_file
from adapters.slack.status import StatusMessage
from bot import messages
from bot.commands import registry
from bot.errors import InvalidImage, UserError, new_reference_id
from bot.types import Invocation, Press, ProgressCallback, Reply, TextReply, parse_action_id

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger(__name__)

#: Message shortcuts (``callback_id`` in ``slack-manifest.yaml``) → core command.
SHORTCUTS = {"remix_image": "remix", "describe_image": "describe", "upscale_image": "upscale"}

#: Where a listener keeps its :class:`Conversation` in the Bolt context, for the error handler.
CONVERSATION_KEY = "ig_conversation"

#: Seconds a view submission may spend checking the image and starting the job before it must
#: ``ack`` (Slack allows 3 s for the whole round trip).
MODAL_ACK_BUDGET_S = 2.0

#: A listener method: Bolt hands it every argument in one :class:`AsyncArgs`.
Listener = Callable[["Listeners", AsyncArgs], Awaitable[None]]

_COMMAND_NAMES = sorted(registry.for_platform("slack"), key=len, reverse=True)


def command_name(slash: str) -> str:
    """The core command behind a Slack slash command name.

    ``/imagine`` → ``imagine``; a prefixed name such as ``/ig-imagine`` or ``/ig_replace-bg``
    → ``imagine`` / ``replace-bg`` (workspaces may rename commands that clash with other apps'
    in the manifest). Unknown names are returned without the slash, for the core to refuse.
    """
    name = slash.strip().lstrip("/").lower()
    if name in _COMMAND_NAMES:
        return name
    for known in _COMMAND_NAMES:
        if name.endswith(("-" + known, "_" + known)):
            return known
    return name


def _is_retry(request: AsyncBoltRequest | None) -> bool:
    """Whether Slack marked this delivery as a retry (``X-Slack-Retry-Num``; in Socket Mode,
    Bolt copies the envelope's ``retry_attempt`` into the same header)."""
    if request is None:
        return False
    values = request.headers.get("x-slack-retry-num") or []
    return any(str(v).strip() not in ("", "0") for v in values)


def _where(
    context: AsyncBoltContext,
    request: AsyncBoltRequest | None = None,
    *,
    channel_id: str | None = None,
    thread_ts: str | None = None,
) -> Where:
    """The conversation of a request as Bolt read it off the payload; ``channel_id`` and
    ``thread_ts`` win over Bolt's when given (a modal remembers where it was opened)."""
    return Where(
        team_id=context.team_id or "",
        channel_id=channel_id or context.channel_id or "",
        user_id=context.user_id or "",
        thread_ts=thread_ts or context.thread_ts,
        response_url=context.response_url,
        is_retry=_is_retry(request),
    )


def _conversation(context: AsyncBoltContext, where: Where) -> Conversation:
    """A :class:`Conversation` in ``where``, kept in the context for :meth:`Listeners.on_error`."""
    conversation = Conversation(context.client, where, context.respond)
    context[CONVERSATION_KEY] = conversation
    return conversation


def _bot_token(context: AsyncBoltContext) -> str:
    return str(context.bot_token or context.token or "")


def _listener(func: Listener) -> Listener:
    """Wrap a Bolt listener method: count it as in flight, and hand any exception to
    :meth:`Listeners.on_error` itself instead of letting it reach Bolt.

    Why: when a listener raises shortly after ``ack()``, Bolt's asyncio runner (1.30,
    ``run_ack_function_asynchronously``) resets ``ack.response`` to ``None`` before its poller
    has seen it, so the HTTP response waits the full 3 s and goes out as 404 — Slack then shows
    the user a dispatch error on top of ours. The error handler is still the one registered
    with ``@app.error`` (it also gets errors from Bolt's middleware).
    """

    @functools.wraps(func)  # Bolt injects by parameter name: ``args`` is everything at once
    async def guarded(self: Listeners, args: AsyncArgs) -> None:
        self.adapter.track()
        try:
            await func(self, args)
        except Exception as error:
            if args.ack.response is None:
                await args.ack()  # never leave Slack waiting, whatever failed
            await self.on_error(error, args.body, args.context)

    return guarded


class Listeners:
    """The adapter's Bolt listeners; :meth:`register` puts them on the Bolt app.

    Args:
        adapter: the adapter they serve (its engine, files, settings, timings and lifecycle).
    """

    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter
        self.engine = adapter.engine

    def register(self, app: AsyncApp, *, multi_workspace: bool) -> None:
        """Add every listener and the error handler to ``app``."""
        app.command(re.compile(r"^/.+"))(self.on_command)
        app.view_submission(blocks.MODAL_CALLBACK_ID)(self.on_modal_submit)
        app.message_shortcut(re.compile("^(" + "|".join(SHORTCUTS) + ")$"))(self.on_shortcut)
        app.block_action(re.compile(r"^ig:"))(self.on_button)
        app.event("app_home_opened")(self.on_home_opened)
        if multi_workspace:
            # Forget a workspace's tokens when it uninstalls the app (Bolt's own listeners).
            app.enable_token_revocation_listeners()
        else:
            # Subscribed in the manifest; answered so Slack does not retry them.
            app.event("app_uninstalled")(self.on_uninstalled)
            app.event("tokens_revoked")(self.on_uninstalled)
        app.error(self.on_error)

    # -- listeners -----------------------------------------------------------------------

    @_listener
    async def on_command(self, args: AsyncArgs) -> None:
        """A slash command: ack, then a modal (image commands) or a core call."""
        await args.ack()
        command, context = args.command or {}, args.context
        where = _where(context, args.request)
        conversation = _conversation(context, where)
        name = command_name(str(command.get("command") or ""))
        text = str(command.get("text") or "")
        spec = registry.get(name, "slack")

        if spec is not None and spec.takes_image:
            if where.is_retry:
                return  # the first delivery opened the modal; its trigger_id is spent anyway
            state = blocks.ModalState(command=spec.name, channel_id=where.channel_id)
            await context.client.views_open(
                trigger_id=command["trigger_id"], view=blocks.image_modal(spec, state, text)
            )
            return

        is_admin = False
        words = text.split()
        if name == "settings" and words and words[0].lower() in ("set", "reset"):
            # Only changes need the users.info round trip; the core checks the flag again.
            is_admin = await self._is_admin(context.client, where.user_id)
        invocation = Invocation(
            command=name,
            caller=where.caller(is_admin=is_admin),
            text=text,
            request_key=where.request_key(str(command.get("trigger_id") or "")),
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
    async def on_modal_submit(self, args: AsyncArgs) -> None:
        """An image-command modal was submitted: check the image, start the job, then ack.

        Errors found within the adapter's ``modal_ack_budget_s`` keep the modal open with the
        message on the field (``response_action: errors``); later ones are shown ephemerally.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.adapter.modal_ack_budget_s
        ack, view, context = args.ack, args.view or {}, args.context
        try:
            state = blocks.ModalState.load(str(view.get("private_metadata") or ""))
        except ValueError:
            await ack()
            log.warning("a %s modal without our metadata was submitted", blocks.MODAL_CALLBACK_ID)
            return
        spec = registry.get(state.command, "slack")
        if spec is None or not spec.takes_image:
            await ack()
            return
        where = _where(context, channel_id=state.channel_id, thread_ts=state.thread_ts)
        conversation = _conversation(context, where)
        token = _bot_token(context)
        files = [state.source] if state.source else blocks.submitted_files(view)
        text = blocks.submitted_text(view)
        status = self._status(conversation, blocks.command_headline(where.user_id, spec.name, text))

        async def run() -> Reply:
            if not files:
                raise InvalidImage(messages.NEEDS_IMAGE.format(command=spec.name))
            # A user refused anyway costs no download and no decoding.
            await self.engine.admit(spec.name, where.caller())
            image = await self.adapter.files.fetch_image(files[0], token)
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
    async def on_shortcut(self, args: AsyncArgs) -> None:
        """A message shortcut on a message with an image: describe/upscale run at once;
        remix opens a modal for the prompt."""
        await args.ack()
        shortcut, context = args.shortcut or {}, args.context
        where = _where(context, args.request)
        conversation = _conversation(context, where)
        command = SHORTCUTS[str(shortcut.get("callback_id"))]
        spec = registry.COMMANDS[command]
        message = shortcut.get("message") or {}
        file = pick_image_file([f for f in message.get("files") or [] if isinstance(f, dict)])
        if file is None:
            await conversation.ephemeral(blocks.SHORTCUT_NEEDS_IMAGE)
            return
        check_file_type(file)
        if command == "remix":
            if where.is_retry:
                return
            state = blocks.ModalState(
                command=command, channel_id=where.channel_id, thread_ts=where.thread_ts, source=file
            )
            await context.client.views_open(
                trigger_id=shortcut["trigger_id"], view=blocks.image_modal(spec, state)
            )
            return
        await self.engine.admit(command, where.caller())
        image = await self.adapter.files.fetch_image(file, _bot_token(context))
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
    async def on_button(self, args: AsyncArgs) -> None:
        """A button under a result: a follow-up job owned by whoever pressed it."""
        await args.ack()
        action, body, context = args.action or {}, args.body, args.context
        container = body.get("container") or {}
        where = _where(
            context,
            args.request,
            # Bolt reads ``channel``; the container also names it (and the thread) for messages.
            channel_id=context.channel_id or container.get("channel_id"),
            thread_ts=container.get("thread_ts"),
        )
        conversation = _conversation(context, where)
        action_id = str(action.get("action_id") or action.get("value") or "")
        label = str((action.get("text") or {}).get("text") or action_id)
        parsed = parse_action_id(action_id)
        press = Press(
            action_id=action_id,
            caller=where.caller(),
            request_key=where.request_key(str(body.get("trigger_id") or "")),
        )
        headline = blocks.press_headline(where.user_id, label, parsed[1] if parsed else "?")
        await self._run_job(
            conversation, headline, lambda progress: self.engine.press(press, progress)
        )

    @_listener
    async def on_home_opened(self, args: AsyncArgs) -> None:
        """Publish the App Home tab: the viewer's usage; to admins, the workspace settings."""
        event, context = args.event or {}, args.context
        if event.get("tab", "home") != "home":
            return
        where = _where(context)
        is_admin = await self._is_admin(context.client, where.user_id)
        caller = where.caller(is_admin=is_admin)
        usage = await self.engine.handle(Invocation("usage", caller))
        settings_text = None
        if is_admin:
            shown = await self.engine.handle(Invocation("settings", caller, text="show"))
            settings_text = shown.text if isinstance(shown, TextReply) else None
        usage_text = usage.text if isinstance(usage, TextReply) else ""
        await context.client.views_publish(
            user_id=where.user_id, view=blocks.home_view(usage_text, settings_text)
        )

    async def on_uninstalled(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """The single workspace removed the app or its tokens: nothing to forget but a log."""
        log.warning("Slack %s for team %s", event.get("type"), context.team_id)

    async def on_error(
        self, error: Exception, body: dict[str, Any], context: Mapping[str, Any]
    ) -> None:
        """The one place errors become words.

        A :class:`~bot.errors.UserError` is shown as is; anything else as a sentence with a
        short reference id, logged in full with the command, user, workspace and job. Shown
        in the job's status message when there is one, else ephemerally.
        """
        conversation = context.get(CONVERSATION_KEY)
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
                context.get("user_id"),
                context.get("team_id"),
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

    def _status(self, conversation: Conversation, headline: str) -> StatusMessage:
        """A status message for the job this interaction starts, linked to it once posted."""
        status = StatusMessage(
            conversation,
            headline,
            min_interval_s=self.adapter.status_interval_s,
            on_posted=self.adapter.link,
        )
        conversation.status = status
        return status

    async def _run_job(
        self,
        conversation: Conversation,
        headline: str,
        start: Callable[[ProgressCallback], Awaitable[Reply]],
    ) -> None:
        """Run one core call with a status message, then show its reply."""
        status = self._status(conversation, headline)
        try:
            reply = await start(status.progress)
        finally:
            await status.stop()
        await self._render(conversation, reply)

    async def _render(self, conversation: Conversation, reply: Reply) -> None:
        """Show a core reply: text privately; a job's result through the adapter."""
        if not isinstance(reply, TextReply):
            await self.adapter.publish(conversation, reply)
        elif reply.duplicate and conversation.where.is_retry:
            log.info("Slack retry of a request already running: %s", reply.text)
        else:
            await conversation.ephemeral(reply.text)

    async def _is_admin(self, client: AsyncWebClient, user_id: str) -> bool:
        """Workspace admins/owners (``users.info``) and ``SLACK_ADMIN_USER_IDS``."""
        if user_id in self.adapter.settings.slack_admin_user_ids:
            return True
        response = await client.users_info(user=user_id)
        user = response.get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


def _first_action_id(body: Mapping[str, Any]) -> str:
    actions = body.get("actions") or []
    if actions and isinstance(actions[0], Mapping):
        return str(actions[0].get("action_id") or "")
    view = body.get("view") or {}
    return str(view.get("callback_id") or "") if isinstance(view, Mapping) else ""
