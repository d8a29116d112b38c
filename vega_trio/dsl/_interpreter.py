"""The interpreter: runs a document's workflows on an orchestrator (SPEC §8.2).

::

    async with open_runner(document, llm=ScriptedLLM.echo()) as runner:
        result = await runner.run("report", {"topic": "Go concurrency"})
        print(result.output)

Each run gets its own processes: they are children of a supervisor made for the run
(``run <workflow>-<n>`` in the supervision tree) and all of them, with any delegates
they spawned, are stopped when the run ends, whether it succeeded, failed or was
cancelled. Within a run, steps addressed to one agent continue one conversation;
``parallel`` branches addressing the same agent each get their own process (an agent
that only one branch addresses keeps the run's conversation).

Steps run as Trio code on the caller's task; ``parallel`` branches run in a nursery, and
the first failing branch cancels its siblings.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import attrs
import outcome
import trio

from .._config import OrchestratorConfig
from .._errors import (
    ChildStartFailed,
    InputError,
    LLMError,
    ProcessNotFound,
    ReplyFormatError,
    RunNotResumable,
    StepTimeout,
    WorkflowError,
    WorkflowInputError,
    step_error_class,
)
from .._handles import NoPublicConstructor
from ..agent import Agent, AgentProcess, TextStream
from ..llm import LLM, Message, marshal_messages, unmarshal_messages
from ..orchestrator import Orchestrator, open_orchestrator
from ..runtime import Supervisor, SupervisorSpec
from ..runtime._events import Event, Lagged
from ..store import RunRecord, StepRecord, Store
from ._build import build_agents, orchestrator_config
from ._dump import dump_agent
from ._errors import TemplateError
from ._events import (
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInterrupted,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowStepStatus,
)
from ._inputs import resolve_inputs
from ._model import (
    AgentStep,
    Document,
    ForStep,
    IfStep,
    ParallelStep,
    RepeatStep,
    ReturnStep,
    SetStep,
    Source,
    Step,
    TryStep,
    WorkflowSpec,
    WorkflowStep,
)
from ._template import Condition, Template
from ._values import to_text

__all__ = [
    "MAX_WORKFLOW_DEPTH",
    "ProgressEvent",
    "ProgressKind",
    "ReplyFormatError",
    "RunNotResumable",
    "RunResult",
    "Runner",
    "StepTimeout",
    "WorkflowError",
    "WorkflowInputError",
    "open_runner",
]

MAX_WORKFLOW_DEPTH: Final = 10
"""How deeply ``workflow:`` steps may nest (a workflow calling itself counts too)."""

_SHUTDOWN_GRACE: Final = 5.0
_CLOSE_DEADLINE: Final = 2 * _SHUTDOWN_GRACE + 1
_PREVIEW: Final = 200
_FENCED_JSON: Final = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```", re.S)

_log = logging.getLogger("vega_trio.dsl")

ProgressKind: TypeAlias = Literal[
    "workflow_started",
    "workflow_finished",
    "workflow_failed",
    "step_started",
    "step_finished",
    "step_failed",
    "step_reused",
]


# -- errors ------------------------------------------------------------------------------


# The ``error_class`` of a step failure (what ``catch:`` sees); it lives with the errors.
error_class = step_error_class


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, WorkflowError) and exc.cause is not None:
        return _message_of(exc.cause)
    return str(exc) or type(exc).__name__


# -- public records ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProgressEvent:
    """What a run is doing, for a progress display: the view of one of its
    ``workflow.*`` bus events (:meth:`from_event`) that the CLI's step lines and the
    deprecated ``on_progress`` of :meth:`Runner.run` use.

    Attributes:
        kind: ``workflow_started``, ``step_started``, ``step_finished``,
            ``step_failed``, ``step_reused`` (a resumed run took the step's result from
            its checkpoint instead of running it), ``workflow_finished`` or
            ``workflow_failed``.
        workflow: the workflow being run (the one :meth:`Runner.run` was given).
        run_id: identifies the run (``report-1``).
        path: the step (``report.steps[1]``, ``report.steps[2].then[0]``, a
            sub-workflow's ``summary.steps[0]``), or the workflow's name.
        step: the step's type (``agent``, ``if``, ``for``, ``parallel``, ``try``,
            ``repeat``, ``set``, ``return``, ``workflow``), or ``""``.
        agent: the agent an agent step addresses, else ``None``.
        detail: for a started agent step the message sent, for a finished step its
            result (both cut to 200 characters); for a failure the error.
        input_tokens: tokens sent so far in this run (cumulative).
        output_tokens: tokens received so far in this run (cumulative).
        cost_usd: what this run has cost so far, in USD (cumulative).
    """

    kind: ProgressKind
    workflow: str
    run_id: str
    path: str
    step: str = ""
    agent: str | None = None
    detail: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @classmethod
    def from_event(cls, event: Event) -> ProgressEvent | None:
        """The progress of a ``workflow.*`` event (``None`` for one it has no kind for:
        ``workflow.interrupted``, ``workflow.resumed``)."""
        path = getattr(event, "path", "") or ""
        if isinstance(event, WorkflowStepStatus):
            kind = f"step_{event.status}"
        elif isinstance(event, WorkflowStarted):
            kind = "workflow_started"
        elif isinstance(event, WorkflowCompleted):
            kind = "workflow_finished"
        elif isinstance(event, WorkflowFailed):
            kind = "workflow_failed"
        else:
            return None
        data = event.data
        return cls(
            kind=kind,  # type: ignore[arg-type]  # the statuses are the kinds' suffixes
            workflow=data["workflow"],
            run_id=event.run_id or "",
            path=path if kind.startswith("step_") else data["workflow"],
            step=data.get("step", ""),
            agent=event.agent,
            detail=data["detail"],
            input_tokens=data["input_tokens"],
            output_tokens=data["output_tokens"],
            cost_usd=data["cost_usd"],
        )


#: How many progress events a progress subscriber may fall behind by: they are few per
#: step and their reader is quick, so only a run of thousands of steps between two
#: checkpoints gets near it.
PROGRESS_BUFFER: Final = 100_000


async def _reporting_progress(
    orchestrator: Orchestrator,
    run_id: str,
    on_progress: Callable[[ProgressEvent], None],
    run: Callable[[], Awaitable[RunResult]],
) -> RunResult:
    """``run()``, with its ``workflow.*`` events handed to ``on_progress`` as
    :class:`ProgressEvent` s: the thin adapter that keeps ``on_progress`` working."""

    def deliver(item: Event | Lagged) -> None:
        progress = None if isinstance(item, Lagged) else ProgressEvent.from_event(item)
        if progress is not None:
            on_progress(progress)

    with orchestrator.subscribe(
        types="workflow.*", runs=run_id, max_buffer=PROGRESS_BUFFER
    ) as events:

        async def follow() -> None:
            async for item in events:
                deliver(item)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            # NOTE: captured, so the run's own error leaves the nursery unwrapped (not as
            # an exception group).
            done = await outcome.acapture(run)
            nursery.cancel_scope.cancel()
        while (item := events.receive_nowait()) is not None:
            deliver(item)
    return done.unwrap()


@attrs.frozen(kw_only=True)
class RunResult:
    """What a run produced.

    Attributes:
        workflow: the workflow that ran.
        run_id: identifies the run (``report-1``).
        output: the workflow's ``output`` rendered (a template that is one placeholder
            keeps its value's type), else the value of a ``return`` step, else the result
            of the last step that ran (``None`` when no step produced one).
        variables: the workflow's variables at the end (inputs, saves, sets).
        input_tokens: tokens sent to the model by this run's processes.
        output_tokens: tokens received.
        cost_usd: what the run cost, in USD (its processes and their delegates).
        steps_run: how many steps ran (each loop iteration's steps count).
        duration: seconds the run took (Trio's clock).
        steps_reused: how many steps a resumed run took from their checkpoints
            instead of running them (0 for a fresh run).
    """

    workflow: str
    run_id: str
    output: Any
    variables: Mapping[str, Any]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    steps_run: int
    duration: float
    steps_reused: int = 0


@attrs.frozen
class _Resumption:
    """What :meth:`Runner.resume` continues: the stored run and its checkpoints."""

    record: RunRecord
    checkpoints: Mapping[str, StepRecord]
    last_path: str | None


# -- the runner ----------------------------------------------------------------------------


@asynccontextmanager
async def open_runner(
    doc: Document,
    *,
    base_dir: Path | None = None,
    llm: LLM | None = None,
    log_level: str | None = None,
    **orchestrator_overrides: Any,
) -> AsyncIterator[Runner]:
    """Open an orchestrator configured by ``doc`` and a :class:`Runner` on it::

        async with open_runner(document) as runner:
            result = await runner.run("report", {"topic": "Go concurrency"})

    The orchestrator gets the document's config (:func:`orchestrator_config`) and
    has every agent of :func:`build_agents` in its registry (``orch.agents``, source
    ``yaml``); ``settings.logging.level`` sets
    the ``vega_trio`` logger's level for the block.

    Args:
        doc: the loaded (and validated) document.
        base_dir: what relative paths in the document are relative to (default: the
            document file's directory when it names one that exists, else the current
            directory).
        llm: the backend (default: :class:`~vega_trio.llm.AnthropicLLM`, made when the
            first agent is spawned).
        log_level: a level that wins over ``settings.logging.level`` (the CLI's
            ``--log-level``); ``None``: the document's.
        orchestrator_overrides: fields of :class:`~vega_trio.OrchestratorConfig`;
            they win over the document's.

    Raises:
        SkillError: a skill directory or file is invalid.
        ToolDefinitionError: a top-level tool is malformed.
        ValueError: a setting the runtime refuses (the message names it).
    """
    base, config, agents = await trio.to_thread.run_sync(functools.partial(_prepare, doc, base_dir))
    logger = logging.getLogger("vega_trio")
    previous_level = logger.level
    level = log_level or doc.settings.log_level
    if level:
        try:
            logger.setLevel(level.upper())
        except ValueError:
            raise ValueError(
                f"settings.logging.level {level!r} is not a log level; "
                "use debug, info, warning, error or critical"
            ) from None
    try:
        async with open_orchestrator(config, llm=llm, **orchestrator_overrides) as orch:
            specs = {spec.name: spec for spec in doc.agents}
            for name, agent in agents.items():
                orch.agents.define(agent, source="yaml", mapping=dump_agent(specs[name]))
            runner = Runner._create(doc, orch, base)
            try:
                yield runner
            finally:
                with trio.move_on_after(_SHUTDOWN_GRACE, shield=True):
                    await runner.end()
    finally:
        logger.setLevel(previous_level)


def _prepare(
    doc: Document, base_dir: Path | None
) -> tuple[Path, OrchestratorConfig, dict[str, Agent]]:
    base = base_dir if base_dir is not None else _document_dir(doc.where)
    return base, orchestrator_config(doc, base_dir=base), build_agents(doc, base_dir=base)


def _document_dir(where: Source) -> Path:
    if where.file and not where.file.startswith("<"):
        path = Path(where.file)
        if path.exists():
            return path.resolve().parent
    return Path.cwd()


@attrs.define(eq=False)
class Runner(metaclass=NoPublicConstructor):
    """Runs a document's workflows and answers REPL questions. Made by
    :func:`open_runner` (calling the class raises ``TypeError``); valid inside its block.

    Attributes:
        document: the document.
        orchestrator: the orchestrator everything runs on; the document's agents are
            its registry's definitions (``orchestrator.agents``).
        base_dir: what the document's relative paths are relative to.
    """

    _public_constructor_hint = "use async with open_runner(document, ...) as runner"

    document: Document
    orchestrator: Orchestrator
    base_dir: Path
    _run_numbers: dict[str, itertools.count[int]] = attrs.field(factory=dict)
    _addressed: dict[int, tuple[frozenset[str], ...]] = attrs.field(factory=dict)
    _active: set[str] = attrs.field(factory=set)
    """The runs running in this runner now (a stored ``running`` run that is not one
    of these was interrupted: its process ended without saying so)."""

    @property
    def store(self) -> Store | None:
        """Where runs and their step checkpoints are recorded: the orchestrator's
        :class:`~vega_trio.store.Store` (``OrchestratorConfig.store``), or ``None``
        (nothing is recorded and no run can be resumed)."""
        store = self.orchestrator.config.store
        return store if isinstance(store, Store) else None

    # ------------------------------------------------------------------ workflows
    async def run(
        self,
        workflow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> RunResult:
        """Run ``workflow`` with ``inputs`` on fresh processes and return its result.

        Declared inputs are coerced to their type (``"3"`` → ``3`` for an integer),
        defaults are applied, required ones and enums are checked; values the workflow
        does not declare are variables too. Progress goes to the orchestrator's event
        bus as ``workflow.started``, ``workflow.step`` (started, finished, failed),
        ``workflow.completed``, ``workflow.failed`` and ``workflow.interrupted`` events
        (:mod:`vega_trio.events`), all with the run's ``run_id``: subscribe to
        ``"workflow.*"`` to follow runs.

        Args:
            workflow: the workflow's name.
            inputs: its inputs (and further variables).
            on_progress: *deprecated*, subscribe to ``workflow.*`` events instead: called
                with a :class:`ProgressEvent` for each of this run's ``workflow.*``
                events, from a task of its own, in order, all of them before ``run``
                returns.

        Raises:
            WorkflowInputError: an input is missing or invalid (nothing ran).
            WorkflowError: a step failed (``.path``, ``.cause``, ``.error_class``), or
                there is no such workflow. Every process of the run is stopped first.
        """
        spec, run_id, variables = self._prepare(workflow, inputs)
        if on_progress is None:
            return await self._run(spec, run_id, variables)
        return await _reporting_progress(
            self.orchestrator,
            run_id,
            on_progress,
            functools.partial(self._run, spec, run_id, variables),
        )

    def _prepare(
        self, workflow: str, inputs: Mapping[str, Any] | None
    ) -> tuple[WorkflowSpec, str, dict[str, Any]]:
        """Check a run before anything starts: the workflow, its inputs, its run id.
        (Also what the server does before it answers 202 with the run id.)

        Raises:
            WorkflowInputError, WorkflowError: as :meth:`run`.
        """
        spec = self.document.workflow(workflow)
        if spec is None:
            known = ", ".join(w.name for w in self.document.workflows) or "none"
            raise WorkflowError(
                f"there is no workflow named {workflow!r}; workflows in this document: {known}",
                workflow=workflow,
                path=f"workflows.{workflow}",
            )
        try:
            variables = resolve_inputs(spec, inputs or {})
        except InputError as exc:
            raise WorkflowInputError(str(exc), workflow=workflow, input=exc.name) from None
        if self.store is not None:
            # NOTE: recorded runs outlive this process and may share a database with
            # other processes: their ids must not restart at 1 (SPEC §12, no node-local
            # keys).
            return spec, f"{workflow}-{uuid.uuid4().hex[:12]}", variables
        numbers = self._run_numbers.setdefault(workflow, itertools.count(1))
        return spec, f"{workflow}-{next(numbers)}", variables

    # -------------------------------------------------------------------- resume
    async def resume(
        self,
        run_id: str,
        *,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> RunResult:
        """Resume a recorded run from its last completed step (SPEC §12).

        The run's workflow is replayed with its recorded inputs under the same run id:
        a step with a checkpoint is not run again (the model is not called for it), its
        saved result is used and assigned exactly as when it ran (``save``, ``set``,
        ``error``); the step that was in flight, and every step after it, runs.
        ``parallel`` branches resume branch by branch, ``for`` and ``repeat`` loops at
        the iteration they were in, nested workflows step by step. The run emits
        ``workflow.resumed`` (``path``: the last checkpoint), then ``workflow.started``,
        ``workflow.step`` events with status ``reused`` for the steps taken from
        checkpoints, and the usual events for the others.

        Needs a store (``OrchestratorConfig.store``); runs are recorded there by
        :meth:`run` when one is set. A run can be resumed when it ``failed``, was
        ``cancelled`` or ``interrupted``, or is recorded as ``running`` but is not running
        in this runner (its process died: it is marked ``interrupted`` first).

        Args:
            run_id: the run's id (``RunResult.run_id``, the server's ``run_id``).
            on_progress: *deprecated*, as for :meth:`run`.

        Raises:
            RunNotResumable: no store, no such run, it is running here, it completed, or
                its workflow is not in this document (``.reason`` says which).
            WorkflowError: a step failed again (the run can be resumed again).
        """
        spec, variables, resumption = await self._prepare_resume(run_id)
        run = functools.partial(self._run, spec, run_id, variables, resumption=resumption)
        if on_progress is None:
            return await run()
        return await _reporting_progress(self.orchestrator, run_id, on_progress, run)

    async def _prepare_resume(
        self, run_id: str
    ) -> tuple[WorkflowSpec, dict[str, Any], _Resumption]:
        """Check that ``run_id`` can be resumed and load its checkpoints (what the
        server does before it answers 202).

        Raises:
            RunNotResumable: as :meth:`resume`.
        """
        store = self.store
        if store is None:
            raise RunNotResumable(
                f"cannot resume run {run_id!r}: this runner has no store, so no run is "
                "recorded; open it with a store (OrchestratorConfig.store, "
                "`vega-trio run --db FILE`)",
                run_id=run_id,
                reason="not_found",
            )
        record = await store.get_run(run_id)
        if record is None:
            raise RunNotResumable(
                f"there is no workflow run {run_id!r} in the store; list the runs "
                "(GET /api/workflows/runs) for their ids",
                run_id=run_id,
                reason="not_found",
            )
        if run_id in self._active:
            raise RunNotResumable(
                f"workflow run {run_id!r} is running; wait for it to end (or cancel it) "
                "before resuming it",
                run_id=run_id,
                reason="running",
                workflow=record.workflow,
            )
        if record.status == "completed":
            raise RunNotResumable(
                f"workflow run {run_id!r} completed; there is nothing to resume (start a "
                "new run instead)",
                run_id=run_id,
                reason="completed",
                workflow=record.workflow,
            )
        spec = self.document.workflow(record.workflow)
        if spec is None:
            known = ", ".join(w.name for w in self.document.workflows) or "none"
            raise RunNotResumable(
                f"workflow run {run_id!r} ran workflow {record.workflow!r}, which this "
                f"document does not define (workflows: {known}); resume it with the "
                f"document it ran from ({record.document or 'unknown'})",
                run_id=run_id,
                reason="unknown_workflow",
                workflow=record.workflow,
            )
        if record.status == "running":
            record = await self._mark_interrupted(store, record)
        steps = await store.load_steps(run_id)
        checkpoints = {s.path: s for s in steps if s.status == "completed"}
        last = next((s.path for s in reversed(steps) if s.status == "completed"), None)
        return spec, dict(record.inputs), _Resumption(record, checkpoints, last)

    async def mark_interrupted(self) -> list[str]:
        """Mark every run the store holds as ``running`` that is not running in this
        runner as ``interrupted`` (emitting ``workflow.interrupted`` for each): what a
        server does when it starts on a store whose previous process died mid-run.

        Only call it when no other process runs workflows on the same store: their
        runs would be marked too (they finish normally, and overwrite the mark).

        Returns:
            The ids of the runs marked.
        """
        store = self.store
        if store is None:
            return []
        stale: list[RunRecord] = []
        offset = 0
        while True:
            page = await store.list_runs(status=["running"], limit=100, offset=offset)
            stale += [r for r in page.items if r.id not in self._active]
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break
        for record in stale:
            await self._mark_interrupted(store, record)
        return [record.id for record in stale]

    async def _mark_interrupted(self, store: Store, record: RunRecord) -> RunRecord:
        record = attrs.evolve(record, status="interrupted", ended_at=time.time())
        await store.save_run(record)
        self.orchestrator.events.emit(
            WorkflowInterrupted,
            run_id=record.id,
            workflow=record.workflow,
            detail="its process ended while it ran",
            cost_usd=record.cost_usd,
        )
        return record

    async def _run(
        self,
        spec: WorkflowSpec,
        run_id: str,
        variables: dict[str, Any],
        *,
        resumption: _Resumption | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> RunResult:
        """Run (or resume) one run. Supports ``nursery.start``: ``started()`` is called
        once the run is recorded in the store (at once without one), so a server
        acknowledges it only then (SPEC §12)."""
        workflow = spec.name
        if run_id in self._active:
            raise RunNotResumable(
                f"workflow run {run_id!r} is running already",
                run_id=run_id,
                reason="running",
                workflow=workflow,
            )
        self._active.add(run_id)
        try:
            recorder = await _Recorder.open(self, spec, run_id, variables, resumption)
            task_status.started()
            return await self._run_recorded(spec, run_id, variables, resumption, recorder)
        finally:
            self._active.discard(run_id)

    async def _run_recorded(
        self,
        spec: WorkflowSpec,
        run_id: str,
        variables: dict[str, Any],
        resumption: _Resumption | None,
        recorder: _Recorder,
    ) -> RunResult:
        workflow = spec.name
        supervisor = await self.orchestrator.start_supervisor(
            SupervisorSpec(name=f"run {run_id}", max_restarts=-1)
        )
        run = _Run(self, workflow, run_id, supervisor, trio.current_time(), recorder)
        if resumption is not None:
            run.workflow_event(
                WorkflowResumed,
                path=resumption.last_path or "",
                detail=f"{len(resumption.checkpoints)} completed step(s) reused",
            )
        run.workflow_event(WorkflowStarted, inputs=sorted(variables))
        succeeded = False
        failure: WorkflowError | None = None
        try:
            output, variables = await run.run_workflow(spec, variables, _Sessions(run), (), "")
            succeeded = True
        except WorkflowError as exc:
            failure = exc
            raise
        finally:
            # NOTE: also when cancelled: every process of the run ends, within a bound.
            with trio.move_on_after(_CLOSE_DEADLINE, shield=True):
                await run.close(graceful=succeeded)
            run.kill_leftovers()
            # The run's last event comes once it is over (its processes stopped, its
            # record saved), as `workflow.completed` does: whoever reacts to it (a
            # resume, say) finds the run ended.
            if failure is not None:
                with trio.move_on_after(_CLOSE_DEADLINE, shield=True):
                    await recorder.failed(failure, run.totals()[2])
                run.workflow_event(
                    WorkflowFailed,
                    detail=str(failure),
                    path=failure.path,
                    error=_message_of(failure),
                    error_class=failure.error_class,
                )
            elif not succeeded:  # cancelled (Ctrl-C, a timeout), or a bug
                with trio.move_on_after(_CLOSE_DEADLINE, shield=True):
                    await recorder.interrupted(run.totals()[2])
                run.workflow_event(WorkflowInterrupted, steps_run=run.steps_run)
        totals = run.totals()
        result = RunResult(
            workflow=workflow,
            run_id=run_id,
            output=output,
            variables=variables,
            input_tokens=totals[0],
            output_tokens=totals[1],
            cost_usd=totals[2],
            steps_run=run.steps_run,
            duration=trio.current_time() - run.started,
            steps_reused=run.steps_reused,
        )
        await recorder.completed(output, totals[2])
        run.workflow_event(WorkflowCompleted, detail=_preview(output), steps_run=run.steps_run)
        return result

    def addressed_by_branches(self, step: ParallelStep) -> tuple[frozenset[str], ...]:
        """The agents each branch of ``step`` addresses (through nested steps and
        sub-workflows), cached per step."""
        found = self._addressed.get(id(step))
        if found is None:
            found = tuple(
                frozenset(_addressed_agents(branch, self.document, set()))
                for branch in step.branches
            )
            self._addressed[id(step)] = found
        return found

    # ----------------------------------------------------------------------- chat
    async def ask(self, agent: str, message: str) -> str:
        """Send ``message`` to the agent's session (``orchestrator.session(agent)``: one
        process per agent, made on first use; the conversation goes on until
        :meth:`end`, and survives an update of the agent's definition).

        Raises:
            AgentNotFound: no agent has that name (the message lists the agents).
            LLMError, SendTimeout, ...: as :meth:`~vega_trio.AgentProcess.send`.
        """
        proc = await self.orchestrator.session(agent)
        return await proc.send(message)

    @asynccontextmanager
    async def ask_stream(self, agent: str, message: str) -> AsyncIterator[TextStream]:
        """Like :meth:`ask`, streaming the reply's text chunks::

            async with runner.ask_stream("writer", "Hi") as chunks:
                async for text in chunks:
                    print(text, end="")

        Leaving the block early cancels the request.

        Raises:
            AgentNotFound: no agent has that name.
        """
        proc = await self.orchestrator.session(agent)
        async with proc.send_stream(message) as chunks:
            yield chunks

    async def end(self, agent: str | None = None) -> None:
        """End the :meth:`ask` conversation with ``agent`` (every one when ``None``);
        the next question starts a fresh one."""
        names = list(self.orchestrator.agents) if agent is None else [agent]
        for name in names:
            await self.orchestrator.end_session(name)

    def chat_process(self, agent: str) -> AgentProcess | None:
        """The live :meth:`ask` process of ``agent``, if there is one."""
        try:
            proc = self.orchestrator.lookup(agent)  # a default session is named after its agent
        except ProcessNotFound:
            return None
        return proc if isinstance(proc, AgentProcess) else None

    def _agent(self, name: str) -> Agent:
        return self.orchestrator.agents.get(name).agent


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
_MISSING: Final = object()


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


def _json_safe(value: Any) -> bool:
    """Whether ``value`` is plain JSON that survives a store round trip unchanged in
    meaning: ``None``, booleans, integers, finite floats, strings, lists (tuples) and
    mappings with string keys of those."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_json_safe(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def _document_path(doc: Document) -> str | None:
    file = doc.where.file
    if not file or file.startswith("<"):
        return None
    path = Path(file)
    return str(path.resolve()) if path.exists() else file


@attrs.define(eq=False)
class _Recorder:
    """A run's record and step checkpoints in the store; does nothing without one
    (or for a run whose inputs are not JSON: it cannot be resumed, see :meth:`open`).

    ``checkpoints`` holds the completed steps a resumed run reuses, by path.
    """

    store: Store | None
    record: RunRecord | None = None
    checkpoints: dict[str, StepRecord] = attrs.field(factory=dict)
    base_cost: float = 0.0
    """What earlier attempts of a resumed run cost (the record's cost adds this one's)."""

    @classmethod
    async def open(
        cls,
        runner: Runner,
        spec: WorkflowSpec,
        run_id: str,
        variables: Mapping[str, Any],
        resumption: _Resumption | None,
    ) -> _Recorder:
        """Record the run as ``running`` (committed on return)."""
        store = runner.store
        if store is None:
            return cls(None)
        if resumption is not None:
            old = resumption.record
            record = attrs.evolve(
                old,
                status="running",
                ended_at=None,
                error=None,
                error_class=None,
                step=None,
                resumes=old.resumes + 1,
            )
            checkpoints = dict(resumption.checkpoints)
            base_cost = old.cost_usd
        elif _json_safe(variables):
            record = RunRecord(
                id=run_id,
                workflow=spec.name,
                status="running",
                inputs=dict(variables),
                document=_document_path(runner.document),
                started_at=time.time(),
            )
            checkpoints, base_cost = {}, 0.0
        else:
            _log.warning(
                "workflow run %s is not recorded and cannot be resumed: its inputs are not "
                "all JSON values (strings, numbers, booleans, null, lists, objects)",
                run_id,
            )
            return cls(None)
        await store.save_run(record)
        return cls(store, record, checkpoints, base_cost)

    async def _save_run(self, **changes: Any) -> None:
        if self.store is None or self.record is None:
            return
        self.record = attrs.evolve(self.record, ended_at=time.time(), **changes)
        await self.store.save_run(self.record)

    async def completed(self, output: Any, cost: float) -> None:
        if not _json_safe(output):
            _log.warning(
                "workflow run %s: its output is not a JSON value; the store keeps its text",
                self.record.id if self.record else "?",
            )
            output = to_text(output)
        await self._save_run(status="completed", output=output, cost_usd=self.base_cost + cost)

    async def failed(self, exc: WorkflowError, cost: float) -> None:
        await self._save_run(
            status="failed",
            error=_message_of(exc),
            error_class=exc.error_class,
            step=exc.path,
            cost_usd=self.base_cost + cost,
        )

    async def interrupted(self, cost: float) -> None:
        await self._save_run(status="interrupted", cost_usd=self.base_cost + cost)

    async def step(self, step: StepRecord) -> None:
        """Commit a step's record; a store failure is logged, not raised: the run goes
        on, and a resume would run that step again."""
        if self.store is None:
            return
        try:
            await self.store.save_step(step)
        except Exception as exc:
            _log.warning(
                "workflows.%s of run %s: its checkpoint could not be saved (%s); a resume "
                "would run it again",
                step.path,
                step.run_id,
                _message_of(exc),
            )


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

    def _usage(self, mark: _StepMark) -> tuple[float, int]:
        input_tokens, output_tokens, cost = self.totals()
        before = mark.totals
        return cost - before[2], (input_tokens - before[0]) + (output_tokens - before[1])

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
        cost, tokens = self._usage(mark)
        await self.recorder.step(
            StepRecord(
                run_id=self.run_id,
                path=path,
                status="completed",
                result=data,
                started_at=mark.started_at,
                ended_at=time.time(),
                cost_usd=cost,
                tokens=tokens,
            )
        )

    async def failed_step(self, path: str, mark: _StepMark, exc: Exception) -> None:
        """Save the record of the step a failure started at (not a checkpoint: a resume
        runs it again)."""
        if self.recorder.store is None:
            return
        cost, tokens = self._usage(mark)
        await self.recorder.step(
            StepRecord(
                run_id=self.run_id,
                path=path,
                status="failed",
                result={"error": _message_of(exc), "error_class": error_class(exc)},
                started_at=mark.started_at,
                ended_at=time.time(),
                cost_usd=cost,
                tokens=tokens,
            )
        )

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


# -- helpers -------------------------------------------------------------------------------


_STEP_KINDS: Final[dict[type, str]] = {
    AgentStep: "agent",
    IfStep: "if",
    ForStep: "for",
    ParallelStep: "parallel",
    TryStep: "try",
    RepeatStep: "repeat",
    SetStep: "set",
    ReturnStep: "return",
    WorkflowStep: "workflow",
}


def _summary(step: Step) -> str:
    if isinstance(step, IfStep):
        return f"if {step.condition}"
    if isinstance(step, ForStep):
        return f"for {step.variable} in {step.items}"
    if isinstance(step, ParallelStep):
        return f"parallel ({len(step.branches)} branches)"
    if isinstance(step, RepeatStep):
        return f"repeat (max {step.max})" + (f" until {step.until}" if step.until else "")
    if isinstance(step, SetStep):
        return f"set {', '.join(step.values)}"
    if isinstance(step, WorkflowStep):
        return f"workflow {step.workflow}"
    return _STEP_KINDS[type(step)]


_ITERATION: Final = re.compile(r"\.(?:for|repeat)\[\d+\](?=\.steps\[)")


def _document_path_of(path: str, workflow: str) -> str:
    """The document's path of the step run at ``path`` (what errors name): a step of a
    nested workflow as that workflow's own step (``summary.steps[0]``, not
    ``report.steps[2].summary.steps[0]``), a loop's step without its iteration
    (``report.steps[1].steps[0]``, not ``report.steps[1].for[3].steps[0]``)."""
    marker = f".{workflow}.steps["
    cut = path.rfind(marker)
    if cut >= 0:
        path = path[cut + 1 :]
    return _ITERATION.sub("", path)


def _preview(value: Any) -> str:
    text = to_text(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _location(where: str, source: Source) -> str:
    if source.line:
        return f"{source.file}:{source.line}:{source.column}: {where}"
    return where


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LLMError):
        return f"{exc} (error class: {exc.error_class})"
    if isinstance(exc, WorkflowError | TemplateError | StepTimeout | ReplyFormatError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _restore(variables: dict[str, Any], name: str, saved: object) -> None:
    if saved is _MISSING:
        variables.pop(name, None)
    else:
        variables[name] = saved


def _render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Strings rendered as templates (one placeholder keeps its value's type); lists
    and mappings rendered item by item; anything else as it is."""
    if isinstance(value, str):
        return Template.parse(value).render_value(variables)
    if isinstance(value, Mapping):
        return {key: _render_value(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render_value(item, variables) for item in value]
    return value


def _items_value(expression: str, variables: Mapping[str, Any]) -> Any:
    text = expression if "{{" in expression else f"{{{{ {expression} }}}}"
    return Template.parse(text).render_value(variables)


def _as_items(value: Any, expression: str) -> list[Any]:
    """What a ``for`` iterates over: a list; a string holding a JSON array; else the
    non-empty lines of a string (each stripped)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                pass
            else:
                if isinstance(parsed, list):
                    return parsed
        return [line.strip() for line in value.splitlines() if line.strip()]
    raise TypeError(
        f"`for` needs a list, a JSON array or lines of text to iterate over, but "
        f"{expression!r} is {_kind_of(value)} (text is split into its non-empty lines)"
    )


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {to_text(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _parse_json(reply: str) -> Any:
    """A ``format: json`` reply as data: the whole reply, or the first fenced
    ```` ```json ```` block in it."""
    text = reply.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first_error = exc
    fenced = _FENCED_JSON.search(reply)
    if fenced is not None:
        try:
            return json.loads(fenced.group(1))
        except json.JSONDecodeError as exc:
            first_error = exc
    start = text[:80].replace("\n", " ")
    raise ReplyFormatError(
        f"the reply is not JSON ({first_error.msg} at line {first_error.lineno} column "
        f"{first_error.colno}); it starts {start!r}. Ask the agent to answer with JSON "
        "only (a ```json block is accepted too), or drop `format: json`"
    )


def _addressed_agents(steps: tuple[Step, ...], doc: Document, seen: set[str]) -> set[str]:
    """The agents ``steps`` may send to, through nested steps and sub-workflows."""
    found: set[str] = set()
    for step in steps:
        if isinstance(step, AgentStep):
            found.add(step.agent)
        elif isinstance(step, IfStep):
            found |= _addressed_agents(step.then + step.otherwise, doc, seen)
        elif isinstance(step, ForStep | RepeatStep):
            found |= _addressed_agents(step.steps, doc, seen)
        elif isinstance(step, TryStep):
            found |= _addressed_agents(step.steps + step.catch, doc, seen)
        elif isinstance(step, ParallelStep):
            for branch in step.branches:
                found |= _addressed_agents(branch, doc, seen)
        elif isinstance(step, WorkflowStep) and step.workflow not in seen:
            seen.add(step.workflow)
            sub = doc.workflow(step.workflow)
            if sub is not None:
                found |= _addressed_agents(sub.steps, doc, seen)
    return found
