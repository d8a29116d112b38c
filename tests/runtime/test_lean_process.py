"""The runtime's hot path stays lean (issue 16): no attribute hooks, one cancel scope per
incarnation, no trio ``start`` per spawn, the GC policy only when asked for."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio.agent import AgentProcess
from vega_trio.runtime import Future, Process, ProcessStatus, Runtime, relaxed_gc
from vega_trio.runtime._events import Event, ProcessStarted

from .conftest import EchoBehaviour


def test_process_writes_go_straight_to_their_slots() -> None:
    """Process and AgentProcess have no attrs __setattr__ hook (it ran on every write of
    status, last_active and the request in flight)."""
    assert Process.__setattr__ is object.__setattr__
    assert AgentProcess.__setattr__ is object.__setattr__


async def test_signal_buffer_is_still_checked_when_set(runtime: Runtime) -> None:
    """The one public attribute with a rule checks it on assignment, as at spawn."""
    proc = await runtime.spawn(EchoBehaviour(), signal_buffer=3)
    assert proc.signal_buffer == 3
    proc.signal_buffer = 5
    assert proc.signal_buffer == 5
    with pytest.raises(ValueError, match="signal_buffer"):
        proc.signal_buffer = 0
    assert proc.signal_buffer == 5


async def test_an_idle_process_holds_one_cancel_scope_of_its_own(runtime: Runtime) -> None:
    """Waiting on its mailbox, a process's task is inside exactly one cancel scope of its
    own (the incarnation's), not one more per request."""
    proc = await runtime.spawn(EchoBehaviour())
    assert await proc.call("x") == "x"
    await trio.testing.wait_all_tasks_blocked()
    task = _task_of(runtime, proc)
    # NOTE: trio's internals: the chain of cancel statuses from the task up to its
    # nursery's is one per cancel scope the task is inside of.
    status = task._cancel_status
    outer = task.parent_nursery.cancel_scope._cancel_status
    own = 0
    while status is not outer:
        own += 1
        status = status.parent
    assert own == 1


def _task_of(runtime: Runtime, proc: Process) -> trio.lowlevel.Task:
    for task in runtime._nursery.child_tasks:
        if task.coro.cr_frame is not None and task.coro.cr_frame.f_locals.get("self") is proc:
            return task
    raise AssertionError(f"no task runs {proc.id}")


async def test_a_withdrawn_request_keeps_the_lifetime(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """After a request is withdrawn the process serves on, and still ends at its
    lifetime (the fresh scope keeps the incarnation's deadline)."""
    proc = await runtime.spawn(EchoBehaviour(), timeout=10)
    with trio.move_on_after(3):
        await proc.call("block")
    assert await proc.call("next") == "next"
    assert proc.status == ProcessStatus.RUNNING
    with trio.fail_after(20):
        reason = await proc.wait()
    assert reason.kind == "timeout"
    assert trio.current_time() == pytest.approx(10)


async def test_a_withdrawn_request_then_a_kill_ends_the_process(runtime: Runtime) -> None:
    """A kill right after a withdrawal is a kill, not another withdrawal."""
    proc = await runtime.spawn(EchoBehaviour())
    future = proc.call_async("block")
    await trio.testing.wait_all_tasks_blocked()
    assert future.cancel()
    proc.kill("test")
    with trio.fail_after(5):
        reason = await proc.wait()
    assert reason.kind == "killed"


def test_relaxed_gc_raises_the_young_threshold_and_restores_it() -> None:
    """relaxed_gc() changes the young-generation threshold for its block only, also when
    the block raises."""
    before = gc.get_threshold()
    with relaxed_gc(5_000):
        assert gc.get_threshold() == (5_000, *before[1:])
        assert gc.isenabled()
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), relaxed_gc():
        assert gc.get_threshold()[0] == 10_000
        raise RuntimeError("boom")
    assert gc.get_threshold() == before


@pytest.mark.parametrize("young", [0, -1, 2.5, True, "700"])
def test_relaxed_gc_rejects_what_is_not_a_threshold(young: object) -> None:
    """A threshold is a whole number of at least 1; anything else is refused up front."""
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="whole number"), relaxed_gc(young):  # type: ignore[arg-type]
        pass
    assert gc.get_threshold() == before


async def test_the_runtime_never_changes_gc_settings(runtime: Runtime) -> None:
    """Spawning, serving and stopping processes leaves the interpreter's GC alone."""
    before = (gc.isenabled(), gc.get_threshold())
    procs = [await runtime.spawn(EchoBehaviour()) for _ in range(20)]
    for proc in procs:
        assert await proc.call("x") == "x"
        proc.stop()
    assert (gc.isenabled(), gc.get_threshold()) == before


async def test_a_running_process_does_not_keep_trios_start_up_nursery(runtime: Runtime) -> None:
    """Once started, a process's task drops its task status, and with it the nursery
    trio's ``start`` ran it in (a Nursery, a cancel scope and status, their sets: 8
    GC-tracked objects per live process)."""
    await runtime.spawn(EchoBehaviour())  # warm-up: anything made once
    gc.collect()
    before = _start_up_objects()
    procs = [await runtime.spawn(EchoBehaviour()) for _ in range(20)]
    assert [await proc.call("x") for proc in procs] == ["x"] * 20
    await trio.testing.wait_all_tasks_blocked()
    gc.collect()
    assert _start_up_objects() == before


def _start_up_objects() -> int:
    return sum(type(o).__name__ in ("Nursery", "_TaskStatus") for o in gc.get_objects())


async def _spawn_acting_at_start(runtime: Runtime, act: Callable[[Process], None]) -> Process:
    """Spawn an echo process and ``act`` on it from the ``process.started`` event, i.e.
    inside ``spawn``, before the process's task has taken its first step."""
    seen: list[str] = []

    def sink(event: Event) -> None:
        if isinstance(event, ProcessStarted):
            seen.append(event.process_id or "")
            act(runtime.get(event.process_id or ""))

    runtime.bus.add_sink(sink)
    try:
        proc = await runtime.spawn(EchoBehaviour())
    finally:
        runtime.bus.remove_sink(sink)
    assert seen == [proc.id]
    return proc


async def test_spawn_returns_a_process_booked_as_running(runtime: Runtime) -> None:
    """When spawn returns, the first incarnation is booked: running, incarnation 1, its
    start time set and ``process.started`` published once (spawn starts the task with
    ``start_soon`` and books it itself, instead of waiting in trio's ``start``)."""
    states: list[tuple[ProcessStatus, int, bool]] = []
    proc = await _spawn_acting_at_start(
        runtime, lambda p: states.append((p.status, p.incarnation, p.started_at is not None))
    )
    assert states == [(ProcessStatus.RUNNING, 1, True)]
    assert (proc.status, proc.incarnation) == (ProcessStatus.RUNNING, 1)
    assert await proc.call("x") == "x"
    assert proc.incarnation == 1


async def test_a_message_sent_before_the_first_step_is_served(runtime: Runtime) -> None:
    """A message put in the mailbox before the process's task first ran is served."""
    futures: list[Future[Any]] = []
    await _spawn_acting_at_start(runtime, lambda p: futures.append(p.call_async("early")))
    with trio.fail_after(5):
        assert await futures[0].wait() == "early"


@pytest.mark.parametrize(
    ("act", "kind"),
    [
        (lambda p: p.kill("at start"), "killed"),
        (lambda p: p.stop("at start"), "shutdown"),
        (lambda p: p.complete("at start"), "normal"),
    ],
    ids=["kill", "stop", "complete"],
)
async def test_a_process_ended_before_its_first_step_exits_with_that_reason(
    runtime: Runtime, act: Callable[[Process], None], kind: str
) -> None:
    """A kill, stop or complete that arrives before the task's first step ends the
    process with that reason once the task runs (and its callers are answered)."""
    proc = await _spawn_acting_at_start(runtime, act)
    with trio.fail_after(5):
        reason = await proc.wait()
    assert reason.kind == kind
    assert runtime.live_count == 0


async def test_spawn_is_a_checkpoint_that_spawns_nothing_when_cancelled(
    runtime: Runtime,
) -> None:
    """A caller already cancelled gets Cancelled from spawn, and no process exists (no
    event, nothing counted)."""
    with runtime.bus.subscribe() as events:
        with trio.CancelScope() as scope:
            scope.cancel()
            await runtime.spawn(EchoBehaviour(), name="never")
        assert events.receive_nowait() is None
    assert scope.cancelled_caught
    assert runtime.live_count == 0 and runtime.total_spawned == 0
    assert runtime.registered() == {}


async def test_spawn_into_a_closed_nursery_books_nothing(runtime: Runtime) -> None:
    """When the task cannot be started (its nursery is closed), spawn raises and the
    runtime keeps no trace of the process (name, count, parent's children)."""
    parent = await runtime.spawn(EchoBehaviour())
    async with trio.open_nursery() as closed:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await runtime.spawn(EchoBehaviour(), name="never", parent=parent, nursery=closed)
    assert runtime.live_count == 1 and runtime.total_spawned == 1
    assert runtime.registered() == {}
    assert parent.children == []


class _Steps(trio.abc.Instrument):
    """Counts the steps of one task (each is a resumption after a yield)."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def test_a_call_makes_its_caller_yield_once(runtime: Runtime) -> None:
    """A call yields once, waiting for its reply: putting the request in is not a
    checkpoint of its own (it was: two trips through the scheduler per call, B1)."""
    proc = await runtime.spawn(EchoBehaviour())
    assert await proc.call("warm") == "warm"
    steps = _Steps(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(steps)
    try:
        for i in range(10):
            assert await proc.call(i) == i
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert steps.steps == 10


async def test_a_call_is_a_checkpoint_whose_cancelled_request_is_never_served(
    runtime: Runtime,
) -> None:
    """A call made in a cancelled scope raises Cancelled; its request is withdrawn (the
    behaviour never sees it) and the process goes on serving. Twenty rounds: Trio runs
    the tasks it wakes together in a random order, and the process, woken by the request,
    may run before its cancelled caller resumes (it did in half the runs while the request
    was withdrawn only once the caller resumed)."""
    behaviour = EchoBehaviour()
    proc = await runtime.spawn(behaviour)
    with trio.testing.assert_checkpoints():
        assert await proc.call("a checkpoint") == "a checkpoint"
    for _ in range(20):
        with trio.CancelScope() as scope:
            scope.cancel()
            await proc.call("withdrawn")
        assert scope.cancelled_caught
        assert await proc.call("next") == "next"
    assert behaviour.handled == ["a checkpoint", *["next"] * 20]
    assert proc.status == ProcessStatus.RUNNING and not proc.busy


async def test_a_call_on_a_full_mailbox_waits_for_room_then_for_its_reply(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """On a full mailbox a call waits for room (backpressure), then gets its reply, in
    order behind the messages queued before it; cancelled while it waits for room, it
    takes its message back."""
    behaviour = EchoBehaviour()
    proc = await runtime.spawn(behaviour, mailbox_size=1)
    first = proc.call_async(("sleep", 1))
    await trio.testing.wait_all_tasks_blocked()
    queued = proc.call_async("queued")
    with trio.move_on_after(0.5) as scope:
        await proc.call("gave up waiting for room")
    assert scope.cancelled_caught
    with trio.fail_after(5):
        assert await proc.call("waited for room") == "waited for room"
    assert first.result() == "slept 1" and queued.result() == "queued"
    assert behaviour.handled == [("sleep", 1), "queued", "waited for room"]
