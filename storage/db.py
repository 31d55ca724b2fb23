"""The SQLite database: one aiosqlite connection, its pragmas, and versioned migrations.

A :class:`Database` owns exactly one :class:`aiosqlite.Connection` (aiosqlite runs it on its own
thread) opened with ``isolation_level=None`` so that every transaction is explicit. Writers go
through :meth:`Database.transaction` (``BEGIN IMMEDIATE`` … ``COMMIT``), serialised by an
:class:`asyncio.Lock`, so two coroutines of one process never interleave their statements inside
one transaction; other processes (``ideogram-bot migrate`` while the bot runs) wait on SQLite's
own lock for up to ``busy_timeout_ms``.

Migrations are files ``NNNN_name.sql`` in a directory (by default ``storage/migrations``),
applied in version order, all pending ones in one transaction, and recorded in
``schema_migrations``, so a half-applied schema never exists.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

__all__ = [
    "DEFAULT_MIGRATIONS_DIR",
    "Database",
    "Migration",
    "MigrationError",
    "load_migrations",
    "migrate_path",
]

DEFAULT_MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The package's own migrations (installed as package data)."""

_MIGRATION_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")

_CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TEXT NOT NULL
)
"""


class MigrationError(RuntimeError):
    """A migration file is malformed, duplicated, or the database is newer than the code."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file.

    Attributes:
        version: the leading number of the file name (``0001_initial.sql`` → 1).
        name: the rest of the file name without ``.sql`` (``initial``).
        sql: the file's text, one or more statements separated by ``;``.
    """

    version: int
    name: str
    sql: str


def load_migrations(directory: str | Path = DEFAULT_MIGRATIONS_DIR) -> list[Migration]:
    """Read the migrations of ``directory``, sorted by version.

    Args:
        directory: a folder of ``NNNN_name.sql`` files; other files that do not end in ``.sql``
            are ignored.

    Returns:
        The migrations, ascending by version.

    Raises:
        MigrationError: a ``.sql`` file is not named ``NNNN_name.sql``, or two files share a
            version number.
        OSError: the directory or a file cannot be read.
    """
    found: dict[int, Migration] = {}
    for path in sorted(Path(directory).iterdir()):
        if path.suffix != ".sql" or not path.is_file():
            continue
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name is not NNNN_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations have version {version}: {path.name}")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements.

    ``sqlite3.Connection.executescript`` commits any open transaction first, so migrations run
    statement by statement instead. A statement ends at a ``;`` that
    :func:`sqlite3.complete_statement` accepts, so ``;`` inside strings, comments and trigger
    bodies does not split.

    Args:
        script: the text of a migration file.

    Returns:
        The statements, each ending with ``;``; comments between statements are kept with the
        statement that follows them.

    Raises:
        MigrationError: text other than comments follows the last complete statement.
    """
    statements: list[str] = []
    start = 0
    for pos, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : pos + 1]):
            statements.append(script[start : pos + 1].strip())
            start = pos + 1
    rest = "\n".join(
        line for line in script[start:].splitlines() if not line.strip().startswith("--")
    )
    if rest.strip():
        raise MigrationError(f"incomplete SQL statement at the end of a migration: {rest[:80]!r}")
    return statements


def _create_private(path: Path) -> None:
    """Create the database's parent directory (0700) and an empty database file (0600) when
    missing, before SQLite opens it: SQLite would create the file 0644, and it copies the
    database file's mode to the ``-wal``, ``-shm`` and ``-journal`` files it makes later.
    Existing files and directories keep their mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class Database:
    """The bot's SQLite database: one connection, explicit transactions, migrations.

    Build it with :meth:`open` (or ``async with await Database.open(path) as db``) and close it
    with :meth:`close`. Repository functions in :mod:`storage.jobs`, :mod:`storage.usage` and
    :mod:`storage.settings` take it as their first argument.

    Attributes:
        conn: the underlying connection, for read-only use outside :meth:`transaction`; prefer
            :meth:`fetchall` / :meth:`fetchone`, which never see another coroutine's
            uncommitted writes.
        path: the database file as given to :meth:`open`.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: str,
        migrations_dir: Path,
    ) -> None:
        """Wrap an open connection; use :meth:`open` instead of calling this directly."""
        self.conn = conn
        self.path = path
        self._migrations_dir = migrations_dir
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        migrations_dir: str | Path | None = None,
        busy_timeout_ms: int = 5000,
        migrate: bool = True,
    ) -> Database:
        """Open (creating if needed) the database at ``path`` and apply pending migrations.

        Pragmas: ``journal_mode=WAL`` (file databases), ``synchronous=NORMAL``,
        ``foreign_keys=ON``; busy timeout ``busy_timeout_ms`` (sqlite3's ``timeout``).

        Args:
            path: the SQLite file (``DATABASE_PATH`` setting). A missing file is created with
                mode 0600 and a missing parent directory with 0700; SQLite gives the ``-wal``
                and ``-shm`` files the database file's mode, so they are 0600 too.
                ``":memory:"`` gives a private in-memory database (no WAL), for quick experiments.
            migrations_dir: folder of ``NNNN_name.sql`` files; default
                :data:`DEFAULT_MIGRATIONS_DIR`.
            busy_timeout_ms: how long a statement waits for another process's lock, milliseconds.
            migrate: apply pending migrations before returning (the default).

        Returns:
            The open database.

        Raises:
            MigrationError: see :meth:`migrate`; the connection is closed before raising.
            sqlite3.Error: the file cannot be opened or a migration fails (rolled back entirely).
            OSError: the parent directory cannot be created.
        """
        location = str(path)
        if location != ":memory:":
            _create_private(Path(location))
        conn = await aiosqlite.connect(
            location, isolation_level=None, timeout=busy_timeout_ms / 1000
        )
        db = cls(conn, location, Path(migrations_dir or DEFAULT_MIGRATIONS_DIR))
        try:
            conn.row_factory = aiosqlite.Row
            if location != ":memory:":
                await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            if migrate:
                await db.migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        """Close the connection, waiting for a running transaction to finish. Idempotent.

        Raises:
            RuntimeError: called inside a transaction of the same task.
        """
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            raise RuntimeError("cannot close the database inside one of its transactions")
        async with self._lock:
            await self.conn.close()

    async def __aenter__(self) -> Database:
        """Return ``self``; the database is already open."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the database."""
        await self.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run a write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT``, ``ROLLBACK`` on error.

        Transactions of this process run one at a time (an :class:`asyncio.Lock`); the
        ``IMMEDIATE`` lock makes other processes wait (``busy_timeout``) rather than fail
        half-way. Do not nest transactions, and do not wait inside one for another task that uses
        the database.

        Yields:
            The connection, to execute statements on.

        Raises:
            RuntimeError: called inside a transaction of the same task.
            sqlite3.Error: ``BEGIN``/``COMMIT`` fails (e.g. database locked past the timeout);
                anything raised in the body propagates after the rollback.
        """
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            raise RuntimeError("storage transactions do not nest")
        async with self._lock:
            self._owner = task
            try:
                try:
                    await self.conn.execute("BEGIN IMMEDIATE")
                    yield self.conn
                    await self.conn.commit()
                except BaseException:
                    # The rollback is queued behind any statement still running on the
                    # connection's thread, so it lands even if this task was cancelled, even
                    # while its BEGIN was on the way (else the connection would stay inside
                    # that transaction). When BEGIN itself failed there is nothing to undo.
                    with suppress(sqlite3.Error):
                        await self.conn.rollback()
                    raise
            finally:
                self._owner = None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """Yield the connection for reads outside anyone else's transaction (or inside our
        own), so several read queries see one consistent state and no uncommitted writes."""
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield self.conn
            return
        async with self._lock:
            yield self.conn

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        """Run one read-only query and return all its rows.

        Waits for a running transaction of another coroutine to finish, so it never sees
        uncommitted writes; inside the caller's own transaction it reads that transaction's state.

        Args:
            sql: one static SQL statement with ``?`` placeholders.
            params: the values of the placeholders.

        Returns:
            The rows (:class:`aiosqlite.Row`, addressable by column name).

        Raises:
            sqlite3.Error: the statement fails.
        """
        async with self.reading() as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        """Run one read-only query and return its first row, or ``None`` if it has none.

        Same rules as :meth:`fetchall`.
        """
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def schema_version(self) -> int:
        """Return the highest applied migration version, 0 for a database never migrated."""
        exists = await self.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        if exists is None:
            return 0
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row is not None else 0

    async def migrate(self) -> list[int]:
        """Apply the pending migrations of the migrations directory, all in one transaction.

        A migration is pending when its version is not in ``schema_migrations``. Pending files
        run in version order, statement by statement, and each is recorded as
        ``(version, name, applied_at ISO-8601 UTC)``. If any statement fails nothing is kept:
        neither the earlier migrations of this run nor their records.

        Returns:
            The versions applied, ascending; ``[]`` when the schema is current.

        Raises:
            MigrationError: bad file names (see :func:`load_migrations`), an incomplete
                statement, or the database has a version newer than every file (it was migrated
                by newer code).
            sqlite3.Error: a statement fails; the transaction is rolled back.
        """
        migrations = load_migrations(self._migrations_dir)
        plans = [(m, split_statements(m.sql)) for m in migrations]
        latest = migrations[-1].version if migrations else 0
        applied_now: list[int] = []
        async with self.transaction() as conn:
            await conn.execute(_CREATE_SCHEMA_MIGRATIONS)
            rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
            applied = {int(r[0]) for r in rows}
            if applied and max(applied) > latest:
                raise MigrationError(
                    f"database schema version {max(applied)} is newer than this code ({latest})"
                )
            for migration, statements in plans:
                if migration.version in applied:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _utc_iso(time.time())),
                )
                applied_now.append(migration.version)
        return applied_now


def _utc_iso(timestamp: float) -> str:
    """Format unix seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


async def migrate_path(path: str | Path, *, migrations_dir: str | Path | None = None) -> list[int]:
    """Open the database at ``path``, apply pending migrations, close it (``ideogram-bot migrate``).

    Args:
        path: the SQLite file (``DATABASE_PATH`` setting); created with its folder if missing.
        migrations_dir: folder of migrations; default the package's own.

    Returns:
        The versions applied, ascending; ``[]`` when already current.

    Raises:
        MigrationError, sqlite3.Error, OSError: as :meth:`Database.open`.
    """
    db = await Database.open(path, migrations_dir=migrations_dir, migrate=False)
    try:
        return await db.migrate()
    finally:
        await db.close()
