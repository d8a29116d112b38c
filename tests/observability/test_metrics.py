"""Prometheus metrics: render_metrics(orch) gives the text exposition of one
orchestrator's processes, LLM calls, tokens, cost, tools, restarts, alerts and bus lag."""

from __future__ import annotations

import prometheus_client
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from vega_trio import Agent, ErrorClass, Supervision, open_orchestrator
from vega_trio.llm import Usage
from vega_trio.observability import HealthConfig, metrics_collector, render_metrics
from vega_trio.resilience import RetryPolicy
from vega_trio.testing import ScriptedLLM, Step


def _samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def _get(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[name, frozenset(labels.items())]


async def test_metrics_of_a_run(autojump_clock: trio.testing.MockClock) -> None:
    """LLM calls, tokens, cost by model, tool calls, processes by status, parsed back."""

    async def add(a: int, b: int) -> int:  # noqa: ASYNC124 - an async tool: a sync one runs in a thread
        """Add."""
        return a + b

    usage = Usage(input_tokens=1000, output_tokens=100)
    llm = ScriptedLLM(
        [
            Step.error(ErrorClass.OVERLOADED),
            Step.tool_call("add", {"a": 1, "b": 2}, usage=usage),
            Step.text("3", usage=usage),
            Step.text("again", usage=usage),
        ]
    )
    async with open_orchestrator(llm=llm, default_model="claude-sonnet-4-5") as orch:
        metrics_collector(orch)  # count from the start
        agent = Agent(name="calc", tools=[add], retry=RetryPolicy(max_attempts=3))
        proc = await orch.spawn(agent)
        assert await proc.send("1+2?") == "3"
        other = await orch.spawn(Agent(name="other"))
        assert await other.send("hi") == "again"
        other.stop()
        await other.wait()
        body, content_type = render_metrics(orch)
    assert content_type.startswith("text/plain")
    s = _samples(body)
    model = "claude-sonnet-4-5"
    assert _get(s, "vega_llm_calls_total", model=model, outcome="ok") == 3
    assert _get(s, "vega_llm_calls_total", model=model, outcome="error") == 1
    assert _get(s, "vega_llm_call_errors_total", model=model, error_class="overloaded") == 1
    assert _get(s, "vega_llm_tokens_total", model=model, kind="input") == 3000
    assert _get(s, "vega_llm_tokens_total", model=model, kind="output") == 300
    cost = _get(s, "vega_llm_cost_usd_total", model=model)
    assert cost == pytest.approx(3 * (1000 * 3 + 100 * 15) / 1e6)
    assert _get(s, "vega_cost_usd_total") == pytest.approx(cost)
    assert _get(s, "vega_tool_calls_total", tool="add", outcome="ok") == 1
    assert _get(s, "vega_processes", status="running") == 1
    assert _get(s, "vega_processes_spawned_total") == 2
    assert _get(s, "vega_process_exits_total", status="stopped") == 1


async def test_restarts_and_health_alerts_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Restarts by agent and health alerts by kind appear in the metrics."""

    async def crash() -> str:  # noqa: ASYNC124 - an async tool: a sync one runs in a thread
        """Crash."""
        raise RuntimeError("boom")

    llm = ScriptedLLM(
        [Step.error(ErrorClass.TEMPORARY)] * 3 + [Step.text("fine")],
    )
    health = HealthConfig(stale_after=None, consecutive_errors=2, cost_usd=None)
    async with open_orchestrator(llm=llm, health=health) as orch:
        metrics_collector(orch)
        agent = Agent(
            name="crashy",
            retry=RetryPolicy(max_attempts=1),
            supervision=Supervision(max_restarts=5, window=60),
        )
        proc = await orch.spawn(agent)
        with orch.subscribe(types="health.alert") as sub:
            assert await proc.send("go") == "fine"
            with trio.fail_after(5):
                await sub.receive()
        body, _ = render_metrics(orch)
    s = _samples(body)
    assert _get(s, "vega_process_restarts_total", agent="crashy") == 3
    assert _get(s, "vega_health_alerts_total", alert="error_loop") == 1


async def test_subscriber_lag_is_reported() -> None:
    """A subscriber that does not read shows as backlog and dropped events."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        with orch.subscribe(types="*", max_buffer=2):
            proc = await orch.spawn(Agent(name="echo"))
            for _ in range(3):
                await proc.send("x")
            s = _samples(render_metrics(orch)[0])
            assert _get(s, "vega_events_published_total") == orch.events.published
    assert _get(s, "vega_event_subscribers") >= 2  # this one and the collector's
    assert _get(s, "vega_event_subscriber_backlog_max") >= 2
    assert _get(s, "vega_event_subscriber_dropped") > 0


async def test_each_orchestrator_has_its_own_registry() -> None:
    """Two orchestrators never mix numbers, and the global registry stays clean."""
    async with open_orchestrator(llm=ScriptedLLM.echo(), default_model="m1") as a:
        async with open_orchestrator(llm=ScriptedLLM.echo(), default_model="m2") as b:
            metrics_collector(a)
            metrics_collector(b)
            await (await a.spawn(Agent(name="x"))).send("hi")
            sa = _samples(render_metrics(a)[0])
            sb = _samples(render_metrics(b)[0])
    assert _get(sa, "vega_llm_calls_total", model="m1", outcome="ok") == 1
    assert ("vega_llm_calls_total", frozenset({("model", "m1"), ("outcome", "ok")})) not in sb
    assert metrics_collector(a) is metrics_collector(a)
    assert b"vega_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)
