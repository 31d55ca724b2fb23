"""Held jobs, uncertain charges and leases in storage (a real SQLite file, no mocks)."""

from __future__ import annotations

import asyncio

import pytest

from storage import (
    Charge,
    Database,
    cancel_job,
    charge,
    finish_job,
    get_job,
    insert_job,
    interrupt_expired,
    ledger_by_job,
    list_jobs_by_status,
    mark_running,
    release_leases,
    renew_leases,
    server_totals,
    settle_charge,
    uncertain_by_job,
    uncertain_totals,
    user_totals,
)
from tests.storage.factories import DAY, MONTH, NOW, limits, make_job

INTERRUPTED = "interrupted"


async def _interrupt(db: Database, now: float, **kw: object) -> list[str]:
    return await interrupt_expired(
        db,
        platforms=kw.pop("platforms", ["discord"]),  # type: ignore[arg-type]
        now=now,
        error=INTERRUPTED,
        day=DAY,
        month=MONTH,
        **kw,  # type: ignore[arg-type]
    )


async def test_a_job_cancelled_while_running_is_held_until_its_charge_is_settled(db: Database):
    """Quota 2 and budget 0.06: the cancelled running job keeps its image and estimate on both
    until its cost is recorded (here: nothing, the API rejected it)."""
    await insert_job(db, make_job("j1"))
    await mark_running(db, "j1", now=NOW, owner="a", lease_until=NOW + 60)
    assert await cancel_job(db, "j1", now=NOW + 1) == "running"
    held = await get_job(db, "j1")
    assert held is not None and held.charge_pending and held.status == "cancelled"

    quota = await insert_job(db, make_job("j2", num_images=2), limits=limits(daily_quota=2))
    assert (quota.status, quota.used) == ("daily_quota", 1)
    budget = await insert_job(
        db, make_job("j3", estimated_cost_usd=0.06), limits=limits(monthly_budget_usd=0.06)
    )
    assert (budget.status, budget.used) == ("budget", pytest.approx(0.03))

    assert not await settle_charge(db, "j1", now=NOW + 2)
    settled = await get_job(db, "j1")
    assert settled is not None and not settled.charge_pending
    assert (await insert_job(db, make_job("j2", num_images=2), limits=limits(daily_quota=2))).ok


async def test_charging_a_held_job_settles_it(db: Database):
    await insert_job(db, make_job("j1"))
    await mark_running(db, "j1", now=NOW)
    await cancel_job(db, "j1", now=NOW + 1)
    assert await settle_charge(db, "j1", now=NOW + 2, charge=Charge(1, 0.03, DAY, MONTH))
    job = await get_job(db, "j1")
    assert job is not None and not job.charge_pending and job.cost_usd == 0.03
    assert await ledger_by_job(db) == {"j1": (1, 0.03)}
    # Counted once: as the charge, no longer as a held job.
    refused = await insert_job(db, make_job("j2"), limits=limits(daily_quota=1))
    assert (refused.status, refused.used) == ("daily_quota", 1)


async def test_a_queued_job_cancelled_is_not_held(db: Database):
    await insert_job(db, make_job("j1"))
    assert await cancel_job(db, "j1", now=NOW) == "queued"
    job = await get_job(db, "j1")
    assert job is not None and not job.charge_pending


async def test_uncertain_rows_count_against_nothing_and_yield_to_a_real_charge(db: Database):
    await insert_job(db, make_job("j1"))
    maybe = Charge(1, 0.03, DAY, MONTH, uncertain=True)
    assert await finish_job(db, "j1", status="failed", now=NOW, error="5xx", charge=maybe)
    assert (await insert_job(db, make_job("j2"), limits=limits(daily_quota=1))).ok
    where = {"platform": "discord", "server_id": "g1"}
    assert (await user_totals(db, user_id="u1", **where)).jobs == 0
    assert (await server_totals(db, month=MONTH, **where)).cost_usd == 0
    assert (await uncertain_totals(db, month=MONTH, **where)).jobs == 1
    job = await get_job(db, "j1")
    assert job is not None and job.cost_usd == 0  # not charged

    # A second uncertain row changes nothing; a real charge replaces it.
    assert not await charge(
        db, job_id="j1", platform="discord", server_id="g1", user_id="u1", day=DAY, month=MONTH,
        command="imagine", images=4, cost_usd=0.5, now=NOW, uncertain=True,
    )  # fmt: skip
    assert await uncertain_by_job(db) == {"j1": (1, 0.03)}
    assert await charge(
        db, job_id="j1", platform="discord", server_id="g1", user_id="u1", day=DAY, month=MONTH,
        command="imagine", images=1, cost_usd=0.03, now=NOW,
    )  # fmt: skip
    assert await uncertain_by_job(db) == {}
    assert await ledger_by_job(db) == {"j1": (1, 0.03)}
    job = await get_job(db, "j1")
    assert job is not None and job.cost_usd == 0.03
    # A real charge is never replaced, by anything.
    assert not await charge(
        db, job_id="j1", platform="discord", server_id="g1", user_id="u1", day=DAY, month=MONTH,
        command="imagine", images=1, cost_usd=0.03, now=NOW, uncertain=True,
    )  # fmt: skip
    assert await ledger_by_job(db) == {"j1": (1, 0.03)}


async def test_only_expired_leases_of_the_served_platforms_are_taken_over(db: Database):
    await insert_job(db, make_job("live"))
    await insert_job(db, make_job("dead"))
    await insert_job(db, make_job("mine"))
    await insert_job(db, make_job("slack", platform="slack"))
    await insert_job(db, make_job("held"))
    await mark_running(db, "live", now=NOW, owner="a", lease_until=NOW + 30)
    await mark_running(db, "dead", now=NOW, owner="b", lease_until=NOW + 10)
    await mark_running(db, "mine", now=NOW, owner="c", lease_until=NOW + 10)
    await mark_running(db, "slack", now=NOW, owner="b", lease_until=NOW + 10)
    await mark_running(db, "held", now=NOW, owner="b", lease_until=NOW + 10)
    await cancel_job(db, "held", now=NOW + 1)

    assert await _interrupt(db, NOW + 5, except_owner="c") == []  # nothing expired yet
    assert await _interrupt(db, NOW + 20, except_owner="c") == ["dead"]
    dead = await get_job(db, "dead")
    assert dead is not None and (dead.status, dead.error) == ("failed", INTERRUPTED)
    held = await get_job(db, "held")
    assert held is not None and held.status == "cancelled" and not held.charge_pending
    assert await uncertain_by_job(db) == {"dead": (1, 0.03), "held": (1, 0.03)}
    statuses = {j.id: j.status for j in await list_jobs_by_status(db, ["running"])}
    assert statuses == {"live": "running", "mine": "running", "slack": "running"}

    # The live owner renews; the lease of a stopped one is released and taken over at once.
    assert await renew_leases(db, owner="a", job_ids=["live"], now=NOW + 25, lease_until=NOW + 60)
    assert await _interrupt(db, NOW + 40, except_owner="c") == []
    assert await release_leases(db, owner="a") == 1
    assert await _interrupt(db, NOW + 41, except_owner="c") == ["live"]
    assert await _interrupt(db, NOW + 99, platforms=["slack"]) == ["slack"]


async def test_a_running_job_without_a_lease_is_taken_over(db: Database):
    """Rows from before leases existed (or runners that took none) count as expired."""
    await insert_job(db, make_job("j1"))
    await mark_running(db, "j1", now=NOW)
    assert await _interrupt(db, NOW) == ["j1"]


async def test_list_jobs_by_status_of_some_platforms(db: Database):
    await insert_job(db, make_job("d1"))
    await insert_job(db, make_job("s1", platform="slack"))
    await insert_job(db, make_job("c1", platform="console"))
    assert [j.id for j in await list_jobs_by_status(db, ["queued"])] == ["d1", "s1", "c1"]
    found = await list_jobs_by_status(db, ["queued"], platforms=["console", "slack"])
    assert [j.id for j in found] == ["s1", "c1"]
    assert await list_jobs_by_status(db, ["queued"], platforms=[]) == []


async def test_a_transaction_cancelled_while_it_begins_leaves_the_connection_usable(
    db: Database,
):
    """Cancelled while BEGIN is on its way: the rollback still follows, so the next
    transaction does not fail with "cannot start a transaction within a transaction"."""
    for _ in range(20):
        task = asyncio.create_task(insert_job(db, make_job("cancelled")))
        await asyncio.sleep(0)  # let it reach BEGIN
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await insert_job(db, make_job("next"))).ok
        await db.conn.execute("DELETE FROM jobs")


async def test_a_read_only_database_raises_its_own_error(db: Database):
    await db.conn.execute("PRAGMA query_only = 1")
    with pytest.raises(Exception, match="readonly"):
        await insert_job(db, make_job("j1"))
    await db.conn.execute("PRAGMA query_only = 0")
    assert (await insert_job(db, make_job("j1"))).ok
