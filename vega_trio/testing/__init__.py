"""Test doubles for code built on vega-trio: run agents offline, deterministically."""

from __future__ import annotations

from ._fake_openai import (
    ChatResponder,
    ChatStreamFailure,
    FakeChatResponse,
    FakeOpenAIServer,
    open_fake_openai_server,
)
from ._fake_server import (
    FakeAnthropicServer,
    FakeResponse,
    RecordedRequest,
    open_fake_anthropic_server,
)
from ._fake_telegram import (
    FakeTelegramServer,
    TelegramCall,
    TelegramSent,
    open_fake_telegram_server,
)
from ._scripted import ScriptedLLM, ScriptExhausted, Step

__all__ = [
    "ScriptExhausted",
    "ScriptedLLM",
    "Step",
    "FakeAnthropicServer",
    "FakeResponse",
    "RecordedRequest",
    "open_fake_anthropic_server",
    "ChatResponder",
    "ChatStreamFailure",
    "FakeChatResponse",
    "FakeOpenAIServer",
    "open_fake_openai_server",
    "FakeTelegramServer",
    "TelegramCall",
    "TelegramSent",
    "open_fake_telegram_server",
]
