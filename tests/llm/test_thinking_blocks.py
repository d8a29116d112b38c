"""Thinking and server-tool blocks (SPEC §1.3, §4): the real anthropic SDK against the fake
server keeps them in the reply (blocking and SSE), never as text, and sends them back
verbatim, in order, on the next request; an agent's restored history stays valid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import Agent, open_orchestrator
from vega_trio.agent import TextDeltaEvent
from vega_trio.llm import (
    AnthropicLLM,
    LLMRequest,
    Message,
    MessageComplete,
    RedactedThinkingBlock,
    ServerBlock,
    TextBlock,
    TextChunk,
    ThinkingBlock,
    ThinkingChunk,
    ToolUseBlock,
    marshal_messages,
    unmarshal_messages,
)
from vega_trio.llm._messages import message_to_dict
from vega_trio.testing import FakeResponse, open_fake_anthropic_server

KEY = "sk-ant-test-key"

SEARCH = ServerBlock(
    data={
        "type": "server_tool_use",
        "id": "srvtoolu_01",
        "name": "web_search",
        "input": {"query": "trio structured concurrency"},
    }
)
RESULTS = ServerBlock(
    data={
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://trio.readthedocs.io",
                "title": "Trio",
                "encrypted_content": "EqgfCioIARgBIiQ3YTAw",
                "page_age": None,
            }
        ],
    }
)
THOUGHT = FakeResponse.thinking_block("The user wants sources. I should search first.")
REDACTED = RedactedThinkingBlock(data="EmwKAhgBEgy3va3pzix/LafPsn4a")
CONTENT = (THOUGHT, SEARCH, RESULTS, REDACTED, TextBlock(text="Trio is a library."))


@pytest.fixture(autouse=True)
def clean_anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ANTHROPIC_* variable or on-disk profile of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


def _request(*messages: Message) -> LLMRequest:
    return LLMRequest(model="claude-test", messages=messages or (Message.user("hi"),))


async def test_a_blocking_reply_keeps_thinking_and_server_blocks_in_order() -> None:
    """generate() returns every block the API sent, typed, in order; the text is only text."""
    async with (
        open_fake_anthropic_server(FakeResponse.message(CONTENT)) as server,
        AnthropicLLM(api_key=KEY, base_url=server.base_url) as llm,
    ):
        with trio.fail_after(10):
            response = await llm.generate(_request())
    assert response.content == CONTENT
    assert response.text == "Trio is a library."


async def test_a_stream_assembles_thinking_and_keeps_server_blocks() -> None:
    """thinking_delta and signature_delta build the thinking block (as ThinkingChunks, never
    text); server_tool_use input fragments and whole result blocks are kept verbatim."""
    reply = FakeResponse.message(CONTENT, text_chunks=4, json_fragments=5)
    async with (
        open_fake_anthropic_server(reply) as server,
        AnthropicLLM(api_key=KEY, base_url=server.base_url) as llm,
    ):
        with trio.fail_after(10):
            async with llm.stream(_request()) as stream:
                chunks = [chunk async for chunk in stream]
    thinking = [c.thinking for c in chunks if isinstance(c, ThinkingChunk)]
    assert len(thinking) == 4 and "".join(thinking) == THOUGHT.thinking
    assert "".join(c.text for c in chunks if isinstance(c, TextChunk)) == "Trio is a library."
    complete = chunks[-1]
    assert isinstance(complete, MessageComplete)
    assert complete.response.content == CONTENT


@pytest.mark.parametrize("stream", [False, True])
async def test_the_blocks_go_back_verbatim_on_the_next_request(stream: bool) -> None:
    """An agent's next request carries the assistant turn exactly as the API sent it
    (thinking with its signature, server blocks, in order), so a tool round with thinking
    is valid; the fake server refuses a thinking block whose signature does not match."""
    server_tool_turn = (
        THOUGHT,
        SEARCH,
        RESULTS,
        ToolUseBlock(id="toolu_1", name="note", input={"text": "x"}),
    )
    replies = [FakeResponse.message(server_tool_turn), FakeResponse.text("done")]

    def note(text: str) -> str:
        """Take a note.

        Args:
            text: the note.
        """
        return "noted"

    async with (
        open_fake_anthropic_server(*replies) as server,
        AnthropicLLM(api_key=KEY, base_url=server.base_url) as llm,
        open_orchestrator(llm=llm) as orch,
    ):
        proc = await orch.spawn(Agent(name="a", model="claude-test", tools=[note]))
        with trio.fail_after(10):
            if stream:
                async with proc.send_stream_rich("search") as events:
                    seen = [event async for event in events]
                text = "".join(e.delta for e in seen if isinstance(e, TextDeltaEvent))
            else:
                text = await proc.send("search")
        history = proc.history
    assert text == "done"
    second = server.requests[1].body["messages"]
    assert second[1] == message_to_dict(Message.assistant(server_tool_turn))
    assert second[1]["content"][0]["signature"] == THOUGHT.signature
    assert [b["type"] for b in second[1]["content"]] == [
        "thinking",
        "server_tool_use",
        "web_search_tool_result",
        "tool_use",
    ]
    # the history keeps the typed blocks and survives a JSON round trip
    assert history[1].content == server_tool_turn
    assert unmarshal_messages(marshal_messages(history)) == history


async def test_a_restored_conversation_with_thinking_is_accepted() -> None:
    """A conversation restored from JSON sends its thinking blocks back unchanged (the fake
    server checks the signature, as the API does); a tampered one is refused."""
    turn = Message.assistant(CONTENT)
    restored = unmarshal_messages(marshal_messages([Message.user("q"), turn]))
    tampered = Message.assistant(
        [ThinkingBlock(thinking="edited", signature=THOUGHT.signature), *CONTENT[1:]]
    )
    async with (
        open_fake_anthropic_server(FakeResponse.text("ok")) as server,
        AnthropicLLM(api_key=KEY, base_url=server.base_url) as llm,
    ):
        with trio.fail_after(10):
            response = await llm.generate(_request(*restored, Message.user("more")))
            with pytest.raises(Exception, match="Invalid `signature`"):
                await llm.generate(_request(Message.user("q"), tampered, Message.user("more")))
    assert response.text == "ok"
    sent: dict[str, Any] = server.requests[0].body["messages"][1]
    assert sent == message_to_dict(turn)


def test_the_openai_backend_omits_thinking_and_server_blocks() -> None:
    """An assistant turn with thinking and server blocks maps to Chat Completions as its
    text and tool calls only (the other blocks have no form there)."""
    from vega_trio.llm._openai import chat_messages

    turn = Message.assistant([*CONTENT, ToolUseBlock(id="t1", name="add", input={"a": 1})])
    assert chat_messages("", (Message.user("q"), turn)) == [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "Trio is a library.",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1}'},
                }
            ],
        },
    ]
