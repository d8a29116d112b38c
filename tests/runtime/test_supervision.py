from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from vega_trio import ChildFailed, ProcessExited, RequestError
from vega_trio.runtime import (
    Backoff,
    Event,
    Process,
    ProcessStatus,
    Runtime,
    Supervision,
)

from .conftest import EchoBehaviour


@attrs.define
class FlakyBehaviour:
    """Crashes on "crash" the first ``failures`` times it sees it, then answers."""

    failures: int
    name: str = "flaky"
    seen: int = 0
    restarts: list[bool] = attrs.field(factory=list)

    async def handle(self, process: Process, payload: Any) -> Any:
        if payload == "crash":
            self.seen += 1
            if self.seen <= self.failures:
                raise RuntimeError(f"boom {self.seen}")
            return f"ok after {self.seen - 1} crashes"
        if payload == "block":
            await trio.sleep_forever()
        return payload

    def on_restart(self, process: Process, *, fresh: bool) -> None:
        self.restarts.append(fresh)


async def test_crash_restarts_in_place_and_redelivers(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A supervised crash restarts the same process after its backoff; the message in
    flight is delivered again and its caller gets the retried answer."""
    behaviour = FlakyBehaviour(failures=2)
    sup = Supervision(max_restarts=5, backoff=Backoff(kind="constant", initial=1))
    with runtime.bus.subscribe(types=["process."]) as events:
        proc = await runtime.spawn(behaviour, supervision=sup, name="worker")
        assert await proc.call("crash") == "ok after 2 crashes"
        got = [e for e in _drain(events)]
    assert trio.current_time() == 2.0  # two backoffs of 1 s
    assert proc.incarnation == 3 and proc.restart_count == 2
    assert proc.status == ProcessStatus.RUNNING
    assert runtime.lookup("worker") is proc
    assert [e.type for e in got] == ["process.started", "process.restarted", "process.restarted"]
    assert got[1].data["detail"] == "RuntimeError: boom 1"
    assert behaviour.restarts == [False, False]


async def test_give_up_answers_callers_with_the_final_error(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """More crashes than max_restarts within the window: give up, fail, answer everyone."""
    behaviour = FlakyBehaviour(failures=100)
    sup = Supervision(max_restarts=2, window=60, backoff=Backoff(kind="constant", initial=0))
    gave_up: list[str] = []
    sup = attrs.evolve(sup, on_give_up=lambda p, reason: gave_up.append(reason.detail))
    with runtime.bus.subscribe(types=["supervisor."]) as events:
        proc = await runtime.spawn(behaviour, supervision=sup)
        queued = proc.call_async("later")
        first = proc.call_async("crash")
        with pytest.raises(RuntimeError, match="boom 3"):
            await first.wait()
        (event,) = _drain(events)
    assert behaviour.seen == 3  # the first run and two restarts
    assert proc.status == ProcessStatus.FAILED
    assert event.type == "supervisor.gave_up"
    assert "more than 2 restart(s) within 60s" in event.data["detail"]
    assert gave_up == ["RuntimeError: boom 3"]
    # "later" was queued behind... or ahead of the crash: either it was served or answered.
    assert queued.done()


async def test_stop_strategy_never_restarts(runtime: Runtime) -> None:
    """strategy=stop: the crash ends the process and its caller gets the error."""
    proc = await runtime.spawn(FlakyBehaviour(failures=1), supervision=Supervision(strategy="stop"))
    with pytest.raises(RuntimeError, match="boom 1"):
        await proc.call("crash")
    await proc.wait()
    assert proc.status == ProcessStatus.FAILED and proc.restart_count == 0


async def test_escalate_crashes_the_parent_with_the_cause_chain(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """strategy=escalate hands the failure to the parent, which applies its own policy."""
    parent_behaviour = FlakyBehaviour(failures=0, name="parent")
    parent = await runtime.spawn(
        parent_behaviour,
        supervision=Supervision(max_restarts=1, backoff=Backoff(kind="constant", initial=0)),
    )
    child = await runtime.spawn(
        FlakyBehaviour(failures=1, name="child"),
        parent=parent,
        supervision=Supervision(strategy="escalate"),
    )
    with runtime.bus.subscribe(types=["process.restarted"]) as events:
        with pytest.raises(RuntimeError, match="boom 1"):
            await child.call("crash")
        await child.wait()
        await trio.testing.wait_all_tasks_blocked()
        (restarted,) = _drain(events)
    assert restarted.process_id == parent.id
    assert "ChildFailed" in restarted.data["detail"]
    assert parent.restart_count == 1 and parent.status == ProcessStatus.RUNNING
    assert await parent.call("still here") == "still here"


async def test_escalation_without_parent_supervision_fails_the_parent(runtime: Runtime) -> None:
    """An unsupervised parent that receives an escalation fails with ChildFailed."""
    parent = await runtime.spawn(EchoBehaviour(name="parent"))
    child = await runtime.spawn(
        FlakyBehaviour(failures=1), parent=parent, supervision=Supervision(strategy="escalate")
    )
    with pytest.raises(RuntimeError):
        await child.call("crash")
    reason = await parent.wait()
    assert reason.kind == "error" and isinstance(reason.error, ChildFailed)
    assert isinstance(reason.error.__cause__, RuntimeError)
    assert reason.error.child_id == child.id


async def test_kill_during_backoff(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Killing a process while it waits to restart ends it at once; its caller is answered."""
    sup = Supervision(backoff=Backoff(kind="constant", initial=100))
    proc = await runtime.spawn(FlakyBehaviour(failures=5), supervision=sup)
    future = proc.call_async("crash")
    await trio.testing.wait_all_tasks_blocked()
    assert proc.status == ProcessStatus.PENDING
    proc.kill("operator")
    await proc.wait()
    assert trio.current_time() == 0
    assert proc.status == ProcessStatus.STOPPED
    with pytest.raises(ProcessExited):
        await future.wait()


async def test_restart_state_fresh_is_passed_to_the_behaviour(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """restart_state=fresh tells the behaviour to start over."""
    behaviour = FlakyBehaviour(failures=1)
    sup = Supervision(restart_state="fresh", backoff=Backoff(kind="constant", initial=0))
    proc = await runtime.spawn(behaviour, supervision=sup)
    await proc.call("crash")
    assert behaviour.restarts == [True]


async def test_unsupervised_crash_still_exits(runtime: Runtime) -> None:
    """Without supervision a crash ends the process (no restart, caller gets the error)."""
    proc = await runtime.spawn(FlakyBehaviour(failures=1))
    with pytest.raises(RuntimeError):
        await proc.call("crash")
    await proc.wait()
    assert proc.status == ProcessStatus.FAILED and proc.incarnation == 1


def _drain(subscription: Any) -> list[Event]:
    items = []
    while (item := subscription.receive_nowait()) is not None:
        assert isinstance(item, Event)
        items.append(item)
    return items


async def test_the_backoff_starts_over_after_a_stable_incarnation(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A crash after the process ran for ``window`` seconds waits the first backoff again
    (the restart engine's streak), while restart_count keeps counting."""
    sup = Supervision(max_restarts=-1, window=10, backoff=Backoff(initial=1, max=100))
    proc = await runtime.spawn(EchoBehaviour(), supervision=sup)
    waits = []
    with runtime.bus.subscribe(types=["process.restarted"]) as restarted:
        for pause in (0, 0, 0, 10, 0):
            await trio.sleep(pause)
            proc._crash_from_outside(RuntimeError("boom"), "test")
            start = trio.current_time()
            await restarted.receive()
            waits.append(trio.current_time() - start)
    assert waits == [1, 2, 4, 1, 2]
    assert proc.restart_count == 5


async def test_kill_during_a_zero_backoff_restart_ends_the_process(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """With no backoff the restart waits one checkpoint; a kill meanwhile still ends the
    process (killed, not restarted) and answers its caller."""
    sup = Supervision(
        backoff=Backoff(kind="constant", initial=0),
        on_restart=lambda process, _: process.kill("during the restart"),
    )
    proc = await runtime.spawn(FlakyBehaviour(failures=5), supervision=sup)
    with pytest.raises(ProcessExited):
        await proc.call("crash")
    reason = await proc.wait()
    assert reason.kind == "killed" and proc.incarnation == 1
    assert proc.status == ProcessStatus.STOPPED


async def test_a_link_death_during_a_zero_backoff_restart_counts_as_a_crash(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """With no backoff, a failure delivered while the restart waits its checkpoint is
    decided on afresh, as during a backoff."""
    seen: list[int] = []

    def on_restart(process: Process, number: int) -> None:
        seen.append(number)
        if number == 1:
            process._crash_from_outside(RuntimeError("second failure"), "test")

    sup = Supervision(backoff=Backoff(kind="constant", initial=0), on_restart=on_restart)
    proc = await runtime.spawn(FlakyBehaviour(failures=1), supervision=sup)
    assert await proc.call("crash") == "ok after 1 crashes"
    assert seen == [1, 2] and proc.restart_count == 2 and proc.incarnation == 2


async def test_a_crash_during_the_backoff_counts_as_a_new_crash(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A failure delivered while a process waits to restart is decided on afresh."""
    sup = Supervision(max_restarts=5, backoff=Backoff(kind="constant", initial=10))
    proc = await runtime.spawn(FlakyBehaviour(failures=1), supervision=sup)
    future = proc.call_async("crash")
    await trio.testing.wait_all_tasks_blocked()
    assert proc.status == ProcessStatus.PENDING and proc.restart_count == 1
    proc._crash_from_outside(RuntimeError("second failure"), "test")
    assert await future.wait() == "ok after 1 crashes"
    assert proc.restart_count == 2
    assert trio.current_time() == 10  # the second backoff started at the second failure


# ------------------------------------------------------------------- escalation
class _SpentBudget(RequestError):
    """A request error that ends a supervised process (like a spent budget)."""

    @property
    def exit_kind(self) -> str | None:
        return "budget_exceeded"


@attrs.define
class _ExitBehaviour:
    """Ends its process in the way the payload names."""

    name: str = "child"

    async def handle(self, process: Process, payload: Any) -> Any:
        if payload == "error":
            raise RuntimeError("child crashed")
        if payload == "budget_exceeded":
            raise _SpentBudget("budget spent")
        if payload == "block":
            await trio.sleep_forever()
        return payload


async def _end_child(runtime: Runtime, child: Process, how: str) -> None:
    """End ``child`` with exit reason ``how`` (SPEC's exit kinds)."""
    if how in ("error", "budget_exceeded"):
        with pytest.raises(RequestError if how == "budget_exceeded" else RuntimeError):
            await child.call(how)
    elif how == "killed":
        child.kill("test")
    elif how == "normal":
        child.complete("done")
    elif how == "shutdown":
        child.stop("test")
    elif how == "linked":
        other = await runtime.spawn(EchoBehaviour(name="other"))
        other.link(child)
        other.fail(RuntimeError("linked process failed"))
    else:
        assert how == "timeout"  # its lifetime (see the spawn) runs out
    with trio.fail_after(100):
        reason = await child.wait()
    assert reason.kind == how


_EXIT_KINDS = ["error", "linked", "timeout", "killed", "budget_exceeded", "normal", "shutdown"]


@pytest.mark.parametrize("how", _EXIT_KINDS)
async def test_escalate_passes_every_abnormal_exit_to_the_parent(
    runtime: Runtime, autojump_clock: trio.testing.MockClock, how: str
) -> None:
    """SPEC §2.2: escalate hands every exit but normal and shutdown — error, linked,
    timeout, killed, budget_exceeded — to the parent, which crashes with ChildFailed
    (the child's error as cause); normal and shutdown leave the parent alone."""
    parent = await runtime.spawn(EchoBehaviour(name="parent"))
    child = await runtime.spawn(
        _ExitBehaviour(),
        parent=parent,
        supervision=Supervision(strategy="escalate"),
        timeout=10 if how == "timeout" else None,
    )
    await _end_child(runtime, child, how)
    await trio.testing.wait_all_tasks_blocked()
    if how in ("normal", "shutdown"):
        assert parent.alive
        return
    with trio.fail_after(1):
        reason = await parent.wait()
    assert reason.kind == "error" and isinstance(reason.error, ChildFailed)
    assert reason.error.child_id == child.id and f"escalated: {how}" in str(reason.error)
    assert child.exit_reason is not None
    assert reason.error.__cause__ is child.exit_reason.error


@given(exits=st.lists(st.sampled_from(_EXIT_KINDS), max_size=12))
def test_escalation_matches_the_otp_model(exits: list[str]) -> None:
    """Random sequences of child exits under one restarting parent: the parent is
    restarted exactly once per abnormal exit (OTP: everything but normal and shutdown)
    and never for the others."""

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            runtime = Runtime(nursery)
            parent = await runtime.spawn(
                EchoBehaviour(name="parent"),
                supervision=Supervision(
                    max_restarts=-1, backoff=Backoff(kind="constant", initial=0)
                ),
            )
            expected = 0
            for how in exits:
                child = await runtime.spawn(
                    _ExitBehaviour(),
                    parent=parent,
                    supervision=Supervision(strategy="escalate"),
                    timeout=1 if how == "timeout" else None,
                )
                await _end_child(runtime, child, how)
                await trio.testing.wait_all_tasks_blocked()
                expected += how not in ("normal", "shutdown")
                assert parent.restart_count == expected, (how, exits)
                assert parent.alive
            await runtime.shutdown(grace=0)

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
