"""Supervisor trees (SPEC §2.2), with the semantics of Erlang/OTP's ``supervisor.erl``.

A :class:`Supervisor` is a Trio task that owns a nursery. Its children are
processes started with :meth:`Runtime.spawn <vega_trio.runtime.Runtime.spawn>` in that
nursery, or nested supervisors started there with ``nursery.start``. A restart starts a
*new* process for the child spec (a new id, like OTP's new pid; a registered name is
bound to it). Each child incarnation has a watcher task that waits for its exit and
reports it to the supervisor over a bounded memory channel: restarts happen on the exit
event, never by polling. The supervisor serves one message at a time — child exits and
the dynamic API's requests alike — like OTP's gen_server, so no operation ever sees
another one half done.

Restarts go through the restart engine (:mod:`vega_trio.runtime._restart`, shared with
per-process supervision and MCP connections), without a backoff, as in OTP; its counting
is OTP's ``add_restart``: more than ``max_restarts`` restarts
within ``window`` seconds and the supervisor terminates its children in reverse start
order and exits with reason ``shutdown``; its parent supervisor sees that exit like any
other (a ``permanent`` child is restarted, which counts against the parent's own
intensity: escalation).

Size: the supervisor is one gen_server loop; its dynamic API (start/terminate/restart/
delete child, which_children, count_children) and the exit handling share its state and
must be read together to check OTP's semantics.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from .._collapse import raise_collapsed
from .._errors import (
    ChildNotFound,
    ChildRunning,
    ChildStartFailed,
    DuplicateChild,
    LinkedProcessError,
    RestartIntensityError,
    SupervisorNotRunning,
)
from .._handles import NoPublicConstructor
from ._events import ProcessRestarted, SupervisorGaveUp, SupervisorStarted, SupervisorStopped
from ._links import Linkable
from ._process import Behaviour, Process
from ._reason import ExitReason, ProcessStatus
from ._restart import RestartEngine, RestartIntensity
from ._supervision import Supervision

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Supervisor",
    "SupervisorSpec",
    "open_supervisor",
]

_log = logging.getLogger("vega_trio.runtime")

RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
AutoShutdown = Literal["never", "any_significant", "all_significant"]
ShutdownPolicy = float | Literal["brutal_kill", "infinity"]

_RESTART_TYPES = ("permanent", "transient", "temporary")
_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
_AUTO_SHUTDOWNS = ("never", "any_significant", "all_significant")
_WORKER_SHUTDOWN = 5.0  # OTP's default for workers (5000 ms); supervisors get infinity

# NOTE: a tree child without supervision of its own is supervised by the tree alone:
# "stop" never restarts in place (the tree starts a new process instead) but still
# makes it a supervised process, which crashes on retryable request failures (SPEC §2.1).
_TREE_ONLY = Supervision(strategy="stop")

_prefix = os.urandom(3).hex()
_counter = itertools.count(1)


def _new_supervisor_id() -> str:
    return f"s-{_prefix}-{next(_counter)}"


# ------------------------------------------------------------------------ specs
def _check_shutdown(_instance: Any, _attribute: Any, value: ShutdownPolicy | None) -> None:
    if value is None or value in ("brutal_kill", "infinity"):
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(
            f"shutdown must be 'brutal_kill', 'infinity' or a number of seconds >= 0, not {value!r}"
        )


@attrs.frozen(kw_only=True)
class ChildSpec:
    """One child of a supervisor (OTP's child specification).

    Attributes:
        id: identifies the child within its supervisor (unique there).
        start: a zero-argument factory returning a fresh
            :class:`~vega_trio.runtime.Behaviour` (called again for every restart), or
            a :class:`SupervisorSpec` for a nested supervisor.
        restart: ``permanent`` (always restarted), ``transient`` (restarted only after
            an abnormal exit: anything but ``normal`` and ``shutdown``) or
            ``temporary`` (never restarted, and removed once it has exited or was
            terminated, even by a sibling's restart).
        shutdown: how the supervisor terminates it: ``brutal_kill`` (kill at once),
            seconds to wait after asking it to stop before it is killed, or
            ``infinity``. ``None`` means OTP's default: 5 s for a worker,
            ``infinity`` for a supervisor.
        significant: the child counts for the supervisor's ``auto_shutdown`` (only for
            ``transient`` and ``temporary`` children, under a supervisor whose
            ``auto_shutdown`` is not ``never``).
        supervision: per-process supervision of a worker (restart in place first; when
            it gives up the process exits and the tree applies its strategy).
            ``escalate`` means "to this supervisor": the worker exits with its error.
            ``None``: the tree alone supervises it.
        name: a registry name bound to the worker's current process.
        run_id: the workflow run the worker's processes work for (their events carry it).
        user: the user whose session the worker's processes are (their events carry it).
    """

    id: str
    start: Callable[[], Behaviour] | SupervisorSpec
    restart: RestartType = "permanent"
    shutdown: ShutdownPolicy | None = attrs.field(default=None, validator=_check_shutdown)
    significant: bool = False
    supervision: Supervision | None = None
    name: str | None = None
    run_id: str | None = None
    user: str | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"a child id must be a non-empty string, not {self.id!r}")
        if self.restart not in _RESTART_TYPES:
            raise ValueError(
                f"child {self.id!r}: restart must be 'permanent', 'transient' or "
                f"'temporary', not {self.restart!r}"
            )
        if not isinstance(self.start, SupervisorSpec) and not callable(self.start):
            raise ValueError(
                f"child {self.id!r}: start must be a zero-argument factory returning a "
                f"Behaviour, or a SupervisorSpec; got {self.start!r}"
            )
        if self.significant and self.restart == "permanent":
            raise ValueError(
                f"child {self.id!r}: a permanent child cannot be significant (it is always "
                "restarted); make it transient or temporary"
            )
        if isinstance(self.start, SupervisorSpec) and (
            self.supervision is not None or self.name is not None
        ):
            raise ValueError(
                f"child {self.id!r} is a supervisor: supervision and name apply to workers "
                "only (name the supervisor with SupervisorSpec(name=...))"
            )

    @property
    def type(self) -> Literal["worker", "supervisor"]:
        """``supervisor`` when :attr:`start` is a :class:`SupervisorSpec`, else ``worker``."""
        return "supervisor" if isinstance(self.start, SupervisorSpec) else "worker"

    @property
    def grace(self) -> float | None:
        """Seconds the shutdown ladder waits before killing (``math.inf`` for
        ``infinity``), or ``None`` for ``brutal_kill``."""
        if self.shutdown == "brutal_kill":
            return None
        if self.shutdown == "infinity":
            return math.inf
        if self.shutdown is None:
            return math.inf if self.type == "supervisor" else _WORKER_SHUTDOWN
        return float(self.shutdown)


def _to_children(children: Iterable[ChildSpec]) -> tuple[ChildSpec, ...]:
    return tuple(children)


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """What a supervisor supervises and how (OTP's supervisor flags and child specs).

    Attributes:
        strategy: ``one_for_one`` (restart the child that exited), ``one_for_all``
            (terminate the others in reverse start order, restart all in start order)
            or ``rest_for_one`` (terminate and restart the child and those started
            after it).
        max_restarts: restarts allowed within ``window`` seconds (``-1`` unlimited,
            ``0`` none); one more and the supervisor gives up.
        window: the sliding window, in seconds.
        children: the child specs, in start order.
        auto_shutdown: ``never``, ``any_significant`` (exit when a significant child
            exits by itself and is not restarted) or ``all_significant`` (when the last
            of them has).
        name: the supervisor's name in events and :meth:`Supervisor.tree` (default:
            ``"supervisor"``, or the child id for a nested supervisor).
    """

    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    window: float = 5.0
    children: tuple[ChildSpec, ...] = attrs.field(default=(), converter=_to_children)
    auto_shutdown: AutoShutdown = "never"
    name: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy must be 'one_for_one', 'one_for_all' or 'rest_for_one', "
                f"not {self.strategy!r}"
            )
        if self.auto_shutdown not in _AUTO_SHUTDOWNS:
            raise ValueError(
                f"auto_shutdown must be 'never', 'any_significant' or 'all_significant', "
                f"not {self.auto_shutdown!r}"
            )
        RestartIntensity(self.max_restarts, self.window)  # validates both
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise ValueError(f"children must be ChildSpec instances, got {child!r}")
            if child.id in seen:
                raise ValueError(f"two children have the id {child.id!r}; ids must be unique")
            seen.add(child.id)
            self._check_child(child)

    def _check_child(self, child: ChildSpec) -> None:
        if child.significant and self.auto_shutdown == "never":
            raise ValueError(
                f"child {child.id!r} is significant but auto_shutdown is 'never'; set "
                "auto_shutdown to 'any_significant' or 'all_significant'"
            )

    async def run(  # noqa: ASYNC128 - Supervisor._run calls started()
        self,
        runtime: Runtime,
        *,
        parent: Process | None = None,
        task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run a supervisor with this spec until it exits.

        Supports ``await nursery.start(spec.run, runtime)``: ``started()`` hands back
        the :class:`Supervisor` once every child has started, in order. The task
        ends when the supervisor does: :meth:`Supervisor.shutdown`, ``auto_shutdown``,
        or cancellation (which cancels every child at once).

        Args:
            runtime: the runtime the child processes are spawned in.
            parent: the process shown as the children's parent in the spawn tree.

        Raises:
            ChildStartFailed: a child could not be started (before ``started()``; the
                children started so far were terminated in reverse start order).
            RestartIntensityError: the supervisor gave up (after ``started()``).
        """
        sup = Supervisor._new(self, runtime, parent_process=parent, parent=None)
        await sup._run(task_status=task_status)
        sup._raise_for_exit()


@attrs.frozen(kw_only=True)
class ChildInfo:
    """One row of :meth:`Supervisor.which_children` (OTP's ``{Id, Child, Type, Modules}``).

    ``process`` is the child's current process (or nested :class:`Supervisor`), or
    ``None`` when it is not running; ``restarting`` is set while a failed restart
    waits to be tried again.
    """

    id: str
    process: Process | Supervisor | None
    type: Literal["worker", "supervisor"]
    restart: RestartType
    restarting: bool = False


@attrs.frozen(kw_only=True)
class ChildCounts:
    """:meth:`Supervisor.count_children`: child specs, running children, and specs by type."""

    specs: int
    active: int
    supervisors: int
    workers: int


# ------------------------------------------------------------------- internals
@attrs.define(eq=False)
class _Child:
    """The supervisor's record of one child spec."""

    spec: ChildSpec
    current: Process | Supervisor | None = None
    restarting: bool = False
    restart_count: int = 0
    last_exit: ExitReason | None = None
    last_id: str | None = None
    watch_scope: trio.CancelScope | None = None


@attrs.define(eq=False)
class _Exited:
    """A watcher's report: ``incarnation`` of ``child`` exited with ``reason``."""

    child: _Child
    incarnation: Process | Supervisor
    reason: ExitReason


@attrs.define(eq=False)
class _Call:
    """A dynamic-API request, served by the supervisor's task in arrival order."""

    operation: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]
    done: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: Exception | None = None
    finished: bool = False

    def answer(self, result: Any = None, error: Exception | None = None) -> None:
        if self.done.is_set():
            return
        self.result, self.error, self.finished = result, error, True
        self.done.set()


@attrs.define(eq=False)
class _TryAgain:
    """A failed restart to try again once the messages that were waiting are served
    (OTP casts ``try_again_restart`` to itself so that, e.g., a shutdown gets in)."""

    child: _Child
    ahead: int


class _Wake:
    """Wakes an idle supervisor so that it sees a stop request."""


_WAKE = _Wake()

_Message = _Exited | _Call | _TryAgain | _Wake

_MAILBOX = 64


async def _shutdown_ladder(
    incarnation: Process | Supervisor, grace: float | None, detail: str
) -> ExitReason:
    """OTP's shutdown: ask, wait up to ``grace`` seconds, then kill (``None``: kill now)."""
    if grace is None:
        incarnation.kill(f"{detail} (brutal_kill)")
    elif incarnation.exit_reason is None:
        incarnation.stop(detail)
        with trio.move_on_after(grace):
            await incarnation.wait()
        if incarnation.exit_reason is None:
            incarnation.kill(f"{detail}: shutdown timeout of {grace:g}s elapsed")
    return await incarnation.wait()


# ------------------------------------------------------------------ supervisor
@attrs.define(eq=False)
class Supervisor(Linkable, metaclass=NoPublicConstructor):
    """A running supervisor: the handle :meth:`SupervisorSpec.run` and
    :func:`open_supervisor` hand back. Calling the class raises ``TypeError``.

    For links and monitors it is a process, as in OTP (SPEC §2.2): ``monitor(sup)``
    fires once when it exits, with its exit reason; ``link(sup, p)`` links both ways.
    It traps exits: an exit signal from its owner (the supervisor above it, or the
    ``parent`` process it was started with) shuts it down, any other is logged and
    ignored. When it exits, its linked peers get its exit reason like any process's.

    Attributes:
        id: unique id (``s-…``), shown in events and :meth:`tree`.
        spec: the spec it runs.
        name: its name in events, errors and :meth:`tree`.
        status: ``pending`` while its children start, ``running``, then ``stopped``
            (``failed`` if the supervisor itself crashed or its owner died abnormally,
            ``completed`` if its owner exited normally).
        exit_reason: why it exited: ``shutdown`` when it gave up or shut itself down,
            ``killed`` after :meth:`kill`, ``linked`` when its owner died abnormally.
        gave_up: whether it exited because of its restart intensity.
        restart_count: restarts counted against its intensity so far.
    """

    _public_constructor_hint = (
        "use async with open_supervisor(runtime, spec) as sup, "
        "or sup = await orch.start_supervisor(spec)"
    )

    id: str
    spec: SupervisorSpec
    name: str
    _runtime: Runtime
    _parent_process: Process | None = None
    _parent: Supervisor | None = None
    status: ProcessStatus = ProcessStatus.PENDING
    exit_reason: ExitReason | None = None
    gave_up: bool = False
    restart_count: int = 0
    started_at: float | None = None
    completed_at: float | None = None
    _children: dict[str, _Child] = attrs.field(factory=dict)
    _restarts: RestartEngine[ExitReason] = attrs.field(init=False)
    _send: trio.MemorySendChannel[_Message] = attrs.field(init=False)
    _recv: trio.MemoryReceiveChannel[_Message] = attrs.field(init=False)
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _nursery: trio.Nursery | None = None
    _stopping: ExitReason | None = None
    _last_failure: ExitReason | None = None
    _serving: _Call | None = None
    _try_again: collections.deque[_TryAgain] = attrs.field(factory=collections.deque)
    _exited: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        # NOTE: no backoff: as in OTP, a tree restarts at once (its intensity bounds it).
        self._restarts = RestartEngine(self.spec.max_restarts, self.spec.window)
        self._send, self._recv = trio.open_memory_channel[_Message](_MAILBOX)

    @classmethod
    def _new(
        cls,
        spec: SupervisorSpec,
        runtime: Runtime,
        *,
        parent_process: Process | None,
        parent: Supervisor | None,
        child_id: str | None = None,
    ) -> Supervisor:
        name = spec.name or child_id or "supervisor"
        sup = cls._create(_new_supervisor_id(), spec, name, runtime, parent_process, parent)
        for child_spec in spec.children:
            sup._children[child_spec.id] = _Child(child_spec)
        return sup

    def __repr__(self) -> str:
        return f"<Supervisor {self.id} {self.name!r} {self.spec.strategy} {self.status}>"

    # ----------------------------------------------------------------- queries
    @property
    def alive(self) -> bool:
        """Whether the supervisor is running and not on its way out."""
        return self.exit_reason is None and self._stopping is None

    @property
    def trap_exit(self) -> bool:
        """Always ``True``: a supervisor traps exits (OTP)."""
        return True

    @property
    def links(self) -> tuple[str, ...]:
        """Ids of the processes (and supervisors) linked to this one, in link order."""
        return self._runtime._link_table.links_of(self)

    @property
    def owner_id(self) -> str | None:
        """The id of its owner: the supervisor above it, else the ``parent`` process
        it was started with; ``None`` for a top-level tree without one. A linked
        owner's exit shuts this supervisor down."""
        owner = self._parent if self._parent is not None else self._parent_process
        return None if owner is None else owner.id

    def which_children(self) -> list[ChildInfo]:
        """Every child spec with its current process (or ``None``), in start order."""
        return [
            ChildInfo(
                id=child.spec.id,
                process=child.current,
                type=child.spec.type,
                restart=child.spec.restart,
                restarting=child.restarting,
            )
            for child in self._children.values()
        ]

    def count_children(self) -> ChildCounts:
        """How many child specs there are, how many run, and how many of each type."""
        children = self._children.values()
        supervisors = sum(1 for c in children if c.spec.type == "supervisor")
        return ChildCounts(
            specs=len(self._children),
            active=sum(
                1 for c in children if c.current is not None and c.current.exit_reason is None
            ),
            supervisors=supervisors,
            workers=len(self._children) - supervisors,
        )

    def child(self, child_id: str) -> Process | Supervisor | None:
        """The current process (or nested supervisor) of ``child_id``; ``None`` when it
        is not running.

        Raises:
            ChildNotFound: no child spec has this id.
        """
        return self._lookup(child_id).current

    def tree(self) -> dict[str, Any]:
        """The live supervision tree below this supervisor, JSON-friendly.

        Returns:
            ``{"id", "name", "type": "supervisor", "strategy", "status", "max_restarts",
            "window", "recent_restarts", "restart_count", "gave_up", "auto_shutdown",
            "exit_reason", "children": [...]}``; each child is ``{"id", "type",
            "restart", "significant", "status", "process_id", "name", "agent",
            "restart_count", "last_exit", "supervisor"}`` where ``supervisor`` is a
            nested supervisor's own tree (or ``None``).
        """
        return {
            "id": self.id,
            "name": self.name,
            "type": "supervisor",
            "strategy": self.spec.strategy,
            "status": str(self.status),
            "max_restarts": self.spec.max_restarts,
            "window": self.spec.window,
            "recent_restarts": self._recent_restarts(),
            "restart_count": self.restart_count,
            "gave_up": self.gave_up,
            "auto_shutdown": self.spec.auto_shutdown,
            "exit_reason": None if self.exit_reason is None else str(self.exit_reason),
            "children": [self._child_node(child) for child in self._children.values()],
        }

    def _recent_restarts(self) -> int:
        intensity = self._restarts.intensity
        try:
            now = trio.current_time()
        except RuntimeError:  # outside Trio: as of the last restart
            return intensity.recent
        return intensity.recent_at(now)

    def _child_node(self, child: _Child) -> dict[str, Any]:
        current = child.current
        if current is not None:
            status = str(current.status)
        elif child.restarting:
            status = "restarting"
        elif child.last_exit is not None:
            status = str(child.last_exit.status)
        else:
            status = str(ProcessStatus.STOPPED)
        return {
            "id": child.spec.id,
            "type": child.spec.type,
            "restart": child.spec.restart,
            "significant": child.spec.significant,
            "status": status,
            "process_id": None if current is None else current.id,
            "name": child.spec.name if current is None else current.name,
            "agent": current.agent_name if isinstance(current, Process) else None,
            "restart_count": child.restart_count,
            "last_exit": None if child.last_exit is None else str(child.last_exit),
            "supervisor": current.tree() if isinstance(current, Supervisor) else None,
        }

    # ------------------------------------------------------------- dynamic API
    async def start_child(self, spec: ChildSpec) -> Process | Supervisor:
        """Add ``spec`` as the last child and start it (OTP's ``start_child``).

        Returns:
            The child's process (or nested :class:`Supervisor`).

        Raises:
            DuplicateChild: a child with this id exists (running or not).
            ChildStartFailed: its start failed; the spec is not kept.
            ValueError: it is significant but ``auto_shutdown`` is ``never``.
            SupervisorNotRunning: the supervisor has exited.
        """
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"start_child takes a ChildSpec, not {spec!r}")
        self.spec._check_child(spec)
        result: Process | Supervisor = await self._call(self._do_start_child, spec)
        return result

    async def terminate_child(self, child_id: str) -> None:
        """Terminate the child through its shutdown ladder (OTP's ``terminate_child``).

        It is not restarted (this never triggers a restart); a ``temporary`` child's
        spec is removed, any other stays (see :meth:`restart_child`, :meth:`delete_child`).

        Raises:
            ChildNotFound: no child has this id.
            SupervisorNotRunning: the supervisor has exited.
        """
        await self._call(self._do_terminate_child, child_id)

    async def restart_child(self, child_id: str) -> Process | Supervisor:
        """Start a child that is not running again (OTP's ``restart_child``).

        Not counted against the restart intensity.

        Returns:
            The child's new process (or nested :class:`Supervisor`).

        Raises:
            ChildNotFound: no child has this id.
            ChildRunning: it is running, or a failed restart of it is pending.
            ChildStartFailed: its start failed (the spec stays).
            SupervisorNotRunning: the supervisor has exited.
        """
        result: Process | Supervisor = await self._call(self._do_restart_child, child_id)
        return result

    async def delete_child(self, child_id: str) -> None:
        """Remove the spec of a child that is not running (OTP's ``delete_child``).

        Raises:
            ChildNotFound: no child has this id.
            ChildRunning: it is running (terminate it first), or being restarted.
            SupervisorNotRunning: the supervisor has exited.
        """
        await self._call(self._do_delete_child, child_id)

    # ------------------------------------------------------------ exit signals
    def _exit_signal(self, source_id: str, agent: str, reason: ExitReason) -> None:
        # NOTE: OTP's supervisor traps exits: {'EXIT', Parent, Reason} terminates it
        # with that reason; an EXIT from anyone else is an unexpected message, logged.
        if self.exit_reason is not None:
            return
        source = f"{source_id}{f' ({agent})' if agent else ''}"
        if source_id == self.owner_id:
            if self._stopping is None:
                self._request_stop(self._owner_exit_reason(source_id, source, reason))
            return
        if self._stopping is not None or any(
            child.current is not None and child.current.id == source_id
            for child in self._children.values()
        ):
            return  # on its way out; or a child, whose exit its watcher reports
        level = logging.INFO if reason.kind in ("normal", "shutdown") else logging.WARNING
        _log.log(
            level,
            "supervisor %r (%s) ignored the exit of linked process %s: %s; a supervisor "
            "traps exits, only its owner's exit (%s) shuts it down",
            self.name,
            self.id,
            source,
            reason,
            self.owner_id or "none",
        )

    def _owner_exit_reason(self, source_id: str, source: str, reason: ExitReason) -> ExitReason:
        """The supervisor's own exit reason when its owner exited with ``reason``:
        ``normal`` and ``shutdown`` are mirrored, any other becomes ``linked`` (with
        the cause chain), as for a process killed by a link."""
        detail = f"its owner {source} exited: {reason}"
        if reason.kind in ("normal", "shutdown"):
            return ExitReason(kind=reason.kind, detail=detail)
        error = LinkedProcessError(
            f"supervisor {self.name!r} ({self.id}) shut down because {detail}",
            source=source_id,
            reason=reason,
        )
        error.__cause__ = reason.error
        return ExitReason.linked(error)

    # --------------------------------------------------------------- lifecycle
    def stop(self, detail: str = "stopped") -> None:
        """Ask the supervisor to terminate its children (each through its shutdown
        ladder, in reverse start order) and exit with reason ``shutdown``.

        Returns at once; the request in progress, if any, is finished first.
        """
        self._request_stop(ExitReason.shutdown(detail))

    def kill(self, detail: str = "killed") -> None:
        """Kill the supervisor now: every child is killed at once (deepest first),
        the supervisor's task is cancelled. Exit reason ``killed``."""
        if self.exit_reason is not None:
            return
        if self._stopping is None or self._stopping.kind != "killed":
            self._stopping = ExitReason.killed(detail)
        for child in reversed(self._children.values()):
            if child.current is not None:
                child.current.kill(f"supervisor {self.name!r} killed: {detail}")
        self._scope.cancel(reason=f"supervisor {self.name!r} killed: {detail}")

    async def shutdown(self, grace: float = math.inf) -> ExitReason:
        """Stop the supervisor; after ``grace`` seconds kill whatever still runs.

        Returns:
            The supervisor's exit reason.
        """
        return await _shutdown_ladder(self, grace if grace > 0 else None, "shutdown")

    async def wait(self) -> ExitReason:
        """Wait until the supervisor has exited; returns its exit reason."""
        await self._exited.wait()
        assert self.exit_reason is not None
        return self.exit_reason

    # ---------------------------------------------------------------- the task
    async def _run(
        self, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The supervisor's task body; ``started(self)`` once every child has started.

        Never raises for the supervisor's own exit (the reason is recorded); a start
        failure of a child is raised before ``started()`` as :class:`ChildStartFailed`.
        """
        start_error: ChildStartFailed | None = None
        crash: Exception | None = None
        self._runtime._supervisors[self.id] = self
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    try:
                        await self._start_initial()
                    except ChildStartFailed as exc:
                        start_error = exc
                    else:
                        self._on_started()
                        task_status.started(self)
                        try:
                            await self._loop()
                        except Exception as exc:  # a bug here is a crash, as in OTP
                            _log.exception("supervisor %r crashed", self.name)
                            crash = exc
                        await self._terminate_all(f"supervisor {self.name!r} is exiting")
                    # Only watchers are left; end them.
                    nursery.cancel_scope.cancel(reason=f"supervisor {self.name!r} exited")
        finally:
            self._on_exit(start_error, crash)
        if start_error is not None:
            raise start_error

    async def _start_initial(self) -> None:
        failure: ChildStartFailed | None = None
        for child in list(self._children.values()):
            try:
                await self._start(child)
            except ChildStartFailed as exc:
                failure = exc
                break
        if failure is not None:
            await self._terminate_all(f"child {failure.child_id!r} failed to start")
            raise failure

    async def _loop(self) -> None:
        recv = self._recv
        while self._stopping is None:
            message = self._next_ready() or await recv.receive()
            if isinstance(message, _Exited):
                await self._on_child_exit(message.child, message.incarnation, message.reason)
            elif isinstance(message, _Call):
                await self._serve(message)
            elif isinstance(message, _TryAgain):
                await trio.lowlevel.checkpoint()  # a start failing at once must not spin
                child = message.child
                if child.restarting and self._children.get(child.spec.id) is child:
                    await self._restart(child, child.last_exit or ExitReason.shutdown())

    def _next_ready(self) -> _Message | None:
        if not self._try_again:
            return None
        entry = self._try_again[0]
        while entry.ahead > 0:
            entry.ahead -= 1
            try:
                return self._recv.receive_nowait()
            except trio.WouldBlock:
                entry.ahead = 0
        return self._try_again.popleft()

    async def _serve(self, call: _Call) -> None:
        # NOTE: no finally here: if the supervisor is cancelled mid-way, _on_exit
        # answers the call still recorded in _serving.
        self._serving = call
        try:
            result = await call.operation(*call.args)
        except Exception as exc:
            call.answer(error=exc)
        else:
            call.answer(result)
        self._serving = None

    async def _call(self, operation: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        # NOTE: the request is served by the supervisor's task, like a gen_server call:
        # cancelling the caller does not cancel an operation already under way.
        if not self.alive:
            raise self._not_running()
        call = _Call(operation, args)
        try:
            await self._send.send(call)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._not_running() from None
        await call.done.wait()
        if call.error is not None:
            raise call.error
        if not call.finished:
            raise self._not_running()
        return call.result

    def _not_running(self) -> SupervisorNotRunning:
        reason = self.exit_reason or self._stopping
        return SupervisorNotRunning(
            f"supervisor {self.name!r} ({self.id}) is not running"
            + (f" (exit reason: {reason})" if reason is not None else "")
            + "; start a new one",
            supervisor=self.name,
        )

    # ------------------------------------------------------- starting children
    async def _start(
        self, child: _Child, *, restart_of: ExitReason | None = None, cause: str = ""
    ) -> Process | Supervisor:
        """Start a new incarnation of ``child`` and its watcher.

        Raises:
            ChildStartFailed: the factory, the spawn or the nested supervisor's start
                failed.
        """
        spec = child.spec
        assert self._nursery is not None
        incarnation: Process | Supervisor
        try:
            if isinstance(spec.start, SupervisorSpec):
                nested = Supervisor._new(
                    spec.start,
                    self._runtime,
                    parent_process=self._parent_process,
                    parent=self,
                    child_id=spec.id,
                )
                await self._nursery.start(nested._run)
                incarnation = nested
            else:
                supervision = spec.supervision or _TREE_ONLY
                if supervision.strategy == "escalate":  # escalate to the tree: exit
                    supervision = attrs.evolve(supervision, strategy="stop")
                behaviour = spec.start()
                incarnation = await self._runtime.spawn(
                    behaviour,
                    # NOTE: a behaviour may name the handle its processes get (agents:
                    # AgentProcess, with send/send_stream); the runtime stays LLM-free.
                    process_class=getattr(behaviour, "process_class", Process),
                    parent=self._parent_process,
                    reason=f"supervisor {self.name!r}: child {spec.id!r}",
                    name=spec.name,
                    supervision=supervision,
                    nursery=self._nursery,
                    run_id=spec.run_id,
                    user=spec.user,
                )
        except Exception as exc:
            raise ChildStartFailed(
                f"supervisor {self.name!r} could not start child {spec.id!r}: "
                f"{type(exc).__name__}: {exc}",
                supervisor=self.name,
                child_id=spec.id,
            ) from exc
        child.current = incarnation
        child.restarting = False
        scope = child.watch_scope = trio.CancelScope()
        self._nursery.start_soon(self._watch, child, incarnation, scope)
        if restart_of is not None:
            child.restart_count += 1
            self._runtime.bus.emit(
                ProcessRestarted,
                process_id=incarnation.id,
                agent=incarnation.agent_name,
                previous_id=child.last_id,
                child_id=spec.id,
                supervisor=self.name,
                supervisor_id=self.id,
                restart_count=child.restart_count,
                reason=restart_of.kind,
                detail=cause,
            )
        return incarnation

    async def _watch(
        self, child: _Child, incarnation: Process | Supervisor, scope: trio.CancelScope
    ) -> None:
        with scope:
            reason = await incarnation.wait()
            await self._send.send(_Exited(child, incarnation, reason))

    # ------------------------------------------------------------ child exits
    async def _on_child_exit(
        self, child: _Child, incarnation: Process | Supervisor, reason: ExitReason
    ) -> None:
        if child.current is not incarnation or self._children.get(child.spec.id) is not child:
            return  # stale: the supervisor terminated or replaced it itself
        child.current = None
        child.last_exit = reason
        child.last_id = incarnation.id
        if self._runtime._closing:
            # The orchestrator is stopping every process: follow it down, don't restart.
            self._request_stop(ExitReason.shutdown("the runtime is shutting down"))
            return
        restart = child.spec.restart
        if reason.restartable and (
            restart == "permanent" or (restart == "transient" and reason.abnormal)
        ):
            await self._restart(child, reason)
            return
        self._del_child(child)
        if self._auto_shutdown_due(child):
            self._request_stop(
                ExitReason.shutdown(
                    f"auto_shutdown={self.spec.auto_shutdown}: significant child "
                    f"{child.spec.id!r} exited ({reason})"
                )
            )

    def _auto_shutdown_due(self, child: _Child) -> bool:
        mode = self.spec.auto_shutdown
        if mode == "never" or not child.spec.significant:
            return False
        if mode == "any_significant":
            return True
        return not any(
            c.spec.significant and (c.current is not None or c.restarting)
            for c in self._children.values()
        )

    async def _restart(self, child: _Child, reason: ExitReason) -> None:
        """OTP's ``restart/2``: count the restart, then apply the strategy."""
        self._last_failure = reason
        decision = self._restarts.failure(reason, trio.current_time())
        if not decision.restart:
            self._give_up(child, reason)
            return
        self.restart_count = decision.number
        strategy = self.spec.strategy
        ordered = list(self._children.values())
        if strategy == "one_for_one":
            to_terminate: list[_Child] = []
            to_start = [child]
        elif strategy == "one_for_all":
            to_terminate = [c for c in ordered if c is not child]
            to_start = ordered
        else:
            to_start = ordered[ordered.index(child) :]
            to_terminate = to_start[1:]
        cause = f"{strategy}: child {child.spec.id!r} exited ({reason})"
        for sibling in reversed(to_terminate):
            await self._terminate(sibling, f"supervisor {self.name!r} {cause}")
        for sibling in to_terminate:
            self._del_child(sibling)  # temporary children go for good
        for member in to_start:
            if self._children.get(member.spec.id) is not member or member.current is not None:
                continue
            try:
                await self._start(member, restart_of=reason, cause=cause)
            except ChildStartFailed as exc:
                self._start_failed(member, exc)
                return

    def _start_failed(self, child: _Child, error: ChildStartFailed) -> None:
        _log.warning("%s", error, exc_info=error.__cause__)
        if self._runtime._closing:  # e.g. OrchestratorClosed, at any depth
            self._request_stop(ExitReason.shutdown("the runtime is shutting down"))
            return
        # NOTE: as OTP's try_again_restart: mark it restarting and retry through the
        # message loop, so requests that were waiting (a shutdown...) are served first.
        child.restarting = True
        child.last_exit = ExitReason.crashed(error)
        self._try_again.append(_TryAgain(child, self._recv.statistics().current_buffer_used))

    def _give_up(self, child: _Child, reason: ExitReason) -> None:
        self._del_child(child)
        self.gave_up = True
        detail = f"{self._restarts.limit()}; last: child {child.spec.id!r} exited ({reason})"
        self._runtime.bus.emit(
            SupervisorGaveUp,
            process_id=child.last_id,
            supervisor=self.name,
            supervisor_id=self.id,
            child_id=child.spec.id,
            reason=reason.kind,
            detail=detail,
            restart_count=self.restart_count,
            max_restarts=self.spec.max_restarts,
            window=self.spec.window,
        )
        self._request_stop(ExitReason.shutdown(f"reached max restart intensity: {detail}"))

    # ---------------------------------------------------- terminating children
    async def _terminate(self, child: _Child, detail: str) -> None:
        incarnation = child.current
        if incarnation is None:
            return
        if child.watch_scope is not None:
            child.watch_scope.cancel(reason=f"supervisor {self.name!r} terminates it")
        try:
            child.last_exit = await _shutdown_ladder(incarnation, child.spec.grace, detail)
        finally:
            child.current = None
            child.last_id = incarnation.id

    async def _terminate_all(self, detail: str) -> None:
        for child in reversed(list(self._children.values())):
            await self._terminate(child, detail)
        for child in list(self._children.values()):
            self._del_child(child)

    def _del_child(self, child: _Child) -> None:
        """OTP's ``del_child``: a temporary child's spec goes, any other is kept."""
        child.restarting = False
        if child.spec.restart == "temporary" and self._children.get(child.spec.id) is child:
            del self._children[child.spec.id]

    # ----------------------------------------------------------- API handlers
    def _lookup(self, child_id: str) -> _Child:
        child = self._children.get(child_id)
        if child is None:
            known = tuple(self._children)
            raise ChildNotFound(
                f"supervisor {self.name!r} has no child {child_id!r}; its children are "
                f"{', '.join(map(repr, known)) or 'none'}",
                supervisor=self.name,
                child_id=child_id,
                known_ids=known,
            )
        return child

    async def _do_start_child(self, spec: ChildSpec) -> Process | Supervisor:
        existing = self._children.get(spec.id)
        if existing is not None:
            state = "running" if existing.current is not None else "present but not running"
            raise DuplicateChild(
                f"supervisor {self.name!r} already has a child {spec.id!r} ({state}); "
                "pick another id, or delete_child it first",
                supervisor=self.name,
            )
        child = _Child(spec)
        incarnation = await self._start(child)
        self._children[spec.id] = child
        return incarnation

    async def _do_terminate_child(self, child_id: str) -> None:
        child = self._lookup(child_id)
        await self._terminate(child, f"supervisor {self.name!r}: terminate_child")
        self._del_child(child)

    async def _do_restart_child(self, child_id: str) -> Process | Supervisor:
        child = self._check_not_running(self._lookup(child_id), "restart")
        return await self._start(child)

    async def _do_delete_child(self, child_id: str) -> None:
        child = self._check_not_running(self._lookup(child_id), "delete")
        del self._children[child.spec.id]
        await trio.lowlevel.checkpoint()

    def _check_not_running(self, child: _Child, what: str) -> _Child:
        if child.current is not None or child.restarting:
            state = "running" if child.current is not None else "being restarted"
            raise ChildRunning(
                f"cannot {what} child {child.spec.id!r} of supervisor {self.name!r}: it is "
                f"{state}; terminate_child it first",
                supervisor=self.name,
            )
        return child

    # ----------------------------------------------------------- bookkeeping
    def _request_stop(self, reason: ExitReason) -> None:
        if self.exit_reason is not None:
            return
        if self._stopping is None:
            self._stopping = reason
        # NOTE: a full mailbox means the loop is not idle: it sees _stopping before
        # it takes the next message anyway.
        try:
            self._send.send_nowait(_WAKE)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _on_started(self) -> None:
        self.status = ProcessStatus.RUNNING
        self.started_at = time.time()
        self._runtime.bus.emit(
            SupervisorStarted,
            supervisor=self.name,
            supervisor_id=self.id,
            parent_supervisor_id=None if self._parent is None else self._parent.id,
            strategy=self.spec.strategy,
            children=list(self._children),
        )

    def _on_exit(self, start_error: ChildStartFailed | None, crash: Exception | None) -> None:
        # NOTE: runs in a finally block, possibly while Cancelled propagates: it must
        # stay synchronous and must answer every request still waiting.
        if crash is not None:
            reason = ExitReason.crashed(crash)
        elif self._stopping is not None:
            reason = self._stopping
        elif start_error is not None:
            reason = ExitReason.shutdown(f"failed to start: {start_error}")
        else:
            reason = ExitReason.shutdown("cancelled")
        self.exit_reason = reason
        self.status = reason.status
        self.completed_at = time.time()
        self._try_again.clear()
        for child in self._children.values():  # cancelled mid-way: nothing runs any more
            child.current = None
            child.restarting = False
        if self._serving is not None:
            self._serving.answer(error=self._not_running())
        while True:
            try:
                message = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if isinstance(message, _Call):
                message.answer(error=self._not_running())
        self._recv.close()
        self._send.close()
        if self.started_at is not None:
            self._runtime.bus.emit(
                SupervisorStopped,
                supervisor=self.name,
                supervisor_id=self.id,
                reason=reason.kind,
                detail=reason.detail,
                gave_up=self.gave_up,
            )
        # A process for links and monitors: its monitors fire, its links get the reason.
        self._runtime._supervisors.pop(self.id, None)
        self._runtime._link_table.on_exit(self)
        self._exited.set()

    def _raise_for_exit(self) -> None:
        reason = self.exit_reason
        assert reason is not None
        if self.gave_up:
            error = RestartIntensityError(
                f"supervisor {self.name!r} gave up: more than {self.spec.max_restarts} "
                f"restart(s) within {self.spec.window:g}s; its children were terminated "
                f"(supervisor id {self.id}). Fix the failing child or raise "
                "max_restarts/window",
                supervisor=self.name,
                max_restarts=self.spec.max_restarts,
                window=self.spec.window,
                supervisor_id=self.id,
            )
            last = self._last_failure
            if last is not None and last.error is not None:
                raise error from last.error
            raise error
        if reason.kind == "error" and reason.error is not None:
            raise reason.error

    @property
    def agent_name(self) -> str:
        """The supervisor's name (so it reads like a process in events)."""
        return self.name


@asynccontextmanager
async def open_supervisor(
    runtime: Runtime, spec: SupervisorSpec, *, parent: Process | None = None
) -> AsyncIterator[Supervisor]:
    """Run a supervisor for the duration of an ``async with`` block::

        async with open_supervisor(runtime, SupervisorSpec(children=[...])) as sup:
            ...

    Yields the :class:`Supervisor` once every child has started. When the block ends
    normally the supervisor shuts down: children are terminated in reverse start order,
    each through its shutdown ladder. If the block raises or is cancelled, the
    supervisor and its children are killed at once (every waiting caller is answered).

    Raises:
        ChildStartFailed: a child could not be started (the block does not run).
        RestartIntensityError: the supervisor gave up (the block is cancelled).
    """
    try:
        async with trio.open_nursery() as nursery:
            sup: Supervisor = await nursery.start(
                functools.partial(spec.run, parent=parent), runtime
            )
            try:
                yield sup
                await sup.shutdown()
            finally:
                sup.kill("the open_supervisor block raised or was cancelled")  # no-op if done
    except BaseExceptionGroup as group:
        # The supervisor's own failure, or the block's: hand it back unwrapped, with
        # its own chain (RestartIntensityError's cause is the last child failure).
        raise_collapsed(group, only_exceptions=True)
