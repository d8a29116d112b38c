"""AgentProcess: a process running an agent, and the ways to talk to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from ..llm import Message
from ..runtime import Future, Process, Request
from ._events import ChatEvent, DoneEvent, ErrorEvent, TextDeltaEvent
from ._loop import AgentBehaviour, ChatRequest, ProcessMetrics, SendResult, error_class_of

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ["AgentProcess", "ChatStream", "TextStream"]

_STREAM_BUFFER = 32


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)  # no __setattr__ hook: see Process
class AgentProcess(Process):
    """A running instance of an :class:`~vega_trio.Agent` with its own conversation.

    Made by :meth:`Orchestrator.spawn <vega_trio.Orchestrator.spawn>` (calling the class
    raises ``TypeError``). Talk to it with
    :meth:`send`, :meth:`send_stream`, :meth:`send_stream_rich` or :meth:`send_async`;
    messages are answered one at a time, in order.
    """

    _public_constructor_hint = "use await orch.spawn(agent)"

    @property
    def _agent_behaviour(self) -> AgentBehaviour:
        behaviour = self.behaviour
        assert isinstance(behaviour, AgentBehaviour)
        return behaviour

    @property
    def agent(self) -> Agent:
        """The blueprint this process runs."""
        return self._agent_behaviour.agent

    @property
    def model(self) -> str:
        """The model id its LLM calls use."""
        return self._agent_behaviour.model

    @property
    def metrics(self) -> ProcessMetrics:
        """Tokens, cost, tool calls, iterations and errors so far."""
        return self._agent_behaviour.metrics

    @property
    def history(self) -> list[Message]:
        """The structured conversation (what its context manager retains)."""
        return self._agent_behaviour.context.snapshot()

    @property
    def current_message(self) -> Message | None:
        """The user message this process is answering now (also during the later
        rounds of its tool loop), or ``None`` between sends."""
        return self._agent_behaviour.current_message

    async def send(self, message: str | Message) -> str:
        """Send ``message`` and wait for the final reply text.

        Raises:
            LLMError: the model call failed (``.error_class`` says how).
            MaxIterationsExceeded: the tool loop did not converge.
            SendTimeout: the agent's ``send_timeout`` elapsed.
            ProcessNotRunning: the process has finished.
            ProcessExited: it ended (killed, crashed, shut down) before replying.
        """
        # NOTE: a str (the usual case) is made a user message here, not in _as_message:
        # one call less per send (B1).
        result: SendResult = await self.call(
            ChatRequest(Message.user(message) if isinstance(message, str) else _as_message(message))
        )
        return result.text

    def send_async(self, message: str | Message) -> Future[str]:
        """Queue ``message`` now; returns a :class:`~vega_trio.runtime.Future` of the reply text."""
        future = self.call_async(ChatRequest(_as_message(message)))
        return _TextFuture(future._request)

    @asynccontextmanager
    async def send_stream_rich(self, message: str | Message) -> AsyncIterator[ChatStream]:
        """Send ``message`` and stream typed events (SPEC §1.4)::

            async with proc.send_stream_rich("hi") as stream:
                async for event in stream:
                    ...

        The stream ends with exactly one :class:`DoneEvent` or :class:`ErrorEvent`.
        Leaving the block early cancels the request (and closes the LLM stream).
        """
        send, receive = trio.open_memory_channel[ChatEvent](_STREAM_BUFFER)
        request = await self._enqueue(ChatRequest(_as_message(message), events=send))
        request.add_done_callback(send.close)
        stream = ChatStream(receive, request)
        try:
            yield stream
        finally:
            if not request.done:
                request.cancel("was abandoned: the stream's reader left")
            receive.close()
            send.close()

    @asynccontextmanager
    async def send_stream(self, message: str | Message) -> AsyncIterator[TextStream]:
        """Send ``message`` and stream the reply's text chunks::

            async with proc.send_stream("hi") as chunks:
                async for text in chunks:
                    print(text, end="")

        A failure is raised from the iteration after the text that came before it.
        """
        async with self.send_stream_rich(message) as stream:
            yield TextStream(stream)


class _TextFuture(Future[str]):
    def result(self) -> str:
        value: SendResult = super().result()  # type: ignore[assignment]
        return value.text

    async def wait(self) -> str:
        value: SendResult = await super().wait()  # type: ignore[assignment]
        return value.text


def _as_message(message: str | Message) -> Message:
    if isinstance(message, str):
        return Message.user(message)
    if isinstance(message, Message):
        if message.role != "user":
            raise ValueError(f"a sent message must have role 'user', not {message.role!r}")
        return message
    raise TypeError(f"send() takes a str or a Message, not {type(message).__name__}")


class ChatStream:
    """Typed events of one streaming send; iterate with ``async for``.

    Made by :meth:`AgentProcess.send_stream_rich`; not constructed directly.
    """

    def __init__(
        self,
        receive: trio.MemoryReceiveChannel[ChatEvent],
        request: Request,
    ) -> None:
        self._receive = receive
        self._request = request
        self._finished = False
        self.text = ""
        """The reply text received so far."""
        self.result: SendResult | None = None
        """The final result, once the ``done`` event has been delivered."""
        self.error: BaseException | None = None
        """The failure, once the ``error`` event has been delivered."""

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatEvent:
        if self._finished:
            raise StopAsyncIteration
        try:
            # NOTE: the send side is closed as soon as the request is answered (see
            # send_stream_rich), so this ends even if the process died before serving it.
            event = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            await self._request.wait_done()
            return self._terminal()
        if isinstance(event, TextDeltaEvent) and event.agent is None:
            self.text += event.delta  # a delegate's forwarded text is not this reply
        return event

    def _terminal(self) -> ChatEvent:
        self._finished = True
        try:
            result: SendResult = self._request.outcome()
        except Exception as exc:
            self.error = exc
            return ErrorEvent(error=_describe(exc), error_class=error_class_of(exc))
        self.result = result
        return DoneEvent(metrics=result.metrics)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class TextStream:
    """Text chunks of one streaming send; iterate with ``async for``.

    Made by :meth:`AgentProcess.send_stream`; not constructed directly.
    """

    def __init__(self, stream: ChatStream) -> None:
        self._stream = stream

    def __aiter__(self) -> TextStream:
        return self

    async def __anext__(self) -> str:
        async for event in self._stream:
            if isinstance(event, TextDeltaEvent):
                return event.delta
            if isinstance(event, ErrorEvent):
                assert self._stream.error is not None
                raise self._stream.error
        raise StopAsyncIteration

    @property
    def text(self) -> str:
        """The reply text received so far."""
        return self._stream.text
