"""The usage ledger: one row per charged job, and sums over it (docs/commands.md, usage).

Charging is idempotent: the ledger's primary key is the job id, so a retried delivery or a
double click never bills twice. Whenever a charged row is written, ``jobs.cost_usd`` is set to
its cost and the job's ``charge_pending`` flag is cleared in the same transaction.

A row is either *charged* (the API billed it; counted against quota and budget, shown in
``/usage``) or *uncertain* (5xx, timeout, interrupted call: the API may have billed it; only in
the operator's "possibly billed" estimate). A charged row replaces an uncertain one of the same
job; an uncertain row never replaces anything.
"""

from __future__ import annotations

import aiosqlite

from storage.db import Database
from storage.records import UsageTotals

__all__ = [
    "charge",
    "insert_ledger_row",
    "ledger_by_job",
    "server_totals",
    "uncertain_by_job",
    "uncertain_totals",
    "user_totals",
]


async def charge(
    db: Database,
    *,
    job_id: str,
    platform: str,
    server_id: str,
    user_id: str,
    day: str,
    month: str,
    command: str | None,
    images: int,
    cost_usd: float,
    now: float,
    uncertain: bool = False,
) -> bool:
    """Charge a job to a user and server, once, in its own transaction.

    Args:
        db: the database.
        job_id: the charged job (must exist).
        platform: ``'discord'``, ``'slack'`` or ``'console'``.
        server_id: guild / team id, ``''`` for DMs and the console.
        user_id: the user charged (the job's owner).
        day: UTC day, ``'YYYY-MM-DD'``.
        month: UTC month, ``'YYYY-MM'``.
        command: the job's command, for reports.
        images: images billed (>= 0).
        cost_usd: estimated cost, USD (>= 0).
        now: unix seconds, the row's ``created_at``.
        uncertain: the API may have billed it (see the module docstring).

    Returns:
        Whether a row was written (or an uncertain row became charged); ``False`` if the job
        was already charged, or already had any row for an uncertain one.

    Raises:
        sqlite3.IntegrityError: ``job_id`` names no job, or ``images``/``cost_usd`` < 0.
    """
    async with db.transaction() as conn:
        return await insert_ledger_row(
            conn,
            job_id=job_id,
            platform=platform,
            server_id=server_id,
            user_id=user_id,
            day=day,
            month=month,
            command=command,
            images=images,
            cost_usd=cost_usd,
            now=now,
            uncertain=uncertain,
        )


async def insert_ledger_row(
    conn: aiosqlite.Connection,
    *,
    job_id: str,
    platform: str,
    server_id: str,
    user_id: str,
    day: str,
    month: str,
    command: str | None,
    images: int,
    cost_usd: float,
    now: float,
    uncertain: bool = False,
) -> bool:
    """Write a ledger row inside the caller's open transaction; see :func:`charge`.

    Either way the job's ``charge_pending`` flag is cleared: its call is settled.

    Returns:
        Whether a row was written.
    """
    values = (job_id, platform, server_id, user_id, day, month, command, images, cost_usd, now)
    if uncertain:
        cursor = await conn.execute(_INSERT_UNCERTAIN, values)
    else:
        cursor = await conn.execute(_UPSERT_CHARGED, values)
    inserted = cursor.rowcount == 1
    await cursor.close()
    if inserted and not uncertain:
        await conn.execute(
            "UPDATE jobs SET cost_usd = ?, charge_pending = 0 WHERE id = ?", (cost_usd, job_id)
        )
    else:
        await conn.execute("UPDATE jobs SET charge_pending = 0 WHERE id = ?", (job_id,))
    return inserted


_INSERT_UNCERTAIN = (
    "INSERT OR IGNORE INTO usage_ledger (job_id, platform, server_id, user_id, day, month,"
    " command, images, cost_usd, created_at, uncertain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
)

# A certain charge replaces an uncertain row of the same job, and nothing else.
_UPSERT_CHARGED = (
    "INSERT INTO usage_ledger (job_id, platform, server_id, user_id, day, month,"
    " command, images, cost_usd, created_at, uncertain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
    " ON CONFLICT (job_id) DO UPDATE SET day = excluded.day, month = excluded.month,"
    " images = excluded.images, cost_usd = excluded.cost_usd,"
    " created_at = excluded.created_at, uncertain = 0"
    " WHERE usage_ledger.uncertain = 1"
)


async def user_totals(
    db: Database,
    *,
    platform: str,
    server_id: str,
    user_id: str,
    day: str | None = None,
    month: str | None = None,
) -> UsageTotals:
    """Sum what ``user_id`` was charged on one server, for a day, a month, or all time
    (uncertain rows are not charges and are left out).

    Args:
        db: the database.
        platform: the platform.
        server_id: guild / team id, ``''`` for DMs and the console.
        user_id: the user.
        day: only this UTC day (``'YYYY-MM-DD'``), or ``None``.
        month: only this UTC month (``'YYYY-MM'``), or ``None``; both filters may be combined.

    Returns:
        Jobs, images and USD charged.
    """
    row = await db.fetchone(
        "SELECT COUNT(*), COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) FROM usage_ledger"
        " WHERE platform = ? AND server_id = ? AND user_id = ? AND uncertain = 0"
        " AND (? IS NULL OR day = ?) AND (? IS NULL OR month = ?)",
        (platform, server_id, user_id, day, day, month, month),
    )
    return _totals(row)


async def server_totals(db: Database, *, platform: str, server_id: str, month: str) -> UsageTotals:
    """Sum what one server was charged in a UTC month (``'YYYY-MM'``), all users together
    (uncertain rows left out)."""
    row = await db.fetchone(
        "SELECT COUNT(*), COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) FROM usage_ledger"
        " WHERE platform = ? AND server_id = ? AND month = ? AND uncertain = 0",
        (platform, server_id, month),
    )
    return _totals(row)


async def uncertain_totals(
    db: Database, *, platform: str, server_id: str, month: str
) -> UsageTotals:
    """Sum the calls of one server in a UTC month (``'YYYY-MM'``) that the API *may* have
    billed (5xx, timeouts, interrupted jobs): jobs, images requested, estimated USD."""
    row = await db.fetchone(
        "SELECT COUNT(*), COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) FROM usage_ledger"
        " WHERE platform = ? AND server_id = ? AND month = ? AND uncertain = 1",
        (platform, server_id, month),
    )
    return _totals(row)


async def ledger_by_job(db: Database) -> dict[str, tuple[int, float]]:
    """Return every charged ledger row as ``{job_id: (images, cost_usd)}``, for consistency
    checks (uncertain rows: :func:`uncertain_by_job`)."""
    rows = await db.fetchall(
        "SELECT job_id, images, cost_usd FROM usage_ledger WHERE uncertain = 0"
    )
    return {str(r["job_id"]): (int(r["images"]), float(r["cost_usd"])) for r in rows}


async def uncertain_by_job(db: Database) -> dict[str, tuple[int, float]]:
    """Return every uncertain ledger row as ``{job_id: (images, cost_usd)}``."""
    rows = await db.fetchall(
        "SELECT job_id, images, cost_usd FROM usage_ledger WHERE uncertain = 1"
    )
    return {str(r["job_id"]): (int(r["images"]), float(r["cost_usd"])) for r in rows}


def _totals(row: aiosqlite.Row | None) -> UsageTotals:
    """Map a ``(count, images, cost)`` row to :class:`UsageTotals`."""
    if row is None:
        return UsageTotals(0, 0, 0.0)
    return UsageTotals(jobs=int(row[0]), images=int(row[1]), cost_usd=float(row[2]))
