"""Rate limits and concurrency caps (SPEC §3.3).

A :class:`RateLimit` is the frozen spec; a :class:`RateLimiter` is the mutable handle
that enforces it with two one-minute windows (requests and tokens per minute): what
a call takes comes back exactly 60 seconds (of ``trio.current_time()``) later, so no
60-second span ever holds more than the limit. "60 requests per minute" therefore
means what it says: 60 calls go at once, the 61st waits until the first minute is
over. (A provider's continuously refilling token bucket of the same size is never
overrun by this, so its own 429s are avoided rather than provoked.)

With ``strategy="queue"`` callers wait in FIFO order; with ``"reject"`` a call that
does not fit raises :class:`RateLimited` at once. After the call,
:meth:`Reservation.settle` replaces the token estimate with the reported usage; a
window may go negative (debt), which delays later callers.

Per-model limiters are shared by every process on that model through
:class:`RateLimiters`; a per-backend :class:`ConcurrencyCap` bounds calls in flight.
"""

from __future__ import annotations

import collections
from types import TracebackType
from typing import Final, Literal

import attrs
import trio

from .._errors import RateLimited, RequestTooLarge

__all__ = [
    "ConcurrencyCap",
    "RateLimit",
    "RateLimited",
    "RateLimiter",
    "RateLimiters",
    "RequestTooLarge",
    "Reservation",
]

# NOTE: sums of floating-point amounts can leave a window a hair short of the
# amount it was computed to reach at a deadline; treat that as "fits" rather than
# sleeping again for a few femtoseconds.
_EPSILON = 1e-9

#: Seconds until what a call took from a per-minute limit comes back.
WINDOW: Final = 60.0


def _check_per_minute(
    instance: RateLimit, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive whole number or None, got {value!r}")


@attrs.frozen(kw_only=True)
class RateLimit:
    """How fast calls may go: requests and tokens per minute (either may be ``None``
    for "no limit") and what to do when a call does not fit.

    ``strategy="queue"`` waits (cancellable, FIFO); ``"reject"`` raises
    :class:`RateLimited` at once.
    """

    requests_per_minute: int | None = attrs.field(default=None, validator=_check_per_minute)
    tokens_per_minute: int | None = attrs.field(default=None, validator=_check_per_minute)
    strategy: Literal["queue", "reject"] = attrs.field(default="queue")

    @strategy.validator
    def _check_strategy(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("queue", "reject"):
            raise ValueError(f"strategy must be 'queue' or 'reject', got {value!r}")


@attrs.define(eq=False, slots=True)
class _Grant:
    """An amount taken from a window, due back at ``returns_at``."""

    returns_at: float
    amount: float


@attrs.define(eq=False)
class _Window:
    """``capacity`` units a minute: each unit taken comes back :data:`WINDOW` seconds
    later, so no :data:`WINDOW`-second span ever holds more than ``capacity`` units."""

    capacity: float
    used: float = 0.0
    grants: collections.deque[_Grant] = attrs.field(factory=collections.deque)

    @property
    def level(self) -> float:
        return self.capacity - self.used

    def refill(self, now: float) -> None:
        grants = self.grants
        while grants and grants[0].returns_at <= now:
            self.used -= grants.popleft().amount
        if not grants:
            self.used = 0.0  # NOTE: drop float drift once nothing is outstanding

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` is available (after :meth:`refill`)."""
        deficit = amount - self.level
        if deficit <= _EPSILON:
            return 0.0
        freed = 0.0
        for grant in self.grants:  # in return order: grants are appended with now + WINDOW
            freed += grant.amount
            if freed >= deficit - _EPSILON:
                return grant.returns_at - now
        return self.grants[-1].returns_at - now if self.grants else 0.0

    def take(self, amount: float, now: float) -> _Grant:
        grant = _Grant(now + WINDOW, amount)
        self.grants.append(grant)
        self.used += amount
        return grant


@attrs.define(eq=False)
class _Waiter:
    tokens: int
    wakeup: trio.Event = attrs.field(factory=trio.Event)


class Reservation:
    """What one :meth:`RateLimiter.acquire` took; :meth:`settle` it after the call.

    Attributes:
        estimated_tokens: the tokens taken from the window on acquire.
        acquired_at: ``trio.current_time()`` when the reservation was granted.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        estimated_tokens: int,
        acquired_at: float,
        grant: _Grant | None,
    ) -> None:
        self._limiter = limiter
        self._grant = grant
        self.estimated_tokens = estimated_tokens
        self.acquired_at = acquired_at
        self.settled = False

    def __repr__(self) -> str:
        return (
            f"<Reservation {self.estimated_tokens} tokens at {self.acquired_at}"
            f"{' settled' if self.settled else ''}>"
        )

    def settle(self, actual_tokens: int) -> None:
        """Correct the tokens-per-minute window with the call's reported usage.

        A smaller actual use gives the difference back at once (letting queued
        callers in earlier); a larger one takes the extra now, due back a minute
        from now — possibly taking the window below zero, which delays later
        callers until it has come back.

        Args:
            actual_tokens: the tokens the call really used (e.g. ``usage.total_tokens``).

        Raises:
            ValueError: ``actual_tokens`` is negative.
            RuntimeError: the reservation was settled already.
        """
        if actual_tokens < 0:
            raise ValueError(f"actual_tokens must be zero or more, got {actual_tokens}")
        if self.settled:
            raise RuntimeError("this reservation was settled already; settle each call once")
        self.settled = True
        self._limiter._adjust_tokens(self._grant, self.estimated_tokens - actual_tokens)


class RateLimiter:
    """Enforces a :class:`RateLimit`; share one instance among everything it limits.

    Args:
        spec: the limits and strategy.
        name: who is limited, for error messages (e.g. ``"model 'claude-sonnet-4'"``).

    Each limit is a window of a minute: what a call takes comes back 60 seconds
    later, so no minute ever holds more than the limit. Must be used from inside
    ``trio.run`` (it reads the clock).
    """

    def __init__(self, spec: RateLimit, *, name: str = "rate limiter") -> None:
        self.spec = spec
        self.name = name
        rpm, tpm = spec.requests_per_minute, spec.tokens_per_minute
        self._requests = None if rpm is None else _Window(capacity=rpm)
        self._tokens = None if tpm is None else _Window(capacity=tpm)
        self._queue: collections.deque[_Waiter] = collections.deque()

    def __repr__(self) -> str:
        return f"<RateLimiter {self.name} {self.spec!r} queued={len(self._queue)}>"

    @property
    def queued(self) -> int:
        """How many callers are waiting."""
        return len(self._queue)

    @property
    def available_tokens(self) -> float | None:
        """Tokens the tokens-per-minute window has left now (negative when in debt),
        or ``None`` without a token limit."""
        self._refill(trio.current_time())
        return None if self._tokens is None else self._tokens.level

    @property
    def available_requests(self) -> float | None:
        """Requests the requests-per-minute window has left now, or ``None`` without
        a request limit."""
        self._refill(trio.current_time())
        return None if self._requests is None else self._requests.level

    def _refill(self, now: float) -> None:
        if self._requests is not None:
            self._requests.refill(now)
        if self._tokens is not None:
            self._tokens.refill(now)

    def _wait_for(self, tokens: int, now: float) -> float:
        """Seconds until one request with ``tokens`` fits (0 when it fits now)."""
        self._refill(now)
        wait = 0.0
        if self._requests is not None:
            wait = self._requests.wait_for(1, now)
        if self._tokens is not None:
            wait = max(wait, self._tokens.wait_for(tokens, now))
        return wait

    def _take(self, tokens: int, now: float) -> Reservation:
        # NOTE: no checkpoint between the fit check and here, so a cancelled
        # caller never consumes.
        if self._requests is not None:
            self._requests.take(1, now)
        grant = None if self._tokens is None else self._tokens.take(tokens, now)
        return Reservation(self, tokens, now, grant)

    def _adjust_tokens(self, grant: _Grant | None, delta: int) -> None:
        window = self._tokens
        if window is None or grant is None or delta == 0:
            return
        now = trio.current_time()
        if delta > 0:
            # Give back what was not used, unless the grant has come back already.
            refund = min(delta, grant.amount) if grant.returns_at > now else 0
            grant.amount -= refund
            window.used -= refund
        else:
            window.take(-delta, now)
        # The head of the queue recomputes its deadline (earlier after a refund,
        # later after a debt).
        self._wake_head()

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0].wakeup.set()

    async def acquire(self, estimated_tokens: int = 0) -> Reservation:
        """Take one request slot and ``estimated_tokens`` tokens.

        With ``strategy="queue"`` this waits, in FIFO order, until both fit; the
        wait is cancellable and a cancelled caller leaves the queue without taking
        anything. With ``"reject"`` a call that does not fit now raises at once.

        Args:
            estimated_tokens: the tokens the call is expected to use; correct it
                afterwards with :meth:`Reservation.settle`.

        Returns:
            The :class:`Reservation` to settle after the call.

        Raises:
            RateLimited: ``strategy="reject"`` and the call does not fit now
                (``retry_after`` says when it would).
            RequestTooLarge: ``estimated_tokens`` exceeds the tokens-per-minute
                capacity, so the call could never fit.
            ValueError: ``estimated_tokens`` is negative.
        """
        # NOTE: the fit check and the take happen with no schedule point between
        # them, and a waiter joins the queue the same way, so callers are served
        # in the order they called; the checkpoint after taking is cancel-shielded
        # so a cancellation cannot lose what was taken.
        await trio.lowlevel.checkpoint_if_cancelled()
        reservation = self.try_acquire(estimated_tokens)
        if reservation is None:
            return await self._wait_in_queue(estimated_tokens)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return reservation

    def try_acquire(self, estimated_tokens: int = 0) -> Reservation | None:
        """:meth:`acquire` without waiting (and without a checkpoint): the reservation
        when the call fits now and nobody is queued, else ``None`` (for
        ``strategy="queue"``; then ``await acquire()`` joins the queue).

        Raises:
            RateLimited: ``strategy="reject"`` and the call does not fit now.
            RequestTooLarge: ``estimated_tokens`` exceeds the tokens-per-minute capacity.
            ValueError: ``estimated_tokens`` is negative.
        """
        if estimated_tokens < 0:
            raise ValueError(f"estimated_tokens must be zero or more, got {estimated_tokens}")
        tpm = self.spec.tokens_per_minute
        if tpm is not None and estimated_tokens > tpm:
            raise RequestTooLarge(
                f"{self.name}: a call estimated at {estimated_tokens} tokens can never fit "
                f"under its limit of {tpm} tokens per minute; shorten the prompt or "
                "max_tokens, or raise tokens_per_minute",
                limiter=self.name,
                estimated_tokens=estimated_tokens,
                capacity=tpm,
            )
        now = trio.current_time()
        if self.spec.strategy == "reject":
            wait = self._wait_for(estimated_tokens, now)
            if wait > 0:
                raise RateLimited(
                    f"{self.name}: rate limit reached ({self._describe()}); "
                    f"the call would fit in {wait:.3f}s — retry then, or use strategy='queue'",
                    limiter=self.name,
                    retry_after=wait,
                )
        elif self._queue or self._wait_for(estimated_tokens, now) > 0:
            return None
        return self._take(estimated_tokens, now)

    async def _wait_in_queue(self, tokens: int) -> Reservation:
        waiter = _Waiter(tokens)
        self._queue.append(waiter)
        granted = False
        try:
            while True:
                if self._queue[0] is waiter:
                    now = trio.current_time()
                    wait = self._wait_for(tokens, now)
                    if wait == 0:
                        self._queue.popleft()
                        granted = True
                        reservation = self._take(tokens, now)
                        self._wake_head()
                        return reservation
                    # Sleep exactly until it fits, unless a settle() changes the
                    # arithmetic first (then recompute).
                    with trio.move_on_at(now + wait):
                        await waiter.wakeup.wait()
                else:
                    await waiter.wakeup.wait()
                waiter.wakeup = trio.Event()
        finally:
            if not granted:
                # NOTE: cancelled (or failed) before _take: leaving the queue is all
                # there is to undo; the next in line may be able to go now.
                was_head = self._queue[0] is waiter
                self._queue.remove(waiter)
                if was_head:
                    self._wake_head()

    def _describe(self) -> str:
        parts = []
        if self.spec.requests_per_minute is not None:
            parts.append(f"{self.spec.requests_per_minute} requests/min")
        if self.spec.tokens_per_minute is not None:
            parts.append(f"{self.spec.tokens_per_minute} tokens/min")
        return ", ".join(parts) or "no limits"


class RateLimiters:
    """The shared per-model limiters of one orchestrator (SPEC §3.3: every process
    on a model draws from the same windows)."""

    def __init__(self) -> None:
        self._by_model: dict[str, RateLimiter] = {}

    def for_model(self, model: str, spec: RateLimit) -> RateLimiter:
        """The limiter shared by every caller of ``model``, created on first use.

        Raises:
            ValueError: ``model`` already has a limiter with a different spec.
        """
        limiter = self._by_model.get(model)
        if limiter is None:
            limiter = self._by_model[model] = RateLimiter(spec, name=f"model {model!r}")
        elif limiter.spec != spec:
            raise ValueError(
                f"model {model!r} already has rate limit {limiter.spec!r}, not {spec!r}; "
                "per-model limits are shared, so configure them once per model"
            )
        return limiter

    def get(self, model: str) -> RateLimiter | None:
        """The limiter of ``model``, or ``None`` when it has none."""
        return self._by_model.get(model)

    def __contains__(self, model: object) -> bool:
        return model in self._by_model

    def __len__(self) -> int:
        return len(self._by_model)


class ConcurrencyCap:
    """At most ``limit`` calls in flight (a per-backend cap): ``async with cap:``.

    A thin wrapper over :class:`trio.CapacityLimiter`; waiters are served in FIFO
    order and the wait is cancellable.
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(
                f"a concurrency cap must be a whole number of at least 1, got {limit!r}"
            )
        self._limiter = trio.CapacityLimiter(limit)

    def __repr__(self) -> str:
        return f"<ConcurrencyCap {self.in_flight}/{self.limit}>"

    @property
    def limit(self) -> int:
        """How many calls may be in flight."""
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        """How many calls are in flight now."""
        return self._limiter.borrowed_tokens

    def try_acquire(self, borrower: object) -> bool:
        """Take a slot for ``borrower`` without waiting (and without a checkpoint), if
        one is free; pair a ``True`` with :meth:`release`. Any object can borrow, so
        one task may hold several slots (a tool that calls another agent)."""
        try:
            self._limiter.acquire_on_behalf_of_nowait(borrower)
        except trio.WouldBlock:
            return False
        return True

    async def acquire(self, borrower: object) -> None:
        """Wait (FIFO, cancellable) for a slot for ``borrower``; pair it with :meth:`release`."""
        await self._limiter.acquire_on_behalf_of(borrower)

    def release(self, borrower: object) -> None:
        """Give back ``borrower``'s slot."""
        self._limiter.release_on_behalf_of(borrower)

    async def __aenter__(self) -> None:
        await self._limiter.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter.release()
