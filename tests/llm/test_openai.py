"""OpenAICompatibleLLM: the real openai SDK talking to the fake OpenAI server over loopback."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
import trio
import trio.testing

from vega_trio import Agent, open_orchestrator
from vega_trio._errors import ErrorClass, LLMError
from vega_trio.agent import DoneEvent, ToolEndEvent, ToolStartEvent
from vega_trio.llm._messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from vega_trio.llm._openai import (
    DEFAULT_OPENAI_MODEL,
    INVALID_JSON_KEY,
    LOCAL_SERVER_API_KEY,
    OpenAICompatibleLLM,
)
from vega_trio.llm._protocol import (
    LLM,
    LLMRequest,
    MessageComplete,
    StreamChunk,
    ToolSchema,
    Usage,
)
from vega_trio.testing import (
    FakeChatResponse,
    FakeOpenAIServer,
    open_fake_openai_server,
)

# NOTE: these tests do real socket I/O on loopback, so most run on the real clock. The
# ones that measure virtual time use autojump_clock with a threshold above zero: at 0 the
# MockClock jumps whenever Trio waits on anything, including worker threads the SDK uses
# on a client's first request and loopback data in flight, so a timeout would fire before
# the reply had any chance to arrive (as in test_anthropic.py).
AUTOJUMP_THRESHOLD = 0.2

KEY = "sk-test-key"


@pytest.fixture(autouse=True)
def clean_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OPENAI_* variable of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("OPENAI_"):
            monkeypatch.delenv(name)


def make_request(**changes: Any) -> LLMRequest:
    fields: dict[str, Any] = {"model": "llama3.2", "messages": (Message.user("hi"),)}
    fields.update(changes)
    return LLMRequest(**fields)


@asynccontextmanager
async def backend(
    *replies: FakeChatResponse, llm_timeout: float = 30.0, **server_options: Any
) -> AsyncIterator[tuple[FakeOpenAIServer, OpenAICompatibleLLM]]:
    """A fake server with the replies queued, and a backend pointed at it."""
    async with (
        open_fake_openai_server(*replies, **server_options) as server,
        OpenAICompatibleLLM(base_url=server.base_url, timeout=llm_timeout) as llm,
    ):
        yield server, llm


async def collect(llm: OpenAICompatibleLLM, request: LLMRequest) -> list[StreamChunk]:
    async with llm.stream(request) as chunks:
        return [chunk async for chunk in chunks]


def final(chunks: list[StreamChunk]) -> MessageComplete:
    assert isinstance(chunks[-1], MessageComplete)
    assert sum(isinstance(c, MessageComplete) for c in chunks) == 1
    return chunks[-1]


# -- construction -------------------------------------------------------------------------


async def test_implements_the_llm_protocol_with_sdk_retries_off() -> None:
    """OpenAICompatibleLLM is an LLM, its SDK client never retries, 300 s per call."""
    async with OpenAICompatibleLLM(api_key=KEY) as llm:
        as_protocol: LLM = llm
        assert isinstance(as_protocol, LLM)
        assert llm.client.max_retries == 0
        assert llm.timeout == 300.0
        assert llm.default_model == DEFAULT_OPENAI_MODEL
        assert llm.base_url.startswith("https://api.openai.com/v1")
        assert llm.max_tokens_field == "max_completion_tokens"
    assert llm.client.is_closed()


async def test_a_local_server_needs_no_key_and_gets_max_tokens() -> None:
    """With a custom base URL and no key, a placeholder key is sent and max_tokens is used."""
    async with backend(FakeChatResponse.text("ok")) as (server, llm):
        assert llm.max_tokens_field == "max_tokens"
        assert (await llm.generate(make_request())).text == "ok"
    assert server.requests[0].headers["authorization"] == f"Bearer {LOCAL_SERVER_API_KEY}"


async def test_environment_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_API_KEY and OPENAI_BASE_URL configure the backend when no argument does."""
    async with open_fake_openai_server(FakeChatResponse.text("ok"), api_key=KEY) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        async with OpenAICompatibleLLM() as llm:
            assert (await llm.generate(make_request())).text == "ok"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_no_key_for_the_openai_api_is_an_authentication_error() -> None:
    """No key and no custom base URL: AUTHENTICATION at construction, naming the fix."""
    with pytest.raises(LLMError, match="OPENAI_API_KEY") as caught:
        OpenAICompatibleLLM()
    assert caught.value.error_class is ErrorClass.AUTHENTICATION


async def test_a_wrong_api_key_is_an_authentication_error() -> None:
    """The server refusing the key is AUTHENTICATION, not retryable."""
    async with open_fake_openai_server(api_key=KEY) as server:
        async with OpenAICompatibleLLM(api_key="wrong", base_url=server.base_url) as llm:
            with trio.fail_after(10), pytest.raises(LLMError) as caught:
                await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.AUTHENTICATION
    assert not caught.value.retryable


async def test_a_given_client_gets_retries_switched_off_and_stays_open() -> None:
    """A caller's client is used with max_retries=0 and is not closed by the backend."""
    async with open_fake_openai_server(FakeChatResponse.error(503)) as server:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=5)
        async with client:
            async with OpenAICompatibleLLM(client=client) as llm:
                assert llm.client.max_retries == 0
                with trio.fail_after(10), pytest.raises(LLMError):
                    await llm.generate(make_request())
            assert not client.is_closed()
    assert len(server.requests) == 1


def test_bad_arguments_are_refused() -> None:
    """client= with api_key=, a non-positive timeout or an unknown field name are refused."""
    client = openai.AsyncOpenAI(api_key=KEY)
    with pytest.raises(ValueError, match="either client= or api_key="):
        OpenAICompatibleLLM(client=client, api_key="other")
    with pytest.raises(ValueError, match="timeout"):
        OpenAICompatibleLLM(api_key=KEY, timeout=0)
    with pytest.raises(ValueError, match="max_tokens_field"):
        OpenAICompatibleLLM(api_key=KEY, max_tokens_field="tokens")  # type: ignore[arg-type]


@pytest.mark.slow
def test_importing_vega_trio_does_not_import_openai() -> None:
    """`import vega_trio` (and vega_trio.llm) stays free of the slow openai SDK."""
    code = (
        "import sys, vega_trio, vega_trio.llm, vega_trio.testing; "
        "assert 'openai' not in sys.modules, 'openai imported'; "
        "vega_trio.llm.OpenAICompatibleLLM; assert 'openai' in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- blocking calls -----------------------------------------------------------------------


async def test_generate_returns_text_usage_and_finish_reason() -> None:
    """A blocking reply becomes text, usage (cached tokens apart) and the finish reason."""
    usage = Usage(input_tokens=100, output_tokens=7, cache_read_input_tokens=40)
    async with backend(FakeChatResponse.text("Hello!", usage=usage, model="served")) as (_, llm):
        response = await llm.generate(make_request())
    assert response.text == "Hello!"
    assert response.usage == usage
    assert response.stop_reason == "stop"
    assert response.model == "served"


@pytest.mark.parametrize("raw", ['{"a": 1', "[1, 2]", "not json"])
async def test_invalid_tool_json_is_marked_not_raised(raw: str) -> None:
    """Arguments that are not a JSON object become {INVALID_JSON_KEY: raw}, both ways."""
    reply = FakeChatResponse.tool_call("add", {}, raw_arguments=raw, fragments=3)
    async with backend(reply, reply) as (_, llm):
        blocking = await llm.generate(make_request())
        streamed = final(await collect(llm, make_request())).response
    for response in (blocking, streamed):
        assert dict(response.tool_uses[0].input) == {INVALID_JSON_KEY: raw}


async def test_the_request_is_mapped_to_chat_completions() -> None:
    """System, history with tool calls and results, tools, max_tokens, temperature are sent."""
    history = (
        Message.user("What is 1+2 and 2*3?"),
        Message.assistant(
            [
                TextBlock(text="Let me compute."),
                ToolUseBlock(id="call_1", name="add", input={"a": 1, "b": 2}),
                ToolUseBlock(id="call_2", name="mul", input={INVALID_JSON_KEY: '{"a": 2'}),
            ]
        ),
        Message.user(
            [
                ToolResultBlock(tool_use_id="call_1", content="3"),
                ToolResultBlock(tool_use_id="call_2", content="bad arguments", is_error=True),
                TextBlock(text="Go on."),
            ]
        ),
    )
    tool = ToolSchema(
        name="add",
        description="Add two numbers.",
        input_schema={"type": "object", "properties": {"a": {"type": "number"}}},
    )
    request = make_request(
        messages=history, system="Be brief.", tools=(tool,), max_tokens=321, temperature=0.25
    )
    async with backend(FakeChatResponse.text("ok")) as (server, llm):
        await llm.generate(request)
    body = server.requests[0].body
    assert body["model"] == "llama3.2"
    assert body["max_tokens"] == 321
    assert "max_completion_tokens" not in body
    assert body["temperature"] == 0.25
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers.",
                "parameters": {"type": "object", "properties": {"a": {"type": "number"}}},
            },
        }
    ]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 1+2 and 2*3?"},
        {
            "role": "assistant",
            "content": "Let me compute.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "mul", "arguments": '{"a": 2'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: bad arguments"},
        {"role": "user", "content": "Go on."},
    ]


async def test_unset_options_are_not_sent_and_the_default_model_is_used() -> None:
    """No system, tools or temperature unless set; an empty model means the default."""
    async with open_fake_openai_server(FakeChatResponse.text("ok")) as server:
        async with OpenAICompatibleLLM(base_url=server.base_url, default_model="qwen3") as llm:
            await llm.generate(make_request(model=""))
    body = server.requests[0].body
    assert body["model"] == "qwen3"
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert not {"tools", "temperature", "stream"} & set(body)


async def test_max_completion_tokens_is_sent_when_chosen() -> None:
    """max_tokens_field='max_completion_tokens' sends OpenAI's current field name instead."""
    async with open_fake_openai_server(FakeChatResponse.text("ok")) as server:
        async with OpenAICompatibleLLM(
            base_url=server.base_url, max_tokens_field="max_completion_tokens"
        ) as llm:
            await llm.generate(make_request(max_tokens=99))
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 99
    assert "max_tokens" not in body


# -- streaming ----------------------------------------------------------------------------


async def test_a_stream_without_done_still_completes_after_its_finish_reason() -> None:
    """A server that ends the body after finish_reason without [DONE] still completes."""
    reply = FakeChatResponse(content=(TextBlock(text="fine"),), send_done=False)
    async with backend(reply) as (_, llm):
        chunks = await collect(llm, make_request())
    assert final(chunks).response.text == "fine"


async def test_stream_error_after_output_is_marked_as_started() -> None:
    """An error chunk after text was yielded: output_started=True; its code still counts."""
    reply = FakeChatResponse.stream_error(
        after_chunks=2, error_type="requests", error_code="rate_limit_exceeded"
    )
    async with backend(reply) as (_, llm):
        seen: list[StreamChunk] = []
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            async with llm.stream(make_request()) as chunks:
                async for chunk in chunks:
                    seen.append(chunk)
    assert len(seen) == 2
    assert caught.value.output_started
    assert caught.value.error_class is ErrorClass.RATE_LIMIT


# -- malformed streams --------------------------------------------------------------------


async def test_a_stream_that_is_not_json_is_a_temporary_failure() -> None:
    """A data line that is not JSON is a TEMPORARY 'malformed' failure, not a crash."""

    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            b"0f\r\ndata: {broken\n\n\r\n0\r\n\r\n"
        )
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, garbage, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        async with OpenAICompatibleLLM(base_url=f"http://127.0.0.1:{port}/v1") as llm:
            with trio.fail_after(10), pytest.raises(LLMError, match="malformed") as caught:
                await collect(llm, make_request())
        nursery.cancel_scope.cancel()
    assert caught.value.error_class is ErrorClass.TEMPORARY


# -- a whole agent --------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: the first number.
        b: the second number.
    """
    return a + b


async def test_an_agent_with_a_tool_runs_over_the_backend() -> None:
    """An orchestrator agent calls its tool and answers, blocking and streamed."""
    async with open_fake_openai_server() as server:
        server.enqueue(
            FakeChatResponse.tool_call("add", {"a": 2, "b": 3}, id="call_1", fragments=4),
            FakeChatResponse.text("2 + 3 = 5"),
            FakeChatResponse.tool_call(
                "add", {"a": 4, "b": 5}, id="call_2", fragments=6, text_before="Adding."
            ),
            FakeChatResponse.text("4 + 5 = 9", chunks=3),
        )
        async with OpenAICompatibleLLM(base_url=server.base_url) as llm:
            async with open_orchestrator(llm=llm) as orch:
                proc = await orch.spawn(
                    Agent(name="calc", model="llama3.2", system="Use tools.", tools=[add])
                )
                with trio.fail_after(20):
                    assert await proc.send("2+3?") == "2 + 3 = 5"
                    async with proc.send_stream_rich("4+5?") as stream:
                        events = [e async for e in stream]
    start = next(e for e in events if isinstance(e, ToolStartEvent))
    end = next(e for e in events if isinstance(e, ToolEndEvent))
    assert dict(start.arguments) == {"a": 4, "b": 5}
    assert end.result == "9" and not end.is_error
    assert stream.text == "Adding.4 + 5 = 9"
    assert isinstance(events[-1], DoneEvent)
    second = server.requests[1].body["messages"]
    assert second[0] == {"role": "system", "content": "Use tools."}
    assert second[-2]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 2, "b": 3}',
    }
    assert second[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}
    assert server.requests[0].body["tools"][0]["function"]["name"] == "add"
