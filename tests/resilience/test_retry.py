from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from vega_trio import Backoff, ErrorClass, LLMError
from vega_trio.resilience._retry import DEFAULT_RETRY_ON, RetryPolicy


def _error(
    error_class: ErrorClass = ErrorClass.OVERLOADED,
    *,
    retry_after: float | None = None,
    output_started: bool = False,
) -> LLMError:
    return LLMError(
        f"LLM call failed ({error_class.value})",
        error_class=error_class,
        retry_after=retry_after,
        output_started=output_started,
    )


def _scripted(
    outcomes: list[LLMError | Exception | str],
) -> tuple[Callable[[int], Awaitable[str]], list[tuple[int, float]]]:
    """An attempt function that plays ``outcomes`` in order; logs (number, time) per call."""
    calls: list[tuple[int, float]] = []

    async def attempt(number: int) -> str:
        calls.append((number, trio.current_time()))
        await trio.lowlevel.checkpoint()
        outcome = outcomes[number - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, calls


def test_defaults() -> None:
    """A default policy: 3 attempts, backoff 0.5 s doubling to 30 s, the 4 retryable classes."""
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.backoff == Backoff(
        kind="exponential", initial=0.5, multiplier=2, max=30, jitter=0
    )
    assert (
        policy.retry_on
        == DEFAULT_RETRY_ON
        == {
            ErrorClass.RATE_LIMIT,
            ErrorClass.OVERLOADED,
            ErrorClass.TIMEOUT,
            ErrorClass.TEMPORARY,
        }
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_max_attempts_validated(bad: object) -> None:
    """max_attempts below 1 or not a whole number is refused with a message naming it."""
    with pytest.raises(ValueError, match="max_attempts must be a whole number of at least 1"):
        RetryPolicy(max_attempts=bad)  # type: ignore[arg-type]


def test_retry_on_accepts_names_and_rejects_unknown() -> None:
    """retry_on takes class names, and an unknown name or a bare string is refused."""
    assert RetryPolicy(retry_on=["timeout"]).retry_on == {ErrorClass.TIMEOUT}
    with pytest.raises(ValueError, match="unknown error class 'flaky'"):
        RetryPolicy(retry_on=["flaky"])
    with pytest.raises(TypeError, match="collection of error classes"):
        RetryPolicy(retry_on="timeout")  # type: ignore[arg-type]


async def test_succeeds_after_retries_at_exact_times(autojump_clock: trio.abc.Clock) -> None:
    """Two overloads then a reply: 3 attempts at t=0, 0.5 and 1.5 (exponential backoff)."""
    attempt, calls = _scripted([_error(), _error(), "reply"])
    assert await RetryPolicy().run(attempt) == "reply"
    assert calls == [(1, 0.0), (2, 0.5), (3, 1.5)]
    assert trio.current_time() == 1.5


async def test_exhausted_policy_does_not_sleep_after_last_attempt(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An exhausted policy raises the last error, unchanged, right after the last attempt."""
    errors = [
        _error(ErrorClass.TIMEOUT),
        _error(ErrorClass.TEMPORARY),
        _error(ErrorClass.RATE_LIMIT),
    ]
    attempt, calls = _scripted(list(errors))
    with pytest.raises(LLMError) as caught:
        await RetryPolicy().run(attempt)
    assert caught.value is errors[2]
    assert caught.value.attempts == 3  # type: ignore[attr-defined]
    assert [number for number, _ in calls] == [1, 2, 3]
    # 0.5 + 1.0 of backoff and no third wait (which would have been 2.0 more).
    assert trio.current_time() == 1.5


async def test_retry_after_longer_than_backoff_wins(autojump_clock: trio.abc.Clock) -> None:
    """The server's retry-after is waited when it is longer than the backoff, else the backoff."""
    attempt, calls = _scripted(
        [
            _error(ErrorClass.RATE_LIMIT, retry_after=7.0),  # backoff 0.5 < 7
            _error(ErrorClass.RATE_LIMIT, retry_after=0.25),  # backoff 1.0 > 0.25
            "reply",
        ]
    )
    delays: list[tuple[int, ErrorClass, float | None]] = []
    result = await RetryPolicy().run(
        attempt, on_failure=lambda n, exc, delay: delays.append((n, exc.error_class, delay))
    )
    assert result == "reply"
    assert calls == [(1, 0.0), (2, 7.0), (3, 8.0)]
    assert delays == [(1, ErrorClass.RATE_LIMIT, 7.0), (2, ErrorClass.RATE_LIMIT, 1.0)]


async def test_on_failure_reports_every_attempt_with_none_for_the_last(
    autojump_clock: trio.abc.Clock,
) -> None:
    """on_failure sees each failed attempt with its delay, and None when no retry follows."""
    attempt, _ = _scripted([_error(), _error(), _error()])
    seen: list[tuple[int, float | None]] = []
    with pytest.raises(LLMError):
        await RetryPolicy(backoff=Backoff(kind="constant", initial=2.0)).run(
            attempt, on_failure=lambda n, exc, delay: seen.append((n, delay))
        )
    assert seen == [(1, 2.0), (2, 2.0), (3, None)]
    assert trio.current_time() == 4.0


@pytest.mark.parametrize(
    "error_class",
    [ErrorClass.AUTHENTICATION, ErrorClass.INVALID_REQUEST, ErrorClass.BUDGET_EXCEEDED],
)
async def test_non_retryable_class_tried_once_even_if_listed(
    autojump_clock: trio.abc.Clock, error_class: ErrorClass
) -> None:
    """Auth, invalid-request and budget errors are tried once, even when retry_on lists them."""
    policy = RetryPolicy(max_attempts=5, retry_on=frozenset(ErrorClass))
    error = _error(error_class)
    attempt, calls = _scripted([error, "never reached"])
    seen: list[float | None] = []
    with pytest.raises(LLMError) as caught:
        await policy.run(attempt, on_failure=lambda n, exc, delay: seen.append(delay))
    assert caught.value is error
    assert caught.value.attempts == 1  # type: ignore[attr-defined]
    assert calls == [(1, 0.0)]
    assert seen == [None]
    assert trio.current_time() == 0.0


async def test_class_missing_from_retry_on_tried_once(autojump_clock: trio.abc.Clock) -> None:
    """A retryable class that the policy's retry_on leaves out is not retried."""
    attempt, calls = _scripted([_error(ErrorClass.OVERLOADED), "never reached"])
    with pytest.raises(LLMError):
        await RetryPolicy(retry_on=frozenset({ErrorClass.RATE_LIMIT})).run(attempt)
    assert calls == [(1, 0.0)]


async def test_failure_after_output_started_not_retried(autojump_clock: trio.abc.Clock) -> None:
    """A retryable error that came after streamed output began is raised after one attempt."""
    error = _error(ErrorClass.OVERLOADED, output_started=True)
    attempt, calls = _scripted([error, "never reached"])
    with pytest.raises(LLMError) as caught:
        await RetryPolicy().run(attempt)
    assert caught.value is error
    assert calls == [(1, 0.0)]
    assert trio.current_time() == 0.0


async def test_non_llm_error_propagates_at_once(autojump_clock: trio.abc.Clock) -> None:
    """An exception that is not an LLMError is neither retried nor reported to on_failure."""
    bug = KeyError("tool_use_id")
    attempt, calls = _scripted([_error(), bug, "never reached"])
    seen: list[int] = []
    with pytest.raises(KeyError) as caught:
        await RetryPolicy().run(attempt, on_failure=lambda n, exc, delay: seen.append(n))
    assert caught.value is bug
    assert calls == [(1, 0.0), (2, 0.5)]
    assert seen == [1]


async def test_single_attempt_policy_never_sleeps(autojump_clock: trio.abc.Clock) -> None:
    """max_attempts=1 means one try and an immediate raise."""
    attempt, calls = _scripted([_error(retry_after=60.0)])
    with pytest.raises(LLMError):
        await RetryPolicy(max_attempts=1).run(attempt)
    assert calls == [(1, 0.0)]
    assert trio.current_time() == 0.0


async def test_cancelled_during_backoff_wait(autojump_clock: trio.abc.Clock) -> None:
    """Cancelling the surrounding scope during a backoff wait stops the retries at that moment."""
    attempt, calls = _scripted([_error(retry_after=10.0), "never reached"])
    with trio.move_on_after(4.0) as scope:
        await RetryPolicy().run(attempt)
    assert scope.cancelled_caught
    assert calls == [(1, 0.0)]
    assert trio.current_time() == 4.0


def test_delay_after() -> None:
    """delay_after gives the wait before the next attempt, None for the last or a non-retryable."""
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay_after(1, _error()) == 0.5
    assert policy.delay_after(2, _error(retry_after=3.0)) == 3.0
    assert policy.delay_after(3, _error()) is None
    assert policy.delay_after(1, _error(ErrorClass.AUTHENTICATION)) is None
