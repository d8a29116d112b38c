"""A scripted, in-memory LLM for offline tests, examples and benchmarks.

:class:`ScriptedLLM` implements the :class:`~vega_trio.llm.LLM` protocol without a
network. Each call takes the next :class:`Step` of its script::

    llm = ScriptedLLM([
        Step.tool_call("add", {"a": 1, "b": 2}),
        Step.text("1 + 2 = 3", delay=0.5),
    ])

or asks a ``responder`` for one, and every request is recorded in
:attr:`ScriptedLLM.requests` for assertions. Delays use :func:`trio.sleep`, so they
run in virtual time under ``autojump_clock``.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import trio

from .._errors import ErrorClass, LLMError, ScriptExhausted
from ..llm._messages import ContentBlock, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock
from ..llm._protocol import (
    LLMRequest,
    LLMResponse,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ThinkingChunk,
    ToolInputChunk,
    Usage,
)

__all__ = ["ScriptExhausted", "ScriptedLLM", "Step", "ToolCall"]

# The HTTP status a real API would send for each scripted error class.
_STATUS = {
    ErrorClass.RATE_LIMIT: 429,
    ErrorClass.OVERLOADED: 529,
    ErrorClass.TIMEOUT: 408,
    ErrorClass.TEMPORARY: 500,
    ErrorClass.INVALID_REQUEST: 400,
    ErrorClass.AUTHENTICATION: 401,
    ErrorClass.BUDGET_EXCEEDED: 429,
}

_WORDS = re.compile(r"\s*\S+|\s+$")


@attrs.frozen(kw_only=True)
class ToolCall:
    """One tool call in a scripted reply; ``id`` is generated when omitted."""

    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    id: str | None = None


def _check_delay(name: str) -> Callable[[Any, attrs.Attribute[float], float], None]:
    def check(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
        if value < 0:
            raise ValueError(f"Step {name}={value!r} is negative; use seconds >= 0")

    return check


def _check_chunk_size(
    instance: Any, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and value < 1:
        raise ValueError(f"Step chunk_size={value!r} must be at least 1 (characters per chunk)")


@attrs.frozen(kw_only=True)
class Step:
    """One scripted reply (or failure) of a :class:`ScriptedLLM`.

    Build steps with :meth:`text`, :meth:`tool_call`, :meth:`tool_calls` and
    :meth:`error`. Every builder takes:

    * ``delay``: seconds to wait (with :func:`trio.sleep`) before answering or, when
      streaming, before the stream opens; ``0`` (the default) does not sleep at all;
    * ``chunk_delay``: seconds between streamed chunks;
    * ``usage``: the usage to report (default: an estimate at about four characters
      per token of the request and of the reply, deterministic).

    :meth:`text`, :meth:`tool_call` and :meth:`tool_calls` also take ``thinking``: the
    reply then starts with a :class:`~vega_trio.llm.ThinkingBlock` (signed
    ``scripted-signature-<request>``), streamed first as one
    :class:`~vega_trio.llm.ThinkingChunk`.
    """

    reply_text: str = ""
    calls: tuple[ToolCall, ...] = ()
    failure: LLMError | ErrorClass | None = None
    failure_message: str | None = None
    retry_after: float | None = None
    delay: float = attrs.field(default=0.0, validator=_check_delay("delay"))
    chunk_delay: float = attrs.field(default=0.0, validator=_check_delay("chunk_delay"))
    chunk_size: int | None = attrs.field(default=None, validator=_check_chunk_size)
    chunks: tuple[str, ...] | None = None
    usage: Usage | None = None
    stop_reason: str | None = None
    thinking: str = ""

    def __attrs_post_init__(self) -> None:
        if self.chunks is not None and "".join(self.chunks) != self.reply_text:
            raise ValueError(
                f"Step chunks {list(self.chunks)!r} do not join to its text {self.reply_text!r}"
            )

    @classmethod
    def text(
        cls,
        text: str,
        *,
        delay: float = 0.0,
        chunk_size: int | None = None,
        chunks: Sequence[str] | None = None,
        chunk_delay: float = 0.0,
        usage: Usage | None = None,
        stop_reason: str = "end_turn",
        thinking: str = "",
    ) -> Step:
        """Reply with ``text``.

        Streamed, the text arrives word by word (a chunk is a word with the
        whitespace before it), in pieces of ``chunk_size`` characters, or as the
        explicit ``chunks`` (which must join to ``text``).
        """
        return cls(
            reply_text=text,
            delay=delay,
            chunk_size=chunk_size,
            chunks=tuple(chunks) if chunks is not None else None,
            chunk_delay=chunk_delay,
            usage=usage,
            stop_reason=stop_reason,
            thinking=thinking,
        )

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        text: str = "",
        delay: float = 0.0,
        chunk_size: int | None = None,
        chunk_delay: float = 0.0,
        usage: Usage | None = None,
        thinking: str = "",
    ) -> Step:
        """Ask for one tool call, optionally after some ``text``.

        Without ``id``, the call gets ``toolu_scripted_<request>_<index>`` (request
        counted from 1, index from 0), unique within one :class:`ScriptedLLM`.
        """
        call = ToolCall(name=name, arguments=dict(arguments or {}), id=id)
        return cls.tool_calls(
            [call],
            text=text,
            delay=delay,
            chunk_size=chunk_size,
            chunk_delay=chunk_delay,
            usage=usage,
            thinking=thinking,
        )

    @classmethod
    def tool_calls(
        cls,
        calls: Iterable[ToolCall | tuple[str, Mapping[str, Any]]],
        *,
        text: str = "",
        delay: float = 0.0,
        chunk_size: int | None = None,
        chunk_delay: float = 0.0,
        usage: Usage | None = None,
        thinking: str = "",
    ) -> Step:
        """Ask for several tool calls in one turn (``ToolCall``\\ s or
        ``(name, arguments)`` pairs), optionally after some ``text``."""
        built = tuple(
            c if isinstance(c, ToolCall) else ToolCall(name=c[0], arguments=dict(c[1]))
            for c in calls
        )
        if not built:
            raise ValueError("Step.tool_calls needs at least one call; use Step.text for none")
        return cls(
            reply_text=text,
            calls=built,
            delay=delay,
            chunk_size=chunk_size,
            chunk_delay=chunk_delay,
            usage=usage,
            stop_reason="tool_use",
            thinking=thinking,
        )

    @classmethod
    def error(
        cls,
        error: LLMError | ErrorClass,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        partial_text: str = "",
        delay: float = 0.0,
        chunk_size: int | None = None,
        chunk_delay: float = 0.0,
    ) -> Step:
        """Fail the call.

        ``error`` is raised as given, or, for an :class:`~vega_trio.ErrorClass`, a
        fresh :class:`~vega_trio.LLMError` of that class with the status code a
        real API would send (429, 529, 408, 500, 400, 401; 429 for budget) and
        ``retry_after``.

        With ``partial_text``, a stream yields that text first and then fails (a
        mid-stream error; the error made from an ``ErrorClass`` then has
        ``output_started=True``); ``generate`` fails at once either way.
        """
        return cls(
            reply_text=partial_text,
            failure=error,
            failure_message=message,
            retry_after=retry_after,
            delay=delay,
            chunk_size=chunk_size,
            chunk_delay=chunk_delay,
        )

    def _make_error(self, *, output_started: bool) -> LLMError:
        failure = self.failure
        if isinstance(failure, LLMError):
            return failure
        assert failure is not None
        return LLMError(
            self.failure_message or f"scripted {failure.value} error",
            error_class=failure,
            status_code=_STATUS[failure],
            retry_after=self.retry_after,
            output_started=output_started,
        )

    def _text_chunks(self) -> list[str]:
        text = self.reply_text
        if self.chunks is not None:
            return [c for c in self.chunks if c]
        if self.chunk_size is not None:
            size = self.chunk_size
            return [text[i : i + size] for i in range(0, len(text), size)]
        return _WORDS.findall(text)


def _as_step(step: Step | str) -> Step:
    if isinstance(step, Step):
        return step
    if isinstance(step, str):
        return Step.text(step)
    raise TypeError(
        f"a ScriptedLLM script holds Step objects or strings, got {type(step).__name__}; "
        "build steps with Step.text(...), Step.tool_call(...) or Step.error(...)"
    )


def _as_script(steps: Iterable[Step | str]) -> collections.deque[Step]:
    return collections.deque(_as_step(s) for s in steps)


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    return json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)


def _describe(request: LLMRequest) -> str:
    last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
    if last_user is None:
        said = "no user turn"
    elif last_user.text:
        said = f"last user text {last_user.text[:80]!r}"
    else:
        said = f"last user turn carries {len(last_user.tool_results)} tool result(s)"
    return f"model={request.model!r}, {len(request.messages)} message(s), {said}"


@attrs.define(eq=False)
class ScriptedLLM:
    """An in-memory LLM that replies from a script.

    Args:
        steps: replies used in order, one per call (``generate`` or ``stream``);
            a plain string is ``Step.text(string)``.
        responder: called with each request once the script is used up (or with
            no script) and returns the :class:`Step` (or text) to reply with.

    With neither left, a call raises :class:`ScriptExhausted` naming the request.
    Steps are taken when a call starts, in the order calls arrive.

    Attributes:
        requests: every :class:`~vega_trio.llm.LLMRequest` received, in order.
    """

    _script: collections.deque[Step] = attrs.field(
        factory=collections.deque, converter=_as_script, alias="steps"
    )
    responder: Callable[[LLMRequest], Step | str] | None = attrs.field(default=None, kw_only=True)
    requests: list[LLMRequest] = attrs.field(init=False, factory=list)
    _open_streams: int = attrs.field(init=False, default=0)
    timeout: None = attrs.field(init=False, default=None)
    """A scripted model answers from memory and never hangs (a step's ``delay`` is what
    the script asks for), so it declares that it needs no per-call timeout; set an
    agent's ``llm_timeout`` to make scripted delays time out."""

    @classmethod
    def echo(cls, prefix: str = "") -> ScriptedLLM:
        """An LLM that replies with ``prefix`` plus the text of the latest user turn
        that has text (handy for examples and smoke tests)."""

        def respond(request: LLMRequest) -> Step:
            for message in reversed(request.messages):
                if message.role == "user" and message.text:
                    return Step.text(prefix + message.text)
            return Step.text(prefix)

        return cls(responder=respond)

    @property
    def remaining(self) -> int:
        """How many scripted steps have not been used yet."""
        return len(self._script)

    @property
    def open_streams(self) -> int:
        """Streams currently open (``0`` once every ``stream`` block has exited)."""
        return self._open_streams

    async def aclose(self) -> None:
        """Nothing to release; here so code can close any backend the same way."""
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> ScriptedLLM:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def add(self, *steps: Step | str) -> None:
        """Append steps to the end of the script."""
        self._script.extend(_as_step(s) for s in steps)

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """Reply to ``request`` with the next step.

        Raises:
            LLMError: the step is an error step.
            ScriptExhausted: no step is left and there is no responder.
        """
        step, number = self._take(request)
        if step.delay > 0:
            await trio.sleep(step.delay)
        if step.failure is not None:
            raise step._make_error(output_started=False)
        return self._response(step, number, request)

    def stream(
        self, request: LLMRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[StreamChunk]]:
        """Stream the reply of the next step: :class:`~vega_trio.llm.TextChunk`\\ s,
        then one :class:`~vega_trio.llm.ToolInputChunk` per tool call (or
        ``chunk_size`` pieces of its JSON arguments), then
        :class:`~vega_trio.llm.MessageComplete`.

        The step is taken, and its ``delay`` slept, when the block is entered; an
        error step without ``partial_text`` fails there, like an HTTP error before
        the first event. Leaving the block early is always clean.
        """
        return self._stream(request)

    @asynccontextmanager
    async def _stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[StreamChunk]]:
        step, number = self._take(request)
        if step.delay > 0:
            await trio.sleep(step.delay)
        if step.failure is not None and not step.reply_text:
            raise step._make_error(output_started=False)
        self._open_streams += 1
        try:
            # NOTE: a plain async iterator, not an async generator: nothing to finalize
            # when the caller leaves early or is cancelled between chunks.
            yield _ScriptedStream(self._chunks(step, number, request), step)
        finally:
            self._open_streams -= 1

    # -- internals -------------------------------------------------------------------

    def _take(self, request: LLMRequest) -> tuple[Step, int]:
        self.requests.append(request)
        number = len(self.requests)
        if self._script:
            return self._script.popleft(), number
        if self.responder is not None:
            return _as_step(self.responder(request)), number
        raise ScriptExhausted(
            f"ScriptedLLM ran out of script: request #{number} ({_describe(request)}) came "
            f"after all {number - 1} scripted step(s) were used. "
            "Add a Step for it, or pass responder= to answer any request.",
            error_class=ErrorClass.INVALID_REQUEST,
        )

    def _content(self, step: Step, number: int) -> tuple[ContentBlock, ...]:
        blocks: list[ContentBlock] = []
        if step.thinking:
            signature = f"scripted-signature-{number}"
            blocks.append(ThinkingBlock(thinking=step.thinking, signature=signature))
        if step.reply_text:
            blocks.append(TextBlock(text=step.reply_text))
        for index, call in enumerate(step.calls):
            call_id = call.id if call.id is not None else f"toolu_scripted_{number}_{index}"
            blocks.append(ToolUseBlock(id=call_id, name=call.name, input=dict(call.arguments)))
        return tuple(blocks)

    def _response(self, step: Step, number: int, request: LLMRequest) -> LLMResponse:
        content = self._content(step, number)
        usage = step.usage
        if usage is None:
            usage = _estimate_usage(request, step)
        return LLMResponse(
            content=content, model=request.model, usage=usage, stop_reason=step.stop_reason
        )

    def _chunks(self, step: Step, number: int, request: LLMRequest) -> list[StreamChunk]:
        chunks: list[StreamChunk] = [TextChunk(text=t) for t in step._text_chunks()]
        if step.thinking and step.failure is None:
            chunks.insert(0, ThinkingChunk(thinking=step.thinking))
        if step.failure is not None:
            return chunks  # the stream raises after these
        response = self._response(step, number, request)
        for index, block in enumerate(response.content):
            if not isinstance(block, ToolUseBlock):
                continue
            arguments = _arguments_json(block.input)
            size = step.chunk_size or max(1, len(arguments))
            for start in range(0, len(arguments), size):
                chunks.append(
                    ToolInputChunk(
                        index=index,
                        tool_use_id=block.id,
                        tool_name=block.name,
                        partial_json=arguments[start : start + size],
                    )
                )
        chunks.append(MessageComplete(response=response))
        return chunks


def _estimate_usage(request: LLMRequest, step: Step) -> Usage:
    """About four characters per token (ceil), at least 1 each way: the system
    prompt and every text, tool name, tool argument JSON and tool result of the
    request in; the reply's text, tool names and argument JSON out."""
    chars = len(request.system)
    for message in request.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                chars += len(block.text)
            elif isinstance(block, ToolUseBlock):
                chars += len(block.name) + len(_arguments_json(block.input))
            elif isinstance(block, ToolResultBlock):
                chars += len(block.content)
    out = len(step.reply_text) + len(step.thinking)
    for call in step.calls:
        out += len(call.name) + len(_arguments_json(call.arguments))
    return Usage(input_tokens=max(1, -(-chars // 4)), output_tokens=max(1, -(-out // 4)))


class _ScriptedStream:
    """The chunks of one scripted stream, then the step's error if it has one."""

    def __init__(self, chunks: list[StreamChunk], step: Step) -> None:
        self._chunks = chunks
        self._step = step
        self._next = 0

    def __aiter__(self) -> _ScriptedStream:
        return self

    async def __anext__(self) -> StreamChunk:
        index = self._next
        failing = self._step.failure is not None and index == len(self._chunks)
        if index >= len(self._chunks) and not failing:
            raise StopAsyncIteration
        if index > 0 and self._step.chunk_delay > 0:
            await trio.sleep(self._step.chunk_delay)
        else:
            await trio.lowlevel.checkpoint()
        self._next += 1
        if failing:
            raise self._step._make_error(output_started=index > 0)
        return self._chunks[index]
