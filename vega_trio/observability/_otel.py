"""OpenTelemetry spans of an orchestrator (SPEC §13), derived from its typed events.

:func:`instrument` subscribes to the bus and turns events into GenAI
semantic-convention spans, with the times the events carry:

* ``invoke_agent <agent>``: one message served by an agent process
  (``request.started`` → ``request.finished``);
* ``chat <model>``: each LLM call attempt (``llm.call``; its latency gives the start);
* ``execute_tool <tool>``: each tool call (``tool.start`` → ``tool.end``);
* ``workflow <name>`` and ``workflow.step <path>``: workflow runs and their steps;
* ``process.restarted`` and ``supervisor.gave_up``: span events on the operation
  they interrupted.

Parents come from the spawn tree: a delegate's invocation is a child of its caller's
``execute_tool delegate`` span (the one naming that agent), an agent step's invocation
a child of its step's span. This module imports OpenTelemetry; nothing imports it
until :func:`instrument` is called, so an orchestrator that is not instrumented pays
nothing (the bus does not build events nobody subscribed to).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, cast

import attrs
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._version import __version__
from ..agent._bus_events import LLMCalled, ToolEnded, ToolStarted
from ..runtime._events import (
    Event,
    Lagged,
    ProcessCompleted,
    ProcessFailed,
    ProcessRestarted,
    ProcessStarted,
    ProcessStopped,
    RequestFinished,
    RequestStarted,
    Subscription,
    SupervisorGaveUp,
)

if TYPE_CHECKING:
    from ..dsl._events import (
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowInterrupted,
        WorkflowStarted,
        WorkflowStepStatus,
    )
    from ..orchestrator import Orchestrator

__all__ = ["Instrumentation", "instrument"]

_TYPES = (
    ProcessStarted.type,
    ProcessCompleted.type,
    ProcessFailed.type,
    ProcessStopped.type,
    RequestStarted.type,
    RequestFinished.type,
    ProcessRestarted.type,
    SupervisorGaveUp.type,
    LLMCalled.type,
    ToolStarted.type,
    ToolEnded.type,
    "workflow.*",
)

_DELEGATE_TOOL = "delegate"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@attrs.define(eq=False)
class _ToolSpan:
    span: Span
    tool: str
    arguments: Mapping[str, Any]


@attrs.define(eq=False)
class _ProcessState:
    agent: str | None
    parent_id: str | None
    invoke: Span | None = None
    invoke_parent: Span | None = None
    tools: dict[str, _ToolSpan] = attrs.field(factory=dict)
    pending: list[tuple[str, dict[str, Any], int]] = attrs.field(factory=list)
    """Span events (restarts) waiting for the process's next invocation."""


class Instrumentation:
    """An orchestrator's OpenTelemetry instrumentation (made by :func:`instrument`).

    Attributes:
        tracer: the tracer the spans are made with.
    """

    def __init__(self, orch: Orchestrator, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self._orch = orch
        self._stack = ExitStack()
        self._subscription: Subscription = self._stack.enter_context(
            orch.events.subscribe(types=_TYPES, max_buffer=100_000)
        )
        self._processes: dict[str, _ProcessState] = {}
        self._runs: dict[str, Span] = {}
        self._steps: dict[tuple[str, str], tuple[Span, str | None]] = {}
        self.events_missed = 0
        """Events lost because this subscriber's buffer was full."""
        orch._runtime._nursery.start_soon(self._run)

    async def _run(self) -> None:
        try:
            async for item in self._subscription:
                self._handle(item)
        finally:
            self.close()

    def close(self) -> None:
        """Stop: handle what is buffered, then end every span still open (marked
        ``vega.incomplete``)."""
        while (item := self._subscription.receive_nowait()) is not None:
            self._handle(item)
        self._stack.close()
        now = _ns(time.time())
        open_spans: list[Span] = []
        for state in self._processes.values():
            open_spans.extend(t.span for t in state.tools.values())
            if state.invoke is not None:
                open_spans.append(state.invoke)
            state.tools.clear()
            state.invoke = None
        open_spans.extend(span for span, _ in self._steps.values())
        open_spans.extend(self._runs.values())
        self._steps.clear()
        self._runs.clear()
        for span in open_spans:
            span.set_attribute("vega.incomplete", True)
            span.end(end_time=now)

    # ------------------------------------------------------------------- events
    def _handle(self, item: Event | Lagged) -> None:
        if isinstance(item, Lagged):
            self.events_missed += item.missed
            return
        handler = _HANDLERS.get(item.type)
        if handler is not None:
            handler(self, item)

    def _state(self, process_id: str, agent: str | None) -> _ProcessState:
        state = self._processes.get(process_id)
        if state is None:
            parent_id = None
            try:
                parent_id = self._orch.get(process_id).parent_id
            except Exception:  # already gone: no parent to find
                parent_id = None
            state = self._processes[process_id] = _ProcessState(agent, parent_id)
        return state

    def _started(self, event: ProcessStarted) -> None:
        if event.process_id is not None:
            self._processes[event.process_id] = _ProcessState(event.agent, event.parent_id)

    def _exited(self, event: ProcessCompleted | ProcessFailed | ProcessStopped) -> None:
        # NOTE: forget the process (a long-running server spawns without end); what it
        # still had open ends here, marked incomplete.
        state = self._processes.pop(event.process_id or "", None)
        if state is None:
            return
        at = _ns(event.timestamp)
        for span in [*(t.span for t in state.tools.values()), state.invoke]:
            if span is not None:
                span.set_attribute("vega.incomplete", True)
                span.end(end_time=at)

    def _invocation_parent(self, state: _ProcessState) -> Span | None:
        caller = self._processes.get(state.parent_id) if state.parent_id else None
        if caller is not None:
            tools = list(caller.tools.values())
            for tool in reversed(tools):
                if tool.tool == _DELEGATE_TOOL and tool.arguments.get("agent") == state.agent:
                    return tool.span
            if tools:
                return tools[-1].span
            if caller.invoke is not None:
                return caller.invoke
        for span, agent in reversed(list(self._steps.values())):
            if agent is not None and agent == state.agent:
                return span
        return None

    def _busy(self, event: RequestStarted) -> None:
        assert event.process_id is not None
        state = self._state(event.process_id, event.agent)
        parent = self._invocation_parent(state)
        span = self.tracer.start_span(
            f"invoke_agent {event.agent}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.INTERNAL,
            start_time=_ns(event.timestamp),
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": event.agent or "",
                "vega.process_id": event.process_id,
            },
        )
        for name, attributes, at in state.pending:
            span.add_event(name, attributes, timestamp=at)
        state.pending.clear()
        state.invoke, state.invoke_parent = span, parent

    def _idle(self, event: RequestFinished) -> None:
        state = self._processes.get(event.process_id or "")
        if state is None or state.invoke is None:
            return
        span, state.invoke = state.invoke, None
        span.set_attribute("vega.outcome", event.outcome)
        if event.outcome == "error":
            span.set_attribute("error.type", event.error_class or "error")
            span.set_status(Status(StatusCode.ERROR, event.error or None))
        span.end(end_time=_ns(event.timestamp))

    def _llm_call(self, event: LLMCalled) -> None:
        state = self._processes.get(event.process_id or "")
        parent = state.invoke if state is not None else None
        end = event.timestamp
        start = end - (event.latency_ms or 0) / 1000
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": event.model or "",
        }
        if event.agent:
            attributes["gen_ai.agent.name"] = event.agent
        for key, value in (
            ("gen_ai.usage.input_tokens", event.input_tokens),
            ("gen_ai.usage.output_tokens", event.output_tokens),
            ("vega.cost_usd", event.cost_usd),
            ("vega.attempt", event.attempt),
            ("vega.iteration", event.iteration),
        ):
            if value is not None:
                attributes[key] = value
        if event.error_class is not None:
            attributes["error.type"] = event.error_class
            if event.status_code is not None:
                attributes["http.response.status_code"] = event.status_code
        span = self.tracer.start_span(
            f"chat {event.model}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.CLIENT,
            start_time=_ns(start),
            attributes=attributes,
        )
        if event.error_class is not None:
            span.set_status(Status(StatusCode.ERROR, event.error or None))
        span.end(end_time=_ns(end))

    def _tool_start(self, event: ToolStarted) -> None:
        assert event.process_id is not None
        state = self._state(event.process_id, event.agent)
        parent = state.invoke
        span = self.tracer.start_span(
            f"execute_tool {event.tool}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.INTERNAL,
            start_time=_ns(event.timestamp),
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": event.tool,
                "gen_ai.tool.call.id": event.tool_call_id,
            },
        )
        state.tools[event.tool_call_id] = _ToolSpan(span, event.tool, dict(event.arguments))

    def _tool_end(self, event: ToolEnded) -> None:
        state = self._processes.get(event.process_id or "")
        tool = state.tools.pop(event.tool_call_id, None) if state is not None else None
        if tool is None:
            return
        if event.is_error:
            tool.span.set_attribute("error.type", "tool_error")
            tool.span.set_status(Status(StatusCode.ERROR, event.result[:200]))
        tool.span.end(end_time=_ns(event.timestamp))

    def _supervision(self, event: ProcessRestarted | SupervisorGaveUp) -> None:
        attributes: dict[str, Any] = {"vega.reason": event.reason, "vega.detail": event.detail}
        attributes["vega.restart_count"] = event.restart_count
        if event.process_id:
            attributes["vega.process_id"] = event.process_id
        at = _ns(event.timestamp)
        state = self._processes.get(event.process_id or "")
        target = None
        if state is not None:
            target = state.invoke or state.invoke_parent
            if target is not None and not target.is_recording():
                target = None
        if target is None and state is not None and isinstance(event, ProcessRestarted):
            state.pending.append((event.type, attributes, at))  # on its next invocation
            return
        if target is None:
            span = self.tracer.start_span(
                f"{event.type} {event.agent or event.supervisor or ''}".strip(), start_time=at
            )
            span.add_event(event.type, attributes, timestamp=at)
            span.end(end_time=at)
            return
        target.add_event(event.type, attributes, timestamp=at)

    # ---------------------------------------------------------------- workflows
    def _workflow_started(self, event: WorkflowStarted) -> None:
        if event.run_id is None:
            return
        self._runs[event.run_id] = self.tracer.start_span(
            f"workflow {event.workflow}",
            start_time=_ns(event.timestamp),
            attributes={
                "gen_ai.operation.name": "invoke_workflow",
                "vega.workflow": event.workflow,
                "vega.run_id": event.run_id,
            },
        )

    def _workflow_ended(
        self, event: WorkflowCompleted | WorkflowFailed | WorkflowInterrupted
    ) -> None:
        span = self._runs.pop(event.run_id or "", None)
        if span is None:
            return
        span.set_attribute("vega.cost_usd", event.cost_usd)
        span.set_attribute("gen_ai.usage.input_tokens", event.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", event.output_tokens)
        if event.type == "workflow.failed":
            failed = cast("WorkflowFailed", event)
            span.set_attribute("error.type", failed.error_class or "error")
            span.set_status(Status(StatusCode.ERROR, failed.error[:200]))
        elif event.type == "workflow.interrupted":
            span.set_attribute("vega.outcome", "interrupted")
        span.end(end_time=_ns(event.timestamp))

    def _step(self, event: WorkflowStepStatus) -> None:
        run_id = event.run_id or ""
        key = (run_id, event.path)
        if event.status == "started":
            parent = self._step_parent(run_id, event.path)
            span = self.tracer.start_span(
                f"workflow.step {event.path}",
                context=trace.set_span_in_context(parent) if parent is not None else None,
                start_time=_ns(event.timestamp),
                attributes={
                    "vega.run_id": run_id,
                    "vega.step.path": event.path,
                    "vega.step.type": event.step,
                    **({"gen_ai.agent.name": event.agent} if event.agent else {}),
                },
            )
            self._steps[key] = (span, event.agent if event.step == "agent" else None)
            return
        found = self._steps.pop(key, None)
        if found is None:
            return
        span = found[0]
        if event.status == "failed":
            span.set_attribute("error.type", "step_failed")
            span.set_status(Status(StatusCode.ERROR, event.detail[:200]))
        span.end(end_time=_ns(event.timestamp))

    def _step_parent(self, run_id: str, path: str) -> Span | None:
        best: tuple[int, Span] | None = None
        for (run, other), (span, _) in self._steps.items():
            # NOTE: ``steps[1]`` is not an ancestor of ``steps[10]``: match on a dot.
            inside = run == run_id and path.startswith(other + ".")
            if inside and (best is None or len(other) > best[0]):
                best = (len(other), span)
        return best[1] if best is not None else self._runs.get(run_id)


# Keyed by the event's ``type`` (SPEC §10.3), the name every subscriber matches on. The workflow
# kinds are named, not imported: the DSL is a layer above observability (the orchestrator opens
# the health monitor, and the DSL builds an orchestrator), so its classes are only annotations.
_HANDLERS: dict[str, Any] = {
    ProcessStarted.type: Instrumentation._started,
    ProcessCompleted.type: Instrumentation._exited,
    ProcessFailed.type: Instrumentation._exited,
    ProcessStopped.type: Instrumentation._exited,
    RequestStarted.type: Instrumentation._busy,
    RequestFinished.type: Instrumentation._idle,
    ProcessRestarted.type: Instrumentation._supervision,
    SupervisorGaveUp.type: Instrumentation._supervision,
    LLMCalled.type: Instrumentation._llm_call,
    ToolStarted.type: Instrumentation._tool_start,
    ToolEnded.type: Instrumentation._tool_end,
    "workflow.started": Instrumentation._workflow_started,
    "workflow.completed": Instrumentation._workflow_ended,
    "workflow.failed": Instrumentation._workflow_ended,
    "workflow.interrupted": Instrumentation._workflow_ended,
    "workflow.step": Instrumentation._step,
}


def instrument(orch: Orchestrator, *, tracer_provider: Any = None) -> Instrumentation:
    """Make OpenTelemetry spans of everything ``orch`` runs from now on (needs the
    ``vega-trio[otel]`` extra)::

        from vega_trio.observability import instrument
        instrument(orch)  # the global tracer provider, or pass tracer_provider=...

    Calling it again returns the same :class:`Instrumentation`. Spans of what is still
    running when the orchestrator closes are ended then (``vega.incomplete``).

    Args:
        orch: the orchestrator (open).
        tracer_provider: the provider to use (default: OpenTelemetry's global one).

    Returns:
        The :class:`Instrumentation`.
    """
    found = orch._observers.get("otel")
    if found is None:
        tracer = trace.get_tracer("vega_trio", __version__, tracer_provider=tracer_provider)
        found = orch._observers["otel"] = Instrumentation(orch, tracer)
    assert isinstance(found, Instrumentation)
    return found
