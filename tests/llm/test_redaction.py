"""LLM errors never show a secret (SPEC §11): a password in the base URL and a key the
server echoes back, through the real SDKs against the project's fake servers."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

import pytest
import trio

from vega_trio import AnthropicLLM, LLMError
from vega_trio._redact import RedactingFilter
from vega_trio.llm import LLMRequest, Message, OpenAICompatibleLLM
from vega_trio.testing import (
    FakeChatResponse,
    FakeResponse,
    open_fake_anthropic_server,
    open_fake_openai_server,
)

# Shaped like nothing the redaction patterns know: only register_secret can catch it.
KEY = "plain-private-credential-4242"
PASSWORD = "hunter2-in-the-url"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider variable of the developer leaks in; the SDK finds no profile."""
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


def _request() -> LLMRequest:
    return LLMRequest(model="m", messages=(Message.user("hi"),))


def _with_userinfo(base_url: str) -> str:
    scheme, rest = base_url.split("://", 1)
    return f"{scheme}://admin:{PASSWORD}@{rest}"


def _everything_shown(error: BaseException) -> str:
    """Every text a user could see of the error: str, repr, the traceback with its cause
    chain, and a log record of it formatted through the redacting handler filter."""
    record = logging.makeLogRecord(
        {"msg": "call failed: %s", "args": (error,), "exc_info": (type(error), error, None)}
    )
    RedactingFilter().filter(record)
    logged = logging.Formatter().format(record)
    shown = "".join(traceback.format_exception(error))
    return "\n".join([str(error), repr(error), shown, logged])


async def test_anthropic_echoed_key_and_url_password_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An Anthropic error whose body echoes the key, sent to a base URL with a password
    (ANTHROPIC_BASE_URL), shows neither anywhere, traceback and log record included."""
    echo = FakeResponse.error(401, f"invalid x-api-key {KEY} (from admin:{PASSWORD})")
    async with open_fake_anthropic_server(echo) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", _with_userinfo(server.base_url))
        async with AnthropicLLM(api_key=KEY) as llm:
            with trio.fail_after(10), pytest.raises(LLMError) as caught:
                await llm.generate(_request())
            assert PASSWORD not in repr(llm)
    assert len(server.requests) == 1  # it really went to the server
    shown = _everything_shown(caught.value)
    assert KEY not in shown and PASSWORD not in shown
    assert "***" in str(caught.value) and "401" in str(caught.value)
    assert KEY not in caught.value.args[0] and PASSWORD not in caught.value.args[0]


async def test_openai_echoed_key_and_url_password_are_masked() -> None:
    """The same for the OpenAI-compatible backend: an echoed key in the error body and a
    password in base_url never reach the message, the cause or a traceback."""
    echo = FakeChatResponse.error(400, f"bad request from key {KEY}; url admin:{PASSWORD}")
    async with open_fake_openai_server(echo) as server:
        base_url = _with_userinfo(server.base_url)
        async with OpenAICompatibleLLM(api_key=KEY, base_url=base_url) as llm:
            with trio.fail_after(10), pytest.raises(LLMError) as caught:
                await llm.generate(_request())
            assert PASSWORD not in repr(llm)
    assert len(server.requests) == 1
    shown = _everything_shown(caught.value)
    assert KEY not in shown and PASSWORD not in shown
    assert "***" in str(caught.value) and "400" in str(caught.value)


async def test_connection_error_to_a_url_with_a_password_is_masked() -> None:
    """A failure before any answer (nothing listening) names the URL without its
    password."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://admin:{PASSWORD}@127.0.0.1:{port}"
    async with AnthropicLLM(api_key=KEY, base_url=url, timeout=5) as llm:
        with trio.fail_after(10), pytest.raises(LLMError) as caught:
            await llm.generate(_request())
    shown = _everything_shown(caught.value)
    assert PASSWORD not in shown and KEY not in shown
