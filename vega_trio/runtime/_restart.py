"""The restart engine: one restart rule for everything that restarts (SPEC §2.1).

Per-process supervision (:class:`~vega_trio.runtime.Process`), supervisor trees
(:class:`~vega_trio.runtime.Supervisor`) and MCP server connections all restart through
a :class:`RestartEngine`. The engine is pure: the caller tells it what happened
(:meth:`RestartEngine.failure`, :meth:`RestartEngine.up`) with the current Trio time,
and gets a :class:`RestartDecision` back — restart after ``delay`` seconds, stop, or
give up. The caller then drives the restart itself (a new incarnation, the tree's
strategy, a new connection); :func:`wait` is the one backoff wait. Nothing here runs
per message: the engine is only consulted when something failed.

The rules, each in one place:

* **Intensity** (:class:`RestartIntensity`, OTP's ``add_restart``): ``max_restarts=N``
  allows N restarts inside any sliding ``window`` of seconds; the failure that would be
  restart N+1 inside it gives up. ``-1`` is unlimited, ``0`` gives up at once.
* **Backoff** (:class:`Backoff`): the wait before restart number ``n`` of the current
  *streak*. A streak ends when the restarted thing has been up (:meth:`RestartEngine.up`)
  for at least ``window`` seconds before it fails again — it was stable, so the next
  failure waits the first delay again. Without a backoff (supervisor trees, as in OTP) the
  restart is immediate.
* **Hooks**: ``on_failure(cause)`` at every failure, then either ``on_restart(number)``
  (``number`` counts every restart so far, this one included) or ``on_give_up(cause)``.
  They are the emission points for events; a hook that raises is logged and ignored, so
  a broken hook cannot take the supervision down with it.
"""

from __future__ import annotations

import collections
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, NamedTuple, TypeVar

import attrs
import trio

__all__ = [
    "Backoff",
    "RestartDecision",
    "RestartEngine",
    "RestartIntensity",
    "call_hook",
    "wait",
]

_log = logging.getLogger("vega_trio.runtime")

CauseT = TypeVar("CauseT")


def _non_negative(_instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be zero or more, got {value!r}")


@attrs.frozen(kw_only=True)
class Backoff:
    """How long to wait before restart number ``n`` (counted from 1).

    * ``exponential``: ``initial * multiplier ** (n - 1)``
    * ``linear``: ``initial * n``
    * ``constant``: ``initial``

    capped at ``max``, then spread by ``± jitter`` (a fraction), never negative.
    """

    kind: Literal["exponential", "linear", "constant"] = "exponential"
    initial: float = attrs.field(default=0.1, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_non_negative)
    max: float = attrs.field(default=30.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("exponential", "linear", "constant"):
            raise ValueError(
                f"Backoff kind must be 'exponential', 'linear' or 'constant', not {self.kind!r}"
            )
        if self.jitter > 1:
            raise ValueError(f"Backoff jitter is a fraction between 0 and 1, got {self.jitter}")

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before restart ``n`` (1 for the first restart)."""
        if n < 1:
            raise ValueError(f"restart numbers start at 1, got {n}")
        if self.kind == "exponential":
            try:
                base = self.initial * self.multiplier ** (n - 1)
            except OverflowError:
                base = math.inf
        elif self.kind == "linear":
            base = self.initial * n
        else:
            base = self.initial
        base = min(base, self.max)
        if self.jitter and base > 0:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            base *= 1 + spread
        return max(0.0, base)


@attrs.define(eq=False)
class RestartIntensity:
    """OTP's restart intensity: at most ``max_restarts`` within ``window`` seconds.

    Call :meth:`allow` at each failure with the current (Trio) time: it records a
    restart and returns ``True``, or returns ``False`` when this restart would be one
    too many (the caller gives up).
    """

    max_restarts: int
    window: float
    _times: collections.deque[float] = attrs.field(factory=collections.deque)

    def __attrs_post_init__(self) -> None:
        if self.max_restarts < -1:
            raise ValueError(
                f"max_restarts must be -1 (unlimited) or more, got {self.max_restarts}"
            )
        if not self.window > 0:
            raise ValueError(f"window must be a positive number of seconds, got {self.window!r}")

    def allow(self, now: float) -> bool:
        """Record a restart at ``now`` if the intensity allows it."""
        if self.max_restarts == -1:
            self._times.append(now)
            if len(self._times) > 64:
                self._times.popleft()
            return True
        times = self._times
        # NOTE: as supervisor.erl's add_restart/3: restarts at or after now - window
        # still count (the window is inclusive at its old end).
        threshold = now - self.window
        while times and times[0] < threshold:
            times.popleft()
        if len(times) >= self.max_restarts:
            return False
        times.append(now)
        return True

    @property
    def recent(self) -> int:
        """Restarts recorded in the current window (as of the last :meth:`allow`)."""
        return len(self._times)

    def recent_at(self, now: float) -> int:
        """Restarts recorded within ``window`` seconds before ``now``."""
        threshold = now - self.window
        return sum(1 for t in self._times if t >= threshold)

    def reset(self) -> None:
        """Forget past restarts."""
        self._times.clear()


class RestartDecision(NamedTuple):
    """What to do about one failure.

    Attributes:
        action: ``restart`` (after :attr:`delay`), ``stop`` (the caller said the failure
            is not to be restarted; nothing was counted) or ``give_up`` (the intensity is
            used up).
        delay: seconds to wait before restarting (``0.0`` unless ``restart``).
        number: restarts granted so far, this one included (the ``restart #n`` shown
            to users); unchanged on ``stop`` and ``give_up``.
        attempt: this restart's place in the current streak — the ``n`` of the backoff
            (``0`` unless ``restart``).
    """

    # NOTE: a NamedTuple, not an attrs class: one is made per restart, and building a
    # frozen attrs instance costs more than the rest of the decision (B4).
    action: Literal["restart", "stop", "give_up"]
    delay: float = 0.0
    number: int = 0
    attempt: int = 0

    @property
    def restart(self) -> bool:
        """Whether to restart (after :attr:`delay`)."""
        return self.action == "restart"


@attrs.define(eq=False)
class RestartEngine(Generic[CauseT]):
    """The restart state of one supervised thing (a process, a tree, a connection).

    Args:
        max_restarts: restarts allowed within ``window`` (``-1`` unlimited, ``0`` none).
        window: the sliding window in seconds; also how long the thing must stay up for
            the backoff to start over.
        backoff: the wait before each restart, or ``None`` to restart at once.
        on_failure: called with the cause at every failure.
        on_restart: called with the restart number when a restart is granted (before
            the backoff wait).
        on_give_up: called with the cause when the intensity is used up.
        rng: the random source for the backoff's jitter (tests pass a seeded one).
    """

    max_restarts: int
    window: float
    backoff: Backoff | None = None
    on_failure: Callable[[CauseT], object] | None = None
    on_restart: Callable[[int], object] | None = None
    on_give_up: Callable[[CauseT], object] | None = None
    rng: random.Random | None = None
    intensity: RestartIntensity = attrs.field(init=False)
    restarts: int = attrs.field(default=0, init=False)
    """Restarts granted so far."""
    gave_up: bool = attrs.field(default=False, init=False)
    """Whether a failure found the intensity used up."""
    _streak: int = attrs.field(default=0, init=False)
    _up_since: float | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.intensity = RestartIntensity(self.max_restarts, self.window)  # validates both

    def up(self, now: float) -> None:
        """The supervised thing is running (again) since ``now``.

        Call it when an incarnation starts (a connection is established); a failure at
        least ``window`` seconds later ends the streak, so its backoff starts over.
        """
        self._up_since = now

    def failure(self, cause: CauseT, now: float, *, restart: bool = True) -> RestartDecision:
        """Decide about a failure at ``now`` (Trio time).

        Args:
            cause: what failed (an exit reason, an error message); passed to the hooks.
            now: the current Trio time.
            restart: ``False`` when the caller's policy never restarts this failure
                (strategy ``stop``/``escalate``, a reason a restart cannot cure): only
                ``on_failure`` is called and nothing is counted.
        """
        if self.on_failure is not None:
            call_hook(self.on_failure, cause)
        if not restart:
            return RestartDecision("stop", 0.0, self.restarts)
        up_since = self._up_since
        if up_since is not None:
            self._up_since = None
            if now - up_since >= self.window:
                self._streak = 0  # it was stable: the backoff starts over
        if not self.intensity.allow(now):
            self.gave_up = True
            if self.on_give_up is not None:
                call_hook(self.on_give_up, cause)
            return RestartDecision("give_up", 0.0, self.restarts)
        self.restarts = restarts = self.restarts + 1
        self._streak = streak = self._streak + 1
        backoff = self.backoff
        delay = 0.0 if backoff is None else backoff.delay(streak, self.rng)
        if self.on_restart is not None:
            call_hook(self.on_restart, restarts)
        return RestartDecision("restart", delay, restarts, streak)

    def limit(self, noun: str = "restart") -> str:
        """``more than 3 restart(s) within 5s``: the limit, for give-up messages."""
        return f"more than {self.max_restarts} {noun}(s) within {self.window:g}s"


def wait(decision: RestartDecision) -> Awaitable[None]:
    """Wait out a restart's backoff in Trio time (cancellable; a checkpoint when zero).

    ``await wait(decision)``; a plain function returning Trio's own awaitable, so the
    restart path pays no extra coroutine frame (B4).
    """
    # NOTE: the caller awaits what we return at once (ASYNC105 cannot see through it).
    if decision.delay > 0:
        return trio.sleep(decision.delay)  # noqa: ASYNC105
    return trio.lowlevel.checkpoint()  # noqa: ASYNC105


def call_hook(hook: Callable[..., object] | None, *args: Any) -> None:
    """Call a supervision hook (if any); log what it raises instead of propagating."""
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:  # a failing hook must not take the supervision down with it
        _log.exception("supervision hook %r failed", hook)
