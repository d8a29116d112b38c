"""SSE streams: /api/events (filters, ids, resume, heartbeat, lagged), detached chat
replies (a client that leaves does not stop them), and every stream ending on shutdown."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from vega_trio import Agent, open_orchestrator
from vega_trio.events import ProcessStarted
from vega_trio.serve import ServeConfig
from vega_trio.serve._app import _event_stream
from vega_trio.serve._state import ServerState
from vega_trio.testing import ScriptedLLM, Step

from ._helpers import (
    collect_events,
    leaving_a_stream_early,
    orchestrator_with_assistant,
    parse_sse,
    running_server,
)


async def _next_event(events, *, skip_comments: bool = True):
    async for event in events:
        if event.event or not skip_comments:
            return event
    raise AssertionError("the stream ended")


async def test_events_filters_by_type_prefix_and_agent_with_seq_ids() -> None:
    """?types=process.*&agent=a sends a's process events with id: = sequence number."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        with leaving_a_stream_early():
            async with srv.client.stream(
                "GET", "/api/events", params={"types": "process.*", "agent": "a"}
            ) as response:
                assert response.status_code == 200
                async with parse_sse(response) as events:
                    with trio.fail_after(10):
                        assert (
                            await _next_event(events, skip_comments=False)
                        ).comment == "connected"
                        await orch.spawn(Agent(name="b"))
                        proc = await orch.spawn(Agent(name="a"))
                        first = await _next_event(events)
        assert first.event == "process.started"
        assert first.json["type"] == "process.started"
        assert first.json["process_id"] == proc.id
        assert first.id == str(first.json["seq"])


async def test_last_event_id_resumes_after_that_sequence_number() -> None:
    """With event history, Last-Event-ID: n replays the kept events after n, then goes on live."""
    async with open_orchestrator(llm=ScriptedLLM.echo(), event_history=100) as orch:
        async with running_server(orch) as srv:
            procs = [await orch.spawn(Agent(name=f"w{i}")) for i in range(3)]
            started = [e for e in orch.events._ring if e.type == "process.started"]
            after = started[0].seq
            with leaving_a_stream_early():
                async with srv.client.stream(
                    "GET",
                    "/api/events",
                    params={"types": "process.started"},
                    headers={"Last-Event-ID": str(after)},
                ) as response:
                    async with parse_sse(response) as events:
                        with trio.fail_after(10):
                            got = [await _next_event(events) for _ in range(2)]
            assert [e.json["process_id"] for e in got] == [procs[1].id, procs[2].id]
            bad = await srv.client.get("/api/events", headers={"Last-Event-ID": "abc"})
            assert bad.status_code == 400


async def test_events_heartbeat_every_15_seconds_of_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A quiet /api/events stream sends `: heartbeat` after exactly heartbeat_interval seconds."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig())
        stream = _event_stream(state, None, None, None, None, None)
        assert await stream.__anext__() == b": connected\n\n"
        start = trio.current_time()
        assert await stream.__anext__() == b": heartbeat\n\n"
        assert trio.current_time() - start == 15.0
        state.begin_shutdown()
        final = await stream.__anext__()
        assert final.startswith(b"event: shutdown\n")
        await stream.aclose()


async def test_a_slow_events_client_gets_a_lagged_event_and_the_runtime_never_blocks() -> None:
    """A client that falls behind the shared event log loses its oldest events, counted and
    reported as one `lagged` event before the ones the log still holds."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig(event_buffer=3))
        stream = _event_stream(state, "process.started", None, None, None, None)
        await stream.__anext__()  # connected: subscribed from here on
        for i in range(5):
            orch.events.emit(ProcessStarted, process_id=f"p{i}", agent="x")
        # What is pending goes out in one write: the notice, then the kept events.
        texts = [part for part in (await stream.__anext__()).split(b"\n\n") if part]
        assert len(texts) == 4
        assert texts[0].startswith(b"event: lagged\n") and b'"missed":2' in texts[0]
        for i, text in enumerate(texts[1:], start=2):  # the log kept the latest three
            assert text.startswith(b"id: ") and b'"process_id":"p%d"' % i in text
        await stream.aclose()
        assert not state.event_log.readers and not orch.events._sinks


async def test_events_are_encoded_once_for_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many /api/events clients: each event is encoded (and redacted) once, and what is
    buffered for a client goes out in one write (B9's fan-out)."""
    from vega_trio.serve._fanout import Entry

    encoded: list[str] = []
    real = Entry._encode

    def counting(self: Entry) -> str:
        encoded.append(self.type)
        return real(self)

    monkeypatch.setattr(Entry, "_encode", counting)
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig())
        streams = [
            _event_stream(state, "process.started", None, None, None, None) for _ in range(5)
        ]
        for stream in streams:
            await stream.__anext__()  # connected
        for i in range(3):
            orch.events.emit(ProcessStarted, process_id=f"p{i}", agent="x")
        for stream in streams:
            chunk = await stream.__anext__()
            assert chunk.count(b"event: process.started\n") == 3
            await stream.aclose()
    assert encoded == ["process.started"] * 3


async def test_events_soon_after_a_write_are_coalesced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An event after a quiet spell goes out at once; events right after a write wait
    for the coalescing window and go out together in one write."""
    from vega_trio.serve._app import _COALESCE

    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        state = ServerState(orch, ServeConfig())
        stream = _event_stream(state, "process.started", None, None, None, None)
        await stream.__anext__()  # connected
        orch.events.emit(ProcessStarted, process_id="p0", agent="x")
        started = trio.current_time()
        first = await stream.__anext__()
        assert trio.current_time() == started  # at once
        assert first.count(b"event: process.started\n") == 1

        async def emit_later() -> None:
            for i in (1, 2, 3):
                await trio.sleep(_COALESCE / 10)
                orch.events.emit(ProcessStarted, process_id=f"p{i}", agent="x")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(emit_later)
            second = await stream.__anext__()
        assert trio.current_time() - started == pytest.approx(_COALESCE)
        assert second.count(b"event: process.started\n") == 3
        await stream.aclose()


async def test_a_client_that_leaves_mid_stream_does_not_stop_the_reply() -> None:
    """The reply runs on after its SSE client disconnects, completes, and is kept in the history."""
    llm = ScriptedLLM([Step.text("a long reply " * 5, chunk_size=3, chunk_delay=0.01)])
    llm.add(Step.text("second"))
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        with leaving_a_stream_early():
            async with srv.client.stream(
                "POST", "/api/agents/assistant/chat/stream", json={"message": "go"}
            ) as response:
                async with parse_sse(response) as events:
                    with trio.fail_after(10):
                        assert (await _next_event(events)).event == "text_delta"
        # The client is gone; the next message queues behind the first reply.
        with trio.fail_after(10):
            second = await srv.client.post("/api/agents/assistant/chat", json={"message": "again"})
        assert second.json()["response"] == "second"
        history = (await srv.client.get("/api/agents/assistant/chat")).json()["messages"]
        texts = [m for m in history if m["role"] == "assistant"]
        assert "a long reply " * 5 in str(texts[0])
        assert llm.open_streams == 0
        # and a reader can re-attach and replay the finished reply
        async with srv.client.stream("GET", "/api/agents/assistant/chat/stream") as replay:
            with trio.fail_after(10):
                replayed = await collect_events(replay)
        assert replayed[-1].event == "done"


async def test_shutdown_ends_every_stream_with_a_final_event() -> None:
    """On shutdown an /api/events stream ends with `shutdown` and a chat stream with one `error`."""
    llm = ScriptedLLM([Step.text("never finishes", delay=3600)])
    async with orchestrator_with_assistant(llm) as orch:
        async with running_server(orch) as srv:
            async with (
                srv.client.stream("GET", "/api/events") as ev_response,
                srv.client.stream(
                    "POST", "/api/agents/assistant/chat/stream", json={"message": "go"}
                ) as chat_response,
            ):
                async with parse_sse(ev_response) as events:
                    with trio.fail_after(10):
                        await _next_event(events, skip_comments=False)
                        srv.stop.set()
                        tail = [e async for e in events if e.event]
                        chat_events = await collect_events(chat_response)
            assert tail[-1].event == "shutdown"
            assert [e.event for e in chat_events] == ["error"]
            assert chat_events[0].json["error_class"] == "server_shutdown"


@pytest.mark.slow
async def test_many_clients_that_connect_and_vanish_leave_nothing_behind() -> None:
    """200 /api/events clients and 50 chat-stream clients leave at once: subscriptions close,
    every reply completes, and the server still answers."""
    llm = ScriptedLLM.echo()
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        baseline = orch.events.subscriber_count  # the server's own (the metrics collector)

        async def vanish(path: str, method: str, json: object = None) -> None:
            async with srv.client.stream(method, path, json=json) as response:
                async with parse_sse(response) as events:
                    await _next_event(events, skip_comments=False)

        with leaving_a_stream_early(), trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(200):
                    nursery.start_soon(vanish, "/api/events", "GET")
                for i in range(50):
                    nursery.start_soon(
                        vanish, f"/api/agents/assistant:{i}/chat/stream", "POST", {"message": "x"}
                    )
            # NOTE: the server notices a closed connection asynchronously: wait for the
            # condition (bounded by fail_after), not for a fixed time.
            while orch.events.subscriber_count > baseline:  # noqa: ASYNC110 - a condition in another process's hands
                await trio.sleep(0.01)
            for i in range(50):  # a second message queues behind the first reply
                url = f"/api/agents/assistant:{i}/chat"
                assert (await srv.client.post(url, json={"message": "y"})).status_code == 200
                roles = [m["role"] for m in (await srv.client.get(url)).json()["messages"]]
                assert roles == ["user", "assistant", "user", "assistant"]
        assert (await srv.client.get("/healthz")).json()["status"] == "ok"
        assert llm.open_streams == 0


async def test_the_history_names_the_reply_in_flight_for_a_client_that_did_not_send_it() -> None:
    """GET …/chat says which reply is still running (its user message), so another client
    (a second browser tab) can follow it with GET …/chat/stream; null before and after."""
    llm = ScriptedLLM([Step.text("a long reply " * 5, chunk_size=3, chunk_delay=0.05)])
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        before = (await srv.client.get("/api/agents/assistant/chat")).json()
        assert before["in_flight"] is None
        with leaving_a_stream_early():
            async with srv.client.stream(
                "POST", "/api/agents/assistant/chat/stream", json={"message": "go on"}
            ) as response:
                async with parse_sse(response) as events:
                    with trio.fail_after(10):
                        assert (await _next_event(events)).event == "text_delta"
        page = (await srv.client.get("/api/agents/assistant/chat")).json()
        assert page["in_flight"] == {"message": "go on"}
        async with srv.client.stream("GET", "/api/agents/assistant/chat/stream") as follow:
            with trio.fail_after(10):
                followed = await collect_events(follow)
        assert followed[-1].event == "done"
        after = (await srv.client.get("/api/agents/assistant/chat")).json()
        assert after["in_flight"] is None
        assert "a long reply " * 5 in str(after["messages"])
