"""Retention in the server (SPEC §12): ``ServeConfig(retention_days=...)``, ``vega-trio serve
--retention-days`` and the file's ``settings.store.retention_days`` prune the store while the
server runs — at start and every hour, in the background, never holding the server."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from vega_trio import Agent, open_orchestrator
from vega_trio._cli._serve import serve_command
from vega_trio.serve import ServeConfig, serve
from vega_trio.store import ProcessRecord, StoredEvent, open_store
from vega_trio.store._open import RETENTION_INTERVAL
from vega_trio.testing import ScriptedLLM

from ._helpers import running_server

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0


def _old_events(n: int, *, days_ago: float = 3) -> list[StoredEvent]:
    ts = time.time() - days_ago * DAY
    return [StoredEvent(seq=i, type="x.old", timestamp=ts, data={}) for i in range(1, n + 1)]


def _old_process(pid: str) -> ProcessRecord:
    ended = time.time() - 3 * DAY
    return ProcessRecord(
        id=pid, agent="a", status="completed", started_at=ended - 1, ended_at=ended
    )


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (in real time: the store works in threads) until ``check()`` holds."""
    for _ in range(1000):
        if await check():
            return
        await trio.to_thread.run_sync(time.sleep, 0.01)
    raise AssertionError("the condition did not come true within 10 s")


async def test_a_serving_server_prunes_at_start_and_every_hour(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """Rows past the retention go at start; one that expires while the server runs stays
    until the next hourly pass, then goes; fresh rows stay. The clock moves only when the
    test moves it (an autojumping clock jumps while the store's threads work, so the
    hourly pass could run before the test looked)."""
    clock = mock_clock
    db = tmp_path / "serve.db"
    async with open_store(str(db)) as store:
        await store.append_events(_old_events(5))
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            orch.agents.define(Agent(name="assistant"), source="builtin")
            config = ServeConfig(port=0, retention_days=1)
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: serve(
                        orch, config, shutdown_trigger=stop.wait, task_status=task_status
                    )
                )

                async def old_events_gone() -> bool:
                    return [e.type for e in await store.read_events(types=["x.*"])] == []

                async def late_gone() -> bool:
                    return await store.get_process("late") is None

                await _eventually(old_events_gone)  # the first pass, in the background
                assert orch.persistence is not None
                await orch.persistence.flush()
                assert await store.last_event_seq() > 5  # the server's own events stay
                await store.save_processes([_old_process("late")])
                clock.jump(RETENTION_INTERVAL - 10)
                await trio.testing.wait_all_tasks_blocked()
                assert not await late_gone()  # not the hour yet
                clock.jump(20)
                await _eventually(late_gone)
                stop.set()


async def test_a_slow_prune_never_holds_the_server(tmp_path: Path) -> None:
    """While a retention pass is still running (here: never ends), the server has started
    and answers requests, chat turns included (committed as usual)."""
    db = tmp_path / "serve.db"
    async with open_store(str(db)) as store:
        started = trio.Event()

        async def endless_prune(*, older_than: float) -> dict[str, int]:
            started.set()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        store.prune = endless_prune  # type: ignore[method-assign]
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            orch.agents.define(Agent(name="assistant"), source="builtin")
            config = ServeConfig(port=0, retention_days=30)
            with trio.fail_after(10):
                async with running_server(orch, config) as srv:
                    await started.wait()
                    assert (await srv.client.get("/healthz")).status_code == 200
                    reply = await srv.client.post(
                        "/api/agents/assistant/chat", json={"message": "hi"}
                    )
                    assert reply.status_code == 200
                    assert len(await store.load_conversation("assistant", None)) == 2


def test_retention_days_must_be_positive() -> None:
    """ServeConfig refuses a retention of 0, a negative one, inf or nan, naming the field."""
    for bad in (0, -1, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="retention_days"):
            ServeConfig(retention_days=bad)
    assert ServeConfig(retention_days=0.5).retention_days == 0.5


async def test_retention_days_without_a_store_is_a_usage_error() -> None:
    """``--retention-days`` with ``--no-db`` exits 2 and says why, before it listens."""
    err = io.StringIO()
    status = await serve_command(
        None, addr="127.0.0.1:0", db=None, retention_days=7, llm="scripted", env={}, err=err
    )
    assert status == 2
    assert "--retention-days" in err.getvalue() and "--no-db" in err.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "settings"])
async def test_vega_trio_serve_prunes_its_db(tmp_path: Path, how: str) -> None:
    """`vega-trio serve --retention-days` (or the file's settings.store.retention_days)
    deletes what is older from --db as it starts, and keeps the rest."""
    db = tmp_path / "serve.db"
    async with open_store(str(db)) as store:
        await store.append_events(_old_events(4, days_ago=10))
        fresh = time.time() - 1 * DAY
        await store.append_events([StoredEvent(seq=5, type="x.fresh", timestamp=fresh, data={})])
    doc = tmp_path / "app.vega.yaml"
    settings = "settings:\n  store:\n    retention_days: 7\n" if how == "settings" else ""
    doc.write_text(f"agents:\n  helper:\n    system: Hi.\n{settings}")
    flag = ["--retention-days", "7"] if how == "flag" else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VEGA_TOKEN", None)
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "vega_trio",
            "serve",
            str(doc),
            "--addr",
            "127.0.0.1:0",
            "--db",
            str(db),
            "--llm",
            "scripted",
            *flag,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        with trio.fail_after(30):
            while "x.old" in _types(db):  # noqa: ASYNC110 - another process's file
                await trio.sleep(0.1)
        assert "x.fresh" in _types(db)
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10, shield=True):
                await proc.wait()


def _types(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT DISTINCT type FROM events")}
    except sqlite3.OperationalError:  # busy while the server migrates: ask again
        return {"x.old"}
    finally:
        conn.close()
