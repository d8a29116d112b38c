"""Resilience: rate limits, concurrency caps and budgets (SPEC §3)."""

from __future__ import annotations

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

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetTracker",
    "ConcurrencyCap",
    "RateLimit",
    "RateLimited",
    "RateLimiter",
    "RateLimiters",
    "RequestTooLarge",
    "Reservation",
    "parse_money",
]
