from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import vega_trio
from vega_trio import (
    Agent,
    ErrorClass,
    LLMError,
    MaxIterationsExceeded,
    ProcessExited,
    ProcessNotRunning,
    SendTimeout,
    open_orchestrator,
)
from vega_trio.agent import DoneEvent, ErrorEvent, TextDeltaEvent, ToolEndEvent, ToolStartEvent
from vega_trio.llm import INVALID_JSON_KEY, Message, TextBlock, ToolResultBlock, ToolUseBlock, Usage
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools import ToolCall, Tools


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_send_returns_text_and_records_history() -> None:
    """A blocking send returns the reply and keeps a structured history."""
    llm = ScriptedLLM([Step.text("Hello there!")])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(
            Agent(
                name="assistant",
                model="claude-sonnet-4-5",
                system="Be kind.",
                temperature=0.2,
                max_tokens=99,
            )
        )
        assert await proc.send("Hi") == "Hello there!"
        assert proc.history == [Message.user("Hi"), Message.assistant("Hello there!")]
        request = llm.requests[0]
        assert (request.model, request.system, request.temperature, request.max_tokens) == (
            "claude-sonnet-4-5",
            "Be kind.",
            0.2,
            99,
        )
        assert proc.metrics.llm_calls == 1
        assert proc.metrics.input_tokens > 0 and proc.metrics.cost_usd > 0


async def test_tool_loop_runs_tools_and_feeds_results_back() -> None:
    """A tool call is executed and its result goes back to the model as a tool_result block."""
    llm = ScriptedLLM([Step.tool_call("add", {"a": 2, "b": 3}, id="t1"), Step.text("It is 5.")])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="calc", tools=[add]))
        assert await proc.send("2+3?") == "It is 5."
        second = llm.requests[1]
        assert second.messages[-1] == Message(
            role="user", content=[ToolResultBlock(tool_use_id="t1", content="5")]
        )
        assert [t.name for t in second.tools] == ["add"]
        assert [m.role for m in proc.history] == ["user", "assistant", "user", "assistant"]
        assert proc.history[1].content[0] == ToolUseBlock(
            id="t1", name="add", input={"a": 2, "b": 3}
        )
        assert proc.metrics.tool_calls == 1 and proc.metrics.iterations == 2


async def test_tool_calls_of_one_turn_run_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three 1-second tools asked for in one turn take 1 virtual second, not 3."""

    async def slow(label: str) -> str:
        """Wait a second."""
        await trio.sleep(1)
        return label

    llm = ScriptedLLM(
        [
            Step.tool_calls(
                [("slow", {"label": "a"}), ("slow", {"label": "b"}), ("slow", {"label": "c"})]
            ),
            "ok",
        ]
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="par", tools=[slow]))
        start = trio.current_time()
        await proc.send("go")
        assert trio.current_time() - start == 1.0
        results = llm.requests[1].messages[-1].tool_results
        assert [r.content for r in results] == ["a", "b", "c"]


async def test_tool_errors_become_is_error_results() -> None:
    """A raising tool, an unknown tool and bad JSON arguments reach the model as is_error."""

    def explode() -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    llm = ScriptedLLM(
        [
            Step.tool_calls([("explode", {}), ("nope", {}), ("add", {INVALID_JSON_KEY: "{oops"})]),
            Step.text("recovered"),
        ]
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", tools=[explode, add]))
        assert await proc.send("try") == "recovered"
        results = llm.requests[1].messages[-1].tool_results
        assert all(r.is_error for r in results)
        assert "disk on fire" in results[0].content
        assert "nope" in results[1].content and "add" in results[1].content
        assert "not valid JSON" in results[2].content
        assert proc.status == vega_trio.ProcessStatus.RUNNING


async def test_max_iterations_leaves_history_unchanged_and_keeps_serving() -> None:
    """Exceeding max_iterations raises MaxIterationsExceeded; the process keeps serving."""
    llm = ScriptedLLM([Step.tool_call("add", {"a": 1, "b": 1})] * 3 + ["fine"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="loopy", tools=[add], max_iterations=3))
        with pytest.raises(MaxIterationsExceeded, match="3 LLM rounds"):
            await proc.send("loop")
        assert proc.history == []
        assert await proc.send("again") == "fine"
        assert proc.metrics.errors == 1


async def test_llm_error_reaches_caller_and_process_keeps_serving() -> None:
    """A failed LLM call answers the caller with LLMError; the next send works."""
    llm = ScriptedLLM([Step.error(ErrorClass.AUTHENTICATION), "ok"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        with pytest.raises(LLMError) as info:
            await proc.send("hi")
        assert info.value.error_class == ErrorClass.AUTHENTICATION
        assert await proc.send("hi") == "ok"


async def test_send_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """send_timeout turns a slow reply into SendTimeout at exactly that virtual time."""
    llm = ScriptedLLM([Step.text("late", delay=10), "quick"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", send_timeout=2))
        with pytest.raises(SendTimeout, match="2s"):
            await proc.send("hi")
        assert trio.current_time() == 2
        assert await proc.send("again") == "quick"
        assert llm.open_streams == 0


async def test_stream_rich_event_sequence() -> None:
    """send_stream_rich yields text deltas, tool panels and exactly one done with metrics."""
    llm = ScriptedLLM(
        [
            Step.tool_call("add", {"a": 1, "b": 2}, id="c1", text="Let me add."),
            Step.text("It is 3."),
        ]
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", tools=[add]))
        async with proc.send_stream_rich("1+2?") as stream:
            events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert (
        "".join(e.delta for e in events if isinstance(e, TextDeltaEvent)) == "Let me add.It is 3."
    )
    start = next(e for e in events if isinstance(e, ToolStartEvent))
    end = next(e for e in events if isinstance(e, ToolEndEvent))
    assert (start.tool_call_id, start.tool_name, dict(start.arguments)) == (
        "c1",
        "add",
        {"a": 1, "b": 2},
    )
    assert (end.result, end.is_error) == ("3", False)
    assert kinds.index("tool_start") < kinds.index("tool_end")
    assert kinds[-1] == "done" and kinds.count("done") == 1 and "error" not in kinds
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.metrics.output_tokens > 0
    assert done.to_dict()["type"] == "done"
    assert stream.text == "Let me add.It is 3."


async def test_stream_ends_with_one_error_event() -> None:
    """A failing streamed send ends with exactly one error event carrying the class."""
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED, partial_text="Part")])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        async with proc.send_stream_rich("hi") as stream:
            events = [event async for event in stream]
    assert [e.type for e in events] == ["text_delta", "error"]
    error = events[-1]
    assert isinstance(error, ErrorEvent) and error.error_class == "overloaded"
    assert error.to_sse().startswith("event: error\ndata: {")


async def test_send_stream_text_chunks_and_raises_failures() -> None:
    """send_stream yields text chunks; a failure is raised from the iteration."""
    llm = ScriptedLLM([Step.text("one two three"), Step.error(ErrorClass.TIMEOUT)])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        async with proc.send_stream("hi") as chunks:
            assert [c async for c in chunks] == ["one", " two", " three"]

        async def drain() -> None:
            async with proc.send_stream("again") as chunks:
                async for _ in chunks:
                    pass

        with pytest.raises(LLMError):
            await drain()


async def test_send_async_future() -> None:
    """send_async returns a future with done/result/wait."""
    async with open_orchestrator(llm=ScriptedLLM.echo("echo: ")) as orch:
        proc = await orch.spawn(Agent(name="a"))
        futures = [proc.send_async(f"m{i}") for i in range(3)]
        assert [await f.wait() for f in futures] == ["echo: m0", "echo: m1", "echo: m2"]
        assert futures[0].done() and futures[0].result() == "echo: m0"


async def test_kill_mid_call_answers_blocking_and_streaming_callers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Killing a process during an LLM call answers its callers promptly; the stream closes."""
    llm = ScriptedLLM([Step.text("never", delay=100)])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        queued = proc.send_async("queued")
        async with proc.send_stream_rich("first") as stream:
            await trio.testing.wait_all_tasks_blocked()
            proc.kill("test")
            events = [e async for e in stream]
        assert trio.current_time() == 0
        assert [e.type for e in events] == ["error"]
        assert events[0].error_class == "process_exited"  # type: ignore[union-attr]
        with pytest.raises(ProcessExited):
            await queued.wait()
        with pytest.raises(ProcessNotRunning):
            await proc.send("after")
        assert llm.open_streams == 0


async def test_leaving_the_block_answers_callers_in_other_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A caller outside the orchestrator block is answered when the block ends mid-call."""
    outcome: list[BaseException] = []
    llm = ScriptedLLM([Step.text("slow", delay=1000)])

    async def caller(proc: Any) -> None:
        try:
            await proc.send("hi")
        except vega_trio.VegaError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        async with open_orchestrator(llm=llm, shutdown_timeout=5) as orch:
            proc = await orch.spawn(Agent(name="a"))
            nursery.start_soon(caller, proc)
            await trio.testing.wait_all_tasks_blocked()
        assert trio.current_time() == 5
    assert len(outcome) == 1 and isinstance(outcome[0], ProcessExited)
    assert llm.open_streams == 0


async def test_cancelling_the_caller_cancels_the_llm_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A caller's timeout cancels the in-flight call and its stream; the process serves on."""
    llm = ScriptedLLM([Step.text("slow", delay=60), "next"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        with trio.move_on_after(1):
            async with proc.send_stream("hi") as chunks:
                async for _ in chunks:
                    pass
        assert llm.open_streams == 0
        assert await proc.send("again") == "next"
        assert trio.current_time() == 1


async def test_tools_see_the_calling_process_and_spawn_children() -> None:
    """current_process() inside a tool is the caller; spawning from a tool sets the parent."""
    seen: list[str] = []
    child_ids: list[str] = []

    async def delegate(task: str) -> str:
        """Spawn a helper for a task."""
        me = vega_trio.current_process()
        seen.append(me.id)
        child = await orch.spawn(Agent(name="helper"), reason="delegated", task=task)
        child_ids.append(child.id)
        return await child.send(task)

    llm = ScriptedLLM([Step.tool_call("delegate", {"task": "sum"}), "child says hi", "parent done"])
    async with open_orchestrator(llm=llm) as orch:
        boss = await orch.spawn(Agent(name="boss", tools=[delegate]))
        assert await boss.send("work") == "parent done"
        assert seen == [boss.id]
        tree = orch.spawn_tree()
        assert tree[0].process_id == boss.id
        assert [(c.process_id, c.spawn_reason, c.spawn_depth) for c in tree[0].children] == [
            (child_ids[0], "delegated", 1)
        ]


async def test_spawn_with_existing_history() -> None:
    """Spawning with messages continues that conversation."""
    llm = ScriptedLLM(["sure"])
    history = [Message.user("Remember 7."), Message.assistant("Noted: 7.")]
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"), messages=history)
        await proc.send("What number?")
        assert list(llm.requests[0].messages[:2]) == history
        assert len(proc.history) == 4


async def test_one_message_at_a_time_per_process() -> None:
    """Concurrent sends to one process are serialised: the second sees the first's turn."""
    llm = ScriptedLLM(["first", "second"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(proc.send, "one")
            nursery.start_soon(proc.send, "two")
        first_sent, reply, second_sent = (m.text for m in llm.requests[1].messages)
        assert reply == "first"
        assert {first_sent, second_sent} == {"one", "two"}
        assert [m.text for m in llm.requests[0].messages] == [first_sent]


async def test_unknown_model_price_is_reported_not_guessed() -> None:
    """A model missing from the price table costs nothing and is counted as unpriced."""
    llm = ScriptedLLM([Step.text("hi", usage=Usage(input_tokens=10, output_tokens=5))])
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["llm.call"]) as events:
            proc = await orch.spawn(Agent(name="a", model="my-local-model"))
            await proc.send("hello")
            event = events.receive_nowait()
    assert proc.metrics.cost_usd == 0 and proc.metrics.unpriced_calls == 1
    assert event is not None and event.data["priced"] is False  # type: ignore[union-attr]
    assert event.data["cost_usd"] is None  # type: ignore[union-attr]


async def test_dynamic_system_prompt_gets_the_process() -> None:
    """A callable system prompt is called per request, with the process if it takes one."""
    llm = ScriptedLLM(["a"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", system=lambda p: f"You are {p.id}."))
        await proc.send("hi")
        assert llm.requests[0].system == f"You are {proc.id}."


async def test_bad_send_input_is_a_clear_error() -> None:
    """Sending something that is not text or a user Message is rejected at once."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        proc = await orch.spawn(Agent(name="a"))
        with pytest.raises(TypeError, match="str or a Message"):
            await proc.send(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="role 'user'"):
            await proc.send(Message.assistant("x"))
        assert TextBlock(text="x") in Message.user("x").content


async def test_sliding_window_context_compacts_before_a_send() -> None:
    """An agent with SlidingWindowContext(compact_above=...) summarises old turns by itself."""
    from vega_trio.agent import SlidingWindowContext

    llm = ScriptedLLM(["r1", "r2", "SUMMARY-TEXT", "r3"])
    agent = Agent(name="a", context=lambda: SlidingWindowContext(2, compact_above=1))
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["context."]) as events:
            proc = await orch.spawn(agent)
            await proc.send("q1")
            await proc.send("q2")
            assert await proc.send("q3") == "r3"
            compacted = events.receive_nowait()
    assert compacted is not None and compacted.type == "context.compacted"  # type: ignore[union-attr]
    summary_call, last_call = llm.requests[2], llm.requests[3]
    assert "q1" in summary_call.messages[0].text
    assert "SUMMARY-TEXT" in last_call.messages[0].text
    assert last_call.messages[-1].text == "q3"


async def test_supervised_agent_restarts_on_retryable_llm_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With supervision, an overloaded model crashes the process, which restarts and serves
    the same message again; a non-retryable failure goes back to the caller instead."""
    from vega_trio.runtime import Backoff, Supervision

    llm = ScriptedLLM(
        [
            "first",
            Step.error(ErrorClass.OVERLOADED),
            "second",
            Step.error(ErrorClass.AUTHENTICATION),
        ]
    )
    sup = Supervision(max_restarts=2, backoff=Backoff(kind="constant", initial=0.5))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", supervision=sup, retry=None))
        assert await proc.send("one") == "first"
        assert await proc.send("two") == "second"
        assert trio.current_time() == 0.5
        assert proc.restart_count == 1
        assert [m.text for m in proc.history] == ["one", "first", "two", "second"]
        with pytest.raises(LLMError) as info:
            await proc.send("three")
        assert info.value.error_class == ErrorClass.AUTHENTICATION
        assert proc.restart_count == 1 and proc.status == vega_trio.ProcessStatus.RUNNING


async def test_agent_tool_middleware_gets_the_models_call() -> None:
    """An agent's Tools middleware sees the model's call (its tool_use id, name and
    arguments) and what it returns is the tool result the model gets."""
    seen: list[ToolCall] = []

    async def double(call: ToolCall, call_next: Any) -> Any:
        seen.append(call)
        return 2 * await call_next(call)

    tools = Tools()
    tools.register(add)
    tools.use(double)
    llm = ScriptedLLM([Step.tool_call("add", {"a": 2, "b": 3}, id="t9"), Step.text("10")])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="calc", tools=tools))
        assert await proc.send("2+3?") == "10"
    assert seen == [ToolCall(id="t9", name="add", arguments={"a": 2, "b": 3})]
    assert list(proc.history[2].content) == [ToolResultBlock(tool_use_id="t9", content="10")]


async def test_a_tools_duration_reaches_the_bus_and_the_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A tool that runs 1.5 s is reported as 1500 ms on the bus (tool.end) whether or not
    the send streams, and in the stream's tool_end event."""

    async def slow(a: int) -> int:
        """Wait, then answer."""
        await trio.sleep(1.5)
        return a

    llm = ScriptedLLM(
        [
            Step.tool_call("slow", {"a": 1}, id="s1"),
            Step.text("done"),
            Step.tool_call("slow", {"a": 2}, id="s2"),
            Step.text("done"),
        ]
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", tools=[slow]))
        with orch.subscribe(types=["tool.end"]) as ended:
            assert await proc.send("go") == "done"
            async with proc.send_stream_rich("again") as stream:
                events = [event async for event in stream]
            bus = [ended.receive_nowait(), ended.receive_nowait()]
    assert [(e.data["tool_call_id"], e.data["duration_ms"]) for e in bus] == [  # type: ignore[union-attr]
        ("s1", 1500),
        ("s2", 1500),
    ]
    (end,) = [e for e in events if isinstance(e, ToolEndEvent)]
    assert (end.tool_call_id, end.duration_ms, end.result) == ("s2", 1500, "2")
