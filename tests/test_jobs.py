"""The queue: round-robin fairness across users and the in-flight limit counted in images."""

from __future__ import annotations

import asyncio

import pytest

from bot import messages
from bot.errors import NotAllowed
from bot.fair_queue import FairQueue, QueueEntry
from bot.types import Caller, Invocation, JobResult, Press, Progress, TextReply
from storage import jobs as jobs_repo
from storage import usage as usage_repo
from tests.conftest import Harness, eventually


def _entry(job_id: str, user: str, weight: int = 1) -> QueueEntry:
    return QueueEntry(job_id, user, weight, None, asyncio.get_running_loop().create_future())


async def test_fair_queue_serves_users_round_robin():
    queue = FairQueue()
    for job_id in ("a1", "a2", "a3"):
        queue.push(_entry(job_id, "alice"))
    queue.push(_entry("b1", "bob"))
    queue.push(_entry("c1", "carol"))
    assert [e.job_id for e in queue.order()] == ["a1", "b1", "c1", "a2", "a3"]
    started = []
    while (head := queue.peek()) is not None:
        queue.pop(head)
        started.append(head.job_id)
    assert started == ["a1", "b1", "c1", "a2", "a3"]


async def test_users_at_their_running_limit_are_skipped():
    queue = FairQueue()
    for job_id, user in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
        queue.push(_entry(job_id, user))
    head = queue.peek(lambda user: user != "alice")
    assert head is not None and head.job_id == "b1"


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


def _caller(user: str) -> Caller:
    return Caller(platform="console", user_id=user, server_id="s", channel_id="c")


async def test_a_job_still_rate_limited_after_retries_waits_its_turn_again(harness: Harness):
    """429 beyond the client's retries: the job is re-queued, not failed, and then succeeds;
    the adaptive limit was halved."""
    harness.engine.runner.requeue_delay_s = 0.01
    harness.offline.faults.rate_limit_next = 4  # the client tries 3 times (2 retries)
    harness.offline.faults.retry_after_s = 0.0
    seen: list[Progress] = []

    async def record(progress: Progress) -> None:
        seen.append(progress)

    result = await harness.engine.handle(Invocation("imagine", _caller("a"), text="fox"), record)
    assert isinstance(result, JobResult) and result.ok
    assert [p.text for p in seen].count(messages.WAITING_FOR_CAPACITY) == 1
    assert harness.engine.runner.limit < harness.engine.runner.max_in_flight
    # Places were given back exactly once, though the job started again at once.
    assert harness.engine.runner.in_flight == 0


async def test_the_adaptive_limit_recovers_after_successes(harness: Harness):
    runner = harness.engine.runner
    runner.on_rate_limited()
    assert runner.limit == runner.max_in_flight // 2
    runner.on_rate_limited()  # the same burst: no second cut
    assert runner.limit == runner.max_in_flight // 2
    for i in range(40):
        await harness.engine.handle(Invocation("imagine", _caller("a"), text=f"fox {i}"))
    assert runner.limit == runner.max_in_flight


async def test_progress_offers_cancel_and_only_the_owner_may_press_it(harness: Harness):
    harness.engine.runner.max_in_flight = 1
    harness.offline.faults.latency_s = 0.3
    progress: dict[str, list[Progress]] = {}

    async def record(p: Progress) -> None:
        progress.setdefault(p.job_id, []).append(p)

    first = asyncio.create_task(
        harness.engine.handle(Invocation("imagine", _caller("a"), text="one"), record)
    )
    second = asyncio.create_task(
        harness.engine.handle(Invocation("imagine", _caller("a"), text="two"), record)
    )
    await eventually(lambda: len(progress) == 2)
    queued_id = next(j for j, ps in progress.items() if ps[-1].state == "queued")
    cancel = progress[queued_id][-1].cancel
    assert cancel is not None and cancel.label == "Cancel"
    with pytest.raises(NotAllowed):
        await harness.engine.press(Press(cancel.action_id, _caller("b")))
    reply = await harness.engine.press(Press(cancel.action_id, _caller("a")))
    assert isinstance(reply, TextReply) and reply.text == messages.CANCELLED
    results = await asyncio.gather(first, second)
    assert sorted(r.status for r in results) == ["cancelled", "succeeded"]  # type: ignore[union-attr]
    assert progress[queued_id][-1].state == "cancelled"


async def test_a_running_job_cancelled_is_discarded_and_charged_as_billed(harness: Harness):
    harness.offline.faults.latency_s = 0.3
    task = asyncio.create_task(
        harness.engine.handle(Invocation("imagine", _caller("a"), text="slow fox"))
    )
    await eventually(lambda: harness.engine.runner.in_flight)
    running = await jobs_repo.list_jobs_by_status(harness.db, ["running"])
    await harness.engine.cancel(running[0].id, _caller("a"))
    result = await task
    assert isinstance(result, JobResult) and result.status == "cancelled"
    assert not result.images and not result.actions
    ledger = await usage_repo.ledger_by_job(harness.db)
    assert ledger[running[0].id][0] == 1  # the API ran it and billed it


async def test_queue_positions_are_rate_limited_per_job(harness: Harness):
    """With a 10 s interval, each queued job hears its position once while the queue moves."""
    runner = harness.engine.runner
    runner.max_in_flight = 1
    runner.position_interval_s = 10.0
    harness.settings.max_user_active_jobs = 10
    harness.offline.faults.latency_s = 0.05
    positions: dict[str, list[int]] = {}

    async def record(p: Progress) -> None:
        if p.state == "queued" and p.position is not None:
            positions.setdefault(p.job_id, []).append(p.position)

    results = await asyncio.gather(*(
        harness.engine.handle(Invocation("imagine", _caller(f"u{i}"), text=f"fox {i}"), record)
        for i in range(6)
    ))  # fmt: skip
    assert all(isinstance(r, JobResult) and r.ok for r in results)
    assert positions and all(len(p) == 1 for p in positions.values()), positions


async def test_shutdown_lets_running_jobs_finish_and_keeps_queued_ones(harness: Harness):
    """close(grace) stops starting jobs, lets the running one finish, leaves the queued one
    queued for the next start."""
    runner = harness.engine.runner
    runner.max_in_flight = 1
    harness.offline.faults.latency_s = 0.3
    tasks = [
        asyncio.create_task(
            harness.engine.handle(Invocation("imagine", _caller(u), text=f"fox {u}"))
        )
        for u in ("a", "b")
    ]
    await eventually(lambda: runner.in_flight == 1 and runner.queued == 1)
    await harness.engine.close(grace_s=10)
    await asyncio.gather(*tasks, return_exceptions=True)
    statuses = sorted(j.status for j in await jobs_repo.list_jobs_by_status(
        harness.db, ["queued", "running", "succeeded", "failed"]
    ))  # fmt: skip
    assert statuses == ["queued", "succeeded"]
    await harness.engine.start()  # the fixture closes it again
