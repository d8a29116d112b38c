"""Test doubles for code built on vega-trio: run agents offline, deterministically."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._scripted import ScriptedLLM, ScriptExhausted, Step

if TYPE_CHECKING:
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

# NOTE: the fake servers (and h11 under them) load on first use: `--llm scripted` runs
# on ScriptedLLM alone, and the other commands need neither.
__getattr__ = lazy_attributes(
    __name__,
    {
        "ChatResponder": "._fake_openai",
        "ChatStreamFailure": "._fake_openai",
        "FakeChatResponse": "._fake_openai",
        "FakeOpenAIServer": "._fake_openai",
        "open_fake_openai_server": "._fake_openai",
        "FakeAnthropicServer": "._fake_server",
        "FakeResponse": "._fake_server",
        "RecordedRequest": "._fake_server",
        "open_fake_anthropic_server": "._fake_server",
        "FakeTelegramServer": "._fake_telegram",
        "TelegramCall": "._fake_telegram",
        "TelegramSent": "._fake_telegram",
        "open_fake_telegram_server": "._fake_telegram",
    },
)

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
