from __future__ import annotations

import contextlib
import functools
import json
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

import attrs
import pytest
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from vega_trio import (
    ChildNotFound,
    ChildRunning,
    ChildStartFailed,
    DuplicateChild,
    ExitSignal,
    LinkedProcessError,
    ProcessExited,
    RestartIntensityError,
    SupervisorNotRunning,
)
from vega_trio.runtime import (
    Backoff,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Event,
    Future,
    Monitor,
    Process,
    Runtime,
    Supervision,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)

from .conftest import EchoBehaviour

# --------------------------------------------------------------------- helpers


def worker(child_id: str, log: list[str] | None = None, **options: Any) -> ChildSpec:
    """A child spec whose behaviour echoes and is named like the child; each start of
    it is appended to ``log``."""

    def start() -> EchoBehaviour:
        if log is not None:
            log.append(child_id)
        return EchoBehaviour(name=child_id)

    return ChildSpec(id=child_id, start=start, **options)


def proc(sup: Supervisor, child_id: str) -> Process:
    current = sup.child(child_id)
    assert isinstance(current, Process), f"{child_id} is {current!r}"
    return current


def sub(sup: Supervisor, child_id: str) -> Supervisor:
    current = sup.child(child_id)
    assert isinstance(current, Supervisor), f"{child_id} is {current!r}"
    return current


def ids(sup: Supervisor) -> dict[str, str | None]:
    return {c.id: None if c.process is None else c.process.id for c in sup.which_children()}


def drain(subscription: Any) -> list[Event]:
    items = []
    while (item := subscription.receive_nowait()) is not None:
        assert isinstance(item, Event)
        items.append(item)
    return items


def stopped(events: list[Event]) -> list[str | None]:
    """Agent names of the processes that exited without failing, in exit order."""
    return [e.agent for e in events if e.type in ("process.stopped", "process.completed")]


async def crash(process: Process) -> None:
    """Make ``process`` crash on a message and let the supervisors react."""
    with pytest.raises(ValueError, match="boom"):
        await process.call("crash")
    await trio.testing.wait_all_tasks_blocked()


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


# ------------------------------------------------------------------ life cycle


async def test_children_start_in_order_and_stop_in_reverse(runtime: Runtime) -> None:
    """Children start in spec order before started() returns and stop in reverse order."""
    log: list[str] = []
    spec = SupervisorSpec(children=[worker(c, log) for c in "abc"])
    with runtime.bus.subscribe(types=["process.", "supervisor."]) as events:
        async with open_supervisor(runtime, spec) as sup:
            assert log == ["a", "b", "c"]
            assert [c.id for c in sup.which_children()] == ["a", "b", "c"]
            assert await proc(sup, "b").call("hi") == "hi"
        got = drain(events)
    assert stopped(got) == ["c", "b", "a"]
    assert [e.type for e in got if e.type.startswith("supervisor.")] == [
        "supervisor.started",
        "supervisor.stopped",
    ]
    assert sup.exit_reason is not None and sup.exit_reason.kind == "shutdown"
    assert runtime.live_count == 0


async def test_embedding_with_nursery_start(runtime: Runtime) -> None:
    """nursery.start(spec.run, runtime) hands back the Supervisor; shutdown ends the task."""
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(SupervisorSpec(children=[worker("a")]).run, runtime)
        assert isinstance(sup, Supervisor) and sup.alive
        assert await proc(sup, "a").call(1) == 1
        reason = await sup.shutdown()
    assert reason.kind == "shutdown" and sup.status == "stopped"
    assert runtime.live_count == 0


async def test_registered_name_follows_the_child(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A child's registered name is bound to each new process that runs it."""
    spec = SupervisorSpec(children=[worker("a", name="alpha")])
    async with open_supervisor(runtime, spec) as sup:
        first = runtime.lookup("alpha")
        await crash(first)
        second = runtime.lookup("alpha")
        assert second is proc(sup, "a") and second is not first
        assert list(runtime.registered()) == ["alpha"]


# ------------------------------------------------------------------ strategies


async def test_one_for_one_restarts_only_the_failed_child(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """one_for_one: the failed child gets a new process; its siblings keep theirs."""
    log: list[str] = []
    spec = SupervisorSpec(children=[worker(c, log) for c in "abc"])
    with runtime.bus.subscribe(types=["process."]) as events:
        async with open_supervisor(runtime, spec) as sup:
            before = ids(sup)
            await crash(proc(sup, "b"))
            after = ids(sup)
            got = drain(events)
    assert after["a"] == before["a"] and after["c"] == before["c"]
    assert after["b"] not in (None, before["b"])
    assert log == ["a", "b", "c", "b"]
    assert stopped(got) == []  # nobody else was touched
    (restarted,) = [e for e in got if e.type == "process.restarted"]
    assert restarted.process_id == after["b"]
    assert restarted.data["previous_id"] == before["b"]
    assert restarted.data["child_id"] == "b"
    assert restarted.data["reason"] == "error"
    assert sup.restart_count == 1


async def test_one_for_all_restarts_everyone(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """one_for_all: the others are terminated in reverse start order, then all start in order."""
    log: list[str] = []
    spec = SupervisorSpec(strategy="one_for_all", children=[worker(c, log) for c in "abcd"])
    with runtime.bus.subscribe(types=["process."]) as events:
        async with open_supervisor(runtime, spec) as sup:
            before = ids(sup)
            log.clear()
            await crash(proc(sup, "b"))
            after = ids(sup)
            got = drain(events)
    assert stopped(got) == ["d", "c", "a"]
    assert log == ["a", "b", "c", "d"]
    assert all(after[c] not in (None, before[c]) for c in "abcd")
    assert [e.data["child_id"] for e in got if e.type == "process.restarted"] == list("abcd")
    assert sup.restart_count == 1  # one restart, however many children it took


async def test_rest_for_one_restarts_the_child_and_later_ones(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """rest_for_one: the failed child and those started after it restart; earlier ones stay."""
    log: list[str] = []
    spec = SupervisorSpec(strategy="rest_for_one", children=[worker(c, log) for c in "abcd"])
    with runtime.bus.subscribe(types=["process."]) as events:
        async with open_supervisor(runtime, spec) as sup:
            before = ids(sup)
            log.clear()
            await crash(proc(sup, "b"))
            after = ids(sup)
            got = drain(events)
    assert stopped(got) == ["d", "c"]
    assert log == ["b", "c", "d"]
    assert after["a"] == before["a"]
    assert all(after[c] not in (None, before[c]) for c in "bcd")


async def test_temporary_child_is_never_restarted(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A temporary child is removed when it exits, or when a sibling's restart terminates it."""
    log: list[str] = []
    spec = SupervisorSpec(
        strategy="one_for_all",
        children=[
            worker("a", log),
            worker("t1", log, restart="temporary"),
            worker("t2", log, restart="temporary"),
        ],
    )
    async with open_supervisor(runtime, spec) as sup:
        await crash(proc(sup, "t1"))
        assert [c.id for c in sup.which_children()] == ["a", "t2"]
        assert sup.restart_count == 0
        await crash(proc(sup, "a"))  # one_for_all terminates t2: it is gone for good
        assert [c.id for c in sup.which_children()] == ["a"]
    assert log == ["a", "t1", "t2", "a"]


async def test_transient_child_restarts_only_after_abnormal_exits(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """transient: restarted after a crash or a kill, not after normal or shutdown exits."""
    log: list[str] = []
    spec = SupervisorSpec(max_restarts=10, children=[worker("t", log, restart="transient")])
    async with open_supervisor(runtime, spec) as sup:
        await crash(proc(sup, "t"))
        proc(sup, "t").kill("operator")
        await settle()
        proc(sup, "t").fail("bad state")
        await settle()
        assert log == ["t"] * 4 and sup.restart_count == 3
        proc(sup, "t").complete("done")
        await settle()
        assert sup.child("t") is None
        assert sup.which_children() == [
            ChildInfo(id="t", process=None, type="worker", restart="transient")
        ]
        await sup.restart_child("t")
        proc(sup, "t").stop("asked to")
        await settle()
        assert sup.child("t") is None
    assert log == ["t"] * 5 and sup.restart_count == 3


async def test_permanent_child_restarts_after_a_normal_exit(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """permanent: even a normal completion is followed by a restart (counted)."""
    spec = SupervisorSpec(children=[worker("p")])
    async with open_supervisor(runtime, spec) as sup:
        first = proc(sup, "p")
        first.complete()
        await settle()
        assert proc(sup, "p") is not first and sup.restart_count == 1


async def test_terminated_children_never_trigger_another_restart(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """terminate_child and one_for_all siblings: exits the supervisor caused are not restarts."""
    log: list[str] = []
    spec = SupervisorSpec(
        strategy="one_for_all", max_restarts=1, children=[worker(c, log) for c in "abc"]
    )
    with runtime.bus.subscribe(types=["process.restarted", "supervisor."]) as events:
        async with open_supervisor(runtime, spec) as sup:
            await sup.terminate_child("c")
            await settle()
            assert sup.child("c") is None and sup.restart_count == 0
            # One crash, two siblings terminated: still exactly one restart (max is 1).
            await crash(proc(sup, "a"))
            assert sup.alive and sup.restart_count == 1
            got = drain(events)
    assert [e.type for e in got] == ["supervisor.started"] + ["process.restarted"] * 3
    # NOTE: OTP's one_for_all restarts every child spec, also one terminated earlier.
    assert log == ["a", "b", "c", "a", "b", "c"]


async def test_dynamic_children(runtime: Runtime, autojump_clock: trio.testing.MockClock) -> None:
    """start/terminate/restart/delete_child, which_children and count_children, with errors."""
    spec = SupervisorSpec(children=[worker("a")])
    async with open_supervisor(runtime, spec) as sup:
        started = await sup.start_child(worker("b", restart="transient"))
        assert started is proc(sup, "b")
        nested = await sup.start_child(
            ChildSpec(id="team", start=SupervisorSpec(children=[worker("x"), worker("y")]))
        )
        assert isinstance(nested, Supervisor) and nested.name == "team"
        assert [(c.id, c.type) for c in sup.which_children()] == [
            ("a", "worker"),
            ("b", "worker"),
            ("team", "supervisor"),
        ]
        assert sup.count_children() == ChildCounts(specs=3, active=3, supervisors=1, workers=2)
        assert runtime.live_count == 4

        with pytest.raises(DuplicateChild, match="'b'"):
            await sup.start_child(worker("b"))
        with pytest.raises(ChildRunning, match="terminate_child it first"):
            await sup.restart_child("b")
        with pytest.raises(ChildRunning):
            await sup.delete_child("b")
        with pytest.raises(ChildNotFound, match="'a', 'b', 'team'") as not_found:
            await sup.terminate_child("zzz")
        assert not_found.value.known_ids == ("a", "b", "team")
        with pytest.raises(ChildNotFound):
            sup.child("zzz")

        await sup.terminate_child("team")
        assert nested.exit_reason is not None and nested.exit_reason.kind == "shutdown"
        assert sup.count_children() == ChildCounts(specs=3, active=2, supervisors=1, workers=2)
        assert runtime.live_count == 2
        again = await sup.restart_child("team")
        assert isinstance(again, Supervisor) and again is not nested
        await sup.terminate_child("b")
        await sup.delete_child("b")
        assert [c.id for c in sup.which_children()] == ["a", "team"]
    with pytest.raises(SupervisorNotRunning, match="not running"):
        await sup.start_child(worker("c"))
    with pytest.raises(SupervisorNotRunning):
        await sup.terminate_child("a")


async def test_start_failure_at_startup(runtime: Runtime) -> None:
    """A child whose start fails: started ones are terminated in reverse, the error comes
    out of nursery.start as ChildStartFailed with the cause chained."""

    def broken() -> EchoBehaviour:
        raise RuntimeError("no config")

    nested = SupervisorSpec(children=[worker("x"), ChildSpec(id="bad", start=broken)])
    spec = SupervisorSpec(children=[worker("a"), worker("b"), ChildSpec(id="team", start=nested)])
    with runtime.bus.subscribe(types=["process."]) as events:
        async with trio.open_nursery() as nursery:
            with pytest.raises(ChildStartFailed, match="child 'team'") as failed:
                await nursery.start(spec.run, runtime)
        got = drain(events)
    assert failed.value.child_id == "team"
    inner = failed.value.__cause__
    assert isinstance(inner, ChildStartFailed) and inner.child_id == "bad"
    assert isinstance(inner.__cause__, RuntimeError)
    assert stopped(got) == ["x", "b", "a"]
    assert runtime.live_count == 0


async def test_failed_restart_is_tried_again_and_counts(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A restart whose start fails is tried again (each try counts), as OTP's try_again."""
    failures = [2]

    def flaky() -> EchoBehaviour:
        if failures[0] and len(starts) > 0:
            failures[0] -= 1
            raise RuntimeError("not yet")
        starts.append(1)
        return EchoBehaviour(name="w")

    starts: list[int] = []
    spec = SupervisorSpec(max_restarts=3, children=[ChildSpec(id="w", start=flaky)])
    with pytest.raises(RestartIntensityError):
        async with open_supervisor(runtime, spec) as sup:
            await crash(proc(sup, "w"))
            assert len(starts) == 2 and sup.restart_count == 3 and sup.alive
            assert await proc(sup, "w").call("ok") == "ok"
            # From now on it never starts: the tries use up the intensity.
            failures[0] = 1_000
            await crash(proc(sup, "w"))
            await sleep_forever_for_test()
    assert sup.gave_up and len(starts) == 2


async def test_requests_get_in_between_retries(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Retries of a failing restart go through the message loop, so requests are served
    in between: terminate_child ends the retries, shutdown still works."""
    broken = [False]
    failing = trio.Event()

    def start() -> EchoBehaviour:
        if broken[0]:
            failing.set()
            raise RuntimeError("broken for good")
        return EchoBehaviour(name="w")

    spec = SupervisorSpec(max_restarts=-1, children=[ChildSpec(id="w", start=start), worker("a")])
    async with open_supervisor(runtime, spec) as sup:
        broken[0] = True
        proc(sup, "w").fail("boom")
        await failing.wait()  # the retries have begun (they never succeed, nor block)
        (w, a) = sup.which_children()
        assert w.process is None and w.restarting and a.process is not None
        with pytest.raises(ChildRunning, match="being restarted"):
            await sup.delete_child("w")
        await sup.terminate_child("w")  # served between two retries: they stop
        retries = sup.restart_count
        await settle()
        assert sup.restart_count == retries and not sup.which_children()[0].restarting
        broken[0] = False
        await sup.restart_child("w")
        assert sup.count_children().active == 2


def test_spec_validation() -> None:
    """Invalid specs are refused with a message that says what to change."""
    with pytest.raises(ValueError, match="permanent child cannot be significant"):
        worker("a", significant=True)
    with pytest.raises(ValueError, match="auto_shutdown is 'never'"):
        SupervisorSpec(children=[worker("a", restart="temporary", significant=True)])
    with pytest.raises(ValueError, match="unique"):
        SupervisorSpec(children=[worker("a"), worker("a")])
    with pytest.raises(ValueError, match="strategy"):
        SupervisorSpec(strategy="simple_one_for_one")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_restarts"):
        SupervisorSpec(max_restarts=-2)
    with pytest.raises(ValueError, match="shutdown"):
        worker("a", shutdown=-1)
    with pytest.raises(ValueError, match="restart"):
        worker("a", restart="sometimes")
    with pytest.raises(ValueError, match="workers only"):
        ChildSpec(id="s", start=SupervisorSpec(), name="x")
    assert worker("a").grace == 5.0
    assert ChildSpec(id="s", start=SupervisorSpec()).grace == math.inf
    assert worker("a", shutdown="brutal_kill").grace is None


# ------------------------------------------------------------------- intensity


async def test_giving_up_terminates_children_and_raises(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """More than max_restarts within the window: children end in reverse order, the
    supervisor exits with reason shutdown and RestartIntensityError leaves the block."""
    spec = SupervisorSpec(max_restarts=2, window=10, children=[worker(c) for c in "abc"])
    with runtime.bus.subscribe(types=["process.", "supervisor."]) as events:
        with pytest.raises(RestartIntensityError, match="more than 2 restart") as gave_up:
            async with open_supervisor(runtime, spec) as sup:
                for _ in range(3):
                    await crash(proc(sup, "b"))
                    await trio.sleep(1)
                await sleep_forever_for_test()
        got = drain(events)
    assert isinstance(gave_up.value.__cause__, ValueError)
    assert sup.gave_up and sup.exit_reason is not None and sup.exit_reason.kind == "shutdown"
    (event,) = [e for e in got if e.type == "supervisor.gave_up"]
    assert (
        event.data["child_id"] == "b"
        and "more than 2 restart(s) within 10s" in event.data["detail"]
    )
    assert stopped(got) == ["c", "a"]
    assert trio.current_time() == 2  # the third crash came at t=2, inside the window
    assert runtime.live_count == 0


async def sleep_forever_for_test() -> None:
    await trio.sleep_forever()


async def test_restarts_spread_over_time_never_give_up(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """The window slides: restarts further apart than the window never add up."""
    spec = SupervisorSpec(max_restarts=1, window=5, children=[worker("a")])
    async with open_supervisor(runtime, spec) as sup:
        for _ in range(10):
            await crash(proc(sup, "a"))
            await trio.sleep(5.5)
        assert sup.alive and sup.restart_count == 10


@attrs.frozen
class _Boot:
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"]
    max_restarts: int
    window: float
    children: int


@attrs.frozen
class _Sleep:
    seconds: float


@attrs.frozen
class _ChildExit:
    child: int
    how: str
    now: float
    gave_up: bool
    restarts: int


@attrs.frozen
class _LinkedExit:
    """A process linked to the supervisor exits: its owner (shuts it down) or a
    stranger (logged and ignored)."""

    owner: bool
    how: str
    restarts: int


_EXIT_HOW = ["error", "killed", "normal", "shutdown"]


def _end(process: Process, how: str) -> None:
    if how == "error":
        process.fail("boom")
    elif how == "killed":
        process.kill("chaos")
    elif how == "normal":
        process.complete()
    else:
        process.stop("chaos")


def _owner_exit_kind(how: str) -> str:
    """A supervisor's exit reason after its owner exited with ``how`` (OTP mirrors the
    reason; an abnormal one is a link death: ``linked``)."""
    return how if how in ("normal", "shutdown") else "linked"


@attrs.define(eq=False)
class _Watchers:
    """What watches one supervisor of the replay: a monitor, its linked owner, a linked
    non-trapping peer and a linked trapping peer."""

    sup: Supervisor
    owner: Process
    monitor: Monitor
    peer: Process
    trapper: Process

    def check(self, ended: str | None, where: str) -> None:
        """SPEC §2.2/§2.3: nothing fired while the supervisor runs; once it exited with
        reason ``ended``, its monitor fired with it, the non-trapping peer died
        (``linked``, unless the reason is ``normal``) and the trapping peer got exactly
        one exit signal."""
        if ended is None:
            assert self.monitor.active and self.peer.alive, where
            assert len(self.trapper.signals) == 0, where
            return
        down = self.monitor.down
        assert down is not None and down.reason.kind == ended, where
        assert down.reason == self.sup.exit_reason, where
        if ended == "normal":
            assert self.peer.alive, where
        else:
            reason = self.peer.exit_reason
            assert reason is not None and reason.kind == "linked", where
            assert isinstance(reason.error, LinkedProcessError), where
            assert reason.error.source == self.sup.id, where
            assert reason.error.reason.kind == ended, where
        signal = self.trapper.signals.receive_nowait()
        assert isinstance(signal, ExitSignal) and signal.reason.kind == ended, where
        assert len(self.trapper.signals) == 0, where
        assert self.trapper.alive, where


class IntensityMachine(RuleBasedStateMachine):
    """Random child exits, exits of linked processes and time jumps; OTP's sliding
    window decides give-ups, OTP's trap-exit decides what a link does to a supervisor.

    The rules drive the reference model and record every step with the model's
    decision; teardown replays the steps against a real Supervisor in virtual time
    (MockClock) and checks each decision in order, so a mismatch shrinks like any
    other Hypothesis failure. Every supervisor is watched by a monitor and linked to
    its owner and two peers; each step checks what they saw.
    """

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[_Boot | _Sleep | _ChildExit | _LinkedExit] = []
        self.boot_spec: _Boot | None = None
        self.now = 0.0
        self.times: list[float] = []
        self.restarts = 0
        self.gave_up = False
        self.ended = False

    # The reference, supervisor.erl's add_restart/3: keep the restarts with time >=
    # now - period, add now, terminate when there are more than MaxR of them.
    def model_restart(self) -> bool:
        assert self.boot_spec is not None
        if self.boot_spec.max_restarts == -1:
            return False
        self.times = [t for t in self.times if t >= self.now - self.boot_spec.window]
        self.times.append(self.now)
        return len(self.times) > self.boot_spec.max_restarts

    def boot_supervisor(self, step: _Boot) -> None:
        self.steps.append(step)
        self.boot_spec, self.times, self.restarts = step, [], 0
        self.gave_up = self.ended = False

    @initialize(
        strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
        max_restarts=st.integers(-1, 4),
        window=st.sampled_from([0.5, 1.0, 2.5, 5.0]),
        children=st.integers(1, 3),
    )
    def boot(self, strategy: Any, max_restarts: int, window: float, children: int) -> None:
        self.boot_supervisor(_Boot(strategy, max_restarts, window, children))

    @rule(seconds=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, 5.0]))
    def time_passes(self, seconds: float) -> None:
        self.steps.append(_Sleep(seconds))
        self.now += seconds

    @precondition(lambda self: not self.ended)
    @rule(
        child=st.integers(0, 2),
        how=st.sampled_from(["error", "killed", "normal", "shutdown", "linked", "link_shutdown"]),
    )
    def child_exits(self, child: int, how: str) -> None:
        # Every exit of a permanent child is a restart, whatever its reason.
        self.gave_up = self.ended = self.model_restart()
        if not self.gave_up:
            self.restarts += 1
        self.steps.append(_ChildExit(child, how, self.now, self.gave_up, self.restarts))

    @precondition(lambda self: not self.ended)
    @rule(owner=st.booleans(), how=st.sampled_from(_EXIT_HOW))
    def linked_process_exits(self, owner: bool, how: str) -> None:
        # A supervisor traps exits: its owner's exit shuts it down (no give-up), a
        # stranger's is ignored (no restart either way).
        self.ended = owner
        self.steps.append(_LinkedExit(owner, how, self.restarts))

    @precondition(lambda self: self.ended)
    @rule(max_restarts=st.integers(0, 3))
    def start_again(self, max_restarts: int) -> None:
        assert self.boot_spec is not None
        self.boot_supervisor(attrs.evolve(self.boot_spec, max_restarts=max_restarts))

    def teardown(self) -> None:
        trio.run(self.replay, clock=trio.testing.MockClock(autojump_threshold=0))

    async def replay(self) -> None:
        async with trio.open_nursery() as nursery:
            runtime = Runtime(nursery)
            watchers: _Watchers | None = None
            ended: str | None = None
            for index, step in enumerate(self.steps):
                where = f"step {index}: {step}"
                if isinstance(step, _Boot):
                    owner = await runtime.spawn(EchoBehaviour(name="owner"))
                    sup = await nursery.start(self.run_supervisor, runtime, step, owner)
                    runtime.link(owner, sup)
                    peer = await runtime.spawn(EchoBehaviour(name="peer"))
                    trapper = await runtime.spawn(EchoBehaviour(name="trapper"), trap_exit=True)
                    runtime.link(sup, peer)
                    trapper.link(sup)
                    watchers = _Watchers(sup, owner, runtime.monitor(sup), peer, trapper)
                    ended = None
                    continue
                if isinstance(step, _Sleep):
                    await trio.sleep(step.seconds)
                    continue
                assert watchers is not None
                sup = watchers.sup
                if isinstance(step, _LinkedExit):
                    if step.owner:
                        _end(watchers.owner, step.how)
                        ended = _owner_exit_kind(step.how)
                    else:
                        stranger = await runtime.spawn(EchoBehaviour(name="stranger"))
                        runtime.link(stranger, sup)
                        _end(stranger, step.how)
                    await trio.testing.wait_all_tasks_blocked()
                    assert sup.alive == (not step.owner), where
                    assert not sup.gave_up and sup.restart_count == step.restarts, where
                    if ended is not None:
                        assert sup.exit_reason is not None, where
                        assert sup.exit_reason.kind == ended, where
                    watchers.check(ended, where)
                    continue
                process = proc(sup, f"w{step.child % step_children(sup)}")
                if step.how in ("linked", "link_shutdown"):
                    other = await runtime.spawn(EchoBehaviour(name="other"))
                    other.link(process)
                    _end(other, "error" if step.how == "linked" else "shutdown")
                else:
                    _end(process, step.how)
                await trio.testing.wait_all_tasks_blocked()
                assert trio.current_time() == step.now, where
                assert sup.gave_up == step.gave_up, where
                assert sup.alive == (not step.gave_up), where
                assert sup.restart_count == step.restarts, where
                if sup.alive:
                    assert all(c.process is not None for c in sup.which_children()), where
                    assert watchers.owner.alive, where
                else:
                    ended = "shutdown"
                    owner_reason = watchers.owner.exit_reason  # linked, not trapping
                    assert owner_reason is not None and owner_reason.kind == "linked", where
                watchers.check(ended, where)
            await runtime.shutdown(grace=0)
            nursery.cancel_scope.cancel(reason="replay done")

    @staticmethod
    async def run_supervisor(  # noqa: ASYNC114, ASYNC128 - task_status goes on to spec.run
        runtime: Runtime, step: _Boot, owner: Process, task_status: trio.TaskStatus[Supervisor]
    ) -> None:
        spec = SupervisorSpec(
            strategy=step.strategy,
            max_restarts=step.max_restarts,
            window=step.window,
            children=[worker(f"w{i}") for i in range(step.children)],
        )
        with contextlib.suppress(RestartIntensityError):
            await spec.run(runtime, parent=owner, task_status=task_status)


def step_children(sup: Supervisor) -> int:
    return len(sup.which_children())


TestRestartIntensityMatchesOTP = IntensityMachine.TestCase
TestRestartIntensityMatchesOTP.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)


# ------------------------------------------------------- escalation, shutdown


async def test_escalation_through_three_levels(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A leaf that gives up is restarted by its parent, whose giving up reaches the root."""
    leaf = SupervisorSpec(name="leaf", max_restarts=1, window=100, children=[worker("w", name="w")])
    mid = SupervisorSpec(
        name="mid", max_restarts=1, window=100, children=[ChildSpec(id="leaf", start=leaf)]
    )
    root = SupervisorSpec(
        name="root", max_restarts=1, window=100, children=[ChildSpec(id="mid", start=mid)]
    )
    crashes = 0
    with runtime.bus.subscribe(types=["supervisor.gave_up"]) as events:
        with pytest.raises(RestartIntensityError, match="'root' gave up"):
            async with open_supervisor(runtime, root) as sup:
                while True:
                    target = runtime.lookup("w")
                    crashes += 1
                    await crash(target)
                    if not sup.alive:
                        await sleep_forever_for_test()
        got = drain(events)
    assert [e.data["supervisor"] for e in got] == [
        "leaf",
        "leaf",
        "mid",
        "leaf",
        "leaf",
        "mid",
        "root",
    ]
    assert crashes == 8
    assert runtime.live_count == 0


async def test_auto_shutdown_any_significant(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """any_significant: a significant child ending normally shuts the supervisor down,
    and a transient supervisor exiting with shutdown is not restarted by its parent."""
    job = SupervisorSpec(
        auto_shutdown="any_significant",
        children=[
            worker("helper"),
            worker("main", restart="transient", significant=True),
            worker("side", restart="temporary", significant=True),
        ],
    )
    spec = SupervisorSpec(children=[ChildSpec(id="job", start=job, restart="transient")])
    async with open_supervisor(runtime, spec) as sup:
        team = sub(sup, "job")
        await crash(proc(team, "main"))  # abnormal: restarted, no shutdown
        assert team.alive
        await team.terminate_child("side")  # terminated by the supervisor: no shutdown
        assert team.alive
        proc(team, "main").complete("result")
        reason = await team.wait()
        await settle()
        assert reason.kind == "shutdown" and "auto_shutdown=any_significant" in reason.detail
        assert sup.child("job") is None and sup.restart_count == 0
        assert runtime.live_count == 0


async def test_auto_shutdown_all_significant(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """all_significant: the supervisor shuts down when the last significant child has ended."""
    spec = SupervisorSpec(
        auto_shutdown="all_significant",
        children=[
            worker("helper"),
            worker("s1", restart="temporary", significant=True),
            worker("s2", restart="transient", significant=True),
        ],
    )
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(spec.run, runtime)
        await crash(proc(sup, "s1"))  # temporary: gone, but s2 still runs
        assert sup.alive
        proc(sup, "s2").stop()  # shutdown: a transient child is not restarted
        await sup.wait()  # the task of spec.run ends without an error
    assert sup.exit_reason is not None and "all_significant" in sup.exit_reason.detail


@attrs.define
class SlowStopper:
    """Takes ``("sleep", n)`` messages; its process then finishes them before stopping."""

    name: str = "slow"

    async def handle(self, process: Process, payload: Any) -> Any:
        await trio.sleep(payload[1])
        return f"slept {payload[1]}"


@pytest.mark.parametrize(
    ("shutdown", "work", "ends_at", "kind"),
    [
        (5.0, 2.0, 2.0, "shutdown"),  # graceful: the message in hand finishes
        (2.0, 100.0, 2.0, "killed"),  # the grace elapses: killed
        ("brutal_kill", 100.0, 0.0, "killed"),  # at once
        ("infinity", 50.0, 50.0, "shutdown"),  # waits as long as it takes
    ],
)
async def test_shutdown_ladder(
    runtime: Runtime,
    autojump_clock: trio.testing.MockClock,
    shutdown: Any,
    work: float,
    ends_at: float,
    kind: str,
) -> None:
    """terminate_child asks, waits up to the child's shutdown, then kills."""
    spec = SupervisorSpec(
        children=[ChildSpec(id="w", start=SlowStopper, shutdown=shutdown)],
    )
    async with open_supervisor(runtime, spec) as sup:
        worker_proc = proc(sup, "w")
        busy = worker_proc.call_async(("sleep", work))
        queued = worker_proc.call_async(("sleep", 1))
        await settle()
        start = trio.current_time()
        await sup.terminate_child("w")
        assert trio.current_time() - start == ends_at
        reason = worker_proc.exit_reason
        assert reason is not None and reason.kind == kind
        assert busy.done() and queued.done()
        if kind == "shutdown":
            assert busy.result() == f"slept {work}"
        else:
            with pytest.raises(ProcessExited):
                busy.result()
        with pytest.raises(ProcessExited):
            queued.result()


async def test_supervisor_shutdown_grace_kills_the_rest(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Supervisor.shutdown(grace) kills a subtree still stopping when the grace elapses."""
    nested = SupervisorSpec(children=[ChildSpec(id="w", start=SlowStopper, shutdown="infinity")])
    spec = SupervisorSpec(children=[ChildSpec(id="team", start=nested, shutdown=3)])
    async with open_supervisor(runtime, spec) as sup:
        team = sub(sup, "team")
        work = proc(team, "w").call_async(("sleep", 100))
        await settle()
        await sup.terminate_child("team")
        assert trio.current_time() == 3
        assert team.exit_reason is not None and team.exit_reason.kind == "killed"
        with pytest.raises(ProcessExited):
            work.result()
        assert runtime.live_count == 0


async def test_per_process_supervision_restarts_in_place_first(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A child's own supervision restarts it in place; when it gives up, the tree restarts it."""
    supervision = Supervision(max_restarts=1, backoff=Backoff(kind="constant", initial=1))
    spec = SupervisorSpec(children=[worker("w", supervision=supervision)])
    async with open_supervisor(runtime, spec) as sup:
        first = proc(sup, "w")
        with runtime.bus.subscribe(types=["process.restarted"]) as events:
            # Served, restarted in place after 1 s, served again (re-delivered), and the
            # in-place supervision gives up: the caller gets the final error.
            with pytest.raises(ValueError, match="boom"):
                await first.call("crash")
            await settle()
            in_place, by_tree = drain(events)
        assert trio.current_time() == 1.0
        assert in_place.process_id == first.id and first.incarnation == 2
        assert by_tree.data["previous_id"] == first.id and sup.restart_count == 1
        assert proc(sup, "w") is not first and proc(sup, "w").id == by_tree.process_id


async def test_escalate_goes_to_the_tree_not_the_parent_process(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """supervision=escalate in a tree hands the failure to the tree supervisor; the
    process shown as parent in the spawn tree is untouched."""
    owner = await runtime.spawn(EchoBehaviour(name="owner"))
    spec = SupervisorSpec(children=[worker("w", supervision=Supervision(strategy="escalate"))])
    async with open_supervisor(runtime, spec, parent=owner) as sup:
        child = proc(sup, "w")
        assert child.parent_id == owner.id
        await crash(child)
        assert proc(sup, "w") is not child and sup.restart_count == 1
        assert owner.alive and owner.restart_count == 0
        assert [n.process_id for n in runtime.spawn_tree()[0].children] == [proc(sup, "w").id]


async def test_runtime_shutdown_takes_the_tree_down_without_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Runtime.shutdown stops supervised processes; supervisors follow, nobody restarts."""
    async with trio.open_nursery() as nursery:
        runtime = Runtime(nursery)
        nested = SupervisorSpec(children=[worker("x"), worker("y")])
        spec = SupervisorSpec(children=[worker("a"), ChildSpec(id="team", start=nested)])
        with runtime.bus.subscribe(types=["process.restarted", "supervisor.gave_up"]) as events:
            sup = await nursery.start(spec.run, runtime)
            await runtime.shutdown(grace=1.0)
            await sup.wait()
            assert drain(events) == []
    assert sup.exit_reason is not None and sup.exit_reason.kind == "shutdown"
    assert runtime.live_count == 0


async def test_cancelling_the_block_answers_every_caller(runtime: Runtime) -> None:
    """Cancelling the surrounding scope cancels the children; their callers are answered."""
    spec = SupervisorSpec(children=[worker("a"), worker("b")])
    futures: list[Future[Any]] = []
    with trio.CancelScope() as scope:
        async with open_supervisor(runtime, spec) as sup:
            futures += [proc(sup, "a").call_async("block"), proc(sup, "b").call_async("block")]
            await settle()
            scope.cancel(reason="test over")
            await sleep_forever_for_test()
    assert all(f.done() for f in futures)
    assert sup.exit_reason is not None and runtime.live_count == 0


async def test_kill_supervisor_kills_children(runtime: Runtime) -> None:
    """Supervisor.kill ends every child at once with reason killed."""
    nested = SupervisorSpec(children=[worker("x")])
    spec = SupervisorSpec(children=[worker("a"), ChildSpec(id="team", start=nested)])
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(spec.run, runtime)
        a, x = proc(sup, "a"), proc(sub(sup, "team"), "x")
        sup.kill("operator")
        assert (await sup.wait()).kind == "killed"
    assert a.exit_reason is not None and a.exit_reason.kind == "killed"
    assert x.exit_reason is not None and x.exit_reason.kind == "killed"


async def test_request_in_progress_is_answered_when_the_supervisor_is_killed(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """A caller whose request the supervisor is serving gets SupervisorNotRunning if
    the supervisor is killed meanwhile; queued requests too."""
    spec = SupervisorSpec(children=[ChildSpec(id="w", start=SlowStopper, shutdown="infinity")])
    outcomes: list[BaseException] = []

    async def ask(request: Callable[[], Awaitable[Any]]) -> None:
        try:
            await request()
        except SupervisorNotRunning as exc:
            outcomes.append(exc)

    with trio.fail_after(10):  # an unanswered caller would hang here
        async with trio.open_nursery() as nursery:
            sup = await nursery.start(spec.run, runtime)
            proc(sup, "w").call_async(("sleep", 100))
            await settle()
            nursery.start_soon(ask, functools.partial(sup.terminate_child, "w"))
            await settle()  # the supervisor waits for "w" to finish its message
            nursery.start_soon(ask, functools.partial(sup.start_child, worker("x")))
            await settle()
            sup.kill("operator")
    assert len(outcomes) == 2 and trio.current_time() == 0
    assert runtime.live_count == 0


async def test_tree_is_json_friendly(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """tree() describes the live nested tree with ids, status and restart counts."""
    nested = SupervisorSpec(name="team", strategy="rest_for_one", children=[worker("x")])
    spec = SupervisorSpec(
        name="root", children=[worker("a", name="alpha"), ChildSpec(id="t", start=nested)]
    )
    async with open_supervisor(runtime, spec) as sup:
        await crash(proc(sup, "a"))
        tree = json.loads(json.dumps(sup.tree()))
    assert tree["name"] == "root" and tree["strategy"] == "one_for_one"
    assert tree["max_restarts"] == 3 and tree["window"] == 5.0
    assert tree["recent_restarts"] == 1 and tree["restart_count"] == 1
    first, second = tree["children"]
    assert first["id"] == "a" and first["status"] == "running" and first["restart_count"] == 1
    assert first["name"] == "alpha" and first["agent"] == "a"
    assert first["last_exit"] == "error (ValueError: boom)"
    assert second["type"] == "supervisor" and second["supervisor"]["name"] == "team"
    assert second["supervisor"]["children"][0]["process_id"].startswith("p-")
    assert second["supervisor"]["strategy"] == "rest_for_one"


# -------------------------------------------------------------- fault injection

_LEAF_RESTARTS: tuple[Literal["permanent", "transient", "temporary"], ...] = (
    "permanent",
    "transient",
    "permanent",
    "temporary",
    "permanent",
)


@attrs.define(eq=False)
class _MChild:
    spec: ChildSpec
    path: str
    running: bool = False
    sup: _MSup | None = None
    restart_count: int = 0


@attrs.define(eq=False)
class _MSup:
    """Reference model of one supervisor: OTP's rules, executed synchronously."""

    spec: SupervisorSpec
    path: str
    model: _Model
    parent: tuple[_MSup, _MChild] | None
    children: dict[str, _MChild] = attrs.field(factory=dict)
    times: list[float] = attrs.field(factory=list)
    restart_count: int = 0

    def start(self, child: _MChild) -> None:
        child.running = True
        if isinstance(child.spec.start, SupervisorSpec):
            child.sup = self.model.boot(child.spec.start, child.path, (self, child))
        else:
            self.model.starts[child.path] += 1

    def terminate(self, child: _MChild) -> None:
        if child.sup is not None:
            child.sup.terminate_all()
            child.sup = None
        child.running = False

    def terminate_all(self) -> None:
        for child in reversed(list(self.children.values())):
            self.terminate(child)
        for child in list(self.children.values()):
            self.delete(child)

    def delete(self, child: _MChild) -> None:
        if child.spec.restart == "temporary":
            del self.children[child.spec.id]

    def exited(self, child: _MChild, abnormal: bool) -> None:
        child.running, child.sup = False, None
        restart = child.spec.restart
        if restart == "permanent" or (restart == "transient" and abnormal):
            self.restart(child)
        else:
            self.delete(child)

    def restart(self, child: _MChild) -> None:
        now = self.model.now
        window, max_restarts = self.spec.window, self.spec.max_restarts
        self.times = [t for t in self.times if t >= now - window] + [now]
        if max_restarts != -1 and len(self.times) > max_restarts:
            self.delete(child)
            self.terminate_all()
            assert self.parent is not None, "the root gave up"
            parent, me = self.parent
            parent.exited(me, abnormal=False)  # exit reason shutdown
            return
        self.restart_count += 1
        ordered = list(self.children.values())
        if self.spec.strategy == "one_for_one":
            others, members = [], [child]
        elif self.spec.strategy == "one_for_all":
            others, members = [c for c in ordered if c is not child], ordered
        else:
            members = ordered[ordered.index(child) :]
            others = members[1:]
        for other in reversed(others):
            self.terminate(other)
        for other in others:
            self.delete(other)
        for member in members:
            if self.children.get(member.spec.id) is member and not member.running:
                member.restart_count += 1
                self.start(member)


@attrs.define(eq=False)
class _Model:
    now: float = 0.0
    hot: str = "root."
    starts: Counter[str] = attrs.field(factory=Counter)
    root: _MSup | None = None

    def boot(self, spec: SupervisorSpec, path: str, parent: tuple[_MSup, _MChild] | None) -> _MSup:
        sup = _MSup(spec, path, self, parent)
        for child_spec in spec.children:
            child = sup.children[child_spec.id] = _MChild(child_spec, f"{path}.{child_spec.id}")
            sup.start(child)
        return sup

    def running_workers(self) -> Iterator[_MChild]:
        assert self.root is not None
        stack = [self.root]
        while stack:
            sup = stack.pop()
            for child in sup.children.values():
                if child.sup is not None:
                    stack.append(child.sup)
                elif child.running:
                    yield child

    def find(self, path: str) -> tuple[_MSup, _MChild]:
        assert self.root is not None
        sup, parts = self.root, path.split(".")[1:]
        for part in parts[:-1]:
            nested = sup.children[part].sup
            assert nested is not None
            sup = nested
        return sup, sup.children[parts[-1]]


def _fault_tree() -> SupervisorSpec:
    """root → 5 mid supervisors → 2 leaf supervisors each → 5 workers each (50 workers)."""
    mids = []
    for m in range(5):
        leaves = []
        for leaf in range(2):
            path = f"root.m{m}.l{leaf}"
            leaves.append(
                ChildSpec(
                    id=f"l{leaf}",
                    start=SupervisorSpec(
                        name=path,
                        strategy=("one_for_one", "rest_for_one", "one_for_all")[(m + leaf) % 3],
                        max_restarts=2,
                        window=1.0,
                        children=[
                            ChildSpec(
                                id=f"w{i}",
                                start=functools.partial(EchoBehaviour, name=f"{path}.w{i}"),
                                name=f"{path}.w{i}",
                                restart=_LEAF_RESTARTS[i],
                            )
                            for i in range(5)
                        ],
                    ),
                )
            )
        mids.append(
            ChildSpec(
                id=f"m{m}",
                start=SupervisorSpec(
                    name=f"root.m{m}",
                    strategy=("one_for_one", "one_for_all", "rest_for_one")[m % 3],
                    max_restarts=2,
                    window=5.0,
                    children=leaves,
                ),
            )
        )
    return SupervisorSpec(name="root", max_restarts=10_000, window=1.0, children=mids)


def _count_tasks(task: Any) -> int:
    return 1 + sum(_count_tasks(t) for n in task.child_nurseries for t in n.child_tasks)


def _compare(real: Supervisor, model: _MSup) -> None:
    assert real.restart_count == model.restart_count, real.name
    real_children = {c["id"]: c for c in real.tree()["children"]}
    assert list(real_children) == list(model.children), real.name
    for child_id, mchild in model.children.items():
        node = real_children[child_id]
        assert node["restart_count"] == mchild.restart_count, mchild.path
        assert (node["process_id"] is not None) == mchild.running, mchild.path
        if mchild.sup is not None:
            _compare(sub(real, child_id), mchild.sup)


@pytest.mark.slow
async def test_fault_injection_keeps_the_tree_whole(
    runtime: Runtime, autojump_clock: trio.testing.MockClock
) -> None:
    """Thousands of seeded random faults in a 3-level, 50-worker tree: after each quiet
    period every permanent child runs exactly once, names are unique, no task is left
    over, every message was answered, and restarts match the OTP reference model — in
    which a link death (a linked process's crash or shutdown) is an abnormal exit — and
    every nested supervisor's monitor fires once, when it exits."""
    rng = random.Random(20240611)
    spec = _fault_tree()
    model = _Model()
    futures: list[Future[Any]] = []
    baseline = _count_tasks(trio.lowlevel.current_root_task())
    starts: Counter[str] = Counter()
    gave_up: Counter[int] = Counter()  # give-ups by depth (1: mid, 2: leaf)
    monitors = _SupervisorMonitors()
    with runtime.bus.subscribe(
        types=["process.started", "supervisor.gave_up"], max_buffer=100_000
    ) as events:
        async with open_supervisor(runtime, spec) as root:
            model.root = model.boot(spec, "root", None)
            monitors.check(runtime, root)
            faults = 0
            for period in range(10):
                for _ in range(300):
                    await trio.sleep(rng.choice((0.0, 0.0, 0.0, 0.02, 0.05, 0.1, 0.5)))
                    model.now = trio.current_time()
                    faults += await _inject(rng, runtime, root, model, futures)
                    await settle()
                    monitors.check(runtime, root)
                    live = Counter(p.name for p in runtime.processes())
                    assert live == Counter(c.path for c in model.running_workers()), period
                # Permanent children stopped by terminate_child come back by restart_child.
                await _restart_terminated(root, model)
                # Quiet period: longer than any window.
                await trio.sleep(5)
                for e in drain(events):
                    if e.type == "process.started":
                        if e.data["name"] is not None:  # not a linker
                            starts[e.data["name"]] += 1
                    else:
                        gave_up[e.data["supervisor"].count(".")] += 1
                monitors.check(runtime, root)
                live = Counter(p.name for p in runtime.processes())
                permanent = [
                    f"root.m{m}.l{leaf}.w{i}"
                    for m in range(5)
                    for leaf in range(2)
                    for i in range(5)
                    if _LEAF_RESTARTS[i] == "permanent"
                ]
                assert all(live[name] == 1 for name in permanent)
                assert max(live.values()) == 1  # no duplicate names
                assert sorted(runtime.registered()) == sorted(live)
                running = sum(1 for _ in model.running_workers())
                assert runtime.live_count == running
                # root task + per nested supervisor (task, watcher) + per worker (process, watcher)
                assert (
                    _count_tasks(trio.lowlevel.current_root_task())
                    == baseline + 1 + 2 * (5 + 10) + 2 * running
                )
                assert all(f.done() for f in futures)
                assert starts == model.starts
                _compare(root, model.root)
    assert faults >= 2000
    assert gave_up[2] > 50 and gave_up[1] > 5 and gave_up[0] == 0  # escalation happened
    # Every supervisor that gave up was watched, and its monitor fired.
    assert all(m.down is not None for m in monitors.every.values())
    assert sum(s.gave_up for s in monitors.every) == gave_up[1] + gave_up[2]
    assert runtime.live_count == 0


def _nested(sup: Supervisor) -> Iterator[Supervisor]:
    for info in sup.which_children():
        if isinstance(info.process, Supervisor):
            yield info.process
            yield from _nested(info.process)


@attrs.define
class _SupervisorMonitors:
    """A monitor on every nested supervisor that ever ran."""

    every: dict[Supervisor, Monitor] = attrs.field(factory=dict)
    running: dict[Supervisor, Monitor] = attrs.field(factory=dict)

    def check(self, runtime: Runtime, root: Supervisor) -> None:
        """Monitors of running supervisors have not fired; every other one fired once,
        with its supervisor's exit reason (``shutdown``: it gave up or its parent
        terminated it)."""
        live = set(_nested(root))
        for sup in live:
            if sup not in self.running:
                self.running[sup] = self.every[sup] = runtime.monitor(sup)
        for sup in [s for s in self.running if s not in live]:
            down = self.running.pop(sup).down
            assert down is not None and down.reason == sup.exit_reason, sup.name
            assert down.reason.kind == "shutdown", sup.name
        assert all(m.active for m in self.running.values())


async def _restart_terminated(root: Supervisor, model: _Model) -> None:
    assert model.root is not None
    for mid_id, mid in model.root.children.items():
        assert mid.sup is not None
        for leaf_id, leaf in mid.sup.children.items():
            assert leaf.sup is not None
            for child in leaf.sup.children.values():
                if child.spec.restart == "permanent" and not child.running:
                    await sub(sub(root, mid_id), leaf_id).restart_child(child.spec.id)
                    leaf.sup.start(child)


async def _inject(
    rng: random.Random,
    runtime: Runtime,
    root: Supervisor,
    model: _Model,
    futures: list[Future[Any]],
) -> int:
    """One random fault (or message, or dynamic call); the model follows. Returns 1 for
    a fault."""
    running = sorted(model.running_workers(), key=lambda c: c.path)
    # Faults come in bursts: often in the same leaf supervisor as the previous one.
    hot = [c for c in running if c.path.startswith(model.hot)]
    if hot and rng.random() < 0.6:
        running = hot
    op = rng.choices(
        [
            "crash",
            "kill",
            "fail",
            "complete",
            "stop",
            "message",
            "terminate",
            "restart",
            "link_crash",
            "link_stop",
        ],
        weights=[40, 10, 10, 8, 5, 15, 6, 6, 5, 5],
    )[0]
    if op in ("terminate", "restart"):
        msup, mchild = model.find(rng.choice(running).path)
        leaf = sub(sub(root, msup.path.split(".")[1]), msup.path.split(".")[2])
        if op == "terminate":
            await leaf.terminate_child(mchild.spec.id)
            msup.terminate(mchild)
            msup.delete(mchild)
        else:
            stopped_ones = [c for c in msup.children.values() if not c.running]
            if not stopped_ones:
                return 0
            target = rng.choice(stopped_ones)
            await leaf.restart_child(target.spec.id)
            msup.start(target)
        return 0
    target = runtime.lookup(rng.choice(running).path)
    if op == "message":
        payload = ("echo", rng.random())
        futures.append(target.call_async(payload))
        return 0
    futures.append(target.call_async("before"))
    if op == "crash":
        futures.append(target.call_async("crash"))
    elif op == "kill":
        target.kill("chaos")
    elif op == "fail":
        target.fail("chaos")
    elif op == "complete":
        target.complete()
    elif op == "stop":
        target.stop("chaos")
    else:
        # A link death: a crash or a shutdown (SPEC §2.3) of a linked process kills the
        # target at once with reason linked, an abnormal exit.
        linker = await runtime.spawn(EchoBehaviour(name="linker"))
        linker.link(target)
        if op == "link_crash":
            linker.fail("chaos")
        else:
            linker.stop("chaos")
    if target.alive:  # queued behind the crash: answered by the process's exit
        futures.append(target.call_async("after"))
    msup, mchild = model.find(target.name or "")
    model.hot = msup.path + "."
    await settle()
    msup.exited(mchild, abnormal=op not in ("complete", "stop"))
    return 1
