"""The resilient LLM call path (SPEC §3): one composable path for blocking and
streaming calls alike.

Each attempt goes, in this order::

    budget check → circuit breaker (fail fast when open) → rate limiters (shared per
    model, then per agent) → concurrency cap → circuit breaker (take a probe slot)
    → the call, under the per-call timeout → settle the rate limits with real usage

and the retry policy wraps the whole attempt: a failed attempt that the policy
retries starts over at the budget check after the policy's delay (or the server's
``retry-after``). Local refusals — a ``block`` budget, a ``reject`` rate limiter,
an open breaker — are never retried: they fail fast.

**Fallback model.** A path may carry a second path, :attr:`CallPath.fallback`, for
the agent's ``fallback_model`` (its own rate limiters, breaker and timeout; the same
retry policy). When the primary's attempts end with an error of a retryable class
(``rate_limit``, ``overloaded``, ``timeout``, ``temporary``) that came before any
output reached the caller, the same request goes through the fallback path, whose
retry policy runs afresh. That includes an open breaker and a ``reject`` rate
limiter of the primary (both ``refused_locally`` with a retryable class: the
primary model is unavailable, which is what a fallback is for); never a budget
refusal (``budget_exceeded``), ``invalid_request`` or ``authentication`` — another
model cannot cure those. It is one loop: the retry loop below switches to the
fallback path once, in place, so a path without a fallback pays nothing.

The path knows nothing of agents or events; it reports what happens through the
hooks of :class:`CallObserver`, which the agent loop turns into ``llm.call``,
``budget.*`` and ``circuit.*`` events.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs
import trio

from .._errors import ErrorClass, LLMError
from ._breaker import BreakerState, CircuitBreaker
from ._budget import BudgetExceeded, BudgetTracker
from ._limits import ConcurrencyCap, RateLimiter, Reservation
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from ..llm import LLMResponse

__all__ = [
    "DEFAULT_LLM_TIMEOUT",
    "Attempt",
    "CallObserver",
    "CallPath",
    "KeepAlive",
    "falls_back",
]

#: Seconds one LLM call may take (SPEC §3.6), unless configured otherwise.
DEFAULT_LLM_TIMEOUT: Final = 300.0

KeepAlive = Callable[[bool], None]
"""Called by a streaming attempt whenever data arrives, so the timeout starts over;
its argument says whether output has reached the caller (then a timeout after it is
not retried transparently)."""

Attempt = Callable[[KeepAlive], Awaitable["LLMResponse"]]
"""Makes one LLM call. A streaming attempt calls its argument on every chunk, so the
per-call timeout bounds the silence between chunks rather than the whole stream."""


class CallObserver(Protocol):
    """What the path tells its owner (all synchronous, all optional to act on)."""

    def attempt_failed(
        self, number: int, error: LLMError, started: float, retry_in: float | None
    ) -> None:
        """Attempt ``number`` (from 1) failed; ``retry_in`` is the delay before the
        next attempt, or ``None`` when there will be none."""

    def budget_refused(self, error: BudgetExceeded) -> None:
        """A ``block`` budget refused the call before it was made."""

    def breaker_changed(self, breaker: CircuitBreaker, state: BreakerState) -> None:
        """The breaker moved to ``state`` (``open``, ``half_open`` or ``closed``)."""

    def falling_back(self, error: LLMError) -> None:
        """The primary model's attempts ended with ``error``; the following attempts
        (numbered from 1 again) go to the fallback model."""


def _check_timeout(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
        raise ValueError(
            f"{attribute.name} must be a positive number of seconds or None, got {value!r}"
        )


@attrs.define(eq=False, kw_only=True)
class CallPath:
    """The resilience an agent's LLM calls go through (shared by its processes).

    Attributes:
        retry: the retry policy (``None``: one attempt).
        limiters: rate limiters to pass, in order (the model's shared limiter first,
            then the agent's own).
        cap: the backend's concurrency cap, if any.
        breaker: the agent's circuit breaker, if any.
        timeout: seconds one attempt may take (for a stream: the longest silence
            between chunks); ``None`` leaves it to the backend (``AnthropicLLM``'s
            own ``timeout``, 5 minutes by default).
        fallback: the path of the fallback model, if there is one: a call given a
            ``fallback`` attempt goes through it when the primary's attempts end with
            a retryable class before any output (see the module docstring).
    """

    retry: RetryPolicy | None = None
    limiters: tuple[RateLimiter, ...] = ()
    cap: ConcurrencyCap | None = None
    breaker: CircuitBreaker | None = None
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    fallback: CallPath | None = None
    _needs_tokens: bool = attrs.field(init=False, default=False)
    _plain: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._needs_tokens = any(
            limiter.spec.tokens_per_minute is not None for limiter in self.limiters
        )
        # Nothing between the budget check and the call: the common agent's path.
        self._plain = (
            not self.limiters and self.cap is None and self.breaker is None and self.timeout is None
        )

    def is_direct(self, budgets: Sequence[BudgetTracker]) -> bool:
        """Whether a call with ``budgets`` goes straight to the model: nothing to pass
        before it (no limiter, cap, breaker or timeout, no ``block`` budget) and no
        fallback. A caller may then make the first attempt itself and hand a failure
        to :meth:`call` (``failed=``), which goes on from it."""
        return self._plain and self.fallback is None and not self._blocks(budgets)

    async def call(
        self,
        attempt: Attempt,
        *,
        observer: CallObserver,
        budgets: Sequence[BudgetTracker] = (),
        estimate_tokens: Callable[[], int] | None = None,
        estimate_cost: Callable[[int], float] | None = None,
        fallback: Attempt | None = None,
        fallback_cost: Callable[[int], float] | None = None,
        started: float | None = None,
        failed: LLMError | None = None,
    ) -> LLMResponse:
        """Make an LLM call through the whole path and return its response.

        Args:
            attempt: makes one call (see :data:`Attempt`); it must raise failures of
                the model call as :class:`~vega_trio.LLMError`.
            observer: told about failed attempts, refusals and breaker changes.
            budgets: the trackers whose ``block`` budgets must allow the call
                (checked before every attempt; charging is the caller's job, since
                it knows the price).
            estimate_tokens: the prompt's estimated tokens (for tokens-per-minute
                limits and the budget check); called at most once per call.
            estimate_cost: the estimated USD cost of that many prompt tokens (a
                lower bound: output is not known yet).
            fallback: makes one call of the same request to the fallback model; used
                only when this path has a :attr:`fallback` path.
            fallback_cost: ``estimate_cost`` at the fallback model's price.
            started: when the call began (``trio.current_time()``), if the caller has
                read the clock already; the first attempt starts then.
            failed: the error of a first attempt the caller made itself (a caller
                with a plain path and no ``block`` budget may call the model
                directly, as this method would): the call goes on from that failure
                (retry, fallback, events) as if this method had made the attempt.

        Raises:
            LLMError: the last attempt's error (``attempts`` says how many were
                made — of the fallback model, once it was tried), or a local refusal
                (:class:`BudgetExceeded`, :class:`RateLimited`,
                :class:`RequestTooLarge`, :class:`CircuitOpen`).
        """
        # NOTE: the prompt's tokens are estimated lazily (most paths have no use for
        # them), at most once per call; the memo is made on the first path that may
        # need it, not on every call (a closure and two cells per call in flight, B2).
        memo: _Memo | None = None

        # NOTE: the retry loop is RetryPolicy.run's, inlined: this is every LLM call's
        # hot path, and each coroutine layer costs more than the loop itself.
        path = self
        retry = self.retry
        number = 1
        if started is None:
            started = trio.current_time()
        error = failed
        while True:
            if error is None:
                try:
                    if path._plain and not (budgets and path._blocks(budgets)):
                        await trio.lowlevel.checkpoint_if_cancelled()
                        return await attempt(_no_keepalive)
                    if memo is None:
                        memo = _Memo(estimate_tokens)
                    return await path._attempt(attempt, observer, budgets, memo, estimate_cost)
                except LLMError as exc:
                    error = exc
            # NOTE: the failure is handled outside the except block: the wait before a
            # retry must not carry the handled error, and a failure the caller had
            # (``failed``) takes the same steps.
            assert error is not None
            failure, error = error, None
            failure.attempts = number
            delay = None if retry is None else retry.delay_after(number, failure)
            observer.attempt_failed(number, failure, started, delay)
            if delay is None:
                # NOTE: the one switch to the fallback model happens here, in the
                # same loop: the failure path only, so the hot path costs nothing.
                if fallback is None or path.fallback is None or not falls_back(failure):
                    raise failure
                observer.falling_back(failure)
                path = path.fallback
                retry = path.retry
                attempt, fallback = fallback, None
                if fallback_cost is not None:
                    estimate_cost = fallback_cost
                number, delay = 0, 0.0
            await trio.sleep(delay)
            number += 1
            started = trio.current_time()

    @staticmethod
    def _blocks(budgets: Sequence[BudgetTracker]) -> bool:
        """Whether one of ``budgets`` may refuse a call (``on_exceed="block"``)."""
        for tracker in budgets:
            budget = tracker.budget
            if budget is not None and budget.on_exceed == "block":
                return True
        return False

    @staticmethod
    def _check_budgets(
        observer: CallObserver,
        budgets: Sequence[BudgetTracker],
        estimated_tokens: Callable[[], int],
        estimate_cost: Callable[[int], float] | None,
    ) -> None:
        cost = -1.0
        for tracker in budgets:
            budget = tracker.budget
            if budget is not None and budget.on_exceed == "block":
                if cost < 0:
                    cost = 0.0 if estimate_cost is None else estimate_cost(estimated_tokens())
                try:
                    tracker.check(cost)
                except BudgetExceeded as exc:
                    observer.budget_refused(exc)
                    raise

    async def _attempt(
        self,
        attempt: Attempt,
        observer: CallObserver,
        budgets: Sequence[BudgetTracker],
        estimated_tokens: Callable[[], int],
        estimate_cost: Callable[[int], float] | None,
    ) -> LLMResponse:
        # NOTE: the steps before the call take their fast paths without a schedule
        # point (the call itself has plenty); only a wait (a queue, a full cap) yields.
        await trio.lowlevel.checkpoint_if_cancelled()
        if budgets:
            self._check_budgets(observer, budgets, estimated_tokens, estimate_cost)
        breaker = self.breaker
        if breaker is not None and breaker.state == "open":
            breaker.before_call()  # raises CircuitOpen: fail fast, take no rate slot
        reservations: list[Reservation] = []
        if self.limiters:
            tokens = estimated_tokens() if self._needs_tokens else 0
            for limiter in self.limiters:
                reservation = limiter.try_acquire(tokens)
                if reservation is None:
                    reservation = await limiter.acquire(tokens)
                reservations.append(reservation)
        cap = self.cap
        if cap is None:
            response = await self._guarded(attempt, observer)
        else:
            borrower = object()
            if not cap.try_acquire(borrower):
                await cap.acquire(borrower)
            try:
                response = await self._guarded(attempt, observer)
            finally:
                cap.release(borrower)
        if reservations:
            used = response.usage.total_tokens
            for reservation in reservations:
                reservation.settle(used)
        return response

    async def _guarded(self, attempt: Attempt, observer: CallObserver) -> LLMResponse:
        breaker = self.breaker
        if breaker is None:
            return await self._timed(attempt)
        before = breaker.state
        breaker.before_call()  # raises CircuitOpen (also: every probe slot is taken)
        if before == "half_open":
            observer.breaker_changed(breaker, "half_open")  # this call is a probe
        try:
            response = await self._timed(attempt)
        except Exception as exc:
            breaker.record_failure(exc)
            if breaker.state != before:
                observer.breaker_changed(breaker, breaker.state)
            raise
        except BaseException:
            breaker.release_probe()  # cancelled: no outcome to record
            raise
        breaker.record_success()
        if breaker.state != before:
            observer.breaker_changed(breaker, breaker.state)
        return response

    async def _timed(self, attempt: Attempt) -> LLMResponse:
        timeout = self.timeout
        if timeout is None:
            return await attempt(_no_keepalive)
        output_started = False
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:

            def keep_alive(output: bool) -> None:
                nonlocal output_started
                output_started = output_started or output
                scope.deadline = trio.current_time() + timeout

            return await attempt(keep_alive)
        waited = "more of the stream" if output_started else "a reply"
        raise LLMError(
            f"LLM call failed (timeout): no {waited} within {timeout:g}s (the agent's "
            "llm_timeout); raise llm_timeout for slow models or long generations",
            error_class=ErrorClass.TIMEOUT,
            output_started=output_started,
        )


def falls_back(error: LLMError) -> bool:
    """Whether a primary model's final ``error`` sends the call to the fallback model:
    a retryable class (``rate_limit``, ``overloaded``, ``timeout``, ``temporary``,
    an open breaker and a ``reject`` rate limiter included) before any output reached
    the caller. Never a budget refusal, ``invalid_request`` or ``authentication``."""
    return error.error_class.retryable and not error.output_started


def _no_keepalive(output: bool) -> None:
    pass


class _Memo:
    """The prompt's estimated tokens of one call, computed at most once."""

    __slots__ = ("_estimate", "_tokens")

    def __init__(self, estimate: Callable[[], int] | None) -> None:
        self._estimate = estimate
        self._tokens = -1

    def __call__(self) -> int:
        if self._tokens < 0:
            self._tokens = self._estimate() if self._estimate is not None else 0
        return self._tokens
