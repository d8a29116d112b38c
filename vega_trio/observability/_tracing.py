"""Tracing switched on by the standard OpenTelemetry environment (what ``vega-trio
serve`` does, SPEC §13).

The decision follows the OpenTelemetry SDK's own auto-configuration
(``opentelemetry.sdk._configuration``) and the spec's environment variables:

* ``OTEL_SDK_DISABLED=true`` switches everything off;
* ``OTEL_TRACES_EXPORTER`` names the exporters (``otlp``, ``console``, any name
  registered under the ``opentelemetry_traces_exporter`` entry points; comma
  separated); ``none`` switches traces off;
* without it, an OTLP endpoint (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_ENDPOINT``) asks for ``otlp`` (the spec's default exporter);
* ``otlp`` means gRPC unless ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (or
  ``OTEL_EXPORTER_OTLP_PROTOCOL``) says ``http/protobuf``, as in the SDK; the
  exporter reads its endpoint, headers and timeouts from the environment itself;
* the service is named by ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``,
  else ``vega-trio``.

Nothing of OpenTelemetry is imported here until :func:`tracing_from_env` finds that
the environment asks for traces.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = ["OTEL_EXTRA_HINT", "Tracing", "exporters_from_env", "tracing_from_env"]

_log = logging.getLogger("vega_trio.observability")

OTEL_EXTRA_HINT: Final = "pip install 'vega-trio[otel]'"
"""What to run when the environment asks for traces and a piece is missing."""

_OTLP_BY_PROTOCOL: Final = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_OTLP_NAMES: Final = frozenset({"otlp", *_OTLP_BY_PROTOCOL.values()})
_PACKAGES: Final = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
    "zipkin": "opentelemetry-exporter-zipkin",
}
_DEFAULT_ENDPOINTS: Final = {
    "otlp_proto_grpc": "http://localhost:4317",
    "otlp_proto_http": "http://localhost:4318/v1/traces",
}


def _variables(env: Mapping[str, str]) -> str:
    """The ``OTEL_*`` variables that asked for traces, for messages (values of
    endpoints only: headers may hold credentials)."""
    names = (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    return ", ".join(f"{name}={env[name]}" for name in names if env.get(name, "").strip())


def exporters_from_env(env: Mapping[str, str]) -> list[str]:
    """The trace exporters ``env`` asks for, as entry-point names (``otlp_proto_grpc``,
    ``console``, ...); empty when it asks for none (see the module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        if not (endpoint or "").strip():
            return []
        names = "otlp"
    if names.lower() == "none":
        return []
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    ).strip()
    found: list[str] = []
    for raw in names.split(","):
        name = raw.strip()
        if not name or name.lower() == "none":
            continue
        if name == "otlp":
            name = _OTLP_BY_PROTOCOL.get(protocol or "grpc", "")
            if not name:
                _log.warning(
                    "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not a protocol the OTLP trace "
                    "exporter speaks (grpc or http/protobuf); using grpc",
                    protocol,
                )
                name = "otlp_proto_grpc"
        if name not in found:
            found.append(name)
    return found


@attrs.define(eq=False)
class Tracing:
    """A tracer provider built from the environment, with where its spans go.

    Attributes:
        provider: the OpenTelemetry SDK ``TracerProvider`` (give it to
            :func:`~vega_trio.observability.instrument`).
        destination: where the spans go, for people (``OTLP (grpc) to
            http://collector:4317``, ``the console (stdout)``).
    """

    provider: Any
    destination: str

    def shutdown(self) -> None:
        """Export what is still buffered, then stop the exporters (blocking: call it
        from a worker thread in async code)."""
        self.provider.shutdown()


def _destination(name: str, env: Mapping[str, str]) -> str:
    if name in _DEFAULT_ENDPOINTS:
        endpoint = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or _DEFAULT_ENDPOINTS[name]
        ).strip()
        protocol = "grpc" if name == "otlp_proto_grpc" else "http/protobuf"
        return f"OTLP ({protocol}) to {endpoint}"
    if name == "console":
        return "the console (stdout)"
    return f"the {name!r} exporter"


def tracing_from_env(env: Mapping[str, str] | None = None) -> Tracing | None:
    """A tracer provider with the exporters ``env`` (default ``os.environ``) asks
    for, or ``None`` when it asks for none.

    A missing piece is a warning, not an error (the server runs without traces):
    the OpenTelemetry SDK not installed, or an exporter that is not, or that fails
    to start; each warning says what to install or set.
    """
    env = os.environ if env is None else env
    names = exporters_from_env(env)
    if not names:
        return None
    try:
        from importlib.metadata import entry_points

        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _log.warning(
            "the environment asks for OpenTelemetry traces (%s) but the OpenTelemetry "
            "SDK is not installed: %s; running without traces",
            _variables(env),
            OTEL_EXTRA_HINT,
        )
        return None
    processors: list[Any] = []
    destinations: list[str] = []
    for name in names:
        found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
        if not found:
            package = _PACKAGES.get(name)
            where = f"the package {package}" if package else f"a package that provides {name!r}"
            hint = f"{OTEL_EXTRA_HINT} (or pip install {package})" if package else "install it"
            _log.warning(
                "the environment asks for OpenTelemetry traces through the %r exporter "
                "(%s), which is not installed: it comes with %s; %s",
                name,
                _variables(env),
                where,
                hint,
            )
            continue
        try:
            exporter = found[0].load()()
        except Exception as exc:  # a broken exporter must not stop the server
            _log.warning(
                "the OpenTelemetry %r trace exporter could not start (%s: %s); check "
                "its OTEL_EXPORTER_* variables",
                name,
                type(exc).__name__,
                exc,
            )
            continue
        processors.append(BatchSpanProcessor(exporter))
        destinations.append(_destination(name, env))
    if not processors:
        return None
    named = env.get("OTEL_SERVICE_NAME", "").strip()
    resource = Resource.create({SERVICE_NAME: named} if named else None)
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        # NOTE: OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins.
        resource = resource.merge(Resource({SERVICE_NAME: "vega-trio"}))
    provider = TracerProvider(resource=resource)
    for processor in processors:
        provider.add_span_processor(processor)
    return Tracing(provider=provider, destination=" and ".join(destinations))
