"""A local, Anthropic-wire-compatible HTTP server for tests: real HTTP and real SSE over
loopback, served by Trio and ``h11`` (no web framework).

Point the real ``anthropic`` SDK (or :class:`~vega_trio.llm.AnthropicLLM`) at
``server.base_url`` and script what the "model" answers::

    async with open_fake_anthropic_server() as server:
        server.enqueue(
            FakeResponse.tool_use("add", {"a": 1, "b": 2}, fragments=5),
            FakeResponse.text("The sum is 3.", chunks=3),
        )
        async with AnthropicLLM(api_key="test", base_url=server.base_url) as llm:
            ...  # run the agent
        assert server.requests[0].body["max_tokens"] == 1024

``POST /v1/messages`` is served both as a blocking JSON reply and, when the request
says ``"stream": true``, as a real SSE stream (``message_start``, ``ping``,
``content_block_start`` / ``content_block_delta`` / ``content_block_stop``,
``message_delta`` with usage, ``message_stop``). Replies may carry extended thinking
(:meth:`FakeResponse.thinking_block`: ``thinking_delta`` + ``signature_delta`` when
streamed), redacted thinking and server tool blocks (:class:`~vega_trio.llm.ServerBlock`:
a ``server_tool_use`` streams its input as ``input_json_delta``, a result block arrives
whole in ``content_block_start``). Like the API, the server refuses (400) a request
whose thinking block carries one of its signatures but not the thinking it was issued
for. Failures are scriptable too: HTTP
errors with ``retry-after`` (:meth:`FakeResponse.error`), an SSE ``error`` event
mid-stream (:meth:`FakeResponse.stream_error`), a dropped connection
(:meth:`FakeResponse.disconnect`) and a reply that never finishes
(:meth:`FakeResponse.stall`). Delays use :func:`trio.sleep`, so they run in virtual
time under :class:`trio.testing.MockClock`.

Size: one fake of the Anthropic Messages API: the scripted replies
(:class:`FakeResponse`), the server and the wire format (JSON bodies, the SSE event sequence)
must agree with each other, so they are read together; the HTTP plumbing is shared in
``_http.py``.
"""

from __future__ import annotations

import hashlib
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
from ..llm._messages import (
    RedactedThinkingBlock,
    ServerBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    block_to_dict,
)
from ..llm._protocol import Usage
from ._http import (
    MAX_REQUEST_BODY,
    LoopbackServer,
    RecordedRequest,
    _encode,
    _Hangup,
    _send,
    _wait_for_hangup,
)
from ._prompt_cache import MAX_BREAKPOINTS, PromptCache, count_breakpoints

__all__ = [
    "FakeAnthropicServer",
    "FakeResponse",
    "RecordedRequest",
    "Responder",
    "open_fake_anthropic_server",
]

_DEFAULT_ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# The HTTP status the API uses for an error type (non-streaming form of a stream error).
_STATUS_OF_ERROR_TYPE: Final[Mapping[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

#: The usage reported when a reply does not set one.
_DEFAULT_USAGE: Final = Usage(input_tokens=12, output_tokens=8)

ReplyBlock: TypeAlias = (
    TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock | ServerBlock
)

_SIGNATURE_PREFIX: Final = "fakesig_"


def fake_signature(thinking: str) -> str:
    """The signature the fake server gives ``thinking`` (and checks when it comes back)."""
    return _SIGNATURE_PREFIX + hashlib.sha256(thinking.encode()).hexdigest()[:32]


FailureKind: TypeAlias = Literal["error_event", "disconnect", "stall"]


def _positive_int(name: str) -> Callable[[Any, attrs.Attribute[int], int], None]:
    def check(_instance: Any, _attribute: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError(f"FakeResponse.{name} must be at least 1, got {value}")

    return check


def _non_negative(_instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"FakeResponse.{attribute.name} must be a finite number >= 0, got {value}")


@attrs.frozen(kw_only=True)
class StreamFailure:
    """How a scripted reply breaks after ``after_chunks`` content deltas.

    ``kind`` is ``"error_event"`` (an SSE ``error`` event), ``"disconnect"`` (the
    socket is closed) or ``"stall"`` (nothing more is sent until the client hangs up).
    """

    kind: FailureKind
    after_chunks: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


@attrs.frozen(kw_only=True)
class FakeResponse:
    """One scripted reply of the fake server.

    Build it with the class methods (:meth:`text`, :meth:`tool_use`, :meth:`message`,
    :meth:`error`, :meth:`stream_error`, :meth:`disconnect`, :meth:`stall`); tweak a
    built one with :func:`attrs.evolve`. Every reply works for blocking and streaming
    requests alike.

    Attributes:
        content: the blocks the "model" answers with.
        text_chunks: how many ``text_delta`` events each text block is split into.
        json_fragments: how many ``input_json_delta`` events each tool call's JSON
            arguments are split into.
        usage: the token counts reported (input and cache tokens in
            ``message_start``, output tokens in ``message_delta``).
        stop_reason: reported in ``message_delta`` (and the blocking reply).
        model: the model reported back; ``None`` echoes the request's model.
        status: the HTTP status; an error reply when it is 400 or more.
        error_type: ``error.type`` of an error reply.
        error_message: ``error.message`` of an error reply.
        error_code: ``error.details.error_code`` of an error reply (the API's stable
            cause code, e.g. ``"enforced_spend_limit_reached"``).
        headers: extra response headers, e.g. ``("retry-after", "3")``.
        first_byte_delay: seconds (``trio.sleep``) before the status line is sent.
        chunk_delay: seconds (``trio.sleep``) before each streamed content delta.
        failure: how the reply breaks, if it does.
        raw_tool_arguments: ``(tool_use id, text)`` pairs: stream exactly this text as
            that tool call's arguments instead of its ``input`` as JSON (to send
            malformed JSON, say). Blocking replies always carry ``input``.
    """

    content: tuple[ReplyBlock, ...] = ()
    text_chunks: int = attrs.field(default=1, validator=_positive_int("text_chunks"))
    json_fragments: int = attrs.field(default=1, validator=_positive_int("json_fragments"))
    usage: Usage = attrs.field(factory=lambda: _DEFAULT_USAGE)
    stop_reason: str | None = "end_turn"
    model: str | None = None
    status: int = attrs.field(
        default=200,
        validator=attrs.validators.and_(attrs.validators.ge(200), attrs.validators.le(599)),
    )
    error_type: str | None = None
    error_message: str = ""
    error_code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    first_byte_delay: float = attrs.field(default=0.0, validator=_non_negative)
    chunk_delay: float = attrs.field(default=0.0, validator=_non_negative)
    failure: StreamFailure | None = None
    raw_tool_arguments: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(
        cls,
        text: str,
        *,
        chunks: int = 1,
        usage: Usage | None = None,
        stop_reason: str | None = "end_turn",
        model: str | None = None,
        first_byte_delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> FakeResponse:
        """A plain text answer, streamed as ``chunks`` text deltas.

        Args:
            text: the answer.
            chunks: how many ``text_delta`` events carry it (fewer if the text is shorter).
            usage: token counts to report; a small default when omitted.
            stop_reason: reported stop reason.
            model: reported model; ``None`` echoes the request's.
            first_byte_delay: seconds before the server starts answering.
            chunk_delay: seconds before each text delta.
        """
        return cls(
            content=(TextBlock(text=text),),
            text_chunks=chunks,
            usage=usage if usage is not None else _DEFAULT_USAGE,
            stop_reason=stop_reason,
            model=model,
            first_byte_delay=first_byte_delay,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def tool_use(
        cls,
        name: str,
        input: Mapping[str, Any],
        *,
        id: str | None = None,
        fragments: int = 1,
        text_before: str = "",
        text_chunks: int = 1,
        raw_arguments: str | None = None,
        usage: Usage | None = None,
        model: str | None = None,
        first_byte_delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> FakeResponse:
        """The model calls tool ``name`` with ``input`` (stop reason ``tool_use``).

        Args:
            name: the tool's name.
            input: the arguments; streamed as JSON split into ``fragments``
                ``input_json_delta`` events.
            id: the tool_use id; a fresh ``toolu_fake_…`` id when omitted.
            fragments: how many pieces the JSON arguments are split into.
            text_before: text the model writes before calling the tool (omitted if empty).
            text_chunks: how many deltas ``text_before`` is split into.
            raw_arguments: stream exactly this text as the arguments instead of
                ``input`` as JSON (e.g. ``'{"a": 1'`` to send invalid JSON).
            usage: token counts to report.
            model: reported model; ``None`` echoes the request's.
            first_byte_delay: seconds before the server starts answering.
            chunk_delay: seconds before each delta.
        """
        blocks: list[ReplyBlock] = []
        if text_before:
            blocks.append(TextBlock(text=text_before))
        tool_id = id or _fresh_tool_id()
        blocks.append(ToolUseBlock(id=tool_id, name=name, input=dict(input)))
        return cls(
            raw_tool_arguments=() if raw_arguments is None else ((tool_id, raw_arguments),),
            content=tuple(blocks),
            text_chunks=text_chunks,
            json_fragments=fragments,
            usage=usage if usage is not None else _DEFAULT_USAGE,
            stop_reason="tool_use",
            model=model,
            first_byte_delay=first_byte_delay,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def message(
        cls,
        content: Iterable[ReplyBlock],
        *,
        text_chunks: int = 1,
        json_fragments: int = 1,
        usage: Usage | None = None,
        stop_reason: str | None = None,
        model: str | None = None,
        first_byte_delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> FakeResponse:
        """Any mix of text and tool_use blocks (several tool calls in one turn, say).

        ``stop_reason`` defaults to ``"tool_use"`` when a tool is called, else
        ``"end_turn"``.
        """
        blocks = tuple(content)
        if stop_reason is None:
            calls_tool = any(isinstance(b, ToolUseBlock) for b in blocks)
            stop_reason = "tool_use" if calls_tool else "end_turn"
        return cls(
            content=blocks,
            text_chunks=text_chunks,
            json_fragments=json_fragments,
            usage=usage if usage is not None else _DEFAULT_USAGE,
            stop_reason=stop_reason,
            model=model,
            first_byte_delay=first_byte_delay,
            chunk_delay=chunk_delay,
        )

    @staticmethod
    def thinking_block(thinking: str) -> ThinkingBlock:
        """A thinking block signed by the fake server: sent back with other text, the
        server refuses the request (400) as the API does."""
        return ThinkingBlock(thinking=thinking, signature=fake_signature(thinking))

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
    ) -> FakeResponse:
        """An HTTP error reply with the API's error body.

        Examples: ``error(429, retry_after=3)``, ``error(529)`` (``overloaded_error``),
        ``error(500)``, a spend cap ``error(429, error_code="enforced_spend_limit_reached")``.

        Args:
            status: the HTTP status, 400 to 599.
            message: ``error.message``; a default naming the status when empty.
            error_type: ``error.type``; derived from the status when omitted.
            error_code: ``error.details.error_code``, when the cause has a stable code.
            retry_after: sends ``retry-after: <seconds>``.
            retry_after_ms: sends ``retry-after-ms: <milliseconds>``.
            headers: further response headers.
            first_byte_delay: seconds before the server answers.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"FakeResponse.error needs a status from 400 to 599, got {status}")
        extra = list(headers)
        if retry_after is not None:
            extra.append(("retry-after", _format_number(retry_after)))
        if retry_after_ms is not None:
            extra.append(("retry-after-ms", _format_number(retry_after_ms)))
        resolved_type = error_type or _DEFAULT_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return cls(
            status=status,
            error_type=resolved_type,
            error_message=message or f"fake server: scripted {status} {resolved_type}",
            error_code=error_code,
            headers=tuple(extra),
            first_byte_delay=first_byte_delay,
        )

    @classmethod
    def stream_error(
        cls,
        *,
        after_chunks: int = 0,
        error_type: str = "overloaded_error",
        message: str = "Overloaded",
        reply: FakeResponse | None = None,
    ) -> FakeResponse:
        """A stream that breaks with an SSE ``error`` event after ``after_chunks`` deltas.

        A blocking request gets the equivalent HTTP error instead (``overloaded_error``
        → 529 and so on).

        Args:
            after_chunks: content deltas sent before the error (0: before any output).
            error_type: ``error.type`` of the event.
            message: ``error.message`` of the event.
            reply: what is streamed until then; a four-chunk text answer by default.
        """
        base = reply if reply is not None else _default_partial_reply()
        failure = StreamFailure(
            kind="error_event", after_chunks=after_chunks, error_type=error_type, message=message
        )
        return attrs.evolve(base, failure=failure)

    @classmethod
    def disconnect(
        cls, *, after_chunks: int = 0, reply: FakeResponse | None = None
    ) -> FakeResponse:
        """The server closes the connection after ``after_chunks`` content deltas.

        A blocking request sees the connection closed with no reply at all.

        Args:
            after_chunks: content deltas sent before the connection is dropped.
            reply: what is streamed until then; a four-chunk text answer by default.
        """
        base = reply if reply is not None else _default_partial_reply()
        return attrs.evolve(
            base, failure=StreamFailure(kind="disconnect", after_chunks=after_chunks)
        )

    @classmethod
    def stall(cls, *, after_chunks: int = 0, reply: FakeResponse | None = None) -> FakeResponse:
        """The server sends ``after_chunks`` content deltas, then nothing more, until the
        client hangs up (recorded in :attr:`FakeAnthropicServer.aborted`).

        With ``after_chunks=0`` a blocking request never gets its status line: a way
        to exercise client timeouts and cancellation.

        Args:
            after_chunks: content deltas sent before the server goes silent.
            reply: what is streamed until then; a four-chunk text answer by default.
        """
        base = reply if reply is not None else _default_partial_reply()
        return attrs.evolve(base, failure=StreamFailure(kind="stall", after_chunks=after_chunks))


def _default_partial_reply() -> FakeResponse:
    return FakeResponse.text("partial output that never completes", chunks=4)


_tool_ids = itertools.count(1)
_message_ids = itertools.count(1)
_request_ids = itertools.count(1)


def _fresh_tool_id() -> str:
    return f"toolu_fake_{next(_tool_ids):06d}"


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


#: Builds a reply for a request's parsed JSON body when the queue is empty.
Responder: TypeAlias = Callable[[Any], FakeResponse]


class _Drop(Exception):
    """The script says: close the connection now, without finishing the reply."""


@attrs.define(eq=False)
class FakeAnthropicServer(LoopbackServer):
    """A fake Anthropic API on loopback.

    Run it with ``server = await nursery.start(FakeAnthropicServer().serve)`` or
    ``async with open_fake_anthropic_server() as server``. Replies come from the
    FIFO queue filled by :meth:`enqueue`, then from ``responder``; with neither, the
    server answers 500 ``"fake server: no scripted response left"``.

    Attributes:
        host: the address to bind (loopback by default).
        port: the port to bind; 0 picks a free one.
        responder: called with the request's JSON body when the queue is empty.
        api_key: when set, requests must carry it (``x-api-key`` or
            ``Authorization: Bearer``) or get a 401 ``authentication_error``.
        requests: every ``/v1/messages`` request received, in order.
        aborted: the requests whose client hung up before their reply was complete.
        connections: how many TCP connections have been accepted (keep-alive reuses one).
        count_tokens: report the input side of usage as counted from every request
            (see below), not only from requests that carry ``cache_control``.
        cache_min_tokens: the shortest prefix the prompt cache keeps (the API's minimum
            cacheable length; 1024 tokens for most models).
        cache_ttl: seconds a cached prefix lives after its last write or read
            (:func:`trio.current_time`, so virtual under a ``MockClock``).

    Prompt caching works as the API's: a request whose blocks carry ``cache_control``
    (at most four, else 400) caches the prefix up to each of them (tools → system →
    messages) when it reaches ``cache_min_tokens``; a later request whose prefix matches
    one in the cache, at a breakpoint or up to 20 blocks before one, reads it back. Such
    a request's usage is counted from the request itself — a token per four characters
    of each block's JSON — as ``cache_read_input_tokens`` (the longest prefix found),
    ``cache_creation_input_tokens`` (from there to the last breakpoint written) and
    ``input_tokens`` (the rest); the output tokens stay the scripted reply's.
    """

    _factory = "open_fake_anthropic_server()"

    responder: Responder | None = None
    api_key: str | None = None
    count_tokens: bool = False
    cache_min_tokens: int = 1024
    cache_ttl: float = 300.0
    _queue: deque[FakeResponse] = attrs.field(factory=deque, init=False)
    _cache: PromptCache = attrs.field(factory=PromptCache, init=False)

    def enqueue(self, *responses: FakeResponse) -> None:
        """Append replies to the FIFO queue; each request consumes one."""
        for response in responses:
            if not isinstance(response, FakeResponse):
                raise TypeError(
                    f"FakeAnthropicServer.enqueue takes FakeResponse objects, got "
                    f"{type(response).__name__}; build one with FakeResponse.text(...) and friends"
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
        if path != "/v1/messages":
            await _send_json(
                connection,
                stream,
                404,
                _error_body("not_found_error", f"fake server: no route for {request.path}"),
            )
            return True
        if request.method != "POST":
            await _send_json(
                connection,
                stream,
                405,
                _error_body("invalid_request_error", "fake server: /v1/messages takes POST"),
                headers=[("allow", "POST")],
            )
            return True
        self.requests.append(request)
        self._notify()
        if too_large:
            await _send_json(
                connection,
                stream,
                413,
                _error_body(
                    "request_too_large",
                    f"fake server: request body exceeds {MAX_REQUEST_BODY} bytes",
                ),
            )
            return False
        problem = _validate_body(request.body)
        if problem is not None:
            await _send_json(connection, stream, 400, _error_body("invalid_request_error", problem))
            return True
        if self.api_key is not None and _presented_key(request.headers) != self.api_key:
            await _send_json(
                connection,
                stream,
                401,
                _error_body("authentication_error", "fake server: invalid x-api-key"),
            )
            return True

        reply = self._next_reply(request)
        if reply is None:
            await _send_json(
                connection,
                stream,
                500,
                _error_body(
                    "api_error",
                    "fake server: no scripted response left; enqueue() more FakeResponse "
                    "objects or pass a responder",
                ),
            )
            return True
        if reply.first_byte_delay:
            await trio.sleep(reply.first_byte_delay)
        try:
            if reply.status >= 400:
                await _send_json(
                    connection,
                    stream,
                    reply.status,
                    _error_body(
                        reply.error_type or "api_error", reply.error_message, reply.error_code
                    ),
                    headers=list(reply.headers),
                )
                return True
            model = reply.model or str(request.body.get("model", "claude-fake"))
            usage = self._cache.usage(
                request.body,
                reply.usage,
                count_all=self.count_tokens,
                min_tokens=self.cache_min_tokens,
                ttl=self.cache_ttl,
                now=trio.current_time(),
            )
            if usage is not None:
                reply = attrs.evolve(reply, usage=usage)
            if request.stream:
                return await self._stream_reply(connection, stream, reply, model)
            return await self._blocking_reply(connection, stream, reply, model)
        except (trio.BrokenResourceError, trio.ClosedResourceError, _Hangup):
            self.aborted.append(request)
            self._notify()
            return False
        except _Drop:
            return False

    def _next_reply(self, request: RecordedRequest) -> FakeResponse | None:
        if self._queue:
            return self._queue.popleft()
        if self.responder is None:
            return None
        try:
            reply = self.responder(request.body)
        except Exception as exc:  # a bug in the test's responder: say so in the reply
            return FakeResponse.error(
                500, f"fake server: the responder raised {type(exc).__name__}: {exc}"
            )
        if not isinstance(reply, FakeResponse):
            return FakeResponse.error(
                500,
                f"fake server: the responder returned {type(reply).__name__}, not a FakeResponse",
            )
        return reply

    async def _blocking_reply(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        reply: FakeResponse,
        model: str,
    ) -> bool:
        failure = reply.failure
        if failure is not None:
            if failure.kind == "disconnect":
                raise _Drop  # close with no reply at all
            if failure.kind == "stall":
                await _wait_for_hangup(stream)
                raise _Hangup
            status = _STATUS_OF_ERROR_TYPE.get(failure.error_type, 500)
            await _send_json(
                connection, stream, status, _error_body(failure.error_type, failure.message)
            )
            return True
        await _send_json(
            connection, stream, 200, _message_body(reply, model), headers=list(reply.headers)
        )
        return True

    async def _stream_reply(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        reply: FakeResponse,
        model: str,
    ) -> bool:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("request-id", _fresh_request_id()),
            *reply.headers,
        ]
        await _send(connection, stream, h11.Response(status_code=200, headers=_encode(headers)))
        events = _stream_events(reply, model)
        deltas_sent = 0
        failure = reply.failure
        for name, data, is_delta in events:
            at_end = name == "message_delta"
            if failure is not None and (
                (is_delta and deltas_sent == failure.after_chunks) or at_end
            ):
                await self._fail_stream(connection, stream, failure)
                return False
            if is_delta and reply.chunk_delay:
                await trio.sleep(reply.chunk_delay)
            await _send(connection, stream, h11.Data(data=_sse(name, data)))
            if is_delta:
                deltas_sent += 1
        await _send(connection, stream, h11.EndOfMessage())
        return True

    async def _fail_stream(
        self, connection: h11.Connection, stream: trio.SocketStream, failure: StreamFailure
    ) -> None:
        if failure.kind == "error_event":
            event = _error_body(failure.error_type, failure.message)
            await _send(connection, stream, h11.Data(data=_sse("error", event)))
            await _send(connection, stream, h11.EndOfMessage())
            return
        if failure.kind == "stall":
            await _wait_for_hangup(stream)
            raise _Hangup
        raise _Drop


# -- wire helpers ---------------------------------------------------------------------


def _fresh_request_id() -> str:
    return f"req_fake_{next(_request_ids):06d}"


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
        ("request-id", _fresh_request_id()),
        *headers,
    ]
    await _send(connection, stream, h11.Response(status_code=status, headers=_encode(all_headers)))
    await _send(connection, stream, h11.Data(data=payload))
    await _send(connection, stream, h11.EndOfMessage())


def _presented_key(headers: Mapping[str, str]) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _validate_body(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return "fake server: the request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "fake server: model: field required (a non-empty string)"
    if not isinstance(body.get("messages"), list):
        return "fake server: messages: field required (a list)"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "fake server: max_tokens: field required (an integer >= 1)"
    breakpoints = count_breakpoints(body)
    if breakpoints > MAX_BREAKPOINTS:
        return (
            f"fake server: A maximum of 4 blocks with cache_control may be provided. "
            f"Found {breakpoints}."
        )
    for i, message in enumerate(body["messages"]):
        content = message.get("content") if isinstance(message, Mapping) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, Mapping) or block.get("type") != "thinking":
                continue
            signature, thinking = block.get("signature"), block.get("thinking")
            where = f"fake server: messages.{i}.content.{j}"
            if not isinstance(signature, str) or not isinstance(thinking, str):
                return f"{where}: thinking.signature: Field required"
            if signature.startswith(_SIGNATURE_PREFIX) and signature != fake_signature(thinking):
                return f"{where}: Invalid `signature` in `thinking` block"
    return None


def _error_body(error_type: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": _fresh_request_id()}


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
    }


def _block_dict(block: ReplyBlock) -> dict[str, Any]:
    return block_to_dict(block)


def _message_body(reply: FakeResponse, model: str) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{next(_message_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_block_dict(b) for b in reply.content],
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": _usage_dict(reply.usage),
    }


def _split(text: str, parts: int) -> list[str]:
    """``text`` in ``parts`` nearly equal pieces (fewer when it is shorter)."""
    if not text:
        return []
    parts = min(parts, len(text))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _stream_events(reply: FakeResponse, model: str) -> list[tuple[str, dict[str, Any], bool]]:
    """The SSE events of a streamed reply: ``(event name, data, is a content delta)``."""
    start_usage = _usage_dict(reply.usage)
    # NOTE: like the real API, message_start reports the input side and a provisional
    # output count; the final output count comes in message_delta.
    start_usage["output_tokens"] = min(1, reply.usage.output_tokens)
    events: list[tuple[str, dict[str, Any], bool]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_fake_{next(_message_ids):06d}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
            False,
        ),
        ("ping", {"type": "ping"}, False),
    ]
    for index, block in enumerate(reply.content):
        deltas: list[dict[str, Any]]
        if isinstance(block, TextBlock):
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": t} for t in _split(block.text, reply.text_chunks)
            ]
        elif isinstance(block, ThinkingBlock):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": t}
                for t in _split(block.thinking, reply.text_chunks)
            ]
            deltas.append({"type": "signature_delta", "signature": block.signature})
        elif isinstance(block, ToolUseBlock):
            start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            raw = dict(reply.raw_tool_arguments).get(block.id)
            arguments = raw if raw is not None else json.dumps(dict(block.input))
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in _split(arguments, reply.json_fragments)
            ]
        elif isinstance(block, ServerBlock) and block.type == "server_tool_use":
            # like the API: the server tool's input streams as JSON fragments
            start = {**block_to_dict(block), "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in _split(json.dumps(block.data.get("input", {})), reply.json_fragments)
            ]
        else:  # redacted thinking, server tool results: whole in content_block_start
            start, deltas = block_to_dict(block), []
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
                False,
            )
        )
        events.extend(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": d},
                True,
            )
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}, False))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.usage.output_tokens},
            },
            False,
        )
    )
    events.append(("message_stop", {"type": "message_stop"}, False))
    return events


def _sse(name: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@asynccontextmanager
async def open_fake_anthropic_server(
    *responses: FakeResponse,
    responder: Responder | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    count_tokens: bool = False,
    cache_min_tokens: int = 1024,
) -> AsyncIterator[FakeAnthropicServer]:
    """Run a :class:`FakeAnthropicServer` for the duration of the block.

    Args:
        *responses: replies to enqueue right away.
        responder: builds replies from the request body once the queue is empty.
        api_key: when set, the key requests must present.
        host: the address to bind.
        port: the port to bind; 0 picks a free one.
        count_tokens: count every request's input tokens (see :class:`FakeAnthropicServer`).
        cache_min_tokens: the shortest prefix the prompt cache keeps.

    Yields:
        The serving server; ``server.base_url`` is where to point the client.
    """
    server = FakeAnthropicServer(
        host=host,
        port=port,
        responder=responder,
        api_key=api_key,
        count_tokens=count_tokens,
        cache_min_tokens=cache_min_tokens,
    )
    server.enqueue(*responses)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel(reason="open_fake_anthropic_server: block exited")
    except BaseExceptionGroup as group:
        # NOTE: unwrap the group our own nursery made around a single error, so the
        # caller's `except SomeError` works; real multi-failures stay groups.
        raise_collapsed(group)
