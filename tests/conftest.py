"""Test-wide settings.

Hypothesis runs derandomized (the same examples on every run and machine, as a CI run must
be deterministic) and without its per-example deadline (a 2-core CI machine under load
is slow, not wrong). ``HYPOTHESIS_PROFILE=explore pytest ...`` searches with fresh random
examples and more of them, to look for new counter-examples on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from .store._postgres_server import PostgresServer, postgres_missing_reason

settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _no_user_vega_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads the user's ~/.vega: every CLI start loads $VEGA_HOME/env, which would
    change the backend, keys and settings the tests see. Tests that need one set their own."""
    saved = os.environ.get("VEGA_HOME")
    os.environ["VEGA_HOME"] = str(tmp_path_factory.mktemp("vega-home"))
    yield
    if saved is None:
        os.environ.pop("VEGA_HOME", None)
    else:
        os.environ["VEGA_HOME"] = saved


@pytest.fixture(autouse=True)
def _isolated_secrets() -> Iterator[None]:
    """Secrets registered by one test (``register_secret``: tool headers, backend keys) are
    forgotten after it, so they can't mask text in another test."""
    from vega_trio import _redact

    saved = set(_redact._registered)
    yield
    with _redact._lock:
        _redact._registered.clear()
        _redact._registered.update(saved)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole session."""
    reason = postgres_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[test]'")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server (its URL has a password)."""
    return postgres_server.create_database()
