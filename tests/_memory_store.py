"""TEMPORARY: an in-memory stand-in for the store until the SQLite engine is merged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs

from vega_trio.store import Page, RunRecord, StepRecord, StoreHealth


class MemoryStore:
    engine = "memory"

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.steps: dict[str, dict[str, StepRecord]] = {}

    def health(self) -> StoreHealth:
        return StoreHealth(status="ok", engine="memory")

    async def save_run(self, run: RunRecord) -> None:
        self.runs[run.id] = run

    async def get_run(self, run_id: str) -> RunRecord | None:
        return self.runs.get(run_id)

    async def list_runs(self, *, status: Any = None, limit: int = 100, offset: int = 0) -> Page:
        items = [r for r in reversed(self.runs.values()) if status is None or r.status in status]
        return Page(items[offset : offset + limit], len(items))

    async def save_step(self, step: StepRecord) -> None:
        self.steps.setdefault(step.run_id, {})[step.path] = step

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        return list(self.steps.get(run_id, {}).values())

    async def load_conversation(self, agent: str, user: str | None) -> list[Any]:
        return []

    def __getattr__(self, name: str) -> Any:
        async def missing(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError(name)

        return missing


for _name in (
    "append_events wait_events_committed read_events last_event_seq save_processes "
    "get_process list_processes append_messages replace_conversation list_conversations "
    "record_costs cost_totals cost_series save_agent delete_agent list_agents get_state "
    "put_state counts prune reset"
).split():
    setattr(MemoryStore, _name, MemoryStore.__getattr__(MemoryStore(), _name))


@asynccontextmanager
async def open_store(location: Any) -> AsyncIterator[MemoryStore]:
    yield MemoryStore()


_ = attrs
