"""Health alerts (``health.alert``): stale progress, high iterations, error loops, cost —
each once per episode, in virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from vega_trio import Agent, ErrorClass, OrchestratorConfig, open_orchestrator
from vega_trio.events import HealthAlert
from vega_trio.llm import Usage
from vega_trio.observability import HealthConfig, health_status
from vega_trio.resilience import RetryPolicy
from vega_trio.runtime import Subscription
from vega_trio.testing import ScriptedLLM, Step


async def _next(sub: Subscription) -> HealthAlert:
    """The next alert (the monitor emits it from its own task, so it may come after the
    send that caused it has returned)."""
    with trio.fail_after(600):  # virtual seconds under autojump_clock
        item = await sub.receive()
    assert isinstance(item, HealthAlert)
    return item


def _alerts(sub: Subscription) -> list[HealthAlert]:
    found = []
    while (item := sub.receive_nowait()) is not None:
        if isinstance(item, HealthAlert):
            found.append(item)
    return found


def _off(**on: object) -> HealthConfig:
    """A config with only the given alerts on."""
    base: dict[str, object] = {
        "stale_after": None,
        "max_iterations_ratio": None,
        "consecutive_errors": None,
        "cost_usd": None,
    }
    base.update(on)
    return HealthConfig(**base)  # type: ignore[arg-type]


async def test_stale_progress_alerts_once_at_the_threshold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A send whose LLM call hangs alerts stale_progress once, stale_after seconds in."""
    llm = ScriptedLLM([Step.text("late", delay=300)])
    config = OrchestratorConfig(llm=llm, health=_off(stale_after=60, check_interval=1))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="slow"))
            start = trio.current_time()
            future = proc.send_async("hi")
            seen_at: list[float] = []
            while not seen_at:
                await sub.receive()
                seen_at.append(trio.current_time() - start)
            assert 60 <= seen_at[0] <= 61
            assert await future.wait() is not None
            alerts = _alerts(sub)
        assert alerts == []  # one alert for the whole stale stretch
    del proc


async def test_stale_progress_alert_details(autojump_clock: trio.testing.MockClock) -> None:
    """The stale alert names the process, agent, idle time and threshold."""
    llm = ScriptedLLM([Step.text("late", delay=100)])
    config = OrchestratorConfig(llm=llm, health=_off(stale_after=30, check_interval=5))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="slow"))
            await proc.send("hi")
            alert = await _next(sub)
            await orch.aclose()
            assert _alerts(sub) == []
    assert alert.alert == "stale_progress"
    assert alert.process_id == proc.id and alert.agent == "slow"
    assert alert.threshold == 30 and alert.value is not None and 30 <= alert.value <= 35
    assert "stuck" in alert.detail


async def test_progress_in_time_gives_no_stale_alert(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Rounds that each finish within stale_after never alert, however long the send."""
    # NOTE: async tools: a sync tool runs in a thread, and the mock clock jumps meanwhile.

    async def add(a: int, b: int) -> int:  # noqa: ASYNC124 - an async tool: a sync one runs in a thread
        """Add two numbers."""
        return a + b

    steps = [Step.tool_call("add", {"a": 1, "b": 2}, delay=40) for _ in range(5)]
    llm = ScriptedLLM([*steps, Step.text("done", delay=40)])
    config = OrchestratorConfig(llm=llm, health=_off(stale_after=60))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="steady", tools=[add]))
            assert await proc.send("go") == "done"
            assert trio.current_time() >= 240
            assert _alerts(sub) == []


async def test_high_iterations_alert_once_per_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A send reaching 80% of max_iterations alerts once; the next send alerts again."""

    async def noop() -> str:  # noqa: ASYNC124 - an async tool: a sync one runs in a thread
        """Do nothing."""
        return "ok"

    def script() -> list[Step]:
        return [*(Step.tool_call("noop") for _ in range(9)), Step.text("done")]

    llm = ScriptedLLM([*script(), *script()])
    config = OrchestratorConfig(llm=llm, health=_off(max_iterations_ratio=0.8))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="loopy", tools=[noop], max_iterations=10))
            await proc.send("first")
            first = await _next(sub)
            await proc.send("second")
            second = await _next(sub)
            await orch.aclose()
            assert _alerts(sub) == []  # once per send
    assert (first.alert, first.value, first.threshold) == ("high_iterations", 8, 8)
    assert second.alert == "high_iterations"
    assert first.process_id == proc.id


async def test_few_iterations_no_alert(autojump_clock: trio.testing.MockClock) -> None:
    """A send well under the ratio does not alert."""
    llm = ScriptedLLM([Step.text("done")])
    config = OrchestratorConfig(llm=llm, health=_off(max_iterations_ratio=0.8))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="calm", max_iterations=2))
            await proc.send("hi")
            assert _alerts(sub) == []


async def test_consecutive_errors_alert_once_per_episode(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three failed calls in a row alert error_loop once; a success ends the episode."""
    fail = Step.error(ErrorClass.TEMPORARY)
    llm = ScriptedLLM([fail, fail, fail, fail, Step.text("ok"), fail, fail, fail, Step.text("ok")])
    config = OrchestratorConfig(llm=llm, health=_off(consecutive_errors=3))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="flaky", retry=RetryPolicy(max_attempts=5)))
            assert await proc.send("a") == "ok"
            first = await _next(sub)
            assert await proc.send("b") == "ok"
            second = await _next(sub)
            await orch.aclose()
            assert _alerts(sub) == []  # once per episode
    assert (first.alert, first.value, first.threshold) == ("error_loop", 3, 3)
    assert second.alert == "error_loop"


async def test_tool_errors_count_as_errors(autojump_clock: trio.testing.MockClock) -> None:
    """A model calling a broken tool three times alerts error_loop once, though its LLM
    calls between succeed; a working tool call ends the streak."""

    async def broken() -> str:  # noqa: ASYNC124 - an async tool: a sync one runs in a thread
        """Always fails."""
        raise RuntimeError("boom")

    async def fine() -> str:  # noqa: ASYNC124 - an async tool: a sync one runs in a thread
        """Works."""
        return "ok"

    broken_twice = [Step.tool_call("broken"), Step.tool_call("broken")]
    llm = ScriptedLLM(
        [
            *broken_twice,
            Step.tool_call("fine"),
            *broken_twice,
            Step.tool_call("broken"),
            Step.tool_call("broken"),
            Step.text("gave up"),
        ]
    )
    config = OrchestratorConfig(llm=llm, health=_off(consecutive_errors=3))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="tooly", tools=[broken, fine]))
            await proc.send("go")
            alert = await _next(sub)
            await orch.aclose()
            assert _alerts(sub) == []
    assert (alert.alert, alert.value) == ("error_loop", 3)
    assert "tool calls in a row" in alert.detail


async def test_parallel_tool_errors_alert(autojump_clock: trio.testing.MockClock) -> None:
    """Three failing tool calls of one turn (no success between) alert error_loop."""

    async def broken() -> str:  # noqa: ASYNC124 - an async tool: a sync one runs in a thread
        """Always fails."""
        raise RuntimeError("boom")

    llm = ScriptedLLM(
        [Step.tool_calls([("broken", {}), ("broken", {}), ("broken", {})]), Step.text("x")]
    )
    config = OrchestratorConfig(llm=llm, health=_off(consecutive_errors=3))
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="tooly", tools=[broken]))
            await proc.send("go")
            alert = await _next(sub)
    assert alert.alert == "error_loop"
    assert "tool calls" in alert.detail


@pytest.mark.parametrize("spawns", [1, 3])
async def test_cost_alert_per_process_and_per_agent(
    autojump_clock: trio.testing.MockClock, spawns: int
) -> None:
    """Spend over cost_usd alerts once per process and once per agent (all its processes)."""
    usage = Usage(input_tokens=100_000, output_tokens=0)  # $0.30 at $3/M input
    llm = ScriptedLLM(responder=lambda request: Step.text("ok", usage=usage))
    config = OrchestratorConfig(
        llm=llm, health=_off(cost_usd=0.5), default_model="claude-sonnet-4-5"
    )
    async with open_orchestrator(config) as orch:
        with orch.subscribe(types="health.alert") as sub:
            procs = [await orch.spawn(Agent(name="spender")) for _ in range(spawns)]
            for proc in procs:
                await proc.send("1")
            if spawns == 1:
                await procs[0].send("2")
                await procs[0].send("3")
            alerts = [await _next(sub) for _ in range(2 if spawns == 1 else 1)]
            await orch.aclose()
            alerts += _alerts(sub)
    cost = [(a.process_id, a.agent) for a in alerts if a.alert == "cost"]
    if spawns == 1:
        assert cost == [(procs[0].id, "spender"), (None, "spender")]
    else:  # $0.30 each: no process over, the agent is ($0.90)
        assert cost == [(None, "spender")]


async def test_no_monitor_without_config() -> None:
    """Without health config nothing subscribes, so llm.call events are not even built."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        from vega_trio.events import LLMCalled

        assert not orch.events.wants(LLMCalled)
    async with open_orchestrator(llm=ScriptedLLM.echo(), health=HealthConfig()) as orch:
        assert orch.events.wants(LLMCalled)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stale_after", 0),
        ("max_iterations_ratio", 1.5),
        ("consecutive_errors", 2.5),
        ("cost_usd", -1),
        ("check_interval", None),
    ],
)
def test_bad_thresholds_are_refused(field: str, value: object) -> None:
    """A bad threshold fails where the config is built, naming the field."""
    with pytest.raises(ValueError, match=field):
        HealthConfig(**{field: value})  # type: ignore[arg-type]


async def test_health_status_is_degraded_while_an_episode_lasts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """health_status says degraded while a process is stale, ok again after progress."""
    llm = ScriptedLLM([Step.text("late", delay=100)])
    config = OrchestratorConfig(llm=llm, health=_off(stale_after=30))
    async with open_orchestrator(config) as orch:
        assert health_status(orch)["status"] == "ok"
        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="slow"))
            future = proc.send_async("hi")
            await _next(sub)
            status = health_status(orch)
            assert status["status"] == "degraded"
            assert status["alerts"] == [
                {"alert": "stale_progress", "process_id": proc.id, "agent": "slow"}
            ]
            assert status["processes"] == {"running": 1} and status["monitor"] is True
            await future.wait()
            # NOTE: the monitor reads the reply's llm.call in its own task: once every
            # task is blocked, it has.
            await trio.testing.wait_all_tasks_blocked()
            assert health_status(orch)["status"] == "ok"
        orch.close()
        assert health_status(orch)["status"] == "closing"


async def test_health_status_without_monitor() -> None:
    """Without a health config the status says so and is ok."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        status = health_status(orch)
    assert status["monitor"] is False and status["alerts"] == []
