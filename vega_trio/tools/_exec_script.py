"""``shell: true`` exec tools: the script is split into simple commands and pipelines, and
each is checked like an argv (:mod:`._exec_safety`).

A placeholder is refused as the command word, as an argument of ``eval``, ``trap``,
``source``/``.``, ``exec``, ``let``, ``alias`` and other builtins that run or name code, anywhere
in a pipeline stage that feeds a shell or interpreter reading its program from stdin
(``… | sh``), and wherever the argv analysis would refuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from ._declarative_core import Placeholder, Template, Text
from ._exec_programs import CODE_BUILTINS, NAME_BUILTINS, RESERVED
from ._exec_safety import (
    ASSIGNMENT,
    PROGRAM_FIX,
    Outcome,
    Word,
    _Refusal,
    analyse,
    raise_refusal,
    refuse_any,
    sweep,
)

__all__ = ["check_script", "script_option_placeholders"]


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
            and (literal in RESERVED or (ASSIGNMENT.match(literal) is not None))
        ):
            continue
        if not stage and literal is None and ASSIGNMENT.match(token.word.prefix):
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
                    refuse_any(stage, "it is piped into a shell or interpreter that runs it")
                stdin_code = _check_stage(stage) or stdin_code
    except _Refusal as refusal:
        raise_refusal(refusal, tool, template.where)


def _check_stage(argv: list[Word]) -> bool:
    """Check one simple command; whether it runs code read from its stdin."""
    program = argv[0]
    if program.placeholders:
        raise _Refusal(program.placeholders[0], "it is the command word", fix=PROGRAM_FIX)
    name = program.literal or ""
    if name in CODE_BUILTINS:
        refuse_any(argv[1:], f"it is given to the shell builtin {name!r}, which runs it")
        return name in ("source", ".") and any(w.literal == "/dev/stdin" for w in argv[1:])
    if name in NAME_BUILTINS:
        refuse_any(
            (word for word in argv[1:] if "=" not in word.prefix),
            f"it is given to the shell builtin {name!r} as a variable name",
            fix="A name is code to bash (array subscripts run commands); use the value only "
            "after 'NAME=' (export NAME={{x}})",
        )
        return False
    outcome = Outcome()
    analyse(argv, outcome)
    sweep(argv)
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
