"""One suite over both backends: each behaviour of an LLM backend is tested once, for
AnthropicLLM against the fake Anthropic server and for OpenAICompatibleLLM against the
fake OpenAI server, both through their real SDKs over loopback.

What only one provider has (thinking blocks, the Chat Completions request mapping,
scripted malformed bytes of one wire format) stays in test_anthropic.py / test_openai.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import attrs
import httpx2
import openai
import pytest
import trio
import trio.testing

from vega_trio._errors import ErrorClass, LLMError
from vega_trio.llm import INVALID_JSON_KEY, AnthropicLLM, OpenAICompatibleLLM
from vega_trio.llm._classify import ANTHROPIC_ERRORS
from vega_trio.llm._classify_openai import OPENAI_ERRORS
from vega_trio.llm._messages import Message, TextBlock, ToolUseBlock
from vega_trio.llm._protocol import (
    LLM,
    LLMRequest,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ToolInputChunk,
    Usage,
)
from vega_trio.llm._sse import SSEDecoder
from vega_trio.llm._stream import ChunkStream
from vega_trio.testing import (
    FakeChatResponse,
    FakeResponse,
    open_fake_anthropic_server,
    open_fake_openai_server,
)

# NOTE: these tests do real socket I/O on loopback, so most run on the real clock. The
# ones that measure virtual time use autojump_clock with a threshold above zero: at 0 the
# MockClock jumps whenever Trio waits on anything, including the worker thread an SDK
# uses on a client's first request and loopback data in flight, so a timeout would fire
# before the reply had any chance to arrive.
AUTOJUMP_THRESHOLD = 0.2

KEY = "sk-test-key"


@attrs.frozen
class Provider:
    """One backend, its fake server and what its wire calls things."""

    name: str
    #: The fake server's reply class (FakeResponse or FakeChatResponse): both offer
    #: text, message, error, stream_error, disconnect and stall alike.
    reply: Any
    tool_call: Callable[..., Any]
    open_server: Callable[..., AbstractAsyncContextManager[Any]]
    make_llm: Callable[[str, float], Any]
    status_error: type[Exception]
    connection_error: type[Exception]
    stream_error: type[Exception]
    end_turn: str
    tool_turn: str
    #: The index a tool call after some text has in ToolInputChunk.
    tool_index_after_text: int
    #: A 429 that the provider says is an exhausted budget, not a rate limit.
    budget_429: Any

    @asynccontextmanager
    async def backend(
        self, *replies: Any, llm_timeout: float = 30.0
    ) -> AsyncIterator[tuple[Any, Any]]:
        """A fake server with the replies queued, and a backend pointed at it."""
        async with (
            self.open_server(*replies) as server,
            self.make_llm(server.base_url, llm_timeout) as llm,
        ):
            yield server, llm


ANTHROPIC = Provider(
    name="anthropic",
    reply=FakeResponse,
    tool_call=FakeResponse.tool_use,
    open_server=open_fake_anthropic_server,
    make_llm=lambda url, timeout: AnthropicLLM(api_key=KEY, base_url=url, timeout=timeout),
    status_error=anthropic.APIStatusError,
    connection_error=anthropic.APIConnectionError,
    stream_error=anthropic.APIStatusError,
    end_turn="end_turn",
    tool_turn="tool_use",
    tool_index_after_text=1,
    budget_429=FakeResponse.error(429, "limit", error_code="enforced_spend_limit_reached"),
)
OPENAI = Provider(
    name="openai",
    reply=FakeChatResponse,
    tool_call=FakeChatResponse.tool_call,
    open_server=open_fake_openai_server,
    make_llm=lambda url, timeout: OpenAICompatibleLLM(base_url=url, timeout=timeout),
    status_error=openai.APIStatusError,
    connection_error=openai.APIConnectionError,
    stream_error=openai.APIError,
    end_turn="stop",
    tool_turn="tool_calls",
    tool_index_after_text=0,
    budget_429=FakeChatResponse.error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        error_type="insufficient_quota",
        error_code="insufficient_quota",
    ),
)


@pytest.fixture(params=[ANTHROPIC, OPENAI], ids=lambda p: p.name)
def provider(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Provider:
    """Each backend in turn, with no credential of the developer leaking in."""
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # the anthropic SDK reads ~/.config/anthropic
    chosen: Provider = request.param
    return chosen


def make_request(**changes: Any) -> LLMRequest:
    fields: dict[str, Any] = {"model": "model-test", "messages": (Message.user("hi"),)}
    fields.update(changes)
    return LLMRequest(**fields)


async def collect(llm: LLM, request: LLMRequest) -> list[StreamChunk]:
    async with llm.stream(request) as chunks:
        return [chunk async for chunk in chunks]


def final(chunks: list[StreamChunk]) -> MessageComplete:
    assert isinstance(chunks[-1], MessageComplete)
    assert sum(isinstance(c, MessageComplete) for c in chunks) == 1
    return chunks[-1]


# -- construction and blocking calls ------------------------------------------------------


async def test_implements_the_llm_protocol_with_sdk_retries_off(provider: Provider) -> None:
    """The backend is an LLM, its SDK client never retries, 300 s per call by default."""
    async with provider.make_llm("http://127.0.0.1:9/v1", 300.0) as llm:
        as_protocol: LLM = llm
        assert isinstance(as_protocol, LLM)
        assert llm.client.max_retries == 0
        assert llm.timeout == 300.0
    assert llm.client.is_closed()


async def test_generate_returns_text_usage_and_stop_reason(provider: Provider) -> None:
    """A blocking reply becomes text, usage (cache reads apart) and the stop reason."""
    usage = Usage(input_tokens=100, output_tokens=7, cache_read_input_tokens=40)
    reply = provider.reply.text("Hello!", usage=usage, model="served")
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10):
            response = await llm.generate(make_request())
    assert response.text == "Hello!"
    assert response.usage == usage
    assert response.stop_reason == provider.end_turn
    assert response.model == "served"


async def test_generate_returns_several_tool_calls_in_order(provider: Provider) -> None:
    """Tool calls of a blocking reply come back in order with id, name and arguments."""
    reply = provider.reply.message(
        [
            TextBlock(text="Checking."),
            ToolUseBlock(id="call_a", name="add", input={"a": 1, "b": 2}),
            ToolUseBlock(id="call_b", name="mul", input={"x": [1, 2]}),
        ]
    )
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10):
            response = await llm.generate(make_request())
    assert response.content == (
        TextBlock(text="Checking."),
        ToolUseBlock(id="call_a", name="add", input={"a": 1, "b": 2}),
        ToolUseBlock(id="call_b", name="mul", input={"x": [1, 2]}),
    )
    assert response.stop_reason == provider.tool_turn


async def test_keep_alive_reuses_one_connection(provider: Provider) -> None:
    """Consecutive calls share one pooled connection."""
    replies = (provider.reply.text("a"), provider.reply.text("b"))
    async with provider.backend(*replies) as (server, llm):
        with trio.fail_after(10):
            await llm.generate(make_request())
            await llm.generate(make_request())
    assert server.connections == 1


# -- failures -----------------------------------------------------------------------------

# The status of an HTTP failure and the class it is: the same for every provider.
STATUS_CASES = [
    (400, ErrorClass.INVALID_REQUEST),
    (401, ErrorClass.AUTHENTICATION),
    (402, ErrorClass.BUDGET_EXCEEDED),
    (403, ErrorClass.AUTHENTICATION),
    (404, ErrorClass.INVALID_REQUEST),
    (409, ErrorClass.TEMPORARY),
    (413, ErrorClass.INVALID_REQUEST),
    (422, ErrorClass.INVALID_REQUEST),
    (429, ErrorClass.RATE_LIMIT),
    (500, ErrorClass.TEMPORARY),
    (502, ErrorClass.TEMPORARY),
    (503, ErrorClass.OVERLOADED),
    (504, ErrorClass.TIMEOUT),
    (529, ErrorClass.OVERLOADED),
]


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize(("status", "error_class"), STATUS_CASES)
async def test_http_errors_are_classified(
    provider: Provider, status: int, error_class: ErrorClass, stream: bool
) -> None:
    """Each HTTP failure is an LLMError of the right class, naming the server, tried once."""
    async with provider.backend(provider.reply.error(status)) as (server, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            if stream:
                await collect(llm, make_request())
            else:
                await llm.generate(make_request())
    error = caught.value
    assert error.error_class is error_class
    assert error.retryable is error_class.retryable
    assert error.status_code == status
    assert isinstance(error.__cause__, provider.status_error)
    assert not error.output_started
    assert server.base_url in str(error)
    assert len(server.requests) == 1  # the SDK did not retry behind our back


async def test_a_budget_429_is_budget_exceeded_not_a_rate_limit(provider: Provider) -> None:
    """A 429 whose code says the account cannot pay is BUDGET_EXCEEDED, not retried."""
    async with provider.backend(provider.budget_429) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.BUDGET_EXCEEDED
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry_after": 3}, 3.0), ({"retry_after_ms": 1500}, 1.5), ({}, None)],
)
async def test_retry_after_is_read_from_the_response(
    provider: Provider, headers: dict[str, Any], expected: float | None
) -> None:
    """retry-after / retry-after-ms of a 429 land in LLMError.retry_after."""
    async with provider.backend(provider.reply.error(429, **headers)) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.retry_after == expected
    assert caught.value.retryable


async def test_server_disconnect_of_a_blocking_call_is_temporary(provider: Provider) -> None:
    """A connection closed with no reply is a TEMPORARY failure."""
    async with provider.backend(provider.reply.disconnect()) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.TEMPORARY
    assert isinstance(caught.value.__cause__, provider.connection_error)


async def test_unreachable_server_is_temporary(provider: Provider) -> None:
    """Nothing listening on the port is a TEMPORARY connection failure naming the URL."""
    async with provider.open_server() as server:
        url = server.base_url
    async with provider.make_llm(url, 30.0) as llm:
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(make_request())
    assert caught.value.error_class is ErrorClass.TEMPORARY
    assert url in str(caught.value)


# -- streaming ----------------------------------------------------------------------------


async def test_stream_yields_text_then_one_message_complete(provider: Provider) -> None:
    """Text arrives in chunks; the one final MessageComplete carries the assembled reply."""
    usage = Usage(input_tokens=40, output_tokens=17, cache_read_input_tokens=8)
    reply = provider.reply.text("The quick brown fox", chunks=5, usage=usage)
    async with provider.backend(reply) as (server, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    texts = [c.text for c in chunks if isinstance(c, TextChunk)]
    assert len(texts) == 5
    assert "".join(texts) == "The quick brown fox"
    response = final(chunks).response
    assert response.text == "The quick brown fox"
    assert response.usage == usage
    assert response.stop_reason == provider.end_turn
    assert response.model == "model-test"
    assert server.requests[0].body["stream"] is True


async def test_stream_assembles_tool_arguments_from_many_fragments(provider: Provider) -> None:
    """Argument fragments are passed on as ToolInputChunks and assembled into the input."""
    arguments = {"query": "trio structured concurrency", "limit": 10, "tags": ["a", "b"]}
    reply = provider.tool_call(
        "search", arguments, id="call_s", fragments=16, text_before="Let me look."
    )
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    pieces = [c for c in chunks if isinstance(c, ToolInputChunk)]
    assert len(pieces) == 16
    index = provider.tool_index_after_text
    assert {(p.index, p.tool_use_id, p.tool_name) for p in pieces} == {(index, "call_s", "search")}
    assert json.loads("".join(p.partial_json for p in pieces)) == arguments
    response = final(chunks).response
    assert response.content == (
        TextBlock(text="Let me look."),
        ToolUseBlock(id="call_s", name="search", input=arguments),
    )
    assert response.stop_reason == provider.tool_turn


async def test_stream_assembles_several_tool_calls_separately(provider: Provider) -> None:
    """Fragments of several calls keep their own arguments, in order."""
    reply = provider.reply.message(
        [
            ToolUseBlock(id="t1", name="first", input={"n": 1, "s": "x" * 20}),
            ToolUseBlock(id="t2", name="second", input={"n": 2}),
        ],
        json_fragments=4,
    )
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10):
            chunks = await collect(llm, make_request())
    assert {c.index for c in chunks if isinstance(c, ToolInputChunk)} == {0, 1}
    assert final(chunks).response.tool_uses == (
        ToolUseBlock(id="t1", name="first", input={"n": 1, "s": "x" * 20}),
        ToolUseBlock(id="t2", name="second", input={"n": 2}),
    )


@pytest.mark.parametrize("raw", ['{"a": 1', "[1, 2]", "not json"])
async def test_invalid_tool_json_is_marked_not_raised(provider: Provider, raw: str) -> None:
    """Arguments that are not a JSON object become {INVALID_JSON_KEY: raw}, streamed."""
    reply = provider.tool_call("f", {}, id="t", raw_arguments=raw, fragments=3)
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10):
            response = final(await collect(llm, make_request())).response
    assert response.tool_uses == (ToolUseBlock(id="t", name="f", input={INVALID_JSON_KEY: raw}),)


async def test_tool_without_arguments_gets_an_empty_input(provider: Provider) -> None:
    """A tool call with no argument text has input {}."""
    reply = provider.tool_call("ping", {}, id="t", raw_arguments="")
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10):
            response = final(await collect(llm, make_request())).response
    assert response.tool_uses == (ToolUseBlock(id="t", name="ping", input={}),)


async def test_iteration_ends_after_message_complete(provider: Provider) -> None:
    """After MessageComplete the iterator is exhausted, and stays so."""
    async with provider.backend(provider.reply.text("x")) as (_, llm):
        with trio.fail_after(10):
            async with llm.stream(make_request()) as chunks:
                seen = [chunk async for chunk in chunks]
                with pytest.raises(StopAsyncIteration):
                    await chunks.__anext__()
    assert isinstance(seen[-1], MessageComplete)


async def test_a_stream_error_before_output_is_retryable(provider: Provider) -> None:
    """An error sent in the stream before any chunk: its class, output_started False."""
    reply = provider.reply.stream_error(after_chunks=0, error_type="overloaded_error")
    received: list[StreamChunk] = []
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            async with llm.stream(make_request()) as chunks:
                async for chunk in chunks:
                    received.append(chunk)
    assert received == []
    error = caught.value
    assert error.error_class is ErrorClass.OVERLOADED
    assert not error.output_started
    assert error.retryable
    assert isinstance(error.__cause__, provider.stream_error)


async def test_a_stream_error_after_output_is_not_retried_transparently(
    provider: Provider,
) -> None:
    """An error sent in the stream after chunks were yielded sets output_started."""
    reply = provider.reply.stream_error(after_chunks=2, error_type="api_error", message="oops")
    received: list[StreamChunk] = []
    async with provider.backend(reply) as (_, llm):
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


async def test_tool_argument_chunks_count_as_output(provider: Provider) -> None:
    """A tool-argument chunk already yielded also makes output_started True."""
    reply = provider.reply.stream_error(
        after_chunks=1,
        error_type="rate_limit_error",
        reply=provider.tool_call("f", {"a": 1}, fragments=3),
    )
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
    assert caught.value.error_class is ErrorClass.RATE_LIMIT
    assert caught.value.output_started


@pytest.mark.parametrize(("after_chunks", "started"), [(0, False), (2, True)])
async def test_disconnect_mid_stream_is_temporary(
    provider: Provider, after_chunks: int, started: bool
) -> None:
    """A connection dropped mid-stream is TEMPORARY; output_started says if chunks came."""
    reply = provider.reply.disconnect(after_chunks=after_chunks)
    async with provider.backend(reply) as (_, llm):
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
    assert caught.value.error_class is ErrorClass.TEMPORARY
    assert caught.value.output_started is started


# -- closing ------------------------------------------------------------------------------


async def test_breaking_out_early_closes_the_connection(provider: Provider) -> None:
    """Leaving the block after the first chunk closes the HTTP response: the server sees it."""
    async with provider.backend(provider.reply.stall(after_chunks=1)) as (server, llm):
        with trio.fail_after(10):
            async with llm.stream(make_request()) as chunks:
                async for chunk in chunks:
                    assert isinstance(chunk, TextChunk)
                    break
            await server.wait_for_aborts(1)
    assert server.aborted == server.requests


async def test_leaving_the_block_before_reading_closes_the_connection(
    provider: Provider,
) -> None:
    """Opening a stream and leaving at once still closes the response cleanly."""
    async with provider.backend(provider.reply.stall(after_chunks=0)) as (server, llm):
        with trio.fail_after(10):
            async with llm.stream(make_request()):
                pass
            await server.wait_for_aborts(1)


async def test_an_exception_in_the_block_closes_the_connection_and_propagates(
    provider: Provider,
) -> None:
    """An error in the consumer's block propagates unchanged and still closes the stream."""
    async with provider.backend(provider.reply.stall(after_chunks=1)) as (server, llm):
        with trio.fail_after(10):
            with pytest.raises(KeyError, match="consumer"):
                async with llm.stream(make_request()) as chunks:
                    async for _ in chunks:
                        raise KeyError("consumer")
            await server.wait_for_aborts(1)


async def test_cancelling_a_stream_closes_the_connection(provider: Provider) -> None:
    """Cancellation inside the block closes the HTTP response and propagates as Cancelled."""
    async with provider.backend(provider.reply.stall(after_chunks=1)) as (server, llm):
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with llm.stream(make_request()) as chunks:
                    async for _ in chunks:
                        scope.cancel(reason="test: stop streaming")
            assert scope.cancelled_caught
            await server.wait_for_aborts(1)


async def test_cancelling_a_blocking_call_closes_the_connection(provider: Provider) -> None:
    """Cancelling generate while the server is still thinking hangs up on it."""
    async with provider.backend(provider.reply.stall()) as (server, llm):
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(llm.generate, make_request())
                await server.wait_for_requests(1)
                nursery.cancel_scope.cancel()
            await server.wait_for_aborts(1)


# -- time (virtual) -----------------------------------------------------------------------


async def test_a_slow_first_byte_within_the_timeout_succeeds_on_time(
    provider: Provider, autojump_clock: trio.testing.MockClock
) -> None:
    """A reply 20 s late, under a 30 s timeout, arrives after exactly 20 virtual seconds."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    reply = provider.reply.text("late", first_byte_delay=20.0)
    async with provider.backend(reply, llm_timeout=30.0) as (_, llm):
        with trio.fail_after(1000):
            start = trio.current_time()
            response = await llm.generate(make_request())
            elapsed = trio.current_time() - start
    assert response.text == "late"
    assert elapsed == pytest.approx(20.0)


async def test_a_reply_slower_than_the_timeout_is_a_timeout(
    provider: Provider, autojump_clock: trio.testing.MockClock
) -> None:
    """No reply within the backend's timeout: TIMEOUT after exactly that long."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    reply = provider.reply.text("late", first_byte_delay=600.0)
    async with provider.backend(reply, llm_timeout=30.0) as (_, llm):
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
    provider: Provider, autojump_clock: trio.testing.MockClock
) -> None:
    """A stream that stops sending for longer than the timeout fails with TIMEOUT."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    reply = provider.reply.stall(after_chunks=1)
    async with provider.backend(reply, llm_timeout=30.0) as (server, llm):
        with trio.fail_after(1000), pytest.raises(LLMError) as caught:
            await collect(llm, make_request())
        with trio.fail_after(1000):
            await server.wait_for_aborts(1)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert caught.value.output_started


# -- one machine, one table ----------------------------------------------------------------


async def test_both_backends_read_streams_with_the_one_state_machine(provider: Provider) -> None:
    """A stream of either backend is the shared ChunkStream, not a copy of it."""
    async with provider.backend(provider.reply.text("x")) as (_, llm):
        with trio.fail_after(10):
            async with llm.stream(make_request()) as chunks:
                assert type(chunks) is ChunkStream
                assert [c async for c in chunks][-1].response.text == "x"


@pytest.mark.parametrize("status", range(400, 600))
def test_both_tables_classify_every_status_alike(status: int) -> None:
    """Without codes in the body, a status means the same class for either provider."""
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")
    response = httpx2.Response(status, request=request)
    classes = {
        table.classify(error(response))
        for table, error in (
            (ANTHROPIC_ERRORS, lambda r: anthropic.APIStatusError("failed", response=r, body=None)),
            (OPENAI_ERRORS, lambda r: openai.APIStatusError("failed", response=r, body=None)),
        )
    }
    assert len(classes) == 1, classes


# -- the SSE decoder both backends read with -------------------------------------------------


def test_sse_decoder_handles_split_crlf_comments_and_multiline_data() -> None:
    """Events split anywhere across reads decode the same; comments are skipped."""
    wire = b': keep-alive\r\nevent: a\r\ndata: {"x":\r\ndata: 1}\r\n\r\nevent: b\rdata: 2\r\r'
    wire += b"data: [DONE]\r\n\r\n"
    for split in range(len(wire) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(wire[:split]) + decoder.feed(wire[split:]) + decoder.close()
        assert events == [("a", '{"x":\n1}'), ("b", "2"), ("message", "[DONE]")], split


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
