"""Where the time and memory of the benchmarks go::

    python -m tests.benchmarks.profiling b1 [--runs N] [--sort tottime|cumulative]
    python -m tests.benchmarks.profiling b3 [--n N]
    python -m tests.benchmarks.profiling parts [--runs N]
    python -m tests.benchmarks.profiling opcodes [--runs N] [--limit N]

``b1`` profiles sequential runs (cProfile) of vega-trio and of the hand-written loop.
``b3`` traces the allocations of N idle processes (tracemalloc) and charges each to
the innermost vega_trio line that led to it, then profiles the spawns (cProfile).
``parts`` times pieces of the vega-trio hot path in isolation (µs per call), to price
the entries of the profile without the profiler's own overhead.
``opcodes`` counts the bytecode instructions one B1 run executes (``sys.settrace`` with
opcode events), in vega-trio and in the hand-written loop, by function: deterministic,
so it is the figure to compare before and after a change on a loaded machine (B1's wall
time follows it closely: both loops run the same scheduler and the same model).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import pstats
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from vega_trio import open_orchestrator
from vega_trio.testing import ScriptedLLM

from ._workload import PROMPT, RawProcess, add, make_agent, make_llm, tool_schemas


def _print_stats(title: str, profile: cProfile.Profile, runs: int, sort: str, limit: int) -> None:
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n=== {title}: {total / runs * 1e6:.1f} µs per run under cProfile ===")
    stats.sort_stats(sort).print_stats(limit)


_Loop = tuple[str, Callable[[], Awaitable[None]], ScriptedLLM]


@asynccontextmanager
async def _b1_loops() -> AsyncIterator[list[_Loop]]:
    """B1's two loops, running: (title, one run, its scripted LLM) for vega-trio's
    ``send`` and for the hand-written loop; each run clears its conversation."""
    llm_vega, llm_raw = make_llm(), make_llm()
    async with open_orchestrator(llm=llm_vega) as orch, trio.open_nursery() as nursery:
        proc = await orch.spawn(make_agent())
        context = proc.behaviour.context
        raw = RawProcess(llm_raw, {"add": add}, tool_schemas())
        await nursery.start(raw.serve)

        async def vega() -> None:
            await proc.send(PROMPT)
            context.clear()

        async def hand() -> None:
            await raw.send(PROMPT)
            raw.history.clear()

        yield [("vega-trio send", vega, llm_vega), ("hand-written loop", hand, llm_raw)]
        raw.close()


async def _profile_b1(runs: int, sort: str, limit: int) -> None:
    async with _b1_loops() as variants:
        for title, one, llm in variants:
            for _ in range(300):
                await one()
            llm.requests.clear()
            gc.collect()
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(runs):
                await one()
            profile.disable()
            _print_stats(title, profile, runs, sort, limit)


def _owner(trace: tracemalloc.Traceback) -> str:
    """The innermost vega_trio frame of an allocation (else its innermost frame)."""
    for frame in reversed(trace):  # most recent call last
        if "/vega_trio/" in frame.filename:
            return f"vega_trio/{frame.filename.split('/vega_trio/', 1)[1]}:{frame.lineno}"
    frame = trace[-1]
    return f"{frame.filename}:{frame.lineno}"


async def _spawn_idle(n: int) -> None:
    async with open_orchestrator(llm=make_llm()) as orch:
        agent = make_agent()
        await orch.spawn(agent)
        gc.collect()
        before = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        for _ in range(n):
            await orch.spawn(agent)
        gc.collect()
        if before is not None:
            after = tracemalloc.take_snapshot()
            diff = after.compare_to(before, "traceback")
            owners: collections.Counter[str] = collections.Counter()
            blocks: collections.Counter[str] = collections.Counter()
            for stat in diff:
                owners[_owner(stat.traceback)] += stat.size_diff
                blocks[_owner(stat.traceback)] += stat.count_diff
            total = sum(owners.values())
            print(f"\n=== B3: {total / n:,.0f} bytes traced per idle process (N={n:,}) ===")
            print("charged to the innermost vega_trio line on the allocation's stack:")
            for where, size in owners.most_common(25):
                print(f"{size / n:9,.0f} B {blocks[where] / n:6.1f} blocks  {where}")


def _profile_b3(n: int, sort: str, limit: int) -> None:
    tracemalloc.start(40)
    trio.run(_spawn_idle, n)
    tracemalloc.stop()
    profile = cProfile.Profile()
    profile.enable()
    trio.run(_spawn_idle, n)
    profile.disable()
    _print_stats(
        f"B3: spawning {n:,} idle processes (and shutting them down)", profile, n, sort, limit
    )


def _timeit(label: str, fn: Callable[[], Any], runs: int) -> None:
    for _ in range(min(runs, 1000)):
        fn()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(runs):
            fn()
        best = min(best, (time.perf_counter_ns() - started) / runs / 1000)
    print(f"{best:8.2f} µs  {label}")


async def _atimeit(label: str, fn: Callable[[], Awaitable[Any]], runs: int) -> None:
    for _ in range(min(runs, 1000)):
        await fn()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(runs):
            await fn()
        best = min(best, (time.perf_counter_ns() - started) / runs / 1000)
    print(f"{best:8.2f} µs  {label}")


async def _parts(runs: int) -> None:
    from vega_trio import Tools
    from vega_trio.agent._context import UnboundedContext, estimate_message_tokens
    from vega_trio.llm import LLMRequest, Message, PriceTable, ToolResultBlock, Usage
    from vega_trio.tools import ToolCall

    llm = make_llm()
    schemas = tool_schemas()
    user = Message.user(PROMPT)
    first = await llm.generate(LLMRequest(model="m", messages=(user,), tools=schemas))
    assistant = first.to_message()
    use = first.tool_uses[0]
    result = Message(role="user", content=[ToolResultBlock(tool_use_id=use.id, content="3")])
    usage = Usage(input_tokens=12, output_tokens=6)
    tools = Tools()
    tools.register(add)
    call = ToolCall(id=use.id, name=use.name, arguments=dict(use.input))
    prices = PriceTable.default()
    async with open_orchestrator(llm=llm) as orch:
        model = orch.config.default_model
        agent = make_agent()
        print("\n=== pieces of one vega-trio run (best of 5, µs per call) ===")
        await _atimeit(
            "ScriptedLLM.generate (one call)",
            lambda: llm.generate(LLMRequest(model=model, messages=(user,), tools=schemas)),
            runs,
        )
        llm.requests.clear()
        await _atimeit("await add(1, 2) (the tool itself)", lambda: add(a=1, b=2), runs)
        await _atimeit(
            "Tools.execute(call) (validation + render)", lambda: tools.execute(call), runs
        )
        _timeit(
            "Tools() + register(add) (per spawn: AgentBehaviour._tools_from)",
            lambda: Tools().register(add),
            max(1, runs // 10),
        )
        _timeit("PriceTable.cost(model, usage)", lambda: prices.cost(model, usage), runs)
        _timeit(
            "estimate_message_tokens(assistant tool_use turn)",
            lambda: estimate_message_tokens(assistant),
            runs,
        )

        def context_cycle() -> None:
            ctx = UnboundedContext()
            ctx.record_usage((user,), usage)
            ctx.record_usage((user, assistant, result), usage)
            for m in (user, assistant, result, assistant):
                ctx.add(m)

        _timeit(
            "context per run: 2 record_usage + 4 add (fresh UnboundedContext)", context_cycle, runs
        )
        _timeit(
            "LLMRequest(...) build",
            lambda: LLMRequest(
                model=model,
                system="",
                messages=(user, assistant, result),
                tools=schemas,
                max_tokens=4096,
                temperature=None,
            ),
            runs,
        )
        _timeit("time.time()", time.time, runs)
        _timeit("trio.current_time()", trio.current_time, runs)
        _timeit("trio.Event()", trio.Event, runs)
        proc = await orch.spawn(agent)
        context = proc.behaviour.context

        async def send() -> None:
            await proc.send(PROMPT)
            context.clear()

        await _atimeit("whole run: proc.send + context.clear()", send, max(1, runs // 10))
        await _atimeit(
            "orch.spawn(agent) (idle; never stopped)", lambda: orch.spawn(agent), max(1, runs // 10)
        )
    gc.collect()


async def _opcodes(runs: int, limit: int) -> None:
    from types import FrameType

    counts: collections.Counter[tuple[str, str, int]] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            code = frame.f_code
            where = code.co_filename.split("site-packages/")[-1].split("/vega_trio/")[-1]
            counts[(where, code.co_name, code.co_firstlineno)] += 1
        return tracer

    async with _b1_loops() as variants:
        totals = {}
        for title, one, llm in variants:
            for _ in range(50):
                await one()
            counts.clear()
            sys.settrace(tracer)  # a resumed coroutine's frame is traced too
            try:
                for _ in range(runs):
                    await one()
            finally:
                sys.settrace(None)
            llm.requests.clear()
            totals[title] = total = sum(counts.values()) / runs
            print(f"\n=== {title}: {total:,.0f} bytecode instructions per run ===")
            for (where, name, line), count in counts.most_common(limit):
                print(f"{count / runs:8.1f}  {where}:{line} {name}")
        ratio = totals["vega-trio send"] / totals["hand-written loop"]
        print(f"\nvega-trio / hand-written: {ratio:.2f}x the instructions per run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.profiling", description=__doc__
    )
    parser.add_argument("what", choices=["b1", "b3", "parts", "opcodes"])
    parser.add_argument("--runs", type=int, default=5000, help="runs for b1 / parts")
    parser.add_argument("--n", type=int, default=5000, help="idle processes for b3")
    parser.add_argument("--sort", default="tottime", help="pstats sort key")
    parser.add_argument("--limit", type=int, default=35, help="profile rows shown")
    args = parser.parse_args(argv)
    if args.what == "b1":
        trio.run(_profile_b1, args.runs, args.sort, args.limit)
    elif args.what == "b3":
        _profile_b3(args.n, args.sort, args.limit)
    elif args.what == "opcodes":
        trio.run(_opcodes, min(args.runs, 1000), args.limit)
    else:
        trio.run(_parts, args.runs)


if __name__ == "__main__":
    main()
