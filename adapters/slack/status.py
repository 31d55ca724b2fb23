"""The in-channel status message of one job: posted at its first progress (queue position),
edited as it moves ("Generating…", with the core's Cancel button), removed when the result is
posted or replaced by the failure.

Edits go through the core's :class:`~bot.progress.ProgressCoalescer`, so the job queue never
waits on Slack and bursts of queue positions become at most one ``chat.update`` per interval
(Slack allows about one message a second per channel).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack import blocks
from adapters.slack.conversation import Conversation, Posted
from bot.progress import ProgressCoalescer
from bot.types import Progress

log = logging.getLogger(__name__)

#: What the status message shows: its fallback text and its blocks.
Shown = tuple[str, list[dict[str, Any]]]

#: Called with a newly posted status message and its job id (to link the message to the job).
OnPosted = Callable[[Posted, str], Awaitable[None]]


class StatusMessage:
    """The in-channel status of one job.

    :meth:`progress` is the core's :data:`~bot.types.ProgressCallback`: it never waits on
    Slack (the job queue calls it inline).

    Args:
        conversation: where to post.
        headline: who ran what, in ``mrkdwn``; the progress text follows it.
        min_interval_s: least seconds between two Slack calls for this message.
        on_posted: awaited once the message is first posted, with the job id.

    Attributes:
        accepted: set at the first progress: the core stored the job (it passed every check).
        job_id: the job, once known.
        posted: the status message, once posted.
    """

    def __init__(
        self,
        conversation: Conversation,
        headline: str,
        *,
        min_interval_s: float,
        on_posted: OnPosted | None = None,
    ) -> None:
        self.conversation = conversation
        self.headline = headline
        self.accepted = asyncio.Event()
        self.job_id: str | None = None
        self.posted: Posted | None = None
        self._on_posted = on_posted
        self._coalescer: ProgressCoalescer[Shown] = ProgressCoalescer(
            self._render, self._show, min_interval_s=min_interval_s, name="slack-status"
        )

    async def progress(self, progress: Progress) -> None:
        """Record ``progress``; queued/running states are shown in the background (final ones
        by :meth:`finish_ok` / :meth:`finish_failed`)."""
        self.job_id = progress.job_id
        self.accepted.set()
        self._coalescer.offer(progress)

    def _render(self, progress: Progress) -> Shown:
        return blocks.status_message(self.headline, progress.text, progress.cancel)

    async def _show(self, shown: Shown) -> bool:
        text, message_blocks = shown
        if self.posted is None:
            await self._post(text, message_blocks)
        else:
            await self.conversation.update(self.posted, text, message_blocks)
        return True

    async def _post(self, text: str, message_blocks: list[dict[str, Any]]) -> None:
        self.posted = await self.conversation.post(text, message_blocks)
        if self._on_posted is not None and self.job_id is not None:
            await self._on_posted(self.posted, self.job_id)

    async def stop(self) -> None:
        """Stop showing progress, letting a Slack call in flight finish (so ``posted`` is
        known and no edit lands after the result)."""
        await self._coalescer.close()

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
            await self._post(text, message_blocks)
        else:
            await self.conversation.update(self.posted, text, message_blocks)
