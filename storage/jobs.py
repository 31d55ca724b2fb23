"""Jobs and their result images: insert with limits, state changes, look-ups.

Every write is one transaction of :meth:`storage.db.Database.transaction`, so a check and the
write it guards (request-key de-duplication, quota, budget, "only if still active") cannot be
interleaved by another coroutine or process. Leases on running jobs and the settling of charges
held by cancelled ones are in :mod:`storage.leases`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from storage.db import Database
from storage.leases import charge_row
from storage.records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Charge,
    ImageRecord,
    JobRecord,
    NewImage,
    NewJob,
    ReserveLimits,
    ReserveOutcome,
)

__all__ = [
    "cancel_job",
    "check_limits",
    "find_active_press",
    "finish_job",
    "get_images",
    "get_job",
    "insert_job",
    "list_jobs_by_status",
    "mark_running",
    "recent_jobs",
    "requeue_job",
]

# Float sums of prices (0.03 + 0.06 …) are compared with this slack, USD.
_BUDGET_EPSILON = 1e-9

_ACTIVE_JSON = json.dumps(list(ACTIVE_STATUSES))

_INSERT_JOB = """
INSERT INTO jobs (
    id, seq, platform, server_id, channel_id, owner_id, command, action, parent_job_id,
    parent_index, prompt, request_json, input_sha256, input_content_type, num_images,
    rendering_speed, estimated_cost_usd, status, request_key, created_at
) VALUES (
    ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?, ?, ?, ?, ?, ?, ?,
    ?, ?, ?, ?, ?, ?,
    ?, ?, 'queued', ?, ?
)
"""


async def insert_job(
    db: Database, job: NewJob, *, limits: ReserveLimits | None = None
) -> ReserveOutcome:
    """Insert ``job`` as ``queued`` unless it is a duplicate delivery or a limit refuses it.

    In one transaction, in this order:

    1. ``job.request_key`` already used → ``duplicate`` with the existing job's id.
    2. With ``limits`` (each skipped when its limit is 0):

       a. the owner's active (queued/running) jobs on ``job.platform`` must be fewer than
          ``max_user_active``, else ``user_busy`` (used = active jobs);
       b. images charged to the owner on ``job.platform`` + ``job.server_id`` on
          ``limits.day`` + ``num_images`` of the owner's held jobs there + ``job.num_images``
          must be <= ``daily_quota``, else ``daily_quota`` (used = the first two terms);
       c. USD charged to the server in ``limits.month`` + ``estimated_cost_usd`` of the
          server's held jobs + ``job.estimated_cost_usd`` must be <= ``monthly_budget_usd``,
          else ``budget`` (used = the first two terms).

       *Held* jobs are the active ones and those cancelled while their API call ran whose cost
       is not recorded yet (``charge_pending``): cancelling a running job does not give back
       its quota or budget before the call is settled. Uncertain ledger rows count for neither.

    3. Insert with the next ``seq``.

    Args:
        db: the database.
        job: the job; ``job.request`` must be JSON-serialisable.
        limits: limits to enforce atomically with the insert; ``None`` checks none.

    Returns:
        The outcome; only ``status == 'ok'`` inserted a row.

    Raises:
        sqlite3.IntegrityError: ``job.id`` exists already, or ``parent_job_id`` names no job.
        TypeError: ``job.request`` is not JSON-serialisable.
    """
    request_json = json.dumps(job.request, ensure_ascii=False, sort_keys=True)
    async with db.transaction() as conn:
        if job.request_key is not None:
            existing = await _one(
                conn, "SELECT id FROM jobs WHERE request_key = ?", (job.request_key,)
            )
            if existing is not None:
                return ReserveOutcome("duplicate", str(existing["id"]))
        if limits is not None:
            refusal = await _check_limits(conn, job, limits)
            if refusal is not None:
                return refusal
        await conn.execute(
            _INSERT_JOB,
            (
                job.id,
                job.platform,
                job.server_id,
                job.channel_id,
                job.owner_id,
                job.command,
                job.action,
                job.parent_job_id,
                job.parent_index,
                job.prompt,
                request_json,
                job.input_sha256,
                job.input_content_type,
                job.num_images,
                job.rendering_speed,
                job.estimated_cost_usd,
                job.request_key,
                job.created_at,
            ),
        )
    return ReserveOutcome("ok", job.id)


async def check_limits(db: Database, job: NewJob, limits: ReserveLimits) -> ReserveOutcome | None:
    """The refusal :func:`insert_job` would give ``job`` under ``limits`` now, without inserting.

    Adapters ask this before downloading or decoding input images, so a user at a limit costs
    the bot nothing; :func:`insert_job` still decides atomically.

    Returns:
        ``None`` when every limit allows the job; else the outcome ``user_busy``,
        ``daily_quota`` or ``budget`` as :func:`insert_job` defines them.
    """
    async with db.reading() as conn:
        return await _check_limits(conn, job, limits)


async def _check_limits(
    conn: aiosqlite.Connection, job: NewJob, limits: ReserveLimits
) -> ReserveOutcome | None:
    """Return the refusal of the first limit ``job`` would break, or ``None`` if all allow it."""
    if limits.max_user_active > 0:
        row = await _one(
            conn,
            "SELECT COUNT(*) FROM jobs WHERE owner_id = ? AND platform = ?"
            " AND status IN (SELECT value FROM json_each(?))",
            (job.owner_id, job.platform, _ACTIVE_JSON),
        )
        active = int(row[0]) if row is not None else 0
        if active >= limits.max_user_active:
            return ReserveOutcome("user_busy", job.id, active, limits.max_user_active)
    if limits.daily_quota > 0:
        row = await _one(
            conn,
            """
            SELECT
                (SELECT COALESCE(SUM(images), 0) FROM usage_ledger
                  WHERE platform = ? AND server_id = ? AND user_id = ? AND day = ?
                    AND uncertain = 0)
              + (SELECT COALESCE(SUM(num_images), 0) FROM jobs
                  WHERE owner_id = ? AND platform = ? AND server_id = ?
                    AND (status IN (SELECT value FROM json_each(?)) OR charge_pending = 1))
            """,
            (
                job.platform,
                job.server_id,
                job.owner_id,
                limits.day,
                job.owner_id,
                job.platform,
                job.server_id,
                _ACTIVE_JSON,
            ),
        )
        used_images = int(row[0]) if row is not None else 0
        if used_images + job.num_images > limits.daily_quota:
            return ReserveOutcome("daily_quota", job.id, used_images, limits.daily_quota)
    if limits.monthly_budget_usd > 0:
        row = await _one(
            conn,
            """
            SELECT
                (SELECT COALESCE(SUM(cost_usd), 0) FROM usage_ledger
                  WHERE platform = ? AND server_id = ? AND month = ? AND uncertain = 0)
              + (SELECT COALESCE(SUM(estimated_cost_usd), 0) FROM jobs
                  WHERE platform = ? AND server_id = ?
                    AND (status IN (SELECT value FROM json_each(?)) OR charge_pending = 1))
            """,
            (
                job.platform,
                job.server_id,
                limits.month,
                job.platform,
                job.server_id,
                _ACTIVE_JSON,
            ),
        )
        spent = float(row[0]) if row is not None else 0.0
        if spent + job.estimated_cost_usd > limits.monthly_budget_usd + _BUDGET_EPSILON:
            return ReserveOutcome("budget", job.id, spent, limits.monthly_budget_usd)
    return None


async def get_job(db: Database, job_id: str) -> JobRecord | None:
    """Return the job with id ``job_id``, or ``None`` if there is none."""
    row = await db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    return JobRecord.from_row(row) if row is not None else None


async def get_images(db: Database, job_id: str) -> list[ImageRecord]:
    """Return the result images of ``job_id`` ordered by index (``[]`` if none or no job)."""
    rows = await db.fetchall("SELECT * FROM job_images WHERE job_id = ? ORDER BY idx", (job_id,))
    return [ImageRecord.from_row(r) for r in rows]


async def mark_running(
    db: Database,
    job_id: str,
    *,
    now: float,
    owner: str | None = None,
    lease_until: float | None = None,
) -> bool:
    """Move a ``queued`` job to ``running`` and set ``started_at = now`` (unix seconds).

    Args:
        db: the database.
        job_id: the job.
        now: unix seconds, stored as ``started_at`` and ``heartbeat_at``.
        owner: the process that runs it (its lease owner); ``None`` takes no lease, so any
            process may report the job interrupted.
        lease_until: unix seconds until which the lease holds without renewal.

    Returns:
        Whether the job changed: ``False`` if it does not exist or is not queued (already
        running, finished, or cancelled while it waited).
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE jobs SET status = 'running', started_at = ?, lease_owner = ?,"
            " heartbeat_at = ?, lease_expires_at = ? WHERE id = ? AND status = 'queued'",
            (now, owner, now, lease_until, job_id),
        )
        changed = cursor.rowcount == 1
        await cursor.close()
    return changed


async def requeue_job(db: Database, job_id: str) -> bool:
    """Move a ``running`` job back to ``queued`` (the API answered 429: it did not run).

    ``started_at`` is cleared; the job keeps its ``seq``, so after a restart it resumes in
    its original place.

    Returns:
        Whether the job changed: ``False`` if it is not running (e.g. cancelled meanwhile).
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE jobs SET status = 'queued', started_at = NULL, lease_owner = NULL,"
            " heartbeat_at = NULL, lease_expires_at = NULL WHERE id = ? AND status = 'running'",
            (job_id,),
        )
        changed = cursor.rowcount == 1
        await cursor.close()
    return changed


async def finish_job(
    db: Database,
    job_id: str,
    *,
    status: str,
    now: float,
    error: str | None = None,
    error_ref: str | None = None,
    images: Sequence[NewImage] = (),
    descriptions: Sequence[str] | None = None,
    charge: Charge | None = None,
) -> bool:
    """Finish an active job: status, result images, describe results and charge, atomically.

    Only a job that is still ``queued`` or ``running`` is finished; a cancelled or already
    finished job is left exactly as it is (see :func:`storage.leases.settle_charge`). With
    ``charge``, a usage-ledger row is written for the job's platform, server, owner and command
    (a job is charged at most once; see :mod:`storage.usage`) and, unless the charge is uncertain,
    ``jobs.cost_usd`` is set to the ledger's figure.

    Args:
        db: the database.
        job_id: the job.
        status: ``'succeeded'``, ``'failed'`` or ``'cancelled'``.
        now: unix seconds, stored as ``finished_at`` (and ledger ``created_at``).
        error: the user-facing sentence of a failure.
        error_ref: the short reference id of an unexpected error.
        images: result images, each ``idx`` once.
        descriptions: ``/describe`` results, stored as a JSON list; ``None`` stores nothing.
        charge: what to charge, or ``None`` (e.g. a request the API rejected is not charged).

    Returns:
        Whether the job was finished; ``False`` if it does not exist or is no longer active.

    Raises:
        ValueError: ``status`` is not a terminal status.
        sqlite3.IntegrityError: two images share an ``idx``; nothing is written.
    """
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"finish_job status must be one of {TERMINAL_STATUSES}, not {status!r}")
    descriptions_json = (
        json.dumps(list(descriptions), ensure_ascii=False) if descriptions is not None else None
    )
    async with db.transaction() as conn:
        job = await _one(
            conn,
            "SELECT platform, server_id, owner_id, command FROM jobs"
            " WHERE id = ? AND status IN (SELECT value FROM json_each(?))",
            (job_id, _ACTIVE_JSON),
        )
        if job is None:
            return False
        await conn.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, error = ?, error_ref = ?,"
            " descriptions_json = COALESCE(?, descriptions_json) WHERE id = ?",
            (status, now, error, error_ref, descriptions_json, job_id),
        )
        if images:
            await conn.executemany(
                "INSERT INTO job_images (job_id, idx, sha256, content_type, width, height,"
                " size_bytes, seed, prompt, is_image_safe) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        job_id,
                        image.idx,
                        image.sha256,
                        image.content_type,
                        image.width,
                        image.height,
                        image.size_bytes,
                        image.seed,
                        image.prompt,
                        int(image.is_image_safe),
                    )
                    for image in images
                ],
            )
        if charge is not None:
            await charge_row(conn, job_id, job, charge, now)
    return True


async def cancel_job(db: Database, job_id: str, *, now: float) -> str | None:
    """Cancel a queued or running job (``finished_at = now``, unix seconds).

    A running job's API call may still complete; :func:`finish_job` will then refuse to
    overwrite the cancellation. Until its cost is recorded (:func:`storage.usage.charge`) or
    found to be nothing (:func:`storage.leases.settle_charge`) the job is ``charge_pending`` and
    keeps counting against quota and budget, so cancelling cannot be used to run more than the
    limits allow.

    Returns:
        The status the job had (``'queued'`` or ``'running'``), or ``None`` if it does not
        exist or was not active (nothing changed).
    """
    async with db.transaction() as conn:
        row = await _one(conn, "SELECT status FROM jobs WHERE id = ?", (job_id,))
        if row is None or row["status"] not in ACTIVE_STATUSES:
            return None
        await conn.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?, charge_pending = ?"
            " WHERE id = ?",
            (now, int(row["status"] == "running"), job_id),
        )
        return str(row["status"])


async def list_jobs_by_status(
    db: Database, statuses: Sequence[str], *, platforms: Sequence[str] | None = None
) -> list[JobRecord]:
    """Return every job whose status is in ``statuses`` (and, with ``platforms``, whose
    platform is one of them), in insertion order (``seq``).

    Used at start-up to resume queued jobs of the platforms a process serves, so none is lost
    on restart and none is run where it cannot be posted.
    """
    rows = await db.fetchall(
        "SELECT * FROM jobs WHERE status IN (SELECT value FROM json_each(?))"
        " AND (? IS NULL OR platform IN (SELECT value FROM json_each(?))) ORDER BY seq",
        (
            json.dumps(list(statuses)),
            None if platforms is None else 1,
            json.dumps(list(platforms or ())),
        ),
    )
    return [JobRecord.from_row(r) for r in rows]


async def recent_jobs(db: Database, *, platform: str, owner_id: str, limit: int) -> list[JobRecord]:
    """Return the newest ``limit`` jobs of ``owner_id`` on ``platform``, newest first (/history).

    Ties on ``created_at`` are broken by insertion order (later first).
    """
    rows = await db.fetchall(
        "SELECT * FROM jobs WHERE owner_id = ? AND platform = ?"
        " ORDER BY created_at DESC, seq DESC LIMIT ?",
        (owner_id, platform, limit),
    )
    return [JobRecord.from_row(r) for r in rows]


async def find_active_press(
    db: Database, *, owner_id: str, parent_job_id: str, action: str
) -> JobRecord | None:
    """Return the newest job ``owner_id`` made by pressing ``action`` on ``parent_job_id`` that
    is still queued or running.

    For double-click de-duplication, so a double click never bills twice: a press that finds one
    shows that job instead of starting another. Once that job has finished, pressing the button
    again is a deliberate new request. This check and a later :func:`insert_job` are two
    transactions; callers serialise them (the engine holds a lock), and a platform's retry of
    one delivery is caught by ``NewJob.request_key`` for good.

    Args:
        db: the database.
        owner_id: who pressed.
        parent_job_id: the job whose button was pressed.
        action: the button (``'upscale:1'``, ``'reroll:0'`` …).

    Returns:
        The newest such active job, or ``None``.
    """
    row = await db.fetchone(
        "SELECT * FROM jobs WHERE parent_job_id = ? AND owner_id = ? AND action = ?"
        " AND status IN (SELECT value FROM json_each(?))"
        " ORDER BY created_at DESC, seq DESC LIMIT 1",
        (parent_job_id, owner_id, action, _ACTIVE_JSON),
    )
    return JobRecord.from_row(row) if row is not None else None


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> aiosqlite.Row | None:
    """Return the first row of a query on ``conn`` inside a transaction, or ``None``."""
    rows = list(await conn.execute_fetchall(sql, params))
    return rows[0] if rows else None
