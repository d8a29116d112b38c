"""The server on a real SQLite store (SPEC §10.1, §12): acknowledged means committed
(a chat response, an SSE event's ``id:``), and after a restart on the same file what it
shows comes from the store — finished processes, conversations, costs, old events."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from vega_trio import Agent, Orchestrator, open_orchestrator
from vega_trio._cli._serve import serve_command
from vega_trio.serve import ServeConfig
from vega_trio.store import StoreHealth, open_store
from vega_trio.testing import ScriptedLLM

from ._helpers import leaving_a_stream_early, parse_sse, running_server


def rows(db: Path, sql: str, *params: Any) -> list[Any]:
    """Read the file through a connection of its own (what another process would see)."""
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


@asynccontextmanager
async def orchestrator_on(db: Path, llm: ScriptedLLM | None = None) -> AsyncIterator[Orchestrator]:
    async with (
        open_store(str(db)) as store,
        open_orchestrator(llm=llm or ScriptedLLM.echo(), store=store, event_history=50) as orch,
    ):
        orch.agents.define(Agent(name="assistant", model="test-model"), source="builtin")
        yield orch


async def test_a_chat_response_arrives_only_after_its_turn_is_committed(tmp_path: Path) -> None:
    """Right when each chat response arrives, another connection sees both messages
    (even with a store that takes its time to commit)."""
    db = tmp_path / "serve.db"
    async with orchestrator_on(db) as orch, running_server(orch) as server:
        store = orch.config.store
        assert store is not None
        append = store.append_messages

        async def slow_append(*args: Any) -> None:
            await trio.sleep(0.2)
            await append(*args)

        store.append_messages = slow_append  # type: ignore[method-assign]
        for i in range(5):
            response = await server.client.post(
                "/api/agents/assistant:7/chat", json={"message": f"m{i}"}
            )
            assert response.status_code == 200
            stored = rows(
                db,
                "SELECT message FROM messages WHERE agent = ? AND user_key = ? ORDER BY position",
                "assistant",
                "=7",  # the store's key of user "7"
            )
            assert len(stored) == 2 * (i + 1)
            assert json.loads(stored[-2][0])["content"][0]["text"] == f"m{i}"


async def test_a_streamed_reply_ends_with_done_only_after_its_turn_is_committed(
    tmp_path: Path,
) -> None:
    """The final ``done`` event of a streamed chat is sent after the commit."""
    db = tmp_path / "serve.db"
    async with orchestrator_on(db) as orch, running_server(orch) as server:
        async with server.client.stream(
            "POST", "/api/agents/assistant/chat/stream", json={"message": "hello"}
        ) as response:
            done = False
            async with parse_sse(response) as events:
                async for event in events:
                    if event.event == "done":
                        stored = rows(db, "SELECT count(*) FROM messages WHERE agent = 'assistant'")
                        assert stored == [(2,)]
                        done = True
            assert done


async def test_an_event_is_sent_with_its_id_only_after_it_is_committed(tmp_path: Path) -> None:
    """Every ``/api/events`` event with an ``id:`` is already in the file when it arrives."""
    db = tmp_path / "serve.db"
    async with orchestrator_on(db) as orch, running_server(orch) as server:
        seen: list[int] = []
        with trio.fail_after(20), leaving_a_stream_early():
            async with server.client.stream("GET", "/api/events") as response:
                async with parse_sse(response) as events:
                    chatted = False
                    async for event in events:
                        if event.comment == "connected" and not chatted:
                            chatted = True
                            server.nursery.start_soon(
                                _post, server, "/api/agents/assistant/chat", {"message": "hi"}
                            )
                        if event.id is None:
                            continue
                        seq = int(event.id)
                        assert rows(db, "SELECT seq FROM events WHERE seq = ?", seq) == [(seq,)]
                        seen.append(seq)
                        if event.event == "request.finished":
                            break
        assert len(seen) >= 3


async def _post(server: Any, path: str, body: dict[str, Any]) -> None:
    response = await server.client.post(path, json=body)
    assert response.status_code == 200, response.text


async def test_after_a_restart_the_server_shows_what_the_store_kept(tmp_path: Path) -> None:
    """A second server on the same file lists the first one's (finished) processes, its
    conversations and costs, replays its events after an old Last-Event-ID with their
    ids and continues their numbering; the session goes on with its history; clearing
    the chat clears the store."""
    db = tmp_path / "serve.db"
    async with orchestrator_on(db) as orch, running_server(orch) as server:
        await _post(server, "/api/agents/assistant:7/chat", {"message": "one"})
        await _post(server, "/api/agents/assistant:7/chat", {"message": "two"})
        first_ids = {
            p["id"] for p in (await server.client.get("/api/processes")).json()["processes"]
        }
    last_of_first = rows(db, "SELECT max(seq) FROM events")[0][0]
    assert len(first_ids) == 1 and last_of_first > 5

    llm = ScriptedLLM.echo()
    async with orchestrator_on(db, llm) as orch, running_server(orch) as server:
        client = server.client
        listing = (await client.get("/api/processes")).json()
        old = [p for p in listing["processes"] if p["id"] in first_ids]
        assert listing["total"] == 1 and old[0]["status"] == "stopped"
        assert old[0]["metrics"]["llm_calls"] == 2
        (old_id,) = first_ids
        assert (await client.get(f"/api/processes/{old_id}")).json()["agent"] == "assistant"
        assert (await client.get("/api/processes?status=running")).json()["total"] == 0

        history = (await client.get("/api/agents/assistant:7/chat")).json()
        assert history["total"] == 4
        assert [m["content"][0]["text"] for m in history["messages"]] == [
            "one",
            "one",
            "two",
            "two",
        ]

        costs = (await client.get("/api/costs")).json()
        assert costs["by"]["agent"]["assistant"]["calls"] == 2
        assert costs["by"]["model"]["test-model"]["calls"] == 2

        # Last-Event-ID older than the new bus's (empty) history: the store replays it.
        replayed: list[tuple[int, str]] = []
        with trio.fail_after(20), leaving_a_stream_early():
            async with client.stream(
                "GET", "/api/events", headers={"Last-Event-ID": "2"}
            ) as response:
                async with parse_sse(response) as events:
                    async for event in events:
                        assert event.event != "lagged"
                        if event.id is not None:
                            replayed.append((int(event.id), event.event))
                        if len(replayed) == last_of_first - 2 + 1:
                            break
        seqs = [s for s, _ in replayed]
        assert seqs == list(range(3, last_of_first + 2))  # old ones, then the new run's first
        assert "process.stopped" in {k for s, k in replayed if s <= last_of_first}

        await _post(server, "/api/agents/assistant:7/chat", {"message": "three"})
        user_texts = [m.text for m in llm.requests[0].messages if m.role == "user"]
        assert user_texts == ["one", "two", "three"]
        assert (await client.get("/api/processes")).json()["total"] == 2

        cleared = await client.delete("/api/agents/assistant:7/chat")
        assert cleared.json() == {"cleared": True}
    assert rows(db, "SELECT count(*) FROM messages WHERE user_key = '=7'") == [(0,)]


async def test_healthz_reports_the_store(tmp_path: Path) -> None:
    """/healthz has the store's engine and status (ok while its writes commit)."""
    async with orchestrator_on(tmp_path / "serve.db") as orch, running_server(orch) as server:
        health = (await server.client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["store"]["engine"] == "sqlite" and health["store"]["status"] == "ok"


async def test_serve_refuses_to_start_on_a_store_it_cannot_open(tmp_path: Path) -> None:
    """``vega-trio serve --db`` on a file that is not a database exits 2 with the reason,
    before it listens, and leaves the file as it was."""
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"these are my notes, not a database" * 100)
    err = io.StringIO()
    status = await serve_command(
        None, addr="127.0.0.1:0", db=str(bad), llm="scripted", env={}, err=err
    )
    assert status == 2
    assert "cannot open the store --db" in err.getvalue() and "notes.db" in err.getvalue()
    assert bad.read_bytes() == b"these are my notes, not a database" * 100


async def test_a_degraded_store_is_reported_as_an_event_and_on_healthz(tmp_path: Path) -> None:
    """While the store says its writes fail (and are retried), ``store.degraded`` is
    published once and /healthz answers 200 ``degraded`` with the reason; when it commits
    again, ``store.recovered``."""
    async with orchestrator_on(tmp_path / "serve.db") as orch, running_server(orch) as server:
        store = orch.config.store
        assert store is not None
        healthy = store.health()
        sick = StoreHealth(status="degraded", engine="sqlite", detail="disk full", pending_writes=3)
        with orch.subscribe(types="store.*") as sub:
            store.health = lambda: sick  # type: ignore[method-assign]
            with trio.fail_after(10):
                degraded = await sub.receive()
            response = await server.client.get("/healthz")
            store.health = lambda: healthy  # type: ignore[method-assign]
            with trio.fail_after(10):
                recovered = await sub.receive()
    assert degraded.type == "store.degraded" and degraded.detail == "disk full"  # type: ignore[union-attr]
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["store"]["detail"] == "disk full"
    assert recovered.type == "store.recovered"


async def test_store_degraded_reaches_the_event_stream_while_the_store_is_down(
    tmp_path: Path,
) -> None:
    """The store's writes fail (read-only writer): ``store.degraded`` is on /api/events
    at once, without an id (it cannot be committed yet), not only once the store is
    back; heartbeats go on meanwhile; after it recovers, the next events carry their ids
    again and none is sent twice."""
    config = ServeConfig(port=0, heartbeat_interval=0.3)
    async with (
        orchestrator_on(tmp_path / "serve.db") as orch,
        running_server(orch, config) as server,
    ):
        store: Any = orch.config.store
        seen: list[tuple[str, str | None]] = []
        degraded = trio.Event()
        heartbeats_while_down = 0

        async def watch() -> None:
            async with server.client.stream("GET", "/api/events") as response:
                async with parse_sse(response) as events:
                    async for event in events:
                        if event.event:
                            seen.append((event.event, event.id))
                        if event.event == "store.degraded":
                            degraded.set()
                        if event.comment == "heartbeat" and degraded.is_set():
                            nonlocal heartbeats_while_down
                            heartbeats_while_down += 1

        with leaving_a_stream_early():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await store._on_writer(lambda c: c.execute("PRAGMA query_only = ON"))
                orch.agents.define(Agent(name="other", model="test-model"))  # an event
                with trio.fail_after(10):
                    await degraded.wait()
                with trio.fail_after(10):
                    while heartbeats_while_down < 2:  # noqa: ASYNC110
                        await trio.sleep(0.05)
                assert store.health().status == "degraded"  # still down
                await store._on_writer(lambda c: c.execute("PRAGMA query_only = OFF"))
                with trio.fail_after(10):
                    while not any(t == "store.recovered" for t, _ in seen):  # noqa: ASYNC110
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
    assert ("store.degraded", None) in seen
    ids = [i for _, i in seen if i is not None]
    assert len(ids) == len(set(ids))  # none twice
    assert [t for t, _ in seen].count("store.degraded") == 1


async def test_stats_with_a_store_are_described_by_the_openapi_document(tmp_path: Path) -> None:
    """With a store, /api/stats adds the restarts per agent; the document describes it
    (the response check of conftest.py failed it as an unexpected property)."""
    async with orchestrator_on(tmp_path / "serve.db") as orch, running_server(orch) as server:
        stats = await server.client.get("/api/stats")
    assert stats.status_code == 200
    assert stats.json()["restarts_by_agent"] == {}
