"""OpenTelemetry: GenAI spans derived from the events, with the spawn tree as parents."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from vega_trio import Agent, ErrorClass, LLMError, Supervision, open_orchestrator
from vega_trio.dsl import load_document, open_runner
from vega_trio.observability import instrument
from vega_trio.resilience import RetryPolicy
from vega_trio.testing import ScriptedLLM, Step


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory, provider
    provider.shutdown()


def _tree(spans: tuple[ReadableSpan, ...]) -> list[tuple[int, str]]:
    """(depth, name) in start order, depth-first."""
    by_id = {s.context.span_id: s for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in by_id else None, []).append(span)
    out: list[tuple[int, str]] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            out.append((depth, span.name))
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return out


async def test_team_run_gives_the_span_tree(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    """A lead delegating to a helper: the helper's invocation is under the delegate tool."""
    memory, provider = exporter
    llm = ScriptedLLM(
        [
            Step.tool_call("delegate", {"agent": "helper", "message": "find x"}),
            Step.text("x is 42"),
            Step.text("The answer is 42."),
        ]
    )
    helper = Agent(name="helper", description="finds things")
    lead = Agent(name="lead", team=[helper])
    async with open_orchestrator(llm=llm, default_model="claude-sonnet-4-5") as orch:
        instrument(orch, tracer_provider=provider)
        proc = await orch.spawn(lead)
        assert await proc.send("what is x?") == "The answer is 42."
    spans = memory.get_finished_spans()
    assert _tree(spans) == [
        (0, "invoke_agent lead"),
        (1, "chat claude-sonnet-4-5"),
        (1, "execute_tool delegate"),
        (2, "invoke_agent helper"),
        (3, "chat claude-sonnet-4-5"),
        (1, "chat claude-sonnet-4-5"),
    ]
    chat = next(s for s in spans if s.name.startswith("chat"))
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["vega.cost_usd"] > 0
    tool = next(s for s in spans if s.name == "execute_tool delegate")
    assert dict(tool.attributes or {})["gen_ai.tool.name"] == "delegate"
    invoke = next(s for s in spans if s.name == "invoke_agent lead")
    assert dict(invoke.attributes or {})["gen_ai.agent.name"] == "lead"
    for span in spans:  # children inside their parents in time
        if span.parent is not None:
            parent = next(p for p in spans if p.context.span_id == span.parent.span_id)
            assert parent.start_time is not None and span.start_time is not None
            assert parent.start_time <= span.start_time
            assert span.end_time is not None and parent.end_time is not None
            assert span.end_time <= parent.end_time


async def test_failed_llm_call_has_error_type(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    """A failed attempt is a chat span with error.type and an error status; a failed
    send marks its invocation too."""
    memory, provider = exporter
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED), Step.error(ErrorClass.AUTHENTICATION)])
    async with open_orchestrator(llm=llm) as orch:
        instrument(orch, tracer_provider=provider)
        proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=2)))
        with pytest.raises(LLMError, match=r"scripted authentication error"):
            await proc.send("hi")
    spans = memory.get_finished_spans()
    chats = [s for s in spans if s.name.startswith("chat")]
    assert [dict(s.attributes or {})["error.type"] for s in chats] == [
        "overloaded",
        "authentication",
    ]
    assert all(s.status.status_code is StatusCode.ERROR for s in chats)
    invoke = next(s for s in spans if s.name == "invoke_agent a")
    assert invoke.status.status_code is StatusCode.ERROR
    assert dict(invoke.attributes or {})["error.type"] == "authentication"


async def test_restart_is_a_span_event(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A supervised process that crashes and restarts shows process.restarted on the
    invocation that served the message again."""
    memory, provider = exporter
    llm = ScriptedLLM([Step.error(ErrorClass.TEMPORARY), Step.text("ok")])
    agent = Agent(
        name="s", retry=RetryPolicy(max_attempts=1), supervision=Supervision(max_restarts=3)
    )
    async with open_orchestrator(llm=llm) as orch:
        instrument(orch, tracer_provider=provider)
        proc = await orch.spawn(agent)
        assert await proc.send("hi") == "ok"
    invokes = [s for s in memory.get_finished_spans() if s.name == "invoke_agent s"]
    assert len(invokes) == 2
    assert [e.name for e in invokes[1].events] == ["process.restarted"]


async def test_workflow_run_and_steps_are_spans(
    exporter: tuple[InMemorySpanExporter, TracerProvider], tmp_path: Path
) -> None:
    """A workflow run is a span with its steps under it and each agent's invocation
    under its step."""
    memory, provider = exporter
    doc = load_document(
        "agents:\n  writer: {system: You write.}\n"
        "workflows:\n  report:\n    steps:\n      - writer: {send: draft, save: d}\n"
        "      - writer: polish\n"
    )
    llm = ScriptedLLM(["a draft", "polished"])
    async with open_runner(doc, llm=llm, base_dir=tmp_path) as runner:
        instrument(runner.orchestrator, tracer_provider=provider)
        result = await runner.run("report", {})
    assert result.output == "polished"
    tree = [(depth, name.split(" ")[0]) for depth, name in _tree(memory.get_finished_spans())]
    assert tree == [
        (0, "workflow"),
        (1, "workflow.step"),
        (2, "invoke_agent"),
        (3, "chat"),
        (1, "workflow.step"),
        (2, "invoke_agent"),
        (3, "chat"),
    ]


async def test_finished_processes_are_forgotten(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    """The instrumentation keeps no state for processes that have exited."""
    memory, provider = exporter
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        instrumentation = instrument(orch, tracer_provider=provider)
        for _ in range(5):
            proc = await orch.spawn(Agent(name="short"))
            await proc.send("hi")
            proc.stop()
            await proc.wait()
        instrumentation.close()
        assert instrumentation._processes == {}
    assert len([s for s in memory.get_finished_spans() if s.name == "invoke_agent short"]) == 5


def test_opentelemetry_is_not_imported_by_vega_trio() -> None:
    """Importing vega_trio (and its observability package) imports no OpenTelemetry."""
    code = (
        "import sys, vega_trio, vega_trio.observability, vega_trio.events;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
