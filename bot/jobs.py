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
* A job runs the engine's executor (the Ideogram call). As soon as the call returned, what the
  API billed is written to the usage ledger in its own transaction, before anything else can
  fail; then result images are stored by SHA-256 and the job finishes in one transaction.
  Requests the API rejected (400, 422, 429) and jobs that failed on our side before the call
  are not charged; a call the API may have billed (5xx, timeout, interruption) gets an
  *uncertain* ledger row, shown to admins as "possibly billed" and counted against no limit.
* A job cancelled while its call runs keeps counting against quota and budget
  (``charge_pending``) until the call returned and its cost is recorded.
* A failing image store or database never leaves a job hanging: the job ends ``failed`` with a
  clear reason, and the waiting caller always gets an answer. A final state the database
  refused is kept in memory and written again at every heartbeat until it lands.
* Progress (queue position, running, final state) goes to the listener given at submit time,
  one update at a time per job; queue positions at most every ``position_interval_s`` per job
  so that platform message edits stay within rate limits.
* A process serves a set of platforms and touches only their jobs. Each running job holds a
  lease (this process's id and an expiry), renewed every ``lease_s / 3`` seconds by a heartbeat
  task while the process lives. On start-up, queued jobs of the served platforms are resumed in
  their order; running ones whose lease has expired (their process is gone) are failed with an
  honest message (the API may have run them) and never charged twice. The heartbeat does the
  same for leases that expire later, so a live process's jobs are never taken over and a dead
  one's are reported within ``lease_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
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

#: Every platform the bot has an adapter for: what a process serves unless told otherwise.
ALL_PLATFORMS: frozenset[str] = frozenset({"discord", "slack", "console"})


def process_identity() -> str:
    """A lease owner id unique to this runner: ``"<hostname>:<pid>:<8 hex chars>"``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class _FinalState:
    """A job's final state the database refused to store, to write again later."""

    status: str
    error: str
    error_ref: str | None
    charge: Charge | None


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
        self._wake_heartbeat = asyncio.Event()
        self._lease_s = lease_s
        #: Heartbeats done (lease renewal and take-over sweep), for monitoring and tests.
        self.heartbeats = 0
        self._unsaved: dict[str, _FinalState] = {}
        self._heartbeat: asyncio.Task[None] | None = None
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
    def lease_s(self) -> float:
        """How long a running job's lease holds without renewal, seconds (renewed every
        ``lease_s / 3``). Setting it takes effect at once, waking the heartbeat."""
        return self._lease_s

    @lease_s.setter
    def lease_s(self, value: float) -> None:
        self._lease_s = value
        self._wake_heartbeat.set()

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
        """Recover the served platforms' jobs from the last run and start dispatching.

        Running jobs whose lease expired are failed as interrupted (with an uncertain ledger
        row); those of a live process are left to it. Queued jobs are resumed in order.

        Returns:
            ``(resumed, interrupted)``: queued jobs resumed, running jobs failed.
        """
        interrupted = await self._take_over_expired()
        resumed = 0
        served = sorted(self.platforms)
        for job in await jobs_repo.list_jobs_by_status(self._db, ["queued"], platforms=served):
            if job.id not in self._entries:
                self.submit(job, listener=None)
                resumed += 1
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="job-dispatcher")
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="job-heartbeat")
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
        await _stop(self._heartbeat)
        self._heartbeat = None
        tasks: list[asyncio.Task[None]] = [*self._running.values(), *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for entry in self._entries.values():
            if not entry.done.done():
                entry.done.cancel()
        try:
            await self._save_unsaved()
            await jobs_repo.release_leases(self._db, owner=self.owner)
        except Exception:
            log.warning("could not release the leases of %s", self.owner, exc_info=True)
        for job_id, final in self._unsaved.items():
            log.error(
                "job %s: final state never stored (reference %s, charge %s)",
                job_id, final.error_ref, final.charge,
            )  # fmt: skip

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
        done.add_done_callback(_retrieve)
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
            await self._emit(entry, Progress(job_id, "cancelled", None, messages.CANCELLED))
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

    # -- leases ----------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            self._wake_heartbeat.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_heartbeat.wait(), self.lease_s / 3)
            try:
                await self._beat()
            except Exception:
                # A database hiccup must not stop the heartbeat: the next one tries again.
                log.warning("job heartbeat of %s failed", self.owner, exc_info=True)
            self.heartbeats += 1

    async def _beat(self) -> None:
        """Renew this process's leases, store final states the database refused earlier, and
        take over jobs of the served platforms whose process is gone."""
        now = self._clock()
        await jobs_repo.renew_leases(
            self._db,
            owner=self.owner,
            job_ids=[*self._running, *self._unsaved],
            now=now,
            lease_until=now + self.lease_s,
        )
        await self._save_unsaved()
        await self._take_over_expired()

    async def _take_over_expired(self) -> list[str]:
        """Fail the served platforms' running jobs whose lease expired (their process is
        gone) and post them; settle cancelled ones whose call was abandoned."""
        now = self._clock()
        day = datetime.fromtimestamp(now, UTC)
        interrupted = await jobs_repo.interrupt_expired(
            self._db,
            platforms=sorted(self.platforms),
            now=now,
            error=messages.INTERRUPTED,
            day=day.strftime("%Y-%m-%d"),
            month=day.strftime("%Y-%m"),
            except_owner=self.owner,
        )
        for job_id in interrupted:
            log.warning("job %s was interrupted (its process stopped); reported as failed", job_id)
            # In the background: posting may wait until the platform has connected, and
            # recovery (which runs before that) must not.
            self._spawn(self._notify_finished(job_id))
        return interrupted

    async def _save_unsaved(self) -> None:
        for job_id, final in list(self._unsaved.items()):
            await self._finish(job_id, final.status, final.error, final.error_ref, final.charge)
            del self._unsaved[job_id]
            log.info("job %s: final state stored at last (reference %s)", job_id, final.error_ref)

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
            refused = await self._fail_unexpectedly(entry)
        finally:
            # A re-queued job may already run again as a new task: leave that one's records.
            if self._running.get(entry.job_id) is asyncio.current_task():
                del self._running[entry.job_id]
            if status != _REQUEUED:
                self._release(entry)
        if status == _REQUEUED:
            return
        if refused is not None:
            self._resolve_error(entry, refused)
            return  # nothing stored to post; the log has the details
        self._resolve(entry, status)
        if entry.listener is None:
            await self._notify_finished(entry.job_id)

    async def _fail_unexpectedly(self, entry: QueueEntry) -> UserError | None:
        """End a job that failed on our side; if the database refuses that too, keep its final
        state for the heartbeat to store and return the error its caller gets instead."""
        reference = new_reference_id()
        log.exception("job %s failed unexpectedly (reference %s)", entry.job_id, reference)
        text = messages.unexpected(reference)
        final = _FinalState("failed", text, reference, entry.charge)
        try:
            await self._finish(entry.job_id, "failed", text, reference, entry.charge)
        except Exception:
            self._unsaved[entry.job_id] = final
            log.exception(
                "job %s: the database refused its final state (reference %s); retried at every"
                " heartbeat; billed and not yet in the ledger: %s",
                entry.job_id, reference, entry.charge,
            )  # fmt: skip
            text = messages.not_recorded(reference)
            await self._emit(entry, Progress(entry.job_id, "failed", None, text))
            return UserError(text)
        entry.charge = None
        await self._emit(entry, Progress(entry.job_id, "failed", None, text))
        return None

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
            return await self._fail(entry, job, error)
        if isinstance(error, IdeogramError):
            return await self._fail(entry, job, error)
        if isinstance(error, UserError):
            await self._finish(job_id, "failed", error.message)
            await self._emit(entry, Progress(job_id, "failed", None, error.message))
            return "failed"
        self._on_success()

        # The API billed this call: charge it first, in its own transaction, so no later
        # failure (full disk, broken database) can lose the record. A job cancelled meanwhile
        # is charged too (usage is charged as the API bills), which settles its pending charge.
        now = self._clock()
        charge = self._charge_for(job, len(outcome.images), now)
        entry.charge = charge
        await usage_repo.charge(
            self._db, job_id=job.id, platform=job.platform, server_id=job.server_id,
            user_id=job.owner_id, day=charge.day, month=charge.month, command=job.command,
            images=charge.images, cost_usd=charge.cost_usd, now=now,
        )  # fmt: skip
        entry.charge = None
        try:
            images = [await self._image_row(img) for img in outcome.images]
        except OSError:
            reference = new_reference_id()
            log.exception("job %s: storing its images failed (reference %s)", job_id, reference)
            await self._finish(job_id, "failed", messages.STORE_FAILED, reference)
            await self._emit(entry, Progress(job_id, "failed", None, messages.STORE_FAILED))
            return "failed"
        endpoint = ENDPOINTS[load_request(job.request).endpoint]
        finished = await jobs_repo.finish_job(
            self._db, job_id, status="succeeded", now=self._clock(), images=images,
            descriptions=None if endpoint.makes_images else list(outcome.descriptions),
        )  # fmt: skip
        if not finished:
            return "cancelled"  # cancelled while running: the result is discarded
        await self._emit(entry, Progress(job_id, "succeeded", None, messages.SUCCEEDED))
        return "succeeded"

    def _charge_for(
        self, job: JobRecord, images: int, now: float, *, uncertain: bool = False
    ) -> Charge:
        """What the API billed for ``images`` result images (withheld ones included), or for
        the one request of an endpoint billed per request (which counts as one image against
        the daily quota, as ``/help`` says)."""
        endpoint = ENDPOINTS[load_request(job.request).endpoint]
        billed = 1 if endpoint.per_request else images
        day = datetime.fromtimestamp(now, UTC)
        cost = endpoint.cost_usd(self._prices, billed, job.rendering_speed)
        return Charge(
            images=billed,
            cost_usd=cost,
            day=day.strftime("%Y-%m-%d"),
            month=day.strftime("%Y-%m"),
            uncertain=uncertain,
        )

    async def _finish(
        self,
        job_id: str,
        status: str,
        error: str,
        error_ref: str | None = None,
        charge: Charge | None = None,
    ) -> None:
        """Store a job's failure (with ``charge``, if any). A job no longer active (cancelled
        while its call ran) keeps its status, and its pending charge is settled instead."""
        now = self._clock()
        finished = await jobs_repo.finish_job(
            self._db, job_id, status=status, now=now, error=error, error_ref=error_ref,
            charge=charge,
        )  # fmt: skip
        if not finished:
            await jobs_repo.settle_charge(self._db, job_id, now=now, charge=charge)

    async def _fail(self, entry: QueueEntry, job: JobRecord, exc: IdeogramError) -> str:
        text = _failure_text(exc)
        log.warning(
            "job %s: Ideogram %s (status %s): %s",
            entry.job_id, type(exc).__name__, exc.status, exc.api_message,
        )  # fmt: skip
        # A 5xx, a timeout or a failed download may have been billed: recorded as uncertain,
        # for the operator's estimate, and counted against no user's quota.
        charge = (
            self._charge_for(job, job.num_images, self._clock(), uncertain=True)
            if exc.billed
            else None
        )
        await self._finish(entry.job_id, "failed", text, charge=charge)
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


def _retrieve(done: asyncio.Future[str]) -> None:
    """Mark a job's error as seen: a resumed job's future has nobody awaiting it."""
    if not done.cancelled():
        done.exception()


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
