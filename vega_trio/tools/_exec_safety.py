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

With ``shell: true`` the script is split into simple commands and each is checked the same way
(:mod:`._exec_script`). The tables of programs are in :mod:`._exec_programs`.

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
from ._exec_programs import (
    FISH_CODE_OPTIONS,
    INTERPRETERS,
    SHELL_VALUE_OPTIONS,
    SHELLS,
    WRAPPERS,
    Interpreter,
    Wrapper,
)

__all__ = [
    "ASSIGNMENT",
    "PROGRAM_FIX",
    "Outcome",
    "Word",
    "analyse",
    "check_argv",
    "option_placeholders",
    "raise_refusal",
    "refuse_any",
    "sweep",
]


ASSIGNMENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_VERSION: Final = re.compile(r"[0-9.]+$")

_SHELL_HINT: Final = "sh -c 'echo \"$1\"' _ {{x}}"
PROGRAM_FIX: Final = (
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
class Outcome:
    """What the analysis learnt about a command."""

    reads_code_from_stdin: bool = False
    code: list[str] = attrs.Factory(list)  # the literal inline code it runs


def refuse_any(words: Iterable[Word], what: str, hint: str = _SHELL_HINT, *, fix: str = "") -> None:
    for word in words:
        if word.placeholders:
            raise _Refusal(word.placeholders[0], what, hint, fix)


def _refuse_program(word: Word, what: str) -> None:
    if word.placeholders:
        raise _Refusal(word.placeholders[0], what, fix=PROGRAM_FIX)


def _split_option(text: str) -> tuple[str, str | None]:
    """``--name=value`` → (``--name``, ``value``); anything else → (text, None)."""
    if text.startswith("--") and "=" in text:
        name, _, value = text.partition("=")
        return name, value
    return text, None


def analyse(words: Sequence[Word], outcome: Outcome, depth: int = 0) -> None:
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
    name: str, spec: Wrapper, words: Sequence[Word], outcome: Outcome, depth: int
) -> None:
    operands = spec.operands
    options_ended = False
    i = 0
    while i < len(words):
        word = words[i]
        text = word.literal
        if spec.applet:
            analyse(words[i:], outcome, depth + 1)
            return
        if not options_ended and text is not None and text == "--":
            options_ended = True
            i += 1
            continue
        if not options_ended and text is not None and len(text) > 1 and text[0] == "-":
            option, attached = _split_option(text)
            short, short_value = (text[:2], text[2:]) if not text.startswith("--") else ("", "")
            if option in spec.shell_options or short in spec.shell_options:
                refuse_any(
                    words[i + 1 :], f"{name} {text} runs the rest of the command with a shell"
                )
                return
            for options in (spec.code_options, spec.value_options):
                if option in options and attached is None:
                    if i + 1 < len(words) and options is spec.code_options:
                        refuse_any(
                            [words[i + 1]], f"it is the command line {name} {text} gives a shell"
                        )
                    i += 2
                    break
                if option in options or (short in options and short_value):
                    if options is spec.code_options:
                        refuse_any([word], f"it is the command line {name} gives a shell")
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
                refuse_any([word], f"it is the command line {name} gives a shell")
            i += 1
            continue
        if spec.assignments and ASSIGNMENT.match(word.prefix):
            i += 1  # NAME=value: data
            continue
        if operands:
            operands -= 1
            i += 1
            continue
        if spec.rest_is_shell:
            refuse_any(words[i:], f"{name} joins its arguments into a command line for a shell")
            return
        inner = Outcome()
        analyse(words[i:], inner, depth + 1)
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


def _analyse_find(words: Sequence[Word], outcome: Outcome, depth: int) -> None:
    i = 0
    while i < len(words):
        if words[i].literal in ("-exec", "-execdir", "-ok", "-okdir"):
            end = i + 1
            while end < len(words) and words[end].literal not in (";", "+"):
                end += 1
            analyse(words[i + 1 : end], outcome, depth + 1)
            i = end
        i += 1


def _analyse_shell(name: str, words: Sequence[Word], outcome: Outcome) -> None:
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
        if name == "fish" and option in FISH_CODE_OPTIONS:
            if attached is not None:
                refuse_any([word], f"it is code that {name} {option} runs")
                i += 1
            else:
                refuse_any(words[i + 1 : i + 2], f"it is code that {name} {option} runs")
                i += 2
            continue
        if option in ("--command", "-c") or (
            text[:1] == "-" and not text.startswith("--") and "c" in text[1:]
        ):
            code = True
            i += 1
            continue
        if option in SHELL_VALUE_OPTIONS:
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
            refuse_any(operands[:1], f"it is inside the script that {name} -c runs")
            outcome.code.append(operands[0].literal or "")
        return
    # NOTE: a script *file* named by a value is data (a path), like any file operand; a value
    # starting with "-" there is refused when the tool is called (option injection).
    if stdin or not operands:
        outcome.reads_code_from_stdin = True


def _analyse_interpreter(
    name: str, spec: Interpreter, words: Sequence[Word], outcome: Outcome
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
                refuse_any([word], what, spec.hint)
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
                refuse_any([word], what, spec.hint)
                i += 1
            else:
                refuse_any(words[i + 1 : i + 2], what, spec.hint)
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
                    refuse_any(words[i + 1 : i + 2], what, spec.hint)
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
            refuse_any(operands[:1], f"it is inside the program text {name} runs", spec.hint)
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


def sweep(words: Sequence[Word]) -> None:
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
                refuse_any([word], f"it is inside the script that {name} -c runs")
            return
        if text == "--":
            continue
        if text.startswith("-") and not text.startswith("--") and "c" in text[1:]:
            code = True
            continue
        if text.startswith(("-", "+")) and len(text) > 1:
            continue
        if code and words[i].placeholders:
            refuse_any([word], f"it is inside the script that {name} -c runs")
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
            refuse_any(words[i + 1 : i + 2], f"it is code that {name} runs", spec.hint)
            return


def raise_refusal(refusal: _Refusal, tool: str, where: str) -> None:
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
        analyse(words, Outcome())
        sweep(words)
    except _Refusal as refusal:
        where = next(
            (index[id(w)] for w in words if any(p is refusal.placeholder for p in w.placeholders)),
            "implementation.command",
        )
        raise_refusal(refusal, tool, where)


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
