"""The runtime's hot path stays lean (issue 16): no attribute hooks, one cancel scope per
incarnation, the GC policy only when asked for."""

from __future__ import annotations

import gc

import pytest
import trio
import trio.testing

from vega_trio.agent import AgentProcess
from vega_trio.runtime import Process, ProcessStatus, Runtime, relaxed_gc

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
