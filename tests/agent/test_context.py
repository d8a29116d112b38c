"""Context managers: API-valid trimming, token accounting, windows and compaction."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Sequence

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from vega_trio._errors import ErrorClass, LLMError
from vega_trio.agent._context import (
    SUMMARY_PREFIX,
    ContextManager,
    SlidingWindowContext,
    TokenBudgetContext,
    UnboundedContext,
    estimate_message_tokens,
    estimate_tokens,
)
from vega_trio.llm._messages import (
    Message,
    RedactedThinkingBlock,
    ServerBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    marshal_messages,
    unmarshal_messages,
)
from vega_trio.llm._protocol import LLMRequest, Usage
from vega_trio.testing._scripted import ScriptedLLM, Step

# -- helpers ---------------------------------------------------------------------------


def user(tokens: int, tag: str = "u") -> Message:
    """A user turn estimated at exactly ``tokens`` tokens (4 characters each)."""
    return Message.user(tag * (4 * tokens))


def assistant(tokens: int, tag: str = "a") -> Message:
    return Message.assistant(tag * (4 * tokens))


def tool_use(call_id: str, tokens: int = 1) -> Message:
    # name "f" (1 char) + '{"x":"' ... '"}' (8 chars) + padding = 4 * tokens chars
    return Message.assistant(
        [ToolUseBlock(id=call_id, name="f", input={"x": "p" * (4 * tokens - 9)})]
    )


def tool_result(call_id: str, tokens: int = 1) -> Message:
    return Message.user([ToolResultBlock(tool_use_id=call_id, content="r" * (4 * tokens))])


def assert_api_valid(messages: Sequence[Message]) -> None:
    """What the Anthropic Messages API accepts: a non-empty list that starts with a user
    turn carrying no tool results, alternates roles, and answers each turn's tool calls
    in the next turn (the last turn may still await its results)."""
    assert messages, "an empty message list"
    assert messages[0].role == "user", "the first turn is not a user turn"
    assert not messages[0].tool_results, "the first turn is a dangling tool_result"
    for before, after in itertools.pairwise(messages):
        assert before.role != after.role, "roles do not alternate"
    for i, message in enumerate(messages):
        if message.tool_results:
            asked = {u.id for u in messages[i - 1].tool_uses}
            assert {r.tool_use_id for r in message.tool_results} <= asked, "orphan tool_result"
        if message.tool_uses and i + 1 < len(messages):
            answered = {r.tool_use_id for r in messages[i + 1].tool_results}
            assert {u.id for u in message.tool_uses} == answered, "tool_use split from its result"


def assert_suffix(part: Sequence[Message], whole: Sequence[Message]) -> None:
    assert len(part) <= len(whole)
    tail = whole[len(whole) - len(part) :]
    assert all(a is b for a, b in zip(part, tail, strict=True)), "not a suffix of the original"


def clean_starts(messages: Sequence[Message]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.role == "user" and not m.tool_results]


text_st = st.text(alphabet="ab cd", min_size=1, max_size=60)
REDACTED = RedactedThinkingBlock(data="ENCRYPTED==")
SERVER_PAIR = (
    ServerBlock(
        data={"type": "server_tool_use", "id": "srv1", "name": "web_search", "input": {"q": "x"}}
    ),
    ServerBlock(data={"type": "web_search_tool_result", "tool_use_id": "srv1", "content": []}),
)


def _thought(text: str) -> ThinkingBlock:
    return ThinkingBlock(thinking=text, signature="sig")


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Valid conversations: user turns, rounds of tool calls with their results, and
    assistant answers; the last round may stop at any turn."""
    ids = itertools.count()
    messages: list[Message] = []
    rounds = draw(st.integers(1, 6))
    for r in range(rounds):
        messages.append(Message.user(draw(text_st)))
        for _ in range(draw(st.integers(0, 3))):
            call_ids = [f"t{next(ids)}" for _ in range(draw(st.integers(1, 3)))]
            preamble = [TextBlock(text=draw(text_st))] if draw(st.booleans()) else []
            # NOTE: thinking (first, as the API sends it) and server tool blocks ride in
            # the assistant turn: trimming must keep them with its tool calls.
            thinking = draw(st.sampled_from([[], [_thought(draw(text_st))], [REDACTED]]))
            server = [*SERVER_PAIR] if draw(st.booleans()) else []
            uses = [ToolUseBlock(id=c, name="f", input={"q": draw(text_st)}) for c in call_ids]
            messages.append(Message.assistant([*thinking, *server, *preamble, *uses]))
            results = [ToolResultBlock(tool_use_id=c, content=draw(text_st)) for c in call_ids]
            messages.append(Message.user(results))
        if r < rounds - 1 or draw(st.booleans()):
            messages.append(Message.assistant(draw(text_st)))
    return messages


def expected_budget_start(messages: Sequence[Message], budget: int) -> int:
    """The oracle: the earliest clean start whose suffix fits, else the latest one."""
    starts = clean_starts(messages)
    for start in starts:
        if sum(estimate_message_tokens(m) for m in messages[start:]) <= budget:
            return start
    return starts[-1]


# -- estimates -------------------------------------------------------------------------


def test_estimates_are_four_characters_per_token_rounded_up() -> None:
    """Text costs ceil(len / 4) tokens; a turn counts text, tool calls and results."""
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    assert estimate_message_tokens(Message.user("")) == 1
    # "add" + '{"a":1}' = 10 characters -> 3 tokens
    use = Message.assistant([ToolUseBlock(id="t", name="add", input={"a": 1})])
    assert estimate_message_tokens(use) == 3
    assert estimate_message_tokens(tool_result("t", 5)) == 5


def test_every_context_is_a_context_manager() -> None:
    """The three implementations satisfy the ContextManager protocol."""
    for context in (UnboundedContext(), TokenBudgetContext(10), SlidingWindowContext(4)):
        assert isinstance(context, ContextManager)


# -- UnboundedContext --------------------------------------------------------------------


def test_unbounded_keeps_everything() -> None:
    """add/messages/snapshot keep every turn; load replaces; clear forgets."""
    context = UnboundedContext()
    turns = [user(100), assistant(100), user(100)]
    for turn in turns:
        context.add(turn)
    assert context.messages() == turns == context.snapshot()
    assert context.token_count() == 300
    context.load([user(1, "x")])
    assert context.messages() == [user(1, "x")]
    context.clear()
    assert context.messages() == [] and context.token_count() == 0


def test_add_refuses_non_messages() -> None:
    """Adding a plain string is a TypeError that says how to wrap it."""
    with pytest.raises(TypeError) as excinfo:
        UnboundedContext().add("hello")  # type: ignore[arg-type]
    assert str(excinfo.value) == (
        "a context holds Message objects, got str; "
        "wrap text with Message.user(...) or Message.assistant(...)"
    )


def test_unbounded_is_thread_safe() -> None:
    """Turns added from many threads at once are all kept."""
    context = UnboundedContext()

    def worker(tag: str) -> None:
        for _ in range(200):
            context.add(Message.user(tag))

    threads = [threading.Thread(target=worker, args=(str(i),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(context.snapshot()) == 1600
    assert context.token_count() == 1600


# -- TokenBudgetContext ------------------------------------------------------------------


def test_budget_drops_the_oldest_turns() -> None:
    """Once over budget, the oldest exchange goes and the rest fits."""
    context = TokenBudgetContext(30)
    turns = [user(10, "1"), assistant(10, "2"), user(10, "3"), assistant(10, "4")]
    for turn in turns:
        context.add(turn)
    assert context.messages() == turns[2:]
    assert context.snapshot() == turns[2:]
    assert context.token_count() == 20


def test_budget_never_splits_a_tool_call_from_its_result() -> None:
    """Trimming skips past tool results to the next plain user turn."""
    turns = [
        user(10),
        tool_use("t1", 10),
        tool_result("t1", 10),
        assistant(10),
        user(10, "q"),
        assistant(10, "A"),
    ]
    context = TokenBudgetContext(45)
    context.load(turns)
    # Dropping just the first turn would start at the tool call (40 tokens left);
    # the first valid start that fits is the second question.
    assert context.messages() == turns[4:]


def test_budget_keeps_the_current_question_even_when_over() -> None:
    """When even the latest exchange is over budget it is kept rather than emptied."""
    turns = [user(5), assistant(5), user(50), tool_use("t", 20), tool_result("t", 20)]
    context = TokenBudgetContext(10)
    context.load(turns)
    assert context.messages() == turns[2:]
    assert context.token_count() == 90


def test_budget_must_be_positive() -> None:
    """A budget of zero tokens is refused."""
    with pytest.raises(ValueError):
        TokenBudgetContext(0)


def test_reported_usage_replaces_estimates() -> None:
    """record_usage turns the API's prompt tokens into exact counts, and the budget uses
    them; tokens of prompt turns not in the context (uncommitted) are left out."""
    context = TokenBudgetContext(200)
    first, second = user(10), assistant(10)
    context.add(first)
    context.add(second)
    pending = user(5, "p")
    # 95 prompt tokens: 5 estimated for the pending turn, 90 shared 10:10 over the two.
    usage = Usage(input_tokens=60, cache_creation_input_tokens=20, cache_read_input_tokens=15)
    context.record_usage([*context.messages(), pending], usage)
    assert context.token_count() == 90
    context.add(pending)
    # The next report only has the new turn left to learn: 150 - 90 known = 60.
    context.record_usage(context.messages(), Usage(input_tokens=150))
    assert context.token_count() == 150
    context.add(user(60, "n"))  # 210 > 200: the first exchange (90) goes
    assert context.messages() == [pending, user(60, "n")]
    assert context.token_count() == 120


def test_reported_usage_for_a_dropped_prompt_changes_nothing() -> None:
    """A report whose turns are all already exact (a retry) leaves the counts alone."""
    context = UnboundedContext()
    context.add(user(10))
    prompt = context.messages()
    context.record_usage(prompt, Usage(input_tokens=40))
    context.record_usage(prompt, Usage(input_tokens=999))
    assert context.token_count() == 40


@given(conversations(), st.integers(1, 200))
def test_loaded_budget_is_api_valid_suffix_that_fits(messages: list[Message], budget: int) -> None:
    """For any valid conversation and budget, the kept turns are an API-valid suffix:
    the longest one that fits, or the shortest one when none fits."""
    context = TokenBudgetContext(budget)
    context.load(messages)
    kept = context.messages()
    assert_api_valid(kept)
    assert_suffix(kept, messages)
    assert len(kept) == len(messages) - expected_budget_start(messages, budget)


@given(conversations(), st.integers(1, 200))
def test_growing_budget_stays_api_valid(messages: list[Message], budget: int) -> None:
    """Adding turns one by one, every intermediate history is an API-valid suffix that
    fits the budget whenever any valid suffix could."""
    context = TokenBudgetContext(budget)
    for n, message in enumerate(messages, start=1):
        context.add(message)
        kept = context.messages()
        assert_api_valid(kept)
        assert_suffix(kept, messages[:n])
        latest = clean_starts(messages[:n])[-1]
        if sum(estimate_message_tokens(m) for m in messages[latest:n]) <= budget:
            assert context.token_count() <= budget


# -- SlidingWindowContext ---------------------------------------------------------------


def test_window_sends_the_last_messages() -> None:
    """messages() is the last `window` turns; snapshot() keeps everything."""
    turns = [user(1, c) if i % 2 == 0 else assistant(1, c) for i, c in enumerate("abcdef")]
    context = SlidingWindowContext(3)
    context.load(turns)
    # The last 3 start with an assistant turn, so the window moves on to the user turn.
    assert context.messages() == turns[4:]
    context.add(user(1, "g"))
    assert context.messages() == [*turns[4:], user(1, "g")]
    assert context.snapshot() == [*turns, user(1, "g")]


def test_window_reaches_back_for_the_question() -> None:
    """With no plain user turn inside the window, it reaches back to the latest one."""
    turns = [user(1), tool_use("t1"), tool_result("t1"), tool_use("t2"), tool_result("t2")]
    context = SlidingWindowContext(2)
    context.load(turns)
    assert context.messages() == turns


def test_window_must_be_positive() -> None:
    """A window of zero messages is refused."""
    with pytest.raises(ValueError):
        SlidingWindowContext(0)


@given(conversations(), st.integers(1, 12))
def test_window_is_api_valid_suffix(messages: list[Message], window: int) -> None:
    """For any valid conversation, the window is an API-valid suffix, at most `window`
    long unless it had to reach back to the latest plain user turn."""
    context = SlidingWindowContext(window)
    context.load(messages)
    sent = context.messages()
    assert_api_valid(sent)
    assert_suffix(sent, messages)
    inside = [s for s in clean_starts(messages) if s >= len(messages) - window]
    if inside:
        assert len(sent) == len(messages) - inside[0]
    else:
        assert len(sent) == len(messages) - clean_starts(messages)[-1]


def _long_conversation() -> list[Message]:
    return [
        Message.user("My name is Ada."),
        Message.assistant("Hello Ada."),
        Message.user("Add 2 and 3."),
        Message.assistant([ToolUseBlock(id="t1", name="add", input={"a": 2, "b": 3})]),
        Message.user([ToolResultBlock(tool_use_id="t1", content="5")]),
        Message.assistant("It is 5."),
        Message.user("Thanks!"),
        Message.assistant("You're welcome."),
    ]


async def test_compact_summarises_older_turns() -> None:
    """compact() sends the older turns as a transcript and injects the reply as a summary
    merged into the first user turn of the window."""
    turns = _long_conversation()
    context = SlidingWindowContext(2)
    context.load(turns)
    llm = ScriptedLLM(["Ada added 2 and 3 (5)."])
    assert await context.compact(llm, model="claude-haiku-4-5") is True
    (request,) = llm.requests
    assert request.model == "claude-haiku-4-5"
    assert request.messages[0].text == (
        "Summarise the earlier part of a conversation between a user and an assistant.\n"
        "\n"
        "Transcript:\n"
        "User: My name is Ada.\n"
        "Assistant: Hello Ada.\n"
        "User: Add 2 and 3.\n"
        'Assistant called tool add [t1] with {"a":2,"b":3}\n'
        "Tool call [t1] returned: 5\n"
        "Assistant: It is 5."
    )
    assert context.summary == "Ada added 2 and 3 (5)."
    sent = context.messages()
    assert sent == [
        Message.user(
            [
                TextBlock(text=SUMMARY_PREFIX + "Ada added 2 and 3 (5)."),
                TextBlock(text="Thanks!"),
            ]
        ),
        Message.assistant("You're welcome."),
    ]
    assert_api_valid(sent)
    assert context.snapshot() == sent


async def test_second_compaction_includes_the_previous_summary() -> None:
    """A later compaction summarises the old summary together with newer old turns."""
    context = SlidingWindowContext(2)
    context.load(
        [*_long_conversation()[:4], Message.user([ToolResultBlock(tool_use_id="t1", content="5")])]
    )
    llm = ScriptedLLM(["S1", "S2"])
    assert await context.compact(llm, model="m")
    context.add(Message.assistant("It is 5."))
    context.add(Message.user("Next?"))
    assert await context.compact(llm, model="m")
    assert llm.requests[1].messages[0].text == (
        "Summarise the earlier part of a conversation between a user and an assistant.\n"
        "\n"
        "Summary of what came before it:\n"
        "S1\n"
        "\n"
        "Transcript:\n"
        "User: Add 2 and 3.\n"
        'Assistant called tool add [t1] with {"a":2,"b":3}\n'
        "Tool call [t1] returned: 5\n"
        "Assistant: It is 5."
    )
    assert context.messages() == [
        Message.user([TextBlock(text=SUMMARY_PREFIX + "S2"), TextBlock(text="Next?")])
    ]


async def test_compact_with_nothing_older_than_the_window_does_nothing() -> None:
    """With every turn inside the window, compact() makes no call and returns False."""
    context = SlidingWindowContext(10)
    context.load(_long_conversation())
    llm = ScriptedLLM()
    assert await context.compact(llm, model="m") is False
    assert llm.requests == []


async def test_compact_keeps_turns_added_during_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No lock is held while the model writes: turns added meanwhile are kept."""
    context = SlidingWindowContext(2)
    context.load(_long_conversation())
    lock_free_during_call: list[bool] = []

    def respond(request: LLMRequest) -> Step:
        lock_free_during_call.append(not context._lock.locked())
        return Step.text("summary", delay=1)

    async def talk() -> None:
        await trio.sleep(0.5)
        context.add(Message.user("More?"))
        context.add(Message.assistant("Sure."))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(talk)
        assert await context.compact(ScriptedLLM(responder=respond), model="m") is True
    assert lock_free_during_call == [True]
    assert context.snapshot() == [
        Message.user([TextBlock(text=SUMMARY_PREFIX + "summary"), TextBlock(text="Thanks!")]),
        Message.assistant("You're welcome."),
        Message.user("More?"),
        Message.assistant("Sure."),
    ]


async def test_compact_discards_its_result_after_a_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A load() (or clear()) while the summary is written wins: the summary is dropped."""
    context = SlidingWindowContext(2)
    context.load(_long_conversation())
    replacement = [Message.user("fresh start")]

    async def reload() -> None:
        await trio.sleep(0.5)
        context.load(replacement)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reload)
        llm = ScriptedLLM([Step.text("stale", delay=1)])
        assert await context.compact(llm, model="m") is False
    assert context.summary is None
    assert context.snapshot() == replacement


async def test_failed_compaction_changes_nothing() -> None:
    """If the summary call fails, the error propagates and the history is untouched."""
    context = SlidingWindowContext(2)
    context.load(_long_conversation())
    with pytest.raises(LLMError):
        await context.compact(ScriptedLLM([Step.error(ErrorClass.OVERLOADED)]), model="m")
    assert context.snapshot() == _long_conversation()
    assert context.summary is None


async def test_empty_summary_changes_nothing() -> None:
    """A blank reply is not accepted as a summary."""
    context = SlidingWindowContext(2)
    context.load(_long_conversation())
    assert await context.compact(ScriptedLLM(["  "]), model="m") is False
    assert context.snapshot() == _long_conversation()


def test_needs_compaction_counts_retained_tokens() -> None:
    """needs_compaction is true only above the threshold and with turns to summarise."""
    context = SlidingWindowContext(2)
    context.load([user(10), assistant(10), user(10), assistant(10)])
    assert context.token_count() == 40
    assert context.needs_compaction(39) is True
    assert context.needs_compaction(40) is False
    wide = SlidingWindowContext(10)
    wide.load([user(10), assistant(10), user(10), assistant(10)])
    assert wide.needs_compaction(1) is False


async def test_snapshot_round_trips_through_json_and_load() -> None:
    """A compacted context's snapshot, marshalled and loaded, restores summary and turns."""
    context = SlidingWindowContext(2)
    context.load(_long_conversation())
    await context.compact(ScriptedLLM(["Ada, 2+3=5."]), model="m")
    restored = SlidingWindowContext(2)
    restored.load(unmarshal_messages(marshal_messages(context.snapshot())))
    assert restored.summary == "Ada, 2+3=5."
    assert restored.messages() == context.messages()
    assert restored.snapshot() == context.snapshot()
    assert restored.token_count() == context.token_count()


def test_summary_alone_is_a_valid_prompt() -> None:
    """A snapshot holding only a summary restores to a lone summary user turn."""
    context = SlidingWindowContext(2)
    context.load([Message.user(SUMMARY_PREFIX + "all of it")])
    assert context.summary == "all of it"
    assert context.messages() == [Message.user(SUMMARY_PREFIX + "all of it")]
    context.clear()
    assert context.summary is None and context.messages() == []


async def test_usage_of_the_summarised_turn_counts_for_it() -> None:
    """Reported usage for a prompt whose first turn carries the summary is attributed
    to that turn, minus the summary's own estimate."""
    context = SlidingWindowContext(2)
    context.load([user(10), assistant(10), user(10, "q"), assistant(10, "r")])
    await context.compact(ScriptedLLM(["S" * 40]), model="m")  # summary + prefix ~ 19 tokens
    summary_tokens = estimate_tokens(SUMMARY_PREFIX + "S" * 40)
    assert context.token_count() == 20 + summary_tokens
    context.record_usage(context.messages(), Usage(input_tokens=summary_tokens + 50))
    assert context.token_count() == 50 + summary_tokens


@given(conversations(), st.integers(1, 8))
def test_compacted_window_is_api_valid(messages: list[Message], window: int) -> None:
    """For any valid conversation, after compaction the sent list is API-valid, carries
    the summary first, and the rest is a suffix of the original turns."""
    context = SlidingWindowContext(window)
    context.load(messages)
    before = context.messages()
    compacted = trio.run(
        functools.partial(context.compact, ScriptedLLM(["the summary"]), model="m")
    )
    sent = context.messages()
    assert_api_valid(sent)
    if not compacted:
        assert sent == before
        return
    head = sent[0].content[0]
    assert head == TextBlock(text=SUMMARY_PREFIX + "the summary")
    rest = [Message.user(sent[0].content[1:]), *sent[1:]] if len(sent[0].content) > 1 else sent[1:]
    assert rest == before


def test_thinking_and_server_blocks_are_estimated() -> None:
    """Thinking text, redacted data and server blocks' JSON count toward a turn's tokens."""
    assert estimate_message_tokens(Message.assistant([_thought("t" * 40)])) == 10
    assert estimate_message_tokens(Message.assistant([RedactedThinkingBlock(data="d" * 8)])) == 2
    block = SERVER_PAIR[1]
    expected = -(-len('{"content":[],"tool_use_id":"srv1","type":"web_search_tool_result"}') // 4)
    assert estimate_message_tokens(Message.assistant([block])) == expected


async def test_compaction_summarises_server_blocks_but_not_thinking() -> None:
    """The transcript for a summary shows server tool blocks and leaves private thinking
    out; the turns kept in the window keep their thinking blocks untouched."""
    kept = Message.assistant([_thought("keep me"), TextBlock(text="Bye.")])
    turns = [
        Message.user("Search it."),
        Message.assistant([_thought("secret plan"), *SERVER_PAIR, TextBlock(text="Found.")]),
        Message.user("Thanks"),
        kept,
    ]
    context = SlidingWindowContext(2)
    context.load(turns)
    llm = ScriptedLLM(["They searched."])
    assert await context.compact(llm, model="m") is True
    transcript = llm.requests[0].messages[0].text
    assert "secret plan" not in transcript
    assert "Assistant's server tool block (server_tool_use):" in transcript
    assert "web_search_tool_result" in transcript
    assert context.messages()[-1] is kept
