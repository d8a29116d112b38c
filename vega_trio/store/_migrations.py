"""The store's schema as versioned, forward-only migrations, shared by every engine.

Each :class:`Migration` is a list of SQL statements written once in the common subset
of SQLite and PostgreSQL; :func:`statements` adapts the few words that differ (an event
sequence number is a ``BIGINT`` on PostgreSQL and SQLite's rowid, ``INTEGER PRIMARY
KEY``, on SQLite). A database records every applied version in ``schema_version``;
opening it applies the missing ones in order inside one transaction, and a database
whose version is *newer* than :data:`LATEST` is refused untouched (an older vega-trio
must not write into a schema it does not know).

NOTE: never edit a released migration — add a new one. The upgrade test builds a
database at version 1 with :func:`statements` of the first migration only and opens it
with the current code.

Column conventions: JSON values are text (``json.dumps``); times are seconds since the
epoch (``DOUBLE PRECISION``); the user of a conversation is ``user_key`` (``''`` for
no user, ``'=' + user`` otherwise) so that "no user" and the user ``""`` stay apart
and the key can be part of a primary key on both engines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import attrs

__all__ = [
    "APPLICATION_ID",
    "LATEST",
    "MIGRATIONS",
    "TABLES",
    "Migration",
    "apply",
    "statements",
]

log = logging.getLogger("vega_trio.store")

Engine = Literal["sqlite", "postgresql"]

APPLICATION_ID = 0x56454741
"""SQLite's ``PRAGMA application_id`` of a vega-trio database ("VEGA"): with the
``schema_version`` table it tells our file from another program's."""


@attrs.frozen
class Migration:
    """One schema version: what it changes (for the log) and its statements."""

    version: int
    summary: str
    sql: Sequence[str]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, processes, conversations, runs and steps, costs, agents, state",
        (
            """CREATE TABLE events (
                seq BIGINT PRIMARY KEY,
                type TEXT NOT NULL,
                timestamp DOUBLE PRECISION NOT NULL,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX events_timestamp ON events (timestamp)",
            """CREATE TABLE processes (
                id TEXT PRIMARY KEY,
                agent TEXT NOT NULL,
                status TEXT NOT NULL,
                parent TEXT,
                supervisor TEXT,
                run_id TEXT,
                user_name TEXT,
                started_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                restarts INTEGER NOT NULL,
                error TEXT,
                metrics TEXT NOT NULL
            )""",
            "CREATE INDEX processes_started ON processes (started_at)",
            """CREATE TABLE messages (
                agent TEXT NOT NULL,
                user_key TEXT NOT NULL,
                position INTEGER NOT NULL,
                message TEXT NOT NULL,
                PRIMARY KEY (agent, user_key, position)
            )""",
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                status TEXT NOT NULL,
                inputs TEXT NOT NULL,
                document TEXT,
                started_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                output TEXT NOT NULL,
                error TEXT,
                error_class TEXT,
                step TEXT,
                cost_usd DOUBLE PRECISION NOT NULL,
                resumes INTEGER NOT NULL
            )""",
            "CREATE INDEX runs_started ON runs (started_at)",
            """CREATE TABLE steps (
                run_id TEXT NOT NULL,
                path TEXT NOT NULL,
                saved INTEGER NOT NULL,
                status TEXT NOT NULL,
                result TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                tokens BIGINT NOT NULL,
                PRIMARY KEY (run_id, path)
            )""",
            """CREATE TABLE costs (
                seq BIGINT PRIMARY KEY,
                timestamp DOUBLE PRECISION NOT NULL,
                model TEXT NOT NULL,
                agent TEXT,
                process_id TEXT,
                run_id TEXT,
                user_name TEXT,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE agents (
                name TEXT PRIMARY KEY,
                definition TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE state (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "indexes for type-filtered event reads, status listings and cost windows",
        (
            "CREATE INDEX events_type ON events (type, seq)",
            "CREATE INDEX processes_status ON processes (status, started_at)",
            "CREATE INDEX runs_status ON runs (status, started_at)",
            "CREATE INDEX costs_timestamp ON costs (timestamp)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version
"""The schema version this code writes."""

TABLES: tuple[str, ...] = (
    "events",
    "processes",
    "messages",
    "runs",
    "steps",
    "costs",
    "agents",
    "state",
)
"""Every data table (not ``schema_version``): what ``counts``/``reset`` cover."""

SCHEMA_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at DOUBLE PRECISION NOT NULL,
    summary TEXT NOT NULL
)"""


def statements(migration: Migration, engine: Engine) -> list[str]:
    """The migration's statements in ``engine``'s dialect.

    Args:
        migration: one of :data:`MIGRATIONS`.
        engine: ``sqlite`` or ``postgresql``.

    Returns:
        The statements to run in order, in one transaction with the ``schema_version``
        row that records them.
    """
    if engine == "postgresql":
        return list(migration.sql)
    # NOTE: on SQLite only the exact words "INTEGER PRIMARY KEY" make the column the
    # rowid (no second index, the fastest appends): the event log is the hot table.
    return [
        sql.replace("seq BIGINT PRIMARY KEY", "seq INTEGER PRIMARY KEY") for sql in migration.sql
    ]


def pending(current: int) -> list[Migration]:
    """The migrations after version ``current``, in order."""
    return [m for m in MIGRATIONS if m.version > current]


def apply(cur: Any, migrations: Sequence[Migration], engine: Engine) -> int:
    """Run ``migrations`` in order on ``cur`` (a cursor taking ``?`` placeholders, in the
    caller's open transaction), each recorded in ``schema_version``.

    Returns:
        The version of the last one applied (0 for none).
    """
    version = 0
    for migration in migrations:
        for sql in statements(migration, engine):
            cur.execute(sql)
        cur.execute(
            "INSERT INTO schema_version (version, applied_at, summary) VALUES (?, ?, ?)",
            (migration.version, time.time(), migration.summary),
        )
        log.info("store: schema version %d (%s)", migration.version, migration.summary)
        version = migration.version
    return version
