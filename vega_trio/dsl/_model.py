"""The model of a ``.vega.yaml`` document (SPEC §8): frozen attrs classes, one per
section, built by the loader's cattrs converter and read by the validator, the builder
(document → orchestrator options and ``Agent`` objects) and the interpreter.

Every class keeps the YAML position it came from (``where``: file, line, column, path),
so any later error can point at the source. Values are kept as written where they are
templates (``str``) and parsed where they are not (durations in seconds, money in USD).

Steps are a closed union (:data:`Step`); the interpreter dispatches on the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import attrs

__all__ = [
    "AgentSpec",
    "AgentStep",
    "BackoffSpec",
    "BreakerSpec",
    "DelegationSpec",
    "Document",
    "ForStep",
    "HttpSpec",
    "ExecSpec",
    "HealthSpec",
    "IfStep",
    "InputSpec",
    "LimitsSpec",
    "MCPServerSpec",
    "ParallelStep",
    "ParamSpec",
    "RateLimitSpec",
    "RepeatStep",
    "RetrySpec",
    "ReturnStep",
    "SetStep",
    "Settings",
    "SkillsSpec",
    "Source",
    "Step",
    "SupervisionSpec",
    "ToolSpec",
    "TryStep",
    "WorkflowSpec",
    "WorkflowStep",
]


@attrs.frozen
class Source:
    """Where something was written: ``file:line:column`` (1-based) and its YAML path
    (``workflows.report.steps[1]``). ``line``/``column`` are 0 when unknown."""

    file: str = "<string>"
    line: int = 0
    column: int = 0
    path: str = ""

    def __str__(self) -> str:
        position = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{position} ({self.path})" if self.path else position


_NOWHERE = Source()


# -- settings ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BackoffSpec:
    """``backoff: {kind, initial, multiplier, max, jitter}`` (durations in seconds)."""

    kind: Literal["exponential", "linear", "constant"] = "exponential"
    initial: float = 0.5
    multiplier: float = 2.0
    max: float = 30.0
    jitter: float = 0.0
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class HealthSpec:
    """``settings.health: {stale_after, max_iterations_ratio, consecutive_errors,
    cost_usd, check_interval}``: the thresholds of ``health.alert`` events (durations in
    seconds, cost in USD); a key left out keeps
    :class:`~vega_trio.observability.HealthConfig`'s default."""

    stale_after: float | None = None
    max_iterations_ratio: float | None = None
    consecutive_errors: int | None = None
    cost_usd: float | None = None
    check_interval: float | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class RateLimitSpec:
    """``rate_limit: {requests_per_minute, tokens_per_minute, strategy}``."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    strategy: Literal["queue", "reject"] = "queue"
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class MCPServerSpec:
    """One of ``settings.mcp.servers``: stdio (``command``, ``args``, ``env``, ``cwd``)
    or HTTP/SSE (``url``, ``headers``); ``${VAR}`` kept as written (expanded at run)."""

    name: str
    transport: Literal["stdio", "http", "sse"] | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class Settings:
    """``settings:``. ``budget`` is USD (from ``"$100.00"``); ``prices`` maps model ids
    to ``{input, output, cache_write?, cache_read?}`` USD per million tokens; ``logging``
    is ``{level}``; ``health`` the health-alert thresholds (``None``: no health
    monitor); ``retention_days`` is ``store: {retention_days}``."""

    default_model: str | None = None
    sandbox: str | None = None
    budget: float | None = None
    mcp_servers: tuple[MCPServerSpec, ...] = ()
    skill_directories: tuple[str, ...] = ()
    rate_limit: RateLimitSpec | None = None
    prices: Mapping[str, Mapping[str, float]] = attrs.field(factory=dict)
    log_level: str | None = None
    health: HealthSpec | None = None
    retention_days: float | None = None
    """``store.retention_days``: what ``vega-trio serve`` prunes from its store."""
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


# -- agents ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SupervisionSpec:
    """``supervision: {strategy, max_restarts, window, backoff, restart_state}``."""

    strategy: Literal["restart", "stop", "escalate"] = "restart"
    max_restarts: int = 3
    window: float = 60.0
    backoff: BackoffSpec | None = None
    restart_state: Literal["keep", "fresh"] = "keep"
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class RetrySpec:
    """``retry: {max_attempts, backoff, retry_on}`` of an agent (its LLM calls)."""

    max_attempts: int = 3
    backoff: BackoffSpec | None = None
    retry_on: tuple[str, ...] | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class BreakerSpec:
    """``circuit_breaker: {threshold, reset_after, half_open_max}``."""

    threshold: int = 5
    reset_after: float = 30.0
    half_open_max: int = 1
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class SkillsSpec:
    """``skills: {directories, include, exclude, max_active}`` of an agent."""

    directories: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_active: int = 3
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class DelegationSpec:
    """``delegation: {context_window, include_roles, blackboard}``."""

    context_window: int = 0
    include_roles: tuple[str, ...] = ("user", "assistant")
    blackboard: bool = False
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class AgentSpec:
    """One entry of ``agents:`` (the mapping key is ``name``). ``budget`` is USD;
    ``budget_on_exceed`` is ``block`` unless written as ``{limit, on_exceed}``."""

    name: str
    system: str = ""
    model: str | None = None
    fallback_model: str | None = None
    """The model to switch to when ``model`` is unavailable (``Agent.fallback_model``)."""
    description: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    max_iterations: int | None = None
    tools: tuple[str, ...] = ()
    budget: float | None = None
    budget_on_exceed: Literal["block", "warn", "allow"] = "block"
    budget_scope: Literal["agent", "tree"] = "agent"
    supervision: SupervisionSpec | None = None
    retry: RetrySpec | None = None
    rate_limit: RateLimitSpec | None = None
    circuit_breaker: BreakerSpec | None = None
    skills: SkillsSpec | None = None
    team: tuple[str, ...] = ()
    delegation: DelegationSpec | None = None
    timeout: float | None = None
    """``send_timeout`` of the agent's processes, seconds."""
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


# -- tools -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ParamSpec:
    """One of a tool's ``params``."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    description: str = ""
    required: bool | None = None
    default: Any = None
    enum: tuple[Any, ...] | None = None
    allow_options: bool = False
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class HttpSpec:
    """``implementation: {type: http, ...}`` (templates kept as written)."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)
    body: Any = None
    timeout: float | None = None
    max_response_bytes: int | None = None
    allowed_hosts: tuple[str, ...] | None = None
    follow_redirects: bool = False
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class LimitsSpec:
    """An exec tool's ``limits:`` (``None``: the default of ``ResourceLimits``); ``cpu`` in
    seconds, ``memory`` and ``file_size`` in bytes."""

    cpu: float | None = None
    memory: int | None = None
    file_size: int | None = None
    open_files: int | None = None
    processes: int | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ExecSpec:
    """``implementation: {type: exec, ...}``; ``shell: true`` only when written."""

    command: str
    timeout: float | None = None
    shell: bool = False
    cwd: str | None = None
    max_output_bytes: int | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)
    limits: LimitsSpec | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ToolSpec:
    """One entry of the top-level ``tools:`` (the key is ``name``)."""

    name: str
    description: str = ""
    params: tuple[ParamSpec, ...] = ()
    implementation: HttpSpec | ExecSpec
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


# -- workflows ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AgentStep:
    """``- researcher: {send, save, timeout, retry, continue_on_error, format}`` or the
    short form ``- researcher: "text"`` (``send`` is the text)."""

    agent: str
    send: str
    save: str | None = None
    timeout: float | None = None
    retry: int = 0
    """Extra attempts of the whole step after a failure (0: none)."""
    continue_on_error: bool = False
    format: Literal["text", "json"] = "text"
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class IfStep:
    """``- if: <condition>`` / ``then:`` / ``else:``."""

    condition: str
    then: tuple[Step, ...] = ()
    otherwise: tuple[Step, ...] = ()
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ForStep:
    """``- for: item in items`` / ``steps:``; ``items`` is the expression after ``in``
    (a variable path, possibly with filters); ``save`` collects each iteration's result."""

    variable: str
    items: str
    steps: tuple[Step, ...] = ()
    save: str | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ParallelStep:
    """``- parallel: [branch, ...]``: each branch is one step (or a list of steps)."""

    branches: tuple[tuple[Step, ...], ...] = ()
    save: str | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class TryStep:
    """``- try: [...]`` / ``catch: [...]`` (``error`` and ``error_class`` are set)."""

    steps: tuple[Step, ...] = ()
    catch: tuple[Step, ...] = ()
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class RepeatStep:
    """``- repeat: {steps, until, max}``."""

    steps: tuple[Step, ...] = ()
    until: str | None = None
    max: int = 10
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class SetStep:
    """``- set: {name: value, ...}`` (values are templates when strings)."""

    values: Mapping[str, Any] = attrs.field(factory=dict)
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ReturnStep:
    """``- return: <template>``: ends the workflow with this result."""

    value: Any = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class WorkflowStep:
    """``- workflow: name`` + ``with: {...}`` + ``save:``."""

    workflow: str
    inputs: Mapping[str, Any] = attrs.field(factory=dict)
    save: str | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


Step: TypeAlias = (
    AgentStep
    | IfStep
    | ForStep
    | ParallelStep
    | TryStep
    | RepeatStep
    | SetStep
    | ReturnStep
    | WorkflowStep
)


@attrs.frozen(kw_only=True)
class InputSpec:
    """One of a workflow's ``inputs`` (the key is ``name``); a ``default`` makes it
    optional and is applied."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    description: str = ""
    required: bool | None = None
    default: Any = None
    enum: tuple[Any, ...] | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class WorkflowSpec:
    """One entry of ``workflows:`` (the key is ``name``)."""

    name: str
    description: str = ""
    inputs: tuple[InputSpec, ...] = ()
    steps: tuple[Step, ...] = ()
    output: Any = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class Document:
    """A whole ``.vega.yaml`` file; ``agents``, ``tools`` and ``workflows`` in file order."""

    name: str = ""
    description: str = ""
    agents: tuple[AgentSpec, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    workflows: tuple[WorkflowSpec, ...] = ()
    settings: Settings = Settings()
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)

    def agent(self, name: str) -> AgentSpec | None:
        """The agent called ``name``, if any."""
        return next((a for a in self.agents if a.name == name), None)

    def workflow(self, name: str) -> WorkflowSpec | None:
        """The workflow called ``name``, if any."""
        return next((w for w in self.workflows if w.name == name), None)

    def tool(self, name: str) -> ToolSpec | None:
        """The top-level tool called ``name``, if any."""
        return next((t for t in self.tools if t.name == name), None)
