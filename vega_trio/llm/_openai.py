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
from collections.abc import AsyncIterator, Mapping
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
    StreamChunk,
    Usage,
)
from ._stream import Assembly, ChunkStream, _MalformedStream, as_int, as_mapping, parse_arguments

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

# The bound for awaited cleanup.
_CLOSE_TIMEOUT: Final = 5.0


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
        chunks = ChunkStream(
            events=events,
            dialect=_ChatEvents(request=events.response.request),
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
                    input=parse_arguments(function.arguments or ""),
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
class _ChatEvents:
    """What the Chat Completions stream's chunks mean (the :class:`~._stream.Dialect`
    of :class:`OpenAICompatibleLLM`). The reply's text is one block, before the tool
    calls (which keep their own indexes)."""

    request: httpx2.Request
    name: str = "the chat completion stream"
    failures: tuple[type[BaseException], ...] = OPENAI_CALL_FAILURES
    _calls: set[int] = attrs.field(factory=set)

    def read_error(self, exc: BaseException, *, output_started: bool) -> LLMError:
        return openai_llm_error(exc, output_started=output_started)

    def ended_early(self, reply: Assembly) -> str | None:
        # NOTE: some servers end the body after the finish_reason without
        # "data: [DONE]"; the reply is whole, so accept it.
        return None if reply.stop_reason is not None else "its end"

    def finish(self, reply: Assembly, request_model: str) -> LLMResponse:
        return reply.response(request_model, tool_id=_fallback_tool_id)

    def _fail(self, error: object, reply: Assembly) -> LLMError:
        """The LLMError for an error object sent inside the stream (its cause: the SDK's
        ``APIError``, built as the SDK itself would)."""
        body = as_mapping(error)
        message = body.get("message")
        sdk_error = openai.APIError(
            message
            if isinstance(message, str) and message
            else "An error occurred during streaming",
            self.request,
            body=dict(body) if body else error,
        )
        llm_error = openai_llm_error(sdk_error, output_started=reply.output_started)
        llm_error.__cause__ = sdk_error
        return llm_error

    def apply(self, event: str, data: str, reply: Assembly) -> StreamChunk | None:
        if not data:
            return None
        if data.strip() == "[DONE]":
            reply.complete = True
            return None
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            if event == "error":
                raise self._fail({"message": data}, reply) from exc
            raise _MalformedStream(f"an event's data is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            return None
        if event == "error" or "error" in parsed:
            raise self._fail(parsed.get("error", parsed), reply)
        if isinstance(parsed.get("model"), str) and parsed["model"]:
            reply.model = parsed["model"]
        usage = parsed.get("usage")
        if isinstance(usage, Mapping):
            details = as_mapping(usage.get("prompt_tokens_details"))
            counts = _usage(
                prompt=as_int(usage.get("prompt_tokens")) or 0,
                completion=as_int(usage.get("completion_tokens")) or 0,
                cached=as_int(details.get("cached_tokens")) or 0,
            )
            reply.usage(attrs.asdict(counts))
        choices = parsed.get("choices")
        if not isinstance(choices, list) or not choices:
            return None
        choice = as_mapping(choices[0])
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            reply.stop_reason = reason
        return self._delta(as_mapping(choice.get("delta")), reply)

    def _delta(self, delta: Mapping[str, Any], reply: Assembly) -> StreamChunk | None:
        # NOTE: one chunk carries text or tool-call fragments in practice; if a server
        # packs several tool-call fragments into one chunk, all are assembled, and the
        # informational ToolInputChunk reports the last one.
        chunk: StreamChunk | None = None
        for raw_call in delta.get("tool_calls") or ():
            call = as_mapping(raw_call)
            index = as_int(call.get("index"))
            if index is None:
                index = len(self._calls)
            self._calls.add(index)
            tool_id = call.get("id")
            function = as_mapping(call.get("function"))
            name = function.get("name")
            fragment = function.get("arguments")
            if isinstance(fragment, Mapping):  # a server sending parsed arguments
                fragment = json.dumps(dict(fragment))
            fragment_chunk = reply.tool_call(
                index,
                tool_id=tool_id if isinstance(tool_id, str) else "",
                name=name if isinstance(name, str) else "",
                fragment=fragment if isinstance(fragment, str) else "",
            )
            if fragment_chunk is not None:
                chunk = fragment_chunk
        text = delta.get("content")
        if isinstance(text, str) and text:
            return reply.text(_TEXT_INDEX, text)
        return chunk


#: Where the reply's text is kept among the tool calls (which count from 0): first.
_TEXT_INDEX: Final = -1
