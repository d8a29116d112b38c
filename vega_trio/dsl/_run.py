"""One run of a workflow: its processes (one conversation per agent, a process per
``parallel`` branch that needs its own), its variables, and a method per step kind; the
:class:`~vega_trio.dsl.Runner` starts it and closes it.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .._errors import (
    ChildStartFailed,
    InputError,
    ProcessNotFound,
    StepTimeout,
    WorkflowError,
)
from ..agent import Agent, AgentProcess
from ..llm import Message, marshal_messages, unmarshal_messages
from ..orchestrator import Orchestrator
from ..runtime import Supervisor
from ..runtime._events import Event
from ..store import StepRecord
from ._errors import TemplateError
from ._events import (
    WorkflowStepStatus,
)
from ._inputs import resolve_inputs
from ._model import (
    AgentStep,
    ForStep,
    IfStep,
    ParallelStep,
    RepeatStep,
    ReturnStep,
    SetStep,
    Step,
    TryStep,
    WorkflowSpec,
    WorkflowStep,
)
from ._recorder import _json_safe, _Recorder
from ._run_common import (
    _MISSING,
    _SHUTDOWN_GRACE,
    _STEP_KINDS,
    MAX_WORKFLOW_DEPTH,
    ProgressKind,
    _as_items,
    _describe,
    _document_path_of,
    _items_value,
    _location,
    _log,
    _message_of,
    _parse_json,
    _preview,
    _render_value,
    _restore,
    _summary,
    error_class,
)
from ._template import Condition, Template

if TYPE_CHECKING:
    from ._interpreter import Runner

__all__: list[str] = []


async def _start_agent(
    orch: Orchestrator, supervisor: Supervisor, agent: Agent, child_id: str, run_id: str
) -> AgentProcess:
    """A temporary child of ``supervisor`` running ``agent`` (its own per-process
    supervision still restarts it in place)."""
    try:
        proc = await supervisor.start_child(
            orch.child_spec(
                agent,
                id=child_id,
                restart="temporary",
                shutdown=_SHUTDOWN_GRACE,
                run_id=run_id,
            )
        )
    except ChildStartFailed as exc:
        # The spawn's own error (an unknown tool, ...) says more than the wrapper.
        if isinstance(exc.__cause__, Exception):
            raise exc.__cause__ from None
        raise
    assert isinstance(proc, AgentProcess)
    return proc


# -- one run --------------------------------------------------------------------------------


class _Return(Exception):
    """``return:`` unwinding to the workflow that runs it."""

    def __init__(self, value: Any) -> None:
        super().__init__("return")
        self.value = value


class _Nothing:
    """No step has produced a result (yet)."""

    def __repr__(self) -> str:
        return "<nothing>"


_NOTHING: Final = _Nothing()


@attrs.define(eq=False)
class _Sessions:
    """Which process of each agent a part of a run talks to.

    The run's root has one process per agent; a ``parallel`` branch uses the root's
    (through its parent) except for ``isolated`` agents, which other branches address
    too: for those it has its own.
    """

    run: _Run
    parent: _Sessions | None = None
    isolated: frozenset[str] = frozenset()
    own: dict[str, AgentProcess] = attrs.field(factory=dict)
    restored: dict[str, list[Message]] = attrs.field(factory=dict)
    """A resumed run's conversations so far, by agent: what the agent's next process
    here starts with (its steps before were taken from their checkpoints)."""

    def _owner(self, agent: str) -> _Sessions:
        if self.parent is not None and agent not in self.isolated:
            return self.parent._owner(agent)
        return self

    async def process(self, agent: str) -> AgentProcess:
        owner = self._owner(agent)
        proc = owner.own.get(agent)
        if proc is None or not proc.alive:
            proc = owner.own[agent] = await owner.run.spawn(agent)
            history = owner.restored.pop(agent, None)
            if history is not None:
                proc._agent_behaviour.context.load(history)
        return proc

    def current(self, agent: str) -> AgentProcess | None:
        """The live process of ``agent`` here, if there is one (none is started)."""
        proc = self._owner(agent).own.get(agent)
        return proc if proc is not None and proc.alive else None

    def restore(self, agent: str, history: list[Message]) -> None:
        """Continue ``agent``'s conversation here from ``history`` (a checkpoint's), as
        if the steps that led to it had run in this process."""
        proc = self.current(agent)
        if proc is not None:
            proc._agent_behaviour.context.load(history)
        else:
            self._owner(agent).restored[agent] = history

    async def close(self) -> None:
        for proc in reversed(list(self.own.values())):
            await proc.shutdown(_SHUTDOWN_GRACE)
        self.own.clear()


@attrs.define(eq=False)
class _Frame:
    """The variables of one running workflow (or of one ``parallel`` branch)."""

    workflow: str
    variables: dict[str, Any]
    sessions: _Sessions
    chain: tuple[str, ...]
    saved: dict[str, None] = attrs.field(factory=dict)
    """Names this frame assigned (``save``, ``set``, ``error``), in order: what a
    ``parallel`` branch hands back."""
    journals: list[dict[str, Any]] = attrs.field(factory=list)
    """What each step in progress in this frame assigned (a checkpoint keeps it)."""

    def assign(self, name: str, value: Any) -> None:
        self.variables[name] = value
        self.saved[name] = None
        for journal in self.journals:
            journal[name] = value


@attrs.define(eq=False)
class _StepMark:
    """Where a step started: the time, the run's totals, what its frame assigned since."""

    started_at: float
    totals: tuple[int, int, float]
    journal: dict[str, Any]


_NO_MARK: Final = _StepMark(0.0, (0, 0, 0.0), {})
"""The mark of every step of a run that is not recorded (never written to)."""


@attrs.define(eq=False)
class _Run:
    runner: Runner
    workflow: str
    run_id: str
    supervisor: Supervisor
    started: float
    recorder: _Recorder = attrs.field(factory=lambda: _Recorder(None))
    steps_run: int = 0
    steps_reused: int = 0
    spawned: list[AgentProcess] = attrs.field(factory=list)
    _spawn_count: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _seen: dict[str, AgentProcess] = attrs.field(factory=dict)

    # ---------------------------------------------------------------- processes
    async def spawn(self, agent_name: str) -> AgentProcess:
        agent = self.runner._agent(agent_name)
        proc = await _start_agent(
            self.runner.orchestrator,
            self.supervisor,
            agent,
            f"{agent_name}#{next(self._spawn_count)}",
            self.run_id,
        )
        self.spawned.append(proc)
        return proc

    def _all_processes(self) -> list[AgentProcess]:
        """The run's processes and every descendant (delegates) seen so far."""
        for proc in self.spawned:
            self._seen.setdefault(proc.id, proc)
        stack = list(self._seen.values())
        while stack:
            proc = stack.pop()
            for child_id in proc.children:
                if child_id in self._seen:
                    continue
                try:
                    child = self.runner.orchestrator.get(child_id)
                except ProcessNotFound:
                    continue  # it has finished (its metrics are gone with it)
                if isinstance(child, AgentProcess):
                    self._seen[child_id] = child
                    stack.append(child)
        return list(self._seen.values())

    def totals(self) -> tuple[int, int, float]:
        input_tokens = output_tokens = 0
        cost = 0.0
        for proc in self._all_processes():
            metrics = proc.metrics
            input_tokens += metrics.input_tokens
            output_tokens += metrics.output_tokens
            cost += metrics.cost_usd
        return input_tokens, output_tokens, cost

    async def close(self, *, graceful: bool) -> None:
        """Stop every process of the run and their delegates: asked to stop first when
        ``graceful`` (they are idle then), killed at once otherwise."""
        grace = _SHUTDOWN_GRACE if graceful else 0.0
        processes = self._all_processes()
        await self.supervisor.shutdown(grace)
        for proc in reversed(processes):
            if not proc.status.finished:
                if grace:
                    await proc.shutdown(grace)
                else:
                    proc.kill(f"workflow run {self.run_id} ended")
                    await proc.wait()

    def kill_leftovers(self) -> None:
        """Kill whatever :meth:`close` did not stop in time."""
        if self.supervisor.alive:
            self.supervisor.kill(f"workflow run {self.run_id}: shutdown took too long")
        for proc in self._all_processes():
            if not proc.status.finished:
                proc.kill(f"workflow run {self.run_id}: shutdown took too long")

    # ----------------------------------------------------------------- progress
    def progress(
        self,
        kind: ProgressKind,
        path: str,
        *,
        step: str = "",
        agent: str | None = None,
        detail: str = "",
    ) -> None:
        """A ``workflow.step`` event (``kind`` is ``step_started|finished|failed|reused``)."""
        bus = self.runner.orchestrator.events
        if not bus.wants(WorkflowStepStatus):
            bus.emit(WorkflowStepStatus)  # uses its sequence number; builds nothing
            return
        input_tokens, output_tokens, cost = self.totals()
        bus.emit(
            WorkflowStepStatus,
            agent=agent,
            run_id=self.run_id,
            workflow=self.workflow,
            path=path,
            step=step,
            status=kind.removeprefix("step_"),
            detail=detail,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
        )

    def workflow_event(self, kind: type[Event], **data: Any) -> None:
        """A ``workflow.*`` event of the run, with its totals so far."""
        input_tokens, output_tokens, cost = self.totals()
        self.runner.orchestrator.events.emit(
            kind,
            run_id=self.run_id,
            workflow=self.workflow,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            **data,
        )

    # ---------------------------------------------------------------- workflows
    async def run_workflow(
        self,
        spec: WorkflowSpec,
        variables: dict[str, Any],
        sessions: _Sessions,
        chain: tuple[str, ...],
        caller: str,
    ) -> tuple[Any, dict[str, Any]]:
        """Run ``spec``'s steps; returns its result and its final variables. Its steps'
        paths start with ``caller`` (the ``workflow:`` step's path; ``""`` for the run's
        own workflow), so every execution of a step has its own path."""
        frame = _Frame(spec.name, variables, sessions, (*chain, spec.name))
        base = f"{caller}.{spec.name}.steps" if caller else f"{spec.name}.steps"
        try:
            last = await self.block(spec.steps, frame, base)
        except _Return as returned:
            return returned.value, frame.variables
        if spec.output is not None:
            where = f"workflows.{spec.name}.output"
            try:
                output = _render_value(spec.output, frame.variables)
            except TemplateError as exc:
                raise WorkflowError(
                    f"{_location(where, spec.where)}: the output could not be rendered: {exc}",
                    workflow=spec.name,
                    path=where,
                    cause=exc,
                ) from exc
            return output, frame.variables
        return (None if last is _NOTHING else last), frame.variables

    async def block(self, steps: tuple[Step, ...], frame: _Frame, base: str) -> Any:
        """Run ``steps`` in order; the last result any of them produced, or
        ``_NOTHING``."""
        result: Any = _NOTHING
        for index, step in enumerate(steps):
            value = await self.step(step, frame, f"{base}[{index}]")
            if value is not _NOTHING:
                result = value
        return result

    async def step(self, step: Step, frame: _Frame, path: str) -> Any:
        """Run one step at ``path`` (unique per execution: loop iterations and nested
        workflows are in it), or take its result from its checkpoint when resuming."""
        saved = self.recorder.checkpoints.get(path)
        if saved is not None:
            return self.reuse(step, frame, path, saved)
        self.steps_run += 1
        if self.recorder.store is None:  # nothing is recorded: nothing to keep track of
            if isinstance(step, AgentStep):
                return await self.agent_step(step, frame, path, _NO_MARK)
            return await self._container_step(step, frame, path, _NO_MARK)
        mark = _StepMark(time.time(), self.totals(), {})
        frame.journals.append(mark.journal)
        try:
            if isinstance(step, AgentStep):
                return await self.agent_step(step, frame, path, mark)
            return await self._container_step(step, frame, path, mark)
        finally:
            # NOTE: by identity (dicts compare equal by content); steps nest, so it is last.
            popped = frame.journals.pop()
            assert popped is mark.journal

    async def _container_step(self, step: Step, frame: _Frame, path: str, mark: _StepMark) -> Any:
        kind = _STEP_KINDS[type(step)]
        self.progress("step_started", path, step=kind, detail=_summary(step))
        returned: _Return | None = None
        error: Exception | None = None
        try:
            value = await self._dispatch(step, frame, path)
        except _Return as exc:
            returned = exc
        except WorkflowError as exc:
            self.progress("step_failed", path, step=kind, detail=_message_of(exc))
            raise
        except Exception as exc:
            error = exc
        # NOTE: the saves are awaited outside the `except` blocks: a cancellation during
        # one must not replace the step's own outcome silently (ASYNC120).
        if returned is not None:
            await self.checkpoint(path, mark, returned.value, returned=True)
            self.progress("step_finished", path, step=kind, detail=_preview(returned.value))
            raise returned
        if error is not None:
            await self.failed_step(path, mark, error)
            self.progress("step_failed", path, step=kind, detail=_message_of(error))
            raise self.failure(step, frame, path, error) from error
        await self.checkpoint(path, mark, value)
        self.progress(
            "step_finished",
            path,
            step=kind,
            detail="" if value is _NOTHING else _preview(value),
        )
        return value

    def reuse(self, step: Step, frame: _Frame, path: str, saved: StepRecord) -> Any:
        """A completed step of a resumed run: its saved assignments and result, as if
        it had run (a saved ``return`` returns again)."""
        self.steps_reused += 1
        data = saved.result if isinstance(saved.result, Mapping) else {}
        for name, value in (data.get("assigned") or {}).items():
            frame.assign(name, value)
        if isinstance(step, AgentStep) and data.get("conversation") is not None:
            frame.sessions.restore(step.agent, unmarshal_messages(json.dumps(data["conversation"])))
        value = data.get("value", _NOTHING)
        self.progress(
            "step_reused",
            path,
            step=_STEP_KINDS[type(step)],
            agent=step.agent if isinstance(step, AgentStep) else None,
            detail="" if value is _NOTHING else _preview(value),
        )
        if data.get("returned"):
            raise _Return(None if value is _NOTHING else value)
        return value

    async def _record(
        self, path: str, mark: _StepMark, status: str, result: dict[str, Any]
    ) -> None:
        """Store one step's record: its outcome and what it spent since ``mark``."""
        input_tokens, output_tokens, cost = self.totals()
        before = mark.totals
        await self.recorder.step(
            StepRecord(
                run_id=self.run_id,
                path=path,
                status=status,
                result=result,
                started_at=mark.started_at,
                ended_at=time.time(),
                cost_usd=cost - before[2],
                tokens=(input_tokens - before[0]) + (output_tokens - before[1]),
            )
        )

    async def checkpoint(
        self,
        path: str,
        mark: _StepMark,
        value: Any,
        *,
        returned: bool = False,
        conversation: Any = None,
    ) -> None:
        """Save a completed step's checkpoint: its result and what it assigned. A
        result that is not plain JSON is not saved (a resume runs the step again)."""
        if self.recorder.store is None:
            return
        data: dict[str, Any] = {"assigned": dict(mark.journal)}
        if value is not _NOTHING:
            data["value"] = value
        if returned:
            data["returned"] = True
        if conversation is not None:
            data["conversation"] = conversation
        if not _json_safe(data):
            _log.warning(
                "workflows.%s of run %s: its result or a variable it set is not a JSON "
                "value, so it has no checkpoint (a resume runs it again)",
                path,
                self.run_id,
            )
            return
        await self._record(path, mark, "completed", data)

    async def failed_step(self, path: str, mark: _StepMark, exc: Exception) -> None:
        """Save the record of the step a failure started at (not a checkpoint: a resume
        runs it again)."""
        if self.recorder.store is None:
            return
        error = {"error": _message_of(exc), "error_class": error_class(exc)}
        await self._record(path, mark, "failed", error)

    async def _dispatch(self, step: Step, frame: _Frame, path: str) -> Any:
        if isinstance(step, IfStep):
            return await self.if_step(step, frame, path)
        if isinstance(step, ForStep):
            return await self.for_step(step, frame, path)
        if isinstance(step, ParallelStep):
            return await self.parallel_step(step, frame, path)
        if isinstance(step, TryStep):
            return await self.try_step(step, frame, path)
        if isinstance(step, RepeatStep):
            return await self.repeat_step(step, frame, path)
        if isinstance(step, SetStep):
            return self.set_step(step, frame)
        if isinstance(step, ReturnStep):
            raise _Return(_render_value(step.value, frame.variables))
        if isinstance(step, WorkflowStep):
            return await self.workflow_step(step, frame, path)
        raise TypeError(f"unknown step type {type(step).__name__}")  # pragma: no cover

    def failure(self, step: Step, frame: _Frame, path: str, exc: BaseException) -> WorkflowError:
        where = f"workflows.{_document_path_of(path, frame.workflow)}"
        agent = f" ({step.agent})" if isinstance(step, AgentStep) else ""
        return WorkflowError(
            f"{_location(where, step.where)}{agent}: {_describe(exc)}",
            workflow=frame.workflow,
            path=where,
            cause=exc,
        )

    # -------------------------------------------------------------------- steps
    async def agent_step(self, step: AgentStep, frame: _Frame, path: str, mark: _StepMark) -> Any:
        try:
            text = Template.parse(step.send).render(frame.variables)
        except TemplateError as exc:
            return await self._agent_failed(step, frame, path, exc, mark)
        self.progress("step_started", path, step="agent", agent=step.agent, detail=_preview(text))
        attempts = 1 + max(0, step.retry)
        for attempt in range(1, attempts + 1):
            try:
                value = await self._send(step, frame, text)
            except Exception as exc:
                if attempt == attempts:
                    return await self._agent_failed(step, frame, path, exc, mark)
                _log.info(
                    "workflows.%s (%s): attempt %d of %d failed, retrying: %s",
                    path,
                    step.agent,
                    attempt,
                    attempts,
                    _message_of(exc),
                )
                continue
            break
        if step.save:
            frame.assign(step.save, value)
        proc = frame.sessions.current(step.agent)
        # NOTE: the agent's conversation so far goes with the checkpoint: a resumed run
        # continues it, so a later step to the same agent sees what it saw on the first
        # attempt (SPEC §8.2: within a run, steps to one agent are one conversation).
        conversation = (
            json.loads(marshal_messages(proc.history))
            if proc is not None and self.recorder.store is not None
            else None
        )
        await self.checkpoint(path, mark, value, conversation=conversation)
        self.progress("step_finished", path, step="agent", agent=step.agent, detail=_preview(value))
        return value

    async def _send(self, step: AgentStep, frame: _Frame, text: str) -> Any:
        proc = await frame.sessions.process(step.agent)
        if step.timeout is None:
            reply = await proc.send(text)
        else:
            try:
                with trio.fail_after(step.timeout):
                    reply = await proc.send(text)
            except trio.TooSlowError:
                raise StepTimeout(
                    f"no reply within the step's timeout of {step.timeout:g}s; raise "
                    "`timeout:` or ask for less"
                ) from None
        return _parse_json(reply) if step.format == "json" else reply

    async def _agent_failed(
        self, step: AgentStep, frame: _Frame, path: str, exc: Exception, mark: _StepMark
    ) -> Any:
        error = self.failure(step, frame, path, exc)
        if step.continue_on_error:
            frame.assign("error", _message_of(exc))
            frame.assign("error_class", error.error_class)
            # NOTE: the run goes on with this failure: it is the step's outcome, and a
            # resume keeps it (and the `error` it set) rather than asking again.
            await self.checkpoint(path, mark, None)
            self.progress(
                "step_failed",
                path,
                step="agent",
                agent=step.agent,
                detail=f"{_message_of(exc)} (continue_on_error: going on)",
            )
            return None
        await self.failed_step(path, mark, exc)
        self.progress("step_failed", path, step="agent", agent=step.agent, detail=str(error))
        raise error from exc

    async def if_step(self, step: IfStep, frame: _Frame, path: str) -> Any:
        if Condition.parse(step.condition).evaluate(frame.variables):
            return await self.block(step.then, frame, f"{path}.then")
        return await self.block(step.otherwise, frame, f"{path}.else")

    async def for_step(self, step: ForStep, frame: _Frame, path: str) -> Any:
        items = _as_items(_items_value(step.items, frame.variables), step.items)
        variables = frame.variables
        saved_item = variables.get(step.variable, _MISSING)
        saved_loop = variables.get("loop", _MISSING)
        results: list[Any] = []
        count = len(items)
        try:
            for index, item in enumerate(items):
                variables[step.variable] = item
                variables["loop"] = {
                    "index": index + 1,
                    "index0": index,
                    "count": count,
                    "first": index == 0,
                    "last": index == count - 1,
                }
                value = await self.block(step.steps, frame, f"{path}.for[{index}].steps")
                results.append(None if value is _NOTHING else value)
        finally:
            _restore(variables, step.variable, saved_item)
            _restore(variables, "loop", saved_loop)
        if step.save:
            frame.assign(step.save, results)
        return results

    async def parallel_step(self, step: ParallelStep, frame: _Frame, path: str) -> Any:
        addressed = self.runner.addressed_by_branches(step)
        counts: dict[str, int] = {}
        for agents in addressed:
            for agent in agents:
                counts[agent] = counts.get(agent, 0) + 1
        isolated = frozenset(agent for agent, n in counts.items() if n > 1)
        frames = [
            _Frame(
                frame.workflow,
                dict(frame.variables),
                _Sessions(self, frame.sessions, isolated),
                frame.chain,
            )
            for _ in step.branches
        ]
        results: list[Any] = [None] * len(step.branches)
        failures: list[Exception] = []

        async def branch(index: int, cancel_scope: trio.CancelScope) -> None:
            steps = step.branches[index]
            branch_path = f"{path}.parallel[{index}]"
            try:
                if len(steps) == 1:
                    value = await self.step(steps[0], frames[index], branch_path)
                else:
                    value = await self.block(steps, frames[index], branch_path)
            except Exception as exc:  # a WorkflowError, or a return: stop the others
                if not failures:
                    failures.append(exc)
                    cancel_scope.cancel(reason=f"parallel branch {index} of {path} ended the step")
                return
            results[index] = None if value is _NOTHING else value

        async with trio.open_nursery() as nursery:
            for index in range(len(step.branches)):
                nursery.start_soon(branch, index, nursery.cancel_scope)
        if failures:
            raise failures[0]
        for branch_frame in frames:
            await branch_frame.sessions.close()
            for name in branch_frame.saved:
                frame.assign(name, branch_frame.variables[name])
        if step.save:
            frame.assign(step.save, results)
        return results

    async def try_step(self, step: TryStep, frame: _Frame, path: str) -> Any:
        try:
            return await self.block(step.steps, frame, f"{path}.try")
        except WorkflowError as exc:
            frame.assign("error", _message_of(exc))
            frame.assign("error_class", exc.error_class)
        return await self.block(step.catch, frame, f"{path}.catch")

    async def repeat_step(self, step: RepeatStep, frame: _Frame, path: str) -> Any:
        until = Condition.parse(step.until) if step.until is not None else None
        variables = frame.variables
        saved_loop = variables.get("loop", _MISSING)
        result: Any = _NOTHING
        try:
            for index in range(step.max):
                variables["loop"] = {
                    "index": index + 1,
                    "index0": index,
                    "first": index == 0,
                    "max": step.max,
                }
                value = await self.block(step.steps, frame, f"{path}.repeat[{index}].steps")
                if value is not _NOTHING:
                    result = value
                if until is not None and until.evaluate(variables):
                    break
        finally:
            _restore(variables, "loop", saved_loop)
        return result

    def set_step(self, step: SetStep, frame: _Frame) -> Any:
        value: Any = _NOTHING
        for name, template in step.values.items():
            value = _render_value(template, frame.variables)
            frame.assign(name, value)
        if len(step.values) > 1:
            return {name: frame.variables[name] for name in step.values}
        return value

    async def workflow_step(self, step: WorkflowStep, frame: _Frame, path: str) -> Any:
        spec = self.runner.document.workflow(step.workflow)
        if spec is None:
            known = ", ".join(w.name for w in self.runner.document.workflows)
            raise LookupError(f"there is no workflow named {step.workflow!r} (workflows: {known})")
        if len(frame.chain) >= MAX_WORKFLOW_DEPTH:
            raise RecursionError(
                f"workflows nest more than {MAX_WORKFLOW_DEPTH} deep "
                f"({' → '.join((*frame.chain, step.workflow))}); a workflow that calls "
                "itself needs a condition that ends the recursion"
            )
        given = {name: _render_value(value, frame.variables) for name, value in step.inputs.items()}
        try:
            variables = resolve_inputs(spec, given)
        except InputError as exc:
            raise ValueError(f"{exc} (set it with `with:`)") from None
        try:
            value, _ = await self.run_workflow(spec, variables, frame.sessions, frame.chain, path)
        except WorkflowError as exc:
            raise WorkflowError(
                f"{exc}\n  called from workflows.{path}",
                workflow=exc.workflow,
                path=exc.path,
                cause=exc.cause,
            ) from exc
        if step.save:
            frame.assign(step.save, value)
        return value
