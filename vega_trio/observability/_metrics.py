"""Prometheus metrics of one orchestrator (SPEC §13, what ``GET /metrics`` serves).

:func:`render_metrics` gives the text exposition and its content type. Behind it is one
:class:`MetricsCollector` per orchestrator with its own ``CollectorRegistry`` (nothing
goes into prometheus_client's global registry, so several orchestrators — several
servers in one test — never mix their numbers). The collector reads live state (process
statuses, bus subscribers) when scraped, and counts ``llm.call``, ``tool.end``,
``process.*``, ``supervisor.gave_up`` and ``health.alert`` events through a bus
subscription it owns, from the moment it is attached (:func:`metrics_collector`;
``vega-trio serve`` attaches it when it starts).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ..agent._bus_events import HealthAlert, LLMCalled, ToolEnded
from ..runtime._events import (
    Event,
    Lagged,
    ProcessCompleted,
    ProcessFailed,
    ProcessRestarted,
    ProcessStopped,
    Subscription,
    SupervisorGaveUp,
)

if TYPE_CHECKING:
    from ..orchestrator import Orchestrator

__all__ = ["MetricsCollector", "metrics_collector", "render_metrics"]

_COUNTED = (
    LLMCalled.type,
    ToolEnded.type,
    ProcessCompleted.type,
    ProcessFailed.type,
    ProcessStopped.type,
    ProcessRestarted.type,
    SupervisorGaveUp.type,
    HealthAlert.type,
)

_TOKEN_KINDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_write", "cache_creation_input_tokens"),
    ("cache_read", "cache_read_input_tokens"),
)


def _label(value: str | None) -> str:
    return value or ""


class MetricsCollector:
    """The metrics of one orchestrator, in a ``CollectorRegistry`` of its own.

    Get it with :func:`metrics_collector` (made on first use); :attr:`registry` is what
    to expose (``prometheus_client.generate_latest(collector.registry)``).
    """

    def __init__(self, orch: Orchestrator) -> None:
        from prometheus_client import CollectorRegistry

        self._orch = orch
        self.registry = CollectorRegistry(auto_describe=False)
        self._llm_calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self._llm_errors: collections.Counter[tuple[str, str]] = collections.Counter()
        self._tokens: collections.Counter[tuple[str, str]] = collections.Counter()
        self._cost: collections.defaultdict[str, float] = collections.defaultdict(float)
        self._tools: collections.Counter[tuple[str, str]] = collections.Counter()
        self._exits: collections.Counter[str] = collections.Counter()
        self._restarts: collections.Counter[str] = collections.Counter()
        self._give_ups: collections.Counter[str] = collections.Counter()
        self._alerts: collections.Counter[str] = collections.Counter()
        self.events_missed = 0
        """Events this collector lost because its buffer was full (its own lag)."""
        self._stack = ExitStack()
        self._subscription: Subscription = self._stack.enter_context(
            orch.events.subscribe(types=_COUNTED, max_buffer=100_000)
        )
        self.registry.register(self)
        # NOTE: the subscription is drained by a task of the orchestrator's nursery (so
        # its buffer never fills between scrapes) and once more at every scrape (so a
        # scrape sees every event published before it).
        orch._runtime._nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        try:
            async for item in self._subscription:
                self._count(item)
        finally:
            self._stack.close()

    def drain(self) -> None:
        """Count every event received so far (:func:`render_metrics` calls this)."""
        while (item := self._subscription.receive_nowait()) is not None:
            self._count(item)

    def _count(self, item: Event | Lagged) -> None:
        if isinstance(item, Lagged):
            self.events_missed += item.missed
        elif isinstance(item, LLMCalled):
            model = _label(item.model)
            if item.error_class is None:
                self._llm_calls[model, "ok"] += 1
                for kind, name in _TOKEN_KINDS:
                    self._tokens[model, kind] += getattr(item, name) or 0
                self._cost[model] += item.cost_usd or 0.0
            else:
                self._llm_calls[model, "error"] += 1
                self._llm_errors[model, item.error_class] += 1
        elif isinstance(item, ToolEnded):
            self._tools[item.tool, "error" if item.is_error else "ok"] += 1
        elif isinstance(item, ProcessCompleted | ProcessFailed | ProcessStopped):
            self._exits[item.status or item.type.rpartition(".")[2]] += 1
        elif isinstance(item, ProcessRestarted):
            self._restarts[_label(item.agent)] += 1
        elif isinstance(item, SupervisorGaveUp):
            self._give_ups[_label(item.supervisor or item.agent)] += 1
        elif isinstance(item, HealthAlert):
            self._alerts[item.alert] += 1

    # ------------------------------------------------------------ prometheus_client
    def describe(self) -> list[Any]:
        """Nothing up front (the families depend on what happened)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families (prometheus_client's custom-collector protocol)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        self.drain()
        orch = self._orch
        runtime = orch._runtime
        statuses: collections.Counter[str] = collections.Counter(
            str(p.status) for p in runtime.processes()
        )
        live = GaugeMetricFamily("vega_processes", "Live processes by status.", labels=["status"])
        for status in ("pending", "running"):
            statuses.setdefault(status, 0)
        for status, count in sorted(statuses.items()):
            live.add_metric([status], count)
        yield live
        yield CounterMetricFamily(
            "vega_processes_spawned", "Processes spawned.", value=runtime.total_spawned
        )
        yield self._counter(
            "vega_process_exits", "Processes that ended, by final status.", ["status"], self._exits
        )
        yield self._counter(
            "vega_process_restarts", "Process restarts, by agent.", ["agent"], self._restarts
        )
        yield self._counter(
            "vega_supervisor_give_ups",
            "Supervisions and supervisors that gave up (restart intensity exceeded).",
            ["supervisor"],
            self._give_ups,
        )
        yield self._counter(
            "vega_llm_calls",
            "LLM calls by model and outcome (ok, or error for each failed attempt).",
            ["model", "outcome"],
            self._llm_calls,
        )
        yield self._counter(
            "vega_llm_call_errors",
            "Failed LLM call attempts by model and error class.",
            ["model", "error_class"],
            self._llm_errors,
        )
        yield self._counter(
            "vega_llm_tokens",
            "Tokens of successful LLM calls by model and kind "
            "(input, output, cache_write, cache_read).",
            ["model", "kind"],
            self._tokens,
        )
        yield self._counter(
            "vega_llm_cost_usd", "Cost of LLM calls in USD by model.", ["model"], self._cost
        )
        yield self._counter(
            "vega_tool_calls",
            "Tool calls by tool and outcome (ok, error).",
            ["tool", "outcome"],
            self._tools,
        )
        yield self._counter(
            "vega_health_alerts", "health.alert events by alert.", ["alert"], self._alerts
        )
        bus = orch.events
        yield CounterMetricFamily(
            "vega_events_published", "Events published on the bus.", value=bus.published
        )
        subscribers = list(bus._subscribers)
        yield GaugeMetricFamily(
            "vega_event_subscribers", "Current event-bus subscribers.", value=len(subscribers)
        )
        yield GaugeMetricFamily(
            "vega_event_subscriber_backlog",
            "Events buffered and not yet read, summed over the current subscribers.",
            value=sum(len(s._buffer) for s in subscribers),
        )
        yield GaugeMetricFamily(
            "vega_event_subscriber_backlog_max",
            "The largest backlog of one current subscriber.",
            value=max((len(s._buffer) for s in subscribers), default=0),
        )
        yield GaugeMetricFamily(
            "vega_event_subscriber_dropped",
            "Events the current subscribers lost to a full buffer (reported to them as lagged).",
            value=sum(s.dropped_total for s in subscribers),
        )
        yield CounterMetricFamily(
            "vega_cost_usd", "Total spend in USD (every agent).", value=orch.budget.spent
        )

    @staticmethod
    def _counter(
        name: str, documentation: str, labels: list[str], values: Mapping[Any, float]
    ) -> Any:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(name, documentation, labels=labels)
        for key, value in sorted(values.items()):
            family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
        return family


def metrics_collector(orch: Orchestrator) -> MetricsCollector:
    """The :class:`MetricsCollector` of ``orch``, attached on first call: events are
    counted from then on (call it when the orchestrator opens to count everything)."""
    collector = orch._observers.get("metrics")
    if collector is None:
        collector = orch._observers["metrics"] = MetricsCollector(orch)
    assert isinstance(collector, MetricsCollector)
    return collector


def render_metrics(orch: Orchestrator) -> tuple[bytes, str]:
    """``orch``'s metrics in the Prometheus text format, and the content type to serve
    them with (what ``GET /metrics`` answers)::

        body, content_type = render_metrics(orch)

    The first call attaches the collector (:func:`metrics_collector`).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    collector = metrics_collector(orch)
    return generate_latest(collector.registry), CONTENT_TYPE_LATEST
