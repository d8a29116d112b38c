"""OrchestratorConfig, open_orchestrator(config, **overrides) and run_orchestrator."""

from __future__ import annotations

import functools

import attrs
import pytest
import trio
import trio.testing

from vega_trio import (
    Agent,
    Budget,
    OrchestratorClosed,
    OrchestratorConfig,
    ProcessExited,
    Tools,
    open_orchestrator,
    run_orchestrator,
)
from vega_trio.testing import ScriptedLLM, Step


def shout(text: str) -> str:
    """Say it louder."""
    return text.upper()


# -- the config object ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"shutdown_timeout": -1}, ValueError, r"shutdown_timeout must be a number of seconds"),
        ({"max_processes": 0}, ValueError, r"max_processes must be a whole number"),
        ({"mailbox_size": 0}, ValueError, r"mailbox_size must be a whole number"),
        ({"default_model": " "}, ValueError, r"default_model must be a non-empty model id"),
        ({"llm": "claude"}, TypeError, r"llm must be an LLM backend"),
        ({"budget": "five dollars"}, ValueError, r"US dollars"),
        ({"max_concurrent_calls": 0}, ValueError, r"at least 1"),
        ({"rate_limits": {"m": 60}}, TypeError, r"rate_limits\['m'\] must be a RateLimit"),
        ({"backends": {"gemini": ScriptedLLM()}}, ValueError, r"unknown provider 'gemini'"),
        ({"tools": "read_file"}, TypeError, r"takes a Tools registry"),
        ({"store": object()}, TypeError, r"store must be a vega_trio.store.Store"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(
    fields: dict[str, object], error: type[Exception], message: str
) -> None:
    """Every field checks itself when the config is built, naming the field and the fix."""
    with pytest.raises(error, match=message):
        OrchestratorConfig(**fields)  # type: ignore[arg-type]


def test_convenient_forms_are_normalised_and_the_config_is_frozen() -> None:
    """An amount becomes a Budget, a list of functions a Tools registry; fields can't be set."""
    config = OrchestratorConfig(budget="$5", tools=[shout])
    assert config.budget == Budget(limit=5.0)
    assert isinstance(config.tools, Tools) and config.tools.names() == ("shout",)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.max_processes = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        OrchestratorConfig(ScriptedLLM())  # type: ignore[misc]  # keyword-only


async def test_overrides_are_applied_to_the_config() -> None:
    """open_orchestrator(config, **overrides) runs with the config evolved by the overrides."""
    llm = ScriptedLLM.echo("> ")
    config = OrchestratorConfig(llm=llm, shutdown_timeout=7, max_processes=1)
    async with open_orchestrator(config, max_processes=2) as orch:
        assert orch.config == attrs.evolve(config, max_processes=2)
        assert orch.config.shutdown_timeout == 7
        first = await orch.spawn(Agent(name="a"))
        await orch.spawn(Agent(name="b"))  # the override allows a second one
        assert await first.send("hi") == "> hi"
    assert config.max_processes == 1  # the caller's config is untouched


async def test_wrong_arguments_to_open_orchestrator_say_what_to_do() -> None:
    """An unknown option and a positional backend are refused with the fix in the message."""
    with pytest.raises(TypeError, match=r"unknown option.*max_procs"):
        async with open_orchestrator(OrchestratorConfig(), max_procs=3):
            pass
    with pytest.raises(TypeError, match=r"pass options by keyword \(open_orchestrator\(llm="):
        async with open_orchestrator(ScriptedLLM()):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="shutdown_timeout"):
        async with open_orchestrator(shutdown_timeout=-1):
            pass


# -- the startable form -----------------------------------------------------------------------


async def test_run_orchestrator_starts_serves_and_closes_gracefully(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """nursery.start returns the orchestrator; close() lets the reply in flight finish
    (the graceful ladder), then the task returns and nothing is left running."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("done", delay=3))
    config = OrchestratorConfig(llm=llm, shutdown_timeout=10)
    async with trio.open_nursery() as nursery:
        orch = await nursery.start(run_orchestrator, config)
        proc = await orch.spawn(Agent(name="a"))
        reply = proc.send_async("work")
        await trio.sleep(1)
        orch.close()
        with pytest.raises(OrchestratorClosed):
            await orch.spawn(Agent(name="late"))
    assert trio.current_time() == 3  # the reply finished; nothing was cut short
    assert reply.result() == "done"
    assert not proc.alive


async def test_aclose_waits_for_the_ladder_and_cancels_what_overruns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """aclose() returns once the ladder is done: a reply longer than shutdown_timeout is
    cancelled at the deadline and its caller gets an answer."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("late", delay=100))
    async with trio.open_nursery() as nursery:
        orch = await nursery.start(run_orchestrator, OrchestratorConfig(llm=llm))
        proc = await orch.spawn(Agent(name="a"))
        reply = proc.send_async("work")
        await trio.sleep(1)
        await orch.aclose()
        assert trio.current_time() == 11  # 1 s of work, then the default shutdown_timeout
        assert not proc.alive
    with pytest.raises(ProcessExited):
        reply.result()


async def test_cancelling_the_nursery_stops_the_orchestrator(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling the nursery is like a block that raised: processes are cancelled at
    once, every caller is answered and the task ends."""
    llm = ScriptedLLM(responder=lambda _r: Step.text("never", delay=1_000))
    async with trio.open_nursery() as nursery:
        orch = await nursery.start(run_orchestrator, OrchestratorConfig(llm=llm))
        proc = await orch.spawn(Agent(name="a"))
        reply = proc.send_async("work")
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert trio.current_time() == 2
    assert not proc.alive
    with pytest.raises(ProcessExited):
        reply.result()
    assert llm.open_streams == 0


async def test_errors_before_started_come_out_of_nursery_start() -> None:
    """A start failure is raised by nursery.start itself; the caller's nursery goes on."""
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="shutdown_timeout"):
            await nursery.start(
                functools.partial(run_orchestrator, OrchestratorConfig(), shutdown_timeout=-1)
            )
        with pytest.raises(TypeError, match="unknown option"):
            await nursery.start(functools.partial(run_orchestrator, None, max_procs=1))
        orch = await nursery.start(run_orchestrator, OrchestratorConfig(llm=ScriptedLLM.echo()))
        proc = await orch.spawn(Agent(name="a"))
        assert await proc.send("still fine") == "still fine"
        orch.close()


async def test_close_inside_the_block_shuts_down_and_the_block_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """In an open_orchestrator block, aclose() runs the ladder now; the block continues
    with a closed orchestrator."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        proc = await orch.spawn(Agent(name="a"))
        await orch.aclose()
        assert not proc.alive
        with pytest.raises(OrchestratorClosed):
            await orch.spawn(Agent(name="b"))
        await orch.aclose()  # a second call is harmless


async def test_event_history_lets_a_late_subscriber_replay() -> None:
    """event_history=n keeps the latest n events, so subscribe(after=seq) replays them; a
    negative size is refused with the field's name."""
    with pytest.raises(ValueError, match="event_history"):
        OrchestratorConfig(event_history=-1)
    async with open_orchestrator(llm=ScriptedLLM.echo(), event_history=100) as orch:
        proc = await orch.spawn(Agent(name="a"))
        await proc.send("hi")
        with orch.subscribe(types="process.*", after=0) as sub:
            replayed = list(iter(sub.receive_nowait, None))
    assert [e.type for e in replayed][:1] == ["process.started"]
    assert all(e.process_id == proc.id for e in replayed)


async def test_options_are_read_from_the_config_only() -> None:
    """The orchestrator does not mirror its options as attributes (one way to read each:
    orch.config.X); what it keeps is live state (the backend in use, the tools with the
    built-ins, the resolved price table, the budget tracker, the backends created)."""
    live_state = {"llm", "prices", "tools", "budget", "backends"}
    async with open_orchestrator(llm=ScriptedLLM.echo(), shutdown_timeout=3) as orch:
        mirrored = [
            f.name
            for f in attrs.fields(OrchestratorConfig)
            if f.name not in live_state and hasattr(orch, f.name)
        ]
        assert mirrored == []
        assert orch.config.shutdown_timeout == 3
