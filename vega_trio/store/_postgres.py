"""The PostgreSQL engine: psycopg 3's *sync* driver in worker threads (STACK.md "Store").

psycopg's asyncio connection does not run under Trio, so every database call runs in a
worker thread (``trio.to_thread.run_sync``) on one of a small, bounded set of
connections: ONE writer connection, driven by the shared group committer
(:mod:`vega_trio.store._writer`: many callers, one transaction, each wakes after the
``COMMIT``), and up to ``readers`` reader connections in autocommit mode.

The schema is the shared one (:mod:`vega_trio.store._migrations`), the queries the
shared store's (:mod:`vega_trio.store._sql`); what is PostgreSQL's own here is its
:class:`PostgresDialect` (``%s`` placeholders, ``unnest`` for many rows in one statement,
``COLLATE "C"`` so listings sort byte-wise like SQLite, text without NUL), the connection
handling, the migrations' locking and the faults:

* unreachable at start: :class:`~vega_trio.StoreOpenError` (``unreachable``) at once;
* the server goes away mid-run: the batch is rolled back (or its connection is simply
  gone), the committer reports ``degraded`` with the reason (the URL's password masked)
  and retries with backoff; the writer reconnects on each try, callers keep waiting and
  are acknowledged once the server is back;
* the connection breaks *during* ``COMMIT`` (did it commit or not?): every batch writes
  a token into ``vega_commits`` inside its transaction, and the retry looks for it first,
  so a batch that did commit is not applied twice (an appended message stays one message);
* a database of a newer schema, or someone else's tables: refused, untouched.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

import trio

from .._errors import StoreError, StoreOpenError
from .._redact import redact, register_url_secret
from ._migrations import LATEST, SCHEMA_VERSION_TABLE, TABLES, apply, pending
from ._protocol import StoreHealth
from ._sql import LAST_EVENT_SEQ, AgedTable, Cursor, Dialect, Insert, SQLStore

__all__ = ["INSTALL_HINT", "PostgresDialect", "PostgresStore", "import_psycopg", "open_postgres"]

log = logging.getLogger("vega_trio.store")

T = TypeVar("T")
Conn = Any
"""A ``psycopg.Connection`` (psycopg is optional: imported only when a URL is opened)."""

INSTALL_HINT = "pip install 'vega-trio[postgres]'"

_LOCK_KEY = 0x56454741
"""``pg_advisory_xact_lock`` key ("VEGA"): nodes opening one database migrate in turn."""

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


@functools.lru_cache(maxsize=1024)
def _format_style(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Cursor:
    """A psycopg cursor as the shared logic's :class:`~vega_trio.store._sql.Cursor`:
    ``?`` placeholders (rewritten to ``%s`` when there are parameters), parameters
    through :func:`_nul_safe` (every statement of the engine runs through one; lookups
    are cleaned the same way, so they still match), and ``execute`` returns the cursor
    to read rows from."""

    def __init__(self, cursor: Conn) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def execute(self, query: str, params: Any = None) -> Any:
        if params is None:
            return self._cursor.execute(query)
        return self._cursor.execute(_format_style(query), _nul_safe(params))

    def executemany(self, query: str, params_seq: Any) -> Any:
        return self._cursor.executemany(_format_style(query), [_nul_safe(p) for p in params_seq])


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
            cur = _Cursor(raw)
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
                "INSERT INTO vega_commits (token, committed_at) VALUES (?, ?)",
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


class PostgresDialect(Dialect):
    """PostgreSQL's SQL: ``%s`` placeholders (:class:`_Cursor` rewrites ``?``), many
    rows in one ``unnest`` statement over typed arrays (one round trip), ``COLLATE "C"``
    for SQLite's byte-wise text order, ``trunc`` for an integer bucket (its ``CAST``
    rounds), the ``vega_commits`` bookkeeping table, and psycopg's errors of one write."""

    name = "postgresql"
    placeholder = "%s"
    collate = ' COLLATE "C"'
    own_tables = (AgedTable("vega_commits", "token", "committed_at"),)

    def __init__(self, pg: Any) -> None:
        self.write_errors = _write_errors(pg)
        self._unnest: dict[Insert, str] = {}

    def insert_many(
        self, insert: Insert, rows: Sequence[Sequence[Any]]
    ) -> Callable[[Cursor], None]:
        if insert.updates:
            # ON CONFLICT DO UPDATE cannot touch one row twice in one statement.
            return super().insert_many(insert, rows)
        sql = self._unnest.get(insert)
        if sql is None:
            arrays = ", ".join(f"?::{_ARRAY_TYPES[kind]}[]" for kind in insert.kinds)
            sql = self._unnest[insert] = (
                f"INSERT INTO {insert.table} ({', '.join(insert.columns)}) "
                f"SELECT * FROM unnest({arrays}) {insert.on_conflict}"
            ).rstrip()
        columns = [list(column) for column in zip(*rows, strict=True)]

        def write(cur: Cursor) -> None:
            cur.execute(sql, columns)

        return write

    def int_bucket(self, expression: str) -> str:
        return f"trunc({expression})::bigint"


_ARRAY_TYPES = {"int": "bigint", "real": "float8", "text": "text"}


class PostgresStore(SQLStore[Conn]):
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
        readers: int,
        pg: Any,
        **committer: Any,
    ) -> None:
        super().__init__(
            location=location, run_batch=writer.run_batch, readers=readers, **committer
        )
        self.dialect = PostgresDialect(pg)
        self._connect = connect
        self._writer = writer
        self._pg = pg

    async def _run_read(self, query: Callable[[Cursor], T]) -> T:
        """Run ``query`` with a reader's cursor (a broken connection is replaced once)."""
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

    def _new_reader(self) -> Conn:
        return self._connect()

    def _close_reader(self, conn: Conn) -> None:
        _close_quietly(conn)

    def _read_in_thread(self, query: Callable[[Cursor], T]) -> T:
        conn = self._take_reader()
        try:
            # One snapshot for a page and its total.
            with conn.transaction(), conn.cursor() as cur:
                result = query(_Cursor(cur))
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

    def _close_connections(self) -> None:
        self._close_readers()
        if self._writer.conn is not None:
            _close_quietly(self._writer.conn)
        self._writer.conn = None


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
        return apply(_Cursor(cur), pending(current), "postgresql") or current


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
        first_seq = int(conn.execute(LAST_EVENT_SEQ).fetchone()[0])
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
    store = PostgresStore(
        location=location,
        connect=connect,
        writer=_Writer(connect, conn, pg, location),
        readers=readers,
        pg=pg,
        on_health=on_health,
        first_event_seq=first_seq,
        retry_initial=retry_initial,
        retry_max=retry_max,
    )
    async with store._running(flush_seconds):
        yield store
