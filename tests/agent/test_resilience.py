"""Resilience on the agent's call path (SPEC §3), with the scripted LLM in virtual time:
retries, timeouts, rate limits, the concurrency cap, circuit breakers, budgets and cost."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import Agent, AgentProcess, ErrorClass, LLMError, open_orchestrator
from vega_trio.agent import DoneEvent, ErrorEvent, TextDeltaEvent
from vega_trio.llm import LLMRequest, PriceTable, Usage
from vega_trio.resilience import (
    Budget,
    BudgetExceeded,
    CircuitBreaker,
    CircuitOpen,
    RateLimit,
    RateLimited,
    RetryPolicy,
)
from vega_trio.runtime import ChildSpec, Event, Supervision, SupervisorSpec
from vega_trio.testing import ScriptedLLM, Step

MODEL = "claude-sonnet-5-5"  # $2 / $10 per million tokens in the packaged table


def drain(subscription: Any) -> list[dict[str, Any]]:
    """Every event buffered on a subscription, as plain dicts."""
    events = []
    while (event := subscription.receive_nowait()) is not None:
        assert isinstance(event, Event), event
        events.append({"type": event.type, **event.data})
    return events


# -- retries ----------------------------------------------------------------------------


async def test_retries_recover_at_exact_times_with_one_event_per_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Overloaded, then rate-limited with retry-after 3 s, then a reply: waits 0.5 s then 3 s
    (retry-after beats the 1 s backoff), and each attempt emits llm.call with its class."""
    llm = ScriptedLLM(
        [Step.error(ErrorClass.OVERLOADED), Step.error(ErrorClass.RATE_LIMIT, retry_after=3), "ok"]
    )
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["llm.call"]) as events:
            proc = await orch.spawn(Agent(name="a"))
            assert await proc.send("hi") == "ok"
            calls = drain(events)
    assert trio.current_time() == 3.5
    assert [(c["attempt"], c["error_class"], c.get("retry_in")) for c in calls] == [
        (1, "overloaded", 0.5),
        (2, "rate_limit", 3.0),
        (3, None, None),
    ]
    assert proc.metrics.llm_calls == 1 and proc.metrics.llm_attempts_failed == 2


async def test_a_later_call_that_fails_is_retried_and_reported_like_a_first_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After a process's first call its calls go to the model directly (plain path): a
    failure there still takes the path's retries, events, metrics and latency, and an
    error that is not retried comes back with its attempt count."""
    llm = ScriptedLLM(
        [
            "first",
            Step.error(ErrorClass.OVERLOADED, delay=0.25),
            "second",
            Step.error(ErrorClass.INVALID_REQUEST),
        ]
    )
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["llm.call"]) as events:
            proc = await orch.spawn(Agent(name="a"))
            assert await proc.send("one") == "first"
            drain(events)
            assert await proc.send("two") == "second"
            calls = drain(events)
            with pytest.raises(LLMError) as info:
                await proc.send("three")
            failed = drain(events)
    assert [(c["attempt"], c["error_class"], c.get("retry_in")) for c in calls] == [
        (1, "overloaded", 0.5),
        (2, None, None),
    ]
    assert calls[0]["latency_ms"] == 250  # from the direct attempt's own start
    assert trio.current_time() == 0.75
    assert info.value.error_class is ErrorClass.INVALID_REQUEST and info.value.attempts == 1
    assert [(c["attempt"], c["error_class"]) for c in failed] == [(1, "invalid_request")]
    assert proc.metrics.llm_calls == 2 and proc.metrics.llm_attempts_failed == 2
    assert proc.history[-1].text == "second"  # the failed send left no turn


async def test_an_exhausted_policy_does_not_sleep_after_the_last_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three overloaded attempts: the error comes back right after the third (0.5 + 1 s)."""
    llm = ScriptedLLM(responder=lambda _r: Step.error(ErrorClass.OVERLOADED))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=3)))
        with pytest.raises(LLMError) as info:
            await proc.send("hi")
        assert trio.current_time() == 1.5
    assert info.value.error_class is ErrorClass.OVERLOADED
    assert info.value.attempts == 3 and len(llm.requests) == 3


@pytest.mark.parametrize(
    "error_class",
    [ErrorClass.AUTHENTICATION, ErrorClass.INVALID_REQUEST, ErrorClass.BUDGET_EXCEEDED],
)
async def test_non_retryable_failures_are_tried_once(
    autojump_clock: trio.testing.MockClock, error_class: ErrorClass
) -> None:
    """Authentication, invalid-request and budget errors are tried once, with no wait."""
    llm = ScriptedLLM(responder=lambda _r: Step.error(error_class))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=5)))
        with pytest.raises(LLMError) as info:
            await proc.send("hi")
    assert info.value.error_class is error_class and info.value.attempts == 1
    assert len(llm.requests) == 1 and trio.current_time() == 0.0


async def test_retry_none_makes_one_attempt(autojump_clock: trio.testing.MockClock) -> None:
    """An agent with retry=None fails on the first overloaded reply."""
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED), "never"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", retry=None))
        with pytest.raises(LLMError):
            await proc.send("hi")
    assert len(llm.requests) == 1


async def test_a_stream_is_retried_when_it_fails_before_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stream that fails before any text is retried; the caller sees only the good reply."""
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED), Step.text("hello there")])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        async with proc.send_stream_rich("hi") as stream:
            events = [event async for event in stream]
    deltas = "".join(e.delta for e in events if isinstance(e, TextDeltaEvent))
    assert deltas == "hello there" and isinstance(events[-1], DoneEvent)
    assert len(llm.requests) == 2


async def test_a_stream_that_fails_after_output_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once text has reached the caller, a failure ends the stream with the error: no replay."""
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED, partial_text="hel"), "never"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=5)))
        async with proc.send_stream_rich("hi") as stream:
            events = [event async for event in stream]
    assert "".join(e.delta for e in events if isinstance(e, TextDeltaEvent)) == "hel"
    error = events[-1]
    assert isinstance(error, ErrorEvent) and error.error_class == "overloaded"
    assert len(llm.requests) == 1


# -- the per-call timeout -----------------------------------------------------------------


class HangingLLM:
    """A backend with no timeout of its own whose calls never answer."""

    async def generate(self, request: LLMRequest) -> Any:
        await trio.sleep_forever()

    def stream(self, request: LLMRequest) -> Any:
        raise NotImplementedError


async def test_a_backend_without_its_own_timeout_gets_five_minutes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A backend that does not bound its calls (no ``timeout`` attribute) gets the SPEC's
    default of 300 s per call: TIMEOUT then, not a hang."""
    async with open_orchestrator(llm=HangingLLM()) as orch:  # type: ignore[arg-type]
        proc = await orch.spawn(Agent(name="a", retry=None))
        with pytest.raises(LLMError) as info:
            await proc.send("hi")
        assert trio.current_time() == 300.0
    assert info.value.error_class is ErrorClass.TIMEOUT and "llm_timeout" in str(info.value)


async def test_llm_timeout_bounds_a_scripted_delay(autojump_clock: trio.testing.MockClock) -> None:
    """An agent's llm_timeout applies to any backend, the scripted one included."""
    llm = ScriptedLLM([Step.text("late", delay=1000)])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", retry=None, llm_timeout=30))
        with pytest.raises(LLMError) as info:
            await proc.send("hi")
        assert trio.current_time() == 30.0
    assert info.value.error_class is ErrorClass.TIMEOUT


async def test_a_timed_out_call_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A timeout is retryable: the second attempt answers."""
    llm = ScriptedLLM([Step.text("late", delay=100), Step.text("fast")])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", llm_timeout=10))
        assert await proc.send("hi") == "fast"
        assert trio.current_time() == 10.5


async def test_a_stream_times_out_on_silence_not_on_length(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Streamed, llm_timeout bounds the silence between chunks: a long, steady stream is fine."""
    llm = ScriptedLLM([Step.text("a b c d", chunk_delay=8), Step.text("x y", chunk_delay=20)])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", llm_timeout=10, retry=None))
        async with proc.send_stream("one") as stream:
            assert "".join([delta async for delta in stream]) == "a b c d"
        assert trio.current_time() == 32.0  # 4 chunks 8 s apart: over 10 s in all
        async with proc.send_stream_rich("two") as rich:
            events = [event async for event in rich]
    error = events[-1]
    assert isinstance(error, ErrorEvent) and error.error_class == "timeout"


# -- rate limits and the concurrency cap ---------------------------------------------------


async def test_sixty_rpm_shared_by_ten_processes(autojump_clock: trio.testing.MockClock) -> None:
    """A 60 RPM model limit shared by 10 processes: exactly 60 calls in the first virtual
    minute, the other 40 queued and made when it is over."""
    call_times: list[float] = []

    def respond(_request: LLMRequest) -> Step:
        call_times.append(trio.current_time())
        return Step.text("ok")

    llm = ScriptedLLM(responder=respond)
    async with open_orchestrator(
        llm=llm, rate_limit=RateLimit(requests_per_minute=60), default_model=MODEL
    ) as orch:
        procs = [await orch.spawn(Agent(name=f"w{i}")) for i in range(10)]

        async def work(proc: Any) -> None:
            for n in range(10):
                assert await proc.send(f"task {n}") == "ok"

        async with trio.open_nursery() as nursery:
            for proc in procs:
                nursery.start_soon(work, proc)
    assert len(call_times) == 100
    assert sum(t < 60 for t in call_times) == 60
    assert call_times[:60] == [0.0] * 60 and call_times[60:] == [60.0] * 40


async def test_limits_are_per_model_and_per_agent(autojump_clock: trio.testing.MockClock) -> None:
    """rate_limits applies to its model only; an agent's own limit counts its processes together."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("ok"))
    async with open_orchestrator(
        llm=llm, rate_limits={"claude-haiku-4-5": RateLimit(requests_per_minute=1)}
    ) as orch:
        fast = await orch.spawn(Agent(name="fast"))  # the default model: no limit
        for _ in range(5):
            await fast.send("hi")
        assert trio.current_time() == 0.0
        haiku = Agent(name="h", model="claude-haiku-4-5")
        one, two = await orch.spawn(haiku), await orch.spawn(haiku)
        await one.send("hi")
        await two.send("hi")
        assert trio.current_time() == 60.0
        limited = Agent(name="lim", rate_limit=RateLimit(requests_per_minute=2))
        a, b = await orch.spawn(limited), await orch.spawn(limited)
        start = trio.current_time()
        await a.send("1")
        await b.send("2")
        await a.send("3")
        assert trio.current_time() - start == 60.0


async def test_reject_strategy_raises_at_once_without_calling(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reject limiter refuses the call over the limit at once: RateLimited, not retried."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("ok"))
    agent = Agent(name="a", rate_limit=RateLimit(requests_per_minute=1, strategy="reject"))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(agent)
        await proc.send("one")
        with pytest.raises(RateLimited) as info:
            await proc.send("two")
        assert trio.current_time() == 0.0
    assert info.value.retry_after == 60.0 and info.value.attempts == 1
    assert len(llm.requests) == 1


async def test_tokens_per_minute_counts_reported_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TPM limits settle with the usage the model reported: two 700-token calls (from small
    prompts) put the window over its 1,000 tokens, so a third waits until the first call's
    tokens come back a minute later."""
    heavy = Usage(input_tokens=600, output_tokens=100)
    llm = ScriptedLLM([Step.text("a", usage=heavy), Step.text("b", usage=heavy), "c"])
    agent = Agent(name="a", rate_limit=RateLimit(tokens_per_minute=1000))
    times = []
    async with open_orchestrator(llm=llm) as orch:
        for text in ("one", "two", "three"):
            proc = await orch.spawn(agent)  # fresh conversations: tiny estimates
            await proc.send(text)
            times.append(trio.current_time())
    assert times == [0.0, 0.0, 60.0]


async def test_a_conversation_estimate_starts_from_the_last_reported_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The next prompt of a conversation is estimated from the last call's reported tokens
    plus the new turns, so it waits for room under the TPM limit before it is sent."""
    llm = ScriptedLLM([Step.text("a", usage=Usage(input_tokens=850, output_tokens=50)), "b"])
    agent = Agent(name="a", rate_limit=RateLimit(tokens_per_minute=1000))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(agent)
        await proc.send("one")
        assert trio.current_time() == 0.0
        await proc.send("two")  # ~901 tokens, only 100 left until the minute is over
        assert trio.current_time() == 60.0


async def test_concurrency_cap_bounds_calls_per_backend(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """max_concurrent_calls=2: five processes' calls run two at a time."""
    started: list[float] = []

    def respond(_request: LLMRequest) -> Step:
        started.append(trio.current_time())
        return Step.text("ok", delay=1)

    llm = ScriptedLLM(responder=respond)
    async with open_orchestrator(llm=llm, max_concurrent_calls=2) as orch:
        procs = [await orch.spawn(Agent(name=f"w{i}")) for i in range(5)]
        async with trio.open_nursery() as nursery:
            for proc in procs:
                nursery.start_soon(proc.send, "hi")
    assert started == [0.0, 0.0, 1.0, 1.0, 2.0]


# -- circuit breaker -------------------------------------------------------------------------


async def test_circuit_breaker_opens_fails_fast_probes_and_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two failures open the agent's breaker (event and hook); an open breaker fails fast with
    no LLM call; a failed probe reopens it; a successful probe closes it."""
    hooks: list[str] = []
    breaker = CircuitBreaker(
        threshold=2,
        reset_after=10,
        on_open=lambda b: hooks.append(f"open {b.name}"),
        on_close=lambda b: hooks.append(f"close {b.name}"),
    )
    llm = ScriptedLLM(
        [
            Step.error(ErrorClass.OVERLOADED),
            Step.error(ErrorClass.OVERLOADED),
            Step.error(ErrorClass.TEMPORARY),
            "recovered",
        ]
    )
    agent = Agent(name="writer", retry=None, circuit_breaker=breaker)
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["circuit.open", "circuit.half_open", "circuit.closed"]) as sub:
            proc = await orch.spawn(agent)
            for _ in range(2):
                with pytest.raises(LLMError):
                    await proc.send("hi")
            assert breaker.state == "open" and breaker.name == "agent 'writer'"
            with pytest.raises(CircuitOpen) as info:
                await proc.send("hi")
            assert len(llm.requests) == 2 and info.value.retry_after == 10.0
            await trio.sleep(10)
            with pytest.raises(LLMError) as probe:
                await proc.send("hi")  # the probe fails: open again
            assert probe.value.error_class is ErrorClass.TEMPORARY
            assert breaker.state == "open"
            await trio.sleep(10)
            assert await proc.send("hi") == "recovered"
            assert breaker.state == "closed"
            transitions = [e["type"] for e in drain(sub)]
    assert transitions == [
        "circuit.open",
        "circuit.half_open",
        "circuit.open",
        "circuit.half_open",
        "circuit.closed",
    ]
    assert hooks == ["open agent 'writer'", "open agent 'writer'", "close agent 'writer'"]


async def test_an_open_breaker_is_not_retried_and_does_not_restart_a_process(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """CircuitOpen goes straight back to the caller, even for a supervised process."""
    breaker = CircuitBreaker(threshold=1, reset_after=60)
    llm = ScriptedLLM(responder=lambda _r: Step.error(ErrorClass.OVERLOADED))
    agent = Agent(
        name="a",
        circuit_breaker=breaker,
        retry=RetryPolicy(max_attempts=5),
        supervision=Supervision(max_restarts=10),
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(agent)
        with pytest.raises(CircuitOpen) as info:
            await proc.send("hi")  # attempt 1 fails and opens it; attempt 2 is refused
        assert info.value.attempts == 2 and len(llm.requests) == 1
        assert proc.restart_count == 0 and proc.status == "running"


# -- budgets and cost ---------------------------------------------------------------------


def costly(input_tokens: int = 2000) -> Step:
    """A reply that costs input_tokens x $2/M on claude-sonnet-5-5 ($0.004 for 2,000)."""
    return Step.text("ok", usage=Usage(input_tokens=input_tokens, output_tokens=0))


async def test_a_block_budget_refuses_the_call_once_spent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """$0.01 agent budget, $0.004 calls (each from a fresh process, so the prompts are
    tiny): the third call crosses it, the fourth is refused with BudgetExceeded, never
    retried, with a budget.exceeded event; an unsupervised process keeps serving (and
    keeps refusing)."""
    llm = ScriptedLLM(responder=lambda _r: costly())
    agent = Agent(name="a", model=MODEL, budget=Budget(limit=0.01), retry=RetryPolicy())
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["budget.exceeded"]) as sub:
            for _ in range(3):
                await (await orch.spawn(agent)).send("hi")
            proc = await orch.spawn(agent)
            with pytest.raises(BudgetExceeded) as info:
                await proc.send("hi")
            events = drain(sub)
        assert proc.status == "running"
        with pytest.raises(BudgetExceeded):
            await proc.send("again")
    assert len(llm.requests) == 3 and info.value.attempts == 1
    assert info.value.error_class is ErrorClass.BUDGET_EXCEEDED
    assert info.value.spent == pytest.approx(0.012) and info.value.limit == 0.01
    assert "agent 'a'" in str(info.value)
    assert [(e["refused"], e["owner"]) for e in events] == [
        (False, "agent 'a'"),
        (True, "agent 'a'"),
    ]


async def test_a_call_whose_prompt_alone_would_overrun_the_budget_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The check includes the prompt's estimated input cost: a huge prompt is refused early."""
    llm = ScriptedLLM(["never"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", model=MODEL, budget=Budget(limit=0.001)))
        with pytest.raises(BudgetExceeded) as info:
            await proc.send("x" * 4000)  # ~1,000 tokens, $0.002 at $2/M
    assert info.value.spent == 0.0 and info.value.estimated_cost > 0.001
    assert llm.requests == []


async def test_a_conversation_is_refused_when_resending_it_would_overrun_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """In one conversation the whole history is sent again: with $0.008 spent, a next prompt
    estimated at the last call's 2,000 tokens ($0.004) would overrun $0.01, so it is refused."""
    llm = ScriptedLLM(responder=lambda _r: costly())
    agent = Agent(name="a", model=MODEL, budget=Budget(limit=0.01))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(agent)
        await proc.send("one")
        await proc.send("two")
        with pytest.raises(BudgetExceeded) as info:
            await proc.send("three")
    assert info.value.spent == pytest.approx(0.008)
    assert info.value.estimated_cost == pytest.approx(0.004, rel=0.01)
    assert "estimated at $0.004" in str(info.value)
    assert len(llm.requests) == 2


async def test_a_supervised_process_exits_with_budget_exceeded_and_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under supervision, a spent budget ends the process with the distinct exit reason
    budget_exceeded: the caller gets BudgetExceeded, nothing restarts it."""
    llm = ScriptedLLM(responder=lambda _r: costly(6000))
    agent = Agent(
        name="a", model=MODEL, budget=Budget(limit=0.01), supervision=Supervision(max_restarts=5)
    )
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["process.failed", "process.restarted"]) as sub:
            proc = await orch.spawn(agent)
            await proc.send("one")
            with pytest.raises(BudgetExceeded):
                await proc.send("two")
            reason = await proc.wait()
            events = drain(sub)
    assert reason.kind == "budget_exceeded" and not reason.restartable
    assert proc.status == "failed" and proc.restart_count == 0
    assert [(e["type"], e["reason"]) for e in events] == [("process.failed", "budget_exceeded")]


async def test_a_tree_child_whose_budget_ran_out_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A permanent supervisor child that exits with budget_exceeded is not restarted; its
    spec stays, so an operator can restart it once the budget is raised."""
    llm = ScriptedLLM(responder=lambda _r: costly(6000))
    agent = Agent(name="w", model=MODEL, budget=Budget(limit=0.01))
    async with open_orchestrator(llm=llm) as orch:
        team = await orch.start_supervisor(SupervisorSpec(children=[orch.child_spec(agent)]))
        worker = team.child("w")
        assert isinstance(worker, AgentProcess)
        await worker.send("one")
        with pytest.raises(BudgetExceeded):
            await worker.send("two")
        reason = await worker.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert reason.kind == "budget_exceeded"
        assert team.restart_count == 0
        (info,) = team.which_children()  # the spec stays (restart_child can start it again)
        assert info.id == "w" and info.process is None


async def test_a_warn_budget_logs_and_emits_once_and_lets_calls_go_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """on_exceed='warn': crossing the limit logs a warning and emits budget.warning; calls go on."""
    llm = ScriptedLLM(responder=lambda _r: costly())
    agent = Agent(name="a", model=MODEL, budget=Budget(limit=0.01, on_exceed="warn"))
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["budget.warning", "budget.exceeded"]) as sub:
            proc = await orch.spawn(agent)
            with caplog.at_level(logging.WARNING, logger="vega_trio"):
                for _ in range(5):
                    await proc.send("hi")
            events = drain(sub)
    assert [e["type"] for e in events] == ["budget.warning"]
    assert events[0]["spent_usd"] == pytest.approx(0.012)
    assert "budget of agent 'a' exceeded" in caplog.text
    assert proc.metrics.cost_usd == pytest.approx(0.02)


async def test_an_allow_budget_only_counts(autojump_clock: trio.testing.MockClock) -> None:
    """on_exceed='allow': calls go on past the limit; the spend is counted and reported."""
    llm = ScriptedLLM(responder=lambda _r: costly())
    agent = Agent(name="a", model=MODEL, budget=Budget(limit=0.01, on_exceed="allow"))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(agent)
        for _ in range(4):
            await proc.send("hi")
        costs = orch.costs()
    assert costs["agents"]["a"]["cost_usd"] == pytest.approx(0.016)
    assert costs["agents"]["a"]["budget"]["remaining_usd"] == pytest.approx(-0.006)


async def test_tree_scope_rolls_children_spend_up_to_the_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """budget_scope='tree': a child's (and grandchild's) spend counts against the parent
    agent's budget, so once the tree has spent it every process in it is refused."""
    llm = ScriptedLLM(responder=lambda _r: costly())
    lead = Agent(name="lead", model=MODEL, budget=Budget(limit=0.01), budget_scope="tree")
    helper = Agent(name="helper", model=MODEL)
    async with open_orchestrator(llm=llm) as orch:
        parent = await orch.spawn(lead)
        child = await orch.spawn(helper, parent=parent)
        grandchild = await orch.spawn(helper, parent=child)
        unrelated = await orch.spawn(helper)
        await grandchild.send("1")
        await child.send("2")
        await parent.send("3")  # the tree has spent $0.012 now
        for proc in (parent, child, grandchild):
            with pytest.raises(BudgetExceeded, match="agent 'lead'"):
                await proc.send("more")
        assert await unrelated.send("fine") == "ok"
        costs = orch.costs()
    assert costs["agents"]["lead"]["cost_usd"] == pytest.approx(0.012)
    assert costs["agents"]["helper"]["cost_usd"] == pytest.approx(0.012)


async def test_agent_scope_does_not_roll_up(autojump_clock: trio.testing.MockClock) -> None:
    """Without budget_scope='tree', children spend from their own agent only."""
    llm = ScriptedLLM(responder=lambda _r: costly())
    lead = Agent(name="lead", model=MODEL, budget=Budget(limit=0.005))
    async with open_orchestrator(llm=llm) as orch:
        parent = await orch.spawn(lead)
        child = await orch.spawn(Agent(name="helper", model=MODEL), parent=parent)
        for _ in range(3):
            await child.send("hi")
        assert await parent.send("hi") == "ok"


async def test_the_global_budget_covers_every_agent(autojump_clock: trio.testing.MockClock) -> None:
    """open_orchestrator(budget="$0.01"): all agents together are refused once it is spent."""
    llm = ScriptedLLM(responder=lambda _r: costly())
    async with open_orchestrator(llm=llm, budget="$0.01", default_model=MODEL) as orch:
        a, b = Agent(name="a"), Agent(name="b")
        for agent in (a, b, a):
            await (await orch.spawn(agent)).send("hi")  # fresh conversations: tiny prompts
        with pytest.raises(BudgetExceeded, match="global budget"):
            await (await orch.spawn(b)).send("hi")
        costs = orch.costs()
    assert costs["total_usd"] == pytest.approx(0.012)
    assert costs["budget"] == {
        "limit_usd": 0.01,
        "on_exceed": "block",
        "remaining_usd": pytest.approx(-0.002),
    }


async def test_cost_is_usage_times_the_price_table(autojump_clock: trio.testing.MockClock) -> None:
    """Per call (llm.call), per process, per agent and in total, cost is usage x the table's
    prices, cache writes at 1.25x and cache reads at 0.10x the input price."""
    usage = Usage(
        input_tokens=1234,
        output_tokens=567,
        cache_creation_input_tokens=1000,
        cache_read_input_tokens=4000,
    )
    llm = ScriptedLLM(responder=lambda _r: Step.text("ok", usage=usage))
    model = "claude-sonnet-4-6"  # $3 / $15 per million, default cache multipliers
    expected = (1234 * 3 + 567 * 15 + 1000 * 3 * 1.25 + 4000 * 3 * 0.10) / 1e6
    assert PriceTable.default().cost(model, usage) == pytest.approx(expected)
    async with open_orchestrator(llm=llm, default_model=model) as orch:
        with orch.subscribe(types=["llm.call"]) as sub:
            one = await orch.spawn(Agent(name="a"))
            two = await orch.spawn(Agent(name="b"))
            await one.send("x")
            await one.send("y")
            await two.send("z")
            calls = drain(sub)
        costs = orch.costs()
    assert [c["cost_usd"] for c in calls] == [pytest.approx(expected)] * 3
    assert one.metrics.cost_usd == pytest.approx(2 * expected)
    assert costs["agents"]["a"]["cost_usd"] == pytest.approx(2 * expected)
    assert costs["agents"]["b"]["cost_usd"] == pytest.approx(expected)
    assert costs["total_usd"] == pytest.approx(3 * expected)


async def test_an_unknown_model_is_reported_not_priced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A model missing from the price table costs nothing silently: the call says unpriced."""
    llm = ScriptedLLM(["ok"])
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["llm.call"]) as sub:
            proc = await orch.spawn(Agent(name="a", model="my-local-model"))
            await proc.send("x")
            (call,) = drain(sub)
    assert call["priced"] is False and call["cost_usd"] is None
    assert proc.metrics.unpriced_calls == 1


def test_bad_resilience_options_are_refused() -> None:
    """Wrong types and values for the resilience options fail at construction, clearly."""
    with pytest.raises(TypeError, match="retry"):
        Agent(name="a", retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget_scope"):
        Agent(name="a", budget_scope="team")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="llm_timeout"):
        Agent(name="a", llm_timeout=0)


async def test_bad_orchestrator_options_are_refused() -> None:
    """open_orchestrator refuses a bad budget, cap or per-model limit before starting."""
    with pytest.raises(ValueError, match="US dollars"):
        async with open_orchestrator(llm=ScriptedLLM(), budget="five dollars"):
            pass
    with pytest.raises(ValueError, match="at least 1"):
        async with open_orchestrator(llm=ScriptedLLM(), max_concurrent_calls=0):
            pass
    with pytest.raises(TypeError, match="rate_limits"):
        async with open_orchestrator(llm=ScriptedLLM(), rate_limits={"m": 60}):  # type: ignore[dict-item]
            pass


async def test_cancelling_a_send_while_it_waits_for_a_rate_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A send queued behind a rate limit can be cancelled; it takes no slot from later sends."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("ok"))
    agent = Agent(name="a", rate_limit=RateLimit(requests_per_minute=1))
    async with open_orchestrator(llm=llm) as orch:
        first, second, third = [await orch.spawn(agent) for _ in range(3)]
        await first.send("1")
        with trio.move_on_after(5):
            await second.send("2")
        assert trio.current_time() == 5.0
        assert await third.send("3") == "ok"
        assert trio.current_time() == 60.0
    assert len(llm.requests) == 2


async def test_child_specs_share_the_agents_resilience(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Supervisor children of one agent share its breaker and limits (one per blueprint)."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("ok"))
    agent = Agent(name="w", rate_limit=RateLimit(requests_per_minute=1))
    async with open_orchestrator(llm=llm) as orch:
        specs: list[ChildSpec] = [orch.child_spec(agent, id=f"w{i}") for i in range(2)]
        team = await orch.start_supervisor(SupervisorSpec(children=specs, max_restarts=1, window=5))
        for child_id in ("w0", "w1"):
            proc = team.child(child_id)
            await proc.send("hi")  # type: ignore[union-attr]
        assert trio.current_time() == 60.0


async def test_the_compaction_call_goes_through_the_call_path(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The context's summary call is retried like any other and its cost is counted."""
    from vega_trio.agent import SlidingWindowContext

    usage = Usage(input_tokens=1000, output_tokens=0)
    llm = ScriptedLLM(
        [
            Step.text("r1", usage=usage),
            Step.text("r2", usage=usage),
            Step.error(ErrorClass.OVERLOADED),
            Step.text("SUMMARY", usage=usage),
            Step.text("r3", usage=usage),
        ]
    )
    agent = Agent(name="a", model=MODEL, context=lambda: SlidingWindowContext(2, compact_above=1))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(agent)
        await proc.send("q1")
        await proc.send("q2")
        assert await proc.send("q3") == "r3"
        costs = orch.costs()
    assert "q1" in llm.requests[3].messages[0].text  # the retried summary call
    assert proc.metrics.llm_calls == 4 and proc.metrics.llm_attempts_failed == 1
    assert costs["agents"]["a"]["cost_usd"] == pytest.approx(4 * 1000 * 2 / 1e6)
