"""Only the bot's user can read the database: the file, its WAL and shared-memory files, and
the directory created for it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Database


def mode(path: Path) -> int:
    """The permission bits of ``path`` (``0o600`` …)."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common umask 022, under which files are created world-readable by default."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_new_database_and_its_wal_are_private(tmp_path: Path, usual_umask: None) -> None:
    """A new database file, its -wal and -shm are 0600 and the directory made for it 0700,
    even under umask 022."""
    path = tmp_path / "data" / "bot.sqlite3"
    db = await Database.open(path)
    try:
        async with db.transaction() as conn:
            await conn.execute("CREATE TABLE t (x INTEGER)")
            await conn.execute("INSERT INTO t VALUES (1)")
        wal = path.with_name(path.name + "-wal")
        shm = path.with_name(path.name + "-shm")
        assert {p.name: mode(p) for p in (path, wal, shm)} == {
            "bot.sqlite3": 0o600,
            "bot.sqlite3-wal": 0o600,
            "bot.sqlite3-shm": 0o600,
        }
        assert mode(path.parent) == 0o700
    finally:
        await db.close()


async def test_existing_database_keeps_its_mode(tmp_path: Path, usual_umask: None) -> None:
    """Opening an existing database changes no mode the operator chose."""
    path = tmp_path / "bot.sqlite3"
    await (await Database.open(path)).close()
    os.chmod(path, 0o640)
    db = await Database.open(path)
    try:
        assert mode(path) == 0o640
    finally:
        await db.close()
