"""What the CLI's commands share: the model choice, ``--task``/``--input`` parsing,
one-line error causes and terminal-safe output."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from .._errors import InputFileError
from .._files import read_bounded_text
from ..llm._protocol import LLM
from ._offline import offline_llm

__all__ = [
    "LLM_CHOICES",
    "LLMChoice",
    "UsageProblem",
    "choose_llm",
    "did_you_mean",
    "one_line_cause",
    "open_llm",
    "parse_inputs",
    "symbols",
    "write",
]

LLMChoice = Literal["anthropic", "openai", "scripted"]
LLM_CHOICES: Final = ("anthropic", "openai", "scripted")

# A --task key is a variable name as templates write it: letters, digits, _ and inner -.
_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")

OFFLINE_NOTICE: Final = (
    "vega-trio: offline: replies are scripted, not from a model (no ANTHROPIC_API_KEY or "
    "ANTHROPIC_BASE_URL set); set ANTHROPIC_API_KEY for Claude, or pass --llm scripted "
    "to silence this notice"
)


class UsageProblem(Exception):
    """The command line (or a file it names) cannot be used; the message says why and
    what to do. The commands print it on one line and exit with status 2."""


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
async def open_llm(
    choice: LLMChoice, agents: Sequence[tuple[str, str]], default_model: str | None = None
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

    async with AnthropicLLM(default_model=default_model or DEFAULT_MODEL) as anthropic_llm:
        yield anthropic_llm


def backends_for(choice: LLMChoice, llm: LLM) -> dict[str, LLM]:
    """The per-provider backends of a run: offline, every ``provider:model`` agent
    talks to the scripted model too (never to the network); otherwise the chosen
    backend serves its own provider and the other is created from its environment."""
    if choice == "scripted":
        return {"anthropic": llm, "openai": llm}
    return {choice: llm}


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
    """Write ``text`` and a newline, and flush (progress must show while it happens)."""
    stream.write(text + "\n")
    stream.flush()
