"""The runner under hostile or unlucky conditions: cancelling to dodge limits, a full disk, a
failing database, calls the API may have billed, and one clock for every stored time.

Every test goes through the real engine against the offline engine over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from bot import messages
from bot.app import build_engine
from bot.engine import Engine
from bot.errors import QuotaExceeded, UserError
from bot.image_store import ImageStore
from bot.types import Caller, Invocation, JobResult, TextReply
from storage import jobs as jobs_repo
from storage import usage as usage_repo
from tests.conftest import Harness, eventually, make_client

ADMIN = Caller(platform="console", user_id="admin", server_id="s1", channel_id="c1", is_admin=True)
ALICE = Caller(platform="console", user_id="alice", server_id="s1", channel_id="c1")


async def _run(harness: Harness, text: str, caller: Caller = ALICE) -> JobResult:
    result = await harness.engine.handle(Invocation("imagine", caller, text=text))
    assert isinstance(result, JobResult)
    return result


async def _set(harness: Harness, key: str, value: str) -> None:
    await harness.engine.handle(Invocation("settings", ADMIN, text=f"set {key} {value}"))


async def _usage(harness: Harness, caller: Caller) -> str:
    reply = await harness.engine.handle(Invocation("usage", caller))
    assert isinstance(reply, TextReply)
    return reply.text


@asynccontextmanager
async def _engine(
    harness: Harness, store: ImageStore | None = None, clock: Callable[[], float] | None = None
) -> AsyncIterator[Engine]:
    """Another engine on the harness's database, with its own store or clock; the harness's
    engine is paused meanwhile so that only one runner watches the jobs."""
    await harness.engine.close()
    options = {"clock": clock} if clock is not None else {}
    engine = build_engine(
        db=harness.db,
        store=store or ImageStore(harness.settings.data_dir),
        client=make_client(harness.session, harness.offline),
        settings=harness.settings,
        **options,  # type: ignore[arg-type]
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()
        await harness.engine.start()  # the fixture closes it


# -- cancelling a running job does not give its quota or budget back ----------------------


@pytest.mark.parametrize("limit", ["daily_quota", "monthly_budget_usd"])
async def test_cancelling_a_running_job_keeps_it_on_the_quota_and_budget(
    harness: Harness, limit: str
):
    """Room for one 4-image job and a half: cancelling the running one while the API works on
    it must not make room for a second call, before or after the first is charged."""
    harness.offline.faults.latency_s = 0.5
    first = asyncio.create_task(_run(harness, "a red fox --n 4"))
    await eventually(lambda: harness.engine.runner.in_flight)
    (running,) = await jobs_repo.list_jobs_by_status(harness.db, ["running"])
    value = "6" if limit == "daily_quota" else f"{running.estimated_cost_usd * 1.5:.4f}"
    await _set(harness, limit, value)

    reply = await harness.engine.cancel(running.id, ALICE)
    assert reply.text == messages.CANCELLED
    with pytest.raises(QuotaExceeded):
        await _run(harness, "a blue fox --n 4")  # the first call is still on its way
    cancelled = await first
    assert cancelled.status == "cancelled"
    with pytest.raises(QuotaExceeded):
        await _run(harness, "a green fox --n 4")  # it was charged as the API billed it
    assert harness.api_calls == 1
    assert (await usage_repo.ledger_by_job(harness.db))[running.id][0] == 4


# -- a full disk or a failing database ------------------------------------------------------


class FullDisk(ImageStore):
    """An image store on a disk with no space left."""

    async def put(self, data: bytes) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def test_a_full_disk_after_the_api_billed_fails_the_job_and_still_charges_it(
    harness: Harness,
):
    async with _engine(harness, store=FullDisk(harness.settings.data_dir)) as engine:
        result = await engine.handle(Invocation("imagine", ALICE, text="a red fox --n 2"))
    assert isinstance(result, JobResult)
    assert result.status == "failed" and result.error == messages.STORE_FAILED
    assert not result.images and not result.actions
    assert (await usage_repo.ledger_by_job(harness.db))[result.job_id][0] == 2
    job = await jobs_repo.get_job(harness.db, result.job_id)
    assert job is not None and job.error_ref  # the log has the details under this reference


async def test_a_failing_database_still_answers_and_stores_the_outcome_once_it_works(
    harness: Harness,
):
    """The database turns read-only while the API works: the caller still gets an answer
    (with a reference id), and once writes work again the failure and the charge land."""
    harness.engine.runner.lease_s = 0.3  # heartbeats (which retry the write) every 0.1 s
    harness.offline.faults.latency_s = 0.3
    task = asyncio.create_task(_run(harness, "a red fox"))
    await eventually(lambda: harness.engine.runner.in_flight)
    (running,) = await jobs_repo.list_jobs_by_status(harness.db, ["running"])
    await harness.db.conn.execute("PRAGMA query_only = 1")  # every write fails from now on
    try:
        async with asyncio.timeout(20):
            with pytest.raises(UserError) as refused:
                await task
    finally:
        await harness.db.conn.execute("PRAGMA query_only = 0")
    assert "reference" in refused.value.message

    async def stored() -> bool:
        job = await jobs_repo.get_job(harness.db, running.id)
        return job is not None and job.status == "failed"

    await eventually(stored)
    job = await jobs_repo.get_job(harness.db, running.id)
    assert job is not None and job.error_ref and job.error_ref in refused.value.message
    assert (await usage_repo.ledger_by_job(harness.db))[running.id][0] == 1


# -- calls the API may have billed -----------------------------------------------------------


async def test_a_server_error_is_possibly_billed_for_admins_and_free_for_the_user(
    harness: Harness,
):
    await _set(harness, "daily_quota", "2")
    harness.offline.faults.server_error_next = 1
    failed = await _run(harness, "a red fox --n 2")
    assert failed.status == "failed" and failed.error == messages.SERVER_ERROR
    again = await _run(harness, "a red fox --n 2")  # the failure took none of the quota
    assert again.ok

    job = await jobs_repo.get_job(harness.db, failed.job_id)
    assert job is not None
    assert await usage_repo.uncertain_by_job(harness.db) == {
        failed.job_id: (2, pytest.approx(job.estimated_cost_usd))
    }
    assert failed.job_id not in await usage_repo.ledger_by_job(harness.db)
    line = f"Possibly billed this month: 1 jobs, about ${job.estimated_cost_usd:.2f}"
    assert line in await _usage(harness, ADMIN)
    assert "Possibly billed" not in await _usage(harness, ALICE)


async def test_a_timeout_is_recorded_as_possibly_billed(harness: Harness):
    await harness.engine.close()
    engine = build_engine(
        db=harness.db,
        store=ImageStore(harness.settings.data_dir),
        client=make_client(harness.session, harness.offline, timeout_s=0.3),
        settings=harness.settings,
    )
    await engine.start()
    harness.offline.faults.hang_next = 1
    try:
        result = await engine.handle(Invocation("imagine", ALICE, text="a red fox"))
    finally:
        await engine.close()
        await harness.engine.start()
    assert isinstance(result, JobResult) and result.error == messages.TIMEOUT
    assert set(await usage_repo.uncertain_by_job(harness.db)) == {result.job_id}
    assert await usage_repo.ledger_by_job(harness.db) == {}


async def test_a_job_interrupted_by_a_restart_is_possibly_billed(harness: Harness):
    harness.offline.faults.hang_next = 1
    task = asyncio.create_task(_run(harness, "stuck job"))
    await eventually(lambda: harness.engine.runner.in_flight)
    (running,) = await jobs_repo.list_jobs_by_status(harness.db, ["running"])
    await harness.restart()
    task.cancel()
    job = await jobs_repo.get_job(harness.db, running.id)
    assert job is not None and job.status == "failed" and job.error == messages.INTERRUPTED
    assert set(await usage_repo.uncertain_by_job(harness.db)) == {running.id}
    assert await usage_repo.ledger_by_job(harness.db) == {}
    assert "Possibly billed this month: 1 jobs" in await _usage(harness, ADMIN)


# -- one clock ---------------------------------------------------------------------------------


async def test_every_stored_time_of_a_job_is_read_on_the_engine_clock(harness: Harness):
    pinned = datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC).timestamp()
    async with _engine(harness, clock=lambda: pinned) as engine:
        result = await engine.handle(Invocation("imagine", ALICE, text="a red fox"))
    assert isinstance(result, JobResult) and result.ok
    job = await jobs_repo.get_job(harness.db, result.job_id)
    assert job is not None
    assert job.created_at == job.started_at == job.finished_at == pinned
    totals = await usage_repo.user_totals(
        harness.db, platform="console", server_id="s1", user_id="alice", day="2001-09-09"
    )
    assert totals.images == 1
