"""Links, monitors and trap-exit (SPEC §2.3), OTP's way of letting processes watch each other.

* A **link** is bidirectional. When a process exits, each linked process gets an exit
  signal: a ``normal`` exit is ignored by a process that does not trap exits; any other
  reason kills it with reason ``linked`` (its error is a
  :class:`~vega_trio.LinkedProcessError` whose ``__cause__`` is the dead process's
  error, so a chain of links keeps the first failure reachable). The kill goes through
  the process's own supervision like any crash: a process with
  ``Supervision(strategy="restart")`` is restarted. ``shutdown`` propagates like any
  other non-``normal`` reason (SPEC §2.3): the peer is cancelled at once with reason
  ``linked``. Only during an orchestrator shutdown is a ``shutdown`` not propagated:
  every process is being stopped already, each with its grace.
* A **supervisor** is linkable and monitorable too (SPEC §2.2): it always traps exits.
  An exit signal from its owner (the supervisor above it, or for a top-level tree the
  process given as ``parent``) shuts it down; any other is logged and ignored. When it
  exits, its monitors fire and its links get its exit reason like a process's.
* With ``trap_exit`` set, a process gets every exit signal — ``normal`` ones included —
  as an :class:`ExitSignal` on its signal channel (``process.signals``) instead.
  ``kill()`` is never trapped.
* A **monitor** is unidirectional and fires exactly once with a :class:`Down`.

Decisions where OTP and this runtime differ:

* A restart in place (per-process supervision) keeps the process handle and its id, so
  links and monitors belong to the handle and survive restarts. A crash that the
  process's own supervision restarts is not an exit: it sends no exit signal and fires
  no monitor; only the final exit does.
* Linking to a process that is already gone (finished, or an unknown id) sends the live
  side an exit signal with reason ``noproc`` at once, as OTP does: a trapping process
  gets an :class:`ExitSignal`, any other is killed with reason ``linked``.
* Monitoring a process that is already gone fires at once with reason ``noproc``.
* ``demonitor`` removes exactly one monitor; ``Monitor.wait()`` on a removed monitor
  raises :class:`~vega_trio.MonitorRemoved` (it would otherwise wait forever). A
  monitor whose watcher process exits is removed the same way.

Every entry point is synchronous and safe to call from tools: from a worker thread
started by ``trio.to_thread`` (sync tools) the call hops to the Trio thread.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import attrs
import trio

from .._errors import MonitorRemoved
from ._events import Lagged
from ._reason import ExitReason

if TYPE_CHECKING:
    from ._process import Process
    from ._reason import ProcessStatus
    from ._runtime import Runtime

__all__ = [
    "Down",
    "ExitSignal",
    "LinkTable",
    "Linkable",
    "Monitor",
    "Signal",
    "SignalChannel",
    "check_signal_buffer",
]

T = TypeVar("T")

_refs = itertools.count(1)


@attrs.frozen(kw_only=True)
class ExitSignal:
    """An exit signal a trapping process received from a linked process.

    Attributes:
        process_id: the process that exited.
        agent_name: its agent (behaviour) name; ``""`` when it was never known.
        reason: its :class:`~vega_trio.ExitReason` (``noproc`` when it was already gone
            at :meth:`~vega_trio.Process.link` time).
        error: its error, if it had one (``reason.error``).
        timestamp: wall-clock seconds since the epoch, for display.
    """

    process_id: str
    agent_name: str
    reason: ExitReason
    error: BaseException | None = attrs.field(default=None, eq=False)
    timestamp: float = attrs.field(factory=time.time)


@attrs.frozen(kw_only=True)
class Down:
    """What a monitor reports, once, when its target exits.

    Attributes:
        ref: the :attr:`Monitor.ref` of the monitor that fired.
        process_id: the monitored process.
        agent_name: its agent (behaviour) name; ``""`` for an unknown id.
        reason: its :class:`~vega_trio.ExitReason`, or ``noproc`` when it was already
            gone when the monitor was set up.
        error: its error, if it had one.
        result: its result, when it completed (reason ``normal``).
        timestamp: wall-clock seconds since the epoch, for display.
    """

    ref: int
    process_id: str
    agent_name: str
    reason: ExitReason
    error: BaseException | None = attrs.field(default=None, eq=False)
    result: Any = attrs.field(default=None, eq=False)
    timestamp: float = attrs.field(factory=time.time)


Signal: TypeAlias = ExitSignal | Down | Lagged
"""What a process's signal channel carries."""


class SignalChannel(trio.abc.ReceiveChannel[Signal]):
    """A process's signal channel: exit signals (when it traps exits) and the
    :class:`Down` reports of monitors it holds. Read it with ``async for`` or
    :meth:`receive`.

    It is bounded and never blocks the runtime: when ``max_buffer`` signals are waiting,
    newer ones are dropped and a :class:`~vega_trio.runtime.Lagged` item, in their place,
    says how many were lost. The channel ends (``EndOfChannel`` after the buffer is
    drained) when its process exits for good; it stays open across restarts.

    Made by the runtime (``process.signals``); not constructed directly.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_ended",
        "_held",
        "_max_buffer",
        "_missed",
        "_wakeup",
        "dropped_total",
    )

    def __init__(self, max_buffer: int) -> None:
        if max_buffer < 1:
            raise ValueError(f"signal_buffer must be at least 1, got {max_buffer}")
        self._max_buffer = max_buffer
        self._buffer: collections.deque[Signal] = collections.deque()
        self._held = 0  # signals in the buffer, not counting Lagged markers
        self._missed = 0
        self._ended = False
        self._closed = False
        self._wakeup = trio.Event()
        self.dropped_total = 0
        """Signals lost to overflow (or delivered after :meth:`close`), ever."""

    @property
    def max_buffer(self) -> int:
        """How many signals may wait before newer ones are dropped."""
        return self._max_buffer

    def _put(self, signal: Signal) -> bool:
        """Deliver ``signal`` without blocking; ``False`` when it had to be dropped."""
        if self._closed or self._ended:
            self.dropped_total += 1
            return False
        if self._held >= self._max_buffer:
            self._missed += 1
            self.dropped_total += 1
            self._wakeup.set()
            return False
        if self._missed:
            # NOTE: the Lagged marker goes where the lost signals would have been.
            self._buffer.append(Lagged(missed=self._missed))
            self._missed = 0
        self._buffer.append(signal)
        self._held += 1
        self._wakeup.set()
        return True

    def _end(self) -> None:
        """The process exited for good: readers finish once the buffer is drained."""
        self._ended = True
        self._wakeup.set()

    def __len__(self) -> int:
        """Signals waiting to be received."""
        return self._held

    def receive_nowait(self) -> Signal:
        """The next signal, without waiting.

        Raises:
            trio.WouldBlock: nothing is waiting.
            trio.EndOfChannel: the process has exited and everything was received.
            trio.ClosedResourceError: this channel was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("this signal channel was closed")
        if self._buffer:
            signal = self._buffer.popleft()
            if not isinstance(signal, Lagged):
                self._held -= 1
            return signal
        if self._missed:
            missed, self._missed = self._missed, 0
            return Lagged(missed=missed)
        if self._ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> Signal:
        """Wait for the next signal.

        Raises:
            trio.EndOfChannel: the process has exited and everything was received.
            trio.ClosedResourceError: this channel was closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                signal = self.receive_nowait()
            except trio.WouldBlock:
                if self._wakeup.is_set():
                    self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return signal

    def close(self) -> None:
        """Stop receiving: waiting ``receive`` calls raise ``ClosedResourceError`` and
        later signals are dropped."""
        self._closed = True
        self._buffer.clear()
        self._held = 0
        self._wakeup.set()

    async def aclose(self) -> None:
        """Like :meth:`close` (a checkpoint, as for every trio channel)."""
        self.close()
        await trio.lowlevel.checkpoint()


@attrs.define(eq=False)
class Monitor:
    """A monitor of one process, made by :meth:`Runtime.monitor
    <vega_trio.runtime.Runtime.monitor>` or :meth:`Process.monitor
    <vega_trio.Process.monitor>`; not constructed directly.

    It fires exactly once, when its target exits, with a :class:`Down`; monitors are
    independent of each other (several on one target each fire once).

    Attributes:
        ref: a number that identifies this monitor (also in its :class:`Down`).
        target_id: the monitored process's id.
        watcher_id: the process that also gets the :class:`Down` on its signal
            channel, if any.
    """

    ref: int
    target_id: str
    watcher_id: str | None
    _table: LinkTable | None = attrs.field(default=None, repr=False)
    _target: Linkable | None = attrs.field(default=None, repr=False)
    _watcher: Process | None = attrs.field(default=None, repr=False)
    _down: Down | None = attrs.field(default=None, repr=False)
    _removed: str | None = attrs.field(default=None, repr=False)
    _event: trio.Event | None = attrs.field(default=None, repr=False)

    @property
    def active(self) -> bool:
        """Whether it may still fire (it has neither fired nor been removed)."""
        return self._down is None and self._removed is None

    @property
    def down(self) -> Down | None:
        """The :class:`Down` if the monitor has fired, else ``None`` (does not wait)."""
        return self._down

    async def wait(self) -> Down:
        """Wait until the target exits; returns the :class:`Down` (at once if it fired).

        Raises:
            MonitorRemoved: the monitor was removed (``demonitor``, or its watcher
                exited) before it fired — it never will.
        """
        if self._down is None and self._removed is None:
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        else:
            await trio.lowlevel.checkpoint()
        if self._down is not None:
            return self._down
        raise MonitorRemoved(
            f"monitor {self.ref} of process {self.target_id} was removed ({self._removed}) "
            "before that process exited, so it will never fire; check `monitor.active` "
            "before waiting, or keep the monitor until it fires"
        )

    def demonitor(self) -> bool:
        """Remove this monitor (same as ``runtime.demonitor(monitor)``).

        Returns:
            ``True`` if it was active, ``False`` if it had already fired or been removed.
        """
        if self._table is None:
            return False
        return self._table.demonitor(self)

    def _fire(self, down: Down) -> None:
        self._down = down
        self._table = self._target = self._watcher = None
        if self._event is not None:
            self._event.set()

    def _remove(self, why: str) -> None:
        self._removed = why
        self._table = self._target = self._watcher = None
        if self._event is not None:
            self._event.set()


class Linkable:
    """What links and monitors work on: a :class:`~vega_trio.Process` or a
    :class:`~vega_trio.runtime.Supervisor` (SPEC §2.2: a supervisor is a process for
    links and monitors). Each decides itself what an exit signal does to it."""

    __slots__ = ()

    if TYPE_CHECKING:
        id: str
        status: ProcessStatus
        exit_reason: ExitReason | None
        completed_at: float | None
        _runtime: Runtime

        @property
        def agent_name(self) -> str: ...

    def _exit_signal(self, source_id: str, agent: str, reason: ExitReason) -> None:
        """The linked process ``source_id`` exited with ``reason`` (or was gone:
        ``noproc``). Synchronous: runs in the exit path of ``source_id``."""
        raise NotImplementedError

    def _end_signals(self) -> None:
        """This one has exited for good: end whatever carries its signals."""


def check_signal_buffer(_instance: Any, _attribute: Any, value: int) -> None:
    """attrs validator for ``Process.signal_buffer``."""
    if not (isinstance(value, int) and value >= 1):
        raise ValueError(
            f"signal_buffer must be a whole number of signals, at least 1, got {value!r}"
        )


def _on_trio_thread(fn: Callable[..., T], *args: Any) -> T:
    # NOTE: sync tools run in worker threads (trio.to_thread); the tables below belong to
    # the Trio thread, so calls from a worker hop over (and wait for the result).
    if trio.lowlevel.in_trio_run():
        return fn(*args)
    return trio.from_thread.run_sync(fn, *args)


@attrs.define(eq=False)
class LinkTable:
    """The links and monitors of one runtime (``Runtime._link_table``).

    Keyed by process handle: a process keeps its links and monitors across restarts in
    place; everything of a process is dropped when it exits for good.
    """

    _runtime: Runtime
    _links: dict[Linkable, dict[Linkable, None]] = attrs.field(factory=dict)
    _monitors: dict[Linkable, dict[Monitor, None]] = attrs.field(factory=dict)
    """Monitors by target."""
    _watching: dict[Linkable, dict[Monitor, None]] = attrs.field(factory=dict)
    """Monitors by watcher."""

    # ----------------------------------------------------------------- lookups
    def _resolve(self, process: Linkable | str, what: str) -> tuple[Linkable | None, str]:
        if isinstance(process, str):
            runtime = self._runtime
            found = runtime._processes.get(process) or runtime._supervisors.get(process)
            return found, process
        if not isinstance(process, Linkable):
            raise TypeError(
                f"cannot {what} {process!r}: links and monitors take a Process, a "
                "Supervisor, or the id of one"
            )
        if process._runtime is not self._runtime:
            raise ValueError(
                f"cannot {what} process {process.id}: it belongs to another orchestrator; "
                "links and monitors only work between processes of one orchestrator"
            )
        return process, process.id

    def links_of(self, process: Linkable) -> tuple[str, ...]:
        """Ids of the processes linked to ``process``, in link order."""
        return tuple(p.id for p in self._links.get(process, ()))

    def monitors_of(self, watcher: Process) -> tuple[Monitor, ...]:
        """The active monitors ``watcher`` holds."""
        return tuple(self._watching.get(watcher, ()))

    # ------------------------------------------------------------------- links
    def link(self, a: Linkable | str, b: Linkable | str) -> None:
        """Link ``a`` and ``b`` (idempotent). See the module docstring for a dead side."""
        _on_trio_thread(self._link, a, b)

    def _link(self, a: Linkable | str, b: Linkable | str) -> None:
        proc_a, id_a = self._resolve(a, "link")
        proc_b, id_b = self._resolve(b, "link")
        if id_a == id_b:
            return  # as OTP's link(self()): nothing to do
        gone_a = proc_a is None or proc_a.status.finished
        gone_b = proc_b is None or proc_b.status.finished
        if gone_a and gone_b:
            return
        if gone_a or gone_b:
            live, gone, gone_id = (proc_b, proc_a, id_a) if gone_a else (proc_a, proc_b, id_b)
            assert live is not None
            agent = gone.agent_name if gone is not None else ""
            self._deliver(live, gone_id, agent, ExitReason.noproc(gone_id))
            return
        assert proc_a is not None and proc_b is not None
        self._links.setdefault(proc_a, {})[proc_b] = None
        self._links.setdefault(proc_b, {})[proc_a] = None

    def unlink(self, a: Linkable | str, b: Linkable | str) -> None:
        """Remove the link between ``a`` and ``b``, if there is one."""
        _on_trio_thread(self._unlink, a, b)

    def _unlink(self, a: Linkable | str, b: Linkable | str) -> None:
        proc_a, _ = self._resolve(a, "unlink")
        proc_b, _ = self._resolve(b, "unlink")
        if proc_a is None or proc_b is None:
            return
        self._drop_link(proc_a, proc_b)
        self._drop_link(proc_b, proc_a)

    def _drop_link(self, of: Linkable, to: Linkable) -> None:
        peers = self._links.get(of)
        if peers is not None:
            peers.pop(to, None)
            if not peers:
                del self._links[of]

    def _deliver(self, peer: Linkable, source_id: str, agent: str, reason: ExitReason) -> None:
        """Send ``peer`` the exit signal of ``source_id``."""
        if not peer.status.finished:
            peer._exit_signal(source_id, agent, reason)

    # ---------------------------------------------------------------- monitors
    def monitor(self, target: Linkable | str, watcher: Process | None = None) -> Monitor:
        """Monitor ``target``; the :class:`Down` also goes to ``watcher``'s signal channel."""
        return _on_trio_thread(self._monitor, target, watcher)

    def _monitor(self, target: Linkable | str, watcher: Process | None) -> Monitor:
        proc, target_id = self._resolve(target, "monitor")
        if watcher is not None:
            from ._process import Process  # here: _process imports this module

            if not isinstance(watcher, Process):
                raise TypeError(
                    f"a monitor's watcher must be a Process (it gets the Down on its "
                    f"signal channel), not {watcher!r}; leave watcher out and await "
                    "monitor.wait() instead"
                )
            self._resolve(watcher, "monitor from")
        monitor = Monitor(next(_refs), target_id, watcher.id if watcher is not None else None)
        if proc is None or proc.status.finished:
            agent = proc.agent_name if proc is not None else ""
            down = Down(
                ref=monitor.ref,
                process_id=target_id,
                agent_name=agent,
                reason=ExitReason.noproc(target_id),
            )
            monitor._fire(down)
            if watcher is not None and not watcher.status.finished:
                watcher._signal(down)
            return monitor
        if watcher is not None and watcher.status.finished:
            monitor._remove(f"its watcher process {watcher.id} has exited")
            return monitor
        monitor._table, monitor._target, monitor._watcher = self, proc, watcher
        self._monitors.setdefault(proc, {})[monitor] = None
        if watcher is not None:
            self._watching.setdefault(watcher, {})[monitor] = None
        return monitor

    def demonitor(self, monitor: Monitor) -> bool:
        """Remove exactly ``monitor``; ``True`` if it was active."""
        return _on_trio_thread(self._demonitor, monitor)

    def _demonitor(self, monitor: Monitor) -> bool:
        if not isinstance(monitor, Monitor):
            raise TypeError(f"demonitor takes the Monitor that monitor() returned, not {monitor!r}")
        if monitor._table is not self or not monitor.active:
            return False
        self._forget(monitor)
        monitor._remove("demonitor was called")
        return True

    def _forget(self, monitor: Monitor) -> None:
        _discard(self._monitors, monitor._target, monitor)
        _discard(self._watching, monitor._watcher, monitor)

    # -------------------------------------------------------------------- exit
    def on_exit(self, proc: Linkable) -> None:
        """``proc`` has exited for good: fire its monitors, drop those it held, signal
        its links and end its signal channel. Synchronous (runs in the exit path)."""
        reason = proc.exit_reason
        assert reason is not None
        monitors = self._monitors.pop(proc, None)
        if monitors:
            for monitor in monitors:
                watcher = monitor._watcher
                _discard(self._watching, watcher, monitor)
                down = Down(
                    ref=monitor.ref,
                    process_id=proc.id,
                    agent_name=proc.agent_name,
                    reason=reason,
                    error=reason.error,
                    result=reason.result if reason.kind == "normal" else None,
                    timestamp=proc.completed_at or time.time(),
                )
                monitor._fire(down)
                if watcher is not None and not watcher.status.finished:
                    watcher._signal(down)
        held = self._watching.pop(proc, None)
        if held:
            for monitor in held:
                _discard(self._monitors, monitor._target, monitor)
                monitor._remove(f"its watcher process {proc.id} exited")
        peers = self._links.pop(proc, None)
        if peers:
            for peer in peers:
                self._drop_link(peer, proc)
                self._deliver(peer, proc.id, proc.agent_name, reason)
        proc._end_signals()


def _discard(
    table: dict[Linkable, dict[Monitor, None]], proc: Linkable | None, monitor: Monitor
) -> None:
    if proc is None:
        return
    monitors = table.get(proc)
    if monitors is not None:
        monitors.pop(monitor, None)
        if not monitors:
            del table[proc]
