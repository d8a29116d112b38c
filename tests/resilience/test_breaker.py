from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from vega_trio import ErrorClass, LLMError
from vega_trio.resilience._breaker import CircuitBreaker, CircuitOpen
from vega_trio.resilience._retry import RetryPolicy


def _error(error_class: ErrorClass = ErrorClass.OVERLOADED) -> LLMError:
    return LLMError(f"LLM call failed ({error_class.value})", error_class=error_class)


def _fail(
    breaker: CircuitBreaker, times: int, error_class: ErrorClass = ErrorClass.OVERLOADED
) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure(_error(error_class))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 0}, "threshold must be a whole number of at least 1"),
        ({"threshold": 2.5}, "threshold must be a whole number of at least 1"),
        ({"half_open_max": 0}, "half_open_max must be a whole number of at least 1"),
        ({"reset_after": -1.0}, "reset_after must be a finite number of seconds"),
        ({"reset_after": float("inf")}, "reset_after must be a finite number of seconds"),
        ({"name": 3}, "name must be a string"),
    ],
)
def test_bad_parameters_refused(kwargs: dict[str, object], match: str) -> None:
    """Each bad parameter is refused with a ValueError that names it."""
    arguments: dict[str, object] = {"name": "researcher", **kwargs}
    with pytest.raises(ValueError, match=match):
        CircuitBreaker(**arguments)  # type: ignore[arg-type]


async def test_closed_open_half_open_closed(autojump_clock: trio.abc.Clock) -> None:
    """threshold failures open it, reset_after half-opens it, a probe success closes it."""
    events: list[tuple[str, float]] = []
    breaker = CircuitBreaker(
        name="researcher",
        threshold=3,
        reset_after=10.0,
        on_open=lambda b: events.append(("open", trio.current_time())),
        on_close=lambda b: events.append(("close", trio.current_time())),
    )
    _fail(breaker, 2)
    assert breaker.state == "closed"
    assert breaker.failures == 2
    await trio.sleep(1.0)
    _fail(breaker, 1)
    assert breaker.state == "open"
    assert events == [("open", 1.0)]

    await trio.sleep(9.5)
    assert breaker.state == "open"
    await trio.sleep(0.5)
    assert breaker.state == "half_open"

    breaker.before_call()  # the probe
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.failures == 0
    assert events == [("open", 1.0), ("close", 11.0)]


async def test_success_ends_a_run_of_failures(autojump_clock: trio.abc.Clock) -> None:
    """Failures must be consecutive (however far apart): a success in between resets the count."""
    breaker = CircuitBreaker(name="researcher", threshold=3)
    _fail(breaker, 2)
    await trio.sleep(3600.0)
    breaker.before_call()
    breaker.record_success()
    _fail(breaker, 2)
    assert breaker.state == "closed"
    await trio.sleep(3600.0)
    _fail(breaker, 1)
    assert breaker.state == "open"


async def test_probe_failure_reopens_and_restarts_timer(autojump_clock: trio.abc.Clock) -> None:
    """A failed half-open probe opens the breaker again for a full reset_after from then."""
    opened: list[float] = []
    start = trio.current_time()
    breaker = CircuitBreaker(
        name="researcher",
        threshold=1,
        reset_after=5.0,
        on_open=lambda b: opened.append(trio.current_time() - start),
    )
    _fail(breaker, 1)
    await trio.sleep(5.0)
    assert breaker.state == "half_open"
    await trio.sleep(2.0)  # half-open stays half-open until a probe says otherwise
    _fail(breaker, 1, ErrorClass.TIMEOUT)
    assert breaker.state == "open"
    assert opened == [0.0, 7.0]
    with pytest.raises(CircuitOpen, match="its half-open probe call failed \\(timeout\\)"):
        breaker.before_call()
    await trio.sleep(4.5)
    assert breaker.state == "open"
    await trio.sleep(0.5)
    assert breaker.state == "half_open"


async def test_open_breaker_fails_fast_with_a_clear_message(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An open breaker raises CircuitOpen (TEMPORARY) saying which, why, since when, until when."""
    breaker = CircuitBreaker(name="researcher", threshold=2, reset_after=30.0)
    await trio.sleep(100.0)
    _fail(breaker, 2, ErrorClass.RATE_LIMIT)
    await trio.sleep(12.0)
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    error = caught.value
    assert isinstance(error, LLMError)
    assert error.error_class is ErrorClass.TEMPORARY
    assert error.breaker == "researcher"
    assert error.state == "open"
    assert error.half_open_at == 130.0
    assert error.retry_after == 18.0
    assert str(error) == (
        "circuit breaker 'researcher' is open (2 consecutive failed LLM calls, the last "
        "rate_limit); it opened 12s ago and half-opens in 18s (Trio time 130), when it lets "
        "1 probe call(s) through. No LLM call was made: retry after that, or check the "
        "model's health"
    )


async def test_half_open_max_limits_concurrent_probes(autojump_clock: trio.abc.Clock) -> None:
    """While half-open only half_open_max probes run at once; a finished probe frees its slot."""
    breaker = CircuitBreaker(name="writer", threshold=1, reset_after=1.0, half_open_max=2)
    _fail(breaker, 1)
    await trio.sleep(1.0)
    breaker.before_call()
    breaker.before_call()
    with pytest.raises(CircuitOpen, match="half-open and its 2 probe call\\(s\\) are still") as c:
        breaker.before_call()
    assert c.value.state == "half_open"
    assert c.value.retry_after is None
    # A probe that fails for a reason unrelated to the service's health frees its slot.
    breaker.record_failure(_error(ErrorClass.AUTHENTICATION))
    assert breaker.state == "half_open"
    breaker.before_call()


async def test_guard_with_concurrent_probes(autojump_clock: trio.abc.Clock) -> None:
    """Concurrent guarded calls on a half-open breaker: one probe runs, the rest fail fast."""
    breaker = CircuitBreaker(name="writer", threshold=1, reset_after=1.0)
    _fail(breaker, 1)
    await trio.sleep(1.0)
    outcomes: dict[int, str] = {}

    async def call(i: int) -> None:
        try:
            async with breaker.guard():
                await trio.sleep(2.0)
        except CircuitOpen:
            outcomes[i] = f"refused at {trio.current_time()}"
        else:
            outcomes[i] = f"done at {trio.current_time()}"

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(call, i)
    assert sorted(outcomes.values()) == ["done at 3.0", "refused at 1.0", "refused at 1.0"]
    assert breaker.state == "closed"


async def test_guard_records_failure_and_cancellation_frees_probe(
    autojump_clock: trio.abc.Clock,
) -> None:
    """guard() counts a retryable failure; a cancelled probe frees its slot without a verdict."""
    breaker = CircuitBreaker(name="writer", threshold=1, reset_after=1.0)
    with pytest.raises(LLMError):
        async with breaker.guard():
            raise _error(ErrorClass.TEMPORARY)
    assert breaker.state == "open"
    await trio.sleep(1.0)
    with trio.move_on_after(0.5):
        async with breaker.guard():
            await trio.sleep_forever()
    assert breaker.state == "half_open"
    async with breaker.guard():  # the slot is free again: this probe goes through
        pass
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    "error",
    [
        _error(ErrorClass.AUTHENTICATION),
        _error(ErrorClass.INVALID_REQUEST),
        _error(ErrorClass.BUDGET_EXCEEDED),
        ValueError("a bug, not the service"),
        CircuitOpen("another breaker", breaker="other", state="open"),
    ],
    ids=["authentication", "invalid_request", "budget_exceeded", "not_llm", "circuit_open"],
)
async def test_non_retryable_failures_ignored(
    autojump_clock: trio.abc.Clock, error: Exception
) -> None:
    """Failures that say nothing about the service's health neither count nor end a run."""
    breaker = CircuitBreaker(name="researcher", threshold=2)
    _fail(breaker, 1)
    for _ in range(5):
        with pytest.raises(type(error)):
            async with breaker.guard():
                raise error
    assert breaker.state == "closed"
    assert breaker.failures == 1
    _fail(breaker, 1)
    assert breaker.state == "open"


async def test_failure_after_output_started_counts(autojump_clock: trio.abc.Clock) -> None:
    """A retryable failure mid-stream is not retried, but it does count against the service."""
    breaker = CircuitBreaker(name="researcher", threshold=1)
    with pytest.raises(LLMError):
        async with breaker.guard():
            raise LLMError("cut stream", error_class=ErrorClass.TEMPORARY, output_started=True)
    assert breaker.state == "open"


async def test_raising_hooks_are_logged_not_propagated(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises is logged with the breaker's name; the transition still happens."""

    def broken(breaker: CircuitBreaker) -> None:
        raise RuntimeError(f"hook broke for {breaker.name}")

    breaker = CircuitBreaker(
        name="researcher", threshold=1, reset_after=1.0, on_open=broken, on_close=broken
    )
    with caplog.at_level(logging.ERROR, logger="vega_trio.resilience"):
        _fail(breaker, 1)
        assert breaker.state == "open"
        await trio.sleep(1.0)
        breaker.before_call()
        breaker.record_success()
        assert breaker.state == "closed"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert messages == [
        "circuit breaker 'researcher': the on_open hook raised",
        "circuit breaker 'researcher': the on_close hook raised",
    ]


async def test_stragglers_while_open_are_ignored(autojump_clock: trio.abc.Clock) -> None:
    """Outcomes of calls begun before the breaker opened neither close it nor restart the timer."""
    breaker = CircuitBreaker(name="researcher", threshold=1, reset_after=10.0)
    breaker.before_call()
    breaker.before_call()
    breaker.before_call()
    breaker.record_failure(_error())
    await trio.sleep(4.0)
    breaker.record_success()
    breaker.record_failure(_error())
    assert breaker.state == "open"
    await trio.sleep(6.0)
    assert breaker.state == "half_open"


async def test_retry_policy_fails_fast_on_an_open_breaker(autojump_clock: trio.abc.Clock) -> None:
    """An open breaker is not retried: CircuitOpen comes back at once, saying when to try again."""
    breaker = CircuitBreaker(name="researcher", threshold=1, reset_after=10.0)
    _fail(breaker, 1)
    calls: list[float] = []

    async def attempt(number: int) -> str:
        async with breaker.guard():
            calls.append(trio.current_time())
            return "reply"

    with pytest.raises(CircuitOpen) as info:
        await RetryPolicy().run(attempt)
    assert trio.current_time() == 0.0 and calls == []
    assert info.value.attempts == 1 and info.value.retry_after == 10.0
    await trio.sleep(info.value.retry_after)
    assert await RetryPolicy().run(attempt) == "reply"
    assert calls == [10.0]
    assert breaker.state == "closed"
