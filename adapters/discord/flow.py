"""The interaction flow: defer, run in the core, show progress, post the result.

Every slash command, context menu, modal submit and button press goes through
:class:`InteractionFlow` (``docs/architecture.md``, "One command, end to end"):

1. **Acknowledge** within Discord's 3 s: ``defer(thinking=True)`` — public for commands that
   make a job (the "thinking" message becomes the progress message and then the result),
   ephemeral for text answers (``/usage``, ``/help`` …). Nothing runs before the deferral.
2. **Translate** the interaction into an :class:`~bot.types.Invocation` or
   :class:`~bot.types.Press` (caller, guild, channel, Manage Server, attachments) with the
   interaction id as ``request_key``, so the same delivery twice starts one job. Attachments
   are downloaded only once the caller passed :meth:`~bot.engine.Engine.admit` (channel,
   active jobs, quota, budget).
3. **Progress**: queue position, then "Generating…", edited into the original response by
   :class:`~adapters.discord.progress.ProgressMessage`, which never holds up the job queue.
4. **Result**: the original response is edited into the result (caption, files, buttons). When
   the interaction token has expired (15 minutes; Discord error 50027/10015) the result is
   posted in the channel with the bot token instead and the stale progress message removed.
   Every message that shows a job is linked to it (:meth:`InteractionFlow.link`), so ✉️ and ❌
   find the job, also after a restart.
5. **Errors**: :meth:`InteractionFlow.report_error` is the one handler for the command tree,
   buttons and modals — a :class:`~bot.errors.UserError` is shown ephemerally in its own words,
   anything else as one sentence with a reference id and logged in full.

Platform doc followed: discord-api-docs "Interactions › Receiving and responding" (response
types 5/6, followups, the 15-minute token, "the first followup after a deferral edits the
loading message") and "Message resource" (limits).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord import render
from adapters.discord.inputs import fetch_input_image
from adapters.discord.progress import UNKNOWN_MESSAGE, ProgressMessage, is_token_dead
from adapters.discord.views import result_view
from bot import messages
from bot.commands import registry
from bot.engine import Engine
from bot.errors import UserError, new_reference_id
from bot.images import MAX_RAW_INPUT_BYTES
from bot.types import (
    ActionKind,
    Caller,
    Invocation,
    JobResult,
    Press,
    ProgressCallback,
    Reply,
    TextReply,
    parse_action_id,
)

if TYPE_CHECKING:
    from adapters.discord.client import IdeogramBot

log = logging.getLogger(__name__)

#: Key of the :class:`Ack` in ``interaction.extras`` (discord.py leaves that dict to us).
ACK_KEY = "ideogram_ack"

#: 40060 Interaction has already been acknowledged (a second delivery of the same interaction).
ALREADY_ACKNOWLEDGED = 40060

#: Shown for a moment on a public progress message before it is replaced by an ephemeral
#: answer (Discord ignores ``ephemeral`` on the first followup after a deferral, so the
#: loading state must end before the private answer is sent).
_ENDING = "…"


@dataclass(slots=True)
class Ack:
    """How an interaction was acknowledged.

    Attributes:
        public: deferred with a public "thinking" message (the progress/result message).
        message_id: the id of that message (from the callback response), if known.
    """

    public: bool
    message_id: int | None = None


def caller_of(interaction: discord.Interaction[Any]) -> Caller:
    """The core's view of who ran an interaction, and where.

    ``is_admin`` is Manage Server (or Administrator) in ``member.permissions`` — the resolved
    permissions Discord sends with a guild interaction; in a DM nobody is an admin.
    """
    permissions = interaction.permissions
    in_guild = interaction.guild_id is not None
    return Caller(
        platform="discord",
        user_id=str(interaction.user.id),
        server_id=str(interaction.guild_id) if in_guild else "",
        channel_id=str(interaction.channel_id or ""),
        is_admin=in_guild and (permissions.manage_guild or permissions.administrator),
    )


def _unwrap(error: BaseException) -> BaseException:
    """The exception a command raised, out of discord.py's wrappers."""
    while isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        inner = error.__cause__ or getattr(error, "original", None)
        if inner is None:
            break
        error = inner
    return error


class InteractionFlow:
    """Runs interactions against the engine and answers them on Discord.

    Args:
        client: the bot client (REST, channels, the interaction's session).
        engine: the core engine.
        allowed_hosts: hosts attachments may be downloaded from (see
            :func:`adapters.discord.inputs.file_hosts`).

    Attributes:
        max_input_bytes: the most bytes read of one attachment (the download stops past it).
    """

    def __init__(
        self,
        client: IdeogramBot,
        engine: Engine,
        *,
        session: aiohttp.ClientSession,
        allowed_hosts: frozenset[str],
    ) -> None:
        self.client = client
        self.engine = engine
        self.session = session
        self.allowed_hosts = allowed_hosts
        self.max_input_bytes = MAX_RAW_INPUT_BYTES

    # -- bookkeeping -----------------------------------------------------------------------

    async def link(self, channel_id: int | None, message_id: int, job_id: str) -> None:
        """Record that message ``message_id`` in ``channel_id`` shows job ``job_id``
        (:meth:`bot.engine.Engine.link_message`), so ✉️ and ❌ on it find the job, also after a
        restart. Nothing is recorded without a channel id.

        Never raises: the link only serves reactions, so a failure is logged and the message
        it was for stays posted.
        """
        if channel_id is None:
            return
        try:
            await self.engine.link_message("discord", str(channel_id), str(message_id), job_id)
        except Exception:
            log.warning("job %s: could not link message %s", job_id, message_id, exc_info=True)

    # -- entry points ----------------------------------------------------------------------

    async def command(
        self,
        interaction: discord.Interaction[Any],
        command: str,
        *,
        text: str = "",
        options: Mapping[str, Any] | None = None,
        attachments: Sequence[discord.Attachment] = (),
    ) -> None:
        """Run a slash command, context menu or modal submit.

        Args:
            interaction: the application command or modal submit interaction.
            command: the core command name (``imagine``, ``remix`` …).
            text: the free text: prompt with inline flags, or arguments.
            options: typed options by their names in ``docs/commands.md``; ``None`` values
                are left out.
            attachments: input images, read at once (their URLs are signed and expire).

        Raises:
            UserError: a refusal, for :meth:`report_error` (the tree's error handler).
        """
        spec = registry.get(command)
        public = spec is not None and (spec.calls_api or spec.name == "show")
        ack = await self._defer(interaction, public=public)
        if ack is None:
            return
        caller = caller_of(interaction)
        if attachments:
            # A user refused anyway costs no download and no decoding.
            await self.engine.admit(command, caller)
        images = tuple(
            [
                await fetch_input_image(
                    a,
                    session=self.session,
                    allowed_hosts=self.allowed_hosts,
                    max_bytes=self.max_input_bytes,
                )
                for a in attachments
            ]
        )
        invocation = Invocation(
            command=command,
            caller=caller,
            text=text,
            options={k: v for k, v in (options or {}).items() if v is not None},
            images=images,
            request_key=f"discord:{interaction.id}",
        )
        log.debug("interaction %s: /%s by %s", interaction.id, command, caller.user_id)
        await self._run(interaction, ack, lambda progress: self.engine.handle(invocation, progress))

    async def press(self, interaction: discord.Interaction[Any], custom_id: str) -> None:
        """Run the button behind an ``ig:`` custom_id: a follow-up job, or Cancel.

        The presser owns (and pays for) a follow-up job, shown in a new public message; Cancel
        is answered privately. Errors go to :meth:`report_error` here, because discord.py only
        logs exceptions raised by component callbacks.
        """
        try:
            parsed = parse_action_id(custom_id)
            # Cancel answers privately; every other button makes a job with a public message.
            is_cancel = parsed is not None and parsed[0] is ActionKind.CANCEL
            ack = await self._defer(interaction, public=not is_cancel)
            if ack is None:
                return
            press = Press(
                action_id=custom_id,
                caller=caller_of(interaction),
                request_key=f"discord:{interaction.id}",
            )
            await self._run(interaction, ack, lambda progress: self.engine.press(press, progress))
        except Exception as exc:
            await self.report_error(interaction, exc)

    async def deliver_unattended(self, result: JobResult) -> None:
        """Post a result nobody awaits (a job resumed after a restart) in its channel.

        Registered with :meth:`bot.engine.Engine.set_deliverer` for platform ``discord``. The
        upload limit is Discord's default, since there is no interaction to report another.
        Jobs recovered at start-up finish before the REST login is done, so the post waits for
        it; the runner calls deliverers from the finished job's own task (or a background task
        at recovery), so nothing else waits with it.
        """
        if result.status == "cancelled" or not result.channel_id.isdigit():
            return
        await self.client.rest_ready.wait()
        rendered = await render.render_result(
            result, limit_bytes=discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
        )
        message = await self._post_in_channel(int(result.channel_id), rendered)
        if message is not None:
            await self.link(int(result.channel_id), message.id, result.job_id)

    # -- the shared steps ------------------------------------------------------------------

    async def _defer(self, interaction: discord.Interaction[Any], *, public: bool) -> Ack | None:
        """Acknowledge the interaction; ``None`` when it was already acknowledged or is dead.

        A second delivery of the same interaction is refused by Discord with 40060: the first
        delivery is handling it, so this one stops without touching the engine.
        """
        try:
            response = await interaction.response.defer(thinking=True, ephemeral=not public)
        except discord.InteractionResponded:
            return None
        except discord.HTTPException as exc:
            if exc.code == ALREADY_ACKNOWLEDGED:
                log.info("interaction %s delivered twice; ignoring the copy", interaction.id)
            else:
                log.warning(
                    "could not acknowledge interaction %s: %s %s",
                    interaction.id,
                    exc.status,
                    exc.code,
                )
            return None
        ack = Ack(public=public, message_id=response.message_id if response else None)
        interaction.extras[ACK_KEY] = ack
        return ack

    async def _run(
        self,
        interaction: discord.Interaction[Any],
        ack: Ack,
        call: Callable[[ProgressCallback], Awaitable[Reply]],
    ) -> None:
        progress = ProgressMessage(
            interaction,
            message_id=ack.message_id,
            link=partial(self.link, interaction.channel_id),
        )
        try:
            reply = await call(progress.update)
        finally:
            await progress.close()
        if isinstance(reply, TextReply):
            await self.tell(interaction, reply.text)
            return
        if progress.deleted:
            # The requester deleted the progress message with ❌: the result stays in /history.
            log.info("job %s: its message was deleted; not posting", reply.job_id)
            return
        await self._post_result(interaction, ack, reply, token_dead=progress.dead)

    async def _post_result(
        self,
        interaction: discord.Interaction[Any],
        ack: Ack,
        result: JobResult,
        *,
        token_dead: bool,
    ) -> None:
        rendered = await render.render_result(result, limit_bytes=interaction.filesize_limit)
        if not token_dead and not interaction.is_expired():
            view = result_view(rendered.rows)
            try:
                message = await interaction.edit_original_response(
                    content=rendered.content,
                    attachments=rendered.new_files(),
                    view=view,
                    allowed_mentions=rendered.allowed_mentions(),
                )
            except discord.HTTPException as exc:
                if exc.code == UNKNOWN_MESSAGE:
                    log.info("job %s: its message was deleted; not posting", result.job_id)
                    return
                if not is_token_dead(exc):
                    raise
                log.info("interaction %s token expired; posting in the channel", interaction.id)
            else:
                await self.link(interaction.channel_id, message.id, result.job_id)
                return
        # After 15 minutes every webhook path is dead: post with the bot token instead.
        channel_id = interaction.channel_id
        if channel_id is None:
            log.error("job %s: expired interaction without a channel", result.job_id)
            return
        posted = await self._post_in_channel(channel_id, rendered)
        if posted is not None:
            await self.link(channel_id, posted.id, result.job_id)
        if ack.public and ack.message_id is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.client.http.delete_message(channel_id, ack.message_id)

    async def _post_in_channel(
        self, channel_id: int, rendered: render.RenderedResult
    ) -> discord.Message | None:
        channel = self.client.get_partial_messageable(channel_id)
        try:
            return await channel.send(
                content=rendered.content,
                files=rendered.new_files(),
                view=result_view(rendered.rows) or discord.utils.MISSING,
                allowed_mentions=rendered.allowed_mentions(),
            )
        except discord.HTTPException as exc:
            # E.g. no Send Messages / Attach Files in that channel: /history + /show still work.
            log.error(
                "job %s: posting in channel %s failed: %s %s",
                rendered.job_id,
                channel_id,
                exc.status,
                exc.code,
            )
            return None

    async def _delete_original(self, interaction: discord.Interaction[Any], ack: Ack) -> None:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            if exc.code == UNKNOWN_MESSAGE or is_token_dead(exc):
                return
            log.warning("could not delete the original response: %s %s", exc.status, exc.code)

    # -- answering privately ---------------------------------------------------------------

    async def tell(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Tell the user something only they see (ephemeral), in as many messages as it takes.

        * not yet acknowledged: an ephemeral response;
        * deferred ephemerally: the deferred message is edited;
        * deferred publicly: the public progress message ends, an ephemeral followup carries
          the text, and the progress message is deleted (Discord applies the deferral's
          visibility to the first followup, so the loading state must end first).

        Text beyond 2,000 characters continues in ephemeral followups.
        """
        first, *rest = render.split_content(text)
        mentions = discord.AllowedMentions.none()
        try:
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    first, ephemeral=True, allowed_mentions=mentions
                )
            elif interaction.is_expired():
                log.info("interaction %s expired before its answer", interaction.id)
                return
            else:
                ack: Ack | None = interaction.extras.get(ACK_KEY)
                if ack is None or not ack.public:
                    await interaction.edit_original_response(
                        content=first, allowed_mentions=mentions
                    )
                else:
                    await interaction.edit_original_response(content=_ENDING)
                    await interaction.followup.send(
                        first, ephemeral=True, allowed_mentions=mentions
                    )
                    await self._delete_original(interaction, ack)
            for part in rest:
                await interaction.followup.send(part, ephemeral=True, allowed_mentions=mentions)
        except discord.HTTPException as exc:
            log.warning(
                "could not answer interaction %s: %s %s", interaction.id, exc.status, exc.code
            )

    async def report_error(
        self, interaction: discord.Interaction[Any], error: BaseException
    ) -> None:
        """The one error handler of the command tree, the buttons and the modals.

        A :class:`~bot.errors.UserError` is shown ephemerally in its own words. Anything else is
        logged in full with the command, user, guild, channel and custom_id, and the user sees
        one sentence with a short reference id — never exception text, tokens or URLs.
        """
        original = _unwrap(error)
        if isinstance(original, UserError):
            log.info(
                "interaction %s refused for user %s: %s",
                interaction.id,
                interaction.user.id if interaction.user else "?",
                original.message,
            )
            await self.tell(interaction, original.message)
            return
        reference = new_reference_id()
        command = interaction.command.qualified_name if interaction.command else None
        log.error(
            "unexpected error (reference %s) in interaction %s: command=%s custom_id=%s "
            "user=%s guild=%s channel=%s",
            reference,
            interaction.id,
            command,
            interaction.custom_id,
            interaction.user.id if interaction.user else None,
            interaction.guild_id,
            interaction.channel_id,
            exc_info=(type(original), original, original.__traceback__),
        )
        await self.tell(interaction, messages.unexpected(reference))
