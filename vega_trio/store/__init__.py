"""Durable state (SPEC §12): one :class:`Store` protocol and its engines."""

from __future__ import annotations

from ._protocol import (
    AgentRecord,
    CostRecord,
    Page,
    ProcessRecord,
    RunRecord,
    StepRecord,
    Store,
    StoredEvent,
    StoreHealth,
)

__all__ = [
    "AgentRecord",
    "CostRecord",
    "Page",
    "ProcessRecord",
    "RunRecord",
    "StepRecord",
    "Store",
    "StoreHealth",
    "StoredEvent",
]
