"""OpenTelemetry through the server: a chat over HTTP gives the library's span tree
(delegate spans under their caller's), and the standard OTEL_* environment switches
tracing on for `serve()` and `vega-trio serve`."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vega_trio import Agent, open_orchestrator
from vega_trio.serve import ServeConfig, serve
from vega_trio.testing import ScriptedLLM, Step

from ..observability.test_otel import _tree
from ._helpers import collect_events, running_server

ROOT = Path(__file__).resolve().parents[2]

_OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
)

_TEAM_TREE = [
    (0, "invoke_agent lead"),
    (1, "chat claude-sonnet-4-5"),
    (1, "execute_tool delegate"),
    (2, "invoke_agent helper"),
    (3, "chat claude-sonnet-4-5"),
    (1, "chat claude-sonnet-4-5"),
]


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def memory() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


def _team_llm() -> ScriptedLLM:
    return ScriptedLLM(
        [
            Step.tool_call("delegate", {"agent": "helper", "message": "find x"}),
            Step.text("x is 42"),
            Step.text("The answer is 42."),
        ]
    )


def _define_team(orch: Any) -> None:
    helper = Agent(name="helper", description="finds things")
    orch.agents.define(Agent(name="lead", team=[helper]), source="builtin")


async def test_serve_instruments_with_the_provider_it_is_given(
    memory: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    """serve(..., tracer_provider=p): a chat streamed over HTTP (SSE) is traced into p,
    the delegate's spans under its caller's; p stays the caller's (not shut down)."""
    exporter, provider = memory
    async with open_orchestrator(llm=_team_llm(), default_model="claude-sonnet-4-5") as orch:
        _define_team(orch)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: serve(
                    orch,
                    ServeConfig(port=0),
                    shutdown_trigger=stop.wait,
                    tracer_provider=provider,
                    task_status=task_status,
                )
            )
            async with (
                httpx2.AsyncClient(base_url=urls[0], timeout=10) as client,
                client.stream(
                    "POST", "/api/agents/lead/chat/stream", json={"message": "what is x?"}
                ) as response,
            ):
                with trio.fail_after(10):
                    events = await collect_events(response)
            assert events[-1].event == "done"
            stop.set()
    assert _tree(exporter.get_finished_spans()) == _TEAM_TREE
    span = provider.get_tracer("still-open").start_span("after")  # not shut down
    assert span.is_recording()
    span.end()


async def test_the_environment_switches_tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_TRACES_EXPORTER=console (and ServeConfig.otel left to the
    environment) serve() builds the provider, logs where spans go, and flushes the
    span tree to the exporter when it stops."""
    # The console exporter writes to the sys.stdout of its import time: give it ours.
    printed = io.StringIO()
    defaults = ConsoleSpanExporter.__init__.__defaults__
    assert defaults is not None and len(defaults) == 3
    monkeypatch.setattr(
        ConsoleSpanExporter.__init__, "__defaults__", (defaults[0], printed, defaults[2])
    )
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "vega-test")
    with pytest.MonkeyPatch.context():
        import logging

        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logger = logging.getLogger("vega_trio.serve")
        logger.addHandler(handler)
        old_level = logger.level
        logger.setLevel(logging.INFO)
        try:
            async with open_orchestrator(
                llm=_team_llm(), default_model="claude-sonnet-4-5"
            ) as orch:
                _define_team(orch)
                async with running_server(orch, ServeConfig(port=0)) as server:
                    reply = await server.client.post(
                        "/api/agents/lead/chat", json={"message": "x?"}
                    )
                    assert reply.status_code == 200, reply.text
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
    assert any("OpenTelemetry: spans go to the console (stdout)" in r.getMessage() for r in records)
    spans = _console_spans(printed.getvalue())
    assert _tree_of_json(spans) == _TEAM_TREE
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"vega-test"}


async def test_without_the_environment_nothing_is_instrumented() -> None:
    """No OTEL_* variable: serve() leaves the orchestrator uninstrumented."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        async with running_server(orch, ServeConfig(port=0)):
            assert "otel" not in orch._observers


def _console_spans(text: str) -> list[dict[str, Any]]:
    """The JSON objects the console exporter printed (one per span, pretty-printed)."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while (start := text.find("{", index)) != -1:
        try:
            value, index = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(value, dict) and "context" in value and "name" in value:
            spans.append(value)
    return spans


def _tree_of_json(spans: list[dict[str, Any]]) -> list[tuple[int, str]]:
    ids = {s["context"]["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    out: list[tuple[int, str]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["start_time"]):
            out.append((depth, span["name"]))
            walk(span["context"]["span_id"], depth + 1)

    walk(None, 0)
    return out


@pytest.mark.slow
async def test_vega_trio_serve_traces_from_the_environment() -> None:
    """`vega-trio serve` with OTEL_TRACES_EXPORTER=console says where spans go on
    stderr, and after SIGINT the chat's invocation spans are on stdout; exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(ROOT), OTEL_TRACES_EXPORTER="console")
    env.pop("VEGA_TOKEN", None)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "vega_trio", "serve", "--addr", "127.0.0.1:0", "--llm", "scripted"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tempfile.mkdtemp(prefix="vega-serve-"),  # its default --db file goes there
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        out = b""
        with trio.fail_after(30):
            while b"\n" not in out:
                chunk = await proc.stdout.receive_some()
                assert chunk, "vega-trio serve exited before printing its URL"
                out += chunk
        url = out.decode().splitlines()[0].split(" on ", 1)[1].split()[0]
        async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
            chat = await client.post("/api/agents/assistant/chat", json={"message": "Hi"})
            assert chat.status_code == 200
        proc.send_signal(signal.SIGINT)
        err = b""
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:

                async def drain(stream: Any, into: list[bytes]) -> None:
                    while chunk := await stream.receive_some():
                        into.append(chunk)

                outs: list[bytes] = []
                errs: list[bytes] = []
                nursery.start_soon(drain, proc.stdout, outs)
                nursery.start_soon(drain, proc.stderr, errs)
            status = await proc.wait()
        out += b"".join(outs)
        err = b"".join(errs)
        assert status == 0, err.decode()
        assert "OpenTelemetry traces go to the console (stdout)" in err.decode()
        names = [s["name"] for s in _console_spans(out.decode())]
        assert names.count("invoke_agent assistant") == 1
        assert any(name.startswith("chat ") for name in names)
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10, shield=True):
                await proc.wait()
