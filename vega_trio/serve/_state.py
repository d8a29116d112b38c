"""Per-server state: what one running server holds (no module globals, so a test or an
application can run several servers side by side)."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..agent._events import ChatEvent, DoneEvent, ErrorEvent, TextDeltaEvent
from ..dsl._events import WorkflowStepStatus
from ..orchestrator import Orchestrator
from ._config import ServeConfig
from ._fanout import EventFilter, EventLog, LogReader

if TYPE_CHECKING:
    from ..dsl._interpreter import Runner
    from ._telegram import TelegramBot

__all__ = ["ChatReply", "ServerState", "StepProgress", "WorkflowRun"]

#: A ``workflow.step`` event's status -> the step's status in the API.
_STEP_STATUS = {
    "started": "running",
    "finished": "completed",
    "failed": "failed",
    "reused": "reused",
}


@attrs.define(eq=False)
class StepProgress:
    """One step of a run as ``GET /api/workflows/runs/{id}`` shows it.

    Attributes:
        path: the step's path in the run (``report.steps[2].for[1].steps[0]``).
        step: its type (``agent``, ``for``, ``parallel``…); ``None`` for a step read
            back from the store (checkpoints do not keep it).
        agent: the agent an agent step addresses.
        status: ``running``, ``completed``, ``failed`` or ``reused`` (a resumed run
            took its result from its checkpoint).
        started_at, ended_at: wall-clock seconds (``ended_at`` ``None`` while running).
        cost_usd, tokens: what the run spent while the step ran (nested steps
            included; concurrent ``parallel`` branches overlap).
        error: why it failed.
    """

    path: str
    step: str | None
    agent: str | None
    status: str
    started_at: float
    ended_at: float | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    error: str | None = None
    _at_start: tuple[float, int] = (0.0, 0)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, filter=lambda field, _: field.name != "_at_start")


@attrs.define(eq=False)
class WorkflowRun:
    """One workflow run started over the API (kept for ``GET /api/workflows/runs/{id}``;
    the last :attr:`ServeConfig.max_finished_runs` finished ones are kept)."""

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
    resumes: int = 0
    steps: dict[str, StepProgress] = attrs.field(factory=dict)
    """Per-step progress by path, in the order the steps started."""
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    ended: trio.Event = attrs.field(factory=trio.Event)

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def track(self, event: WorkflowStepStatus) -> None:
        """Update the step's progress from one of the run's ``workflow.step`` events."""
        status = _STEP_STATUS.get(event.status, event.status)
        totals = (event.cost_usd, event.input_tokens + event.output_tokens)
        step = self.steps.get(event.path)
        if step is None or event.status in ("started", "reused"):
            # NOTE: a step that runs again (a retry after a resume) starts afresh.
            step = self.steps[event.path] = StepProgress(
                path=event.path,
                step=event.step,
                agent=event.agent,
                status=status,
                started_at=event.timestamp,
                at_start=totals,
            )
            if event.status == "started":
                return
        step.status = status
        step.ended_at = event.timestamp
        step.cost_usd = max(0.0, totals[0] - step._at_start[0])
        step.tokens = max(0, totals[1] - step._at_start[1])
        if event.status == "failed":
            step.error = event.detail
        if event.status == "reused":
            step.cost_usd, step.tokens = 0.0, 0

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(
            self,
            recurse=False,
            filter=lambda field, _: field.name not in ("scope", "ended", "steps"),
        )
        data["steps"] = [step.to_dict() for step in self.steps.values()]
        return data


@attrs.define(eq=False)
class ChatReply:
    """One reply of a session, detached from the HTTP connection that asked for it:
    it runs as a task of the server and keeps every event, so a client that leaves does
    not stop it and a later reader replays it from the start.

    Attributes:
        session: the session's name (``agent`` or ``agent:user``).
        message: what the user said (a client that did not send it, another browser
            tab, shows it with the reply: ``GET …/chat``'s ``in_flight``).
        events: the §1.4 events so far; the last one is ``done`` or ``error`` once the
            reply has finished.
        error: the failure behind a final ``error`` event.
        finished: set when no more events will come.
    """

    session: str
    message: str = ""
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
    def done(self) -> bool:
        """Whether the reply finished with ``done`` (a complete answer)."""
        return bool(self.events) and isinstance(self.events[-1], DoneEvent)

    @property
    def text(self) -> str:
        """The reply's own text so far (a delegate's nested text is not part of it)."""
        return "".join(
            e.delta for e in self.events if isinstance(e, TextDeltaEvent) and e.agent is None
        )

    @property
    def ended_properly(self) -> bool:
        """Whether the reply ended with its own ``done`` or ``error`` event."""
        return bool(self.events) and isinstance(self.events[-1], DoneEvent | ErrorEvent)

    async def follow(self, state: ServerState) -> AsyncGenerator[ChatEvent, None]:
        """The reply's §1.4 events from its first, live until its end: exactly one
        ``done`` or ``error`` last (``server_shutdown`` when the server stops first).
        Every chat stream (SSE, WebSocket) reads a reply through this."""
        index = 0
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                yield event
                if isinstance(event, DoneEvent | ErrorEvent):
                    return
            if state.closing or self.finished.is_set():
                yield ErrorEvent(
                    error="the server is shutting down; this reply was not finished",
                    error_class="server_shutdown",
                )
                return
            await self.wait_changed()


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
    runs: dict[str, WorkflowRun] = attrs.field(factory=dict)
    """Runs by id, oldest first; finished ones beyond ``config.max_finished_runs`` are
    dropped (:meth:`prune_runs`)."""
    shutting_down: trio.Event = attrs.field(factory=trio.Event)
    """Set when shutdown begins (what a WebSocket connection waits on to say goodbye)."""
    telegram: TelegramBot | None = None
    """The Telegram bot, when ``config.telegram`` runs one (set by ``run_telegram``)."""

    event_log: EventLog = attrs.field(init=False)
    """The server's one consumer of the bus: every ``/api/events`` client and
    ``/api/ws`` subscription reads its events from it (see :mod:`._fanout`)."""

    def __attrs_post_init__(self) -> None:
        self.event_log = EventLog(
            lambda: self.orch.events, self.config.event_buffer, self._committed
        )

    async def _committed(self, seq: int) -> bool:
        from ._persist import committed  # it reads this module's ServerState

        return await committed(self, seq)

    @contextmanager
    def read_events(
        self,
        *,
        types: Collection[str] | None = None,
        agents: Collection[str] | None = None,
        processes: Collection[str] | None = None,
        runs: Collection[str] | None = None,
        after: int | None = None,
    ) -> Iterator[LogReader]:
        """An event stream's reader of :attr:`event_log` (``/api/events``, a WebSocket
        subscription): its filters, live from now or from after ``after``; it ends when
        :meth:`begin_shutdown` closes the log."""
        with self.event_log.reader(EventFilter.of(types, agents, processes, runs), after) as reader:
            yield reader

    def add_run(self, record: WorkflowRun) -> None:
        """Keep ``record`` (a resumed run replaces its earlier record, and moves last)."""
        self.runs.pop(record.run_id, None)
        self.runs[record.run_id] = record
        self.prune_runs()

    def prune_runs(self) -> None:
        """Drop the oldest finished runs beyond ``config.max_finished_runs`` (running
        ones are always kept), so a long-running server does not grow without end."""
        finished = [r.run_id for r in self.runs.values() if r.finished]
        for run_id in finished[: max(0, len(finished) - self.config.max_finished_runs)]:
            del self.runs[run_id]

    def begin_shutdown(self) -> None:
        """End every stream: event streams see the event log close, chat readers
        wake up and finish with a final event. Replies themselves run on (and are kept
        in their conversation) until :attr:`shutdown_deadline`."""
        if self.closing:
            return
        self.closing = True
        self.shutting_down.set()
        self.shutdown_deadline = trio.current_time() + self.config.graceful_timeout
        self.event_log.close()
        for reply in list(self.replies.values()):
            reply.wake()
