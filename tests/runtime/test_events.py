from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given, settings

import vega_trio.events as events_module
from vega_trio._redact import register_secret
from vega_trio.events import (
    BudgetWarning,
    LLMCalled,
    ProcessCompleted,
    ProcessFailed,
    ProcessStarted,
    ToolEnded,
    ToolStarted,
    WorkflowStepStatus,
)
from vega_trio.runtime import Event, EventBus, Lagged, Runtime

from .conftest import EchoBehaviour

#: SPEC §10.3's kinds, and every kind the code emits besides.
SPEC_KINDS = {
    "process.started",
    "process.completed",
    "process.failed",
    "process.restarted",
    "process.stopped",
    "supervisor.gave_up",
    "llm.call",
    "tool.start",
    "tool.end",
    "workflow.started",
    "workflow.step",
    "workflow.completed",
    "workflow.failed",
    "workflow.interrupted",
    "workflow.resumed",
    "budget.warning",
    "budget.exceeded",
    "agent.created",
    "agent.updated",
    "agent.deleted",
    "mcp.connected",
    "mcp.disconnected",
    "health.alert",
}
EMITTED_KINDS = {
    "supervisor.started",
    "supervisor.stopped",
    "circuit.open",
    "circuit.half_open",
    "circuit.closed",
    "context.compacted",
    "context.compaction_failed",
    "agent.not_restored",
}


def _drain(sub: Any) -> list[Event | Lagged]:
    items = []
    while (item := sub.receive_nowait()) is not None:
        items.append(item)
    return items


async def test_fanout_to_every_subscriber() -> None:
    """Each subscriber receives every event it accepts, in publish order."""
    bus = EventBus()
    with bus.subscribe() as a, bus.subscribe(types=["process."]) as b:
        bus.emit(ProcessStarted, process_id="p1")
        bus.emit(LLMCalled, process_id="p1", model="m")
        assert [(await a.receive()).type for _ in range(2)] == ["process.started", "llm.call"]  # type: ignore[union-attr]
        got = await b.receive()
        assert isinstance(got, ProcessStarted) and got.process_id == "p1"
        assert b.receive_nowait() is None


def test_slow_subscriber_never_blocks_and_is_told_what_it_missed() -> None:
    """A full subscriber buffer drops events for that subscriber only and reports Lagged."""
    bus = EventBus()
    with bus.subscribe(max_buffer=2) as slow, bus.subscribe(max_buffer=100) as fast:
        for i in range(5):
            bus.emit(ToolEnded, tool=f"t{i}")
        assert slow.receive_nowait() == Lagged(missed=3)
        first = slow.receive_nowait()
        assert isinstance(first, ToolEnded) and first.tool == "t0"
        assert slow.dropped_total == 3
        assert fast.dropped_total == 0
        assert len([fast.receive_nowait() for _ in range(5)]) == 5


async def test_close_ends_iteration_after_draining() -> None:
    """Closing the bus ends subscribers' async-for loops once their buffers are drained."""
    bus = EventBus()
    seen: list[str] = []
    with bus.subscribe() as sub:

        async def reader() -> None:
            async for item in sub:
                assert isinstance(item, Event)
                seen.append(item.type)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            bus.emit(ProcessStarted)
            await trio.testing.wait_all_tasks_blocked()
            bus.emit(ProcessFailed)
            bus.close()
    assert seen == ["process.started", "process.failed"]


async def test_request_events_bracket_each_message(runtime: Runtime) -> None:
    """Each message served is bracketed by request.started and request.finished with its
    outcome (ok, error with its class, cancelled)."""
    with runtime.bus.subscribe(types="request.*") as sub:
        p = await runtime.spawn(EchoBehaviour())
        assert await p.call("hi") == "hi"
        q = await runtime.spawn(EchoBehaviour())
        q.call_async("crash")
        await q.wait()
        seen = [
            (
                item.type,
                item.process_id,
                getattr(item, "outcome", None),
                getattr(item, "error_class", None),
            )
            for item in _drain(sub)
            if isinstance(item, Event)
        ]
    assert seen == [
        ("request.started", p.id, None, None),
        ("request.finished", p.id, "ok", None),
        ("request.started", q.id, None, None),
        ("request.finished", q.id, "error", "ValueError"),
    ]


async def test_process_lifecycle_events(runtime: Runtime) -> None:
    """Starting, completing and crashing processes publish SPEC §10.3 events."""
    with runtime.bus.subscribe() as sub:
        p = await runtime.spawn(EchoBehaviour())
        p.complete()
        await p.wait()
        q = await runtime.spawn(EchoBehaviour())
        q.call_async("crash")
        await q.wait()
        r = await runtime.spawn(EchoBehaviour())
        r.kill()
        await r.wait()
        types = []
        for item in _drain(sub):
            assert isinstance(item, Event)
            types.append((type(item).__name__, item.type, item.process_id))
    assert types == [
        ("ProcessStarted", "process.started", p.id),
        ("ProcessCompleted", "process.completed", p.id),
        ("ProcessStarted", "process.started", q.id),
        ("RequestStarted", "request.started", q.id),
        ("RequestFinished", "request.finished", q.id),
        ("ProcessFailed", "process.failed", q.id),
        ("ProcessStarted", "process.started", r.id),
        ("ProcessStopped", "process.stopped", r.id),
    ]


# -- one typed class per kind ----------------------------------------------------------


def test_one_frozen_class_per_kind() -> None:
    """Every kind of SPEC §10.3 (and every kind the code emits) has its own frozen attrs
    class, derived from Event, exported by vega_trio.events."""
    classes = events_module.event_classes()
    assert set(classes) >= SPEC_KINDS | EMITTED_KINDS
    exported = {getattr(events_module, name) for name in events_module.__all__}
    for kind, cls in classes.items():
        assert cls.type == kind and issubclass(cls, Event) and cls in exported
        event = cls()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.seq = 3  # type: ignore[misc]
        assert {"seq", "timestamp", "process_id", "agent", "run_id", "user"} <= {
            f.name for f in attrs.fields(cls)
        }


def _value(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for a field's type (JSON-faithful values)."""
    text = st.text(max_size=20)
    floats = st.floats(allow_nan=False, allow_infinity=False)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: text,
        int: st.integers(-(2**53), 2**53),
        float: floats,
        bool: st.booleans(),
        type(None): st.none(),
        tuple[str, ...]: st.lists(text, max_size=3).map(tuple),
        Mapping[str, Any]: st.dictionaries(
            st.sampled_from(["path", "n", "query"]),
            st.one_of(text, st.integers(-100, 100), st.booleans(), st.none()),
            max_size=3,
        ),
    }
    if tp in simple:
        return simple[tp]
    args = typing.get_args(tp)
    assert args, f"no strategy for {tp!r}"
    return st.one_of(*(_value(arg) for arg in args))


@st.composite
def any_event(draw: st.DrawFn) -> Event:
    cls = draw(st.sampled_from(sorted(events_module.event_classes().values(), key=str)))
    hints = typing.get_type_hints(cls)
    fields = {f.name: draw(_value(hints[f.name])) for f in attrs.fields(cls) if f.init}
    return cls(**fields)


@settings(max_examples=300, deadline=None)
@given(any_event())
def test_json_round_trip(event: Event) -> None:
    """Every class of event survives its JSON form: from_json(to_json(e)) == e, as its
    own class."""
    text = event.to_json()
    back = Event.from_json(text)
    assert type(back) is type(event) and back == event
    assert Event.from_json(json.loads(text)) == event
    assert json.loads(text)["type"] == event.type


def test_json_form_is_flat_and_redacted() -> None:
    """The JSON form has the envelope and the kind's fields at one level; secrets in the
    fields are masked on the way out, the event itself keeps them."""
    secret = "s3cr3t-value-for-events"
    register_secret(secret)  # forgotten after the test (tests/conftest.py)
    event = ToolStarted(
        seq=7,
        process_id="p1",
        agent="a",
        tool="fetch",
        arguments={"url": f"https://x/?q={secret}", "api_key": "abcdefghijkl"},
    )
    out = event.to_dict()
    assert out["type"] == "tool.start" and out["seq"] == 7 and out["tool"] == "fetch"
    assert secret not in event.to_json() and "abcdefghijkl" not in event.to_json()
    assert secret in event.arguments["url"]


def test_from_json_refuses_what_is_not_an_event() -> None:
    """An unknown type or a field the kind lacks is a ValueError that says what was wrong."""
    with pytest.raises(ValueError, match=r"unknown event type 'nope\.nothing'"):
        Event.from_json('{"type": "nope.nothing"}')
    with pytest.raises(ValueError, match=r"invalid 'tool\.end' event"):
        Event.from_json({"type": "tool.end", "no_such_field": 1})
    with pytest.raises(ValueError, match="string 'type'"):
        Event.from_json("[1, 2]")


# -- sequence numbers ------------------------------------------------------------------


def test_seq_is_monotonic_per_bus() -> None:
    """Each bus numbers its own events 1, 2, 3, …; numbers go on while nobody listens,
    so a subscriber sees increasing numbers and can tell what it did not see."""
    one, two = EventBus(), EventBus()
    one.emit(ProcessStarted)  # nobody listens: not built, but numbered
    with one.subscribe() as a, two.subscribe() as b:
        for _ in range(3):
            one.emit(ProcessStarted)
            two.emit(ProcessStarted)
        assert [e.seq for e in _drain(a)] == [2, 3, 4]  # type: ignore[union-attr]
        assert [e.seq for e in _drain(b)] == [1, 2, 3]  # type: ignore[union-attr]
    assert one.published == 4 and two.published == 3


# -- filters -----------------------------------------------------------------------------


def test_filters_by_type_prefix_agent_process_run_and_user() -> None:
    """Subscriptions select by exact type, 'x.*' (and the older 'x.') prefixes, agent,
    process, run and user; all given filters must hold."""
    bus = EventBus()
    with (
        bus.subscribe(types="llm.call") as exact,
        bus.subscribe(types=["process.*"]) as star,
        bus.subscribe(types=["process."]) as dot,
        bus.subscribe(agents="writer") as by_agent,
        bus.subscribe(processes=["p2"]) as by_process,
        bus.subscribe(runs="report-1", types="workflow.*") as by_run,
        bus.subscribe(users={"42"}) as by_user,
        bus.subscribe(types="*", agents="writer", users="42") as both,
    ):
        bus.emit(ProcessStarted, process_id="p1", agent="writer")
        bus.emit(LLMCalled, process_id="p2", agent="researcher", user="42")
        bus.emit(WorkflowStepStatus, run_id="report-1", agent="writer", user="42")
        bus.emit(WorkflowStepStatus, run_id="report-2")
        bus.emit(ProcessFailed, process_id="p2")

        def seqs(sub: Any) -> list[int]:
            return [e.seq for e in _drain(sub)]

        assert seqs(exact) == [2]
        assert seqs(star) == seqs(dot) == [1, 5]
        assert seqs(by_agent) == [1, 3]
        assert seqs(by_process) == [2, 5]
        assert seqs(by_run) == [3]
        assert seqs(by_user) == [2, 3]
        assert seqs(both) == [3]


def test_a_subscriber_that_matches_nothing_costs_nothing() -> None:
    """Events are offered only to subscribers of their type: a subscriber of other types
    is never consulted, and an event nobody wants is not even built."""
    bus = EventBus()
    consulted = 0

    def accept(event: Event) -> bool:
        nonlocal consulted
        consulted += 1
        return True

    with bus.subscribe(types="workflow.*", accept=accept) as sub:
        assert not bus.wants(LLMCalled) and bus.wants(WorkflowStepStatus)
        for _ in range(100):
            assert bus.emit(LLMCalled, model="m") is None
        assert consulted == 0 and sub.receive_nowait() is None
        assert bus.emit(WorkflowStepStatus) is not None and consulted == 1
    assert not bus.has_subscribers and not bus.wants(WorkflowStepStatus)


# -- replay -------------------------------------------------------------------------------


def test_subscribe_after_replays_then_continues_live() -> None:
    """subscribe(after=n) replays the kept events numbered above n that it accepts,
    then live ones, with no gap and no duplicate."""
    bus = EventBus(history=10)
    for seq in range(1, 6):  # 1, 3, 5: budget.warning; 2, 4: tool.end
        if seq % 2:
            bus.emit(BudgetWarning)
        else:
            bus.emit(ToolEnded, tool="t")
    with bus.subscribe(after=2) as everything, bus.subscribe(after=0, types="tool.end") as tools:
        bus.emit(ToolEnded, tool="live")
        assert [e.seq for e in _drain(everything)] == [3, 4, 5, 6]  # type: ignore[union-attr]
        assert [e.seq for e in _drain(tools)] == [2, 4, 6]  # type: ignore[union-attr]
    with bus.subscribe(after=6) as none_missed:
        assert none_missed.receive_nowait() is None


def test_replay_past_the_history_says_how_many_were_lost() -> None:
    """A subscription starting after a number that has left the ring gets Lagged(missed)
    first, then the kept events, then live ones."""
    bus = EventBus(history=3)
    for _ in range(10):
        bus.emit(ProcessStarted)
    with bus.subscribe(after=4) as sub:
        bus.emit(ProcessFailed)
        items = _drain(sub)
    assert items[0] == Lagged(missed=3)  # 5, 6 and 7 are gone
    assert [e.seq for e in items[1:]] == [8, 9, 10, 11]  # type: ignore[union-attr]
    without = EventBus()
    without.emit(ProcessStarted)
    with without.subscribe(after=0) as sub:
        assert sub.receive_nowait() == Lagged(missed=1)


def test_history_can_be_resized() -> None:
    """keep_history changes the ring's size, keeping the newest events."""
    bus = EventBus()
    bus.emit(ProcessStarted)
    bus.keep_history(2)
    for _ in range(3):
        bus.emit(ProcessStarted)
    with bus.subscribe(after=0) as sub:
        items = _drain(sub)
    assert items == [Lagged(missed=2), *items[1:]] and [e.seq for e in items[1:]] == [3, 4]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="history"):
        bus.keep_history(-1)


def test_generic_handling_through_data() -> None:
    """Any event's own fields are readable generically through .data."""
    event = ProcessFailed(process_id="p", reason="error", detail="boom", status="failed")
    assert event.data == {"status": "failed", "reason": "error", "detail": "boom"}


def test_every_emit_site_names_fields_its_class_has() -> None:
    """Each ``bus.emit(Kind, field=...)`` in the package names only fields of Kind (an
    event is built only when someone listens, so a wrong name would hide until then)."""
    import ast
    from pathlib import Path

    import vega_trio
    from vega_trio.agent._bus_events import CIRCUIT_EVENTS

    classes = {cls.__name__: cls for cls in events_module.event_classes().values()}
    checked = 0
    for path in Path(vega_trio.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "emit"
                and node.args
            ):
                continue
            kind = node.args[0]
            names = {n.id for n in ast.walk(kind) if isinstance(n, ast.Name)}
            if "CIRCUIT_EVENTS" in names:
                candidates = list(CIRCUIT_EVENTS.values())
            else:
                candidates = [classes[name] for name in names if name in classes]
            if not candidates:
                continue  # a generic helper passing its kind through
            given = {k.arg for k in node.keywords if k.arg is not None}
            for cls in candidates:
                fields = {f.name for f in attrs.fields(cls)}
                assert given <= fields, f"{path.name}:{node.lineno}: {given - fields} not in {cls}"
                checked += 1
    assert checked >= 15


def test_a_sink_gets_every_event_in_order_even_when_subscribers_overflow() -> None:
    """The store's hook is lossless: a subscriber with a full buffer drops, the sink
    still gets every event, built, in order (even kinds nobody subscribed to)."""
    bus = EventBus()
    got: list[Event] = []
    bus.add_sink(got.append)
    assert bus.wants(ProcessStarted) and bus.has_subscribers
    with bus.subscribe(max_buffer=1, types="process.started") as slow:
        for _ in range(5):
            bus.emit(ProcessStarted, process_id="p")
            bus.emit(ProcessCompleted, process_id="p", status="completed")
        assert slow.dropped_total == 4
    assert [e.seq for e in got] == list(range(1, 11))
    assert [e.type for e in got[:2]] == ["process.started", "process.completed"]
    bus.remove_sink(got.append)
    assert bus.emit(ProcessStarted) is None  # nobody wants it any more: not built


def test_continue_after_numbers_the_next_event_after_a_stored_one() -> None:
    """A bus continued after seq 41 numbers its first event 42; a replay after an
    older number reports where its history starts (what a store must fill in)."""
    bus = EventBus(history=10)
    bus.continue_after(41)
    first = bus.publish(ProcessStarted())
    assert first.seq == 42 and bus.published == 42
    with bus.subscribe(after=30) as sub:
        assert sub.history_start == 42
        assert sub.receive_nowait() == Lagged(missed=11)
        assert sub.receive_nowait() == first
    with pytest.raises(ValueError, match="before the first event"):
        bus.continue_after(100)
