"""The event bus: every state change of the runtime, as typed events, fanned out
without blocking.

Every kind of event (SPEC §10.3) is one frozen attrs class derived from :class:`Event`,
whose class attribute ``type`` is its name (``process.started``). The runtime's kinds
live here; the layers above define theirs next to the code that emits them
(``vega_trio.agent._events``: ``llm.call``, ``tool.*``, ``budget.*``, ``circuit.*``,
``context.*``, ``agent.*``, ``health.alert``; ``vega_trio.tools.mcp._events``: ``mcp.*``;
``vega_trio.dsl._events``: ``workflow.*``), so the runtime never imports upward. A
class registers itself by being defined, which is what lets :meth:`Event.from_json`
restore the right class; ``vega_trio.events`` gathers them all.

Publishing never blocks and never fails: each subscriber gets a bounded buffer; when it
is full the event is dropped *for that subscriber only*, counted, and the subscriber is
told how many it missed (a :class:`Lagged` item before the next event it receives), like
tractor's ``Lagged``. Subscribers are indexed by the types they want, so an event only
touches the subscribers that could accept it, and an event nobody wants is not even
built (:meth:`EventBus.emit`, :meth:`EventBus.wants`).

Every event has a sequence number, increasing by one per event emitted on *its* bus (one
bus per orchestrator; with a store it continues after the last stored one,
:meth:`EventBus.continue_after`). The bus can keep the last ``history`` events in a ring,
so that a subscriber can start after a given sequence number (:meth:`EventBus.subscribe`'s
``after``): SSE's ``Last-Event-ID``.

A *sink* (:meth:`EventBus.add_sink`) is the one lossless consumer: a synchronous
callable that receives every event as it is published, in order — the store's event
writer, which must not drop anything (a subscriber's buffer is bounded and drops on
overflow; a sink appends to its own batch and writes it later, off the hot path).

Size: the event base class, its per-class encoders, the runtime's event kinds and the bus
that fans them out are one contract (what an event is and how it travels); the layers
above only add kinds.
"""

from __future__ import annotations

import collections
import functools
import json
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs
import trio

from .._handles import NoPublicConstructor
from .._json import compact_encoder
from .._redact import MASK, _is_secret_key, _redact_data, _redact_with, _secret_values, redact_data

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "Event",
    "EventBus",
    "Lagged",
    "RequestStarted",
    "ProcessCompleted",
    "ProcessFailed",
    "RequestFinished",
    "ProcessRestarted",
    "ProcessStarted",
    "ProcessStopped",
    "Subscription",
    "SupervisorGaveUp",
    "SupervisorStarted",
    "SupervisorStopped",
    "event_classes",
]

_E = TypeVar("_E", bound="Event")

#: type name -> class, filled as event classes are defined.
_REGISTRY: dict[str, type[Event]] = {}

#: The fields every event has; the others are its kind's own (:attr:`Event.data`).
_ENVELOPE: frozenset[str] = frozenset({"seq", "timestamp", "process_id", "agent", "run_id", "user"})


def _tuple_of_str(value: Collection[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Event:
    """The base of every runtime event (names as in SPEC §10.3).

    Subclasses set the class attribute ``type`` and add their own fields; build one
    with :meth:`EventBus.emit`, which gives it its sequence number.

    Attributes:
        type: the event's name (``process.started``), a class attribute.
        seq: its sequence number on its bus (1, 2, 3, … per orchestrator; ``0`` for an
            event that was never emitted).
        timestamp: wall-clock seconds since the epoch, for display only (order by
            ``seq``).
        process_id: the process concerned, if any.
        agent: the agent (or behaviour) name concerned, if any.
        run_id: the workflow run concerned, if any.
        user: the user a session serves, if any.
    """

    type: ClassVar[str] = ""

    seq: int = 0
    timestamp: float = attrs.field(factory=time.time)
    process_id: str | None = None
    agent: str | None = None
    run_id: str | None = None
    user: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("type")
        if kind:  # an abstract base (a shared set of fields) has none of its own
            known = _REGISTRY.get(kind)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise TypeError(
                    f"event type {kind!r} is defined twice: by {known.__module__}."
                    f"{known.__qualname__} and {cls.__module__}.{cls.__qualname__}"
                )
            _REGISTRY[kind] = cls  # attrs' slotted copy replaces the original

    @property
    def data(self) -> dict[str, Any]:
        """The fields of this kind of event (not the ids, ``seq`` or ``timestamp``), for
        code that handles any event generically."""
        return {
            f.name: getattr(self, f.name)
            for f in attrs.fields(type(self))
            if f.name not in _ENVELOPE
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as a dict: ``{"type", "seq", "timestamp", "process_id", "agent",
        "run_id", "user", ...its fields}``, redacted (SPEC §11): secrets in the fields (an
        error's text, a URL with a password, a secret-named key) are masked here, where
        the event leaves, not when it is published — the bus's hot path stays free."""
        cls = type(self)
        encode = _ENCODERS.get(cls) or _make_encoder(cls)
        return encode(self, _secret_values())

    def to_json(self) -> str:
        """The JSON form (what SSE, WebSocket, the store, OTel and the CLI use): one
        compact JSON object, redacted (see :meth:`to_dict`)."""
        return _JSON(self.to_dict())

    @staticmethod
    def from_json(data: str | bytes | Mapping[str, Any]) -> Event:
        """The event of this JSON form (text or decoded dict), as its own class.

        Raises:
            ValueError: not an event's JSON form, or a type no event class has (its
                module not imported: ``import vega_trio.events`` imports them all).
        """
        obj = json.loads(data) if isinstance(data, (str, bytes)) else dict(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ValueError(
                "not an event's JSON form: expected an object with a string 'type', got "
                f"{type(obj).__name__}"
            )
        kind = obj.pop("type")
        cls = _REGISTRY.get(kind)
        if cls is None:
            raise ValueError(
                f"unknown event type {kind!r}; known types: {', '.join(sorted(_REGISTRY))} "
                "(import vega_trio.events to register every event class)"
            )
        try:
            event: Event = _converter().structure(obj, cls)
        except Exception as exc:  # cattrs' errors are exception groups of the fields
            raise ValueError(f"invalid {kind!r} event: {exc!r}") from exc
        return event


_PLAIN = (str, int, float)  # bool is an int

_JSON = compact_encoder(default=str, check_circular=False)
"""The encoder of every event's JSON form (made once; a JSON form is a tree: cattrs and
the redaction have copied every container in it)."""

# --------------------------------------------------------------- the JSON form
#
# NOTE: every event the store writes (and every SSE/WebSocket client reads) is turned
# into its JSON form, so this is on the store's path for every event. An encoder per
# event class is generated once (its fields unrolled, no per-field loop or lookup);
# each value takes the cheapest branch that gives exactly what the general rule gives
# (``_reference_to_dict``): plain scalars as they are, an exact ``str`` straight into
# the redaction, everything else (enums, tuples, mappings, attrs values) through cattrs
# and the full recursive redaction. tests/runtime/test_event_json.py checks the two
# agree for every event class on arbitrary values.

_EXACT_PLAIN: frozenset[type] = frozenset({str, int, float, bool})
_EXACT_SCALARS: frozenset[type] = frozenset({int, float, bool})

_ENCODERS: dict[type[Event], Callable[[Event, tuple[str, ...]], dict[str, Any]]] = {}


def _envelope_value(value: Any) -> Any:
    """An envelope field that is not an exact plain type (the general rule)."""
    return value if isinstance(value, _PLAIN) else _converter().unstructure(value)


def _flat(mapping: dict[Any, Any]) -> bool:
    """Whether a dict has only ``str`` keys and exact plain scalar (or ``None``) values
    (a tool's arguments, mostly)."""
    for key, item in mapping.items():
        if key.__class__ is not str or (item is not None and item.__class__ not in _EXACT_PLAIN):
            return False
    return True


def _own_value(value: Any, secret_name: bool, secrets: tuple[str, ...]) -> Any:
    """A field of the event's own that is not ``None``, an exact scalar or an exact
    ``str``: unstructured, then redacted as :func:`redact_data` redacts a mapping's
    item."""
    if value.__class__ is dict and _flat(value):
        pass  # what cattrs would give (an equal copy): the redaction copies it anyway
    elif not isinstance(value, _PLAIN):
        value = _converter().unstructure(value)
    if value is None or type(value) in _EXACT_SCALARS:
        return value
    if secret_name and isinstance(value, str) and value:
        return MASK
    return _redact_data(value, secrets)


def _make_encoder(cls: type[Event]) -> Callable[[Event, tuple[str, ...]], dict[str, Any]]:
    """Generate (once per class) the function that gives an event's :meth:`Event.to_dict`
    from the event and the known secrets."""
    fields = _field_names(cls)
    lines = ["def encode(e, s):", "    d = {'type': e.type}"]
    for name, _ in fields:
        if not name.isidentifier():  # pragma: no cover - attrs names are identifiers
            raise TypeError(f"event field {name!r} of {cls.__qualname__} is not an identifier")
    for name, envelope in fields:
        if envelope:
            lines += [
                f"    v = e.{name}",
                "    if v is not None and v.__class__ not in plain:",
                "        v = envelope_value(v)",
                f"    d[{name!r}] = v",
            ]
    for name, envelope in fields:
        if not envelope:
            secret_name = _is_secret_key(name)
            as_str = "(MASK if v else v)" if secret_name else "redact_with(v, s)"
            lines += [
                f"    v = e.{name}",
                "    if v is None or v.__class__ in scalars:",
                "        pass",
                "    elif v.__class__ is str:",
                f"        v = {as_str}",
                "    else:",
                f"        v = own_value(v, {secret_name!r}, s)",
                f"    d[{name!r}] = v",
            ]
    lines.append("    return d")
    namespace: dict[str, Any] = {
        "plain": _EXACT_PLAIN,
        "scalars": _EXACT_SCALARS,
        "envelope_value": _envelope_value,
        "own_value": _own_value,
        "redact_with": _redact_with,
        "MASK": MASK,
    }
    exec(
        compile("\n".join(lines), f"<event encoder {cls.type or cls.__qualname__}>", "exec"),
        namespace,
    )
    encode: Callable[[Event, tuple[str, ...]], dict[str, Any]] = namespace["encode"]
    _ENCODERS[cls] = encode
    return encode


def _reference_to_dict(event: Event) -> dict[str, Any]:
    """The general rule the generated encoders follow (tests compare them with it):
    every value that is not plain JSON through cattrs, the event's own fields redacted
    with :func:`redact_data`."""
    out: dict[str, Any] = {"type": event.type}
    own: dict[str, Any] = {}
    for name, envelope in _field_names(type(event)):
        value = getattr(event, name)
        if value is not None and not isinstance(value, _PLAIN):
            value = _converter().unstructure(value)
        if envelope:
            out[name] = value
        else:
            own[name] = value
    out.update(redact_data(own))
    return out


_FIELDS: dict[type[Event], tuple[tuple[str, bool], ...]] = {}


def _field_names(cls: type[Event]) -> tuple[tuple[str, bool], ...]:
    """``(name, is an envelope field)`` of every field of an event class, in order."""
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple((f.name, f.name in _ENVELOPE) for f in attrs.fields(cls))
    return found


def event_classes() -> dict[str, type[Event]]:
    """Every event class defined so far, by type name."""
    return dict(_REGISTRY)


@functools.cache
def _converter() -> cattrs.Converter:
    """THE converter of events to and from their JSON form, made on first use.

    NOTE: made lazily, not at import: ``cattrs`` and the hooks it generates add a few
    thousand long-lived objects, and every full garbage collection walks them — a cost
    every agent run would pay in a program that never serialises an event.
    """
    import cattrs

    return cattrs.Converter(forbid_extra_keys=True)


# ----------------------------------------------------------------- runtime kinds


@attrs.frozen(kw_only=True)
class ProcessStarted(Event):
    """A process started (``process.started``)."""

    type: ClassVar[str] = "process.started"
    name: str | None = None
    parent_id: str | None = None
    spawn_depth: int = 0
    spawn_reason: str | None = None
    task: str | None = None


@attrs.frozen(kw_only=True)
class _ProcessExit(Event):
    status: str = ""
    reason: str = ""
    detail: str = ""


@attrs.frozen(kw_only=True)
class ProcessCompleted(_ProcessExit):
    """A process ended normally (``process.completed``): ``status``, ``reason`` (the exit
    reason's kind), ``detail``."""

    type: ClassVar[str] = "process.completed"


@attrs.frozen(kw_only=True)
class ProcessFailed(_ProcessExit):
    """A process crashed, timed out, died of a link or of its budget
    (``process.failed``)."""

    type: ClassVar[str] = "process.failed"


@attrs.frozen(kw_only=True)
class ProcessStopped(_ProcessExit):
    """A process was stopped or killed (``process.stopped``)."""

    type: ClassVar[str] = "process.stopped"


@attrs.frozen(kw_only=True)
class ProcessRestarted(Event):
    """A process was restarted (``process.restarted``): in place by its own supervision
    (``incarnation``), or as a new process by a supervisor (``previous_id``,
    ``child_id``, ``supervisor``, ``supervisor_id``)."""

    type: ClassVar[str] = "process.restarted"
    restart_count: int = 0
    reason: str = ""
    detail: str = ""
    incarnation: int | None = None
    previous_id: str | None = None
    child_id: str | None = None
    supervisor: str | None = None
    supervisor_id: str | None = None


@attrs.frozen(kw_only=True)
class RequestStarted(Event):
    """A process began serving one message (``request.started``): for an agent, one send
    (what OpenTelemetry calls an agent invocation). Not under ``process.*``: those are
    a process's lifecycle, these its work."""

    type: ClassVar[str] = "request.started"


@attrs.frozen(kw_only=True)
class RequestFinished(Event):
    """A process finished serving one message (``request.finished``): ``outcome`` is
    ``ok``, ``error`` (``error_class``, ``error`` say which) or ``cancelled`` (the
    caller left, a kill, a shutdown)."""

    type: ClassVar[str] = "request.finished"
    outcome: str = ""
    error_class: str | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class SupervisorGaveUp(Event):
    """A supervision or supervisor exceeded its restart intensity
    (``supervisor.gave_up``)."""

    type: ClassVar[str] = "supervisor.gave_up"
    reason: str = ""
    detail: str = ""
    restart_count: int = 0
    supervisor: str | None = None
    supervisor_id: str | None = None
    child_id: str | None = None
    max_restarts: int | None = None
    window: float | None = None


@attrs.frozen(kw_only=True)
class SupervisorStarted(Event):
    """A supervisor started (``supervisor.started``)."""

    type: ClassVar[str] = "supervisor.started"
    supervisor: str = ""
    supervisor_id: str = ""
    parent_supervisor_id: str | None = None
    strategy: str = ""
    children: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)


@attrs.frozen(kw_only=True)
class SupervisorStopped(Event):
    """A supervisor ended (``supervisor.stopped``)."""

    type: ClassVar[str] = "supervisor.stopped"
    supervisor: str = ""
    supervisor_id: str = ""
    reason: str = ""
    detail: str = ""
    gave_up: bool = False


# ------------------------------------------------------------------ subscriptions


@attrs.frozen(kw_only=True)
class Lagged:
    """Delivered to a subscriber in place of ``missed`` events it was too slow to take
    (or, for a subscription started ``after`` a sequence number, that had already left
    the bus's history)."""

    type: ClassVar[str] = "lagged"
    missed: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as a dict: ``{"type": "lagged", "missed": n}``."""
        return {"type": self.type, "missed": self.missed}


def _type_keys(types: Collection[str] | str | None) -> tuple[frozenset[str], frozenset[str]]:
    """``(exact names, prefixes)`` of a ``types`` filter: ``process.*`` (and the older
    ``process.``) is the prefix ``process.``; ``*`` is every type."""
    if types is None:
        return frozenset(), frozenset({""})
    if isinstance(types, str):
        types = (types,)
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
    return frozenset(exact), frozenset(prefixes)


def _id_set(value: Collection[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset((value,) if isinstance(value, str) else value)


@attrs.define(eq=False)
class Subscription(metaclass=NoPublicConstructor):
    """A subscriber's view of the bus; iterate it with ``async for``.

    Created by :meth:`EventBus.subscribe`; calling the class raises ``TypeError``.
    """

    _public_constructor_hint = "use with bus.subscribe(...) as subscription"

    _bus: EventBus
    _buffer: collections.deque[Event]
    _max_buffer: int
    _exact: frozenset[str]
    _prefixes: frozenset[str]
    _accepts: Callable[[Event], bool] | None
    _missed: int = 0
    _closed: bool = False
    _wakeup: trio.Event = attrs.field(factory=trio.Event)
    dropped_total: int = 0
    """Every event this subscriber has lost to overflow, ever."""
    history_start: int | None = None
    """For a subscription started ``after`` a sequence number: the first sequence
    number the bus could still replay from its history (the ones after ``after`` and
    before this are the ones reported as :class:`Lagged`), so a caller with a store can
    read those from it instead."""

    def _wants_type(self, kind: str) -> bool:
        return kind in self._exact or any(kind.startswith(p) for p in self._prefixes)

    def _offer(self, event: Event) -> None:
        # The bus only offers events of a type this subscription asked for.
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
        if not self._closed:
            self._closed = True
            self._bus._remove(self)
        self._wakeup.set()


def _make_filter(
    agents: frozenset[str] | None,
    processes: frozenset[str] | None,
    runs: frozenset[str] | None,
    users: frozenset[str] | None,
    accept: Callable[[Event], bool] | None,
) -> Callable[[Event], bool] | None:
    if agents is None and processes is None and runs is None and users is None:
        return accept

    def accepts(event: Event) -> bool:
        if agents is not None and event.agent not in agents:
            return False
        if processes is not None and event.process_id not in processes:
            return False
        if runs is not None and event.run_id not in runs:
            return False
        if users is not None and event.user not in users:
            return False
        return accept is None or accept(event)

    return accepts


@attrs.define(eq=False)
class EventBus:
    """Bounded, non-blocking fan-out of typed :class:`Event` s to subscribers.

    Args:
        history: how many of the latest events to keep for subscriptions that start
            ``after`` a sequence number (0: none; then every event is built only when a
            subscriber wants it). Change it later with :meth:`keep_history`.
    """

    history: int = 0
    _ring: collections.deque[Event] = attrs.field(init=False)
    _subscribers: dict[Subscription, None] = attrs.field(init=False, factory=dict)
    _by_type: dict[str, dict[Subscription, None]] = attrs.field(init=False, factory=dict)
    _by_prefix: dict[str, dict[Subscription, None]] = attrs.field(init=False, factory=dict)
    #: type -> the subscribers that want it (computed on first use, reset on every
    #: subscribe and close): publishing touches only these.
    _routes: dict[str, tuple[Subscription, ...]] = attrs.field(init=False, factory=dict)
    _closed: bool = attrs.field(init=False, default=False)
    _sinks: tuple[Callable[[Event], None], ...] = attrs.field(init=False, default=())
    published: int = attrs.field(init=False, default=0)
    """The sequence number of the latest event (events emitted so far, plus where
    :meth:`continue_after` started)."""
    # NOTE: nobody listens at all (no history, sink or subscriber): kept up to date by
    # every change of those, so the hot paths' wants()/emit() answer with one read.
    _quiet: bool = attrs.field(init=False, default=True)

    def __attrs_post_init__(self) -> None:
        # NOTE: checked here, not by an attrs validator, which would give the class a
        # __setattr__ hook that slows every ``published += 1`` on the hot path.
        if self.history < 0:
            raise ValueError(f"history must be 0 or more, got {self.history}")
        self._ring = collections.deque(maxlen=self.history or None)
        self._listeners_changed()

    def _listeners_changed(self) -> None:
        self._quiet = not (self.history or self._sinks or self._subscribers)

    def keep_history(self, size: int) -> None:
        """Keep the latest ``size`` events (0: none) for :meth:`subscribe`'s ``after``."""
        if size < 0:
            raise ValueError(f"history must be 0 or more, got {size}")
        self.history = size
        kept = list(self._ring)[-size:] if size else []
        self._ring = collections.deque(kept, maxlen=size or None)
        self._listeners_changed()

    def continue_after(self, seq: int) -> None:
        """Number the next event ``seq + 1`` (a store's last sequence number, so that
        numbers keep increasing across restarts and ``Last-Event-ID`` stays valid).

        Raises:
            ValueError: events were already published, or ``seq`` is negative.
        """
        if seq < 0:
            raise ValueError(f"a sequence number is 0 or more, got {seq}")
        if self.published or self._ring:
            raise ValueError(
                f"continue_after({seq}) must be called before the first event; "
                f"{self.published} were already published"
            )
        self.published = seq

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        """Give every event from now on to ``sink``, synchronously and in order, as it
        is published (every event is built while a sink is attached). A sink must be
        quick and must not raise: it keeps the event and returns (the store's writer
        appends it to its next batch)."""
        self._sinks = (*self._sinks, sink)
        self._listeners_changed()

    def remove_sink(self, sink: Callable[[Event], None]) -> None:
        """Stop giving events to ``sink`` (nothing if it was not added)."""
        self._sinks = tuple(s for s in self._sinks if s != sink)  # a bound method is new each time
        self._listeners_changed()

    # ------------------------------------------------------------------ publishing
    def _route(self, kind: str) -> tuple[Subscription, ...]:
        found = self._routes.get(kind)
        if found is None:
            chosen: dict[Subscription, None] = dict(self._by_type.get(kind, {}))
            for prefix, subs in self._by_prefix.items():
                if kind.startswith(prefix):
                    chosen.update(subs)
            found = self._routes[kind] = tuple(chosen)
        return found

    def wants(self, kind: type[Event]) -> bool:
        """Whether an event of this class would go anywhere (a subscriber for its type,
        or the history): lets hot paths skip computing its fields."""
        if self._quiet:
            return False
        return (
            bool(self.history)
            or bool(self._sinks)
            or bool(self._subscribers and self._route(kind.type))
        )

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone is listening at all (a subscriber, a sink or the history)."""
        return not self._quiet

    def emit(
        self,
        kind: type[_E],
        /,
        *,
        process_id: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        user: str | None = None,
        **fields: Any,
    ) -> _E | None:
        """Give the next sequence number to a ``kind`` event of these fields and publish
        it; skip building it when nobody wants it (its number is used either way, so a
        subscriber never sees one twice).

        Returns:
            The event, or ``None`` when it was not built.

        Raises:
            TypeError: a field ``kind`` does not have (a programming error).
        """
        # NOTE: the hot path: the ids are named parameters (not in ``fields``) because
        # most events have few fields of their own; nothing is built for nobody.
        self.published += 1
        if self._quiet or (
            not self.history
            and not self._sinks
            and not (self._subscribers and self._route(kind.type))
        ):
            return None
        event = kind(
            seq=self.published,
            timestamp=time.time(),
            process_id=process_id,
            agent=agent,
            run_id=run_id,
            user=user,
            **fields,
        )
        self._deliver(event)
        return event

    def publish(self, event: _E) -> _E:
        """Publish an event built elsewhere (a test, a bridge from another bus) as the
        next one on this bus: returns it with this bus's sequence number. Code that emits
        its own events uses :meth:`emit`, which skips building what nobody wants."""
        self.published += 1
        event = attrs.evolve(event, seq=self.published)
        self._deliver(event)
        return event

    def _deliver(self, event: Event) -> None:
        if self.history:
            self._ring.append(event)
        for sink in self._sinks:
            sink(event)
        for sub in self._route(event.type) if self._subscribers else ():
            sub._offer(event)

    # ---------------------------------------------------------------- subscribing
    @contextmanager
    def subscribe(
        self,
        *,
        max_buffer: int = 1000,
        types: Collection[str] | str | None = None,
        agents: Collection[str] | str | None = None,
        processes: Collection[str] | str | None = None,
        runs: Collection[str] | str | None = None,
        users: Collection[str] | str | None = None,
        accept: Callable[[Event], bool] | None = None,
        after: int | None = None,
    ) -> Iterator[Subscription]:
        """Subscribe for the duration of a ``with`` block.

        Each filter given must hold (``None``: any).

        Args:
            max_buffer: events held for this subscriber before new ones are dropped
                (and reported as :class:`Lagged`).
            types: event types: exact names (``"llm.call"``) or prefixes
                (``"process.*"``; the older ``"process."`` means the same; ``"*"``
                is every type).
            agents: the events of these agents (``event.agent``).
            processes: the events of these processes (``event.process_id``).
            runs: the events of these workflow runs (``event.run_id``).
            users: the events of these users (``event.user``).
            accept: a further filter.
            after: replay the kept events (see ``history``) whose ``seq`` is greater
                than this, then continue live, without gaps or duplicates; when some
                had already left the history, a :class:`Lagged` saying how many comes
                first.

        Yields:
            The :class:`Subscription`.
        """
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        exact, prefixes = _type_keys(types)
        sub = Subscription._create(
            self,
            collections.deque(),
            max_buffer,
            exact,
            prefixes,
            _make_filter(
                _id_set(agents), _id_set(processes), _id_set(runs), _id_set(users), accept
            ),
        )
        if after is not None:
            self._replay(sub, after)
        if self._closed:
            sub._closed = True
        else:
            self._add(sub)
        try:
            yield sub
        finally:
            sub.close()

    def _replay(self, sub: Subscription, after: int) -> None:
        # NOTE: synchronous and before the subscription joins, so no event is lost or
        # repeated between the history and the live stream.
        oldest = self._ring[0].seq if self._ring else self.published + 1
        sub.history_start = min(oldest, self.published + 1)
        sub._missed = max(0, min(oldest, self.published + 1) - after - 1)
        for event in self._ring:
            if event.seq > after and sub._wants_type(event.type):
                sub._offer(event)

    def _add(self, sub: Subscription) -> None:
        self._subscribers[sub] = None
        self._quiet = False
        for name in sub._exact:
            self._by_type.setdefault(name, {})[sub] = None
        for prefix in sub._prefixes:
            self._by_prefix.setdefault(prefix, {})[sub] = None
        self._routes.clear()

    def _remove(self, sub: Subscription) -> None:
        if self._subscribers.pop(sub, 0) is None:
            for index, keys in ((self._by_type, sub._exact), (self._by_prefix, sub._prefixes)):
                for key in keys:
                    subs = index.get(key)
                    if subs is not None:
                        subs.pop(sub, None)
                        if not subs:
                            del index[key]
            self._routes.clear()
            self._listeners_changed()

    def close(self) -> None:
        """End every subscription (their iterators finish after draining)."""
        self._closed = True
        for sub in tuple(self._subscribers):
            sub.close()
