"""What an exec tool's command will run, and where a placeholder's value would become code.

An exec tool's command is a template; the model fills its placeholders. Splitting the command
into arguments *before* filling them in keeps a value from becoming more arguments, but a value
can still become code when the argument it fills is itself a program: the script after a
shell's ``-c``, the code after ``python -c`` or ``node -e``, an awk program, a command line a
wrapper hands to a shell. Whether that happens depends on **what runs**, not on the name of the
first word, so this module follows the command the way the OS will:

* **wrappers** run another program given as their arguments — ``env [-i] [NAME=value…]``,
  ``timeout [opts] DURATION``, ``nice [-n N]``, ``nohup``, ``stdbuf``, ``xargs``, ``sudo``,
  ``doas``, ``command``, ``exec``, ``builtin``, ``time``, ``setsid``, ``ionice``, ``chrt``,
  ``taskset``, ``chroot NEWROOT``, ``unshare``, ``nsenter``, ``flock FILE``, ``busybox APPLET``,
  ``find … -exec``: their options (and option values) and fixed operands are skipped and the
  program they run is analysed in turn (:data:`WRAPPERS`);
* some wrappers hand (part of) their arguments to a **shell** as one command line — ``sudo -s``,
  ``su -c``, ``flock -c``, ``script -c``, ``env -S``, ``watch``, ``ssh HOST …``, ``parallel``:
  a placeholder there is code;
* **shells** (``sh``, ``bash``, ``dash``, ``zsh``, ``ksh``, ``mksh``, ``ash``, ``yash``,
  ``fish``, ``csh``, ``tcsh``): with ``-c`` in any option cluster (``-c``, ``-ec``, ``-xc``, ``-c
  --``) the first operand is the script — a placeholder anywhere in it is refused, a whole
  ``{{x}}`` included; the operands after it are ``$0``, ``$1``, … (data). Without ``-c`` and
  without a script file operand the shell reads its program from stdin;
* **interpreters** (:data:`INTERPRETERS`): ``python -c``, ``node -e/--eval/-p``, ``perl
  -e/-E`` (also in clusters: ``-ne``, ``-lpe``), ``ruby -e``, ``php -r/-B/-R/-E``, ``lua -e``,
  ``osascript -e``, ``Rscript -e``, ``julia -e``, ``pwsh -c``; the program text of ``awk`` and
  ``sed``. A script file, module or program file named by a placeholder (``python {{x}}``,
  ``python -m {{x}}``) is a path, i.e. data — only a wrapper's *program* may not be one;
* a word that names a shell or interpreter *anywhere* in the command is also checked for inline
  code (a wrapper missing from the table can't hide ``sh -c '{{x}}'``).

With ``shell: true`` the script is split into simple commands and pipelines; a placeholder is
refused as the command word, as an argument of ``eval``, ``trap``, ``source``/``.``, ``exec``,
``let``, ``alias`` and other builtins that run or name code, anywhere in a pipeline stage that
feeds a shell or interpreter reading its program from stdin (``… | sh``), and wherever the argv
analysis above would refuse it.

The fix is always the same: pass the value as an **argument** of the code, not inside it:
``sh -c 'echo "$1"' _ {{x}}``, ``python -c 'import sys; print(sys.argv[1])' {{x}}``.

**Option injection.** A value that starts with ``-`` filling an argument in an option position
(the argument starts with the placeholder, and no literal ``--`` comes before it) would be read
as an option (``--output=/etc/passwd``). :func:`option_placeholders` finds those placeholders;
the tool refuses such a value when it is called, unless the parameter has ``allow_options``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from ._declarative_core import Placeholder, Template, Text, ToolDefinitionError

__all__ = [
    "INTERPRETERS",
    "SHELLS",
    "WRAPPERS",
    "Interpreter",
    "Word",
    "Wrapper",
    "check_argv",
    "check_script",
    "option_placeholders",
    "script_option_placeholders",
]


# -- the tables ------------------------------------------------------------------------------


@attrs.frozen
class Wrapper:
    """A program that runs another program given in its arguments.

    Attributes:
        value_options: options followed by a value (``-u NAME``; ``--unset=NAME`` and
            ``-uNAME`` are understood too).
        operands: fixed operands before the program (``timeout``'s duration, ``chroot``'s
            root).
        assignments: ``NAME=value`` words may come before the program (``env``).
        code_options: options whose value is a shell command line (``su -c``, ``env -S``).
        shell_options: options that make the remaining arguments one shell command line
            (``sudo -s``).
        rest_is_shell: the remaining arguments are always joined and run by a shell
            (``watch``, ``ssh``, ``parallel``).
        applet: the first operand names the program (``busybox sh``).
    """

    value_options: frozenset[str] = frozenset()
    operands: int = 0
    assignments: bool = False
    code_options: frozenset[str] = frozenset()
    shell_options: frozenset[str] = frozenset()
    rest_is_shell: bool = False
    applet: bool = False


def _options(*names: str) -> frozenset[str]:
    return frozenset(names)


WRAPPERS: Final[dict[str, Wrapper]] = {
    "env": Wrapper(
        value_options=_options("-u", "--unset", "-C", "--chdir", "-a", "--argv0"),
        assignments=True,
        code_options=_options("-S", "--split-string"),
    ),
    "timeout": Wrapper(value_options=_options("-s", "--signal", "-k", "--kill-after"), operands=1),
    "nice": Wrapper(value_options=_options("-n", "--adjustment")),
    "nohup": Wrapper(),
    "stdbuf": Wrapper(value_options=_options("-i", "-o", "-e", "--input", "--output", "--error")),
    "xargs": Wrapper(
        value_options=_options(
            "-a",
            "--arg-file",
            "-d",
            "--delimiter",
            "-E",
            "-e",
            "--eof",
            "-I",
            "--replace",
            "-L",
            "--max-lines",
            "-l",
            "-n",
            "--max-args",
            "-P",
            "--max-procs",
            "-s",
            "--max-chars",
            "--process-slot-var",
        )
    ),
    "sudo": Wrapper(
        value_options=_options(
            "-u",
            "--user",
            "-g",
            "--group",
            "-C",
            "--close-from",
            "-D",
            "--chdir",
            "-h",
            "--host",
            "-p",
            "--prompt",
            "-r",
            "--role",
            "-t",
            "--type",
            "-T",
            "--command-timeout",
            "-U",
            "--other-user",
            "-R",
            "--chroot",
        ),
        shell_options=_options("-s", "--shell", "-i", "--login"),
    ),
    "doas": Wrapper(value_options=_options("-u", "-C")),
    "su": Wrapper(
        value_options=_options("-g", "--group", "-G", "--supp-group", "-s", "--shell"),
        code_options=_options("-c", "--command", "--session-command"),
        operands=1,
    ),
    "runuser": Wrapper(
        value_options=_options("-u", "--user", "-g", "--group", "-G", "-s", "--shell"),
        code_options=_options("-c", "--command", "--session-command"),
    ),
    "command": Wrapper(),
    "builtin": Wrapper(),
    "exec": Wrapper(value_options=_options("-a")),
    "time": Wrapper(value_options=_options("-f", "--format", "-o", "--output")),
    "setsid": Wrapper(),
    "ionice": Wrapper(value_options=_options("-c", "--class", "-n", "--classdata", "-p", "--pid")),
    "chrt": Wrapper(value_options=_options("-T", "-P", "-D"), operands=1),
    "taskset": Wrapper(operands=1),
    "chroot": Wrapper(value_options=_options("--userspec", "--groups"), operands=1),
    "unshare": Wrapper(value_options=_options("-S", "--setuid", "-G", "--setgid", "-R", "-w")),
    "nsenter": Wrapper(
        value_options=_options("-t", "--target", "-S", "--setuid", "-G", "--setgid", "-r", "-w")
    ),
    "flock": Wrapper(
        value_options=_options("-w", "--timeout", "-E", "--conflict-exit-code"),
        code_options=_options("-c", "--command"),
        operands=1,
    ),
    "script": Wrapper(
        value_options=_options("-E", "--echo", "-T", "-t"), code_options=_options("-c", "--command")
    ),
    "watch": Wrapper(value_options=_options("-n", "--interval", "-d"), rest_is_shell=True),
    "ssh": Wrapper(
        value_options=_options(
            "-B",
            "-b",
            "-c",
            "-D",
            "-E",
            "-e",
            "-F",
            "-I",
            "-i",
            "-J",
            "-L",
            "-l",
            "-m",
            "-O",
            "-o",
            "-p",
            "-Q",
            "-R",
            "-S",
            "-W",
            "-w",
        ),
        operands=1,
        rest_is_shell=True,
    ),
    "parallel": Wrapper(rest_is_shell=True),
    "busybox": Wrapper(applet=True),
    "toybox": Wrapper(applet=True),
    "strace": Wrapper(value_options=_options("-e", "-o", "-p", "-s", "-u", "-E", "-P", "-a")),
    "ltrace": Wrapper(value_options=_options("-e", "-o", "-p", "-s", "-u", "-a", "-n")),
    "firejail": Wrapper(),
    "proot": Wrapper(value_options=_options("-r", "-b", "-w", "-q")),
}
"""Programs that run another program, by name (see :class:`Wrapper`)."""

SHELLS: Final = frozenset(
    {
        "sh",
        "bash",
        "rbash",
        "dash",
        "zsh",
        "ksh",
        "mksh",
        "pdksh",
        "ash",
        "yash",
        "fish",
        "csh",
        "tcsh",
        "posh",
        "hush",
        "oksh",
        "loksh",
    }
)
"""Shells: ``-c`` (alone or in a cluster such as ``-ec``) makes the first operand a script."""
_SHELL_VALUE_OPTIONS: Final = _options("-o", "+o", "-O", "+O", "--rcfile", "--init-file")
# fish: -C/--init-command run code too (for other shells -C is a flag: noclobber)
_FISH_CODE_OPTIONS: Final = _options("-C", "--init-command")


@attrs.frozen
class Interpreter:
    """A language runtime that can run code given on its command line.

    Attributes:
        code_options: options whose value is code (``-c``, ``-e``, ``--eval``).
        value_options: other options followed by a value.
        module_options: options whose value names code to load (``-m``, ``-r``, ``-M``).
        clusters: single-letter options may be bundled (``-ne``, ``-Ic``) and a value may be
            attached (``-e'print 1'``).
        code_operand: the first operand is the program text (awk, sed) unless a code option
            or a ``file_options`` option gave the program.
        file_options: options naming a program file (``awk -f``, ``sed -f``).
        code_ends_options: the words after the inline code are its arguments, not options
            (``python -c CODE ARG…``).
        hint: how to pass a value as an argument instead.
    """

    code_options: frozenset[str] = frozenset()
    value_options: frozenset[str] = frozenset()
    module_options: frozenset[str] = frozenset()
    clusters: bool = False
    code_operand: bool = False
    file_options: frozenset[str] = frozenset()
    code_ends_options: bool = False
    hint: str = ""


_AWK: Final = Interpreter(
    code_options=_options("-e", "--source"),
    value_options=_options("-F", "--field-separator", "-v", "--assign", "-W"),
    module_options=_options("-i", "--include", "-l", "--load"),
    code_operand=True,
    file_options=_options("-f", "--file"),
    hint="awk -v value={{x}} '{ print value }' (or pass it as a file operand)",
)
INTERPRETERS: Final[dict[str, Interpreter]] = {
    "python": Interpreter(
        code_options=_options("-c"),
        value_options=_options("-W", "-X", "--check-hash-based-pycs"),
        module_options=_options("-m"),
        clusters=True,
        code_ends_options=True,
        hint="python -c 'import sys; print(sys.argv[1])' {{x}}",
    ),
    "pypy": Interpreter(
        code_options=_options("-c"),
        value_options=_options("-W", "-X"),
        module_options=_options("-m"),
        clusters=True,
        code_ends_options=True,
        hint="pypy -c 'import sys; print(sys.argv[1])' {{x}}",
    ),
    "node": Interpreter(
        code_options=_options("-e", "--eval", "-p", "--print"),
        value_options=_options("--input-type", "-C", "--conditions", "--title"),
        module_options=_options("-r", "--require", "--import", "--loader", "--experimental-loader"),
        clusters=True,
        hint="node -e 'console.log(process.argv[1])' {{x}}",
    ),
    "perl": Interpreter(
        code_options=_options("-e", "-E"),
        # NOTE: -l, -0, -i, -x and -C take an *optional* attached value, so in a bundle like
        # -lne they are flags; these always take one.
        value_options=_options("-I", "-d", "-D", "-F"),
        module_options=_options("-M", "-m"),
        clusters=True,
        hint="perl -e 'print $ARGV[0]' {{x}}",
    ),
    "ruby": Interpreter(
        code_options=_options("-e"),
        value_options=_options("-I", "-C", "-E", "-F", "-K"),
        module_options=_options("-r"),
        clusters=True,
        hint="ruby -e 'puts ARGV[0]' {{x}}",
    ),
    "php": Interpreter(
        code_options=_options("-r", "-B", "-R", "-E"),
        value_options=_options("-c", "-d", "-z"),
        module_options=_options("-f", "-F"),
        hint="php -r 'echo $argv[1];' {{x}}",
    ),
    "lua": Interpreter(
        code_options=_options("-e"),
        module_options=_options("-l"),
        hint="lua -e 'print(arg[1])' {{x}}",
    ),
    "luajit": Interpreter(
        code_options=_options("-e"),
        module_options=_options("-l"),
        hint="luajit -e 'print(arg[1])' {{x}}",
    ),
    "osascript": Interpreter(
        code_options=_options("-e"),
        value_options=_options("-l", "-s"),
        hint="osascript -e 'on run argv' -e 'return item 1 of argv' -e 'end run' {{x}}",
    ),
    "rscript": Interpreter(
        code_options=_options("-e"),
        hint="Rscript -e 'cat(commandArgs(TRUE)[1])' {{x}}",
    ),
    "julia": Interpreter(
        code_options=_options("-e", "--eval", "-E", "--print"),
        module_options=_options("-L", "--load"),
        hint="julia -e 'println(ARGS[1])' {{x}}",
    ),
    "pwsh": Interpreter(
        code_options=_options("-c", "-command", "-encodedcommand", "-ec", "-e"),
        hint="pass the value as an argument of a script file",
    ),
    "powershell": Interpreter(
        code_options=_options("-c", "-command", "-encodedcommand", "-ec", "-e"),
        hint="pass the value as an argument of a script file",
    ),
    "awk": _AWK,
    "gawk": _AWK,
    "mawk": _AWK,
    "nawk": _AWK,
    "sed": Interpreter(
        code_options=_options("-e", "--expression"),
        value_options=_options("-l", "--line-length"),
        code_operand=True,
        file_options=_options("-f", "--file"),
        hint="don't build a sed script from a value; match it in a program that takes it as "
        "an argument",
    ),
}
"""Language runtimes, by name (``python3.12`` is ``python``; see :class:`Interpreter`)."""

# Shell builtins whose arguments are code...
_CODE_BUILTINS: Final = frozenset(
    {"eval", "trap", "source", ".", "let", "alias", "bind", "fc", "enable", "complete", "compgen"}
)
# ... and builtins whose arguments name variables (bash evaluates array subscripts in a name:
# declare 'a[$(cmd)]=1' runs cmd), so a placeholder may only be the value after "NAME=".
_NAME_BUILTINS: Final = frozenset(
    {
        "declare",
        "typeset",
        "local",
        "export",
        "readonly",
        "unset",
        "read",
        "mapfile",
        "readarray",
        "getopts",
    }
)
_RESERVED: Final = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "!",
        "{",
        "}",
        "time",
        "coproc",
    }
)
_ASSIGNMENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_VERSION: Final = re.compile(r"[0-9.]+$")

_SHELL_HINT: Final = "sh -c 'echo \"$1\"' _ {{x}}"
_PROGRAM_FIX: Final = (
    "The model must not choose which program or script runs: name it, and pass values as its "
    "arguments"
)


# -- words -------------------------------------------------------------------------------------


@attrs.frozen
class Word:
    """One argument: literal text and placeholders (quotes already removed).

    Attributes:
        parts: the pieces in order.
        source: how it was written (for messages).
        nested: placeholders inside a command substitution in this word (``$(… {{x}} …)``).
    """

    parts: tuple[str | Placeholder, ...]
    source: str
    nested: tuple[Placeholder, ...] = ()

    @classmethod
    def of(cls, template: Template) -> Word:
        """The word of a (non-shell) argument template."""
        parts: list[str | Placeholder] = []
        for part in template.parts:
            if isinstance(part, Placeholder):
                parts.append(part)
            elif isinstance(part, Text) and part.text:
                parts.append(part.text)
        return cls(tuple(parts), template.source)

    @property
    def literal(self) -> str | None:
        """The text when the word has no placeholder at all."""
        if self.nested or any(isinstance(p, Placeholder) for p in self.parts):
            return None
        return "".join(p for p in self.parts if isinstance(p, str))

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """Every placeholder in the word, nested ones included."""
        return tuple(p for p in self.parts if isinstance(p, Placeholder)) + self.nested

    @property
    def leading(self) -> Placeholder | None:
        """The placeholder the word starts with: its value decides whether it is an option."""
        if self.parts and isinstance(self.parts[0], Placeholder):
            return self.parts[0]
        return None

    @property
    def prefix(self) -> str:
        """The literal text before the first placeholder."""
        text = []
        for part in self.parts:
            if isinstance(part, Placeholder):
                break
            text.append(part)
        return "".join(text)


def _program_name(text: str) -> str:
    name = posixpath.basename(text).lower()
    name = name.removesuffix(".exe")
    if name in WRAPPERS or name in SHELLS or name in INTERPRETERS:
        return name
    return _VERSION.sub("", name)


# -- the argv analysis ------------------------------------------------------------------------


class _Refusal(Exception):
    def __init__(
        self, placeholder: Placeholder, what: str, hint: str = _SHELL_HINT, fix: str = ""
    ) -> None:
        super().__init__(what)
        self.placeholder = placeholder
        self.what = what
        kind = "shell code" if hint == _SHELL_HINT else "code"
        self.fix = fix or (
            f"Its value would run as {kind}. Pass the value as an argument of the code "
            f"instead, e.g. {hint}"
        )


@attrs.define
class _Outcome:
    """What the analysis learnt about a command."""

    reads_code_from_stdin: bool = False
    code: list[str] = attrs.Factory(list)  # the literal inline code it runs


def _refuse_any(
    words: Iterable[Word], what: str, hint: str = _SHELL_HINT, *, fix: str = ""
) -> None:
    for word in words:
        if word.placeholders:
            raise _Refusal(word.placeholders[0], what, hint, fix)


def _refuse_program(word: Word, what: str) -> None:
    if word.placeholders:
        raise _Refusal(word.placeholders[0], what, fix=_PROGRAM_FIX)


def _split_option(text: str) -> tuple[str, str | None]:
    """``--name=value`` → (``--name``, ``value``); anything else → (text, None)."""
    if text.startswith("--") and "=" in text:
        name, _, value = text.partition("=")
        return name, value
    return text, None


def _analyse(words: Sequence[Word], outcome: _Outcome, depth: int = 0) -> None:
    """Follow wrappers to the program that runs, and refuse placeholders in code."""
    if not words or depth > 32:
        return
    program = words[0]
    _refuse_program(program, "it is the program to run")
    text = program.literal
    assert text is not None
    name = _program_name(text)
    rest = words[1:]
    if name == "find":
        _analyse_find(rest, outcome, depth)
    elif name in WRAPPERS:
        _analyse_wrapper(name, WRAPPERS[name], rest, outcome, depth)
    elif name in SHELLS:
        _analyse_shell(name, rest, outcome)
    elif name in INTERPRETERS:
        _analyse_interpreter(name, INTERPRETERS[name], rest, outcome)


def _analyse_wrapper(
    name: str, spec: Wrapper, words: Sequence[Word], outcome: _Outcome, depth: int
) -> None:
    operands = spec.operands
    options_ended = False
    i = 0
    while i < len(words):
        word = words[i]
        text = word.literal
        if spec.applet:
            _analyse(words[i:], outcome, depth + 1)
            return
        if not options_ended and text is not None and text == "--":
            options_ended = True
            i += 1
            continue
        if not options_ended and text is not None and len(text) > 1 and text[0] == "-":
            option, attached = _split_option(text)
            short, short_value = (text[:2], text[2:]) if not text.startswith("--") else ("", "")
            if option in spec.shell_options or short in spec.shell_options:
                _refuse_any(
                    words[i + 1 :], f"{name} {text} runs the rest of the command with a shell"
                )
                return
            for options in (spec.code_options, spec.value_options):
                if option in options and attached is None:
                    if i + 1 < len(words) and options is spec.code_options:
                        _refuse_any(
                            [words[i + 1]], f"it is the command line {name} {text} gives a shell"
                        )
                    i += 2
                    break
                if option in options or (short in options and short_value):
                    if options is spec.code_options:
                        _refuse_any([word], f"it is the command line {name} gives a shell")
                    i += 1
                    break
            else:
                i += 1  # a flag without a value
            continue
        if not options_ended and word.placeholders and word.prefix.startswith("-"):
            # NOTE: an option's attached value is data of the wrapper (--signal={{s}}), or a
            # command line for a shell (--split-string={{x}}, -S{{x}}).
            prefix = word.prefix
            if prefix.partition("=")[0] in spec.code_options or (
                not prefix.startswith("--") and prefix[:2] in spec.code_options
            ):
                _refuse_any([word], f"it is the command line {name} gives a shell")
            i += 1
            continue
        if spec.assignments and _ASSIGNMENT.match(word.prefix):
            i += 1  # NAME=value: data
            continue
        if operands:
            operands -= 1
            i += 1
            continue
        if spec.rest_is_shell:
            _refuse_any(words[i:], f"{name} joins its arguments into a command line for a shell")
            return
        inner = _Outcome()
        _analyse(words[i:], inner, depth + 1)
        outcome.reads_code_from_stdin = inner.reads_code_from_stdin or (
            # NOTE: xargs -I{} puts its input into the command, here into code: whatever
            # feeds xargs is code then (echo {{x}} | xargs -I{} sh -c 'echo {}').
            name == "xargs" and any(r in c for r in _replace_strings(words[:i]) for c in inner.code)
        )
        outcome.code.extend(inner.code)
        return


def _replace_strings(options: Sequence[Word]) -> list[str]:
    """The replace strings of xargs options (``-I R``, ``-IR``, ``--replace[=R]``, ``-i``)."""
    found: list[str] = []
    for i, word in enumerate(options):
        text = word.literal or ""
        if text == "-I" and i + 1 < len(options):
            found.append(options[i + 1].literal or "{}")
        elif text.startswith("-I") and len(text) > 2:
            found.append(text[2:])
        elif text.startswith("--replace="):
            found.append(text.partition("=")[2])
        elif text in ("-i", "--replace") or text.startswith("-i"):
            found.append(text[2:] or "{}" if text.startswith("-i") else "{}")
    return found


def _analyse_find(words: Sequence[Word], outcome: _Outcome, depth: int) -> None:
    i = 0
    while i < len(words):
        if words[i].literal in ("-exec", "-execdir", "-ok", "-okdir"):
            end = i + 1
            while end < len(words) and words[end].literal not in (";", "+"):
                end += 1
            _analyse(words[i + 1 : end], outcome, depth + 1)
            i = end
        i += 1


def _analyse_shell(name: str, words: Sequence[Word], outcome: _Outcome) -> None:
    code = False
    stdin = False  # -s or "-": the program comes from stdin, the operands are $1...
    i = 0
    while i < len(words):
        word = words[i]
        text = word.literal
        if text is None:
            break
        if text == "--" or text == "-":
            stdin = stdin or text == "-"
            i += 1
            break
        option, attached = _split_option(text)
        if name == "fish" and option in _FISH_CODE_OPTIONS:
            if attached is not None:
                _refuse_any([word], f"it is code that {name} {option} runs")
                i += 1
            else:
                _refuse_any(words[i + 1 : i + 2], f"it is code that {name} {option} runs")
                i += 2
            continue
        if option in ("--command", "-c") or (
            text[:1] == "-" and not text.startswith("--") and "c" in text[1:]
        ):
            code = True
            i += 1
            continue
        if option in _SHELL_VALUE_OPTIONS:
            i += 2
            continue
        if text[:1] in ("-", "+") and len(text) > 1:
            stdin = stdin or (text[0] == "-" and not text.startswith("--") and "s" in text[1:])
            i += 1
            continue
        break
    operands = words[i:]
    if code:
        if operands:
            _refuse_any(operands[:1], f"it is inside the script that {name} -c runs")
            outcome.code.append(operands[0].literal or "")
        return
    # NOTE: a script *file* named by a value is data (a path), like any file operand; a value
    # starting with "-" there is refused when the tool is called (option injection).
    if stdin or not operands:
        outcome.reads_code_from_stdin = True


def _analyse_interpreter(
    name: str, spec: Interpreter, words: Sequence[Word], outcome: _Outcome
) -> None:
    code_given = False
    i = 0
    what = f"it is code that {name} runs"
    while i < len(words):
        word = words[i]
        text = word.literal
        if text is None:
            prefix = word.prefix
            if not prefix.startswith("-") or (code_given and spec.code_ends_options):
                break
            # NOTE: a value attached to an option: code for a code option (--eval={{x}},
            # -e{{x}}), data for any other (--title={{x}}).
            option = prefix.partition("=")[0]
            attached_code = option in spec.code_options or (
                spec.clusters
                and not prefix.startswith("--")
                and _cluster(prefix, spec)[1] == "code"
            )
            if attached_code:
                _refuse_any([word], what, spec.hint)
            i += 1
            continue
        if text == "--" or text == "-":
            i += 1
            break
        if not text.startswith("-"):
            break
        if code_given and spec.code_ends_options:
            break  # python -c CODE ARGS...: the rest is sys.argv
        option, attached = _split_option(text)
        lowered = option.lower() if name in ("pwsh", "powershell") else option
        if lowered in spec.code_options:
            code_given = True
            if attached is not None:
                _refuse_any([word], what, spec.hint)
                i += 1
            else:
                _refuse_any(words[i + 1 : i + 2], what, spec.hint)
                outcome.code.extend(w.literal or "" for w in words[i + 1 : i + 2])
                i += 2
            continue
        if option in spec.module_options or option in spec.file_options:
            # NOTE: a module or program *file* named by a value is data, like a script path.
            code_given = True
            i += 2 if attached is None else 1
            continue
        if option in spec.value_options:
            i += 2 if attached is None else 1
            continue
        if spec.clusters and not text.startswith("--"):
            consumed, kind = _cluster(text, spec)
            if kind == "code":
                code_given = True
                if consumed:
                    _refuse_any(words[i + 1 : i + 2], what, spec.hint)
                    i += 2
                else:
                    i += 1
                continue
            if kind == "module":
                code_given = True
                i += 2 if consumed else 1
                continue
            if kind == "value":
                i += 2 if consumed else 1
                continue
        i += 1
    operands = words[i:]
    if code_given:
        return
    if spec.code_operand:
        if operands:
            _refuse_any(operands[:1], f"it is inside the program text {name} runs", spec.hint)
        return
    dash = i > 0 and words[i - 1].literal == "-"
    if not operands or dash or operands[0].literal == "-":
        outcome.reads_code_from_stdin = True  # no script, or "-": the program is stdin


def _cluster(text: str, spec: Interpreter) -> tuple[bool, str]:
    """Read a bundle like ``-lne``: (whether the next word is the value, what it is)."""
    for position in range(1, len(text)):
        option = "-" + text[position]
        attached = text[position + 1 :]
        if option in spec.code_options:
            # NOTE: "-pe" (node) bundles two code flags: the code is the next word.
            bundled = attached and all("-" + c in spec.code_options for c in attached)
            return not attached or bool(bundled), "code"
        if option in spec.module_options or option in spec.file_options:
            return not attached, "module"
        if option in spec.value_options:
            return not attached, "value"
    return False, "flag"


def _sweep(words: Sequence[Word]) -> None:
    """Check inline code after any word that names a shell or interpreter, so a wrapper the
    table doesn't know can't hide ``sh -c '{{x}}'``."""
    for i, word in enumerate(words):
        if i == 0 or word.literal is None:
            continue
        name = _program_name(word.literal)
        rest = words[i + 1 :]
        if name in SHELLS:
            _sweep_shell(name, rest)
        elif name in INTERPRETERS and not INTERPRETERS[name].code_operand:
            _sweep_interpreter(name, INTERPRETERS[name], rest)


def _sweep_shell(name: str, words: Sequence[Word]) -> None:
    code = False
    for i, word in enumerate(words):
        text = word.literal
        if text is None:
            if code:
                _refuse_any([word], f"it is inside the script that {name} -c runs")
            return
        if text == "--":
            continue
        if text.startswith("-") and not text.startswith("--") and "c" in text[1:]:
            code = True
            continue
        if text.startswith(("-", "+")) and len(text) > 1:
            continue
        if code and words[i].placeholders:
            _refuse_any([word], f"it is inside the script that {name} -c runs")
        return


def _sweep_interpreter(name: str, spec: Interpreter, words: Sequence[Word]) -> None:
    for i, word in enumerate(words[:-1]):
        text = word.literal
        if text is None or not text.startswith("-"):
            return
        option, _ = _split_option(text)
        if option in spec.code_options or (
            spec.clusters and not text.startswith("--") and _cluster(text, spec)[1] == "code"
        ):
            _refuse_any(words[i + 1 : i + 2], f"it is code that {name} runs", spec.hint)
            return


def _raise(refusal: _Refusal, tool: str, where: str) -> None:
    raise ToolDefinitionError(
        f"tool {tool!r}: {where} has the placeholder {refusal.placeholder.source!r} where "
        f"{refusal.what}. {refusal.fix}.",
        tool=tool,
        where=where,
    ) from None


def check_argv(argv: Sequence[Template], tool: str) -> None:
    """Refuse a placeholder that would become code or choose the program (no shell).

    Raises:
        ToolDefinitionError: with the place and a hint to pass the value as an argument.
    """
    words = [Word.of(t) for t in argv]
    index = {id(w): t.where for w, t in zip(words, argv, strict=True)}
    try:
        _analyse(words, _Outcome())
        _sweep(words)
    except _Refusal as refusal:
        where = next(
            (index[id(w)] for w in words if any(p is refusal.placeholder for p in w.placeholders)),
            "implementation.command",
        )
        _raise(refusal, tool, where)


def option_placeholders(argv: Sequence[Template]) -> tuple[Placeholder, ...]:
    """The placeholders that start an argument before any literal ``--``: a value starting
    with ``-`` there is read as an option."""
    found: list[Placeholder] = []
    for template in argv:
        word = Word.of(template)
        if word.literal == "--":
            break
        if word.leading is not None:
            found.append(word.leading)
    return tuple(found)


# -- shell: true ------------------------------------------------------------------------------


@attrs.define
class _Token:
    """A word or an operator of a shell script."""

    word: Word | None = None
    operator: str = ""


def _lex(items: Sequence[str | Placeholder], inner: list[list[_Token]]) -> list[_Token]:
    """Split a script (characters and placeholders) into words and operators.

    Quotes are removed from the words; the scripts in ``$(…)`` and backquotes go to ``inner``
    (to be analysed as scripts of their own) and their placeholders are recorded as
    ``nested`` in the word. (Placeholders inside quotes, comments and arithmetic were refused
    before this runs.)
    """
    tokens: list[_Token] = []
    parts: list[str | Placeholder] = []
    nested: list[Placeholder] = []
    source: list[str] = []
    started = False
    i = 0

    def flush() -> None:
        nonlocal started
        if started:
            merged: list[str | Placeholder] = []
            for part in parts:
                if isinstance(part, str) and merged and isinstance(merged[-1], str):
                    merged[-1] += part
                else:
                    merged.append(part)
            tokens.append(_Token(word=Word(tuple(merged), "".join(source), tuple(nested))))
        parts.clear()
        nested.clear()
        source.clear()
        started = False

    while i < len(items):
        item = items[i]
        if isinstance(item, Placeholder):
            parts.append(item)
            source.append(item.source)
            started = True
            i += 1
            continue
        char = item
        if char in " \t":
            flush()
            i += 1
            continue
        if char == "#" and not started:
            while i < len(items) and items[i] != "\n":
                i += 1
            continue
        if char == "\\":
            if i + 1 < len(items) and items[i + 1] == "\n":
                i += 2
                continue
            escaped = items[i + 1] if i + 1 < len(items) else None
            if isinstance(escaped, str):
                parts.append(escaped)
                source.append(char + escaped)
                started = True
                i += 2
                continue
            i += 1
            continue
        if char in "'\"":
            end = i + 1
            while end < len(items) and items[end] != char:
                if char == '"' and items[end] == "\\":
                    end += 1
                end += 1
            quoted = [x for x in items[i + 1 : end] if isinstance(x, str)]
            parts.append("".join(quoted))
            source.append(
                "".join(x if isinstance(x, str) else x.source for x in items[i : end + 1])
            )
            started = True
            i = end + 1
            continue
        if char == "`" or (char == "$" and i + 1 < len(items) and items[i + 1] == "("):
            end = _closing(items, i)
            inner_items = items[i + (1 if char == "`" else 2) : end]
            nested.extend(p for p in inner_items if isinstance(p, Placeholder))
            text = "".join(x if isinstance(x, str) else x.source for x in items[i : end + 1])
            parts.append(text)
            source.append(text)
            started = True
            inner.append(_lex(inner_items, inner))
            i = end + 1
            continue
        if char in ";&|()<>\n":
            operator = char
            following = items[i + 1] if i + 1 < len(items) else None
            if isinstance(following, str) and char + following in (
                "&&",
                "||",
                ";;",
                "|&",
                ">>",
                "<<",
                ">&",
                "<&",
                "<>",
                ">|",
            ):
                operator = char + following
            if char in "<>" and started and all(isinstance(p, str) and p.isdigit() for p in parts):
                parts.clear()
                source.clear()
                started = False
            flush()
            tokens.append(_Token(operator=operator))
            i += len(operator)
            continue
        parts.append(char)
        source.append(char)
        started = True
        i += 1
    flush()
    return tokens


def _closing(items: Sequence[str | Placeholder], start: int) -> int:
    """The index of the ``)`` (or backquote) that ends the substitution opened at ``start``."""
    if items[start] == "`":
        end = start + 1
        while end < len(items) and items[end] != "`":
            end += 1
        return end
    depth = 0
    quote: str | None = None
    for end in range(start + 1, len(items)):
        item = items[end]
        if not isinstance(item, str):
            continue
        if quote is not None:
            if item == quote:
                quote = None
            continue
        if item in "'\"":
            quote = item
        elif item == "(":
            depth += 1
        elif item == ")":
            depth -= 1
            if depth == 0:
                return end
    return len(items)


_SEPARATORS: Final = frozenset({";", "&", "&&", "||", "\n", "(", ")", ";;"})
_PIPES: Final = frozenset({"|", "|&"})
_REDIRECTIONS: Final = frozenset({"<", ">", ">>", "<<", ">&", "<&", "<>", ">|"})


def _pipelines(tokens: Sequence[_Token]) -> list[list[list[Word]]]:
    """Pipelines (lists of stages), each stage the argv of one simple command."""
    pipelines: list[list[list[Word]]] = [[[]]]
    redirect_target = False
    for token in tokens:
        if token.word is None:
            if token.operator in _SEPARATORS:
                pipelines.append([[]])
            elif token.operator in _PIPES:
                pipelines[-1].append([])
            elif token.operator in _REDIRECTIONS:
                redirect_target = True
            continue
        if redirect_target:
            redirect_target = False
            continue
        stage = pipelines[-1][-1]
        literal = token.word.literal
        if (
            not stage
            and literal is not None
            and (literal in _RESERVED or (_ASSIGNMENT.match(literal) is not None))
        ):
            continue
        if not stage and literal is None and _ASSIGNMENT.match(token.word.prefix):
            continue  # NAME={{x}}: an assignment, the value quoted
        stage.append(token.word)
    return [[stage for stage in pipeline if stage] for pipeline in pipelines]


def _scripts(template: Template) -> list[list[list[Word]]]:
    """The pipelines of the script and of every command substitution in it."""
    items: list[str | Placeholder] = []
    for part in template.parts:
        if isinstance(part, Text):
            items.extend(part.text)
        elif isinstance(part, Placeholder):
            items.append(part)
    inner: list[list[_Token]] = []
    main = _lex(items, inner)
    return [pipeline for tokens in (main, *inner) for pipeline in _pipelines(tokens)]


def check_script(template: Template, tool: str) -> None:
    """Refuse a placeholder of a ``shell: true`` script that would become code: in command
    position, given to a code builtin, in a pipeline feeding a shell, or in inline code
    (see the module docs).

    Raises:
        ToolDefinitionError: with the place and a hint to pass the value as an argument.
    """
    try:
        for pipeline in _scripts(template):
            stdin_code = False
            for stage in reversed(pipeline):
                if stdin_code:
                    _refuse_any(stage, "it is piped into a shell or interpreter that runs it")
                stdin_code = _check_stage(stage) or stdin_code
    except _Refusal as refusal:
        _raise(refusal, tool, template.where)


def _check_stage(argv: list[Word]) -> bool:
    """Check one simple command; whether it runs code read from its stdin."""
    program = argv[0]
    if program.placeholders:
        raise _Refusal(program.placeholders[0], "it is the command word", fix=_PROGRAM_FIX)
    name = program.literal or ""
    if name in _CODE_BUILTINS:
        _refuse_any(argv[1:], f"it is given to the shell builtin {name!r}, which runs it")
        return name in ("source", ".") and any(w.literal == "/dev/stdin" for w in argv[1:])
    if name in _NAME_BUILTINS:
        _refuse_any(
            (word for word in argv[1:] if "=" not in word.prefix),
            f"it is given to the shell builtin {name!r} as a variable name",
            fix="A name is code to bash (array subscripts run commands); use the value only "
            "after 'NAME=' (export NAME={{x}})",
        )
        return False
    outcome = _Outcome()
    _analyse(argv, outcome)
    _sweep(argv)
    return outcome.reads_code_from_stdin


def script_option_placeholders(template: Template) -> tuple[Placeholder, ...]:
    """The placeholders of a ``shell: true`` script that start an argument of a command
    before any ``--`` of that command."""
    found: list[Placeholder] = []
    for pipeline in _scripts(template):
        for stage in pipeline:
            for word in stage[1:]:
                if word.literal == "--":
                    break
                if word.leading is not None:
                    found.append(word.leading)
    return tuple(found)
