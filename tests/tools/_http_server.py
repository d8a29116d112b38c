"""A tiny HTTP/1.1 server on loopback (Trio + h11) for the declarative HTTP tool tests.

Each connection serves one request (``Connection: close``). A test passes a function that
answers a :class:`Received` request with a :class:`Reply`; every request and every accepted
connection is recorded.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import h11
import trio

__all__ = ["LoopbackServer", "Received", "Reply", "open_loopback_server"]


@attrs.frozen(kw_only=True)
class Received:
    """One request as the server saw it."""

    method: str
    target: str  # path and query, exactly as sent (still percent-encoded)
    headers: dict[str, str]  # lower-cased names
    body: bytes


@attrs.frozen(kw_only=True)
class Reply:
    """What the server answers.

    Attributes:
        status: the HTTP status.
        headers: extra response headers.
        body: the body (sent with a Content-Length unless ``endless``).
        endless: send ``body`` again and again (chunked) until the client hangs up.
        stall: read the request, then never answer.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    endless: bool = False
    stall: bool = False


Handler = Callable[[Received], Reply]


@attrs.define(eq=False)
class LoopbackServer:
    """The running server: its base URL, the requests it got, the connections it accepted."""

    handler: Handler
    host: str = "127.0.0.1"
    scheme: str = "http"
    port: int = 0
    requests: list[Received] = attrs.field(factory=list)
    connections: int = 0
    bytes_sent: int = 0

    @property
    def url(self) -> str:
        """``http://<host>:<port>`` (``http://127.0.0.1:<port>`` by default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def _serve_connection(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        connection = h11.Connection(h11.SERVER)
        try:
            request = await self._read_request(connection, stream)
            if request is None:
                return
            self.requests.append(request)
            reply = self.handler(request)
            if reply.stall:
                await trio.sleep_forever()
            headers = [*reply.headers, ("connection", "close")]
            if not reply.endless:
                headers.append(("content-length", str(len(reply.body))))
            await self._send(
                connection,
                stream,
                h11.Response(status_code=reply.status, headers=headers),
            )
            if reply.endless:
                while True:
                    await self._send(connection, stream, h11.Data(data=reply.body))
            else:
                await self._send(connection, stream, h11.Data(data=reply.body))
                await self._send(connection, stream, h11.EndOfMessage())
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass  # the client hung up (e.g. after its size cap)
        finally:
            with trio.move_on_after(1, shield=True):
                await stream.aclose()

    async def _read_request(
        self, connection: h11.Connection, stream: trio.abc.Stream
    ) -> Received | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                connection.receive_data(data)
                if not data and head is None:
                    return None
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return Received(
                    method=head.method.decode(),
                    target=head.target.decode(),
                    headers={k.decode().lower(): v.decode() for k, v in head.headers},
                    body=bytes(body),
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _send(
        self, connection: h11.Connection, stream: trio.abc.Stream, event: h11.Event
    ) -> None:
        data = connection.send(event)
        if data:
            self.bytes_sent += len(data)
            await stream.send_all(data)


@asynccontextmanager
async def open_loopback_server(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[LoopbackServer]:
    """Serve ``handler`` on ``host`` (``127.0.0.1``; any 127.x.y.z and ``::1`` work too) and
    ``port`` (a free one by default) for the duration of the block; over TLS (``https``) with
    ``ssl_context``."""
    server = LoopbackServer(handler, host, "http" if ssl_context is None else "https")
    serve = (
        functools.partial(trio.serve_tcp, server._serve_connection, port, host=host)
        if ssl_context is None
        else functools.partial(
            trio.serve_ssl_over_tcp, server._serve_connection, port, ssl_context, host=host
        )
    )
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve)
        listener = listeners[0]
        tcp = listener.transport_listener if ssl_context is not None else listener
        server.port = tcp.socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel(reason="the test is done with the loopback server")
