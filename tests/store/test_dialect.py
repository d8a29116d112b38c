"""The store's logic is written once (``store/_sql.py``) and each engine differs only by its
dialect and plumbing: these tests pin that shape and the dialects' own translations."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from vega_trio.store import Store
from vega_trio.store._sql import Insert, SQLStore
from vega_trio.store._sqlite import SQLiteStore

_METHODS = sorted(
    name
    for name, member in vars(Store).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
)


def _postgres() -> Any:
    return pytest.importorskip("vega_trio.store._postgres")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_every_store_method_is_the_shared_one(engine: str) -> None:
    """Neither engine defines a Store method of its own: each one is SQLStore's, so a query
    is written once for both engines."""
    cls = SQLiteStore if engine == "sqlite" else _postgres().PostgresStore
    assert len(_METHODS) >= 25
    own = [name for name in _METHODS if getattr(cls, name) is not getattr(SQLStore, name)]
    assert own == []


def test_postgres_cursor_rewrites_placeholders_and_keeps_literal_percent() -> None:
    """The shared SQL's ``?`` becomes psycopg's ``%s``; a literal ``%`` is doubled, and a
    statement without parameters is sent as written."""
    pg = _postgres()
    sent: list[tuple[str, Any]] = []

    class Raw:
        def execute(self, sql: str, params: Any = None) -> Any:
            sent.append((sql, params))
            return self

    cur = pg._Cursor(Raw())
    cur.execute("SELECT 1 FROM t WHERE a LIKE 'x%' AND b = ?", ("v\x00",))
    cur.execute("SELECT '50%'")
    assert sent == [
        ("SELECT 1 FROM t WHERE a LIKE 'x%%' AND b = %s", ("v\ufffd",)),
        ("SELECT '50%'", None),
    ]


def test_postgres_inserts_many_rows_in_one_statement_unless_it_updates() -> None:
    """Rows that only insert go in one ``unnest`` statement over typed arrays (one round
    trip); an upsert runs per row (PostgreSQL refuses to update one row twice in a
    statement)."""
    pg = _postgres()
    calls: list[tuple[str, str, Any]] = []

    class Cur:
        def execute(self, sql: str, params: Any = None) -> Any:
            calls.append(("execute", sql, params))

        def executemany(self, sql: str, params: Any) -> Any:
            calls.append(("executemany", sql, params))

    dialect = pg.PostgresDialect(pytest.importorskip("psycopg"))
    plain = Insert("t", ("a", "b"), ("int", "text"), "ON CONFLICT (a) DO NOTHING")
    upsert = Insert(
        "t", ("a", "b"), ("int", "text"), "ON CONFLICT (a) DO UPDATE SET b = excluded.b"
    )
    dialect.insert_many(plain, [(1, "x"), (2, "y")])(Cur())
    dialect.insert_many(upsert, [(1, "x"), (1, "y")])(Cur())
    assert calls == [
        (
            "execute",
            "INSERT INTO t (a, b) SELECT * FROM unnest(?::bigint[], ?::text[]) "
            "ON CONFLICT (a) DO NOTHING",
            [[1, 2], ["x", "y"]],
        ),
        (
            "executemany",
            "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
            [(1, "x"), (1, "y")],
        ),
    ]
