"""The one :class:`Store` protocol every engine implements (SPEC §12, DESIGN "Store").

The store sits *below* the runtime: it knows nothing about processes, agents or
events as Python objects. Everything crosses this boundary as plain JSON-able data
(``dict``/``list``/``str``/numbers) or as the small frozen records defined here; the
layers above convert (``Event.to_dict``/``Event.from_json``, ``marshal_messages``).

Durability contract (SPEC §12 "acknowledged means committed"): every ``async`` write
method returns only after its data is committed. Engines batch concurrent writes into
one transaction (group commit), so many callers waiting at once cost one commit.
:meth:`Store.append_events` is the exception that proves the rule: the event writer
calls it with batches off the hot path, and code that must not acknowledge an event
before it is durable waits with :meth:`Store.wait_events_committed`.

Keys never contain node-local ids (SPEC §12, docs/architecture.md): process ids,
run ids and event sequence numbers are the ones the orchestrator hands out, and the
orchestrator continues them after a restart from :meth:`Store.last_event_seq` and
the stored records, so several nodes could later share one PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

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

JSON = Any
"""A JSON-able value (what ``json.dumps`` takes without a ``default``)."""


@attrs.frozen(kw_only=True)
class StoredEvent:
    """One runtime event as stored: its sequence number, kind, time and JSON form
    (``Event.to_dict()``, already redacted)."""

    seq: int
    type: str
    timestamp: float
    data: Mapping[str, JSON]
    """The whole ``Event.to_dict()`` (it repeats ``seq``, ``type`` and ``timestamp``)."""


@attrs.frozen(kw_only=True)
class ProcessRecord:
    """A process as the store keeps it (upserted on every lifecycle event)."""

    id: str
    agent: str
    status: str
    """``ProcessStatus`` value: ``running``, ``completed``, ``failed``, ``stopped``…"""
    parent: str | None = None
    supervisor: str | None = None
    run_id: str | None = None
    user: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    restarts: int = 0
    error: str | None = None
    metrics: Mapping[str, JSON] = attrs.field(factory=dict)
    """Tokens, cost, iterations, tool calls… (``Process.metrics`` as a dict)."""


@attrs.frozen(kw_only=True)
class RunRecord:
    """A workflow run: its identity, inputs and outcome (steps are separate rows)."""

    id: str
    workflow: str
    status: str
    """``running``, ``completed``, ``failed``, ``cancelled`` or ``interrupted``."""
    inputs: Mapping[str, JSON] = attrs.field(factory=dict)
    document: str | None = None
    """Where the workflow came from (the document's path), so a resume can reload it."""
    started_at: float = 0.0
    ended_at: float | None = None
    output: JSON = None
    error: str | None = None
    error_class: str | None = None
    step: str | None = None
    """The failing step's path, when ``status == "failed"``."""
    cost_usd: float = 0.0
    resumes: int = 0


@attrs.frozen(kw_only=True)
class StepRecord:
    """A completed step of a run: its checkpoint. ``path`` is the step's path in the
    workflow (``steps[2].parallel[1].steps[0]``, ``steps[3].for[7]``…); ``result`` is
    what the step produced, reused instead of running it again on resume."""

    run_id: str
    path: str
    status: str
    """``completed`` (a checkpoint) or ``failed``."""
    result: JSON = None
    started_at: float = 0.0
    ended_at: float = 0.0
    cost_usd: float = 0.0
    tokens: int = 0


@attrs.frozen(kw_only=True)
class CostRecord:
    """One LLM call's cost (from an ``llm.call`` event)."""

    seq: int
    """The ``llm.call`` event's sequence number (the row's key: writing it twice is
    harmless)."""
    timestamp: float
    model: str
    agent: str | None = None
    process_id: str | None = None
    run_id: str | None = None
    user: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@attrs.frozen(kw_only=True)
class AgentRecord:
    """A composed agent's definition (created over the API or the library)."""

    name: str
    definition: Mapping[str, JSON]
    """The agent's YAML-equivalent mapping (no secrets: keys are references)."""
    created_at: float = 0.0
    updated_at: float = 0.0


@attrs.frozen
class Page:
    """One page of a listing, newest first, and how many there are in all."""

    items: Sequence[Any]
    total: int


@attrs.frozen(kw_only=True)
class StoreHealth:
    """What ``/healthz`` reports about the store."""

    status: Literal["ok", "degraded", "closed"]
    engine: str
    """``sqlite`` or ``postgresql``."""
    detail: str | None = None
    """Why it is degraded (the last write error, redacted) — writes are being retried."""
    pending_writes: int = 0


@runtime_checkable
class Store(Protocol):
    """Durable state of one node (or, on PostgreSQL, a cluster later).

    Open one with :func:`vega_trio.store.open_store` (an async context manager that
    runs migrations, starts the engine's writer and on exit flushes every pending
    write before it returns).
    """

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        ...

    def health(self) -> StoreHealth: ...

    # ------------------------------------------------------------------ events
    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        """Commit a batch of events (idempotent by ``seq``)."""
        ...

    async def wait_events_committed(self, seq: int) -> None:
        """Return once every event up to ``seq`` handed to :meth:`append_events` is
        committed.

        It also waits until an event numbered ``seq`` or later has been handed over at
        all: a stream that saw event ``seq`` on the bus before the store's event writer
        took it must not send its ``id:`` yet. So wait only for the number of an event
        the writer stores. Raises ``StoreClosed`` when the store closes first."""
        ...

    async def read_events(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        types: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Events with ``seq > after`` in order (``types``: exact names or ``prefix.*``)."""
        ...

    async def last_event_seq(self) -> int:
        """The highest stored sequence number (0 when none): the bus continues after it."""
        ...

    # --------------------------------------------------------------- processes
    async def save_processes(self, records: Sequence[ProcessRecord]) -> None:
        """Upsert processes by id."""
        ...

    async def get_process(self, process_id: str) -> ProcessRecord | None: ...

    async def list_processes(
        self,
        *,
        status: Sequence[str] | None = None,
        agent: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page:
        """Processes newest first (``Page.items`` are :class:`ProcessRecord`)."""
        ...

    # ----------------------------------------------------------- conversations
    async def load_conversation(self, agent: str, user: str | None) -> list[Mapping[str, JSON]]:
        """The stored messages of (agent, user) in order, each one message's JSON form
        (as ``marshal_messages`` writes them); empty when none."""
        ...

    async def append_messages(
        self, agent: str, user: str | None, messages: Sequence[Mapping[str, JSON]]
    ) -> None:
        """Append messages to (agent, user)'s conversation; committed on return (a chat
        turn's response is sent only after this)."""
        ...

    async def replace_conversation(
        self, agent: str, user: str | None, messages: Sequence[Mapping[str, JSON]]
    ) -> None:
        """Replace the whole conversation (after compaction; ``[]`` clears it)."""
        ...

    async def list_conversations(self) -> list[tuple[str, str | None, int]]:
        """Every stored (agent, user, message count)."""
        ...

    # -------------------------------------------------------------------- runs
    async def save_run(self, run: RunRecord) -> None:
        """Upsert a run by id (a run's 202 is sent only after its first save)."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self, *, status: Sequence[str] | None = None, limit: int = 100, offset: int = 0
    ) -> Page:
        """Runs newest first (``Page.items`` are :class:`RunRecord`)."""
        ...

    async def save_step(self, step: StepRecord) -> None:
        """Commit a step's checkpoint (upsert by run id and path)."""
        ...

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        """Every stored step of a run, in the order they were saved."""
        ...

    # ------------------------------------------------------------------- costs
    async def record_costs(self, costs: Sequence[CostRecord]) -> None: ...

    async def cost_totals(
        self, *, by: Literal["agent", "process_id", "run_id", "model"], since: float | None = None
    ) -> dict[str, dict[str, float]]:
        """Per key: ``{"cost_usd", "input_tokens", "output_tokens", "calls"}``; calls
        without that key (no agent, no run…) are under ``""``."""
        ...

    async def cost_series(
        self, *, bucket_seconds: int, since: float | None = None
    ) -> list[dict[str, JSON]]:
        """Cost over time: ``[{"start", "cost_usd", "calls"}]`` per bucket, oldest first."""
        ...

    # ---------------------------------------------------------------- agents
    async def save_agent(self, agent: AgentRecord) -> None: ...

    async def delete_agent(self, name: str) -> bool: ...

    async def list_agents(self) -> list[AgentRecord]: ...

    # ------------------------------------------------------- small durable state
    async def get_state(self, key: str) -> JSON:
        """A small named value (``None`` when unset): budget spend, restart counts,
        the Telegram update offset…"""
        ...

    async def put_state(self, key: str, value: JSON) -> None: ...

    # -------------------------------------------------------------- retention
    async def counts(self) -> dict[str, int]:
        """Rows per table (what ``vega-trio reset`` shows before it asks)."""
        ...

    async def prune(self, *, older_than: float) -> dict[str, int]:
        """Delete events, finished runs (with their steps), finished processes and
        costs older than the timestamp; rows deleted per table."""
        ...

    async def reset(self) -> dict[str, int]:
        """Delete everything (the schema stays); rows deleted per table."""
        ...
