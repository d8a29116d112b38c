"""Per-server state: what one running server holds (no module globals, so a test or an
application can run several servers side by side)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..agent._events import ChatEvent, DoneEvent, ErrorEvent
from ..orchestrator import Orchestrator
from ..runtime import Subscription
from ._config import ServeConfig

if TYPE_CHECKING:
    from ..dsl._interpreter import Runner

__all__ = ["ChatReply", "ServerState", "WorkflowRun"]


@attrs.define(eq=False)
class WorkflowRun:
    """One workflow run started over the API (kept for ``GET /api/workflows/runs/{id}``)."""

    run_id: str
    workflow: str
    status: str = "running"
    """``running``, ``completed``, ``failed``, ``cancelled`` (over the API) or
    ``interrupted`` (the server stopped under it)."""
    output: Any = None
    error: str | None = None
    error_class: str | None = None
    step: str | None = None
    cost_usd: float | None = None
    steps_run: int | None = None
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    ended: trio.Event = attrs.field(factory=trio.Event)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, filter=lambda field, _: field.name not in ("scope", "ended"))


@attrs.define(eq=False)
class ChatReply:
    """One reply of a session, detached from the HTTP connection that asked for it:
    it runs as a task of the server and keeps every event, so a client that leaves does
    not stop it and a later reader replays it from the start.

    Attributes:
        session: the session's name (``agent`` or ``agent:user``).
        events: the §1.4 events so far; the last one is ``done`` or ``error`` once the
            reply has finished.
        error: the failure behind a final ``error`` event.
        finished: set when no more events will come.
    """

    session: str
    events: list[ChatEvent] = attrs.field(factory=list)
    error: BaseException | None = None
    finished: trio.Event = attrs.field(factory=trio.Event)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def add(self, event: ChatEvent) -> None:
        self.events.append(event)
        self.wake()

    def finish(self) -> None:
        self.finished.set()
        self.wake()

    def wake(self) -> None:
        """Wake every reader (a new event, the end, or the server shutting down)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    @property
    def ended_properly(self) -> bool:
        """Whether the reply ended with its own ``done`` or ``error`` event."""
        return bool(self.events) and isinstance(self.events[-1], DoneEvent | ErrorEvent)


@attrs.define(eq=False)
class ServerState:
    """Everything one server shares between its requests."""

    orch: Orchestrator
    config: ServeConfig
    runner: Runner | None = None
    """The document's workflow runner, when the server was started with one."""
    nursery: trio.Nursery | None = None
    """Where detached work (chat replies) runs; set by :func:`serve`."""
    ports: frozenset[int] = frozenset()
    """The ports actually bound (the ``Host`` check accepts them)."""
    closing: bool = False
    stop_requested: trio.Event = attrs.field(factory=trio.Event)
    replies: dict[str, ChatReply] = attrs.field(factory=dict)
    """The latest reply of each session (in flight or finished)."""
    in_flight: set[ChatReply] = attrs.field(factory=set)
    """Every reply still running (a session may have an older one still going)."""
    shutdown_deadline: float = math.inf
    """When (``trio.current_time()``) the replies still running are cancelled: set
    by :meth:`begin_shutdown` to ``config.graceful_timeout`` from then."""
    subscriptions: set[Subscription] = attrs.field(factory=set)
    runs: dict[str, WorkflowRun] = attrs.field(factory=dict)
    encoded_events: dict[int, bytes] = attrs.field(factory=dict)
    """The latest events as SSE bytes, by sequence number: encoded and redacted once
    for every ``/api/events`` client."""

    def begin_shutdown(self) -> None:
        """End every stream: event streams see their subscription close, chat readers
        wake up and finish with a final event. Replies themselves run on (and are kept
        in their conversation) until :attr:`shutdown_deadline`."""
        if self.closing:
            return
        self.closing = True
        self.shutdown_deadline = trio.current_time() + self.config.graceful_timeout
        for subscription in list(self.subscriptions):
            subscription.close()
        for reply in list(self.replies.values()):
            reply.wake()
