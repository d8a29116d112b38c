"""A supervisor is a process for links and monitors (SPEC §2.2): it can be monitored and
linked, it traps exits (its owner's exit shuts it down, others are logged and ignored),
and its own exit reaches its monitors and links like a process's."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import (
    Down,
    ExitSignal,
    LinkedProcessError,
    MonitorRemoved,
    ProcessExited,
    RestartIntensityError,
)
from vega_trio.runtime import (
    ChildSpec,
    Process,
    ProcessStatus,
    Runtime,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)

from .conftest import EchoBehaviour


def spec(max_restarts: int = 0, **options: Any) -> SupervisorSpec:
    """A supervisor of two echo workers, "a" then "b"."""
    return SupervisorSpec(
        max_restarts=max_restarts,
        children=[ChildSpec(id=c, start=lambda c=c: EchoBehaviour(name=c)) for c in "ab"],
        **options,
    )


def child(sup: Supervisor, child_id: str) -> Process:
    current = sup.child(child_id)
    assert isinstance(current, Process)
    return current


async def give_up(sup: Supervisor) -> None:
    """Crash a child of ``sup`` (max_restarts=0) so that it gives up, and let it exit."""
    with pytest.raises(ValueError, match="boom"):
        await child(sup, "a").call("crash")
    await sup.wait()
    await trio.testing.wait_all_tasks_blocked()


@asynccontextmanager
async def running(
    runtime: Runtime, the_spec: SupervisorSpec, parent: Process | None = None
) -> AsyncIterator[Supervisor]:
    """Run ``the_spec`` in its own task; a give-up is the test's business, not an error."""

    async def run(*, task_status: trio.TaskStatus[Supervisor]) -> None:  # noqa: ASYNC128 - spec.run does
        try:
            await the_spec.run(runtime, parent=parent, task_status=task_status)
        except RestartIntensityError:
            pass

    async with trio.open_nursery() as nursery:
        yield await nursery.start(run)
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------- monitors
async def test_monitor_of_a_supervisor_fires_once_with_its_exit_reason(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """monitor(supervisor) fires exactly once when it gives up, with reason shutdown;
    the Down reaches the monitor and the watcher's signal channel (no hang)."""
    watcher = await runtime.spawn(EchoBehaviour(name="watcher"))
    async with running(runtime, spec()) as sup:
        monitor = runtime.monitor(sup, watcher=watcher)
        by_id = runtime.monitor(sup.id)
        assert monitor.active and monitor.target_id == sup.id
        await give_up(sup)
        with trio.fail_after(1):
            down = await monitor.wait()
            assert (await by_id.wait()).reason.kind == "shutdown"
    assert isinstance(down, Down) and down.process_id == sup.id
    assert down.agent_name == "supervisor" and down.reason == sup.exit_reason
    assert down.reason.kind == "shutdown" and "max restart intensity" in down.reason.detail
    assert watcher.signals.receive_nowait() == down
    with pytest.raises(trio.WouldBlock):
        watcher.signals.receive_nowait()  # exactly once
    assert not monitor.active


async def test_monitor_of_an_exited_supervisor_fires_noproc_at_once(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Monitoring a supervisor that has exited (by handle or by id) fires ``noproc``."""
    async with open_supervisor(runtime, spec()) as sup:
        pass
    assert sup.exit_reason is not None
    for target in (sup, sup.id):
        down = runtime.monitor(target).down
        assert down is not None and down.reason.kind == "noproc"


async def test_demonitor_a_supervisor(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """demonitor removes exactly the given monitor of a supervisor; the other fires."""
    async with open_supervisor(runtime, spec()) as sup:
        kept, removed = runtime.monitor(sup), runtime.monitor(sup)
        assert runtime.demonitor(removed) and not runtime.demonitor(removed)
    with trio.fail_after(1):
        assert (await kept.wait()).reason.kind == "shutdown"
        with pytest.raises(MonitorRemoved):
            await removed.wait()


# ------------------------------------------------------------------------ links
async def test_a_supervisor_that_gives_up_kills_its_linked_peers(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """link(supervisor, p): when the supervisor gives up (reason shutdown), a
    non-trapping peer is cancelled at once with reason linked — its in-flight caller
    gets ProcessExited whose cause names the supervisor — and a trapping peer gets the
    exit signal."""
    peer = await runtime.spawn(EchoBehaviour(name="peer"))
    trapper = await runtime.spawn(EchoBehaviour(name="trapper"), trap_exit=True)
    async with running(runtime, spec()) as sup:
        runtime.link(sup, peer)
        trapper.link(sup.id)  # by id too
        assert set(sup.links) == {peer.id, trapper.id} and peer.links == (sup.id,)
        in_flight = peer.call_async("block")
        await trio.testing.wait_all_tasks_blocked()
        await give_up(sup)
    reason = await peer.wait()
    assert trio.current_time() == 0
    assert reason.kind == "linked" and isinstance(reason.error, LinkedProcessError)
    assert reason.error.source == sup.id and reason.error.reason.kind == "shutdown"
    with pytest.raises(ProcessExited) as exited:
        await in_flight.wait()
    assert isinstance(exited.value.__cause__, LinkedProcessError)
    signal = trapper.signals.receive_nowait()
    assert isinstance(signal, ExitSignal) and signal.process_id == sup.id
    assert signal.reason.kind == "shutdown" and trapper.alive
    table = runtime._link_table
    assert not (table._links.get(sup) or table._monitors.get(sup))
    assert runtime._supervisors == {}


async def test_a_killed_supervisor_kills_its_linked_peers(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """kill() of a supervisor is an exit with reason killed: linked peers die (linked)."""
    peer = await runtime.spawn(EchoBehaviour(name="peer"))
    async with running(runtime, spec()) as sup:
        runtime.link(peer, sup)
        sup.kill("operator")
        with trio.fail_after(1):
            reason = await peer.wait()
    assert reason.kind == "linked" and reason.error is not None
    assert isinstance(reason.error, LinkedProcessError)
    assert reason.error.reason.kind == "killed"


async def test_linking_an_exited_supervisor_sends_noproc(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Linking a supervisor that has exited kills the non-trapping side with noproc."""
    async with open_supervisor(runtime, spec()) as sup:
        pass
    peer = await runtime.spawn(EchoBehaviour(name="peer"))
    runtime.link(peer, sup)
    with trio.fail_after(1):
        reason = await peer.wait()
    assert isinstance(reason.error, LinkedProcessError)
    assert reason.error.reason.kind == "noproc" and reason.error.source == sup.id


async def test_a_supervisor_traps_exits_of_linked_processes(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    """A supervisor traps exits: a linked process that is not its owner dies — the
    supervisor logs it and goes on (no crash, no restart, children untouched); its
    children's own link exits are reported by their watchers, not logged."""
    caplog.set_level(logging.INFO, logger="vega_trio.runtime")
    async with open_supervisor(runtime, spec(max_restarts=3)) as sup:
        stranger = await runtime.spawn(EchoBehaviour(name="stranger"))
        quiet = await runtime.spawn(EchoBehaviour(name="quiet"))
        runtime.link(sup, stranger)
        runtime.link(sup, quiet)
        runtime.link(sup, child(sup, "b"))
        before = (child(sup, "a").id, child(sup, "b").id)
        child(sup, "b").stop()  # its watcher reports it: restarted, not logged
        stranger.fail(RuntimeError("stranger failed"))
        quiet.complete()
        with trio.fail_after(1):
            await stranger.wait()
            await quiet.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert sup.alive and sup.restart_count == 1 and sup.links == ()
        assert child(sup, "a").id == before[0] and child(sup, "b").id != before[1]
    records = [r for r in caplog.records if "ignored the exit of linked process" in r.message]
    assert sorted((r.levelno, stranger.id in r.message) for r in records) == [
        (logging.INFO, False),
        (logging.WARNING, True),
    ]
    assert any("stranger failed" in r.message for r in records)


@pytest.mark.parametrize(
    ("how", "kind", "status"),
    [
        ("fail", "linked", ProcessStatus.FAILED),
        ("kill", "linked", ProcessStatus.FAILED),
        ("stop", "shutdown", ProcessStatus.STOPPED),
        ("complete", "normal", ProcessStatus.COMPLETED),
    ],
)
async def test_an_owner_exit_over_a_link_shuts_the_supervisor_down(
    runtime: Runtime,
    autojump_clock: trio.testing.MockClock,
    how: str,
    kind: str,
    status: ProcessStatus,
) -> None:
    """The exit of a linked owner (the ``parent`` process) shuts the supervisor down:
    children end in reverse start order, nothing restarts, monitors fire; an abnormal
    owner exit becomes reason linked with the owner's error as the cause."""
    owner = await runtime.spawn(EchoBehaviour(name="owner"))
    with runtime.bus.subscribe(types=["process.", "supervisor."]) as events:
        async with running(runtime, spec(max_restarts=3), parent=owner) as sup:
            assert sup.owner_id == owner.id
            runtime.link(owner, sup)
            monitor = runtime.monitor(sup)
            if how == "fail":
                owner.fail(RuntimeError("owner failed"))
            else:
                getattr(owner, how)()
            with trio.fail_after(5):
                down = await monitor.wait()
        got = []
        while (event := events.receive_nowait()) is not None:
            got.append(event)
    reason = sup.exit_reason
    assert reason is not None and reason.kind == kind and sup.status == status
    assert down.reason == reason and owner.id in reason.detail
    assert not sup.gave_up and sup.restart_count == 0
    if kind == "linked":
        assert isinstance(reason.error, LinkedProcessError) and reason.error.source == owner.id
        if how == "fail":
            assert isinstance(reason.error.__cause__, RuntimeError)
    stopped = [
        getattr(e, "agent", None) for e in got if e.type == "process.stopped" and e.agent != "owner"
    ]
    assert stopped == ["b", "a"]
    assert not [e for e in got if e.type in ("process.restarted", "supervisor.gave_up")]
    assert runtime.live_count == 0


async def test_unlink_a_supervisor_stops_propagation(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """unlink(supervisor, p) removes both sides: the supervisor's exit no longer
    reaches p."""
    peer = await runtime.spawn(EchoBehaviour(name="peer"))
    async with open_supervisor(runtime, spec()) as sup:
        runtime.link(sup, peer)
        runtime.unlink(peer, sup.id)
        assert sup.links == () and peer.links == ()
    assert peer.alive


async def test_what_is_not_a_process_is_refused_at_once(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Links, monitors, demonitor and the registry refuse wrong arguments with a clear
    TypeError at the call — never a hang or a crash later."""
    peer = await runtime.spawn(EchoBehaviour(name="peer"))
    async with open_supervisor(runtime, spec()) as sup:
        with pytest.raises(TypeError, match="take a Process, a Supervisor, or the id"):
            runtime.link(peer, object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="take a Process, a Supervisor, or the id"):
            runtime.monitor(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="watcher must be a Process"):
            runtime.monitor(peer, watcher=sup)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="demonitor takes the Monitor"):
            runtime.demonitor(sup)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="register takes a Process"):
            runtime.register("team", sup)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="parent must be a Process or a process id"):
            await runtime.spawn(EchoBehaviour(), parent=sup)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="join takes a Process"):
            runtime.group("g").join(sup)  # type: ignore[arg-type]
        assert peer.links == () and sup.links == ()
