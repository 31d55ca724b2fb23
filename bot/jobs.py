"""Jobs: a fair queue, a global in-flight limit counted in images, and job execution (SPEC §4).

* Jobs wait in per-user queues served round-robin, so one user's batch does not starve a
  channel. The head job of the next user in turn starts as soon as its images fit under
  ``max_in_flight`` (a 4-image request takes 4 places, as Ideogram counts them).
* A job runs the engine's executor (the Ideogram call), stores result images by SHA-256, and
  finishes in one database transaction that also writes the usage ledger row when the API
  billed it. Requests the API rejected (400, 422, 429) and jobs that failed on our side are not
  charged (SPEC §4).
* Progress (queue position, running, final state) goes to the listener given at submit time.
* On start-up, jobs left ``queued`` are resumed in their order and jobs left ``running`` are
  failed with an honest message (the API may have run them) and never charged twice (SPEC §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot import messages
from bot.config import PriceTable
from bot.errors import (
    IdeogramAuthError,
    IdeogramCreditsError,
    IdeogramDownloadError,
    IdeogramError,
    IdeogramInvalidRequest,
    IdeogramRateLimited,
    IdeogramSafetyError,
    IdeogramServerError,
    IdeogramTimeout,
    UserError,
    new_reference_id,
)
from bot.ideogram.client import GeneratedImage
from bot.image_store import ImageStore
from bot.pricing import estimate_usd
from bot.types import Progress, ProgressCallback
from storage import Charge, Database, JobRecord, NewImage
from storage import jobs as jobs_repo
from storage import usage as usage_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an executor got from the API: images (some maybe withheld) or descriptions."""

    images: Sequence[GeneratedImage] = ()
    descriptions: Sequence[str] = ()


Executor = Callable[[JobRecord], Awaitable[Outcome]]
FinishedHook = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class _Entry:
    job_id: str
    user_key: str
    weight: int
    listener: ProgressCallback | None
    done: asyncio.Future[str]
    last_position: int | None = None


class FairQueue:
    """Per-user FIFO queues served round-robin.

    The order in which jobs will start is: the head of each user's queue in turn (users in the
    order they first queued), then the second job of each, and so on.
    """

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[_Entry]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, entry: _Entry) -> None:
        """Append ``entry`` to its user's queue."""
        self._queues.setdefault(entry.user_key, deque()).append(entry)

    def peek(self) -> _Entry | None:
        """Return the entry that :meth:`pop` would return, without removing it."""
        for queue in self._queues.values():
            return queue[0]
        return None

    def pop(self) -> _Entry:
        """Remove and return the next entry in round-robin order.

        Raises:
            IndexError: the queue is empty.
        """
        if not self._queues:
            raise IndexError("pop from an empty FairQueue")
        user_key, queue = next(iter(self._queues.items()))
        entry = queue.popleft()
        # The user who was just served goes to the back of the line.
        del self._queues[user_key]
        if queue:
            self._queues[user_key] = queue
        return entry

    def remove(self, job_id: str) -> _Entry | None:
        """Remove the queued entry of ``job_id``; return it, or ``None`` if not queued."""
        for user_key, queue in self._queues.items():
            for entry in queue:
                if entry.job_id == job_id:
                    queue.remove(entry)
                    if not queue:
                        del self._queues[user_key]
                    return entry
        return None

    def order(self) -> list[_Entry]:
        """All queued entries in the order they will start."""
        queues = [list(q) for q in self._queues.values()]
        out: list[_Entry] = []
        depth = 0
        while True:
            layer = [q[depth] for q in queues if depth < len(q)]
            if not layer:
                return out
            out.extend(layer)
            depth += 1


class JobRunner:
    """Runs queued jobs under the in-flight limit and records their outcome.

    Args:
        db: the database.
        store: where result images are kept.
        execute: the engine's function that calls the API for one job.
        prices: the price table for charging.
        max_in_flight: images in flight at the API at once (``IDEOGRAM_MAX_IN_FLIGHT``).
        on_finished: called with the job id after every job reaches a final state and nobody
            is waiting on it (e.g. a job resumed after a restart), so the platform can post it.
    """

    def __init__(
        self,
        *,
        db: Database,
        store: ImageStore,
        execute: Executor,
        prices: PriceTable,
        max_in_flight: int,
        on_finished: FinishedHook | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._execute = execute
        self._prices = prices
        self.max_in_flight = max_in_flight
        self.on_finished = on_finished
        self._queue = FairQueue()
        self._entries: dict[str, _Entry] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._in_flight = 0
        self.peak_in_flight = 0
        self._changed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        """Images currently in flight at the API."""
        return self._in_flight

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> tuple[int, int]:
        """Recover from the last run and start dispatching.

        Returns:
            ``(resumed, interrupted)``: queued jobs resumed, running jobs failed.
        """
        interrupted = 0
        resumed = 0
        for job in await jobs_repo.list_jobs_by_status(self._db, ["running", "queued"]):
            if job.status == "running":
                # The API may have run (and billed) it: report honestly, charge nothing more.
                await jobs_repo.finish_job(
                    self._db,
                    job.id,
                    status="failed",
                    now=time.time(),
                    error=messages.INTERRUPTED,
                )
                interrupted += 1
                if self.on_finished is not None:
                    await self._notify_finished(job.id)
            else:
                self.submit(job, listener=None)
                resumed += 1
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="job-dispatcher")
        return resumed, interrupted

    async def close(self) -> None:
        """Stop dispatching and cancel running jobs (they are failed on the next start)."""
        tasks: list[asyncio.Task[None]] = [*self._running.values(), *self._background]
        if self._dispatcher is not None:
            tasks.append(self._dispatcher)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for entry in self._entries.values():
            if not entry.done.done():
                entry.done.cancel()

    # -- submitting ------------------------------------------------------------------------

    def submit(self, job: JobRecord, listener: ProgressCallback | None) -> asyncio.Future[str]:
        """Queue ``job`` (already stored with status ``queued``).

        Returns:
            A future resolved with the job's final status when it finishes.
        """
        weight = max(1, min(job.num_images, self.max_in_flight))
        user_key = f"{job.platform}:{job.owner_id}"
        entry = _Entry(
            job.id, user_key, weight, listener, asyncio.get_running_loop().create_future()
        )
        self._entries[job.id] = entry
        self._queue.push(entry)
        self._changed.set()
        return entry.done

    def position(self, job_id: str) -> int | None:
        """1-based place of ``job_id`` in the start order, or ``None`` if not queued."""
        for i, entry in enumerate(self._queue.order(), start=1):
            if entry.job_id == job_id:
                return i
        return None

    async def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job.

        A queued job never reaches the API. A running job is marked cancelled and its result
        discarded; the API call is left to finish so that nothing is billed without a record.

        Returns:
            The status the job had (``queued``/``running``), or ``None`` if it was not active.
        """
        previous = await jobs_repo.cancel_job(self._db, job_id, now=time.time())
        if previous is None:
            return None
        entry = self._queue.remove(job_id)
        if entry is not None:
            await self._emit(entry, Progress(job_id, "cancelled", None, messages.CANCELLED))
            self._resolve(entry, "cancelled")
            self._changed.set()
        return previous

    async def wait(self, job_id: str) -> str | None:
        """Wait until ``job_id`` is final; return its status (``None`` if it is not tracked)."""
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        return await asyncio.shield(entry.done)

    # -- dispatching -----------------------------------------------------------------------

    def _fits(self) -> bool:
        head = self._queue.peek()
        return head is not None and self._in_flight + head.weight <= self.max_in_flight

    async def _dispatch_loop(self) -> None:
        # One task starts jobs; submit, release and cancel only set ``_changed``. Clearing
        # before looking is safe on one event loop: a set() after the clear wakes the wait.
        while True:
            self._changed.clear()
            while self._fits():
                entry = self._queue.pop()
                self._in_flight += entry.weight
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                task = asyncio.create_task(self._run(entry), name=f"job-{entry.job_id}")
                self._running[entry.job_id] = task
            self._publish_positions()
            await self._changed.wait()

    def _publish_positions(self) -> None:
        """Tell each queued job whose place changed; sent in the background so a slow platform
        edit never holds up the queue."""
        for position, entry in enumerate(self._queue.order(), start=1):
            if entry.last_position != position:
                entry.last_position = position
                progress = Progress(entry.job_id, "queued", position, messages.queued(position))
                self._spawn(self._emit(entry, progress))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _release(self, entry: _Entry) -> None:
        self._in_flight -= entry.weight
        self._changed.set()

    # -- running ---------------------------------------------------------------------------

    async def _run(self, entry: _Entry) -> None:
        status = "failed"
        try:
            status = await self._run_job(entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            reference = new_reference_id()
            log.exception("job %s failed unexpectedly (reference %s)", entry.job_id, reference)
            await jobs_repo.finish_job(
                self._db,
                entry.job_id,
                status="failed",
                now=time.time(),
                error=messages.unexpected(reference),
                error_ref=reference,
            )
            await self._emit(
                entry, Progress(entry.job_id, "failed", None, messages.unexpected(reference))
            )
        finally:
            self._running.pop(entry.job_id, None)
            self._release(entry)
        self._resolve(entry, status)
        if entry.listener is None:
            await self._notify_finished(entry.job_id)

    async def _run_job(self, entry: _Entry) -> str:
        job_id = entry.job_id
        if not await jobs_repo.mark_running(self._db, job_id, now=time.time()):
            return "cancelled"  # cancelled while waiting for a slot
        job = await jobs_repo.get_job(self._db, job_id)
        if job is None:
            return "failed"
        await self._emit(entry, Progress(job_id, "running", None, messages.RUNNING))
        try:
            outcome = await self._execute(job)
        except IdeogramError as exc:
            text = _failure_text(exc)
            log.warning(
                "job %s: Ideogram %s (status %s): %s",
                job_id,
                type(exc).__name__,
                exc.status,
                exc.api_message,
            )
            await jobs_repo.finish_job(
                self._db, job_id, status="failed", now=time.time(), error=text
            )
            await self._emit(entry, Progress(job_id, "failed", None, text))
            return "failed"
        except UserError as exc:
            await jobs_repo.finish_job(
                self._db, job_id, status="failed", now=time.time(), error=exc.message
            )
            await self._emit(entry, Progress(job_id, "failed", None, exc.message))
            return "failed"

        images = [await self._image_row(img) for img in outcome.images]
        billed = len(outcome.images) if job.command != "describe" else 1
        now = time.time()
        day = datetime.fromtimestamp(now, UTC)
        cost = estimate_usd(
            self._prices,
            command=job.command,
            images=billed,
            rendering_speed=job.rendering_speed,
            transparent=bool(job.request.get("transparent")),
        )
        charge = Charge(
            images=billed if job.command != "describe" else 0,
            cost_usd=cost,
            day=day.strftime("%Y-%m-%d"),
            month=day.strftime("%Y-%m"),
        )
        finished = await jobs_repo.finish_job(
            self._db,
            job_id,
            status="succeeded",
            now=now,
            images=images,
            descriptions=list(outcome.descriptions) if job.command == "describe" else None,
            charge=charge,
        )
        if not finished:
            # Cancelled while running: the result is discarded. The API did bill it, so the
            # cost is still recorded honestly against the job.
            await _charge_cancelled(self._db, job, charge, now)
            return "cancelled"
        await self._emit(entry, Progress(job_id, "succeeded", None, messages.SUCCEEDED))
        return "succeeded"

    async def _image_row(self, image: GeneratedImage) -> NewImage:
        sha = await self._store.put(image.data) if image.data is not None else None
        return NewImage(
            idx=image.index,
            sha256=sha,
            content_type=image.content_type,
            width=image.width,
            height=image.height,
            size_bytes=len(image.data) if image.data is not None else 0,
            seed=image.seed,
            prompt=image.prompt,
            is_image_safe=not image.withheld,
        )

    # -- listeners -------------------------------------------------------------------------

    async def _emit(self, entry: _Entry, progress: Progress) -> None:
        if entry.listener is None:
            return
        try:
            await entry.listener(progress)
        except Exception:
            # A platform hiccup while showing progress must not fail the job.
            log.warning("progress listener failed for job %s", entry.job_id, exc_info=True)

    def _resolve(self, entry: _Entry, status: str) -> None:
        if not entry.done.done():
            entry.done.set_result(status)
        self._entries.pop(entry.job_id, None)

    async def _notify_finished(self, job_id: str) -> None:
        if self.on_finished is None:
            return
        try:
            await self.on_finished(job_id)
        except Exception:
            log.exception("delivering the result of job %s failed", job_id)


async def _charge_cancelled(db: Database, job: JobRecord, charge: Charge, now: float) -> None:
    await usage_repo.charge(
        db,
        job_id=job.id,
        platform=job.platform,
        server_id=job.server_id,
        user_id=job.owner_id,
        day=charge.day,
        month=charge.month,
        command=job.command,
        images=charge.images,
        cost_usd=charge.cost_usd,
        now=now,
    )


def _failure_text(exc: IdeogramError) -> str:
    """Map an API failure class to its one user-facing sentence."""
    mapping: list[tuple[type[IdeogramError], str]] = [
        (IdeogramSafetyError, messages.SAFETY),
        (IdeogramRateLimited, messages.RATE_LIMITED),
        (IdeogramInvalidRequest, messages.INVALID_REQUEST),
        (IdeogramAuthError, messages.AUTH),
        (IdeogramCreditsError, messages.CREDITS),
        (IdeogramServerError, messages.SERVER_ERROR),
        (IdeogramTimeout, messages.TIMEOUT),
        (IdeogramDownloadError, messages.DOWNLOAD),
    ]
    for cls, text in mapping:
        if isinstance(exc, cls):
            return text
    return messages.SERVER_ERROR
