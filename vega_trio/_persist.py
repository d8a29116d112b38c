"""The orchestrator's store wiring (SPEC §12, DESIGN "Store"): what is written to
``config.store``, when, and what an orchestrator opened on it continues from.

* **Events** go through the bus's one lossless hook (:meth:`EventBus.add_sink
  <vega_trio.runtime.EventBus.add_sink>`): the sink appends each event to the next batch
  (a list append on the hot path, nothing else), and the writer task commits batches with
  :meth:`Store.append_events` (group commit) — never a dropped event: a backlog grows
  instead (above ``warn_backlog`` events it is logged once and shown by ``/healthz`` as
  ``pending_writes``). :meth:`Persistence.wait_committed` is what an acknowledgement
  waits for (an SSE ``id:``).
* **Processes** are upserted from their lifecycle events (snapshotted when the event is
  published, so an exit records the final status and metrics), and refreshed after
  their LLM calls and requests; **costs** are recorded from ``llm.call`` events.
* **Spend and restarts** — the global budget's and every agent's spend, restarts per
  agent — are saved with :meth:`Store.put_state` in the same writer pass, and restored
  when the orchestrator opens: a crash cannot reset a budget.
* **Conversations**: a session's process has a :class:`SessionHistory` sink that
  commits each completed turn (:meth:`Store.append_messages`) before the send is
  answered, replaces the stored conversation after a compaction, and the registry
  loads it when the session is first spawned (``orch.session`` after a restart goes on
  with its history) and clears it when the session is ended.
* **Sequence numbers** continue after :meth:`Store.last_event_seq`, so ``Last-Event-ID``
  stays valid across restarts.
* **Composed agents** (source ``composed``: the REST API, the library's
  ``orch.agents.define``) are saved from their ``agent.created`` / ``agent.updated`` /
  ``agent.deleted`` events with :meth:`Store.save_agent` / :meth:`Store.delete_agent`
  (their YAML-equivalent mapping, in the batch of that event, so waiting for the
  event's commit is waiting for theirs). :meth:`Persistence.restore` reads the stored
  ones into :attr:`Persistence.stored_agents`; building agents from them needs the DSL,
  a layer above, so the surface that has it redefines them
  (``vega_trio.serve.restore_agents``, which ``serve()`` calls before it listens).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import trio

from ._errors import StoreClosed
from .agent import AgentProcess
from .agent._bus_events import AgentCreated, AgentDeleted, AgentUpdated, LLMCalled
from .llm import Message
from .llm._messages import message_from_dict, message_to_dict
from .runtime import Event, Process
from .runtime._events import (
    ProcessCompleted,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStopped,
)
from .store import AgentRecord, CostRecord, ProcessRecord, Store, StoredEvent

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

__all__ = ["Persistence", "SessionHistory", "StoreDegraded", "StoreRecovered", "load_history"]

_log = logging.getLogger("vega_trio.store")

SPEND_KEY = "budget.spend"
"""``put_state`` key: ``{"global": usd, "agents": {name: usd}}``."""
RESTARTS_KEY = "restarts"
"""``put_state`` key: ``{agent: restarts}`` over the store's life."""

_LIFECYCLE: frozenset[str] = frozenset(
    k.type for k in (ProcessStarted, ProcessCompleted, ProcessFailed, ProcessStopped)
)
_EXITS: frozenset[str] = frozenset(
    k.type for k in (ProcessCompleted, ProcessFailed, ProcessStopped)
)
#: Agent definition changes (a composed one is saved or deleted).
_DEFINITIONS: frozenset[str] = frozenset(k.type for k in (AgentCreated, AgentUpdated, AgentDeleted))
#: Events after which a live process's metrics changed (its record is refreshed).
_ACTIVITY: frozenset[str] = frozenset({LLMCalled.type, "request.finished", "tool.end"})


HEALTH_CHECK_SECONDS = 1.0
"""How often the writer looks at the store's health (to publish its changes)."""

CLOSE_HEALTH_CHECK_SECONDS = 0.05
"""How often the orchestrator's last write looks whether the store still commits."""


@attrs.frozen(kw_only=True)
class StoreDegraded(Event):
    """The store's writes fail and are being retried (``store.degraded``): nothing is
    lost, acknowledgements wait; ``detail`` says why (redacted)."""

    type: ClassVar[str] = "store.degraded"
    engine: str = ""
    detail: str | None = None
    pending_writes: int = 0


@attrs.frozen(kw_only=True)
class StoreRecovered(Event):
    """The store commits again (``store.recovered``)."""

    type: ClassVar[str] = "store.recovered"
    engine: str = ""


def exit_error(proc: Process) -> str | None:
    """Why a process ended abnormally (``None`` while it runs, after a normal exit or a
    shutdown): what the API shows as its ``error``, live or stored."""
    reason = proc.exit_reason
    if reason is not None and reason.abnormal and reason.kind != "shutdown":
        return reason.detail or reason.kind
    return None


def process_record(proc: Process) -> ProcessRecord:
    """A process as the store keeps it, now."""
    error = exit_error(proc)
    return ProcessRecord(
        id=proc.id,
        agent=proc.agent_name,
        status=str(proc.status),
        parent=proc.parent_id,
        run_id=proc.run_id,
        user=proc.user,
        started_at=proc.started_at or 0.0,
        ended_at=proc.completed_at,
        restarts=proc.restart_count,
        error=error,
        metrics=proc.metrics.to_dict() if isinstance(proc, AgentProcess) else {},
    )


class Persistence:
    """One orchestrator's writer to its store (made by ``open_orchestrator`` when
    ``config.store`` is set; ``orch.persistence``).

    Args:
        store: the store.
        orch: the orchestrator whose bus, processes and budgets are written.
        batch_size: the most events one commit takes (a longer backlog takes several).
        warn_backlog: events waiting to be written above which a warning is logged
            (once per episode); nothing is ever dropped.
        interval: seconds the writer lets events gather before a commit, unless
            someone waits for one (:meth:`wait_committed`): fewer, larger commits keep
            the store's cost off the agents' hot path.
    """

    def __init__(
        self,
        store: Store,
        orch: Orchestrator,
        *,
        batch_size: int = 2000,
        warn_backlog: int = 100_000,
        interval: float = 0.05,
    ) -> None:
        self.store = store
        self._orch = orch
        self._batch_size = batch_size
        self._warn_backlog = warn_backlog
        self._events: list[Event] = []
        self._processes: dict[str, ProcessRecord] = {}
        self._dirty: dict[str, None] = {}
        self._costs: list[CostRecord] = []
        self._spend_changed = False
        self._restarts_changed = False
        self._interval = interval
        self._wakeup = trio.Event()
        self._urgent = trio.Event()
        self._committed_changed = trio.Event()
        self._warned = False
        self.committed_seq = 0
        """The highest sequence number whose event (and everything before it) is
        committed."""
        self.restored_spend: dict[str, float] = {}
        """Agents' spend as stored, for agents not spawned yet since the restart."""
        self.restarts: dict[str, int] = {}
        """Restarts per agent, over the store's life."""
        self.write_error: str | None = None
        """The last failed write (the batch is kept and retried), ``None`` when fine."""
        self.stored_agents: dict[str, AgentRecord] = {}
        """The composed agents as stored (read by :meth:`restore`, kept current by the
        writer): what a surface with the DSL redefines after a restart."""
        self.unrestored_agents: dict[str, str] = {}
        """Stored composed agents that could not be defined again, and why (shown by
        ``/healthz``); the record stays stored, so a fix (the tool is back, a new
        definition of that name) brings it back."""
        self._agent_writes: dict[str, AgentRecord | None] = {}

    @property
    def backlog(self) -> int:
        """Events handed over but not committed yet."""
        return self._orch._runtime.bus.published - self.committed_seq

    # ------------------------------------------------------------------- start
    async def restore(self) -> None:
        """Continue from the store: event numbers, budget spend, restart totals. Called
        before anything is published."""
        store, orch = self.store, self._orch
        last = await store.last_event_seq()
        orch._runtime.bus.continue_after(last)
        self.committed_seq = last
        spend = await store.get_state(SPEND_KEY)
        if isinstance(spend, dict):
            total = spend.get("global")
            if isinstance(total, int | float) and total > 0:
                orch.budget.spent = float(total)
            agents = spend.get("agents")
            if isinstance(agents, dict):
                self.restored_spend = {
                    str(k): float(v) for k, v in agents.items() if isinstance(v, int | float)
                }
        restarts = await store.get_state(RESTARTS_KEY)
        if isinstance(restarts, dict):
            self.restarts = {str(k): int(v) for k, v in restarts.items() if isinstance(v, int)}
        self.stored_agents = {record.name: record for record in await store.list_agents()}
        orch._runtime.bus.add_sink(self._sink)

    def claim_spend(self, agent: str) -> float:
        """The stored spend of ``agent`` for its first tracker since the restart (0
        afterwards, so agents sharing a name are not counted twice)."""
        return self.restored_spend.pop(agent, 0.0)

    # ---------------------------------------------------------------- hot path
    def _sink(self, event: Event) -> None:
        # NOTE: on the hot path: appends and dict writes only; the JSON forms are made
        # by the writer task.
        self._events.append(event)
        kind = event.type
        pid = event.process_id
        if pid is not None:
            if kind in _LIFECYCLE:
                proc = self._orch._runtime._processes.get(pid)
                if proc is not None:  # snapshot now: an exited process is pruned soon
                    self._processes[pid] = process_record(proc)
                    self._dirty.pop(pid, None)
            elif kind in _ACTIVITY:
                self._dirty[pid] = None
        if kind == LLMCalled.type:
            assert isinstance(event, LLMCalled)
            if event.error_class is None:
                self._costs.append(
                    CostRecord(
                        seq=event.seq,
                        timestamp=event.timestamp,
                        model=event.model or "",
                        agent=event.agent,
                        process_id=pid,
                        run_id=event.run_id,
                        user=event.user,
                        input_tokens=event.input_tokens or 0,
                        output_tokens=event.output_tokens or 0,
                        cost_usd=event.cost_usd or 0.0,
                    )
                )
                self._spend_changed = True
        elif kind == ProcessRestarted.type and event.agent is not None:
            self.restarts[event.agent] = self.restarts.get(event.agent, 0) + 1
            self._restarts_changed = True
        elif kind in _DEFINITIONS and event.agent is not None:
            self._definition_changed(event)
        if not self._warned and len(self._events) > self._warn_backlog:
            self._warned = True
            _log.warning(
                "the store is %d events behind (nothing is dropped; they are written as "
                "fast as it commits): %s",
                len(self._events),
                self.write_error or "the writer is busy",
            )
        self._wakeup.set()

    def _definition_changed(self, event: Event) -> None:
        """Queue the save (or the delete) of a composed agent's definition; the
        registry has already changed when its event is published."""
        name = event.agent
        assert name is not None
        if getattr(event, "source", None) != "composed":
            return  # a file's or a built-in agent: the file (or the code) is its record
        if event.type == AgentDeleted.type:
            self.unrestored_agents.pop(name, None)
            if self.stored_agents.pop(name, None) is not None or name in self._agent_writes:
                self._agent_writes[name] = None
            return
        registry = self._orch.agents
        if name not in registry:
            return
        definition = registry.get(name)
        mapping, _complete = definition.as_mapping()
        self.unrestored_agents.pop(name, None)
        stored = self.stored_agents.get(name)
        if stored is not None and dict(stored.definition) == mapping:
            return  # unchanged (a restored agent defined again): nothing to write
        record = AgentRecord(
            name=name,
            definition=mapping,
            created_at=stored.created_at if stored is not None else event.timestamp,
            updated_at=event.timestamp,
        )
        self.stored_agents[name] = record
        self._agent_writes[name] = record

    # ------------------------------------------------------------------ writer
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task: commit what the sink collected, batch after batch, until
        cancelled (the orchestrator's end calls :meth:`flush` first)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_health)
            task_status.started()
            await self._write_loop()

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            with trio.move_on_after(self._interval):
                await self._urgent.wait()
            self._wakeup = trio.Event()
            self._urgent = trio.Event()
            await self._write_pending(until_empty=False)

    async def _write_pending(self, *, until_empty: bool = True) -> None:
        """Write what is pending: one batch (the writer task, which then lets the next
        gather), or until nothing is left (the close)."""
        while self._events or self._processes or self._dirty or self._costs or self._agent_writes:
            events = self._events[: self._batch_size]
            del self._events[: len(events)]
            processes = self._processes
            self._processes = {}
            for pid in self._dirty:
                if pid not in processes:
                    proc = self._orch._runtime._processes.get(pid)
                    if proc is not None:
                        processes[pid] = process_record(proc)
            self._dirty = {}
            costs, self._costs = self._costs, []
            spend = self._spend_state() if self._spend_changed else None
            self._spend_changed = False
            restarts = dict(self.restarts) if self._restarts_changed else None
            self._restarts_changed = False
            agents, self._agent_writes = self._agent_writes, {}
            stored = [
                StoredEvent(seq=e.seq, type=e.type, timestamp=e.timestamp, data=e.to_dict())
                for e in events
            ]
            # NOTE: the store retries a failing write itself (and reports it in its
            # health); an exception here means it gave up, and a cancellation (the
            # orchestrator's end) may have cut the writes short: either way the batch
            # is put back and written again (every write is idempotent), never dropped.
            written = closed = False
            try:
                # NOTE: started together, so the store's group commit puts them in one
                # transaction (one commit per batch, not one per kind of row).
                async with trio.open_nursery() as nursery:
                    if stored:
                        nursery.start_soon(self.store.append_events, stored)
                    if processes:
                        nursery.start_soon(self.store.save_processes, list(processes.values()))
                    if costs:
                        nursery.start_soon(self.store.record_costs, costs)
                    if spend is not None:
                        nursery.start_soon(self.store.put_state, SPEND_KEY, spend)
                    if restarts is not None:
                        nursery.start_soon(self.store.put_state, RESTARTS_KEY, restarts)
                    for name, record in agents.items():
                        if record is None:
                            nursery.start_soon(self.store.delete_agent, name)
                        else:
                            nursery.start_soon(self.store.save_agent, record)
                written = True
            except* StoreClosed as gone:
                # The store is gone (a forced stop closed it first): nothing can write
                # these any more, and retrying would hold the shutdown for nothing.
                # None of them was acknowledged (an id goes out only after its commit).
                closed_error = gone.exceptions[0]
                self.write_error = f"{type(closed_error).__name__}: {closed_error}"
                _log.error(
                    "%d event(s) and other pending rows were not written: %s",
                    len(self._events) + len(events),
                    self.write_error,
                )
                written = closed = True  # dropped: nothing to put back
            except* Exception as group:
                error = group.exceptions[0]
                self.write_error = f"{type(error).__name__}: {error}"
                _log.warning("could not write to the store (retrying): %s", self.write_error)
            finally:
                if not written:
                    self._events[:0] = events
                    self._processes = {**processes, **self._processes}
                    self._costs[:0] = costs
                    self._spend_changed |= spend is not None
                    self._restarts_changed |= restarts is not None
                    self._agent_writes = {**agents, **self._agent_writes}
            if closed:
                self._events.clear()
                self._processes, self._dirty, self._costs = {}, {}, []
                self._agent_writes = {}
                self._spend_changed = self._restarts_changed = False
                return
            if not written:
                await trio.sleep(1.0)
                continue
            self.write_error = None
            if events:
                self.committed_seq = events[-1].seq
            elif not self._events:
                self.committed_seq = max(self.committed_seq, self._orch._runtime.bus.published)
            if self._warned and len(self._events) < self._warn_backlog // 2:
                self._warned = False
            self._committed_changed.set()
            self._committed_changed = trio.Event()
            if not until_empty:
                if self._events or self._dirty:
                    self._wakeup.set()  # the next batch, after the next interval
                return

    async def _watch_health(self) -> None:
        """Publish ``store.degraded`` / ``store.recovered`` when the store's health
        changes (its writes failing and retried, then committing again)."""
        reported = "ok"
        bus = self._orch._runtime.bus
        while True:
            await trio.sleep(HEALTH_CHECK_SECONDS)
            health = self.store.health()
            if health.status == "degraded" and reported != "degraded":
                bus.emit(
                    StoreDegraded,
                    engine=health.engine,
                    detail=health.detail,
                    pending_writes=health.pending_writes + self.backlog,
                )
            elif health.status == "ok" and reported == "degraded":
                bus.emit(StoreRecovered, engine=health.engine)
            reported = health.status

    def _spend_state(self) -> dict[str, Any]:
        agents: dict[str, float] = dict(self.restored_spend)
        for shared in self._orch._shared_by_agent.values():
            name = shared.agent.name
            agents[name] = agents.get(name, 0.0) + shared.spend.spent
        return {"global": self._orch.budget.spent, "agents": agents}

    async def wait_committed(self, seq: int) -> None:
        """Return once the event ``seq`` (and every one before it) is committed."""
        while self.committed_seq < seq:
            self._urgent.set()
            await self._committed_changed.wait()
        await self.store.wait_events_committed(seq)

    async def flush(self) -> None:
        """Commit everything published so far (events, processes, costs, spend)."""
        await self.wait_committed(self._orch._runtime.bus.published)
        while (
            self._processes
            or self._dirty
            or self._costs
            or self._spend_changed
            or self._agent_writes
        ):
            self._wakeup.set()
            self._urgent.set()
            await self._committed_changed.wait()

    async def close(self) -> None:
        """Write what is left (the orchestrator's last events) and stop taking more.

        Waits for the commit only while the store commits: once it reports that its
        writes fail (``degraded``: down, disk full) or it is closed, the writes handed
        to it stay queued there and its own close flushes them, bounded by its
        ``flush_seconds`` — a store that is down is waited for once, not twice.
        """
        try:
            async with trio.open_nursery() as nursery:

                async def write_then_stop() -> None:
                    await self._write_pending()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(write_then_stop)
                # NOTE: polled: the store reports health changes only to the callback
                # its opener passed (the server's), so there is no event to wait on.
                while self.store.health().status == "ok":  # noqa: ASYNC110
                    await trio.sleep(CLOSE_HEALTH_CHECK_SECONDS)
                nursery.cancel_scope.cancel()
        finally:
            self._orch._runtime.bus.remove_sink(self._sink)


class SessionHistory:
    """A session's :class:`~vega_trio.agent.HistorySink`: its conversation in the store."""

    def __init__(self, store: Store, agent: str, user: str | None) -> None:
        self._store = store
        self._agent = agent
        self._user = user

    async def turn_completed(self, process: Process, messages: Sequence[Message]) -> None:
        await self._store.append_messages(
            self._agent, self._user, [message_to_dict(m) for m in messages]
        )

    async def history_replaced(self, process: Process, messages: Sequence[Message]) -> None:
        await self._store.replace_conversation(
            self._agent, self._user, [message_to_dict(m) for m in messages]
        )


async def load_history(store: Store, agent: str, user: str | None) -> list[Message]:
    """The stored conversation of (agent, user) as messages.

    Raises:
        ValueError: a stored message is not a message's JSON form (the message says
            which conversation and which element).
    """
    where = agent if user is None else f"{agent}:{user}"
    stored = await store.load_conversation(agent, user)
    return [
        message_from_dict(m, f"the stored conversation of {where!r}[{i}]")
        for i, m in enumerate(stored)
    ]
