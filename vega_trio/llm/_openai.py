"""The OpenAI-compatible backend: :class:`OpenAICompatibleLLM` on the official ``openai``
SDK (async), speaking the Chat Completions API that OpenAI, Ollama, vLLM and llama.cpp
servers share.

* The SDK's own retries are off (``max_retries=0``): vega-trio's retry policy is the
  only one, so retries never multiply (SPEC §3.2).
* Every failure of a call comes out as :class:`~vega_trio.LLMError` with its
  :class:`~vega_trio.ErrorClass` (see :mod:`._classify_openai`), the server's
  ``retry-after`` and the SDK exception as ``__cause__``.
* The conversation model is Anthropic-shaped (content blocks); here it becomes chat
  messages: the system prompt a ``system`` message, an assistant turn's ``tool_use``
  blocks its ``tool_calls``, and each ``tool_result`` block a ``role: tool`` message.
* Streams assemble each tool call's argument fragments by their ``index``; leaving the
  ``async with`` early (``break``, an exception, cancellation) closes the HTTP response.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias
from urllib.parse import urlsplit

import attrs
import httpx2
import openai
import trio
from openai.types.chat import ChatCompletion

from .._errors import ErrorClass, LLMError
from .._redact import redact, register_secret, register_url_secret
from ._classify_openai import OPENAI_CALL_FAILURES, openai_llm_error
from ._messages import ContentBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from ._protocol import (
    INVALID_JSON_KEY,
    LLMRequest,
    LLMResponse,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ToolInputChunk,
    Usage,
)
from ._sse import SSEDecoder

__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "LOCAL_SERVER_API_KEY",
    "MaxTokensField",
    "OpenAICompatibleLLM",
]

#: The model for requests that name none (a current OpenAI model with no announced
#: shutdown in the installed SDK's model list).
DEFAULT_OPENAI_MODEL: Final = "gpt-5.4-mini"

#: The key sent to a server at a custom base URL when no key is configured: local
#: servers (Ollama, vLLM, llama.cpp) ignore it, but the SDK refuses to start without one.
LOCAL_SERVER_API_KEY: Final = "no-key-needed"

#: The request field that carries ``max_tokens`` (see :class:`OpenAICompatibleLLM`).
MaxTokensField: TypeAlias = Literal["max_completion_tokens", "max_tokens"]

_OPENAI_HOST: Final = "api.openai.com"

# Bounds for awaited cleanup and for draining a finished stream.
_CLOSE_TIMEOUT: Final = 5.0
_DRAIN_READS: Final = 8


class OpenAICompatibleLLM:
    """An :class:`~vega_trio.llm.LLM` backend on the ``openai`` SDK's Chat Completions API.

    Works with OpenAI itself and with OpenAI-compatible servers: Ollama
    (``base_url="http://localhost:11434/v1"``), vLLM (``http://localhost:8000/v1``),
    llama.cpp's ``llama-server`` (``http://localhost:8080/v1``). Use it as
    ``async with OpenAICompatibleLLM(...) as llm:`` (or call :meth:`aclose`) so the
    connection pool is closed inside the Trio run.

    Args:
        api_key: the API key; ``None`` reads ``OPENAI_API_KEY``. With a custom base URL
            and no key anywhere, :data:`LOCAL_SERVER_API_KEY` is sent (local servers
            need none).
        base_url: the API's base URL, ``/v1`` included; ``None`` reads
            ``OPENAI_BASE_URL``, falling back to ``https://api.openai.com/v1``.
        default_model: the model for requests whose ``model`` is empty.
        timeout: seconds allowed per LLM call (SPEC §3.6): the whole of a blocking call,
            and the wait for a stream to start. When this backend builds the SDK client,
            it is also the client's connect and read timeout, so a stream that goes
            silent that long fails with ``TIMEOUT`` too.
        client: a ready SDK client to use instead of building one. Its retries are
            switched off (on a copy sharing its connection pool); the caller keeps
            ownership and closes it.
        max_tokens_field: which request field carries ``max_tokens``.
            ``"max_completion_tokens"`` is OpenAI's current name (``max_tokens`` is
            deprecated there and refused by reasoning models); ``"max_tokens"`` is the
            one every compatible server understands (Ollama knows only it). ``None``
            picks ``max_completion_tokens`` for ``api.openai.com`` and ``max_tokens``
            for any other server.

    Raises:
        ValueError: ``timeout`` is not positive, or ``client`` comes with
            ``api_key``/``base_url``.
        LLMError: (``AUTHENTICATION``) no API key for the OpenAI API itself: neither
            ``api_key`` nor ``OPENAI_API_KEY`` nor a custom base URL.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_model: str = DEFAULT_OPENAI_MODEL,
        timeout: float = 300.0,
        client: openai.AsyncOpenAI | None = None,
        max_tokens_field: MaxTokensField | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"OpenAICompatibleLLM timeout must be > 0 seconds, got {timeout!r}")
        if max_tokens_field not in (None, "max_completion_tokens", "max_tokens"):
            raise ValueError(
                f"OpenAICompatibleLLM max_tokens_field must be 'max_completion_tokens', "
                f"'max_tokens' or None, got {max_tokens_field!r}"
            )
        self.default_model = default_model
        self.timeout = float(timeout)
        if client is None:
            key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
            url = base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL")
            if not key and url:
                key = LOCAL_SERVER_API_KEY
            if not key:
                raise LLMError(
                    "OpenAICompatibleLLM found no API key for the OpenAI API: set "
                    "OPENAI_API_KEY or pass api_key=; for a local server (Ollama, vLLM, "
                    "llama.cpp) pass its base_url=, e.g. 'http://localhost:11434/v1'",
                    error_class=ErrorClass.AUTHENTICATION,
                )
            self._client = openai.AsyncOpenAI(
                api_key=key, base_url=url, timeout=self.timeout, max_retries=0
            )
            self._owns_client = True
        else:
            if api_key is not None or base_url is not None:
                raise ValueError(
                    "OpenAICompatibleLLM: pass either client= or api_key=/base_url=, not "
                    "both; configure the client you pass instead"
                )
            self._client = client if client.max_retries == 0 else client.with_options(max_retries=0)
            self._owns_client = False
        # NOTE: an explicit key is not in the environment; the redaction layer must know it
        # (a server may echo it back in an error body); so must a password in the base URL.
        register_url_secret(str(self._client.base_url))
        if self._client.api_key != LOCAL_SERVER_API_KEY:
            register_secret(self._client.api_key)
        if max_tokens_field is None:
            host = urlsplit(str(self._client.base_url)).hostname or ""
            max_tokens_field = "max_completion_tokens" if host == _OPENAI_HOST else "max_tokens"
        self.max_tokens_field: MaxTokensField = max_tokens_field

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client in use (with ``max_retries == 0``)."""
        return self._client

    @property
    def base_url(self) -> str:
        """Where requests go."""
        return str(self._client.base_url)

    async def aclose(self) -> None:
        """Close the connection pool (only when this backend built the client)."""
        if self._owns_client:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._client.close()

    async def __aenter__(self) -> OpenAICompatibleLLM:
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
            f"OpenAICompatibleLLM(base_url={redact(self.base_url)!r}, "
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
                completion = await self._client.chat.completions.create(**self._arguments(request))
        except trio.TooSlowError as exc:
            raise self._deadline_error("reply") from exc
        except OPENAI_CALL_FAILURES as exc:
            raise openai_llm_error(exc) from exc
        return self._response_from_completion(completion, request)

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[StreamChunk]]:
        """Open a streaming call; iterate the chunks inside the block.

        Yields :class:`TextChunk` and :class:`ToolInputChunk` as they arrive, then one
        :class:`MessageComplete`. Leaving the block early closes the HTTP response.

        Raises:
            LLMError: opening or reading the stream failed (also for an error object
                sent inside the stream); ``output_started`` says whether chunks had been
                yielded.
        """
        try:
            # NOTE: the deadline covers getting the response headers; afterwards the read
            # timeout bounds each wait for data, so a long generation is not cut off.
            with trio.fail_after(self.timeout):
                events = await self._client.chat.completions.create(
                    **self._arguments(request),
                    stream=True,
                    stream_options={"include_usage": True},
                )
        except trio.TooSlowError as exc:
            raise self._deadline_error("stream to start") from exc
        except OPENAI_CALL_FAILURES as exc:
            raise openai_llm_error(exc) from exc
        chunks = _ChunkStream(events=events, request_model=request.model or self.default_model)
        try:
            yield chunks
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await chunks.aclose()

    def _deadline_error(self, waited_for: str) -> LLMError:
        return LLMError(
            f"LLM call failed (timeout): no {waited_for} from {self.base_url} within "
            f"{self.timeout:g}s (the OpenAICompatibleLLM timeout); retry, or raise the "
            f"timeout for long generations",
            error_class=ErrorClass.TIMEOUT,
        )

    def _arguments(self, request: LLMRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": request.model or self.default_model,
            "messages": chat_messages(request.system, request.messages),
            self.max_tokens_field: request.max_tokens,
        }
        if request.tools:
            arguments["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.input_schema),
                    },
                }
                for tool in request.tools
            ]
        if request.temperature is not None:
            arguments["temperature"] = request.temperature
        return arguments

    def _response_from_completion(
        self, completion: ChatCompletion, request: LLMRequest
    ) -> LLMResponse:
        if not completion.choices:
            raise LLMError(
                f"LLM call failed (temporary): the reply from {self.base_url} has no "
                f"choices; retry the call",
                error_class=ErrorClass.TEMPORARY,
            )
        choice = completion.choices[0]
        content: list[ContentBlock] = []
        if choice.message.content:
            content.append(TextBlock(text=choice.message.content))
        for position, call in enumerate(choice.message.tool_calls or ()):
            function = getattr(call, "function", None)  # custom (non-function) tools: skip
            if function is None:
                continue
            content.append(
                ToolUseBlock(
                    id=call.id or _fallback_tool_id(position),
                    name=function.name,
                    input=_parse_arguments(function.arguments or ""),
                )
            )
        usage = completion.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return LLMResponse(
            content=tuple(content),
            model=completion.model or request.model or self.default_model,
            usage=_usage(
                prompt=usage.prompt_tokens if usage else 0,
                completion=usage.completion_tokens if usage else 0,
                cached=getattr(details, "cached_tokens", None) or 0,
            ),
            stop_reason=choice.finish_reason,
        )


# -- request mapping ---------------------------------------------------------------------


def chat_messages(system: str, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The Chat Completions form of a system prompt and a conversation.

    * ``system`` becomes a leading ``system`` message (omitted when empty);
    * an assistant turn's text is its ``content`` and its ``tool_use`` blocks are its
      ``tool_calls`` (arguments as a JSON string; arguments that did not parse are sent
      back as the model wrote them);
    * a user turn's ``tool_result`` blocks become ``role: tool`` messages, in order and
      before the turn's text, so they directly follow the assistant's ``tool_calls``.
      The chat API has no error flag, so a failed tool's result is prefixed ``Error: ``;
    * Anthropic's own blocks — ``thinking`` (signed for Anthropic only),
      ``redacted_thinking`` and server tool blocks (``server_tool_use``,
      ``web_search_tool_result``, ...) — are omitted: the Chat Completions API has no
      form for them and no other model could use them. They stay in the history.
    """
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for message in messages:
        text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
        if message.role == "assistant":
            calls = [
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": _arguments_text(block)},
                }
                for block in message.content
                if isinstance(block, ToolUseBlock)
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            elif not text:
                entry["content"] = ""
            out.append(entry)
            continue
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.tool_use_id,
                        "content": f"Error: {block.content}" if block.is_error else block.content,
                    }
                )
        if text or not message.tool_results:
            out.append({"role": "user", "content": text})
    return out


def _arguments_text(block: ToolUseBlock) -> str:
    raw = block.input.get(INVALID_JSON_KEY)
    if isinstance(raw, str) and len(block.input) == 1:
        return raw
    return json.dumps(dict(block.input))


# -- response mapping --------------------------------------------------------------------


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


def _usage(*, prompt: int, completion: int, cached: int) -> Usage:
    # NOTE: OpenAI counts cached prompt tokens inside prompt_tokens, while Usage (like the
    # Anthropic API) keeps cache reads apart from input_tokens; subtract, or the price
    # table would charge cached tokens twice.
    cached = max(0, min(cached, prompt))
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=max(0, completion),
        cache_read_input_tokens=cached,
    )


def _fallback_tool_id(index: int) -> str:
    # Some servers send tool calls without an id; the history needs one to pair results.
    return f"call_vega_{index}"


# -- streaming ---------------------------------------------------------------------------


@attrs.define(eq=False)
class _ToolCall:
    """A tool call being assembled from stream deltas."""

    index: int
    tool_id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)

    def finish(self) -> ToolUseBlock:
        return ToolUseBlock(
            id=self.tool_id or _fallback_tool_id(self.index),
            name=self.name,
            input=_parse_arguments("".join(self.arguments)),
        )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@attrs.define(eq=False)
class _ChunkStream:
    """Turns the SSE events of a streamed chat completion into :data:`StreamChunk` objects.

    A plain async iterator, not an async generator, so that nothing is left suspended
    for the garbage collector when the caller stops early; :meth:`aclose` releases the
    byte stream.
    """

    events: openai.AsyncStream[Any]
    request_model: str
    response: httpx2.Response = attrs.field(init=False)
    _raw: AsyncGenerator[bytes, None] = attrs.field(init=False)
    _decoder: SSEDecoder = attrs.field(factory=SSEDecoder, init=False)
    _pending: deque[tuple[str, str]] = attrs.field(factory=deque, init=False)
    _text: list[str] = attrs.field(factory=list, init=False)
    _calls: dict[int, _ToolCall] = attrs.field(factory=dict, init=False)
    _model: str = attrs.field(default="", init=False)
    _usage: Usage | None = attrs.field(default=None, init=False)
    _finish_reason: str | None = attrs.field(default=None, init=False)
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
        does not close the generator it iterates, and Trio warns about every async
        generator that is garbage-collected unfinished. Once the response is closed, the
        next read fails, and that failure finishes every generator of the chain; so read
        until it does.
        """
        self._finished = True
        await self.events.close()
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
                if self._complete:
                    return MessageComplete(response=self._response())
            if self._body_done:
                if self._finish_reason is not None:
                    # NOTE: some servers end the body after the finish_reason without
                    # "data: [DONE]"; the reply is whole, so accept it.
                    self._complete = True
                    return MessageComplete(response=self._response())
                self._finished = True
                raise LLMError(
                    f"LLM call failed (temporary): the chat completion stream from "
                    f"{self.response.request.url} ended before its end (the connection was "
                    f"closed early); retry the call",
                    error_class=ErrorClass.TEMPORARY,
                    output_started=self._output_started,
                )
            try:
                data = await self._raw.__anext__()
            except StopAsyncIteration:
                self._body_done = True
                self._pending.extend(self._decoder.close())
                continue
            except OPENAI_CALL_FAILURES as exc:
                self._finished = True
                raise openai_llm_error(exc, output_started=self._output_started) from exc
            try:
                self._pending.extend(self._decoder.feed(data))
            except ValueError as exc:
                raise self._malformed(str(exc)) from exc

    async def _drain(self) -> None:
        """Read what follows ``[DONE]`` (normally just the end of the body) so the
        connection can go back to the pool; bounded, and failures no longer matter."""
        try:
            for _ in range(_DRAIN_READS):
                await self._raw.__anext__()
        except StopAsyncIteration:
            pass
        except OPENAI_CALL_FAILURES:
            pass

    def _malformed(self, problem: str) -> LLMError:
        """The LLMError for a stream that breaks the SSE / Chat Completions protocol."""
        self._finished = True
        return LLMError(
            f"LLM call failed (temporary): the chat completion stream from "
            f"{self.response.request.url} is malformed: {problem}; retry the call",
            error_class=ErrorClass.TEMPORARY,
            output_started=self._output_started,
        )

    def _fail(self, error: object) -> LLMError:
        """The LLMError for an error object sent inside the stream (its cause: the SDK's
        ``APIError``, built as the SDK itself would)."""
        self._finished = True
        body = _mapping(error)
        message = body.get("message")
        sdk_error = openai.APIError(
            message
            if isinstance(message, str) and message
            else "An error occurred during streaming",
            self.response.request,
            body=dict(body) if body else error,
        )
        llm_error = openai_llm_error(sdk_error, output_started=self._output_started)
        llm_error.__cause__ = sdk_error
        return llm_error

    def _apply(self, name: str, data: str) -> StreamChunk | None:
        if not data:
            return None
        if data.strip() == "[DONE]":
            self._complete = True
            return None
        try:
            event = json.loads(data)
        except ValueError as exc:
            if name == "error":
                raise self._fail({"message": data}) from exc
            raise self._malformed(f"an event's data is not JSON: {exc}") from exc
        if not isinstance(event, dict):
            return None
        if name == "error" or "error" in event:
            raise self._fail(event.get("error", event))
        if isinstance(event.get("model"), str) and event["model"]:
            self._model = event["model"]
        usage = event.get("usage")
        if isinstance(usage, Mapping):
            details = _mapping(usage.get("prompt_tokens_details"))
            self._usage = _usage(
                prompt=_int(usage.get("prompt_tokens")) or 0,
                completion=_int(usage.get("completion_tokens")) or 0,
                cached=_int(details.get("cached_tokens")) or 0,
            )
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices:
            return None
        choice = _mapping(choices[0])
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self._finish_reason = reason
        return self._delta(_mapping(choice.get("delta")))

    def _delta(self, delta: Mapping[str, Any]) -> StreamChunk | None:
        # NOTE: one chunk carries text or tool-call fragments in practice; if a server
        # packs several tool-call fragments into one chunk, all are assembled, and the
        # informational ToolInputChunk reports the last one.
        chunk: StreamChunk | None = None
        for raw_call in delta.get("tool_calls") or ():
            call = _mapping(raw_call)
            index = _int(call.get("index"))
            if index is None:
                index = len(self._calls)
            tool = self._calls.setdefault(index, _ToolCall(index=index))
            if isinstance(call.get("id"), str) and call["id"]:
                tool.tool_id = call["id"]
            function = _mapping(call.get("function"))
            if isinstance(function.get("name"), str) and function["name"]:
                tool.name = function["name"]
            fragment = function.get("arguments")
            if isinstance(fragment, Mapping):  # a server sending parsed arguments
                fragment = json.dumps(dict(fragment))
            if isinstance(fragment, str) and fragment:
                tool.arguments.append(fragment)
                self._output_started = True
                chunk = ToolInputChunk(
                    index=index,
                    tool_use_id=tool.tool_id,
                    tool_name=tool.name,
                    partial_json=fragment,
                )
        text = delta.get("content")
        if isinstance(text, str) and text:
            self._text.append(text)
            self._output_started = True
            return TextChunk(text=text)
        return chunk

    def _response(self) -> LLMResponse:
        content: list[ContentBlock] = []
        text = "".join(self._text)
        if text:
            content.append(TextBlock(text=text))
        content.extend(call.finish() for _, call in sorted(self._calls.items()))
        return LLMResponse(
            content=tuple(content),
            model=self._model or self.request_model,
            usage=self._usage or Usage(),
            stop_reason=self._finish_reason,
        )
