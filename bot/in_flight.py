"""Places at the API: images in flight under an adaptive limit, and running jobs per user.

* The in-flight limit counts images, as Ideogram does: a 4-image request takes 4 places, and
  ``maximum`` (``IDEOGRAM_MAX_IN_FLIGHT``) is never exceeded. A job larger than the adapted
  limit still runs alone.
* The limit adapts (AIMD): every burst of 429 answers halves it, and it grows back by one after
  as many successes as the current limit, up to ``maximum``.
* A user has at most ``max_user_running`` jobs running at once (0 = no limit).

:class:`InFlight` is owned by :class:`bot.jobs.JobRunner`, which decides with it when the head
job of the fair queue (:mod:`bot.fair_queue`) may start (docs/architecture.md).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from bot.fair_queue import QueueEntry

log = logging.getLogger(__name__)


class InFlight:
    """The places jobs take while their API call runs.

    Args:
        maximum: images in flight at the API at once, at most (at least 1).
        max_user_running: jobs of one user running at once (0 = no limit).
        on_change: called whenever a place may have become free (a release, a raised limit),
            so the dispatcher looks again.
    """

    def __init__(self, maximum: int, max_user_running: int, on_change: Callable[[], None]):
        self._maximum = maximum
        self.max_user_running = max_user_running
        #: The adapted limit on images in flight, between 1 and ``maximum``.
        self.limit = maximum
        #: Images in flight now, and the most there have been.
        self.in_flight = 0
        self.peak = 0
        self._on_change = on_change
        self._running_by_user: dict[str, int] = {}
        self._successes = 0
        self._last_cut = -math.inf

    @property
    def maximum(self) -> int:
        """The most images in flight at the API at once; the adaptive limit stays under it."""
        return self._maximum

    @maximum.setter
    def maximum(self, value: int) -> None:
        self._maximum = max(1, value)
        self.limit = min(self.limit, self._maximum) if self.limit else self._maximum
        self._on_change()

    def eligible(self, user_key: str) -> bool:
        """Whether the user ``user_key`` (``"<platform>:<user id>"``) may start another job."""
        return (
            self.max_user_running <= 0
            or self._running_by_user.get(user_key, 0) < self.max_user_running
        )

    def fits(self, weight: int) -> bool:
        """Whether a job of ``weight`` images may start now."""
        # A job larger than the (adapted) limit still runs alone, never beyond the maximum.
        return self.in_flight == 0 or self.in_flight + weight <= self.limit

    def take(self, entry: QueueEntry) -> None:
        """Give the places of ``entry`` (its weight, one running job of its user) to it."""
        entry.released = False
        self.in_flight += entry.weight
        self.peak = max(self.peak, self.in_flight)
        user = entry.user_key
        self._running_by_user[user] = self._running_by_user.get(user, 0) + 1

    def release(self, entry: QueueEntry) -> None:
        """Give back the job's places; idempotent, so the API call's end can free them before
        the result is stored and the run's end makes sure they were freed."""
        if entry.released:
            return
        entry.released = True
        self.in_flight -= entry.weight
        left = self._running_by_user.get(entry.user_key, 1) - 1
        if left:
            self._running_by_user[entry.user_key] = left
        else:
            self._running_by_user.pop(entry.user_key, None)
        self._on_change()

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

    def on_success(self) -> None:
        """A call succeeded: after as many successes as the limit, raise it by one."""
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit += 1
            self._on_change()
