"""The restart engine (vega_trio/runtime/_restart.py), tested once, directly.

Its callers — per-process supervision, supervisor trees, MCP reconnects — keep their own
tests (tests/runtime/test_supervision.py, test_supervisor.py, tests/tools/test_mcp.py);
here the rule itself: OTP's intensity counting, the backoff formulas and their streak,
the decision, the hooks, and the wait.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vega_trio.runtime import Backoff, RestartIntensity, Supervision
from vega_trio.runtime._restart import RestartDecision, RestartEngine, wait

# ------------------------------------------------------------------ backoff


def test_backoff_kinds_and_cap() -> None:
    """Exponential, linear and constant backoff follow their formulas, capped at max."""
    exp = Backoff(kind="exponential", initial=0.5, multiplier=3, max=10)
    assert [exp.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 10]
    lin = Backoff(kind="linear", initial=2, max=5)
    assert [lin.delay(n) for n in (1, 2, 3)] == [2, 4, 5]
    assert Backoff(kind="constant", initial=0.25).delay(9) == 0.25
    assert Backoff(initial=1, multiplier=10, max=60).delay(10_000) == 60
    with pytest.raises(ValueError, match="kind"):
        Backoff(kind="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=2)
    with pytest.raises(ValueError, match="restart numbers start at 1"):
        Backoff().delay(0)


@given(
    st.sampled_from(["exponential", "linear", "constant"]),
    st.floats(0, 100),
    st.floats(0, 1),
    st.integers(1, 50),
    st.integers(0, 2**32),
)
def test_backoff_with_jitter_stays_in_bounds(
    kind: Any, initial: float, jitter: float, n: int, seed: int
) -> None:
    """Jittered delays are never negative and within ±jitter of the capped delay."""
    backoff = Backoff(kind=kind, initial=initial, max=30, jitter=jitter)
    base = Backoff(kind=kind, initial=initial, max=30).delay(n)
    delay = backoff.delay(n, random.Random(seed))
    assert delay >= 0
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


# ---------------------------------------------------------------- intensity


def test_restart_intensity_counting() -> None:
    """N allows N restarts in the window, the N+1th gives up; -1 unlimited; 0 never."""
    three = RestartIntensity(3, window=10)
    assert [three.allow(t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    # The window slides: at t=10 the restart at t=0 still counts (inclusive), at 10.5 not.
    assert three.allow(10) is False
    assert three.allow(10.5) is True
    assert three.recent_at(10.5) == 3 and three.recent_at(100) == 0
    assert RestartIntensity(0, window=1).allow(0) is False
    unlimited = RestartIntensity(-1, window=1)
    assert all(unlimited.allow(0) for _ in range(1000))
    with pytest.raises(ValueError, match="max_restarts"):
        RestartIntensity(-2, window=1)
    with pytest.raises(ValueError, match="window"):
        Supervision(window=0)
    with pytest.raises(ValueError, match="max_restarts"):
        RestartEngine(-2, 1.0)


# ----------------------------------------------------------------- decisions


def test_decisions_and_hooks_in_order() -> None:
    """on_failure at every failure, then on_restart(number) or on_give_up(cause); a
    failure the caller does not restart is not counted."""
    calls: list[tuple[str, Any]] = []
    engine: RestartEngine[str] = RestartEngine(
        2,
        10.0,
        Backoff(kind="linear", initial=1, max=100),
        on_failure=lambda cause: calls.append(("failure", cause)),
        on_restart=lambda number: calls.append(("restart", number)),
        on_give_up=lambda cause: calls.append(("give_up", cause)),
    )
    assert engine.failure("a", 0.0) == RestartDecision("restart", 1.0, 1, 1)
    assert engine.failure("b", 1.0, restart=False) == RestartDecision("stop", number=1)
    assert engine.failure("c", 2.0) == RestartDecision("restart", 2.0, 2, 2)
    decision = engine.failure("d", 3.0)
    assert decision == RestartDecision("give_up", number=2)
    assert not decision.restart and engine.gave_up and engine.restarts == 2
    assert calls == [
        ("failure", "a"),
        ("restart", 1),
        ("failure", "b"),
        ("failure", "c"),
        ("restart", 2),
        ("failure", "d"),
        ("give_up", "d"),
    ]
    assert engine.limit() == "more than 2 restart(s) within 10s"


def test_no_backoff_restarts_at_once() -> None:
    """Without a backoff (supervisor trees, as in OTP) every restart is immediate."""
    engine: RestartEngine[None] = RestartEngine(-1, 1.0)
    assert {engine.failure(None, 0.0).delay for _ in range(100)} == {0.0}
    assert engine.restarts == 100 and not engine.gave_up


def test_the_backoff_starts_over_after_a_stable_run() -> None:
    """The backoff's n counts the restarts since the thing was last up for ``window``
    seconds: a failure after a stable run waits the first delay again."""
    engine: RestartEngine[None] = RestartEngine(-1, 10.0, Backoff(initial=1, max=100))
    assert [engine.failure(None, t).delay for t in (0, 1, 2)] == [1, 2, 4]
    engine.up(3.0)
    assert engine.failure(None, 12.9).delay == 8  # up 9.9 s: not stable yet
    engine.up(13.0)
    assert engine.failure(None, 23.0).delay == 1  # up 10 s: the streak starts over
    assert engine.restarts == 5
    # A failure without up() in between (a connect that failed) continues the streak.
    assert engine.failure(None, 100.0).attempt == 2


def test_jitter_uses_the_given_random_source() -> None:
    """A seeded rng makes the jittered delays reproducible."""

    def delays(seed: int) -> list[float]:
        engine: RestartEngine[None] = RestartEngine(
            -1, 1.0, Backoff(initial=1, jitter=0.5), rng=random.Random(seed)
        )
        return [engine.failure(None, 0.0).delay for _ in range(5)]

    assert delays(7) == delays(7) != delays(8)


def test_a_failing_hook_is_logged_and_the_decision_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook that raises cannot take the supervision down: logged, decision unchanged."""

    def broken(_: object) -> None:
        raise RuntimeError("hook bug")

    engine: RestartEngine[str] = RestartEngine(
        1, 10.0, on_failure=broken, on_restart=broken, on_give_up=broken
    )
    with caplog.at_level(logging.ERROR, logger="vega_trio.runtime"):
        assert engine.failure("x", 0.0).restart
        assert engine.failure("x", 0.0).action == "give_up"
    assert len([r for r in caplog.records if "supervision hook" in r.message]) == 4


async def test_wait_uses_trio_time_and_is_cancellable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The backoff wait runs in Trio (virtual) time and ends at once when cancelled."""
    start = trio.current_time()
    await wait(RestartDecision("restart", 5.0, 1, 1))
    assert trio.current_time() - start == 5.0
    with trio.move_on_after(1.0) as scope:
        await wait(RestartDecision("restart", 100.0, 1, 1))
    assert scope.cancelled_caught and trio.current_time() - start == 6.0
    with trio.CancelScope() as scope:
        scope.cancel()
        await wait(RestartDecision("restart", 0.0, 1, 1))  # a zero wait still checkpoints
    assert scope.cancelled_caught


# ------------------------------------------------------------------ the OTP model


@attrs.define
class _Model:
    """The reference: supervisor.erl's add_restart/3 for the intensity, and the
    streak rule for the backoff."""

    max_restarts: int
    window: float
    times: list[float] = attrs.field(factory=list)
    restarts: int = 0
    streak: int = 0
    up_since: float | None = None

    def failure(self, now: float) -> tuple[str, int]:
        up_since, self.up_since = self.up_since, None
        if up_since is not None and now - up_since >= self.window:
            self.streak = 0
        if self.max_restarts != -1:
            kept = [t for t in self.times if t >= now - self.window]
            if len(kept) + 1 > self.max_restarts:
                self.times = kept
                return "give_up", 0
            self.times = [*kept, now]
        self.restarts += 1
        self.streak += 1
        return "restart", self.streak


class EngineMachine(RuleBasedStateMachine):
    """Random failures, restarts that come up, time jumps and hooks that start raising
    (fault injection): every decision of the engine (restart or give up, its number, its
    backoff n and delay) equals the model's, and the hooks are called exactly as the
    decisions say, broken or not."""

    @initialize(
        max_restarts=st.integers(-1, 4),
        window=st.sampled_from([0.5, 1.0, 2.5, 5.0]),
        kind=st.sampled_from(["exponential", "linear", "constant"]),
    )
    def boot(self, max_restarts: int, window: float, kind: Any) -> None:
        self.now = 0.0
        self.model = _Model(max_restarts, window)
        self.backoff = Backoff(kind=kind, initial=0.25, multiplier=2, max=3)
        self.hooks: list[tuple[str, Any]] = []
        self.broken = False
        self.engine: RestartEngine[int] = RestartEngine(
            max_restarts,
            window,
            self.backoff,
            on_failure=lambda cause: self.hook("failure", cause),
            on_restart=lambda number: self.hook("restart", number),
            on_give_up=lambda cause: self.hook("give_up", cause),
        )
        self.failures = 0

    def hook(self, name: str, value: int) -> None:
        self.hooks.append((name, value))
        if self.broken:
            raise RuntimeError(f"injected fault in the {name} hook")

    @rule(broken=st.booleans())
    def hooks_break(self, broken: bool) -> None:
        self.broken = broken

    @rule(seconds=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, 5.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def comes_up(self) -> None:
        self.engine.up(self.now)
        self.model.up_since = self.now

    @rule(restart=st.booleans())
    def fails(self, restart: bool) -> None:
        self.failures += 1
        self.hooks.clear()
        decision = self.engine.failure(self.failures, self.now, restart=restart)
        if not restart:
            assert decision.action == "stop"
            assert self.hooks == [("failure", self.failures)]
            return
        action, streak = self.model.failure(self.now)
        assert decision.action == action
        assert decision.number == self.model.restarts == self.engine.restarts
        if action == "give_up":
            assert self.engine.gave_up and decision.delay == 0
            assert self.hooks == [("failure", self.failures), ("give_up", self.failures)]
        else:
            assert decision.attempt == streak
            assert decision.delay == self.backoff.delay(streak)
            assert self.hooks == [("failure", self.failures), ("restart", decision.number)]

    @invariant()
    def counts_agree(self) -> None:
        if hasattr(self, "model") and self.model.max_restarts != -1:
            assert self.engine.intensity.recent_at(self.now) == len(
                [t for t in self.model.times if t >= self.now - self.model.window]
            )


TestRestartEngineMatchesOTP = EngineMachine.TestCase
TestRestartEngineMatchesOTP.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None
)
