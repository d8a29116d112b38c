"""The fake Anthropic server, checked on the wire (httpx2 and raw sockets, no SDK)."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx2
import pytest
import trio
import trio.testing

import vega_trio.testing
from vega_trio.llm._messages import TextBlock, ToolUseBlock
from vega_trio.llm._protocol import Usage
from vega_trio.testing import (
    FakeAnthropicServer,
    FakeResponse,
    RecordedRequest,
    open_fake_anthropic_server,
)

# NOTE: these tests do real socket I/O on loopback. They run on the real clock unless they
# measure virtual time; those set an autojump threshold above zero, because with 0 the
# MockClock jumps the moment Trio waits on a socket or a worker thread, before loopback
# data has had a chance to arrive.
AUTOJUMP_THRESHOLD = 0.2

BODY: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a whole SSE body into (event name, JSON data) pairs."""
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def post(
    server: FakeAnthropicServer, body: Any = None, *, read_limit: float = 5.0, **kwargs: Any
) -> httpx2.Response:
    """POST to /v1/messages with a fresh client whose timeouts are ``read_limit`` seconds."""
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=read_limit) as client:
        return await client.post("/v1/messages", json=BODY if body is None else body, **kwargs)


def test_fake_server_names_are_exported() -> None:
    """vega_trio.testing exports the fake-server API (alongside the other test doubles)."""
    exported = set(vega_trio.testing.__all__)
    assert {
        "FakeAnthropicServer",
        "FakeResponse",
        "RecordedRequest",
        "open_fake_anthropic_server",
    } <= exported
    for name in exported:
        assert hasattr(vega_trio.testing, name)


async def test_nursery_start_hands_back_the_listening_server() -> None:
    """`await nursery.start(server.serve)` returns the server with a loopback base_url."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(FakeAnthropicServer().serve)
            assert isinstance(server, FakeAnthropicServer)
            assert server.base_url.startswith("http://127.0.0.1:")
            assert not server.base_url.endswith(":0")
            server.enqueue(FakeResponse.text("hello"))
            response = await post(server)
            assert response.status_code == 200
            nursery.cancel_scope.cancel()


def test_base_url_before_serving_says_how_to_start() -> None:
    """Asking for base_url before the server listens explains how to start it."""
    with pytest.raises(RuntimeError, match=r"nursery\.start"):
        _ = FakeAnthropicServer().base_url


async def test_blocking_reply_has_the_api_message_shape() -> None:
    """A non-streaming request gets a Messages API JSON body with content and usage."""
    usage = Usage(
        input_tokens=7, output_tokens=3, cache_creation_input_tokens=5, cache_read_input_tokens=11
    )
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.text("hi there", usage=usage)) as server:
            response = await post(server)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"].startswith("req_fake_")
    data = response.json()
    assert data["type"] == "message"
    assert data["role"] == "assistant"
    assert data["model"] == "claude-test"  # echoed from the request
    assert data["content"] == [{"type": "text", "text": "hi there"}]
    assert data["stop_reason"] == "end_turn"
    assert data["usage"] == {
        "input_tokens": 7,
        "output_tokens": 3,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 11,
    }


async def test_streaming_reply_is_real_sse_in_the_api_order() -> None:
    """`"stream": true` gets text/event-stream with the API's event sequence and a ping."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.text("abcdef", chunks=3)) as server:
            response = await post(server, {**BODY, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    events = sse_events(response.text)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    for name, data in events:
        assert data["type"] == name
    texts = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert texts == ["ab", "cd", "ef"]


async def test_stream_reports_input_usage_at_start_and_output_usage_at_the_end() -> None:
    """message_start carries input and cache tokens; message_delta the final output count."""
    usage = Usage(
        input_tokens=20, output_tokens=9, cache_creation_input_tokens=4, cache_read_input_tokens=6
    )
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.text("x", usage=usage)) as server:
            events = dict(sse_events((await post(server, {**BODY, "stream": True})).text))
    start_usage = events["message_start"]["message"]["usage"]
    assert start_usage["input_tokens"] == 20
    assert start_usage["cache_creation_input_tokens"] == 4
    assert start_usage["cache_read_input_tokens"] == 6
    assert events["message_delta"]["usage"] == {"output_tokens": 9}
    assert events["message_delta"]["delta"]["stop_reason"] == "end_turn"


async def test_tool_arguments_are_split_across_input_json_deltas() -> None:
    """A tool call's JSON arguments arrive in the requested number of fragments."""
    arguments = {"city": "Paris", "days": [1, 2, 3], "units": "metric"}
    reply = FakeResponse.tool_use(
        "weather", arguments, id="toolu_1", fragments=7, text_before="Checking."
    )
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply) as server:
            events = sse_events((await post(server, {**BODY, "stream": True})).text)
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
    ]
    fragments = [
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    ]
    assert len(fragments) == 7
    assert json.loads("".join(fragments)) == arguments
    assert dict(events)["message_delta"]["delta"]["stop_reason"] == "tool_use"


async def test_raw_arguments_stream_exactly_the_given_text() -> None:
    """raw_arguments lets a test send malformed tool JSON."""
    reply = FakeResponse.tool_use("f", {}, raw_arguments='{"a": 1', fragments=2)
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply) as server:
            events = sse_events((await post(server, {**BODY, "stream": True})).text)
    fragments = [
        data["delta"]["partial_json"] for name, data in events if name == "content_block_delta"
    ]
    assert "".join(fragments) == '{"a": 1'


async def test_message_with_several_tool_calls_defaults_to_tool_use_stop() -> None:
    """FakeResponse.message mixes blocks; calling a tool makes the stop reason tool_use."""
    reply = FakeResponse.message(
        [
            TextBlock(text="two calls"),
            ToolUseBlock(id="t1", name="a", input={"x": 1}),
            ToolUseBlock(id="t2", name="b", input={"y": 2}),
        ]
    )
    assert reply.stop_reason == "tool_use"
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply) as server:
            data = (await post(server)).json()
    assert [block["type"] for block in data["content"]] == ["text", "tool_use", "tool_use"]
    assert data["content"][2] == {"type": "tool_use", "id": "t2", "name": "b", "input": {"y": 2}}


async def test_requests_are_recorded_with_body_and_headers() -> None:
    """server.requests keeps each request's parsed JSON body and lower-cased headers."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.text("ok")) as server:
            await post(server, {**BODY, "temperature": 0.25}, headers={"X-Api-Key": "sk-1"})
    [request] = server.requests
    assert isinstance(request, RecordedRequest)
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert request.body["temperature"] == 0.25
    assert request.headers["x-api-key"] == "sk-1"
    assert request.stream is False


async def test_replies_are_served_in_fifo_order_then_a_clear_500() -> None:
    """Queued replies go out in order; with none left the 500 says so."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(
            FakeResponse.text("first"), FakeResponse.text("second")
        ) as server:
            assert server.pending == 2
            texts = [(await post(server)).json()["content"][0]["text"] for _ in range(2)]
            empty = await post(server)
    assert texts == ["first", "second"]
    assert empty.status_code == 500
    assert empty.json()["error"]["type"] == "api_error"
    assert "fake server: no scripted response left" in empty.json()["error"]["message"]


async def test_responder_builds_replies_from_the_request_body() -> None:
    """A responder answers dynamically once the queue is empty."""

    def echo(body: Any) -> FakeResponse:
        return FakeResponse.text(f"you said {body['messages'][-1]['content']}")

    with trio.fail_after(10):
        async with open_fake_anthropic_server(
            FakeResponse.text("queued first"), responder=echo
        ) as server:
            first = (await post(server)).json()["content"][0]["text"]
            second = (await post(server)).json()["content"][0]["text"]
    assert (first, second) == ("queued first", "you said hi")


async def test_a_failing_responder_becomes_a_500_naming_the_error() -> None:
    """An exception in the test's responder is reported in the reply, not swallowed."""

    def broken(body: Any) -> FakeResponse:
        raise KeyError("oops")

    with trio.fail_after(10):
        async with open_fake_anthropic_server(responder=broken) as server:
            response = await post(server)
    assert response.status_code == 500
    assert "responder raised KeyError" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
async def test_error_replies_carry_the_api_error_body(status: int, error_type: str) -> None:
    """FakeResponse.error sends the status with the API's error body and type."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.error(status, "nope")) as server:
            response = await post(server)
    assert response.status_code == status
    assert response.json()["type"] == "error"
    assert response.json()["error"] == {"type": error_type, "message": "nope"}


async def test_error_reply_sends_retry_after_headers_and_error_code() -> None:
    """retry_after / retry_after_ms become headers; error_code goes into error.details."""
    reply = FakeResponse.error(
        429, retry_after=3, retry_after_ms=2500.5, error_code="enforced_spend_limit_reached"
    )
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply) as server:
            response = await post(server, {**BODY, "stream": True})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["retry-after-ms"] == "2500.5"
    error = response.json()["error"]
    assert error["details"] == {"error_code": "enforced_spend_limit_reached"}


async def test_stream_error_event_arrives_after_the_given_number_of_chunks() -> None:
    """stream_error sends N content deltas, then an SSE error event, then ends the body."""
    reply = FakeResponse.stream_error(after_chunks=2, error_type="overloaded_error")
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply) as server:
            events = sse_events((await post(server, {**BODY, "stream": True})).text)
    names = [name for name, _ in events]
    assert names.count("content_block_delta") == 2
    assert names[-1] == "error"
    assert events[-1][1]["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert "message_stop" not in names


async def test_stream_error_becomes_an_http_error_for_blocking_requests() -> None:
    """A blocking request cannot get an SSE event, so it gets the equivalent status."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.stream_error()) as server:
            response = await post(server)
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"


async def test_disconnect_cuts_the_chunked_body_short() -> None:
    """disconnect closes the socket mid-stream: the client sees an incomplete body."""
    reply = FakeResponse.disconnect(after_chunks=1)
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply) as server:
            with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
                await post(server, {**BODY, "stream": True})
    assert server.aborted == []  # the server hung up, not the client


async def test_disconnect_without_chunks_sends_no_reply_at_all() -> None:
    """A blocking request to a disconnect reply sees the connection closed unanswered."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.disconnect()) as server:
            with pytest.raises(httpx2.RemoteProtocolError, match="without sending"):
                await post(server)


async def raw_http(server: FakeAnthropicServer, body: dict[str, Any]) -> trio.SocketStream:
    """Open a raw socket and send one POST /v1/messages."""
    payload = json.dumps(body).encode()
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode()
    await stream.send_all(head + payload)
    return stream


async def receive_until(stream: trio.SocketStream, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        data += await stream.receive_some(65536)
    return data


async def test_stall_holds_the_stream_until_the_client_hangs_up() -> None:
    """stall sends N chunks then nothing; the client closing is recorded as an abort."""
    reply = FakeResponse.stall(after_chunks=1, reply=FakeResponse.text("abcd", chunks=4))
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply) as server:
            stream = await raw_http(server, {**BODY, "stream": True})
            data = await receive_until(stream, b'"text_delta"')
            assert data.count(b"event: content_block_delta") == 1
            assert server.aborted == []
            await stream.aclose()
            await server.wait_for_aborts(1)
    assert server.aborted == server.requests


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    """A client that keeps its connection open is served on that one connection."""
    with trio.fail_after(10):
        async with (
            open_fake_anthropic_server(
                FakeResponse.text("a"), FakeResponse.text("b", chunks=2), FakeResponse.text("c")
            ) as server,
            httpx2.AsyncClient(base_url=server.base_url) as client,
        ):
            await client.post("/v1/messages", json=BODY)
            await client.post("/v1/messages", json={**BODY, "stream": True})
            await client.post("/v1/messages", json=BODY)
    assert server.connections == 1
    assert len(server.requests) == 3


async def test_api_key_is_enforced_when_configured() -> None:
    """With api_key set, a wrong key gets 401 and the scripted reply stays queued."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(
            FakeResponse.text("ok"), api_key="sk-right"
        ) as server:
            wrong = await post(server, headers={"x-api-key": "sk-wrong"})
            bearer = await post(server, headers={"authorization": "Bearer sk-right"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    assert bearer.status_code == 200


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"max_tokens": 5, "messages": []}, "model"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        ({"model": "m", "messages": []}, "max_tokens"),
        (["not", "an", "object"], "JSON object"),
    ],
)
async def test_malformed_requests_get_a_400_naming_the_field(body: Any, problem: str) -> None:
    """A body the real API would reject gets a 400 invalid_request_error."""
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.text("unused")) as server:
            response = await post(server, body)
            assert server.pending == 1
    assert response.status_code == 400
    assert problem in response.json()["error"]["message"]


async def test_unknown_routes_and_methods_are_rejected() -> None:
    """Only POST /v1/messages is served: other paths 404, other methods 405."""
    with trio.fail_after(10):
        async with (
            open_fake_anthropic_server() as server,
            httpx2.AsyncClient(base_url=server.base_url) as client,
        ):
            missing = await client.post("/v1/complete", json=BODY)
            wrong_method = await client.get("/v1/messages")
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert server.requests == []


async def test_first_byte_delay_runs_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """first_byte_delay is a trio.sleep: under MockClock the reply starts exactly on time."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    with trio.fail_after(1000):
        async with open_fake_anthropic_server(
            FakeResponse.text("late", first_byte_delay=42.0)
        ) as server:
            start = trio.current_time()
            response = await post(server, read_limit=100.0)
            elapsed = trio.current_time() - start
    assert response.status_code == 200
    assert elapsed == pytest.approx(42.0)


async def test_chunk_delay_spaces_the_deltas_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """chunk_delay waits before each content delta."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    with trio.fail_after(1000):
        async with open_fake_anthropic_server(
            FakeResponse.text("abc", chunks=3, chunk_delay=5.0)
        ) as server:
            start = trio.current_time()
            await post(server, {**BODY, "stream": True}, read_limit=100.0)
            elapsed = trio.current_time() - start
    assert elapsed == pytest.approx(15.0)


async def test_leaving_the_block_stops_the_server_and_its_connections() -> None:
    """Exiting open_fake_anthropic_server closes idle keep-alive connections too."""
    with trio.fail_after(10):
        async with httpx2.AsyncClient() as client:
            async with open_fake_anthropic_server(FakeResponse.text("x")) as server:
                url = server.base_url
                await client.post(f"{url}/v1/messages", json=BODY)  # leaves a pooled connection
            with pytest.raises(httpx2.TransportError):
                await client.post(f"{url}/v1/messages", json=BODY)


async def test_an_error_in_the_block_comes_out_unwrapped() -> None:
    """A single exception raised inside the block is not wrapped in an ExceptionGroup."""
    with trio.fail_after(10), pytest.raises(KeyError, match="boom"):
        async with open_fake_anthropic_server():
            raise KeyError("boom")


def test_a_server_serves_only_once() -> None:
    """Reusing a FakeAnthropicServer after it has served is refused."""

    async def main() -> None:
        server = FakeAnthropicServer()
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            nursery.cancel_scope.cancel()
        with pytest.raises(RuntimeError, match="serves only once"):
            await server.serve()

    trio.run(main)


@pytest.mark.parametrize(
    "build",
    [
        lambda: FakeResponse.text("x", chunks=0),
        lambda: FakeResponse.tool_use("f", {}, fragments=0),
        lambda: FakeResponse.text("x", first_byte_delay=-1),
        lambda: FakeResponse.text("x", chunk_delay=float("inf")),
        lambda: FakeResponse.error(200),
        lambda: FakeResponse.stall(after_chunks=-1),
    ],
)
def test_nonsense_replies_are_refused_when_built(build: Any) -> None:
    """Impossible scripts fail at construction, with a message naming the field."""
    with pytest.raises(ValueError):
        build()


def test_enqueue_refuses_other_objects() -> None:
    """enqueue() says what it wants when given something else."""
    with pytest.raises(TypeError, match="FakeResponse"):
        FakeAnthropicServer().enqueue("hello")  # type: ignore[arg-type]


def test_replies_are_frozen_and_evolvable() -> None:
    """A FakeResponse is immutable; attrs.evolve derives variants."""
    base = FakeResponse.text("x")
    slow = attrs.evolve(base, first_byte_delay=3.0)
    assert base.first_byte_delay == 0.0
    assert slow.first_byte_delay == 3.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        base.status = 500  # type: ignore[misc]


async def test_thinking_and_server_blocks_stream_as_the_api_sends_them() -> None:
    """A thinking block streams as thinking_delta events then one signature_delta; a
    server_tool_use streams its input as input_json_delta; a result block and redacted
    thinking arrive whole in content_block_start; blocking replies carry them verbatim."""
    from vega_trio.llm import RedactedThinkingBlock, ServerBlock

    thought = FakeResponse.thinking_block("abcdef")
    use = {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"q": "x"}}
    result = {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []}
    blocks = (
        thought,
        ServerBlock(data=use),
        ServerBlock(data=result),
        RedactedThinkingBlock(data="R"),
    )
    reply = FakeResponse.message(blocks, text_chunks=3, json_fragments=2)
    with trio.fail_after(10):
        async with open_fake_anthropic_server(reply, reply) as server:
            events = sse_events((await post(server, {**BODY, "stream": True})).text)
            body = (await post(server)).json()
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {**use, "input": {}},
        result,
        {"type": "redacted_thinking", "data": "R"},
    ]
    deltas = [(d["index"], d["delta"]) for n, d in events if n == "content_block_delta"]
    assert deltas[:4] == [
        (0, {"type": "thinking_delta", "thinking": "ab"}),
        (0, {"type": "thinking_delta", "thinking": "cd"}),
        (0, {"type": "thinking_delta", "thinking": "ef"}),
        (0, {"type": "signature_delta", "signature": thought.signature}),
    ]
    assert [d["type"] for _, d in deltas[4:]] == ["input_json_delta"] * 2
    assert json.loads("".join(d["partial_json"] for _, d in deltas[4:])) == {"q": "x"}
    assert dict(events)["message_delta"]["delta"]["stop_reason"] == "end_turn"
    assert body["content"] == [
        {"type": "thinking", "thinking": "abcdef", "signature": thought.signature},
        use,
        result,
        {"type": "redacted_thinking", "data": "R"},
    ]


async def test_a_thinking_block_sent_back_altered_is_refused() -> None:
    """Like the API, a thinking block whose fake-server signature does not match its text is
    a 400 invalid_request_error; the unchanged block is accepted."""
    thought = FakeResponse.thinking_block("plan")
    turn = {"type": "thinking", "thinking": "plan", "signature": thought.signature}
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": [turn]}]
    bad = {**turn, "thinking": "edited"}
    with trio.fail_after(10):
        async with open_fake_anthropic_server(FakeResponse.text("ok")) as server:
            refused = await post(
                server, {**BODY, "messages": [history[0], {"role": "assistant", "content": [bad]}]}
            )
            accepted = await post(server, {**BODY, "messages": history})
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "Invalid `signature`" in refused.json()["error"]["message"]
    assert accepted.status_code == 200
