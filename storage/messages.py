"""The persisted link between a job and the platform messages that show it.

Adapters record every message they post for a job (the progress message that becomes the result,
a ``/show`` re-post, a copy sent by DM) with :func:`link_message`, and look a message up with
:func:`job_of_message` when someone reacts to it or presses something on it, so the link survives
restarts and never depends on parsing file names.
"""

from __future__ import annotations

from storage.db import Database

__all__ = ["job_of_message", "link_message", "messages_of_job"]


async def link_message(
    db: Database,
    *,
    platform: str,
    channel_id: str,
    message_id: str,
    job_id: str,
    now: float,
) -> None:
    """Record that message ``message_id`` in ``channel_id`` shows job ``job_id``.

    Recording the same message again points it at ``job_id`` (a message shows one job).

    Args:
        db: the database.
        platform: ``discord`` / ``slack`` / ``console``.
        channel_id: the channel (Discord channel id, Slack conversation id).
        message_id: Discord message snowflake or Slack ``ts``.
        job_id: an existing job.
        now: Unix seconds.

    Raises:
        sqlite3.IntegrityError: no job has the id ``job_id``.
    """
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO job_messages (platform, channel_id, message_id, job_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (platform, channel_id, message_id)"
            " DO UPDATE SET job_id = excluded.job_id",
            (platform, channel_id, message_id, job_id, now),
        )


async def job_of_message(
    db: Database, *, platform: str, channel_id: str, message_id: str
) -> str | None:
    """The id of the job message ``message_id`` in ``channel_id`` shows, or ``None``."""
    row = await db.fetchone(
        "SELECT job_id FROM job_messages WHERE platform = ? AND channel_id = ? AND message_id = ?",
        (platform, channel_id, message_id),
    )
    return str(row["job_id"]) if row is not None else None


async def messages_of_job(db: Database, job_id: str) -> list[tuple[str, str, str]]:
    """Every ``(platform, channel_id, message_id)`` recorded for ``job_id``, oldest first."""
    rows = await db.fetchall(
        "SELECT platform, channel_id, message_id FROM job_messages"
        " WHERE job_id = ? ORDER BY created_at, rowid",
        (job_id,),
    )
    return [(str(r["platform"]), str(r["channel_id"]), str(r["message_id"])) for r in rows]
