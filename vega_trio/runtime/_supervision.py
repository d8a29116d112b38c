"""Restart policy data: backoff, the restart-intensity window, per-process supervision.

The counting rule is OTP's and is used everywhere (per-process supervision and
supervisor trees alike): ``max_restarts=N`` allows N restarts inside any sliding
``window`` of seconds; the failure that would be restart N+1 inside it gives up.
``-1`` means unlimited, ``0`` gives up at once.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from ._process import Process
    from ._reason import ExitReason

__all__ = ["Backoff", "RestartIntensity", "Supervision"]


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

    def reset(self) -> None:
        """Forget past restarts."""
        self._times.clear()


@attrs.frozen(kw_only=True)
class Supervision:
    """Per-process supervision (SPEC §2.1), given to ``spawn(..., supervision=...)``.

    Attributes:
        strategy: ``restart`` the process in place; ``stop`` it (never restart);
            ``escalate`` the failure to the parent supervisor or parent process.
        max_restarts: restarts allowed within ``window`` (``-1`` unlimited, ``0`` none).
        window: the sliding window in seconds.
        backoff: the wait before each restart (Trio time, cancellable).
        restart_state: ``keep`` the conversation up to the last completed turn, or
            start ``fresh``.
        on_failure: called with ``(process, exit_reason)`` at every crash.
        on_restart: called with ``(process, restart_number)`` before each restart.
        on_give_up: called with ``(process, exit_reason)`` when restarts are exhausted.
    """

    strategy: Literal["restart", "stop", "escalate"] = "restart"
    max_restarts: int = 3
    window: float = 60.0
    backoff: Backoff = Backoff()
    restart_state: Literal["keep", "fresh"] = "keep"
    on_failure: Callable[[Process, ExitReason], None] | None = attrs.field(default=None, eq=False)
    on_restart: Callable[[Process, int], None] | None = attrs.field(default=None, eq=False)
    on_give_up: Callable[[Process, ExitReason], None] | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.strategy not in ("restart", "stop", "escalate"):
            raise ValueError(
                f"Supervision strategy must be 'restart', 'stop' or 'escalate', "
                f"not {self.strategy!r}"
            )
        if self.restart_state not in ("keep", "fresh"):
            raise ValueError(f"restart_state must be 'keep' or 'fresh', not {self.restart_state!r}")
        RestartIntensity(self.max_restarts, self.window)  # validates both

    def intensity(self) -> RestartIntensity:
        """A fresh counter for one supervised process."""
        return RestartIntensity(self.max_restarts, self.window)
