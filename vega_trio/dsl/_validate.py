"""Checks of what a document's parts refer to (SPEC §8.4), after the loader has checked
their shapes: agents named by steps and teams, tools named by agents, workflows named by
``workflow:`` steps and cycles between them, templates and conditions (syntax and filters),
tool definitions, and — as warnings — variables that nothing defines before their use.

One pass over the steps of each workflow, carrying the set of variables defined so far, so
that a long workflow is checked in linear time.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from ..tools import DeclarativeTool, ExecImplementation
from ..tools._declarative_core import ToolDefinitionError
from ..tools._http_template import url_host_parameter
from ._build import declarative_tool
from ._diagnostics import Diagnostic, did_you_mean
from ._errors import TemplateError
from ._expr_tree import VariableRef
from ._loader import Loaded, ScalarLocation
from ._model import (
    AgentSpec,
    AgentStep,
    Document,
    ForStep,
    HttpSpec,
    IfStep,
    ParallelStep,
    RepeatStep,
    ReturnStep,
    SetStep,
    Source,
    Step,
    ToolSpec,
    TryStep,
    WorkflowSpec,
    WorkflowStep,
)
from ._template import Condition, Template

__all__ = ["BUILTIN_TOOLS", "Known", "check_agents", "check_document"]

BUILTIN_TOOLS: Final = ("read_file", "write_file", "append_file", "list_files", "run_command")
"""The built-in tools (SPEC §5.2); an agent may list them when ``settings.sandbox`` is set."""

_GLOB: Final = re.compile(r"[*?\[]")
_FOR: Final = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s+in\s+(\S.*?)\s*\Z", re.S)
_LOOP_VARIABLES: Final = frozenset({"loop"})
_CATCH_VARIABLES: Final = frozenset({"error", "error_class"})


def check_document(loaded: Loaded) -> list[Diagnostic]:
    """The cross-reference errors and the warnings of a loaded document (not sorted)."""
    assert loaded.document is not None
    return _Checker(loaded, loaded.document).run()


@attrs.frozen(kw_only=True)
class Known:
    """What agents may refer to besides a document's own definitions: the names a
    running orchestrator already has (its tools, built-ins included when it has a
    sandbox; its MCP servers; its agents)."""

    tools: frozenset[str] = frozenset()
    servers: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()


def check_agents(loaded: Loaded, known: Known) -> list[Diagnostic]:
    """The cross-reference errors and warnings of a loaded document's *agents* only,
    checked against ``known`` (a running orchestrator's tools, MCP servers and agents)
    instead of the document's own ``tools:`` and ``settings`` — the check of an agent
    defined at run time (``POST /api/agents``), with the same diagnostics as
    ``vega-trio validate`` (not sorted)."""
    assert loaded.document is not None
    checker = _Checker(loaded, loaded.document, known)
    for agent in loaded.document.agents:
        checker.check_agent(agent)
    return checker.diagnostics


class _Checker:
    def __init__(self, loaded: Loaded, document: Document, known: Known | None = None) -> None:
        self.loaded = loaded
        self.document = document
        self.diagnostics: list[Diagnostic] = []
        self.agents: dict[str, Any] = {agent.name: agent for agent in document.agents}
        self.workflows = {workflow.name: workflow for workflow in document.workflows}
        self.tools = {tool.name: tool for tool in document.tools}
        self.servers = {server.name for server in document.settings.mcp_servers}
        sandbox = document.settings.sandbox is not None
        #: The tool names an agent may list, and whether built-ins are among them.
        self.available = set(self.tools) | (set(BUILTIN_TOOLS) if sandbox else set())
        self.sandbox = sandbox
        if known is not None:
            self.available |= known.tools
            self.sandbox = sandbox or all(name in known.tools for name in BUILTIN_TOOLS)
            self.servers |= known.servers
            for name in known.agents:
                self.agents.setdefault(name, None)
        # workflow name -> [(callee, step)], for the cycle check
        self.calls: dict[str, list[tuple[str, WorkflowStep]]] = {}
        # callee -> names its callers pass with ``with:`` (variables in the callee)
        self.passed: dict[str, set[str]] = {}

    # -- reporting --

    def location(self, obj: object, field: str) -> ScalarLocation | None:
        return self.loaded.locations.get((id(obj), field))

    def source(self, obj: Any, field: str | None = None) -> Source:
        if field is not None and (location := self.location(obj, field)) is not None:
            return location.source()
        where: Source = obj.where
        return where

    def report(
        self,
        source: Source,
        message: str,
        hint: str | None = None,
        *,
        severity: str = "error",
    ) -> None:
        self.diagnostics.append(
            Diagnostic(
                severity="warning" if severity == "warning" else "error",
                source=source,
                message=message,
                hint=hint,
            )
        )

    # -- passes --

    def run(self) -> list[Diagnostic]:
        for tool in self.document.tools:
            self.check_tool(tool)
        for agent in self.document.agents:
            self.check_agent(agent)
        for workflow in self.document.workflows:
            for step in _walk(workflow.steps):
                if isinstance(step, WorkflowStep):
                    self.calls.setdefault(workflow.name, []).append((step.workflow, step))
                    self.passed.setdefault(step.workflow, set()).update(step.inputs)
        for workflow in self.document.workflows:
            self.check_workflow(workflow)
        self.check_cycles()
        return self.diagnostics

    def check_tool(self, tool: ToolSpec) -> None:
        if tool.name in BUILTIN_TOOLS:
            self.report(
                tool.where,
                f"tool {tool.name!r} has the name of a built-in tool",
                "rename it; tool names are unique",
            )
            return
        if id(tool) in self.loaded.broken or any(
            id(param) in self.loaded.broken for param in tool.params
        ):
            return
        try:
            # NOTE: built exactly as the builder builds it; paths are not resolved here.
            built = declarative_tool(tool, base_dir=Path())
            self.check_exec_options(tool, built)
        except ToolDefinitionError as problem:
            where = tool.where
            field = problem.where
            while field and self.location(tool, field) is None:
                field = field[: max(field.rfind("."), field.rfind("["), 0)]
            if field:
                where = self.source(tool, field)
            path = f"{tool.where.path}.{problem.where}" if problem.where else tool.where.path
            message = str(problem).removeprefix(f"tool {tool.name!r}: ")
            self.report(Source(where.file, where.line, where.column, path), message)
        except (ValueError, TypeError) as problem:
            self.report(tool.where, f"invalid tool: {problem}")
        else:
            self.check_http_host(tool)

    def check_http_host(self, tool: ToolSpec) -> None:
        """Warn when the model chooses an http tool's server and no allow-list limits it."""
        spec = tool.implementation
        if not isinstance(spec, HttpSpec) or spec.allowed_hosts is not None:
            return
        param = url_host_parameter(spec.url)
        if param is None:
            return
        self.report(
            self.source(tool, "implementation.url"),
            f"the parameter {param!r} decides which server this http tool calls and it has "
            "no allowed_hosts: the model may make it call any public host",
            "list the hosts it may call, e.g. 'allowed_hosts: [api.example.com]'; internal "
            "and cloud metadata addresses are refused either way",
            severity="warning",
        )

    def check_exec_options(self, tool: ToolSpec, built: DeclarativeTool) -> None:
        """Warn about exec parameters in option positions (their values may not start with
        '-', so such a call fails) that neither follow '--' nor allow options."""
        implementation = built.implementation
        if not isinstance(implementation, ExecImplementation):
            return
        for name in implementation.unguarded_options(built.name, built.params):
            self.report(
                self.source(tool, "implementation.command"),
                f"parameter {name!r} fills an argument where the program reads options (no "
                "'--' before it): a value starting with '-' would be an option, so the tool "
                "refuses such values when it is called",
                "put '--' before the argument if the program understands it, or set "
                f"'allow_options: true' on {name!r} if options are what it is for",
                severity="warning",
            )

    def check_agent(self, agent: AgentSpec) -> None:
        sandbox = self.sandbox
        available = self.available
        for i, name in enumerate(agent.tools):
            source = self.source(agent, f"tools[{i}]")
            if "__" in name:
                server = name.split("__", 1)[0]
                if _GLOB.search(server):
                    if not any(fnmatch.fnmatchcase(s, server) for s in self.servers):
                        self.report(
                            source,
                            f"the pattern {server!r} in {name!r} matches no MCP server",
                            _servers_hint(self.servers),
                        )
                elif server not in self.servers:
                    self.report(
                        source,
                        f"unknown MCP server {server!r} in tool {name!r}",
                        did_you_mean(server, self.servers) or _servers_hint(self.servers),
                    )
                continue
            if _GLOB.search(name):
                if any(fnmatch.fnmatchcase(t, name) for t in available):
                    continue
                if not sandbox and any(fnmatch.fnmatchcase(t, name) for t in BUILTIN_TOOLS):
                    self.report(
                        source,
                        f"the pattern {name!r} matches only built-in tools, which need "
                        "settings.sandbox",
                        _SANDBOX_HINT,
                    )
                else:
                    self.report(
                        source,
                        f"the pattern {name!r} matches no tool",
                        "define tools under the top-level 'tools:' or use server__* for MCP",
                    )
                continue
            if name in available:
                continue
            if name in BUILTIN_TOOLS:
                if not sandbox:
                    self.report(
                        source, f"built-in tool {name!r} needs settings.sandbox", _SANDBOX_HINT
                    )
                continue
            self.report(
                source,
                f"unknown tool {name!r}",
                did_you_mean(name, [*self.tools, *BUILTIN_TOOLS, *sorted(available)])
                or "define it under the top-level 'tools:', use a built-in ("
                + ", ".join(BUILTIN_TOOLS)
                + ") or 'server__tool' for an MCP server",
            )
        self.check_fallback_model(agent)
        for i, member in enumerate(agent.team):
            source = self.source(agent, f"team[{i}]")
            if member == agent.name:
                self.report(
                    source,
                    f"agent {agent.name!r} is in its own team",
                    "list the agents it delegates to",
                )
            elif member not in self.agents:
                self.report(
                    source,
                    f"unknown agent {member!r} in team",
                    did_you_mean(member, self.agents) or _agents_hint(self.agents),
                )

    def check_fallback_model(self, agent: AgentSpec) -> None:
        # NOTE: a provider prefix ("openai:") is read as for ``model``: the orchestrator
        # picks the backend by it, and an unknown prefix is part of the model's name.
        fallback = agent.fallback_model
        if fallback is None:
            return
        source = self.source(agent, "fallback_model")
        if not fallback.strip():
            self.report(source, "fallback_model is empty", "name a model, or drop the key")
        elif fallback == agent.model:
            self.report(
                source,
                f"agent {agent.name!r} has fallback_model equal to its model ({fallback!r})",
                "name a different model, or drop fallback_model",
            )
        elif agent.model is None and fallback == self.document.settings.default_model:
            self.report(
                source,
                f"agent {agent.name!r} has fallback_model equal to settings.default_model "
                f"({fallback!r}), which it uses as its model: the fallback would call the same "
                "model again",
                "name a different model, or give the agent a model",
                severity="warning",
            )

    # -- workflows --

    def check_workflow(self, workflow: WorkflowSpec) -> None:
        defined = {spec.name for spec in workflow.inputs}
        if not workflow.inputs:
            defined |= self.passed.get(workflow.name, set())
        flow = _Flow(self, workflow)
        defined = flow.steps(workflow.steps, defined)
        if isinstance(workflow.output, str):
            flow.template(workflow, "output", workflow.output, defined)

    def check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[str] = []
        reported: set[frozenset[str]] = set()

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for callee, step in self.calls.get(name, ()):
                if callee not in self.workflows:
                    continue
                if state.get(callee) == 1:
                    cycle = [*path[path.index(callee) :], callee]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self.report(
                            self.source(step, "workflow"),
                            "workflow cycle: " + " → ".join(cycle),
                            "a workflow cannot call itself, directly or through others; "
                            "use a repeat or for step instead",
                        )
                elif callee not in state:
                    visit(callee)
            path.pop()
            state[name] = 2

        for workflow in self.document.workflows:
            if workflow.name not in state:
                visit(workflow.name)


class _Flow:
    """One workflow's steps, checked in order with the variables defined so far."""

    def __init__(self, checker: _Checker, workflow: WorkflowSpec) -> None:
        self.checker = checker
        self.workflow = workflow
        # NOTE: inside a step whose header was broken (a for without 'x in y'), the loop
        # variable is unknown; warnings there would only repeat the header's error.
        self.quiet = 0

    def steps(self, steps: Iterable[Step], defined: set[str]) -> set[str]:
        """The variables defined after ``steps``, given those defined before (``defined``
        is updated in place and returned)."""
        scope = _Scope(defined)
        self.run(steps, scope)
        return scope.names

    def run(self, steps: Iterable[Step], scope: _Scope) -> None:
        for step in steps:
            self.step(step, scope)

    def branch(self, steps: Iterable[Step], scope: _Scope, *extra: str) -> set[str]:
        """Check ``steps`` as a branch seeing ``extra`` names too; return what it added
        (``extra`` included) and leave ``scope`` as it was."""
        scope.open()
        for name in extra:
            scope.add(name)
        self.run(steps, scope)
        return scope.close()

    def step(self, step: Step, scope: _Scope) -> None:
        checker = self.checker
        defined = scope.names
        if isinstance(step, AgentStep):
            if step.agent not in checker.agents:
                checker.report(
                    checker.source(step, "agent"),
                    f"unknown agent {step.agent!r}",
                    did_you_mean(step.agent, checker.agents) or _agents_hint(checker.agents),
                )
            self.template(step, "send", step.send, defined)
            scope.add(step.save)
        elif isinstance(step, IfStep):
            self.condition(step, "condition", step.condition, defined)
            then = self.branch(step.then, scope)
            otherwise = self.branch(step.otherwise, scope)
            scope.update(then | otherwise)
        elif isinstance(step, ForStep):
            self.items(step, defined)
            self.quiet += not step.variable
            inner = self.branch(step.steps, scope, step.variable, *_LOOP_VARIABLES)
            self.quiet -= not step.variable
            scope.update(inner - {step.variable} - _LOOP_VARIABLES)
            scope.add(step.save)
        elif isinstance(step, ParallelStep):
            merged: set[str] = set()
            for branch in step.branches:
                merged |= self.branch(branch, scope)
            scope.update(merged)
            scope.add(step.save)
        elif isinstance(step, TryStep):
            tried = self.branch(step.steps, scope)
            caught = self.branch(step.catch, scope, *_CATCH_VARIABLES)
            scope.update(tried | (caught - _CATCH_VARIABLES))
        elif isinstance(step, RepeatStep):
            scope.open()
            for name in _LOOP_VARIABLES:
                scope.add(name)
            self.run(step.steps, scope)
            if step.until is not None:
                self.condition(step, "until", step.until, defined)
            scope.update(scope.close() - _LOOP_VARIABLES)
        elif isinstance(step, SetStep):
            for name, value in step.values.items():
                if isinstance(value, str):
                    self.template(step, f"values.{name}", value, defined)
                scope.add(name)
        elif isinstance(step, ReturnStep):
            if isinstance(step.value, str):
                self.template(step, "value", step.value, defined)
        else:
            self.workflow_step(step, defined)
            scope.add(step.save)

    def workflow_step(self, step: WorkflowStep, defined: set[str]) -> None:
        checker = self.checker
        callee = checker.workflows.get(step.workflow)
        if callee is None:
            checker.report(
                checker.source(step, "workflow"),
                f"unknown workflow {step.workflow!r}",
                did_you_mean(step.workflow, checker.workflows)
                or "workflows: " + ", ".join(checker.workflows),
            )
        elif callee.inputs:
            declared = {spec.name for spec in callee.inputs}
            for name in step.inputs:
                if name not in declared:
                    checker.report(
                        checker.source(step, f"inputs.{name}"),
                        f"workflow {callee.name!r} has no input {name!r}",
                        did_you_mean(name, declared)
                        or "its inputs: " + ", ".join(sorted(declared)),
                    )
            for spec in callee.inputs:
                if spec.required is True and spec.name not in step.inputs:
                    checker.report(
                        checker.source(step, "workflow"),
                        f"workflow {callee.name!r} needs its input {spec.name!r}",
                        f"pass it with 'with: {{{spec.name}: ...}}'",
                    )
        for name, value in step.inputs.items():
            if isinstance(value, str):
                self.template(step, f"inputs.{name}", value, defined)

    def items(self, step: ForStep, defined: set[str]) -> None:
        location = self.checker.location(step, "for")
        if location is None:
            return
        header = location.node.value
        match = _FOR.match(header)
        if match is None:  # the loader reported it
            return
        items = match.group(1)
        offset = match.start(1)
        if "{{" in items:
            self.parsed(Template.parse, items, location, offset, defined)
        else:
            self.parsed(Template.parse, "{{ " + items + " }}", location, offset - 3, defined)

    def template(self, obj: object, field: str, text: str, defined: set[str]) -> None:
        location = self.checker.location(obj, field)
        if location is None:
            return
        self.parsed(Template.parse, text, location, 0, defined)

    def condition(self, obj: object, field: str, text: str, defined: set[str]) -> None:
        location = self.checker.location(obj, field)
        if location is None:
            return
        self.parsed(Condition.parse, text, location, 0, defined)

    def parsed(
        self,
        parse: Any,
        text: str,
        location: ScalarLocation,
        offset: int,
        defined: set[str],
    ) -> None:
        try:
            parsed: Template | Condition = parse(text)
        except TemplateError as problem:
            self.checker.report(
                location.source(max(0, offset + problem.position)),
                problem.summary,
                problem.hint or None,
            )
            return
        for reference in parsed.references:
            if reference.name not in defined and not reference.defaulted:
                self.undefined(reference, location, offset)

    def undefined(self, reference: VariableRef, location: ScalarLocation, offset: int) -> None:
        if self.quiet:
            return
        name = reference.name
        self.checker.report(
            location.source(max(0, offset + reference.position)),
            f"variable {name!r} is not defined before this use",
            f"declare it under workflows.{self.workflow.name}.inputs, save or set it in an "
            f"earlier step, or pass it with --task {name}=...",
            severity="warning",
        )


class _Scope:
    """The variables defined so far: one set changed in place, with an undo log per open
    branch. A branch's additions are taken back before its sibling is checked and then
    merged, so the cost per step is what the step adds — copying the set at every step
    made checking a long workflow quadratic in its length."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self._added: list[list[str]] = []

    def add(self, name: str | None) -> None:
        if name is not None and name not in self.names:
            self.names.add(name)
            if self._added:
                self._added[-1].append(name)

    def update(self, names: Iterable[str]) -> None:
        for name in names:
            self.add(name)

    def open(self) -> None:
        """Start a branch: what is added from now on is logged."""
        self._added.append([])

    def close(self) -> set[str]:
        """End the branch: take back what it added and return it."""
        added = self._added.pop()
        self.names.difference_update(added)
        return set(added)


def _walk(steps: Iterable[Step]) -> Iterable[Step]:
    """Every step, nested ones included, in file order."""
    stack = list(reversed(tuple(steps)))
    while stack:
        step = stack.pop()
        yield step
        children: tuple[Step, ...] = ()
        if isinstance(step, IfStep):
            children = (*step.then, *step.otherwise)
        elif isinstance(step, ForStep | RepeatStep):
            children = step.steps
        elif isinstance(step, TryStep):
            children = (*step.steps, *step.catch)
        elif isinstance(step, ParallelStep):
            children = tuple(s for branch in step.branches for s in branch)
        stack.extend(reversed(children))


_SANDBOX_HINT: Final = (
    "add 'sandbox: ./workspace' under settings: file tools and run_command are confined to it"
)


def _servers_hint(servers: Iterable[str]) -> str:
    names = sorted(servers)
    if not names:
        return "no MCP servers are configured; add it under settings.mcp.servers"
    return "configured MCP servers: " + ", ".join(names)


def _agents_hint(agents: Mapping[str, Any]) -> str:
    return "agents: " + ", ".join(agents)
