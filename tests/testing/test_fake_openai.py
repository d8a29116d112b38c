"""The fake OpenAI-compatible server, seen from plain HTTP and from the real openai SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
import trio

from vega_trio.llm import Usage
from vega_trio.llm._messages import ToolUseBlock
from vega_trio.testing import (
    FakeChatResponse,
    FakeOpenAIServer,
    open_fake_openai_server,
)

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line.removeprefix("data: ") for line in text.split("\n") if line.startswith("data: ")]


async def post(server: FakeOpenAIServer, body: Any, **options: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=server.base_url) as client:
        with trio.fail_after(10):
            return await client.post("/chat/completions", json=body, **options)


async def test_base_url_ends_in_v1_and_is_known_only_once_serving() -> None:
    """base_url is http://127.0.0.1:<port>/v1 while serving, an error before."""
    with pytest.raises(RuntimeError, match="only known once the server is serving"):
        _ = FakeOpenAIServer().base_url
    async with open_fake_openai_server() as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v1")


async def test_blocking_reply_has_the_chat_completion_shape_and_is_recorded() -> None:
    """A blocking reply carries message, tool_calls, finish_reason and OpenAI usage."""
    reply = FakeChatResponse.tool_call(
        "add",
        {"a": 1},
        id="call_x",
        text_before="ok",
        usage=Usage(input_tokens=5, output_tokens=2, cache_read_input_tokens=3),
    )
    async with open_fake_openai_server(reply) as server:
        response = await post(server, BODY, headers={"authorization": "Bearer k"})
    data = response.json()
    choice = data["choices"][0]
    assert choice["message"]["content"] == "ok"
    assert choice["message"]["tool_calls"] == [
        {"id": "call_x", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    ]
    assert choice["finish_reason"] == "tool_calls"
    assert data["model"] == "m"
    assert data["usage"]["prompt_tokens"] == 8
    assert data["usage"]["completion_tokens"] == 2
    assert data["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}
    assert server.requests[0].body == BODY
    assert server.requests[0].headers["authorization"] == "Bearer k"


async def test_stream_sends_chunks_usage_when_asked_and_done() -> None:
    """A stream is data: chunks, a usage chunk only with include_usage, then [DONE]."""
    reply = FakeChatResponse.text("abcdef", chunks=3)
    async with open_fake_openai_server(reply, reply) as server:
        plain = await post(server, {**BODY, "stream": True})
        with_usage = await post(
            server, {**BODY, "stream": True, "stream_options": {"include_usage": True}}
        )
    assert plain.headers["content-type"].startswith("text/event-stream")
    for response, usage_expected in ((plain, False), (with_usage, True)):
        payloads = sse_data(response.text)
        assert payloads[-1] == "[DONE]"
        chunks = [json.loads(p) for p in payloads[:-1]]
        texts = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        assert "".join(t for t in texts if t) == "abcdef"
        assert [t for t in texts if t] == ["ab", "cd", "ef"]
        assert any(c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks)
        assert any(not c["choices"] and "usage" in c for c in chunks) is usage_expected


async def test_tool_arguments_are_streamed_in_fragments_per_index() -> None:
    """Each call's arguments arrive in the scripted number of fragments under its index."""
    reply = FakeChatResponse.message(
        [ToolUseBlock(id="c1", name="f", input={"x": 1}), ToolUseBlock(id="c2", name="g")],
        json_fragments=3,
    )
    async with open_fake_openai_server(reply) as server:
        response = await post(server, {**BODY, "stream": True})
    fragments: dict[int, list[str]] = {}
    for payload in sse_data(response.text)[:-1]:
        for call in json.loads(payload)["choices"][0]["delta"].get("tool_calls", []):
            piece = call["function"].get("arguments")
            if piece:
                fragments.setdefault(call["index"], []).append(piece)
    assert [len(fragments[0]), "".join(fragments[0])] == [3, '{"x": 1}']
    assert "".join(fragments[1]) == "{}"


async def test_scripted_errors_carry_the_openai_body_and_retry_after() -> None:
    """error() answers the status with {"error": {...}} and the retry headers."""
    reply = FakeChatResponse.error(
        429,
        "quota",
        error_type="insufficient_quota",
        error_code="insufficient_quota",
        retry_after=2,
        retry_after_ms=1500,
    )
    async with open_fake_openai_server(reply) as server:
        response = await post(server, BODY)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["error"] == {
        "message": "quota",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }


async def test_stream_error_sends_an_error_chunk_after_the_scripted_output() -> None:
    """stream_error(after_chunks=2) sends two text deltas, then an error object, no [DONE]."""
    reply = FakeChatResponse.stream_error(after_chunks=2, error_code="server_is_overloaded")
    async with open_fake_openai_server(reply, reply) as server:
        streamed = await post(server, {**BODY, "stream": True})
        blocking = await post(server, BODY)
    payloads = [json.loads(p) for p in sse_data(streamed.text)]
    texts = [p["choices"][0]["delta"].get("content") for p in payloads if p.get("choices")]
    assert len([t for t in texts if t]) == 2
    assert payloads[-1]["error"]["code"] == "server_is_overloaded"
    assert blocking.status_code == 500


async def test_the_server_checks_route_method_body_and_key() -> None:
    """Unknown routes 404, GET 405, a body without messages 400, a wrong key 401."""
    async with open_fake_openai_server(api_key="right") as server:
        async with httpx2.AsyncClient(base_url=server.base_url) as client:
            with trio.fail_after(10):
                missing = await client.post("/embeddings", json=BODY)
                wrong_method = await client.get("/chat/completions")
                no_messages = await client.post("/chat/completions", json={"model": "m"})
                bad_key = await client.post(
                    "/chat/completions", json=BODY, headers={"authorization": "Bearer wrong"}
                )
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert no_messages.status_code == 400 and "messages" in no_messages.json()["error"]["message"]
    assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "invalid_api_key"


async def test_responder_answers_once_the_queue_is_empty_and_nothing_left_is_a_500() -> None:
    """The queue goes first, then the responder; with neither, a 500 says what to do."""

    def echo(body: Any) -> FakeChatResponse:
        return FakeChatResponse.text(f"you said {body['messages'][-1]['content']}")

    async with open_fake_openai_server(FakeChatResponse.text("queued"), responder=echo) as server:
        first = await post(server, BODY)
        second = await post(server, BODY)
    async with open_fake_openai_server() as empty:
        nothing = await post(empty, BODY)
    assert first.json()["choices"][0]["message"]["content"] == "queued"
    assert second.json()["choices"][0]["message"]["content"] == "you said hi"
    assert nothing.status_code == 500
    assert "no scripted response left" in nothing.json()["error"]["message"]


def test_enqueue_refuses_other_objects() -> None:
    """enqueue takes FakeChatResponse objects only, with a hint how to build one."""
    with pytest.raises(TypeError, match=r"FakeChatResponse\.text"):
        FakeOpenAIServer().enqueue("hello")  # type: ignore[arg-type]


async def test_disconnect_and_stall_are_seen_by_the_client() -> None:
    """disconnect() drops the connection; stall() holds it until the client hangs up."""
    async with open_fake_openai_server(
        FakeChatResponse.disconnect(), FakeChatResponse.stall()
    ) as server:
        with pytest.raises(httpx2.RemoteProtocolError):
            await post(server, BODY)
        with trio.move_on_after(0.5):
            await post(server, BODY)
        with trio.fail_after(10):
            await server.wait_for_aborts(1)
    assert server.aborted == [server.requests[1]]
