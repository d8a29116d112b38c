"""B6: what the resilience path costs per LLM call, with a zero-latency model.

Two measurements, interleaved and repeated so the medians are comparable:

* **path**: ``CallPath.call`` with everything switched on — two block budgets (the
  agent's and a global one, checked before and charged after the call), the model's
  and the agent's rate limiters (RPM and TPM, settled with the usage), a concurrency
  cap, a circuit breaker and a retry policy — around an attempt that returns a ready
  response, minus the same attempt awaited directly;
* **agent**: a whole ``send`` (two LLM calls and one tool call on the scripted LLM)
  by an agent with all of the above, minus the same send by an agent with none of it
  (``retry=None``, no limits, breaker or budget), divided by its two LLM calls.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

__all__ = ["B6_MAX_US", "b6", "render_b6"]

B6_MAX_US = 20.0


def b6(n: int, repeats: int) -> dict[str, Any]:
    """Per-call overhead of the resilience path, in microseconds (medians of ``repeats``)."""
    import trio

    return trio.run(_b6, n, repeats)


async def _b6(n: int, repeats: int) -> dict[str, Any]:
    import trio

    from vega_trio import Agent, open_orchestrator
    from vega_trio.llm import LLMResponse, TextBlock, Usage
    from vega_trio.resilience import (
        Budget,
        BudgetTracker,
        CallPath,
        CircuitBreaker,
        ConcurrencyCap,
        RateLimit,
        RateLimiter,
        RetryPolicy,
    )

    from ._workload import add, make_llm

    response = LLMResponse(
        content=(TextBlock(text="ok"),), model="m", usage=Usage(input_tokens=12, output_tokens=6)
    )

    async def attempt(keep_alive: Any) -> LLMResponse:  # noqa: ASYNC124 - a zero-latency model
        return response

    class Observer:
        def attempt_failed(self, *args: Any) -> None:
            raise AssertionError("no attempt fails in this benchmark")

        def budget_refused(self, error: Any) -> None:
            raise AssertionError("no budget refuses in this benchmark")

        def breaker_changed(self, *args: Any) -> None:
            raise AssertionError("the breaker stays closed in this benchmark")

    huge = RateLimit(requests_per_minute=10**12, tokens_per_minute=10**15)
    # The definition: budget + limiter + breaker + retry wrapper ...
    core = CallPath(
        retry=RetryPolicy(),
        limiters=(RateLimiter(huge, name="model"), RateLimiter(huge, name="agent")),
        breaker=CircuitBreaker(name="bench"),
        timeout=None,
    )
    # ... and everything an agent can have on top: the backend's cap and llm_timeout.
    full_path = CallPath(
        retry=RetryPolicy(),
        limiters=(RateLimiter(huge, name="model"), RateLimiter(huge, name="agent")),
        cap=ConcurrencyCap(64),
        breaker=CircuitBreaker(name="bench"),
        timeout=300.0,
    )
    budgets = (
        BudgetTracker(Budget(limit=1e12), owner="agent"),
        BudgetTracker(Budget(limit=1e12), owner="global"),
    )
    observer = Observer()

    def estimate_tokens() -> int:
        return 100

    def estimate_cost(tokens: int) -> float:
        return tokens * 3e-6

    async def bare_loop() -> float:
        started = time.perf_counter()
        for _ in range(n):
            await attempt(None)
            await trio.lowlevel.checkpoint()  # the path's own awaits include checkpoints
        return time.perf_counter() - started

    async def path_loop(path: CallPath) -> float:
        started = time.perf_counter()
        for _ in range(n):
            result = await path.call(
                attempt,
                observer=observer,
                budgets=budgets,
                estimate_tokens=estimate_tokens,
                estimate_cost=estimate_cost,
            )
            cost = result.usage.input_tokens * 3e-6
            for tracker in budgets:
                tracker.charge(cost)
        return time.perf_counter() - started

    full = Agent(
        name="full",
        tools=[add],
        retry=RetryPolicy(),
        rate_limit=huge,
        circuit_breaker=CircuitBreaker(),
        budget=Budget(limit=1e12),
    )
    plain = Agent(name="plain", tools=[add], retry=None, llm_timeout=None)
    sends = max(1, min(200, n // 10))  # short conversations: the history grows per send

    async def send_loop(proc: Any) -> float:
        started = time.perf_counter()
        for _ in range(sends):
            await proc.send("What is 1 + 2?")
        return time.perf_counter() - started

    bare_s: list[float] = []
    core_s: list[float] = []
    path_s: list[float] = []
    full_s: list[float] = []
    plain_s: list[float] = []
    async with (
        open_orchestrator(
            llm=make_llm(), budget=Budget(limit=1e12), rate_limit=huge, max_concurrent_calls=64
        ) as orch_full,
        open_orchestrator(llm=make_llm()) as orch_plain,
    ):
        await path_loop(full_path)  # warm-up
        await bare_loop()
        for _ in range(repeats):
            bare_s.append(await bare_loop())
            core_s.append(await path_loop(core))
            path_s.append(await path_loop(full_path))
            # NOTE: a fresh process per repeat keeps the conversations short (the history
            # grows by four turns a send).
            full_proc = await orch_full.spawn(full)
            plain_proc = await orch_plain.spawn(plain)
            full_s.append(await send_loop(full_proc))
            plain_s.append(await send_loop(plain_proc))
            for proc in (full_proc, plain_proc):
                proc.complete()
                await proc.wait()
    bare_us = statistics.median(bare_s) / n * 1e6
    core_us = statistics.median(core_s) / n * 1e6
    path_us = statistics.median(path_s) / n * 1e6
    full_us = statistics.median(full_s) / sends * 1e6
    plain_us = statistics.median(plain_s) / sends * 1e6
    return {
        "n": n,
        "sends": sends,
        "repeats": repeats,
        "bare_us": bare_us,
        "core_us": core_us,
        "overhead_us": core_us - bare_us,
        "path_us": path_us,
        "full_overhead_us": path_us - bare_us,
        "send_full_us": full_us,
        "send_plain_us": plain_us,
        "agent_overhead_per_call_us": (full_us - plain_us) / 2,
    }


def render_b6(result: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """The report section and the summary row for B6."""
    overhead = result["overhead_us"]
    row = [
        f"B6: resilience path (budget + limiter + breaker + retry) under {B6_MAX_US:g} µs per call",
        f"{overhead:.1f} µs (with cap and timeout: {result['full_overhead_us']:.1f} µs)",
        "✅" if overhead < B6_MAX_US else "❌",
    ]
    text = f"""## B6 — resilience overhead per LLM call

`CallPath.call` around a model call that returns at once, against the same call awaited
directly ({result["n"]:,} calls, median of {result["repeats"]} interleaved repeats). The
measured path has the agent's and a global `block` budget (checked before, charged after),
the model's and the agent's rate limiters (RPM and TPM, settled with the reported usage), a
circuit breaker and a retry policy; the second row adds the backend's concurrency cap and the
per-call timeout (`llm_timeout`, one Trio cancel scope — the biggest single cost here).

| | per call | overhead |
|---|---:|---:|
| the bare call | {result["bare_us"]:.2f} µs | |
| budget + limiters + breaker + retry | {result["core_us"]:.2f} µs | **{overhead:.2f} µs** |
| … + concurrency cap + `llm_timeout` | {result["path_us"]:.2f} µs \
| {result["full_overhead_us"]:.2f} µs |

In a whole agent (`send` with two LLM calls and one tool call on the scripted LLM,
{result["sends"]:,} sends a repeat): {result["send_full_us"]:.0f} µs per send with all of it
configured (plus the global budget and per-model limit of the orchestrator),
{result["send_plain_us"]:.0f} µs with none of it (`retry=None`, `llm_timeout=None`, no limits, cap,
breaker or budget) —
{result["agent_overhead_per_call_us"]:.1f} µs per LLM call, including the prompt's token
estimate for the TPM limits and the budget check, and the cost accounting.
"""
    return text, [row]
