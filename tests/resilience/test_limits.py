from __future__ import annotations

import pytest
import trio
import trio.testing

from vega_trio import ErrorClass, LLMError
from vega_trio.resilience import (
    ConcurrencyCap,
    RateLimit,
    RateLimited,
    RateLimiter,
    RateLimiters,
    RequestTooLarge,
)


async def test_sixty_rpm_shared_by_ten_tasks_serves_sixty_a_minute_in_fifo_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """60 RPM shared by 10 tasks: exactly 60 calls in the first minute, the rest queued in order."""
    limiter = RateLimiter(RateLimit(requests_per_minute=60))
    requested: list[tuple[int, int]] = []
    granted: list[tuple[float, tuple[int, int]]] = []

    async def worker(task: int) -> None:
        for call in range(10):
            requested.append((task, call))
            await limiter.acquire()
            granted.append((trio.current_time(), (task, call)))

    async with trio.open_nursery() as nursery:
        for task in range(10):
            nursery.start_soon(worker, task)

    assert len(granted) == 100
    first_minute = [who for when, who in granted if when < 60.0]
    assert len(first_minute) == 60
    assert sorted(first_minute) == sorted(requested[:60])
    queued = granted[60:]
    assert {when for when, _ in queued} == {60.0}
    assert [who for _, who in queued] == requested[60:]


async def test_no_sixty_second_span_holds_more_than_the_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Calls spread over time: any 60 s window holds at most the limit, and waits are exact."""
    limiter = RateLimiter(RateLimit(requests_per_minute=3))
    times: list[float] = []
    for delay in (0, 10, 20, 0, 0, 0, 0):
        await trio.sleep(delay)
        await limiter.acquire()
        times.append(trio.current_time())
    assert times == [0.0, 10.0, 30.0, 60.0, 70.0, 90.0, 120.0]
    for start in times:
        assert sum(start <= t < start + 60 for t in times) <= 3


async def test_reject_raises_at_once_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With strategy='reject' a call that does not fit raises RateLimited at once, saying when."""
    limiter = RateLimiter(RateLimit(requests_per_minute=2, strategy="reject"), name="model 'm'")
    await limiter.acquire()
    await trio.sleep(15)
    await limiter.acquire()
    with pytest.raises(RateLimited) as info:
        await limiter.acquire()
    assert trio.current_time() == 15.0
    assert isinstance(info.value, LLMError)
    assert info.value.error_class is ErrorClass.RATE_LIMIT
    assert info.value.refused_locally and not info.value.retryable
    assert info.value.retry_after == 45.0
    assert "model 'm'" in str(info.value)
    await trio.sleep(45)
    await limiter.acquire()


async def test_reject_retry_after_counts_tokens(autojump_clock: trio.testing.MockClock) -> None:
    """A reject limiter's retry_after is the time until enough estimated tokens come back."""
    limiter = RateLimiter(RateLimit(tokens_per_minute=600, strategy="reject"))
    await limiter.acquire(300)
    await trio.sleep(10)
    await limiter.acquire(300)
    with pytest.raises(RateLimited) as info:
        await limiter.acquire(100)
    assert info.value.retry_after == 50.0
    await trio.sleep(50)
    await limiter.acquire(300)


async def test_settle_refund_lets_the_next_caller_in_earlier(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Settling below the estimate refunds tokens and wakes the queued caller at once."""
    limiter = RateLimiter(RateLimit(tokens_per_minute=600))  # 10 tokens/s
    first = await limiter.acquire(600)
    granted_at: list[float] = []

    async def second() -> None:
        await limiter.acquire(300)
        granted_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.sleep(5)
        first.settle(200)  # 50 refilled + 400 refunded >= 300
    assert granted_at == [5.0]


async def test_settle_debt_delays_later_callers(autojump_clock: trio.testing.MockClock) -> None:
    """Settling above the estimate puts the bucket in debt, which later callers wait out."""
    limiter = RateLimiter(RateLimit(tokens_per_minute=600))
    reservation = await limiter.acquire(100)
    reservation.settle(1100)
    assert limiter.available_tokens == -500
    await limiter.acquire(100)
    assert trio.current_time() == 60.0


async def test_debt_while_waiting_pushes_the_deadline_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A debt settled while a caller waits makes it wait for the debt too (no early grant)."""
    limiter = RateLimiter(RateLimit(tokens_per_minute=600))
    first = await limiter.acquire(400)
    granted_at: list[float] = []

    async def second() -> None:
        await limiter.acquire(300)  # would be 60.0 without the debt
        granted_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.sleep(10)
        first.settle(800)  # 400 more taken at 10.0, back at 70.0
    assert granted_at == [70.0]


async def test_cancelled_waiter_leaves_the_queue_without_consuming(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled queued caller takes nothing and the callers behind it keep their turns."""
    limiter = RateLimiter(RateLimit(requests_per_minute=3))
    for _ in range(3):
        await limiter.acquire()
        await trio.sleep(1)
    granted: list[tuple[float, str]] = []
    cancelled: list[str] = []

    async def caller(  # noqa: ASYNC114 - only ever started in a nursery here
        name: str,
        scope: trio.CancelScope,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # started() does not yield: the task joins the queue before its starter resumes.
        task_status.started()
        with scope:
            await limiter.acquire()
            granted.append((trio.current_time(), name))
        if scope.cancelled_caught:
            cancelled.append(name)

    scopes = {name: trio.CancelScope() for name in "BCD"}
    async with trio.open_nursery() as nursery:
        for name in "BCD":
            await nursery.start(caller, name, scopes[name])
        assert limiter.queued == 3
        await trio.sleep(0.5)
        scopes["B"].cancel()
    assert cancelled == ["B"]
    assert granted == [(60.0, "C"), (61.0, "D")]
    assert limiter.queued == 0


async def test_request_larger_than_tpm_capacity_fails_clearly() -> None:
    """A call estimated above the whole TPM capacity raises RequestTooLarge instead of waiting."""
    for strategy in ("queue", "reject"):
        limiter = RateLimiter(RateLimit(tokens_per_minute=1000, strategy=strategy))
        with pytest.raises(RequestTooLarge, match="1001 tokens can never fit") as info:
            await limiter.acquire(1001)
        assert info.value.error_class is ErrorClass.INVALID_REQUEST
        assert not info.value.retryable
        await limiter.acquire(1000)


async def test_settle_twice_and_bad_arguments_are_errors() -> None:
    """A reservation settles once; negative token counts and bad specs are refused."""
    limiter = RateLimiter(RateLimit(tokens_per_minute=100))
    reservation = await limiter.acquire(10)
    reservation.settle(5)
    with pytest.raises(RuntimeError, match="settled already"):
        reservation.settle(5)
    with pytest.raises(ValueError, match="estimated_tokens"):
        await limiter.acquire(-1)
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimit(requests_per_minute=0)
    with pytest.raises(ValueError, match="strategy"):
        RateLimit(strategy="drop")  # type: ignore[arg-type]


async def test_rate_limiters_share_one_limiter_per_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """for_model returns the same limiter for a model, so every caller draws on one bucket."""
    limiters = RateLimiters()
    spec = RateLimit(requests_per_minute=1, strategy="reject")
    first = limiters.for_model("claude-sonnet-4", spec)
    assert limiters.for_model("claude-sonnet-4", spec) is first
    assert limiters.for_model("claude-haiku-4-5", spec) is not first
    assert limiters.get("claude-sonnet-4") is first and "claude-sonnet-4" in limiters
    await first.acquire()
    with pytest.raises(RateLimited, match="model 'claude-sonnet-4'"):
        await limiters.for_model("claude-sonnet-4", spec).acquire()
    with pytest.raises(ValueError, match="already has rate limit"):
        limiters.for_model("claude-sonnet-4", RateLimit(requests_per_minute=2))


async def test_concurrency_cap_bounds_calls_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """ConcurrencyCap(2) lets two calls run at a time and queues the rest."""
    cap = ConcurrencyCap(2)
    started: list[float] = []
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with cap:
            started.append(trio.current_time())
            peak = max(peak, cap.in_flight)
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(call)
    assert started == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert peak == 2 and cap.limit == 2 and cap.in_flight == 0
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyCap(0)


async def test_fifo_survives_many_cancellations_with_both_buckets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With RPM and TPM limits and every third waiter cancelled, the rest are served in order."""
    limiter = RateLimiter(RateLimit(requests_per_minute=60, tokens_per_minute=600))
    await limiter.acquire(600)  # drain the token window until 60.0
    await trio.sleep(1)
    granted: list[tuple[float, int]] = []
    scopes = [trio.CancelScope() for _ in range(30)]

    async def caller(  # noqa: ASYNC114 - only ever started in a nursery here
        index: int, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        with scopes[index]:
            await limiter.acquire(10)
            granted.append((trio.current_time(), index))

    async with trio.open_nursery() as nursery:
        for index in range(30):
            await nursery.start(caller, index)
        for index in range(0, 30, 3):
            scopes[index].cancel()
    survivors = [index for index in range(30) if index % 3]
    assert granted == [(60.0, index) for index in survivors]
    assert limiter.queued == 0
