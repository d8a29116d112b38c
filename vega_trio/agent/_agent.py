"""The Agent: an immutable blueprint that processes are spawned from."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from ..resilience import Budget, CircuitBreaker, RateLimit, RetryPolicy
from ..runtime import Supervision
from ..tools._registry import Tool, Tools

if TYPE_CHECKING:
    from ..llm import LLM
    from ..runtime import Process
    from ._context import ContextManager

__all__ = ["Agent", "Delegation", "SystemPrompt"]

_ROLES = ("user", "assistant")

SystemPrompt: TypeAlias = "str | Callable[[], str] | Callable[[Process], str]"


def _check_positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"Agent.{name} must be a positive number, got {value!r}")

    return check


def _check_name(_instance: Any, _attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Agent.name must be a non-empty string, got {value!r}")


def _check_roles(_instance: Any, _attribute: Any, value: tuple[str, ...]) -> None:
    unknown = [role for role in value if role not in _ROLES]
    if unknown:
        raise ValueError(
            f"Delegation.include_roles may hold 'user' and 'assistant', not {unknown!r}"
        )


def _check_window(_instance: Any, _attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"Delegation.context_window must be a whole number of turns >= 0, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Delegation:
    """How an agent delegates to its team.

    Attributes:
        context_window: how many recent turns of the caller's conversation (the
            message being answered included) are forwarded with each delegated
            message; ``0`` forwards none.
        include_roles: which turns count (``"user"``, ``"assistant"``).
        blackboard: give the team a shared blackboard (``bb_read``, ``bb_write``,
            ``bb_list`` for the caller and its delegates).
    """

    context_window: int = attrs.field(default=0, validator=_check_window)
    include_roles: tuple[str, ...] = attrs.field(
        default=_ROLES, converter=tuple, validator=_check_roles
    )
    blackboard: bool = False


@attrs.frozen(kw_only=True)
class Agent:
    """What an agent is: a name, a model, a system prompt, tools and limits.

    Many processes can run from one agent, each with its own conversation.

    Attributes:
        name: the agent's name (events, spawn tree, registry of agents).
        model: the model id sent to the backend; ``None`` uses the orchestrator's
            ``default_model``.
        fallback_model: a second model for when ``model`` is unavailable: after the
            primary's retries end with a retryable error class (``rate_limit``,
            ``overloaded``, ``timeout``, ``temporary``, or its circuit breaker is
            open), the same request goes to this model, with its own run of the retry
            policy — for a stream only before any output reached the caller. It may
            name another provider (``"openai:gpt-4o-mini"``). Never used after a budget
            refusal, ``invalid_request`` or ``authentication``. ``None``: no fallback.
        system: a static string, or a callable returning the prompt (called for every
            LLM request; it may take the calling process as its one argument).
        tools: a :class:`~vega_trio.tools.Tools` registry or a list of functions,
            :class:`~vega_trio.tools.Tool` objects and names of the orchestrator's tools
            (built-ins, MCP tools, ``open_orchestrator(tools=...)``); a name may be a
            glob such as ``"filesystem__*"``. Names are resolved at spawn.
        temperature: sent to the model when set.
        max_tokens: the reply-length limit sent to the model.
        max_iterations: LLM rounds allowed per send before
            :class:`~vega_trio.MaxIterationsExceeded`.
        send_timeout: seconds one send may take before :class:`~vega_trio.SendTimeout`.
        tool_timeout: default seconds a tool call may take (a tool's own ``timeout`` wins).
        context: a factory for the conversation's context manager (e.g.
            ``lambda: TokenBudgetContext(50_000)``); default keeps everything.
        llm: a backend for this agent only (overrides the orchestrator's).
        description: what the agent is for (shown to people and to other agents).
        supervision: how its processes are restarted after a crash (default: not at
            all); ``spawn(..., supervision=...)`` overrides it per process.
        retry: how failed LLM calls are retried (default: :class:`RetryPolicy` —
            3 attempts, exponential backoff from 0.5 s, honouring ``retry-after``);
            ``None`` makes one attempt.
        rate_limit: requests/tokens per minute for all processes of this agent
            together (on top of the orchestrator's per-model limits).
        circuit_breaker: fail fast while the model keeps failing; one breaker is
            shared by all processes of this agent (an unnamed one is named after it).
        budget: how much all processes of this agent may spend together, and what
            happens at the limit (``block``, ``warn``, ``allow``).
        budget_scope: ``"agent"`` (default) or ``"tree"``: with ``tree``, processes
            spawned by this agent's processes (and theirs, recursively) count against
            this agent's budget too.
        llm_timeout: seconds one LLM call may take (for a stream: the longest
            silence between chunks). ``None`` (default): the backend's own limit —
            ``AnthropicLLM(timeout=300)`` bounds every call itself — or 5 minutes for
            a backend without a ``timeout`` attribute.
        team: the agents this one may delegate to (``Agent`` objects, or names of
            agents the orchestrator knows); gives it a ``delegate(agent, message)`` tool.
        delegation: how it delegates (forwarded context, shared blackboard).
    """

    name: str = attrs.field(validator=_check_name)
    model: str | None = None
    fallback_model: str | None = attrs.field(default=None)
    system: SystemPrompt = ""
    tools: Tools | Sequence[Callable[..., Any] | Tool | str] | None = attrs.field(
        default=None, hash=False
    )
    temperature: float | None = None
    max_tokens: int = attrs.field(default=4096, validator=_check_positive("max_tokens"))
    max_iterations: int = attrs.field(default=50, validator=_check_positive("max_iterations"))
    send_timeout: float | None = attrs.field(
        default=None, validator=_check_positive("send_timeout")
    )
    tool_timeout: float | None = attrs.field(
        default=None, validator=_check_positive("tool_timeout")
    )
    context: Callable[[], ContextManager] | None = attrs.field(default=None, hash=False)
    llm: LLM | None = attrs.field(default=None, hash=False)
    description: str = ""
    supervision: Supervision | None = None
    retry: RetryPolicy | None = attrs.field(
        factory=RetryPolicy,
        validator=attrs.validators.optional(attrs.validators.instance_of(RetryPolicy)),
    )
    rate_limit: RateLimit | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(RateLimit))
    )
    circuit_breaker: CircuitBreaker | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(CircuitBreaker)),
    )
    budget: Budget | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Budget))
    )
    budget_scope: Literal["agent", "tree"] = attrs.field(default="agent")
    llm_timeout: float | None = attrs.field(default=None, validator=_check_positive("llm_timeout"))
    team: tuple[Agent | str, ...] = attrs.field(default=(), converter=tuple, hash=False)
    delegation: Delegation | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Delegation))
    )
    # NOTE: derived once per blueprint, not once per spawn: a tool list's schemas and
    # the system-prompt getter are the same for every process of this agent.
    _tool_registry: Tools = attrs.field(init=False, eq=False, hash=False, repr=False)
    _tool_names: tuple[str, ...] = attrs.field(init=False, eq=False, hash=False, repr=False)
    _system_getter: Callable[[Process], str] = attrs.field(
        init=False, eq=False, hash=False, repr=False
    )

    @fallback_model.validator
    def _check_fallback_model(self, _attribute: Any, value: str | None) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"Agent.fallback_model must be a non-empty model id or None, got {value!r}"
            )
        if value == self.model:
            raise ValueError(
                f"agent {self.name!r} has fallback_model equal to its model ({value!r}); "
                "name a different model, or drop fallback_model"
            )

    @budget_scope.validator
    def _check_budget_scope(self, _attribute: Any, value: str) -> None:
        if value not in ("agent", "tree"):
            raise ValueError(f"Agent.budget_scope must be 'agent' or 'tree', got {value!r}")

    @team.validator
    def _check_team(self, _attribute: Any, value: tuple[Agent | str, ...]) -> None:
        for member in value:
            if not isinstance(member, Agent | str):
                raise TypeError(
                    f"Agent.team holds Agent objects or agent names, not {type(member).__name__}"
                )
            if (member.name if isinstance(member, Agent) else member) == self.name:
                raise ValueError(f"agent {self.name!r} cannot be in its own team")

    def __attrs_post_init__(self) -> None:
        registry, names = _tools_from(self.tools)
        object.__setattr__(self, "_tool_registry", registry)
        object.__setattr__(self, "_tool_names", names)
        object.__setattr__(self, "_system_getter", _system_prompt_getter(self.system))

    @property
    def tool_registry(self) -> Tools:
        """The agent's own tools as a registry (a given :class:`Tools` is used as is);
        names of the orchestrator's tools are in :attr:`tool_names`."""
        return self._tool_registry

    @property
    def tool_names(self) -> tuple[str, ...]:
        """Names (and globs) of the orchestrator's tools this agent asks for."""
        return self._tool_names

    def system_prompt(self, process: Process) -> str:
        """The system prompt for a request of ``process``."""
        return self._system_getter(process)


def _tools_from(
    spec: Tools | Sequence[Callable[..., Any] | Tool | str] | None,
) -> tuple[Tools, tuple[str, ...]]:
    if isinstance(spec, Tools):
        return spec, ()
    if spec is not None and (isinstance(spec, str | bytes) or not isinstance(spec, Sequence)):
        raise TypeError(
            f"Agent.tools must be a Tools registry or a list of functions, Tool objects and "
            f"tool names, not {type(spec).__name__}"
        )
    tools = Tools()
    names: list[str] = []
    for item in spec or ():
        if isinstance(item, str):
            if not item.strip():
                raise ValueError("Agent.tools has an empty tool name; name a tool or a glob")
            names.append(item)
        else:
            tools.register(item)
    return tools, tuple(dict.fromkeys(names))


def _system_prompt_getter(system: Any) -> Callable[[Process], str]:
    if isinstance(system, str):
        return lambda _process: system
    if not callable(system):
        raise TypeError(f"Agent.system must be a str or a callable, not {type(system).__name__}")
    try:
        takes_process = len(inspect.signature(system).parameters) >= 1
    except (TypeError, ValueError):
        takes_process = False
    if takes_process:
        return lambda process: str(system(process))
    return lambda _process: str(system())
