"""The agent layer's kinds of bus event (SPEC §10.3): LLM calls, tool calls, budgets,
circuit breakers, context compaction, agent definitions and health alerts.

They derive from the runtime's :class:`~vega_trio.runtime.Event` and are defined here, not
in the runtime, because the runtime knows nothing about LLMs (the arrows point down).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..runtime._events import Event

__all__ = [
    "AgentCreated",
    "AgentDeleted",
    "AgentNotRestored",
    "AgentUpdated",
    "BudgetOverrun",
    "BudgetWarning",
    "CIRCUIT_EVENTS",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpened",
    "ContextCompacted",
    "ContextCompactionFailed",
    "HealthAlert",
    "LLMCalled",
    "ToolEnded",
    "ToolStarted",
]


@attrs.frozen(kw_only=True)
class LLMCalled(Event):
    """One call to a model (``llm.call``): a success (tokens, cost, ``priced``,
    ``error_class`` ``None``) or a failure (``error_class``, ``error``, ``status_code``,
    and ``retry_in`` when it will be retried). ``iteration`` is the LLM round of the
    send it belongs to (1, 2, …; ``None`` outside the tool loop, e.g. a compaction) and
    ``max_iterations`` the process's limit."""

    type: ClassVar[str] = "llm.call"
    model: str | None = None
    attempt: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cost_usd: float | None = None
    priced: bool | None = None
    latency_ms: int | None = None
    fallback: bool = False
    error_class: str | None = None
    error: str | None = None
    status_code: int | None = None
    retry_in: float | None = None
    iteration: int | None = None
    max_iterations: int | None = None


@attrs.frozen(kw_only=True)
class ToolStarted(Event):
    """A tool call began (``tool.start``)."""

    type: ClassVar[str] = "tool.start"
    tool: str = ""
    tool_call_id: str = ""
    arguments: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class ToolEnded(Event):
    """A tool call ended (``tool.end``): its duration, whether it failed and its result
    (the first 2000 characters)."""

    type: ClassVar[str] = "tool.end"
    tool: str = ""
    tool_call_id: str = ""
    duration_ms: int = 0
    is_error: bool = False
    result: str = ""


@attrs.frozen(kw_only=True)
class _Budget(Event):
    owner: str = ""
    limit_usd: float = 0.0
    spent_usd: float = 0.0
    on_exceed: str = ""
    refused: bool = False
    estimated_cost_usd: float | None = None


@attrs.frozen(kw_only=True)
class BudgetWarning(_Budget):
    """A budget with ``on_exceed: warn`` was exceeded; calls go on (``budget.warning``)."""

    type: ClassVar[str] = "budget.warning"


@attrs.frozen(kw_only=True)
class BudgetOverrun(_Budget):
    """A budget was exceeded (``budget.exceeded``); ``refused``: a call was refused
    before it was made."""

    type: ClassVar[str] = "budget.exceeded"


@attrs.frozen(kw_only=True)
class _Circuit(Event):
    breaker: str = ""
    failures: int = 0
    reset_after: float = 0.0


@attrs.frozen(kw_only=True)
class CircuitOpened(_Circuit):
    """A circuit breaker opened (``circuit.open``)."""

    type: ClassVar[str] = "circuit.open"


@attrs.frozen(kw_only=True)
class CircuitHalfOpened(_Circuit):
    """A circuit breaker lets a trial call through (``circuit.half_open``)."""

    type: ClassVar[str] = "circuit.half_open"


@attrs.frozen(kw_only=True)
class CircuitClosed(_Circuit):
    """A circuit breaker closed again (``circuit.closed``)."""

    type: ClassVar[str] = "circuit.closed"


#: The event class of each circuit breaker state.
CIRCUIT_EVENTS: Mapping[str, type[_Circuit]] = {
    "open": CircuitOpened,
    "half_open": CircuitHalfOpened,
    "closed": CircuitClosed,
}


@attrs.frozen(kw_only=True)
class ContextCompacted(Event):
    """An agent's conversation was compacted (``context.compacted``)."""

    type: ClassVar[str] = "context.compacted"


@attrs.frozen(kw_only=True)
class ContextCompactionFailed(Event):
    """Compacting failed; the send went ahead uncompacted
    (``context.compaction_failed``)."""

    type: ClassVar[str] = "context.compaction_failed"
    error: str = ""
    error_class: str = ""


@attrs.frozen(kw_only=True)
class _AgentDefinition(Event):
    source: str = ""
    """Where the definition comes from: ``yaml``, ``composed`` or ``builtin``."""
    revision: int = 0
    """The definition's revision: 1 when created, one more at each update."""


@attrs.frozen(kw_only=True)
class AgentCreated(_AgentDefinition):
    """An agent definition was added (``agent.created``)."""

    type: ClassVar[str] = "agent.created"


@attrs.frozen(kw_only=True)
class AgentUpdated(_AgentDefinition):
    """An agent definition was replaced (``agent.updated``)."""

    type: ClassVar[str] = "agent.updated"


@attrs.frozen(kw_only=True)
class AgentDeleted(_AgentDefinition):
    """An agent definition was removed (``agent.deleted``)."""

    type: ClassVar[str] = "agent.deleted"


@attrs.frozen(kw_only=True)
class AgentNotRestored(Event):
    """A stored composed agent could not be defined again when the server started
    (``agent.not_restored``): it no longer validates against the server's tools or
    agents. The stored definition is kept (``/healthz`` lists it under
    ``store.agents_not_restored``); defining that name again replaces it.

    Attributes:
        source: always ``composed``.
        detail: what is wrong with it, and what to do.
    """

    type: ClassVar[str] = "agent.not_restored"
    source: str = "composed"
    detail: str = ""


@attrs.frozen(kw_only=True)
class HealthAlert(Event):
    """Something about a process looks wrong (``health.alert``).

    Attributes:
        alert: ``stale_progress``, ``high_iterations``, ``error_loop`` or ``cost``.
        detail: what was seen, for people.
        value: the measured value (seconds, iterations, errors, USD).
        threshold: the limit it crossed.
    """

    type: ClassVar[str] = "health.alert"
    alert: str = ""
    detail: str = ""
    value: float | None = None
    threshold: float | None = None
