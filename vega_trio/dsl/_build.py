"""The builder: a loaded :class:`~vega_trio.dsl._model.Document` becomes runtime objects.

Two functions, both pure (apart from creating the sandbox directory and reading skill
files), so that every key of a ``.vega.yaml`` file has a visible effect (SPEC §8.1):

* :func:`orchestrator_config` — the :class:`~vega_trio.OrchestratorConfig` (default
  model, global budget, per-model rate limit, prices, sandbox, MCP servers and the
  top-level ``tools:``);
* :func:`build_agents` — one :class:`~vega_trio.Agent` per ``agents:`` entry, with its
  supervision, retry policy, rate limit, circuit breaker, budget, tools, skills, team and
  delegation.

Relative paths (``sandbox``, skill directories, an exec tool's ``cwd``, an MCP server's
``cwd``) are relative to ``base_dir``: the directory of the ``.vega.yaml`` file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._config import OrchestratorConfig
from ..agent import Agent, Delegation
from ..llm import PriceTable
from ..resilience import Budget, CircuitBreaker, RateLimit, RetryPolicy
from ..runtime import Backoff, Supervision
from ..skills import Skill, SkillsPrompt, load_skills
from ..tools import (
    DeclarativeTool,
    ExecImplementation,
    HttpImplementation,
    ResourceLimits,
    Tool,
    ToolParam,
)
from ..tools.mcp import MCPServerConfig
from ._model import (
    AgentSpec,
    BackoffSpec,
    Document,
    ExecSpec,
    HttpSpec,
    LimitsSpec,
    MCPServerSpec,
    RateLimitSpec,
    Settings,
    ToolSpec,
)

__all__ = ["build_agents", "orchestrator_config"]


def orchestrator_config(doc: Document, *, base_dir: Path) -> OrchestratorConfig:
    """The :class:`~vega_trio.OrchestratorConfig` of ``doc``.

    Settings the document leaves out keep the config's defaults; callers override
    fields with ``open_orchestrator(config, llm=..., shutdown_timeout=...)`` (or
    :func:`attrs.evolve`).

    * ``settings.default_model`` → ``default_model``;
    * ``settings.budget`` → ``budget`` (a global ``block`` budget);
    * ``settings.rate_limit`` → ``rate_limit`` (requests/tokens per minute of *each* model);
    * ``settings.prices`` → ``prices`` (the packaged table with these models replaced);
    * ``settings.sandbox`` → ``sandbox`` (relative to ``base_dir``; created if missing),
      which also registers the built-in file and command tools;
    * ``settings.mcp.servers`` → ``mcp_servers``;
    * ``settings.health`` → ``health`` (a :class:`~vega_trio.observability.HealthConfig`);
    * top-level ``tools:`` → ``tools`` (one :class:`~vega_trio.tools.Tool` each; an exec
      tool without ``cwd`` runs in the sandbox when there is one).

    Args:
        doc: the loaded (and validated) document.
        base_dir: what relative paths are relative to.

    Raises:
        ToolDefinitionError: a tool definition is malformed (the message names it).
        ValueError: a price override or a rate limit is malformed.
        OSError: the sandbox directory cannot be created.
    """
    return OrchestratorConfig(**_config_fields(doc, base_dir=base_dir))


def _config_fields(doc: Document, *, base_dir: Path) -> dict[str, Any]:
    """The config fields ``doc`` sets."""
    settings = doc.settings
    options: dict[str, Any] = {}
    if settings.default_model:
        options["default_model"] = settings.default_model
    if settings.budget is not None:
        options["budget"] = Budget(limit=settings.budget)
    if settings.rate_limit is not None:
        options["rate_limit"] = _rate_limit(settings.rate_limit)
    if settings.prices:
        options["prices"] = PriceTable.default().with_overrides(_prices(settings.prices))
    sandbox = sandbox_path(settings, base_dir=base_dir)
    if sandbox is not None:
        sandbox.mkdir(parents=True, exist_ok=True)
        options["sandbox"] = sandbox
    if settings.mcp_servers:
        options["mcp_servers"] = [
            _mcp_server(spec, base_dir=base_dir) for spec in settings.mcp_servers
        ]
    if settings.health is not None:
        from ..observability import HealthConfig

        given = attrs.asdict(settings.health, recurse=False)
        given.pop("where")
        options["health"] = HealthConfig(**{k: v for k, v in given.items() if v is not None})
    if doc.tools:
        options["tools"] = [
            build_tool(spec, base_dir=base_dir, sandbox=sandbox) for spec in doc.tools
        ]
    return options


def sandbox_path(settings: Settings, *, base_dir: Path) -> Path | None:
    """``settings.sandbox`` as an absolute path (``~`` expanded, relative to
    ``base_dir``), or ``None`` when the document has no sandbox."""
    if not settings.sandbox:
        return None
    return _resolve(settings.sandbox, base_dir)


def build_tool(spec: ToolSpec, *, base_dir: Path, sandbox: Path | None = None) -> Tool:
    """One top-level ``tools:`` entry as a registered-ready :class:`~vega_trio.tools.Tool`.

    Unset limits (``timeout``, response/output caps) keep the tool library's defaults.

    Raises:
        ToolDefinitionError: the definition is malformed (unknown ``{{param}}``, ...).
    """
    return declarative_tool(spec, base_dir=base_dir, sandbox=sandbox).to_tool()


def declarative_tool(
    spec: ToolSpec, *, base_dir: Path, sandbox: Path | None = None
) -> DeclarativeTool:
    """The :class:`~vega_trio.tools.DeclarativeTool` of a ``tools:`` entry (the validator
    builds it too, so a definition is checked exactly as it will run).

    Raises:
        ToolDefinitionError: the definition is malformed (unknown ``{{param}}``, ...).
    """
    params = [_param(p) for p in spec.params]
    implementation: HttpImplementation | ExecImplementation
    if isinstance(spec.implementation, HttpSpec):
        implementation = _http(spec.implementation)
    else:
        implementation = _exec(spec.implementation, base_dir=base_dir, sandbox=sandbox)
    return DeclarativeTool(
        name=spec.name,
        description=spec.description,
        params=params,
        implementation=implementation,
    )


def build_agents(doc: Document, *, base_dir: Path) -> dict[str, Agent]:
    """One :class:`~vega_trio.Agent` per ``agents:`` entry, by name, in file order.

    Every key maps onto the runtime: ``supervision`` → :class:`~vega_trio.Supervision`,
    ``retry`` → :class:`~vega_trio.resilience.RetryPolicy`, ``rate_limit`` →
    :class:`~vega_trio.resilience.RateLimit`, ``circuit_breaker`` → a fresh
    :class:`~vega_trio.resilience.CircuitBreaker` per agent, ``budget`` →
    :class:`~vega_trio.resilience.Budget`, ``timeout`` → ``send_timeout``, ``tools`` →
    names and globs the orchestrator resolves at spawn, ``skills`` (with
    ``settings.skills.directories``) → a :class:`~vega_trio.skills.SkillsPrompt` around
    ``system``, ``team`` → the members' ``Agent`` objects, ``delegation`` →
    :class:`~vega_trio.Delegation`.

    Skills: ``settings.skills.directories`` apply to every agent (a missing one is
    skipped: ``~/.vega/skills`` need not exist); an agent's own ``skills.directories``
    must exist; its ``include``/``exclude`` filter both. An agent gets a skills prompt
    when any skill directory applies to it.

    Args:
        doc: the loaded (and validated) document.
        base_dir: what relative skill directories are relative to.

    Raises:
        SkillError: a skill file is invalid, or an agent's skill directory is missing.
        ValueError: a value the runtime refuses (the message names the agent).
    """
    specs = {spec.name: spec for spec in doc.agents}
    built: dict[str, Agent] = {}
    building: set[str] = set()

    def build(name: str) -> Agent:
        agent = built.get(name)
        if agent is not None:
            return agent
        spec = specs[name]
        building.add(name)
        # NOTE: a team cycle (a in b's team, b in a's) cannot be built from objects
        # alone; the member still being built is named instead, and the orchestrator
        # resolves the name (open_runner registers every agent).
        team: list[Agent | str] = [
            member if member in building or member not in specs else build(member)
            for member in spec.team
        ]
        try:
            agent = _agent(spec, doc.settings, team=team, base_dir=base_dir)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"agent {spec.name!r} ({spec.where}): {exc}") from exc
        building.discard(name)
        built[name] = agent
        return agent

    for spec in doc.agents:
        build(spec.name)
    return {spec.name: built[spec.name] for spec in doc.agents}


# -- pieces -------------------------------------------------------------------------------


def _agent(
    spec: AgentSpec, settings: Settings, *, team: list[Agent | str], base_dir: Path
) -> Agent:
    options: dict[str, Any] = {}
    if spec.max_tokens is not None:
        options["max_tokens"] = spec.max_tokens
    if spec.max_iterations is not None:
        options["max_iterations"] = spec.max_iterations
    if spec.retry is not None:
        options["retry"] = _retry(spec)
    if team:
        # NOTE: through a dict: the attrs plugin types a ``converter=tuple`` field's
        # argument as an unbound Iterable, which nothing matches.
        options["team"] = tuple(team)
    return Agent(
        name=spec.name,
        model=spec.model,
        fallback_model=spec.fallback_model,
        system=_system(spec, settings, base_dir=base_dir),
        tools=list(spec.tools) or None,
        temperature=spec.temperature,
        send_timeout=spec.timeout,
        description=spec.description,
        supervision=_supervision(spec),
        rate_limit=_rate_limit(spec.rate_limit) if spec.rate_limit is not None else None,
        circuit_breaker=(
            CircuitBreaker(
                name=f"agent {spec.name!r}",
                threshold=spec.circuit_breaker.threshold,
                reset_after=spec.circuit_breaker.reset_after,
                half_open_max=spec.circuit_breaker.half_open_max,
            )
            if spec.circuit_breaker is not None
            else None
        ),
        budget=(
            Budget(limit=spec.budget, on_exceed=spec.budget_on_exceed)
            if spec.budget is not None
            else None
        ),
        budget_scope=spec.budget_scope,
        delegation=_delegation(spec),
        **options,
    )


def _delegation(spec: AgentSpec) -> Delegation | None:
    if spec.delegation is None:
        return None
    options: dict[str, Any] = {"include_roles": spec.delegation.include_roles}
    return Delegation(
        context_window=spec.delegation.context_window,
        blackboard=spec.delegation.blackboard,
        **options,
    )


def _system(spec: AgentSpec, settings: Settings, *, base_dir: Path) -> str | SkillsPrompt:
    own = spec.skills
    if not settings.skill_directories and (own is None or not own.directories):
        return spec.system
    include = own.include if own is not None else ()
    exclude = own.exclude if own is not None else ()
    # NOTE: one load over every directory: a directory named both globally and by the
    # agent is read once, and include/exclude apply to the skills of all of them.
    directories: list[str] = [
        directory
        for directory in settings.skill_directories
        if _resolve(directory, base_dir).is_dir()  # a missing global one is skipped
    ]
    if own is not None:
        directories.extend(own.directories)  # the agent's own must exist
    skills: list[Skill] = []
    if directories:
        skills.extend(load_skills(directories, include=include, exclude=exclude, base_dir=base_dir))
    max_active = own.max_active if own is not None else 3
    return SkillsPrompt(spec.system, skills, max_active)


def _backoff(spec: BackoffSpec) -> Backoff:
    return Backoff(
        kind=spec.kind,
        initial=spec.initial,
        multiplier=spec.multiplier,
        max=spec.max,
        jitter=spec.jitter,
    )


def _supervision(spec: AgentSpec) -> Supervision | None:
    sup = spec.supervision
    if sup is None:
        return None
    options: dict[str, Any] = {}
    if sup.backoff is not None:
        options["backoff"] = _backoff(sup.backoff)
    return Supervision(
        strategy=sup.strategy,
        max_restarts=sup.max_restarts,
        window=sup.window,
        restart_state=sup.restart_state,
        **options,
    )


def _retry(spec: AgentSpec) -> RetryPolicy:
    retry = spec.retry
    assert retry is not None
    options: dict[str, Any] = {}
    if retry.backoff is not None:
        options["backoff"] = _backoff(retry.backoff)
    if retry.retry_on is not None:
        options["retry_on"] = retry.retry_on
    return RetryPolicy(max_attempts=retry.max_attempts, **options)


def _rate_limit(spec: RateLimitSpec) -> RateLimit:
    return RateLimit(
        requests_per_minute=spec.requests_per_minute,
        tokens_per_minute=spec.tokens_per_minute,
        strategy=spec.strategy,
    )


def _param(spec: Any) -> ToolParam:
    options: dict[str, Any] = {}
    if spec.required is not None:
        options["required"] = spec.required
    return ToolParam(
        name=spec.name,
        type=spec.type,
        description=spec.description,
        default=spec.default,
        enum=spec.enum,
        allow_options=spec.allow_options,
        **options,
    )


def _http(spec: HttpSpec) -> HttpImplementation:
    options: dict[str, Any] = {}
    if spec.timeout is not None:
        options["timeout"] = spec.timeout
    if spec.max_response_bytes is not None:
        options["max_response_bytes"] = spec.max_response_bytes
    if spec.allowed_hosts is not None:
        options["allowed_hosts"] = spec.allowed_hosts
    return HttpImplementation(
        url=spec.url,
        method=spec.method,
        headers=dict(spec.headers),
        query=dict(spec.query),
        body=spec.body,
        follow_redirects=spec.follow_redirects,
        **options,
    )


def _exec(spec: ExecSpec, *, base_dir: Path, sandbox: Path | None) -> ExecImplementation:
    options: dict[str, Any] = {}
    if spec.timeout is not None:
        options["timeout"] = spec.timeout
    if spec.max_output_bytes is not None:
        options["max_output_bytes"] = spec.max_output_bytes
    if spec.limits is not None:
        options["limits"] = _limits(spec.limits)
    cwd = _resolve(spec.cwd, base_dir) if spec.cwd else sandbox
    return ExecImplementation(
        command=spec.command,
        shell=spec.shell,
        cwd=cwd,
        env=dict(spec.env),
        **options,
    )


def _limits(spec: LimitsSpec) -> ResourceLimits:
    """``limits:`` over the defaults of :class:`~vega_trio.tools.ResourceLimits` (those of
    ``run_command``); CPU seconds are rounded up to whole seconds."""
    changes: dict[str, int] = {}
    if spec.cpu is not None:
        changes["cpu_seconds"] = max(1, math.ceil(spec.cpu))
    for field, name in (
        ("memory", "memory_bytes"),
        ("file_size", "file_size_bytes"),
        ("open_files", "max_open_files"),
        ("processes", "max_processes"),
    ):
        value = getattr(spec, field)
        if value is not None:
            changes[name] = value
    return attrs.evolve(ResourceLimits(), **changes)


def _mcp_server(spec: MCPServerSpec, *, base_dir: Path) -> MCPServerConfig:
    options: dict[str, Any] = {}
    if spec.transport is not None:
        options["transport"] = spec.transport
    if spec.timeout is not None:
        options["timeout"] = spec.timeout
    return MCPServerConfig(
        name=spec.name,
        command=spec.command,
        args=spec.args,
        env=dict(spec.env),
        cwd=str(_resolve(spec.cwd, base_dir)) if spec.cwd else None,
        url=spec.url,
        headers=dict(spec.headers),
        **options,
    )


def _resolve(path: str | os.PathLike[str], base_dir: Path) -> Path:
    resolved = Path(path).expanduser()
    return resolved if resolved.is_absolute() else (base_dir / resolved)


def _prices(prices: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {model: dict(price) for model, price in prices.items()}
