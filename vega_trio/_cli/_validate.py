"""``vega-trio validate``: every diagnostic of a document, and with ``--verbose`` a
summary of what it defines."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import trio

from ._common import write

if TYPE_CHECKING:
    from ..dsl._model import Document, Step

__all__ = ["describe_document", "validate_command"]


async def validate_command(file: Path, *, verbose: bool = False, out: TextIO | None = None) -> int:
    """Check a ``.vega.yaml`` file: what ``vega-trio validate`` does.

    Prints every diagnostic as ``file:line:col: severity: path: message (hint)``, then
    a one-line verdict; with ``verbose``, a summary of a valid document's agents,
    tools and workflows (with their steps) before it.

    Args:
        file: the document.
        verbose: also print the summary.
        out: where it all goes (default ``sys.stdout``).

    Returns:
        The exit status: 1 when there are errors, 2 when the file cannot be read as input
        (not a regular file, over the size cap: one line says why), else 0.
    """
    from .._errors import InputFileError
    from ..dsl._loader import load_file, validate_file

    out = sys.stdout if out is None else out
    try:
        # NOTE: reading and checking a big file is CPU work: keep the loop responsive.
        diagnostics = await trio.to_thread.run_sync(validate_file, file)
    except InputFileError as exc:  # not a regular file, over the size cap, ...
        write(out, f"vega-trio: error: {exc}")
        return 2
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    for diagnostic in diagnostics:
        write(out, str(diagnostic))
    if verbose and not errors:
        document = await trio.to_thread.run_sync(load_file, file)
        for line in describe_document(document):
            write(out, line)
    counts = f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
    write(out, f"{file}: {'invalid' if errors else 'valid'} ({counts})")
    return 1 if errors else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def describe_document(document: Document) -> Iterator[str]:
    """The lines of ``validate --verbose``'s summary."""
    title = document.name or "(unnamed)"
    yield f"document: {title}" + (f" - {document.description}" if document.description else "")
    yield f"agents ({len(document.agents)}):"
    for agent in document.agents:
        details = [f"model {agent.model or document.settings.default_model or 'default'}"]
        if agent.tools:
            details.append(f"tools {', '.join(agent.tools)}")
        if agent.team:
            details.append(f"team {', '.join(agent.team)}")
        if agent.skills is not None:
            details.append("skills")
        if agent.supervision is not None:
            details.append(f"supervision {agent.supervision.strategy}")
        if agent.budget is not None:
            details.append(f"budget ${agent.budget:.2f}")
        yield f"  {agent.name}: {'; '.join(details)}"
    if document.tools:
        yield f"tools ({len(document.tools)}):"
        for tool in document.tools:
            impl = tool.implementation
            kind = (
                f"exec {impl.command}"
                if hasattr(impl, "command")
                else f"http {getattr(impl, 'method', 'GET')} {getattr(impl, 'url', '')}"
            )
            params = ", ".join(p.name for p in tool.params)
            yield f"  {tool.name}({params}): {kind}"
    if document.settings.mcp_servers:
        yield f"mcp servers ({len(document.settings.mcp_servers)}):"
        for server in document.settings.mcp_servers:
            target = server.url or " ".join([server.command or "", *server.args]).strip()
            yield f"  {server.name}: {server.transport or 'stdio'} {target}"
    yield f"workflows ({len(document.workflows)}):"
    for workflow in document.workflows:
        inputs = ", ".join(
            i.name + ("" if i.default is None and i.required is not False else "?")
            for i in workflow.inputs
        )
        yield f"  {workflow.name}({inputs})" + (
            f": {workflow.description}" if workflow.description else ""
        )
        yield from _describe_steps(workflow.steps, f"{workflow.name}.steps", "    ")


def _short(text: object, width: int = 60) -> str:
    flat = " ".join(str(text).split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def _describe_steps(steps: Sequence[Step], path: str, indent: str) -> Iterator[str]:
    from ..dsl._model import (
        AgentStep,
        ForStep,
        IfStep,
        ParallelStep,
        RepeatStep,
        ReturnStep,
        SetStep,
        TryStep,
        WorkflowStep,
    )

    for i, step in enumerate(steps):
        here = f"{path}[{i}]"
        saved = (
            step.save
            if isinstance(step, (AgentStep, ForStep, ParallelStep, WorkflowStep))
            else None
        )
        save = f" -> {saved}" if saved else ""
        if isinstance(step, AgentStep):
            yield f"{indent}{here} {step.agent}: send {_short(step.send)}{save}"
        elif isinstance(step, IfStep):
            yield f"{indent}{here} if {_short(step.condition)}"
            yield from _describe_steps(step.then, f"{here}.then", indent + "  ")
            yield from _describe_steps(step.otherwise, f"{here}.else", indent + "  ")
        elif isinstance(step, ForStep):
            yield f"{indent}{here} for {step.variable} in {step.items}{save}"
            yield from _describe_steps(step.steps, f"{here}.steps", indent + "  ")
        elif isinstance(step, ParallelStep):
            yield f"{indent}{here} parallel ({len(step.branches)} branches){save}"
            for b, branch in enumerate(step.branches):
                yield from _describe_steps(branch, f"{here}.parallel[{b}]", indent + "  ")
        elif isinstance(step, TryStep):
            yield f"{indent}{here} try"
            yield from _describe_steps(step.steps, f"{here}.try", indent + "  ")
            yield from _describe_steps(step.catch, f"{here}.catch", indent + "  ")
        elif isinstance(step, RepeatStep):
            until = f" until {_short(step.until)}" if step.until else ""
            yield f"{indent}{here} repeat (max {step.max}){until}"
            yield from _describe_steps(step.steps, f"{here}.steps", indent + "  ")
        elif isinstance(step, SetStep):
            yield f"{indent}{here} set {', '.join(step.values)}"
        elif isinstance(step, ReturnStep):
            yield f"{indent}{here} return {_short(step.value)}"
        elif isinstance(step, WorkflowStep):
            yield f"{indent}{here} workflow {step.workflow}{save}"
