"""The scenarios. Each runs in a fresh interpreter so that peak RSS is its own::

    python -m tests.benchmarks._scenarios NAME '{"arg": value, ...}'

prints progress on stderr and one JSON object (the result) as the last line of stdout.
Modules are imported inside the scenarios so that ``baseline`` imports vega_trio only.
"""

from __future__ import annotations

import collections
import gc
import json
import linecache
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from ._b1_store import b1_store
from ._b12 import b12
from ._b14 import b14
from ._cli import b13
from ._dsl import b7
from ._resilience import b6
from ._restarts import b4, b5
from ._serve import b8, b9, b10
from ._store import b11

__all__ = ["SCENARIOS", "current_rss", "peak_rss"]


def current_rss() -> int:
    """Resident set size now, in bytes (Linux ``/proc/self/statm``; else the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss()


def peak_rss() -> int:
    """Peak resident set size of this process, in bytes (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _log(message: str) -> None:
    print(f"    {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- baseline


def baseline() -> dict[str, Any]:
    """An interpreter that only imported vega_trio."""
    started = time.perf_counter()
    import vega_trio

    imported = time.perf_counter() - started
    return {
        "import_s": imported,
        "modules": len(sys.modules),
        "peak_rss": peak_rss(),
        "rss": current_rss(),
        "version": vega_trio.__version__,
        "path": os.path.dirname(vega_trio.__file__),
    }


# -------------------------------------------------------------------------- B1 overhead


def b1(n: int, repeats: int, warmup: int) -> dict[str, Any]:
    """Sequential runs, µs per run: vega-trio vs the raw loop vs direct calls.

    Batches of the variants are interleaved (and their order rotated) so that noise
    from the machine spreads over all of them; each figure is per run, per batch.
    """
    import trio

    return trio.run(_b1, n, repeats, warmup)


async def _b1(n: int, repeats: int, warmup: int) -> dict[str, Any]:
    import trio

    from vega_trio import open_orchestrator

    from ._workload import (
        PROMPT,
        REPLY,
        RawProcess,
        add,
        add_sync,
        direct_run,
        make_agent,
        make_llm,
        ran_tool,
        tool_schemas,
    )

    schemas = tool_schemas()
    llm_vega, llm_sync, llm_raw, llm_direct = make_llm(), make_llm(), make_llm(), make_llm()
    llm_spawn, llm_raw_spawn = make_llm(), make_llm()
    llms = (llm_vega, llm_sync, llm_raw, llm_direct, llm_spawn, llm_raw_spawn)
    agent = make_agent()
    checks: dict[str, bool] = {}

    async with (
        open_orchestrator(llm=llm_vega) as orch,
        open_orchestrator(llm=llm_sync) as orch_sync,
        open_orchestrator(llm=llm_spawn) as orch_spawn,
        trio.open_nursery() as nursery,
    ):
        proc = await orch.spawn(agent)
        sync_proc = await orch_sync.spawn(make_agent(add_sync))
        raw = RawProcess(llm_raw, {"add": add}, schemas)
        await nursery.start(raw.serve)
        context = proc.behaviour.context
        sync_context = sync_proc.behaviour.context

        # Each batch starts and ends with an empty conversation, so every run is the
        # same (history would otherwise grow, and every request with it).
        async def vega(k: int) -> str:
            reply = ""
            for _ in range(k):
                reply = await proc.send(PROMPT)
                context.clear()
            return reply

        async def vega_sync_tool(k: int) -> str:
            reply = ""
            for _ in range(k):
                reply = await sync_proc.send(PROMPT)
                sync_context.clear()
            return reply

        async def raw_loop(k: int) -> str | None:
            reply = None
            for _ in range(k):
                reply = await raw.send(PROMPT)
                raw.history.clear()
            return reply

        async def direct(k: int) -> str:
            reply = ""
            for _ in range(k):
                reply = await direct_run(llm_direct, schemas)
            return reply

        async def vega_spawn(k: int) -> str:
            reply = ""
            for _ in range(k):
                p = await orch_spawn.spawn(agent)
                reply = await p.send(PROMPT)
                p.stop()
                await p.wait()
            return reply

        async def raw_spawn(k: int) -> str | None:
            reply = None
            for _ in range(k):
                r = RawProcess(llm_raw_spawn, {"add": add}, schemas)
                await nursery.start(r.serve)
                reply = await r.send(PROMPT)
                r.close()
                await r.exited.wait()
            return reply

        variants: dict[str, tuple[Callable[[int], Awaitable[str | None]], int]] = {
            "vega": (vega, n),
            "raw": (raw_loop, n),
            "direct": (direct, n),
            "vega_spawn": (vega_spawn, max(1, n // 2)),
            "raw_spawn": (raw_spawn, max(1, n // 2)),
            "vega_sync_tool": (vega_sync_tool, max(1, n // 2)),
        }
        # Check that each variant really runs the tool (and then clears its history).
        for label, p in (("vega", proc), ("vega_sync_tool", sync_proc)):
            await p.send(PROMPT)
            checks[f"{label} ran the tool"] = ran_tool(p.history)
            p.behaviour.context.clear()
        await raw.send(PROMPT)
        checks["hand-written ran the tool"] = ran_tool(raw.history)
        raw.history.clear()
        for name, (run, _) in variants.items():
            checks[name] = await run(warmup) == REPLY
        for llm in llms:
            llm.requests.clear()
        _log(f"B1 warm-up done ({warmup} runs each); {repeats} repeats of {n} runs")

        samples: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for repeat in range(repeats):
            rotation = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in rotation:
                run, k = variants[name]
                gc.collect()
                started = time.perf_counter_ns()
                await run(k)
                samples[name].append((time.perf_counter_ns() - started) / k / 1000)
                for llm in llms:
                    llm.requests.clear()
            _log(
                f"B1 repeat {repeat + 1}/{repeats}: "
                + ", ".join(f"{k} {v[-1]:.1f}" for k, v in samples.items())
            )
        raw.close()
    return {"n": n, "repeats": repeats, "warmup": warmup, "samples": samples, "checks": checks}


# ----------------------------------------------------------------------- B2 concurrency


def b2(
    impl: str,
    n: int,
    delay: float,
    gc_on: bool = True,
    store: bool = False,
    relaxed_gc: bool = False,
) -> dict[str, Any]:
    """N concurrent processes, one run each, ``delay`` seconds per LLM call (real clock).

    ``gc_on=False`` disables the cyclic garbage collector: a diagnostic that shows how
    much of the wall time full collections take. ``relaxed_gc=True`` runs inside
    :func:`vega_trio.runtime.relaxed_gc` (the opt-in GC policy; both implementations
    alike). ``store=True`` (vega-trio only) attaches a SQLite store in a temporary
    directory: ``wall`` then ends when every event is committed, and ``events_written``
    counts them.
    """
    from contextlib import nullcontext

    import trio

    from vega_trio.runtime import relaxed_gc as relaxed

    if not gc_on:
        gc.disable()
    collections_before = sum(s["collections"] for s in gc.get_stats())
    rss_start = current_rss()
    with relaxed() if relaxed_gc else nullcontext():
        if impl == "vega":
            result = trio.run(_b2_vega, n, delay, store)
        else:
            result = trio.run(_b2_raw, n, delay)
    result.update(
        impl=impl,
        n=n,
        delay=delay,
        gc_on=gc_on,
        relaxed_gc=relaxed_gc,
        store=store,
        gc_full_collections=gc.get_stats()[2]["collections"],
        gc_collections=sum(s["collections"] for s in gc.get_stats()) - collections_before,
        rss_start=rss_start,
        peak_rss=peak_rss(),
    )
    return result


async def _b2_vega(n: int, delay: float, store: bool = False) -> dict[str, Any]:
    import tempfile
    from contextlib import AsyncExitStack
    from pathlib import Path

    from vega_trio.store import open_store

    from ._workload import make_agent, make_llm

    llm = make_llm(delay)
    agent = make_agent()
    written = 0
    async with AsyncExitStack() as stack:
        db = None
        if store:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            db = await stack.enter_async_context(open_store(str(Path(tmp) / "b2.db")))
        result = await _b2_vega_run(n, llm, agent, db)
        if db is not None:
            written = await db.last_event_seq()
    result["events_written"] = written
    return result


async def _b2_vega_run(n: int, llm: Any, agent: Any, db: Any) -> dict[str, Any]:
    import trio

    from vega_trio import open_orchestrator

    from ._workload import PROMPT, REPLY, ran_tool

    ok = spawned = 0
    all_spawned = 0.0
    procs = []
    started = time.perf_counter()
    async with open_orchestrator(llm=llm, store=db) as orch:

        async def one() -> None:
            nonlocal ok, spawned, all_spawned
            proc = await orch.spawn(agent)
            procs.append(proc)
            spawned += 1
            if spawned == n:
                all_spawned = time.perf_counter() - started
            if await proc.send(PROMPT) == REPLY:
                ok += 1

        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
        if orch.persistence is not None:
            await orch.persistence.flush()
        done = time.perf_counter() - started
        rss_done = current_rss()
        ran = sum(ran_tool(p.history) for p in procs)
        stopping = time.perf_counter()
    shutdown = time.perf_counter() - stopping
    return {
        "ran_tool": ran,
        "wall": done,
        "all_spawned": all_spawned,
        "shutdown": shutdown,
        "ok": ok,
        "rss_done": rss_done,
        "llm_calls": len(llm.requests),
    }


async def _b2_raw(n: int, delay: float) -> dict[str, Any]:
    import trio

    from ._workload import PROMPT, REPLY, RawProcess, add, make_llm, ran_tool, tool_schemas

    llm = make_llm(delay)
    schemas = tool_schemas()
    tools = {"add": add}
    ok = spawned = 0
    all_spawned = 0.0
    raws: list[RawProcess] = []
    started = time.perf_counter()
    async with trio.open_nursery() as processes:

        async def one() -> None:
            nonlocal ok, spawned, all_spawned
            raw = RawProcess(llm, tools, schemas)
            raws.append(raw)
            await processes.start(raw.serve)
            spawned += 1
            if spawned == n:
                all_spawned = time.perf_counter() - started
            if await raw.send(PROMPT) == REPLY:
                ok += 1

        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
        done = time.perf_counter() - started
        rss_done = current_rss()
        ran = sum(ran_tool(raw.history) for raw in raws)
        stopping = time.perf_counter()
        for raw in raws:  # like the orchestrator: the processes live until the end
            raw.close()
    shutdown = time.perf_counter() - stopping
    return {
        "ran_tool": ran,
        "wall": done,
        "all_spawned": all_spawned,
        "shutdown": shutdown,
        "ok": ok,
        "rss_done": rss_done,
        "llm_calls": len(llm.requests),
    }


# ------------------------------------------------------------------------ B3 idle cost


def b3(impl: str, n: int, trace: bool) -> dict[str, Any]:
    """Spawn ``n`` idle processes one after another; rate and memory per process.

    With ``trace``, tracemalloc runs during the spawns (slower: the rate is not
    reported) and the top allocation sites are returned.
    """
    import trio

    result = trio.run(_b3_vega if impl == "vega" else _b3_raw, n, trace)
    result.update(impl=impl, n=n, trace=trace, peak_rss=peak_rss())
    return result


_TRACE_FRAMES = 16


def owner(trace: tracemalloc.Traceback) -> tracemalloc.Frame:
    """The frame an allocation is charged to: the innermost one in vega_trio or in the
    benchmark's own code (the hand-written loop), else the innermost one."""
    for frame in reversed(trace):  # most recent call last
        if "/vega_trio/" in frame.filename or "/tests/benchmarks/" in frame.filename:
            return frame
    return trace[-1]


def where(frame: tracemalloc.Frame) -> str:
    """``path:line`` of a frame, relative to the repository or site-packages."""
    return f"{_short(frame.filename)}:{frame.lineno}"


class _Measure:
    def __init__(self, n: int, trace: bool) -> None:
        self.n = n
        self.trace = trace
        self.result: dict[str, Any] = {}

    def before(self) -> None:
        gc.collect()
        self._rss = current_rss()
        if self.trace:
            # Started here, not at import: only what the spawns allocate is traced.
            tracemalloc.start(_TRACE_FRAMES)
            self._snapshot = tracemalloc.take_snapshot()
            self._traced = tracemalloc.get_traced_memory()[0]
        self._started = time.perf_counter()

    def after(self) -> None:
        elapsed = time.perf_counter() - self._started
        gc.collect()
        rss = current_rss()
        self.result.update(spawn_s=elapsed, rss_before=self._rss, rss_after=rss)
        if self.trace:
            traced = tracemalloc.get_traced_memory()[0]
            snapshot = tracemalloc.take_snapshot()
            sizes: collections.Counter[tracemalloc.Frame] = collections.Counter()
            blocks: collections.Counter[tracemalloc.Frame] = collections.Counter()
            for stat in snapshot.compare_to(self._snapshot, "traceback"):
                frame = owner(stat.traceback)
                sizes[frame] += stat.size_diff
                blocks[frame] += stat.count_diff
            self.result.update(
                traced_delta=traced - self._traced,
                top=[
                    {
                        "where": where(frame),
                        "code": linecache.getline(frame.filename, frame.lineno).strip(),
                        "bytes": size / self.n,
                        "blocks": blocks[frame] / self.n,
                    }
                    for frame, size in sizes.most_common(15)
                ],
            )
            tracemalloc.stop()


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3."):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail if marker == "site-packages/" else "stdlib/" + tail.split("/", 1)[1]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.relpath(filename, root) if filename.startswith(root) else filename


async def _b3_vega(n: int, trace: bool) -> dict[str, Any]:
    from vega_trio import open_orchestrator

    from ._workload import make_agent, make_llm

    agent = make_agent()
    measure = _Measure(n, trace)
    async with open_orchestrator(llm=make_llm()) as orch:
        await orch.spawn(agent)  # warm: first-spawn costs are not per process
        measure.before()
        for _ in range(n):
            await orch.spawn(agent)
        measure.after()
        live = len(orch.processes())
        stopping = time.perf_counter()
    measure.result.update(shutdown_s=time.perf_counter() - stopping, live=live - 1)
    return measure.result


async def _b3_raw(n: int, trace: bool) -> dict[str, Any]:
    import trio

    from ._workload import RawProcess, add, make_llm, tool_schemas

    llm = make_llm()
    schemas = tool_schemas()
    tools = {"add": add}
    measure = _Measure(n, trace)
    raws: list[RawProcess] = []
    async with trio.open_nursery() as nursery:
        measure.before()
        for _ in range(n):
            raw = RawProcess(llm, tools, schemas)
            raws.append(raw)
            await nursery.start(raw.serve)
        measure.after()
        stopping = time.perf_counter()
        for raw in raws:
            raw.close()
    measure.result.update(shutdown_s=time.perf_counter() - stopping, live=len(raws))
    return measure.result


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "baseline": baseline,
    "b1": b1,
    "b2": b2,
    "b3": b3,
    "b4": b4,
    "b5": b5,
    "b6": b6,
    "b7": b7,
    "b8": b8,
    "b9": b9,
    "b10": b10,
    "b11": b11,
    "b1_store": b1_store,
    "b12": b12,
    "b14": b14,
    "b13": b13,
}


def main(argv: list[str]) -> None:
    name = argv[0]
    kwargs = json.loads(argv[1]) if len(argv) > 1 else {}
    result = SCENARIOS[name](**kwargs)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
