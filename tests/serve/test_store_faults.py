"""The store's faults end to end through ``vega-trio serve`` (issue 13, "Bad input and
faults"): PostgreSQL going away while the server serves and coming back, a full disk
under SQLite (``PRAGMA max_page_count``, see _full_disk.py), and a stop while the store
is down. The server keeps serving, /healthz says ``degraded`` and then ``ok``,
``store.degraded`` / ``store.recovered`` are published, nothing acknowledged is lost,
and SIGTERM never hangs."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx2
import pytest
import trio

from vega_trio.store import open_store

from ..store._postgres_server import PostgresServer, postgres_missing_reason
from ._helpers import leaving_a_stream_early, parse_sse, vega_serve_process

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server only these tests use (they stop and start it)."""
    reason = postgres_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[test]'")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(own_postgres: PostgresServer) -> Iterator[str]:
    """A fresh database; the server runs again after the test, whatever happened."""
    yield own_postgres.create_database()
    if not own_postgres.pid_file.exists():
        own_postgres.start()


@attrs.define
class Traffic:
    """Chat turns sent one after another, and the store events seen on /api/events."""

    client: httpx2.AsyncClient
    acknowledged: list[str] = attrs.field(factory=list)
    failed: list[int] = attrs.field(factory=list)  # statuses of turns not acknowledged
    store_events: list[tuple[str, str | None]] = attrs.field(factory=list)  # type, id

    async def chat(self) -> None:
        for i in range(100_000):
            text = f"turn {i}"
            response = await self.client.post(
                "/api/agents/assistant:faults/chat", json={"message": text}
            )
            if response.status_code == 200:
                self.acknowledged.append(text)
            else:
                self.failed.append(response.status_code)
            await trio.sleep(0.01)

    async def watch(self) -> None:
        async with self.client.stream("GET", "/api/events", params={"type": "store.*"}) as r:
            async with parse_sse(r) as events:
                async for event in events:
                    if event.event:
                        self.store_events.append((event.event, event.id))

    async def health(self) -> dict[str, Any]:
        response = await self.client.get("/healthz")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def until(self, status: str) -> dict[str, Any]:
        """Poll /healthz (no event says it changed) until its status is ``status``."""
        with trio.fail_after(30):
            while (health := await self.health())["status"] != status:  # noqa: ASYNC110
                await trio.sleep(0.05)
        return health

    async def until_acknowledged(self, count: int) -> None:
        with trio.fail_after(30):
            while len(self.acknowledged) < count:  # noqa: ASYNC110 - a counter, no event
                await trio.sleep(0.02)


@asynccontextmanager
async def traffic_on(proc: trio.Process, url: str) -> AsyncIterator[Traffic]:
    """Chat turns and an event watcher against the server for the block; then SIGTERM,
    which must end the server (exit 0) within 30 s."""
    async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
        traffic = Traffic(client)
        with leaving_a_stream_early():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic.watch)
                nursery.start_soon(traffic.chat)
                yield traffic
                nursery.cancel_scope.cancel()
    proc.send_signal(signal.SIGTERM)
    with trio.fail_after(30):
        await proc.wait()
    assert proc.returncode == 0


async def _stored_turns(location: str) -> list[str]:
    async with open_store(location) as store:
        conversation = await store.load_conversation("assistant", "faults")
    return [m["content"][0]["text"] for m in conversation if m["role"] == "user"]  # type: ignore[index]


async def _through_an_outage(
    location: str, cwd: Path, down: Any, up: Any, program: tuple[str, ...], env: dict[str, str]
) -> Traffic:
    async with vega_serve_process(
        ["--llm", "scripted", "--db", location], cwd=cwd, env=env, program=program
    ) as (proc, url):
        async with traffic_on(proc, url) as traffic:
            await traffic.until_acknowledged(5)
            await down()
            health = await traffic.until("degraded")
            assert health["store"]["status"] == "degraded" and health["store"]["detail"]
            stalled = len(traffic.acknowledged)
            await trio.sleep(0.5)
            assert len(traffic.acknowledged) <= stalled + 1  # the one in flight, at most
            # the event says so while the store is down, not only once it is back
            with trio.fail_after(10):
                while "store.degraded" not in {t for t, _ in traffic.store_events}:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await up()
            await traffic.until("ok")
            await traffic.until_acknowledged(stalled + 5)
            with trio.fail_after(10):
                while [t for t, _ in traffic.store_events][:2] != [  # noqa: ASYNC110
                    "store.degraded",
                    "store.recovered",
                ]:
                    await trio.sleep(0.05)
    return traffic


@pytest.mark.slow
async def test_postgresql_going_away_and_back_while_serving(
    tmp_path: Path, own_postgres: PostgresServer, pg_url: str
) -> None:
    """PostgreSQL stops (immediate) under a serving ``vega-trio serve`` and starts again:
    /healthz degraded then ok, store.degraded then store.recovered on /api/events, every
    acknowledged turn stored once, and SIGTERM exits 0."""
    traffic = await _through_an_outage(
        pg_url,
        tmp_path,
        down=lambda: trio.to_thread.run_sync(own_postgres.stop, "immediate"),
        up=lambda: trio.to_thread.run_sync(own_postgres.start),
        program=("-m", "vega_trio"),
        env={},
    )
    stored = await _stored_turns(pg_url)
    assert [t for t in stored if t in set(traffic.acknowledged)] == traffic.acknowledged
    assert len(stored) == len(set(stored))


@pytest.mark.slow
async def test_a_full_disk_under_sqlite_while_serving(tmp_path: Path) -> None:
    """The disk fills (max_page_count) under a serving ``vega-trio serve`` and frees
    again: /healthz degraded ("full") then ok, store.degraded then store.recovered, every
    acknowledged turn stored, SIGTERM exits 0, the file intact."""
    flag = tmp_path / "disk-is-full"
    db = tmp_path / "serve.db"

    async def fill() -> None:  # noqa: ASYNC124 - the helper takes async actions
        flag.touch()

    async def free() -> None:  # noqa: ASYNC124 - the helper takes async actions
        flag.unlink()

    traffic = await _through_an_outage(
        str(db),
        tmp_path,
        down=fill,
        up=free,
        program=(str(HERE / "_full_disk.py"),),
        env={"VEGA_TEST_DISK_FULL": str(flag)},
    )
    stored = await _stored_turns(str(db))
    assert [t for t in stored if t in set(traffic.acknowledged)] == traffic.acknowledged


async def _stop_while_down(
    location: str, cwd: Path, down: Any, program: tuple[str, ...], env: dict[str, str]
) -> None:
    async with vega_serve_process(
        ["--llm", "scripted", "--db", location], cwd=cwd, env=env, program=program
    ) as (proc, url):
        async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
            traffic = Traffic(client)
            response = await client.post(
                "/api/agents/assistant:faults/chat", json={"message": "before"}
            )
            assert response.status_code == 200
            await down()
            outcome: list[int] = []

            async def turn() -> None:
                try:
                    response = await client.post(
                        "/api/agents/assistant:faults/chat",
                        json={"message": "during " + "x" * 100_000},  # needs new pages
                    )
                    outcome.append(response.status_code)
                except httpx2.HTTPError:
                    outcome.append(0)  # the connection closed: not acknowledged either

            async with trio.open_nursery() as nursery:
                nursery.start_soon(turn)
                await traffic.until("degraded")
                proc.send_signal(signal.SIGTERM)
                # the replies' grace (5 s), then the store's flush (10 s), once: no hang
                with trio.fail_after(5 + 10 + 7):
                    await proc.wait()
        assert outcome and outcome[0] != 200, outcome  # "during" was never acknowledged
    assert proc.returncode == 0


@pytest.mark.slow
async def test_sigterm_with_postgresql_down_does_not_hang(
    tmp_path: Path, own_postgres: PostgresServer, pg_url: str
) -> None:
    """PostgreSQL is down and a turn waits for its commit: SIGTERM still ends the server
    within the flush bound, and the waiting turn was not acknowledged."""
    await _stop_while_down(
        pg_url,
        tmp_path,
        down=lambda: trio.to_thread.run_sync(own_postgres.stop, "immediate"),
        program=("-m", "vega_trio"),
        env={},
    )
    await trio.to_thread.run_sync(own_postgres.start)
    assert await _stored_turns(pg_url) == ["before"]


@pytest.mark.slow
async def test_sigterm_on_a_full_disk_does_not_hang(tmp_path: Path) -> None:
    """The disk is full and a turn waits for its commit: SIGTERM still ends the server
    within the flush bound, and the waiting turn was not acknowledged."""
    flag = tmp_path / "disk-is-full"
    db = tmp_path / "serve.db"

    async def fill() -> None:  # noqa: ASYNC124 - the helper takes async actions
        flag.touch()

    await _stop_while_down(
        str(db),
        tmp_path,
        down=fill,
        program=(str(HERE / "_full_disk.py"),),
        env={"VEGA_TEST_DISK_FULL": str(flag)},
    )
    assert await _stored_turns(str(db)) == ["before"]  # the big one was not stored
