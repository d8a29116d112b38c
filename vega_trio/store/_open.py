"""``open_store``: the one place that turns a ``--db`` value into an engine.

Each engine module has one opener with the same shape,
``open_<engine>(location, *, on_health, flush_seconds)`` — an async context manager
that yields the engine's :class:`~vega_trio.store.Store` — and is imported only when a
location asks for it (the PostgreSQL driver is an optional dependency).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import trio

from .._errors import StoreOpenError
from .._redact import redact
from ._protocol import Store, StoreHealth

__all__ = ["DEFAULT_FLUSH_SECONDS", "RETENTION_INTERVAL", "open_store", "prune_loop"]

log = logging.getLogger("vega_trio.store")

DEFAULT_FLUSH_SECONDS = 10.0
"""How long closing a store waits for queued writes to commit (then they fail with
``StoreClosed``; their callers never saw an acknowledgement)."""

RETENTION_INTERVAL = 3600.0
"""Seconds between two retention passes (the first runs when the store opens)."""

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _engine_for(
    location: str,
    *,
    on_health: Callable[[StoreHealth], None] | None,
    flush_seconds: float,
) -> AbstractAsyncContextManager[Any]:
    if location.startswith(_POSTGRES_SCHEMES):
        # NOTE: imported on use: the PostgreSQL driver is an optional dependency.
        try:
            postgres = importlib.import_module("vega_trio.store._postgres")
        except ModuleNotFoundError as exc:
            if exc.name not in ("vega_trio.store._postgres", "psycopg"):
                raise
            raise StoreOpenError(
                f"cannot open {redact(location)}: the PostgreSQL engine is not available "
                f"({exc.name} is not installed); install vega-trio[postgres] or use a "
                "SQLite file",
                location=redact(location),
                kind="invalid",
            ) from exc
        engine: AbstractAsyncContextManager[Any] = postgres.open_postgres(
            location, on_health=on_health, flush_seconds=flush_seconds
        )
        return engine
    from ._sqlite import open_sqlite

    if location.startswith("sqlite://"):
        path = location.removeprefix("sqlite://")
        if not path.startswith("/"):
            raise StoreOpenError(
                f"{location!r} is not a SQLite URL: write sqlite:///relative.db, "
                "sqlite:////absolute/path.db or just the path",
                location=location,
                kind="invalid",
            )
        path = path[1:] or ":memory:"
        return open_sqlite(path, on_health=on_health, flush_seconds=flush_seconds)
    if "://" in location or not location:
        raise StoreOpenError(
            f"cannot open a store at {redact(location)!r}: use a file path, sqlite:///PATH, "
            "':memory:' or postgresql://user@host/db",
            location=redact(location),
            kind="invalid",
        )
    return open_sqlite(location, on_health=on_health, flush_seconds=flush_seconds)


@asynccontextmanager
async def open_store(
    location: str | os.PathLike[str],
    *,
    retention_days: float | None = None,
    on_health: Callable[[StoreHealth], None] | None = None,
    flush_seconds: float = DEFAULT_FLUSH_SECONDS,
) -> AsyncIterator[Store]:
    """Open the durable store at ``location`` (an async context manager).

    It creates the database or applies the missing schema migrations, starts the
    engine's writer and, on exit, flushes every queued write (for at most
    ``flush_seconds``) before it returns.

    Args:
        location: a SQLite file path, ``sqlite:///PATH`` (``sqlite:////abs/path``),
            ``":memory:"`` (a throwaway store) or ``postgresql://…``.
        retention_days: delete events, finished runs, finished processes and costs
            older than this many days, when the store opens and every hour after
            (``None``: keep everything).
        on_health: called (it must not block) with the store's new
            :class:`StoreHealth` whenever it turns ``degraded`` (writes failing and
            being retried), ``ok`` again, or ``closed`` — a server publishes
            ``store.degraded`` / ``store.recovered`` from it.
        flush_seconds: the bound on the shutdown flush.

    Raises:
        StoreOpenError: the database cannot be used (corrupt, another program's, a
            newer schema, read-only, unreachable, a malformed location); nothing in
            it was changed.
    """
    if retention_days is not None and not (math.isfinite(retention_days) and retention_days > 0):
        raise ValueError(
            f"retention_days={retention_days!r}: use a positive number of days, "
            "or None to keep everything"
        )
    engine = _engine_for(os.fspath(location), on_health=on_health, flush_seconds=flush_seconds)
    async with engine as store:
        if retention_days is None:
            yield store
            return
        # The first pass before the store is handed out (so what is expired is gone
        # when the server starts), bounded: on a failing disk it goes on in the
        # background instead of holding the start.
        with trio.move_on_after(flush_seconds):
            await _prune_once(store, retention_days)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(prune_loop, store, retention_days, first_delay=RETENTION_INTERVAL)
            )
            try:
                yield store
            finally:
                nursery.cancel_scope.cancel(reason="the store is closing")


async def prune_loop(store: Store, retention_days: float, *, first_delay: float = 0.0) -> None:
    """Apply the retention after ``first_delay`` seconds, then every
    :data:`RETENTION_INTERVAL` seconds (until cancelled)."""
    await trio.sleep(first_delay)
    while True:
        await _prune_once(store, retention_days)
        await trio.sleep(RETENTION_INTERVAL)


async def _prune_once(store: Store, retention_days: float) -> None:
    cutoff = time.time() - retention_days * 86400
    try:
        deleted = await store.prune(older_than=cutoff)
    except Exception as exc:  # the next pass tries again; the store reports its health
        log.warning("store: the retention pass failed: %s", redact(str(exc)))
    else:
        if any(deleted.values()):
            log.info("store: retention (%g days) deleted %s", retention_days, deleted)
