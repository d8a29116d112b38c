"""``/api/ws``: runtime events and chat over one WebSocket (SPEC §10.2).

The same pieces as the SSE routes, over a JSON message protocol: subscriptions are
:meth:`ServerState.subscribe` (the filters, buffer and ``after`` replay of
``/api/events``), chat requests are detached replies started by ``start_reply`` and read
through :meth:`ChatReply.follow` (so ``GET /api/agents/{name}/chat/stream`` re-attaches
to a reply asked for here, and the ``attach`` op to one asked for over HTTP), and
shutdown ends every stream with its final event, then the connection.

Client → server (one JSON object per text message)::

    {"op": "subscribe", "id": "s1", "types": ["process.*"], "agents": [...],
     "processes": [...], "runs": [...], "after": 41}
    {"op": "unsubscribe", "id": "s1"}
    {"op": "chat", "id": "r1", "agent": "assistant:42", "message": "Hello"}
    {"op": "attach", "id": "r2", "agent": "assistant:42"}
    {"op": "cancel", "id": "r1"}
    {"op": "ping", "id": 7}

Server → client::

    {"kind": "hello", "protocol": "vega.v1", "connection_id": "...", "limits": {...}}
    {"kind": "subscribed", "id": "s1"}
    {"kind": "event", "subscription": "s1", "event": {"type": "process.started", "seq": 42, ...}}
    {"kind": "lagged", "subscription": "s1", "missed": 3}
    {"kind": "unsubscribed", "id": "s1"}
    {"kind": "chat", "request_id": "r1", "session": "assistant:42",
     "event": {"type": "text_delta", "delta": "Hi"}}
    {"kind": "cancelled", "id": "r1", "cancelled": true}
    {"kind": "pong", "id": 7}
    {"kind": "heartbeat"}                       (after every quiet heartbeat_interval)
    {"kind": "error", "id": "r1", "op": "chat", "status": 404, "error": "...",
     "error_class": "agent_not_found"}
    {"kind": "shutdown", "reason": "the server is shutting down"}   (then close 1001)

A bad message gets an ``error`` and the connection stays open. docs/serve.md has the
details.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import aclosing
from typing import Any

import attrs
import trio
from quart import g, websocket
from quart_trio import QuartTrio

from .._agents import session_name
from .._errors import RequestRejected
from .._redact import redact_data
from ._app import _split_session, start_reply
from ._openapi import api_of, reject_field
from ._problems import failure_of
from ._security import BEARER_SUBPROTOCOL_PREFIX
from ._state import ChatReply, ServerState

__all__ = ["PROTOCOL", "install_websocket"]

_log = logging.getLogger("vega_trio.serve")

PROTOCOL = "vega.v1"
"""The subprotocol a client may offer (and the server then answers with): a browser
offering ``["vega.v1", "bearer.<token>"]`` gets ``vega.v1`` back, not its token."""

SHUTDOWN_CLOSE_CODE = 1001  # "going away" (RFC 6455)

_FILTERS = ("types", "agents", "processes", "runs")
_FIELDS: dict[str, frozenset[str]] = {
    "subscribe": frozenset({"op", "id", *_FILTERS, "after"}),
    "unsubscribe": frozenset({"op", "id"}),
    "chat": frozenset({"op", "id", "agent", "message"}),
    "attach": frozenset({"op", "id", "agent"}),
    "cancel": frozenset({"op", "id"}),
    "ping": frozenset({"op", "id"}),
}
_MAX_ID_LENGTH = 128


def _encode(message: dict[str, Any]) -> str:
    """One server message as JSON text, through the redaction layer (SPEC §11)."""
    return json.dumps(redact_data(message), ensure_ascii=False, separators=(",", ":"))


def choose_subprotocol(offered: list[str]) -> str | None:
    """The subprotocol to answer with: ``vega.v1`` when offered, else the
    ``bearer.<token>`` entry (a browser fails a handshake that answers none of the
    protocols it offered), else none."""
    if PROTOCOL in offered:
        return PROTOCOL
    return next((p for p in offered if p.startswith(BEARER_SUBPROTOCOL_PREFIX)), None)


# ------------------------------------------------------------------ validation
def _message_id(data: dict[str, Any], *, required: bool) -> str | int | None:
    value = data.get("id")
    if value is None:
        if required:
            raise reject_field("id", "required (a string or an integer the replies carry)")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise reject_field("id", f"expected a string or an integer, got {type(value).__name__}")
    if isinstance(value, str) and not 0 < len(value) <= _MAX_ID_LENGTH:
        raise reject_field("id", f"must have 1 to {_MAX_ID_LENGTH} characters")
    return value


def _string_list(data: dict[str, Any], name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise reject_field(name, f"expected a list of strings, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            got = repr(item) if isinstance(item, str) else type(item).__name__
            raise reject_field(f"{name}[{index}]", f"expected a non-empty string, got {got}")
    return list(value)


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        raise reject_field(name, "required")
    if not isinstance(value, str):
        raise reject_field(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise reject_field(name, "must not be empty")
    return value


def _session_field(data: dict[str, Any]) -> tuple[str, str, str | None]:
    """The ``agent`` field: ``(name, agent, user)`` of ``agent`` or ``agent:user-id``."""
    name = _string(data, "agent")
    try:
        agent, user = _split_session(name)
    except RequestRejected as exc:  # reported under this protocol's field name
        detail = exc.fields[0]["error"] if exc.fields else str(exc)
        raise reject_field("agent", detail) from None
    return name, agent, user


def _parse(raw: str | bytes) -> dict[str, Any]:
    """A client message as a JSON object (not checked further)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRejected(
            400, f"the message is not valid JSON: {exc}", error_class="bad_json"
        ) from None
    if not isinstance(data, dict):
        raise reject_field("$", f"expected a JSON object, got {type(data).__name__}")
    return data


def _check_op(data: dict[str, Any]) -> str:
    """The message's ``op``, known, with only that op's fields."""
    op = data.get("op")
    if not isinstance(op, str) or op not in _FIELDS:
        raise RequestRejected(
            422,
            f"unknown op {op!r}; use one of {', '.join(_FIELDS)}",
            error_class="unknown_op",
            fields=[{"path": "op", "error": f"expected one of {', '.join(_FIELDS)}"}],
        )
    unknown = sorted(set(data) - _FIELDS[op])
    if unknown:
        raise reject_field(
            unknown[0], f"unknown field of {op!r} (allowed: {', '.join(sorted(_FIELDS[op]))})"
        )
    return op


# ------------------------------------------------------------------ a connection
@attrs.define(eq=False)
class _Stream:
    """A subscription's or a chat request's forwarding task."""

    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    reply: ChatReply | None = None


@attrs.define(eq=False)
class _Connection:
    """One client: its streams, and the bounded queue of what goes out to it."""

    state: ServerState
    outbox: trio.MemorySendChannel[str]
    streams: trio.Nursery
    connection_id: str
    subscriptions: dict[str | int, _Stream] = attrs.field(factory=dict)
    chats: dict[str | int, _Stream] = attrs.field(factory=dict)

    async def put(self, message: dict[str, Any]) -> None:
        """Queue a message; waits while the client's send buffer is full (only this
        connection's tasks wait: the runtime only ever fills subscription buffers)."""
        await self.outbox.send(_encode(message))

    async def handle(self, raw: str | bytes) -> None:
        """Answer one client message; a bad one gets an ``error`` message."""
        message_id: Any = None
        op: Any = None
        try:
            data = _parse(raw)
            message_id, op = data.get("id"), data.get("op")  # for the error, if any
            op = _check_op(data)
            await getattr(self, f"_op_{op}")(data)
        except Exception as exc:
            failure = failure_of(exc)
            if failure.internal:
                _log.error(
                    "WebSocket connection %s: op %r failed", self.connection_id, op, exc_info=exc
                )
            error: dict[str, Any] = {
                "kind": "error",
                "id": message_id if isinstance(message_id, str | int) else None,
                "op": op if isinstance(op, str) else None,
                "status": failure.status,
                "error": failure.message,
                "error_class": failure.error_class,
            }
            error.update(failure.extra)
            if failure.internal:  # the generic message points at the log entry
                error["connection_id"] = self.connection_id
            await self.put(error)

    def _check_room(self) -> None:
        limit = self.state.config.ws_max_streams
        if len(self.subscriptions) + len(self.chats) >= limit:
            raise RequestRejected(
                429,
                f"this connection has {limit} streams open (subscriptions and chat "
                "replies); unsubscribe or wait for a reply to end "
                "(ServeConfig.ws_max_streams)",
                error_class="too_many_streams",
            )

    # ------------------------------------------------------------ the ops
    async def _op_ping(self, data: dict[str, Any]) -> None:
        await self.put({"kind": "pong", "id": _message_id(data, required=False)})

    async def _op_subscribe(self, data: dict[str, Any]) -> None:
        sub_id = _message_id(data, required=True)
        assert sub_id is not None
        filters = {name: _string_list(data, name) for name in _FILTERS}
        after = data.get("after")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise reject_field("after", f"expected an integer, got {type(after).__name__}")
        if after is not None and after < 0:
            raise reject_field("after", f"must be 0 or more, got {after}")
        if sub_id in self.subscriptions:
            raise RequestRejected(
                409,
                f"a subscription {sub_id!r} is open on this connection; unsubscribe it or "
                "use another id",
                error_class="duplicate_id",
            )
        self._check_room()
        stream = self.subscriptions[sub_id] = _Stream()
        await self.streams.start(self._forward_events, sub_id, stream, filters, after)

    async def _forward_events(  # noqa: ASYNC114 - started right here with nursery.start
        self,
        sub_id: str | int,
        stream: _Stream,
        filters: dict[str, list[str] | None],
        after: int | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # NOTE: the event's JSON comes from the shared log (encoded once for every
        # stream); only this subscription's envelope is made here.
        prefix = '{"kind":"event","subscription":' + json.dumps(redact_data(sub_id)) + ',"event":'
        try:
            with stream.scope, self.state.read_events(after=after, **filters) as reader:
                # NOTE: queued before any of its events, so the client knows from which
                # message on the subscription is live.
                await self.put({"kind": "subscribed", "id": sub_id})
                task_status.started()
                batches = reader.batches(self.state.orch, math.inf)
                async with aclosing(batches):
                    async for batch in batches:
                        if batch is None:  # no heartbeats here: _send_all sends them
                            continue
                        if batch.missed:
                            await self.put(
                                {"kind": "lagged", "subscription": sub_id, "missed": batch.missed}
                            )
                        for entry in batch.entries:
                            await self.outbox.send(prefix + entry.payload + "}")
        finally:
            if self.subscriptions.get(sub_id) is stream:
                del self.subscriptions[sub_id]
            stream.done.set()

    async def _op_unsubscribe(self, data: dict[str, Any]) -> None:
        sub_id = _message_id(data, required=True)
        assert sub_id is not None
        stream = self.subscriptions.get(sub_id)
        if stream is None:
            raise RequestRejected(
                404,
                f"no subscription {sub_id!r} is open on this connection",
                error_class="unknown_subscription",
            )
        stream.scope.cancel(reason="unsubscribed")
        await stream.done.wait()
        # Its forwarder has stopped: no message of it comes after this one.
        await self.put({"kind": "unsubscribed", "id": sub_id})

    async def _op_chat(self, data: dict[str, Any]) -> None:
        request_id = self._new_request_id(data)
        name, _, _ = _session_field(data)
        message = _string(data, "message")
        reply = await start_reply(self.state, name, message)
        await self._stream_reply(request_id, reply)

    async def _op_attach(self, data: dict[str, Any]) -> None:
        request_id = self._new_request_id(data)
        name, agent, user = _session_field(data)
        self.state.orch.agents.get(agent)  # an unknown agent: agent_not_found
        reply = self.state.replies.get(session_name(agent, user))
        if reply is None:
            raise RequestRejected(
                404,
                f"no reply of {name!r} to attach to; send a chat message first",
                error_class="no_reply",
            )
        await self._stream_reply(request_id, reply)

    def _new_request_id(self, data: dict[str, Any]) -> str | int:
        request_id = _message_id(data, required=True)
        assert request_id is not None
        if request_id in self.chats:
            raise RequestRejected(
                409,
                f"a chat request {request_id!r} is still streaming on this connection; "
                "use another id",
                error_class="duplicate_id",
            )
        self._check_room()
        return request_id

    async def _stream_reply(self, request_id: str | int, reply: ChatReply) -> None:
        stream = self.chats[request_id] = _Stream(reply=reply)
        self.streams.start_soon(self._forward_reply, request_id, stream, reply)

    async def _forward_reply(
        self, request_id: str | int, stream: _Stream, reply: ChatReply
    ) -> None:
        # NOTE: the reply runs in the server's nursery, not here: if this connection
        # goes away it still completes and is kept (GET …/chat/stream replays it).
        try:
            with stream.scope:
                async with aclosing(reply.follow(self.state)) as events:
                    async for event in events:
                        await self.put(
                            {
                                "kind": "chat",
                                "request_id": request_id,
                                "session": reply.session,
                                "event": event.to_dict(),
                            }
                        )
        finally:
            if self.chats.get(request_id) is stream:
                del self.chats[request_id]
            stream.done.set()

    async def _op_cancel(self, data: dict[str, Any]) -> None:
        request_id = _message_id(data, required=True)
        stream = self.chats.get(request_id) if request_id is not None else None
        if stream is None or stream.reply is None:
            raise RequestRejected(
                404,
                f"no chat request {request_id!r} is streaming on this connection",
                error_class="unknown_request",
            )
        reply = stream.reply
        in_flight = not reply.finished.is_set()
        if in_flight:  # as DELETE …/chat/stream: the reply ends with an `error` event
            reply.scope.cancel(reason="cancelled over the WebSocket")
            await reply.finished.wait()
        await self.put({"kind": "cancelled", "id": request_id, "cancelled": in_flight})


# ------------------------------------------------------------------ the route
_HEARTBEAT = _encode({"kind": "heartbeat"})


async def _send_all(outbox: trio.MemoryReceiveChannel[str], heartbeat_interval: float) -> None:
    """Send what is queued, in order, and a heartbeat after every quiet
    ``heartbeat_interval`` (like SSE's, so proxies keep the connection); when the queue
    is closed (shutdown), say goodbye."""
    async with outbox:
        while True:
            text = _HEARTBEAT
            with trio.move_on_after(heartbeat_interval):
                try:
                    text = await outbox.receive()
                except trio.EndOfChannel:
                    break
            await websocket.send(text)
    await websocket.close(SHUTDOWN_CLOSE_CODE, "the server is shutting down")


async def _read_all(connection: _Connection, scope: trio.CancelScope) -> None:
    with scope:
        while True:
            raw = await websocket.receive()
            await connection.handle(raw)


def install_websocket(app: QuartTrio, state: ServerState) -> None:
    """Register ``/api/ws`` (the handshake passed the checks of ``_security.py``)."""
    config = state.config

    @api_of(app).websocket(
        "/api/ws",
        summary="Events and chat over one WebSocket",
        description="The JSON message protocol `vega.v1` (docs/serve.md, `/api/ws`): "
        "event subscriptions with the filters of /api/events, and chat requests streaming "
        "their reply's events. Browsers send the token as the subprotocol `bearer.<token>`.",
        tags=("events", "chat"),
    )
    async def api_ws() -> None:
        await websocket.accept(subprotocol=choose_subprotocol(websocket.requested_subprotocols))
        send_channel, receive_channel = trio.open_memory_channel[str](config.ws_send_buffer)
        # NOTE: when the client goes away Quart-Trio cancels this task: the nurseries
        # unwind, every subscription's `with` closes, chat replies run on.
        async with trio.open_nursery() as outer:
            outer.start_soon(_send_all, receive_channel, config.heartbeat_interval)
            async with send_channel:
                async with trio.open_nursery() as streams:
                    connection = _Connection(state, send_channel, streams, g.request_id)
                    await connection.put(
                        {
                            "kind": "hello",
                            "protocol": PROTOCOL,
                            "connection_id": connection.connection_id,
                            "limits": {
                                "max_streams": config.ws_max_streams,
                                "max_message_bytes": config.max_body_bytes,
                                "send_buffer": config.ws_send_buffer,
                                "event_buffer": config.event_buffer,
                            },
                        }
                    )
                    reading = trio.CancelScope()
                    streams.start_soon(_read_all, connection, reading)
                    await state.shutting_down.wait()
                    # Stop reading; the streams end by themselves with their final
                    # events: begin_shutdown closed the subscriptions, and the replies
                    # (woken here too: a session's older reply is no longer in
                    # state.replies) end with a `server_shutdown` error.
                    reading.cancel(reason="the server is shutting down")
                    for stream in list(connection.chats.values()):
                        if stream.reply is not None:
                            stream.reply.wake()
                await connection.put({"kind": "shutdown", "reason": "the server is shutting down"})
