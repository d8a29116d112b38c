"""ScriptedLLM: scripted replies, tool calls, errors, virtual-time delays and streams."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from vega_trio._errors import ErrorClass, LLMError
from vega_trio.llm._messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from vega_trio.llm._protocol import (
    LLM,
    LLMRequest,
    LLMResponse,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ToolInputChunk,
    Usage,
)
from vega_trio.testing._scripted import ScriptedLLM, ScriptExhausted, Step, ToolCall


def request(text: str = "hi", *, model: str = "claude-test", system: str = "") -> LLMRequest:
    return LLMRequest(model=model, system=system, messages=(Message.user(text),))


async def collect(llm: ScriptedLLM, req: LLMRequest) -> list[StreamChunk]:
    async with llm.stream(req) as chunks:
        return [chunk async for chunk in chunks]


async def collect_into(received: list[StreamChunk], llm: ScriptedLLM, req: LLMRequest) -> None:
    async with llm.stream(req) as chunks:
        async for chunk in chunks:
            received.append(chunk)


def test_implements_the_llm_protocol() -> None:
    """A ScriptedLLM is an LLM backend."""
    assert isinstance(ScriptedLLM(), LLM)


async def test_replies_in_script_order_and_records_requests() -> None:
    """Steps (or plain strings) answer calls in order; every request is recorded."""
    llm = ScriptedLLM(["first", Step.text("second")])
    first, second = request("a"), request("b")
    assert (await llm.generate(first)).text == "first"
    assert (await llm.generate(second)).text == "second"
    assert llm.requests == [first, second]
    assert llm.remaining == 0


async def test_text_reply_estimates_usage_deterministically() -> None:
    """Without usage=, tokens are ceil(chars / 4): system and messages in, reply out."""
    llm = ScriptedLLM([Step.text("hello world")])
    response = await llm.generate(request("12345678", system="sys"))
    assert response == LLMResponse(
        content=(TextBlock(text="hello world"),),
        model="claude-test",
        usage=Usage(input_tokens=3, output_tokens=3),
        stop_reason="end_turn",
    )


async def test_explicit_usage_is_reported() -> None:
    """usage= is reported as given."""
    usage = Usage(input_tokens=10, output_tokens=2, cache_read_input_tokens=5)
    llm = ScriptedLLM([Step.text("x", usage=usage)])
    assert (await llm.generate(request())).usage == usage


async def test_tool_call_gets_a_generated_id() -> None:
    """A tool call without id gets toolu_scripted_<request>_<index>, after optional text."""
    llm = ScriptedLLM(["ok", Step.tool_call("add", {"a": 1, "b": 2}, text="Adding.")])
    await llm.generate(request())
    response = await llm.generate(request())
    assert response.content == (
        TextBlock(text="Adding."),
        ToolUseBlock(id="toolu_scripted_2_0", name="add", input={"a": 1, "b": 2}),
    )
    assert response.stop_reason == "tool_use"


async def test_several_tool_calls_in_one_turn() -> None:
    """Step.tool_calls asks for several tools at once, keeping explicit ids."""
    llm = ScriptedLLM(
        [Step.tool_calls([("add", {"a": 1}), ToolCall(name="mul", arguments={"b": 2}, id="m1")])]
    )
    response = await llm.generate(request())
    assert response.tool_uses == (
        ToolUseBlock(id="toolu_scripted_1_0", name="add", input={"a": 1}),
        ToolUseBlock(id="m1", name="mul", input={"b": 2}),
    )
    assert response.text == ""


@pytest.mark.parametrize(
    ("error_class", "status"),
    [
        (ErrorClass.RATE_LIMIT, 429),
        (ErrorClass.OVERLOADED, 529),
        (ErrorClass.TIMEOUT, 408),
        (ErrorClass.TEMPORARY, 500),
        (ErrorClass.INVALID_REQUEST, 400),
        (ErrorClass.AUTHENTICATION, 401),
        (ErrorClass.BUDGET_EXCEEDED, 429),
    ],
)
async def test_error_class_step_raises_a_realistic_llm_error(
    error_class: ErrorClass, status: int
) -> None:
    """Step.error(ErrorClass) raises an LLMError of that class with the API's status code."""
    llm = ScriptedLLM([Step.error(error_class, retry_after=2.0)])
    with pytest.raises(LLMError) as excinfo:
        await llm.generate(request())
    error = excinfo.value
    assert (error.error_class, error.status_code, error.retry_after) == (error_class, status, 2.0)
    assert str(error) == f"scripted {error_class.value} error"
    assert error.output_started is False


async def test_error_instance_is_raised_as_given() -> None:
    """Step.error(LLMError(...)) raises that very error."""
    boom = LLMError("quota gone", error_class=ErrorClass.BUDGET_EXCEEDED)
    llm = ScriptedLLM([Step.error(boom)])
    with pytest.raises(LLMError) as excinfo:
        await llm.generate(request())
    assert excinfo.value is boom


async def test_delay_runs_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    """delay= sleeps with trio.sleep, so it takes exactly that much virtual time."""
    llm = ScriptedLLM([Step.text("slow", delay=2.5), Step.error(ErrorClass.TIMEOUT, delay=1)])
    await llm.generate(request())
    assert trio.current_time() == 2.5
    with pytest.raises(LLMError):
        await llm.generate(request())
    assert trio.current_time() == 3.5


async def test_zero_delay_does_not_even_checkpoint() -> None:
    """A step without delay answers without sleeping or yielding to the scheduler."""
    llm = ScriptedLLM(["fast"])
    with trio.testing.assert_no_checkpoints():
        await llm.generate(request())


async def test_running_out_of_script_says_what_was_asked() -> None:
    """A call after the last step raises ScriptExhausted (an LLMError) naming the request."""
    llm = ScriptedLLM(["only"])
    await llm.generate(request())
    with pytest.raises(ScriptExhausted) as excinfo:
        await llm.generate(request("what now?"))
    assert str(excinfo.value) == (
        "ScriptedLLM ran out of script: request #2 (model='claude-test', 1 message(s), "
        "last user text 'what now?') came after all 1 scripted step(s) were used. "
        "Add a Step for it, or pass responder= to answer any request."
    )
    assert excinfo.value.error_class is ErrorClass.INVALID_REQUEST
    assert not excinfo.value.retryable


async def test_responder_answers_after_the_script() -> None:
    """The responder is asked for a step once the script is used up."""
    llm = ScriptedLLM(["scripted"], responder=lambda req: f"{len(req.messages)} message(s)")
    assert (await llm.generate(request())).text == "scripted"
    assert (await llm.generate(request())).text == "1 message(s)"
    assert (await llm.generate(request())).text == "1 message(s)"


async def test_add_extends_the_script() -> None:
    """add() appends steps after the existing ones."""
    llm = ScriptedLLM(["a"])
    llm.add("b", Step.text("c"))
    assert llm.remaining == 3
    assert [(await llm.generate(request())).text for _ in range(3)] == ["a", "b", "c"]


async def test_echo_repeats_the_latest_user_text() -> None:
    """ScriptedLLM.echo() replies with the prefix and the latest user turn that has text."""
    llm = ScriptedLLM.echo("you said: ")
    history = (
        Message.user("hello"),
        Message.assistant([ToolUseBlock(id="t", name="f")]),
        Message.user([ToolResultBlock(tool_use_id="t", content="r")]),
    )
    response = await llm.generate(LLMRequest(model="m", messages=history))
    assert response.text == "you said: hello"


async def test_stream_splits_text_into_words_then_completes() -> None:
    """By default a stream yields one chunk per word (with its leading space), then the
    same response generate() would give."""
    llm = ScriptedLLM(["Hello big  world", "Hello big  world"])
    chunks = await collect(llm, request())
    expected = await llm.generate(request())
    assert chunks == [
        TextChunk(text="Hello"),
        TextChunk(text=" big"),
        TextChunk(text="  world"),
        MessageComplete(response=expected),
    ]


async def test_stream_chunk_size_and_explicit_chunks() -> None:
    """chunk_size= cuts fixed-size pieces; chunks= streams exactly the given pieces."""
    llm = ScriptedLLM([Step.text("abcdefg", chunk_size=3), Step.text("abc", chunks=["a", "bc"])])
    first = await collect(llm, request())
    second = await collect(llm, request())
    assert [c.text for c in first if isinstance(c, TextChunk)] == ["abc", "def", "g"]
    assert [c.text for c in second if isinstance(c, TextChunk)] == ["a", "bc"]


async def test_stream_tool_calls_yield_input_chunks() -> None:
    """Tool calls stream their JSON arguments as ToolInputChunks indexed by content block."""
    llm = ScriptedLLM([Step.tool_calls([("add", {"a": 1}), ("neg", {})], text="Hm", chunk_size=4)])
    chunks = await collect(llm, request())
    assert chunks[:-1] == [
        TextChunk(text="Hm"),
        ToolInputChunk(
            index=1, tool_use_id="toolu_scripted_1_0", tool_name="add", partial_json='{"a"'
        ),
        ToolInputChunk(
            index=1, tool_use_id="toolu_scripted_1_0", tool_name="add", partial_json=":1}"
        ),
        ToolInputChunk(
            index=2, tool_use_id="toolu_scripted_1_1", tool_name="neg", partial_json="{}"
        ),
    ]
    final = chunks[-1]
    assert isinstance(final, MessageComplete)
    assert [u.name for u in final.response.tool_uses] == ["add", "neg"]


async def test_stream_delays_run_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    """delay= elapses before the stream opens and chunk_delay= between chunks."""
    llm = ScriptedLLM([Step.text("a b c", delay=1, chunk_delay=0.5)])
    times: list[float] = []
    async with llm.stream(request()) as chunks:
        times.append(trio.current_time())
        async for _ in chunks:
            times.append(trio.current_time())
    assert times == [1.0, 1.0, 1.5, 2.0, 2.5]


async def test_error_before_output_fails_when_the_stream_opens() -> None:
    """An error step fails on entering the stream, as an HTTP error would."""
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED)])
    with pytest.raises(LLMError) as excinfo:
        async with llm.stream(request()):
            pytest.fail("the stream must not open")  # pragma: no cover
    assert excinfo.value.output_started is False
    assert llm.open_streams == 0


async def test_mid_stream_error_comes_after_the_partial_text() -> None:
    """partial_text streams first, then the error arrives with output_started=True."""
    llm = ScriptedLLM([Step.error(ErrorClass.TEMPORARY, "connection reset", partial_text="Hal f")])
    received: list[StreamChunk] = []
    with pytest.raises(LLMError) as excinfo:
        await collect_into(received, llm, request())
    assert received == [TextChunk(text="Hal"), TextChunk(text=" f")]
    assert str(excinfo.value) == "connection reset"
    assert excinfo.value.output_started is True
    assert not excinfo.value.retryable


async def test_cancelling_a_stream_closes_it_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling the consumer between chunks leaves no stream open and nothing to finalise."""
    llm = ScriptedLLM([Step.text("one two three", chunk_delay=10)])
    received: list[StreamChunk] = []
    with trio.move_on_after(15) as scope:
        async with llm.stream(request()) as chunks:
            assert llm.open_streams == 1
            async for chunk in chunks:
                received.append(chunk)
    assert scope.cancelled_caught
    assert received == [TextChunk(text="one"), TextChunk(text=" two")]
    assert llm.open_streams == 0
    assert trio.current_time() == 15


async def test_leaving_a_stream_early_is_clean() -> None:
    """Breaking out after the first chunk closes the stream."""
    llm = ScriptedLLM(["a b c"])
    async with llm.stream(request()) as chunks:
        async for chunk in chunks:
            assert chunk == TextChunk(text="a")
            break
    assert llm.open_streams == 0


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Step.text("x", delay=-1), "Step delay=-1 is negative; use seconds >= 0"),
        (
            lambda: Step.text("x", chunk_delay=-0.5),
            "Step chunk_delay=-0.5 is negative; use seconds >= 0",
        ),
        (
            lambda: Step.text("x", chunk_size=0),
            "Step chunk_size=0 must be at least 1 (characters per chunk)",
        ),
        (
            lambda: Step.text("abc", chunks=["a", "b"]),
            "Step chunks ['a', 'b'] do not join to its text 'abc'",
        ),
        (
            lambda: Step.tool_calls([]),
            "Step.tool_calls needs at least one call; use Step.text for none",
        ),
    ],
)
def test_bad_steps_are_refused(build: object, error: str) -> None:
    """Invalid step settings raise ValueError saying what to use instead."""
    with pytest.raises(ValueError) as excinfo:
        build()  # type: ignore[operator]
    assert str(excinfo.value) == error


def test_script_items_must_be_steps_or_strings() -> None:
    """Anything else in a script is refused with a hint."""
    with pytest.raises(TypeError) as excinfo:
        ScriptedLLM([42])  # type: ignore[list-item]
    assert str(excinfo.value) == (
        "a ScriptedLLM script holds Step objects or strings, got int; "
        "build steps with Step.text(...), Step.tool_call(...) or Step.error(...)"
    )


async def test_a_step_may_think_first() -> None:
    """Step(thinking=...) starts the reply with a signed ThinkingBlock (streamed as one
    ThinkingChunk, never as text); an agent keeps it in its history and sends it back."""
    from vega_trio import Agent, open_orchestrator
    from vega_trio.agent import TextDeltaEvent
    from vega_trio.llm import ThinkingBlock, ThinkingChunk

    llm = ScriptedLLM(
        [Step.tool_call("add", {"a": 1}, thinking="I need add."), Step.text("2", thinking="ok")]
    )

    def add(a: int) -> str:
        """Add one.

        Args:
            a: the number.
        """
        return str(a + 1)

    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", tools=[add]))
        async with proc.send_stream_rich("hi") as stream:
            events = [event async for event in stream]
    assert "".join(e.delta for e in events if isinstance(e, TextDeltaEvent)) == "2"
    thought = ThinkingBlock(thinking="I need add.", signature="scripted-signature-1")
    assert llm.requests[1].messages[1].content[0] == thought
    assert proc.history[1].content[0] == thought
    async with ScriptedLLM([Step.text("x", thinking="hm")]).stream(llm.requests[0]) as chunks:
        received = [c async for c in chunks]
    assert received[0] == ThinkingChunk(thinking="hm")
