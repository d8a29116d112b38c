from __future__ import annotations

import pytest
import trio
import trio.testing

import vega_trio
from vega_trio import Agent, OrchestratorClosed, ProcessStatus, open_orchestrator
from vega_trio.testing import FakeResponse, ScriptedLLM, Step, open_fake_anthropic_server


async def test_default_backend_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without llm=, the orchestrator builds an AnthropicLLM from ANTHROPIC_* and closes it."""
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.text("from env"))
        monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        async with open_orchestrator() as orch:
            proc = await orch.spawn(Agent(name="a"))
            assert await proc.send("hi") == "from env"
            assert isinstance(orch.llm, vega_trio.AnthropicLLM)
        assert server.requests[0].headers["authorization"] == "Bearer env-key"


async def test_error_in_the_block_comes_out_unwrapped() -> None:
    """An exception raised in the block propagates as itself, not as an ExceptionGroup."""
    with pytest.raises(KeyError, match="mine"):
        async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
            await orch.spawn(Agent(name="a"))
            raise KeyError("mine")


async def test_nothing_runs_after_the_block(autojump_clock: trio.testing.MockClock) -> None:
    """Every process is finished after the block, busy ones included, and spawn is refused."""
    llm = ScriptedLLM(responder=lambda _request: Step.text("slow", delay=10_000))
    async with open_orchestrator(llm=llm, shutdown_timeout=3) as orch:
        procs = [await orch.spawn(Agent(name=f"a{i}")) for i in range(5)]
        futures = [p.send_async("work") for p in procs]
        idle = await orch.spawn(Agent(name="idle"))
    assert trio.current_time() == 3
    assert all(p.status == ProcessStatus.STOPPED for p in [*procs, idle])
    assert all(isinstance(f.exception(), vega_trio.ProcessExited) for f in futures)
    assert llm.open_streams == 0
    with pytest.raises(OrchestratorClosed):
        await orch.spawn(Agent(name="late"))


async def test_graceful_shutdown_lets_the_current_message_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A message in progress when the block ends finishes if it fits in shutdown_timeout."""
    llm = ScriptedLLM([Step.text("finished", delay=2)])
    async with open_orchestrator(llm=llm, shutdown_timeout=5) as orch:
        proc = await orch.spawn(Agent(name="a"))
        future = proc.send_async("work")
        await trio.testing.wait_all_tasks_blocked()
    assert await future.wait() == "finished"
    assert trio.current_time() == 2
    assert proc.status == ProcessStatus.STOPPED


async def test_bad_options_are_clear_errors() -> None:
    """Invalid orchestrator and spawn options raise errors that name the option."""
    with pytest.raises(ValueError, match="max_processes"):
        async with open_orchestrator(llm=ScriptedLLM.echo(), max_processes=0):
            pass
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        with pytest.raises(TypeError, match="Agent"):
            await orch.spawn("assistant")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            await orch.spawn(Agent(name="a"), timeout=-1)
        with pytest.raises(ValueError, match="max_iterations"):
            await orch.spawn(Agent(name="a"), max_iterations=0)
    with pytest.raises(ValueError, match="name"):
        Agent(name="")


async def test_stats_and_events() -> None:
    """stats() counts live processes; the bus carries llm.call with tokens and cost."""
    async with open_orchestrator(llm=ScriptedLLM(["ok"])) as orch:
        with orch.subscribe(types=["llm.call"]) as sub:
            proc = await orch.spawn(Agent(name="a", model="claude-sonnet-4-5"))
            await proc.send("hi")
            event = sub.receive_nowait()
        assert orch.stats()["live_processes"] == 1
    assert isinstance(event, vega_trio.runtime.Event)
    assert event.data["model"] == "claude-sonnet-4-5"
    assert event.data["cost_usd"] == pytest.approx(proc.metrics.cost_usd)
    assert event.data["input_tokens"] == proc.metrics.input_tokens


async def test_links_and_monitors_between_agent_processes() -> None:
    """orch.link kills a linked agent process with reason linked; a trapping one gets an
    ExitSignal instead; orch.monitor reports the exit once."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        a = await orch.spawn(Agent(name="a"))
        b = await orch.spawn(Agent(name="b"))
        watcher = await orch.spawn(Agent(name="watcher"), trap_exit=True)
        orch.link(a, b)
        orch.link(a, watcher)
        monitor = orch.monitor(a)
        a.fail(RuntimeError("a broke"))
        down = await monitor.wait()
        assert down.reason.kind == "error"
        reason = await b.wait()
        assert reason.kind == "linked" and reason.source == a.id
        signal = await watcher.signals.receive()
        assert isinstance(signal, vega_trio.ExitSignal) and signal.process_id == a.id
        assert watcher.status == ProcessStatus.RUNNING


async def test_a_provider_prefix_picks_that_providers_backend() -> None:
    """model "openai:<name>" goes to the openai backend with the bare name; "anthropic:<name>"
    and unprefixed models go to the default backend; an agent's own llm wins."""
    default, openai, own = ScriptedLLM.echo("d:"), ScriptedLLM.echo("o:"), ScriptedLLM.echo("x:")
    async with open_orchestrator(llm=default, backends={"openai": openai}) as orch:
        gpt = await orch.spawn(Agent(name="gpt", model="openai:llama3:8b"))
        claude = await orch.spawn(Agent(name="claude", model="anthropic:claude-opus-4-5"))
        plain = await orch.spawn(Agent(name="plain", model="my-model:latest"))
        mine = await orch.spawn(Agent(name="mine", model="openai:gpt-5", llm=own))
        assert await gpt.send("hi") == "o:hi"
        assert await claude.send("hi") == "d:hi"
        assert await plain.send("hi") == "d:hi"
        assert await mine.send("hi") == "x:hi"
    assert [r.model for r in openai.requests] == ["llama3:8b"]
    assert [r.model for r in default.requests] == ["claude-opus-4-5", "my-model:latest"]
    assert [r.model for r in own.requests] == ["gpt-5"]
