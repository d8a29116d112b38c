"""Health alerts (SPEC §10.3 ``health.alert``): a monitor that watches the event bus and
Trio's clock and says when a process looks stuck, loops, keeps failing or costs too much.

:class:`HealthConfig` holds the thresholds (``OrchestratorConfig(health=...)``, or the
DSL's ``settings.health``); when it is set, the orchestrator runs one
:class:`HealthMonitor` task. Each alert is emitted once per *episode* of its condition:
a stale process alerts once until it makes progress again, an error loop once until a
call succeeds, a high iteration count once per send, a cost threshold once per process
and once per agent.

The monitor only reads the bus (``llm.call``, ``tool.start``/``tool.end``,
``request.started``/``request.finished`` and the exits), so an orchestrator without it pays
nothing: the bus does not even build events nobody subscribed to.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..agent._bus_events import HealthAlert, LLMCalled, ToolEnded, ToolStarted
from ..runtime._events import (
    Event,
    EventBus,
    ProcessCompleted,
    ProcessFailed,
    ProcessStopped,
    RequestFinished,
    RequestStarted,
)

if TYPE_CHECKING:
    from ..orchestrator import Orchestrator

__all__ = ["HealthConfig", "HealthMonitor", "health_status"]


def _positive_or_none(name: str, *, whole: bool = False) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        kind = int if whole else (int, float)
        if (
            isinstance(value, bool)
            or not isinstance(value, kind)
            or (isinstance(value, float) and math.isnan(value))
            or value <= 0
        ):
            what = "a whole number of at least 1" if whole else "a number above 0"
            raise ValueError(
                f"HealthConfig.{name} must be {what} (or None to turn this alert off), "
                f"got {value!r}"
            )

    return check


def _required(name: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            raise ValueError(f"HealthConfig.{name} must be a number of seconds above 0")

    return check


def _check_ratio(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(
            "HealthConfig.max_iterations_ratio must be a fraction of max_iterations in "
            f"(0, 1] such as 0.8 (or None to turn this alert off), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class HealthConfig:
    """When to raise a ``health.alert`` (each threshold ``None``: that alert is off)::

        OrchestratorConfig(health=HealthConfig(stale_after=60, cost_usd=0.5))

    Attributes:
        stale_after: seconds a process may work on one message without an ``llm.call``
            or ``tool.*`` event before a ``stale_progress`` alert.
        max_iterations_ratio: a ``high_iterations`` alert when one send reaches this
            fraction of its process's ``max_iterations`` LLM rounds.
        consecutive_errors: an ``error_loop`` alert after this many failed LLM calls
            or tool errors in a row by one process.
        cost_usd: a ``cost`` alert when one process, or all processes of one agent
            together, have spent more than this many USD.
        check_interval: how often (seconds) busy processes are checked for
            ``stale_progress``; the alert comes at most this late.
    """

    stale_after: float | None = attrs.field(
        default=120.0, validator=_positive_or_none("stale_after")
    )
    max_iterations_ratio: float | None = attrs.field(default=0.8, validator=_check_ratio)
    consecutive_errors: int | None = attrs.field(
        default=3, validator=_positive_or_none("consecutive_errors", whole=True)
    )
    cost_usd: float | None = attrs.field(default=1.0, validator=_positive_or_none("cost_usd"))
    check_interval: float = attrs.field(
        default=1.0,
        validator=[_required("check_interval"), _positive_or_none("check_interval")],
    )


@attrs.define(eq=False)
class _Watch:
    """What the monitor knows about one process."""

    agent: str | None
    busy: bool = False
    """Serving a message (between ``request.started`` and ``request.finished``)."""
    progress_at: float = 0.0
    stale_alerted: bool = False
    errors: dict[str, int] = attrs.field(factory=dict)
    """Failures in a row, by kind (``LLM call``, ``tool call``)."""
    iteration: int = 0
    iterations_alerted: bool = False
    cost: float = 0.0
    cost_alerted: bool = False


#: The kinds of event the monitor reads.
_WATCHED = (
    RequestStarted.type,
    RequestFinished.type,
    LLMCalled.type,
    ToolStarted.type,
    ToolEnded.type,
    ProcessCompleted.type,
    ProcessFailed.type,
    ProcessStopped.type,
)


class HealthMonitor:
    """Watches one orchestrator's bus and processes and emits :class:`HealthAlert`.

    The orchestrator makes and runs one when ``OrchestratorConfig.health`` is set; it
    is not meant to be made directly.
    """

    def __init__(self, config: HealthConfig, bus: EventBus) -> None:
        self.config = config
        self._bus = bus
        self._watches: dict[str, _Watch] = {}
        self._agent_cost: dict[str, float] = {}
        self._agent_alerted: set[str] = set()

    async def run(  # noqa: ASYNC114 - started by the orchestrator only
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The monitor's task, until cancelled. Supports ``nursery.start``:
        ``started()`` once it is subscribed (so no event after that is missed)."""
        interval = self.config.check_interval
        with self._bus.subscribe(types=_WATCHED, max_buffer=10_000) as subscription:
            task_status.started()
            if self.config.stale_after is None:
                async for item in subscription:
                    if isinstance(item, Event):
                        self._on_event(item)
                return
            next_check = trio.current_time() + interval
            while True:
                with trio.move_on_at(next_check):
                    async for item in subscription:
                        if isinstance(item, Event):
                            self._on_event(item)
                    return  # the bus closed
                self.check_stale()
                next_check = trio.current_time() + interval

    # ----------------------------------------------------------------- the events
    def _watch(self, event: Event) -> _Watch:
        assert event.process_id is not None
        watch = self._watches.get(event.process_id)
        if watch is None:
            watch = self._watches[event.process_id] = _Watch(
                event.agent, progress_at=trio.current_time()
            )
        return watch

    def _on_event(self, event: Event) -> None:
        if event.process_id is None:
            return
        if isinstance(event, ProcessCompleted | ProcessFailed | ProcessStopped):
            self._watches.pop(event.process_id, None)
            return
        watch = self._watch(event)
        watch.progress_at = trio.current_time()
        watch.stale_alerted = False
        if isinstance(event, RequestStarted | RequestFinished):
            watch.busy = isinstance(event, RequestStarted)
        elif isinstance(event, LLMCalled):
            self._on_llm_call(event, watch)
        elif isinstance(event, ToolEnded):
            self._count_error(event, watch, failed=event.is_error, what="tool call")

    def _on_llm_call(self, event: LLMCalled, watch: _Watch) -> None:
        self._count_error(event, watch, failed=event.error_class is not None, what="LLM call")
        if event.error_class is not None:
            return
        self._check_iterations(event, watch)
        if event.cost_usd:
            self._add_cost(event, watch, event.cost_usd)

    def _count_error(self, event: Event, watch: _Watch, *, failed: bool, what: str) -> None:
        # NOTE: LLM failures and tool errors are two streaks: a successful LLM call
        # ends a streak of failed calls, but not a streak of tool errors (a model that
        # keeps calling a broken tool is the error loop to catch).
        if not failed:
            watch.errors.pop(what, None)
            return
        errors = watch.errors[what] = watch.errors.get(what, 0) + 1
        limit = self.config.consecutive_errors
        if limit is not None and errors == limit:
            self._alert(
                event,
                "error_loop",
                f"process {event.process_id} ({event.agent}): {errors} {what}s in a row "
                "failed; check its model, tools and inputs",
                errors,
                limit,
            )

    def _check_iterations(self, event: LLMCalled, watch: _Watch) -> None:
        ratio = self.config.max_iterations_ratio
        iteration, limit = event.iteration, event.max_iterations
        if ratio is None or iteration is None or not limit:
            return
        threshold = max(1, math.ceil(ratio * limit))
        if iteration < watch.iteration or iteration < threshold:
            watch.iterations_alerted = False  # a new send, or not there yet
        watch.iteration = iteration
        if iteration >= threshold and not watch.iterations_alerted:
            watch.iterations_alerted = True
            self._alert(
                event,
                "high_iterations",
                f"process {event.process_id} ({event.agent}) is on LLM round {iteration} of "
                f"its max_iterations {limit} for one message; it may be looping — give it a "
                "clearer task or raise max_iterations",
                iteration,
                threshold,
            )

    def _add_cost(self, event: Event, watch: _Watch, cost: float) -> None:
        limit = self.config.cost_usd
        watch.cost += cost
        if limit is None:
            return
        if watch.cost > limit and not watch.cost_alerted:
            watch.cost_alerted = True
            self._alert(
                event,
                "cost",
                f"process {event.process_id} ({event.agent}) has spent ${watch.cost:.4f}, "
                f"over the health threshold of ${limit:.4f}; set a budget to stop it",
                watch.cost,
                limit,
            )
        agent = event.agent
        if agent is None:
            return
        spent = self._agent_cost[agent] = self._agent_cost.get(agent, 0.0) + cost
        if spent > limit and agent not in self._agent_alerted:
            self._agent_alerted.add(agent)
            self._bus.emit(
                HealthAlert,
                agent=agent,
                alert="cost",
                detail=f"agent {agent!r} has spent ${spent:.4f} over all its processes, over "
                f"the health threshold of ${limit:.4f}; set a budget to stop it",
                value=spent,
                threshold=limit,
            )

    # ------------------------------------------------------------------ the clock
    def check_stale(self) -> None:
        """Alert for every process that has worked on one message for ``stale_after``
        seconds without an ``llm.call`` or ``tool.*`` event (run every
        ``check_interval`` by :meth:`run`)."""
        stale_after = self.config.stale_after
        if stale_after is None:
            return
        now = trio.current_time()
        for process_id, watch in self._watches.items():
            if not watch.busy or watch.stale_alerted:
                continue
            idle = now - watch.progress_at
            if idle >= stale_after:
                watch.stale_alerted = True
                self._bus.emit(
                    HealthAlert,
                    process_id=process_id,
                    agent=watch.agent,
                    alert="stale_progress",
                    detail=f"process {process_id} ({watch.agent}) has worked on one message "
                    f"for {idle:.0f}s without an LLM call or tool event; it may be stuck (a "
                    "hung model call or tool): check it, or kill it",
                    value=idle,
                    threshold=stale_after,
                )

    def active(self) -> list[dict[str, Any]]:
        """The alerts whose episode is still going on (a process still stale, still in
        its error loop, still on a high round, over its cost; an agent over its cost),
        as ``{"alert", "process_id", "agent"}``."""
        found: list[dict[str, Any]] = []
        limit = self.config.consecutive_errors
        for process_id, watch in self._watches.items():
            ongoing = []
            if watch.busy and watch.stale_alerted:
                ongoing.append("stale_progress")
            if watch.busy and watch.iterations_alerted:
                ongoing.append("high_iterations")
            if limit is not None and any(n >= limit for n in watch.errors.values()):
                ongoing.append("error_loop")
            if watch.cost_alerted:
                ongoing.append("cost")
            found.extend(
                {"alert": alert, "process_id": process_id, "agent": watch.agent}
                for alert in ongoing
            )
        found.extend(
            {"alert": "cost", "process_id": None, "agent": agent}
            for agent in sorted(self._agent_alerted)
        )
        return found

    def _alert(self, event: Event, alert: str, detail: str, value: float, threshold: float) -> None:
        self._bus.emit(
            HealthAlert,
            process_id=event.process_id,
            agent=event.agent,
            run_id=event.run_id,
            user=event.user,
            alert=alert,
            detail=detail,
            value=float(value),
            threshold=float(threshold),
        )


def health_status(orch: Orchestrator) -> dict[str, Any]:
    """What ``GET /healthz`` can answer: ``{"status", "closing", "live_processes",
    "processes", "monitor", "alerts"}``.

    ``status`` is ``ok``, ``degraded`` (an alert's episode is going on: ``alerts``
    lists them, see :meth:`HealthMonitor.active`) or ``closing`` (shutdown has begun);
    ``processes`` counts live processes by status; ``monitor`` says whether the health
    monitor runs (``OrchestratorConfig.health``). With a store, ``store`` is
    ``{"status", "engine", "detail", "pending_writes"}``: ``degraded`` while its writes
    fail and are retried (``detail`` says why; nothing is dropped), which makes the
    whole status ``degraded``; ``closed`` when it can no longer write;
    ``agents_not_restored`` lists the stored composed agents that could not be defined
    again at the start (``[{"name", "detail"}]``, see ``vega_trio.serve.restore_agents``).
    """
    monitor = orch._observers.get("health")
    alerts = monitor.active() if isinstance(monitor, HealthMonitor) else []
    processes: dict[str, int] = {}
    for process in orch.processes():
        processes[str(process.status)] = processes.get(str(process.status), 0) + 1
    closing = orch._stopping or orch._close_requested.is_set()
    health: dict[str, Any] = {
        "status": "closing" if closing else ("degraded" if alerts else "ok"),
        "closing": closing,
        "live_processes": sum(processes.values()),
        "processes": processes,
        "monitor": monitor is not None,
        "alerts": alerts,
    }
    persistence = orch.persistence
    if persistence is not None:
        store = persistence.store.health()
        status = store.status
        detail = store.detail
        if status == "ok" and persistence.write_error is not None:
            status, detail = "degraded", persistence.write_error
        health["store"] = {
            "status": status,
            "engine": store.engine,
            "detail": detail,
            "pending_writes": store.pending_writes + persistence.backlog,
            "agents_not_restored": [
                {"name": name, "detail": detail}
                for name, detail in persistence.unrestored_agents.items()
            ],
        }
        if status != "ok" and not closing:
            health["status"] = "degraded"
    return health
