"""The usage ledger: idempotent charges and totals by user, day, month and server."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from storage import (
    Database,
    UsageTotals,
    charge,
    get_job,
    insert_job,
    ledger_by_job,
    server_totals,
    user_totals,
)

from .factories import DAY, MONTH, NOW, make_job


async def _charge(
    db: Database,
    job_id: str,
    *,
    user_id: str = "u1",
    server_id: str = "g1",
    day: str = DAY,
    month: str = MONTH,
    images: int = 1,
    cost_usd: float = 0.03,
) -> bool:
    """Charge ``job_id`` on Discord."""
    return await charge(
        db,
        job_id=job_id,
        platform="discord",
        server_id=server_id,
        user_id=user_id,
        day=day,
        month=month,
        command="imagine",
        images=images,
        cost_usd=cost_usd,
        now=NOW,
    )


async def test_charge_is_idempotent(db: Database) -> None:
    """Charging the same job twice writes one row; the second call reports it did nothing."""
    await insert_job(db, make_job("j1", num_images=2))
    assert await _charge(db, "j1", images=2, cost_usd=0.06)
    assert not await _charge(db, "j1", images=2, cost_usd=0.06)
    assert not await _charge(db, "j1", images=5, cost_usd=9.99)
    assert await ledger_by_job(db) == {"j1": (2, 0.06)}
    record = await get_job(db, "j1")
    assert record is not None and record.cost_usd == pytest.approx(0.06)


async def test_charge_needs_an_existing_job(db: Database) -> None:
    """The ledger only holds charges of real jobs."""
    with pytest.raises(sqlite3.IntegrityError):
        await _charge(db, "ghost")


async def test_concurrent_charges_are_all_counted(db: Database) -> None:
    """200 simultaneous charges of distinct jobs: none lost, none doubled."""
    for n in range(200):
        await insert_job(db, make_job(f"j{n:03d}"))
    results = await asyncio.gather(*(_charge(db, f"j{n:03d}") for n in range(200)))
    assert all(results)
    totals = await user_totals(db, platform="discord", server_id="g1", user_id="u1", day=DAY)
    assert (totals.jobs, totals.images) == (200, 200)
    assert totals.cost_usd == pytest.approx(6.0)
    assert len(await ledger_by_job(db)) == 200


async def test_concurrent_double_charges_count_once(db: Database) -> None:
    """Every job charged twice at the same moment is still charged once."""
    for n in range(50):
        await insert_job(db, make_job(f"j{n:02d}"))
    results = await asyncio.gather(*(_charge(db, f"j{n % 50:02d}") for n in range(100)))
    assert sum(results) == 50
    totals = await server_totals(db, platform="discord", server_id="g1", month=MONTH)
    assert totals.jobs == 50


async def test_totals_by_day_month_and_server(db: Database) -> None:
    """User totals filter by day or month; server totals add up every user of the server."""
    jobs = [
        ("a", "u1", "g1", DAY, MONTH, 2, 0.06),
        ("b", "u1", "g1", "2025-06-01", MONTH, 1, 0.03),
        ("c", "u1", "g1", "2025-05-31", "2025-05", 4, 0.24),
        ("d", "u2", "g1", DAY, MONTH, 3, 0.27),
        ("e", "u1", "g2", DAY, MONTH, 1, 0.09),
    ]
    for job_id, user, server, day, month, images, cost in jobs:
        await insert_job(db, make_job(job_id, owner_id=user, server_id=server))
        await _charge(
            db,
            job_id,
            user_id=user,
            server_id=server,
            day=day,
            month=month,
            images=images,
            cost_usd=cost,
        )

    today = await user_totals(db, platform="discord", server_id="g1", user_id="u1", day=DAY)
    assert (today.jobs, today.images) == (1, 2) and today.cost_usd == pytest.approx(0.06)
    june = await user_totals(db, platform="discord", server_id="g1", user_id="u1", month=MONTH)
    assert (june.jobs, june.images) == (2, 3) and june.cost_usd == pytest.approx(0.09)
    ever = await user_totals(db, platform="discord", server_id="g1", user_id="u1")
    assert (ever.jobs, ever.images) == (3, 7)
    g1 = await server_totals(db, platform="discord", server_id="g1", month=MONTH)
    assert (g1.jobs, g1.images) == (3, 6) and g1.cost_usd == pytest.approx(0.36)
    nobody = await user_totals(db, platform="slack", server_id="T1", user_id="U1", day=DAY)
    assert nobody == UsageTotals(0, 0, 0.0)
