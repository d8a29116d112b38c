"""The store's logic, written once for every SQL engine, against a small :class:`Dialect`.

:class:`SQLStore` implements the whole :class:`~vega_trio.store.Store` protocol: every
query, the row mapping (through :mod:`vega_trio.store._codec`), conversations, runs and
their step checkpoints, costs, agents, small state, retention in bounded batches and
reset. Writes go through the engine's group committer (:mod:`vega_trio.store._writer`),
reads through the engine's ``_run_read``.

An engine module (``_sqlite.py``, ``_postgres.py``) keeps only what truly differs: its
connections (SQLite's in worker threads, a reader pool, the in-memory case; psycopg's
cursors and reconnects), its settings and opening checks, its migrations' bookkeeping,
its batch runner and fault handling, and its :class:`Dialect`:

* **placeholders** — the SQL here is written with ``?``; the PostgreSQL engine's cursor
  rewrites it to psycopg's ``%s`` (:attr:`Dialect.placeholder`);
* **upserts** — ``INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col`` is the
  same on both engines, so it is written here once (:func:`update_others`);
* **many rows in one write** (:meth:`Dialect.insert_many`): ``executemany`` on SQLite;
  one ``unnest`` statement over typed arrays on PostgreSQL (one round trip);
* **byte-wise text order** (:attr:`Dialect.collate`): SQLite's default, ``COLLATE "C"``
  on PostgreSQL whatever the server's locale;
* **integer buckets** (:meth:`Dialect.int_bucket`): SQLite's ``CAST AS INTEGER``
  truncates, PostgreSQL's rounds (so ``trunc`` there);
* **the engine's own bookkeeping tables** (:attr:`Dialect.own_tables`: PostgreSQL's
  ``vega_commits``), pruned by age and cleared with the data;
* **error classification** (:attr:`Dialect.write_errors`): the errors that fail ONE write
  (bad data, a constraint) while the rest of its batch commits;
* **types** — JSON is text on both engines (encoded in the caller's task by the codec),
  times are float seconds, no bytes; text with NUL, which PostgreSQL cannot hold, is
  the PostgreSQL cursor's business.

A query or a write here is a function of one :class:`Cursor` (``execute`` returns what
``fetchone``/``fetchall``/``rowcount`` are read from): SQLite's connection and psycopg's
cursor both are one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, Literal, Protocol, TypeVar

import attrs
import trio

from .._errors import StoreClosed
from . import _codec as codec
from . import _writer
from ._migrations import TABLES
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

__all__ = [
    "LAST_EVENT_SEQ",
    "AgedTable",
    "Cursor",
    "Dialect",
    "Insert",
    "Rows",
    "SQLStore",
    "update_others",
]

T = TypeVar("T")
C = TypeVar("C")
"""An engine's reader connection."""

Kind = Literal["int", "real", "text"]
"""A column's kind, for a dialect that must name types (PostgreSQL's typed arrays)."""

LAST_EVENT_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM events"
"""The highest stored event number (0 when none): where the bus continues."""

_FINISHED_RUNS = "'completed', 'failed', 'cancelled'"
"""The runs the retention may delete (a running or interrupted run is resumable)."""


class Rows(Protocol):
    """What a statement's execution gives back."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Cursor(Protocol):
    """What the shared logic runs its statements on (``?`` placeholders)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Rows: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


@attrs.frozen
class Insert:
    """An ``INSERT`` of many rows: the table, its columns and their kinds, and what a row
    whose key exists already does (``ON CONFLICT ...``, or ``""``)."""

    table: str
    columns: tuple[str, ...]
    kinds: tuple[Kind, ...]
    on_conflict: str = ""
    values_sql: str = attrs.field(
        init=False, default=attrs.Factory(lambda self: self._values(), takes_self=True)
    )
    """``INSERT ... VALUES (?, ...)`` of one row (made once: events are appended here)."""

    @property
    def updates(self) -> bool:
        """Whether a conflict updates the stored row (then one statement may not hold
        the same key twice on PostgreSQL)."""
        return "DO UPDATE" in self.on_conflict

    def _values(self) -> str:
        marks = ", ".join("?" * len(self.columns))
        text = f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks})"
        return f"{text} {self.on_conflict}" if self.on_conflict else text


@attrs.frozen
class AgedTable:
    """An engine's bookkeeping table: rows deleted when ``time`` is older than the
    retention cutoff (by ``key``, in bounded batches) and all of them on reset."""

    name: str
    key: str
    time: str


class Dialect:
    """What differs in the SQL of one engine (see the module docstring).

    The defaults are the common SQL both engines speak; an engine overrides what its
    own SQL says differently.
    """

    name: str = ""
    placeholder: str = "?"
    """The driver's placeholder (documentation: the engine's cursor does the rewrite)."""
    collate: str = ""
    """Appended to a text column in ``ORDER BY`` for byte-wise order."""
    own_tables: tuple[AgedTable, ...] = ()
    """The engine's bookkeeping tables (not in ``counts``), pruned and reset with the data."""
    write_errors: tuple[type[BaseException], ...] = (ValueError, TypeError, OverflowError)
    """Exceptions of ONE write: it fails alone and the rest of its batch commits; any
    other exception fails the transaction, which the committer rolls back and retries."""

    def insert_many(
        self, insert: Insert, rows: Sequence[Sequence[Any]]
    ) -> Callable[[Cursor], None]:
        """The write that inserts ``rows`` (at least one) as ``insert`` says (made in the
        caller's task; on the event log's hot path it is the whole write)."""
        sql = insert.values_sql

        def write(cur: Cursor) -> None:
            # NOTE: returns nothing: a driver's cursor kept alive as the write's result
            # would be freed later on the Trio thread, slowing the writer.
            cur.executemany(sql, rows)

        return write

    def int_bucket(self, expression: str) -> str:
        """The integer part of ``expression`` (truncated toward zero)."""
        return f"CAST({expression} AS INTEGER)"


def update_others(columns: Sequence[str], key: str) -> str:
    """The upsert's tail: every column but ``key`` takes the new row's value."""
    update = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return f"ON CONFLICT ({key}) DO UPDATE SET {update}"


def _names(columns: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in columns.split(","))


_EVENTS = Insert(
    "events",
    ("seq", "type", "timestamp", "data"),
    ("int", "text", "real", "text"),
    "ON CONFLICT (seq) DO NOTHING",
)
_COSTS = Insert(
    "costs",
    _names(codec.COST_COLUMNS),
    ("int", "real", "text", "text", "text", "text", "text", "int", "int", "real"),
    "ON CONFLICT (seq) DO NOTHING",
)
_PROCESSES = Insert(
    "processes",
    _names(codec.PROCESS_COLUMNS),
    ("text",) * 7 + ("real", "real", "int", "text", "text"),
    update_others(_names(codec.PROCESS_COLUMNS), "id"),
)
_MESSAGES = Insert(
    "messages", ("agent", "user_key", "position", "message"), ("text", "text", "int", "text")
)
_RUN_UPSERT = Insert(
    "runs",
    _names(codec.RUN_COLUMNS),
    ("text",) * 5 + ("real", "real", "text", "text", "text", "text", "real", "int"),
    update_others(_names(codec.RUN_COLUMNS), "id"),
).values_sql
# NOTE: ``saved`` is the order of the FIRST save; a step saved again (failed, then
# completed on resume) keeps its place.
_STEP_UPSERT = (
    "INSERT INTO steps (run_id, path, status, result, started_at, ended_at, "
    "cost_usd, tokens, saved) SELECT ?, ?, ?, ?, ?, ?, ?, ?, "
    "COALESCE(MAX(saved), 0) + 1 FROM steps WHERE run_id = ? "
    "ON CONFLICT (run_id, path) DO UPDATE SET status = excluded.status, "
    "result = excluded.result, started_at = excluded.started_at, "
    "ended_at = excluded.ended_at, cost_usd = excluded.cost_usd, "
    "tokens = excluded.tokens"
)
# NOTE: created_at stays the first save's; updated_at is the latest.
_AGENT_UPSERT = (
    "INSERT INTO agents (name, definition, created_at, updated_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
    "definition = excluded.definition, updated_at = excluded.updated_at"
)
_STATE_UPSERT = (
    "INSERT INTO state (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_AGED = (
    AgedTable("events", "seq", "timestamp"),
    AgedTable("costs", "seq", "timestamp"),
)


_LISTED: dict[str, tuple[str, Callable[[Sequence[Any]], Any]]] = {
    "processes": (codec.PROCESS_COLUMNS, codec.process_from_row),
    "runs": (codec.RUN_COLUMNS, codec.run_from_row),
}


def _delete_aged(table: AgedTable) -> str:
    return (
        f"DELETE FROM {table.name} WHERE {table.key} IN "
        f"(SELECT {table.key} FROM {table.name} WHERE {table.time} < ? LIMIT ?)"
    )


def _in(column: str, values: Sequence[str]) -> str:
    """``column IN (?, ...)``; false for no values."""
    return f"{column} IN ({', '.join('?' * len(values))})" if values else "1 = 0"


class SQLStore(Generic[C]):
    """A :class:`~vega_trio.store.Store` over an engine's cursors (see the module
    docstring); ``C`` is the engine's reader connection, pooled here.

    A subclass sets :attr:`engine` and :attr:`dialect` and implements ``_run_read``
    (run a query on a reader), ``_new_reader`` and ``_close_reader``.
    """

    engine: str
    dialect: Dialect

    def __init__(
        self,
        *,
        location: str,
        run_batch: Callable[[Sequence[Callable[[Cursor], Any]]], list[tuple[bool, Any]]],
        readers: int,
        on_health: Callable[[StoreHealth], None] | None = None,
        first_event_seq: int = 0,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
    ) -> None:
        """Make the engine's group committer (its writer runs in :meth:`_running`).

        Args:
            location: the database, redacted.
            run_batch: the engine's :data:`~vega_trio.store._writer.BatchRunner`.
            readers: reader connections at most.
            on_health: see :class:`~vega_trio.store._writer.GroupCommitter`.
            first_event_seq: the last stored event's number.
            retry_initial: first backoff after a failed batch.
            retry_max: longest backoff.
        """
        self.location = location
        self._writer_limiter = trio.CapacityLimiter(1)
        self._committer: GroupCommitter[Cursor] = GroupCommitter(
            engine=self.engine,
            location=location,
            run_batch=run_batch,
            limiter=self._writer_limiter,
            on_health=on_health,
            first_event_seq=first_event_seq,
            retry_initial=retry_initial,
            retry_max=retry_max,
        )
        self._reader_limiter = trio.CapacityLimiter(readers)
        self._reader_pool: list[C] = []
        self._readers_closed = False

    # ------------------------------------------------------------ plumbing
    def health(self) -> StoreHealth:
        return self._committer.health()

    async def _write(self, apply: Callable[[Cursor], T], *, event_seqs: Sequence[int] = ()) -> T:
        result: T = await self._committer.submit(apply, event_seqs=event_seqs)
        return result

    async def _read(self, query: Callable[[Cursor], T]) -> T:
        if self._committer.health().status == "closed":
            raise StoreClosed(
                f"the store at {self.location} is closed; open it again to read",
                location=self.location,
            )
        return await self._run_read(query)

    async def _run_read(self, query: Callable[[Cursor], T]) -> T:
        """Run ``query`` on a reader, in one snapshot (a page and its total agree)."""
        raise NotImplementedError

    def _new_reader(self) -> C:
        raise NotImplementedError

    def _close_reader(self, conn: C) -> None:
        raise NotImplementedError

    def _take_reader(self) -> C:
        """A pooled reader connection, or a new one (in a worker thread)."""
        try:
            return self._reader_pool.pop()
        except IndexError:
            return self._new_reader()

    def _release(self, conn: C) -> None:
        """Back to the pool, or closed when the store closed while its read ran."""
        if self._readers_closed:
            self._close_reader(conn)
        else:
            self._reader_pool.append(conn)

    def _close_connections(self) -> None:
        """Close every connection (in a worker thread, holding the writer's limiter)."""
        raise NotImplementedError

    @asynccontextmanager
    async def _running(self, flush_seconds: float) -> AsyncIterator[None]:
        """Run the writer while the body runs; on exit flush what is queued (for at most
        ``flush_seconds``), then close the connections."""
        committer = self._committer
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(committer.run)
                try:
                    yield
                finally:
                    await committer.close(flush_seconds)  # noqa: ASYNC102 - shielded, bounded inside
                    nursery.cancel_scope.cancel(reason="the store is closed")
        finally:
            with trio.move_on_after(flush_seconds, shield=True):
                await trio.to_thread.run_sync(self._close_connections, limiter=self._writer_limiter)

    def _close_readers(self) -> None:
        self._readers_closed = True
        while self._reader_pool:
            self._close_reader(self._reader_pool.pop())

    # -------------------------------------------------------------- events
    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        apply = self.dialect.insert_many(_EVENTS, [codec.event_row(e) for e in events])
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

        def query(cur: Cursor) -> list[StoredEvent]:
            rows = cur.execute(
                f"SELECT seq, type, timestamp, data FROM events WHERE {where} ORDER BY seq LIMIT ?",
                [*params, max(0, limit)],
            ).fetchall()
            return [codec.event_from_row(r) for r in rows]

        return await self._read(query)

    async def last_event_seq(self) -> int:
        def query(cur: Cursor) -> int:
            return int(cur.execute(LAST_EVENT_SEQ).fetchone()[0])

        return await self._read(query)

    # ----------------------------------------------------------- processes
    async def save_processes(self, records: Sequence[ProcessRecord]) -> None:
        if not records:
            return
        await self._write(
            self.dialect.insert_many(_PROCESSES, [codec.process_row(p) for p in records])
        )

    async def get_process(self, process_id: str) -> ProcessRecord | None:
        def query(cur: Cursor) -> ProcessRecord | None:
            row = cur.execute(
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
            conditions.append(_in("status", status))
            params.extend(status)
        if agent is not None:
            conditions.append("agent = ?")
            params.append(agent)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        return await self._page("processes", where, params, limit, offset)

    async def _page(
        self,
        table: Literal["processes", "runs"],
        where: str,
        params: list[Any],
        limit: int,
        offset: int,
    ) -> Page:
        """A listing newest first (ties: by id, byte-wise, descending) and its total."""
        columns, from_row = _LISTED[table]
        collate = self.dialect.collate

        def query(cur: Cursor) -> Page:
            (total,) = cur.execute(f"SELECT COUNT(*) FROM {table} {where}", params).fetchone()
            rows = cur.execute(
                f"SELECT {columns} FROM {table} {where} "
                f"ORDER BY started_at DESC, id{collate} DESC LIMIT ? OFFSET ?",
                [*params, max(0, limit), max(0, offset)],
            ).fetchall()
            return Page([from_row(r) for r in rows], int(total))

        return await self._read(query)

    # ------------------------------------------------------- conversations
    async def load_conversation(self, agent: str, user: str | None) -> list[Mapping[str, Any]]:
        key = codec.user_key(user)

        def query(cur: Cursor) -> list[Mapping[str, Any]]:
            rows = cur.execute(
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
        insert_many = self.dialect.insert_many

        def apply(cur: Cursor) -> None:
            (last,) = cur.execute(
                "SELECT COALESCE(MAX(position), -1) FROM messages WHERE agent = ? AND user_key = ?",
                (agent, key),
            ).fetchone()
            rows = [(agent, key, last + 1 + i, text) for i, text in enumerate(texts)]
            insert_many(_MESSAGES, rows)(cur)

        await self._write(apply)

    async def replace_conversation(
        self, agent: str, user: str | None, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        key = codec.user_key(user)
        texts = [codec.dumps(dict(m)) for m in messages]
        insert_many = self.dialect.insert_many

        def apply(cur: Cursor) -> None:
            cur.execute("DELETE FROM messages WHERE agent = ? AND user_key = ?", (agent, key))
            if texts:
                insert_many(_MESSAGES, [(agent, key, i, t) for i, t in enumerate(texts)])(cur)

        await self._write(apply)

    async def list_conversations(self) -> list[tuple[str, str | None, int]]:
        collate = self.dialect.collate

        def query(cur: Cursor) -> list[tuple[str, str | None, int]]:
            rows = cur.execute(
                "SELECT agent, user_key, COUNT(*) FROM messages GROUP BY agent, user_key "
                f"ORDER BY agent{collate}, user_key{collate}"
            ).fetchall()
            return [(r[0], codec.user_from_key(r[1]), int(r[2])) for r in rows]

        return await self._read(query)

    # ---------------------------------------------------------------- runs
    async def save_run(self, run: RunRecord) -> None:
        row = codec.run_row(run)

        def apply(cur: Cursor) -> None:
            cur.execute(_RUN_UPSERT, row)

        await self._write(apply)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def query(cur: Cursor) -> RunRecord | None:
            row = cur.execute(
                f"SELECT {codec.RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            return None if row is None else codec.run_from_row(row)

        return await self._read(query)

    async def list_runs(
        self, *, status: Sequence[str] | None = None, limit: int = 100, offset: int = 0
    ) -> Page:
        where = "" if status is None else "WHERE " + _in("status", status)
        params: list[Any] = list(status or ())
        return await self._page("runs", where, params, limit, offset)

    async def save_step(self, step: StepRecord) -> None:
        row = (*codec.step_row(step), step.run_id)

        def apply(cur: Cursor) -> None:
            cur.execute(_STEP_UPSERT, row)

        await self._write(apply)

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        def query(cur: Cursor) -> list[StepRecord]:
            rows = cur.execute(
                f"SELECT {codec.STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY saved",
                (run_id,),
            ).fetchall()
            return [codec.step_from_row(r) for r in rows]

        return await self._read(query)

    # --------------------------------------------------------------- costs
    async def record_costs(self, costs: Sequence[CostRecord]) -> None:
        if not costs:
            return
        await self._write(self.dialect.insert_many(_COSTS, [codec.cost_row(c) for c in costs]))

    async def cost_totals(
        self,
        *,
        by: Literal["agent", "process_id", "run_id", "model"],
        since: float | None = None,
    ) -> dict[str, dict[str, float]]:
        if by not in ("agent", "process_id", "run_id", "model"):
            raise ValueError(f"cost_totals(by={by!r}): use agent, process_id, run_id or model")
        where, params = ("WHERE timestamp >= ?", [since]) if since is not None else ("", [])

        def query(cur: Cursor) -> dict[str, dict[str, float]]:
            rows = cur.execute(
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
        bucket = self.dialect.int_bucket("timestamp / ?")

        def query(cur: Cursor) -> list[dict[str, Any]]:
            rows = cur.execute(
                f"SELECT {bucket} AS b, SUM(cost_usd), COUNT(*) "
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

        def apply(cur: Cursor) -> None:
            cur.execute(_AGENT_UPSERT, row)

        await self._write(apply)

    async def delete_agent(self, name: str) -> bool:
        def apply(cur: Cursor) -> bool:
            return cur.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0

        return await self._write(apply)

    async def list_agents(self) -> list[AgentRecord]:
        collate = self.dialect.collate

        def query(cur: Cursor) -> list[AgentRecord]:
            rows = cur.execute(
                "SELECT name, definition, created_at, updated_at FROM agents "
                f"ORDER BY name{collate}"
            ).fetchall()
            return [codec.agent_from_row(r) for r in rows]

        return await self._read(query)

    # ------------------------------------------------------------- state
    async def get_state(self, key: str) -> Any:
        def query(cur: Cursor) -> Any:
            row = cur.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            return None if row is None else codec.loads(row[0])

        return await self._read(query)

    async def put_state(self, key: str, value: Any) -> None:
        text = codec.dumps(value)

        def apply(cur: Cursor) -> None:
            cur.execute(_STATE_UPSERT, (key, text))

        await self._write(apply)

    # ---------------------------------------------------------- retention
    async def counts(self) -> dict[str, int]:
        def query(cur: Cursor) -> dict[str, int]:
            return {
                table: int(cur.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in TABLES
            }

        return await self._read(query)

    async def prune(self, *, older_than: float) -> dict[str, int]:
        """Delete in bounded batches (at most :data:`_writer.PRUNE_BATCH` rows of a table
        each, each its own write, so other writes commit between them) until a batch
        deletes fewer than that of every table."""
        limit = _writer.PRUNE_BATCH
        old_runs = (
            f"SELECT id FROM runs WHERE status IN ({_FINISHED_RUNS}) AND ended_at < ? "
            "ORDER BY id LIMIT ?"
        )
        events, costs = (_delete_aged(t) for t in _AGED)
        own = [_delete_aged(t) for t in self.dialect.own_tables]
        params = (older_than, limit)

        def apply(cur: Cursor) -> tuple[dict[str, int], list[int]]:
            # NOTE: the steps of the runs deleted below first (the same runs: ORDER BY).
            deleted = {
                "events": cur.execute(events, params).rowcount,
                "steps": cur.execute(
                    f"DELETE FROM steps WHERE run_id IN ({old_runs})", params
                ).rowcount,
                "runs": cur.execute(f"DELETE FROM runs WHERE id IN ({old_runs})", params).rowcount,
                "processes": cur.execute(
                    "DELETE FROM processes WHERE id IN (SELECT id FROM processes "
                    "WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?)",
                    params,
                ).rowcount,
                "costs": cur.execute(costs, params).rowcount,
            }
            return deleted, [cur.execute(sql, params).rowcount for sql in own]

        total: dict[str, int] = {}
        while True:
            batch, bookkeeping = await self._write(apply)
            for table, count in batch.items():
                total[table] = total.get(table, 0) + count
            counts = [count for table, count in batch.items() if table != "steps"]
            if all(count < limit for count in [*counts, *bookkeeping]):
                return total

    async def reset(self) -> dict[str, int]:
        own = [t.name for t in self.dialect.own_tables]

        def apply(cur: Cursor) -> dict[str, int]:
            deleted = {table: cur.execute(f"DELETE FROM {table}").rowcount for table in TABLES}
            for table in own:
                cur.execute(f"DELETE FROM {table}")
            return deleted

        return await self._write(apply)
