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


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    result = b1_store(*args)
    print(result)
