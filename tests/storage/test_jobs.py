"""Jobs: insert with de-duplication and limits, state changes, images, look-ups."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from storage import (
    Charge,
    Database,
    NewImage,
    cancel_job,
    charge,
    find_active_press,
    finish_job,
    get_images,
    get_job,
    insert_job,
    job_of_message,
    ledger_by_job,
    link_message,
    list_jobs_by_status,
    mark_running,
    messages_of_job,
    recent_jobs,
    user_totals,
)

from .factories import DAY, MONTH, NOW, limits, make_job


async def _charge_ledger(db: Database, job_id: str, images: int, cost_usd: float) -> None:
    """Charge an (already inserted) job of user u1 on discord/g1 for today."""
    assert await charge(
        db,
        job_id=job_id,
        platform="discord",
        server_id="g1",
        user_id="u1",
        day=DAY,
        month=MONTH,
        command="imagine",
        images=images,
        cost_usd=cost_usd,
        now=NOW,
    )


async def test_insert_and_get_round_trip(db: Database) -> None:
    """Every field comes back as written, JSON columns decoded, status queued."""
    parent = make_job("p1")
    assert (await insert_job(db, parent)).status == "ok"
    job = make_job(
        "j1",
        action="V2",
        parent_job_id="p1",
        parent_index=1,
        prompt="un renard roux ✨",
        request={"prompt": "un renard roux ✨", "num_images": 4, "style_codes": ["A1", "B2"]},
        input_sha256="ab" * 32,
        input_content_type="image/png",
        num_images=4,
        estimated_cost_usd=0.12,
        request_key="interaction-123",
        created_at=NOW + 5,
    )
    outcome = await insert_job(db, job)
    assert outcome.ok and outcome.job_id == "j1"

    record = await get_job(db, "j1")
    assert record is not None
    assert record.status == "queued" and record.is_active
    assert record.seq == 2
    assert record.request == job.request
    assert record.prompt == "un renard roux ✨"
    assert (record.action, record.parent_job_id, record.parent_index) == ("V2", "p1", 1)
    assert (record.input_sha256, record.input_content_type) == ("ab" * 32, "image/png")
    assert (record.num_images, record.rendering_speed) == (4, "TURBO")
    assert record.estimated_cost_usd == pytest.approx(0.12)
    assert record.cost_usd == 0
    assert record.request_key == "interaction-123"
    assert record.message_ref is None and record.descriptions == ()
    assert (record.created_at, record.started_at, record.finished_at) == (NOW + 5, None, None)
    assert (record.error, record.error_ref) == (None, None)
    assert await get_job(db, "missing") is None


async def test_same_job_id_twice_is_an_error(db: Database) -> None:
    """Job ids are unique; a clash is a bug of the caller's id generator."""
    await insert_job(db, make_job("j1"))
    with pytest.raises(sqlite3.IntegrityError):
        await insert_job(db, make_job("j1"))


async def test_unknown_parent_is_refused(db: Database) -> None:
    """A follow-up must name an existing parent job (foreign keys are on)."""
    with pytest.raises(sqlite3.IntegrityError):
        await insert_job(db, make_job("j1", parent_job_id="nope", action="U1"))


async def test_request_key_duplicate_returns_existing_job(db: Database) -> None:
    """A platform retry with the same delivery id gets the first job back, nothing new."""
    first = await insert_job(db, make_job("j1", request_key="delivery-1"))
    again = await insert_job(
        db, make_job("j2", request_key="delivery-1"), limits=limits(max_user_active=1)
    )
    assert first.status == "ok"
    assert (again.status, again.job_id) == ("duplicate", "j1")
    assert await get_job(db, "j2") is None
    # Jobs without a key never collide.
    assert (await insert_job(db, make_job("j3"))).ok
    assert (await insert_job(db, make_job("j4"))).ok


async def test_user_busy(db: Database) -> None:
    """A user at the concurrency limit is refused until a job of theirs finishes."""
    cap = limits(max_user_active=2)
    assert (await insert_job(db, make_job("j1"), limits=cap)).ok
    assert (await insert_job(db, make_job("j2"), limits=cap)).ok
    await mark_running(db, "j2", now=NOW)
    refused = await insert_job(db, make_job("j3"), limits=cap)
    assert (refused.status, refused.used, refused.limit) == ("user_busy", 2, 2)
    assert await get_job(db, "j3") is None
    # Another user, or the same user on another platform, is not affected.
    assert (await insert_job(db, make_job("k1", owner_id="u2"), limits=cap)).ok
    assert (await insert_job(db, make_job("s1", platform="slack"), limits=cap)).ok
    await finish_job(db, "j1", status="succeeded", now=NOW + 1)
    assert (await insert_job(db, make_job("j3"), limits=cap)).ok


async def test_daily_quota_counts_ledger_and_active_jobs(db: Database) -> None:
    """Images charged today plus images of active jobs plus the new job must fit the quota."""
    quota = limits(daily_quota=6)
    await insert_job(db, make_job("done", num_images=3))
    await finish_job(
        db, "done", status="succeeded", now=NOW, charge=Charge(3, 0.09, DAY, MONTH)
    )  # 3 charged today
    await insert_job(db, make_job("yesterday", num_images=4))
    await finish_job(
        db, "yesterday", status="succeeded", now=NOW, charge=Charge(4, 0.12, "2025-06-14", MONTH)
    )  # another day: does not count
    assert (await insert_job(db, make_job("active", num_images=2), limits=quota)).ok  # 3 + 2

    refused = await insert_job(db, make_job("big", num_images=2), limits=quota)
    assert (refused.status, refused.used, refused.limit) == ("daily_quota", 5, 6)
    assert (await insert_job(db, make_job("fits", num_images=1), limits=quota)).ok  # 6 of 6
    assert (await insert_job(db, make_job("over", num_images=1), limits=quota)).status == (
        "daily_quota"
    )
    # The quota is per server: the same user elsewhere starts from zero.
    elsewhere = make_job("g2job", server_id="g2", num_images=4)
    assert (await insert_job(db, elsewhere, limits=quota)).ok


async def test_failed_uncharged_job_frees_its_quota(db: Database) -> None:
    """A job the API rejected (finished without a charge) stops counting against the quota."""
    quota = limits(daily_quota=2)
    assert (await insert_job(db, make_job("j1", num_images=2), limits=quota)).ok
    assert (await insert_job(db, make_job("j2"), limits=quota)).status == "daily_quota"
    await finish_job(db, "j1", status="failed", now=NOW, error="The prompt was refused.")
    assert (await insert_job(db, make_job("j2", num_images=2), limits=quota)).ok


async def test_budget_counts_month_spend_and_active_estimates(db: Database) -> None:
    """Server spend this month + estimates of active jobs + this estimate must fit the budget."""
    budget = limits(monthly_budget_usd=0.30)
    await insert_job(db, make_job("old", owner_id="u9"))
    await finish_job(
        db, "old", status="succeeded", now=NOW, charge=Charge(1, 0.5, "2025-05-31", "2025-05")
    )  # last month: does not count
    await insert_job(db, make_job("done", owner_id="u2", num_images=2))
    await finish_job(
        db, "done", status="succeeded", now=NOW, charge=Charge(2, 0.12, DAY, MONTH)
    )  # 0.12 spent by another user of the same server
    assert (
        await insert_job(db, make_job("a", estimated_cost_usd=0.09, num_images=3), limits=budget)
    ).ok  # 0.21

    refused = await insert_job(db, make_job("b", estimated_cost_usd=0.12), limits=budget)
    assert refused.status == "budget"
    assert refused.used == pytest.approx(0.21)
    assert refused.limit == pytest.approx(0.30)
    # Exactly reaching the budget is allowed despite float sums (0.12 + 0.09 + 0.09).
    assert (await insert_job(db, make_job("c", estimated_cost_usd=0.09), limits=budget)).ok
    # Another server has its own budget.
    assert (await insert_job(db, make_job("d", server_id="g2"), limits=budget)).ok


async def test_zero_limits_mean_unlimited(db: Database) -> None:
    """0 for every limit admits anything."""
    unlimited = limits()
    for n in range(5):
        job = make_job(f"j{n}", num_images=8, estimated_cost_usd=10.0)
        assert (await insert_job(db, job, limits=unlimited)).ok
    assert [j.id for j in await list_jobs_by_status(db, ["queued"])] == [f"j{n}" for n in range(5)]


async def test_concurrent_inserts_respect_the_daily_quota(db: Database) -> None:
    """200 simultaneous one-image jobs against a quota of 50 admit exactly 50."""
    quota = limits(daily_quota=50)
    outcomes = await asyncio.gather(
        *(insert_job(db, make_job(f"j{n:03d}"), limits=quota) for n in range(200))
    )
    admitted = [o for o in outcomes if o.ok]
    assert len(admitted) == 50
    assert {o.status for o in outcomes if not o.ok} == {"daily_quota"}
    assert len(await list_jobs_by_status(db, ["queued"])) == 50


async def test_finish_job_writes_images_and_charge_together(db: Database) -> None:
    """Success stores images in order, the ledger row and the charged cost in one step."""
    await insert_job(db, make_job("j1", num_images=2))
    assert await mark_running(db, "j1", now=NOW + 1)
    images = [
        NewImage(1, None, is_image_safe=False),
        NewImage(0, "cd" * 32, "image/png", 1024, 1024, 123_456, 42, "a red fox, photo", True),
    ]
    done = await finish_job(
        db, "j1", status="succeeded", now=NOW + 9, images=images, charge=Charge(2, 0.06, DAY, MONTH)
    )
    assert done
    record = await get_job(db, "j1")
    assert record is not None
    assert (record.status, record.started_at, record.finished_at) == ("succeeded", NOW + 1, NOW + 9)
    assert record.cost_usd == pytest.approx(0.06)
    stored = await get_images(db, "j1")
    assert [i.idx for i in stored] == [0, 1]
    assert stored[0].sha256 == "cd" * 32 and stored[0].is_image_safe and not stored[0].withheld
    assert (stored[0].width, stored[0].height, stored[0].size_bytes) == (1024, 1024, 123_456)
    assert (stored[0].seed, stored[0].prompt) == (42, "a red fox, photo")
    assert stored[1].withheld and not stored[1].is_image_safe
    assert await ledger_by_job(db) == {"j1": (2, 0.06)}
    totals = await user_totals(db, platform="discord", server_id="g1", user_id="u1", day=DAY)
    assert (totals.jobs, totals.images) == (1, 2)


async def test_finish_job_is_all_or_nothing(db: Database) -> None:
    """If one image cannot be written, neither status, images nor charge are."""
    await insert_job(db, make_job("j1", num_images=2))
    await mark_running(db, "j1", now=NOW)
    with pytest.raises(sqlite3.IntegrityError):
        await finish_job(
            db,
            "j1",
            status="succeeded",
            now=NOW + 1,
            images=[NewImage(0, "aa" * 32), NewImage(0, "bb" * 32)],
            charge=Charge(2, 0.06, DAY, MONTH),
        )
    record = await get_job(db, "j1")
    assert record is not None and record.status == "running" and record.cost_usd == 0
    assert await get_images(db, "j1") == []
    assert await ledger_by_job(db) == {}


async def test_finish_job_does_not_overwrite_a_cancelled_job(db: Database) -> None:
    """A result arriving after a cancel is not stored and not charged by finish_job."""
    await insert_job(db, make_job("j1"))
    await mark_running(db, "j1", now=NOW)
    assert await cancel_job(db, "j1", now=NOW + 1) == "running"
    done = await finish_job(
        db,
        "j1",
        status="succeeded",
        now=NOW + 2,
        images=[NewImage(0, "aa" * 32)],
        charge=Charge(1, 0.03, DAY, MONTH),
    )
    assert not done
    record = await get_job(db, "j1")
    assert record is not None
    assert (record.status, record.finished_at) == ("cancelled", NOW + 1)
    assert await get_images(db, "j1") == []
    assert await ledger_by_job(db) == {}
    assert not await finish_job(db, "j1", status="failed", now=NOW + 3)
    assert not await finish_job(db, "missing", status="failed", now=NOW + 3)


async def test_finish_job_stores_failure_and_descriptions(db: Database) -> None:
    """A failure keeps its sentence and reference; /describe keeps its descriptions."""
    await insert_job(db, make_job("f1"))
    await finish_job(
        db, "f1", status="failed", now=NOW, error="Ideogram is busy.", error_ref="R-7K2Q"
    )
    failed = await get_job(db, "f1")
    assert failed is not None
    assert (failed.status, failed.error, failed.error_ref) == (
        "failed",
        "Ideogram is busy.",
        "R-7K2Q",
    )

    await insert_job(db, make_job("d1", command="describe", num_images=0, prompt=""))
    await finish_job(
        db, "d1", status="succeeded", now=NOW, descriptions=["A fox.", "Un renard « roux »."]
    )
    described = await get_job(db, "d1")
    assert described is not None
    assert described.descriptions == ("A fox.", "Un renard « roux ».")

    with pytest.raises(ValueError, match="status"):
        await finish_job(db, "d1", status="running", now=NOW)


async def test_finish_job_with_earlier_charge_keeps_the_ledger_figure(db: Database) -> None:
    """A job charged before it finished is not charged again; cost_usd follows the ledger."""
    await insert_job(db, make_job("j1"))
    await _charge_ledger(db, "j1", 1, 0.03)
    await finish_job(db, "j1", status="succeeded", now=NOW, charge=Charge(1, 0.99, DAY, MONTH))
    record = await get_job(db, "j1")
    assert record is not None and record.cost_usd == pytest.approx(0.03)
    assert await ledger_by_job(db) == {"j1": (1, 0.03)}


async def test_mark_running_only_from_queued(db: Database) -> None:
    """Only a queued job starts; a second start or a start after cancel changes nothing."""
    await insert_job(db, make_job("j1"))
    assert await mark_running(db, "j1", now=NOW + 1)
    assert not await mark_running(db, "j1", now=NOW + 2)
    record = await get_job(db, "j1")
    assert record is not None and (record.status, record.started_at) == ("running", NOW + 1)
    await insert_job(db, make_job("j2"))
    await cancel_job(db, "j2", now=NOW)
    assert not await mark_running(db, "j2", now=NOW + 1)
    assert not await mark_running(db, "missing", now=NOW)


async def test_cancel_job(db: Database) -> None:
    """Cancel returns the status it interrupted, and None when nothing was active."""
    await insert_job(db, make_job("j1"))
    assert await cancel_job(db, "j1", now=NOW + 1) == "queued"
    assert await cancel_job(db, "j1", now=NOW + 2) is None
    record = await get_job(db, "j1")
    assert record is not None and (record.status, record.finished_at) == ("cancelled", NOW + 1)
    assert await cancel_job(db, "missing", now=NOW) is None


async def test_message_link_round_trip(db: Database) -> None:
    """A posted message finds its job again; re-linking a message moves it; unknown → None."""
    await insert_job(db, make_job("j1"))
    await insert_job(db, make_job("j2"))
    where = {"platform": "discord", "channel_id": "c1"}
    await link_message(db, message_id="987654321", job_id="j1", now=NOW, **where)
    await link_message(db, message_id="987654322", job_id="j1", now=NOW + 1, **where)
    assert await job_of_message(db, message_id="987654321", **where) == "j1"
    assert (
        await job_of_message(db, platform="slack", channel_id="c1", message_id="987654321") is None
    )
    assert await messages_of_job(db, "j1") == [
        ("discord", "c1", "987654321"),
        ("discord", "c1", "987654322"),
    ]
    await link_message(db, message_id="987654321", job_id="j2", now=NOW + 2, **where)
    assert await job_of_message(db, message_id="987654321", **where) == "j2"
    with pytest.raises(sqlite3.IntegrityError):
        await link_message(db, message_id="1", job_id="missing", now=NOW, **where)


async def test_list_jobs_by_status_keeps_insertion_order(db: Database) -> None:
    """Jobs to resume come back in the order they were inserted, whatever their clocks say."""
    for n, created in enumerate([NOW + 30, NOW + 10, NOW + 20, NOW + 10]):
        await insert_job(db, make_job(f"j{n}", created_at=created, owner_id=f"u{n}"))
    await mark_running(db, "j2", now=NOW + 40)
    await cancel_job(db, "j1", now=NOW + 40)
    active = await list_jobs_by_status(db, ["queued", "running"])
    assert [j.id for j in active] == ["j0", "j2", "j3"]
    assert [j.seq for j in active] == sorted(j.seq for j in active)
    assert [j.id for j in await list_jobs_by_status(db, ["cancelled"])] == ["j1"]
    assert await list_jobs_by_status(db, []) == []


async def test_recent_jobs_newest_first(db: Database) -> None:
    """/history shows the caller's own jobs on this platform, newest first, at most n."""
    for n in range(5):
        await insert_job(db, make_job(f"j{n}", created_at=NOW + n))
    await insert_job(db, make_job("other", owner_id="u2", created_at=NOW + 100))
    await insert_job(db, make_job("slack", platform="slack", created_at=NOW + 100))
    history = await recent_jobs(db, platform="discord", owner_id="u1", limit=3)
    assert [j.id for j in history] == ["j4", "j3", "j2"]


async def test_find_active_press(db: Database) -> None:
    """A double click finds the job the first click made while it is queued or running; once
    it has finished, a press is a new request; other presses never match."""
    await insert_job(db, make_job("p1"))
    await insert_job(
        db, make_job("u1a", action="U1", parent_job_id="p1", parent_index=0, created_at=NOW + 10)
    )
    await insert_job(
        db, make_job("u1b", action="U1", parent_job_id="p1", parent_index=0, created_at=NOW + 12)
    )
    where = {"parent_job_id": "p1", "action": "U1"}
    found = await find_active_press(db, owner_id="u1", **where)
    assert found is not None and found.id == "u1b"
    assert await find_active_press(db, owner_id="u1", parent_job_id="p1", action="U2") is None
    assert await find_active_press(db, owner_id="u2", **where) is None
    await finish_job(db, "u1b", status="succeeded", now=NOW + 13)
    found = await find_active_press(db, owner_id="u1", **where)
    assert found is not None and found.id == "u1a"
    await cancel_job(db, "u1a", now=NOW + 14)
    assert await find_active_press(db, owner_id="u1", **where) is None


async def test_active_jobs_limit_counts_queued_and_running_only(db: Database) -> None:
    """Queued and running jobs count against max_user_active; finished and cancelled ones do
    not, and another platform's jobs of the same user id do not either."""
    for n in range(4):
        await insert_job(db, make_job(f"j{n}"))
    await mark_running(db, "j0", now=NOW)
    await finish_job(db, "j1", status="succeeded", now=NOW)
    await cancel_job(db, "j2", now=NOW)
    busy = await insert_job(db, make_job("j4"), limits=limits(max_user_active=2))
    assert (busy.status, busy.used) == ("user_busy", 2)
    assert (await insert_job(db, make_job("j5"), limits=limits(max_user_active=3))).ok
    elsewhere = make_job("j6", platform="slack")
    assert (await insert_job(db, elsewhere, limits=limits(max_user_active=1))).ok


async def test_two_connections_share_the_quota(db: Database) -> None:
    """A second process on the same file (two connections here) cannot overrun the quota."""
    other = await Database.open(db.path)
    try:
        quota = limits(daily_quota=30)
        outcomes = await asyncio.gather(
            *(
                insert_job(db if n % 2 else other, make_job(f"j{n:03d}"), limits=quota)
                for n in range(100)
            )
        )
    finally:
        await other.close()
    assert sum(o.ok for o in outcomes) == 30
