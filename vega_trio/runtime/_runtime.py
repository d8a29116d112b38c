"""The process table: spawning, the name registry, groups, the spawn tree, limits, shutdown."""

from __future__ import annotations

import itertools
import math
import os
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

from .._errors import (
    ChildFailed,
    NameTaken,
    OrchestratorClosed,
    ProcessNotFound,
    TooManyProcesses,
)
from ._events import (
    Event,
    EventBus,
    ProcessCompleted,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStopped,
    SupervisorGaveUp,
)
from ._groups import Group
from ._links import Linkable, LinkTable, Monitor
from ._process import Behaviour, Process
from ._reason import ExitReason
from ._supervision import Supervision

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["Runtime", "SpawnNode"]

#: The event of each kind of exit (SPEC §10.3); any other kind (shutdown, killed, …)
#: is ``process.stopped``.
_EXIT_EVENTS: dict[str, type[Event]] = {
    "normal": ProcessCompleted,
    "error": ProcessFailed,
    "linked": ProcessFailed,
    "budget_exceeded": ProcessFailed,
    "timeout": ProcessFailed,
}

P = TypeVar("P", bound=Process)

_prefix = os.urandom(3).hex()
_counter = itertools.count(1)


def _new_id() -> str:
    # Unique within this interpreter and unlikely to collide across restarts.
    return f"p-{_prefix}-{next(_counter)}"


@attrs.frozen(kw_only=True)
class SpawnNode:
    """One node of the spawn tree (SPEC §1.2)."""

    process_id: str
    agent_name: str
    name: str | None
    task: str
    status: str
    spawn_depth: int
    spawn_reason: str
    started_at: float | None
    children: tuple[SpawnNode, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly nested dict."""
        return {
            "process_id": self.process_id,
            "agent_name": self.agent_name,
            "name": self.name,
            "task": self.task,
            "status": self.status,
            "spawn_depth": self.spawn_depth,
            "spawn_reason": self.spawn_reason,
            "started_at": self.started_at,
            "children": [c.to_dict() for c in self.children],
        }


@attrs.define(eq=False)
class Runtime:
    """Owns the processes of one orchestrator. Knows nothing about LLMs.

    Made by :func:`~vega_trio.open_orchestrator`; not constructed directly.
    """

    _nursery: trio.Nursery
    bus: EventBus = attrs.field(factory=EventBus)
    max_processes: int | None = None
    # NOTE: live processes, plus finished ones that still have live descendants (so the
    # spawn tree stays connected); everything else is pruned at exit.
    _processes: dict[str, Process] = attrs.field(factory=dict)
    _names: dict[str, Process] = attrs.field(factory=dict)
    _groups: dict[str, Group] = attrs.field(factory=dict)
    _supervisors: dict[str, Supervisor] = attrs.field(factory=dict)
    """Supervisors running in this runtime, by id (links and monitors find them by id)."""
    _live: int = 0
    _closing: bool = False
    total_spawned: int = 0
    _link_table: LinkTable = attrs.field(
        init=False, default=attrs.Factory(LinkTable, takes_self=True)
    )

    # ------------------------------------------------------------------ spawn
    async def spawn(
        self,
        behaviour: Behaviour,
        *,
        process_class: type[P] = Process,  # type: ignore[assignment]
        parent: Process | str | None = None,
        reason: str = "",
        task: str = "",
        name: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the process's lifetime (policy data)
        mailbox_size: int = 64,
        supervision: Supervision | None = None,
        nursery: trio.Nursery | None = None,
        run_id: str | None = None,
        user: str | None = None,
        **extra: Any,
    ) -> P:
        """Start a process running ``behaviour`` and return it once it is running.

        The process's task runs in ``nursery`` (a supervisor's) or, by default, in the
        orchestrator's root nursery; it is booked as running (``process.started``)
        before this returns, and takes its first step at this call's checkpoint (a
        caller already cancelled gets ``Cancelled`` and no process). ``run_id`` and
        ``user`` (the workflow run and the session's user it works for; inherited from
        ``parent`` when not given) are carried by every event about it.

        Raises:
            OrchestratorClosed: shutdown has begun.
            TooManyProcesses: ``max_processes`` live processes exist already.
            NameTaken: ``name`` is bound to another live process.
            ProcessNotFound: ``parent`` is an id that is not known.
        """
        if self._closing:
            raise OrchestratorClosed(
                "the orchestrator is shutting down; it cannot spawn new processes"
            )
        if self.max_processes is not None and self._live >= self.max_processes:
            raise TooManyProcesses(
                f"cannot spawn {behaviour.name!r}: {self._live} live processes reach the limit of "
                f"{self.max_processes}; complete or kill some, or raise max_processes"
            )
        if name is not None:
            self._check_name_free(name)
        if timeout is not None and not (timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if mailbox_size < 1:
            raise ValueError(f"mailbox_size must be at least 1, got {mailbox_size}")
        parent_proc = self._resolve_parent(parent)
        await trio.lowlevel.checkpoint_if_cancelled()
        proc = process_class._create(
            _new_id(),
            behaviour,
            self,
            name=name,
            parent_id=parent_proc.id if parent_proc else None,
            spawn_depth=parent_proc.spawn_depth + 1 if parent_proc else 0,
            spawn_reason=reason,
            task=task,
            run_id=run_id if run_id is not None or parent_proc is None else parent_proc.run_id,
            user=user if user is not None or parent_proc is None else parent_proc.user,
            lifetime=timeout,
            mailbox_size=mailbox_size,
            supervision=supervision,
            **extra,
        )
        # NOTE: start_soon, not start: trio's start opens a nursery, a cancel scope and
        # a task status for every task and moves the task when it reports in (about
        # 100 Python calls and 8 GC-tracked objects per spawn, B2 and B3's profile).
        # The process is running from here on (its first incarnation is booked just
        # below, its mailbox takes messages already); its task takes its first step
        # at the next checkpoint, before anything it was sent is served. Nothing
        # between here and that checkpoint awaits, so there is nothing to undo.
        (nursery or self._nursery).start_soon(proc._run)
        self._processes[proc.id] = proc
        self._live += 1
        self.total_spawned += 1
        if parent_proc is not None:
            if parent_proc._children is None:
                parent_proc._children = {}
            parent_proc._children[proc.id] = None
        if name is not None:
            self._names[name] = proc
        proc._start_incarnation(None)
        # A schedule point (never cancelled: the process exists now, and its caller
        # must get its handle); the process's task usually takes its first step here.
        await trio.lowlevel.cancel_shielded_checkpoint()
        return proc

    def _resolve_parent(self, parent: Process | str | None) -> Process | None:
        if parent is None or isinstance(parent, Process):
            return parent
        if not isinstance(parent, str):
            raise TypeError(
                f"parent must be a Process or a process id, not {parent!r}; to run a "
                "process under a supervisor, give it a ChildSpec (sup.start_child)"
            )
        found = self._processes.get(parent)
        if found is None:
            raise ProcessNotFound(f"parent process {parent!r} is not known (it may have finished)")
        return found

    # ------------------------------------------------------- lifecycle callbacks
    def _on_started(self, proc: Process) -> None:
        self.bus.emit(
            ProcessStarted,
            process_id=proc.id,
            agent=proc.agent_name,
            run_id=proc.run_id,
            user=proc.user,
            name=proc.name,
            parent_id=proc.parent_id,
            spawn_depth=proc.spawn_depth,
            spawn_reason=proc.spawn_reason,
            task=proc.task,
        )

    def _on_restarted(self, proc: Process, crash: BaseException | None) -> None:
        if proc.name is not None and proc.name not in self._names:
            self._names[proc.name] = proc  # re-bound on restart
        self.bus.emit(
            ProcessRestarted,
            process_id=proc.id,
            agent=proc.agent_name,
            run_id=proc.run_id,
            user=proc.user,
            incarnation=proc.incarnation,
            restart_count=proc.restart_count,
            reason="error",
            detail="" if crash is None else f"{type(crash).__name__}: {crash}",
        )

    def _on_gave_up(
        self, proc: Process, reason: ExitReason, max_restarts: int, window: float
    ) -> None:
        self.bus.emit(
            SupervisorGaveUp,
            process_id=proc.id,
            agent=proc.agent_name,
            run_id=proc.run_id,
            user=proc.user,
            reason=reason.kind,
            detail=(
                f"more than {max_restarts} restart(s) within {window:g}s; "
                f"last failure: {reason.detail}"
            ),
            restart_count=proc.restart_count,
        )

    def _on_exited(self, proc: Process) -> None:
        self._live -= 1
        if proc.name is not None and self._names.get(proc.name) is proc:
            del self._names[proc.name]
        for group_name in tuple(proc._groups or ()):
            group = self._groups.get(group_name)
            if group is not None:
                group.leave(proc)
        reason = proc.exit_reason
        assert reason is not None
        self.bus.emit(
            _EXIT_EVENTS.get(reason.kind, ProcessStopped),
            process_id=proc.id,
            agent=proc.agent_name,
            run_id=proc.run_id,
            user=proc.user,
            status=str(proc.status),
            reason=reason.kind,
            detail=reason.detail,
        )
        if (
            proc.supervision is not None
            and proc.supervision.strategy == "escalate"
            and reason.abnormal  # SPEC §2.2: every exit but normal and shutdown
            and proc.parent_id is not None
        ):
            self._escalate(proc, reason)
        self._link_table.on_exit(proc)
        self._prune(proc)

    def _escalate(self, proc: Process, reason: ExitReason) -> None:
        parent = self._processes.get(proc.parent_id or "")
        if parent is None or parent.status.finished:
            return
        error = ChildFailed(
            f"child process {proc.id} ({proc.agent_name}) exited abnormally and escalated: "
            f"{reason}",
            child_id=proc.id,
        )
        error.__cause__ = reason.error
        parent._crash_from_outside(error, f"escalated from child {proc.id}")

    def _prune(self, proc: Process) -> None:
        # Drop finished processes without live descendants, walking up the tree.
        while proc.status.finished and not proc._children:
            self._processes.pop(proc.id, None)
            if proc.parent_id is None:
                return
            parent = self._processes.get(proc.parent_id)
            if parent is None:
                return
            if parent._children is not None:
                parent._children.pop(proc.id, None)
            proc = parent

    # ------------------------------------------------------------------ queries
    def get(self, process_id: str) -> Process:
        """The live process with this id.

        Raises:
            ProcessNotFound: no such live process.
        """
        proc = self._processes.get(process_id)
        if proc is None or proc.status.finished:
            raise ProcessNotFound(f"no live process with id {process_id!r}")
        return proc

    def processes(self) -> list[Process]:
        """Live processes in start order."""
        return [p for p in self._processes.values() if not p.status.finished]

    @property
    def live_count(self) -> int:
        """How many processes are live now."""
        return self._live

    def spawn_tree(self) -> list[SpawnNode]:
        """The spawn tree as nested nodes, roots and children in start order."""
        return [
            self._node(p) for p in self._processes.values() if p.parent_id not in self._processes
        ]

    def _node(self, proc: Process) -> SpawnNode:
        return SpawnNode(
            process_id=proc.id,
            agent_name=proc.agent_name,
            name=proc.name,
            task=proc.task,
            status=str(proc.status),
            spawn_depth=proc.spawn_depth,
            spawn_reason=proc.spawn_reason,
            started_at=proc.started_at,
            children=tuple(
                self._node(self._processes[c]) for c in proc._children or () if c in self._processes
            ),
        )

    # ------------------------------------------------------- links and monitors
    def link(self, a: Linkable | str, b: Linkable | str) -> None:
        """Link two processes (or supervisors, or their ids), both ways (SPEC §2.3).
        Idempotent.

        When one exits for good, the other gets its exit signal: with ``trap_exit`` set
        it arrives as an :class:`~vega_trio.ExitSignal` on ``process.signals``;
        otherwise a ``normal`` exit is ignored and any other reason — ``shutdown``
        included — kills it at once with reason ``linked`` (really cancelled; its
        supervision decides about a restart). A supervisor always traps exits: its
        owner's exit shuts it down, any other is logged and ignored. If one side is
        already gone, the other gets an exit signal with reason ``noproc`` at once.
        Links survive restarts in place. Synchronous; safe to call from tools (also
        from worker threads).

        Raises:
            TypeError: a side is neither a process, a supervisor nor an id.
            ValueError: a process belongs to another orchestrator.
        """
        self._link_table.link(a, b)

    def unlink(self, a: Linkable | str, b: Linkable | str) -> None:
        """Remove the link between ``a`` and ``b``, if any. Synchronous."""
        self._link_table.unlink(a, b)

    def monitor(self, target: Linkable | str, *, watcher: Process | None = None) -> Monitor:
        """Monitor ``target`` (a process, a supervisor, or its id); returns the
        :class:`~vega_trio.Monitor`.

        It fires exactly once, when ``target`` exits for good, with a
        :class:`~vega_trio.Down` (``await monitor.wait()``); an already-gone or unknown
        target fires at once with reason ``noproc``. With ``watcher``, the
        :class:`~vega_trio.Down` is also put on that process's signal channel, and the
        monitor is removed if the watcher exits first. Synchronous; safe in tools.

        Raises:
            TypeError: ``target`` or ``watcher`` is of the wrong kind.
            ValueError: a process belongs to another orchestrator.
        """
        return self._link_table.monitor(target, watcher)

    def demonitor(self, monitor: Monitor) -> bool:
        """Remove exactly ``monitor`` (it will never fire; its ``wait()`` raises
        :class:`~vega_trio.MonitorRemoved`). Returns ``True`` if it was still active."""
        return self._link_table.demonitor(monitor)

    # ----------------------------------------------------------------- registry
    def _check_name_free(self, name: str) -> None:
        if not name:
            raise ValueError("a process name must be a non-empty string")
        holder = self._names.get(name)
        if holder is not None and not holder.status.finished:
            raise NameTaken(
                f"the name {name!r} is taken by live process {holder.id} ({holder.agent_name}); "
                "unregister it or pick another name"
            )

    def register(self, name: str, process: Process) -> None:
        """Bind ``name`` to ``process`` until it exits (or :meth:`unregister`).

        Raises:
            NameTaken: another live process holds the name.
            ProcessNotRunning: ``process`` has finished.
            TypeError: ``process`` is not a process (a supervisor's name is its
                ``SupervisorSpec(name=...)``; it is not in the registry).
        """
        if not isinstance(process, Process):
            raise TypeError(
                f"register takes a Process, not {process!r}; supervisors are not in the "
                "name registry (find one with orch.supervisors() or keep its handle)"
            )
        process._check_open()
        if self._names.get(name) is process:
            return
        self._check_name_free(name)
        if process.name is not None and self._names.get(process.name) is process:
            del self._names[process.name]
        self._names[name] = process
        process.name = name

    def unregister(self, name: str) -> None:
        """Release ``name`` (no error if it is not bound)."""
        proc = self._names.pop(name, None)
        if proc is not None and proc.name == name:
            proc.name = None

    def lookup(self, name: str) -> Process:
        """The live process registered under ``name``.

        Raises:
            ProcessNotFound: nothing live holds the name.
        """
        proc = self._names.get(name)
        if proc is None or proc.status.finished:
            raise ProcessNotFound(f"no live process is registered as {name!r}")
        return proc

    def registered(self) -> dict[str, Process]:
        """Every bound name and its process."""
        return dict(self._names)

    # ------------------------------------------------------------------- groups
    def group(self, name: str) -> Group:
        """The group called ``name`` (created on first use)."""
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = Group(name)
        return group

    def groups(self) -> list[str]:
        """Names of the groups that exist."""
        return list(self._groups)

    # ----------------------------------------------------------------- shutdown
    async def shutdown(self, grace: float) -> None:
        """Stop every process: ask in reverse start order, wait up to ``grace``
        seconds overall, then cancel the rest. New spawns are refused from now on."""
        self._closing = True
        live = self.processes()
        deadline = trio.current_time() + grace if grace != math.inf else math.inf
        with trio.move_on_at(deadline):
            for proc in reversed(live):
                proc.stop("orchestrator shutdown")
                await proc.wait()
        for proc in reversed(live):
            if not proc.status.finished:
                proc._cancel(f"orchestrator shutdown: grace of {grace:g}s elapsed")
        for proc in live:
            await proc.wait()
