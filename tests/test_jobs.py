"""The queue: round-robin fairness across users and the in-flight limit counted in images."""

from __future__ import annotations

import asyncio

from bot.jobs import FairQueue, _Entry
from bot.types import Caller, Invocation, JobResult, Progress
from tests.conftest import Harness


def _entry(job_id: str, user: str, weight: int = 1) -> _Entry:
    return _Entry(job_id, user, weight, None, asyncio.get_running_loop().create_future())


async def test_fair_queue_serves_users_round_robin():
    queue = FairQueue()
    for job_id in ("a1", "a2", "a3"):
        queue.push(_entry(job_id, "alice"))
    queue.push(_entry("b1", "bob"))
    queue.push(_entry("c1", "carol"))
    assert [e.job_id for e in queue.order()] == ["a1", "b1", "c1", "a2", "a3"]
    assert [queue.pop().job_id for _ in range(len(queue))] == ["a1", "b1", "c1", "a2", "a3"]


async def test_fair_queue_remove_keeps_the_rest_in_order():
    queue = FairQueue()
    for job_id, user in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
        queue.push(_entry(job_id, user))
    assert queue.remove("a1") is not None
    assert queue.remove("zz") is None
    assert [e.job_id for e in queue.order()] == ["a2", "b1"]


async def test_in_flight_limit_counts_images_and_queue_positions_are_shown(harness: Harness):
    """Limit 4: a 4-image job waits for the 2-image jobs; the API never sees more than 4."""
    harness.engine.runner.max_in_flight = 4
    harness.settings.max_user_active_jobs = 10
    harness.offline.faults.latency_s = 0.2
    seen: list[Progress] = []

    async def record(progress: Progress) -> None:
        seen.append(progress)

    def run(user: str, text: str) -> asyncio.Task[object]:
        caller = Caller(platform="console", user_id=user, server_id="s", channel_id="c")
        return asyncio.create_task(
            harness.engine.handle(Invocation("imagine", caller, text=text), record)
        )

    tasks = [run("alice", f"alice {i} --n 2") for i in range(3)] + [run("bob", "bob --n 4")]
    results = await asyncio.gather(*tasks)
    assert all(isinstance(r, JobResult) and r.ok for r in results)
    assert harness.offline.peak_in_flight_images <= 4
    assert harness.engine.runner.peak_in_flight == 4
    assert any(p.state == "queued" and p.position and p.position >= 2 for p in seen)
    assert {p.state for p in seen} >= {"queued", "running", "succeeded"}
