"""The conversation model: messages made of typed content blocks.

History keeps structured turns (text, tool_use, tool_result) so that a resumed
conversation is valid for the API. :func:`marshal_messages` and
:func:`unmarshal_messages` round-trip it exactly through stable, lower-case JSON.

The API's own blocks of an assistant turn are kept too, so they can be sent back
unchanged (in their order) on the next request, as the API requires for extended
thinking with tool use: :class:`ThinkingBlock` (``thinking`` + ``signature``),
:class:`RedactedThinkingBlock` (``data``) and :class:`ServerBlock`, which holds any
server-side block (``server_tool_use``, ``web_search_tool_result`` and the other
``*_tool_result`` blocks, ``mcp_tool_use``, ``container_upload``) verbatim as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

import attrs

__all__ = [
    "ContentBlock",
    "Message",
    "RedactedThinkingBlock",
    "Role",
    "ServerBlock",
    "TextBlock",
    "ThinkingBlock",
    "ToolResultBlock",
    "ToolUseBlock",
    "marshal_messages",
    "unmarshal_messages",
]

Role: TypeAlias = Literal["user", "assistant"]


@attrs.frozen(kw_only=True)
class TextBlock:
    """Plain text written by the user or the model."""

    text: str
    type: Literal["text"] = "text"


@attrs.frozen(kw_only=True)
class ToolUseBlock:
    """The model asks for tool ``name`` to be called with ``input``."""

    id: str
    name: str
    input: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    type: Literal["tool_use"] = "tool_use"


@attrs.frozen(kw_only=True)
class ToolResultBlock:
    """The answer to the tool call ``tool_use_id``; ``is_error`` marks a failure."""

    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"


@attrs.frozen(kw_only=True)
class ThinkingBlock:
    """The model's extended thinking, with the ``signature`` the API checks when the
    block is sent back (it must come back unchanged)."""

    thinking: str
    signature: str
    type: Literal["thinking"] = "thinking"


@attrs.frozen(kw_only=True)
class RedactedThinkingBlock:
    """Thinking the API encrypted (``data`` is opaque; it is sent back unchanged)."""

    data: str
    type: Literal["redacted_thinking"] = "redacted_thinking"


#: Block types of the API's server-side tools besides the ``*_tool_result`` family.
_SERVER_TYPES: Final = frozenset({"server_tool_use", "mcp_tool_use", "container_upload"})


def is_server_block_type(kind: object) -> bool:
    """Whether ``kind`` names a server-side block: ``server_tool_use``,
    ``mcp_tool_use``, ``container_upload`` or a ``<tool>_tool_result`` (such as
    ``web_search_tool_result`` or ``mcp_tool_result``)."""
    return isinstance(kind, str) and (
        kind in _SERVER_TYPES or (kind.endswith("_tool_result") and len(kind) > len("_tool_result"))
    )


def _json_object(value: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"ServerBlock.data must be a JSON object, not {type(value).__name__}")
    # NOTE: a deep copy through JSON: the block is immutable and surely serialisable.
    copied: dict[str, Any] = json.loads(json.dumps(value, ensure_ascii=False))
    return copied


def _check_server_type(_instance: Any, _attribute: Any, value: Mapping[str, Any]) -> None:
    kind = value.get("type")
    if not is_server_block_type(kind):
        raise ValueError(
            f"ServerBlock.data['type'] is {kind!r}; a server block is a 'server_tool_use', "
            "'mcp_tool_use', 'container_upload' or '<tool>_tool_result' block of the API"
        )


@attrs.frozen(kw_only=True)
class ServerBlock:
    """A block of the API's server-side tools (``server_tool_use``,
    ``web_search_tool_result``, ...), kept verbatim: ``data`` is the block's whole
    JSON object, ``type`` included, and is sent back exactly as received."""

    data: Mapping[str, Any] = attrs.field(
        converter=_json_object, validator=_check_server_type, hash=False
    )

    @property
    def type(self) -> str:
        """The block's ``type`` (e.g. ``"web_search_tool_result"``)."""
        return str(self.data["type"])


ContentBlock: TypeAlias = (
    TextBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock | ServerBlock
)


def _to_blocks(content: str | Iterable[ContentBlock]) -> tuple[ContentBlock, ...]:
    if isinstance(content, str):
        return (TextBlock(text=content),)
    return tuple(content)


@attrs.frozen(kw_only=True)
class Message:
    """One turn of a conversation.

    ``content`` accepts a plain string (one text block) or content blocks.
    """

    role: Role
    content: tuple[ContentBlock, ...] = attrs.field(converter=_to_blocks)

    @classmethod
    def user(cls, content: str | Iterable[ContentBlock]) -> Message:
        """A user turn."""
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str | Iterable[ContentBlock]) -> Message:
        """An assistant turn."""
        return cls(role="assistant", content=content)

    @property
    def text(self) -> str:
        """The concatenated text blocks of this turn."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        """The tool calls requested in this turn."""
        return tuple(b for b in self.content if isinstance(b, ToolUseBlock))

    @property
    def tool_results(self) -> tuple[ToolResultBlock, ...]:
        """The tool results carried by this turn."""
        return tuple(b for b in self.content if isinstance(b, ToolResultBlock))


def block_to_dict(block: ContentBlock) -> dict[str, Any]:
    """The wire (Anthropic API) form of one content block."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}
    if isinstance(block, ToolResultBlock):
        return {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": block.content,
            "is_error": block.is_error,
        }
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if isinstance(block, RedactedThinkingBlock):
        return {"type": "redacted_thinking", "data": block.data}
    return dict(_json_object(block.data))  # a fresh copy: callers may mutate what they get


def message_to_dict(message: Message) -> dict[str, Any]:
    """The wire (Anthropic API) form of one message."""
    return {"role": message.role, "content": [block_to_dict(b) for b in message.content]}


def _block_from_dict(data: Mapping[str, Any], where: str) -> ContentBlock:
    kind = data.get("type")
    try:
        if kind == "text":
            return TextBlock(text=str(data["text"]))
        if kind == "tool_use":
            tool_input = data.get("input", {})
            if not isinstance(tool_input, Mapping):
                raise ValueError(
                    f"{where}.input must be an object, got {type(tool_input).__name__}"
                )
            return ToolUseBlock(id=str(data["id"]), name=str(data["name"]), input=dict(tool_input))
        if kind == "tool_result":
            content = data.get("content", "")
            if isinstance(content, list):  # API form: a list of text blocks
                content = "".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
            return ToolResultBlock(
                tool_use_id=str(data["tool_use_id"]),
                content=str(content),
                is_error=bool(data.get("is_error", False)),
            )
        if kind == "thinking":
            return ThinkingBlock(thinking=str(data["thinking"]), signature=str(data["signature"]))
        if kind == "redacted_thinking":
            return RedactedThinkingBlock(data=str(data["data"]))
    except KeyError as exc:
        raise ValueError(f"{where} ({kind}) is missing the key {exc.args[0]!r}") from None
    if is_server_block_type(kind):
        return ServerBlock(data=data)
    raise ValueError(
        f"{where}.type is {kind!r}; expected 'text', 'tool_use', 'tool_result', 'thinking', "
        "'redacted_thinking' or a server tool block ('server_tool_use', '<tool>_tool_result')"
    )


def message_from_dict(data: Mapping[str, Any], where: str = "message") -> Message:
    """Build a :class:`Message` from its wire form, with errors that say where."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be an object, got {type(data).__name__}")
    role = data.get("role")
    if role not in ("user", "assistant"):
        raise ValueError(f"{where}.role is {role!r}; expected 'user' or 'assistant'")
    content = data.get("content")
    if isinstance(content, str):
        return Message(role=role, content=content)
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of blocks")
    blocks = [
        _block_from_dict(b, f"{where}.content[{i}]")
        if isinstance(b, Mapping)
        else _bad_block(b, where, i)
        for i, b in enumerate(content)
    ]
    return Message(role=role, content=blocks)


def _bad_block(block: object, where: str, index: int) -> ContentBlock:
    raise ValueError(f"{where}.content[{index}] must be an object, got {type(block).__name__}")


def marshal_messages(messages: Sequence[Message]) -> str:
    """Serialise a conversation to JSON (stable key order, lower-case keys).

    ``unmarshal_messages(marshal_messages(m)) == list(m)`` for every conversation.
    """
    return json.dumps(
        [message_to_dict(m) for m in messages],
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )


def unmarshal_messages(data: str | bytes) -> list[Message]:
    """Parse JSON written by :func:`marshal_messages` (or the API's message form).

    Raises:
        ValueError: the JSON is malformed or does not describe messages; the message
            says which element is wrong.
    """
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"messages are not valid JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ValueError(f"messages must be a JSON array, got {type(raw).__name__}")
    return [message_from_dict(m, f"messages[{i}]") for i, m in enumerate(raw)]
