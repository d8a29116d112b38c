"""The PostgreSQL engine: psycopg 3's *sync* driver in worker threads (STACK.md "Store").

psycopg's asyncio connection does not run under Trio, so every database call runs in a
worker thread (``trio.to_thread.run_sync``) on one of a small, bounded set of
connections: ONE writer connection, driven by the shared group committer
(:mod:`vega_trio.store._writer`: many callers, one transaction, each wakes after the
``COMMIT``), and up to ``readers`` reader connections in autocommit mode.

The schema is the shared one (:mod:`vega_trio.store._migrations`), the rows the shared
codec's (:mod:`vega_trio.store._codec`); what is PostgreSQL's own here is the dialect
(``%s`` placeholders, ``unnest`` for many rows in one statement, ``COLLATE "C"`` so
listings sort byte-wise like SQLite), the connection handling and the faults:

* unreachable at start: :class:`~vega_trio.StoreOpenError` (``unreachable``) at once;
* the server goes away mid-run: the batch is rolled back (or its connection is simply
  gone), the committer reports ``degraded`` with the reason (the URL's password masked)
  and retries with backoff; the writer reconnects on each try, callers keep waiting and
  are acknowledged once the server is back;
* the connection breaks *during* ``COMMIT`` (did it commit or not?): every batch writes
  a token into ``vega_commits`` inside its transaction, and the retry looks for it first,
  so a batch that did commit is not applied twice (an appended message stays one message);
* a database of a newer schema, or someone else's tables: refused, untouched.

Size: one engine of the ``Store`` protocol (``store/_protocol.py``): the SQL of every
method in one module, read side by side with the SQLite engine; what the engines share is in
``_codec.py``, ``_migrations.py`` and ``_writer.py``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

import trio

from .._errors import StoreClosed, StoreError, StoreOpenError
from .._redact import redact, register_url_secret
from . import _codec as codec
from . import _writer
from ._migrations import LATEST, SCHEMA_VERSION_TABLE, TABLES, pending, statements
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

__all__ = ["INSTALL_HINT", "PostgresStore", "import_psycopg", "open_postgres"]

log = logging.getLogger("vega_trio.store")

T = TypeVar("T")
Conn = Any
"""A ``psycopg.Connection`` (psycopg is optional: imported only when a URL is opened)."""

INSTALL_HINT = "pip install 'vega-trio[postgres]'"

_LOCK_KEY = 0x56454741
"""``pg_advisory_xact_lock`` key ("VEGA"): nodes opening one database migrate in turn."""

_FINISHED_RUNS = ("completed", "failed", "cancelled")

_COMMITS_TABLE = """CREATE TABLE IF NOT EXISTS vega_commits (
    token TEXT PRIMARY KEY,
    committed_at DOUBLE PRECISION NOT NULL
)"""
"""PostgreSQL only: the token of each committed batch (see the module docstring); pruned
with the events."""


def import_psycopg() -> Any:
    """The ``psycopg`` module, or a :class:`~vega_trio.StoreOpenError` saying how to get it."""
    try:
        import psycopg
    except ImportError as exc:
        raise StoreOpenError(
            "a postgresql:// store needs psycopg 3, which is not installed: run "
            f"`{INSTALL_HINT}` (or use a SQLite file: --db FILE)",
            location="postgresql",
            kind="invalid",
        ) from exc
    return psycopg


def _write_errors(pg: Any) -> tuple[type[BaseException], ...]:
    """Errors of ONE write (bad data, a constraint): it fails alone, the batch commits.
    Anything else (a lost connection, a server shutting down) fails the transaction,
    which the committer retries."""
    return (
        pg.DataError,
        pg.IntegrityError,
        pg.ProgrammingError,
        pg.NotSupportedError,
        ValueError,
        TypeError,
        OverflowError,
    )


def _nul_safe(value: Any) -> Any:
    """``value`` with NUL characters in its strings replaced by U+FFFD.

    PostgreSQL's ``text`` cannot hold NUL (SQLite's can): without this, an error message
    or a name with one in it would make its write fail on PostgreSQL only.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, (list, tuple)):
        return type(value)(_nul_safe(v) for v in value)
    return value


class _NulSafeCursor:
    """A cursor whose parameters go through :func:`_nul_safe` (every statement of the
    engine runs through one; lookups are cleaned the same way, so they still match)."""

    def __init__(self, cursor: Conn) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def execute(self, query: str, params: Any = None) -> Any:
        return self._cursor.execute(query, None if params is None else _nul_safe(params))

    def executemany(self, query: str, params_seq: Any) -> Any:
        return self._cursor.executemany(query, [_nul_safe(p) for p in params_seq])


class _Writer:
    """The writer connection and the batch runner the group committer calls (in a
    worker thread, one batch at a time)."""

    def __init__(self, connect: Callable[[], Conn], conn: Conn, pg: Any, location: str) -> None:
        self._connect = connect
        self._location = location
        self.conn: Conn | None = conn
        self._pg = pg
        self._write_errors = _write_errors(pg)
        # A batch whose COMMIT broke: its token, and each write's result by identity.
        self._uncertain: tuple[str, dict[int, tuple[bool, Any]]] | None = None

    def run_batch(self, writes: Sequence[Callable[[Conn], Any]]) -> list[tuple[bool, Any]]:
        """The committer's batch runner; a lost server is a :class:`StoreError` naming it
        (what ``health().detail`` shows while the batch is retried)."""
        try:
            return self._run_batch(writes)
        except (self._pg.OperationalError, self._pg.InterfaceError) as exc:
            raise StoreError(
                f"PostgreSQL at {self._location} is unreachable ({_one_line(exc)})",
                location=self._location,
            ) from exc

    def _run_batch(self, writes: Sequence[Callable[[Conn], Any]]) -> list[tuple[bool, Any]]:
        conn = self.conn
        if conn is None or conn.closed:
            conn = self.conn = self._connect()
        settled: dict[int, tuple[bool, Any]] = {}
        if self._uncertain is not None:
            old_token, old_results = self._uncertain
            row = conn.execute(
                "SELECT 1 FROM vega_commits WHERE token = %s", (old_token,)
            ).fetchone()
            conn.rollback()
            self._uncertain = None
            if row is not None:  # it did commit: those writes are done
                settled = old_results
        token = secrets.token_hex(12)
        todo = [w for w in writes if id(w) not in settled]
        try:
            try:
                # Fast path: one round trip per write. A write that fails on its own
                # (bad data) rolls the whole attempt back and the batch runs again with
                # a savepoint around each write, so only that write fails.
                results = self._apply(conn, todo, token, savepoints=False)
            except self._write_errors:
                conn.rollback()
                results = self._apply(conn, todo, token, savepoints=True)
        except Exception:
            self._drop(rollback=True)
            raise
        try:
            conn.commit()
        except Exception:
            self._uncertain = (token, results)
            self._drop(rollback=False)
            raise
        results.update(settled)
        return [results[id(w)] for w in writes]

    def _apply(
        self, conn: Conn, writes: Sequence[Callable[[Conn], Any]], token: str, *, savepoints: bool
    ) -> dict[int, tuple[bool, Any]]:
        """Run ``writes`` and record ``token`` in the open transaction (not committed)."""
        results: dict[int, tuple[bool, Any]] = {}
        with conn.cursor() as raw:
            cur = _NulSafeCursor(raw)
            for write in writes:
                if not savepoints:
                    results[id(write)] = (True, write(cur))
                    continue
                cur.execute("SAVEPOINT w")
                try:
                    value = write(cur)
                except self._write_errors as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT w")
                    results[id(write)] = (False, exc)
                else:
                    results[id(write)] = (True, value)
                cur.execute("RELEASE SAVEPOINT w")
            cur.execute(
                "INSERT INTO vega_commits (token, committed_at) VALUES (%s, %s)",
                (token, time.time()),
            )
        return results

    def _drop(self, *, rollback: bool) -> None:
        """Forget a connection that failed (a fresh one is made on the next try)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if rollback and not conn.closed and not conn.broken:
            try:
                conn.rollback()
            except Exception:  # broken after all: closing is all that is left
                pass
            else:
                self.conn = conn  # healthy: keep it
                return
        _close_quietly(conn)


class PostgresStore:
    """A :class:`~vega_trio.store.Store` on one PostgreSQL database.

    Not constructed directly: use :func:`vega_trio.store.open_store` with a
    ``postgresql://`` URL.
    """

    engine: Literal["postgresql"] = "postgresql"

    def __init__(
        self,
        *,
        location: str,
        connect: Callable[[], Conn],
        writer: _Writer,
        committer: GroupCommitter[Conn],
        writer_limiter: trio.CapacityLimiter,
        readers: int,
        pg: Any,
    ) -> None:
        self.location = location
        self._connect = connect
        self._writer = writer
        self._committer = committer
        self._writer_limiter = writer_limiter
        self._reader_limiter = trio.CapacityLimiter(readers)
        self._reader_pool: list[Conn] = []
        self._readers_closed = False
        self._pg = pg

    # ------------------------------------------------------------ plumbing
    def health(self) -> StoreHealth:
        return self._committer.health()

    async def _write(self, apply: Callable[[Conn], T], *, event_seqs: Sequence[int] = ()) -> T:
        result: T = await self._committer.submit(apply, event_seqs=event_seqs)
        return result

    async def _read(self, query: Callable[[Conn], T]) -> T:
        """Run ``query`` with a reader's cursor (a broken connection is replaced once)."""
        if self._committer.health().status == "closed":
            raise StoreClosed(
                f"the store at {self.location} is closed; open it again to read",
                location=self.location,
            )
        try:
            return await trio.to_thread.run_sync(
                self._read_in_thread, query, limiter=self._reader_limiter
            )
        except self._pg.OperationalError:
            try:
                return await trio.to_thread.run_sync(
                    self._read_in_thread, query, limiter=self._reader_limiter
                )
            except self._pg.OperationalError as exc:
                raise StoreError(
                    f"cannot read from PostgreSQL at {self.location}: "
                    f"{_one_line(exc)}; check that the server is running (writes "
                    "are queued and retried meanwhile)",
                    location=self.location,
                ) from None

    def _read_in_thread(self, query: Callable[[Conn], T]) -> T:
        try:
            conn = self._reader_pool.pop()
        except IndexError:
            conn = self._connect()
        try:
            # One snapshot for a page and its total.
            with conn.transaction(), conn.cursor() as cur:
                result = query(_NulSafeCursor(cur))
        except self._pg.OperationalError:
            # The server went away (or restarted): the pooled connections are as dead
            # as this one; the retry starts fresh.
            _close_quietly(conn)
            while self._reader_pool:
                _close_quietly(self._reader_pool.pop())
            raise
        finally:
            if not conn.closed:
                self._release(conn)
        return result

    def _release(self, conn: Conn) -> None:
        """Back to the pool, or closed when the store closed while this read ran."""
        if self._readers_closed:
            _close_quietly(conn)
        else:
            self._reader_pool.append(conn)

    def _close_connections(self) -> None:
        self._readers_closed = True
        for conn in [*self._reader_pool, self._writer.conn]:
            if conn is not None:
                _close_quietly(conn)
        self._reader_pool.clear()
        self._writer.conn = None

    # -------------------------------------------------------------- events
    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        rows = [codec.event_row(e) for e in events]
        columns = [list(c) for c in zip(*rows, strict=True)]

        def apply(cur: Conn) -> None:
            cur.execute(
                "INSERT INTO events (seq, type, timestamp, data) SELECT * FROM "
                "unnest(%s::bigint[], %s::text[], %s::float8[], %s::text[]) "
                "ON CONFLICT (seq) DO NOTHING",
                columns,
            )

        await self._write(apply, event_seqs=[e.seq for e in events])

    async def wait_events_committed(self, seq: int) -> None:
        await self._committer.wait_events_committed(seq)

    async def read_events(
        self, *, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        where, params = "seq > %s", [after]
        if types is not None:
            condition, names = codec.type_filter(types, "%s")
            where += " AND " + condition
            params.extend(names)  # type: ignore[arg-type]

        def query(cur: Conn) -> list[StoredEvent]:
            cur.execute(
                f"SELECT seq, type, timestamp, data FROM events WHERE {where} "
                "ORDER BY seq LIMIT %s",
                [*params, max(0, limit)],
            )
            return [codec.event_from_row(r) for r in cur.fetchall()]

        return await self._read(query)

    async def last_event_seq(self) -> int:
        def query(cur: Conn) -> int:
            cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events")
            return int(cur.fetchone()[0])

        return await self._read(query)

    # ----------------------------------------------------------- processes
    async def save_processes(self, records: Sequence[ProcessRecord]) -> None:
        if not records:
            return
        rows = [codec.process_row(p) for p in records]
        columns = [c.strip() for c in codec.PROCESS_COLUMNS.split(",")]
        update = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])

        def apply(cur: Conn) -> None:
            cur.executemany(
                f"INSERT INTO processes ({codec.PROCESS_COLUMNS}) VALUES "
                f"({', '.join(['%s'] * len(columns))}) ON CONFLICT (id) DO UPDATE SET {update}",
                rows,
            )

        await self._write(apply)

    async def get_process(self, process_id: str) -> ProcessRecord | None:
        def query(cur: Conn) -> ProcessRecord | None:
            cur.execute(
                f"SELECT {codec.PROCESS_COLUMNS} FROM processes WHERE id = %s", (process_id,)
            )
            row = cur.fetchone()
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
            conditions.append("status = ANY(%s)")
            params.append(list(status))
        if agent is not None:
            conditions.append("agent = %s")
            params.append(agent)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""

        def query(cur: Conn) -> Page:
            cur.execute(f"SELECT COUNT(*) FROM processes {where}", params)
            total = int(cur.fetchone()[0])
            cur.execute(
                f"SELECT {codec.PROCESS_COLUMNS} FROM processes {where} "
                'ORDER BY started_at DESC, id COLLATE "C" DESC LIMIT %s OFFSET %s',
                [*params, max(0, limit), max(0, offset)],
            )
            return Page([codec.process_from_row(r) for r in cur.fetchall()], total)

        return await self._read(query)

    # ------------------------------------------------------- conversations
    async def load_conversation(self, agent: str, user: str | None) -> list[Mapping[str, Any]]:
        key = codec.user_key(user)

        def query(cur: Conn) -> list[Mapping[str, Any]]:
            cur.execute(
                "SELECT message FROM messages WHERE agent = %s AND user_key = %s ORDER BY position",
                (agent, key),
            )
            return [codec.loads(r[0]) for r in cur.fetchall()]

        return await self._read(query)

    async def append_messages(
        self, agent: str, user: str | None, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        if not messages:
            return
        key = codec.user_key(user)
        texts = [codec.dumps(dict(m)) for m in messages]

        def apply(cur: Conn) -> None:
            cur.execute(
                "INSERT INTO messages (agent, user_key, position, message) "
                "SELECT %s, %s, base.last + m.ord, m.message FROM "
                "(SELECT COALESCE(MAX(position), -1) AS last FROM messages "
                " WHERE agent = %s AND user_key = %s) AS base, "
                "unnest(%s::text[]) WITH ORDINALITY AS m(message, ord)",
                (agent, key, agent, key, texts),
            )

        await self._write(apply)

    async def replace_conversation(
        self, agent: str, user: str | None, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        key = codec.user_key(user)
        texts = [codec.dumps(dict(m)) for m in messages]

        def apply(cur: Conn) -> None:
            cur.execute("DELETE FROM messages WHERE agent = %s AND user_key = %s", (agent, key))
            if texts:
                cur.execute(
                    "INSERT INTO messages (agent, user_key, position, message) "
                    "SELECT %s, %s, m.ord - 1, m.message "
                    "FROM unnest(%s::text[]) WITH ORDINALITY AS m(message, ord)",
                    (agent, key, texts),
                )

        await self._write(apply)

    async def list_conversations(self) -> list[tuple[str, str | None, int]]:
        def query(cur: Conn) -> list[tuple[str, str | None, int]]:
            cur.execute(
                "SELECT agent, user_key, COUNT(*) FROM messages GROUP BY agent, user_key "
                'ORDER BY agent COLLATE "C", user_key COLLATE "C"'
            )
            return [(r[0], codec.user_from_key(r[1]), int(r[2])) for r in cur.fetchall()]

        return await self._read(query)

    # ---------------------------------------------------------------- runs
    async def save_run(self, run: RunRecord) -> None:
        row = codec.run_row(run)
        columns = [c.strip() for c in codec.RUN_COLUMNS.split(",")]
        update = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])

        def apply(cur: Conn) -> None:
            cur.execute(
                f"INSERT INTO runs ({codec.RUN_COLUMNS}) VALUES "
                f"({', '.join(['%s'] * len(columns))}) ON CONFLICT (id) DO UPDATE SET {update}",
                row,
            )

        await self._write(apply)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def query(cur: Conn) -> RunRecord | None:
            cur.execute(f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,))
            row = cur.fetchone()
            return None if row is None else codec.run_from_row(row)

        return await self._read(query)

    async def list_runs(
        self, *, status: Sequence[str] | None = None, limit: int = 100, offset: int = 0
    ) -> Page:
        where, params = "", []
        if status is not None:
            where, params = "WHERE status = ANY(%s)", [list(status)]

        def query(cur: Conn) -> Page:
            cur.execute(f"SELECT COUNT(*) FROM runs {where}", params)
            total = int(cur.fetchone()[0])
            cur.execute(
                f"SELECT {codec.RUN_COLUMNS} FROM runs {where} "
                'ORDER BY started_at DESC, id COLLATE "C" DESC LIMIT %s OFFSET %s',
                [*params, max(0, limit), max(0, offset)],
            )
            return Page([codec.run_from_row(r) for r in cur.fetchall()], total)

        return await self._read(query)

    async def save_step(self, step: StepRecord) -> None:
        row = codec.step_row(step)

        def apply(cur: Conn) -> None:
            # NOTE: ``saved`` is the order of the FIRST save (as on SQLite); a step saved
            # again (failed, then completed on resume) keeps its place.
            cur.execute(
                "INSERT INTO steps (run_id, path, status, result, started_at, ended_at, "
                "cost_usd, tokens, saved) SELECT %s, %s, %s, %s, %s, %s, %s, %s, "
                "COALESCE(MAX(saved), 0) + 1 FROM steps WHERE run_id = %s "
                "ON CONFLICT (run_id, path) DO UPDATE SET status = excluded.status, "
                "result = excluded.result, started_at = excluded.started_at, "
                "ended_at = excluded.ended_at, cost_usd = excluded.cost_usd, "
                "tokens = excluded.tokens",
                (*row, step.run_id),
            )

        await self._write(apply)

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        def query(cur: Conn) -> list[StepRecord]:
            cur.execute(
                f"SELECT {codec.STEP_COLUMNS} FROM steps WHERE run_id = %s ORDER BY saved",
                (run_id,),
            )
            return [codec.step_from_row(r) for r in cur.fetchall()]

        return await self._read(query)

    # --------------------------------------------------------------- costs
    async def record_costs(self, costs: Sequence[CostRecord]) -> None:
        if not costs:
            return
        columns = [list(c) for c in zip(*(codec.cost_row(c) for c in costs), strict=True)]

        def apply(cur: Conn) -> None:
            cur.execute(
                f"INSERT INTO costs ({codec.COST_COLUMNS}) SELECT * FROM unnest("
                "%s::bigint[], %s::float8[], %s::text[], %s::text[], %s::text[], "
                "%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::float8[]) "
                "ON CONFLICT (seq) DO NOTHING",
                columns,
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
        where, params = ("WHERE timestamp >= %s", [since]) if since is not None else ("", [])

        def query(cur: Conn) -> dict[str, dict[str, float]]:
            cur.execute(
                f"SELECT COALESCE({by}, ''), SUM(cost_usd), SUM(input_tokens), "
                f"SUM(output_tokens), COUNT(*) FROM costs {where} GROUP BY COALESCE({by}, '')",
                params,
            )
            return {
                r[0]: {
                    "cost_usd": float(r[1]),
                    "input_tokens": float(r[2]),
                    "output_tokens": float(r[3]),
                    "calls": float(r[4]),
                }
                for r in cur.fetchall()
            }

        return await self._read(query)

    async def cost_series(
        self, *, bucket_seconds: int, since: float | None = None
    ) -> list[dict[str, Any]]:
        if bucket_seconds <= 0:
            raise ValueError(f"cost_series(bucket_seconds={bucket_seconds}): use a positive size")
        where, params = ("WHERE timestamp >= %s", [since]) if since is not None else ("", [])

        def query(cur: Conn) -> list[dict[str, Any]]:
            # trunc, not CAST: PostgreSQL's CAST rounds, SQLite's truncates.
            cur.execute(
                "SELECT trunc(timestamp / %s)::bigint AS b, SUM(cost_usd), COUNT(*) "
                f"FROM costs {where} GROUP BY b ORDER BY b",
                [bucket_seconds, *params],
            )
            return [
                {"start": float(r[0] * bucket_seconds), "cost_usd": float(r[1]), "calls": r[2]}
                for r in cur.fetchall()
            ]

        return await self._read(query)

    # -------------------------------------------------------------- agents
    async def save_agent(self, agent: AgentRecord) -> None:
        row = codec.agent_row(agent)

        def apply(cur: Conn) -> None:
            # NOTE: created_at stays the first save's; updated_at is the latest.
            cur.execute(
                "INSERT INTO agents (name, definition, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "definition = excluded.definition, updated_at = excluded.updated_at",
                row,
            )

        await self._write(apply)

    async def delete_agent(self, name: str) -> bool:
        def apply(cur: Conn) -> bool:
            cur.execute("DELETE FROM agents WHERE name = %s", (name,))
            return bool(cur.rowcount > 0)

        return await self._write(apply)

    async def list_agents(self) -> list[AgentRecord]:
        def query(cur: Conn) -> list[AgentRecord]:
            cur.execute(
                "SELECT name, definition, created_at, updated_at FROM agents "
                'ORDER BY name COLLATE "C"'
            )
            return [codec.agent_from_row(r) for r in cur.fetchall()]

        return await self._read(query)

    # ------------------------------------------------------------- state
    async def get_state(self, key: str) -> Any:
        def query(cur: Conn) -> Any:
            cur.execute("SELECT value FROM state WHERE key = %s", (key,))
            row = cur.fetchone()
            return None if row is None else codec.loads(row[0])

        return await self._read(query)

    async def put_state(self, key: str, value: Any) -> None:
        text = codec.dumps(value)

        def apply(cur: Conn) -> None:
            cur.execute(
                "INSERT INTO state (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

        await self._write(apply)

    # ---------------------------------------------------------- retention
    async def counts(self) -> dict[str, int]:
        def query(cur: Conn) -> dict[str, int]:
            out: dict[str, int] = {}
            for table in TABLES:
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                out[table] = int(cur.fetchone()[0])
            return out

        return await self._read(query)

    async def prune(self, *, older_than: float) -> dict[str, int]:
        limit = _writer.PRUNE_BATCH
        finished = list(_FINISHED_RUNS)
        old_runs = (
            "SELECT id FROM runs WHERE status = ANY(%s) AND ended_at < %s ORDER BY id LIMIT %s"
        )

        def apply(cur: Conn) -> tuple[dict[str, int], int]:
            # NOTE: bounded batches, each its own write (see PRUNE_BATCH); the steps of
            # the runs deleted below first (the same runs: ORDER BY).
            deleted: dict[str, int] = {}
            cur.execute(
                "DELETE FROM events WHERE seq IN "
                "(SELECT seq FROM events WHERE timestamp < %s LIMIT %s)",
                (older_than, limit),
            )
            deleted["events"] = cur.rowcount
            cur.execute(
                f"DELETE FROM steps WHERE run_id IN ({old_runs})", (finished, older_than, limit)
            )
            deleted["steps"] = cur.rowcount
            cur.execute(f"DELETE FROM runs WHERE id IN ({old_runs})", (finished, older_than, limit))
            deleted["runs"] = cur.rowcount
            cur.execute(
                "DELETE FROM processes WHERE id IN (SELECT id FROM processes "
                "WHERE ended_at IS NOT NULL AND ended_at < %s LIMIT %s)",
                (older_than, limit),
            )
            deleted["processes"] = cur.rowcount
            cur.execute(
                "DELETE FROM costs WHERE seq IN "
                "(SELECT seq FROM costs WHERE timestamp < %s LIMIT %s)",
                (older_than, limit),
            )
            deleted["costs"] = cur.rowcount
            cur.execute(
                "DELETE FROM vega_commits WHERE token IN (SELECT token FROM vega_commits "
                "WHERE committed_at < %s LIMIT %s)",
                (older_than, limit),
            )
            return deleted, cur.rowcount

        total: dict[str, int] = {}
        while True:
            batch, commits = await self._write(apply)
            for table, count in batch.items():
                total[table] = total.get(table, 0) + count
            counts = [count for table, count in batch.items() if table != "steps"]
            if all(count < limit for count in [*counts, commits]):
                return total

    async def reset(self) -> dict[str, int]:
        def apply(cur: Conn) -> dict[str, int]:
            deleted: dict[str, int] = {}
            for table in TABLES:
                cur.execute(f"DELETE FROM {table}")
                deleted[table] = cur.rowcount
            cur.execute("DELETE FROM vega_commits")
            return deleted

        return await self._write(apply)


# ---------------------------------------------------------------- opening
def _one_line(exc: BaseException) -> str:
    """psycopg's message on one line, redacted."""
    return redact(" ".join(str(exc).split()) or type(exc).__name__)


def _close_quietly(conn: Conn) -> None:
    try:
        conn.close()
    except Exception:  # closing a broken connection: nothing left to save
        log.debug("store: closing a PostgreSQL connection failed", exc_info=True)


def _migrate(conn: Conn, location: str) -> int:
    """Bring the schema to :data:`LATEST` in one transaction; the version it has now.

    Raises:
        StoreOpenError: a newer schema, or tables of another program (nothing changed).
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        tables = {r[0] for r in cur.fetchall()}
        current = 0
        if "schema_version" in tables:
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(cur.fetchone()[0])
        elif tables & set(TABLES):
            shown = ", ".join(sorted(tables & set(TABLES)))
            raise StoreOpenError(
                f"PostgreSQL at {location} has tables named like vega-trio's ({shown}) but "
                "no vega-trio schema_version: it is another program's database; vega-trio "
                "will not write into it. Point --db at an empty database",
                location=location,
                kind="foreign",
            )
        if current > LATEST:
            raise StoreOpenError(
                f"PostgreSQL at {location} has schema version {current}, newer than this "
                f"vega-trio's {LATEST}: it was written by a newer vega-trio. Upgrade "
                "vega-trio (pip install -U vega-trio) or point --db at another database; "
                "nothing was changed",
                location=location,
                kind="newer_schema",
            )
        cur.execute(SCHEMA_VERSION_TABLE)
        cur.execute(_COMMITS_TABLE)
        for migration in pending(current):
            for sql in statements(migration, "postgresql"):
                cur.execute(sql)
            cur.execute(
                "INSERT INTO schema_version (version, applied_at, summary) VALUES (%s, %s, %s)",
                (migration.version, time.time(), migration.summary),
            )
            log.info("store: schema version %d (%s)", migration.version, migration.summary)
            current = migration.version
        return current


def _open_writer(connect: Callable[[], Conn], location: str, pg: Any) -> tuple[Conn, int]:
    """Connect the writer, migrate; the connection and the last event's seq."""
    try:
        conn = connect()
    except pg.Error as exc:
        raise StoreOpenError(
            f"cannot connect to PostgreSQL at {location}: {_one_line(exc)}. "
            "Check that the server is running and reachable and that the URL's host, "
            "port, user, password and database are right",
            location=location,
            kind="unreachable",
        ) from None
    try:
        _migrate(conn, location)
        first_seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        conn.commit()
    except StoreOpenError:
        _close_quietly(conn)
        raise
    except pg.Error as exc:
        _close_quietly(conn)
        raise StoreOpenError(
            f"cannot prepare the vega-trio schema in PostgreSQL at {location}: "
            f"{_one_line(exc)}; the user needs CREATE rights in the database",
            location=location,
            kind="unreachable" if isinstance(exc, pg.OperationalError) else "invalid",
        ) from None
    return conn, first_seq


@asynccontextmanager
async def open_postgres(
    url: str,
    *,
    on_health: Callable[[StoreHealth], None] | None = None,
    flush_seconds: float = 10.0,
    readers: int = 3,
    connect_timeout: float = 5.0,
    retry_initial: float = 0.05,
    retry_max: float = 5.0,
) -> AsyncIterator[PostgresStore]:
    """Open the PostgreSQL store at ``url`` (``postgresql://user:password@host:port/db``).

    Args:
        url: The database (its password is registered as a secret: never logged,
            never in an error or in ``health()``).
        on_health: Called on every change between ``ok`` and ``degraded``.
        flush_seconds: At exit, how long queued writes may take to commit; what is
            left fails in its callers with :class:`~vega_trio.StoreClosed`.
        readers: Reader connections at most (plus the one writer).
        connect_timeout: Seconds a connection attempt may take.
        retry_initial: First backoff after a failed batch (doubles up to ``retry_max``).
        retry_max: Longest backoff.

    Raises:
        StoreOpenError: psycopg missing (``invalid``), the server unreachable
            (``unreachable``), a newer schema (``newer_schema``), another program's
            tables (``foreign``).
    """
    pg = import_psycopg()
    register_url_secret(url)
    location = redact(url)

    def connect() -> Conn:
        return pg.connect(
            url,
            autocommit=False,
            connect_timeout=max(1, round(connect_timeout)),
            application_name="vega-trio",
            # A server that vanished without a word (no RST) is noticed in seconds.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )

    conn, first_seq = await trio.to_thread.run_sync(_open_writer, connect, location, pg)
    writer = _Writer(connect, conn, pg, location)
    limiter = trio.CapacityLimiter(1)
    committer: GroupCommitter[Conn] = GroupCommitter(
        engine="postgresql",
        location=location,
        run_batch=writer.run_batch,
        limiter=limiter,
        on_health=on_health,
        first_event_seq=first_seq,
        retry_initial=retry_initial,
        retry_max=retry_max,
    )
    store = PostgresStore(
        location=location,
        connect=connect,
        writer=writer,
        committer=committer,
        writer_limiter=limiter,
        readers=readers,
        pg=pg,
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
