"""The message model's JSON form: exact round trips, stable output, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega_trio.llm._messages import (
    ContentBlock,
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

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)

blocks: st.SearchStrategy[ContentBlock] = st.one_of(
    st.builds(TextBlock, text=st.text(max_size=30)),
    st.builds(
        ToolUseBlock,
        id=st.text(min_size=1, max_size=10),
        name=st.text(min_size=1, max_size=10),
        input=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    ),
    st.builds(
        ToolResultBlock,
        tool_use_id=st.text(min_size=1, max_size=10),
        content=st.text(max_size=30),
        is_error=st.booleans(),
    ),
    st.builds(ThinkingBlock, thinking=st.text(max_size=30), signature=st.text(max_size=20)),
    st.builds(RedactedThinkingBlock, data=st.text(max_size=30)),
    st.builds(
        ServerBlock,
        data=st.builds(
            lambda kind, rest: {**rest, "type": kind},
            st.sampled_from(
                [
                    "server_tool_use",
                    "web_search_tool_result",
                    "web_fetch_tool_result",
                    "code_execution_tool_result",
                    "mcp_tool_use",
                    "mcp_tool_result",
                    "container_upload",
                ]
            ),
            st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        ),
    ),
)

messages_lists = st.lists(
    st.builds(
        Message,
        role=st.sampled_from(["user", "assistant"]),
        content=st.lists(blocks, max_size=4),
    ),
    max_size=6,
)

STRUCTURAL_KEYS = {
    "role",
    "content",
    "type",
    "text",
    "id",
    "name",
    "input",
    "tool_use_id",
    "is_error",
    "thinking",
    "signature",
    "data",
}


def _structural_keys(raw: list[dict[str, Any]]) -> set[str]:
    keys: set[str] = set()
    for message in raw:
        keys |= set(message)
        for block in message["content"]:
            # NOTE: a server block's keys are the API's, kept verbatim.
            keys |= {"type"} if _is_server(block["type"]) else set(block)
    return keys


def _is_server(kind: str) -> bool:
    return kind not in {"text", "tool_use", "tool_result", "thinking", "redacted_thinking"}


@given(messages_lists)
def test_marshal_round_trips_exactly(messages: list[Message]) -> None:
    """unmarshal(marshal(m)) gives back equal messages for any conversation."""
    assert unmarshal_messages(marshal_messages(messages)) == messages


@given(messages_lists)
def test_marshal_is_stable_sorted_and_lower_case(messages: list[Message]) -> None:
    """The JSON is deterministic, has sorted keys, and only lower-case structural keys."""
    text = marshal_messages(messages)
    raw = json.loads(text)
    assert text == json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert marshal_messages(unmarshal_messages(text)) == text
    assert _structural_keys(raw) <= STRUCTURAL_KEYS


def test_marshal_writes_the_documented_form() -> None:
    """A small conversation serialises to exactly the expected compact JSON."""
    messages = [
        Message.user("héllo"),
        Message.assistant([ToolUseBlock(id="t1", name="add", input={"b": 2, "a": 1})]),
        Message.user([ToolResultBlock(tool_use_id="t1", content="3", is_error=False)]),
    ]
    assert marshal_messages(messages) == (
        '[{"content":[{"text":"héllo","type":"text"}],"role":"user"},'
        '{"content":[{"id":"t1","input":{"a":1,"b":2},"name":"add","type":"tool_use"}],'
        '"role":"assistant"},'
        '{"content":[{"content":"3","is_error":false,"tool_use_id":"t1","type":"tool_result"}],'
        '"role":"user"}]'
    )


def test_unmarshal_accepts_the_api_form() -> None:
    """String content and list-of-text tool results (the API's forms) are accepted."""
    data = json.dumps(
        [
            {"role": "user", "content": "hi"},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    }
                ],
            },
        ]
    )
    assert unmarshal_messages(data) == [
        Message.user("hi"),
        Message.user([ToolResultBlock(tool_use_id="t1", content="ab")]),
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("not json", "messages are not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"role": "user"}', "messages must be a JSON array, got dict"),
        ("[1]", "messages[0] must be an object, got int"),
        (
            '[{"role": "system", "content": "x"}]',
            "messages[0].role is 'system'; expected 'user' or 'assistant'",
        ),
        (
            '[{"role": "user", "content": 5}]',
            "messages[0].content must be a string or a list of blocks",
        ),
        (
            '[{"role": "user", "content": [{"type": "text", "text": "a"}, 7]}]',
            "messages[0].content[1] must be an object, got int",
        ),
        (
            '[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},'
            ' {"role": "user", "content": [{"type": "image"}]}]',
            "messages[2].content[0].type is 'image'; expected 'text', 'tool_use', 'tool_result', "
            "'thinking', 'redacted_thinking' or a server tool block ('server_tool_use', "
            "'<tool>_tool_result')",
        ),
        (
            '[{"role": "user", "content": "a"},'
            ' {"role": "assistant", "content": [{"type": "tool_use", "name": "add"}]}]',
            "messages[1].content[0] (tool_use) is missing the key 'id'",
        ),
        (
            '[{"role": "assistant", "content": [{"type": "text", "text": "a"},'
            ' {"type": "tool_use", "id": "t", "name": "add", "input": [1]}]}]',
            "messages[0].content[1].input must be an object, got list",
        ),
    ],
)
def test_unmarshal_errors_name_the_bad_element(data: str, error: str) -> None:
    """Malformed input raises ValueError naming the element that is wrong."""
    with pytest.raises(ValueError) as excinfo:
        unmarshal_messages(data)
    assert str(excinfo.value) == error


THINKING_TURN = Message.assistant(
    [
        ThinkingBlock(thinking="Let me search.", signature="sig=="),
        ServerBlock(
            data={
                "type": "server_tool_use",
                "id": "srvtoolu_1",
                "name": "web_search",
                "input": {"query": "trio"},
            }
        ),
        ServerBlock(
            data={
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [{"type": "web_search_result", "url": "u", "encrypted_content": "E"}],
            }
        ),
        RedactedThinkingBlock(data="ENCRYPTED"),
        TextBlock(text="Found it."),
        ToolUseBlock(id="t1", name="add", input={"a": 1}),
    ]
)


def test_thinking_and_server_blocks_keep_their_order_and_wire_form() -> None:
    """Thinking, redacted thinking and server blocks marshal to the API's form, in order,
    and come back as the same typed blocks."""
    raw = json.loads(marshal_messages([THINKING_TURN]))
    assert [b["type"] for b in raw[0]["content"]] == [
        "thinking",
        "server_tool_use",
        "web_search_tool_result",
        "redacted_thinking",
        "text",
        "tool_use",
    ]
    assert raw[0]["content"][0] == {
        "type": "thinking",
        "thinking": "Let me search.",
        "signature": "sig==",
    }
    assert raw[0]["content"][2] == THINKING_TURN.content[2].data  # type: ignore[union-attr]
    assert raw[0]["content"][3] == {"type": "redacted_thinking", "data": "ENCRYPTED"}
    assert unmarshal_messages(marshal_messages([THINKING_TURN])) == [THINKING_TURN]
    assert THINKING_TURN.text == "Found it." and len(THINKING_TURN.tool_uses) == 1


def test_a_server_block_is_a_copy_and_only_of_server_types() -> None:
    """ServerBlock copies its data (later changes to the source do not leak in) and refuses
    a type that is not a server tool block."""
    source: dict[str, Any] = {"type": "web_search_tool_result", "content": []}
    block = ServerBlock(data=source)
    source["content"].append("x")
    assert block.data == {"type": "web_search_tool_result", "content": []}
    assert block.type == "web_search_tool_result"
    with pytest.raises(ValueError, match="server block"):
        ServerBlock(data={"type": "image"})
    with pytest.raises(ValueError, match="server block"):
        ServerBlock(data={"type": "_tool_result"})
