"""Workflow runs recorded in a store resume from their last completed step: completed
steps are not sent to the model again, their results and saves are reused, the step in
flight runs again; parallel branches, loops and nested workflows resume in place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import ErrorClass
from vega_trio.dsl._events import WorkflowInterrupted, WorkflowResumed, WorkflowStepStatus
from vega_trio.dsl._interpreter import (
    Runner,
    RunNotResumable,
    WorkflowError,
    open_runner,
)
from vega_trio.dsl._model import (
    AgentStep,
    ForStep,
    IfStep,
    ParallelStep,
    RepeatStep,
    ReturnStep,
    SetStep,
    TryStep,
    WorkflowStep,
)
from vega_trio.llm import LLMRequest
from vega_trio.store import RunRecord, Store, open_store
from vega_trio.testing import ScriptedLLM
from vega_trio.testing import Step as Reply

from .test_interpreter import agent_of, document, last_user_text, workflow


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The real SQLite store on a fresh file."""
    async with open_store(tmp_path / "runs.db") as opened:
        yield opened


class Model:
    """A scripted model that answers ``<agent>: <message>``, fails the messages in
    ``failing`` (an invalid-request error: not retried), takes ``delay`` seconds to
    answer a message that starts with ``slow`` and keeps every message sent."""

    def __init__(self, *failing: str) -> None:
        self.failing = set(failing)
        self.delay = 0.0
        self.fail_delay = 0.0
        self.slow_sent = trio.Event()
        self.llm = ScriptedLLM(responder=self._respond)

    def _respond(self, request: LLMRequest) -> Reply | str:
        text = last_user_text(request)
        if text in self.failing:
            return Reply.error(
                ErrorClass.INVALID_REQUEST, f"refused {text!r}", delay=self.fail_delay
            )
        delay = 0.0
        if text.startswith("slow"):
            delay = self.delay
            self.slow_sent.set()
        return Reply.text(f"{agent_of(request)}: {text}", delay=delay)

    def sent(self) -> list[str]:
        return [last_user_text(r) for r in self.llm.requests]


def step_events(events: list[Any], status: str) -> list[str]:
    return [e.path for e in events if isinstance(e, WorkflowStepStatus) and e.status == status]


async def run_failing(runner: Runner, name: str = "main", **inputs: Any) -> str:
    """Run ``name``, which must fail; the failed run's id."""
    with pytest.raises(WorkflowError):
        await runner.run(name, inputs)
    store = runner.store
    assert store is not None
    page = await store.list_runs(status=["failed"])
    return str(page.items[0].id)


async def test_resume_after_a_failure_reuses_completed_steps(store: Store) -> None:
    """A run that failed at its third step resumes there: the first two steps are not
    sent again, their saves feed the later steps, and the run records completion."""
    model = Model("write about researcher: one")
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="one", save="first"),
            AgentStep(agent="researcher", send="two", save="second"),
            AgentStep(agent="writer", send="write about {{ first }}", save="text"),
            AgentStep(agent="writer", send="polish {{ text }} and {{ second }}"),
        )
    )
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        run_id = await run_failing(runner)
        assert model.sent() == ["one", "two", "write about researcher: one"]
        record = await store.get_run(run_id)
        assert record is not None and record.status == "failed"
        assert record.step == "workflows.main.steps[2]"
        model.failing.clear()
        events: list[Any] = []
        with runner.orchestrator.subscribe(types="workflow.*", max_buffer=1000) as sub:
            result = await runner.resume(run_id)
            while (item := sub.receive_nowait()) is not None:
                events.append(item)
    assert model.sent() == [
        "one",
        "two",
        "write about researcher: one",
        "write about researcher: one",
        "polish writer: write about researcher: one and researcher: two",
    ]
    assert result.run_id == run_id
    assert result.output == "writer: polish writer: write about researcher: one and researcher: two"
    assert result.variables["first"] == "researcher: one"
    assert result.steps_reused == 2 and result.steps_run == 2
    assert step_events(events, "reused") == ["main.steps[0]", "main.steps[1]"]
    resumed = [e for e in events if isinstance(e, WorkflowResumed)]
    assert [(e.run_id, e.path) for e in resumed] == [(run_id, "main.steps[1]")]
    record = await store.get_run(run_id)
    assert record is not None
    assert (record.status, record.resumes, record.output) == ("completed", 1, result.output)
    steps = await store.load_steps(run_id)
    assert [(s.path, s.status) for s in steps] == [
        ("main.steps[0]", "completed"),
        ("main.steps[1]", "completed"),
        ("main.steps[2]", "completed"),
        ("main.steps[3]", "completed"),
    ]


async def test_resume_after_cancellation(store: Store) -> None:
    """A run cancelled while its second step waits for the model is recorded as
    interrupted; resuming it sends only the interrupted step and what follows."""
    model = Model()
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="one", save="a"),
            AgentStep(agent="writer", send="slow {{ a }}", save="b"),
            AgentStep(agent="writer", send="end {{ b }}"),
        )
    )
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        with runner.orchestrator.subscribe(types="workflow.*", max_buffer=1000) as sub:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:

                    async def cancel_when_the_model_has_the_second_step() -> None:
                        await model.slow_sent.wait()
                        nursery.cancel_scope.cancel()

                    async def run() -> None:
                        await runner.run("main", {})

                    model.delay = 3600.0  # the model never answers in time
                    nursery.start_soon(cancel_when_the_model_has_the_second_step)
                    nursery.start_soon(run)
            run_id = next(
                e.run_id
                for e in iter(sub.receive_nowait, None)
                if isinstance(e, WorkflowInterrupted)
            )
        record = await store.get_run(run_id or "")
        assert record is not None and record.status == "interrupted"
        assert model.sent() == ["one", "slow researcher: one"]
        model.delay = 0.0
        result = await runner.resume(record.id)
    assert model.sent() == [
        "one",
        "slow researcher: one",
        "slow researcher: one",
        "end writer: slow researcher: one",
    ]
    assert result.output == "writer: end writer: slow researcher: one"


async def test_parallel_branches_resume_per_branch(store: Store) -> None:
    """Of three parallel branches, the two that completed before the third failed are
    not run again; the branch results and saves are merged as on a normal run."""
    model = Model("c")
    doc = document(
        workflow(
            ParallelStep(
                branches=(
                    (AgentStep(agent="researcher", send="a", save="x"),),
                    (
                        AgentStep(agent="writer", send="b1"),
                        AgentStep(agent="writer", send="b2", save="y"),
                    ),
                    (AgentStep(agent="critic", send="c", save="z"),),
                ),
                save="all",
            ),
            SetStep(values={"out": "{{ x }}|{{ y }}|{{ z }}"}),
        ),
        agents=("researcher", "writer", "critic"),
    )
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        # NOTE: the failing branch fails after a second (real time: the checkpoints are
        # committed by the store's writer thread): the others have finished by then.
        model.fail_delay = 1.0
        run_id = await run_failing(runner)
        assert sorted(model.sent()) == ["a", "b1", "b2", "c"]
        model.failing.clear()
        result = await runner.resume(run_id)
    assert sorted(model.sent()[4:]) == ["c"]
    assert result.variables["all"] == ["researcher: a", "writer: b2", "critic: c"]
    assert result.output == "researcher: a|writer: b2|critic: c"


async def test_for_loop_resumes_at_its_item(store: Store) -> None:
    """A ``for`` loop that failed at its third item resumes there: the first two
    items' steps are reused, and the loop's collected save holds every item."""
    model = Model("do c")
    doc = document(
        workflow(
            ForStep(
                variable="item",
                items="items",
                steps=(AgentStep(agent="writer", send="do {{ item }}", save="last"),),
                save="done",
            ),
        )
    )
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        run_id = await run_failing(runner, items=["a", "b", "c", "d"])
        model.failing.clear()
        result = await runner.resume(run_id)
        paths = [s.path for s in await store.load_steps(run_id) if s.status == "completed"]
    assert model.sent() == ["do a", "do b", "do c", "do c", "do d"]
    assert result.variables["done"] == [
        "writer: do a",
        "writer: do b",
        "writer: do c",
        "writer: do d",
    ]
    assert result.variables["last"] == "writer: do d"
    assert "main.steps[0].for[1].steps[0]" in paths and "main.steps[0]" in paths


async def test_repeat_try_and_nested_workflow_resume_by_path(store: Store) -> None:
    """A ``repeat`` resumes at its iteration, a completed ``try`` (whose body failed and
    whose ``catch`` ran) is not run again, and a nested workflow resumes step by step
    under its caller's path."""
    model = Model("oops", "sub two")
    inner = workflow(
        AgentStep(agent="writer", send="sub one", save="s1"),
        AgentStep(agent="writer", send="sub two", save="s2"),
        name="inner",
        output="{{ s1 }}+{{ s2 }}",
    )
    doc = document(
        workflow(
            TryStep(
                steps=(AgentStep(agent="researcher", send="oops"),),
                catch=(SetStep(values={"caught": "{{ error_class }}"}),),
            ),
            RepeatStep(
                steps=(
                    SetStep(values={"n": "{{ loop.index }}"}),
                    AgentStep(agent="researcher", send="round {{ n }}"),
                ),
                until="n == 2",
                max=5,
            ),
            WorkflowStep(workflow="inner", save="sub"),
            IfStep(condition="caught", then=(ReturnStep(value="{{ sub }}"),)),
        ),
        inner,
    )
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        run_id = await run_failing(runner)
        model.failing.clear()
        result = await runner.resume(run_id)
        paths = [s.path for s in await store.load_steps(run_id) if s.status == "completed"]
    assert model.sent() == [
        "oops",
        "round 1",
        "round 2",
        "sub one",
        "sub two",  # failed
        "sub two",  # the resume: only the failed step of the nested workflow
    ]
    assert result.output == "writer: sub one+writer: sub two"
    assert result.variables["caught"] == "invalid_request"
    assert "main.steps[1].repeat[1].steps[1]" in paths
    assert "main.steps[2].inner.steps[0]" in paths


async def test_a_completed_run_is_not_resumed_twice(store: Store) -> None:
    """Resuming the completed run is refused (``completed``) and does not call the
    model; so is an unknown id (``not_found``), and every resume without a store."""
    model = Model()
    doc = document(workflow(AgentStep(agent="writer", send="hi")))
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        result = await runner.run("main", {})
        with pytest.raises(RunNotResumable) as done:
            await runner.resume(result.run_id)
        with pytest.raises(RunNotResumable) as unknown:
            await runner.resume("main-nope")
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd()) as plain:
        with pytest.raises(RunNotResumable) as no_store:
            await plain.resume(result.run_id)
    assert done.value.reason == "completed" and "nothing to resume" in str(done.value)
    assert unknown.value.reason == "not_found" and "main-nope" in str(unknown.value)
    assert no_store.value.reason == "not_found" and "no store" in str(no_store.value)
    assert model.sent() == ["hi"]


async def test_a_run_left_running_is_marked_interrupted(store: Store) -> None:
    """A run the store holds as ``running`` that no runner is running (its process
    died) is marked ``interrupted`` with an event, then can be resumed."""
    model = Model()
    doc = document(workflow(AgentStep(agent="writer", send="hi")))
    await store.save_run(RunRecord(id="main-dead", workflow="main", status="running"))
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        with runner.orchestrator.subscribe(types="workflow.interrupted", max_buffer=10) as sub:
            assert await runner.mark_interrupted() == ["main-dead"]
            event = sub.receive_nowait()
        assert isinstance(event, WorkflowInterrupted) and event.run_id == "main-dead"
        record = await store.get_run("main-dead")
        assert record is not None and record.status == "interrupted"
        result = await runner.resume("main-dead")
    assert result.output == "writer: hi"


async def test_runs_with_non_json_inputs_are_not_recorded(store: Store) -> None:
    """A run whose inputs are not JSON runs normally but is not recorded (it could not
    be resumed); its run id is still unique."""
    model = Model()
    doc = document(workflow(AgentStep(agent="writer", send="hi {{ x }}")))
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        result = await runner.run("main", {"x": object()})
    assert result.output.startswith("writer: hi <object")
    assert (await store.list_runs()).total == 0
    assert await store.get_run(result.run_id) is None


async def test_a_resumed_agent_continues_its_conversation(store: Store) -> None:
    """A step resumed after a checkpointed step to the same agent is sent with that
    earlier exchange, as on an uninterrupted run (one conversation per agent per run);
    the model is not asked the earlier message again."""
    model = Model("second")
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="first"),
            AgentStep(agent="researcher", send="second"),
        )
    )
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        run_id = await run_failing(runner)
        model.failing.clear()
        await runner.resume(run_id)
    last = model.llm.requests[-1]
    turns = [(m.role, m.text) for m in last.messages]
    assert turns == [
        ("user", "first"),
        ("assistant", "researcher: first"),
        ("user", "second"),
    ]
    assert model.sent() == ["first", "second", "second"]


def _every_kind_of_step() -> list[Any]:
    inner = workflow(
        AgentStep(agent="writer", send="inner {{ x }}", save="i1"),
        ReturnStep(value="{{ i1 }}!"),
        AgentStep(agent="writer", send="never sent"),
        name="inner",
    )
    main = workflow(
        AgentStep(agent="researcher", send="start {{ topic }}", save="s"),
        ForStep(
            variable="item",
            items="items",
            steps=(
                ParallelStep(
                    branches=(
                        (AgentStep(agent="writer", send="w {{ item }}", save="w"),),
                        (AgentStep(agent="critic", send="c {{ item }}", save="c"),),
                    ),
                ),
            ),
            save="loops",
        ),
        IfStep(
            condition="s",
            then=(WorkflowStep(workflow="inner", inputs={"x": "{{ s }}"}, save="sub"),),
        ),
        TryStep(
            steps=(AgentStep(agent="researcher", send="risky"),),
            catch=(SetStep(values={"e": "{{ error_class }}"}),),
        ),
        AgentStep(agent="critic", send="maybe", continue_on_error=True, save="m"),
        RepeatStep(
            steps=(
                SetStep(values={"n": "{{ loop.index }}"}),
                AgentStep(agent="writer", send="r {{ n }}"),
            ),
            until="n == 2",
            max=5,
        ),
        AgentStep(agent="writer", send="final {{ sub }} {{ loops | length }} {{ e }}", save="fin"),
    )
    return [main, inner]


MESSAGES = [
    "start Go",
    "w a",
    "c a",
    "w b",
    "c b",
    "inner researcher: start Go",
    "r 1",
    "r 2",
    "final writer: inner researcher: start Go! 2 invalid_request",
]


@pytest.mark.parametrize("failing", MESSAGES)
async def test_a_resume_ends_as_an_uninterrupted_run_would(store: Store, failing: str) -> None:
    """Whichever step fails first, the resumed run ends with the same output and
    variables as a run that never failed, sends the failed message once more, and sends
    no message of a step that completed before it (a ``parallel`` sibling may have been
    cancelled before it completed)."""
    doc = document(*_every_kind_of_step(), agents=("researcher", "writer", "critic"))
    inputs = {"topic": "Go", "items": ["a", "b"]}
    baseline = Model("risky", "maybe")
    async with open_runner(doc, llm=baseline.llm, base_dir=Path.cwd()) as runner:
        expected = await runner.run("main", inputs)

    model = Model("risky", "maybe", failing)
    async with open_runner(doc, llm=model.llm, base_dir=Path.cwd(), store=store) as runner:
        run_id = await run_failing(runner, **inputs)
        first_attempt = len(model.llm.requests)
        model.failing.discard(failing)
        result = await runner.resume(run_id)
    resumed = model.sent()[first_attempt:]
    assert result.output == expected.output
    assert dict(result.variables) == dict(expected.variables)
    assert resumed.count(failing) == 1
    at = MESSAGES.index(failing)
    parallel_with = {"w a": "c a", "c a": "w a", "w b": "c b", "c b": "w b"}.get(failing)
    done_before = [m for m in MESSAGES[:at] if m != parallel_with]
    if at >= MESSAGES.index("r 1"):
        done_before += ["risky", "maybe"]  # failed, but caught: completed steps
    assert [m for m in resumed if m in done_before] == []
    assert "never sent" not in model.sent()
