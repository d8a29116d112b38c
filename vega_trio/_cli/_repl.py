"""``vega-trio repl``: talk to a document's agents and run its workflows, line by line
from stdin (a terminal or a pipe)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import trio

from ._common import (
    OFFLINE_NOTICE,
    UsageProblem,
    backends_for,
    choose_llm,
    did_you_mean,
    one_line_cause,
    open_llm,
    parse_inputs,
    write,
)
from ._run import EXIT_INVALID, EXIT_OK, _as_text, _Progress, load_document

if TYPE_CHECKING:
    from ..dsl._interpreter import Runner
    from ..dsl._model import Document

__all__ = ["HELP", "repl_command"]

HELP: Final = """\
commands:
  /ask AGENT              talk to AGENT: the lines you type next are sent to it
  /agents                 list the agents (* marks the current one)
  /workflows              list the workflows and their inputs
  /run WORKFLOW [k=v ...] run a workflow (values with spaces in quotes: topic="Go channels")
  /end                    end the conversation with the current agent (it forgets it)
  /help                   this help
  /quit                   leave (end of input does too)
any other line is sent to the current agent; its reply is streamed back"""


class _Session:
    def __init__(self, document: Document, runner: Runner, out: TextIO, err: TextIO) -> None:
        self.document = document
        self.runner = runner
        self.out = out
        self.err = err
        names = [agent.name for agent in document.agents]
        self.agent: str | None = names[0] if len(names) == 1 else None

    def problem(self, message: str) -> None:
        write(self.err, f"vega-trio: {message}")

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
        default_model = self.document.settings.default_model or "default"
        for agent in self.document.agents:
            mark = "*" if agent.name == self.agent else " "
            about_text = agent.description or (agent.system.strip().splitlines() or [""])[0]
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
        names = [agent.name for agent in self.document.agents]
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
            names = ", ".join(agent.name for agent in self.document.agents)
            self.problem(f"no agent selected; choose one with /ask AGENT (agents: {names})")
            return
        try:
            async with self.runner.ask_stream(self.agent, message) as chunks:
                async for chunk in chunks:
                    self.out.write(chunk)
                    self.out.flush()
        except Exception as exc:  # a failed reply ends this turn, not the session
            write(self.out, "")
            self.problem(f"{self.agent} failed: {one_line_cause(exc)}")
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
        try:
            result = await self.runner.run(name, variables, on_progress=_Progress(self.err))
        except Exception as exc:  # a failed run is reported; the session goes on
            self.problem(f"workflow {name!r} failed: {one_line_cause(exc)}")
            return
        write(self.out, _as_text(result.output))


async def repl_command(
    file: Path,
    *,
    llm: str | None = None,
    env: Mapping[str, str] | None = None,
    read_line: Callable[[], Awaitable[str]] | None = None,
    interactive: bool | None = None,
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
        out: replies and listings (default ``sys.stdout``).
        err: progress, notices and problems (default ``sys.stderr``).
        log_level: ``--log-level``; wins over the document's ``settings.logging.level``
            (the CLI shows the records, see :func:`~vega_trio._cli._logging.cli_logging`).

    Returns:
        The exit status: 0, or 2 when the file is invalid or ``--llm`` is unknown.
    """
    from ..dsl._interpreter import open_runner

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
    agents = [(agent.name, agent.system) for agent in document.agents]
    base_dir = Path(await trio.Path(file).resolve()).parent
    async with (
        open_llm(choice, agents, document.settings.default_model) as model,
        open_runner(
            document,
            base_dir=base_dir,
            llm=model,
            log_level=log_level,
            backends=backends_for(choice, model),
        ) as runner,
    ):
        session = _Session(document, runner, out, err)
        names = ", ".join(agent.name for agent in document.agents)
        write(err, f"vega-trio repl: {file} (agents: {names}); /help lists the commands")
        while True:
            if interactive:
                out.write(f"{session.agent or ''}> ")
                out.flush()
            line = await read_line()
            if not line:  # end of input
                break
            if not await session.handle(line):
                break
    return EXIT_OK
