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
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import attrs
import outcome
import trio

from .._config import OrchestratorConfig
from .._errors import (
    InputError,
    ProcessNotFound,
    ReplyFormatError,
    RunNotResumable,
    StepTimeout,
    WorkflowError,
    WorkflowInputError,
)
from .._handles import NoPublicConstructor
from ..agent import Agent, AgentProcess, TextStream
from ..llm import LLM
from ..orchestrator import Orchestrator, open_orchestrator
from ..runtime import SupervisorSpec
from ..runtime._events import Event, Lagged
from ..store import RunRecord, Store
from ._build import build_agents, orchestrator_config
from ._dump import dump_agent
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
    Document,
    ParallelStep,
    Source,
    WorkflowSpec,
)
from ._recorder import _Recorder
from ._run import _Run, _Sessions
from ._run_common import (
    _CLOSE_DEADLINE,
    _SHUTDOWN_GRACE,
    MAX_WORKFLOW_DEPTH,
    ProgressKind,
    _addressed_agents,
    _message_of,
    _preview,
    _Resumption,
)

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
