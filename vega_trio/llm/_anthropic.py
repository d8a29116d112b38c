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
* Prompt caching is on by default (``prompt_caching=True``): ``cache_control``
  breakpoints on the tools, the system prompt and the conversation so far, where the
  prefix is long enough to be cached (:mod:`._caching`); usage reports the cache
  writes and reads, and the price table bills them (1.25 times and 0.1 times the input price).
* ``temperature`` is sent only when set, through ``extra_body``: anthropic 1.0 removed
  the sampling parameters from ``messages.create``'s signature, the API still takes
  them on models that support them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
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
from ._caching import add_cache_breakpoints
from ._classify import CALL_FAILURES, to_llm_error
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
    StreamChunk,
    Usage,
)
from ._stream import Assembly, ChunkStream, _MalformedStream, as_int, as_mapping

__all__ = ["DEFAULT_MODEL", "INVALID_JSON_KEY", "AnthropicLLM"]


# The bound for awaited cleanup.
_CLOSE_TIMEOUT: Final = 5.0


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
        prompt_caching: mark the tool definitions, the system prompt and the
            conversation so far with ``cache_control`` breakpoints (where the prefix is
            long enough for the model to cache it), so that repeated prefixes are billed
            as cache reads (0.1 times the input price) instead of input; see
            :mod:`vega_trio.llm._caching`. ``False`` sends requests unmarked.

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
        prompt_caching: bool = True,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"AnthropicLLM timeout must be > 0 seconds, got {timeout!r}")
        self.default_model = default_model
        self.timeout = float(timeout)
        self.prompt_caching = bool(prompt_caching)
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
            f"default_model={self.default_model!r}, prompt_caching={self.prompt_caching!r})"
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
        chunks = ChunkStream(
            events=events,
            dialect=_AnthropicEvents(response=events.response),
            request_model=request.model or self.default_model,
        )
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
        if self.prompt_caching:
            add_cache_breakpoints(arguments)
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
class _AnthropicEvents:
    """What the Messages API's stream events mean (the :class:`~._stream.Dialect` of
    :class:`AnthropicLLM`)."""

    response: httpx2.Response
    name: str = "the Anthropic stream"
    failures: tuple[type[BaseException], ...] = CALL_FAILURES

    def read_error(self, exc: BaseException, *, output_started: bool) -> LLMError:
        return to_llm_error(exc, output_started=output_started)

    def ended_early(self, reply: Assembly) -> str | None:
        return "message_stop"

    def finish(self, reply: Assembly, request_model: str) -> LLMResponse:
        return reply.response(request_model)

    def _fail(self, body_text: str, reply: Assembly) -> LLMError:
        """The LLMError for an SSE ``error`` event (its cause: the SDK's APIStatusError)."""
        try:
            body: object = json.loads(body_text)
        except ValueError:
            body = body_text
        sdk_error = anthropic.APIStatusError(
            f"stream error event: {body_text}", response=self.response, body=body
        )
        error = to_llm_error(sdk_error, output_started=reply.output_started)
        error.__cause__ = sdk_error
        return error

    def apply(self, event: str, data: str, reply: Assembly) -> StreamChunk | None:
        if event == "error":
            raise self._fail(data, reply)
        if event == "ping" or not data:
            return None
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise _MalformedStream(f"a {event!r} event's data is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            return None
        kind = parsed.get("type")
        if kind == "error":  # an error sent under another event name
            raise self._fail(data, reply)
        if kind == "message_start":
            message = as_mapping(parsed.get("message"))
            reply.model = str(message.get("model") or "")
            reply.usage(as_mapping(message.get("usage")))
            return None
        if kind == "content_block_start":
            index = as_int(parsed.get("index")) or 0
            return _start_block(reply, index, as_mapping(parsed.get("content_block")))
        if kind == "content_block_delta":
            index = as_int(parsed.get("index")) or 0
            return _delta(reply, index, as_mapping(parsed.get("delta")))
        if kind == "message_delta":
            stop_reason = as_mapping(parsed.get("delta")).get("stop_reason")
            if isinstance(stop_reason, str):
                reply.stop_reason = stop_reason
            # NOTE: message_delta usage is cumulative; input-side counts appear here only
            # on some API versions, so they override message_start's only when present.
            reply.usage(as_mapping(parsed.get("usage")))
            return None
        if kind == "message_stop":
            reply.complete = True
        return None  # content_block_stop and unknown events: blocks finish at message_stop


def _start_block(reply: Assembly, index: int, block: Mapping[str, Any]) -> StreamChunk | None:
    kind = str(block.get("type", ""))
    if kind == "text":
        reply.start(index, "text")
        return reply.text(index, str(block.get("text") or ""))
    if kind == "tool_use":
        reply.start(index, "tool_use")
        return reply.tool_call(
            index, tool_id=str(block.get("id", "")), name=str(block.get("name", ""))
        )
    if kind == "thinking":
        reply.start(index, kind, signature=str(block.get("signature") or ""))
        return reply.thinking(index, str(block.get("thinking") or ""))
    if kind == "redacted_thinking":
        reply.start(index, kind, text=str(block.get("data") or ""))
    elif is_server_block_type(kind):
        reply.start(index, kind, start=dict(block))
    else:
        reply.start(index, kind)
    return None


def _delta(reply: Assembly, index: int, delta: Mapping[str, Any]) -> StreamChunk | None:
    kind = delta.get("type")
    if kind == "text_delta":
        return reply.text(index, str(delta.get("text") or ""))
    if kind == "thinking_delta" or kind == "signature_delta":
        if reply.kind_at(index) != "thinking":
            raise _MalformedStream(
                f"a {kind} arrived for content block {index}, which is not a thinking block"
            )
        if kind == "signature_delta":
            reply.signature(index, str(delta.get("signature") or ""))
            return None
        return reply.thinking(index, str(delta.get("thinking") or ""))
    if kind == "input_json_delta":
        fragment = str(delta.get("partial_json") or "")
        if reply.is_server_block(index):
            # a server tool's input (server_tool_use): kept, not a client tool call
            reply.server_input(index, fragment)
            return None
        if reply.kind_at(index) != "tool_use":
            raise _MalformedStream(
                f"tool arguments arrived for content block {index}, which is not a tool_use block"
            )
        return reply.tool_call(index, fragment=fragment)
    return None  # citations and unknown deltas: not part of our chunk model
