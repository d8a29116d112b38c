"""End to end: HTTP client → vega-trio serve → agent → the real anthropic SDK → the
project's fake Anthropic server, all over loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from vega_trio import Agent, AnthropicLLM, open_orchestrator
from vega_trio.testing import FakeAnthropicServer, FakeResponse, open_fake_anthropic_server

from ._helpers import collect_events, running_server


@pytest.fixture(autouse=True)
def clean_anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ANTHROPIC_* variable or profile of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropicServer]:
    async with open_fake_anthropic_server() as srv:
        yield srv


def lookup_city(city: str) -> str:
    """Describe a city.

    Args:
        city: the city's name.
    """
    return f"{city} is in Slovenia"


async def test_chat_stream_over_the_real_sdk_is_the_section_1_4_stream(
    fake: FakeAnthropicServer,
) -> None:
    """An SDK tool-using reply arrives over SSE as text, tool_start, tool_end, done."""
    fake.enqueue(
        FakeResponse.tool_use(
            "lookup_city", {"city": "Ljubljana"}, id="toolu_1", fragments=5, text_before="Let me "
        ),
        FakeResponse.text("It is in Slovenia.", chunks=3),
    )
    async with AnthropicLLM(api_key="k", base_url=fake.base_url) as llm:
        async with open_orchestrator(llm=llm) as orch:
            orch.agents.define(
                Agent(name="geo", model="claude-sonnet-5-5", tools=[lookup_city]), source="composed"
            )
            async with running_server(orch) as srv:
                async with srv.client.stream(
                    "POST", "/api/agents/geo/chat/stream", json={"message": "Where?"}
                ) as response:
                    with trio.fail_after(10):
                        events = await collect_events(response)
    types = [e.event for e in events]
    assert types[0] == "text_delta" and types[-1] == "done"
    start = next(e.json for e in events if e.event == "tool_start")
    assert start == {
        "type": "tool_start",
        "tool_call_id": "toolu_1",
        "tool_name": "lookup_city",
        "arguments": {"city": "Ljubljana"},
    }
    text = "".join(e.json["delta"] for e in events if e.event == "text_delta")
    assert text == "Let me It is in Slovenia."
    assert events[-1].json["metrics"]["cost_usd"] > 0


async def test_a_rate_limited_model_is_a_429_with_retry_after(fake: FakeAnthropicServer) -> None:
    """The provider's 429 (retry-after: 7) is HTTP 429 with Retry-After: 7."""
    fake.enqueue(*[FakeResponse.error(429, retry_after=7)] * 5)
    async with AnthropicLLM(api_key="k", base_url=fake.base_url) as llm:
        async with open_orchestrator(llm=llm) as orch:
            orch.agents.define(Agent(name="a", model="claude-sonnet-5-5", retry=None))
            async with running_server(orch) as srv:
                with trio.fail_after(10):
                    reply = await srv.client.post("/api/agents/a/chat", json={"message": "hi"})
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "7"
    assert reply.json()["error_class"] == "rate_limit"
