"""A local, OpenAI-Chat-Completions-compatible HTTP server for tests: real HTTP and real
SSE over loopback, served by Trio and ``h11`` (no web framework).

Point the real ``openai`` SDK (or :class:`~vega_trio.llm.OpenAICompatibleLLM`) at
``server.base_url`` (it ends in ``/v1``, like an Ollama or vLLM URL) and script what
the "model" answers::

    async with open_fake_openai_server() as server:
        server.enqueue(
            FakeChatResponse.tool_call("add", {"a": 1, "b": 2}, fragments=5),
            FakeChatResponse.text("The sum is 3.", chunks=3),
        )
        async with OpenAICompatibleLLM(base_url=server.base_url) as llm:
            ...  # run the agent
        assert server.requests[0].body["max_tokens"] == 1024

``POST /v1/chat/completions`` is served both as a blocking JSON reply and, when the
request says ``"stream": true``, as a real SSE stream of ``chat.completion.chunk``
objects (``data: {...}``), a usage chunk when the request asks for one
(``stream_options.include_usage``) and ``data: [DONE]``. Failures are scriptable too:
HTTP errors with ``retry-after`` (:meth:`FakeChatResponse.error`), an error object
mid-stream (:meth:`FakeChatResponse.stream_error`), a dropped connection
(:meth:`FakeChatResponse.disconnect`) and a reply that never finishes
(:meth:`FakeChatResponse.stall`). Delays use :func:`trio.sleep`, so they run in virtual
time under :class:`trio.testing.MockClock`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Literal, TypeAlias

import attrs
import h11
import trio

from .._collapse import raise_collapsed
from ..llm._messages import TextBlock, ToolUseBlock
from ..llm._protocol import Usage
from ._fake_server import _format_number, _split
from ._http import (
    MAX_REQUEST_BODY,
    LoopbackServer,
    RecordedRequest,
    _encode,
    _Hangup,
    _send,
    _wait_for_hangup,
)

__all__ = [
    "ChatResponder",
    "FakeChatResponse",
    "FakeOpenAIServer",
    "open_fake_openai_server",
]

_CLOSE_TIMEOUT: Final = 2.0
_ROUTE: Final = "/v1/chat/completions"

# ``error.type`` / ``error.code`` the server sends for a status when none is scripted
# (the shapes OpenAI uses; compatible servers differ in detail).
_DEFAULT_ERRORS: Final[Mapping[int, tuple[str, str | None]]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("invalid_request_error", None),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "server_is_overloaded"),
    504: ("server_error", None),
}

#: The usage reported when a reply does not set one.
_DEFAULT_USAGE: Final = Usage(input_tokens=12, output_tokens=8)

ReplyBlock: TypeAlias = TextBlock | ToolUseBlock
FailureKind: TypeAlias = Literal["error_event", "disconnect", "stall"]


def _non_negative(_instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(
            f"FakeChatResponse.{attribute.name} must be a finite number >= 0, got {value}"
        )


@attrs.frozen(kw_only=True)
class ChatStreamFailure:
    """How a scripted reply breaks after ``after_chunks`` content deltas (text pieces and
    tool-argument fragments).

    ``kind`` is ``"error_event"`` (a ``data: {"error": {...}}`` chunk), ``"disconnect"``
    (the socket is closed) or ``"stall"`` (nothing more is sent until the client hangs up).
    """

    kind: FailureKind
    after_chunks: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    error_type: str = "server_error"
    error_code: str | None = None
    message: str = "The server had an error while processing your request."


@attrs.frozen(kw_only=True)
class FakeChatResponse:
    """One scripted reply of the fake OpenAI-compatible server.

    Build it with the class methods (:meth:`text`, :meth:`tool_call`, :meth:`message`,
    :meth:`error`, :meth:`stream_error`, :meth:`disconnect`, :meth:`stall`); tweak a
    built one with :func:`attrs.evolve`. Every reply works for blocking and streaming
    requests alike.

    Attributes:
        content: the text and tool calls the "model" answers with (the text blocks are
            joined into the message's ``content``; the tool calls become ``tool_calls``
            in order).
        text_chunks: how many deltas the text is split into.
        json_fragments: how many deltas each tool call's JSON arguments are split into.
        usage: the token counts reported: ``prompt_tokens`` is input plus cache reads,
            ``prompt_tokens_details.cached_tokens`` the cache reads (OpenAI's form).
        finish_reason: reported with the last choice (``None``: ``"tool_calls"`` when a
            tool is called, else ``"stop"``).
        model: the model reported back; ``None`` echoes the request's.
        status: the HTTP status; an error reply when it is 400 or more.
        error_type: ``error.type`` of an error reply.
        error_code: ``error.code`` of an error reply (e.g. ``"insufficient_quota"``).
        error_message: ``error.message`` of an error reply.
        headers: extra response headers, e.g. ``("retry-after", "3")``.
        first_byte_delay: seconds (``trio.sleep``) before the status line is sent.
        chunk_delay: seconds (``trio.sleep``) before each streamed content delta.
        failure: how the reply breaks, if it does.
        raw_tool_arguments: ``(tool call id, text)`` pairs: send exactly this text as that
            call's arguments instead of its ``input`` as JSON (to send malformed JSON).
        send_done: whether a stream ends with ``data: [DONE]`` (some servers omit it).
    """

    content: tuple[ReplyBlock, ...] = ()
    text_chunks: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    json_fragments: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    usage: Usage = attrs.field(factory=lambda: _DEFAULT_USAGE)
    finish_reason: str | None = None
    model: str | None = None
    status: int = attrs.field(
        default=200,
        validator=attrs.validators.and_(attrs.validators.ge(200), attrs.validators.le(599)),
    )
    error_type: str | None = None
    error_code: str | None = None
    error_message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    first_byte_delay: float = attrs.field(default=0.0, validator=_non_negative)
    chunk_delay: float = attrs.field(default=0.0, validator=_non_negative)
    failure: ChatStreamFailure | None = None
    raw_tool_arguments: tuple[tuple[str, str], ...] = ()
    send_done: bool = True

    @classmethod
    def text(
        cls,
        text: str,
        *,
        chunks: int = 1,
        usage: Usage | None = None,
        finish_reason: str = "stop",
        model: str | None = None,
        first_byte_delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> FakeChatResponse:
        """A plain text answer, streamed as ``chunks`` content deltas."""
        return cls(
            content=(TextBlock(text=text),),
            text_chunks=chunks,
            usage=usage if usage is not None else _DEFAULT_USAGE,
            finish_reason=finish_reason,
            model=model,
            first_byte_delay=first_byte_delay,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any],
        *,
        id: str | None = None,
        fragments: int = 1,
        text_before: str = "",
        raw_arguments: str | None = None,
        usage: Usage | None = None,
        model: str | None = None,
    ) -> FakeChatResponse:
        """The model calls function ``name`` with ``arguments`` (finish reason
        ``tool_calls``).

        Args:
            name: the function's name.
            arguments: the arguments; streamed as JSON split into ``fragments`` pieces.
            id: the tool call id; a fresh ``call_fake_…`` id when omitted.
            fragments: how many pieces the JSON arguments are split into.
            text_before: text the model writes before calling (omitted if empty).
            raw_arguments: send exactly this text as the arguments instead of
                ``arguments`` as JSON (e.g. ``'{"a": 1'`` to send invalid JSON).
            usage: token counts to report.
            model: reported model; ``None`` echoes the request's.
        """
        call_id = id or _fresh_call_id()
        blocks: list[ReplyBlock] = [TextBlock(text=text_before)] if text_before else []
        blocks.append(ToolUseBlock(id=call_id, name=name, input=dict(arguments)))
        return cls(
            content=tuple(blocks),
            json_fragments=fragments,
            raw_tool_arguments=() if raw_arguments is None else ((call_id, raw_arguments),),
            usage=usage if usage is not None else _DEFAULT_USAGE,
            finish_reason="tool_calls",
            model=model,
        )

    @classmethod
    def message(
        cls,
        content: Iterable[ReplyBlock],
        *,
        text_chunks: int = 1,
        json_fragments: int = 1,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        model: str | None = None,
    ) -> FakeChatResponse:
        """Any mix of text and tool calls (several calls in one turn, say)."""
        return cls(
            content=tuple(content),
            text_chunks=text_chunks,
            json_fragments=json_fragments,
            usage=usage if usage is not None else _DEFAULT_USAGE,
            finish_reason=finish_reason,
            model=model,
        )

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "",
        *,
        error_type: str | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        headers: Iterable[tuple[str, str]] = (),
        first_byte_delay: float = 0.0,
    ) -> FakeChatResponse:
        """An HTTP error reply with an OpenAI error body
        (``{"error": {"message", "type", "param", "code"}}``).

        Examples: ``error(429, retry_after=3)``, ``error(503)``, an exhausted quota
        ``error(429, error_type="insufficient_quota", error_code="insufficient_quota")``.

        Args:
            status: the HTTP status, 400 to 599.
            message: ``error.message``; a default naming the status when empty.
            error_type: ``error.type``; derived from the status when omitted.
            error_code: ``error.code``; derived from the status when omitted.
            retry_after: sends ``retry-after: <seconds>``.
            retry_after_ms: sends ``retry-after-ms: <milliseconds>``.
            headers: further response headers.
            first_byte_delay: seconds before the server answers.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"FakeChatResponse.error needs a status from 400 to 599, got {status}")
        extra = list(headers)
        if retry_after is not None:
            extra.append(("retry-after", _format_number(retry_after)))
        if retry_after_ms is not None:
            extra.append(("retry-after-ms", _format_number(retry_after_ms)))
        default_type, default_code = _DEFAULT_ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        resolved_type = error_type or default_type
        return cls(
            status=status,
            error_type=resolved_type,
            error_code=error_code if error_code is not None else default_code,
            error_message=message or f"fake server: scripted {status} {resolved_type}",
            headers=tuple(extra),
            first_byte_delay=first_byte_delay,
        )

    @classmethod
    def stream_error(
        cls,
        *,
        after_chunks: int = 0,
        error_type: str = "server_error",
        error_code: str | None = None,
        message: str = "The server had an error while processing your request.",
        reply: FakeChatResponse | None = None,
    ) -> FakeChatResponse:
        """A stream that breaks with ``data: {"error": {...}}`` after ``after_chunks``
        deltas. A blocking request gets an HTTP 500 with that error instead."""
        base = reply if reply is not None else _default_partial_reply()
        failure = ChatStreamFailure(
            kind="error_event",
            after_chunks=after_chunks,
            error_type=error_type,
            error_code=error_code,
            message=message,
        )
        return attrs.evolve(base, failure=failure)

    @classmethod
    def disconnect(
        cls, *, after_chunks: int = 0, reply: FakeChatResponse | None = None
    ) -> FakeChatResponse:
        """The server closes the connection after ``after_chunks`` content deltas; a
        blocking request sees the connection closed with no reply at all."""
        base = reply if reply is not None else _default_partial_reply()
        return attrs.evolve(
            base, failure=ChatStreamFailure(kind="disconnect", after_chunks=after_chunks)
        )

    @classmethod
    def stall(
        cls, *, after_chunks: int = 0, reply: FakeChatResponse | None = None
    ) -> FakeChatResponse:
        """The server sends ``after_chunks`` content deltas, then nothing more until the
        client hangs up (recorded in :attr:`FakeOpenAIServer.aborted`). With
        ``after_chunks=0`` a blocking request never gets its status line."""
        base = reply if reply is not None else _default_partial_reply()
        return attrs.evolve(
            base, failure=ChatStreamFailure(kind="stall", after_chunks=after_chunks)
        )

    def resolved_finish_reason(self) -> str:
        """The finish reason sent: the scripted one, else by whether a tool is called."""
        if self.finish_reason is not None:
            return self.finish_reason
        calls_tool = any(isinstance(b, ToolUseBlock) for b in self.content)
        return "tool_calls" if calls_tool else "stop"


def _default_partial_reply() -> FakeChatResponse:
    return FakeChatResponse.text("partial output that never completes", chunks=4)


_call_ids = itertools.count(1)
_completion_ids = itertools.count(1)
_request_ids = itertools.count(1)


def _fresh_call_id() -> str:
    return f"call_fake_{next(_call_ids):06d}"


#: Builds a reply for a request's parsed JSON body when the queue is empty.
ChatResponder: TypeAlias = Callable[[Any], FakeChatResponse]


class _Drop(Exception):
    """The script says: close the connection now, without finishing the reply."""


@attrs.define(eq=False)
class FakeOpenAIServer(LoopbackServer):
    """A fake OpenAI-compatible Chat Completions API on loopback.

    Run it with ``server = await nursery.start(FakeOpenAIServer().serve)`` or
    ``async with open_fake_openai_server() as server``. Replies come from the FIFO queue
    filled by :meth:`enqueue`, then from ``responder``; with neither, the server answers
    500 ``"fake server: no scripted response left"``.

    Attributes:
        host: the address to bind (loopback by default).
        port: the port to bind; 0 picks a free one.
        responder: called with the request's JSON body when the queue is empty.
        api_key: when set, requests must carry ``Authorization: Bearer <api_key>`` or get
            a 401 ``invalid_api_key``.
        requests: every ``/v1/chat/completions`` request received, in order.
        aborted: the requests whose client hung up before their reply was complete.
        connections: how many TCP connections have been accepted (keep-alive reuses one).
    """

    _base_path = "/v1"
    _factory = "open_fake_openai_server()"

    responder: ChatResponder | None = None
    api_key: str | None = None
    _queue: deque[FakeChatResponse] = attrs.field(factory=deque, init=False)

    def enqueue(self, *responses: FakeChatResponse) -> None:
        """Append replies to the FIFO queue; each request consumes one."""
        for response in responses:
            if not isinstance(response, FakeChatResponse):
                raise TypeError(
                    f"FakeOpenAIServer.enqueue takes FakeChatResponse objects, got "
                    f"{type(response).__name__}; build one with FakeChatResponse.text(...) "
                    f"and friends"
                )
        self._queue.extend(responses)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        return len(self._queue)

    async def _answer(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        request: RecordedRequest,
        *,
        too_large: bool,
    ) -> bool:
        """Reply to one request; returns whether the connection may be kept open."""
        path = request.path.split("?", 1)[0]
        if path != _ROUTE:
            body = _error_body("invalid_request_error", f"fake server: no route for {path}")
            await _send_json(connection, stream, 404, body)
            return True
        if request.method != "POST":
            body = _error_body("invalid_request_error", f"fake server: {_ROUTE} takes POST")
            await _send_json(connection, stream, 405, body, headers=[("allow", "POST")])
            return True
        self.requests.append(request)
        self._notify()
        if too_large:
            too_big = f"fake server: request body exceeds {MAX_REQUEST_BODY} bytes"
            await _send_json(connection, stream, 413, _error_body("invalid_request_error", too_big))
            return False
        problem = _validate_body(request.body)
        if problem is not None:
            await _send_json(connection, stream, 400, _error_body("invalid_request_error", problem))
            return True
        if self.api_key is not None and _bearer(request.headers) != self.api_key:
            body = _error_body(
                "invalid_request_error", "fake server: incorrect API key", "invalid_api_key"
            )
            await _send_json(connection, stream, 401, body)
            return True

        reply = self._next_reply(request)
        if reply.first_byte_delay:
            await trio.sleep(reply.first_byte_delay)
        try:
            if reply.status >= 400:
                body = _error_body(
                    reply.error_type or "server_error", reply.error_message, reply.error_code
                )
                await _send_json(connection, stream, reply.status, body, headers=reply.headers)
                return True
            model = reply.model or str(request.body.get("model"))
            if request.stream:
                usage_wanted = _mapping(request.body.get("stream_options")).get("include_usage")
                return await self._stream_reply(
                    connection, stream, reply, model, include_usage=usage_wanted is True
                )
            return await self._blocking_reply(connection, stream, reply, model)
        except (trio.BrokenResourceError, trio.ClosedResourceError, _Hangup):
            self.aborted.append(request)
            self._notify()
            return False
        except _Drop:
            return False

    def _next_reply(self, request: RecordedRequest) -> FakeChatResponse:
        if self._queue:
            return self._queue.popleft()
        if self.responder is None:
            return FakeChatResponse.error(
                500,
                "fake server: no scripted response left; enqueue() more FakeChatResponse "
                "objects or pass a responder",
            )
        try:
            reply = self.responder(request.body)
        except Exception as exc:  # a bug in the test's responder: say so in the reply
            return FakeChatResponse.error(
                500, f"fake server: the responder raised {type(exc).__name__}: {exc}"
            )
        if not isinstance(reply, FakeChatResponse):
            return FakeChatResponse.error(
                500,
                f"fake server: the responder returned {type(reply).__name__}, not a "
                f"FakeChatResponse",
            )
        return reply

    async def _blocking_reply(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        reply: FakeChatResponse,
        model: str,
    ) -> bool:
        failure = reply.failure
        if failure is not None:
            if failure.kind == "disconnect":
                raise _Drop  # close with no reply at all
            if failure.kind == "stall":
                await _wait_for_hangup(stream)
                raise _Hangup
            body = _error_body(failure.error_type, failure.message, failure.error_code)
            await _send_json(connection, stream, 500, body)
            return True
        await _send_json(
            connection, stream, 200, _completion_body(reply, model), headers=reply.headers
        )
        return True

    async def _stream_reply(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        reply: FakeChatResponse,
        model: str,
        *,
        include_usage: bool,
    ) -> bool:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-request-id", _fresh_request_id()),
            *reply.headers,
        ]
        await _send(connection, stream, h11.Response(status_code=200, headers=_encode(headers)))
        deltas_sent = 0
        failure = reply.failure
        chunks = _stream_chunks(reply, model, include_usage=include_usage)
        # NOTE: the content deltas come first; a failure scheduled after more deltas than
        # the reply has strikes at the first chunk after them (the finish chunk).
        last_delta = max((i for i, (_, is_delta) in enumerate(chunks) if is_delta), default=0)
        for position, (data, is_delta) in enumerate(chunks):
            at_end = position > last_delta and not is_delta and position > 0
            if failure is not None and (
                (is_delta and deltas_sent == failure.after_chunks) or at_end
            ):
                await self._fail_stream(connection, stream, failure)
                return False
            if is_delta and reply.chunk_delay:
                await trio.sleep(reply.chunk_delay)
            if data is None:
                if reply.send_done:
                    await _send(connection, stream, h11.Data(data=b"data: [DONE]\n\n"))
                continue
            await _send(connection, stream, h11.Data(data=_sse(data)))
            if is_delta:
                deltas_sent += 1
        await _send(connection, stream, h11.EndOfMessage())
        return True

    async def _fail_stream(
        self, connection: h11.Connection, stream: trio.SocketStream, failure: ChatStreamFailure
    ) -> None:
        if failure.kind == "error_event":
            event = _error_body(failure.error_type, failure.message, failure.error_code)
            await _send(connection, stream, h11.Data(data=_sse(event)))
            await _send(connection, stream, h11.EndOfMessage())
            return
        if failure.kind == "stall":
            await _wait_for_hangup(stream)
            raise _Hangup
        raise _Drop


# -- wire helpers ---------------------------------------------------------------------


def _fresh_request_id() -> str:
    return f"req_fake_{next(_request_ids):06d}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


async def _send_json(
    connection: h11.Connection,
    stream: trio.SocketStream,
    status: int,
    body: Mapping[str, Any],
    *,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    payload = json.dumps(body).encode()
    all_headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(payload))),
        ("x-request-id", _fresh_request_id()),
        *headers,
    ]
    await _send(connection, stream, h11.Response(status_code=status, headers=_encode(all_headers)))
    await _send(connection, stream, h11.Data(data=payload))
    await _send(connection, stream, h11.EndOfMessage())


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _validate_body(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return "fake server: the request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "fake server: model: field required (a non-empty string)"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "fake server: messages: field required (a non-empty list)"
    for field in ("max_tokens", "max_completion_tokens"):
        if field in body:
            value = body[field]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return f"fake server: {field}: must be an integer >= 1"
    return None


def _error_body(error_type: str, message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens + usage.cache_read_input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.cache_read_input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
    }


def _arguments(reply: FakeChatResponse, call: ToolUseBlock) -> str:
    raw = dict(reply.raw_tool_arguments).get(call.id)
    return raw if raw is not None else json.dumps(dict(call.input))


def _completion_body(reply: FakeChatResponse, model: str) -> dict[str, Any]:
    text = "".join(b.text for b in reply.content if isinstance(b, TextBlock))
    calls = [b for b in reply.content if isinstance(b, ToolUseBlock)]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments(reply, call)},
            }
            for call in calls
        ]
    return {
        "id": f"chatcmpl-fake{next(_completion_ids):06d}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.resolved_finish_reason(),
                "logprobs": None,
            }
        ],
        "usage": _usage_dict(reply.usage),
    }


def _stream_chunks(
    reply: FakeChatResponse, model: str, *, include_usage: bool
) -> list[tuple[dict[str, Any] | None, bool]]:
    """The streamed chunks of a reply: ``(chunk, is a content delta)``; ``None`` stands
    for ``data: [DONE]``."""
    completion_id = f"chatcmpl-fake{next(_completion_ids):06d}"

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    out: list[tuple[dict[str, Any] | None, bool]] = [
        (chunk({"role": "assistant", "content": ""}), False)
    ]
    text = "".join(b.text for b in reply.content if isinstance(b, TextBlock))
    out.extend((chunk({"content": piece}), True) for piece in _split(text, reply.text_chunks))
    calls = [b for b in reply.content if isinstance(b, ToolUseBlock)]
    for index, call in enumerate(calls):
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        out.append((chunk({"tool_calls": [opening]}), False))
        out.extend(
            (chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), True)
            for piece in _split(_arguments(reply, call), reply.json_fragments)
        )
    out.append((chunk({}, reply.resolved_finish_reason()), False))
    if include_usage:
        usage_chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": _usage_dict(reply.usage),
        }
        out.append((usage_chunk, False))
    out.append((None, False))
    return out


def _sse(data: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


@asynccontextmanager
async def open_fake_openai_server(
    *responses: FakeChatResponse,
    responder: ChatResponder | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[FakeOpenAIServer]:
    """Run a :class:`FakeOpenAIServer` for the duration of the block.

    Args:
        *responses: replies to enqueue right away.
        responder: builds replies from the request body once the queue is empty.
        api_key: when set, the bearer token requests must present.
        host: the address to bind.
        port: the port to bind; 0 picks a free one.

    Yields:
        The serving server; ``server.base_url`` (ending in ``/v1``) is where to point
        the client.
    """
    server = FakeOpenAIServer(host=host, port=port, responder=responder, api_key=api_key)
    server.enqueue(*responses)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel(reason="open_fake_openai_server: block exited")
    except BaseExceptionGroup as group:
        # NOTE: unwrap the group our own nursery made around a single error, so the
        # caller's `except SomeError` works; real multi-failures stay groups.
        raise_collapsed(group)
