"""B1 with a store attached vs without (issue 13: within 10%), one run::

    python -m tests.benchmarks._b1_store [N] [REPEATS] [WARMUP]

The B1 workload (one agent, one tool round per run, history cleared between runs) on two
orchestrators, one of them with a SQLite store (every event, the process and the costs
written by the store's writer, off the hot path); batches interleaved and their order
rotated so that machine noise spreads over both. A store batch ends when its events
are committed (the writer's work is counted in it, not in the next batch). Prints µs per
run (medians) of wall-clock time and of CPU time (every thread of the process: the
store's writer thread too), and their ratios.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


async def _b1_store(n: int, repeats: int, warmup: int) -> dict[str, Any]:
    from vega_trio import open_orchestrator
    from vega_trio.store import open_store

    from ._workload import PROMPT, REPLY, make_agent, make_llm

    with tempfile.TemporaryDirectory() as tmp:
        async with (
            open_store(str(Path(tmp) / "b1.db")) as store,
            open_orchestrator(llm=make_llm()) as plain,
            open_orchestrator(llm=make_llm(), store=store) as stored,
        ):
            procs = {
                "no store": await plain.spawn(make_agent()),
                "store": await stored.spawn(make_agent()),
            }

            async def batch(name: str, k: int) -> str:
                proc = procs[name]
                reply = ""
                for _ in range(k):
                    reply = await proc.send(PROMPT)
                    proc.behaviour.context.clear()
                if name == "store":
                    assert stored.persistence is not None
                    await stored.persistence.flush()
                return reply

            for name in procs:
                assert await batch(name, warmup) == REPLY
            samples: dict[str, list[float]] = {name: [] for name in procs}
            cpu: dict[str, list[float]] = {name: [] for name in procs}
            names = list(procs)
            for repeat in range(repeats):
                for name in names[repeat % 2 :] + names[: repeat % 2]:
                    gc.collect()
                    started = time.perf_counter_ns()
                    cpu_started = time.process_time_ns()
                    await batch(name, n)
                    cpu[name].append((time.process_time_ns() - cpu_started) / n / 1000)
                    samples[name].append((time.perf_counter_ns() - started) / n / 1000)
            assert stored.persistence is not None
            await stored.persistence.flush()
            written = await store.last_event_seq()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "n": n,
        "us_per_run": medians,
        "ratio": medians["store"] / medians["no store"],
        "cpu_us_per_run": cpu_medians,
        "cpu_ratio": cpu_medians["store"] / cpu_medians["no store"],
        "events_written": written,
    }


def b1_store(n: int = 2000, repeats: int = 9, warmup: int = 300) -> dict[str, Any]:
    """µs per B1 run with and without a store (wall clock and CPU), and their ratios."""
    import trio

    return trio.run(_b1_store, n, repeats, warmup)


B1_STORE_MAX_RATIO = 1.10
"""Issue 13: B1 with a store attached within 10% of B1 without."""


def render_store_cost(
    b1: dict[str, Any], b2_store: list[dict[str, Any]] | None, b2: list[dict[str, Any]]
) -> tuple[str, list[list[str]]]:
    """The report section and summary row for B1 and B2 with a SQLite store attached."""
    wall, cpu = b1["us_per_run"], b1["cpu_us_per_run"]
    rows = [
        [
            "B1 with a SQLite store attached within 10% of B1 without",
            f"{b1['ratio']:.2f}x wall ({b1['cpu_ratio']:.2f}x CPU)",
            "✅" if b1["ratio"] <= B1_STORE_MAX_RATIO else "❌",
        ]
    ]
    events = b1["events_written"]
    w_ratio, c_ratio = f"{b1['ratio']:.2f}x", f"{b1['cpu_ratio']:.2f}x"
    b2_lines = ""
    for r in b2_store or []:
        plain = [
            x
            for x in b2
            if x["impl"] == "vega"
            and x["n"] == r["n"]
            and x["gc_on"]
            and not x.get("store")
            and not x.get("relaxed_gc")
        ]
        against = f"{plain[0]['wall']:.1f} s" if plain else "?"
        b2_lines += (
            f"| B2, {r['n']:,} concurrent runs | {against} | {r['wall']:.1f} s "
            f"({r['events_written']:,} events committed) | "
            f"{r['peak_rss'] / 2**20:.0f} MiB peak |\n"
        )
    text = f"""## B1 and B2 with a store

The B1 workload on two orchestrators in one process, one of them with a SQLite store
attached (every event, the process, the costs and the spend written by the store's
writer; group commit), batches of {b1.get("n", "N")} runs interleaved in rotating order; a
store batch ends once its events are committed. CPU time counts every thread (the
store's writer thread too). B2 with a store ends once every event is committed.
Where the time goes: docs/persistence.md ("Cost on the hot path").

| | without a store | with a SQLite store | |
| --- | ---: | ---: | --- |
| B1 per run, wall (median) | {wall["no store"]:.1f} µs | {wall["store"]:.1f} µs | {w_ratio} |
| B1 per run, CPU (median) | {cpu["no store"]:.1f} µs | {cpu["store"]:.1f} µs | {c_ratio} |
{b2_lines}
{events:,} events were written by the B1 store batches (six per run).
"""
    return text, rows


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    result = b1_store(*args)
    print(result)
