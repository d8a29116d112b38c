"""The ``vega-trio`` command line.

Click commands stay thin: they parse arguments and hand over to async functions in
:mod:`vega_trio._cli` (``trio.run`` at the edge only), so tests can call those functions
directly.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import click
import trio

from ._cli._common import EXIT_INTERRUPTED, LLM_CHOICES, safe_streams, write
from ._cli._env import load_env_file
from ._cli._logging import LOG_FORMATS, LOG_LEVELS, LogFormat, cli_logging, level_from_flags
from ._version import __version__

__all__ = ["main"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
_LLM_HELP = (
    "Model backend: 'anthropic' (Claude; reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL), "
    "'openai' (any OpenAI-compatible server; reads OPENAI_API_KEY and OPENAI_BASE_URL) or "
    "'scripted' (offline, deterministic replies). Default: $VEGA_LLM, else 'anthropic' when "
    "an ANTHROPIC_* variable is set, else 'openai' when an OPENAI_* variable is set, else "
    "'scripted' (with a notice)."
)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--timeout``: seconds as a number or a duration (``90``, ``30s``, ``5m``, ``1h30m``)."""
    from .dsl import DurationError, parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if seconds <= 0:
        raise click.BadParameter(
            f"{value!r} is not a positive duration; write e.g. 90, 30s or 5m", ctx, param
        )
    return seconds


_F = TypeVar("_F", bound=Callable[..., Any])


def _logging_options(*, verbose: bool = True) -> Callable[[_F], _F]:
    """``--log-level``, ``-v/--verbose`` (counted) and ``--log-format``: on the group
    (before the command) and on each command (after it; those win)."""

    def decorate(function: _F) -> _F:
        function = click.option(
            "--log-format",
            type=click.Choice(LOG_FORMATS),
            default=None,
            help="Log records as text (LEVEL logger: message) or json (one object per line "
            "with time, level, logger, message and every field). Default: text.",
        )(function)
        if verbose:
            function = click.option(
                "-v",
                "--verbose",
                "verbosity",
                count=True,
                help="Show more log records: -v info, -vv debug.",
            )(function)
        return click.option(
            "--log-level",
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            default=None,
            help="Show log records from this level up (wins over -v and the file's "
            "settings.logging.level). Default: warning.",
        )(function)

    return decorate


def _log_flags(
    log_level: str | None, verbosity: int, log_format: str | None
) -> tuple[str | None, LogFormat]:
    """The level and format asked for: the command's own flags, else the group's."""
    group = click.get_current_context().find_root().params
    level = level_from_flags(log_level, verbosity) or level_from_flags(
        group.get("log_level"), group.get("verbosity") or 0
    )
    chosen = log_format or group.get("log_format") or "text"
    return level, "json" if chosen == "json" else "text"


def _run_async(command: str, function: Callable[[], Awaitable[int]]) -> None:
    """``trio.run`` a command's async half and exit with its status.

    A Ctrl-C the command does not handle itself (while a file loads, or a second Ctrl-C
    while a run shuts down) exits 130 with a line saying so, not click's ``Aborted!``.
    """
    try:
        status = trio.run(function)
    except KeyboardInterrupt:
        write(sys.stderr, f"vega-trio: interrupted: {command} was stopped (Ctrl-C)")
        raise SystemExit(EXIT_INTERRUPTED) from None
    raise SystemExit(status)


class _Main(click.Group):
    """The command group; output that the terminal's encoding cannot hold is escaped
    (``\\u2713``) rather than ending the command with a ``UnicodeEncodeError``."""

    def main(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        safe_streams()
        # SPEC §9: $VEGA_HOME/env (default ~/.vega/env) is loaded before anything reads
        # the environment; variables already set win, problems are warnings.
        load_env_file(warn=lambda message: write(sys.stderr, f"vega-trio: warning: {message}"))
        return super().main(*args, **kwargs)  # type: ignore[call-overload]


@click.group(cls=_Main, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="vega-trio")
@_logging_options()
def main(log_level: str | None, verbosity: int, log_format: str | None) -> None:
    """vega-trio: fault-tolerant AI agent orchestration on Trio.

    Agents run as supervised processes (Erlang/OTP style). Describe agents and workflows
    in a `.vega.yaml` file, check it with `validate`, run a workflow with `run`, or talk
    to the agents with `repl`. From Python, see the README's quick start.

    Log records go to stderr from warning up (--log-level, -v, -vv; or the file's
    settings.logging.level); --log-format json prints one JSON object per record.
    """


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=_FILE)
@click.option("-w", "--workflow", metavar="NAME", help="Workflow to run (default: the only one).")
@click.option(
    "-t",
    "--task",
    "tasks",
    multiple=True,
    metavar="K=V",
    help="Set variable K to V (repeatable). Text without K= sets the variable 'task'.",
)
@click.option(
    "-i",
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE.json",
    help="A JSON object of variables; --task values win over it.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Print the result as text, or as JSON {output, variables, cost_usd, tokens, steps_run}.",
)
@click.option(
    "--timeout",
    callback=_duration,
    metavar="DURATION",
    help="Fail the run after this long (90, 30s, 5m, 1h30m). Default: no limit.",
)
@click.option("--llm", type=click.Choice(list(LLM_CHOICES)), help=_LLM_HELP)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress lines on stderr (errors and log records still print).",
)
@click.option(
    "--db",
    metavar="PATH",
    help="Record the run and a checkpoint per completed step in this store (a SQLite "
    "file, or postgresql://...), so it can be resumed; its run id is printed.",
)
@click.option(
    "--resume",
    metavar="RUN_ID",
    help="Resume the run RUN_ID recorded in --db from its last completed step "
    "(completed steps are not run again; its workflow and inputs are the recorded ones).",
)
@_logging_options()
def run(
    file: Path,
    workflow: str | None,
    tasks: tuple[str, ...],
    input_file: Path | None,
    output: str,
    timeout: float | None,
    llm: str | None,
    quiet: bool,
    db: str | None,
    resume: str | None,
    log_level: str | None,
    verbosity: int,
    log_format: str | None,
) -> None:
    """Run a workflow of FILE; progress on stderr, the result on stdout.

    \b
    Example:
      vega-trio run team.vega.yaml --workflow report --task "topic=Go concurrency"
      vega-trio run team.vega.yaml --db runs.db --task "topic=Go"   # resumable
      vega-trio run team.vega.yaml --db runs.db --resume report-1a2b3c4d5e6f

    Options may come before or after FILE. Exit status: 0 on success, 1 when the run
    fails, 2 when FILE is invalid or the options or inputs do not fit it (nothing ran),
    130 when Ctrl-C stopped it. With --output json a failure prints
    {"ok": false, "error", "error_class", "workflow", "step"} too.
    """
    from ._cli import run_command

    level, fmt = _log_flags(log_level, verbosity, log_format)
    _run_async(
        "vega-trio run",
        partial(
            run_command,
            file,
            workflow=workflow,
            tasks=tasks,
            input_file=input_file,
            output="json" if output == "json" else "text",
            time_limit=timeout,
            llm=llm,
            log_level=level,
            log_format=fmt,
            quiet=quiet,
            db=db,
            resume=resume,
        ),
    )


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=_FILE)
@click.option(
    "-v", "--verbose", is_flag=True, help="Also summarise the agents, tools and workflows."
)
@_logging_options(verbose=False)
def validate(file: Path, verbose: bool, log_level: str | None, log_format: str | None) -> None:
    """Check FILE and print every error and warning as file:line:col: severity: path: message.

    Exit status: 1 when there are errors, 0 otherwise (warnings included), 2 when FILE
    cannot be read as input (not a regular file, or over the size cap: 4 MiB unless
    VEGA_MAX_INPUT_BYTES says otherwise). Here -v is the summary; for more log records
    put -v before the command: vega-trio -v validate.
    """
    from ._cli import validate_command

    level, fmt = _log_flags(log_level, 0, log_format)
    with cli_logging(sys.stderr, level=level, log_format=fmt):
        _run_async("vega-trio validate", partial(validate_command, file, verbose=verbose))


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=_FILE)
@click.option("--llm", type=click.Choice(list(LLM_CHOICES)), help=_LLM_HELP)
@_logging_options()
def repl(
    file: Path, llm: str | None, log_level: str | None, verbosity: int, log_format: str | None
) -> None:
    """Talk to the agents of FILE and run its workflows, a line at a time.

    \b
    Commands (type /help inside):
      /ask AGENT   /agents   /workflows   /run WORKFLOW [k=v ...]   /end   /help   /quit
    Other lines go to the current agent; its reply is streamed. Ctrl-C cancels the
    reply (or /run) in progress, or discards the line being typed; Ctrl-D or /quit
    leaves. On a terminal lines can be edited, and history is kept in
    $VEGA_HOME/repl_history (default ~/.vega/repl_history). Reads stdin, so a pipe
    works too: printf '/ask helper\\nHi\\n' | vega-trio repl FILE
    """
    from ._cli import repl_command
    from ._cli._repl import run_repl

    level, fmt = _log_flags(log_level, verbosity, log_format)
    try:
        with cli_logging(sys.stderr, level=level, log_format=fmt):
            status = run_repl(file, llm=llm, command=partial(repl_command, log_level=level))
    except KeyboardInterrupt:
        write(sys.stderr, "vega-trio: interrupted: vega-trio repl was stopped (Ctrl-C)")
        raise SystemExit(EXIT_INTERRUPTED) from None
    raise SystemExit(status)


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=_FILE, required=False)
@click.option(
    "--addr",
    default="127.0.0.1:3001",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen (port 0: any free port; the URL printed has the real one).",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="Bearer token every /api request must send (Authorization: Bearer TOKEN); "
    "default $VEGA_TOKEN. Required for a non-loopback --addr.",
)
@click.option(
    "--db",
    default=".vega-serve.db",
    show_default=True,
    metavar="PATH|URL",
    help="The durable store: a SQLite file, or postgresql://... (events, processes, "
    "conversations, costs survive a restart; see docs/persistence.md).",
)
@click.option(
    "--no-db",
    is_flag=True,
    help="Keep nothing on disk: everything is lost when the server stops.",
)
@click.option(
    "--retention-days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Delete events, finished runs and processes, and costs older than DAYS from "
    "the store, at start and every hour (default: the file's "
    "settings.store.retention_days, else keep everything).",
)
@click.option("--llm", type=click.Choice(list(LLM_CHOICES)), help=_LLM_HELP)
@_logging_options()
def serve(
    file: Path | None,
    addr: str,
    token: str | None,
    db: str,
    no_db: bool,
    retention_days: float | None,
    llm: str | None,
    log_level: str | None,
    verbosity: int,
    log_format: str | None,
) -> None:
    """Serve FILE's agents (or a default `assistant`) over HTTP: REST and SSE.

    \b
    Listens on 127.0.0.1:3001 by default; see docs/serve.md for the routes, e.g.
      curl -N -X POST localhost:3001/api/agents/assistant/chat/stream \\
        -H 'Content-Type: application/json' -d '{"message": "Hello!"}'
    Ctrl-C (or SIGTERM) stops gracefully: streams end with a final event, agents
    shut down, exit 0; a second Ctrl-C forces the stop.
    """
    from ._cli._serve import serve_command

    level, fmt = _log_flags(log_level, verbosity, log_format)
    with cli_logging(sys.stderr, level=level, log_format=fmt):
        _run_async(
            "vega-trio serve",
            partial(
                serve_command,
                file,
                addr=addr,
                token=token,
                db=None if no_db else db,
                retention_days=retention_days,
                llm=llm,
                log_level=level,
            ),
        )


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--db",
    default=".vega-serve.db",
    show_default=True,
    metavar="PATH|URL",
    help="The store: a SQLite file (serve's default), sqlite:///PATH or postgresql://...",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask; delete at once.")
def reset(db: str, yes: bool) -> None:
    """Delete everything in a store: events, processes, conversations, runs, costs,
    composed agents and small state (the schema stays).

    \b
    Shows the rows per table and asks first (--yes: don't ask). Exit status: 0 when
    the store was emptied or had nothing to delete, 1 when you answered no, 2 when
    the store can't be opened (the message says why).
    """
    from ._cli._reset import reset_command

    _run_async("vega-trio reset", partial(reset_command, db, yes=yes))


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--anthropic-key",
    metavar="KEY",
    help="The Anthropic API key ('-': read it from stdin, which keeps it out of ps "
    "and the shell history). Asked for (hidden) when absent.",
)
@click.option(
    "--telegram-token",
    metavar="TOKEN",
    help="The Telegram bot token from @BotFather ('-': from stdin). Optional.",
)
@click.option(
    "--telegram-users",
    metavar="ID,...",
    help="Telegram user ids the bot serves (TELEGRAM_ALLOWED_USERS), comma-separated.",
)
@click.option(
    "--no-check",
    is_flag=True,
    help="Save the Anthropic key without checking it (no request is made).",
)
@click.option(
    "--no-input",
    is_flag=True,
    help="Ask nothing: write only what the options give (for scripts).",
)
def init(
    anthropic_key: str | None,
    telegram_token: str | None,
    telegram_users: str | None,
    no_check: bool,
    no_input: bool,
) -> None:
    """Save your Anthropic API key (and optionally a Telegram bot) to $VEGA_HOME/env
    (default ~/.vega/env), which every vega-trio command loads at start.

    Asks for each value (keys without echo; Enter keeps what the file has). A new
    Anthropic key is checked with a 1-token request first (--no-check: not): a refused
    key writes nothing; if the API cannot be reached you are asked whether to save it
    anyway. The file is written atomically with mode 0600 and keeps its other lines.
    Variables already set in the environment win over the file.

    \b
    In a script:
      printf '%s\\n' "$KEY" | vega-trio init --no-input --anthropic-key -
      vega-trio init --no-input --telegram-token - --telegram-users 123456789 < token.txt

    Exit status: 0 written (or nothing to change), 1 nothing written (the key could
    not be checked, or you said no), 2 a refused key or an invalid value, 130 Ctrl-C.
    """
    from ._cli._init import init_command

    try:
        status = init_command(
            anthropic_key=anthropic_key,
            telegram_token=telegram_token,
            telegram_users=telegram_users,
            check=not no_check,
            no_input=no_input,
        )
    except KeyboardInterrupt:
        write(
            sys.stderr,
            "vega-trio: interrupted: vega-trio init was stopped (Ctrl-C); nothing was written",
        )
        raise SystemExit(EXIT_INTERRUPTED) from None
    raise SystemExit(status)


@main.command("help", context_settings=CONTEXT_SETTINGS)
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show this help, or a command's (`vega-trio help run` is `vega-trio run --help`)."""
    parent = ctx.parent
    assert parent is not None  # a subcommand always has its group's context
    if command is None:
        click.echo(parent.get_help())
        return
    found = main.get_command(parent, command)
    if found is None:
        from ._cli._common import did_you_mean

        names = main.list_commands(parent)
        raise click.UsageError(
            f"there is no command {command!r}{did_you_mean(command, names)} "
            f"(commands: {', '.join(names)})",
            ctx,
        )
    with click.Context(found, info_name=command, parent=parent) as sub:
        click.echo(found.get_help(sub))


if __name__ == "__main__":  # pragma: no cover
    main()
