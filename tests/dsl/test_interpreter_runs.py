"""Runs and their processes: conversations, parallel branches, cancellation, timeouts,
cleanup, runtime events and the REPL's ask."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
import trio.testing

from vega_trio import AgentNotFound, AgentProcess, ErrorClass
from vega_trio.dsl._events import WorkflowCompleted, WorkflowStepStatus
from vega_trio.dsl._interpreter import (
    ProgressEvent,
    RunResult,
    StepTimeout,
    WorkflowError,
    open_runner,
)
from vega_trio.dsl._model import (
    AgentStep,
    Document,
    ForStep,
    ParallelStep,
    ReturnStep,
    SetStep,
    TryStep,
)
from vega_trio.llm import LLMRequest
from vega_trio.runtime import Event
from vega_trio.testing import ScriptedLLM
from vega_trio.testing import Step as Reply

from .test_interpreter import agent_of, document, last_user_text, routed, sent, workflow


def user_turns(request: LLMRequest) -> list[str]:
    """The user texts of a request's conversation, oldest first."""
    return [m.text for m in request.messages if m.role == "user"]


# -- conversations -------------------------------------------------------------------------


async def test_same_agent_steps_continue_one_conversation_per_run() -> None:
    """Within a run, a second step to the same agent sees the first exchange; a second
    run starts a fresh conversation."""
    llm = routed()
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="first"),
            AgentStep(agent="writer", send="other"),
            AgentStep(agent="researcher", send="second"),
        )
    )
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        await runner.run("main", {})
        await runner.run("main", {})
    researcher = [user_turns(r) for r in llm.requests if agent_of(r) == "researcher"]
    assert researcher == [["first"], ["first", "second"], ["first"], ["first", "second"]]
    writer = [user_turns(r) for r in llm.requests if agent_of(r) == "writer"]
    assert writer == [["other"], ["other"]]


async def test_parallel_branches_to_one_agent_use_separate_processes() -> None:
    """Two branches addressing the same agent each get a fresh conversation; an agent
    addressed by only one branch continues the run's conversation."""
    llm = routed()
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="before"),
            AgentStep(agent="writer", send="before"),
            ParallelStep(
                branches=(
                    (AgentStep(agent="researcher", send="left"),),
                    (
                        AgentStep(agent="researcher", send="right"),
                        AgentStep(agent="writer", send="right too"),
                    ),
                )
            ),
            AgentStep(agent="researcher", send="after"),
        )
    )
    await run_and_check_clean(doc, llm)
    conversations = {last_user_text(r): user_turns(r) for r in llm.requests}
    assert conversations["left"] == ["left"]
    assert conversations["right"] == ["right"]
    assert conversations["right too"] == ["before", "right too"]
    assert conversations["after"] == ["before", "after"]


async def run_and_check_clean(doc: Document, llm: ScriptedLLM) -> None:
    """Run ``main`` and check that no agent process outlives the run."""
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        await runner.run("main", {})
        assert runner.orchestrator.processes() == []
        assert runner.orchestrator.supervisors() == []


# -- parallel ------------------------------------------------------------------------------


async def test_parallel_runs_branches_concurrently_and_merges_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Branches overlap in time; results are in declaration order; each branch sees a
    snapshot; saves merge in declaration order (a later branch wins a shared name)."""
    delays = {"slow": 10.0, "fast": 3.0}
    llm = routed(lambda agent, text, request: Reply.text(f"{text}!", delay=delays[text]))
    doc = document(
        workflow(
            SetStep(values={"shared": "start"}),
            ParallelStep(
                save="results",
                branches=(
                    (
                        AgentStep(agent="researcher", send="slow", save="a"),
                        SetStep(values={"shared": "from first {{shared}}"}),
                    ),
                    (
                        SetStep(values={"shared": "from second {{shared}}"}),
                        AgentStep(agent="writer", send="fast", save="b"),
                    ),
                ),
            ),
        )
    )
    start = trio.current_time()
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        result = await runner.run("main", {})
    assert trio.current_time() - start == pytest.approx(10.0)
    assert result.variables["results"] == ["from first start", "fast!"]
    assert result.output == ["from first start", "fast!"]
    assert result.variables["a"] == "slow!"
    assert result.variables["b"] == "fast!"
    assert result.variables["shared"] == "from second start"


async def test_failing_branch_cancels_its_siblings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A branch failing at t=1 cancels a sibling still waiting on a 100 s reply; the step
    fails at t=1, the sibling's request is cancelled and no process is left."""
    llm = routed(
        lambda agent, text, request: (
            Reply.error(ErrorClass.INVALID_REQUEST, "broken", delay=1.0)
            if agent == "researcher"
            else Reply.text("slow", delay=100.0, chunk_size=1)
        )
    )
    doc = document(
        workflow(
            ParallelStep(
                branches=(
                    (AgentStep(agent="researcher", send="x"),),
                    (AgentStep(agent="writer", send="y", save="never"),),
                )
            )
        )
    )
    events: list[ProgressEvent] = []
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        start = trio.current_time()
        with pytest.raises(WorkflowError) as info:
            await runner.run("main", {}, on_progress=events.append)
        assert trio.current_time() - start == pytest.approx(1.0)
        assert runner.orchestrator.processes() == []
    assert info.value.path == "workflows.main.steps[0].parallel[0]"
    assert info.value.error_class == "invalid_request"
    finished = [(e.kind, e.path) for e in events if e.kind != "step_started"]
    assert ("step_finished", "main.steps[0].parallel[1]") not in finished
    assert ("step_failed", "main.steps[0].parallel[0]") in finished
    assert llm.open_streams == 0


async def test_return_inside_a_branch_ends_the_workflow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`return` in one branch cancels the others and ends the workflow with its value."""
    llm = routed(lambda agent, text, request: Reply.text("late", delay=50.0))
    doc = document(
        workflow(
            ParallelStep(
                branches=(
                    (AgentStep(agent="writer", send="slow"),),
                    (ReturnStep(value="early"),),
                )
            ),
            SetStep(values={"never": 1}),
        )
    )
    start = trio.current_time()
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        result = await runner.run("main", {})
    assert result.output == "early"
    assert trio.current_time() - start < 1.0
    assert "never" not in result.variables


async def test_try_around_parallel_catches_the_failed_branch() -> None:
    """A failing branch inside `try` is caught; the catch sees its error class."""
    llm = routed(
        lambda agent, text, request: (
            Reply.error(ErrorClass.INVALID_REQUEST, "bad input") if text == "bad" else "ok"
        )
    )
    doc = document(
        workflow(
            TryStep(
                steps=(
                    ParallelStep(
                        branches=(
                            (AgentStep(agent="writer", send="good"),),
                            (AgentStep(agent="researcher", send="bad"),),
                        )
                    ),
                ),
                catch=(SetStep(values={"caught": "{{error_class}}"}),),
            )
        )
    )
    result = await run_once(doc, llm)
    assert result.variables["caught"] == "invalid_request"


async def run_once(doc: Document, llm: ScriptedLLM) -> RunResult:
    """Run ``main`` once on a fresh runner."""
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        return await runner.run("main", {})


# -- timeouts and cleanup ------------------------------------------------------------------


async def test_step_timeout_fails_the_step_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`timeout: 5s` fails a step whose reply takes 60 s, at t=5, with error class
    timeout; the request is cancelled."""
    llm = routed(lambda agent, text, request: Reply.text("late", delay=60.0))
    doc = document(workflow(AgentStep(agent="writer", send="x", timeout=5.0)))
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        start = trio.current_time()
        with pytest.raises(WorkflowError) as info:
            await runner.run("main", {})
        assert trio.current_time() - start == pytest.approx(5.0)
        assert runner.orchestrator.processes() == []
    assert isinstance(info.value.cause, StepTimeout)
    assert info.value.error_class == "timeout"
    assert "timeout of 5s" in str(info.value)


async def test_step_timeout_with_retry_succeeds_on_a_quick_second_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A timed-out attempt is retried (`retry: 1`); the quick second reply is used, and
    the same conversation goes on."""
    replies = iter([Reply.text("late", delay=60.0), Reply.text("quick", delay=1.0)])
    llm = routed(lambda agent, text, request: next(replies))
    doc = document(workflow(AgentStep(agent="writer", send="x", timeout=5.0, retry=1, save="r")))
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        start = trio.current_time()
        result = await runner.run("main", {})
        assert trio.current_time() - start == pytest.approx(6.0)
    assert result.variables["r"] == "quick"


async def test_catch_sees_a_timeout() -> None:
    """A step timeout inside `try` gives `error_class` timeout to the catch."""
    llm = routed(lambda agent, text, request: Reply.text("late", delay=30.0))
    doc = document(
        workflow(
            TryStep(
                steps=(AgentStep(agent="writer", send="x", timeout=0.01),),
                catch=(SetStep(values={"c": "{{error_class}}"}),),
            )
        )
    )
    with trio.fail_after(10):
        result = await run_once(doc, llm)
    assert result.variables["c"] == "timeout"


async def test_processes_are_gone_after_success_and_failure() -> None:
    """Every process of a run (one per agent used) is stopped when it ends, whether it
    succeeded or failed; the run supervisor is gone too."""
    llm = routed(
        lambda agent, text, request: (
            Reply.error(ErrorClass.AUTHENTICATION, "no") if text == "fail" else "ok"
        )
    )
    good = workflow(
        AgentStep(agent="researcher", send="a"), AgentStep(agent="writer", send="b"), name="good"
    )
    bad = workflow(
        AgentStep(agent="researcher", send="a"), AgentStep(agent="writer", send="fail"), name="bad"
    )
    seen: list[int] = []
    async with open_runner(document(good, bad), llm=llm, base_dir=Path.cwd()) as runner:
        orch = runner.orchestrator
        # The processes alive at each finished step, read from the bus in order.
        with orch.subscribe(types=["process.*", "workflow.step"]) as events:
            await runner.run("good", {})
            assert orch.processes() == [] and orch.supervisors() == []
            with pytest.raises(WorkflowError):
                await runner.run("bad", {})
            assert orch.processes() == [] and orch.supervisors() == []
            live = 0
            while (event := events.receive_nowait()) is not None:
                assert isinstance(event, Event)
                if event.type == "process.started":
                    live += 1
                elif event.type.startswith("process."):
                    live -= 1
                elif event.data["status"] == "finished":
                    seen.append(live)
    assert seen == [1, 2, 1]


async def test_cancelling_a_run_stops_its_processes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run cancelled from outside (a --timeout) ends every one of its processes."""
    llm = routed(lambda agent, text, request: Reply.text("late", delay=100.0))
    doc = document(workflow(AgentStep(agent="writer", send="x")))
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        with trio.move_on_after(3):
            await runner.run("main", {})
        assert runner.orchestrator.processes() == []
        assert runner.orchestrator.supervisors() == []
    assert llm.open_streams == 0


async def test_for_with_parallel_does_not_accumulate_processes() -> None:
    """Branch processes of a `parallel` inside a loop are stopped after each iteration."""
    llm = routed()
    live: list[int] = []
    doc = document(
        workflow(
            ForStep(
                variable="i",
                items="items",
                steps=(
                    ParallelStep(
                        branches=(
                            (AgentStep(agent="writer", send="a{{i}}"),),
                            (AgentStep(agent="writer", send="b{{i}}"),),
                        )
                    ),
                ),
            )
        )
    )
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:

        def count(event: ProgressEvent) -> None:
            if event.kind == "step_started" and re.fullmatch(
                r"main\.steps\[0\]\.for\[\d\]\.steps\[0\]", event.path
            ):
                live.append(len(runner.orchestrator.processes()))

        await runner.run("main", {"items": list(range(5))}, on_progress=count)
        assert runner.orchestrator.processes() == []
    assert live == [0, 0, 0, 0, 0]
    assert len(llm.requests) == 10
    assert all(len(user_turns(r)) == 1 for r in llm.requests)


# -- events --------------------------------------------------------------------------------


async def test_runtime_events_for_a_run() -> None:
    """A run publishes workflow.started, workflow.step (started/finished) and
    workflow.completed on the orchestrator's bus; a failed run workflow.failed."""
    llm = routed(
        lambda agent, text, request: (
            Reply.error(ErrorClass.AUTHENTICATION, "no") if text == "fail" else "ok"
        )
    )
    ok = workflow(AgentStep(agent="writer", send="hi"), name="ok")
    bad = workflow(AgentStep(agent="writer", send="fail"), name="bad")
    async with open_runner(document(ok, bad), llm=llm, base_dir=Path.cwd()) as runner:
        with runner.orchestrator.subscribe(types=["workflow."]) as subscription:
            await runner.run("ok", {})
            with pytest.raises(WorkflowError):
                await runner.run("bad", {})
            events = []
            while (event := subscription.receive_nowait()) is not None:
                assert isinstance(event, Event)
                events.append(event)
    summary = [(e.type, e.run_id, e.data.get("status"), e.agent) for e in events]
    assert summary == [
        ("workflow.started", "ok-1", None, None),
        ("workflow.step", "ok-1", "started", "writer"),
        ("workflow.step", "ok-1", "finished", "writer"),
        ("workflow.completed", "ok-1", None, None),
        ("workflow.started", "bad-1", None, None),
        ("workflow.step", "bad-1", "started", "writer"),
        ("workflow.step", "bad-1", "failed", "writer"),
        ("workflow.failed", "bad-1", None, None),
    ]
    failed = events[-1]
    assert failed.data["error_class"] == "authentication"
    assert failed.data["path"] == "workflows.bad.steps[0]"


# -- ask (the REPL) ------------------------------------------------------------------------


async def test_ask_keeps_one_conversation_per_agent_until_end() -> None:
    """`ask` talks to one long-lived process per agent; `end` starts a fresh one."""
    llm = routed()
    async with open_runner(document(), llm=llm, base_dir=Path.cwd()) as runner:
        assert await runner.ask("writer", "one") == "writer: one"
        await runner.ask("writer", "two")
        await runner.ask("researcher", "elsewhere")
        first = runner.chat_process("writer")
        assert isinstance(first, AgentProcess)
        await runner.end("writer")
        assert runner.chat_process("writer") is None
        await runner.ask("writer", "three")
        assert runner.chat_process("writer") is not first
    writer = [user_turns(r) for r in llm.requests if agent_of(r) == "writer"]
    assert writer == [["one"], ["one", "two"], ["three"]]
    assert sent(llm, "researcher") == ["elsewhere"]


async def test_ask_stream_yields_text_chunks() -> None:
    """`ask_stream` streams the reply in chunks that join to the whole reply."""
    llm = routed(lambda agent, text, request: Reply.text("a streamed reply", chunk_size=3))
    async with open_runner(document(), llm=llm, base_dir=Path.cwd()) as runner:
        async with runner.ask_stream("writer", "hi") as chunks:
            parts = [chunk async for chunk in chunks]
        assert "".join(parts) == "a streamed reply"
        assert len(parts) > 1
        processes = runner.orchestrator.processes()
        assert [p.agent_name for p in processes] == ["writer"]
    # the orchestrator block stopped the chat process
    assert not processes[0].alive


async def test_ask_unknown_agent_lists_the_agents() -> None:
    """Asking an agent that does not exist names the ones that do."""
    async with open_runner(document(), llm=routed(), base_dir=Path.cwd()) as runner:
        with pytest.raises(AgentNotFound, match="researcher, writer"):
            await runner.ask("wrtier", "hi")


async def test_step_events_carry_the_runs_usage_and_round_trip() -> None:
    """workflow.step events carry the run's id, path, agent and cumulative tokens and cost
    (what the CLI's step lines are made of), and survive their JSON form."""
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="a", save="x"),
            AgentStep(agent="writer", send="b"),
        )
    )
    async with open_runner(doc, llm=routed(), base_dir=Path.cwd()) as runner:
        with runner.orchestrator.subscribe(types="workflow.*", runs="main-1") as subscription:
            result = await runner.run("main", {})
            events = [e for e in iter(subscription.receive_nowait, None)]
    assert all(isinstance(e, Event) for e in events)
    steps = [e for e in events if isinstance(e, WorkflowStepStatus)]
    assert [(e.path, e.agent, e.status) for e in steps] == [
        ("main.steps[0]", "researcher", "started"),
        ("main.steps[0]", "researcher", "finished"),
        ("main.steps[1]", "writer", "started"),
        ("main.steps[1]", "writer", "finished"),
    ]
    assert steps[0].input_tokens == 0 < steps[1].input_tokens < steps[3].input_tokens
    assert steps[3].cost_usd == pytest.approx(result.cost_usd) and result.cost_usd > 0
    completed = events[-1]
    assert isinstance(completed, WorkflowCompleted) and completed.steps_run == 2
    assert [Event.from_json(e.to_json()) for e in events] == events  # type: ignore[union-attr]


async def test_a_cancelled_run_publishes_workflow_interrupted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run cancelled from outside ends with a workflow.interrupted event, and the
    deprecated on_progress still sees every earlier workflow event of the run."""
    llm = routed(lambda agent, text, request: Reply.text("late", delay=100.0))
    doc = document(workflow(AgentStep(agent="writer", send="x")))
    seen: list[str] = []
    async with open_runner(doc, llm=llm, base_dir=Path.cwd()) as runner:
        with runner.orchestrator.subscribe(types="workflow.*") as subscription:
            with trio.move_on_after(3):
                await runner.run("main", {}, on_progress=lambda e: seen.append(e.kind))
            types = [e.type for e in iter(subscription.receive_nowait, None)]  # type: ignore[union-attr]
    assert types == ["workflow.started", "workflow.step", "workflow.interrupted"]
    assert seen == ["workflow_started", "step_started"]


async def test_every_event_of_a_runs_processes_carries_its_run_id() -> None:
    """The processes a run spawns carry its run_id, so their process.* and llm.call events
    do too, and subscribe(runs=...) sees the whole run (not only workflow.* events)."""
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="a", save="x"),
            AgentStep(agent="writer", send="b"),
        )
    )
    async with open_runner(doc, llm=routed(), base_dir=Path.cwd()) as runner:
        with runner.orchestrator.subscribe(runs="main-1") as subscription:
            await runner.run("main", {})
        events = list(iter(subscription.receive_nowait, None))
    kinds = {e.type for e in events}  # type: ignore[union-attr]
    assert {"process.started", "llm.call", "workflow.step", "workflow.completed"} <= kinds
    assert {e.run_id for e in events} == {"main-1"}  # type: ignore[union-attr]
    called = [e.agent for e in events if e.type == "llm.call"]  # type: ignore[union-attr]
    assert called == ["researcher", "writer"]
