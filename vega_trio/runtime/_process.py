"""A process: one Trio task with its own cancel scope, a bounded mailbox and a behaviour.

The runtime knows nothing about LLMs: a behaviour is any object with
``async handle(process, payload) -> reply``. The agent loop is one behaviour.

Size: one process's life (mailbox, request loop, cancellation, exit reasons, links and
monitors' delivery) is one state machine over shared slots on the hot path; splitting it
would put a call boundary inside every send (see docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import trio
from trio.lowlevel import current_task, wait_task_rescheduled

from .._errors import (
    LinkedProcessError,
    MailboxFull,
    ProcessExited,
    ProcessNotRunning,
    RequestError,
)
from .._handles import NoPublicConstructor
from .._log import log_record
from ._context import _current
from ._events import EventBus, RequestFinished, RequestStarted
from ._links import (
    ExitSignal,
    Linkable,
    Monitor,
    Signal,
    SignalChannel,
    _on_trio_thread,
    check_signal_buffer,
)
from ._mailbox import Mailbox
from ._reason import ExitReason, ProcessStatus
from ._request import _PENDING, Future, Request
from ._restart import RestartDecision, RestartEngine, call_hook
from ._restart import wait as restart_wait
from ._supervision import Supervision

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["Behaviour", "MailboxFull", "Process"]

_log = logging.getLogger("vega_trio.runtime")

_RUNNING = ProcessStatus.RUNNING

T = TypeVar("T")


class Behaviour(Protocol):
    """What a process does with each message.

    ``handle`` returns the reply. Raising a :class:`~vega_trio.RequestError` answers
    the caller with it and the process keeps serving; any other exception answers
    the caller *and* crashes the process (exit reason ``error``).
    """

    @property
    def name(self) -> str:
        """The name events and the spawn tree show for processes of this behaviour."""
        ...

    async def handle(self, process: Process, payload: Any) -> Any:
        """Serve one message."""
        ...


# NOTE: on_setattr=NO_OP: with attrs' default hooks a validator anywhere gives the class
# a Python-level __setattr__ that runs on every write — 18 internal writes per process
# in B2 (status, last_active, the request in flight ...), 3 per run in B1. Validators
# run at construction; the one public setter with a rule (signal_buffer) checks it.
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class Process(Linkable, metaclass=NoPublicConstructor):
    """A running instance of a behaviour (for agents: of an :class:`~vega_trio.Agent`).

    Made by :meth:`Orchestrator.spawn <vega_trio.Orchestrator.spawn>`; calling the class
    raises ``TypeError``. Messages are served one at a time, in order.
    """

    _public_constructor_hint = "use await orch.spawn(agent) (or runtime.spawn(behaviour))"

    id: str
    behaviour: Behaviour
    _runtime: Runtime
    name: str | None = None
    parent_id: str | None = None
    spawn_depth: int = 0
    spawn_reason: str = ""
    task: str = ""
    run_id: str | None = None
    """The workflow run this process works for (its events carry it), if any."""
    user: str | None = None
    """The user whose session this process is (its events carry it), if any."""
    lifetime: float | None = None
    mailbox_size: int = 64
    status: ProcessStatus = ProcessStatus.PENDING
    exit_reason: ExitReason | None = None
    started_at: float | None = None
    completed_at: float | None = None
    last_active: float | None = None
    result: Any = None
    # NOTE: most processes never join a group or spawn a child; the containers (and
    # the exit event) are made on first use to keep an idle process small.
    _groups: set[str] | None = None
    _children: dict[str, None] | None = None
    _scope: trio.CancelScope | None = None
    _stop_reason: ExitReason | None = None
    _exited: trio.Event | None = None
    _has_exited: bool = False
    _current_request: Request | None = None
    _cancel_before_start: bool = False
    _cancelled: bool = False
    supervision: Supervision | None = None
    incarnation: int = 0
    """How many incarnations have started (1 for a process never restarted)."""
    restart_count: int = 0
    _restarts: RestartEngine[ExitReason] | None = None
    _redeliver: Request | None = None
    _pending_crash: BaseException | None = None
    trap_exit: bool = False
    """Receive exit signals of linked processes on :attr:`signals` instead of dying."""
    _signal_buffer: int = attrs.field(
        default=64, validator=check_signal_buffer, alias="signal_buffer"
    )
    _signals: SignalChannel | None = None
    # NOTE: the two ends of the mailbox are one object (its ``close`` is the sending
    # side's); the two names keep the sending and the serving code readable.
    _mailbox: Mailbox[Request] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._mailbox = Mailbox(self.mailbox_size)

    def __repr__(self) -> str:
        label = f" name={self.name!r}" if self.name else ""
        return f"<Process {self.id} {self.behaviour.name!r}{label} {self.status}>"

    # ----------------------------------------------------------------- queries
    @property
    def signal_buffer(self) -> int:
        """How many signals :attr:`signals` holds before newer ones are dropped."""
        return self._signal_buffer

    @signal_buffer.setter
    def signal_buffer(self, value: int) -> None:
        check_signal_buffer(self, None, value)
        self._signal_buffer = value

    @property
    def agent_name(self) -> str:
        """The behaviour's (agent's) name."""
        return self.behaviour.name

    @property
    def children(self) -> list[str]:
        """Ids of processes spawned with this one as parent, in start order (live ones)."""
        return list(self._children or ())

    @property
    def groups(self) -> frozenset[str]:
        """Names of the groups this process belongs to."""
        return frozenset(self._groups or ())

    @property
    def alive(self) -> bool:
        """Whether the process can still take messages."""
        return not self.status.finished and self._stop_reason is None

    @property
    def busy(self) -> bool:
        """Whether the process is serving a message right now (between its
        ``request.started`` and ``request.finished`` events)."""
        return self._current_request is not None

    # ---------------------------------------------------------------- messaging
    def _check_open(self) -> None:
        if not self.alive:
            raise ProcessNotRunning(
                f"process {self.id} ({self.agent_name}) is {self.status}"
                f"{self._reason_suffix()}; it takes no more messages — spawn a new one",
                process_id=self.id,
            )

    def _reason_suffix(self) -> str:
        reason = self.exit_reason or self._stop_reason
        return f" (exit reason: {reason})" if reason is not None else ""

    async def call(self, payload: Any) -> Any:
        """Put ``payload`` in the mailbox and wait for the reply.

        Cancelling the caller withdraws the request and cancels its handling.

        Raises:
            ProcessNotRunning: the process has finished.
            ProcessExited: it ended before answering.
        """
        if self.status is not _RUNNING or self._stop_reason is not None:
            self._check_open()
        request = Request(payload, self.id)
        try:
            # NOTE: put in without a checkpoint of its own: the wait for the reply
            # below is the call's one checkpoint (the caller yields once per call, not
            # twice, B1). A caller cancelled before it started is cancelled there, and
            # its request is withdrawn like any other, so the process skips it.
            self._mailbox.send_nowait(request)
        except trio.WouldBlock:  # full: wait for room (backpressure)
            await self._put(request)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._stopped_taking() from None
        try:
            # NOTE: the wait is inlined, on the request's own waiter slot: no trio.Event,
            # and no coroutine frames of its own (10,000 waiting callers are alive at
            # once in B2, and every full GC walks them). The request is the abort
            # function (Request.__call__).
            if request._value is _PENDING:
                request._waiter = current_task()
                await wait_task_rescheduled(request)
            else:  # answered while this caller waited for room
                await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            request.cancel("was abandoned: the caller was cancelled")
            raise
        error = request._error  # request.outcome(), inlined: the request is answered
        if error is not None:
            raise error
        return request._value

    async def _enqueue(self, payload: Any) -> Request:
        self._check_open()
        request = Request(payload, self.id)
        await self._put(request)
        return request

    async def _put(self, request: Request) -> None:
        """Put ``request`` in the mailbox, waiting for room (a checkpoint)."""
        try:
            await self._mailbox.send(request)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._stopped_taking() from None

    def _stopped_taking(self) -> ProcessNotRunning:
        self._check_open()
        return ProcessNotRunning(
            f"process {self.id} ({self.agent_name}) stopped taking messages", process_id=self.id
        )

    def call_async(self, payload: Any) -> Future[Any]:
        """Put ``payload`` in the mailbox now and return a :class:`Future` for the reply.

        Raises:
            ProcessNotRunning: the process has finished.
            MailboxFull: the bounded mailbox has no room (use ``await call()`` to wait).
        """
        if not trio.lowlevel.in_trio_run():  # from a sync tool's worker thread
            return _on_trio_thread(self.call_async, payload)
        self._check_open()
        request = Request(payload, self.id)
        try:
            self._mailbox.send_nowait(request)
        except trio.WouldBlock:
            raise MailboxFull(
                f"mailbox of process {self.id} ({self.agent_name}) is full "
                f"({self.mailbox_size} messages); await send() to wait for room",
                process_id=self.id,
            ) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ProcessNotRunning(
                f"process {self.id} ({self.agent_name}) stopped taking messages", process_id=self.id
            ) from None
        return Future(request)

    # ---------------------------------------------------------------- lifecycle
    def complete(self, result: Any = None) -> None:
        """Mark the process completed; it finishes its current message, then exits.

        Idempotent: only the first of ``complete``/``fail``/``kill`` counts. Safe to call
        from a sync tool's worker thread (like every lifecycle method here).
        """
        _on_trio_thread(self._request_stop, ExitReason.normal(result))

    def fail(self, error: BaseException | str) -> None:
        """Mark the process failed; it finishes its current message, then exits.

        Idempotent: only the first of ``complete``/``fail``/``kill`` counts.
        """
        exc = error if isinstance(error, BaseException) else RuntimeError(error)
        _on_trio_thread(self._request_stop, ExitReason.crashed(exc))

    def kill(self, detail: str = "killed") -> None:
        """End the process now: its in-flight work is cancelled, waiting callers are
        answered with :class:`~vega_trio.ProcessExited`. Cannot be trapped."""
        if not trio.lowlevel.in_trio_run():  # from a sync tool's worker thread
            _on_trio_thread(self.kill, detail)
            return
        if self.status.finished:
            return
        if self._stop_reason is None or self._stop_reason.kind != "killed":
            self._stop_reason = ExitReason.killed(detail)
        self._close_mailbox()
        self._cancel(f"process {self.id} killed: {detail}")

    def stop(self, detail: str = "stopped") -> None:
        """Ask the process to stop after its current message (exit reason ``shutdown``)."""
        _on_trio_thread(self._request_stop, ExitReason.shutdown(detail))

    async def shutdown(self, grace: float) -> ExitReason:
        """Stop gracefully; after ``grace`` seconds cancel whatever is still running.

        ``grace`` may be ``math.inf`` (OTP's ``infinity``) or 0 (``brutal_kill``).
        Returns the exit reason.
        """
        self.stop("shutdown")
        if grace > 0:
            with trio.move_on_after(grace):
                await self._wait_exited()
        if not self._has_exited:
            self._cancel(f"process {self.id}: shutdown grace of {grace:g}s elapsed")
            await self._wait_exited()
        assert self.exit_reason is not None
        return self.exit_reason

    async def wait(self) -> ExitReason:
        """Wait until the process has exited; returns its exit reason."""
        await self._wait_exited()
        assert self.exit_reason is not None
        return self.exit_reason

    async def _wait_exited(self) -> None:
        if self._has_exited:
            await trio.lowlevel.checkpoint()
            return
        if self._exited is None:
            self._exited = trio.Event()
        await self._exited.wait()

    # ------------------------------------------------------- links and monitors
    @property
    def links(self) -> tuple[str, ...]:
        """Ids of the processes linked to this one, in link order."""
        return self._runtime._link_table.links_of(self)

    @property
    def monitors(self) -> tuple[Monitor, ...]:
        """The active monitors this process holds (made by :meth:`monitor`)."""
        return self._runtime._link_table.monitors_of(self)

    @property
    def signals(self) -> SignalChannel:
        """The signal channel: exit signals of linked processes while :attr:`trap_exit`
        is set (:class:`~vega_trio.ExitSignal`), and the :class:`~vega_trio.Down` of
        the monitors this process holds. Bounded (``signal_buffer``); it ends when the
        process exits for good."""
        if self._signals is None:
            self._signals = SignalChannel(self.signal_buffer)
            if self.status.finished:
                self._signals._end()
        return self._signals

    def link(self, other: Linkable | str) -> None:
        """Link this process with ``other`` (a process or its id), both ways.

        When either exits, the other gets its exit signal (see :meth:`Runtime.link
        <vega_trio.runtime.Runtime.link>`). Idempotent; synchronous; safe in tools.
        """
        self._runtime._link_table.link(self, other)

    def unlink(self, other: Linkable | str) -> None:
        """Remove the link with ``other``, if any. Synchronous; safe in tools."""
        self._runtime._link_table.unlink(self, other)

    def monitor(self, target: Linkable | str) -> Monitor:
        """Monitor ``target`` on behalf of this process.

        The :class:`~vega_trio.Down` arrives both through the returned monitor's
        ``wait()`` and on this process's :attr:`signals`. Synchronous; safe in tools.
        """
        return self._runtime._link_table.monitor(target, self)

    def demonitor(self, monitor: Monitor) -> bool:
        """Remove exactly ``monitor``; ``True`` if it was still active."""
        return self._runtime._link_table.demonitor(monitor)

    def _signal(self, signal: Signal) -> None:
        self.signals._put(signal)

    def _exit_signal(self, source_id: str, agent: str, reason: ExitReason) -> None:
        if self.trap_exit:
            self._signal(
                ExitSignal(
                    process_id=source_id, agent_name=agent, reason=reason, error=reason.error
                )
            )
            return
        if reason.kind == "normal":
            return
        if reason.kind == "shutdown" and self._runtime._closing:
            # NOTE: during an orchestrator shutdown every process is being stopped
            # already, each with its grace; a cascade would only cut that grace short.
            return
        # NOTE: SPEC §2.3 — any other reason, shutdown included, kills at once.
        error = LinkedProcessError(
            f"process {self.id} ({self.agent_name}) was killed because linked process "
            f"{source_id}{f' ({agent})' if agent else ''} exited: {reason}; set trap_exit "
            "on it to receive such exits as signals instead, or unlink the two",
            source=source_id,
            reason=reason,
        )
        error.__cause__ = reason.error
        self._crash_from_outside(
            error, f"process {self.id} killed by link: {source_id} exited ({reason.kind})"
        )

    def _end_signals(self) -> None:
        if self._signals is not None:
            self._signals._end()

    def _crash_from_outside(self, error: BaseException, detail: str) -> None:
        """End the current incarnation as a crash with ``error`` (escalation, links);
        the process's supervision then decides, as for a crash of its own."""
        if self.status.finished:
            return
        stop = self._stop_reason
        if stop is not None and (stop.kind == "killed" or self._runtime._closing):
            # NOTE: a kill wins; during an orchestrator shutdown every process keeps its
            # grace. Otherwise a graceful stop in progress (stop/complete/fail finishing
            # the current message) does not shield it: OTP's exit signals act at once.
            return
        self._pending_crash = error
        self._cancel(detail)

    def _request_stop(self, reason: ExitReason) -> None:
        if self.status.finished or self._stop_reason is not None:
            return
        self._stop_reason = reason
        self._close_mailbox()
        if self.status == ProcessStatus.PENDING:
            self._cancel(f"process {self.id} stopped before it started")

    def _close_mailbox(self) -> None:
        # NOTE: closing the send side wakes an idle process (EndOfChannel) and answers
        # callers blocked on a full mailbox (ClosedResourceError → ProcessNotRunning).
        self._mailbox.close()

    def _cancel(self, reason: str) -> None:
        # NOTE: the flag tells a cancellation of the process from the withdrawal of
        # its request in flight, which cancels the same scope (see _run).
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel(reason=reason)
        else:
            self._cancel_before_start = True

    # ------------------------------------------------------------------ the task
    async def _run(self) -> None:
        """The process's task body (run in the orchestrator's nursery via ``start_soon``;
        the runtime has booked its first incarnation already).

        One loop iteration is one *incarnation* with its own cancel scope. After a
        crash, the process's supervision decides whether a new incarnation starts (same
        process, same mailbox; the message in flight is delivered again).
        """
        _current.set(self)
        crash: BaseException | None = None
        deadline = math.inf if self.lifetime is None else trio.current_time() + self.lifetime
        scope = trio.CancelScope(deadline=deadline)  # the scope in use at any moment
        first = True
        try:
            while True:
                if not first:
                    scope = trio.CancelScope(deadline=deadline)
                    self._cancelled = False
                self._scope = scope
                if self._cancel_before_start:
                    scope.cancel()
                previous, crash = crash, None
                starting, first = not first, False  # the runtime booked the first
                # NOTE: one cancel scope per incarnation serves the process *and* the
                # request in flight (a second, per-request scope cost a CancelScope, a
                # CancelStatus with 2 sets and a bound __exit__ per idle process, B2).
                # Withdrawing a request cancels it too; the incarnation then goes on in
                # a fresh scope with the same deadline (see _withdrawn).
                while True:
                    served = False
                    with scope:
                        if starting:
                            starting = False
                            self._start_incarnation(previous)
                        crash = await self._serve_requests(scope)
                        served = True
                    if served or not self._withdrawn(deadline):
                        break
                    scope = self._scope = trio.CancelScope(deadline=deadline)
                if crash is None and self._pending_crash is not None:
                    # A failure delivered from outside (escalation, link) cancelled us.
                    crash, self._pending_crash = self._pending_crash, None
                    if self._current_request is not None:
                        self._crash_with(self._current_request, crash)
                if crash is None or self._stop_reason is not None:
                    break
                while True:
                    restart = False
                    decision = self._restart_decision(crash)
                    if decision is None:
                        pass
                    elif decision.delay == 0 and deadline == math.inf:
                        # NOTE: no backoff, no lifetime: the wait is one checkpoint, which
                        # needs no cancel scope of its own (entering one costs more than
                        # the rest of the restart, B4). A kill or a link death meanwhile
                        # is seen just below, as after a backoff.
                        await restart_wait(decision)
                        restart = self._restart_ready(decision)
                    else:
                        scope = self._scope = trio.CancelScope(deadline=deadline)  # the backoff's
                        with scope:
                            await restart_wait(decision)
                            restart = self._restart_ready(decision)
                    if self._pending_crash is None or self._stop_reason is not None:
                        break
                    # A new failure (link death, escalation) arrived during the backoff:
                    # it is a crash of its own, and the supervision decides again.
                    crash, self._pending_crash = self._pending_crash, None
                if restart:
                    continue
                break
        finally:
            self._exit(scope, crash)

    def _restart_decision(self, crash: BaseException) -> RestartDecision | None:
        """Apply the supervision to a crash: the restart engine's decision when the
        process is to restart (after ``decision.delay``), ``None`` when it exits."""
        supervision = self.supervision
        if supervision is None:
            return None
        engine = self._restarts
        if engine is None:
            engine = self._restarts = self._restart_engine(supervision)
        reason = ExitReason.crashed(crash)
        decision = engine.failure(
            reason,
            trio.current_time(),
            restart=supervision.strategy == "restart" and reason.restartable,
        )
        return decision if decision.action == "restart" else None

    def _restart_ready(self, decision: RestartDecision) -> bool:
        """After the backoff: ``True`` to start the new incarnation, ``False`` when a
        stop arrived meanwhile."""
        if self._stop_reason is not None:
            return False
        supervision = self.supervision
        assert supervision is not None and self._restarts is not None
        on_restart = getattr(self.behaviour, "on_restart", None)
        if on_restart is not None:
            on_restart(self, fresh=supervision.restart_state == "fresh")
        self._restarts.up(trio.current_time())
        return True

    def _restart_engine(self, supervision: Supervision) -> RestartEngine[ExitReason]:
        """The restart engine for this process: made at its first crash (spawning a
        supervised process costs nothing extra); its hooks bind the process."""
        user_failure, user_restart, user_give_up = (
            supervision.on_failure,
            supervision.on_restart,
            supervision.on_give_up,
        )

        # NOTE: the user's hooks go through call_hook too, so a failing one is logged
        # under its own name and the process's bookkeeping around it still happens.
        def on_restart(number: int) -> None:
            self.restart_count = number
            self.status = ProcessStatus.PENDING
            if user_restart is not None:
                call_hook(user_restart, self, number)

        def on_give_up(reason: ExitReason) -> None:
            self._runtime._on_gave_up(self, reason, supervision.max_restarts, supervision.window)
            if user_give_up is not None:
                call_hook(user_give_up, self, reason)

        return RestartEngine(
            supervision.max_restarts,
            supervision.window,
            supervision.backoff,
            on_failure=None if user_failure is None else functools.partial(user_failure, self),
            on_restart=on_restart,
            on_give_up=on_give_up,
        )

    def _crashes_on(self, exc: RequestError) -> bool:
        # NOTE: SPEC §2.1 — a supervised process crashes when a send still fails with a
        # retryable class (a restart may cure it); other request errors go back to the
        # caller and the process keeps serving.
        return self.supervision is not None and exc.restartable

    def _start_incarnation(self, previous: BaseException | None) -> None:
        """Bookkeeping of a new incarnation (the runtime's spawn books the first one,
        synchronously, so a process is running when spawn returns it)."""
        self.status = ProcessStatus.RUNNING
        self.incarnation += 1
        self.last_active = time.time()
        if self.incarnation == 1:
            self.started_at = self.last_active
            self._runtime._on_started(self)
            if _log.isEnabledFor(logging.DEBUG):
                _log_spawned(self)
            return
        self._runtime._on_restarted(self, previous)
        if _log.isEnabledFor(logging.INFO):
            _log_restarted(self, previous)

    def _withdrawn(self, deadline: float) -> bool:
        """After the incarnation's scope caught a cancellation: ``True`` when only the
        request in flight was withdrawn (it is answered here and the process goes on),
        ``False`` when the process itself was cancelled (kill, stop, link, lifetime)."""
        if self._cancelled or self._pending_crash is not None:
            return False
        if self._stop_reason is not None or trio.current_time() >= deadline:
            return False
        request, self._current_request = self._current_request, None
        if request is not None:
            request._scope = None
            request.cancel("was cancelled")
        self.last_active = time.time()
        return True

    async def _serve_requests(self, scope: trio.CancelScope) -> BaseException | None:
        recv = self._mailbox
        behaviour = self.behaviour
        bus = self._runtime.bus
        while True:
            request = self._redeliver
            if request is not None:
                self._redeliver = None
            else:
                try:
                    request = await recv.receive()
                except trio.EndOfChannel:
                    return None
            if request._value is not _PENDING:  # withdrawn while it waited in the mailbox
                continue
            if self._stop_reason is not None:
                self._answer_exited(request)  # the rest are answered in _exit
                return None
            self._current_request = request
            request._scope = scope
            # NOTE: the bus's own flag first: nobody listens in most runs (B1).
            if not bus._quiet and bus.wants(RequestStarted):
                bus.emit(RequestStarted, process_id=self.id, agent=behaviour.name)
            failure: BaseException | None = None
            served = False
            try:
                reply = await behaviour.handle(self, request.payload)
            except RequestError as exc:
                failure = exc
                if self.supervision is not None and exc.exit_kind is not None:
                    # e.g. a spent budget: the caller gets the error, and the process
                    # ends with that exit reason (never restarted: nothing would change).
                    request.set_error(exc)
                    request._scope = None
                    self._current_request = None
                    return exc
                if self._crashes_on(exc):
                    return self._crash_with(request, exc)
                request.set_error(exc)
            except Exception as exc:
                failure = exc
                return self._crash_with(request, exc)
            else:
                served = True
                # NOTE: request.set_result(reply), inlined (one call less per send,
                # B1); the check is its own: the caller may have withdrawn the request
                # after the handler's last checkpoint.
                if request._value is _PENDING:
                    request._value = reply
                    request._fire()
            finally:
                # NOTE: every way out (a reply, an error, a crash, a cancellation) ends
                # the busy period; synchronous, so safe while Cancelled propagates.
                if not bus._quiet and bus.wants(RequestFinished):
                    _emit_idle(bus, self, served, failure)
            request._scope = None
            self._current_request = None
            self.last_active = time.time()
            # NOTE: this frame waits on the mailbox until the next message: without
            # this, an idle process would keep its last reply (and error) alive.
            reply = failure = None

    def _crash_with(self, request: Request, exc: BaseException) -> BaseException:
        request._scope = None
        self._current_request = None
        if self.supervision is not None and self.supervision.strategy == "restart":
            self._redeliver = request  # at-least-once: served again by the next incarnation
        elif isinstance(exc, LinkedProcessError):
            # The request did not fail: its process was killed by a link.
            self._answer_exited(request, ExitReason.crashed(exc))
        else:
            request.set_error(exc)
        return exc

    def _answer_exited(self, request: Request, reason: ExitReason | None = None) -> None:
        reason = reason or self.exit_reason or self._stop_reason or ExitReason.shutdown()
        error = ProcessExited(
            f"process {self.id} ({self.agent_name}) exited before answering: {reason}",
            process_id=self.id,
            reason=reason,
        )
        if reason.error is not None:
            error.__cause__ = reason.error
        request.set_error(error)

    def _exit(self, scope: trio.CancelScope, crash: BaseException | None) -> None:
        # NOTE: runs in a finally block, possibly while Cancelled propagates: it must
        # stay synchronous (no await) and must answer every request still waiting.
        if self._stop_reason is not None and (crash is None or self._stop_reason.kind == "killed"):
            reason = self._stop_reason
        elif crash is not None:
            reason = ExitReason.crashed(crash)
        elif (
            scope.cancelled_caught
            and self.lifetime is not None
            and trio.current_time() >= scope.deadline
        ):
            reason = ExitReason.timed_out(self.lifetime)
        else:
            reason = ExitReason.shutdown("orchestrator cancelled")
        if reason.kind == "normal":
            self.result = reason.result
        self.exit_reason = reason
        self.status = reason.status
        self.completed_at = time.time()
        self._mailbox.close()
        for request in (self._redeliver, self._current_request):
            if request is None:
                continue
            if reason.kind == "error" and reason.error is not None:
                request.set_error(reason.error)  # the final error, as the caller would see it
            else:
                self._answer_exited(request)
        self._redeliver = self._current_request = None
        # NOTE: the mailbox is closed: senders waiting for room have their error, and
        # what is queued is answered here (later sends fail at once).
        while True:
            try:
                self._answer_exited(self._mailbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        self._has_exited = True
        if self._exited is not None:
            self._exited.set()
        self._runtime._on_exited(self)
        # NOTE: a normal exit logs at DEBUG, a failure at WARNING; check before building.
        if _log.isEnabledFor(logging.WARNING if reason.kind in _FAILED else logging.DEBUG):
            _log_exited(self, reason)


def _emit_idle(bus: EventBus, proc: Process, served: bool, failure: BaseException | None) -> None:
    if served:
        bus.emit(RequestFinished, process_id=proc.id, agent=proc.agent_name, outcome="ok")
        return
    if failure is None:
        bus.emit(RequestFinished, process_id=proc.id, agent=proc.agent_name, outcome="cancelled")
        return
    error_class = getattr(failure, "error_class", None)
    bus.emit(
        RequestFinished,
        process_id=proc.id,
        agent=proc.agent_name,
        outcome="error",
        error_class=str(error_class) if error_class is not None else type(failure).__name__,
        error=str(failure)[:500],
    )


# -- structured log records (vega_trio._log): built only when their level is enabled --------

#: Exit reasons logged as failures (as the runtime's ``process.failed`` event has them).
_FAILED = frozenset({"error", "linked", "timeout", "budget_exceeded"})


def _log_spawned(proc: Process) -> None:
    log_record(
        _log,
        logging.DEBUG,
        "process %s (%s) spawned",
        proc.id,
        proc.agent_name,
        event="process.spawned",
        process_id=proc.id,
        agent=proc.agent_name,
        process_name=proc.name,
        parent_id=proc.parent_id,
    )


def _log_restarted(proc: Process, crash: BaseException | None) -> None:
    log_record(
        _log,
        logging.INFO,
        "process %s (%s) restarted (restart %d) after: %s",
        proc.id,
        proc.agent_name,
        proc.restart_count,
        "?" if crash is None else f"{type(crash).__name__}: {crash}",
        event="process.restarted",
        process_id=proc.id,
        agent=proc.agent_name,
        incarnation=proc.incarnation,
        restart_count=proc.restart_count,
        error_class=None if crash is None else type(crash).__name__,
    )


def _log_exited(proc: Process, reason: ExitReason) -> None:
    duration_ms = (
        None
        if proc.started_at is None or proc.completed_at is None
        else round((proc.completed_at - proc.started_at) * 1000)
    )
    error = reason.error
    if reason.kind not in _FAILED:
        log_record(
            _log,
            logging.DEBUG,
            "process %s (%s) %s",
            proc.id,
            proc.agent_name,
            "completed" if reason.kind == "normal" else f"stopped ({reason.kind})",
            event="process.completed" if reason.kind == "normal" else "process.stopped",
            process_id=proc.id,
            agent=proc.agent_name,
            reason=reason.kind,
            duration_ms=duration_ms,
            restart_count=proc.restart_count,
        )
        return
    log_record(
        _log,
        logging.WARNING,
        "process %s (%s) failed (%s): %s",
        proc.id,
        proc.agent_name,
        reason.kind,
        reason.detail,
        event="process.failed",
        process_id=proc.id,
        agent=proc.agent_name,
        reason=reason.kind,
        detail=reason.detail,
        error_class=None if error is None else type(error).__name__,
        duration_ms=duration_ms,
        restart_count=proc.restart_count,
    )
