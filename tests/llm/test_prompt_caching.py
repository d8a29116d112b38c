"""Anthropic prompt caching: the breakpoints AnthropicLLM sends, the fake server's prompt
cache that bills them, and the saving an agent sees over a conversation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import Agent, open_orchestrator
from vega_trio.events import LLMCalled
from vega_trio.llm import AnthropicLLM, PriceTable
from vega_trio.llm._caching import MAX_BREAKPOINTS, add_cache_breakpoints, min_cacheable_tokens
from vega_trio.llm._messages import Message, ToolResultBlock, ToolUseBlock
from vega_trio.llm._protocol import LLMRequest, ToolSchema, Usage
from vega_trio.testing import FakeAnthropicServer, FakeResponse, open_fake_anthropic_server

KEY = "sk-ant-test-key"
MODEL = "claude-sonnet-4-5"  # minimum cacheable prefix: 1024 tokens
LONG_SYSTEM = "You are a careful assistant. Follow the house rules below.\n" + "Rule. " * 1200
TOOL = ToolSchema(
    name="lookup",
    description="Look a word up in the dictionary.",
    input_schema={"type": "object", "properties": {"word": {"type": "string"}}},
)
#: A tool whose definition alone is long enough to be cached.
MANUAL = ToolSchema(
    name="manual", description="The manual: " + "Step. " * 800, input_schema={"type": "object"}
)
AUTOJUMP_THRESHOLD = 0.2


@pytest.fixture(autouse=True)
def clean_anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ANTHROPIC_* variable or on-disk profile of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


@asynccontextmanager
async def backend(
    *replies: FakeResponse, prompt_caching: bool = True, **server_options: Any
) -> AsyncIterator[tuple[FakeAnthropicServer, AnthropicLLM]]:
    async with (
        open_fake_anthropic_server(*replies, **server_options) as server,
        AnthropicLLM(api_key=KEY, base_url=server.base_url, prompt_caching=prompt_caching) as llm,
    ):
        yield server, llm


def conversation(turns: int) -> tuple[Message, ...]:
    """A history of ``turns`` user turns, with a tool call and its result in the middle."""
    messages: list[Message] = []
    for turn in range(turns):
        messages.append(Message.user(f"question {turn}: " + "words " * 40))
        if turn < turns - 1:
            messages.append(
                Message.assistant([ToolUseBlock(id=f"t{turn}", name="lookup", input={"w": "x"})])
            )
            messages.append(Message.user([ToolResultBlock(tool_use_id=f"t{turn}", content="ok")]))
            messages.append(Message.assistant(f"answer {turn}"))
    return tuple(messages)


def breakpoints(body: dict[str, Any]) -> list[str]:
    """Where the request carries cache_control: tool names, 'system', message indexes."""
    found = [f"tool:{t['name']}" for t in body.get("tools", ()) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        found += ["system" for b in system if "cache_control" in b]
    for index, message in enumerate(body["messages"]):
        found += [f"message:{index}" for b in message["content"] if "cache_control" in b]
    return found


# -- the breakpoints ----------------------------------------------------------------------


async def test_tools_system_and_the_last_two_user_turns_are_marked() -> None:
    """A long prompt gets four breakpoints: last tool, system, the last two user turns."""
    history = conversation(3)
    request = LLMRequest(model=MODEL, messages=history, system=LONG_SYSTEM, tools=(TOOL, MANUAL))
    async with backend(FakeResponse.text("ok")) as (server, llm):
        with trio.fail_after(10):
            response = await llm.generate(request)
    body = server.requests[0].body
    # the last user turn, and the one before it (the tool result that preceded the answer)
    last, previous = len(history) - 1, len(history) - 3
    assert history[previous].role == "user"
    assert breakpoints(body) == ["tool:manual", "system", f"message:{previous}", f"message:{last}"]
    assert body["system"] == [
        {"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}
    ]
    assert response.usage.cache_creation_input_tokens > 0
    # the conversation itself is untouched: marks are on copies of its blocks
    assert "cache_control" not in str(history)


async def test_a_short_prompt_is_sent_unmarked() -> None:
    """Below the model's minimum cacheable length nothing is marked: the plain wire form
    (here a short tool list before a long system prompt: only the system is marked)."""
    request = LLMRequest(model=MODEL, messages=(Message.user("hi"),), system="Be brief.")
    async with backend(FakeResponse.text("ok")) as (server, llm):
        with trio.fail_after(10):
            response = await llm.generate(request)
    body = server.requests[0].body
    assert body["system"] == "Be brief."
    assert breakpoints(body) == []
    assert response.usage == Usage(input_tokens=12, output_tokens=8)  # the scripted usage


async def test_prompt_caching_off_sends_no_breakpoints() -> None:
    """prompt_caching=False sends even a long prompt unmarked."""
    request = LLMRequest(model=MODEL, messages=conversation(2), system=LONG_SYSTEM, tools=(TOOL,))
    async with backend(FakeResponse.text("ok"), prompt_caching=False) as (server, llm):
        with trio.fail_after(10):
            await llm.generate(request)
        assert "prompt_caching=False" in repr(llm)
    body = server.requests[0].body
    assert body["system"] == LONG_SYSTEM
    assert breakpoints(body) == []


def test_the_minimum_length_depends_on_the_model() -> None:
    """A prefix long enough for one model may be too short for another."""
    assert min_cacheable_tokens("claude-sonnet-4-5-20250929") == 1024
    assert min_cacheable_tokens("claude-haiku-4-5") == 4096
    assert min_cacheable_tokens("claude-3-5-haiku-latest") == 2048
    system = "x" * 4 * 2000  # about 2,000 tokens
    marked = {"model": MODEL, "system": system, "messages": [{"role": "user", "content": []}]}
    unmarked = {**marked, "model": "claude-haiku-4-5"}
    assert add_cache_breakpoints(marked) == 1
    assert add_cache_breakpoints(unmarked) == 0
    assert unmarked["system"] == system


def test_never_more_than_four_breakpoints_and_never_on_thinking() -> None:
    """However long the conversation, at most four marks; a thinking block is skipped."""
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": [{"type": "text", "text": "y"}]}
        for i in range(40)
    ]
    messages[-1] = {
        "role": "user",
        "content": [{"type": "text", "text": "z"}, {"type": "thinking", "thinking": "t"}],
    }
    arguments = {
        "model": MODEL,
        "tools": [MANUAL.to_dict()],
        "system": LONG_SYSTEM,
        "messages": messages,
    }
    assert add_cache_breakpoints(arguments) == MAX_BREAKPOINTS
    assert arguments["messages"][-1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in arguments["messages"][-1]["content"][1]


# -- the fake server's prompt cache -------------------------------------------------------


async def test_the_second_call_reads_what_the_first_wrote() -> None:
    """The fake server bills the first call's prefix as a write, the next as a read."""
    first = LLMRequest(model=MODEL, messages=conversation(1), system=LONG_SYSTEM, tools=(TOOL,))
    reply = Message.assistant("answer")
    second = LLMRequest(
        model=MODEL,
        messages=(*first.messages, reply, Message.user("and then?")),
        system=LONG_SYSTEM,
        tools=(TOOL,),
    )
    async with backend(FakeResponse.text("answer"), FakeResponse.text("done")) as (_, llm):
        with trio.fail_after(10):
            one = (await llm.generate(first)).usage
            async with llm.stream(second) as chunks:
                two = [c async for c in chunks][-1].response.usage  # type: ignore[union-attr]
    assert one.cache_read_input_tokens == 0
    assert one.cache_creation_input_tokens > 1024
    # everything the first call wrote (up to its last user turn) is read back
    assert two.cache_read_input_tokens == one.cache_creation_input_tokens
    assert 0 < two.cache_creation_input_tokens < 100  # only the new turn is written
    assert two.output_tokens == 8


async def test_a_request_with_five_breakpoints_is_refused() -> None:
    """Like the API, the fake server answers 400 to more than four cache_control blocks."""
    marked = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    body = {
        "model": MODEL,
        "max_tokens": 10,
        "system": [marked] * 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with open_fake_anthropic_server(FakeResponse.text("ok")) as server:
        import httpx2

        async with httpx2.AsyncClient() as client:
            with trio.fail_after(10):
                answer = await client.post(f"{server.base_url}/v1/messages", json=body)
    assert answer.status_code == 400
    assert "A maximum of 4 blocks with cache_control" in answer.text


async def test_a_cached_prefix_expires_after_five_minutes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A prefix not read for longer than the cache's lifetime is written again."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    request = LLMRequest(model=MODEL, messages=(Message.user("hi"),), system=LONG_SYSTEM)
    replies = [FakeResponse.text("ok")] * 3
    async with backend(*replies) as (_, llm):
        with trio.fail_after(1000):
            first = (await llm.generate(request)).usage
            await trio.sleep(200)
            second = (await llm.generate(request)).usage
            await trio.sleep(301)
            third = (await llm.generate(request)).usage
    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert third.cache_read_input_tokens == 0
    assert third.cache_creation_input_tokens == first.cache_creation_input_tokens


# -- an agent's conversation --------------------------------------------------------------


async def run_conversation(*, prompt_caching: bool, turns: int) -> tuple[float, list[LLMCalled]]:
    """An agent with a long system prompt answers ``turns`` messages; its cost and calls."""
    async with backend(prompt_caching=prompt_caching, count_tokens=True) as (server, llm):
        server.responder = lambda body: FakeResponse.text("Noted. " * 30)
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(Agent(name="clerk", model=MODEL, system=LONG_SYSTEM))
            calls: list[LLMCalled] = []
            with orch.subscribe(types="llm.call") as subscription, trio.fail_after(30):
                for turn in range(turns):
                    await proc.send(f"Entry {turn}: " + "details " * 60)
                while (event := subscription.receive_nowait()) is not None:
                    assert isinstance(event, LLMCalled)
                    calls.append(event)
            return proc.metrics.cost_usd, calls


async def test_caching_cuts_the_bill_of_a_conversation() -> None:
    """Over eight turns the agent pays far less with caching, and its events say why."""
    cached_cost, cached = await run_conversation(prompt_caching=True, turns=8)
    plain_cost, plain = await run_conversation(prompt_caching=False, turns=8)
    assert len(cached) == len(plain) == 8
    # same prompts: the same tokens in all, only billed differently
    for with_cache, without in zip(cached, plain, strict=True):
        assert (
            with_cache.input_tokens
            + (with_cache.cache_creation_input_tokens or 0)
            + (with_cache.cache_read_input_tokens or 0)
            == without.input_tokens
        )
        assert not without.cache_read_input_tokens and not without.cache_creation_input_tokens
    assert all(c.cache_read_input_tokens for c in cached[1:])
    assert cached_cost < 0.5 * plain_cost
    price = PriceTable.default().lookup(MODEL)
    assert price is not None
    billed = sum(
        price.cost(
            Usage(
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
                cache_creation_input_tokens=c.cache_creation_input_tokens or 0,
                cache_read_input_tokens=c.cache_read_input_tokens or 0,
            )
        )
        for c in cached
    )
    assert cached_cost == pytest.approx(billed)


def test_the_b14_benchmark_shows_the_saving() -> None:
    """B14's scenario runs (three turns here) and reports cached billing below uncached."""
    from tests.benchmarks._b14 import b14, render_b14

    result = b14(turns=3)
    off, on = result["uncached"], result["cached"]
    assert off["prompt_tokens"] == on["prompt_tokens"]  # the same prompts, billed apart
    assert on["cache_read"] > 0 and off["cache_read"] == 0
    assert on["billed_input"] < off["billed_input"]
    assert on["cost_usd"] < off["cost_usd"]
    text, rows = render_b14(result)
    assert "B14" in rows[0][0] and "| cached (the default) | 3 |" in text
