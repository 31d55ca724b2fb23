"""Per-server settings as stored key/value text (keys listed in docs/commands.md).

Only values an admin changed are stored; defaults, key validation and parsing belong to the
core's settings rules, not to storage.
"""

from __future__ import annotations

from storage.db import Database

__all__ = ["get_settings", "reset_setting", "set_setting"]


async def get_settings(db: Database, *, platform: str, server_id: str) -> dict[str, str]:
    """Return the stored settings of one server as ``{key: value}`` (``{}`` if none).

    Args:
        db: the database.
        platform: ``'discord'``, ``'slack'`` or ``'console'``.
        server_id: guild / team id, ``''`` for DMs and the console.

    Returns:
        The stored overrides, keys in alphabetical order; keys not stored use their defaults.
    """
    rows = await db.fetchall(
        "SELECT key, value FROM server_settings WHERE platform = ? AND server_id = ? ORDER BY key",
        (platform, server_id),
    )
    return {str(r["key"]): str(r["value"]) for r in rows}


async def set_setting(
    db: Database,
    *,
    platform: str,
    server_id: str,
    key: str,
    value: str,
    updated_by: str | None,
    now: float,
) -> None:
    """Store ``value`` for ``key`` on one server, replacing any earlier value.

    Args:
        db: the database.
        platform: the platform.
        server_id: guild / team id, ``''`` for DMs and the console.
        key: a server settings key such as ``daily_quota`` (validated by the caller).
        value: the value as text (validated by the caller).
        updated_by: the admin's user id, for the record.
        now: unix seconds, stored as ``updated_at``.
    """
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO server_settings (platform, server_id, key, value, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (platform, server_id, key) DO UPDATE SET"
            " value = excluded.value, updated_by = excluded.updated_by,"
            " updated_at = excluded.updated_at",
            (platform, server_id, key, value, updated_by, now),
        )


async def reset_setting(db: Database, *, platform: str, server_id: str, key: str) -> bool:
    """Forget the stored value of ``key`` on one server, so its default applies again.

    Returns:
        Whether a stored value was removed (``False`` if the key was already at its default).
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM server_settings WHERE platform = ? AND server_id = ? AND key = ?",
            (platform, server_id, key),
        )
        removed = cursor.rowcount == 1
        await cursor.close()
    return removed
