from __future__ import annotations

import pytest
import trio
import trio.testing

from vega_trio import (
    NameTaken,
    OrchestratorClosed,
    ProcessError,
    ProcessExited,
    ProcessNotFound,
    ProcessNotRunning,
    RequestCancelled,
    TooManyProcesses,
)
from vega_trio.runtime import Group, MailboxFull, ProcessStatus, Runtime

from .conftest import EchoBehaviour


async def test_call_replies_and_status_lifecycle(runtime: Runtime) -> None:
    """A spawned process is running, answers calls, and completes with its result."""
    proc = await runtime.spawn(EchoBehaviour())
    assert proc.status == ProcessStatus.RUNNING
    assert await proc.call("hi") == "hi"
    proc.complete("done")
    assert await proc.wait() == proc.exit_reason
    assert proc.status == ProcessStatus.COMPLETED
    assert proc.result == "done"
    assert proc.exit_reason is not None and proc.exit_reason.kind == "normal"


async def test_messages_are_served_one_at_a_time_in_order(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Concurrent calls to one process are answered in mailbox order, never interleaved."""
    behaviour = EchoBehaviour()
    proc = await runtime.spawn(behaviour)
    finished: list[str] = []

    async def caller(i: int) -> None:
        await proc.call(("sleep", 1))
        finished.append(f"c{i}")

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(caller, i)
            await trio.testing.wait_all_tasks_blocked()
    assert finished == ["c0", "c1", "c2"]
    assert trio.current_time() - start == 3.0


async def test_complete_and_fail_are_idempotent(runtime: Runtime) -> None:
    """Only the first of complete/fail counts."""
    proc = await runtime.spawn(EchoBehaviour())
    proc.complete(1)
    proc.fail(RuntimeError("late"))
    proc.complete(2)
    await proc.wait()
    assert proc.status == ProcessStatus.COMPLETED
    assert proc.result == 1


async def test_fail_marks_failed_with_error_reason(runtime: Runtime) -> None:
    """fail() ends the process with exit reason error carrying the exception."""
    proc = await runtime.spawn(EchoBehaviour())
    err = RuntimeError("bad input")
    proc.fail(err)
    reason = await proc.wait()
    assert proc.status == ProcessStatus.FAILED
    assert reason.kind == "error"
    assert reason.error is err


async def test_send_after_completion_is_a_clear_error(runtime: Runtime) -> None:
    """Sending to a finished process raises ProcessNotRunning at once."""
    proc = await runtime.spawn(EchoBehaviour())
    proc.complete()
    await proc.wait()
    with pytest.raises(ProcessNotRunning, match="completed"):
        await proc.call("hi")
    with pytest.raises(ProcessNotRunning):
        proc.call_async("hi")


async def test_crash_answers_caller_and_queued_requests(runtime: Runtime) -> None:
    """An unexpected exception answers its caller with it; queued callers get ProcessExited."""
    proc = await runtime.spawn(EchoBehaviour())
    crash_future = proc.call_async("crash")
    queued = proc.call_async("after")
    with pytest.raises(ValueError, match="boom"):
        await crash_future.wait()
    with pytest.raises(ProcessExited) as info:
        await queued.wait()
    assert info.value.reason.kind == "error"
    assert isinstance(info.value.__cause__, ValueError)
    assert proc.status == ProcessStatus.FAILED


async def test_kill_answers_in_flight_caller_promptly(runtime: Runtime) -> None:
    """Killing a process mid-request answers the waiting caller with ProcessExited(killed)."""
    proc = await runtime.spawn(EchoBehaviour())
    future = proc.call_async("block")
    await trio.testing.wait_all_tasks_blocked()
    proc.kill("test")
    with pytest.raises(ProcessExited) as info:
        await future.wait()
    assert info.value.reason.kind == "killed"
    assert proc.status == ProcessStatus.STOPPED


async def test_cancelling_the_caller_cancels_the_request(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A caller's cancel scope reaches the handler; the process keeps serving."""
    behaviour = EchoBehaviour()
    proc = await runtime.spawn(behaviour)
    with trio.move_on_after(5):
        await proc.call("block")
    assert trio.current_time() == 5
    assert await proc.call("next") == "next"
    assert proc.status == ProcessStatus.RUNNING


async def test_future_api(runtime: Runtime) -> None:
    """send_async futures expose done/result/wait/cancel."""
    proc = await runtime.spawn(EchoBehaviour())
    fut = proc.call_async("x")
    assert not fut.done()
    with pytest.raises(trio.WouldBlock):
        fut.result()
    assert await fut.wait() == "x"
    assert fut.done() and fut.result() == "x"
    blocked = proc.call_async("block")
    queued = proc.call_async("never")
    await trio.testing.wait_all_tasks_blocked()
    assert queued.cancel() is True
    assert blocked.cancel() is True
    with pytest.raises(RequestCancelled):
        await blocked.wait()
    with pytest.raises(RequestCancelled):
        await queued.wait()
    assert await proc.call("alive") == "alive"


async def test_mailbox_is_bounded(runtime: Runtime) -> None:
    """send_async on a full mailbox raises MailboxFull instead of growing without bound."""
    proc = await runtime.spawn(EchoBehaviour(), mailbox_size=2)
    proc.call_async("block")
    await trio.testing.wait_all_tasks_blocked()
    proc.call_async("a")
    proc.call_async("b")
    with pytest.raises(MailboxFull, match="full"):
        proc.call_async("c")


async def test_a_full_mailbox_is_backpressure_not_a_finished_process(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """MailboxFull is a ProcessError but not ProcessNotRunning: the process runs on and
    serves the queued messages."""
    proc = await runtime.spawn(EchoBehaviour(), mailbox_size=1)
    proc.call_async(("sleep", 1))
    await trio.testing.wait_all_tasks_blocked()
    queued = proc.call_async("a")
    with pytest.raises(MailboxFull) as info:
        proc.call_async("b")
    assert isinstance(info.value, ProcessError) and not isinstance(info.value, ProcessNotRunning)
    assert info.value.process_id == proc.id and not proc.status.finished
    with trio.fail_after(5):
        assert await queued.wait() == "a"


async def test_broadcast_hands_a_full_member_its_mailbox_full(runtime: Runtime) -> None:
    """Group.broadcast skips a member whose mailbox is full, with MailboxFull in its future."""
    group = Group("g")
    proc = await runtime.spawn(EchoBehaviour(), mailbox_size=1)
    group.join(proc)
    proc.call_async("block")
    await trio.testing.wait_all_tasks_blocked()
    proc.call_async("a")
    (future,) = group.broadcast("b")
    with pytest.raises(MailboxFull):
        future.result()


async def test_lifetime_timeout(runtime: Runtime, autojump_clock: trio.testing.MockClock) -> None:
    """A process with a lifetime timeout ends with status timeout; its caller is answered."""
    proc = await runtime.spawn(EchoBehaviour(), timeout=10)
    with pytest.raises(ProcessExited) as info:
        await proc.call("block")
    assert trio.current_time() == 10
    assert proc.status == ProcessStatus.TIMEOUT
    assert info.value.reason.kind == "timeout"


async def test_registry_names(runtime: Runtime) -> None:
    """Names are unique among live processes and released on exit."""
    a = await runtime.spawn(EchoBehaviour(), name="worker")
    assert runtime.lookup("worker") is a
    with pytest.raises(NameTaken, match="worker"):
        await runtime.spawn(EchoBehaviour(), name="worker")
    b = await runtime.spawn(EchoBehaviour())
    with pytest.raises(NameTaken):
        runtime.register("worker", b)
    a.complete()
    await a.wait()
    with pytest.raises(ProcessNotFound):
        runtime.lookup("worker")
    runtime.register("worker", b)
    assert runtime.lookup("worker") is b
    runtime.unregister("worker")
    with pytest.raises(ProcessNotFound):
        runtime.lookup("worker")


async def test_max_processes_counts_live_only_and_prunes(runtime: Runtime) -> None:
    """Finished processes free their slot and are pruned from the table."""
    runtime.max_processes = 2
    a = await runtime.spawn(EchoBehaviour())
    await runtime.spawn(EchoBehaviour())
    with pytest.raises(TooManyProcesses, match="limit of 2"):
        await runtime.spawn(EchoBehaviour())
    a.complete()
    await a.wait()
    assert a.id not in {p.id for p in runtime.processes()}
    assert len(runtime._processes) == 1
    await runtime.spawn(EchoBehaviour())
    assert runtime.live_count == 2


async def test_spawn_tree_nested_in_start_order(runtime: Runtime) -> None:
    """The spawn tree nests children under parents, in start order, with depth and reason."""
    root = await runtime.spawn(EchoBehaviour(name="boss"), task="plan")
    c1 = await runtime.spawn(EchoBehaviour(name="w"), parent=root, reason="research")
    c2 = await runtime.spawn(EchoBehaviour(name="w"), parent=root.id, reason="write")
    g = await runtime.spawn(EchoBehaviour(name="sub"), parent=c1)
    tree = runtime.spawn_tree()
    assert [n.process_id for n in tree] == [root.id]
    assert [c.process_id for c in tree[0].children] == [c1.id, c2.id]
    assert tree[0].children[0].children[0].process_id == g.id
    assert g.spawn_depth == 2
    assert tree[0].children[1].spawn_reason == "write"
    assert tree[0].to_dict()["children"][0]["children"][0]["agent_name"] == "sub"
    # A finished parent stays while it has live descendants, then everything is pruned.
    c1.complete()
    await c1.wait()
    assert runtime.spawn_tree()[0].children[0].status == "completed"
    g.complete()
    await g.wait()
    assert [c.process_id for c in runtime.spawn_tree()[0].children] == [c2.id]


async def test_groups_and_blackboard(runtime: Runtime) -> None:
    """Groups broadcast to live members, members leave on exit, the blackboard is shared."""
    a = await runtime.spawn(EchoBehaviour())
    b = await runtime.spawn(EchoBehaviour())
    team = runtime.group("team")
    team.join(a)
    team.join(b)
    futures = team.broadcast("hello")
    assert [await f.wait() for f in futures] == ["hello", "hello"]
    team.blackboard.write("plan", {"step": 1})
    assert runtime.group("team").blackboard.read("plan") == {"step": 1}
    a.complete()
    await a.wait()
    assert team.members() == [b]
    assert a.groups == set()


async def test_shutdown_reverse_order_and_refuses_spawn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Shutdown stops processes in reverse start order, cancels stragglers after the grace."""
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        rt = Runtime(nursery)
        procs = [await rt.spawn(EchoBehaviour(name=f"p{i}")) for i in range(3)]
        stuck = procs[0].call_async("block")
        for p in procs:
            nursery.start_soon(_record_exit, p, order)
        await trio.testing.wait_all_tasks_blocked()
        await rt.shutdown(grace=2.0)
        assert trio.current_time() == 2.0
        with pytest.raises(OrchestratorClosed):
            await rt.spawn(EchoBehaviour())
    assert order == ["p2", "p1", "p0"]
    with pytest.raises(ProcessExited):
        stuck.result()
    assert all(p.status == ProcessStatus.STOPPED for p in procs)


async def _record_exit(proc: object, order: list[str]) -> None:
    await proc.wait()  # type: ignore[attr-defined]
    order.append(proc.agent_name)  # type: ignore[attr-defined]


async def test_lifecycle_calls_from_a_worker_thread(runtime: Runtime) -> None:
    """complete/kill/send_async called from a sync tool's worker thread hop to Trio safely."""
    a = await runtime.spawn(EchoBehaviour())
    b = await runtime.spawn(EchoBehaviour())

    def in_thread() -> str:
        future = a.call_async("from a thread")
        a.complete("done in thread")
        b.kill("from a thread")
        return str(future)

    await trio.to_thread.run_sync(in_thread)
    assert await a.wait() == a.exit_reason
    assert a.status == ProcessStatus.COMPLETED and a.result == "done in thread"
    assert (await b.wait()).kind == "killed"


async def test_busy_while_serving_a_message(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A process is busy exactly while it serves a message (what a forced stop cuts)."""
    proc = await runtime.spawn(EchoBehaviour())
    assert not proc.busy
    async with trio.open_nursery() as nursery:
        nursery.start_soon(proc.call, ("sleep", 1))
        await trio.testing.wait_all_tasks_blocked()
        assert proc.busy
    assert not proc.busy
