"""What the CLI's commands share: the model choice, ``--task``/``--input`` parsing,
one-line error causes and terminal-safe output."""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TextIO, TypeVar

import attrs
import trio

from .._errors import InputFileError, UsageProblem
from .._files import read_bounded_text
from .._redact import redact
from ..llm._protocol import LLM
from ._offline import offline_llm

if TYPE_CHECKING:
    from ..dsl._interpreter import Runner
    from ..dsl._model import Document

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "LLM_CHOICES",
    "LLMChoice",
    "Outcome",
    "UsageProblem",
    "choose_llm",
    "describe_failure",
    "did_you_mean",
    "interruptible",
    "misread_task_hint",
    "one_line_cause",
    "open_llm",
    "parse_inputs",
    "safe_streams",
    "symbols",
    "write",
    "write_chunk",
]

EXIT_OK: Final = 0
#: The run started and failed (a step, the model, a timeout).
EXIT_FAILED: Final = 1
#: Nothing ran: the file is invalid, or the command line (or an input) does not fit it.
EXIT_INVALID: Final = 2
#: Ctrl-C (SIGINT) stopped it: 128 + SIGINT, what shells report for a program they interrupted.
EXIT_INTERRUPTED: Final = 130

T = TypeVar("T")

LLMChoice = Literal["anthropic", "openai", "scripted"]
LLM_CHOICES: Final = ("anthropic", "openai", "scripted")

# A --task key is a variable name as templates write it: letters, digits, _ and inner -.
_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")
# A --task that was probably meant as K=V: "topic:Go", "topic: Go", "topic Go".
_MISREAD_TASK: Final = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)\s*[:\s]\s*(.+)", re.S
)

OFFLINE_NOTICE: Final = (
    "vega-trio: offline: replies are scripted, not from a model (no ANTHROPIC_API_KEY or "
    "ANTHROPIC_BASE_URL set); set ANTHROPIC_API_KEY for Claude, or pass --llm scripted "
    "to silence this notice"
)


def choose_llm(flag: str | None, env: Mapping[str, str] | None = None) -> tuple[LLMChoice, bool]:
    """Pick the model backend.

    Args:
        flag: ``--llm`` as given (``None`` when absent).
        env: the environment (default ``os.environ``).

    Returns:
        The backend and whether the choice was made for the user (the scripted model
        chosen because no Anthropic variable is set: the commands say so on stderr).
        An explicit ``--llm``, then ``VEGA_LLM``, then ``anthropic`` when
        ``ANTHROPIC_API_KEY`` or ``ANTHROPIC_BASE_URL`` is set, then ``openai`` when
        ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else ``scripted``.

    Raises:
        UsageProblem: ``VEGA_LLM`` names no backend.
    """
    env = os.environ if env is None else env
    if flag is not None:
        return _checked(flag, "--llm"), False
    if env.get("VEGA_LLM"):
        return _checked(env["VEGA_LLM"], "VEGA_LLM"), False
    if env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_BASE_URL"):
        return "anthropic", False
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        return "openai", False
    return "scripted", True


def _checked(value: str, where: str) -> LLMChoice:
    if value == "anthropic":
        return "anthropic"
    if value == "scripted":
        return "scripted"
    if value == "openai":
        return "openai"
    raise UsageProblem(
        f"{where}={value!r} is not a model backend; use one of: {', '.join(LLM_CHOICES)}"
        + did_you_mean(value, LLM_CHOICES, prefix=" (", suffix=")")
    )


@asynccontextmanager
async def open_document_runner(
    document: Document,
    file: Path,
    choice: LLMChoice,
    *,
    log_level: str | None = None,
    **config_overrides: Any,
) -> AsyncIterator[Runner]:
    """The chosen backend (:func:`open_llm`) and a runner of ``document`` on it, for the
    length of the block: what ``run`` and ``repl`` (and ``serve``) work with. The
    document's relative paths are taken relative to ``file``'s directory;
    ``config_overrides`` go to :func:`~vega_trio.dsl.open_runner` (``OrchestratorConfig``
    fields).

    Raises:
        UsageProblem: ``anthropic`` was chosen and no credential is configured.
    """
    from ..dsl._interpreter import open_runner

    agents = [(agent.name, agent.system) for agent in document.agents]
    base_dir = Path(await trio.Path(file).resolve()).parent
    async with (
        open_llm(
            choice,
            agents,
            document.settings.default_model,
            prompt_caching=document.settings.prompt_caching,
        ) as model,
        open_runner(
            document,
            base_dir=base_dir,
            llm=model,
            log_level=log_level,
            backends=backends_for(choice, model),
            **config_overrides,
        ) as runner,
    ):
        yield runner


@asynccontextmanager
async def open_llm(
    choice: LLMChoice,
    agents: Sequence[tuple[str, str]],
    default_model: str | None = None,
    *,
    prompt_caching: bool = True,
) -> AsyncIterator[LLM]:
    """Open the chosen backend for the length of the block and close it after.

    Args:
        choice: ``anthropic`` (:class:`~vega_trio.AnthropicLLM`, which reads
            ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``), ``openai``
            (:class:`~vega_trio.llm.OpenAICompatibleLLM`: ``OPENAI_API_KEY``,
            ``OPENAI_BASE_URL``; Ollama, vLLM, llama.cpp servers) or ``scripted`` (the
            offline model of :mod:`vega_trio._cli._offline`).
        agents: ``(name, system prompt)`` of the document's agents, for the offline model.
        default_model: the model for agents that name none.
        prompt_caching: Anthropic prompt caching (``settings.prompt_caching``).

    Raises:
        UsageProblem: ``anthropic`` was chosen and no credential is configured.
    """
    if choice == "scripted":
        async with offline_llm(agents) as llm:
            yield llm
        return
    if choice == "openai":
        from ..llm import OpenAICompatibleLLM  # the SDK is slow to import: only now

        openai_llm = (
            OpenAICompatibleLLM(default_model=default_model)
            if default_model
            else OpenAICompatibleLLM()
        )
        async with openai_llm:
            yield openai_llm
        return
    from ..llm import DEFAULT_MODEL, AnthropicLLM

    async with AnthropicLLM(
        default_model=default_model or DEFAULT_MODEL, prompt_caching=prompt_caching
    ) as anthropic_llm:
        if not anthropic_llm.has_credentials:
            # NOTE: every call would fail with an authentication error; say so before
            # anything runs (exit 2), naming what to set.
            raise UsageProblem(
                "the anthropic backend has no credentials: set ANTHROPIC_API_KEY (or "
                "ANTHROPIC_AUTH_TOKEN), or run offline with --llm scripted"
            )
        yield anthropic_llm


def backends_for(choice: LLMChoice, llm: LLM) -> dict[str, LLM]:
    """The per-provider backends of a run: offline, every ``provider:model`` agent
    talks to the scripted model too (never to the network); otherwise the chosen
    backend serves its own provider and the other is created from its environment."""
    if choice == "scripted":
        return {"anthropic": llm, "openai": llm}
    return {choice: llm}


@attrs.define
class Outcome(Generic[T]):
    """What :func:`interruptible` ran to: its value, or the error it raised, or neither
    when Ctrl-C stopped it (``interrupted``)."""

    value: T | None = None
    error: Exception | None = None
    interrupted: bool = False


async def interruptible(work: Callable[[], Awaitable[T]]) -> Outcome[T]:
    """Run ``work`` until it returns, raises, or Ctrl-C (SIGINT) arrives.

    On Ctrl-C ``work`` is cancelled, so everything it opened (processes, connections,
    MCP servers) is shut down by its own ``async with`` blocks before this returns; only
    the first Ctrl-C is taken: a second one while that shutdown runs is Python's usual
    :class:`KeyboardInterrupt`, which cuts that shutdown short (the command exits 130).
    Outside the main thread (signals cannot be received there) ``work`` simply runs.

    Returns:
        The :class:`Outcome`; an :class:`Exception` of ``work`` is returned, not raised
        (``trio.Cancelled`` and other base exceptions propagate).
    """
    outcome: Outcome[T] = Outcome()
    scope = trio.CancelScope()

    async def run_work() -> None:
        with scope:
            try:
                outcome.value = await work()
            except Exception as exc:  # the caller reports it; see the docstring
                outcome.error = exc

    if threading.current_thread() is not threading.main_thread():
        await run_work()
        return outcome

    async def watch(  # noqa: ASYNC114 - started right here, never from a context manager
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            task_status.started()
            async for _ in signals:
                outcome.interrupted = True
                scope.cancel()
                return  # leaving the receiver restores the default Ctrl-C handling

    async with trio.open_nursery() as nursery:
        await nursery.start(watch)
        await run_work()
        nursery.cancel_scope.cancel()
    if not scope.cancelled_caught:
        outcome.interrupted = False  # the signal came after the work had ended
    return outcome


def parse_inputs(tasks: Sequence[str], input_file: Path | None) -> dict[str, Any]:
    """The variables given on the command line.

    ``--input FILE`` is a JSON object; each ``--task "k=v"`` then sets variable ``k``
    to the text ``v`` (so ``--task`` wins over the file). A ``--task`` whose text
    before the first ``=`` is not a variable name (or that has no ``=``) sets the
    variable ``task`` to the whole text: ``--task "Write a binary search"``.

    Raises:
        UsageProblem: the file cannot be read (missing, not a regular file, over the
            size cap of :func:`~vega_trio._files.read_bounded_text`) or is not a JSON
            object, or two ``--task`` set the same variable.
    """
    variables: dict[str, Any] = {}
    if input_file is not None:
        try:
            text = read_bounded_text(input_file, what="--input file")
        except InputFileError as exc:  # not a regular file, over the size cap, ...
            raise UsageProblem(str(exc)) from exc
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise UsageProblem(
                f"--input {input_file}: not valid JSON ({exc}); write an object like "
                '{"topic": "Go concurrency"}'
            ) from exc
        if not isinstance(loaded, dict):
            raise UsageProblem(
                f"--input {input_file}: expected a JSON object of variables, got "
                f"{type(loaded).__name__}; write an object like "
                '{"topic": "Go concurrency"}'
            )
        variables.update(loaded)
    given: dict[str, str] = {}
    for task in tasks:
        key, sep, value = task.partition("=")
        if not sep or not _KEY.fullmatch(key.strip()):
            key, value = "task", task
        key = key.strip()
        if key in given:
            raise UsageProblem(
                f"--task sets {key!r} twice ({given[key]!r} and {task!r}); give each variable once"
            )
        given[key] = task
        variables[key] = value
    return variables


def did_you_mean(name: str, choices: Sequence[str], *, prefix: str = "; ", suffix: str = "") -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"{prefix}did you mean {close[0]!r}?{suffix}" if close else ""


def one_line_cause(error: BaseException) -> str:
    """The cause of a failure on one line: the class name and the first line of the
    message (plus its ``hint`` when the error carries one). Exception groups are
    unwrapped to their first leaf."""
    from .._errors import VegaError

    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[0] if lines else "(no message)"
    # A workflow error wraps the step's error (a template error carries a hint).
    hint = getattr(error, "hint", "") or getattr(getattr(error, "cause", None), "hint", "")
    if isinstance(hint, str) and hint.strip() and hint.strip() not in message:
        message += f" ({' '.join(hint.split())})"
    # vega-trio's own errors say what happened; others need their class to make sense.
    return message if isinstance(error, VegaError) else f"{type(error).__name__}: {message}"


def describe_failure(error: BaseException) -> str:
    """The whole message of a failure, its lines kept (a template error's caret diagram
    stays under the column it points at): the first line says what failed, the others
    show where and what to do. Exception groups are unwrapped to their first leaf; a
    ``hint`` the message does not already carry is added as a last line."""
    from .._errors import VegaError

    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    lines = [line.rstrip() for line in str(error).splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        lines = ["(no message)"]
    hint = getattr(error, "hint", "") or getattr(getattr(error, "cause", None), "hint", "")
    message = "\n".join(lines)
    if isinstance(hint, str) and hint.strip() and hint.strip() not in message:
        lines.append(hint.strip())
    if not isinstance(error, VegaError):
        lines[0] = f"{type(error).__name__}: {lines[0]}"
    return "\n".join(lines)


def misread_task_hint(error: BaseException, tasks: Sequence[str], flag: str = "--task") -> str:
    """A hint for a run that failed on an undefined variable which a ``--task`` given as
    ``name:value`` (or ``name value``) looks meant for: such a ``--task`` has no ``=`` and
    so set the variable ``task``. ``""`` when no ``--task`` fits.

    Args:
        error: why the run failed.
        tasks: the ``--task`` values (or the repl's ``/run`` assignments).
        flag: how the hint writes one (``--task``, or ``/run report`` in the repl).
    """
    from ..dsl._errors import TemplateError

    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    cause: BaseException | None = error
    for _ in range(10):  # a workflow error wraps its step's error, a sub-workflow's too
        if cause is None or isinstance(cause, TemplateError):
            break
        cause = getattr(cause, "cause", None) or cause.__cause__
    variable = cause.variable if isinstance(cause, TemplateError) else None
    if not variable:
        return ""
    name = variable.split(".")[0]
    for task in tasks:
        match = _MISREAD_TASK.fullmatch(task.strip())
        if match and match.group(1) == name:
            return (
                f"hint: {flag} {shlex_quote(task)} set the variable 'task', not {name!r} "
                f"(only K=V sets a variable K); write {flag} "
                f"{shlex_quote(f'{name}={match.group(2)}')}"
            )
    return ""


def shlex_quote(text: str) -> str:
    """``text`` quoted for a shell command line shown in a message (always in double
    quotes when it has anything but letters, digits and ``=_-.``)."""
    if re.fullmatch(r"[A-Za-z0-9_=.\-]+", text):
        return f'"{text}"'
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SYMBOLS: Final = {
    "start": "▶",
    "ok": "✓",
    "fail": "✗",
    "dot": "·",
    "retry": "↻",
    "warn": "!",
    "arrow": "→",
}
_ASCII: Final = {
    "start": ">",
    "ok": "+",
    "fail": "x",
    "dot": "-",
    "retry": "~",
    "warn": "!",
    "arrow": "->",
}


def symbols(stream: TextIO) -> Mapping[str, str]:
    """The progress marks, in ASCII when ``stream`` cannot encode ``▶ ✓ ✗``."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "".join(_SYMBOLS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return _ASCII
    return _SYMBOLS


def write(stream: TextIO, text: str) -> None:
    """Write ``text`` and a newline, and flush (progress must show while it happens).

    Every line the CLI prints goes through here (or :func:`write_chunk`), so every one is
    redacted (:func:`vega_trio._redact.redact`): a key that ended up in an error, a
    reply or a variable is never printed.
    """
    stream.write(redact(text) + "\n")
    stream.flush()


def write_chunk(stream: TextIO, text: str) -> None:
    """Write a piece of a streamed reply as it comes (no newline), redacted.

    NOTE: each chunk is redacted on its own; a secret split across two chunks is caught by
    the ``sk-``/env patterns only when whole, which is why replies that are printed whole
    (``run``) go through :func:`write` instead.
    """
    stream.write(redact(text))
    stream.flush()


def safe_streams() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` write what their encoding cannot hold as
    ``\\uXXXX`` escapes instead of raising :class:`UnicodeEncodeError` (``LANG=C``,
    ``PYTHONIOENCODING=ascii``): a result is never lost to a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, io.UnsupportedOperation):  # closed or detached: leave it
                pass
