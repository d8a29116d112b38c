"""Resilience (SPEC §3): retry policies, circuit breakers, rate limits, concurrency caps and
budgets. These are the building blocks of the LLM call path (budget → rate limit → breaker →
call → retry); the agent loop does not use them yet."""

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
from ._retry import DEFAULT_RETRY_ON, NEVER_RETRIED, RetryPolicy

__all__ = [
    "DEFAULT_RETRY_ON",
    "NEVER_RETRIED",
    "BreakerState",
    "Budget",
    "BudgetExceeded",
    "BudgetTracker",
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
