"""Jobs: a fair queue, a global in-flight limit counted in images, and job execution.

* Jobs wait in per-user queues served round-robin, so one user's batch does not starve a
  channel. The head job of the next user in turn (skipping users already at their running
  limit) starts as soon as its images fit under the in-flight limit: a 4-image request takes 4
  places, as Ideogram counts them, and ``max_in_flight`` is never exceeded.
* The limit adapts (AIMD): every burst of 429 answers halves it, and it grows back by one after
  as many successes as the current limit, up to ``max_in_flight``.
* A job the API still answers 429 after the client's retries is not failed: 429 means it did
  not run and was not billed, so it goes back to the front of its user's queue after the wait
  the API asked for, until ``rate_limit_patience_s`` has passed since it was created.
* A job runs the engine's executor (the Ideogram call), stores result images by SHA-256, and
  finishes in one database transaction that also writes the usage ledger row when the API
  billed it. Requests the API rejected (400, 422, 429) and jobs that failed on our side are not
  charged.
* Progress (queue position, running, final state) goes to the listener given at submit time,
  one update at a time per job; queue positions at most every ``position_interval_s`` per job
  so that platform message edits stay within rate limits.
* On start-up, jobs left ``queued`` are resumed in their order and jobs left ``running`` are
  failed with an honest message (the API may have run them) and never charged twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from bot import messages
from bot.commands.endpoints import ENDPOINTS, Outcome, load_request
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
from bot.fair_queue import FairQueue, QueueEntry
from bot.ideogram.client import GeneratedImage
from bot.image_store import ImageStore
from bot.types import Action, ActionKind, Progress, ProgressCallback
from storage import Charge, Database, JobRecord, NewImage
from storage import jobs as jobs_repo
from storage import usage as usage_repo

log = logging.getLogger(__name__)


Executor = Callable[[JobRecord], Awaitable[Outcome]]
FinishedHook = Callable[[str], Awaitable[None]]

_REQUEUED = "requeued"


class JobRunner:
    """Runs queued jobs under the in-flight limit and records their outcome.

    Args:
        db: the database.
        store: where result images are kept.
        execute: the engine's function that calls the API for one job.
        prices: the price table for charging.
        max_in_flight: images in flight at the API at once (``IDEOGRAM_MAX_IN_FLIGHT``).
        max_user_running: jobs of one user running at once (0 = no limit).
        on_finished: called with the job id after every job reaches a final state and nobody
            is waiting on it (e.g. a job resumed after a restart), so the platform can post it.
        position_interval_s: least time between two queue-position updates of one job.
        rate_limit_patience_s: how long after its creation a job keeps being re-queued on 429.
        requeue_delay_s: wait before a re-queued job may start again when the API gave no
            ``Retry-After``.
        clock: Unix seconds; the engine's clock, so a job's creation, its charge day and its
            patience are read on one clock.
    """

    def __init__(
        self,
        *,
        db: Database,
        store: ImageStore,
        execute: Executor,
        prices: PriceTable,
        max_in_flight: int,
        max_user_running: int = 0,
        on_finished: FinishedHook | None = None,
        position_interval_s: float = 2.0,
        rate_limit_patience_s: float = 900.0,
        requeue_delay_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._db = db
        self._store = store
        self._execute = execute
        self._prices = prices
        self._max_in_flight = max_in_flight
        self.max_user_running = max_user_running
        self.limit = max_in_flight
        self.on_finished = on_finished
        self.position_interval_s = position_interval_s
        self.rate_limit_patience_s = rate_limit_patience_s
        self.requeue_delay_s = requeue_delay_s
        self._queue = FairQueue()
        self._entries: dict[str, QueueEntry] = {}
        self._waiting: dict[str, QueueEntry] = {}  # re-queued after a 429, waiting out the delay
        self._running: dict[str, asyncio.Task[None]] = {}
        self._running_by_user: dict[str, int] = {}
        self._in_flight = 0
        self.peak_in_flight = 0
        self._successes = 0
        self._last_cut = -math.inf
        self._changed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def max_in_flight(self) -> int:
        """The most images in flight at the API at once; the adaptive limit stays under it."""
        return self._max_in_flight

    @max_in_flight.setter
    def max_in_flight(self, value: int) -> None:
        self._max_in_flight = max(1, value)
        self.limit = min(self.limit, self._max_in_flight) if self.limit else self._max_in_flight
        self._changed.set()

    @property
    def in_flight(self) -> int:
        """Images currently in flight at the API."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Jobs waiting for a place (re-queued ones included)."""
        return len(self._queue) + len(self._waiting)

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
                    self._db, job.id, status="failed", now=self._clock(), error=messages.INTERRUPTED
                )
                interrupted += 1
                # In the background: posting may wait until the platform has connected, and
                # recovery (which runs before that) must not.
                self._spawn(self._notify_finished(job.id))
            else:
                self.submit(job, listener=None)
                resumed += 1
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="job-dispatcher")
        return resumed, interrupted

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop starting jobs, let running ones finish for up to ``grace_s`` seconds, then
        cancel the rest (they are reported as interrupted on the next start). Queued jobs stay
        queued in the database and resume on the next start."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        if grace_s > 0 and self._running:
            await asyncio.wait(list(self._running.values()), timeout=grace_s)
        tasks: list[asyncio.Task[None]] = [*self._running.values(), *self._background]
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
        entry = QueueEntry(
            job.id,
            f"{job.platform}:{job.owner_id}",
            weight,
            listener,
            asyncio.get_running_loop().create_future(),
            created_at=job.created_at,
            job=job,
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
        previous = await jobs_repo.cancel_job(self._db, job_id, now=self._clock())
        if previous is None:
            return None
        entry = self._queue.remove(job_id) or self._waiting.pop(job_id, None)
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

    # -- adaptive limit --------------------------------------------------------------------

    def on_rate_limited(self) -> None:
        """The API answered 429: halve the limit, once per burst (at most once a second)."""
        now = time.monotonic()
        if now - self._last_cut < 1.0:
            return
        self._last_cut = now
        self._successes = 0
        if self.limit > 1:
            self.limit = max(1, self.limit // 2)
            log.warning("Ideogram rate limited us: in-flight limit now %d images", self.limit)

    def _on_success(self) -> None:
        if self.limit >= self.max_in_flight:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit += 1
            self._changed.set()

    # -- dispatching -----------------------------------------------------------------------

    def _eligible(self, user_key: str) -> bool:
        return (
            self.max_user_running <= 0
            or self._running_by_user.get(user_key, 0) < self.max_user_running
        )

    def _next(self) -> QueueEntry | None:
        head = self._queue.peek(self._eligible)
        if head is None:
            return None
        # A job larger than the (adapted) limit still runs alone, never beyond max_in_flight.
        if self._in_flight == 0 or self._in_flight + head.weight <= self.limit:
            return head
        return None

    async def _dispatch_loop(self) -> None:
        # One task starts jobs; submit, release and cancel only set ``_changed``. Clearing
        # before looking is safe on one event loop: a set() after the clear wakes the wait.
        while True:
            self._changed.clear()
            while (entry := self._next()) is not None:
                self._queue.pop(entry)
                entry.stage = "running"
                entry.released = False
                self._in_flight += entry.weight
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                user = entry.user_key
                self._running_by_user[user] = self._running_by_user.get(user, 0) + 1
                task = asyncio.create_task(self._run(entry), name=f"job-{entry.job_id}")
                self._running[entry.job_id] = task
            self._publish_positions()
            await self._changed.wait()

    def _release(self, entry: QueueEntry) -> None:
        """Give back the job's places; idempotent, so the API call's end can free them before
        the result is stored and the run's end makes sure they were freed."""
        if entry.released:
            return
        entry.released = True
        self._in_flight -= entry.weight
        left = self._running_by_user.get(entry.user_key, 1) - 1
        if left:
            self._running_by_user[entry.user_key] = left
        else:
            self._running_by_user.pop(entry.user_key, None)
        self._changed.set()

    # -- queue positions -------------------------------------------------------------------

    def _publish_positions(self) -> None:
        """Tell each queued job whose place changed, at most every ``position_interval_s``;
        sent in the background so a slow platform edit never holds up the queue."""
        now = time.monotonic()
        for position, entry in enumerate(self._queue.order(), start=1):
            if entry.last_position == position or entry.position_pending:
                continue
            entry.position_pending = True
            delay = entry.last_sent + self.position_interval_s - now
            self._spawn(self._send_position(entry, max(0.0, delay)))

    async def _send_position(self, entry: QueueEntry, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        entry.position_pending = False
        position = self.position(entry.job_id)
        if position is None or position == entry.last_position:
            return
        entry.last_position = position
        entry.last_sent = time.monotonic()
        await self._emit(
            entry, self._progress(entry, "queued", position, messages.queued(position))
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- running ---------------------------------------------------------------------------

    async def _run(self, entry: QueueEntry) -> None:
        status = "failed"
        try:
            status = await self._run_job(entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            reference = new_reference_id()
            log.exception("job %s failed unexpectedly (reference %s)", entry.job_id, reference)
            text = messages.unexpected(reference)
            await jobs_repo.finish_job(
                self._db,
                entry.job_id,
                status="failed",
                now=self._clock(),
                error=text,
                error_ref=reference,
            )
            await self._emit(entry, Progress(entry.job_id, "failed", None, text))
        finally:
            # A re-queued job may already run again as a new task: leave that one's records.
            if self._running.get(entry.job_id) is asyncio.current_task():
                del self._running[entry.job_id]
            if status != _REQUEUED:
                self._release(entry)
        if status == _REQUEUED:
            return
        self._resolve(entry, status)
        if entry.listener is None:
            await self._notify_finished(entry.job_id)

    async def _run_job(self, entry: QueueEntry) -> str:
        job_id = entry.job_id
        if not await jobs_repo.mark_running(self._db, job_id, now=self._clock()):
            return "cancelled"  # cancelled while waiting for a place
        job = entry.job or await jobs_repo.get_job(self._db, job_id)
        if job is None:
            return "failed"
        await self._emit(entry, self._progress(entry, "running", None, messages.RUNNING))
        error: IdeogramError | UserError | None = None
        try:
            outcome = await self._execute(job)
        except (IdeogramError, UserError) as exc:
            error = exc
        finally:
            # The API call is over: its places go to the next job while this one is stored
            # (and before a re-queue, which may start it again at once).
            self._release(entry)
        if isinstance(error, IdeogramRateLimited):
            if await self._requeue(entry, error):
                return _REQUEUED
            return await self._fail(entry, error)
        if isinstance(error, IdeogramError):
            return await self._fail(entry, error)
        if isinstance(error, UserError):
            await jobs_repo.finish_job(
                self._db, job_id, status="failed", now=self._clock(), error=error.message
            )
            await self._emit(entry, Progress(job_id, "failed", None, error.message))
            return "failed"
        self._on_success()

        images = [await self._image_row(img) for img in outcome.images]
        now = self._clock()
        endpoint = ENDPOINTS[load_request(job.request).endpoint]
        charge = self._charge_for(job, len(outcome.images), now)
        finished = await jobs_repo.finish_job(
            self._db, job_id, status="succeeded", now=now, images=images,
            descriptions=None if endpoint.makes_images else list(outcome.descriptions),
            charge=charge,
        )  # fmt: skip
        if not finished:
            # Cancelled while running: the result is discarded, but the API did bill it, so
            # the cost is recorded against the job (usage is charged as the API bills).
            await usage_repo.charge(
                self._db, job_id=job.id, platform=job.platform, server_id=job.server_id,
                user_id=job.owner_id, day=charge.day, month=charge.month, command=job.command,
                images=charge.images, cost_usd=charge.cost_usd, now=now,
            )  # fmt: skip
            return "cancelled"
        await self._emit(entry, Progress(job_id, "succeeded", None, messages.SUCCEEDED))
        return "succeeded"

    def _charge_for(self, job: JobRecord, images: int, now: float) -> Charge:
        """What the API billed for ``images`` result images (withheld ones included), or for
        the one request of an endpoint billed per request (which counts no images)."""
        endpoint = ENDPOINTS[load_request(job.request).endpoint]
        billed = 1 if endpoint.per_request else images
        day = datetime.fromtimestamp(now, UTC)
        cost = endpoint.cost_usd(self._prices, billed, job.rendering_speed)
        return Charge(
            images=0 if endpoint.per_request else billed,
            cost_usd=cost,
            day=day.strftime("%Y-%m-%d"),
            month=day.strftime("%Y-%m"),
        )

    async def _fail(self, entry: QueueEntry, exc: IdeogramError) -> str:
        text = _failure_text(exc)
        log.warning(
            "job %s: Ideogram %s (status %s): %s",
            entry.job_id, type(exc).__name__, exc.status, exc.api_message,
        )  # fmt: skip
        await jobs_repo.finish_job(
            self._db, entry.job_id, status="failed", now=self._clock(), error=text
        )
        await self._emit(entry, Progress(entry.job_id, "failed", None, text))
        return "failed"

    async def _requeue(self, entry: QueueEntry, exc: IdeogramRateLimited) -> bool:
        """Put a job the API refused with 429 back in line; ``False`` once patience ran out."""
        if self._clock() - entry.created_at > self.rate_limit_patience_s:
            return False
        if not await jobs_repo.requeue_job(self._db, entry.job_id):
            return False
        entry.requeues += 1
        entry.stage = "queued"
        entry.last_position = None
        delay = exc.retry_after if exc.retry_after is not None else self.requeue_delay_s
        delay = min(60.0, delay * min(entry.requeues, 4))
        self._waiting[entry.job_id] = entry
        self._spawn(self._put_back(entry, delay))
        await self._emit(
            entry, self._progress(entry, "queued", None, messages.WAITING_FOR_CAPACITY)
        )
        return True

    async def _put_back(self, entry: QueueEntry, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._waiting.pop(entry.job_id, None) is entry:
            self._queue.push_front(entry)
            self._changed.set()

    async def _image_row(self, image: GeneratedImage) -> NewImage:
        sha = await self._store.put(image.data) if image.data is not None else None
        return NewImage(
            idx=image.index, sha256=sha, content_type=image.content_type,
            width=image.width, height=image.height,
            size_bytes=len(image.data) if image.data is not None else 0,
            seed=image.seed, prompt=image.prompt, is_image_safe=not image.withheld,
        )  # fmt: skip

    # -- listeners -------------------------------------------------------------------------

    @staticmethod
    def _progress(entry: QueueEntry, state: str, position: int | None, text: str) -> Progress:
        cancel = Action(ActionKind.CANCEL, entry.job_id, 0, "Cancel")
        return Progress(entry.job_id, state, position, text, cancel)  # type: ignore[arg-type]

    async def _emit(self, entry: QueueEntry, progress: Progress) -> None:
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

    def _resolve(self, entry: QueueEntry, status: str) -> None:
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
