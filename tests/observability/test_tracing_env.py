"""The standard OTEL_* environment decides whether (and where) spans are exported,
as the OpenTelemetry SDK's auto-configuration decides; a missing piece is a warning
that says what to install."""

from __future__ import annotations

import logging
import sys

import pytest

from vega_trio.observability import tracing_from_env
from vega_trio.observability._tracing import exporters_from_env


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_grpc"]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ["otlp_proto_http"],
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ["otlp_proto_http"],
        ),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp_proto_grpc"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp_proto_grpc"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp_proto_grpc"]),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"},
            [],
        ),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "x=1"}, []),
    ],
)
def test_exporters_follow_the_otel_conventions(env: dict[str, str], expected: list[str]) -> None:
    """OTEL_TRACES_EXPORTER names the exporters (none: off); an OTLP endpoint alone
    asks for otlp; otlp is gRPC unless the (traces) protocol says http/protobuf;
    OTEL_SDK_DISABLED wins."""
    assert exporters_from_env(env) == expected


def test_no_variable_means_no_tracing() -> None:
    """Without OTEL_* variables nothing is built."""
    assert tracing_from_env({}) is None


def test_console_exporter_from_the_environment() -> None:
    """OTEL_TRACES_EXPORTER=console gives an SDK provider exporting to the console,
    named after OTEL_SERVICE_NAME."""
    tracing = tracing_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "svc"})
    assert tracing is not None
    try:
        assert tracing.destination == "the console (stdout)"
        assert tracing.provider.resource.attributes["service.name"] == "svc"
    finally:
        tracing.shutdown()


def test_the_service_is_vega_trio_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a service name in the environment the spans' service is vega-trio."""
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    tracing = tracing_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing is not None
    try:
        assert tracing.provider.resource.attributes["service.name"] == "vega-trio"
    finally:
        tracing.shutdown()


def test_missing_sdk_is_a_warning_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The environment asks for traces but the SDK is not installed: no tracing, and
    a warning telling the user to pip install 'vega-trio[otel]'."""
    for name in list(sys.modules):
        if name.startswith("opentelemetry.sdk"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # import fails
    with caplog.at_level(logging.WARNING, logger="vega_trio.observability"):
        assert tracing_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) is None
    [record] = caplog.records
    message = record.getMessage()
    assert "pip install 'vega-trio[otel]'" in message
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317" in message


def test_missing_exporter_is_a_warning_naming_its_package(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """otlp asked for, its exporter package not installed: a warning naming the
    package and the extra; with no other exporter, no tracing."""
    import importlib.metadata

    real = importlib.metadata.entry_points

    def without_otlp(**selection: str) -> object:
        if selection.get("name", "").startswith("otlp"):
            return []
        return real(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", without_otlp)
    with caplog.at_level(logging.WARNING, logger="vega_trio.observability"):
        tracing = tracing_from_env(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        )
    assert tracing is None
    [record] = caplog.records
    message = record.getMessage()
    assert "opentelemetry-exporter-otlp-proto-http" in message
    assert "pip install 'vega-trio[otel]'" in message
