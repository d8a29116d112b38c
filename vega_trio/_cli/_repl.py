"""``vega-trio repl``: talk to a document's agents and run its workflows, line by line
from stdin (a terminal or a pipe).

The command itself (:func:`run_repl`) keeps the terminal in the main thread and runs
the session (:func:`repl_command`, Trio) in a second thread: ``input()`` with
``readline`` line editing and history, and Python's own Ctrl-C handling, need the main
thread. Ctrl-C while a reply streams (or a ``/run`` runs) cancels it and the prompt
comes back; Ctrl-C at the prompt discards the line being typed; Ctrl-D (the end of
input) or ``/quit`` leaves.
"""

from __future__ import annotations

import queue
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import attrs
import trio

from ._common import (
    EXIT_FAILED,
    OFFLINE_NOTICE,
    UsageProblem,
    choose_llm,
    describe_failure,
    did_you_mean,
    misread_task_hint,
    open_document_runner,
    parse_inputs,
    write,
    write_chunk,
)
from ._env import vega_home
from ._run import (
    EXIT_INVALID,
    EXIT_OK,
    _as_text,
    _Progress,
    _run_with_progress,
    interrupted_message,
    load_document,
)

if TYPE_CHECKING:
    from ..dsl._interpreter import Runner
    from ..dsl._model import Document

__all__ = ["HELP", "HISTORY_LENGTH", "ReplControl", "history_file", "repl_command", "run_repl"]

#: At most this many lines are kept in the history file.
HISTORY_LENGTH: Final = 1000

HELP: Final = """\
commands:
  /ask AGENT              talk to AGENT: the lines you type next are sent to it
  /agents                 list the agents (* marks the current one)
  /workflows              list the workflows and their inputs
  /run WORKFLOW [k=v ...] run a workflow (values with spaces in quotes: topic="Go channels")
  /end                    end the conversation with the current agent (it forgets it)
  /help                   this help
  /quit                   leave (end of input, Ctrl-D, does too)
any other line is sent to the current agent; its reply is streamed back
Ctrl-C cancels the reply (or /run) in progress; at the prompt it discards the line"""


@attrs.define
class ReplControl:
    """How another thread reaches a running :func:`repl_command`: the session's Trio
    token (to call in) and :meth:`interrupt` (what Ctrl-C does)."""

    token: trio.lowlevel.TrioToken | None = None
    #: The prompt for the next line (``writer> ``: the current agent).
    prompt: str = "> "
    _scope: trio.CancelScope | None = None

    def interrupt(self) -> bool:
        """Cancel the reply or run in progress (call it in the session's thread, e.g.
        with ``trio.from_thread.run_sync``); ``False`` when nothing was in progress."""
        if self._scope is None:
            return False
        self._scope.cancel()
        return True


class _Session:
    def __init__(self, document: Document, runner: Runner, out: TextIO, err: TextIO) -> None:
        self.document = document
        self.runner = runner
        #: The orchestrator's agent registry: what /agents lists and /ask accepts.
        self.agents = runner.orchestrator.agents
        self.out = out
        self.err = err
        names = self.names()
        self.agent: str | None = names[0] if len(names) == 1 else None
        #: The workflow ``/run`` is running and its progress (for what Ctrl-C stopped).
        self.running: tuple[str, _Progress] | None = None

    def interrupted(self) -> None:
        """Say what Ctrl-C cancelled."""
        if self.running is not None:
            name, progress = self.running
            self.running = None
            self.problem(f"interrupted: {interrupted_message(name, progress)}")
        else:
            write(self.out, "")
            self.problem(
                f"interrupted: {self.agent}'s reply was cancelled (Ctrl-C); Ctrl-D or /quit leaves"
            )

    def problem(self, message: str) -> None:
        write(self.err, f"vega-trio: {message}")

    def names(self) -> list[str]:
        """The defined agents' names."""
        return [definition.name for definition in self.agents.list()]

    async def handle(self, line: str) -> bool:
        """Act on one line; ``False`` means: leave."""
        text = line.strip()
        if not text:
            return True
        if not text.startswith("/"):
            await self.say(text)
            return True
        command, _, rest = text.partition(" ")
        rest = rest.strip()
        if command in ("/quit", "/exit"):
            return False
        if command == "/help":
            write(self.out, HELP)
        elif command == "/agents":
            self.list_agents()
        elif command == "/workflows":
            self.list_workflows()
        elif command == "/ask":
            self.ask(rest)
        elif command == "/end":
            await self.end()
        elif command == "/run":
            await self.run(rest)
        else:
            known = ["/ask", "/agents", "/workflows", "/run", "/end", "/help", "/quit"]
            self.problem(
                f"unknown command {command!r}{did_you_mean(command, known)}; type /help "
                "for the list"
            )
        return True

    def list_agents(self) -> None:
        default_model = self.runner.orchestrator.config.default_model
        for definition in self.agents.list():
            agent = definition.agent
            mark = "*" if agent.name == self.agent else " "
            about_text = agent.description or _first_line(agent.system)
            write(
                self.out,
                f"{mark} {agent.name} ({agent.model or default_model})"
                + (f": {about_text}" if about_text else ""),
            )

    def list_workflows(self) -> None:
        if not self.document.workflows:
            write(self.out, "(no workflows)")
        for workflow in self.document.workflows:
            inputs = " ".join(
                f"{i.name}=" + ("..." if i.default is None else repr(i.default))
                for i in workflow.inputs
            )
            write(
                self.out,
                f"  {workflow.name}"
                + (f" {inputs}" if inputs else "")
                + (f"  - {workflow.description}" if workflow.description else ""),
            )

    def ask(self, name: str) -> None:
        names = self.names()
        if not name:
            self.problem(f"/ask needs an agent name; agents: {', '.join(names)}")
        elif name not in names:
            self.problem(
                f"no agent {name!r}{did_you_mean(name, names)}; agents: {', '.join(names)}"
            )
        else:
            self.agent = name
            write(self.out, f"(talking to {name}; /end forgets the conversation)")

    async def say(self, message: str) -> None:
        if self.agent is None:
            names = ", ".join(self.names())
            self.problem(f"no agent selected; choose one with /ask AGENT (agents: {names})")
            return
        try:
            async with self.runner.ask_stream(self.agent, message) as chunks:
                async for chunk in chunks:
                    write_chunk(self.out, chunk)
        except Exception as exc:  # a failed reply ends this turn, not the session
            write(self.out, "")
            self.problem(f"{self.agent} failed: {describe_failure(exc)}")
            return
        write(self.out, "")

    async def end(self) -> None:
        if self.agent is None:
            self.problem("no conversation to end; /ask AGENT starts one")
            return
        await self.runner.end(self.agent)
        write(self.out, f"(conversation with {self.agent} ended)")

    async def run(self, rest: str) -> None:
        try:
            words = shlex.split(rest)
        except ValueError as exc:
            self.problem(f'/run: {exc}; quote values like topic="Go channels"')
            return
        names = [w.name for w in self.document.workflows]
        if not words:
            self.problem(f"/run needs a workflow name; workflows: {', '.join(names) or 'none'}")
            return
        name, assignments = words[0], words[1:]
        if name not in names:
            self.problem(
                f"no workflow {name!r}{did_you_mean(name, names)}; workflows: "
                f"{', '.join(names) or 'none'}"
            )
            return
        try:
            variables = parse_inputs(assignments, None)
        except UsageProblem as exc:
            self.problem(str(exc).replace("--task", "/run"))
            return
        progress = _Progress(self.err)
        self.running = (name, progress)
        try:
            result = await _run_with_progress(
                self.runner, name, variables, progress, quiet=False, runtime_events=False
            )
        except Exception as exc:  # a failed run is reported; the session goes on
            self.running = None
            message = f"workflow {name!r} failed: {describe_failure(exc)}"
            hint = misread_task_hint(exc, assignments, flag=f"/run {name}")
            self.problem(message + (f"\n{hint}" if hint else ""))
            return
        # NOTE: when Ctrl-C cancels the run, self.running stays for interrupted().
        self.running = None
        write(self.out, _as_text(result.output))


async def repl_command(
    file: Path,
    *,
    llm: str | None = None,
    env: Mapping[str, str] | None = None,
    read_line: Callable[[], Awaitable[str]] | None = None,
    interactive: bool | None = None,
    control: ReplControl | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    log_level: str | None = None,
) -> int:
    """Read commands and messages until ``/quit`` or the end of input: what
    ``vega-trio repl`` does (see :data:`HELP`).

    Args:
        file: the document.
        llm: ``--llm`` (``anthropic`` or ``scripted``); ``None`` chooses as ``run`` does.
        env: the environment for that choice (default ``os.environ``).
        read_line: returns the next line, ``""`` at the end of input (default: stdin,
            read in a worker thread so the event loop keeps running).
        interactive: show a prompt; default: when stdin is a terminal.
        control: set up so that another thread can interrupt the line being handled
            (:func:`run_repl` does, for Ctrl-C).
        out: replies and listings (default ``sys.stdout``).
        err: progress, notices and problems (default ``sys.stderr``).
        log_level: ``--log-level``; wins over the document's ``settings.logging.level``
            (the CLI shows the records, see :func:`~vega_trio._cli._logging.cli_logging`).

    Returns:
        The exit status: 0, or 2 when the file is invalid, ``--llm`` is unknown or the
        chosen backend has no credentials.
    """

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if read_line is None:
        stdin: Any = trio.wrap_file(sys.stdin)
        read_line = stdin.readline
        if interactive is None:
            interactive = sys.stdin.isatty()
    try:
        choice, defaulted = choose_llm(llm, env)
    except UsageProblem as exc:
        write(err, f"vega-trio: error: {exc}")
        return EXIT_INVALID
    document = await load_document(file, err)
    if document is None:
        return EXIT_INVALID
    if defaulted:
        write(err, OFFLINE_NOTICE)
    control = ReplControl() if control is None else control
    control.token = trio.lowlevel.current_trio_token()
    try:
        async with open_document_runner(document, file, choice, log_level=log_level) as runner:
            session = _Session(document, runner, out, err)
            names = ", ".join(session.names())
            write(err, f"vega-trio repl: {file} (agents: {names}); /help lists the commands")
            while True:
                control.prompt = f"{session.agent or ''}> "
                if interactive:
                    out.write(control.prompt)
                    out.flush()
                line = await read_line()
                if not line:  # end of input
                    break
                with trio.CancelScope() as scope:
                    control._scope = scope
                    try:
                        keep_going = await session.handle(line)
                    finally:
                        control._scope = None
                if scope.cancelled_caught:
                    session.interrupted()
                    keep_going = True
                if not keep_going:
                    break
    except UsageProblem as exc:  # the chosen backend cannot be used (no key)
        write(err, f"vega-trio: error: {exc}")
        return EXIT_INVALID
    return EXIT_OK


def history_file(env: Mapping[str, str] | None = None) -> Path:
    """Where the repl keeps its history: ``$VEGA_HOME/repl_history``, else
    ``~/.vega/repl_history``."""
    return vega_home(env) / "repl_history"


def _setup_readline() -> Callable[[], None]:
    """Line editing and history on a terminal, where ``readline`` exists; returns what
    saves the history at the end. Nothing here may end the repl: without ``readline``,
    or with a history file that cannot be read or written, lines are still read."""
    try:
        import readline
    except ImportError:  # not every Python has it (Windows, some minimal builds)
        return lambda: None
    path = history_file()
    readline.set_history_length(HISTORY_LENGTH)
    try:
        readline.read_history_file(path)
    except OSError:  # the first session, or an unreadable file: start empty
        pass

    def save() -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            readline.write_history_file(path)
        except OSError:  # a read-only home: the session worked, only its history is lost
            pass

    return save


_END: Final = object()


def run_repl(
    file: Path,
    *,
    llm: str | None = None,
    command: Callable[..., Awaitable[int]] | None = None,
) -> int:
    """``vega-trio repl``: the session in a Trio thread, the terminal in this (main)
    thread.

    The session asks for each line through a queue; this thread reads it (``input()``,
    with ``readline`` on a terminal) and hands it back. Ctrl-C while the session works
    on a line cancels that work through :class:`ReplControl`; Ctrl-C while a line is
    being typed discards it and prompts again.

    Args:
        file: the document.
        llm: ``--llm``.
        command: the session (default :func:`repl_command`).

    Returns:
        The exit status of :func:`repl_command`.
    """
    command = repl_command if command is None else command
    interactive = sys.stdin.isatty()
    save_history = _setup_readline() if interactive else (lambda: None)
    asks: queue.SimpleQueue[object] = queue.SimpleQueue()
    control = ReplControl()
    result: list[int] = []
    failure: list[Exception] = []

    async def read_line() -> str:
        # NOTE: the prompt is shown by input(); this thread only asks and waits.
        answer: trio.MemoryReceiveChannel[str]
        send, answer = trio.open_memory_channel[str](1)
        asks.put(send)
        async with answer:
            return await answer.receive()

    async def session() -> int:
        return await command(file, llm=llm, read_line=read_line, interactive=False, control=control)

    def in_thread() -> None:
        try:
            result.append(trio.run(session))
        except Exception as exc:  # handed to the main thread, which re-raises it
            failure.append(exc)
        finally:
            asks.put(_END)

    worker = threading.Thread(target=in_thread, name="vega-trio repl", daemon=True)
    worker.start()
    try:
        while True:
            try:
                request = asks.get()
            except KeyboardInterrupt:
                if control.token is None:
                    raise  # still starting: leave (exit 130)
                try:
                    trio.from_thread.run_sync(control.interrupt, trio_token=control.token)
                except trio.RunFinishedError:
                    pass
                continue
            if request is _END:
                break
            assert isinstance(request, trio.MemorySendChannel)
            line = _read_one(control, interactive)
            try:
                trio.from_thread.run_sync(request.send_nowait, line, trio_token=control.token)
            except trio.RunFinishedError:
                break
    finally:
        save_history()
    worker.join()
    if failure:
        raise failure[0]
    return result[0] if result else EXIT_FAILED


def _read_one(control: ReplControl, interactive: bool) -> str:
    """The next line (``""`` at the end of input); Ctrl-C discards what was typed and
    asks again."""
    while True:
        try:
            if not interactive:
                return sys.stdin.readline()
            try:
                return input(control.prompt) + "\n"
            except EOFError:  # Ctrl-D
                sys.stdout.write("\n")
                return ""
        except KeyboardInterrupt:
            if interactive:  # end the line the ^C was typed on; a pipe's output stays clean
                sys.stdout.write("\n")
                sys.stdout.flush()


def _first_line(system: object) -> str:
    """The first line of a static system prompt (``base`` of a skills prompt); a
    prompt made by a function has none to show."""
    text = getattr(system, "base", system)
    if not isinstance(text, str):
        return ""
    return (text.strip().splitlines() or [""])[0]
