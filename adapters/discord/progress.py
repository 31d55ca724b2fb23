"""A job's progress in the deferred original response: queue position, then "Generating…".

:class:`ProgressMessage` is the core's :class:`~bot.progress.ProgressCoalescer` with a Discord
edit as its ``show``: the job runner's listener only records the newest state, so a slow or
rate-limited edit never holds up the queue. The message is linked to its job
(:meth:`bot.engine.Engine.link_message`) before its first edit, so ✉️ and ❌ on it find the job.

Platform doc followed: discord-api-docs "Interactions › Receiving and responding" (Edit Original
Interaction Response, the 15-minute token) and "Opcodes and Status Codes" (JSON error codes).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord

from adapters.discord import render
from adapters.discord.views import result_view
from bot.progress import ProgressCoalescer
from bot.types import Action, Progress

log = logging.getLogger(__name__)

#: Discord JSON error codes meaning "this interaction token can no longer be used".
#: 10015 Unknown Webhook, 10062 Unknown Interaction, 50027 Invalid Webhook Token.
TOKEN_DEAD_CODES = frozenset({10015, 10062, 50027})
#: 10008 Unknown Message.
UNKNOWN_MESSAGE = 10008

#: Links a message (id) to the job (id) it shows.
LinkMessage = Callable[[int, str], Awaitable[None]]


def is_token_dead(error: discord.HTTPException) -> bool:
    """True when ``error`` says the interaction token is expired or unknown (webhook calls
    with it will keep failing; the bot token must be used instead)."""
    return error.code in TOKEN_DEAD_CODES or error.status == 401


@dataclass(frozen=True, slots=True)
class _Shown:
    """What the progress message shows: the text and the core's Cancel button, if any."""

    text: str
    cancel: Action | None


def _render(progress: Progress) -> _Shown:
    return _Shown(render.progress_content(progress), progress.cancel)


class ProgressMessage:
    """Shows a job's progress in an interaction's original response, one edit at a time.

    The text is the core's sentence with the job id, with the core's Cancel button while the
    job is queued or running. :meth:`close` waits for an edit in flight, so no progress edit
    lands after the result.

    Args:
        interaction: the deferred interaction; its original response shows the progress.
        message_id: the original response's id, when the deferral reported it (else it is
            learnt from the first edit).
        link: records that a message shows a job; a failure must be handled inside it.

    Attributes:
        dead: the interaction token no longer works: the result goes in with the bot token.
        deleted: the message is gone (❌ by the requester): no result is posted.
    """

    def __init__(
        self,
        interaction: discord.Interaction[Any],
        *,
        message_id: int | None,
        link: LinkMessage,
    ) -> None:
        self._interaction = interaction
        self._message_id = message_id
        self._link = link
        self._job_id = ""
        self._linked = False
        self.dead = False
        self.deleted = False
        self._coalescer = ProgressCoalescer(_render, self._show, name="discord-progress")

    async def update(self, progress: Progress) -> None:
        """The core's progress listener: records ``progress`` and returns at once."""
        self._job_id = progress.job_id
        self._coalescer.offer(progress)

    async def close(self) -> None:
        """Stop showing progress; waits for an edit in flight (never cancels it half-sent)."""
        await self._coalescer.close()

    async def _show(self, shown: _Shown) -> bool:
        if self.dead or self.deleted:
            return False
        # Linked before the edit: a ❌ on a queued job's message may follow the edit at once.
        await self._link_once()
        view = result_view([[shown.cancel]]) if shown.cancel is not None else None
        try:
            message = await self._interaction.edit_original_response(content=shown.text, view=view)
        except discord.HTTPException as exc:
            if is_token_dead(exc):
                self.dead = True
            elif exc.code == UNKNOWN_MESSAGE:
                self.deleted = True
            else:
                log.warning("progress edit failed: %s %s", exc.status, exc.code)
            return False
        self._message_id = message.id
        await self._link_once()
        return True

    async def _link_once(self) -> None:
        if not self._linked and self._message_id is not None:
            await self._link(self._message_id, self._job_id)
            self._linked = True
