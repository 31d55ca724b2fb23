"""Telling a job's listener how it goes: queued (with its place), running, final state.

Updates of one job go to the listener given at submit time one at a time and in order; a
queue position that arrives after the job has moved on is dropped, and a failing listener (a
platform hiccup) never fails the job. The :class:`bot.jobs.JobRunner` decides when positions
are sent (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging

from bot.fair_queue import QueueEntry
from bot.types import Action, ActionKind, Progress

log = logging.getLogger(__name__)


def cancellable(entry: QueueEntry, state: str, position: int | None, text: str) -> Progress:
    """A :class:`~bot.types.Progress` of ``entry`` that offers a Cancel button."""
    cancel = Action(ActionKind.CANCEL, entry.job_id, 0, "Cancel")
    return Progress(entry.job_id, state, position, text, cancel)  # type: ignore[arg-type]


async def emit(entry: QueueEntry, progress: Progress) -> None:
    """Send ``progress`` to the listener of ``entry``, if it has one; never raises."""
    if entry.listener is None:
        return
    async with entry.lock:  # one update at a time per job, in order
        if progress.state == "queued" and progress.position is not None:
            if entry.stage != "queued":
                return  # a stale position: the job has moved on
        else:
            entry.stage = progress.state
        try:
            await entry.listener(progress)
        except Exception:
            # A platform hiccup while showing progress must not fail the job.
            log.warning("progress listener failed for job %s", entry.job_id, exc_info=True)


def retrieve(done: asyncio.Future[str]) -> None:
    """Mark a job's error as seen: a resumed job's future has nobody awaiting it."""
    if not done.cancelled():
        done.exception()
