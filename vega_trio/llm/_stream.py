"""The one stream-reading state machine both backends share.

A streamed reply is read the same way whichever provider sends it: bytes from the HTTP
response, decoded as server-sent events (:class:`~._sse.SSEDecoder`), each event turned
into zero or one :data:`~._protocol.StreamChunk` while the reply is assembled, then one
:class:`~._protocol.MessageComplete`; a read failure, an error event, a malformed event
or a body that ends too early becomes an :class:`~vega_trio.LLMError` that says whether
output had started.

Only the meaning of an event differs between providers. A :class:`Dialect` (one per
backend: ``_anthropic._AnthropicEvents``, ``_openai._ChatEvents``) reads one event and
feeds the :class:`Assembly` — text, thinking, tool-call fragments, usage, stop reason —
which is the same state for both. :class:`ChunkStream` is the reading loop around them:
buffering, draining, closing, and the errors of the stream as a whole.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Final, Protocol

import attrs
import httpx2

from .._errors import ErrorClass, LLMError
from ._messages import (
    ContentBlock,
    RedactedThinkingBlock,
    ServerBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)
from ._protocol import (
    INVALID_JSON_KEY,
    LLMResponse,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ThinkingChunk,
    ToolInputChunk,
    Usage,
)
from ._sse import SSEDecoder

__all__ = [
    "USAGE_KEYS",
    "Assembly",
    "ChunkStream",
    "Dialect",
    "as_int",
    "as_mapping",
    "parse_arguments",
]

# Bounds for draining a finished or closed stream.
_DRAIN_READS: Final = 8

#: The :class:`~._protocol.Usage` fields, as the Anthropic API names them.
USAGE_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


class _MalformedStream(ValueError):
    """An event breaks the provider's stream protocol (raised by a :class:`Dialect`;
    :class:`ChunkStream` turns it into the ``TEMPORARY`` :class:`~vega_trio.LLMError`)."""


def as_int(value: object) -> int | None:
    """``value`` when it is an integer (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def parse_arguments(raw: str) -> Mapping[str, Any]:
    """A tool call's JSON arguments; text that is not a JSON object is kept under
    :data:`~._protocol.INVALID_JSON_KEY` so the tool loop can answer the model."""
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {INVALID_JSON_KEY: raw}
    if not isinstance(parsed, dict):
        return {INVALID_JSON_KEY: raw}
    return parsed


@attrs.define(eq=False)
class _Block:
    """A content block being assembled from stream events."""

    kind: str
    text: str = ""
    signature: str = ""
    tool_id: str = ""
    tool_name: str = ""
    arguments: list[str] = attrs.field(factory=list)
    start: Mapping[str, Any] | None = None
    """A server block's start object (its input, if streamed, arrives in ``arguments``)."""

    def finish(self) -> ContentBlock | None:
        if self.kind == "text":
            return TextBlock(text=self.text)
        if self.kind == "tool_use":
            return ToolUseBlock(
                id=self.tool_id,
                name=self.tool_name,
                input=parse_arguments("".join(self.arguments)),
            )
        if self.kind == "thinking":
            return ThinkingBlock(thinking=self.text, signature=self.signature)
        if self.kind == "redacted_thinking":
            return RedactedThinkingBlock(data=self.text)
        if self.start is not None:
            data = dict(self.start)
            if self.arguments:
                data["input"] = parse_arguments("".join(self.arguments))
            return ServerBlock(data=data)
        return None  # a kind unknown today: no place in the history model


@attrs.define(eq=False)
class Assembly:
    """The reply being assembled from a stream, whichever provider sends it.

    Content blocks are kept by their index and come out in index order; text and tool
    fragments set :attr:`output_started` (thinking does not: it is never shown as the
    reply). Each feeding method returns the chunk to yield, if any.
    """

    model: str = ""
    stop_reason: str | None = None
    output_started: bool = False
    complete: bool = False
    _blocks: dict[int, _Block] = attrs.field(factory=dict)
    _usage: dict[str, int] = attrs.field(factory=dict)

    def start(self, index: int, kind: str, **fields: Any) -> None:
        """A content block begins (``text``, ``tool_use``, ``thinking``,
        ``redacted_thinking``, a server block with ``start=``, or an unknown kind)."""
        self._blocks[index] = _Block(kind=kind, **fields)

    def kind_at(self, index: int) -> str | None:
        """The kind of the block at ``index`` (``None`` when there is none)."""
        block = self._blocks.get(index)
        return None if block is None else block.kind

    def is_server_block(self, index: int) -> bool:
        """Whether the block at ``index`` is a server block (its input is no tool call)."""
        block = self._blocks.get(index)
        return block is not None and block.start is not None

    def text(self, index: int, text: str) -> TextChunk | None:
        """Text for the block at ``index`` (a text block is opened if none is)."""
        block = self._blocks.setdefault(index, _Block(kind="text"))
        block.text += text
        if not text:
            return None
        self.output_started = True
        return TextChunk(text=text)

    def thinking(self, index: int, thinking: str) -> ThinkingChunk | None:
        """Thinking for the thinking block at ``index``."""
        block = self._blocks[index]
        block.text += thinking
        return ThinkingChunk(thinking=thinking) if thinking else None

    def signature(self, index: int, signature: str) -> None:
        """Part of the signature of the thinking block at ``index``."""
        self._blocks[index].signature += signature

    def tool_call(
        self, index: int, *, tool_id: str = "", name: str = "", fragment: str = ""
    ) -> ToolInputChunk | None:
        """Part of the tool call at ``index`` (opened if new): its id or name when the
        provider sends them, a fragment of its JSON arguments."""
        block = self._blocks.setdefault(index, _Block(kind="tool_use"))
        if tool_id:
            block.tool_id = tool_id
        if name:
            block.tool_name = name
        if not fragment:
            return None
        block.arguments.append(fragment)
        self.output_started = True
        return ToolInputChunk(
            index=index,
            tool_use_id=block.tool_id,
            tool_name=block.tool_name,
            partial_json=fragment,
        )

    def server_input(self, index: int, fragment: str) -> None:
        """A fragment of a server tool's input (kept with the block, not a tool call)."""
        self._blocks[index].arguments.append(fragment)

    def usage(self, counts: Mapping[str, object]) -> None:
        """Token counts (``input_tokens`` ...): each count present replaces the last."""
        for key, value in counts.items():
            number = as_int(value)
            if number is not None:
                self._usage[str(key)] = number

    def response(
        self, request_model: str, *, tool_id: Callable[[int], str] | None = None
    ) -> LLMResponse:
        """The assembled reply; ``tool_id`` names a tool call the provider sent without
        an id (by its index)."""
        content: list[ContentBlock] = []
        for index, block in sorted(self._blocks.items()):
            if block.kind == "tool_use" and not block.tool_id and tool_id is not None:
                block.tool_id = tool_id(index)
            finished = block.finish()
            if finished is not None:
                content.append(finished)
        return LLMResponse(
            content=tuple(content),
            model=self.model or request_model,
            usage=Usage(**{key: self._usage.get(key, 0) for key in USAGE_KEYS}),
            stop_reason=self.stop_reason,
        )


class Dialect(Protocol):
    """What one provider's stream events mean (one instance per stream)."""

    #: Names the stream in messages: ``"the Anthropic stream"``.
    name: str
    #: The exception types of a failed read (translated by :meth:`read_error`).
    failures: tuple[type[BaseException], ...]

    def apply(self, event: str, data: str, reply: Assembly) -> StreamChunk | None:
        """Read one event into ``reply``; return the chunk to yield, if any. Set
        ``reply.complete`` at the reply's end.

        Raises:
            _MalformedStream: the event breaks the protocol.
            LLMError: the event is an error the server sent.
        """
        ...

    def read_error(self, exc: BaseException, *, output_started: bool) -> LLMError:
        """The error of a failed read."""
        ...

    def ended_early(self, reply: Assembly) -> str | None:
        """The body ended before the reply's end marker: ``None`` to accept the reply
        as complete, else what the stream lacked (for the error message)."""
        ...

    def finish(self, reply: Assembly, request_model: str) -> LLMResponse:
        """The assembled reply."""
        ...


@attrs.define(eq=False)
class ChunkStream:
    """Turns the server-sent events of a streamed reply into :data:`StreamChunk` objects.

    A plain async iterator, not an async generator, so that nothing is left suspended
    for the garbage collector when the caller stops early; :meth:`aclose` releases the
    byte stream.

    Args:
        events: the SDK's stream object; only its ``response`` and ``close()`` are used
            (see :class:`~._sse.SSEDecoder` for why not its iterator).
        dialect: what the provider's events mean.
        request_model: the model reported when the stream names none.
    """

    events: Any
    dialect: Dialect
    request_model: str
    response: httpx2.Response = attrs.field(init=False)
    reply: Assembly = attrs.field(factory=Assembly, init=False)
    _raw: AsyncGenerator[bytes, None] = attrs.field(init=False)
    _decoder: SSEDecoder = attrs.field(factory=SSEDecoder, init=False)
    _pending: deque[tuple[str, str]] = attrs.field(factory=deque, init=False)
    _completed: bool = attrs.field(default=False, init=False)
    _finished: bool = attrs.field(default=False, init=False)
    _body_done: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self.response = self.events.response
        self._raw = self.response.aiter_bytes()

    def __aiter__(self) -> ChunkStream:
        return self

    async def aclose(self) -> None:
        """Close the response and finish the byte stream's generators.

        NOTE: closing ``aiter_bytes()`` is not enough: httpx2's ``AsyncResponseStream``
        does not close the httpcore2 generator it iterates, and Trio warns about every
        async generator that is garbage-collected unfinished (``ResourceWarning``, an
        error under ``-W error``). Once the response is closed, the next read fails, and
        that failure finishes every generator of the chain; so read until it does.
        """
        self._finished = True
        await self.events.close()  # tells the SDK's tracing too, then closes the response
        for _ in range(_DRAIN_READS):
            try:
                await self._raw.__anext__()
            except StopAsyncIteration:
                break
            except Exception:  # the expected read error on a closed response
                break
        await self._raw.aclose()

    async def __anext__(self) -> StreamChunk:
        if self._finished:
            raise StopAsyncIteration
        if self._completed:
            self._finished = True
            await self._drain()
            raise StopAsyncIteration
        reply = self.reply
        while True:
            while self._pending:
                chunk = self._apply(*self._pending.popleft())
                if chunk is not None:
                    return chunk
                if reply.complete:
                    return self._complete()
            if self._body_done:
                lacking = self.dialect.ended_early(reply)
                if lacking is None:
                    return self._complete()
                self._finished = True
                raise LLMError(
                    f"LLM call failed (temporary): {self.dialect.name} from "
                    f"{self.response.request.url} ended before {lacking} (the connection "
                    f"was closed early); retry the call",
                    error_class=ErrorClass.TEMPORARY,
                    output_started=reply.output_started,
                )
            try:
                data = await self._raw.__anext__()
            except StopAsyncIteration:
                self._body_done = True
                self._pending.extend(self._decoder.close())
                continue
            except self.dialect.failures as exc:
                self._finished = True
                raise self.dialect.read_error(exc, output_started=reply.output_started) from exc
            try:
                self._pending.extend(self._decoder.feed(data))
            except ValueError as exc:
                raise self._malformed(str(exc)) from exc

    def _complete(self) -> MessageComplete:
        self._completed = True
        return MessageComplete(response=self.dialect.finish(self.reply, self.request_model))

    def _apply(self, event: str, data: str) -> StreamChunk | None:
        try:
            return self.dialect.apply(event, data, self.reply)
        except _MalformedStream as exc:
            raise self._malformed(str(exc)) from exc.__cause__
        except LLMError:
            self._finished = True
            raise

    async def _drain(self) -> None:
        """Read what follows the reply's end (normally just the end of the body) so the
        connection can go back to the pool; bounded, and failures no longer matter."""
        try:
            for _ in range(_DRAIN_READS):
                await self._raw.__anext__()
        except StopAsyncIteration:
            pass
        except self.dialect.failures:
            pass

    def _malformed(self, problem: str) -> LLMError:
        """The LLMError for a stream that breaks the SSE or the provider's protocol."""
        self._finished = True
        return LLMError(
            f"LLM call failed (temporary): {self.dialect.name} from "
            f"{self.response.request.url} is malformed: {problem}; retry the call",
            error_class=ErrorClass.TEMPORARY,
            output_started=self.reply.output_started,
        )
