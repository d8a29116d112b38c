"""Writing a :class:`Document` back as ``.vega.yaml`` text that :func:`load_document` reads
into an equal document (positions aside).

Only what differs from the defaults is written; durations are written as seconds and money
as US dollars (both plain numbers, which the loader accepts), agent steps in their long
form, parallel branches as lists of steps.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import attrs
from ruamel.yaml import YAML

from ._model import (
    AgentSpec,
    AgentStep,
    Document,
    ExecSpec,
    ForStep,
    HttpSpec,
    IfStep,
    InputSpec,
    MCPServerSpec,
    ParallelStep,
    ParamSpec,
    RepeatStep,
    ReturnStep,
    SetStep,
    Settings,
    Step,
    ToolSpec,
    TryStep,
    WorkflowSpec,
)

__all__ = ["dump_agent", "dump_agents", "dump_document"]


def dump_document(document: Document) -> str:
    """The document as YAML text; ``load_document(dump_document(d)) == d``.

    Args:
        document: a valid document (as :func:`load_document` returns).

    Returns:
        Block-style YAML, keys in the order of the reference.
    """
    data: dict[str, Any] = {}
    if document.name:
        data["name"] = document.name
    if document.description:
        data["description"] = document.description
    settings = _settings(document.settings)
    if settings:
        data["settings"] = settings
    data["agents"] = {agent.name: _agent(agent) for agent in document.agents}
    if document.tools:
        data["tools"] = {tool.name: _tool(tool) for tool in document.tools}
    if document.workflows:
        data["workflows"] = {w.name: _workflow(w) for w in document.workflows}
    return _yaml_text(data)


def dump_agent(agent: AgentSpec) -> dict[str, Any]:
    """One agent as plain JSON data: the mapping written under ``agents.<name>`` (only
    what differs from the defaults; durations in seconds, money in US dollars)."""
    return _agent(agent)


def dump_agents(agents: Mapping[str, Mapping[str, Any]]) -> str:
    """An ``agents:`` section as YAML text (a document :func:`load_document` reads),
    from agent mappings by name (as :func:`dump_agent` makes them)."""
    return _yaml_text({"agents": {name: _plain(dict(data)) for name, data in agents.items()}})


def _yaml_text(data: Mapping[str, Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 4096
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return _changed(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _changed(obj: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of an attrs object that differ from their defaults, as plain data."""
    result: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        if field.name == "where" or field.name in skip:
            continue
        value = getattr(obj, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if default is not attrs.NOTHING and value == default:
            continue
        result[field.name] = _plain(value)
    return result


def _settings(settings: Settings) -> dict[str, Any]:
    data = _changed(
        settings, skip=("mcp_servers", "skill_directories", "log_level", "health", "retention_days")
    )
    if settings.mcp_servers:
        data["mcp"] = {"servers": [_server(s) for s in settings.mcp_servers]}
    if settings.skill_directories:
        data["skills"] = {"directories": list(settings.skill_directories)}
    if settings.log_level is not None:
        data["logging"] = {"level": settings.log_level}
    if settings.health is not None:
        data["health"] = _changed(settings.health)
    if settings.retention_days is not None:
        data["store"] = {"retention_days": settings.retention_days}
    return data


def _server(server: MCPServerSpec) -> dict[str, Any]:
    return {"name": server.name, **_changed(server, skip=("name",))}


def _agent(agent: AgentSpec) -> dict[str, Any]:
    data = _changed(agent, skip=("name", "budget", "budget_on_exceed"))
    if agent.budget is not None:
        if agent.budget_on_exceed != "block":
            data["budget"] = {"limit": agent.budget, "on_exceed": agent.budget_on_exceed}
        else:
            data["budget"] = agent.budget
    return data


def _tool(tool: ToolSpec) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if tool.description:
        data["description"] = tool.description
    if tool.params:
        data["params"] = [_param(p) for p in tool.params]
    kind = "http" if isinstance(tool.implementation, HttpSpec) else "exec"
    data["implementation"] = {"type": kind, **_implementation(tool.implementation)}
    return data


def _implementation(spec: HttpSpec | ExecSpec) -> dict[str, Any]:
    required = "url" if isinstance(spec, HttpSpec) else "command"
    return {required: getattr(spec, required), **_changed(spec, skip=(required,))}


def _param(param: ParamSpec) -> dict[str, Any]:
    return {"name": param.name, **_changed(param, skip=("name",))}


def _input(spec: InputSpec) -> dict[str, Any]:
    return _changed(spec, skip=("name",))


def _workflow(workflow: WorkflowSpec) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if workflow.description:
        data["description"] = workflow.description
    if workflow.inputs:
        data["inputs"] = {spec.name: _input(spec) for spec in workflow.inputs}
    data["steps"] = _steps(workflow.steps)
    if workflow.output is not None:
        data["output"] = _plain(workflow.output)
    return data


def _steps(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    return [_step(step) for step in steps]


def _step(step: Step) -> dict[str, Any]:
    if isinstance(step, AgentStep):
        return {step.agent: {"send": step.send, **_changed(step, skip=("agent", "send"))}}
    if isinstance(step, IfStep):
        data: dict[str, Any] = {"if": step.condition, "then": _steps(step.then)}
        if step.otherwise:
            data["else"] = _steps(step.otherwise)
        return data
    if isinstance(step, ForStep):
        data = {"for": f"{step.variable} in {step.items}", "steps": _steps(step.steps)}
        if step.save is not None:
            data["save"] = step.save
        return data
    if isinstance(step, ParallelStep):
        data = {"parallel": [_steps(branch) for branch in step.branches]}
        if step.save is not None:
            data["save"] = step.save
        return data
    if isinstance(step, TryStep):
        data = {"try": _steps(step.steps)}
        if step.catch:
            data["catch"] = _steps(step.catch)
        return data
    if isinstance(step, RepeatStep):
        body: dict[str, Any] = {"steps": _steps(step.steps)}
        if step.until is not None:
            body["until"] = step.until
        body["max"] = step.max
        return {"repeat": body}
    if isinstance(step, SetStep):
        return {"set": _plain(step.values)}
    if isinstance(step, ReturnStep):
        return {"return": _plain(step.value)}
    data = {"workflow": step.workflow}
    if step.inputs:
        data["with"] = _plain(step.inputs)
    if step.save is not None:
        data["save"] = step.save
    return data
