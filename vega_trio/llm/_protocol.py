"""The one small protocol every LLM backend implements.

A backend has two methods:

* ``await llm.generate(request)`` returns a whole :class:`LLMResponse`;
* ``async with llm.stream(request) as chunks:`` yields typed chunks —
  :class:`TextChunk` as text arrives, :class:`ToolInputChunk` as tool arguments
  arrive, :class:`ThinkingChunk` as extended thinking arrives, and finally exactly
  one :class:`MessageComplete` carrying the assembled response. Leaving the block
  early closes the underlying HTTP stream.

Backends raise :class:`~vega_trio.LLMError` (with an :class:`~vega_trio.ErrorClass`)
for every failure of the call itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Protocol, TypeAlias, runtime_checkable

import attrs

from ._messages import ContentBlock, Message, TextBlock, ToolUseBlock

__all__ = [
    "DEFAULT_MODEL",
    "INVALID_JSON_KEY",
    "LLM",
    "LLMRequest",
    "LLMResponse",
    "MessageComplete",
    "StreamChunk",
    "TextChunk",
    "ThinkingChunk",
    "ToolInputChunk",
    "ToolSchema",
    "Usage",
]

#: The model used when an agent names none. (``claude-sonnet-4-5`` is deprecated in
#: anthropic 2.x, whose ``messages.create`` warns on every call with it.)
DEFAULT_MODEL: Final = "claude-sonnet-5-5"

#: When a tool call's JSON arguments do not parse into an object, a backend sets the
#: tool call's ``input`` to ``{INVALID_JSON_KEY: "<the raw text>"}`` so that the tool
#: loop answers the model with an error instead of crashing.
INVALID_JSON_KEY: Final = "__vega_invalid_json__"


@attrs.frozen(kw_only=True)
class ToolSchema:
    """What the model is told about one tool."""

    name: str
    description: str
    input_schema: Mapping[str, Any] = attrs.field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The Anthropic wire form."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
        }


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts reported for one call (or summed over many)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    @property
    def total_tokens(self) -> int:
        """All tokens, cache tokens included."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


@attrs.frozen(kw_only=True)
class LLMRequest:
    """Everything a backend needs for one call; the agent's settings are really sent."""

    model: str
    messages: tuple[Message, ...]
    system: str = ""
    tools: tuple[ToolSchema, ...] = ()
    max_tokens: int = 4096
    temperature: float | None = None


@attrs.frozen(kw_only=True)
class LLMResponse:
    """A complete reply of the model."""

    content: tuple[ContentBlock, ...]
    model: str
    usage: Usage = Usage()
    stop_reason: str | None = None

    @property
    def text(self) -> str:
        """The concatenated text blocks."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        """The tool calls the model asked for."""
        return tuple(b for b in self.content if isinstance(b, ToolUseBlock))

    def to_message(self) -> Message:
        """This reply as an assistant turn of the history."""
        return Message(role="assistant", content=self.content)


@attrs.frozen(kw_only=True)
class TextChunk:
    """A piece of streamed text."""

    text: str


@attrs.frozen(kw_only=True)
class ThinkingChunk:
    """A piece of the model's extended thinking (informational, never shown as the
    reply's text; the complete block, signature included, arrives in
    :class:`MessageComplete`)."""

    thinking: str


@attrs.frozen(kw_only=True)
class ToolInputChunk:
    """A fragment of a tool call's JSON arguments (informational; the complete
    arguments arrive in :class:`MessageComplete`)."""

    index: int
    tool_use_id: str
    tool_name: str
    partial_json: str


@attrs.frozen(kw_only=True)
class MessageComplete:
    """The end of a stream: the assembled response."""

    response: LLMResponse


StreamChunk: TypeAlias = TextChunk | ThinkingChunk | ToolInputChunk | MessageComplete


@runtime_checkable
class LLM(Protocol):
    """A language-model backend."""

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """Make one blocking call."""
        ...

    def stream(
        self, request: LLMRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[StreamChunk]]:
        """Open a streaming call; iterate the chunks inside the block."""
        ...
