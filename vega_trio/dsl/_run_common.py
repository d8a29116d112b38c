"""What the parts of the interpreter share: its limits, the kinds of progress, how a failure
is shown, the stored run a resume continues, and how a run shows and reads values (step
summaries, previews, locations, the items of a ``for``, JSON replies).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs

from .._errors import (
    LLMError,
    ReplyFormatError,
    StepTimeout,
    WorkflowError,
    step_error_class,
)
from ..store import RunRecord, StepRecord
from ._errors import TemplateError
from ._model import (
    AgentStep,
    Document,
    ForStep,
    IfStep,
    ParallelStep,
    RepeatStep,
    ReturnStep,
    SetStep,
    Source,
    Step,
    TryStep,
    WorkflowStep,
)
from ._template import Template
from ._values import to_text

__all__ = ["MAX_WORKFLOW_DEPTH", "ProgressKind", "error_class"]

MAX_WORKFLOW_DEPTH: Final = 10
"""How deeply ``workflow:`` steps may nest (a workflow calling itself counts too)."""

_SHUTDOWN_GRACE: Final = 5.0
_CLOSE_DEADLINE: Final = 2 * _SHUTDOWN_GRACE + 1
_PREVIEW: Final = 200
_FENCED_JSON: Final = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```", re.S)

_log = logging.getLogger("vega_trio.dsl")

ProgressKind: TypeAlias = Literal[
    "workflow_started",
    "workflow_finished",
    "workflow_failed",
    "step_started",
    "step_finished",
    "step_failed",
    "step_reused",
]


# -- errors ------------------------------------------------------------------------------


# The ``error_class`` of a step failure (what ``catch:`` sees); it lives with the errors.
error_class = step_error_class


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, WorkflowError) and exc.cause is not None:
        return _message_of(exc.cause)
    return str(exc) or type(exc).__name__


@attrs.frozen
class _Resumption:
    """What :meth:`Runner.resume` continues: the stored run and its checkpoints."""

    record: RunRecord
    checkpoints: Mapping[str, StepRecord]
    last_path: str | None


_MISSING: Final = object()


# -- helpers -------------------------------------------------------------------------------


_STEP_KINDS: Final[dict[type, str]] = {
    AgentStep: "agent",
    IfStep: "if",
    ForStep: "for",
    ParallelStep: "parallel",
    TryStep: "try",
    RepeatStep: "repeat",
    SetStep: "set",
    ReturnStep: "return",
    WorkflowStep: "workflow",
}


def _summary(step: Step) -> str:
    if isinstance(step, IfStep):
        return f"if {step.condition}"
    if isinstance(step, ForStep):
        return f"for {step.variable} in {step.items}"
    if isinstance(step, ParallelStep):
        return f"parallel ({len(step.branches)} branches)"
    if isinstance(step, RepeatStep):
        return f"repeat (max {step.max})" + (f" until {step.until}" if step.until else "")
    if isinstance(step, SetStep):
        return f"set {', '.join(step.values)}"
    if isinstance(step, WorkflowStep):
        return f"workflow {step.workflow}"
    return _STEP_KINDS[type(step)]


_ITERATION: Final = re.compile(r"\.(?:for|repeat)\[\d+\](?=\.steps\[)")


def _document_path_of(path: str, workflow: str) -> str:
    """The document's path of the step run at ``path`` (what errors name): a step of a
    nested workflow as that workflow's own step (``summary.steps[0]``, not
    ``report.steps[2].summary.steps[0]``), a loop's step without its iteration
    (``report.steps[1].steps[0]``, not ``report.steps[1].for[3].steps[0]``)."""
    marker = f".{workflow}.steps["
    cut = path.rfind(marker)
    if cut >= 0:
        path = path[cut + 1 :]
    return _ITERATION.sub("", path)


def _preview(value: Any) -> str:
    text = to_text(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _location(where: str, source: Source) -> str:
    if source.line:
        return f"{source.file}:{source.line}:{source.column}: {where}"
    return where


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LLMError):
        return f"{exc} (error class: {exc.error_class})"
    if isinstance(exc, WorkflowError | TemplateError | StepTimeout | ReplyFormatError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _restore(variables: dict[str, Any], name: str, saved: object) -> None:
    if saved is _MISSING:
        variables.pop(name, None)
    else:
        variables[name] = saved


def _render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Strings rendered as templates (one placeholder keeps its value's type); lists
    and mappings rendered item by item; anything else as it is."""
    if isinstance(value, str):
        return Template.parse(value).render_value(variables)
    if isinstance(value, Mapping):
        return {key: _render_value(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render_value(item, variables) for item in value]
    return value


def _items_value(expression: str, variables: Mapping[str, Any]) -> Any:
    text = expression if "{{" in expression else f"{{{{ {expression} }}}}"
    return Template.parse(text).render_value(variables)


def _as_items(value: Any, expression: str) -> list[Any]:
    """What a ``for`` iterates over: a list; a string holding a JSON array; else the
    non-empty lines of a string (each stripped)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                pass
            else:
                if isinstance(parsed, list):
                    return parsed
        return [line.strip() for line in value.splitlines() if line.strip()]
    raise TypeError(
        f"`for` needs a list, a JSON array or lines of text to iterate over, but "
        f"{expression!r} is {_kind_of(value)} (text is split into its non-empty lines)"
    )


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {to_text(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _parse_json(reply: str) -> Any:
    """A ``format: json`` reply as data: the whole reply, or the first fenced
    ```` ```json ```` block in it."""
    text = reply.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first_error = exc
    fenced = _FENCED_JSON.search(reply)
    if fenced is not None:
        try:
            return json.loads(fenced.group(1))
        except json.JSONDecodeError as exc:
            first_error = exc
    start = text[:80].replace("\n", " ")
    raise ReplyFormatError(
        f"the reply is not JSON ({first_error.msg} at line {first_error.lineno} column "
        f"{first_error.colno}); it starts {start!r}. Ask the agent to answer with JSON "
        "only (a ```json block is accepted too), or drop `format: json`"
    )


def _addressed_agents(steps: tuple[Step, ...], doc: Document, seen: set[str]) -> set[str]:
    """The agents ``steps`` may send to, through nested steps and sub-workflows."""
    found: set[str] = set()
    for step in steps:
        if isinstance(step, AgentStep):
            found.add(step.agent)
        elif isinstance(step, IfStep):
            found |= _addressed_agents(step.then + step.otherwise, doc, seen)
        elif isinstance(step, ForStep | RepeatStep):
            found |= _addressed_agents(step.steps, doc, seen)
        elif isinstance(step, TryStep):
            found |= _addressed_agents(step.steps + step.catch, doc, seen)
        elif isinstance(step, ParallelStep):
            for branch in step.branches:
                found |= _addressed_agents(branch, doc, seen)
        elif isinstance(step, WorkflowStep) and step.workflow not in seen:
            seen.add(step.workflow)
            sub = doc.workflow(step.workflow)
            if sub is not None:
                found |= _addressed_agents(sub.steps, doc, seen)
    return found
