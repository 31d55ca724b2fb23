"""Leases on running jobs: the heartbeat that renews them, and taking over a dead process's jobs.

A process serves a set of platforms and touches only their jobs. Each running job holds a lease
(this process's id and an expiry), renewed every ``lease_s / 3`` seconds by a heartbeat task
while the process lives. On start-up and at every heartbeat, running jobs of the served
platforms whose lease has expired (their process is gone) are failed with an honest message
(the API may have run them) and never charged twice, so a live process's jobs are never taken
over and a dead one's are reported within ``lease_s``. A final state the database refused is
kept in memory and written again at every heartbeat until it lands.

:class:`Leases` is owned by :class:`bot.jobs.JobRunner`; the queries are in
:mod:`storage.leases` (docs/architecture.md, "One command, end to end", on leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from bot import messages
from bot.job_outcomes import FinalState, store_failure
from storage import Database
from storage import leases as leases_repo

log = logging.getLogger(__name__)


def process_identity() -> str:
    """A lease owner id unique to this runner: ``"<hostname>:<pid>:<8 hex chars>"``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """This process's leases on its running jobs, and the heartbeat task that keeps them.

    Args:
        db: the database.
        owner: this process's lease owner id (:func:`process_identity`).
        platforms: the platforms this process serves: only their jobs are taken over.
        lease_s: how long a lease holds without renewal, seconds; renewed every ``lease_s / 3``.
        clock: Unix seconds, the runner's clock (leases are stored on it).
        held: returns the ids of the jobs whose leases to renew (the running ones).
        on_interrupted: called with the id of each job taken over, once it is stored as failed.
    """

    def __init__(
        self,
        *,
        db: Database,
        owner: str,
        platforms: frozenset[str],
        lease_s: float,
        clock: Callable[[], float],
        held: Callable[[], Iterable[str]],
        on_interrupted: Callable[[str], None],
    ) -> None:
        self._db = db
        self.owner = owner
        self.platforms = platforms
        self._lease_s = lease_s
        self._clock = clock
        self._held = held
        self._on_interrupted = on_interrupted
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Heartbeats done (lease renewal and take-over sweep), for monitoring and tests.
        self.heartbeats = 0
        #: Final states the database refused, by job id, written again at every heartbeat.
        self.unsaved: dict[str, FinalState] = {}

    @property
    def lease_s(self) -> float:
        """How long a lease holds without renewal, seconds (renewed every ``lease_s / 3``).
        Setting it takes effect at once, waking the heartbeat."""
        return self._lease_s

    @lease_s.setter
    def lease_s(self, value: float) -> None:
        self._lease_s = value
        self._wake.set()

    def start(self) -> None:
        """Start the heartbeat task."""
        self._task = asyncio.create_task(self._loop(), name="job-heartbeat")

    async def stop(self) -> None:
        """Stop the heartbeat task (leases are no longer renewed)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def release(self) -> None:
        """Store the final states still unsaved and give up every lease of this process, so
        the next process serving its platforms reports its jobs at once. Never raises: what
        could not be stored is logged."""
        try:
            await self.save_unsaved()
            await leases_repo.release_leases(self._db, owner=self.owner)
        except Exception:
            log.warning("could not release the leases of %s", self.owner, exc_info=True)
        for job_id, final in self.unsaved.items():
            log.error(
                "job %s: final state never stored (reference %s, charge %s)",
                job_id, final.error_ref, final.charge,
            )  # fmt: skip

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.lease_s / 3)
            try:
                await self.beat()
            except Exception:
                # A database hiccup must not stop the heartbeat: the next one tries again.
                log.warning("job heartbeat of %s failed", self.owner, exc_info=True)
            self.heartbeats += 1

    async def beat(self) -> None:
        """Renew this process's leases, store final states the database refused earlier, and
        take over jobs of the served platforms whose process is gone."""
        now = self._clock()
        await leases_repo.renew_leases(
            self._db,
            owner=self.owner,
            job_ids=[*self._held(), *self.unsaved],
            now=now,
            lease_until=now + self.lease_s,
        )
        await self.save_unsaved()
        await self.take_over_expired()

    async def take_over_expired(self) -> list[str]:
        """Fail the served platforms' running jobs whose lease expired (their process is gone)
        and report each to ``on_interrupted``; settle cancelled ones whose call was abandoned.

        Returns:
            The ids of the running jobs failed, in insertion order.
        """
        now = self._clock()
        day = datetime.fromtimestamp(now, UTC)
        interrupted = await leases_repo.interrupt_expired(
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
            self._on_interrupted(job_id)
        return interrupted

    async def save_unsaved(self) -> None:
        """Store the final states the database refused earlier, oldest first; stops at the
        first that is refused again (raising its error)."""
        for job_id, final in list(self.unsaved.items()):
            await store_failure(
                self._db, job_id, status=final.status, error=final.error,
                error_ref=final.error_ref, charge=final.charge, now=self._clock(),
            )  # fmt: skip
            del self.unsaved[job_id]
            log.info("job %s: final state stored at last (reference %s)", job_id, final.error_ref)
