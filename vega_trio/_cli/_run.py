"""``vega-trio run``: load a document, run one workflow, progress on stderr, result on
stdout."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

import outcome
import trio

from .._errors import VegaError
from .._redact import redact, redact_data
from ..agent._bus_events import (
    BudgetOverrun,
    BudgetWarning,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    LLMCalled,
    ToolEnded,
)
from ..runtime._events import Event, Lagged, ProcessRestarted, Subscription, SupervisorGaveUp
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    OFFLINE_NOTICE,
    UsageProblem,
    choose_llm,
    describe_failure,
    did_you_mean,
    interruptible,
    misread_task_hint,
    open_document_runner,
    parse_inputs,
    symbols,
    write,
)
from ._logging import LogFormat, cli_logging
from ._offline import shorten

if TYPE_CHECKING:
    from ..dsl._interpreter import ProgressEvent, Runner, RunResult
    from ..dsl._model import Document, WorkflowSpec
    from ..store import Store

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "PROGRESS_EVENTS",
    "format_event",
    "load_document",
    "run_command",
]

OutputFormat = Literal["text", "json"]


async def load_document(file: Path, err: TextIO) -> Document | None:
    """Load ``file``; on failure print every diagnostic (or the one-line cause) to
    ``err`` and return ``None``."""
    from .._errors import InputFileError
    from ..dsl._loader import DSLError, load_file

    try:
        # NOTE: reading and checking a big file is CPU work: keep the event loop responsive.
        document: Document = await trio.to_thread.run_sync(load_file, file)
    except DSLError as exc:
        errors = 0
        for diagnostic in exc.diagnostics:
            write(err, str(diagnostic))
            errors += diagnostic.severity == "error"
        noun = "error" if errors == 1 else "errors"
        write(err, f"vega-trio: {file}: {errors} {noun}; nothing was run")
        return None
    except InputFileError as exc:  # not a regular file, over the size cap, ...
        write(err, f"vega-trio: error: {exc}")
        return None
    return document


def select_workflow(document: Document, file: Path, name: str | None) -> WorkflowSpec:
    """The workflow to run: ``name``, or the only one.

    Raises:
        UsageProblem: no such workflow, none at all, or several and no ``name``.
    """
    names = [w.name for w in document.workflows]
    if name is not None:
        workflow = document.workflow(name)
        if workflow is None:
            available = ", ".join(names) if names else "none"
            raise UsageProblem(
                f"{file} has no workflow {name!r}{did_you_mean(name, names)} "
                f"(workflows: {available})"
            )
        return workflow
    if len(names) == 1:
        return document.workflows[0]
    if not names:
        raise UsageProblem(
            f"{file} defines no workflows; add a 'workflows:' section, or talk to its "
            f"agents with: vega-trio repl {file}"
        )
    raise UsageProblem(
        f"{file} defines {len(names)} workflows ({', '.join(names)}); choose one with "
        f"--workflow NAME"
    )


#: Runtime events ``run`` shows as progress lines, besides its step lines (SPEC §13).
PROGRESS_EVENTS: Final = (
    "llm.call",
    "tool.end",
    "process.restarted",
    "supervisor.gave_up",
    "circuit.*",
    "budget.warning",
    "budget.exceeded",
)
#: The run's own events: its step lines (and what Ctrl-C interrupted) come from them.
WORKFLOW_EVENTS: Final = "workflow.*"
#: The ``event`` of log records that those lines already show: not printed twice.
SHOWN_AS_PROGRESS: Final = (
    "llm.retry",
    "process.failed",  # the step's failure line and the run's error say it (once)
    "process.restarted",
    "circuit.open",
    "circuit.closed",
    "budget.warning",
)


class _Progress:
    """Writes one line per step start and finish (and failure) to stderr, and one per
    tool call, retry, restart, circuit change and budget warning: all of them rendered
    from the orchestrator's event bus (``workflow.*`` events and
    :data:`PROGRESS_EVENTS`, see :meth:`follow`); the run's cumulative token counts
    become each step's own. With ``quiet`` it prints nothing but still knows which steps
    are running (for what Ctrl-C interrupted).

    A failure's line waits for the next event: when the run goes on (a ``try:`` or
    ``continue_on_error`` took it) it shows the error; when the run fails with it, the
    command prints the error itself, so the line only says which step failed (the error
    is printed once).
    """

    def __init__(self, err: TextIO, *, quiet: bool = False) -> None:
        self._err = err
        self._quiet = quiet
        self._events: Subscription | None = None
        self._marks = symbols(err)
        self._at_start: dict[str, tuple[int, int, float]] = {}
        self._failed: list[ProgressEvent] = []
        #: The steps in progress: path -> "path (agent)", for what Ctrl-C interrupted.
        self.running: dict[str, str] = {}
        #: The run's id, once it has started.
        self.run_id: str | None = None
        #: Written (even when quiet) when the run starts: how to resume it (``--db``).
        self.resume_hint: str | None = None

    def _step(self, event: ProgressEvent) -> None:
        if event.kind == "workflow_started" and self.run_id is None:
            self.run_id = event.run_id
            if self.resume_hint is not None:
                write(self._err, self.resume_hint.format(run_id=event.run_id))
        if event.kind != "step_failed":  # an enclosing step failing too: keep waiting
            self._flush_failed(with_error=event.kind != "workflow_failed")
        if not event.kind.startswith("step_"):
            return  # the command reports the run's start and end itself
        totals = (event.input_tokens, event.output_tokens, event.cost_usd)
        if event.kind == "step_reused":
            self._write(format_progress(event, self._marks))
            return
        if event.kind == "step_started":
            self._at_start[event.path] = totals
            who = f" ({event.agent})" if event.agent else ""
            self.running[event.path] = f"workflows.{event.path}{who}"
        else:
            self.running.pop(event.path, None)
        if event.kind == "step_failed":
            self._failed.append(event)
            return
        before = self._at_start.get(event.path, totals)
        self._write(format_progress(event, self._marks, before))

    def _write(self, line: str) -> None:
        if not self._quiet:
            write(self._err, line)

    def _show(self, item: Event | Lagged) -> None:
        from ..dsl._interpreter import ProgressEvent

        if isinstance(item, Lagged):
            line: str | None = f"{self._marks['warn']} ({item.missed} progress event(s) not shown)"
        elif item.type.startswith("workflow."):
            step = ProgressEvent.from_event(item)
            if step is not None:
                self._step(step)
            return
        else:
            line = format_event(item, self._marks)
        if line is not None:
            self._write(line)

    def drain(self) -> None:
        """Print the runtime events received so far."""
        if self._events is None:
            return
        while (item := self._events.receive_nowait()) is not None:
            self._show(item)

    async def follow(self, events: Subscription) -> None:
        """Print the run's events as they come (until cancelled), so a retry's wait or a
        long tool shows while it happens; :meth:`drain` prints what is left."""
        self._events = events
        async for item in events:
            self._show(item)

    def _flush_failed(self, *, with_error: bool) -> None:
        failed, self._failed = self._failed, []
        for index, event in enumerate(failed):
            # A step whose inner step failed before it failed with it: the error is that one.
            inner = any(_inside(earlier.path, event.path) for earlier in failed[:index])
            self._write(format_progress(event, self._marks, with_error=with_error and not inner))


def _inside(path: str, outer: str) -> bool:
    """Whether step ``path`` is nested in step ``outer`` (``a.steps[1].then[0]`` in
    ``a.steps[1]``)."""
    return path.startswith((f"{outer}.", f"{outer}["))


def format_event(event: Event, marks: Mapping[str, str]) -> str | None:
    """One progress line for a runtime event, or ``None`` when it needs none.

    * ``↻ researcher: LLM call failed (overloaded, HTTP 529); retry 2 in 0.5s``
    * ``· researcher → files__read 12 ms`` (a tool call; ``failed`` and the first line
      of the error when it failed)
    * ``↻ researcher restarted (restart 1): RuntimeError: boom``
    * ``! researcher: circuit breaker 'llm' open (5 failures); half-opens in 30s``
    * ``! budget of agent 'writer' exceeded: $0.0120 of $0.0100 (calls go on)``
    """
    who = event.agent or event.process_id or "?"
    if isinstance(event, LLMCalled):
        if event.error_class is None or event.retry_in is None:
            return None  # a success, or the last failure: the step's line reports it
        status = event.status_code
        cause = f"{event.error_class}" + (f", HTTP {status}" if status is not None else "")
        return (
            f"{marks['retry']} {who}: LLM call failed ({cause}); retry "
            f"{int(event.attempt or 1) + 1} in {round(float(event.retry_in), 2):g}s"
        )
    if isinstance(event, ToolEnded):
        line = f"{marks['dot']} {who} {marks['arrow']} {event.tool}"
        if event.is_error:
            first = next(iter(event.result.splitlines()), "")
            line += f" failed: {shorten(first, 100)}"
        return f"{line} {event.duration_ms} ms"
    if isinstance(event, ProcessRestarted):
        detail = " ".join((event.detail or event.reason).split())
        return f"{marks['retry']} {who} restarted (restart {event.restart_count})" + (
            f": {shorten(detail, 120)}" if detail else ""
        )
    if isinstance(event, SupervisorGaveUp):
        return f"{marks['fail']} supervisor gave up: {' '.join(event.detail.split())}"
    if isinstance(event, CircuitOpened | CircuitHalfOpened | CircuitClosed):
        state = event.type.removeprefix("circuit.").replace("_", "-")
        line = f"{marks['warn']} {who}: circuit breaker {event.breaker!r} {state}"
        if isinstance(event, CircuitOpened):
            line += f" ({event.failures} failures); half-opens in {float(event.reset_after):g}s"
        return line
    if isinstance(event, BudgetWarning | BudgetOverrun):
        then = "calls go on" if isinstance(event, BudgetWarning) else "the call was refused"
        return (
            f"{marks['warn']} budget of {event.owner} exceeded: "
            f"${float(event.spent_usd):.4f} of ${float(event.limit_usd):.4f} ({then})"
        )
    return None


async def _run_with_progress(
    runner: Runner,
    workflow: str,
    variables: Mapping[str, Any],
    progress: _Progress,
    *,
    quiet: bool,
    runtime_events: bool = True,
    resume: str | None = None,
) -> RunResult:
    """Run the workflow (or resume run ``resume``: ``workflow`` and ``variables`` are
    then the recorded run's), reporting its ``workflow.*`` events to ``progress``;
    unless ``quiet`` (or not ``runtime_events``: the repl), also the runtime events of
    :data:`PROGRESS_EVENTS` while it runs."""
    from ..dsl._interpreter import PROGRESS_BUFFER

    shown = runtime_events and not quiet
    types = (WORKFLOW_EVENTS, *PROGRESS_EVENTS) if shown else (WORKFLOW_EVENTS,)
    with runner.orchestrator.subscribe(types=types, max_buffer=PROGRESS_BUFFER) as events:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(progress.follow, events)
                # NOTE: captured, so the run's own error leaves the nursery unwrapped
                # (not as an exception group) and the command reports it as before.
                if resume is None:
                    done = await outcome.acapture(runner.run, workflow, variables)
                else:
                    done = await outcome.acapture(runner.resume, resume)
                nursery.cancel_scope.cancel()
        finally:
            progress.drain()  # also when interrupted: what was running is known
        return done.unwrap()


def format_progress(
    event: ProgressEvent,
    marks: Mapping[str, str],
    before: tuple[int, int, float] = (0, 0, 0.0),
    *,
    with_error: bool = True,
) -> str:
    """One progress line.

    * ``▶ report.steps[0] researcher · Research Go concurrency`` when a step starts
      (an agent step shows the start of its message, another step what it is:
      ``▶ report.steps[2] · for part in subtopics``);
    * ``✓ report.steps[0] researcher 120+45 tokens $0.0012`` when it ends (the tokens
      and cost of the step, nested steps included; none when it used no model);
    * ``✓ report.steps[0] researcher (from its checkpoint)`` for a step a resumed run
      did not run again;
    * ``✗ report.steps[1] writer: <the error on one line>`` when it fails, or
      ``✗ report.steps[1] writer failed`` without ``with_error`` (the run failed with
      it, and the command prints the error in full).

    Args:
        event: the interpreter's event.
        marks: the symbols to use (:func:`~vega_trio._cli._common.symbols`).
        before: the run's token and cost totals when the step started.
        with_error: show a failure's error.
    """
    who = f" {event.agent}" if event.agent else ""
    if event.kind == "step_started":
        detail = shorten(event.detail, 60)
        return f"{marks['start']} {event.path}{who}" + (
            f" {marks['dot']} {detail}" if detail else ""
        )
    if event.kind == "step_reused":
        return f"{marks['ok']} {event.path}{who or ' ' + event.step} (from its checkpoint)"
    if event.kind == "step_failed":
        if not with_error:
            return f"{marks['fail']} {event.path}{who or ' ' + event.step} failed"
        return f"{marks['fail']} {event.path}{who}: {' '.join(event.detail.split())}"
    what = who or f" {event.step}"
    used_in = event.input_tokens - before[0]
    used_out = event.output_tokens - before[1]
    usage = ""
    if used_in or used_out:
        usage = f" {used_in}+{used_out} tokens ${event.cost_usd - before[2]:.4f}"
    return f"{marks['ok']} {event.path}{what}{usage}"


def _json_default(value: object) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return redact(str(value))


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _leaf_steps(running: Mapping[str, str]) -> list[str]:
    """The innermost of the steps in progress (a ``for`` step and the step inside it:
    the inner one), as labels."""
    return [
        label
        for path, label in running.items()
        if not any(_inside(other, path) for other in running)
    ]


def interrupted_message(workflow: str, progress: _Progress | None) -> str:
    """What Ctrl-C stopped: ``workflow 'report' stopped at workflows.report.steps[0]
    (researcher) (Ctrl-C); its processes were stopped``."""
    steps = _leaf_steps(progress.running) if progress is not None else []
    where = f" at {', '.join(steps)}" if steps else " before its first step"
    return f"workflow {workflow!r} stopped{where} (Ctrl-C); its processes were stopped"


def failure_payload(
    error: str,
    error_class: str,
    *,
    workflow: str | None = None,
    step: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``--output json`` object of a failed command: ``{"ok": false, "error": message,
    "error_class": class, "workflow"?: name, "step"?: path, ...}`` (the success object is
    ``{"ok": true, "output": ..., ...}``)."""
    payload: dict[str, Any] = {"ok": False, "error": error, "error_class": error_class}
    if workflow is not None:
        payload["workflow"] = workflow
    if step is not None:
        payload["step"] = step
    payload.update(extra)
    return payload


def write_json(out: TextIO, payload: Mapping[str, Any]) -> None:
    """``payload`` as indented JSON on ``out``, every string redacted; ``\\u`` escapes
    when ``out``'s encoding cannot hold the text (the JSON stays valid)."""
    data = redact_data(dict(payload))
    text = json.dumps(data, ensure_ascii=False, indent=2, default=_json_default)
    try:
        text.encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(data, ensure_ascii=True, indent=2, default=_json_default)
    write(out, text)


async def run_command(
    file: Path,
    *,
    workflow: str | None = None,
    tasks: Sequence[str] = (),
    input_file: Path | None = None,
    output: OutputFormat = "text",
    time_limit: float | None = None,
    llm: str | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    log_level: str | None = None,
    log_format: LogFormat = "text",
    quiet: bool = False,
    db: str | None = None,
    resume: str | None = None,
) -> int:
    """Run one workflow of a ``.vega.yaml`` file: what ``vega-trio run`` does.

    Args:
        file: the document.
        workflow: the workflow's name; ``None`` picks the only one.
        tasks: ``--task`` values (``"k=v"`` sets ``k``; other text sets ``task``).
        input_file: ``--input``: a JSON object of variables (``--task`` wins).
        output: ``text`` (the result as text) or ``json`` (``{ok: true, output,
            variables, cost_usd, tokens: {input, output}, steps_run}``; on failure
            ``{ok: false, error, error_class, workflow?, step?}``).
        time_limit: ``--timeout``: seconds for the whole run; ``None``: no limit.
        llm: ``--llm`` (``anthropic`` or ``scripted``); ``None`` chooses as
            :func:`~vega_trio._cli._common.choose_llm` says.
        env: the environment for that choice (default ``os.environ``).
        out: where the result goes (default ``sys.stdout``).
        err: where progress, log records and errors go (default ``sys.stderr``).
        log_level: ``--log-level`` (``debug`` … ``critical``); ``None``: the
            document's ``settings.logging.level``, else ``warning``.
        log_format: ``--log-format``: ``text`` or ``json`` (one object per line).
        quiet: ``--quiet``: no progress lines (errors and log records still print).
        db: ``--db``: a store (a SQLite file, ``postgresql://…``) that records the run
            and a checkpoint per completed step, so it can be resumed; the run's id is
            printed on ``err`` when it starts (and is in the JSON output).
        resume: ``--resume``: the id of a recorded run to resume from its last
            completed step (needs ``db``; the run's workflow and inputs are the
            recorded ones, so ``workflow``, ``tasks`` and ``input_file`` must not be
            given).

    Returns:
        The exit status: 0 on success, 1 when the run failed, 2 when nothing could run
        (an invalid file, command line or input), 130 when Ctrl-C stopped it. Each
        failure is explained once on ``err``: its first line says what failed, the
        following ones (a template's caret diagram, a hint) keep their layout.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    with cli_logging(
        err,
        level=log_level,
        log_format=log_format,
        shown_elsewhere=() if quiet else SHOWN_AS_PROGRESS,
    ):
        return await _run(
            file,
            workflow=workflow,
            tasks=tasks,
            input_file=input_file,
            output=output,
            time_limit=time_limit,
            llm=llm,
            env=env,
            out=out,
            err=err,
            log_level=log_level,
            quiet=quiet,
            db=db,
            resume=resume,
        )


async def _run(
    file: Path,
    *,
    workflow: str | None,
    tasks: Sequence[str],
    input_file: Path | None,
    output: OutputFormat,
    time_limit: float | None,
    llm: str | None,
    env: Mapping[str, str] | None,
    out: TextIO,
    err: TextIO,
    log_level: str | None,
    quiet: bool,
    db: str | None,
    resume: str | None,
) -> int:
    from ..dsl._inputs import InputError, resolve_inputs
    from ..dsl._interpreter import RunNotResumable, WorkflowError, WorkflowInputError
    from ..dsl._run_common import error_class

    def fail(status: int, message: str, error_class: str, **fields: Any) -> int:
        write(err, f"vega-trio: error: {message}")
        if output == "json":
            write_json(out, failure_payload(message, error_class, **fields))
        return status

    try:
        choice, defaulted = choose_llm(llm, env)
        variables = parse_inputs(tasks, input_file)
        _check_resume_options(db, resume, workflow, tasks, input_file)
    except UsageProblem as exc:
        return fail(EXIT_INVALID, str(exc), "usage_error")
    document = await load_document(file, err)
    if document is None:  # its diagnostics and a summary are on err already
        if output == "json":
            message = f"{file} is not a valid document (see the errors above); nothing was run"
            write_json(out, failure_payload(message, "invalid_document"))
        return EXIT_INVALID
    try:
        spec = None if resume is not None else select_workflow(document, file, workflow)
        if spec is not None:
            resolve_inputs(spec, variables)  # a missing or invalid input: nothing runs
    except UsageProblem as exc:
        return fail(EXIT_INVALID, str(exc), "usage_error")
    except InputError as exc:
        assert spec is not None
        return fail(EXIT_INVALID, f"{exc}; nothing was run", "invalid_input", workflow=spec.name)
    if defaulted:
        write(err, OFFLINE_NOTICE)

    start = trio.current_time()
    progress = _Progress(err, quiet=quiet)
    if db is not None:
        progress.resume_hint = (
            f"vega-trio: run {{run_id}} is recorded in {db}; if it stops, resume it with: "
            f"vega-trio run {file} --db {db} --resume {{run_id}}"
        )
    # The workflow's name for messages: a resumed run's comes from its record.
    name = spec.name if spec is not None else (resume or "")

    async def work() -> RunResult:
        nonlocal name
        with trio.fail_after(math.inf if time_limit is None else time_limit):
            async with _opened_store(db) as store:
                overrides = {} if store is None else {"store": store}
                async with open_document_runner(
                    document, file, choice, log_level=log_level, **overrides
                ) as runner:
                    if resume is not None and store is not None:
                        record = await store.get_run(resume)
                        name = record.workflow if record is not None else name
                    return await _run_with_progress(
                        runner, name, variables, progress, quiet=quiet, resume=resume
                    )

    ended = await interruptible(work)
    if ended.interrupted:
        message = interrupted_message(name, progress)
        if db is not None and progress.run_id is not None:
            message += f"; resume it with --db {db} --resume {progress.run_id}"
        write(err, f"vega-trio: interrupted: {message}")
        if output == "json":
            steps = _leaf_steps(progress.running)
            write_json(
                out,
                failure_payload(
                    message,
                    "interrupted",
                    workflow=name,
                    **({"run_id": progress.run_id} if progress.run_id else {}),
                    **({"step": steps[0].split(" ")[0]} if steps else {}),  # its path
                ),
            )
        return EXIT_INTERRUPTED
    error = ended.error
    if isinstance(error, trio.TooSlowError):
        return fail(
            EXIT_FAILED,
            f"workflow {name!r} timed out after {time_limit:g}s (--timeout); give it "
            "longer or leave --timeout out",
            "timeout",
            workflow=name,
        )
    if isinstance(error, UsageProblem):  # nothing ran
        return fail(EXIT_INVALID, str(error), "usage_error", workflow=name)
    refused = _single_leaf(error)
    if isinstance(refused, RunNotResumable):  # raised inside the runner's nurseries
        return fail(EXIT_INVALID, f"{refused}; nothing was run", refused.error_class, workflow=name)
    if isinstance(error, WorkflowInputError):
        return fail(EXIT_INVALID, f"{error}; nothing was run", "invalid_input", workflow=name)
    if error is not None or ended.value is None:
        failure: BaseException = error if error is not None else RuntimeError("no result")
        message = f"workflow {name!r} failed: {describe_failure(failure)}"
        hint = misread_task_hint(failure, tasks)
        if hint:
            message += f"\n{hint}"
        if db is not None and progress.run_id is not None:
            message += (
                f"\nthe run is recorded: fix the cause, then resume it from the failed step "
                f"with: vega-trio run {file} --db {db} --resume {progress.run_id}"
            )
        fields: dict[str, Any] = {"workflow": name}
        if progress.run_id is not None and db is not None:
            fields["run_id"] = progress.run_id
        if isinstance(failure, WorkflowError):
            fields["step"] = failure.path
        return fail(EXIT_FAILED, message, error_class(failure), **fields)
    result = ended.value

    elapsed = trio.current_time() - start
    marks = symbols(err)
    if not quiet:
        write(
            err,
            f"{marks['ok']} workflow {result.workflow} done: {result.steps_run} step(s), "
            f"{result.input_tokens}+{result.output_tokens} tokens ${result.cost_usd:.4f} "
            f"in {elapsed:.1f}s",
        )
    if output == "json":
        payload = {
            "ok": True,
            "output": result.output,
            "variables": dict(result.variables),
            "cost_usd": result.cost_usd,
            "tokens": {"input": result.input_tokens, "output": result.output_tokens},
            "steps_run": result.steps_run,
        }
        if db is not None:
            payload["run_id"] = result.run_id
            payload["steps_reused"] = result.steps_reused
        write_json(out, payload)
    else:
        write(out, _as_text(result.output))
    return EXIT_OK


def _check_resume_options(
    db: str | None,
    resume: str | None,
    workflow: str | None,
    tasks: Sequence[str],
    input_file: Path | None,
) -> None:
    """``--resume`` needs ``--db`` and takes the run's recorded workflow and inputs.

    Raises:
        UsageProblem: a combination that cannot work.
    """
    if resume is None:
        return
    if db is None:
        raise UsageProblem(f"--resume {resume} needs --db PATH: the store the run was recorded in")
    given = [flag for flag, value in (("--workflow", workflow), ("--input", input_file)) if value]
    if tasks:
        given.append("--task")
    if given:
        raise UsageProblem(
            f"--resume continues run {resume} with its recorded workflow and inputs; drop "
            f"{', '.join(given)}"
        )


@asynccontextmanager
async def _opened_store(db: str | None) -> AsyncIterator[Store | None]:
    """The store ``--db`` names, open for the block (``None`` without ``--db``).

    Raises:
        UsageProblem: it cannot be opened (corrupt, another program's, unreachable…).
    """
    if db is None:
        yield None
        return
    from ..store import open_store

    async with AsyncExitStack() as stack:
        try:
            store = await stack.enter_async_context(open_store(db))
        except VegaError as exc:
            raise UsageProblem(f"--db {db}: {exc}") from exc
        yield store


def _single_leaf(error: BaseException | None) -> BaseException | None:
    """``error``, or the one exception an exception group (of groups) holds."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
