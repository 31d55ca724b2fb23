"""Jobs: a fair queue, a global in-flight limit counted in images, and job execution.

* Jobs wait in per-user queues served round-robin, so one user's batch does not starve a
  channel. The head job of the next user in turn (skipping users already at their running
  limit) starts as soon as its images fit under the in-flight limit, which counts images as
  Ideogram does and adapts to 429 answers (:mod:`bot.in_flight`).
* A job the API still answers 429 after the client's retries is not failed: 429 means it did
  not run and was not billed, so it goes back to the front of its user's queue after the wait
  the API asked for, until ``rate_limit_patience_s`` has passed since it was created.
* A job runs the engine's executor (the Ideogram call). What the API billed is written to the
  usage ledger as soon as the call returned; then result images are stored and the job
  finishes (:mod:`bot.job_outcomes`, which also says what is charged as *uncertain*). A job
  cancelled while its call runs keeps counting against quota and budget (``charge_pending``)
  until the call returned and its cost is recorded.
* A failing image store or database never leaves a job hanging: the job ends ``failed`` with a
  clear reason, and the waiting caller always gets an answer.
* Progress (queue position, running, final state) goes to the listener given at submit time,
  one update at a time per job (:mod:`bot.job_progress`); queue positions at most every
  ``position_interval_s`` per job so that platform message edits stay within rate limits.
* A process serves a set of platforms and touches only their jobs. On start-up, queued jobs
  of the served platforms are resumed in their order. Each running job holds a lease renewed by
  a heartbeat, and a dead process's running jobs are reported as failed (:mod:`bot.leases`).

The layers and the flow of a command are described in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot import messages
from bot.commands.endpoints import Outcome
from bot.config import PriceTable
from bot.errors import IdeogramError, IdeogramRateLimited, UserError
from bot.fair_queue import FairQueue, QueueEntry
from bot.image_store import ImageStore
from bot.in_flight import InFlight
from bot.job_outcomes import OutcomeRecorder
from bot.job_progress import cancellable, emit, retrieve
from bot.leases import Leases, process_identity
from bot.types import Progress, ProgressCallback
from storage import Database, JobRecord
from storage import jobs as jobs_repo

log = logging.getLogger(__name__)


Executor = Callable[[JobRecord], Awaitable[Outcome]]
FinishedHook = Callable[[str], Awaitable[None]]

_REQUEUED = "requeued"

#: Every platform the bot has an adapter for: what a process serves unless told otherwise.
ALL_PLATFORMS: frozenset[str] = frozenset({"discord", "slack", "console"})


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
        clock: Unix seconds; the engine's clock, so a job's creation, its charge day, its
            patience and its lease are read on one clock (monotonic time is used only for
            intervals that are never stored).
        platforms: the platforms this process serves: only their jobs are resumed or taken
            over, so processes serving different platforms can share one database.
        owner: this runner's lease owner id; default :func:`process_identity`.
        lease_s: how long a running job's lease holds without renewal, seconds; it is renewed
            every ``lease_s / 3`` and another process takes the job over only after it lapsed.
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
        platforms: frozenset[str] = ALL_PLATFORMS,
        owner: str | None = None,
        lease_s: float = 60.0,
    ) -> None:
        self._clock = clock
        self.platforms = frozenset(platforms)
        self.owner = owner or process_identity()
        # Posting may wait until the platform has connected, and recovery (which runs before
        # that) must not: a job taken over is posted in the background.
        self._leases = Leases(
            db=db, owner=self.owner, platforms=self.platforms, lease_s=lease_s, clock=clock,
            held=lambda: self._running,
            on_interrupted=lambda job_id: self._spawn(self._notify_finished(job_id)),
        )  # fmt: skip
        self._outcomes = OutcomeRecorder(
            db=db, store=store, prices=prices, clock=clock, unsaved=self._leases.unsaved
        )
        self._db = db
        self._store = store
        self._execute = execute
        self._prices = prices
        self._places = InFlight(max_in_flight, max_user_running, lambda: self._changed.set())
        self.on_finished = on_finished
        self.position_interval_s = position_interval_s
        self.rate_limit_patience_s = rate_limit_patience_s
        self.requeue_delay_s = requeue_delay_s
        self._queue = FairQueue()
        self._entries: dict[str, QueueEntry] = {}
        self._waiting: dict[str, QueueEntry] = {}  # re-queued after a 429, waiting out the delay
        self._running: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def max_in_flight(self) -> int:
        """The most images in flight at the API at once; the adaptive limit stays under it."""
        return self._places.maximum

    @max_in_flight.setter
    def max_in_flight(self, value: int) -> None:
        self._places.maximum = value

    @property
    def limit(self) -> int:
        """The adapted limit on images in flight (:class:`bot.in_flight.InFlight`)."""
        return self._places.limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._places.limit = value

    @property
    def max_user_running(self) -> int:
        """Jobs of one user running at once (0 = no limit)."""
        return self._places.max_user_running

    @max_user_running.setter
    def max_user_running(self, value: int) -> None:
        self._places.max_user_running = value

    @property
    def peak_in_flight(self) -> int:
        """The most images that have been in flight at once."""
        return self._places.peak

    @property
    def lease_s(self) -> float:
        """How long a running job's lease holds without renewal, seconds (renewed every
        ``lease_s / 3``). Setting it takes effect at once, waking the heartbeat."""
        return self._leases.lease_s

    @lease_s.setter
    def lease_s(self, value: float) -> None:
        self._leases.lease_s = value

    @property
    def heartbeats(self) -> int:
        """Heartbeats done (lease renewal and take-over sweep), for monitoring and tests."""
        return self._leases.heartbeats

    @property
    def in_flight(self) -> int:
        """Images currently in flight at the API."""
        return self._places.in_flight

    @property
    def queued(self) -> int:
        """Jobs waiting for a place (re-queued ones included)."""
        return len(self._queue) + len(self._waiting)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> tuple[int, int]:
        """Recover the served platforms' jobs from the last run and start dispatching.

        Running jobs whose lease expired are failed as interrupted (with an uncertain ledger
        row); those of a live process are left to it. Queued jobs are resumed in order.

        Returns:
            ``(resumed, interrupted)``: queued jobs resumed, running jobs failed.
        """
        interrupted = await self._leases.take_over_expired()
        resumed = 0
        served = sorted(self.platforms)
        for job in await jobs_repo.list_jobs_by_status(self._db, ["queued"], platforms=served):
            if job.id not in self._entries:
                self.submit(job, listener=None)
                resumed += 1
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="job-dispatcher")
        self._leases.start()
        return resumed, len(interrupted)

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop starting jobs, let running ones finish for up to ``grace_s`` seconds, then
        cancel the rest (their leases are released, so the next start of a process serving
        their platform reports them as interrupted at once). Queued jobs stay queued in the
        database and resume on the next start."""
        await _stop(self._dispatcher)
        self._dispatcher = None
        if grace_s > 0 and self._running:
            await asyncio.wait(list(self._running.values()), timeout=grace_s)
        # Leases are renewed until the last running job is given up.
        await self._leases.stop()
        tasks: list[asyncio.Task[None]] = [*self._running.values(), *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for entry in self._entries.values():
            if not entry.done.done():
                entry.done.cancel()
        await self._leases.release()

    # -- submitting ------------------------------------------------------------------------

    def submit(self, job: JobRecord, listener: ProgressCallback | None) -> asyncio.Future[str]:
        """Queue ``job`` (already stored with status ``queued``).

        Returns:
            A future resolved with the job's final status when it finishes; it raises a
            :class:`~bot.errors.UserError` with a reference id instead when the database
            refused to store the job's outcome.
        """
        weight = max(1, min(job.num_images, self.max_in_flight))
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.add_done_callback(retrieve)
        entry = QueueEntry(
            job.id,
            f"{job.platform}:{job.owner_id}",
            weight,
            listener,
            done,
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
        discarded; the API call is left to finish so that nothing is billed without a record,
        and until then the job keeps counting against quota and budget.

        Returns:
            The status the job had (``queued``/``running``), or ``None`` if it was not active.
        """
        previous = await jobs_repo.cancel_job(self._db, job_id, now=self._clock())
        if previous is None:
            return None
        entry = self._queue.remove(job_id) or self._waiting.pop(job_id, None)
        if entry is not None:
            await emit(entry, Progress(job_id, "cancelled", None, messages.CANCELLED))
            self._resolve(entry, "cancelled")
            self._changed.set()
        return previous

    async def wait(self, job_id: str) -> str | None:
        """Wait until ``job_id`` is final; return its status (``None`` if it is not tracked).

        Raises:
            UserError: the database refused to store the job's outcome (see :meth:`submit`).
        """
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        return await asyncio.shield(entry.done)

    def on_rate_limited(self) -> None:
        """The API answered 429: halve the limit, once per burst (at most once a second)."""
        self._places.on_rate_limited()

    # -- dispatching -----------------------------------------------------------------------

    def _next(self) -> QueueEntry | None:
        head = self._queue.peek(self._places.eligible)
        return head if head is not None and self._places.fits(head.weight) else None

    async def _dispatch_loop(self) -> None:
        # One task starts jobs; submit, release and cancel only set ``_changed``. Clearing
        # before looking is safe on one event loop: a set() after the clear wakes the wait.
        while True:
            self._changed.clear()
            while (entry := self._next()) is not None:
                self._queue.pop(entry)
                entry.stage = "running"
                self._places.take(entry)
                task = asyncio.create_task(self._run(entry), name=f"job-{entry.job_id}")
                self._running[entry.job_id] = task
            self._publish_positions()
            await self._changed.wait()

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
        await emit(entry, cancellable(entry, "queued", position, messages.queued(position)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- running ---------------------------------------------------------------------------

    async def _run(self, entry: QueueEntry) -> None:
        status = "failed"
        refused: UserError | None = None
        try:
            status = await self._run_job(entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            status = "failed"
            refused = await self._outcomes.failed_unexpectedly(entry)
        finally:
            # A re-queued job may already run again as a new task: leave that one's records.
            if self._running.get(entry.job_id) is asyncio.current_task():
                del self._running[entry.job_id]
            if status != _REQUEUED:
                self._places.release(entry)
        if status == _REQUEUED:
            return
        if refused is not None:
            self._resolve_error(entry, refused)
            return  # nothing stored to post; the log has the details
        self._resolve(entry, status)
        if entry.listener is None:
            await self._notify_finished(entry.job_id)

    async def _run_job(self, entry: QueueEntry) -> str:
        job_id = entry.job_id
        now = self._clock()
        started = await jobs_repo.mark_running(
            self._db, job_id, now=now, owner=self.owner, lease_until=now + self.lease_s
        )
        if not started:
            return "cancelled"  # cancelled while waiting for a place
        job = entry.job or await jobs_repo.get_job(self._db, job_id)
        if job is None:
            return "failed"
        await emit(entry, cancellable(entry, "running", None, messages.RUNNING))
        error: IdeogramError | UserError | None = None
        try:
            outcome = await self._execute(job)
        except (IdeogramError, UserError) as exc:
            error = exc
        finally:
            # The API call is over: its places go to the next job while this one is stored
            # (and before a re-queue, which may start it again at once).
            self._places.release(entry)
        if isinstance(error, IdeogramRateLimited):
            if await self._requeue(entry, error):
                return _REQUEUED
            return await self._outcomes.failed(entry, job, error)
        if isinstance(error, IdeogramError):
            return await self._outcomes.failed(entry, job, error)
        if isinstance(error, UserError):
            await self._outcomes.finish(job_id, "failed", error.message)
            await emit(entry, Progress(job_id, "failed", None, error.message))
            return "failed"
        self._places.on_success()
        return await self._outcomes.succeeded(entry, job, outcome)

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
        await emit(entry, cancellable(entry, "queued", None, messages.WAITING_FOR_CAPACITY))
        return True

    async def _put_back(self, entry: QueueEntry, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._waiting.pop(entry.job_id, None) is entry:
            self._queue.push_front(entry)
            self._changed.set()

    # -- listeners -------------------------------------------------------------------------

    def _resolve(self, entry: QueueEntry, status: str) -> None:
        if not entry.done.done():
            entry.done.set_result(status)
        self._entries.pop(entry.job_id, None)

    def _resolve_error(self, entry: QueueEntry, error: UserError) -> None:
        if not entry.done.done():
            entry.done.set_exception(error)
        self._entries.pop(entry.job_id, None)

    async def _notify_finished(self, job_id: str) -> None:
        if self.on_finished is None:
            return
        try:
            await self.on_finished(job_id)
        except Exception:
            log.exception("delivering the result of job %s failed", job_id)


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
