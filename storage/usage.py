"""The usage ledger: one row per charged job, and sums over it (docs/commands.md, usage).

Charging is idempotent: the ledger's primary key is the job id and rows are written with
``INSERT OR IGNORE``, so a retried delivery or a double click never bills twice. Whenever a row
is written, ``jobs.cost_usd`` is set to its cost in the same transaction.
"""

from __future__ import annotations

import aiosqlite

from storage.db import Database
from storage.records import UsageTotals

__all__ = ["charge", "insert_ledger_row", "ledger_by_job", "server_totals", "user_totals"]


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
) -> bool:
    """Charge a job to a user and server, once.

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

    Returns:
        Whether a row was written; ``False`` if the job was already charged (nothing changes).

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
) -> bool:
    """Write a ledger row inside the caller's open transaction; see :func:`charge`.

    Returns:
        Whether a row was written.
    """
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO usage_ledger (job_id, platform, server_id, user_id, day, month,"
        " command, images, cost_usd, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, platform, server_id, user_id, day, month, command, images, cost_usd, now),
    )
    inserted = cursor.rowcount == 1
    await cursor.close()
    if inserted:
        await conn.execute("UPDATE jobs SET cost_usd = ? WHERE id = ?", (cost_usd, job_id))
    return inserted


async def user_totals(
    db: Database,
    *,
    platform: str,
    server_id: str,
    user_id: str,
    day: str | None = None,
    month: str | None = None,
) -> UsageTotals:
    """Sum what ``user_id`` was charged on one server, for a day, a month, or all time.

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
        " WHERE platform = ? AND server_id = ? AND user_id = ?"
        " AND (? IS NULL OR day = ?) AND (? IS NULL OR month = ?)",
        (platform, server_id, user_id, day, day, month, month),
    )
    return _totals(row)


async def server_totals(db: Database, *, platform: str, server_id: str, month: str) -> UsageTotals:
    """Sum what one server was charged in a UTC month (``'YYYY-MM'``), all users together."""
    row = await db.fetchone(
        "SELECT COUNT(*), COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) FROM usage_ledger"
        " WHERE platform = ? AND server_id = ? AND month = ?",
        (platform, server_id, month),
    )
    return _totals(row)


async def ledger_by_job(db: Database) -> dict[str, tuple[int, float]]:
    """Return every ledger row as ``{job_id: (images, cost_usd)}``, for consistency checks."""
    rows = await db.fetchall("SELECT job_id, images, cost_usd FROM usage_ledger")
    return {str(r["job_id"]): (int(r["images"]), float(r["cost_usd"])) for r in rows}


def _totals(row: aiosqlite.Row | None) -> UsageTotals:
    """Map a ``(count, images, cost)`` row to :class:`UsageTotals`."""
    if row is None:
        return UsageTotals(0, 0, 0.0)
    return UsageTotals(jobs=int(row[0]), images=int(row[1]), cost_usd=float(row[2]))
