"""The server's shared event log (``_fanout.py``): one consumer of the bus for every
``/api/events`` client and ``/api/ws`` subscription, each reading at its own position
with its own filters."""

from __future__ import annotations

import sqlite3
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import Agent, open_orchestrator
from vega_trio.events import ProcessStarted, ProcessStopped, RequestStarted
from vega_trio.serve import ServeConfig
from vega_trio.serve._fanout import Batch, EventFilter, LogReader
from vega_trio.serve._state import ServerState
from vega_trio.store import open_store
from vega_trio.testing import ScriptedLLM

from ._helpers import leaving_a_stream_early, parse_sse, running_server
from .test_ws import open_ws, receive, request


async def _take(reader: LogReader, state: ServerState) -> Batch:
    """The reader's next batch (a heartbeat never comes within a test's time)."""
    async with aclosing(reader.batches(state.orch, 3600)) as batches:
        batch = await batches.__anext__()
    assert batch is not None
    return batch


async def test_readers_with_different_filters_get_exactly_their_events_in_order() -> None:
    """Forty readers with four different filters each get exactly the events their
    filters accept, in order, from ONE sink on the bus (no subscription per reader)."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig())
        cases: list[tuple[dict[str, Any], Any]] = [
            ({"types": ["process.*"]}, lambda e: e.type.startswith("process.")),
            (
                {"types": ["process.started"], "agents": ["a"]},
                lambda e: e.type == "process.started" and e.agent == "a",
            ),
            (
                {"types": ["request.started", "process.stopped"], "processes": ["p1", "p2"]},
                lambda e: (
                    e.type in ("request.started", "process.stopped")
                    and e.process_id in ("p1", "p2")
                ),
            ),
            ({"runs": ["r1"]}, lambda e: e.run_id == "r1"),
        ]
        with open_readers(state, [f for f, _ in cases] * 10) as readers:
            assert orch.events.subscriber_count == 0 and len(orch.events._sinks) == 1
            emitted = []
            for i in range(30):
                kind = (ProcessStarted, ProcessStopped, RequestStarted)[i % 3]
                event = orch.events.emit(
                    kind,
                    process_id=f"p{i % 4}",
                    agent="ab"[i % 2],
                    run_id="r1" if i % 5 == 0 else None,
                )
                assert event is not None
                emitted.append(event)
            for index, reader in enumerate(readers):
                accepts = cases[index % 4][1]
                want = [e.seq for e in emitted if accepts(e)]
                assert want  # every filter matches something
                batch = await _take(reader, state)
                assert batch.missed == 0
                assert [e.seq for e in batch.entries] == want, cases[index % 4][0]
        assert not state.event_log.readers and not orch.events._sinks


async def test_readers_of_the_same_filters_share_one_filtered_batch_per_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The per-event work is per distinct filter, not per reader: 100 readers of two
    filters test each event twice, and the commit gate runs once for the batch."""
    calls = 0
    real = EventFilter.accepts

    def counting(self: EventFilter, entry: Any) -> bool:
        nonlocal calls
        calls += 1
        return real(self, entry)

    monkeypatch.setattr(EventFilter, "accepts", counting)
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig())
        gates: list[int] = []
        gate = state.event_log._gate

        async def counting_gate(seq: int) -> bool:
            gates.append(seq)
            return await gate(seq)

        state.event_log._gate = counting_gate
        with open_readers(state, [{"types": ["process.*"]}, {"agents": ["a"]}] * 50) as readers:
            for i in range(10):
                orch.events.emit(ProcessStarted, process_id=f"p{i}", agent="ab"[i % 2])
            sizes = {len((await _take(reader, state)).entries) for reader in readers}
        assert sizes == {10, 5}
        assert calls == 2 * 10
        assert gates == [10]  # once, for the newest event


async def test_a_reader_behind_the_log_gets_lagged_with_the_exact_count() -> None:
    """A reader that falls more than the log's size behind is told exactly how many
    events left the log unread, then gets the ones still kept; a reader that kept up
    loses nothing."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig(event_buffer=5))
        with open_readers(state, [{}, {}]) as (slow, quick):
            for i in range(4):
                orch.events.emit(ProcessStarted, process_id=f"p{i}")
            assert [e.process_id for e in (await _take(quick, state)).entries] == [
                f"p{i}" for i in range(4)
            ]
            for i in range(4, 12):
                orch.events.emit(ProcessStarted, process_id=f"p{i}")
            ahead = await _take(quick, state)
            assert ahead.missed == 3  # it was at p3: p4..p6 left the log before it read
            assert [e.process_id for e in ahead.entries] == [f"p{i}" for i in range(7, 12)]
            behind = await _take(slow, state)
            assert behind.missed == 7
            assert [e.process_id for e in behind.entries] == [f"p{i}" for i in range(7, 12)]
            assert behind.sse().startswith(b'event: lagged\ndata: {"type":"lagged","missed":7}')
            assert state.event_log.dropped_total == 10


async def test_resume_replays_the_store_then_the_history_then_the_log_without_gaps(
    tmp_path: Path,
) -> None:
    """Last-Event-ID older than the bus's history and the log: the store's events, then
    the history's, then the log's and live ones: every sequence number once, in order,
    each with its id only once it is in the file."""
    db = tmp_path / "fanout.db"
    async with (
        open_store(str(db)) as store,
        open_orchestrator(llm=ScriptedLLM.echo(), store=store, event_history=10) as orch,
        running_server(orch, ServeConfig(port=0, event_buffer=5)) as server,
    ):
        with orch.events.subscribe(types="*") as keep_log_cold:  # no reader: no log yet
            for i in range(30):
                orch.events.emit(ProcessStarted, process_id=f"old{i}")
            assert keep_log_cold.receive_nowait() is not None
        seqs: list[int] = []
        with trio.fail_after(20), leaving_a_stream_early():
            async with server.client.stream(
                "GET", "/api/events", headers={"Last-Event-ID": "3"}
            ) as response:
                async with parse_sse(response) as events:
                    async for event in events:
                        if event.comment == "connected":
                            for i in range(3):
                                orch.events.emit(ProcessStarted, process_id=f"new{i}")
                        if event.id is None:
                            continue
                        assert event.event != "lagged"
                        seq = int(event.id)
                        assert _stored(db, seq), f"event {seq} was sent before its commit"
                        seqs.append(seq)
                        if event.json["process_id"] == "new2":
                            break
        assert seqs == list(range(4, 34))


async def test_websocket_events_are_sent_only_once_committed(tmp_path: Path) -> None:
    """A WebSocket subscription's events carry only committed events (the same gate as
    the SSE ids): each is in the file when it arrives."""
    db = tmp_path / "ws.db"
    async with (
        open_store(str(db)) as store,
        open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch,
        running_server(orch) as server,
    ):
        async with open_ws(server) as ws:
            subscribe = {"op": "subscribe", "id": "s", "types": ["process.started"]}
            assert (await request(ws, subscribe))["kind"] == "subscribed"
            for i in range(20):
                await orch.spawn(Agent(name=f"w{i}"))
            with trio.fail_after(20):
                got = 0
                while got < 20:
                    message = await receive(ws)
                    if message["kind"] != "event":
                        continue
                    seq = message["event"]["seq"]
                    assert _stored(db, seq), f"event {seq} was sent before its commit"
                    got += 1


async def test_sse_clients_that_vanish_leave_no_reader_and_no_sink() -> None:
    """Fifty /api/events clients that connect and vanish mid-stream: the log loses every
    reader, leaves the bus (no sink, no subscription), and a new client reads again."""
    async with (
        open_orchestrator(llm=ScriptedLLM.echo()) as orch,
        running_server(orch) as server,
    ):
        baseline = orch.events.subscriber_count
        port = int(server.url.rsplit(":", 1)[1])

        async def client(i: int) -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            query = "" if i % 2 else "?types=process.*"
            head = f"GET /api/events{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            await stream.send_all(head.encode())
            seen = b""
            while b": connected" not in seen:
                seen += await stream.receive_some(65536)
            await stream.aclose()  # gone without a word

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(client, i)
            while orch.events._sinks:  # noqa: ASYNC110 - the server's side
                await orch.spawn(Agent(name="nudge"))  # a write finds the closed socket
                await trio.sleep(0.01)
        assert orch.events.subscriber_count == baseline
        with trio.fail_after(10), leaving_a_stream_early():
            async with server.client.stream("GET", "/api/events") as response:
                async with parse_sse(response) as events:
                    async for event in events:
                        if event.comment == "connected":
                            await orch.spawn(Agent(name="after"))
                        if event.event == "process.started":
                            assert event.json["agent"] == "after"
                            break


async def test_shutdown_ends_every_reader_with_a_final_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """begin_shutdown ends every /api/events stream with its final `shutdown` event and
    the log leaves the bus."""
    from vega_trio.serve._app import _event_stream

    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig())
        streams = [_event_stream(state, None, None, None, None, None) for _ in range(5)]
        for stream in streams:
            assert await stream.__anext__() == b": connected\n\n"
        finals: list[bytes] = []

        async def last(stream: Any) -> None:
            finals.append(await stream.__anext__())
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(last, stream)
            await trio.sleep(1)
            state.begin_shutdown()
        assert len(finals) == 5
        assert all(f.startswith(b"event: shutdown\n") for f in finals)
        assert not orch.events._sinks


# --------------------------------------------------------------------------- helpers
class open_readers:
    """Readers of the server's log with these filters, live from now."""

    def __init__(self, state: ServerState, filters: list[dict[str, Any]]) -> None:
        self.state = state
        self.filters = filters
        self._managers: list[Any] = []

    def __enter__(self) -> list[LogReader]:
        readers = []
        for f in self.filters:
            manager = self.state.read_events(**f)
            readers.append(manager.__enter__())
            self._managers.append(manager)
        return readers

    def __exit__(self, *exc: object) -> None:
        for manager in reversed(self._managers):
            manager.__exit__(None, None, None)


def _stored(db: Path, seq: int) -> bool:
    conn = sqlite3.connect(db)
    try:
        return bool(list(conn.execute("SELECT seq FROM events WHERE seq = ?", (seq,))))
    finally:
        conn.close()


async def test_an_event_after_a_quiet_spell_goes_out_at_once_even_after_heartbeats(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only writes pace the ticks: after heartbeats and a new client, an event after a
    quiet spell still goes out at once (no wait as long as the quiet spell)."""
    from vega_trio.serve._app import _event_stream

    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig())
        stream = _event_stream(state, None, None, None, None, None)
        assert await stream.__anext__() == b": connected\n\n"
        orch.events.emit(ProcessStarted, process_id="p0")
        assert b"p0" in await stream.__anext__()
        assert await stream.__anext__() == b": heartbeat\n\n"  # 15 s later
        late = _event_stream(state, None, None, None, None, None)
        assert await late.__anext__() == b": connected\n\n"

        async def emit_soon() -> None:
            await trio.sleep(1)
            orch.events.emit(ProcessStarted, process_id="p1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(emit_soon)
            started = trio.current_time()
            assert b"p1" in await stream.__anext__()
        assert trio.current_time() - started == pytest.approx(1)
        await late.aclose()
        await stream.aclose()
