"""The SQLite engine: stdlib ``sqlite3`` in worker threads (STACK.md "Store").

One writer connection behind a ``CapacityLimiter(1)`` (WAL, ``synchronous=NORMAL``,
``busy_timeout``, ``BEGIN IMMEDIATE``) runs every write through the group committer;
readers use their own connections (a small pool), so reads never wait for a commit.
An in-memory store (``:memory:``) has one connection for both.

The store's queries are the shared ones (:mod:`vega_trio.store._sql`, on SQLite's
:class:`SQLiteDialect`); what is SQLite's own here is the connections, the pragmas, the
batch runner, and opening a file: telling ours from another program's, a corrupt or
read-only one, and migrating it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import trio

from .._errors import StoreError, StoreOpenError
from ._migrations import APPLICATION_ID, LATEST, SCHEMA_VERSION_TABLE, apply, pending
from ._protocol import StoreHealth
from ._sql import LAST_EVENT_SEQ, Cursor, Dialect, SQLStore

if TYPE_CHECKING:
    from ._protocol import Store

__all__ = ["SQLiteDialect", "SQLiteStore", "open_sqlite"]

log = logging.getLogger("vega_trio.store")

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
_HEADER = b"SQLite format 3\x00"
_OPEN_HINT = "pass another --db (or move the file away)"


class SQLiteDialect(Dialect):
    """SQLite's SQL: the shared defaults (``?``, ``executemany``, ``CAST AS INTEGER``,
    byte-wise text order), and its own errors of one write."""

    name = "sqlite"
    write_errors = (
        sqlite3.IntegrityError,
        sqlite3.ProgrammingError,
        sqlite3.InterfaceError,
        sqlite3.DataError,
        *Dialect.write_errors,
    )


DIALECT = SQLiteDialect()


def _connect(target: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the writer says BEGIN IMMEDIATE.
    conn = sqlite3.connect(
        target, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _run_batch(
    conn: sqlite3.Connection, writes: Sequence[Callable[[Cursor], Any]]
) -> list[tuple[bool, Any]]:
    """Run ``writes`` in one transaction, each in its own savepoint (the group commit)."""
    write_errors = DIALECT.write_errors
    results: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for write in writes:
            conn.execute("SAVEPOINT w")
            try:
                value = write(conn)
            except write_errors as exc:
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
                results.append((False, exc))
            else:
                conn.execute("RELEASE w")
                results.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection is broken; the retry will tell
        raise
    return results


class SQLiteStore(SQLStore[sqlite3.Connection]):
    """A :class:`~vega_trio.store.Store` on one SQLite file (or in memory).

    Not constructed directly: use :func:`vega_trio.store.open_store`.
    """

    engine: Literal["sqlite"] = "sqlite"
    dialect = DIALECT

    def __init__(
        self,
        *,
        location: str,
        writer: sqlite3.Connection,
        reader_target: str | None,
        readers: int,
        **committer: Any,
    ) -> None:
        super().__init__(
            location=location,
            run_batch=lambda writes: _run_batch(writer, writes),
            readers=readers,
            **committer,
        )
        self._writer = writer
        self._reader_target = reader_target

    async def _run_read(self, query: Callable[[Cursor], T]) -> T:
        if self._reader_target is None:  # in memory: the writer connection is the db
            return await trio.to_thread.run_sync(query, self._writer, limiter=self._writer_limiter)
        return await trio.to_thread.run_sync(
            self._read_in_thread, query, limiter=self._reader_limiter
        )

    def _new_reader(self) -> sqlite3.Connection:
        assert self._reader_target is not None
        conn = _connect(self._reader_target)
        conn.execute("PRAGMA query_only = 1")
        return conn

    def _close_reader(self, conn: sqlite3.Connection) -> None:
        conn.close()

    def _read_in_thread(self, query: Callable[[Cursor], T]) -> T:
        conn = self._take_reader()
        try:
            conn.execute("BEGIN")  # one snapshot for a page and its total
            try:
                result = query(conn)
            finally:
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._release(conn)
        return result

    def _close_connections(self) -> None:
        self._close_readers()
        try:
            if self._reader_target is not None:
                # A clean checkpoint leaves one file behind (no -wal to carry around).
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("store: the final checkpoint of %s failed: %s", self.location, exc)
        self._writer.close()

    async def _on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection outside any batch (tests inject faults)."""
        return await trio.to_thread.run_sync(fn, self._writer, limiter=self._writer_limiter)


# ---------------------------------------------------------------- opening
def _classify(exc: sqlite3.Error, location: str, path: Path | None) -> StoreOpenError:
    text = str(exc)
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered or "encrypted" in lowered:
        return StoreOpenError(
            f"{location} is not a usable SQLite database ({text}): the file is corrupt or "
            f"not a database; {_OPEN_HINT}, or restore it from a backup",
            location=location,
            kind="corrupt",
        )
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        where = path.parent if path is not None else location
        return StoreOpenError(
            f"cannot write the database {location} ({text}): the file or its directory "
            f"{where} is read-only (SQLite also creates -wal and -shm files next to it); "
            "make both writable or pass a --db in a writable directory",
            location=location,
            kind="read_only",
        )
    return StoreOpenError(
        f"cannot open the database {location}: {text}; {_OPEN_HINT}",
        location=location,
        kind="corrupt" if isinstance(exc, sqlite3.DatabaseError) else "unreachable",
    )


def _inspect(conn: sqlite3.Connection, location: str) -> int:
    """Our schema version of the open database (0: empty, ours to create).

    Raises:
        StoreOpenError: a foreign database or a newer schema (nothing was written).
    """
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    if not tables:
        if app_id not in (0, APPLICATION_ID):
            raise _foreign(location, f"its application_id is {app_id:#x}")
        return 0
    if "schema_version" not in tables or app_id != APPLICATION_ID:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise _foreign(location, f"it has the tables {shown} and no vega-trio schema")
    (version,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    if version > LATEST:
        raise StoreOpenError(
            f"{location} has schema version {version}, newer than this vega-trio's "
            f"{LATEST}: it was written by a newer vega-trio. Upgrade vega-trio (pip install "
            "-U vega-trio) or pass another --db; the file was not changed",
            location=location,
            kind="newer_schema",
        )
    return int(version)


def _foreign(location: str, why: str) -> StoreOpenError:
    return StoreOpenError(
        f"{location} is another program's SQLite database ({why}); vega-trio will not "
        f"write into it: {_OPEN_HINT}",
        location=location,
        kind="foreign",
    )


def migrate(conn: sqlite3.Connection, current: int, *, target: int = LATEST) -> int:
    """Apply the migrations after ``current`` up to ``target`` in one transaction.

    Returns:
        The version the database has now.
    """
    todo = [m for m in pending(current) if m.version <= target]
    if not todo and current:
        return current
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA_VERSION_TABLE)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        apply(conn, todo, "sqlite")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return todo[-1].version if todo else current


def _open_file(path: Path, location: str) -> sqlite3.Connection:
    """Open (creating or migrating) the database file: the writer connection."""
    if path.is_dir():
        raise StoreOpenError(
            f"{location} is a directory, not a database file; pass a file path such as "
            f"{path / 'vega.db'}",
            location=location,
            kind="invalid",
        )
    if not path.parent.is_dir():
        raise StoreOpenError(
            f"the directory of the database {location} does not exist; create "
            f"{path.parent} or pass another --db",
            location=location,
            kind="invalid",
        )
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as file:
            header = file.read(len(_HEADER))
        if header != _HEADER:
            raise StoreOpenError(
                f"{location} is not a SQLite database (its first bytes are not SQLite's "
                f"header): the file is corrupt or something else; {_OPEN_HINT}",
                location=location,
                kind="corrupt",
            )
    try:
        conn = _connect(str(path))
    except sqlite3.Error as exc:
        raise _classify(exc, location, path) from exc
    try:
        current = _inspect(conn, location)  # reads only: a refused file stays untouched
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn, current)
        # A read-only file can pass the steps above when nothing needed writing.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
    except StoreOpenError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise _classify(exc, location, path) from exc
    return conn


def _last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute(LAST_EVENT_SEQ).fetchone()[0])


def _open_memory() -> sqlite3.Connection:
    conn = _connect(":memory:")
    migrate(conn, 0)
    return conn


@asynccontextmanager
async def open_sqlite(
    path: str,
    *,
    on_health: Callable[[StoreHealth], None] | None = None,
    flush_seconds: float = 10.0,
    readers: int = 4,
) -> AsyncIterator[SQLiteStore]:
    """Open the SQLite store at ``path`` (``:memory:`` for a throwaway one).

    Raises:
        StoreOpenError: the file is corrupt, foreign, of a newer schema or read-only.
    """
    memory = path == ":memory:"
    if memory:
        location = path
        writer = await trio.to_thread.run_sync(_open_memory)
    else:
        location = await trio.to_thread.run_sync(os.path.abspath, path)
        writer = await trio.to_thread.run_sync(_open_file, Path(location), location)
    try:
        first_seq = await trio.to_thread.run_sync(_last_seq, writer)
    except sqlite3.Error as exc:
        writer.close()
        raise StoreError(
            f"cannot read the events of {location}: {exc}; {_OPEN_HINT}", location=location
        ) from exc
    store = SQLiteStore(
        location=location,
        writer=writer,
        reader_target=None if memory else location,
        readers=readers,
        on_health=on_health,
        first_event_seq=first_seq,
    )
    async with store._running(flush_seconds):
        yield store


if TYPE_CHECKING:
    # NOTE: mypy checks here that the engine still matches the protocol exactly.
    _protocol_check: type[Store] = SQLiteStore
