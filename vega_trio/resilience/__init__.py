"""Resilience (SPEC §3): retry policies, circuit breakers, rate limits, concurrency caps and
budgets, composed into one call path (:class:`CallPath`: budget → rate limit → breaker →
call → retry) that every LLM call of an agent goes through, blocking or streaming."""

from __future__ import annotations

from ._breaker import BreakerState, CircuitBreaker, CircuitOpen
from ._budget import Budget, BudgetExceeded, BudgetTracker, parse_money
from ._limits import (
    ConcurrencyCap,
    RateLimit,
    RateLimited,
    RateLimiter,
    RateLimiters,
    RequestTooLarge,
    Reservation,
)
from ._path import DEFAULT_LLM_TIMEOUT, CallObserver, CallPath
from ._retry import DEFAULT_RETRY_ON, NEVER_RETRIED, RetryPolicy

__all__ = [
    "DEFAULT_LLM_TIMEOUT",
    "DEFAULT_RETRY_ON",
    "NEVER_RETRIED",
    "BreakerState",
    "Budget",
    "BudgetExceeded",
    "BudgetTracker",
    "CallObserver",
    "CallPath",
    "CircuitBreaker",
    "CircuitOpen",
    "ConcurrencyCap",
    "RateLimit",
    "RateLimited",
    "RateLimiter",
    "RateLimiters",
    "RequestTooLarge",
    "Reservation",
    "RetryPolicy",
    "parse_money",
]
