"""Observability (SPEC §13): health alerts, Prometheus metrics, OpenTelemetry spans.

* :class:`HealthConfig` — thresholds of the ``health.alert`` monitor
  (``OrchestratorConfig(health=...)``, the DSL's ``settings.health``).
* :func:`health_status` — what ``GET /healthz`` answers: ``ok``, ``degraded`` (alerts
  going on) or ``closing``, with live processes by status.
* :func:`render_metrics` — the Prometheus text exposition of an orchestrator's metrics
  (what ``GET /metrics`` serves); the collector behind it is per orchestrator.
* :func:`instrument` — OpenTelemetry GenAI spans for an orchestrator (the
  ``vega-trio[otel]`` extra); nothing of OpenTelemetry is imported until it is called.
* :func:`tracing_from_env` — a tracer provider with the exporters the standard
  ``OTEL_*`` environment asks for (what ``vega-trio serve`` switches on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._health import HealthConfig, HealthMonitor, health_status
from ._metrics import MetricsCollector, metrics_collector, render_metrics
from ._tracing import Tracing, tracing_from_env

if TYPE_CHECKING:
    from ..orchestrator import Orchestrator

__all__ = [
    "HealthConfig",
    "HealthMonitor",
    "MetricsCollector",
    "Tracing",
    "health_status",
    "instrument",
    "metrics_collector",
    "render_metrics",
    "tracing_from_env",
]


def instrument(orch: Orchestrator, *, tracer_provider: Any = None) -> Any:
    """Emit OpenTelemetry spans for everything ``orch`` runs from now on (see
    :func:`vega_trio.observability._otel.instrument`; needs ``vega-trio[otel]``)."""
    from ._otel import instrument as _instrument

    return _instrument(orch, tracer_provider=tracer_provider)
