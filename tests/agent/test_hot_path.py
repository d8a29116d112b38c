"""What one agent run costs the interpreter (issue 16): GC-tracked objects per process,
idle and in flight, Python calls per spawn and clock reads per send. Counts, not
timings: deterministic.

The bounds are the measured counts (B2's workload: one tool call, two LLM calls); the
hand-written Trio loop of tests/benchmarks holds 57 objects idle after its run and 63
in flight (it keeps its ``task_status``, and with it trio's start-up nursery). Raising a
bound needs a reason in docs/benchmarks.md.
"""

from __future__ import annotations

import collections
import gc
import sys
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import Agent, Orchestrator, Tool, open_orchestrator
from vega_trio.agent._context import UnboundedContext
from vega_trio.agent._loop import AgentBehaviour
from vega_trio.llm import LLMRequest, ToolResultBlock, Usage
from vega_trio.runtime import Process, Runtime
from vega_trio.testing import ScriptedLLM, Step

N = 200
PROMPT = "What is 1 + 2?"


async def add(a: int, b: int) -> int:
    """Add two integers."""
    await trio.lowlevel.checkpoint()
    return a + b


def _llm(delay: float, on_request: Any = None) -> ScriptedLLM:
    usage = Usage(input_tokens=12, output_tokens=6)
    call = Step.tool_call("add", {"a": 1, "b": 2}, delay=delay, usage=usage)
    text = Step.text("1 + 2 = 3", delay=delay, usage=usage)

    def respond(request: LLMRequest) -> Step:
        if on_request is not None:
            on_request()
        return text if request.messages[-1].content[0].type == "tool_result" else call

    return ScriptedLLM(responder=respond)


def _census() -> collections.Counter[str]:
    """GC-tracked objects by type, leaving out the nodes of context-variable tries.

    A process's task context holds one more variable than its spawner's (the current
    process): a ``hamt`` and one to three nodes, a number that depends on the addresses
    the variables hash to, so it changes from one interpreter to the next (B2's
    benchmark, with one other variable, has one node). Counting them made the bounds
    below flaky; they are the same for every version measured.
    """
    gc.collect()
    return collections.Counter(
        name
        for name in (type(o).__qualname__ for o in gc.get_objects())
        if not name.startswith("hamt")
    )


async def test_an_idle_process_after_a_run_holds_at_most_35_objects() -> None:
    """A process that has answered one message and waits for the next keeps at most 35
    GC-tracked objects alive (34 measured, context-variable tries left out: see _census;
    52 with a Trio memory channel as its mailbox, a record per turn and a tuple per usage
    report in its context and a lock per context — 56 counting the tries, 78 before
    issue 16)."""
    llm = _llm(0.0)
    agent = Agent(name="bench", tools=[add])
    async with open_orchestrator(llm=llm) as orch:
        procs = [await orch.spawn(agent)]
        assert await procs[0].send(PROMPT) == "1 + 2 = 3"
        llm.requests.clear()
        before = _census()
        for _ in range(N):
            proc = await orch.spawn(agent)
            procs.append(proc)
            assert await proc.send(PROMPT) == "1 + 2 = 3"
        llm.requests.clear()  # the scripted model's own record, not the process's
        after = _census()
    per_process = sum((after - before).values()) / N
    assert per_process <= 35, (per_process, (after - before).most_common(12))


async def test_a_never_used_process_holds_at_most_23_objects() -> None:
    """A process spawned and never sent to keeps at most 23 GC-tracked objects alive
    (22 measured; 34 with a Trio memory channel as its mailbox — two endpoints with a set
    each, their state with two ordered dicts and a deque, a closure with two cells and
    their tuple per wait — and a lock per context)."""
    agent = Agent(name="bench", tools=[add])
    async with open_orchestrator(llm=_llm(0.0)) as orch:
        procs = [await orch.spawn(agent)]
        await trio.testing.wait_all_tasks_blocked()
        before = _census()
        for _ in range(N):
            procs.append(await orch.spawn(agent))
        await trio.testing.wait_all_tasks_blocked()
        after = _census()
    per_process = sum((after - before).values()) / N
    assert per_process <= 23, (per_process, (after - before).most_common(12))


async def test_a_spawn_makes_at_most_100_python_calls() -> None:
    """Spawning an agent's process (the orchestrator, the behaviour, the runtime, the
    task's first step up to its wait on the mailbox) takes at most 100 Python-level
    calls (179 with trio's ``nursery.start``, which opens a nursery per task; the
    hand-written loop of tests/benchmarks, which uses it too, 121)."""
    agent = Agent(name="bench", tools=[add])
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    async with open_orchestrator(llm=_llm(0.0)) as orch:
        await orch.spawn(agent)
        await trio.testing.wait_all_tasks_blocked()
        sys.setprofile(count)
        try:
            for _ in range(N):
                await orch.spawn(agent)
            await trio.testing.wait_all_tasks_blocked()
        finally:
            sys.setprofile(None)
    assert calls / N <= 100, calls / N


async def test_a_run_in_flight_holds_at_most_60_objects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While N processes wait on their first LLM call, each (with its caller) keeps at
    most 60 GC-tracked objects alive (58.4 measured here, context-variable tries left out:
    see _census; 65 with a trio.Event per waiting caller, 73 with a Trio memory channel as
    its mailbox — 75 counting the tries, 101 before issue 16)."""
    seen: dict[str, Any] = {}
    calls = 0

    def on_request() -> None:
        nonlocal calls
        calls += 1
        if calls == N + 1:  # every process has asked once: all are in flight
            seen["census"] = _census()

    llm = _llm(1.0, on_request)
    agent = Agent(name="bench", tools=[add])
    async with open_orchestrator(llm=llm) as orch:
        warm = await orch.spawn(agent)
        with trio.fail_after(10):
            assert await warm.send(PROMPT) == "1 + 2 = 3"
        calls = 1
        seen["before"] = _census()

        async def one() -> None:
            proc = await orch.spawn(agent)
            assert await proc.send(PROMPT) == "1 + 2 = 3"

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(N):
                    nursery.start_soon(one)
    grown = seen["census"] - seen["before"]
    per_process = sum(grown.values()) / N
    assert per_process <= 60, (per_process, grown.most_common(12))


class _CountingClock(trio.abc.Clock):
    """The system clock, counting the reads made by vega_trio's own code."""

    def __init__(self) -> None:
        self._clock = trio.testing.MockClock()
        self.reads = 0

    def start_clock(self) -> None:
        self._clock.start_clock()

    def current_time(self) -> float:
        frame = sys._getframe(1)
        while frame is not None and "/trio/" in frame.f_code.co_filename:
            frame = frame.f_back  # type: ignore[assignment]
        name = frame.f_code.co_filename if frame is not None else ""
        if "/vega_trio/" in name and "/vega_trio/testing/" not in name:
            self.reads += 1
        return self._clock.current_time()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return self._clock.deadline_to_sleep_time(deadline)


def test_a_send_reads_the_clock_at_most_five_times() -> None:
    """One send (two LLM calls, one tool call) reads the run's clock at most five times:
    the send's duration, each LLM call's start and each tool's start (six when the tool's
    end was read with nobody listening for its duration; eight before issue 16: each call
    path attempt read it again)."""
    clock = _CountingClock()

    async def main() -> int:
        llm = _llm(0.0)
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(Agent(name="bench", tools=[add]))
            assert await proc.send(PROMPT) == "1 + 2 = 3"
            before = clock.reads
            assert await proc.send(PROMPT) == "1 + 2 = 3"
            return clock.reads - before

    assert trio.run(main, clock=clock) <= 5


@pytest.mark.parametrize(
    "function",
    [
        AgentBehaviour.handle,
        AgentBehaviour._tool_loop,
        AgentBehaviour._call_llm,
        AgentBehaviour._attempt,
        AgentBehaviour._run_tool,
        UnboundedContext.extend,
        Orchestrator.spawn,
        Orchestrator._behaviour,
        Orchestrator._tools_for,
        Runtime.spawn,
        Process._run,
        Process._serve_requests,
        Process.call,
    ],
    ids=lambda f: f.__qualname__,
)
def test_the_send_and_spawn_paths_make_no_closure_cells(function: Any) -> None:
    """The functions every spawn and every send run through have no cell variables: a
    closure or comprehension anywhere in one (even on a rare branch) makes a cell per
    name at every call, kept alive while the call is in flight."""
    assert function.__code__.co_cellvars == ()


#: Bytecode instructions executed in vega_trio's own code (not the scripted model's) per
#: run, measured on CPython 3.11 at 2,060 (issue 16: 3,040 before the B1 passes of
#: 2026-12-03; 2,824 before the request path's of 2026-12-04, 2,782 before its tool
#: path's: the compiled argument check, no ToolCall or invoke frame without middleware —
#: until then the run measured here failed its tool call, the tool being registered under
#: another name than the model called); about 4% headroom.
#: ``python -m tests.benchmarks.profiling opcodes`` shows where they go.
MAX_OPCODES_PER_RUN = 2_140


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="bytecode counts are specific to one CPython version; the bound is 3.11's",
)
def test_a_run_executes_a_bounded_number_of_bytecode_instructions() -> None:
    """One agent run (two LLM calls, one tool call) executes at most MAX_OPCODES_PER_RUN
    bytecode instructions of vega_trio code: a deterministic guard of B1's hot path."""
    executed = 0

    def tracer(frame: Any, event: str, arg: object) -> Any:
        nonlocal executed
        filename = frame.f_code.co_filename
        if "vega_trio" not in filename or "testing" in filename:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            executed += 1
        return tracer

    async def main() -> None:
        async with open_orchestrator(llm=_llm(0.0)) as orch:
            # NOTE: named "add", the tool the scripted model calls: the run measured is one
            # whose tool call succeeds (not a ToolNotFound turned into an error result).
            tool = Tool.from_function(_add_now, name="add")
            proc = await orch.spawn(Agent(name="bench", tools=[tool]))
            context = proc.behaviour.context
            for _ in range(5):
                assert await proc.send(PROMPT) == "1 + 2 = 3"
                (result,) = proc.history[2].content
                assert isinstance(result, ToolResultBlock) and result.content == "3", result
                assert not result.is_error
                context.clear()
            previous = sys.gettrace()
            sys.settrace(tracer)
            try:
                for _ in range(20):
                    await proc.send(PROMPT)
                    context.clear()
            finally:
                sys.settrace(previous)

    trio.run(main)
    assert executed / 20 <= MAX_OPCODES_PER_RUN


async def _add_now(a: int, b: int) -> int:  # noqa: ASYNC124 - an async tool, on purpose
    """Add two integers."""
    return a + b
