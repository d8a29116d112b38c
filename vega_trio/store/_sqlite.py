"""The SQLite engine: stdlib ``sqlite3`` in worker threads (STACK.md "Store").

One writer connection behind a ``CapacityLimiter(1)`` (WAL, ``synchronous=NORMAL``,
``busy_timeout``, ``BEGIN IMMEDIATE``) runs every write through the group committer;
readers use their own connections (a small pool), so reads never wait for a commit.
An in-memory store (``:memory:``) has one connection for both.

Size: one engine of the ``Store`` protocol (``store/_protocol.py``): the SQL of every
method in one module, read side by side with the PostgreSQL engine; what the engines share is
in ``_codec.py``, ``_migrations.py`` and ``_writer.py``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import trio

from .._errors import StoreClosed, StoreError, StoreOpenError
from . import _codec as codec
from . import _writer
from ._migrations import APPLICATION_ID, LATEST, SCHEMA_VERSION_TABLE, TABLES, pending, statements
from ._protocol import (
    AgentRecord,
    CostRecord,
    Page,
    ProcessRecord,
    RunRecord,
    StepRecord,
    StoredEvent,
    StoreHealth,
)
from ._writer import GroupCommitter

if TYPE_CHECKING:
    from ._protocol import Store

__all__ = ["SQLiteStore", "open_sqlite"]

log = logging.getLogger("vega_trio.store")

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
_HEADER = b"SQLite format 3\x00"
_FINISHED_RUNS = ("completed", "failed", "cancelled")
_OPEN_HINT = "pass another --db (or move the file away)"

# Writes that fail on their own (the rest of their batch still commits); any other
# exception fails the whole transaction, which is rolled back and retried.
_WRITE_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    ValueError,
    TypeError,
    OverflowError,
)


def _connect(target: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the writer says BEGIN IMMEDIATE.
    conn = sqlite3.connect(
        target, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _run_batch(
    conn: sqlite3.Connection, writes: Sequence[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[bool, Any]]:
    """Run ``writes`` in one transaction, each in its own savepoint (the group commit)."""
    results: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for write in writes:
            conn.execute("SAVEPOINT w")
            try:
                value = write(conn)
            except _WRITE_ERRORS as exc:
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


class SQLiteStore:
    """A :class:`~vega_trio.store.Store` on one SQLite file (or in memory).

    Not constructed directly: use :func:`vega_trio.store.open_store`.
    """

    engine: Literal["sqlite"] = "sqlite"

    def __init__(
        self,
        *,
        location: str,
        writer: sqlite3.Connection,
        reader_target: str | None,
        committer: GroupCommitter[sqlite3.Connection],
        writer_limiter: trio.CapacityLimiter,
        readers: int,
    ) -> None:
        self.location = location
        self._writer = writer
        self._reader_target = reader_target
        self._committer = committer
        self._writer_limiter = writer_limiter
        self._reader_limiter = trio.CapacityLimiter(readers)
        self._reader_pool: list[sqlite3.Connection] = []
        self._readers_closed = False

    # ------------------------------------------------------------ plumbing
    def health(self) -> StoreHealth:
        return self._committer.health()

    async def _write(
        self, apply: Callable[[sqlite3.Connection], T], *, event_seqs: Sequence[int] = ()
    ) -> T:
        result: T = await self._committer.submit(apply, event_seqs=event_seqs)
        return result

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._committer.health().status == "closed":
            raise StoreClosed(
                f"the store at {self.location} is closed; open it again to read",
                location=self.location,
            )
        if self._reader_target is None:  # in memory: the writer connection is the db
            return await trio.to_thread.run_sync(query, self._writer, limiter=self._writer_limiter)
        return await trio.to_thread.run_sync(
            self._read_in_thread, query, limiter=self._reader_limiter
        )

    def _read_in_thread(self, query: Callable[[sqlite3.Connection], T]) -> T:
        assert self._reader_target is not None
        try:
            conn = self._reader_pool.pop()
        except IndexError:
            conn = _connect(self._reader_target)
            conn.execute("PRAGMA query_only = 1")
        try:
            conn.execute("BEGIN")  # one snapshot for a page and its total
            try:
                result = query(conn)
            finally:
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        if self._readers_closed:  # the store closed while this read ran
            conn.close()
        else:
            self._reader_pool.append(conn)
        return result

    def _close_connections(self) -> None:
        self._readers_closed = True
        for conn in self._reader_pool:
            conn.close()
        self._reader_pool.clear()
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

    # -------------------------------------------------------------- events
    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        rows = [codec.event_row(e) for e in events]

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO events (seq, type, timestamp, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (seq) DO NOTHING",
                rows,
            )

        await self._write(apply, event_seqs=[e.seq for e in events])

    async def wait_events_committed(self, seq: int) -> None:
        await self._committer.wait_events_committed(seq)

    async def read_events(
        self, *, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        where, params = "seq > ?", [after]
        if types is not None:
            condition, names = codec.type_filter(types)
            where += " AND " + condition
            params.extend(names)  # type: ignore[arg-type]

        def query(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                f"SELECT seq, type, timestamp, data FROM events WHERE {where} ORDER BY seq LIMIT ?",
                [*params, max(0, limit)],
            ).fetchall()
            return [codec.event_from_row(r) for r in rows]

        return await self._read(query)

    async def last_event_seq(self) -> int:
        def query(conn: sqlite3.Connection) -> int:
            (value,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            return int(value)

        return await self._read(query)

    # ----------------------------------------------------------- processes
    async def save_processes(self, records: Sequence[ProcessRecord]) -> None:
        if not records:
            return
        rows = [codec.process_row(p) for p in records]
        columns = [c.strip() for c in codec.PROCESS_COLUMNS.split(",")]
        update = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                f"INSERT INTO processes ({codec.PROCESS_COLUMNS}) VALUES "
                f"({', '.join('?' * len(columns))}) ON CONFLICT (id) DO UPDATE SET {update}",
                rows,
            )

        await self._write(apply)

    async def get_process(self, process_id: str) -> ProcessRecord | None:
        def query(conn: sqlite3.Connection) -> ProcessRecord | None:
            row = conn.execute(
                f"SELECT {codec.PROCESS_COLUMNS} FROM processes WHERE id = ?", (process_id,)
            ).fetchone()
            return None if row is None else codec.process_from_row(row)

        return await self._read(query)

    async def list_processes(
        self,
        *,
        status: Sequence[str] | None = None,
        agent: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page:
        conditions: list[str] = []
        params: list[Any] = []
        if status is not None:
            conditions.append(f"status IN ({', '.join('?' * len(status))})" if status else "0")
            params.extend(status)
        if agent is not None:
            conditions.append("agent = ?")
            params.append(agent)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""

        def query(conn: sqlite3.Connection) -> Page:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM processes {where}", params).fetchone()
            rows = conn.execute(
                f"SELECT {codec.PROCESS_COLUMNS} FROM processes {where} "
                "ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, max(0, limit), max(0, offset)],
            ).fetchall()
            return Page([codec.process_from_row(r) for r in rows], int(total))

        return await self._read(query)

    # ------------------------------------------------------- conversations
    async def load_conversation(self, agent: str, user: str | None) -> list[Mapping[str, Any]]:
        key = codec.user_key(user)

        def query(conn: sqlite3.Connection) -> list[Mapping[str, Any]]:
            rows = conn.execute(
                "SELECT message FROM messages WHERE agent = ? AND user_key = ? ORDER BY position",
                (agent, key),
            ).fetchall()
            return [codec.loads(r[0]) for r in rows]

        return await self._read(query)

    async def append_messages(
        self, agent: str, user: str | None, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        if not messages:
            return
        key = codec.user_key(user)
        texts = [codec.dumps(dict(m)) for m in messages]

        def apply(conn: sqlite3.Connection) -> None:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(position), -1) FROM messages WHERE agent = ? AND user_key = ?",
                (agent, key),
            ).fetchone()
            conn.executemany(
                "INSERT INTO messages (agent, user_key, position, message) VALUES (?, ?, ?, ?)",
                [(agent, key, last + 1 + i, text) for i, text in enumerate(texts)],
            )

        await self._write(apply)

    async def replace_conversation(
        self, agent: str, user: str | None, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        key = codec.user_key(user)
        texts = [codec.dumps(dict(m)) for m in messages]

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE agent = ? AND user_key = ?", (agent, key))
            conn.executemany(
                "INSERT INTO messages (agent, user_key, position, message) VALUES (?, ?, ?, ?)",
                [(agent, key, i, text) for i, text in enumerate(texts)],
            )

        await self._write(apply)

    async def list_conversations(self) -> list[tuple[str, str | None, int]]:
        def query(conn: sqlite3.Connection) -> list[tuple[str, str | None, int]]:
            rows = conn.execute(
                "SELECT agent, user_key, COUNT(*) FROM messages GROUP BY agent, user_key "
                "ORDER BY agent, user_key"
            ).fetchall()
            return [(r[0], codec.user_from_key(r[1]), int(r[2])) for r in rows]

        return await self._read(query)

    # ---------------------------------------------------------------- runs
    async def save_run(self, run: RunRecord) -> None:
        row = codec.run_row(run)
        columns = [c.strip() for c in codec.RUN_COLUMNS.split(",")]
        update = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO runs ({codec.RUN_COLUMNS}) VALUES "
                f"({', '.join('?' * len(columns))}) ON CONFLICT (id) DO UPDATE SET {update}",
                row,
            )

        await self._write(apply)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def query(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute(
                f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            return None if row is None else codec.run_from_row(row)

        return await self._read(query)

    async def list_runs(
        self, *, status: Sequence[str] | None = None, limit: int = 100, offset: int = 0
    ) -> Page:
        where, params = "", list(status or ())
        if status is not None:
            where = f"WHERE status IN ({', '.join('?' * len(status))})" if status else "WHERE 0"

        def query(conn: sqlite3.Connection) -> Page:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM runs {where}", params).fetchone()
            rows = conn.execute(
                f"SELECT {codec.RUN_COLUMNS} FROM runs {where} "
                "ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, max(0, limit), max(0, offset)],
            ).fetchall()
            return Page([codec.run_from_row(r) for r in rows], int(total))

        return await self._read(query)

    async def save_step(self, step: StepRecord) -> None:
        row = codec.step_row(step)

        def apply(conn: sqlite3.Connection) -> None:
            # NOTE: ``saved`` is the order of the FIRST save; a step saved again (failed,
            # then completed on resume) keeps its place.
            conn.execute(
                "INSERT INTO steps (run_id, path, status, result, started_at, ended_at, "
                "cost_usd, tokens, saved) SELECT ?, ?, ?, ?, ?, ?, ?, ?, "
                "COALESCE(MAX(saved), 0) + 1 FROM steps WHERE run_id = ? "
                "ON CONFLICT (run_id, path) DO UPDATE SET status = excluded.status, "
                "result = excluded.result, started_at = excluded.started_at, "
                "ended_at = excluded.ended_at, cost_usd = excluded.cost_usd, "
                "tokens = excluded.tokens",
                (*row, step.run_id),
            )

        await self._write(apply)

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        def query(conn: sqlite3.Connection) -> list[StepRecord]:
            rows = conn.execute(
                f"SELECT {codec.STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY saved",
                (run_id,),
            ).fetchall()
            return [codec.step_from_row(r) for r in rows]

        return await self._read(query)

    # --------------------------------------------------------------- costs
    async def record_costs(self, costs: Sequence[CostRecord]) -> None:
        if not costs:
            return
        rows = [codec.cost_row(c) for c in costs]

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                f"INSERT INTO costs ({codec.COST_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",
                rows,
            )

        await self._write(apply)

    async def cost_totals(
        self,
        *,
        by: Literal["agent", "process_id", "run_id", "model"],
        since: float | None = None,
    ) -> dict[str, dict[str, float]]:
        if by not in ("agent", "process_id", "run_id", "model"):
            raise ValueError(f"cost_totals(by={by!r}): use agent, process_id, run_id or model")
        where, params = ("WHERE timestamp >= ?", [since]) if since is not None else ("", [])

        def query(conn: sqlite3.Connection) -> dict[str, dict[str, float]]:
            rows = conn.execute(
                f"SELECT COALESCE({by}, ''), SUM(cost_usd), SUM(input_tokens), "
                f"SUM(output_tokens), COUNT(*) FROM costs {where} GROUP BY COALESCE({by}, '')",
                params,
            ).fetchall()
            return {
                r[0]: {
                    "cost_usd": float(r[1]),
                    "input_tokens": float(r[2]),
                    "output_tokens": float(r[3]),
                    "calls": float(r[4]),
                }
                for r in rows
            }

        return await self._read(query)

    async def cost_series(
        self, *, bucket_seconds: int, since: float | None = None
    ) -> list[dict[str, Any]]:
        if bucket_seconds <= 0:
            raise ValueError(f"cost_series(bucket_seconds={bucket_seconds}): use a positive size")
        where, params = ("WHERE timestamp >= ?", [since]) if since is not None else ("", [])

        def query(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                f"SELECT CAST(timestamp / ? AS INTEGER) AS b, SUM(cost_usd), COUNT(*) "
                f"FROM costs {where} GROUP BY b ORDER BY b",
                [bucket_seconds, *params],
            ).fetchall()
            return [
                {"start": float(r[0] * bucket_seconds), "cost_usd": float(r[1]), "calls": r[2]}
                for r in rows
            ]

        return await self._read(query)

    # -------------------------------------------------------------- agents
    async def save_agent(self, agent: AgentRecord) -> None:
        row = codec.agent_row(agent)

        def apply(conn: sqlite3.Connection) -> None:
            # NOTE: created_at stays the first save's; updated_at is the latest.
            conn.execute(
                "INSERT INTO agents (name, definition, created_at, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "definition = excluded.definition, updated_at = excluded.updated_at",
                row,
            )

        await self._write(apply)

    async def delete_agent(self, name: str) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0

        return await self._write(apply)

    async def list_agents(self) -> list[AgentRecord]:
        def query(conn: sqlite3.Connection) -> list[AgentRecord]:
            rows = conn.execute(
                "SELECT name, definition, created_at, updated_at FROM agents ORDER BY name"
            ).fetchall()
            return [codec.agent_from_row(r) for r in rows]

        return await self._read(query)

    # ------------------------------------------------------------- state
    async def get_state(self, key: str) -> Any:
        def query(conn: sqlite3.Connection) -> Any:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            return None if row is None else codec.loads(row[0])

        return await self._read(query)

    async def put_state(self, key: str, value: Any) -> None:
        text = codec.dumps(value)

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

        await self._write(apply)

    # ---------------------------------------------------------- retention
    async def counts(self) -> dict[str, int]:
        def query(conn: sqlite3.Connection) -> dict[str, int]:
            return {
                table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in TABLES
            }

        return await self._read(query)

    async def prune(self, *, older_than: float) -> dict[str, int]:
        finished = ", ".join(f"'{s}'" for s in _FINISHED_RUNS)
        limit = _writer.PRUNE_BATCH
        old_runs = (
            f"SELECT id FROM runs WHERE status IN ({finished}) AND ended_at < ? ORDER BY id LIMIT ?"
        )

        def apply(conn: sqlite3.Connection) -> dict[str, int]:
            # NOTE: the steps of the runs deleted below first (the same runs: ORDER BY).
            return {
                "events": conn.execute(
                    "DELETE FROM events WHERE seq IN "
                    "(SELECT seq FROM events WHERE timestamp < ? LIMIT ?)",
                    (older_than, limit),
                ).rowcount,
                "steps": conn.execute(
                    f"DELETE FROM steps WHERE run_id IN ({old_runs})", (older_than, limit)
                ).rowcount,
                "runs": conn.execute(
                    f"DELETE FROM runs WHERE id IN ({old_runs})", (older_than, limit)
                ).rowcount,
                "processes": conn.execute(
                    "DELETE FROM processes WHERE id IN (SELECT id FROM processes "
                    "WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?)",
                    (older_than, limit),
                ).rowcount,
                "costs": conn.execute(
                    "DELETE FROM costs WHERE seq IN "
                    "(SELECT seq FROM costs WHERE timestamp < ? LIMIT ?)",
                    (older_than, limit),
                ).rowcount,
            }

        return await _prune_in_batches(self._write, apply, limit)

    async def reset(self) -> dict[str, int]:
        def apply(conn: sqlite3.Connection) -> dict[str, int]:
            return {table: conn.execute(f"DELETE FROM {table}").rowcount for table in TABLES}

        return await self._write(apply)


async def _prune_in_batches(
    write: Callable[[Callable[[sqlite3.Connection], dict[str, int]]], Any],
    apply: Callable[[sqlite3.Connection], dict[str, int]],
    limit: int,
) -> dict[str, int]:
    """Run ``apply`` (one bounded batch of deletes, its own transaction) until a batch
    deletes fewer than ``limit`` rows of every table; the rows deleted per table."""
    total: dict[str, int] = {}
    while True:
        deleted: dict[str, int] = await write(apply)
        for table, count in deleted.items():
            total[table] = total.get(table, 0) + count
        if all(count < limit for table, count in deleted.items() if table != "steps"):
            return total


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
        for migration in todo:
            for sql in statements(migration, "sqlite"):
                conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at, summary) VALUES (?, ?, ?)",
                (migration.version, time.time(), migration.summary),
            )
            log.info("store: schema version %d (%s)", migration.version, migration.summary)
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
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


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
    limiter = trio.CapacityLimiter(1)
    try:
        first_seq = await trio.to_thread.run_sync(_last_seq, writer)
    except sqlite3.Error as exc:
        writer.close()
        raise StoreError(
            f"cannot read the events of {location}: {exc}; {_OPEN_HINT}", location=location
        ) from exc
    committer: GroupCommitter[sqlite3.Connection] = GroupCommitter(
        engine="sqlite",
        location=location,
        run_batch=lambda writes: _run_batch(writer, writes),
        limiter=limiter,
        on_health=on_health,
        first_event_seq=first_seq,
    )
    store = SQLiteStore(
        location=location,
        writer=writer,
        reader_target=None if memory else location,
        committer=committer,
        writer_limiter=limiter,
        readers=readers,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            try:
                yield store
            finally:
                await committer.close(flush_seconds)  # noqa: ASYNC102 - shielded, bounded inside
                nursery.cancel_scope.cancel(reason="the store is closed")
    finally:
        with trio.move_on_after(flush_seconds, shield=True):
            await trio.to_thread.run_sync(store._close_connections, limiter=limiter)


if TYPE_CHECKING:
    # NOTE: mypy checks here that the engine still matches the protocol exactly.
    _protocol_check: type[Store] = SQLiteStore
