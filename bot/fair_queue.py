"""Per-user FIFO queues served round-robin: the order in which waiting jobs start.

One user's batch of twenty does not starve a channel: each user's next job takes its turn after
every other waiting user's. The :class:`~bot.jobs.JobRunner` decides *when* the head job may
start (in-flight places, per-user running limit); :class:`FairQueue` decides *which*.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.types import ProgressCallback
from storage import Charge, JobRecord


@dataclass(slots=True)
class QueueEntry:
    """One job in the runner: its place in line, its in-flight weight and its listener.

    ``weight`` is the images it takes in flight (a 4-image request takes 4); ``done`` resolves
    with the job's final status; ``charge`` is what the API billed once its call returned, until
    the ledger has it; the rest is the runner's bookkeeping.
    """

    job_id: str
    user_key: str
    weight: int
    listener: ProgressCallback | None
    done: asyncio.Future[str]
    created_at: float = 0.0
    job: JobRecord | None = None  # as stored at submit; what the API call needs never changes
    requeues: int = 0
    stage: str = "queued"
    last_position: int | None = None
    last_sent: float = -math.inf
    position_pending: bool = False
    released: bool = True
    charge: Charge | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FairQueue:
    """Per-user FIFO queues served round-robin.

    The order in which jobs start is: the head of each user's queue in turn (users in the order
    they first queued), then the second job of each, and so on. A user who was just served goes
    to the back of the line.
    """

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[QueueEntry]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, entry: QueueEntry) -> None:
        """Append ``entry`` to its user's queue."""
        self._queues.setdefault(entry.user_key, deque()).append(entry)

    def push_front(self, entry: QueueEntry) -> None:
        """Put ``entry`` back at the head of its user's queue, and the user first in line."""
        self._queues.setdefault(entry.user_key, deque()).appendleft(entry)
        self._queues.move_to_end(entry.user_key, last=False)

    def peek(self, eligible: Callable[[str], bool] = lambda _user: True) -> QueueEntry | None:
        """The entry :meth:`pop` would take among users for whom ``eligible(user_key)``."""
        for user_key, queue in self._queues.items():
            if eligible(user_key):
                return queue[0]
        return None

    def pop(self, entry: QueueEntry) -> None:
        """Remove ``entry``, the head of its user's queue (from :meth:`peek`), and send that
        user to the back of the line.

        Raises:
            ValueError: ``entry`` is not the head of its user's queue.
        """
        queue = self._queues.get(entry.user_key)
        if not queue or queue[0] is not entry:
            raise ValueError("pop takes the head entry that peek returned")
        queue.popleft()
        del self._queues[entry.user_key]
        if queue:
            self._queues[entry.user_key] = queue

    def remove(self, job_id: str) -> QueueEntry | None:
        """Remove the queued entry of ``job_id``; return it, or ``None`` if not queued."""
        for user_key, queue in self._queues.items():
            for entry in queue:
                if entry.job_id == job_id:
                    queue.remove(entry)
                    if not queue:
                        del self._queues[user_key]
                    return entry
        return None

    def order(self) -> list[QueueEntry]:
        """All queued entries in the order they will start (ignoring running limits)."""
        queues = [list(q) for q in self._queues.values()]
        out: list[QueueEntry] = []
        depth = 0
        while True:
            layer = [q[depth] for q in queues if depth < len(q)]
            if not layer:
                return out
            out.extend(layer)
            depth += 1
