"""The Anthropic backend: :class:`AnthropicLLM` on the official ``anthropic`` SDK (async).

* The SDK's own retries are off (``max_retries=0``): vega-trio's retry policy is the
  only one, so retries never multiply (SPEC §3.2).
* Every failure of a call comes out as :class:`~vega_trio.LLMError` with its
  :class:`~vega_trio.ErrorClass`, the server's ``retry-after`` and the SDK exception
  as ``__cause__``.
* Streams assemble ``input_json_delta`` fragments per content block into complete
  tool arguments (of client and server tools), and ``thinking_delta`` /
  ``signature_delta`` into thinking blocks (yielded as :class:`ThinkingChunk`, never
  as text). Thinking, redacted thinking and server tool blocks are kept in the reply
  (:class:`ThinkingBlock`, :class:`RedactedThinkingBlock`, :class:`ServerBlock`) and
  sent back unchanged, in order, with the history; leaving the ``async with`` early
  (``break``, an exception, cancellation) closes the HTTP response.
* ``temperature`` is sent only when set, through ``extra_body``: anthropic 1.0 removed
  the sampling parameters from ``messages.create``'s signature, the API still takes
  them on models that support them.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Final, cast

import anthropic
import attrs
import httpx2
import trio
from anthropic.types import Message as SDKMessage
from anthropic.types import MessageParam, ToolParam

from .._errors import ErrorClass, LLMError
from .._redact import redact, register_secret, register_url_secret
from ._classify import to_llm_error
from ._messages import (
    ContentBlock,
    RedactedThinkingBlock,
    ServerBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    is_server_block_type,
    message_to_dict,
)
from ._protocol import (
    DEFAULT_MODEL,
    INVALID_JSON_KEY,
    LLMRequest,
    LLMResponse,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ThinkingChunk,
    ToolInputChunk,
    Usage,
)
from ._sse import SSEDecoder

__all__ = ["CALL_FAILURES", "DEFAULT_MODEL", "INVALID_JSON_KEY", "AnthropicLLM"]

#: The exception types that mean "the call to the model failed" (as opposed to a bug
#: in our own code). This backend translates exactly these into :class:`LLMError`.
CALL_FAILURES: Final = (
    anthropic.AnthropicError,
    httpx2.HTTPError,
    httpx2.StreamError,
    trio.TooSlowError,
    TimeoutError,
    OSError,
    json.JSONDecodeError,
)


# Bounds for awaited cleanup and for draining a finished stream.
_CLOSE_TIMEOUT: Final = 5.0
_DRAIN_READS: Final = 8


class AnthropicLLM:
    """An :class:`~vega_trio.llm.LLM` backend on the official ``anthropic`` SDK.

    Use it as ``async with AnthropicLLM(...) as llm:`` (or call :meth:`aclose`) so the
    connection pool is closed inside the Trio run.

    Args:
        api_key: the API key; ``None`` lets the SDK read ``ANTHROPIC_API_KEY`` (and its
            other credential sources).
        base_url: the API's base URL; ``None`` lets the SDK read ``ANTHROPIC_BASE_URL``,
            falling back to ``https://api.anthropic.com``.
        default_model: the model for requests whose ``model`` is empty.
        timeout: seconds allowed per LLM call (SPEC §3.6): the whole of a blocking
            call, and the wait for a stream to start. When this backend builds the SDK
            client, it is also the client's connect and read timeout, so a stream that
            goes silent that long fails with ``TIMEOUT`` too.
        client: a ready SDK client to use instead of building one. Its retries are
            switched off (on a copy sharing its connection pool); the caller keeps
            ownership and closes it.

    Raises:
        ValueError: ``timeout`` is not positive, or ``client`` comes with
            ``api_key``/``base_url``.
        LLMError: (``AUTHENTICATION``) the SDK could not load the credentials that the
            environment points at (``ANTHROPIC_PROFILE``, ``ANTHROPIC_CONFIG_DIR``).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_model: str = DEFAULT_MODEL,
        timeout: float = 300.0,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"AnthropicLLM timeout must be > 0 seconds, got {timeout!r}")
        self.default_model = default_model
        self.timeout = float(timeout)
        if client is None:
            # NOTE: None for api_key/base_url means "let the SDK look at the environment";
            # passing them through unchanged keeps ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL working.
            try:
                self._client = anthropic.AsyncAnthropic(
                    api_key=api_key, base_url=base_url, timeout=self.timeout, max_retries=0
                )
            except anthropic.CredentialsError as exc:
                # e.g. ANTHROPIC_CONFIG_DIR / ANTHROPIC_PROFILE names a profile that is missing
                raise LLMError(
                    f"AnthropicLLM could not load Anthropic credentials: {exc}; set "
                    f"ANTHROPIC_API_KEY or pass api_key=",
                    error_class=ErrorClass.AUTHENTICATION,
                ) from exc
            self._owns_client = True
        else:
            if api_key is not None or base_url is not None:
                raise ValueError(
                    "AnthropicLLM: pass either client= or api_key=/base_url=, not both; "
                    "configure the client you pass instead"
                )
            self._client = client if client.max_retries == 0 else client.with_options(max_retries=0)
            self._owns_client = False
        # NOTE: an explicit key is not in the environment; the redaction layer must know it
        # (a server may echo it back in an error body); so must a password in the base URL.
        register_url_secret(str(self._client.base_url))
        register_secret(self._client.api_key)
        register_secret(self._client.auth_token)

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client in use (with ``max_retries == 0``)."""
        return self._client

    @property
    def base_url(self) -> str:
        """Where requests go."""
        return str(self._client.base_url)

    @property
    def has_credentials(self) -> bool:
        """Whether the client has something to authenticate with (an API key, an auth
        token or a credentials provider, given or found in the environment or a profile).
        Without one every call fails; :meth:`~vega_trio.Orchestrator.spawn` checks this
        for the backend it creates, so a missing key shows at spawn, not at the first
        send."""
        client = self._client
        return bool(
            getattr(client, "api_key", None)
            or getattr(client, "auth_token", None)
            or getattr(client, "credentials", None) is not None
        )

    async def aclose(self) -> None:
        """Close the connection pool (only when this backend built the client)."""
        if self._owns_client:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._client.close()

    async def __aenter__(self) -> AnthropicLLM:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"AnthropicLLM(base_url={redact(self.base_url)!r}, "
            f"default_model={self.default_model!r})"
        )

    # -- the protocol -------------------------------------------------------------------

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """Make one blocking call.

        Raises:
            LLMError: the call failed; ``error_class`` says how, ``__cause__`` is the
                SDK's exception.
        """
        try:
            with trio.fail_after(self.timeout):
                message = await self._client.messages.create(**self._arguments(request))
        except trio.TooSlowError as exc:
            raise self._deadline_error("reply") from exc
        except CALL_FAILURES as exc:
            raise to_llm_error(exc) from exc
        except TypeError as exc:
            if not _lacks_credentials(exc):
                raise
            raise _no_credentials_error() from exc
        return _response_from_message(message)

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[StreamChunk]]:
        """Open a streaming call; iterate the chunks inside the block.

        Yields :class:`TextChunk` and :class:`ToolInputChunk` as they arrive, then one
        :class:`MessageComplete`. Leaving the block early closes the HTTP response.

        Raises:
            LLMError: opening or reading the stream failed (also for an SSE ``error``
                event); ``output_started`` says whether chunks had been yielded.
        """
        try:
            # NOTE: the deadline covers getting the response headers; afterwards the read
            # timeout bounds each wait for data, so a long generation is not cut off.
            with trio.fail_after(self.timeout):
                events = await self._client.messages.create(**self._arguments(request), stream=True)
        except trio.TooSlowError as exc:
            raise self._deadline_error("stream to start") from exc
        except CALL_FAILURES as exc:
            raise to_llm_error(exc) from exc
        except TypeError as exc:
            if not _lacks_credentials(exc):
                raise
            raise _no_credentials_error() from exc
        chunks = _ChunkStream(events=events, request_model=request.model or self.default_model)
        try:
            yield chunks
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await chunks.aclose()

    def _deadline_error(self, waited_for: str) -> LLMError:
        return LLMError(
            f"LLM call failed (timeout): no {waited_for} from {self.base_url} within "
            f"{self.timeout:g}s (the AnthropicLLM timeout); retry, or raise the timeout for "
            f"long generations",
            error_class=ErrorClass.TIMEOUT,
        )

    def _arguments(self, request: LLMRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": request.model or self.default_model,
            "max_tokens": request.max_tokens,
            "messages": cast("list[MessageParam]", [message_to_dict(m) for m in request.messages]),
        }
        if request.system:
            arguments["system"] = request.system
        if request.tools:
            arguments["tools"] = cast("list[ToolParam]", [t.to_dict() for t in request.tools])
        if request.temperature is not None:
            arguments["extra_body"] = {"temperature": request.temperature}
        return arguments


def _lacks_credentials(exc: TypeError) -> bool:
    # NOTE: the SDK raises a bare TypeError at request time when it has no credential at
    # all; any other TypeError is a bug of ours and must crash loudly, not become an LLMError.
    return "authentication method" in str(exc)


def _no_credentials_error() -> LLMError:
    return LLMError(
        "LLM call failed (authentication): the Anthropic SDK found no API key; "
        "set ANTHROPIC_API_KEY or pass api_key= to AnthropicLLM",
        error_class=ErrorClass.AUTHENTICATION,
    )


def _tool_input(raw: object) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    return {INVALID_JSON_KEY: json.dumps(raw)}


def _parse_arguments(raw: str) -> Mapping[str, Any]:
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {INVALID_JSON_KEY: raw}
    if not isinstance(parsed, dict):
        return {INVALID_JSON_KEY: raw}
    return parsed


def _usage(usage: Any) -> Usage:
    return Usage(
        input_tokens=int(usage.input_tokens or 0),
        output_tokens=int(usage.output_tokens or 0),
        cache_creation_input_tokens=int(usage.cache_creation_input_tokens or 0),
        cache_read_input_tokens=int(usage.cache_read_input_tokens or 0),
    )


def _response_from_message(message: SDKMessage) -> LLMResponse:
    content: list[ContentBlock] = []
    for block in message.content:
        if block.type == "text":
            content.append(TextBlock(text=block.text))
        elif block.type == "tool_use":
            content.append(
                ToolUseBlock(id=block.id, name=block.name, input=_tool_input(block.input))
            )
        elif block.type == "thinking":
            content.append(ThinkingBlock(thinking=block.thinking, signature=block.signature))
        elif block.type == "redacted_thinking":
            content.append(RedactedThinkingBlock(data=block.data))
        elif is_server_block_type(block.type):
            # NOTE: the fields the API sent, as sent (exclude_unset): the block goes
            # back verbatim on the next request.
            content.append(ServerBlock(data=_raw_block(block)))
        # Other kinds (none known today) have no place in the history model.
    return LLMResponse(
        content=tuple(content),
        model=str(message.model),
        usage=_usage(message.usage),
        stop_reason=message.stop_reason,
    )


def _raw_block(block: Any) -> dict[str, Any]:
    """An SDK content block as the JSON object the API sent."""
    if isinstance(block, Mapping):
        return dict(block)
    raw: dict[str, Any] = block.to_dict(mode="json", exclude_unset=True)
    return raw


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
    """A server block's ``content_block_start`` object (its input, if streamed,
    arrives in ``arguments``)."""

    def finish(self) -> ContentBlock | None:
        if self.kind == "text":
            return TextBlock(text=self.text)
        if self.kind == "tool_use":
            return ToolUseBlock(
                id=self.tool_id,
                name=self.tool_name,
                input=_parse_arguments("".join(self.arguments)),
            )
        if self.kind == "thinking":
            return ThinkingBlock(thinking=self.text, signature=self.signature)
        if self.kind == "redacted_thinking":
            return RedactedThinkingBlock(data=self.text)
        if self.start is not None:
            data = dict(self.start)
            if self.arguments:
                data["input"] = _parse_arguments("".join(self.arguments))
            return ServerBlock(data=data)
        return None  # a kind unknown today: no place in the history model


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@attrs.define(eq=False)
class _ChunkStream:
    """Turns the SSE events of a streamed reply into :data:`StreamChunk` objects.

    A plain async iterator, not an async generator, so that nothing is left suspended
    for the garbage collector when the caller stops early; :meth:`aclose` releases the
    byte stream.
    """

    events: anthropic.AsyncStream[Any]
    request_model: str
    response: httpx2.Response = attrs.field(init=False)
    _raw: AsyncGenerator[bytes, None] = attrs.field(init=False)
    _decoder: SSEDecoder = attrs.field(factory=SSEDecoder, init=False)
    _pending: deque[tuple[str, str]] = attrs.field(factory=deque, init=False)
    _blocks: dict[int, _Block] = attrs.field(factory=dict, init=False)
    _model: str = attrs.field(default="", init=False)
    _usage: dict[str, int] = attrs.field(factory=dict, init=False)
    _stop_reason: str | None = attrs.field(default=None, init=False)
    _output_started: bool = attrs.field(default=False, init=False)
    _complete: bool = attrs.field(default=False, init=False)
    _finished: bool = attrs.field(default=False, init=False)
    _body_done: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        # NOTE: only the SDK stream's response is used, never its iterator (see SSEDecoder).
        self.response = self.events.response
        self._raw = self.response.aiter_bytes()

    def __aiter__(self) -> _ChunkStream:
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
        if self._complete:
            self._finished = True
            await self._drain()
            raise StopAsyncIteration
        while True:
            while self._pending:
                chunk = self._apply(*self._pending.popleft())
                if chunk is not None:
                    return chunk
            if self._body_done:
                self._finished = True
                raise LLMError(
                    f"LLM call failed (temporary): the Anthropic stream from "
                    f"{self.response.request.url} ended before message_stop (the connection "
                    f"was closed early); retry the call",
                    error_class=ErrorClass.TEMPORARY,
                    output_started=self._output_started,
                )
            try:
                data = await self._raw.__anext__()
            except StopAsyncIteration:
                self._body_done = True
                self._pending.extend(self._decoder.close())
                continue
            except CALL_FAILURES as exc:
                self._finished = True
                raise to_llm_error(exc, output_started=self._output_started) from exc
            try:
                self._pending.extend(self._decoder.feed(data))
            except ValueError as exc:
                raise self._malformed(str(exc)) from exc

    async def _drain(self) -> None:
        """Read what follows ``message_stop`` (normally just the end of the body) so the
        connection can go back to the pool; bounded, and failures no longer matter."""
        try:
            for _ in range(_DRAIN_READS):
                await self._raw.__anext__()
        except StopAsyncIteration:
            pass
        except CALL_FAILURES:
            pass

    def _malformed(self, problem: str) -> LLMError:
        """The LLMError for a stream that breaks the SSE / Messages protocol."""
        self._finished = True
        return LLMError(
            f"LLM call failed (temporary): the Anthropic stream from "
            f"{self.response.request.url} is malformed: {problem}; retry the call",
            error_class=ErrorClass.TEMPORARY,
            output_started=self._output_started,
        )

    def _fail(self, body_text: str) -> LLMError:
        """The LLMError for an SSE ``error`` event (its cause: the SDK's APIStatusError)."""
        self._finished = True
        try:
            body: object = json.loads(body_text)
        except ValueError:
            body = body_text
        sdk_error = anthropic.APIStatusError(
            f"stream error event: {body_text}", response=self.response, body=body
        )
        error = to_llm_error(sdk_error, output_started=self._output_started)
        error.__cause__ = sdk_error
        return error

    def _apply(self, name: str, data: str) -> StreamChunk | None:
        if name == "error":
            raise self._fail(data)
        if name == "ping" or not data:
            return None
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise self._malformed(f"a {name!r} event's data is not JSON: {exc}") from exc
        if not isinstance(event, dict):
            return None
        kind = event.get("type")
        if kind == "error":  # an error sent under another event name
            raise self._fail(data)
        if kind == "message_start":
            message = _mapping(event.get("message"))
            self._model = str(message.get("model") or "")
            self._merge_usage(message.get("usage"))
            return None
        if kind == "content_block_start":
            return self._start_block(_int(event.get("index")), _mapping(event.get("content_block")))
        if kind == "content_block_delta":
            return self._delta(_int(event.get("index")), _mapping(event.get("delta")))
        if kind == "message_delta":
            stop_reason = _mapping(event.get("delta")).get("stop_reason")
            if isinstance(stop_reason, str):
                self._stop_reason = stop_reason
            # NOTE: message_delta usage is cumulative; input-side counts appear here only
            # on some API versions, so they override message_start's only when present.
            self._merge_usage(event.get("usage"))
            return None
        if kind == "message_stop":
            self._complete = True
            return MessageComplete(response=self._response())
        return None  # content_block_stop and unknown events: blocks finish at message_stop

    def _merge_usage(self, usage: object) -> None:
        for key, value in _mapping(usage).items():
            if isinstance(value, int) and not isinstance(value, bool):
                self._usage[str(key)] = value

    def _start_block(self, index: int, block: Mapping[str, Any]) -> StreamChunk | None:
        kind = str(block.get("type", ""))
        if kind == "text":
            text = str(block.get("text") or "")
            self._blocks[index] = _Block(kind="text", text=text)
            if text:
                self._output_started = True
                return TextChunk(text=text)
        elif kind == "tool_use":
            self._blocks[index] = _Block(
                kind="tool_use",
                tool_id=str(block.get("id", "")),
                tool_name=str(block.get("name", "")),
            )
        elif kind == "thinking":
            thinking = str(block.get("thinking") or "")
            self._blocks[index] = _Block(
                kind=kind, text=thinking, signature=str(block.get("signature") or "")
            )
            if thinking:
                return ThinkingChunk(thinking=thinking)
        elif kind == "redacted_thinking":
            self._blocks[index] = _Block(kind=kind, text=str(block.get("data") or ""))
        elif is_server_block_type(kind):
            self._blocks[index] = _Block(kind=kind, start=dict(block))
        else:
            self._blocks[index] = _Block(kind=kind)
        return None

    def _delta(self, index: int, delta: Mapping[str, Any]) -> StreamChunk | None:
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text") or "")
            block = self._blocks.setdefault(index, _Block(kind="text"))
            block.text += text
            if not text:
                return None
            self._output_started = True
            return TextChunk(text=text)
        if kind == "thinking_delta" or kind == "signature_delta":
            thought = self._blocks.get(index)
            if thought is None or thought.kind != "thinking":
                raise self._malformed(
                    f"a {kind} arrived for content block {index}, which is not a thinking block"
                )
            if kind == "signature_delta":
                thought.signature += str(delta.get("signature") or "")
                return None
            thinking = str(delta.get("thinking") or "")
            thought.text += thinking
            return ThinkingChunk(thinking=thinking) if thinking else None
        if kind == "input_json_delta":
            fragment = str(delta.get("partial_json") or "")
            tool = self._blocks.get(index)
            if tool is not None and tool.start is not None:
                # a server tool's input (server_tool_use): kept, not a client tool call
                tool.arguments.append(fragment)
                return None
            if tool is None or tool.kind != "tool_use":
                raise self._malformed(
                    f"tool arguments arrived for content block {index}, which is not a "
                    f"tool_use block"
                )
            if not fragment:
                return None
            tool.arguments.append(fragment)
            self._output_started = True
            return ToolInputChunk(
                index=index,
                tool_use_id=tool.tool_id,
                tool_name=tool.tool_name,
                partial_json=fragment,
            )
        return None  # citations and unknown deltas: not part of our chunk model

    def _response(self) -> LLMResponse:
        content = [
            finished
            for _, block in sorted(self._blocks.items())
            if (finished := block.finish()) is not None
        ]
        return LLMResponse(
            content=tuple(content),
            model=self._model or self.request_model,
            usage=Usage(
                input_tokens=self._usage.get("input_tokens", 0),
                output_tokens=self._usage.get("output_tokens", 0),
                cache_creation_input_tokens=self._usage.get("cache_creation_input_tokens", 0),
                cache_read_input_tokens=self._usage.get("cache_read_input_tokens", 0),
            ),
            stop_reason=self._stop_reason,
        )
