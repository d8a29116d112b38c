"""PostgreSQL going away and coming back: nothing acknowledged is lost, nothing is applied
twice, health says what is going on, reads recover, and shutdown stays bounded. A server
of their own (these tests stop it). The SIGKILL of a writer process is the contract
suite's test_kill_9_loses_nothing_acknowledged, which runs on PostgreSQL too."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import trio

from vega_trio._errors import StoreClosed, StoreError
from vega_trio.store import StoreHealth

from ._postgres_server import PostgresServer, postgres_missing_reason

psycopg = pytest.importorskip("psycopg")

from vega_trio.store._postgres import open_postgres  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """A server only these tests use (they stop and restart it)."""
    reason = postgres_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def url(server: PostgresServer) -> Iterator[str]:
    """A fresh database; the server is running again after the test, whatever happened."""
    yield server.create_database()
    if not server.pid_file.exists():
        server.start()


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def _until(predicate: Callable[[], bool]) -> None:
    """Poll a condition that no event signals (the store's health, a counter), for 30 s."""
    with trio.fail_after(30):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.02)


@pytest.mark.slow
async def test_server_going_away_mid_run_loses_nothing_acknowledged(
    server: PostgresServer, url: str
) -> None:
    """pg_ctl stop -m immediate while chat turns are being written, then start again:
    writes wait and are retried with backoff, health is degraded with the reason (password
    masked) and recovers, reads fail clearly meanwhile and work again after, every
    acknowledged turn is stored exactly once."""
    health: list[StoreHealth] = []
    acked: list[str] = []
    turns = 60
    with trio.fail_after(60):
        await _write_through_an_outage(server, url, health, acked, turns)
    assert [h.status for h in health] == ["degraded", "ok", "closed"]
    stored = _count(url, "SELECT count(*) FROM messages")
    distinct = _count(url, "SELECT count(DISTINCT message) FROM messages")
    assert stored == distinct == 4 * turns


async def _write_through_an_outage(
    server: PostgresServer, url: str, health: list[StoreHealth], acked: list[str], turns: int
) -> None:
    async with open_postgres(url, on_health=health.append, retry_max=0.2) as store:

        async def writer(task: int) -> None:
            for n in range(turns):
                await store.append_messages("a", f"u{task}", [{"content": f"{task}:{n}"}])
                acked.append(f"{task}:{n}")
                await trio.sleep(0.005)

        async with trio.open_nursery() as nursery:
            for _ in range(3):  # fill the reader pool: these connections die with the server
                nursery.start_soon(store.get_state, "anything")
        async with trio.open_nursery() as nursery:
            for task in range(4):
                nursery.start_soon(writer, task)
            await _until(lambda: len(acked) >= 20)
            await trio.to_thread.run_sync(server.stop, "immediate")
            await _until(lambda: store.health().status == "degraded")
            during = store.health()
            assert during.detail is not None
            assert server.password not in during.detail
            assert "***@127.0.0.1" in during.detail
            assert during.pending_writes >= 1
            with pytest.raises(StoreError) as info:
                await store.get_state("anything")
            assert server.password not in str(info.value)
            stalled = len(acked)
            await trio.sleep(0.5)
            assert len(acked) == stalled  # nothing is acknowledged while the server is away
            await trio.to_thread.run_sync(server.start)
        assert store.health().status == "ok"
        assert len(acked) == 4 * turns
        assert await store.get_state("anything") is None  # reads work again too


@pytest.mark.slow
async def test_reads_work_at_once_after_a_server_restart(server: PostgresServer, url: str) -> None:
    """Every pooled reader connection dies with the server: the first read after a restart
    still succeeds (the dead pool is dropped, not retried one connection at a time)."""
    with trio.fail_after(60):
        async with open_postgres(url, retry_max=0.2) as store:
            await store.put_state("k", 1)
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(store.get_state, "k")
            await trio.to_thread.run_sync(server.stop, "immediate")
            await trio.to_thread.run_sync(server.start)
            assert await store.get_state("k") == 1


@pytest.mark.slow
async def test_shutdown_while_the_server_is_away_is_bounded(
    server: PostgresServer, url: str
) -> None:
    """The server is down at shutdown: closing takes about flush_seconds, the waiting
    write fails with StoreClosed (its caller never heard "saved"), nothing hangs."""
    outcome: list[BaseException] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            async with open_postgres(url, flush_seconds=1.0, retry_max=0.2) as store:
                await store.put_state("before", 1)
                await trio.to_thread.run_sync(server.stop, "immediate")

                async def write() -> None:
                    try:
                        await store.put_state("after", 2)
                    except StoreClosed as exc:
                        outcome.append(exc)

                nursery.start_soon(write)
                await _until(lambda: store.health().status == "degraded")
                assert store.health().pending_writes == 1
                started = trio.current_time()
            closing = trio.current_time() - started
    assert closing < 10
    assert store.health().status == "closed"
    assert len(outcome) == 1 and "not acknowledged" in str(outcome[0])
    assert server.password not in str(outcome[0])
    await trio.to_thread.run_sync(server.start)
    assert _count(url, "SELECT count(*) FROM state") == 1
