"""Showing a job's progress on a platform without ever holding up the job queue.

The job runner calls a :data:`~bot.types.ProgressCallback` inline, and queue positions can move
many times a second; a platform edit takes tens or hundreds of milliseconds and is rate limited.
:class:`ProgressCoalescer` sits between the two: :meth:`~ProgressCoalescer.offer` only records the
newest state and wakes one background task per message, which shows states one call at a time,
skipping the ones that were overtaken, at most once per ``min_interval_s``. Both the Discord
progress message and the Slack status message are built on it (``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from bot.types import Progress

log = logging.getLogger(__name__)

S = TypeVar("S")


class ProgressCoalescer(Generic[S]):
    """Coalesces a job's queued/running progress into as few platform edits as possible.

    Args:
        render: turns a :class:`~bot.types.Progress` into what ``show`` takes (text, buttons …);
            equal renders are shown once.
        show: posts or edits the platform message; returns ``True`` when the state is now shown,
            ``False`` when it was not (the task then stops and the next :meth:`offer` retries).
            An exception is logged as a warning and counts as not shown: progress is best effort
            and must never fail the job.
        min_interval_s: least time between two ``show`` calls, in seconds (0: back to back).
        name: the background task's name, for debugging.

    Final states (succeeded, failed, cancelled) are ignored: the result itself replaces the
    progress. A ``queued`` state after a ``running`` one is ignored too, so a late queue-position
    notice never covers "Generating…".
    """

    def __init__(
        self,
        render: Callable[[Progress], S],
        show: Callable[[S], Awaitable[bool]],
        *,
        min_interval_s: float = 0.0,
        name: str = "progress",
    ) -> None:
        self._render = render
        self._show = show
        self._min_interval = min_interval_s
        self._name = name
        self._latest: S | None = None
        self._shown: S | None = None
        self._running = False
        self._closed = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    def offer(self, progress: Progress) -> None:
        """Record ``progress`` and wake the background task (never waits on the platform).

        Call it inside the running event loop.
        """
        if self._closed.is_set() or progress.state not in ("queued", "running"):
            return
        if progress.state == "queued" and self._running:
            return
        self._running = self._running or progress.state == "running"
        self._latest = self._render(progress)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_call = float("-inf")
        while not self._closed.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self._closed.is_set():
                return
            pause = self._min_interval - (loop.time() - last_call)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), pause)
                    return
            latest = self._latest
            if latest is None or latest == self._shown:
                continue
            last_call = loop.time()
            try:
                shown = await self._show(latest)
            except Exception:
                log.warning("showing progress (%s) failed", self._name, exc_info=True)
                shown = False
            if not shown:
                return
            self._shown = latest

    async def close(self) -> None:
        """Stop showing progress; waits for a call in flight to finish (never cancels it
        half-sent, so what it posted is known and no edit lands after the result)."""
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
