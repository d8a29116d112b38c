"""The agent's ``fallback_model`` (SPEC §3): after the primary model's retries end with a
retryable class, the same request goes to the fallback model — blocking and streamed (before
output only) — through the one call path, with events and cost per answering model."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import Agent, ErrorClass, LLMError, open_orchestrator
from vega_trio.agent import DoneEvent, ErrorEvent, TextDeltaEvent
from vega_trio.llm import PriceTable, Usage
from vega_trio.resilience import (
    Budget,
    BudgetExceeded,
    CircuitBreaker,
    CircuitOpen,
    RateLimit,
    RetryPolicy,
)
from vega_trio.runtime import Event
from vega_trio.testing import ScriptedLLM, Step

PRIMARY = "claude-sonnet-4-6"  # $3 / $15 per million tokens in the packaged table
FALLBACK = "claude-haiku-4-5"  # priced differently
USAGE = Usage(input_tokens=1000, output_tokens=100)


def drain(subscription: Any) -> list[dict[str, Any]]:
    """Every event buffered on a subscription, as plain dicts."""
    events = []
    while (event := subscription.receive_nowait()) is not None:
        assert isinstance(event, Event), event
        events.append({"type": event.type, **event.data})
    return events


def _agent(**options: Any) -> Agent:
    options.setdefault("retry", RetryPolicy(max_attempts=2))
    return Agent(name="a", model=PRIMARY, fallback_model=FALLBACK, **options)


def test_the_fallback_model_must_differ_from_the_model() -> None:
    """An agent whose fallback_model equals its model (or is empty) is refused with a hint."""
    with pytest.raises(ValueError, match="fallback_model equal to its model"):
        Agent(name="a", model=PRIMARY, fallback_model=PRIMARY)
    with pytest.raises(ValueError, match="non-empty model id"):
        Agent(name="a", model=PRIMARY, fallback_model=" ")


@pytest.mark.parametrize(
    "error_class",
    [ErrorClass.RATE_LIMIT, ErrorClass.OVERLOADED, ErrorClass.TIMEOUT, ErrorClass.TEMPORARY],
)
async def test_a_retryable_failure_falls_back_after_the_retries(
    autojump_clock: trio.testing.MockClock, error_class: ErrorClass
) -> None:
    """Both primary attempts fail with a retryable class: the same request goes to the
    fallback model, one llm.call per attempt naming the model and marking the fallback."""
    llm = ScriptedLLM(
        [Step.error(error_class), Step.error(error_class), Step.text("saved", usage=USAGE)]
    )
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["llm.call"]) as sub:
            proc = await orch.spawn(_agent())
            assert await proc.send("hi") == "saved"
            calls = drain(sub)
    assert [r.model for r in llm.requests] == [PRIMARY, PRIMARY, FALLBACK]
    assert llm.requests[2].messages == llm.requests[0].messages
    assert [(c["model"], c["attempt"], c["fallback"], c["error_class"]) for c in calls] == [
        (PRIMARY, 1, False, error_class.value),
        (PRIMARY, 2, False, error_class.value),
        (FALLBACK, 1, True, None),
    ]
    assert calls[1]["retry_in"] is None  # the primary's policy gave up: no sleep
    assert proc.metrics.llm_calls == 1 and proc.metrics.llm_attempts_failed == 2


@pytest.mark.parametrize(
    "error_class",
    [ErrorClass.INVALID_REQUEST, ErrorClass.AUTHENTICATION, ErrorClass.BUDGET_EXCEEDED],
)
async def test_a_non_retryable_failure_does_not_fall_back(
    autojump_clock: trio.testing.MockClock, error_class: ErrorClass
) -> None:
    """invalid_request, authentication and a provider's budget error fail the send at once."""
    llm = ScriptedLLM([Step.error(error_class), "never"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(_agent())
        with pytest.raises(LLMError) as info:
            await proc.send("hi")
    assert info.value.error_class is error_class
    assert [r.model for r in llm.requests] == [PRIMARY]


async def test_the_fallback_runs_its_own_retry_policy_and_its_error_comes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Primary and fallback both keep failing: each gets max_attempts, then the fallback's
    last error is raised (attempts counts the fallback's)."""
    llm = ScriptedLLM(
        [Step.error(ErrorClass.OVERLOADED)] * 2 + [Step.error(ErrorClass.RATE_LIMIT)] * 2
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(_agent())
        with pytest.raises(LLMError) as info:
            await proc.send("hi")
        assert trio.current_time() == 1.0  # one 0.5 s backoff per model, none in between
    assert info.value.error_class is ErrorClass.RATE_LIMIT and info.value.attempts == 2
    assert [r.model for r in llm.requests] == [PRIMARY, PRIMARY, FALLBACK, FALLBACK]


async def test_without_a_fallback_model_nothing_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An agent without fallback_model fails after its own retries, with fallback=False."""
    llm = ScriptedLLM(responder=lambda _r: Step.error(ErrorClass.OVERLOADED))
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["llm.call"]) as sub:
            proc = await orch.spawn(Agent(name="a", model=PRIMARY, retry=None))
            with pytest.raises(LLMError):
                await proc.send("hi")
            (call,) = drain(sub)
    assert call["fallback"] is False and len(llm.requests) == 1


async def test_a_stream_falls_back_before_output(autojump_clock: trio.testing.MockClock) -> None:
    """A stream whose primary fails before any text is answered by the fallback model."""
    llm = ScriptedLLM(
        [Step.error(ErrorClass.OVERLOADED), Step.error(ErrorClass.OVERLOADED), "from fallback"]
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(_agent())
        async with proc.send_stream_rich("hi") as stream:
            events = [event async for event in stream]
    assert "".join(e.delta for e in events if isinstance(e, TextDeltaEvent)) == "from fallback"
    assert isinstance(events[-1], DoneEvent)
    assert [r.model for r in llm.requests] == [PRIMARY, PRIMARY, FALLBACK]


async def test_a_stream_that_failed_after_output_does_not_switch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once text reached the caller, a failure ends the stream: no fallback, no replay."""
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED, partial_text="hel"), "never"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(_agent())
        async with proc.send_stream_rich("hi") as stream:
            events = [event async for event in stream]
    assert "".join(e.delta for e in events if isinstance(e, TextDeltaEvent)) == "hel"
    error = events[-1]
    assert isinstance(error, ErrorEvent) and error.error_class == "overloaded"
    assert [r.model for r in llm.requests] == [PRIMARY]


async def test_an_open_breaker_of_the_primary_falls_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The primary's breaker opens; later calls fail fast on it (no primary request) and go
    to the fallback model, which has a breaker state of its own."""
    breaker = CircuitBreaker(threshold=1, reset_after=60)
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED), "first", "second"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(_agent(retry=None, circuit_breaker=breaker))
        assert await proc.send("one") == "first"
        assert breaker.state == "open"
        assert await proc.send("two") == "second"
    assert [r.model for r in llm.requests] == [PRIMARY, FALLBACK, FALLBACK]


async def test_an_open_breaker_without_a_fallback_still_fails_fast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without fallback_model, the open breaker refuses the call (CircuitOpen) as before."""
    breaker = CircuitBreaker(threshold=1, reset_after=60)
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED), "never"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", retry=None, circuit_breaker=breaker))
        with pytest.raises(LLMError):
            await proc.send("one")
        with pytest.raises(CircuitOpen):
            await proc.send("two")
    assert len(llm.requests) == 1


async def test_a_budget_refusal_does_not_fall_back(autojump_clock: trio.testing.MockClock) -> None:
    """A block budget that ran out refuses the call; the fallback model is not tried."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("ok", usage=USAGE))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(_agent(budget=Budget(limit=0.001)))
        await proc.send("one")  # $0.0045: over the limit afterwards
        with pytest.raises(BudgetExceeded):
            await proc.send("two")
    assert [r.model for r in llm.requests] == [PRIMARY]


async def test_a_reject_rate_limit_of_the_primary_model_falls_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The primary model's shared limit rejects (a local rate_limit refusal): the fallback
    model, which has its own per-model limit, answers."""
    llm = ScriptedLLM(responder=lambda _r: "ok")
    limits = {PRIMARY: RateLimit(requests_per_minute=1, strategy="reject")}
    async with open_orchestrator(llm=llm, rate_limits=limits) as orch:
        proc = await orch.spawn(_agent())
        await proc.send("one")
        await proc.send("two")
    assert [r.model for r in llm.requests] == [PRIMARY, FALLBACK]


async def test_the_fallback_is_priced_with_its_own_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The answer of the fallback model costs the fallback's price (llm.call, process, budget)."""
    table = PriceTable.default()
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED), Step.text("ok", usage=USAGE)])
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["llm.call"]) as sub:
            proc = await orch.spawn(_agent(retry=None))
            await proc.send("hi")
            calls = drain(sub)
        costs = orch.costs()
    expected = table.cost(FALLBACK, USAGE)
    assert expected is not None and expected != table.cost(PRIMARY, USAGE)
    assert calls[-1]["cost_usd"] == pytest.approx(expected) and calls[-1]["model"] == FALLBACK
    assert proc.metrics.cost_usd == pytest.approx(expected)
    assert costs["total_usd"] == pytest.approx(expected)


async def test_the_fallback_may_live_on_another_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """fallback_model "openai:<name>" sends the fallback request to the openai backend,
    with the bare model name."""
    primary = ScriptedLLM([Step.error(ErrorClass.OVERLOADED)])
    other = ScriptedLLM(["from openai"])
    async with open_orchestrator(llm=primary, backends={"openai": other}) as orch:
        agent = Agent(name="a", model=PRIMARY, fallback_model="openai:gpt-4o-mini", retry=None)
        proc = await orch.spawn(agent)
        assert await proc.send("hi") == "from openai"
    assert [r.model for r in primary.requests] == [PRIMARY]
    assert [r.model for r in other.requests] == ["gpt-4o-mini"]


async def test_switching_to_the_fallback_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The switch to the fallback model is one WARNING record naming both models and the class."""
    llm = ScriptedLLM(
        [Step.error(ErrorClass.OVERLOADED), Step.error(ErrorClass.OVERLOADED), Step.text("ok")]
    )
    with caplog.at_level("WARNING", logger="vega_trio.resilience"):
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(_agent())
            assert await proc.send("hi") == "ok"
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "llm.fallback"]
    assert record.levelname == "WARNING"
    assert (record.model, record.fallback_model, record.error_class) == (
        PRIMARY,
        FALLBACK,
        "overloaded",
    )
    assert FALLBACK in record.getMessage()
