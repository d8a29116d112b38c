"""AnthropicLLM: the real anthropic SDK talking to the fake server over loopback."""

from __future__ import annotations

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
    AnthropicLLM,
)
from vega_trio.llm._messages import (
    Message,
    ToolResultBlock,
    ToolUseBlock,
    message_to_dict,
)
from vega_trio.llm._protocol import (
    LLM,
    LLMRequest,
    MessageComplete,
    StreamChunk,
    ToolSchema,
    Usage,
)
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
