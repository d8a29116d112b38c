"""Every kind of runtime event (SPEC §10.3), in one place.

Each kind is a frozen attrs class derived from :class:`Event` (``event.type`` is its
name). Subscribe with :meth:`Orchestrator.subscribe <vega_trio.Orchestrator.subscribe>`
(or :meth:`EventBus.subscribe`); every event has one JSON form,
:meth:`Event.to_json` / :meth:`Event.from_json`. Importing this module registers every
class, so ``Event.from_json`` can restore any of them.
"""

from __future__ import annotations

from ._persist import StoreDegraded, StoreRecovered
from .agent._bus_events import (
    AgentCreated,
    AgentDeleted,
    AgentNotRestored,
    AgentUpdated,
    BudgetOverrun,
    BudgetWarning,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    ContextCompacted,
    ContextCompactionFailed,
    HealthAlert,
    LLMCalled,
    ToolEnded,
    ToolStarted,
)
from .dsl._events import (
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowInterrupted,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowStepStatus,
)
from .runtime._events import (
    Event,
    EventBus,
    Lagged,
    ProcessCompleted,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStopped,
    RequestFinished,
    RequestStarted,
    Subscription,
    SupervisorGaveUp,
    SupervisorStarted,
    SupervisorStopped,
    event_classes,
)
from .tools.mcp._events import McpConnected, McpDisconnected

__all__ = [
    "AgentCreated",
    "AgentDeleted",
    "AgentNotRestored",
    "AgentUpdated",
    "BudgetOverrun",
    "BudgetWarning",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpened",
    "ContextCompacted",
    "ContextCompactionFailed",
    "Event",
    "EventBus",
    "HealthAlert",
    "LLMCalled",
    "Lagged",
    "McpConnected",
    "McpDisconnected",
    "RequestStarted",
    "ProcessCompleted",
    "ProcessFailed",
    "RequestFinished",
    "ProcessRestarted",
    "ProcessStarted",
    "ProcessStopped",
    "StoreDegraded",
    "StoreRecovered",
    "Subscription",
    "SupervisorGaveUp",
    "SupervisorStarted",
    "SupervisorStopped",
    "ToolEnded",
    "ToolStarted",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowInterrupted",
    "WorkflowResumed",
    "WorkflowStarted",
    "WorkflowStepStatus",
    "event_classes",
]
