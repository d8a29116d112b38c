"""The server's event fan-out: ONE consumer of the bus for every event stream.

``/api/events`` clients and ``/api/ws`` subscriptions do not subscribe to the bus each
(that made the bus hand every event to every client: 5,000 events/s to 1,000 clients is
5 million Python calls a second, B9). The server's :class:`EventLog` is a sink on the
bus while at least one reader is attached, and keeps the latest ``capacity`` events in a
ring, each encoded (and redacted) at most once, on first read. Each reader
(:class:`LogReader`) keeps its own position in the log and its own filters:

* one shared notification wakes the readers (not one per event per reader); the first
  reader to see uncommitted-to-readers events *leads*: it waits out the coalescing window
  (:data:`COALESCE` since the last tick), waits once for the newest event's commit
  (``id:`` is an acknowledgement, SPEC §12) and advances :attr:`EventLog.visible` for
  everyone. Readers only read up to ``visible``, so WebSocket messages carry committed
  events too.
* readers with the same filters at the same position share one filtered batch (and its
  SSE bytes) per tick: the per-event work is per distinct filter, not per client.
* a reader that falls behind the log's start (a slow client) is told how many events it
  missed (``lagged``) and goes on from the start; the runtime never waits for a reader.
* a reader that starts ``after`` a sequence number older than the log gets the older
  events from the bus's history, then from the store (:func:`~._persist.replay_range`).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._redact import redact_data
from ..runtime import Event, EventBus, Lagged

if TYPE_CHECKING:
    from ..orchestrator import Orchestrator

__all__ = ["COALESCE", "Batch", "Entry", "EventFilter", "EventLog", "LogReader", "sse"]

UNCOMMITTED_CHECK = 0.25
"""How often a leader waiting for a commit looks for store health events to send at once."""
_STORE_HEALTH = frozenset({"store.degraded", "store.recovered"})
_EARLY_KEPT = 256
COALESCE = 0.025
"""The least time (seconds) between two ticks of the log: under load, one write to a
client every tick carries everything since the last (a send costs far more than an
event); an event after a quiet spell goes out at once."""

PACE = 1.0
"""After a tick's writes (the *round*: from the tick until the last reader is back), the
next tick waits at least ``PACE`` times the round's length: with many clients the
fan-out takes at most about half of the event loop, and the agents the rest (B9).
Latency then grows with the number of clients instead of the runtime stalling."""


def sse(event: str, data: Any, *, event_id: int | None = None) -> bytes:
    """One server-sent event, its data redacted (SPEC §11)."""
    payload = json.dumps(redact_data(data), ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {payload}\n\n".encode()


class Entry:
    """One event of the log: its ids for filtering, and its JSON and SSE forms, made
    (and redacted) once, on first read, for every reader."""

    __slots__ = (
        "_data",
        "_event",
        "_payload",
        "_sse",
        "agent",
        "process_id",
        "run_id",
        "seq",
        "type",
    )

    def __init__(
        self,
        seq: int,
        kind: str,
        agent: str | None,
        process_id: str | None,
        run_id: str | None,
        *,
        event: Event | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.seq = seq
        self.type = kind
        self.agent = agent
        self.process_id = process_id
        self.run_id = run_id
        self._event = event
        self._data = data
        self._payload: str | None = None
        self._sse: bytes | None = None

    @classmethod
    def of(cls, event: Event) -> Entry:
        return cls(event.seq, event.type, event.agent, event.process_id, event.run_id, event=event)

    @classmethod
    def stored(cls, seq: int, kind: str, data: dict[str, Any]) -> Entry:
        """An event read back from the store (its JSON form as a dict)."""
        return cls(
            seq, kind, data.get("agent"), data.get("process_id"), data.get("run_id"), data=data
        )

    def _encode(self) -> str:
        """The JSON text: an event's own ``to_json`` (which redacts), or a stored form
        redacted again with today's secrets."""
        if self._event is not None:
            return self._event.to_json()
        return json.dumps(redact_data(self._data or {}), ensure_ascii=False, separators=(",", ":"))

    @property
    def payload(self) -> str:
        """The event's JSON form (redacted), as text."""
        if self._payload is None:
            self._payload = self._encode()
            self._event = None  # what is encoded is all that is needed from now on
            self._data = None
        return self._payload

    def early(self) -> Entry:
        """This event as it goes out before its commit (a store health event while the
        store cannot commit): as an SSE message without ``id:`` — an id is an
        acknowledgement, and a client resuming after it must not skip what is not
        committed yet."""
        copy = Entry(self.seq, self.type, self.agent, self.process_id, self.run_id)
        copy._payload = self.payload
        copy._sse = f"event: {self.type}\ndata: {self.payload}\n\n".encode()
        return copy

    @property
    def sse(self) -> bytes:
        """The event as one SSE message with its ``id:``."""
        if self._sse is None:
            self._sse = f"id: {self.seq}\nevent: {self.type}\ndata: {self.payload}\n\n".encode()
        return self._sse


def _type_keys(types: Collection[str] | None) -> tuple[frozenset[str], tuple[str, ...]]:
    """``(exact names, prefixes)`` of a ``types`` filter, as the bus reads them:
    ``process.*`` and ``process.`` are the prefix ``process.``; ``*`` is every type."""
    if types is None:
        return frozenset(), ("",)
    exact: set[str] = set()
    prefixes: set[str] = set()
    for name in types:
        if name == "*":
            prefixes.add("")
        elif name.endswith(".*"):
            prefixes.add(name[:-1])
        elif name.endswith("."):
            prefixes.add(name)
        else:
            exact.add(name)
    return frozenset(exact), tuple(sorted(prefixes))


def _ids(values: Collection[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


@attrs.frozen
class EventFilter:
    """The filters of one stream (each given one must hold; ``None``: any)."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]
    agents: frozenset[str] | None
    processes: frozenset[str] | None
    runs: frozenset[str] | None

    @classmethod
    def of(
        cls,
        types: Collection[str] | str | None = None,
        agents: Collection[str] | None = None,
        processes: Collection[str] | None = None,
        runs: Collection[str] | None = None,
    ) -> EventFilter:
        exact, prefixes = _type_keys((types,) if isinstance(types, str) else types)
        return cls(exact, prefixes, _ids(agents), _ids(processes), _ids(runs))

    def accepts(self, entry: Entry) -> bool:
        kind = entry.type
        if kind not in self.exact and not any(kind.startswith(p) for p in self.prefixes):
            return False
        return (
            (self.agents is None or entry.agent in self.agents)
            and (self.processes is None or entry.process_id in self.processes)
            and (self.runs is None or entry.run_id in self.runs)
        )

    @property
    def types(self) -> list[str] | None:
        """The type filter as the bus and the store read it."""
        if "" in self.prefixes:
            return None
        return [*sorted(self.exact), *(p + "*" for p in self.prefixes)]


class _Shared:
    """A filtered batch shared by the readers of the same filters at the same position
    in one tick, with its SSE bytes joined once."""

    __slots__ = ("_sse", "entries")

    def __init__(self, entries: tuple[Entry, ...]) -> None:
        self.entries = entries
        self._sse: bytes | None = None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = b"".join(e.sse for e in self.entries)
        return self._sse


@attrs.frozen
class Batch:
    """What a reader gets at once: how many events it missed (``lagged``; 0 for none),
    then its events, in order."""

    missed: int
    _shared: _Shared

    @property
    def entries(self) -> tuple[Entry, ...]:
        return self._shared.entries

    def sse(self) -> bytes:
        """The batch as SSE bytes (a ``lagged`` event first when some were missed)."""
        body = self._shared.sse
        if self.missed:
            return sse("lagged", Lagged(missed=self.missed).to_dict()) + body
        return body


_NO_ENTRIES = _Shared(())
_REPLAY_BATCH = 500


class EventLog:
    """The server's shared, bounded log of the bus's latest events (see the module).

    Args:
        bus: the orchestrator's event bus (called when the first reader attaches).
        capacity: how many of the latest events are kept; a reader further behind gets
            ``lagged``.
        gate: waits until an event's sequence number is committed (``False``: the
            server is shutting down and it never will be).
    """

    def __init__(
        self, bus: Callable[[], EventBus], capacity: int, gate: Callable[[int], Awaitable[bool]]
    ) -> None:
        if capacity < 1:
            raise ValueError(f"an event log holds at least 1 event, got {capacity}")
        self._bus = bus
        self.capacity = capacity
        self._gate = gate
        self._slots: list[Entry | None] = [None] * capacity
        self._first = 1  # the first sequence number appended since attached
        self.last = 0
        """The newest event appended."""
        self.visible = 0
        """The newest event readers may read (committed when there is a store)."""
        self.closed = False
        self.readers: set[LogReader] = set()
        self.dropped_total = 0
        """Events readers have lost by falling behind the log (each was told: lagged)."""
        self._wake = trio.Event()
        self._leading = False
        self._last_tick = -math.inf
        self._round_end = -math.inf  # when the latest reader came back from its write
        self._memo: dict[tuple[EventFilter, int], _Shared] = {}
        self._sink = self._append  # one bound method, so remove_sink finds it
        self._early: list[Entry] = []
        """Store health events sent before their commit (without an id), newest last."""
        self._early_base = 0  # the absolute index of _early[0]
        self._early_seqs: set[int] = set()  # never sent again, with an id, by _take

    @property
    def bus(self) -> EventBus:
        return self._bus()

    @property
    def start(self) -> int:
        """The oldest sequence number still in the log (``last + 1`` when empty)."""
        return max(self._first, self.last - self.capacity + 1)

    # ------------------------------------------------------------------ the bus side
    def _append(self, event: Event) -> None:
        # The bus's sink: synchronous, in order, on the publisher's path: keep it cheap.
        seq = event.seq
        self._slots[seq % self.capacity] = Entry.of(event)
        self.last = seq
        if not self._leading:
            self._wake.set()

    def _attach(self) -> None:
        bus = self.bus
        self._first = bus.published + 1
        self.last = self.visible = bus.published
        self._memo.clear()
        bus.add_sink(self._sink)

    def _detach(self) -> None:
        self.bus.remove_sink(self._sink)
        self._slots = [None] * self.capacity  # nothing kept for nobody

    def close(self) -> None:
        """End every reader (the server is shutting down)."""
        self.closed = True
        self._wake.set()

    # ------------------------------------------------------------------ readers
    @contextmanager
    def reader(self, event_filter: EventFilter, after: int | None = None) -> Iterator[LogReader]:
        """A reader for the duration of a ``with`` block, live from now, or from after
        ``after`` (older events first from the bus's history, then the store).

        The log is a sink on the bus only while it has readers (an event nobody wants
        is not even built)."""
        if not self.readers:
            self._attach()
        reader = LogReader(self, event_filter, self.last)
        if after is not None:
            reader._start_after(after)
        self.readers.add(reader)
        try:
            yield reader
        finally:
            self.readers.discard(reader)
            if not self.readers:
                self._detach()

    @property
    def early_total(self) -> int:
        """How many store health events have gone out early (an absolute count)."""
        return self._early_base + len(self._early)

    def early_since(self, seen: int) -> list[Entry]:
        """The early entries after the first ``seen`` (absolute count)."""
        return self._early[max(0, seen - self._early_base) :]

    async def _wait_past(self, position: int, *, wrote: bool = False, early_seen: int = 0) -> None:
        """Until ``visible`` passes ``position``, a store health event went out early
        past ``early_seen``, or the log closes; ``wrote``: the reader comes back from
        writing what the latest tick gave it (only that moves the round's end: a
        heartbeat or a new client is not a write)."""
        if wrote and position == self.visible:
            self._round_end = trio.current_time()
        while self.visible <= position and not self.closed and self.early_total <= early_seen:
            if not self._leading and self.last > self.visible:
                await self._lead()
            else:
                if self._wake.is_set():
                    self._wake = trio.Event()
                await self._wake.wait()

    async def _lead(self) -> None:
        # NOTE: one reader does this for all: the coalescing wait, then ONE commit wait
        # for the newest event; the others sleep on the shared notification. A leader
        # that is cancelled (its client left) hands over by waking the others.
        self._leading = True
        try:
            while True:  # readers still writing move the round's end on
                tick = self._last_tick
                round_length = max(0.0, self._round_end - tick) if tick > -math.inf else 0.0
                due = max(tick + COALESCE, self._round_end + round_length * PACE)
                delay = due - trio.current_time()
                if delay <= 0:
                    break
                await trio.sleep(delay)
            newest = self.last
            with trio.move_on_after(UNCOMMITTED_CHECK) as waiting:
                committed = await self._gate(newest)
            if waiting.cancelled_caught:
                # Not committed yet: the store is slow, down or full. Its own health
                # events cannot wait for it: they go out now, without an id (stored all
                # the same; a replay from the store has them with it). Then the next
                # leader waits again.
                self._publish_early(newest)
                return
            if not committed:
                self.close()
                return
            if newest > self.visible:
                self.visible = newest
                self._memo.clear()
                self._last_tick = trio.current_time()
        finally:
            self._leading = False
            self._wake.set()

    def _publish_early(self, newest: int) -> None:
        slots, capacity = self._slots, self.capacity
        for seq in range(self.visible + 1, newest + 1):
            entry = slots[seq % capacity]
            if (
                entry is not None
                and entry.seq == seq
                and entry.type in _STORE_HEALTH
                and seq not in self._early_seqs
            ):
                self._early.append(entry.early())
                self._early_seqs.add(seq)
        if len(self._early) > _EARLY_KEPT:
            drop = len(self._early) - _EARLY_KEPT
            del self._early[:drop]
            self._early_base += drop
            start = self.start
            self._early_seqs = {seq for seq in self._early_seqs if seq >= start}

    def _take(self, reader: LogReader) -> Batch:
        """The reader's events up to ``visible`` (and how many it missed)."""
        position = reader.position
        missed = 0
        start = self.start
        if position < start - 1:
            missed = start - 1 - position
            position = start - 1
            self.dropped_total += missed
        end = self.visible
        if position >= end:  # all it may read now had left the log: only the notice
            reader.position = position
            return Batch(missed, _NO_ENTRIES)
        reader.position = end
        key = (reader.filter, position)
        shared = self._memo.get(key)
        if shared is None:
            accepts = reader.filter.accepts
            slots, capacity = self._slots, self.capacity
            found = []
            for seq in range(position + 1, end + 1):
                entry = slots[seq % capacity]
                if (
                    entry is not None
                    and entry.seq == seq
                    and accepts(entry)
                    and seq not in self._early_seqs  # it went out early, without an id
                ):
                    found.append(entry)
            shared = self._memo[key] = _Shared(tuple(found)) if found else _NO_ENTRIES
        return Batch(missed, shared)


class LogReader:
    """One stream's view of the :class:`EventLog`: its filters and position. Made by
    :meth:`EventLog.reader`."""

    def __init__(self, log: EventLog, event_filter: EventFilter, position: int) -> None:
        self.log = log
        self.filter = event_filter
        self.position = position
        """The newest sequence number this reader has been given (or skipped)."""
        self._history: list[Entry] = []
        self._older: tuple[int, int] | None = None  # (after, last) to read from the store
        self._early_seen = log.early_total
        self._live_from = position  # early events before this were not for this reader

    def _start_after(self, after: int) -> None:
        log = self.log
        if after >= log.start - 1:
            self.position = min(after, log.last)
            return
        # Older than the log: what the bus's history keeps (read synchronously, so
        # nothing is lost or repeated at the boundary), and before that the store.
        start = log.start
        f = self.filter
        with log.bus.subscribe(
            after=after,
            max_buffer=max(1, start - after),
            types=f.types,
            agents=f.agents,
            processes=f.processes,
            runs=f.runs,
        ) as subscription:
            history_start = min(subscription.history_start or start, start)
            while (item := subscription.receive_nowait()) is not None:
                if isinstance(item, Event) and item.seq < start:
                    self._history.append(Entry.of(item))
        if history_start - 1 > after:
            self._older = (after, history_start - 1)
        self.position = start - 1

    async def batches(
        self, orch: Orchestrator, heartbeat: float
    ) -> AsyncGenerator[Batch | None, None]:
        """The reader's batches, in order, until the log closes; ``None`` after every
        quiet ``heartbeat`` seconds. Older events (``after``) come first.

        NOTE (ASYNC119): the callers close it with ``aclosing``."""
        from ._persist import replay_range

        log = self.log
        if self._older is not None:
            after, last = self._older
            self._older = None
            if orch.persistence is None:  # nowhere to read them from: say how many
                yield Batch(last - after, _NO_ENTRIES)  # noqa: ASYNC119
            else:
                stored: list[Entry] = []
                async for seq, kind, data in replay_range(
                    orch,
                    after,
                    last,
                    types=self.filter.types,
                    agents=self.filter.agents,
                    processes=self.filter.processes,
                    runs=self.filter.runs,
                ):
                    stored.append(Entry.stored(seq, kind, data))
                    if len(stored) >= _REPLAY_BATCH:
                        yield Batch(0, _Shared(tuple(stored)))  # noqa: ASYNC119
                        stored = []
                if stored:
                    yield Batch(0, _Shared(tuple(stored)))  # noqa: ASYNC119
        if self._history:
            history, self._history = tuple(self._history), []
            if not await log._gate(history[-1].seq):
                return
            yield Batch(0, _Shared(history))  # noqa: ASYNC119
        wrote = False
        while not log.closed:
            with trio.move_on_after(heartbeat) as timer:
                await log._wait_past(self.position, wrote=wrote, early_seen=self._early_seen)
            wrote = False
            if log.closed:
                return
            if log.early_total > self._early_seen:
                early = tuple(
                    e
                    for e in log.early_since(self._early_seen)
                    if e.seq > self._live_from and self.filter.accepts(e)
                )
                self._early_seen = log.early_total
                if early:
                    yield Batch(0, _Shared(early))  # noqa: ASYNC119
                    continue
            if timer.cancelled_caught:
                yield None  # noqa: ASYNC119
                continue
            batch = log._take(self)
            if batch.missed or batch.entries:
                yield batch  # noqa: ASYNC119
                wrote = True
