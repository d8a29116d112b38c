"""The store tests' engines: the shared contract suite runs once per engine.

Adding an engine is one line in :data:`ENGINES`: a name and a function that gives the
location (``--db`` value) of a fresh, empty database for one test. The function gets
the test's ``request`` (to use session fixtures, such as a PostgreSQL server) and a
temporary directory.

PostgreSQL: a real server from Debian's ``postgresql`` package starts once per session,
on first use (the ``postgres_server`` fixture of tests/conftest.py, shared with the
server's crash test); each test gets a fresh database on it. Where no server can run,
the PostgreSQL tests skip with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from vega_trio.store import Store, open_store

from ._postgres_server import PostgresServer


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "vega.db")


def _postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


ENGINES: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> str:
    """The engine under test (the contract suite runs once per engine)."""
    return str(request.param)


@pytest.fixture
def db(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of the engine under test: its location."""
    return ENGINES[engine](request, tmp_path)


OpenStore = Callable[..., AbstractAsyncContextManager[Store]]


@pytest.fixture
def opened(db: str) -> OpenStore:
    """``async with opened() as store``: open (or reopen) the test's database."""

    def open_(**options: Any) -> AbstractAsyncContextManager[Store]:
        return open_store(db, **options)

    return open_


@pytest.fixture
async def store(opened: OpenStore) -> AsyncIterator[Store]:
    """The test's database, open."""
    async with opened() as store:
        yield store
