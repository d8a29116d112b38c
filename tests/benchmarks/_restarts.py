"""B4 and B5: how fast supervision brings crashed processes back (LLM-free behaviours)."""

from __future__ import annotations

import statistics
import time
from typing import Any

__all__ = ["b4", "b5", "render_b4_b5"]

B4_MAX_MEDIAN_US = 200.0
B5_MAX_S = 0.5


class _Crasher:
    """Raises on "crash" (recording when), echoes anything else."""

    name = "crasher"

    def __init__(self, stamps: list[float]) -> None:
        self._stamps = stamps

    async def handle(self, process: Any, payload: Any) -> Any:
        if payload == "crash":
            self._stamps.append(time.perf_counter())
            raise RuntimeError("injected crash")
        return payload


def b4(n: int) -> dict[str, Any]:
    """Restart latency: from the crash to the new incarnation running (no backoff)."""
    import trio

    from vega_trio.runtime import Backoff, Runtime, Supervision

    crashed: list[float] = []
    restarted: list[float] = []
    wakeup = [trio.Event()]

    def stamp(event: Any) -> bool:
        restarted.append(time.perf_counter())
        wakeup[0].set()
        return False

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            runtime = Runtime(nursery)
            sup = Supervision(max_restarts=-1, backoff=Backoff(kind="constant", initial=0))
            proc = await runtime.spawn(_Crasher(crashed), supervision=sup)
            with runtime.bus.subscribe(types=["process.restarted"], accept=stamp):
                for i in range(1, n + 1):
                    future = proc.call_async("crash")
                    # The crashed message is delivered again and crashes again, so withdraw
                    # it once the restart has happened; then check the process serves.
                    if len(restarted) < i:
                        wakeup[0] = trio.Event()
                        await wakeup[0].wait()
                    future.cancel()
                    assert await proc.call("ping") == "ping"
            await runtime.shutdown(1.0)

    trio.run(main)
    pairs = list(zip(crashed, restarted, strict=False))[:n]
    latencies = sorted((r - c) * 1e6 for c, r in pairs)
    return {
        "n": len(latencies),
        "median_us": statistics.median(latencies),
        "p99_us": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "mean_us": statistics.fmean(latencies),
    }


def b5(n: int) -> dict[str, Any]:
    """one_for_all with ``n`` children: time to terminate and restart all of them."""
    import trio

    from vega_trio.runtime import ChildSpec, Runtime, SupervisorSpec, open_supervisor

    crashed: list[float] = []
    restarted: list[float] = []
    all_back = trio.Event()

    def stamp(event: Any) -> bool:
        restarted.append(time.perf_counter())
        if len(restarted) == n:
            all_back.set()
        return False

    spec = SupervisorSpec(
        strategy="one_for_all",
        max_restarts=1,
        window=60,
        children=[ChildSpec(id=f"c{i}", start=lambda: _Crasher(crashed)) for i in range(n)],
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            runtime = Runtime(nursery)
            async with open_supervisor(runtime, spec) as sup:
                first = sup.child("c0")
                assert first is not None
                with runtime.bus.subscribe(types=["process.restarted"], accept=stamp):
                    with trio.fail_after(60):
                        first.call_async("crash")  # type: ignore[union-attr]
                        await all_back.wait()
                assert sup.count_children().active == n
            await runtime.shutdown(5.0)

    trio.run(main)
    return {"n": n, "seconds": restarted[-1] - crashed[0], "restarts": len(restarted)}


def render_b4_b5(
    b4_result: dict[str, Any], b5_result: dict[str, Any] | None
) -> tuple[str, list[list[str]]]:
    """The report section and the summary rows for B4/B5."""
    median = b4_result["median_us"]
    rows = [
        [
            f"B4: restart latency under {B4_MAX_MEDIAN_US:g} µs median",
            f"{median:.0f} µs median, {b4_result['p99_us']:.0f} µs p99",
            "✅" if median < B4_MAX_MEDIAN_US else "❌",
        ]
    ]
    text = f"""## B4 — restart latency

A supervised process (`Supervision(max_restarts=-1)`, zero backoff) whose behaviour raises;
measured from the moment the exception is raised to the `process.restarted` event of the new
incarnation (published as it starts), over {b4_result["n"]:,} crashes in one interpreter.

| median | p99 | mean |
| ---: | ---: | ---: |
| {median:.0f} µs | {b4_result["p99_us"]:.0f} µs | {b4_result["mean_us"]:.0f} µs |
"""
    if b5_result is not None and "seconds" in b5_result:
        ok = b5_result["seconds"] < B5_MAX_S
        rows.append(
            [
                f"B5: one_for_all with {b5_result['n']:,} children restarted "
                f"in under {B5_MAX_S:g} s",
                f"{b5_result['seconds']:.3f} s",
                "✅" if ok else "❌",
            ]
        )
        text += f"""
## B5 — one_for_all with {b5_result["n"]:,} children

One child crashes; the supervisor terminates the other {b5_result["n"] - 1:,} in reverse start
order and starts all {b5_result["n"]:,} again in start order. Measured from the crash to the last
child running again: **{b5_result["seconds"]:.3f} s**.
"""
    return text, rows
