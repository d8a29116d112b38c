"""The model of a ``.vega.yaml`` document (SPEC §8): frozen attrs classes, one per
section, built by the loader's cattrs converter and read by the validator, the builder
(document → orchestrator options and ``Agent`` objects) and the interpreter.

Every class keeps the YAML position it came from (``where``: file, line, column, path),
so any later error can point at the source. Values are kept as written where they are
templates (``str``) and parsed where they are not (durations in seconds, money in USD).

Steps are a closed union (:data:`Step`); the interpreter dispatches on the class.

How each class and field is written in YAML is metadata on it (:mod:`._schema`): the
loader has one walker that reads it, so a new key is a new field here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal, TypeAlias

import attrs

from ._schema import STEP_KEYWORDS, Section, _Invalid, above, identifier, key, one_of

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
_POSITIVE_BUDGET: Final = above(
    0, "a budget must be more than $0", "give a positive limit or remove it"
)
_POSITIVE_DURATION: Final = above(
    0, "expected a duration of more than 0s, got {value!r}", "write it like 2m or 30s"
)
_SAVE: Final = identifier("save name {value!r} is not a valid variable name")
_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
_ERROR_CLASSES: Final = (
    "RateLimit",
    "Overloaded",
    "Timeout",
    "Temporary",
    "InvalidRequest",
    "Authentication",
    "BudgetExceeded",
)


def _not_a_step_keyword(name: str) -> str:
    if name in STEP_KEYWORDS:
        raise _Invalid(
            f"agent name {name!r} is a step keyword",
            f"rename the agent: a step '- {name}: ...' would be read as a {name} step",
        )
    return name


def _fraction(value: float) -> float:
    if not 0 < value <= 1:
        raise _Invalid(
            f"expected a fraction of max_iterations above 0 and at most 1, got {value!r}",
            "e.g. 0.8 alerts at 80% of an agent's max_iterations",
        )
    return value


# -- settings ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BackoffSpec:
    """``backoff: {kind, initial, multiplier, max, jitter}`` (durations in seconds)."""

    __yaml__: ClassVar = Section(short="kind")
    kind: Literal["exponential", "linear", "constant"] = "exponential"
    initial: float = attrs.field(default=0.5, metadata=key(unit="duration"))
    multiplier: float = attrs.field(default=2.0, metadata=key(min=1))
    max: float = attrs.field(default=30.0, metadata=key(unit="duration"))
    jitter: float = attrs.field(default=0.0, metadata=key(min=0, max=1))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class HealthSpec:
    """``settings.health: {stale_after, max_iterations_ratio, consecutive_errors,
    cost_usd, check_interval}``: the thresholds of ``health.alert`` events (durations in
    seconds, cost in USD); a key left out keeps
    :class:`~vega_trio.observability.HealthConfig`'s default."""

    __yaml__: ClassVar = Section(null=True)
    stale_after: float | None = attrs.field(
        default=None, metadata=key(unit="duration", check=_POSITIVE_DURATION)
    )
    max_iterations_ratio: float | None = attrs.field(default=None, metadata=key(check=_fraction))
    consecutive_errors: int | None = attrs.field(default=None, metadata=key(min=1))
    cost_usd: float | None = attrs.field(
        default=None,
        metadata=key(
            unit="money",
            check=above(0, "a cost threshold must be more than $0", 'give an amount like "$1.00"'),
        ),
    )
    check_interval: float | None = attrs.field(
        default=None, metadata=key(unit="duration", check=_POSITIVE_DURATION)
    )
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class RateLimitSpec:
    """``rate_limit: {requests_per_minute, tokens_per_minute, strategy}``."""

    requests_per_minute: int | None = attrs.field(default=None, metadata=key(min=1))
    tokens_per_minute: int | None = attrs.field(default=None, metadata=key(min=1))
    strategy: Literal["queue", "reject"] = "queue"
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class MCPServerSpec:
    """One of ``settings.mcp.servers``: stdio (``command``, ``args``, ``env``, ``cwd``)
    or HTTP/SSE (``url``, ``headers``); ``${VAR}`` kept as written (expanded at run)."""

    __yaml__: ClassVar = Section(what="an MCP server", unique="MCP server", check="mcp_server")
    name: str = attrs.field(metadata=key(required="every MCP server has a name", drop=True))
    transport: Literal["stdio", "http", "sse"] | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, metadata=key(strict=True))
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, metadata=key(strict=True))
    timeout: float | None = attrs.field(default=None, metadata=key(unit="duration"))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class Settings:
    """``settings:``. ``budget`` is USD (from ``"$100.00"``); ``prices`` maps model ids
    to ``{input, output, cache_write?, cache_read?}`` USD per million tokens; ``logging``
    is ``{level}``; ``health`` the health-alert thresholds (``None``: no health
    monitor); ``retention_days`` is ``store: {retention_days}``."""

    default_model: str | None = None
    sandbox: str | None = None
    budget: float | None = attrs.field(
        default=None, metadata=key(unit="money", check=_POSITIVE_BUDGET)
    )
    mcp_servers: tuple[MCPServerSpec, ...] = attrs.field(
        default=(),
        metadata=key(
            key="mcp.servers",
            expected="a list of servers",
            hint="write '- name: ...' items",
        ),
    )
    skill_directories: tuple[str, ...] = attrs.field(
        default=(), metadata=key(key="skills.directories")
    )
    rate_limit: RateLimitSpec | None = None
    prices: Mapping[str, Mapping[str, float]] = attrs.field(
        factory=dict, metadata=key(read="prices")
    )
    log_level: str | None = attrs.field(
        default=None, metadata=key(key="logging.level", check=one_of(_LOG_LEVELS, lower=True))
    )
    health: HealthSpec | None = None
    retention_days: float | None = attrs.field(
        default=None,
        metadata=key(
            key="store.retention_days",
            check=above(
                0,
                "expected a number of days above 0, got {value!r}",
                "leave the key out to keep everything; e.g. 30 deletes what is older than 30 days",
            ),
        ),
    )
    """``store.retention_days``: what ``vega-trio serve`` prunes from its store."""
    prompt_caching: bool = True
    """Anthropic prompt caching for the backend the command line opens (on by default)."""
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


# -- agents ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SupervisionSpec:
    """``supervision: {strategy, max_restarts, window, backoff, restart_state}``."""

    strategy: Literal["restart", "stop", "escalate"] = "restart"
    max_restarts: int = attrs.field(default=3, metadata=key(min=0))
    window: float = attrs.field(default=60.0, metadata=key(unit="duration"))
    backoff: BackoffSpec | None = None
    restart_state: Literal["keep", "fresh"] = "keep"
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class RetrySpec:
    """``retry: {max_attempts, backoff, retry_on}`` of an agent (its LLM calls)."""

    __yaml__: ClassVar = Section(short="max_attempts")
    max_attempts: int = attrs.field(default=3, metadata=key(min=1))
    backoff: BackoffSpec | None = None
    retry_on: tuple[str, ...] | None = attrs.field(
        default=None,
        metadata=key(
            check=one_of(
                _ERROR_CLASSES,
                "unknown error class {value!r}",
                "error classes: " + ", ".join(_ERROR_CLASSES),
            )
        ),
    )
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class BreakerSpec:
    """``circuit_breaker: {threshold, reset_after, half_open_max}``."""

    threshold: int = attrs.field(default=5, metadata=key(min=1))
    reset_after: float = attrs.field(default=30.0, metadata=key(unit="duration"))
    half_open_max: int = attrs.field(default=1, metadata=key(min=1))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class SkillsSpec:
    """``skills: {directories, include, exclude, max_active}`` of an agent."""

    directories: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_active: int = attrs.field(default=3, metadata=key(min=0))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class DelegationSpec:
    """``delegation: {context_window, include_roles, blackboard}``."""

    context_window: int = attrs.field(default=0, metadata=key(min=0))
    include_roles: tuple[str, ...] = attrs.field(
        default=("user", "assistant"), metadata=key(check=one_of(("user", "assistant")))
    )
    blackboard: bool = False
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class AgentSpec:
    """One entry of ``agents:`` (the mapping key is ``name``). ``budget`` is USD;
    ``budget_on_exceed`` is ``block`` unless written as ``{limit, on_exceed}``."""

    __yaml__: ClassVar = Section(what="agent {name!r}", null=True, keep=True)
    name: str = attrs.field(metadata=key(key=None, check=_not_a_step_keyword))
    model: str | None = None
    system: str = ""
    description: str = ""
    temperature: float | None = attrs.field(default=None, metadata=key(min=0, max=2))
    max_tokens: int | None = attrs.field(default=None, metadata=key(min=1))
    max_iterations: int | None = attrs.field(default=None, metadata=key(min=1))
    tools: tuple[str, ...] = attrs.field(default=(), metadata=key(locate=True))
    budget: float | None = attrs.field(
        default=None,
        metadata=key(
            key="budget.limit",
            short=True,
            unit="money",
            check=_POSITIVE_BUDGET,
            required='write limit: "$5.00"',
        ),
    )
    budget_on_exceed: Literal["block", "warn", "allow"] = attrs.field(
        default="block", metadata=key(key="budget.on_exceed")
    )
    budget_scope: Literal["agent", "tree"] = "agent"
    supervision: SupervisionSpec | None = None
    retry: RetrySpec | None = None
    rate_limit: RateLimitSpec | None = None
    circuit_breaker: BreakerSpec | None = None
    skills: SkillsSpec | None = None
    team: tuple[str, ...] = attrs.field(default=(), metadata=key(locate=True))
    delegation: DelegationSpec | None = None
    timeout: float | None = attrs.field(default=None, metadata=key(unit="duration"))
    """``send_timeout`` of the agent's processes, seconds."""
    fallback_model: str | None = attrs.field(default=None, metadata=key(locate=True))
    """The model to switch to when ``model`` is unavailable (``Agent.fallback_model``)."""
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


# -- tools -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ParamSpec:
    """One of a tool's ``params``."""

    __yaml__: ClassVar = Section(what="a parameter", unique="parameter", check="typed")
    name: str = attrs.field(
        metadata=key(required="every parameter has a name", drop=True, fatal=True)
    )
    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    description: str = ""
    required: bool | None = None
    default: Any = None
    enum: tuple[Any, ...] | None = attrs.field(default=None, metadata=key(read="enum"))
    allow_options: bool = False
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class HttpSpec:
    """``implementation: {type: http, ...}`` (templates kept as written)."""

    __yaml__: ClassVar = Section(tag="http", what="an http implementation")
    url: str = attrs.field(
        metadata=key(required="an http tool needs 'url: https://...'", drop=True, fatal=True)
    )
    method: str = "GET"
    headers: Mapping[str, str] = attrs.field(factory=dict, metadata=key(strict=True))
    query: Mapping[str, str] = attrs.field(factory=dict, metadata=key(strict=True))
    body: Any = None
    timeout: float | None = attrs.field(default=None, metadata=key(unit="duration"))
    max_response_bytes: int | None = attrs.field(default=None, metadata=key(min=1))
    allowed_hosts: tuple[str, ...] | None = None
    follow_redirects: bool = False
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class LimitsSpec:
    """An exec tool's ``limits:`` (``None``: the default of ``ResourceLimits``); ``cpu`` in
    seconds, ``memory`` and ``file_size`` in bytes."""

    __yaml__: ClassVar = Section(what="resource limits")
    cpu: float | None = attrs.field(default=None, metadata=key(unit="duration", min=1))
    memory: int | None = attrs.field(default=None, metadata=key(unit="size", min=1))
    file_size: int | None = attrs.field(default=None, metadata=key(unit="size", min=1))
    open_files: int | None = attrs.field(default=None, metadata=key(min=1))
    processes: int | None = attrs.field(default=None, metadata=key(min=1))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ExecSpec:
    """``implementation: {type: exec, ...}``; ``shell: true`` only when written."""

    __yaml__: ClassVar = Section(tag="exec", what="an exec implementation")
    command: str = attrs.field(
        metadata=key(
            required="an exec tool needs 'command: program {{arg}}'", drop=True, fatal=True
        )
    )
    timeout: float | None = attrs.field(default=None, metadata=key(unit="duration"))
    shell: bool = False
    cwd: str | None = None
    max_output_bytes: int | None = attrs.field(default=None, metadata=key(min=1))
    env: Mapping[str, str] = attrs.field(factory=dict, metadata=key(strict=True))
    limits: LimitsSpec | None = None
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ToolSpec:
    """One entry of the top-level ``tools:`` (the key is ``name``)."""

    __yaml__: ClassVar = Section(what="tool {name!r}", check="tool")
    name: str = attrs.field(metadata=key(key=None))
    description: str = ""
    params: tuple[ParamSpec, ...] = attrs.field(
        default=(),
        metadata=key(
            strict=True,
            expected="a list of parameters",
            hint="write '- name: city' items",
        ),
    )
    implementation: HttpSpec | ExecSpec = attrs.field(
        metadata=key(
            required="add 'implementation: {type: http, url: ...}' or '{type: exec, command: ...}'",
            missing="tool {name!r} has no 'implementation'",
            locate=True,
        )
    )
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


# -- workflows ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AgentStep:
    """``- researcher: {send, save, timeout, retry, continue_on_error, format}`` or the
    short form ``- researcher: "text"`` (``send`` is the text)."""

    __yaml__: ClassVar = Section(what="a step of agent {name!r}")
    agent: str = attrs.field(metadata=key(key=None))
    send: str = attrs.field(metadata=key(required="give the message: 'send: \"...\"'", locate=True))
    save: str | None = attrs.field(default=None, metadata=key(check=_SAVE))
    timeout: float | None = attrs.field(default=None, metadata=key(unit="duration"))
    retry: int = attrs.field(default=0, metadata=key(min=0))
    """Extra attempts of the whole step after a failure (0: none)."""
    continue_on_error: bool = False
    format: Literal["text", "json"] = "text"
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class IfStep:
    """``- if: <condition>`` / ``then:`` / ``else:``."""

    __yaml__: ClassVar = Section(what="an if step")
    condition: str = attrs.field(metadata=key(key="if", locate=True))
    then: tuple[Step, ...] = attrs.field(
        default=(),
        metadata=key(
            required="list the steps to run under 'then:'", missing="an if step needs 'then:'"
        ),
    )
    otherwise: tuple[Step, ...] = attrs.field(default=(), metadata=key(key="else"))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ForStep:
    """``- for: item in items`` / ``steps:``; ``items`` is the expression after ``in``
    (a variable path, possibly with filters); ``save`` collects each iteration's result."""

    __yaml__: ClassVar = Section(what="a for step")
    variable: str = attrs.field(metadata=key(key="for", read="for"))
    items: str = attrs.field(metadata=key(key=None))
    steps: tuple[Step, ...] = attrs.field(
        default=(),
        metadata=key(
            required="list the steps to repeat per item", missing="a for step needs 'steps:'"
        ),
    )
    save: str | None = attrs.field(default=None, metadata=key(check=_SAVE))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ParallelStep:
    """``- parallel: [branch, ...]``: each branch is one step (or a list of steps)."""

    __yaml__: ClassVar = Section(what="a parallel step")
    branches: tuple[tuple[Step, ...], ...] = attrs.field(
        default=(),
        metadata=key(
            key="parallel", read="branches", empty=("'parallel' has no branches", "add branches")
        ),
    )
    save: str | None = attrs.field(default=None, metadata=key(check=_SAVE))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class TryStep:
    """``- try: [...]`` / ``catch: [...]`` (``error`` and ``error_class`` are set)."""

    __yaml__: ClassVar = Section(what="a try step")
    steps: tuple[Step, ...] = attrs.field(default=(), metadata=key(key="try"))
    catch: tuple[Step, ...] = ()
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class RepeatStep:
    """``- repeat: {steps, until, max}``."""

    __yaml__: ClassVar = Section(what="a repeat step", check="repeat")
    steps: tuple[Step, ...] = attrs.field(
        default=(),
        metadata=key(key="repeat.steps", required="list the steps to repeat"),
    )
    until: str | None = attrs.field(default=None, metadata=key(key="repeat.until", locate=True))
    max: int = attrs.field(default=10, metadata=key(key="repeat.max", min=1))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class SetStep:
    """``- set: {name: value, ...}`` (values are templates when strings)."""

    __yaml__: ClassVar = Section(what="a set step")
    values: Mapping[str, Any] = attrs.field(
        factory=dict,
        metadata=key(
            key="set",
            check=identifier("variable name {value!r} is not valid"),
            fatal=True,
            locate=True,
            empty=("'set' is empty", "write 'set: {x: 1}'"),
            expected="a mapping of variable names to values",
            hint="write 'set: {x: 1}'",
        ),
    )
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class ReturnStep:
    """``- return: <template>``: ends the workflow with this result."""

    __yaml__: ClassVar = Section(what="a return step")
    value: Any = attrs.field(default=None, metadata=key(key="return", locate=True, fatal=True))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class WorkflowStep:
    """``- workflow: name`` + ``with: {...}`` + ``save:``."""

    __yaml__: ClassVar = Section(what="a workflow step")
    workflow: str = attrs.field(metadata=key(locate=True, fatal=True))
    inputs: Mapping[str, Any] = attrs.field(
        factory=dict,
        metadata=key(key="with", locate=True, expected="a mapping of input names to values"),
    )
    save: str | None = attrs.field(default=None, metadata=key(check=_SAVE))
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

    __yaml__: ClassVar = Section(what="input {name!r}", null=True, check="typed")
    name: str = attrs.field(
        metadata=key(
            key=None,
            check=identifier("input name {value!r} is not a valid variable name"),
            fatal=True,
        )
    )
    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    description: str = ""
    required: bool | None = None
    default: Any = None
    enum: tuple[Any, ...] | None = attrs.field(default=None, metadata=key(read="enum"))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class WorkflowSpec:
    """One entry of ``workflows:`` (the key is ``name``)."""

    __yaml__: ClassVar = Section(what="workflow {name!r}")
    name: str = attrs.field(metadata=key(key=None))
    description: str = ""
    inputs: tuple[InputSpec, ...] = attrs.field(
        default=(),
        metadata=key(expected="a mapping of input names to {type, ...}"),
    )
    steps: tuple[Step, ...] = attrs.field(
        default=(),
        metadata=key(
            required="add 'steps:' with at least one step",
            missing="workflow {name!r} has no 'steps'",
            empty=("'steps' is empty", "add at least one step"),
        ),
    )
    output: Any = attrs.field(default=None, metadata=key(locate=True))
    where: Source = attrs.field(default=_NOWHERE, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class Document:
    """A whole ``.vega.yaml`` file; ``agents``, ``tools`` and ``workflows`` in file order."""

    __yaml__: ClassVar = Section(what="the document", check="document")
    name: str = ""
    description: str = ""
    agents: tuple[AgentSpec, ...] = attrs.field(
        default=(),
        metadata=key(
            null=True,
            expected="a mapping of agent names to agent definitions",
            required="a document defines at least one agent under 'agents:'",
        ),
    )
    workflows: tuple[WorkflowSpec, ...] = attrs.field(
        default=(),
        metadata=key(
            null=True,
            expected="a mapping of workflow names to workflow definitions",
        ),
    )
    tools: tuple[ToolSpec, ...] = attrs.field(
        default=(),
        metadata=key(
            null=True,
            expected="a mapping of tool names to tool definitions",
        ),
    )
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
