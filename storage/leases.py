"""Leases and held charges: which process runs a job, and settling calls that outlived it.

A running job names the process running it (``lease_owner``) and when its claim lapses
(``lease_expires_at``, unix seconds). The owner renews it while it lives (:func:`renew_leases`)
and gives it up when it stops (:func:`release_leases`); another process reports the job as
interrupted only after it expired (:func:`interrupt_expired`), so two processes on one database
never take over each other's live jobs (docs/architecture.md, "One command, end to end").

A job cancelled while its API call ran is ``charge_pending`` until what the call cost is known:
:func:`settle_charge` records it (or that it cost nothing). Every function here is one
transaction of :meth:`storage.db.Database.transaction`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aiosqlite

from storage.db import Database
from storage.records import Charge
from storage.usage import insert_ledger_row

__all__ = [
    "charge_row",
    "interrupt_expired",
    "release_leases",
    "renew_leases",
    "settle_charge",
]


async def settle_charge(
    db: Database, job_id: str, *, now: float, charge: Charge | None = None
) -> bool:
    """Record what the API call of a job :func:`finish_job` no longer finishes cost.

    For a job cancelled while its call ran (or reported interrupted meanwhile by another
    process): writes ``charge`` to the ledger if given (a charged row replaces an uncertain
    one) and clears ``charge_pending``, in one transaction.

    Args:
        db: the database.
        job_id: the job.
        now: unix seconds, the ledger row's ``created_at``.
        charge: what the call cost, or ``None`` when it cost nothing (rejected by the API).

    Returns:
        Whether a ledger row was written.
    """
    async with db.transaction() as conn:
        rows = list(
            await conn.execute_fetchall(
                "SELECT platform, server_id, owner_id, command FROM jobs WHERE id = ?", (job_id,)
            )
        )
        if not rows:
            return False
        if charge is None:
            await conn.execute("UPDATE jobs SET charge_pending = 0 WHERE id = ?", (job_id,))
            return False
        return await charge_row(conn, job_id, rows[0], charge, now)


async def charge_row(
    conn: aiosqlite.Connection, job_id: str, job: aiosqlite.Row, charge: Charge, now: float
) -> bool:
    """Write the ledger row of ``charge`` for ``job``, a row of the job's ``platform``,
    ``server_id``, ``owner_id`` and ``command``, inside the caller's transaction.

    Returns:
        Whether a row was written (see :func:`storage.usage.insert_ledger_row`).
    """
    return await insert_ledger_row(
        conn,
        job_id=job_id,
        platform=job["platform"],
        server_id=job["server_id"],
        user_id=job["owner_id"],
        day=charge.day,
        month=charge.month,
        command=job["command"],
        images=charge.images,
        cost_usd=charge.cost_usd,
        now=now,
        uncertain=charge.uncertain,
    )


async def renew_leases(
    db: Database, *, owner: str, job_ids: Sequence[str], now: float, lease_until: float
) -> int:
    """Renew ``owner``'s leases on ``job_ids`` (its running jobs, and cancelled ones whose call
    still runs) until ``lease_until``; ``heartbeat_at = now``. Unix seconds.

    Returns:
        How many leases were renewed (a job another process has taken over is not).
    """
    if not job_ids:
        return 0
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE jobs SET heartbeat_at = ?, lease_expires_at = ?"
            " WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))"
            " AND (status = 'running' OR charge_pending = 1)",
            (now, lease_until, owner, json.dumps(list(job_ids))),
        )
        renewed = cursor.rowcount
        await cursor.close()
    return renewed


async def release_leases(db: Database, *, owner: str) -> int:
    """Give up every lease of ``owner`` (it stopped; its calls were abandoned), so the next
    process serving those platforms reports the jobs at once instead of after expiry.

    Returns:
        How many leases were released.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE jobs SET lease_expires_at = NULL WHERE lease_owner = ?"
            " AND (status = 'running' OR charge_pending = 1)",
            (owner,),
        )
        released = cursor.rowcount
        await cursor.close()
    return released


async def interrupt_expired(
    db: Database,
    *,
    platforms: Sequence[str],
    now: float,
    error: str,
    day: str,
    month: str,
    except_owner: str | None = None,
) -> list[str]:
    """Take over the jobs of ``platforms`` whose process is gone (lease expired or none).

    In one transaction: each such ``running`` job is failed with ``error`` (``finished_at =
    now``), and each such job cancelled while its call ran (``charge_pending``) is settled. Both
    get an *uncertain* ledger row of their requested images and estimated cost (the API may
    have run the call), never a charge. Jobs of ``except_owner`` (the caller itself, alive) are
    left alone.

    Args:
        db: the database.
        platforms: only jobs of these platforms.
        now: unix seconds; a lease expiring at or before it has expired.
        error: the user-facing sentence stored on the failed jobs.
        day, month: UTC day and month of the uncertain rows.
        except_owner: a lease owner whose jobs are never taken over.

    Returns:
        The ids of the running jobs failed, in insertion order.
    """
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "SELECT id, status, platform, server_id, owner_id, command, num_images,"
            " estimated_cost_usd FROM jobs"
            " WHERE (status = 'running' OR charge_pending = 1)"
            " AND platform IN (SELECT value FROM json_each(?))"
            " AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"
            " AND (? IS NULL OR lease_owner IS NULL OR lease_owner != ?)"
            " ORDER BY seq",
            (json.dumps(list(platforms)), now, except_owner, except_owner),
        )
        failed: list[str] = []
        for row in rows:
            if row["status"] == "running":
                await conn.execute(
                    "UPDATE jobs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                    (now, error, row["id"]),
                )
                failed.append(str(row["id"]))
            await insert_ledger_row(
                conn,
                job_id=row["id"],
                platform=row["platform"],
                server_id=row["server_id"],
                user_id=row["owner_id"],
                day=day,
                month=month,
                command=row["command"],
                images=int(row["num_images"]),
                cost_usd=float(row["estimated_cost_usd"]),
                now=now,
                uncertain=True,
            )
    return failed
