"""Resilience end to end: agents on the real ``anthropic`` SDK against the local fake server,
which injects failures (429 with retry-after, 529, 500, dropped connections, broken streams)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import (
    Agent,
    AgentProcess,
    AnthropicLLM,
    Backoff,
    Budget,
    BudgetExceeded,
    ErrorClass,
    LLMError,
    RetryPolicy,
    open_orchestrator,
)
from vega_trio.agent import DoneEvent, ErrorEvent, TextDeltaEvent
from vega_trio.llm import PriceTable, Usage
from vega_trio.testing import FakeResponse, open_fake_anthropic_server

# NOTE: real sockets on loopback: the MockClock may only jump when Trio has been idle for a
# while, or it would jump past data that is still in flight (see tests/llm/test_anthropic.py).
AUTOJUMP_THRESHOLD = 0.2
MODEL = "claude-sonnet-4-6"


@pytest.fixture(autouse=True)
def clean_anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ANTHROPIC_* variable or profile of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


async def test_recovers_from_429_529_500_at_the_times_the_server_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """429 (retry-after 2 s), 529 and 500, then a reply: the agent answers after waiting
    2 s (retry-after beats the 0.5 s backoff), 1 s and 2 s — four requests in all."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    async with open_fake_anthropic_server(
        FakeResponse.error(429, retry_after=2),
        FakeResponse.error(529),
        FakeResponse.error(500),
        FakeResponse.text("recovered"),
    ) as server:
        async with (
            AnthropicLLM(api_key="k", base_url=server.base_url) as llm,
            open_orchestrator(llm=llm) as orch,
        ):
            with orch.subscribe(types=["llm.call"]) as sub:
                proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=4)))
                start = trio.current_time()
                with trio.fail_after(100):
                    assert await proc.send("hi") == "recovered"
                elapsed = trio.current_time() - start
                classes = []
                while (event := sub.receive_nowait()) is not None:
                    classes.append(getattr(event, "data", {}).get("error_class"))
    assert elapsed == pytest.approx(5.0, abs=0.5)
    assert len(server.requests) == 4
    assert classes == ["rate_limit", "overloaded", "temporary", None]


@pytest.mark.parametrize(
    "failure",
    [
        FakeResponse.disconnect(after_chunks=0),
        FakeResponse.stream_error(after_chunks=0),
        FakeResponse.stream_error(after_chunks=0, error_type="api_error", message="boom"),
    ],
    ids=["cut-before-output", "overloaded-event", "api-error-event"],
)
async def test_a_stream_cut_before_output_is_retried(failure: FakeResponse) -> None:
    """A stream that breaks before any text reaches the caller is made again, invisibly."""
    async with open_fake_anthropic_server(
        failure, FakeResponse.text("all good", chunks=3)
    ) as server:
        async with (
            AnthropicLLM(api_key="k", base_url=server.base_url) as llm,
            open_orchestrator(llm=llm) as orch,
        ):
            proc = await orch.spawn(
                Agent(name="a", retry=RetryPolicy(backoff=Backoff(kind="constant", initial=0)))
            )
            with trio.fail_after(30):
                async with proc.send_stream_rich("hi") as stream:
                    events = [event async for event in stream]
    assert "".join(e.delta for e in events if isinstance(e, TextDeltaEvent)) == "all good"
    assert isinstance(events[-1], DoneEvent)
    assert len(server.requests) == 2


async def test_a_stream_cut_after_output_is_not_replayed() -> None:
    """Once text has been streamed, a dropped connection fails the send (no duplicate text)."""
    async with open_fake_anthropic_server(
        FakeResponse.disconnect(after_chunks=2), FakeResponse.text("never")
    ) as server:
        async with (
            AnthropicLLM(api_key="k", base_url=server.base_url) as llm,
            open_orchestrator(llm=llm) as orch,
        ):
            proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=5)))
            with trio.fail_after(30):
                async with proc.send_stream_rich("hi") as stream:
                    events = [event async for event in stream]
    streamed = "".join(e.delta for e in events if isinstance(e, TextDeltaEvent))
    assert streamed and isinstance(events[-1], ErrorEvent)
    assert events[-1].error_class == "temporary"
    assert len(server.requests) == 1


async def test_authentication_errors_are_tried_once() -> None:
    """A 401 is not retried, whatever the policy says."""
    async with open_fake_anthropic_server(api_key="right") as server:
        async with (
            AnthropicLLM(api_key="wrong", base_url=server.base_url) as llm,
            open_orchestrator(llm=llm) as orch,
        ):
            proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=5)))
            with trio.fail_after(30), pytest.raises(LLMError) as info:
                await proc.send("hi")
    assert info.value.error_class is ErrorClass.AUTHENTICATION and info.value.attempts == 1
    assert len(server.requests) == 1


async def test_a_spend_cap_429_is_budget_exceeded_and_not_retried() -> None:
    """The API's own spend cap (429 with a billing code) is budget_exceeded: tried once."""
    async with open_fake_anthropic_server(
        FakeResponse.error(429, error_code="enforced_spend_limit_reached", retry_after=1)
    ) as server:
        async with (
            AnthropicLLM(api_key="k", base_url=server.base_url) as llm,
            open_orchestrator(llm=llm) as orch,
        ):
            proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=5)))
            with trio.fail_after(30), pytest.raises(LLMError) as info:
                await proc.send("hi")
    assert info.value.error_class is ErrorClass.BUDGET_EXCEEDED
    assert len(server.requests) == 1


async def test_a_one_cent_budget_blocks_once_spent_and_costs_match_the_table() -> None:
    """$0.01 agent budget on claude-sonnet-4-6 ($3/M input): three 1,500-token calls (from
    three processes of the agent) spend $0.0135 (usage x the price table); the fourth is
    refused with BudgetExceeded and never reaches the server."""
    usage = Usage(input_tokens=1500, output_tokens=0)
    async with open_fake_anthropic_server(
        *[FakeResponse.text("ok", usage=usage) for _ in range(4)]
    ) as server:
        async with (
            AnthropicLLM(api_key="k", base_url=server.base_url) as llm,
            open_orchestrator(llm=llm) as orch,
        ):
            agent = Agent(name="a", model=MODEL, budget=Budget(limit=0.01))
            procs = [await orch.spawn(agent) for _ in range(4)]
            with trio.fail_after(30):
                for proc in procs[:3]:
                    assert await proc.send("hi") == "ok"
                with pytest.raises(BudgetExceeded) as info:
                    await procs[3].send("hi")
            costs = orch.costs()
    per_call = PriceTable.default().cost(MODEL, usage)
    assert per_call == pytest.approx(1500 * 3 / 1e6)
    assert [p.metrics.cost_usd for p in procs] == [pytest.approx(per_call)] * 3 + [0.0]
    assert costs["agents"]["a"]["cost_usd"] == pytest.approx(3 * per_call)
    assert info.value.attempts == 1 and not info.value.retryable
    assert len(server.requests) == 3


@pytest.mark.slow
async def test_chaos_two_hundred_concurrent_sends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """200 concurrent sends (half streamed) against a server failing 30% of requests with
    529, 500, 429 + retry-after, dropped connections and broken streams: every send ends
    in the reply or a classified LLMError, attempts stay within the policy, nothing hangs."""
    autojump_clock.autojump_threshold = AUTOJUMP_THRESHOLD
    rng = random.Random(20261201)
    failures = [
        lambda: FakeResponse.error(529),
        lambda: FakeResponse.error(500),
        lambda: FakeResponse.error(429, retry_after=1),
        lambda: FakeResponse.disconnect(after_chunks=0),
        lambda: FakeResponse.stream_error(after_chunks=0),
    ]
    injected = 0

    def respond(body: Any) -> FakeResponse:
        nonlocal injected
        if rng.random() < 0.3:
            injected += 1
            return rng.choice(failures)()
        text = body["messages"][-1]["content"]
        if isinstance(text, list):
            text = text[0]["text"]
        return FakeResponse.text(f"re: {text}", chunks=2)

    policy = RetryPolicy(max_attempts=4, backoff=Backoff(kind="constant", initial=0.1))
    outcomes: dict[int, str] = {}
    attempts: dict[int, int] = {}
    async with open_fake_anthropic_server(responder=respond) as server:
        async with (
            AnthropicLLM(api_key="k", base_url=server.base_url) as llm,
            open_orchestrator(llm=llm, max_concurrent_calls=50) as orch,
        ):
            agent = Agent(name="worker", retry=policy)
            procs: list[AgentProcess] = [await orch.spawn(agent) for _ in range(200)]

            async def send(index: int, proc: AgentProcess) -> None:
                message = f"job {index}"
                try:
                    if index % 2:
                        async with proc.send_stream_rich(message) as stream:
                            events = [event async for event in stream]
                        last = events[-1]
                        if isinstance(last, ErrorEvent):
                            outcomes[index] = f"error:{last.error_class}"
                            return
                        reply = "".join(e.delta for e in events if isinstance(e, TextDeltaEvent))
                    else:
                        reply = await proc.send(message)
                    assert reply == f"re: {message}"
                    outcomes[index] = "reply"
                except LLMError as exc:
                    attempts[index] = exc.attempts
                    outcomes[index] = f"error:{exc.error_class}"

            with trio.fail_after(600):
                async with trio.open_nursery() as nursery:
                    for index, proc in enumerate(procs):
                        nursery.start_soon(send, index, proc)
    assert len(outcomes) == 200
    assert all(n <= policy.max_attempts for n in attempts.values())
    retryable = {f"error:{c}" for c in ErrorClass if c.retryable}
    assert set(outcomes.values()) <= {"reply"} | retryable
    assert sum(v == "reply" for v in outcomes.values()) >= 190  # 0.3**4: ~1.6 failures expected
    assert injected > 40
    assert len(server.requests) <= 200 * policy.max_attempts
    assert len(server.requests) == 200 + injected - sum(v != "reply" for v in outcomes.values())
