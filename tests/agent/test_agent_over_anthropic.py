"""End to end: agents on the real anthropic SDK, talking to the fake server over loopback."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from vega_trio import Agent, AnthropicLLM, ProcessExited, open_orchestrator
from vega_trio.agent import DoneEvent, ToolEndEvent, ToolStartEvent
from vega_trio.llm import Usage
from vega_trio.testing import FakeAnthropicServer, FakeResponse, open_fake_anthropic_server


@pytest.fixture(autouse=True)
def clean_anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ANTHROPIC_* variable or profile of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
async def server() -> AsyncIterator[FakeAnthropicServer]:
    async with open_fake_anthropic_server() as srv:
        yield srv


def lookup_city(city: str, country: str) -> str:
    """Describe a city.

    Args:
        city: the city's name.
        country: the country it is in.
    """
    return f"{city} is in {country}"


async def test_streamed_tool_use_with_fragmented_arguments(server: FakeAnthropicServer) -> None:
    """Arguments split over many input_json_delta fragments reach the tool whole; usage and
    cost are reported in the done event."""
    server.enqueue(
        FakeResponse.tool_use(
            "lookup_city",
            {"city": "Ljubljana", "country": "Slovenia"},
            id="toolu_1",
            fragments=12,
            text_before="Looking it up.",
        ),
        FakeResponse.text(
            "Ljubljana is in Slovenia.",
            chunks=4,
            usage=Usage(input_tokens=1000, output_tokens=20, cache_read_input_tokens=500),
        ),
    )
    async with AnthropicLLM(api_key="k", base_url=server.base_url) as llm:
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(
                Agent(name="geo", model="claude-sonnet-5-5", tools=[lookup_city])
            )
            async with proc.send_stream_rich("Where is Ljubljana?") as stream:
                events = [e async for e in stream]
    start = next(e for e in events if isinstance(e, ToolStartEvent))
    end = next(e for e in events if isinstance(e, ToolEndEvent))
    assert dict(start.arguments) == {"city": "Ljubljana", "country": "Slovenia"}
    assert end.result == "Ljubljana is in Slovenia" and not end.is_error
    assert stream.text == "Looking it up.Ljubljana is in Slovenia."
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.metrics.output_tokens >= 20
    assert proc.metrics.cache_read_input_tokens == 500
    # claude-sonnet-5-5 from the packaged price table: input $2/M, cache read x0.10.
    assert proc.metrics.cost_usd > 1000 * 2 / 1e6
    tool_result = server.requests[1].body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == "toolu_1"


async def test_blocking_send_sends_the_agents_settings(server: FakeAnthropicServer) -> None:
    """model, system, max_tokens, temperature and tools of the agent are really sent."""
    server.enqueue(FakeResponse.text("ok"))
    async with AnthropicLLM(api_key="k", base_url=server.base_url) as llm:
        async with open_orchestrator(llm=llm) as orch:
            agent = Agent(
                name="a",
                model="claude-haiku-4-5",
                system="Be brief.",
                max_tokens=321,
                temperature=0.3,
                tools=[lookup_city],
            )
            proc = await orch.spawn(agent)
            assert await proc.send("hi") == "ok"
    body = server.requests[0].body
    assert body["model"] == "claude-haiku-4-5"
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 321
    assert body["temperature"] == 0.3
    assert [t["name"] for t in body["tools"]] == ["lookup_city"]


async def test_kill_during_a_streamed_call_closes_the_http_stream(
    server: FakeAnthropicServer,
) -> None:
    """Killing a process mid-stream answers the caller at once and the server sees the
    client hang up; no thread is left behind."""
    server.enqueue(FakeResponse.stall(after_chunks=1))
    threads_before = {t.ident for t in threading.enumerate()}
    async with AnthropicLLM(api_key="k", base_url=server.base_url) as llm:
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(Agent(name="a"))
            with trio.fail_after(10):
                async with proc.send_stream_rich("hi") as stream:
                    first = await stream.__anext__()
                    assert first.type == "text_delta"
                    proc.kill("operator")
                    rest = [e async for e in stream]
                await server.wait_for_aborts(1)
    assert [e.type for e in rest] == ["error"]
    assert isinstance(stream.error, ProcessExited)
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and not t.daemon]
    assert leftover == []


async def test_leaving_the_block_during_a_blocking_call(server: FakeAnthropicServer) -> None:
    """A blocking call in flight when the orchestrator shuts down is answered, and its
    HTTP request is abandoned."""
    server.enqueue(FakeResponse.stall())
    outcome: list[BaseException] = []

    async def caller(proc: object) -> None:
        try:
            await proc.send("hi")  # type: ignore[attr-defined]
        except ProcessExited as exc:
            outcome.append(exc)

    async with AnthropicLLM(api_key="k", base_url=server.base_url) as llm:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                async with open_orchestrator(llm=llm, shutdown_timeout=0.5) as orch:
                    proc = await orch.spawn(Agent(name="a"))
                    nursery.start_soon(caller, proc)
                    await server.wait_for_requests(1)
            await server.wait_for_aborts(1)
    assert len(outcome) == 1
    assert outcome[0].reason.kind == "shutdown"
