"""The database: pragmas, migrations in one transaction, explicit transactions."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from storage import DEFAULT_MIGRATIONS_DIR, Database, MigrationError, load_migrations, migrate_path
from storage.db import split_statements

#: The package's migrations: versions applied to a new database, the newest, and the next free.
VERSIONS = [m.version for m in load_migrations()]
LATEST = VERSIONS[-1]
NEXT = f"{LATEST + 1:04d}"


def _tables(path: Path) -> set[str]:
    """Names of the tables in the SQLite file at ``path``, read with plain sqlite3."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def _migrations_copy(tmp_path: Path) -> Path:
    """A copy of the package's migrations in a folder the test may add files to."""
    directory = tmp_path / "migrations"
    shutil.copytree(DEFAULT_MIGRATIONS_DIR, directory)
    return directory


async def test_open_applies_migrations_once_and_records_them(tmp_path: Path) -> None:
    """A new file gets every migration, recorded with version, name and time."""
    path = tmp_path / "nested" / "dir" / "bot.sqlite3"
    db = await Database.open(path)
    try:
        assert await db.schema_version() == LATEST
        rows = await db.fetchall("SELECT version, name, applied_at FROM schema_migrations")
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in load_migrations()
        ]
        assert rows[0]["name"] == "initial"
        assert rows[0]["applied_at"].endswith("Z")
        assert await db.migrate() == []
    finally:
        await db.close()
    assert {"jobs", "job_images", "usage_ledger", "server_settings"} <= _tables(path)


async def test_reopen_applies_nothing(tmp_path: Path) -> None:
    """Opening a current database again leaves the schema as it is."""
    path = tmp_path / "bot.sqlite3"
    assert await migrate_path(path) == VERSIONS
    assert await migrate_path(path) == []
    async with await Database.open(path) as db:
        assert await db.schema_version() == LATEST
        count = await db.fetchone("SELECT COUNT(*) FROM schema_migrations")
        assert count is not None and count[0] == len(VERSIONS)


async def test_pragmas(db: Database) -> None:
    """WAL journal, NORMAL sync, foreign keys on, a busy timeout, explicit transactions."""
    journal = await db.fetchone("PRAGMA journal_mode")
    sync = await db.fetchone("PRAGMA synchronous")
    foreign_keys = await db.fetchone("PRAGMA foreign_keys")
    busy = await db.fetchone("PRAGMA busy_timeout")
    assert journal is not None and journal[0] == "wal"
    assert sync is not None and sync[0] == 1  # NORMAL
    assert foreign_keys is not None and foreign_keys[0] == 1
    assert busy is not None and busy[0] == 5000
    assert db.conn.isolation_level is None


async def test_failing_migration_rolls_back_everything(tmp_path: Path) -> None:
    """A bad statement in a later migration undoes the earlier ones of the same run too."""
    migrations = _migrations_copy(tmp_path)
    (migrations / f"{NEXT}_broken.sql").write_text(
        "CREATE TABLE extra (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    path = tmp_path / "bot.sqlite3"
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        await Database.open(path, migrations_dir=migrations)
    assert _tables(path) == set()


async def test_failing_migration_keeps_the_previous_version(tmp_path: Path) -> None:
    """On a current database, a failing new migration leaves the version and no trace of it."""
    path = tmp_path / "bot.sqlite3"
    assert await migrate_path(path) == VERSIONS
    migrations = _migrations_copy(tmp_path)
    (migrations / f"{NEXT}_broken.sql").write_text(
        "ALTER TABLE jobs ADD COLUMN extra TEXT;\nCREATE TABLE jobs (x INTEGER);\n"
    )
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        await migrate_path(path, migrations_dir=migrations)
    async with await Database.open(path) as db:
        assert await db.schema_version() == LATEST
        columns = await db.fetchall("SELECT name FROM pragma_table_info('jobs')")
        assert "extra" not in {c["name"] for c in columns}


async def test_new_migration_is_applied_on_open(tmp_path: Path) -> None:
    """A current database gets a new migration on the next open, and only that."""
    path = tmp_path / "bot.sqlite3"
    await migrate_path(path)
    migrations = _migrations_copy(tmp_path)
    (migrations / f"{NEXT}_notes.sql").write_text(
        "-- a note table\nCREATE TABLE notes (body TEXT NOT NULL DEFAULT ';');\n"
    )
    assert await migrate_path(path, migrations_dir=migrations) == [LATEST + 1]
    assert "notes" in _tables(path)


async def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    """Code that knows fewer migrations than the database refuses to run on it."""
    path = tmp_path / "bot.sqlite3"
    migrations = _migrations_copy(tmp_path)
    (migrations / f"{NEXT}_notes.sql").write_text("CREATE TABLE notes (body TEXT);")
    await migrate_path(path, migrations_dir=migrations)
    with pytest.raises(MigrationError, match="newer"):
        await Database.open(path)


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    """A ``.sql`` file that is not ``NNNN_name.sql`` is an error, not silently skipped."""
    migrations = _migrations_copy(tmp_path)
    (migrations / "extra.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"extra\.sql"):
        load_migrations(migrations)


def test_split_statements_respects_strings_and_triggers() -> None:
    """Semicolons inside strings and trigger bodies do not end a statement."""
    script = """
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'z;' WHERE rowid = new.rowid;
    END;
    -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(MigrationError, match="incomplete"):
        split_statements("CREATE TABLE t (a TEXT);\nCREATE TABLE u (")


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    """An exception inside a transaction undoes its writes and propagates."""
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO server_settings (platform, server_id, key, value) VALUES (?, ?, ?, ?)",
                ("discord", "g1", "daily_quota", "5"),
            )
            raise RuntimeError("boom")
    assert await db.fetchall("SELECT * FROM server_settings") == []
    assert not db.conn.in_transaction


async def test_transactions_do_not_nest(db: Database) -> None:
    """A nested transaction is a programming error, reported instead of deadlocking."""
    async with db.transaction():
        with pytest.raises(RuntimeError, match="nest"):
            async with db.transaction():
                pass
        # Reads inside one's own transaction see its state without waiting for the lock.
        assert await db.fetchone("SELECT 1") is not None


async def test_close_is_idempotent(tmp_path: Path) -> None:
    """Closing twice is harmless (composition roots may close on several paths)."""
    db = await Database.open(tmp_path / "bot.sqlite3")
    await db.close()
    await db.close()
