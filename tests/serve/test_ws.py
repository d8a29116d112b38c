"""/api/ws over a real Hypercorn with trio-websocket as the client: subscriptions with
filters and replay, chat both ways (re-attachable over SSE), cancel, bad messages that
leave the connection open, the handshake's token/Host/Origin checks, a slow client that
never blocks the runtime, vanishing clients that leave nothing behind, and shutdown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

from vega_trio import Agent, open_orchestrator
from vega_trio.events import ProcessStarted
from vega_trio.serve import ServeConfig
from vega_trio.testing import ScriptedLLM, Step

from ._helpers import (
    Running,
    collect_events,
    event_log_of,
    orchestrator_with_assistant,
    running_server,
)

TOKEN = "ws-token-for-tests-0123456789abcdef"


@asynccontextmanager
async def open_ws(
    srv: Running,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    message_queue_size: int = 1,
) -> AsyncIterator[WebSocketConnection]:
    """A connection to the server's /api/ws, past its `hello` message.

    NOTE: over a TCP stream of our own, closed at the end: trio-websocket leaves its
    socket open when the server closes the connection (1001, 1009)."""
    port = int(srv.url.rsplit(":", 1)[1])
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(10):
                ws = await wrap_client_stream(
                    nursery,
                    stream,
                    f"127.0.0.1:{port}",
                    "/api/ws",
                    subprotocols=subprotocols,
                    extra_headers=extra,
                    message_queue_size=message_queue_size,
                )
                hello = await receive(ws)
            assert hello["kind"] == "hello" and hello["protocol"] == "vega.v1"
            try:
                yield ws
            finally:
                with trio.move_on_after(10) as cleanup:
                    cleanup.shield = True
                    await ws.aclose()


async def send(ws: WebSocketConnection, message: Any) -> None:
    await ws.send_message(message if isinstance(message, str) else json.dumps(message))


async def receive(ws: WebSocketConnection) -> dict[str, Any]:
    return json.loads(await ws.get_message())  # type: ignore[no-any-return]


async def until(
    ws: WebSocketConnection, done: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Messages up to and including the first one ``done`` accepts."""
    got = []
    with trio.fail_after(10):
        while True:
            message = await receive(ws)
            got.append(message)
            if done(message):
                return got


async def request(ws: WebSocketConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send a message and wait for the next non-event message (its answer)."""
    await send(ws, message)
    with trio.fail_after(10):
        while True:
            answer = await receive(ws)
            if answer["kind"] not in ("event", "lagged", "chat"):
                return answer


def _started(messages: list[dict[str, Any]], sub: str) -> list[str]:
    return [
        m["event"]["agent"] for m in messages if m["kind"] == "event" and m["subscription"] == sub
    ]


async def test_subscriptions_filter_per_id_and_unsubscribe_stops_one() -> None:
    """Two subscriptions with their own filters get their own events, tagged with their
    id; after `unsubscribed` no event of that one comes, and its reader is gone."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        baseline = orch.events.subscriber_count
        async with open_ws(srv) as ws:
            sub_a = {"op": "subscribe", "id": "a", "types": ["process.*"], "agents": ["a"]}
            assert await request(ws, sub_a) == {"kind": "subscribed", "id": "a"}
            all_started = {"op": "subscribe", "id": 2, "types": ["process.started"]}
            assert await request(ws, all_started) == {"kind": "subscribed", "id": 2}
            log = event_log_of(orch)  # the server's one consumer of the bus
            assert len(log.readers) == 2 and orch.events.subscriber_count == baseline
            await orch.spawn(Agent(name="b"))
            proc = await orch.spawn(Agent(name="a"))
            got: list[dict[str, Any]] = []
            while _started(got, 2) != ["b", "a"] or not _started(got, "a"):
                got += await until(ws, lambda m: m["kind"] == "event")
            assert _started(got, 2) == ["b", "a"]
            first_a = next(m for m in got if m.get("subscription") == "a")
            assert first_a["event"]["type"] == "process.started"
            assert first_a["event"]["process_id"] == proc.id
            assert isinstance(first_a["event"]["seq"], int)

            answer = await request(ws, {"op": "unsubscribe", "id": "a"})
            assert answer == {"kind": "unsubscribed", "id": "a"}
            assert len(log.readers) == 1
            await orch.spawn(Agent(name="a"))
            after = await until(ws, lambda m: m.get("subscription") == 2)
            assert [m["subscription"] for m in after if m["kind"] == "event"] == [2]
            assert await request(ws, {"op": "ping", "id": "p"}) == {"kind": "pong", "id": "p"}
        with trio.fail_after(10):
            while log.readers or orch.events._sinks:  # noqa: ASYNC110 - the server's side
                await trio.sleep(0.01)


async def test_after_replays_the_kept_events_then_goes_on_live() -> None:
    """`after: n` replays the kept events after sequence number n, like Last-Event-ID."""
    async with open_orchestrator(llm=ScriptedLLM.echo(), event_history=100) as orch:
        async with running_server(orch) as srv:
            procs = [await orch.spawn(Agent(name=f"w{i}")) for i in range(3)]
            started = [e for e in orch.events._ring if e.type == "process.started"]
            async with open_ws(srv) as ws:
                subscribe = {
                    "op": "subscribe",
                    "id": "s",
                    "types": ["process.started"],
                    "after": started[0].seq,
                }
                assert (await request(ws, subscribe))["kind"] == "subscribed"
                replayed = [await receive(ws) for _ in range(2)]
                live = await orch.spawn(Agent(name="w3"))
                (last,) = await until(ws, lambda m: m["kind"] == "event")
            ids = [m["event"]["process_id"] for m in [*replayed, last]]
            assert ids == [procs[1].id, procs[2].id, live.id]


async def test_each_subscription_gets_its_own_lagged_notice() -> None:
    """A subscription behind the event log loses its oldest events and is told how many,
    by id."""
    config = ServeConfig(port=0, event_buffer=3)
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        async with open_ws(srv) as ws:
            for sub in ("x", "y"):
                subscribe = {"op": "subscribe", "id": sub, "types": ["process.started"]}
                assert (await request(ws, subscribe))["kind"] == "subscribed"
            for i in range(5):  # no checkpoint: the forwarders cannot take any yet
                orch.events.emit(ProcessStarted, process_id=f"p{i}", agent="x")
            got = [await receive(ws) for _ in range(8)]
        for sub in ("x", "y"):
            mine = [m for m in got if m.get("subscription") == sub]
            assert mine[0] == {"kind": "lagged", "subscription": sub, "missed": 2}
            assert [m["event"]["process_id"] for m in mine[1:]] == ["p2", "p3", "p4"]


async def test_a_client_that_stops_reading_never_blocks_the_runtime() -> None:
    """A client that stops reading fills only its own buffers: the runtime and other
    requests go on, its subscription drops and later says how many (nothing lost silently)."""
    config = ServeConfig(port=0, event_buffer=8, ws_send_buffer=4)
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        async with open_ws(srv, message_queue_size=1) as ws:
            subscribe = {"op": "subscribe", "id": "s", "types": ["process.started"]}
            assert (await request(ws, subscribe))["kind"] == "subscribed"
            log = event_log_of(orch)
            payload = "a word " * 3000
            emitted = 0
            with trio.fail_after(60):
                while log.dropped_total == 0:  # TCP buffers, outbox, then drops
                    orch.events.emit(ProcessStarted, process_id=f"p{emitted}", agent=payload)
                    emitted += 1
                    await trio.lowlevel.checkpoint()
                for _ in range(50):  # the runtime never waits for this client
                    orch.events.emit(ProcessStarted, process_id=f"p{emitted}", agent=payload)
                    emitted += 1
                # Other requests are served while this client is stuck.
                assert (await srv.client.get("/api/stats")).status_code == 200
                orch.events.emit(ProcessStarted, process_id="last", agent="last")
                emitted += 1
                received = missed = 0
                while True:
                    message = await receive(ws)
                    if message["kind"] == "lagged":
                        missed += message["missed"]
                    elif message["kind"] == "event":
                        received += 1
                        if message["event"]["process_id"] == "last":
                            break
            assert missed >= log.dropped_total > 0
            assert received + missed == emitted


async def test_chat_over_the_websocket_streams_tagged_events_and_reattaches_over_sse() -> None:
    """A chat request streams the §1.4 events tagged with its id, ending with `done`;
    the reply is kept like POST …/chat/stream's: GET …/chat/stream replays it."""
    llm = ScriptedLLM([Step.text("hello over the socket", chunk_size=5)])
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        async with open_ws(srv) as ws:
            chat = {"op": "chat", "id": "r1", "agent": "assistant:7", "message": "hi"}
            await send(ws, chat)
            got = await until(ws, lambda m: m["kind"] == "chat" and m["event"]["type"] == "done")
        assert {m["request_id"] for m in got} == {"r1"}
        assert {m["session"] for m in got} == {"assistant:7"}
        deltas = [m["event"]["delta"] for m in got if m["event"]["type"] == "text_delta"]
        assert "".join(deltas) == "hello over the socket"
        assert set(got[-1]["event"]["metrics"]) >= {"input_tokens", "output_tokens"}
        async with srv.client.stream("GET", "/api/agents/assistant:7/chat/stream") as replay:
            with trio.fail_after(10):
                replayed = await collect_events(replay)
        assert [e.json for e in replayed] == [m["event"] for m in got]
        history = (await srv.client.get("/api/agents/assistant:7/chat")).json()["messages"]
        assert [m["role"] for m in history] == ["user", "assistant"]


async def test_attach_replays_a_reply_asked_for_over_http() -> None:
    """`attach` re-attaches to a session's latest reply (here one started with POST)."""
    llm = ScriptedLLM([Step.text("from http")])
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        posted = await srv.client.post("/api/agents/assistant/chat", json={"message": "hi"})
        assert posted.json()["response"] == "from http"
        async with open_ws(srv) as ws:
            await send(ws, {"op": "attach", "id": 1, "agent": "assistant"})
            got = await until(ws, lambda m: m["kind"] == "chat" and m["event"]["type"] == "done")
            missing = await request(ws, {"op": "attach", "id": 2, "agent": "assistant:nobody"})
        assert got[-1]["event"]["type"] == "done" and {m["request_id"] for m in got} == {1}
        assert "".join(m["event"].get("delta", "") for m in got) == "from http"
        assert missing["error_class"] == "no_reply" and missing["status"] == 404


async def test_a_client_that_leaves_mid_chat_does_not_stop_the_reply() -> None:
    """The reply of a WebSocket that closes mid-stream completes and is kept."""
    llm = ScriptedLLM([Step.text("a long reply " * 5, chunk_size=3, chunk_delay=0.01)])
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        async with open_ws(srv) as ws:
            await send(ws, {"op": "chat", "id": "r", "agent": "assistant", "message": "go"})
            await until(ws, lambda m: m["kind"] == "chat")
        async with srv.client.stream("GET", "/api/agents/assistant/chat/stream") as replay:
            with trio.fail_after(10):
                replayed = await collect_events(replay)
        assert replayed[-1].event == "done"
        text = "".join(e.json["delta"] for e in replayed if e.event == "text_delta")
        assert text == "a long reply " * 5


async def test_cancel_ends_the_reply_with_an_error_event() -> None:
    """`cancel` stops a reply in flight: it ends with `error` (cancelled), acknowledged."""
    llm = ScriptedLLM([Step.text("never", delay=3600)])
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        async with open_ws(srv) as ws:
            await send(ws, {"op": "chat", "id": "r1", "agent": "assistant", "message": "go"})
            with trio.fail_after(10):
                while not llm.requests:  # noqa: ASYNC110 - the model call starts in the server
                    await trio.sleep(0.01)
            await send(ws, {"op": "cancel", "id": "r1"})
            got = await until(ws, lambda m: m["kind"] == "cancelled")
            if not any(m["kind"] == "chat" for m in got):
                got += await until(ws, lambda m: m["kind"] == "chat")
            again = await request(ws, {"op": "cancel", "id": "r1"})
        assert {"kind": "cancelled", "id": "r1", "cancelled": True} in got
        (final,) = [m["event"] for m in got if m["kind"] == "chat"]
        assert final["type"] == "error" and final["error_class"] == "cancelled"
        assert again["error_class"] == "unknown_request"
        assert llm.open_streams == 0


@pytest.mark.parametrize(
    ("message", "error_class", "status", "path"),
    [
        ("{not json", "bad_json", 400, None),
        ("[1, 2]", "validation_error", 422, "$"),
        ({"op": "nope"}, "unknown_op", 422, "op"),
        ({"id": 1}, "unknown_op", 422, "op"),
        ({"op": "subscribe"}, "validation_error", 422, "id"),
        ({"op": "subscribe", "id": True}, "validation_error", 422, "id"),
        ({"op": "subscribe", "id": "s", "types": "process.*"}, "validation_error", 422, "types"),
        ({"op": "subscribe", "id": "s", "types": ["a", 3]}, "validation_error", 422, "types[1]"),
        ({"op": "subscribe", "id": "s", "agents": [""]}, "validation_error", 422, "agents[0]"),
        ({"op": "subscribe", "id": "s", "after": "41"}, "validation_error", 422, "after"),
        ({"op": "subscribe", "id": "s", "after": -1}, "validation_error", 422, "after"),
        ({"op": "subscribe", "id": "s", "colour": 1}, "validation_error", 422, "colour"),
        ({"op": "unsubscribe", "id": "s"}, "unknown_subscription", 404, None),
        ({"op": "chat", "id": "r", "agent": "assistant"}, "validation_error", 422, "message"),
        ({"op": "chat", "id": "r", "agent": 5, "message": "hi"}, "validation_error", 422, "agent"),
        (
            {"op": "chat", "id": "r", "agent": "ghost", "message": "hi"},
            "agent_not_found",
            404,
            None,
        ),
        (
            {"op": "chat", "id": "r", "agent": "assistant:", "message": "x"},
            "validation_error",
            422,
            "agent",
        ),
        ({"op": "cancel", "id": "r"}, "unknown_request", 404, None),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_connection_stays_open(
    message: Any, error_class: str, status: int, path: str | None
) -> None:
    """Each bad message is answered with an `error` (class, status, field path, its id)
    and the same connection keeps working."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        async with open_ws(srv) as ws:
            error = await request(ws, message)
            assert await request(ws, {"op": "ping"}) == {"kind": "pong", "id": None}
    assert error["kind"] == "error"
    assert (error["error_class"], error["status"]) == (error_class, status)
    assert error["error"]
    if path is not None:
        assert error["fields"][0]["path"] == path
    if isinstance(message, dict) and isinstance(message.get("id"), str):
        assert error["id"] == message["id"]


async def test_duplicate_ids_and_too_many_streams_are_refused() -> None:
    """A subscription id in use is a 409; past ws_max_streams a subscribe or chat is a 429."""
    config = ServeConfig(port=0, ws_max_streams=2)
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        async with open_ws(srv) as ws:
            assert (await request(ws, {"op": "subscribe", "id": "a"}))["kind"] == "subscribed"
            dup = await request(ws, {"op": "subscribe", "id": "a"})
            assert dup["error_class"] == "duplicate_id" and dup["status"] == 409
            assert (await request(ws, {"op": "subscribe", "id": "b"}))["kind"] == "subscribed"
            full = await request(ws, {"op": "subscribe", "id": "c"})
            assert full["error_class"] == "too_many_streams" and full["status"] == 429
            chat = await request(
                ws, {"op": "chat", "id": "r", "agent": "assistant", "message": "x"}
            )
            assert chat["error_class"] == "too_many_streams"
            assert (await request(ws, {"op": "unsubscribe", "id": "b"}))["kind"] == "unsubscribed"
            assert (await request(ws, {"op": "subscribe", "id": "c"}))["kind"] == "subscribed"


async def test_a_message_over_the_size_limit_closes_with_1009() -> None:
    """A message larger than max_body_bytes closes the connection (1009, message too big)."""
    config = ServeConfig(port=0, max_body_bytes=1000)
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        async with open_ws(srv) as ws:
            await send(ws, {"op": "ping", "id": "x" * 2000})
            with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
    assert closed.value.reason.code == 1009


async def _rejected(
    srv: Running,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    query: str = "",
    host: str | None = None,
) -> ConnectionRejected:
    """The refusal of a handshake. NOTE: over a TCP stream of our own, closed here:
    trio-websocket leaves its socket open when a handshake is rejected."""
    port = int(srv.url.rsplit(":", 1)[1])
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    rejected: list[ConnectionRejected] = []
    with trio.fail_after(10):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            try:
                async with trio.open_nursery() as nursery:
                    await wrap_client_stream(
                        nursery,
                        stream,
                        host or f"127.0.0.1:{port}",
                        "/api/ws" + query,
                        subprotocols=subprotocols,
                        extra_headers=extra,
                    )
            except* ConnectionRejected as group:
                rejected += [e for e in group.exceptions if isinstance(e, ConnectionRejected)]
    assert rejected, "the handshake was accepted"
    return rejected[0]


async def test_the_handshake_needs_the_bearer_token_and_never_in_the_url() -> None:
    """No/wrong token: 401; `?token=` refused even when right; the header or a
    `bearer.<token>` subprotocol (for browsers) is accepted, answered with vega.v1."""
    async with orchestrator_with_assistant() as orch, running_server(orch, token=TOKEN) as srv:
        none = await _rejected(srv)
        assert none.status_code == 401
        assert json.loads(none.body)["error_class"] == "unauthorized"
        wrong = await _rejected(srv, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        in_url = await _rejected(
            srv, headers={"Authorization": f"Bearer {TOKEN}"}, query=f"?token={TOKEN}"
        )
        assert in_url.status_code == 401
        assert json.loads(in_url.body)["error_class"] == "token_in_url"
        assert TOKEN.encode() not in in_url.body
        bad_protocol = await _rejected(srv, subprotocols=["vega.v1", "bearer.nope"])
        assert bad_protocol.status_code == 401

        async with open_ws(srv, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            assert ws.subprotocol is None
            assert (await request(ws, {"op": "ping"}))["kind"] == "pong"
        async with open_ws(srv, subprotocols=["vega.v1", f"bearer.{TOKEN}"]) as ws:
            assert ws.subprotocol == "vega.v1"  # the token does not come back
            assert (await request(ws, {"op": "ping"}))["kind"] == "pong"
        async with open_ws(srv, subprotocols=[f"bearer.{TOKEN}"]) as ws:
            assert ws.subprotocol == f"bearer.{TOKEN}"  # a browser needs one it offered


async def test_the_handshake_refuses_a_hostile_host_and_origin() -> None:
    """DNS rebinding (foreign Host) is a 400, a foreign Origin a 403; the server's own
    origin and allow-listed origins pass."""
    config = ServeConfig(port=0, allowed_origins=["http://app.example"])
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        refused = await _rejected(srv, host=f"evil.example:{port}")
        assert refused.status_code == 400
        assert json.loads(refused.body)["error_class"] == "host_not_allowed"

        evil = await _rejected(srv, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        assert json.loads(evil.body)["error_class"] == "origin_not_allowed"
        for origin in (f"http://127.0.0.1:{port}", "http://app.example"):
            async with open_ws(srv, headers={"Origin": origin}) as ws:
                assert (await request(ws, {"op": "ping"}))["kind"] == "pong"


async def test_shutdown_ends_every_stream_then_says_so_and_closes_1001() -> None:
    """On shutdown a chat in flight ends with `server_shutdown`, then a `shutdown`
    message comes and the connection closes with 1001 (going away)."""
    llm = ScriptedLLM([Step.text("never finishes", delay=3600)])
    async with orchestrator_with_assistant(llm) as orch:
        async with running_server(orch) as srv:
            async with open_ws(srv) as ws:
                assert (await request(ws, {"op": "subscribe", "id": "s"}))["kind"] == "subscribed"
                await send(ws, {"op": "chat", "id": "r", "agent": "assistant", "message": "go"})
                with trio.fail_after(10):
                    while not llm.requests:  # noqa: ASYNC110 - the server starts the call
                        await trio.sleep(0.01)
                srv.stop.set()
                got = await until(ws, lambda m: m["kind"] == "shutdown")
                with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                    await receive(ws)
    chats = [m["event"] for m in got if m["kind"] == "chat"]
    assert chats[-1]["error_class"] == "server_shutdown"
    assert got[-1] == {"kind": "shutdown", "reason": "the server is shutting down"}
    assert closed.value.reason.code == 1001


@pytest.mark.slow
async def test_many_websocket_clients_that_vanish_leave_no_subscription() -> None:
    """200 connections with a subscription (and 20 with a chat too) vanish, half without
    a close handshake: the bus is back to its baseline, every reply completes, the
    server still answers."""
    llm = ScriptedLLM.echo()
    async with orchestrator_with_assistant(llm) as orch, running_server(orch) as srv:
        baseline = orch.events.subscriber_count
        port = int(srv.url.rsplit(":", 1)[1])

        async def client(i: int) -> None:
            async def use(ws: WebSocketConnection) -> None:
                assert (await request(ws, {"op": "subscribe", "id": i}))["kind"] == "subscribed"
                if i % 10 == 0:
                    chat = {"op": "chat", "id": "r", "agent": f"assistant:{i}", "message": "x"}
                    await send(ws, chat)
                    await until(ws, lambda m: m["kind"] == "chat")

            if i % 2:  # a close handshake
                async with open_ws(srv) as ws:
                    await use(ws)
                return
            # gone without a close handshake: the TCP connection just ends
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with trio.open_nursery() as nursery:
                ws = await wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", "/api/ws")
                assert (await receive(ws))["kind"] == "hello"
                await use(ws)
                await stream.aclose()
                nursery.cancel_scope.cancel()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(client, i)
            while orch.events._sinks or orch.events.subscriber_count > baseline:  # noqa: ASYNC110 - the server's side
                await trio.sleep(0.01)
            for i in range(0, 200, 10):
                url = f"/api/agents/assistant:{i}/chat"
                roles = [m["role"] for m in (await srv.client.get(url)).json()["messages"]]
                while roles != ["user", "assistant"]:  # the reply may still be finishing
                    await trio.sleep(0.01)
                    roles = [m["role"] for m in (await srv.client.get(url)).json()["messages"]]
        assert (await srv.client.get("/healthz")).json()["status"] == "ok"
        assert llm.open_streams == 0
