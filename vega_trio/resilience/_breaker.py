"""A circuit breaker in front of an agent's LLM calls (SPEC §3.4).

States::

    closed ──threshold consecutive failures──▶ open ──reset_after seconds──▶ half_open
      ▲                                          ▲                              │
      └────────────── a probe succeeds ──────────┼──────────────────────────────┤
                                                 └────── a probe fails ─────────┘

* **closed**: calls go through; each counted failure adds one to a run of
  consecutive failures, a success ends the run.
* **open**: :meth:`CircuitBreaker.before_call` raises :class:`CircuitOpen` at once,
  so no LLM call is made.
* **half_open**: at most ``half_open_max`` probe calls at a time go through; the
  first probe to succeed closes the breaker, a probe that fails opens it again (and
  the ``reset_after`` timer starts over).

The state is computed from ``trio.current_time()``: time passing moves *open* to
*half_open* without a timer task, and every method must run inside ``trio.run``.

**What counts as a failure.** Only an :class:`~vega_trio.LLMError` whose class is
retryable (rate limit, overloaded, timeout, temporary) says the service is unwell.
An authentication, invalid-request or budget error is about *this* request or
account, not the service's health, so it neither opens the breaker nor ends a run
of failures; nor does any non-``LLMError`` exception (a bug, a tool failure) or a
:class:`CircuitOpen` from this or another breaker. A retryable failure that came
after streamed output had started does count: the service broke mid-answer.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import attrs
import trio

from .._errors import BreakerState, CircuitOpen, LLMError
from .._log import log_record

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpen"]

_log = logging.getLogger("vega_trio.resilience")


def _positive_int(_instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"CircuitBreaker {attribute.name} must be a whole number of at least 1, got {value!r}"
        )


def _seconds(_instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"CircuitBreaker {attribute.name} must be a finite number of seconds, zero or "
            f"more, got {value!r}"
        )


def _name(_instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise ValueError(
            f"CircuitBreaker {attribute.name} must be a string (it names the breaker in "
            f"errors and logs, e.g. the agent's name), got {value!r}"
        )


Hook: TypeAlias = "Callable[[CircuitBreaker], None]"


@attrs.define(eq=False, kw_only=True)
class CircuitBreaker:
    """Fail fast while a model keeps failing; probe it again after a while.

    A mutable handle shared by every call it guards (one per agent). Use
    ``async with breaker.guard(): ...`` around a call, or call :meth:`before_call`
    before it and :meth:`record_success` / :meth:`record_failure` after it.

    Attributes:
        name: names the breaker in :class:`CircuitOpen` messages and logs; an
            agent names an unnamed breaker after itself (``"agent 'researcher'"``).
        threshold: consecutive counted failures that open a closed breaker.
        reset_after: seconds an open breaker waits before it half-opens.
        half_open_max: probe calls allowed at the same time while half-open.
        on_open: called with the breaker each time it opens (also on reopening after
            a failed probe). An exception it raises is logged, never propagated.
        on_close: called with the breaker when a probe success closes it; same rule.
    """

    name: str = attrs.field(default="", validator=_name)
    threshold: int = attrs.field(default=5, validator=_positive_int)
    reset_after: float = attrs.field(default=30.0, validator=_seconds)
    half_open_max: int = attrs.field(default=1, validator=_positive_int)
    on_open: Hook | None = None
    on_close: Hook | None = None

    _failures: int = attrs.field(default=0, init=False)
    _opened_because: str = attrs.field(default="", init=False)
    # NOTE: None while closed; the Trio time it (last) opened otherwise.
    _opened_at: float | None = attrs.field(default=None, init=False)
    _probes: int = attrs.field(default=0, init=False)

    @property
    def state(self) -> BreakerState:
        """``"closed"``, ``"open"`` or ``"half_open"`` at the current Trio time."""
        if self._opened_at is None:
            return "closed"
        if trio.current_time() >= self._opened_at + self.reset_after:
            return "half_open"
        return "open"

    @property
    def failures(self) -> int:
        """The current run of consecutive counted failures."""
        return self._failures

    def before_call(self) -> None:
        """Let a call through, or refuse it.

        While half-open, a call let through takes a probe slot until its outcome is
        recorded (:meth:`record_success` / :meth:`record_failure`).

        Raises:
            CircuitOpen: the breaker is open, or half-open with every probe slot taken.
        """
        state = self.state
        if state == "closed":
            return
        assert self._opened_at is not None
        half_open_at = self._opened_at + self.reset_after
        if state == "open":
            now = trio.current_time()
            raise CircuitOpen(
                f"circuit breaker {self.name!r} is open ({self._opened_because}); "
                f"it opened {now - self._opened_at:g}s ago and "
                f"half-opens in {half_open_at - now:g}s (Trio time {half_open_at:g}), when it "
                f"lets {self.half_open_max} probe call(s) through. No LLM call was made: "
                f"retry after that, or check the model's health",
                breaker=self.name,
                state="open",
                half_open_at=half_open_at,
                retry_after=half_open_at - now,
            )
        if self._probes >= self.half_open_max:
            raise CircuitOpen(
                f"circuit breaker {self.name!r} is half-open and its {self.half_open_max} "
                f"probe call(s) are still in flight. No LLM call was made: retry once the "
                f"probe has finished (a success closes the breaker)",
                breaker=self.name,
                state="half_open",
            )
        self._probes += 1

    def record_success(self) -> None:
        """Record that a call let through by :meth:`before_call` succeeded.

        Closed: ends the run of failures. Half-open: closes the breaker. Open (a call
        that started before the breaker opened): ignored; the breaker waits for its
        own probe.
        """
        state = self.state
        if state == "closed":
            self._failures = 0
        elif state == "half_open":
            self._close()

    def record_failure(self, exc: BaseException) -> None:
        """Record that a call let through by :meth:`before_call` failed with ``exc``.

        Only a retryable-class :class:`~vega_trio.LLMError` counts (see the module
        docstring); any other failure only frees the probe slot it held.

        Args:
            exc: the call's error.
        """
        state = self.state
        if not _counts(exc):
            if state == "half_open":
                self._probes = max(0, self._probes - 1)
            return
        assert isinstance(exc, LLMError)
        if state == "closed":
            self._failures += 1
            if self._failures >= self.threshold:
                self._open(
                    f"{self._failures} consecutive failed LLM calls, "
                    f"the last {exc.error_class.value}"
                )
        elif state == "half_open":
            self._open(f"its half-open probe call failed ({exc.error_class.value})")
        # Open: a call that started before the breaker opened; the timer stands.

    def release_probe(self) -> None:
        """Give back the probe slot of a call that ended without an outcome (it was
        cancelled): it said nothing about the service, but half-open must not jam."""
        if self._probes and self.state == "half_open":
            self._probes -= 1

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """``async with breaker.guard():`` around one call: before and record, in one.

        Success of the body is recorded as a success, an ``Exception`` as a failure
        (counted or not as :meth:`record_failure` decides), and cancellation as
        neither (a probe slot it held is freed).

        Raises:
            CircuitOpen: on entry, as :meth:`before_call`; the body does not run.
        """
        await trio.lowlevel.checkpoint()
        is_probe = self.state == "half_open"
        self.before_call()
        settled = False
        try:
            yield
        except Exception as exc:
            settled = True
            self.record_failure(exc)
            raise
        else:
            settled = True
            self.record_success()
        finally:
            # NOTE: cancelled (or a BaseException): the call said nothing about the
            # service, but a probe slot it held must be freed or half-open jams.
            if not settled and is_probe and self.state == "half_open":
                self._probes = max(0, self._probes - 1)

    def _open(self, because: str) -> None:
        self._opened_at = trio.current_time()
        self._opened_because = because
        self._probes = 0
        if _log.isEnabledFor(logging.WARNING):
            log_record(
                _log,
                logging.WARNING,
                "circuit breaker %r opened: %s; it half-opens in %gs",
                self.name,
                because,
                self.reset_after,
                event="circuit.open",
                breaker=self.name,
                failures=self._failures,
                reset_after=self.reset_after,
                detail=because,
            )
        self._call_hook(self.on_open, "on_open")

    def _close(self) -> None:
        self._opened_at = None
        self._probes = 0
        self._failures = 0
        if _log.isEnabledFor(logging.INFO):
            log_record(
                _log,
                logging.INFO,
                "circuit breaker %r closed: a probe call succeeded",
                self.name,
                event="circuit.closed",
                breaker=self.name,
            )
        self._call_hook(self.on_close, "on_close")

    def _call_hook(self, hook: Hook | None, which: str) -> None:
        if hook is None:
            return
        try:
            hook(self)
        except Exception:
            # A broken hook must not break the call path it observes.
            _log.exception("circuit breaker %r: the %s hook raised", self.name, which)


def _counts(exc: BaseException) -> bool:
    return isinstance(exc, LLMError) and not exc.refused_locally and exc.error_class.retryable
