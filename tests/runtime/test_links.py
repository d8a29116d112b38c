from __future__ import annotations

import itertools
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from vega_trio import (
    Down,
    ExitSignal,
    LinkedProcessError,
    MonitorRemoved,
    ProcessExited,
)
from vega_trio.runtime import (
    Backoff,
    Event,
    Lagged,
    Process,
    ProcessStatus,
    Runtime,
    Supervision,
    current_process,
)

from .conftest import EchoBehaviour


@attrs.define
class WorkBehaviour:
    """Works for ``payload`` seconds (forever on "block"), noting whether it was cancelled."""

    name: str = "worker"
    cancelled: list[Any] = attrs.field(factory=list)
    served: list[Any] = attrs.field(factory=list)

    async def handle(self, process: Process, payload: Any) -> Any:
        try:
            if payload == "crash":
                raise ValueError(f"boom in {process.id}")
            if payload == "block":
                await trio.sleep_forever()
            if isinstance(payload, int | float):
                await trio.sleep(payload)
        except trio.Cancelled:
            self.cancelled.append(payload)
            raise
        self.served.append(payload)
        return payload


async def _settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


def _drain(subscription: Any) -> list[Event]:
    items = []
    while (item := subscription.receive_nowait()) is not None:
        assert isinstance(item, Event)
        items.append(item)
    return items


# ----------------------------------------------------------------------- links
async def test_link_is_bidirectional_idempotent_and_unlinkable(runtime: Runtime) -> None:
    """link() records the link on both sides once; unlink() removes both sides."""
    a = await runtime.spawn(EchoBehaviour())
    b = await runtime.spawn(EchoBehaviour())
    c = await runtime.spawn(EchoBehaviour())
    a.link(b)
    runtime.link(b, a)
    runtime.link(a.id, c.id)  # ids work as well as handles
    a.link(a)  # linking to oneself does nothing, as in OTP
    assert a.links == (b.id, c.id)
    assert b.links == (a.id,) and c.links == (a.id,)
    b.unlink(a)
    runtime.unlink(a, b)  # unlinking twice is fine
    assert a.links == (c.id,) and b.links == ()


async def test_error_exit_kills_linked_process_and_cancels_its_work(runtime: Runtime) -> None:
    """A crash kills the linked process with reason ``linked``: its in-flight work is
    cancelled, its callers get ProcessExited, its error carries the crash as cause."""
    work = WorkBehaviour()
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(work)
    a.link(b)
    in_flight = b.call_async("block")
    queued = b.call_async("later")
    await _settle()
    with runtime.bus.subscribe(types=["process."]) as events:
        with pytest.raises(ValueError, match="boom"):
            await a.call("crash")
        reason = await b.wait()
        got = _drain(events)
    assert work.cancelled == ["block"] and work.served == []
    assert reason.kind == "linked" and reason.source == a.id
    assert b.status == ProcessStatus.FAILED
    error = reason.error
    assert isinstance(error, LinkedProcessError)
    assert error.source == a.id and error.reason is a.exit_reason
    assert isinstance(error.__cause__, ValueError)
    assert f"linked process {a.id} (a) exited" in str(error)
    for future in (in_flight, queued):
        with pytest.raises(ProcessExited) as caught:
            await future.wait()
        assert caught.value.reason.kind == "linked" and caught.value.__cause__ is error
    failed = [e for e in got if e.process_id == b.id]
    assert [(e.type, e.data["reason"], e.data["status"]) for e in failed] == [
        ("process.failed", "linked", "failed")
    ]
    assert a.links == () and b.links == ()


async def test_link_propagates_both_ways(runtime: Runtime) -> None:
    """Whichever side of a link crashes, the other side dies."""
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(EchoBehaviour(name="b"))
    runtime.link(a, b)
    b.fail(RuntimeError("b gave up"))
    reason = await a.wait()
    assert reason.kind == "linked" and reason.source == b.id
    assert isinstance(reason.error, LinkedProcessError)
    assert str(reason.error.__cause__) == "b gave up"


async def test_normal_exit_does_not_propagate(runtime: Runtime) -> None:
    """A normal exit leaves a non-trapping linked process running (and unlinked)."""
    a = await runtime.spawn(EchoBehaviour())
    b = await runtime.spawn(EchoBehaviour())
    a.link(b)
    a.complete("done")
    await a.wait()
    await _settle()
    assert b.status == ProcessStatus.RUNNING
    assert await b.call("still here") == "still here"
    assert b.links == ()


@pytest.mark.parametrize("how", ["kill", "timeout"])
async def test_killed_and_timed_out_exits_propagate(
    runtime: Runtime, autojump_clock: trio.testing.MockClock, how: str
) -> None:
    """``killed`` and ``timeout`` are abnormal: the linked process dies with ``linked``."""
    a = await runtime.spawn(EchoBehaviour(), timeout=5 if how == "timeout" else None)
    b = await runtime.spawn(EchoBehaviour())
    a.link(b)
    if how == "kill":
        a.kill("operator")
    reason = await b.wait()
    assert reason.kind == "linked"
    assert isinstance(reason.error, LinkedProcessError)
    assert reason.error.reason.kind == ("killed" if how == "kill" else "timeout")
    assert reason.error.__cause__ is None  # these reasons carry no error


async def test_unlink_stops_propagation(runtime: Runtime) -> None:
    """After unlink, a crash no longer reaches the former peer."""
    a = await runtime.spawn(EchoBehaviour())
    b = await runtime.spawn(EchoBehaviour())
    a.link(b)
    a.unlink(b)
    with pytest.raises(ValueError, match="boom"):
        await a.call("crash")
    await _settle()
    assert b.status == ProcessStatus.RUNNING


async def test_chain_of_links_keeps_the_cause(runtime: Runtime) -> None:
    """A-B-C: C crashes, B and A die, and A's error chain reaches C's error."""
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(EchoBehaviour(name="b"))
    c = await runtime.spawn(EchoBehaviour(name="c"))
    a.link(b)
    b.link(c)
    with pytest.raises(ValueError, match="boom") as crash:
        await c.call("crash")
    reason_a = await a.wait()
    reason_b = b.exit_reason
    assert reason_b is not None and reason_b.source == c.id
    assert reason_a.kind == "linked" and reason_a.source == b.id
    assert isinstance(reason_a.error, LinkedProcessError)
    assert reason_a.error.__cause__ is reason_b.error
    assert reason_a.error.__cause__.__cause__ is crash.value
    assert [p.status for p in (a, b, c)] == [ProcessStatus.FAILED] * 3


async def test_link_to_a_gone_process_sends_noproc(runtime: Runtime) -> None:
    """Linking to a finished or unknown process kills the live side at once with a
    ``noproc`` exit signal (a trapping one gets the signal as a message)."""
    gone = await runtime.spawn(EchoBehaviour())
    gone.complete()
    await gone.wait()
    a = await runtime.spawn(EchoBehaviour())
    a.link(gone)
    reason = await a.wait()
    assert reason.kind == "linked" and reason.source == gone.id
    assert isinstance(reason.error, LinkedProcessError)
    assert reason.error.reason.kind == "noproc"

    b = await runtime.spawn(EchoBehaviour())
    runtime.link("p-no-such-process", b)
    error = (await b.wait()).error
    assert isinstance(error, LinkedProcessError) and error.source == "p-no-such-process"
    assert error.reason.kind == "noproc"

    trapper = await runtime.spawn(EchoBehaviour(), trap_exit=True)
    trapper.link(gone)
    signal = trapper.signals.receive_nowait()
    assert isinstance(signal, ExitSignal)
    assert signal.process_id == gone.id and signal.reason.kind == "noproc"
    assert trapper.status == ProcessStatus.RUNNING and trapper.links == ()


async def test_links_between_orchestrators_are_refused(runtime: Runtime) -> None:
    """A process of another runtime cannot be linked or monitored; the error says why."""
    a = await runtime.spawn(EchoBehaviour())
    async with trio.open_nursery() as nursery:
        other = Runtime(nursery)
        b = await other.spawn(EchoBehaviour())
        with pytest.raises(ValueError, match="another orchestrator"):
            a.link(b)
        with pytest.raises(ValueError, match="another orchestrator"):
            runtime.monitor(b)
        await other.shutdown(grace=0)


async def test_link_and_monitor_from_a_sync_tool_thread(runtime: Runtime) -> None:
    """link() and monitor() work from a worker thread (a sync tool) and from the handler."""
    peer = await runtime.spawn(EchoBehaviour(name="peer"))

    @attrs.define
    class Linker:
        name: str = "linker"

        async def handle(self, process: Process, payload: Any) -> Any:
            def sync_tool() -> int:
                current_process().link(peer)
                return current_process().monitor(peer).ref

            return await trio.to_thread.run_sync(sync_tool)

    linker = await runtime.spawn(Linker())
    ref = await linker.call("go")
    assert linker.links == (peer.id,)
    assert [m.ref for m in linker.monitors] == [ref]
    peer.fail("bye")
    assert (await linker.wait()).kind == "linked"


# ------------------------------------------------------------------- trap exit
async def test_trap_exit_receives_every_exit_as_a_signal(runtime: Runtime) -> None:
    """A trapping process gets normal, error and linked exits as ExitSignal messages
    and keeps running."""
    trapper = await runtime.spawn(EchoBehaviour(name="trapper"), trap_exit=True)
    normal = await runtime.spawn(EchoBehaviour(name="normal"))
    crashing = await runtime.spawn(EchoBehaviour(name="crashing"))
    middle = await runtime.spawn(EchoBehaviour(name="middle"))
    far = await runtime.spawn(EchoBehaviour(name="far"))
    for peer in (normal, crashing, middle):
        trapper.link(peer)
    middle.link(far)

    normal.complete("result")
    with pytest.raises(ValueError, match="boom"):
        await crashing.call("crash")
    far.fail(RuntimeError("far away"))
    for proc in (normal, crashing, middle):
        await proc.wait()

    signals = [trapper.signals.receive_nowait() for _ in range(3)]
    assert all(isinstance(s, ExitSignal) for s in signals)
    by_id = {s.process_id: s for s in signals if isinstance(s, ExitSignal)}
    assert by_id[normal.id].reason.kind == "normal"
    assert by_id[normal.id].agent_name == "normal" and by_id[normal.id].error is None
    assert by_id[crashing.id].reason.kind == "error"
    assert isinstance(by_id[crashing.id].error, ValueError)
    assert by_id[middle.id].reason.kind == "linked"
    assert by_id[middle.id].reason.source == far.id
    assert isinstance(by_id[middle.id].error, LinkedProcessError)
    assert by_id[middle.id].timestamp > 0
    assert trapper.status == ProcessStatus.RUNNING
    assert await trapper.call("fine") == "fine"
    assert len(trapper.signals) == 0


async def test_trap_exit_can_be_set_after_spawn(runtime: Runtime) -> None:
    """Setting trap_exit on a running process turns a later link death into a signal."""
    a = await runtime.spawn(EchoBehaviour())
    b = await runtime.spawn(EchoBehaviour())
    a.link(b)
    a.trap_exit = True
    b.kill()
    signal = await a.signals.receive()
    assert isinstance(signal, ExitSignal) and signal.reason.kind == "killed"
    assert a.status == ProcessStatus.RUNNING


async def test_kill_cannot_be_trapped(runtime: Runtime) -> None:
    """kill() ends a trapping process anyway; its peers see reason ``killed``."""
    work = WorkBehaviour()
    trapper = await runtime.spawn(work, trap_exit=True)
    watcher = await runtime.spawn(EchoBehaviour(), trap_exit=True)
    plain = await runtime.spawn(EchoBehaviour())
    trapper.link(watcher)
    trapper.link(plain)
    in_flight = trapper.call_async("block")
    await _settle()
    trapper.kill("operator")
    reason = await trapper.wait()
    assert reason.kind == "killed" and trapper.status == ProcessStatus.STOPPED
    assert work.cancelled == ["block"]
    with pytest.raises(ProcessExited):
        await in_flight.wait()
    signal = watcher.signals.receive_nowait()
    assert isinstance(signal, ExitSignal) and signal.reason.kind == "killed"
    assert (await plain.wait()).kind == "linked"


async def test_signal_channel_overflow_is_counted_and_reported(runtime: Runtime) -> None:
    """A full signal channel drops newer signals without blocking and says how many
    (Lagged) in their place; the channel ends when its process exits."""
    trapper = await runtime.spawn(EchoBehaviour(), trap_exit=True, signal_buffer=2)
    peers = [await runtime.spawn(EchoBehaviour(name=f"peer{i}")) for i in range(5)]
    for peer in peers:
        trapper.link(peer)
    for peer in peers[:4]:
        peer.complete(peer.agent_name)
        await peer.wait()
    assert trapper.signals.dropped_total == 2 and len(trapper.signals) == 2
    first = trapper.signals.receive_nowait()
    assert isinstance(first, ExitSignal) and first.process_id == peers[0].id
    peers[4].complete()
    await peers[4].wait()
    trapper.complete()
    await trapper.wait()
    received = [s async for s in trapper.signals]  # ends: the process has exited
    assert [s.process_id if isinstance(s, ExitSignal) else s for s in received] == [
        peers[1].id,
        Lagged(missed=2),
        peers[4].id,
    ]
    with pytest.raises(ValueError, match="signal_buffer"):
        await runtime.spawn(EchoBehaviour(), signal_buffer=0)


async def test_signal_channel_reader_wakes_and_can_close(runtime: Runtime) -> None:
    """A task waiting on the signal channel wakes for a signal; after close() it gets
    ClosedResourceError and later signals are dropped."""
    trapper = await runtime.spawn(EchoBehaviour(), trap_exit=True)
    peer = await runtime.spawn(EchoBehaviour(name="peer"))
    other = await runtime.spawn(EchoBehaviour())
    trapper.link(peer)
    trapper.link(other)
    got: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def read() -> None:
            got.append(await trapper.signals.receive())

        nursery.start_soon(read)
        await _settle()
        peer.complete()
    assert isinstance(got[0], ExitSignal) and got[0].process_id == peer.id
    await trapper.signals.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await trapper.signals.receive()
    other.complete()
    await other.wait()
    assert trapper.signals.dropped_total == 1


# --------------------------------------------------------------------- monitors
async def test_monitor_fires_once_on_normal_exit_with_the_result(runtime: Runtime) -> None:
    """A monitor reports a normal exit with its result, once; the target is not affected
    by the monitor and the monitor is gone afterwards."""
    target = await runtime.spawn(EchoBehaviour(name="target"))
    monitor = runtime.monitor(target)
    assert monitor.active and monitor.down is None
    target.complete({"answer": 42})
    down = await monitor.wait()
    assert down == monitor.down and await monitor.wait() is down
    assert (down.process_id, down.agent_name, down.reason.kind) == (target.id, "target", "normal")
    assert down.result == {"answer": 42} and down.error is None
    assert down.ref == monitor.ref and down.timestamp == target.completed_at
    assert not monitor.active and monitor.demonitor() is False


async def test_monitor_reports_a_crash_without_killing_the_watcher(runtime: Runtime) -> None:
    """Monitors are unidirectional: the watcher gets a Down with the error and lives on."""
    watcher = await runtime.spawn(EchoBehaviour(name="watcher"))
    target = await runtime.spawn(EchoBehaviour(name="target"))
    monitor = watcher.monitor(target)
    assert watcher.monitors == (monitor,) and monitor.watcher_id == watcher.id
    with pytest.raises(ValueError, match="boom") as crash:
        await target.call("crash")
    down = await monitor.wait()
    assert down.reason.kind == "error" and down.error is crash.value and down.result is None
    # The watcher process also got it on its signal channel (without trapping exits).
    assert watcher.signals.receive_nowait() == down
    assert watcher.status == ProcessStatus.RUNNING and watcher.monitors == ()


async def test_monitor_of_a_gone_process_fires_noproc_at_once(runtime: Runtime) -> None:
    """Monitoring a finished or unknown process fires at once with reason ``noproc``."""
    gone = await runtime.spawn(EchoBehaviour(name="gone"))
    gone.kill()
    await gone.wait()
    down = await runtime.monitor(gone).wait()
    assert (down.process_id, down.agent_name, down.reason.kind) == (gone.id, "gone", "noproc")
    unknown = await runtime.monitor("p-nobody").wait()
    assert (unknown.process_id, unknown.agent_name) == ("p-nobody", "")
    assert unknown.reason.kind == "noproc"


async def test_several_monitors_are_independent_and_demonitor_removes_one(
    runtime: Runtime,
) -> None:
    """Each monitor on one target fires once; demonitor removes exactly the given one,
    which never fires, and waiting on it raises MonitorRemoved."""
    target = await runtime.spawn(EchoBehaviour())
    first, second, third = (runtime.monitor(target) for _ in range(3))
    assert len({first.ref, second.ref, third.ref}) == 3
    assert runtime.demonitor(second) is True
    assert runtime.demonitor(second) is False
    woken: list[BaseException] = []
    async with trio.open_nursery() as nursery:

        async def wait_removed() -> None:
            try:
                await third.wait()
            except MonitorRemoved as exc:
                woken.append(exc)

        nursery.start_soon(wait_removed)
        await _settle()
        third.demonitor()  # wakes the waiter
    assert "was removed (demonitor was called)" in str(woken[0])
    target.fail("gone")
    downs = [await first.wait()]
    assert downs[0].ref == first.ref and downs[0].reason.kind == "error"
    assert second.down is None and not second.active
    with pytest.raises(MonitorRemoved, match="will never fire"):
        await second.wait()


async def test_monitors_of_an_exiting_watcher_are_removed(runtime: Runtime) -> None:
    """When the watcher exits first, its monitors are removed, as in OTP."""
    watcher = await runtime.spawn(EchoBehaviour())
    target = await runtime.spawn(EchoBehaviour())
    monitor = watcher.monitor(target)
    watcher.complete()
    await watcher.wait()
    with pytest.raises(MonitorRemoved, match=f"watcher process {watcher.id} exited"):
        await monitor.wait()
    target.complete()
    await target.wait()
    assert monitor.down is None
    late = runtime.monitor(target, watcher=watcher)
    assert late.down is not None and late.down.reason.kind == "noproc"


# ------------------------------------------------------------------ supervision
async def test_link_death_restarts_a_supervised_process_and_links_survive(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A link death is a crash: a process with strategy=restart is restarted after its
    backoff, its message in flight is delivered again, and its other links persist."""
    work = WorkBehaviour()
    sup = Supervision(max_restarts=5, backoff=Backoff(kind="constant", initial=1))
    b = await runtime.spawn(work, supervision=sup)
    a = await runtime.spawn(EchoBehaviour(name="a"))
    c = await runtime.spawn(EchoBehaviour(name="c"))
    b.link(a)
    b.link(c)
    monitor = runtime.monitor(b)
    in_flight = b.call_async(10)
    await _settle()
    with runtime.bus.subscribe(types=["process."]) as events:
        a.fail(RuntimeError("a failed"))
        assert await in_flight.wait() == 10
        got = _drain(events)
    assert trio.current_time() == 11.0  # 1 s backoff, then the 10 s request again
    assert work.cancelled == [10] and work.served == [10]
    assert b.restart_count == 1 and b.status == ProcessStatus.RUNNING
    restarted = [e for e in got if e.type == "process.restarted"]
    assert [e.process_id for e in restarted] == [b.id]
    assert "LinkedProcessError" in restarted[0].data["detail"]
    assert b.links == (c.id,)  # the link to the dead process is gone, the other stays
    assert monitor.active  # a restart in place is not an exit
    c.fail(RuntimeError("c failed"))
    await c.wait()
    assert await b.call(0) == 0  # served by the next incarnation
    assert b.restart_count == 2 and b.status == ProcessStatus.RUNNING


async def test_link_death_of_an_unsupervised_process_reaches_its_monitors(
    runtime: Runtime,
) -> None:
    """A process killed by a link exits for good: its monitors and links fire with
    reason ``linked``."""
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(EchoBehaviour(name="b"))
    a.link(b)
    monitor = runtime.monitor(b)
    a.fail("a failed")
    down = await monitor.wait()
    assert down.reason.kind == "linked" and isinstance(down.error, LinkedProcessError)
    assert isinstance(down, Down)


# --------------------------------------------------------------------- shutdown
@pytest.mark.parametrize("how", ["stop", "shutdown"])
async def test_a_shutdown_exit_kills_a_linked_peer_at_once(
    runtime: Runtime, autojump_clock: trio.testing.MockClock, how: str
) -> None:
    """SPEC §2.3: ``shutdown`` propagates like any non-normal reason: the non-trapping
    peer is cancelled at once (reason ``linked``, cause chain naming the shutdown), and
    its in-flight and queued callers get ProcessExited with that cause."""
    work = WorkBehaviour()
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(work)
    trapper = await runtime.spawn(EchoBehaviour(name="trapper"), trap_exit=True)
    a.link(b)
    a.link(trapper)
    in_flight, queued = b.call_async(100), b.call_async(1)
    await _settle()
    with runtime.bus.subscribe(types=["process."]) as events:
        with trio.fail_after(1):
            if how == "stop":
                a.stop("operator")
            else:
                await a.shutdown(grace=1)
            reason = await b.wait()
        got = _drain(events)
    assert trio.current_time() == 0  # cancelled at once, not after its 100 s message
    assert reason.kind == "linked" and b.status == ProcessStatus.FAILED
    assert isinstance(reason.error, LinkedProcessError) and reason.error.source == a.id
    assert reason.error.reason.kind == "shutdown"
    assert work.cancelled == [100] and work.served == []
    for future in (in_flight, queued):
        with pytest.raises(ProcessExited) as exited:
            await future.wait()
        assert exited.value.reason.kind == "linked"
        assert isinstance(exited.value.__cause__, LinkedProcessError)
        assert exited.value.__cause__.reason.kind == "shutdown"
    assert [(e.process_id, e.type) for e in got] == [
        (a.id, "process.stopped"),
        (b.id, "process.failed"),
    ]
    signal = trapper.signals.receive_nowait()  # a trapping peer only gets the signal
    assert isinstance(signal, ExitSignal) and signal.reason.kind == "shutdown"
    assert trapper.alive


@pytest.mark.parametrize("how", ["stop", "complete", "fail"])
async def test_a_link_death_cancels_a_peer_that_is_stopping_gracefully(
    runtime: Runtime, autojump_clock: trio.testing.MockClock, how: str
) -> None:
    """A peer finishing its current message after stop/complete/fail is still cancelled
    at once by a link death (reason linked, its caller gets ProcessExited); only kill()
    and an orchestrator shutdown keep it from being crashed."""
    work = WorkBehaviour()
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(work)
    a.link(b)
    in_flight = b.call_async(100)
    await _settle()
    getattr(b, how)(*(["going"] if how == "fail" else []))
    a.fail(RuntimeError("a crashed"))
    with trio.fail_after(1):
        reason = await b.wait()
    assert trio.current_time() == 0 and work.cancelled == [100]
    assert reason.kind == "linked" and isinstance(reason.error, LinkedProcessError)
    assert isinstance(reason.error.__cause__, RuntimeError)
    with pytest.raises(ProcessExited) as exited:
        await in_flight.wait()
    assert exited.value.reason.kind == "linked"


async def test_a_link_death_does_not_override_a_kill(runtime: Runtime) -> None:
    """A process already killed ends with reason killed, whatever link death follows."""
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(WorkBehaviour())
    a.link(b)
    b.call_async("block")
    await _settle()
    b.kill("operator")
    a.fail("a crashed")
    assert (await b.wait()).kind == "killed"


async def test_a_shutdown_link_death_restarts_a_supervised_peer(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A peer killed by a linked process's ``shutdown`` is crashed like by any link
    death: its restart supervision restarts it and re-delivers the message in flight."""
    work = WorkBehaviour()
    sup = Supervision(backoff=Backoff(kind="constant", initial=1))
    a = await runtime.spawn(EchoBehaviour(name="a"))
    b = await runtime.spawn(work, supervision=sup)
    a.link(b)
    in_flight = b.call_async(5)
    await _settle()
    a.stop()
    with trio.fail_after(100):
        assert await in_flight.wait() == 5
    assert trio.current_time() == 6  # 1 s backoff, then the 5 s message again
    assert b.restart_count == 1 and b.alive and b.links == ()


async def test_orchestrator_shutdown_does_not_cascade_through_links(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """During a runtime shutdown linked processes each get their full grace, stop with
    reason ``shutdown`` and no ``process.failed`` is emitted; no task is left."""
    async with trio.open_nursery() as nursery:
        runtime = Runtime(nursery)
        work = WorkBehaviour()
        supervised = Supervision(backoff=Backoff(kind="constant", initial=0))
        b = await runtime.spawn(work)
        a = await runtime.spawn(work, supervision=supervised)
        c = await runtime.spawn(work)
        c.link(a)
        a.link(b)
        monitor = runtime.monitor(a)
        a_call, b_call, c_call = a.call_async(2), b.call_async("block"), c.call_async(1)
        with runtime.bus.subscribe(types=["process."]) as events:
            await _settle()
            await runtime.shutdown(grace=5)  # asks c, then a, then b (reverse start order)
            got = _drain(events)
        assert trio.current_time() == 5.0  # b never finishes: cancelled at the deadline
        assert [(e.process_id, e.type) for e in got] == [
            (c.id, "process.stopped"),
            (a.id, "process.stopped"),
            (b.id, "process.stopped"),
        ]
        assert {e.data["detail"] for e in got[:2]} == {"orchestrator shutdown"}
        assert await a_call.wait() == 2 and await c_call.wait() == 1  # each got its grace
        with pytest.raises(ProcessExited):
            await b_call.wait()
        assert a.restart_count == 0
        assert (await monitor.wait()).reason.kind == "shutdown"
        assert not nursery.child_tasks
        table = runtime._link_table
        assert not (table._links or table._monitors or table._watching)


async def test_no_task_or_bookkeeping_left_after_a_cascade(runtime: Runtime) -> None:
    """After a crash cascades through many links, every process has exited, no task is
    left and the link table is empty."""
    procs = [await runtime.spawn(EchoBehaviour(name=f"p{i}")) for i in range(20)]
    monitors = [runtime.monitor(p, watcher=procs[0]) for p in procs[1:]]
    for left, right in itertools.pairwise(procs):
        left.link(right)
    procs[-1].fail("last one failed")
    for proc in procs:
        await proc.wait()
    assert [str(p.status) for p in procs] == ["failed"] * 20
    assert {p.exit_reason.kind for p in procs[:-1] if p.exit_reason} == {"linked"}
    assert all(m.down is not None for m in monitors)  # procs[0], the watcher, died last
    assert len(procs[0].signals) == 19
    await _settle()
    assert not runtime._nursery.child_tasks
    table = runtime._link_table
    assert not (table._links or table._monitors or table._watching)
    assert runtime.live_count == 0
