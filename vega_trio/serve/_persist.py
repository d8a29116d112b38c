"""What the server reads from the store (SPEC §10.1, §12): with ``orch.config.store``
set, finished processes, conversations, costs and old events come from it, so what the
server shows survives a restart. Live processes still come from memory (their status
and metrics are fresher than the last batch written), merged into the stored listing.

Acknowledgements wait for commits here too: an ``/api/events`` event is sent with its
``id:`` only after :meth:`Persistence.wait_committed <vega_trio._persist.Persistence.
wait_committed>`; a chat reply is answered after its turn's commit by the session's
history sink (``vega_trio._persist.SessionHistory``).
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import trio

from .._persist import Persistence
from ..orchestrator import Orchestrator
from ..store import ProcessRecord, Store
from ._state import ServerState

__all__ = [
    "FLUSH_WAIT",
    "committed",
    "cost_report",
    "process_from_store",
    "processes_page",
    "record_dict",
    "replay_range",
    "stored_conversation",
]

FLUSH_WAIT = 2.0
"""Seconds a listing waits for the writer to catch up before it answers from what is
committed (a store that is down must not hang a read)."""

_REPLAY_PAGE = 500
_SHUTDOWN_CHECK = 0.5


def _store(orch: Orchestrator) -> tuple[Store, Persistence] | None:
    persistence = orch.persistence
    if persistence is None:
        return None
    return persistence.store, persistence


async def _caught_up(persistence: Persistence) -> None:
    with trio.move_on_after(FLUSH_WAIT):
        await persistence.flush()


def record_dict(record: ProcessRecord) -> dict[str, Any]:
    """A stored process in the same JSON form as a live one (what is not stored is
    ``null``; ``metrics`` only for an agent process, as live)."""
    return {
        "id": record.id,
        "name": None,
        "agent": record.agent,
        "status": record.status,
        "parent_id": record.parent,
        "spawn_depth": None,
        "spawn_reason": None,
        "task": None,
        "started_at": record.started_at,
        "completed_at": record.ended_at,
        "last_active": None,
        "restart_count": record.restarts,
        "groups": [],
        "run_id": record.run_id,
        "user": record.user,
        "error": record.error,
        **({"metrics": dict(record.metrics)} if record.metrics else {}),
    }


async def processes_page(
    orch: Orchestrator,
    live_dict: Any,
    *,
    statuses: Sequence[str] | None,
    agents: Sequence[str] | None,
    limit: int,
    offset: int,
) -> dict[str, Any] | None:
    """``GET /api/processes`` from the store (newest first; live ones as they are now),
    or ``None`` without a store."""
    found = _store(orch)
    if found is None:
        return None
    store, persistence = found
    await _caught_up(persistence)
    if agents is None or len(agents) == 1:
        page = await store.list_processes(
            status=statuses,
            agent=None if agents is None else agents[0],
            limit=limit,
            offset=offset,
        )
        records: list[ProcessRecord] = list(page.items)
        total = page.total
    else:
        # Several agents: the newest offset+limit of each, merged newest first.
        pages = [
            await store.list_processes(status=statuses, agent=a, limit=offset + limit, offset=0)
            for a in dict.fromkeys(agents)
        ]
        merged = heapq.merge(
            *[list(p.items) for p in pages], key=lambda r: r.started_at, reverse=True
        )
        records = list(merged)[offset : offset + limit]
        total = sum(p.total for p in pages)
    live = orch._runtime._processes
    items = []
    for record in records:
        proc = live.get(record.id)
        items.append(
            live_dict(proc)
            if proc is not None and not proc.status.finished
            else record_dict(record)
        )
    return {"processes": items, "total": total, "offset": offset, "limit": limit}


async def process_from_store(orch: Orchestrator, process_id: str) -> dict[str, Any] | None:
    """A finished process from the store (``None`` when unknown or without a store)."""
    found = _store(orch)
    if found is None:
        return None
    store, persistence = found
    await _caught_up(persistence)
    record = await store.get_process(process_id)
    return None if record is None else record_dict(record)


async def stored_conversation(
    orch: Orchestrator, agent: str, user: str | None
) -> list[dict[str, Any]] | None:
    """The stored conversation of (agent, user) in its JSON form (every committed turn,
    also those a context manager trimmed from the live history), or ``None`` without a
    store."""
    found = _store(orch)
    if found is None:
        return None
    return [dict(m) for m in await found[0].load_conversation(agent, user)]


async def cost_report(
    orch: Orchestrator, *, bucket_seconds: int, since: float | None
) -> dict[str, Any]:
    """``GET /api/costs``: the live totals and budgets (``orch.costs()``) and, with a
    store, every recorded call's cost per agent, process, run and model and over time
    (``by``, ``series``)."""
    report = orch.costs()
    found = _store(orch)
    if found is None:
        return report
    store, persistence = found
    await _caught_up(persistence)
    report["by"] = {
        key: await store.cost_totals(by=key, since=since)
        for key in ("agent", "process_id", "run_id", "model")
    }
    report["series"] = await store.cost_series(bucket_seconds=bucket_seconds, since=since)
    report["bucket_seconds"] = bucket_seconds
    return report


async def committed(state: ServerState, seq: int) -> bool:
    """Wait until event ``seq`` is committed (at once without a store): ``False`` when
    the server began to shut down first (a store that cannot commit — a full disk — must
    not hold a stream, and so the shutdown, open)."""
    persistence = state.orch.persistence
    if persistence is None or persistence.committed_seq >= seq:
        return True
    while not state.closing:
        with trio.move_on_after(_SHUTDOWN_CHECK):
            await persistence.wait_committed(seq)
            return True
    return False


def _matches(
    data: Any,
    agents: Collection[str] | None,
    processes: Collection[str] | None,
    runs: Collection[str] | None,
) -> bool:
    return (
        (agents is None or data.get("agent") in agents)
        and (processes is None or data.get("process_id") in processes)
        and (runs is None or data.get("run_id") in runs)
    )


async def replay_range(
    orch: Orchestrator,
    after: int,
    last: int,
    *,
    types: Sequence[str] | None,
    agents: Collection[str] | None,
    processes: Collection[str] | None,
    runs: Collection[str] | None,
) -> AsyncIterator[tuple[int, str, dict[str, Any]]]:
    """The stored events ``after < seq <= last`` that pass the filters, read from the
    store page by page once ``last`` is committed: ``(seq, type, data)``, in order (the
    events a resuming stream needs that are older than the server's event log and the
    bus's history). Nothing without a store."""
    found = _store(orch)
    if found is None or after >= last:
        return
    store, persistence = found
    await persistence.wait_committed(last)
    cursor = after
    while cursor < last:
        batch = await store.read_events(after=cursor, limit=_REPLAY_PAGE, types=types)
        if not batch:
            return
        for event in batch:
            if event.seq > last:
                return
            cursor = event.seq
            data = dict(event.data)
            if _matches(data, agents, processes, runs):
                yield event.seq, event.type, data  # noqa: ASYNC119 - the caller closes it
