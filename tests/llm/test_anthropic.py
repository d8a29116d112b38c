"""AnthropicLLM: the real anthropic SDK talking to the fake server over loopback."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
import trio
import trio.testing

from vega_trio._errors import ErrorClass, LLMError
from vega_trio.llm._anthropic import (
    DEFAULT_MODEL,
    INVALID_JSON_KEY,
    AnthropicLLM,
)
from vega_trio.llm._messages import (
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    message_to_dict,
)
from vega_trio.llm._protocol import (
    LLM,
    LLMRequest,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ToolInputChunk,
    ToolSchema,
    Usage,
)
from vega_trio.llm._sse import SSEDecoder
from vega_trio.testing import FakeAnthropicServer, FakeResponse, open_fake_anthropic_server

# NOTE: these tests do real socket I/O on loopback, so most run on the real clock. The
# ones that measure virtual time use autojump_clock with a threshold above zero: at 0 the
# MockClock jumps whenever Trio waits on anything, including the worker thread the SDK
# uses on a client's first request (platform detection) and loopback data in flight, so
# a timeout would fire before the reply had any chance to arrive.
AUTOJUMP_THRESHOLD = 0.2

KEY = "sk-ant-test-key"


@pytest.fixture(autouse=True)
def clean_anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ANTHROPIC_* variable or on-disk profile of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # the SDK looks for ~/.config/anthropic


def make_request(**changes: Any) -> LLMRequest:
    fields: dict[str, Any] = {"model": "claude-test", "messages": (Message.user("hi"),)}
    fields.update(changes)
    return LLMRequest(**fields)


@asynccontextmanager
async def backend(
    *replies: FakeResponse, llm_timeout: float = 30.0, **server_options: Any
) -> AsyncIterator[tuple[FakeAnthropicServer, AnthropicLLM]]:
    """A fake server with the replies queued, and a backend pointed at it."""
    async with (
        open_fake_anthropic_server(*replies, **server_options) as server,
        AnthropicLLM(api_key=KEY, base_url=server.base_url, timeout=llm_timeout) as llm,
    ):
        yield server, llm


async def collect(llm: AnthropicLLM, request: LLMRequest) -> list[StreamChunk]:
    async with llm.stream(request) as chunks:
        return [chunk async for chunk in chunks]


# -- construction -------------------------------------------------------------------------


async def test_implements_the_llm_protocol_with_sdk_retries_off() -> None:
    """AnthropicLLM is an LLM and its SDK client never retries on its own."""
    async with AnthropicLLM(api_key=KEY) as llm:
        as_protocol: LLM = llm  # mypy checks the structural match
        assert isinstance(as_protocol, LLM)
        assert llm.client.max_retries == 0
        assert llm.timeout == 300.0  # SPEC §3.6: five minutes per LLM call by default
        assert llm.default_model == DEFAULT_MODEL
        assert llm.base_url.startswith("https://api.anthropic.com")
    assert llm.client.is_closed()


def test_default_model_is_current_and_not_deprecated() -> None:
    """The default model is one the SDK knows and does not warn about."""
    from anthropic.resources.messages.messages import DEPRECATED_MODELS

    assert DEFAULT_MODEL not in DEPRECATED_MODELS


async def test_a_given_client_gets_retries_switched_off_and_stays_open() -> None:
    """A caller's client is used with max_retries=0 and is not closed by the backend."""
    async with open_fake_anthropic_server(FakeResponse.error(529)) as server:
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.base_url, max_retries=5)
        async with client:
            async with AnthropicLLM(client=client) as llm:
                assert llm.client.max_retries == 0
                with trio.fail_after(10), pytest.raises(LLMError):
                    await llm.generate(make_request())
            assert not client.is_closed()
    assert len(server.requests) == 1


def test_client_and_api_key_together_are_refused() -> None:
    """Passing both client= and api_key= is ambiguous and refused."""
    client = anthropic.AsyncAnthropic(api_key=KEY)
    with pytest.raises(ValueError, match="either client= or api_key="):
        AnthropicLLM(client=client, api_key="other")


def test_a_non_positive_timeout_is_refused() -> None:
    """timeout must be a positive number of seconds."""
    with pytest.raises(ValueError, match="timeout"):
        AnthropicLLM(api_key=KEY, timeout=0)


# -- blocking calls -----------------------------------------------------------------------


async def test_generate_returns_text_usage_and_stop_reason() -> None:
    """A blocking reply becomes an LLMResponse with usage including cache tokens."""
    usage = Usage(
        input_tokens=30, output_tokens=12, cache_creation_input_tokens=7, cache_read_input_tokens=90
    )
    async with backend(FakeResponse.text("Hello there!", usage=usage)) as (_, llm):
        with trio.fail_after(10):
            response = await llm.generate(make_request())
    assert response.text == "Hello there!"
    assert response.model == "claude-test"
    assert response.usage == usage
    assert response.stop_reason == "end_turn"


async def test_generate_returns_tool_calls() -> None:
    """tool_use blocks come back with their id, name and arguments."""
    reply = FakeResponse.tool_use("add", {"a": 1, "b": 2}, id="toolu_9", text_before="Adding.")
    async with backend(reply) as (_, llm):
        with trio.fail_after(10):
            response = await llm.generate(make_request())
    assert response.content == (
        TextBlock(text="Adding."),
        ToolUseBlock(id="toolu_9", name="add", input={"a": 1, "b": 2}),
    )
    assert response.stop_reason == "tool_use"


async def test_agent_settings_are_really_sent() -> None:
    """model, temperature, max_tokens, system, tools and history reach the wire."""
    tool = ToolSchema(
        name="add",
        description="Add two numbers.",
        input_schema={"type": "object", "properties": {"a": {"type": "number"}}},
    )
    history = (
        Message.user("what is 1+2?"),
        Message.assistant([ToolUseBlock(id="t1", name="add", input={"a": 1})]),
        Message.user([ToolResultBlock(tool_use_id="t1", content="3")]),
    )
    request = make_request(
        model="claude-haiku-4-5",
        messages=history,
        system="You add numbers.",
        tools=(tool,),
        max_tokens=321,
        temperature=0.2,
    )
    async with backend(FakeResponse.text("3")) as (server, llm):
        with trio.fail_after(10):
            await llm.generate(request)
    body = server.requests[0].body
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 321
    assert body["temperature"] == 0.2
    assert body["system"] == "You add numbers."
    assert body["tools"] == [tool.to_dict()]
    assert body["messages"] == [message_to_dict(m) for m in history]
    assert "stream" not in body


async def test_unset_options_are_not_sent() -> None:
    """No temperature, system or tools keys when the agent sets none."""
    async with backend(FakeResponse.text("ok")) as (server, llm):
        with trio.fail_after(10):
            await llm.generate(make_request())
    body = server.requests[0].body
    assert "temperature" not in body
    assert "system" not in body
    assert "tools" not in body


async def test_empty_model_uses_the_default_model() -> None:
    """A request without a model gets the backend's default_model."""
    async with (
        open_fake_anthropic_server(FakeResponse.text("ok")) as server,
        AnthropicLLM(api_key=KEY, base_url=server.base_url, default_model="claude-opus-5") as llm,
    ):
        with trio.fail_after(10):
            await llm.generate(make_request(model=""))
    assert server.requests[0].body["model"] == "claude-opus-5"


async def test_api_key_is_sent() -> None:
    """The API key reaches the server (the fake server checks it)."""
    async with backend(FakeResponse.text("ok"), api_key=KEY) as (server, llm):
        with trio.fail_after(10):
            response = await llm.generate(make_request())
    assert response.text == "ok"
    headers = server.requests[0].headers
    assert headers.get("x-api-key") == KEY or headers.get("authorization") == f"Bearer {KEY}"
    assert "anthropic-version" in headers


async def test_a_wrong_api_key_is_an_authentication_error() -> None:
    """A key the server rejects gives an AUTHENTICATION LLMError."""
    async with (
        open_fake_anthropic_server(FakeResponse.text("ok"), api_key="sk-right") as server,
        AnthropicLLM(api_key="sk-wrong", base_url=server.base_url) as llm,
    ):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.AUTHENTICATION
    assert caught.value.status_code == 401


async def test_environment_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL configure a backend built with no arguments."""
    async with open_fake_anthropic_server(FakeResponse.text("from env")) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        async with AnthropicLLM() as llm:
            assert llm.base_url.rstrip("/") == server.base_url
            with trio.fail_after(10):
                response = await llm.generate(make_request())
    assert response.text == "from env"
    headers = server.requests[0].headers
    assert "sk-from-env" in (headers.get("x-api-key", "") + headers.get("authorization", ""))


async def test_no_api_key_anywhere_is_an_authentication_error() -> None:
    """Without any credential the call fails as AUTHENTICATION, saying what to set."""
    async with (
        open_fake_anthropic_server(FakeResponse.text("unused")) as server,
        AnthropicLLM(base_url=server.base_url) as llm,
    ):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.AUTHENTICATION
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert server.requests == []


def test_a_missing_configured_profile_is_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Credentials the SDK cannot load at construction give an AUTHENTICATION LLMError."""
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(LLMError) as caught:
        AnthropicLLM()
    assert caught.value.error_class is ErrorClass.AUTHENTICATION
    assert isinstance(caught.value.__cause__, anthropic.CredentialsError)


async def test_keep_alive_reuses_one_connection() -> None:
    """Consecutive calls share one pooled connection."""
    async with backend(FakeResponse.text("a"), FakeResponse.text("b")) as (server, llm):
        with trio.fail_after(10):
            await llm.generate(make_request())
            await llm.generate(make_request())
    assert server.connections == 1


# -- failures -----------------------------------------------------------------------------

ERROR_CASES = [
    pytest.param(FakeResponse.error(400), ErrorClass.INVALID_REQUEST, 400, id="400"),
    pytest.param(FakeResponse.error(401), ErrorClass.AUTHENTICATION, 401, id="401"),
    pytest.param(FakeResponse.error(402), ErrorClass.BUDGET_EXCEEDED, 402, id="402"),
    pytest.param(FakeResponse.error(403), ErrorClass.AUTHENTICATION, 403, id="403"),
    pytest.param(FakeResponse.error(404), ErrorClass.INVALID_REQUEST, 404, id="404"),
    pytest.param(FakeResponse.error(413), ErrorClass.INVALID_REQUEST, 413, id="413"),
    pytest.param(FakeResponse.error(422), ErrorClass.INVALID_REQUEST, 422, id="422"),
    pytest.param(FakeResponse.error(429), ErrorClass.RATE_LIMIT, 429, id="429"),
    pytest.param(
        FakeResponse.error(429, "limit", error_code="enforced_spend_limit_reached"),
        ErrorClass.BUDGET_EXCEEDED,
        429,
        id="429-spend-cap",
    ),
    pytest.param(FakeResponse.error(500), ErrorClass.TEMPORARY, 500, id="500"),
    pytest.param(FakeResponse.error(503), ErrorClass.OVERLOADED, 503, id="503"),
    pytest.param(FakeResponse.error(504), ErrorClass.TIMEOUT, 504, id="504"),
    pytest.param(FakeResponse.error(529), ErrorClass.OVERLOADED, 529, id="529"),
]


@pytest.mark.parametrize(("reply", "error_class", "status"), ERROR_CASES)
async def test_http_errors_of_generate_are_classified(
    reply: FakeResponse, error_class: ErrorClass, status: int
) -> None:
    """Each HTTP failure of a blocking call is an LLMError of the right class, tried once."""
    async with backend(reply) as (server, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    error = caught.value
    assert error.error_class is error_class
    assert error.status_code == status
    assert isinstance(error.__cause__, anthropic.APIStatusError)
    assert not error.output_started
    assert len(server.requests) == 1  # the SDK did not retry behind our back


@pytest.mark.parametrize(("reply", "error_class", "status"), ERROR_CASES)
async def test_http_errors_of_stream_are_classified(
    reply: FakeResponse, error_class: ErrorClass, status: int
) -> None:
    """An HTTP failure before a stream starts is raised when the stream is opened."""
    async with backend(reply) as (server, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
    assert caught.value.error_class is error_class
    assert caught.value.status_code == status
    assert not caught.value.output_started
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry_after": 3}, 3.0), ({"retry_after_ms": 1500}, 1.5), ({}, None)],
)
async def test_retry_after_is_read_from_the_response(
    headers: dict[str, Any], expected: float | None
) -> None:
    """retry-after / retry-after-ms of a 429 land in LLMError.retry_after."""
    async with backend(FakeResponse.error(429, **headers)) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.retry_after == expected
    assert caught.value.retryable


async def test_server_disconnect_of_a_blocking_call_is_temporary() -> None:
    """A connection closed with no reply is a TEMPORARY failure."""
    async with backend(FakeResponse.disconnect()) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.TEMPORARY
    assert isinstance(caught.value.__cause__, anthropic.APIConnectionError)


async def test_unreachable_server_is_temporary() -> None:
    """Nothing listening on the port is a TEMPORARY connection failure."""
    async with open_fake_anthropic_server() as server:
        url = server.base_url
    async with AnthropicLLM(api_key=KEY, base_url=url) as llm:
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.TEMPORARY
    assert url in str(caught.value)


# -- streaming ----------------------------------------------------------------------------


async def test_stream_yields_text_then_one_message_complete() -> None:
    """Text arrives in chunks; the final MessageComplete carries the assembled reply."""
    usage = Usage(
        input_tokens=40, output_tokens=17, cache_creation_input_tokens=3, cache_read_input_tokens=8
    )
    reply = FakeResponse.text("The quick brown fox", chunks=5, usage=usage)
    async with backend(reply) as (server, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    texts = [c.text for c in chunks if isinstance(c, TextChunk)]
    assert len(texts) == 5
    assert "".join(texts) == "The quick brown fox"
    assert isinstance(chunks[-1], MessageComplete)
    assert sum(isinstance(c, MessageComplete) for c in chunks) == 1
    response = chunks[-1].response
    assert response.text == "The quick brown fox"
    # input and cache tokens from message_start, output tokens from message_delta
    assert response.usage == usage
    assert response.stop_reason == "end_turn"
    assert response.model == "claude-test"
    assert server.requests[0].body["stream"] is True


async def test_stream_assembles_tool_arguments_from_many_fragments() -> None:
    """input_json_delta fragments are passed on and assembled into the tool's input."""
    arguments = {"query": "trio structured concurrency", "limit": 10, "tags": ["a", "b"]}
    reply = FakeResponse.tool_use(
        "search", arguments, id="toolu_s", fragments=16, text_before="Let me look."
    )
    async with backend(reply) as (_, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    pieces = [c for c in chunks if isinstance(c, ToolInputChunk)]
    assert len(pieces) == 16
    assert {(p.index, p.tool_use_id, p.tool_name) for p in pieces} == {(1, "toolu_s", "search")}
    assert json.loads("".join(p.partial_json for p in pieces)) == arguments
    final = chunks[-1]
    assert isinstance(final, MessageComplete)
    assert final.response.content == (
        TextBlock(text="Let me look."),
        ToolUseBlock(id="toolu_s", name="search", input=arguments),
    )
    assert final.response.stop_reason == "tool_use"


async def test_stream_assembles_several_tool_calls_separately() -> None:
    """Interleaving content blocks keep their own arguments, by block index."""
    reply = FakeResponse.message(
        [
            ToolUseBlock(id="t1", name="first", input={"n": 1, "s": "x" * 20}),
            ToolUseBlock(id="t2", name="second", input={"n": 2}),
        ],
        json_fragments=4,
    )
    async with backend(reply) as (_, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    final = chunks[-1]
    assert isinstance(final, MessageComplete)
    assert final.response.tool_uses == (
        ToolUseBlock(id="t1", name="first", input={"n": 1, "s": "x" * 20}),
        ToolUseBlock(id="t2", name="second", input={"n": 2}),
    )


@pytest.mark.parametrize("raw", ['{"a": 1', "[1, 2]", "not json"])
async def test_invalid_tool_json_is_marked_not_raised(raw: str) -> None:
    """Arguments that are not a JSON object become {INVALID_JSON_KEY: raw text}."""
    reply = FakeResponse.tool_use("f", {}, id="t", raw_arguments=raw, fragments=3)
    async with backend(reply) as (_, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    final = chunks[-1]
    assert isinstance(final, MessageComplete)
    assert final.response.tool_uses == (
        ToolUseBlock(id="t", name="f", input={INVALID_JSON_KEY: raw}),
    )
    assert INVALID_JSON_KEY == "__vega_invalid_json__"


async def test_tool_without_arguments_gets_an_empty_input() -> None:
    """A tool call with no argument text has input {}."""
    reply = FakeResponse.tool_use("ping", {}, id="t")
    async with backend(reply) as (_, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    final = chunks[-1]
    assert isinstance(final, MessageComplete)
    assert final.response.tool_uses == (ToolUseBlock(id="t", name="ping", input={}),)


async def test_iteration_ends_after_message_complete() -> None:
    """After MessageComplete the iterator is exhausted, and stays so."""
    async with backend(FakeResponse.text("x")) as (_, llm):
        with trio.fail_after(10):
            async with llm.stream(make_request()) as chunks:
                seen = [chunk async for chunk in chunks]
                with pytest.raises(StopAsyncIteration):
                    await chunks.__anext__()
    assert isinstance(seen[-1], MessageComplete)


async def test_stream_error_event_before_output_is_retryable() -> None:
    """An SSE error event before any chunk: the right class, output_started False."""
    reply = FakeResponse.stream_error(after_chunks=0, error_type="overloaded_error")
    received: list[StreamChunk] = []
    async with backend(reply) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            async with llm.stream(make_request()) as chunks:
                async for chunk in chunks:
                    received.append(chunk)
    assert received == []
    error = caught.value
    assert error.error_class is ErrorClass.OVERLOADED
    assert not error.output_started
    assert error.retryable
    assert isinstance(error.__cause__, anthropic.APIStatusError)


async def test_stream_error_event_after_output_is_not_retried_transparently() -> None:
    """An SSE error event after chunks were yielded sets output_started."""
    reply = FakeResponse.stream_error(after_chunks=2, error_type="api_error", message="oops")
    received: list[StreamChunk] = []
    async with backend(reply) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            async with llm.stream(make_request()) as chunks:
                async for chunk in chunks:
                    received.append(chunk)
    assert len(received) == 2
    assert all(isinstance(c, TextChunk) for c in received)
    error = caught.value
    assert error.error_class is ErrorClass.TEMPORARY
    assert error.output_started
    assert not error.retryable
    assert "oops" in str(error)


async def test_tool_argument_chunks_count_as_output() -> None:
    """A tool-argument chunk already yielded also makes output_started True."""
    reply = FakeResponse.stream_error(
        after_chunks=1,
        error_type="rate_limit_error",
        reply=FakeResponse.tool_use("f", {"a": 1}, fragments=3),
    )
    async with backend(reply) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
    assert caught.value.error_class is ErrorClass.RATE_LIMIT
    assert caught.value.output_started


@pytest.mark.parametrize(("after_chunks", "started"), [(0, False), (2, True)])
async def test_disconnect_mid_stream_is_temporary(after_chunks: int, started: bool) -> None:
    """A connection dropped mid-stream is TEMPORARY; output_started says if chunks came."""
    reply = FakeResponse.disconnect(after_chunks=after_chunks)
    async with backend(reply) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
    assert caught.value.error_class is ErrorClass.TEMPORARY
    assert caught.value.output_started is started


async def test_breaking_out_early_closes_the_connection() -> None:
    """Leaving the block after the first chunk closes the HTTP response: the server sees it."""
    reply = FakeResponse.stall(after_chunks=1)
    async with backend(reply) as (server, llm):
        with trio.fail_after(10):
            async with llm.stream(make_request()) as chunks:
                async for chunk in chunks:
                    assert isinstance(chunk, TextChunk)
                    break
            await server.wait_for_aborts(1)
    assert server.aborted == server.requests


async def test_leaving_the_block_before_reading_closes_the_connection() -> None:
    """Opening a stream and leaving at once still closes the response cleanly."""
    async with backend(FakeResponse.stall(after_chunks=0)) as (server, llm):
        with trio.fail_after(10):
            async with llm.stream(make_request()):
                pass
            await server.wait_for_aborts(1)


async def test_an_exception_in_the_block_closes_the_connection_and_propagates() -> None:
    """An error in the consumer's block propagates unchanged and still closes the stream."""
    async with backend(FakeResponse.stall(after_chunks=1)) as (server, llm):
        with trio.fail_after(10):
            with pytest.raises(KeyError, match="consumer"):
                async with llm.stream(make_request()) as chunks:
                    async for _ in chunks:
                        raise KeyError("consumer")
            await server.wait_for_aborts(1)


async def test_cancelling_a_stream_closes_the_connection() -> None:
    """Cancellation inside the block closes the HTTP response and propagates as Cancelled."""
    async with backend(FakeResponse.stall(after_chunks=1)) as (server, llm):
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with llm.stream(make_request()) as chunks:
                    async for _ in chunks:
                        scope.cancel(reason="test: stop streaming")
            assert scope.cancelled_caught
            await server.wait_for_aborts(1)


async def test_cancelling_a_blocking_call_closes_the_connection() -> None:
    """Cancelling generate while the server is still thinking hangs up on it."""
    async with backend(FakeResponse.stall()) as (server, llm):
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(llm.generate, make_request())
                await server.wait_for_requests(1)
                nursery.cancel_scope.cancel()
            await server.wait_for_aborts(1)


# -- time (virtual) -----------------------------------------------------------------------


async def test_a_slow_first_byte_within_the_timeout_succeeds_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reply 20 s late, under a 30 s timeout, arrives after exactly 20 virtual seconds."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    async with backend(FakeResponse.text("late", first_byte_delay=20.0), llm_timeout=30.0) as (
        _,
        llm,
    ):
        with trio.fail_after(1000):
            start = trio.current_time()
            response = await llm.generate(make_request())
            elapsed = trio.current_time() - start
    assert response.text == "late"
    assert elapsed == pytest.approx(20.0)


async def test_a_reply_slower_than_the_timeout_is_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No reply within the backend's timeout: TIMEOUT after exactly that long."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    async with backend(FakeResponse.text("late", first_byte_delay=600.0), llm_timeout=30.0) as (
        _,
        llm,
    ):
        with trio.fail_after(1000), pytest.raises(LLMError) as caught:
            start = trio.current_time()
            try:
                await llm.generate(make_request())
            finally:
                elapsed = trio.current_time() - start
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert caught.value.retryable
    assert elapsed == pytest.approx(30.0)


async def test_a_stream_that_goes_silent_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stream that stops sending for longer than the timeout fails with TIMEOUT."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    async with backend(FakeResponse.stall(after_chunks=1), llm_timeout=30.0) as (server, llm):
        with trio.fail_after(1000), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
        with trio.fail_after(1000):
            await server.wait_for_aborts(1)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert caught.value.output_started


# -- the SSE decoder ------------------------------------------------------------------------


def test_sse_decoder_handles_split_crlf_comments_and_multiline_data() -> None:
    """Events split anywhere across reads decode the same; comments are skipped."""
    wire = b': keep-alive\r\nevent: a\r\ndata: {"x":\r\ndata: 1}\r\n\r\nevent: b\rdata: 2\r\r'
    for split in range(len(wire) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(wire[:split]) + decoder.feed(wire[split:]) + decoder.close()
        assert events == [("a", '{"x":\n1}'), ("b", "2")], split


def test_sse_decoder_finishes_a_last_event_without_blank_line() -> None:
    """A body ending right after a data line still yields that event."""
    decoder = SSEDecoder()
    assert decoder.feed(b"event: e\ndata: tail") == []
    assert decoder.close() == [("e", "tail")]


def test_sse_decoder_is_bounded() -> None:
    """An endless event is refused instead of growing memory without limit."""
    decoder = SSEDecoder(max_buffer=1024)
    with pytest.raises(ValueError, match="exceeds 1024 bytes"):
        for _ in range(100):
            decoder.feed(b"data: " + b"x" * 100 + b"\n")


# -- malformed streams (scripted bytes through httpx2.MockTransport) ------------------------


def sse_client(body: bytes) -> anthropic.AsyncAnthropic:
    """An SDK client whose every reply is this SSE body."""

    def reply(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(reply))
    return anthropic.AsyncAnthropic(
        api_key=KEY, base_url="http://fake.test", http_client=http_client
    )


MESSAGE_START = (
    b'event: message_start\ndata: {"type": "message_start", "message": {"id": "m", "type": '
    b'"message", "role": "assistant", "model": "claude-test", "content": [], "stop_reason": null, '
    b'"usage": {"input_tokens": 3, "output_tokens": 1}}}\n\n'
)
TEXT_START = (
    b'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, '
    b'"content_block": {"type": "text", "text": ""}}\n\n'
)
TEXT_DELTA = (
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
    b'"delta": {"type": "text_delta", "text": "hi"}}\n\n'
)


@pytest.mark.parametrize(
    ("body", "started", "says"),
    [
        (MESSAGE_START + TEXT_START + TEXT_DELTA, True, "ended before message_stop"),
        (MESSAGE_START + b"event: content_block_start\ndata: {oops\n\n", False, "not JSON"),
        (
            MESSAGE_START
            + b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 4, '
            b'"delta": {"type": "input_json_delta", "partial_json": "{}"}}\n\n',
            False,
            "not a tool_use block",
        ),
    ],
)
async def test_malformed_streams_are_temporary_failures(
    body: bytes, started: bool, says: str
) -> None:
    """A stream that breaks the protocol fails as TEMPORARY, saying what was wrong."""
    async with sse_client(body) as client, AnthropicLLM(client=client) as llm:
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
    assert caught.value.error_class is ErrorClass.TEMPORARY
    assert caught.value.output_started is started
    assert says in str(caught.value)


async def test_message_delta_usage_overrides_start_usage_when_present() -> None:
    """Cumulative input/cache counts in message_delta (newer API versions) win."""
    body = (
        MESSAGE_START
        + TEXT_START
        + TEXT_DELTA
        + b'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": '
        b'"max_tokens"}, "usage": {"output_tokens": 9, "input_tokens": 5, '
        b'"cache_read_input_tokens": 2}}\n\n'
        + b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    )
    async with sse_client(body) as client, AnthropicLLM(client=client) as llm:
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    final = chunks[-1]
    assert isinstance(final, MessageComplete)
    assert final.response.usage == Usage(
        input_tokens=5, output_tokens=9, cache_creation_input_tokens=0, cache_read_input_tokens=2
    )
    assert final.response.stop_reason == "max_tokens"
