"""The HTTP/1.1 plumbing of the fake API servers: real sockets on loopback, Trio and
``h11``, keep-alive, request recording and hang-up detection. Each fake (Anthropic,
OpenAI-compatible) subclasses :class:`LoopbackServer` and answers requests in ``_answer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final, Self

import attrs
import h11
import trio

__all__ = ["MAX_REQUEST_BODY", "LoopbackServer", "RecordedRequest"]

#: The largest request body the server accepts (bigger ones get a 413).
MAX_REQUEST_BODY: Final = 32 * 1024 * 1024
_MAX_HEADER_BYTES: Final = 64 * 1024
_RECEIVE_SIZE: Final = 64 * 1024
_CLOSE_TIMEOUT: Final = 2.0


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the fake server received.

    Attributes:
        method: the HTTP method.
        path: the request target (path and query).
        headers: header names lower-cased; repeated headers joined with ``", "``.
        body: the parsed JSON body (``None`` when it was not JSON).
    """

    method: str
    path: str
    headers: Mapping[str, str] = attrs.field(hash=False)
    body: Any = attrs.field(hash=False, default=None)

    @property
    def stream(self) -> bool:
        """Whether the client asked for an SSE stream."""
        return isinstance(self.body, Mapping) and self.body.get("stream") is True


class _Hangup(Exception):
    """The client went away before the reply was complete."""


@attrs.define(eq=False)
class LoopbackServer:
    """What every fake API server shares: binding, serving connections, recording.

    Subclasses set ``_base_path`` (appended to :attr:`base_url`) and ``_factory`` (the
    name of the ``open_…`` helper, for messages), and implement ``_answer``.
    """

    _base_path: ClassVar[str] = ""
    _factory: ClassVar[str] = "an open_fake_*_server() block"

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = attrs.field(factory=list, init=False)
    aborted: list[RecordedRequest] = attrs.field(factory=list, init=False)
    connections: int = attrs.field(default=0, init=False)
    _base_url: str | None = attrs.field(default=None, init=False)
    _started: bool = attrs.field(default=False, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>`` (plus the API's base path) of the server, known once
        it listens."""
        if self._base_url is None:
            raise RuntimeError(
                f"{type(self).__name__}.base_url is only known once the server is serving: "
                f"use `await nursery.start(server.serve)` or `{self._factory}`"
            )
        return self._base_url

    async def wait_for_requests(self, count: int = 1) -> None:
        """Wait until at least ``count`` requests have been received."""
        while len(self.requests) < count:
            await self._changed.wait()

    async def wait_for_aborts(self, count: int = 1) -> None:
        """Wait until at least ``count`` clients have hung up mid-reply."""
        while len(self.aborted) < count:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled.

        Supports ``nursery.start``: ``started()`` hands back this server, with
        :attr:`base_url` set, once it is listening. Cancelling the surrounding
        nursery closes the listener and every connection.
        """
        if self._started:
            raise RuntimeError(f"a {type(self).__name__} serves only once; make a new one")
        self._started = True
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        host, port = listeners[0].socket.getsockname()[:2]
        authority = f"[{host}]" if ":" in host else host  # IPv6 literals need brackets
        self._base_url = f"http://{authority}:{port}{self._base_path}"
        task_status.started(self)
        await trio.serve_listeners(self._handle_connection, listeners)

    # -- one connection ---------------------------------------------------------------

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
        try:
            while True:
                exchange = await self._read_request(connection, stream)
                if exchange is None:
                    return
                request, too_large = exchange
                keep_open = await self._answer(connection, stream, request, too_large=too_large)
                if not keep_open or connection.our_state is not h11.DONE:
                    return
                if connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await stream.aclose()

    async def _answer(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        request: RecordedRequest,
        *,
        too_large: bool,
    ) -> bool:
        """Reply to one request; returns whether the connection may be kept open."""
        raise NotImplementedError

    async def _next_event(self, connection: h11.Connection, stream: trio.SocketStream) -> Any:
        while True:
            event = connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await stream.receive_some(_RECEIVE_SIZE)
            connection.receive_data(data)  # b"" marks EOF

    async def _read_request(
        self, connection: h11.Connection, stream: trio.SocketStream
    ) -> tuple[RecordedRequest, bool] | None:
        event = await self._next_event(connection, stream)
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError(f"expected a request, got {event!r}")
        body = bytearray()
        too_large = False
        while True:
            part = await self._next_event(connection, stream)
            if isinstance(part, h11.Data):
                if len(body) + len(part.data) > MAX_REQUEST_BODY:
                    too_large = True
                    body.clear()
                if not too_large:
                    body += part.data
            elif isinstance(part, h11.EndOfMessage):
                break
            else:  # ConnectionClosed mid-body
                return None
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        recorded = RecordedRequest(
            method=event.method.decode("ascii"),
            path=event.target.decode("latin-1"),
            headers=headers,
            body=parsed,
        )
        return recorded, too_large


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def _send(connection: h11.Connection, stream: trio.SocketStream, event: Any) -> None:
    data = connection.send(event)
    if data:
        await stream.send_all(data)


async def _wait_for_hangup(stream: trio.SocketStream) -> None:
    """Read (and ignore) until the client closes its end."""
    try:
        while await stream.receive_some(_RECEIVE_SIZE):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
