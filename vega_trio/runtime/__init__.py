"""The OTP-style actor runtime on Trio: processes, mailboxes, exit reasons, registry,
groups, the spawn tree, supervisor trees, links and monitors, and the event bus. It knows
nothing about LLMs."""

from __future__ import annotations

from ._context import current_process, current_process_or_none
from ._events import Event, EventBus, Lagged, Subscription
from ._gc import relaxed_gc
from ._groups import Blackboard, Group
from ._links import Down, ExitSignal, Monitor, SignalChannel
from ._process import Behaviour, MailboxFull, Process
from ._reason import ExitReason, ProcessStatus
from ._request import Future, Request
from ._restart import Backoff, RestartIntensity
from ._runtime import Runtime, SpawnNode
from ._supervision import Supervision
from ._supervisor import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)

__all__ = [
    "Backoff",
    "Behaviour",
    "Blackboard",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Down",
    "Event",
    "EventBus",
    "ExitReason",
    "ExitSignal",
    "Future",
    "Group",
    "Lagged",
    "MailboxFull",
    "Monitor",
    "Process",
    "ProcessStatus",
    "Request",
    "RestartIntensity",
    "Runtime",
    "SignalChannel",
    "SpawnNode",
    "Subscription",
    "Supervision",
    "Supervisor",
    "SupervisorSpec",
    "current_process",
    "current_process_or_none",
    "open_supervisor",
    "relaxed_gc",
]
