"""CallPath's fallback switch on its own (no agent): one loop, one switch, its own path."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import ErrorClass, LLMError
from vega_trio.llm import LLMResponse, TextBlock
from vega_trio.resilience import CircuitBreaker, CircuitOpen, RetryPolicy
from vega_trio.resilience._path import CallPath, KeepAlive, falls_back

OK = LLMResponse(content=(TextBlock(text="ok"),), model="fallback")


class Observer:
    """Records what the path reports."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def attempt_failed(
        self, number: int, error: LLMError, started: float, retry_in: float | None
    ) -> None:
        self.log.append(("failed", number, str(error.error_class), retry_in))

    def budget_refused(self, error: Any) -> None:
        self.log.append(("budget",))

    def breaker_changed(self, breaker: CircuitBreaker, state: str) -> None:
        self.log.append(("breaker", breaker.name, state))

    def falling_back(self, error: LLMError) -> None:
        self.log.append(("fallback", str(error.error_class)))


def failing(error_class: ErrorClass, calls: list[str], name: str = "primary") -> Any:
    async def attempt(keep_alive: KeepAlive) -> LLMResponse:  # noqa: ASYNC124 - an LLM stand-in
        calls.append(name)
        raise LLMError(f"{name} failed", error_class=error_class)

    return attempt


def answering(calls: list[str]) -> Any:
    async def attempt(keep_alive: KeepAlive) -> LLMResponse:  # noqa: ASYNC124 - an LLM stand-in
        calls.append("fallback")
        return OK

    return attempt


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (LLMError("x", error_class=ErrorClass.OVERLOADED), True),
        (LLMError("x", error_class=ErrorClass.TIMEOUT, output_started=True), False),
        (LLMError("x", error_class=ErrorClass.INVALID_REQUEST), False),
        (LLMError("x", error_class=ErrorClass.BUDGET_EXCEEDED), False),
        (CircuitOpen("open", breaker="b", state="open"), True),
    ],
)
def test_which_errors_fall_back(error: LLMError, expected: bool) -> None:
    """Retryable classes before output fall back; output, non-retryable and budget do not."""
    assert falls_back(error) is expected


async def test_the_path_switches_once_and_runs_the_fallback_policy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After the primary's two attempts the observer hears falling_back once, then the
    fallback path's own attempts run (numbered from 1), through its own breaker."""
    calls: list[str] = []
    fallback_breaker = CircuitBreaker(name="fb", threshold=2)
    path = CallPath(
        retry=RetryPolicy(max_attempts=2),
        fallback=CallPath(retry=RetryPolicy(max_attempts=2), breaker=fallback_breaker),
    )
    observer = Observer()
    attempts = iter([failing(ErrorClass.TEMPORARY, calls, "fallback"), answering(calls)])

    async def flaky_fallback(keep_alive: KeepAlive) -> LLMResponse:
        response: LLMResponse = await next(attempts)(keep_alive)
        return response

    response = await path.call(
        failing(ErrorClass.OVERLOADED, calls), observer=observer, fallback=flaky_fallback
    )
    assert response is OK
    assert calls == ["primary", "primary", "fallback", "fallback"]
    assert observer.log == [
        ("failed", 1, "overloaded", 0.5),
        ("failed", 2, "overloaded", None),
        ("fallback", "overloaded"),
        ("failed", 1, "temporary", 0.5),
    ]
    assert trio.current_time() == 1.0  # 0.5 s backoff on each model, none at the switch
    assert fallback_breaker.failures == 0  # its own breaker saw the failure, then the success


async def test_no_fallback_attempt_or_no_fallback_path_means_no_switch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A path without a fallback path, or a call without a fallback attempt, raises the
    primary's error as before."""
    for path, fallback in (
        (CallPath(retry=None), None),
        (CallPath(retry=None), "attempt"),
        (CallPath(retry=None, fallback=CallPath(retry=None)), None),
    ):
        calls: list[str] = []
        with pytest.raises(LLMError, match="primary failed"):
            await path.call(
                failing(ErrorClass.OVERLOADED, calls),
                observer=Observer(),
                fallback=answering(calls) if fallback else None,
            )
        assert calls == ["primary"]
