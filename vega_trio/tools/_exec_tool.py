"""Declarative exec tools: a command template the model fills in with its arguments.

Without a shell (the default) the command is split into arguments with :func:`shlex.split`
**before** any argument is substituted, and each placeholder fills (part of) one argument. A
value therefore never becomes more arguments or shell syntax: ``'; rm -rf /'``, ``$(...)``,
backticks, quotes and newlines reach the program as literal text of that one argument.

``shell=True`` runs the rendered command with ``/bin/sh -c`` and quotes every value with
:func:`shlex.quote`; placeholders are then refused inside quotes, comments, here-documents and
arithmetic, where a quoted value would not be one plain word.

Either way a placeholder is refused where its value would become code or choose what runs
(``sh -c '… {{x}} …'``, ``env timeout 5 python -c {{x}}``, ``eval {{x}}``, ``… | sh``): the
analysis of what will run lives in ``_exec_safety``. A value that starts with ``-`` where the
program reads options is refused when the tool is called, unless its parameter has
``allow_options``.

The command runs in its own session (so the whole process group can be killed on timeout or
cancellation, and a background child can't outlive the call), in ``cwd``, with a minimal
environment: a few locale/path variables of the parent and what ``env`` adds — never the
parent's API keys, tokens or other secrets. Running it is the job of
``_subprocess.run_process_group``, the runner ``run_command`` uses too.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from ._declarative_core import (
    ExecToolError,
    Placeholder,
    Template,
    Text,
    ToolDefinitionError,
    ToolParam,
    parse_template,
    text_of,
)
from ._exec_safety import check_argv, option_placeholders
from ._exec_script import check_script, script_option_placeholders
from ._registry import ToolHandler
from ._schema import ToolArgumentError
from ._subprocess import GroupCommand, ResourceLimits, run_process_group

__all__ = ["ExecImplementation", "minimal_environment"]

DEFAULT_EXEC_TIMEOUT: Final = 60.0
DEFAULT_MAX_OUTPUT_BYTES: Final = 256 * 1024

#: Variables passed on from the parent's environment (when set).
INHERITED_VARIABLES: Final = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SYSTEMROOT",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
)
_SECRET_NAME: Final = re.compile(
    r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY)", re.I
)
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def minimal_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment an exec tool's command gets: the parent's :data:`INHERITED_VARIABLES`
    that are set (never one whose name looks like a secret: ``*_API_KEY``, ``*_TOKEN``,
    ``*_SECRET``, ...), plus ``extra``."""
    env = {
        name: value
        for name in INHERITED_VARIABLES
        if (value := os.environ.get(name)) is not None and not _SECRET_NAME.search(name)
    }
    if extra:
        env.update(extra)
    return env


def _freeze_command(value: str | Sequence[str]) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    return tuple(value)


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "timeout":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ToolDefinitionError(
            f"implementation.{attribute.name} must be a positive number, got {value!r}",
            where=f"implementation.{attribute.name}",
        )


def _to_path(value: str | os.PathLike[str] | None) -> pathlib.Path | None:
    return None if value is None else pathlib.Path(value)


def _freeze_env(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return {} if value is None else dict(value)


@attrs.frozen(kw_only=True)
class ExecImplementation:
    """How a declarative exec tool runs its command (the ``implementation: {type: exec}`` of
    a YAML tool).

    Attributes:
        command: the command line, split with :func:`shlex.split` before placeholders are
            filled (or a list of argument templates, used as it is). The program (first word)
            can't be a placeholder.
        timeout: seconds the command may run before its whole process group is killed and
            the tool fails with :class:`~vega_trio.tools.ToolTimeout`; ``None`` for no limit.
        shell: run ``command`` with ``/bin/sh -c``, each value :func:`shlex.quote`-d. Only
            when you need pipes or redirections; off by default.
        cwd: the working (sandbox) directory; ``None`` for the current directory.
        max_output_bytes: the most of the command's output (stdout and stderr, interleaved)
            that is kept; the rest is read and dropped, and a marker says so.
        env: variables added to the minimal environment (see :func:`minimal_environment`);
            values are templates and may use ``${NAME}`` / ``${NAME:-default}`` to pass one of
            the parent's variables on explicitly.
        limits: the OS resource limits the command runs under — the same
            :class:`~vega_trio.tools.ResourceLimits` (and defaults) as ``run_command``: CPU
            time, memory, file size, open files, processes.

    Raises:
        ToolDefinitionError: an invalid timeout, size, limits or variable name.
    """

    command: str | tuple[str, ...] = attrs.field(converter=_freeze_command)
    timeout: float | None = attrs.field(default=DEFAULT_EXEC_TIMEOUT, validator=_check_positive)
    shell: bool = False
    cwd: pathlib.Path | None = attrs.field(default=None, converter=_to_path)
    max_output_bytes: int = attrs.field(default=DEFAULT_MAX_OUTPUT_BYTES, validator=_check_positive)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_env, hash=False)
    limits: ResourceLimits = attrs.field(factory=ResourceLimits)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.limits, ResourceLimits):
            raise ToolDefinitionError(
                f"implementation.limits must be a ResourceLimits, got {self.limits!r}",
                where="implementation.limits",
            )
        for name in self.env:
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                raise ToolDefinitionError(
                    f"environment variable name {name!r} is invalid; use letters, digits and "
                    "'_', not starting with a digit",
                    where="implementation.env",
                )
        if self.shell and not isinstance(self.command, str):
            raise ToolDefinitionError(
                "implementation.command must be one string when shell is true (it is given to "
                "/bin/sh -c as it is); pass a list only without a shell",
                where="implementation.command",
            )

    def bind(self, tool: str, params: Sequence[ToolParam]) -> ToolHandler:
        """Compile the command against ``params`` and return the tool's handler.

        Raises:
            ToolDefinitionError: a template is malformed or names an unknown parameter, the
                command can't be split, the program is a placeholder, or a placeholder sits
                where its value would become code (see the module docs).
        """
        return _CompiledCommand.build(self, tool, params).handle

    def unguarded_options(self, tool: str, params: Sequence[ToolParam]) -> tuple[str, ...]:
        """The parameters whose placeholder starts an argument where the program reads
        options (no literal ``--`` before it) and that don't have ``allow_options``: a value
        starting with ``-`` is refused for them when the tool is called
        (``vega-trio validate`` warns about them).

        Raises:
            ToolDefinitionError: the command is invalid (see :meth:`bind`).
        """
        return tuple(sorted(_CompiledCommand.build(self, tool, params).option_params))


_BRACES: Final = re.compile(r"\{\{.*?\}\}", re.S)


def _split(command: str, tool: str) -> list[str]:
    """``shlex.split`` that keeps each ``{{ ... }}`` (spaces inside included) in one word."""
    if "\0" in command:
        raise ToolDefinitionError(
            f"tool {tool!r}: implementation.command contains a NUL character",
            tool=tool,
            where="implementation.command",
        )
    # NOTE: each placeholder is swapped for a NUL-delimited token (NUL can't occur in a
    # command) so that "{{ .x }}" is not split at its spaces; the tokens are put back after.
    found: list[str] = []

    def stash(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return f"\0{len(found) - 1}\0"

    try:
        words = shlex.split(_BRACES.sub(stash, command))
    except ValueError as exc:
        raise ToolDefinitionError(
            f"tool {tool!r}: implementation.command {command!r} can't be split into arguments "
            f"({exc}); close every quote, or give the command as a list of arguments",
            tool=tool,
            where="implementation.command",
        ) from None
    return [re.sub(r"\0(\d+)\0", lambda m: found[int(m.group(1))], word) for word in words]


def _check_shell_template(template: Template, tool: str) -> None:
    """Refuse placeholders where a :func:`shlex.quote`-d value is not one plain word."""
    where = template.where
    quote: str | None = None  # "'" or '"' while inside quotes
    escaped = False
    comment = False
    word_start = True
    text_so_far = ""
    for part in template.parts:
        if isinstance(part, Placeholder):
            problem = None
            if quote is not None:
                problem = "inside quotes (the value is quoted for you: drop the quotes)"
            elif escaped:
                problem = "right after a backslash"
            elif comment:
                problem = "inside a comment"
            elif "<<" in text_so_far:
                problem = "in a command with a here-document"
            elif "((" in text_so_far or "[[" in text_so_far:
                problem = "in a command with arithmetic or [[ ]] tests"
            elif text_so_far.endswith("$"):
                problem = "right after '$'"
            if problem is not None:
                raise ToolDefinitionError(
                    f"tool {tool!r}: {where} has the placeholder {part.source!r} {problem}; "
                    "with shell: true each value is shell-quoted as one word, which is only "
                    "safe outside quotes, comments, here-documents and arithmetic. Move it, "
                    'pass the value in env and use "$NAME", or drop shell: true.',
                    tool=tool,
                    where=where,
                )
            word_start = False
            continue
        assert isinstance(part, Text)
        text_so_far += part.text
        for char in part.text:
            if comment:
                if char == "\n":
                    comment = False
                    word_start = True
                continue
            if escaped:
                escaped = False
                word_start = False
                continue
            if quote == "'":
                if char == "'":
                    quote = None
                continue
            if char == "\\":
                escaped = True
                continue
            if quote == '"':
                if char == '"':
                    quote = None
                continue
            if char in "'\"":
                quote = char
                word_start = False
            elif char == "#" and word_start:
                comment = True
            else:
                word_start = char in " \t\n;&|()<>"


def _option_params(
    placeholders: Sequence[Placeholder], params: Sequence[ToolParam]
) -> frozenset[str]:
    # NOTE: a boolean, or an enum none of whose values starts with "-", can't be an option.
    safe = {
        p.name
        for p in params
        if p.allow_options
        or p.type == "boolean"
        or (p.enum is not None and not any(text_of(v).startswith("-") for v in p.enum))
    }
    return frozenset(p.name for p in placeholders if p.name not in safe)


@attrs.frozen
class _CompiledCommand:
    tool: str
    spec: ExecImplementation
    argv: tuple[Template, ...]  # without a shell: one template per argument
    script: Template | None  # with shell=True: the command for /bin/sh -c
    env: tuple[tuple[str, Template], ...]
    # parameters whose value may not start with "-" (they fill an option position)
    option_params: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, spec: ExecImplementation, tool: str, params: Sequence[ToolParam]
    ) -> _CompiledCommand:
        env = tuple(
            (
                name,
                parse_template(
                    value,
                    where=f"implementation.env.{name}",
                    tool=tool,
                    params=params,
                    allow_env=True,
                ),
            )
            for name, value in spec.env.items()
        )
        if spec.shell:
            assert isinstance(spec.command, str)
            script = parse_template(
                spec.command, where="implementation.command", tool=tool, params=params
            )
            _check_shell_template(script, tool)
            check_script(script, tool)
            guarded = _option_params(script_option_placeholders(script), params)
            return cls(tool, spec, (), script, env, guarded)
        words = _split(spec.command, tool) if isinstance(spec.command, str) else spec.command
        if not words:
            raise ToolDefinitionError(
                f"tool {tool!r}: implementation.command is empty; give the program to run",
                tool=tool,
                where="implementation.command",
            )
        argv = [
            parse_template(word, where=f"implementation.command[{i}]", tool=tool, params=params)
            for i, word in enumerate(words)
        ]
        if argv[0].placeholders:
            raise ToolDefinitionError(
                f"tool {tool!r}: the program {words[0]!r} is a placeholder; the model must not "
                "choose which program runs. Name the program, and pass values as its arguments.",
                tool=tool,
                where="implementation.command[0]",
            )
        check_argv(argv, tool)
        guarded = _option_params(option_placeholders(argv), params)
        return cls(tool, spec, tuple(argv), None, env, guarded)

    def _check_value(self, template: Template, arguments: Mapping[str, Any]) -> None:
        for placeholder in template.placeholders:
            text = text_of(arguments.get(placeholder.name))
            if placeholder.name in self.option_params and text.startswith("-"):
                raise ToolArgumentError(
                    f"invalid arguments for tool {self.tool!r}: argument {placeholder.name!r} "
                    f"is {text[:80]!r}, which starts with '-' and goes where the program reads "
                    "options, so it would be taken as an option. Send a value that does not "
                    "start with '-'. (Tool authors: put a literal -- before the argument in "
                    "the command, or set allow_options: true on the parameter.)",
                    tool=self.tool,
                    argument=placeholder.name,
                )
            if "\0" in text:
                raise ToolArgumentError(
                    f"invalid arguments for tool {self.tool!r}: argument {placeholder.name!r} "
                    "contains a NUL character, which a command line can't carry",
                    tool=self.tool,
                    argument=placeholder.name,
                )

    def render(self, arguments: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The argv and environment for one call."""
        extra: dict[str, str] = {}
        for name, template in self.env:
            self._check_value(template, arguments)
            extra[name] = template.render(arguments, tool=self.tool)
        if self.script is not None:
            self._check_value(self.script, arguments)
            command = self.script.render(arguments, tool=self.tool, encode=shlex.quote)
            return ["/bin/sh", "-c", command], minimal_environment(extra)
        argv = []
        for template in self.argv:
            self._check_value(template, arguments)
            argv.append(template.render(arguments, tool=self.tool))
        return argv, minimal_environment(extra)

    async def handle(self, arguments: Mapping[str, Any]) -> str:
        """Run the command for one call and return its output.

        Raises:
            ExecToolError: the command could not start or exited with a non-zero status
                (the message has the status and the output).
        """
        spec = self.spec
        argv, env = self.render(arguments)
        cwd = spec.cwd
        if cwd is not None and not cwd.is_dir():
            raise ExecToolError(
                f"tool {self.tool!r}: the working directory {str(cwd)!r} does not exist or is "
                "not a directory; create it or fix implementation.cwd",
                tool=self.tool,
            )
        command = GroupCommand(
            argv=argv,
            env=env,
            cwd=cwd,
            # NOTE: the time limit is the tool's (the registry cancels the call, which kills
            # the group); here only the first max_output_bytes of the merged output are kept.
            keep_head=int(spec.max_output_bytes),
            merge_stderr=True,
            limits=spec.limits,
        )
        try:
            outcome = await run_process_group(command)
        except OSError as exc:
            raise ExecToolError(
                f"tool {self.tool!r}: could not run {argv[0]!r}: {exc.strerror or exc}. Check "
                "that the program is installed and on PATH (the tool sees only PATH and a few "
                "locale variables of the environment).",
                tool=self.tool,
            ) from exc
        returncode = outcome.exit_code
        text = outcome.stdout.head.decode("utf-8", errors="replace")
        if outcome.stdout.omitted:
            text += (
                f"\n[output truncated: the command wrote more than {spec.max_output_bytes} "
                "bytes; only the first ones are shown]"
            )
        if outcome.output_incomplete:
            text += (
                "\n[output may be incomplete: a background process that left the command's "
                "process group kept the output open]"
            )
        if returncode != 0:
            how = (
                f"was killed by signal {-returncode}"
                if returncode < 0
                else f"exited with status {returncode}"
            )
            raise ExecToolError(
                f"tool {self.tool!r}: the command {how}. Output:\n{text or '(none)'}",
                tool=self.tool,
                exit_code=returncode,
                output=text,
            )
        return text
