"""The event bus: every state change of the runtime, fanned out without blocking.

Subscribers each get a bounded buffer. :meth:`EventBus.publish` never blocks and
never fails: when a subscriber's buffer is full the event is dropped *for that
subscriber only*, counted, and the subscriber is told how many it missed (a
:class:`Lagged` item before the next event it receives), like tractor's ``Lagged``.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import trio

from .._handles import NoPublicConstructor
from .._redact import redact_data

__all__ = ["Event", "EventBus", "Lagged", "Subscription"]

_seq = itertools.count(1)


@attrs.frozen(kw_only=True)
class Event:
    """One runtime event (names as in SPEC §10.3, e.g. ``process.started``).

    Attributes:
        type: the event name.
        process_id: the process concerned, if any.
        agent: the agent (or behaviour) name of that process, if any.
        data: event-specific fields (JSON-friendly).
        timestamp: wall-clock seconds since the epoch, for display.
        seq: a process-wide increasing sequence number.
    """

    type: str
    process_id: str | None = None
    agent: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    timestamp: float = attrs.field(factory=time.time)
    seq: int = attrs.field(factory=lambda: next(_seq))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict, redacted (SPEC §11): secrets in ``data`` (an error's
        text, a URL with a password, a secret-named field) are masked here, where the
        event leaves, not when it is published — the bus's hot path stays free."""
        return {
            "type": self.type,
            "process_id": self.process_id,
            "agent": self.agent,
            "data": redact_data(dict(self.data)),
            "timestamp": self.timestamp,
            "seq": self.seq,
        }


@attrs.frozen(kw_only=True)
class Lagged:
    """Delivered to a subscriber in place of ``missed`` events it was too slow to take."""

    missed: int


@attrs.define(eq=False)
class Subscription(metaclass=NoPublicConstructor):
    """A subscriber's view of the bus; iterate it with ``async for``.

    Created by :meth:`EventBus.subscribe`; calling the class raises ``TypeError``.
    """

    _public_constructor_hint = "use with bus.subscribe(...) as subscription"

    _bus: EventBus
    _buffer: collections.deque[Event]
    _max_buffer: int
    _accepts: Callable[[Event], bool] | None
    _missed: int = 0
    _closed: bool = False
    _wakeup: trio.Event = attrs.field(factory=trio.Event)
    dropped_total: int = 0
    """Every event this subscriber has lost to overflow, ever."""

    def _offer(self, event: Event) -> None:
        if self._accepts is not None and not self._accepts(event):
            return
        if len(self._buffer) >= self._max_buffer:
            self._missed += 1
            self.dropped_total += 1
        else:
            self._buffer.append(event)
        self._wakeup.set()

    def receive_nowait(self) -> Event | Lagged | None:
        """The next item if one is buffered, else ``None``."""
        if self._missed:
            missed, self._missed = self._missed, 0
            return Lagged(missed=missed)
        if self._buffer:
            return self._buffer.popleft()
        return None

    async def receive(self) -> Event | Lagged:
        """Wait for the next event (or a :class:`Lagged` notice).

        Raises:
            trio.EndOfChannel: the subscription or the bus was closed and the
                buffer is drained.
        """
        while True:
            item = self.receive_nowait()
            if item is not None:
                return item
            if self._closed:
                raise trio.EndOfChannel
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    def __aiter__(self) -> AsyncIterator[Event | Lagged]:
        return self

    async def __anext__(self) -> Event | Lagged:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop receiving; pending ``receive`` calls end once the buffer is drained."""
        self._closed = True
        self._bus._subscribers.discard(self)
        self._wakeup.set()


@attrs.define(eq=False)
class EventBus:
    """Bounded, non-blocking fan-out of :class:`Event` to subscribers."""

    _subscribers: set[Subscription] = attrs.field(factory=set)
    _closed: bool = False
    published: int = 0
    """Events published so far."""

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber; never blocks, never raises."""
        self.published += 1
        for sub in tuple(self._subscribers):
            sub._offer(event)

    def emit(
        self,
        type: str,
        *,
        process_id: str | None = None,
        agent: str | None = None,
        **data: Any,
    ) -> None:
        """Build and publish an event, skipping the work when nobody listens."""
        if self._subscribers:
            self.publish(Event(type=type, process_id=process_id, agent=agent, data=data))
        else:
            self.published += 1

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone is listening (lets hot paths skip building events)."""
        return bool(self._subscribers)

    @contextmanager
    def subscribe(
        self,
        *,
        max_buffer: int = 1000,
        types: Collection[str] | None = None,
        accept: Callable[[Event], bool] | None = None,
    ) -> Iterator[Subscription]:
        """Subscribe for the duration of a ``with`` block.

        Args:
            max_buffer: events held for this subscriber before new ones are dropped
                (and reported as :class:`Lagged`).
            types: only events whose type is in this collection, or that start with
                one of its entries ending in ``.`` (``"process."``).
            accept: a further filter.

        Yields:
            The :class:`Subscription`.
        """
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        sub = Subscription._create(
            self, collections.deque(), max_buffer, _make_filter(types, accept)
        )
        if self._closed:
            sub._closed = True
        else:
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            sub.close()

    def close(self) -> None:
        """End every subscription (their iterators finish after draining)."""
        self._closed = True
        for sub in tuple(self._subscribers):
            sub.close()


def _make_filter(
    types: Collection[str] | None, accept: Callable[[Event], bool] | None
) -> Callable[[Event], bool] | None:
    if types is None:
        return accept
    exact = frozenset(t for t in types if not t.endswith("."))
    prefixes = tuple(t for t in types if t.endswith("."))

    def accepts(event: Event) -> bool:
        if event.type not in exact and not event.type.startswith(prefixes):
            return False
        return accept is None or accept(event)

    return accepts
