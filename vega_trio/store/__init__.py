"""Durable state (SPEC §12): one :class:`Store` protocol and its engines.

Open one with :func:`open_store` (a file path, ``sqlite:///PATH``, ``":memory:"`` or
``postgresql://…``); see docs/persistence.md.
"""

from __future__ import annotations

from .._errors import StoreClosed, StoreError, StoreOpenError
from ._migrations import LATEST as SCHEMA_VERSION
from ._open import open_store
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
    "SCHEMA_VERSION",
    "StepRecord",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreHealth",
    "StoreOpenError",
    "StoredEvent",
    "open_store",
]
