"""Store fixtures: a real PostgreSQL server for the test session (Debian's package).

The server starts once per session, on first use, and is stopped (by its pid file) at
the end, also when the session fails. Each test gets a fresh database on it. Where no
server can run (the package is missing and could not be installed), the PostgreSQL tests
skip with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._postgres_server import PostgresServer, postgres_missing_reason


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole session."""
    reason = postgres_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server (its URL has a password)."""
    return postgres_server.create_database()
