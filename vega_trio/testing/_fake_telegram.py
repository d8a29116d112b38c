"""A local fake of the Telegram Bot API for tests: real HTTP on loopback (Trio and
``h11``), the methods a bot needs, scriptable updates and failures.

Point the bot at ``server.api_url`` and play the users::

    async with open_fake_telegram_server(token="123:secret") as telegram:
        telegram.add_message(user_id=42, text="hello")
        await telegram.wait_for_sent(1)
        assert telegram.sent[0].text == "..."

It serves ``/bot<token>/<method>`` (``POST`` with a JSON body, as the real API takes):

* ``getMe`` — the bot (``id`` is the number before ``:`` in the token);
* ``getUpdates`` — updates with ``update_id >= offset``; an ``offset`` confirms (and
  forgets) every update before it, as Telegram does. With none pending it waits up to
  ``timeout`` seconds (``trio.sleep``: virtual time under a ``MockClock``) for one. A
  second ``getUpdates`` while one waits ends the first with ``409 Conflict:
  terminated by other getUpdates request``, as Telegram does when two bots poll;
* ``sendMessage`` — recorded in :attr:`FakeTelegramServer.sent`; like the API it
  refuses (400) an empty text, one over 4,096 characters (UTF-16 code units) and,
  with ``parse_mode: Markdown``, unbalanced ``*``, ``_``, `````` ` `````` or ``[`` (``can't parse
  entities``);
* ``sendChatAction`` — recorded in :attr:`FakeTelegramServer.actions`.

A wrong token gets ``401 Unauthorized``. :meth:`FakeTelegramServer.fail` makes the next
calls of a method fail with any status (401, 409, 429 with ``retry_after``, 500…), and
:attr:`FakeTelegramServer.calls` records every call with its Trio time, so tests can
assert backoffs exactly.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import h11
import trio

from .._collapse import raise_collapsed
from ._http import LoopbackServer, RecordedRequest, _encode, _send, _wait_for_hangup

__all__ = [
    "FakeTelegramServer",
    "TelegramCall",
    "TelegramFailure",
    "TelegramSent",
    "open_fake_telegram_server",
]

MAX_MESSAGE_LENGTH: Final = 4096
"""The longest text ``sendMessage`` takes (UTF-16 code units, as Telegram counts)."""


@attrs.frozen(kw_only=True)
class TelegramCall:
    """One Bot API call the server received (whatever it answered).

    Attributes:
        method: ``getUpdates``, ``sendMessage``…
        params: the JSON body.
        at: ``trio.current_time()`` when it arrived.
        token: the token in its URL.
    """

    method: str
    params: Mapping[str, Any] = attrs.field(hash=False)
    at: float
    token: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class TelegramSent:
    """One message the bot sent (``sendMessage`` answered 200)."""

    chat_id: int
    text: str
    parse_mode: str | None = None
    at: float = 0.0


@attrs.frozen(kw_only=True)
class TelegramFailure:
    """A scripted failure of the next call(s) of a method (see
    :meth:`FakeTelegramServer.fail`)."""

    status: int
    description: str
    retry_after: int | None = None


_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    429: "Too Many Requests: retry after 3",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def utf16_length(text: str) -> int:
    """How long ``text`` is for Telegram (UTF-16 code units: an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def markdown_problem(text: str) -> str | None:
    """Why Telegram's (legacy) ``Markdown`` parse mode would refuse ``text``, or ``None``.

    A small model of the API's rule: outside code, ``*``, ``_`` and ``[`` open an
    entity that must be closed; a backquote opens inline code (three: a code block)
    that must be closed. Backslash escapes the next character.
    """
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                return f"can't find end of pre entity at byte offset {i}"
            i = end + 3
            continue
        if char == "`":
            end = text.find("`", i + 1)
            if end < 0:
                return f"can't find end of code entity at byte offset {i}"
            i = end + 1
            continue
        if char in "*_":
            end = text.find(char, i + 1)
            if end < 0:
                return f"can't find end of the entity starting at byte offset {i}"
            i = end + 1
            continue
        if char == "[":
            close = text.find("]", i + 1)
            if close < 0:
                return f"can't find end of the entity starting at byte offset {i}"
            i = close + 1
            continue
        i += 1
    return None


@attrs.define(eq=False)
class FakeTelegramServer(LoopbackServer):
    """A fake Telegram Bot API on loopback (see the module's docstring).

    Run it with ``async with open_fake_telegram_server() as telegram`` or
    ``await nursery.start(FakeTelegramServer(token=...).serve)``.

    Attributes:
        token: the one bot token it accepts (others get 401).
        bot_username: the bot's ``username`` (``getMe``).
        calls: every Bot API call, in order, with its Trio time.
        sent: every message sent (answered 200), in order.
        actions: every ``sendChatAction`` as ``(chat_id, action)``.
        pending_updates: updates not yet confirmed by an ``offset``.
        confirmed_offset: the highest ``offset`` a ``getUpdates`` gave so far.
    """

    _factory = "open_fake_telegram_server()"

    token: str = "123456:fake-telegram-token"
    bot_username: str = "vega_fake_bot"
    calls: list[TelegramCall] = attrs.field(factory=list, init=False)
    sent: list[TelegramSent] = attrs.field(factory=list, init=False)
    actions: list[tuple[int, str]] = attrs.field(factory=list, init=False)
    pending_updates: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    confirmed_offset: int = attrs.field(default=0, init=False)
    _next_update_id: int = attrs.field(default=1000, init=False)
    _message_ids: Any = attrs.field(factory=lambda: itertools.count(1), init=False)
    _failures: dict[str, deque[TelegramFailure | None]] = attrs.field(factory=dict, init=False)
    _arrived: trio.Event = attrs.field(factory=trio.Event, init=False)
    _poll: trio.CancelScope | None = attrs.field(default=None, init=False)

    @property
    def api_url(self) -> str:
        """The base URL to give the bot (``http://127.0.0.1:PORT``)."""
        return self.base_url

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])

    # -- scripting ---------------------------------------------------------------------

    def add_message(
        self,
        user_id: int,
        text: str | None,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Test",
    ) -> int:
        """Queue a message from user ``user_id`` (in their private chat unless
        ``chat_id`` says otherwise; ``text=None``: a photo without a caption); returns
        its ``update_id``."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": 1_700_000_000,
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            "chat": {"id": user_id if chat_id is None else chat_id, "type": chat_type},
        }
        if text is None:
            message["photo"] = [{"file_id": "photo", "width": 1, "height": 1}]
        else:
            message["text"] = text
        return self.add_update({"message": message})

    def add_update(self, update: Mapping[str, Any]) -> int:
        """Queue a raw update (its ``update_id`` is assigned); returns the id."""
        update_id = self._next_update_id
        self._next_update_id += 1
        self.pending_updates.append({"update_id": update_id, **update})
        self._arrived.set()
        self._arrived = trio.Event()
        self._notify()
        return update_id

    def fail(
        self,
        method: str,
        status: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Answer ``times`` calls of ``method`` with an error — the next ones, or those
        after ``after`` more calls answered as usual: ``status`` (401, 409, 429,
        500…), ``description`` (the API's usual one by default) and, for a 429,
        ``parameters.retry_after``."""
        failure = TelegramFailure(
            status=status,
            description=description or _DESCRIPTIONS.get(status, f"Error {status}"),
            retry_after=retry_after,
        )
        self._failures.setdefault(method, deque()).extend([None] * after + [failure] * times)

    def clear_failures(self) -> None:
        """Forget every scripted failure not used yet."""
        self._failures.clear()

    def calls_of(self, method: str) -> list[TelegramCall]:
        """The calls of one method, in order."""
        return [call for call in self.calls if call.method == method]

    async def wait_for_sent(self, count: int = 1) -> None:
        """Wait until at least ``count`` messages have been sent."""
        while len(self.sent) < count:
            await self._changed.wait()

    async def wait_for_calls(self, method: str, count: int = 1) -> None:
        """Wait until ``method`` has been called at least ``count`` times."""
        while len(self.calls_of(method)) < count:
            await self._changed.wait()

    # -- serving -----------------------------------------------------------------------

    async def _answer(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        request: RecordedRequest,
        *,
        too_large: bool,
    ) -> bool:
        path = request.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            await _reply(connection, stream, 404, _error(404, "Not Found"))
            return True
        token, method = parts[0][3:], parts[1]
        params = request.body if isinstance(request.body, Mapping) else {}
        self.requests.append(request)
        self.calls.append(
            TelegramCall(method=method, params=params, at=trio.current_time(), token=token)
        )
        self._notify()
        if token != self.token:
            await _reply(connection, stream, 401, _error(401, "Unauthorized"))
            return True
        failures = self._failures.get(method)
        failure = failures.popleft() if failures else None
        if failure is not None:
            body = _error(failure.status, failure.description)
            if failure.retry_after is not None:
                body["parameters"] = {"retry_after": failure.retry_after}
            await _reply(connection, stream, failure.status, body)
            return True
        if method == "getMe":
            result: Any = {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Vega",
                "username": self.bot_username,
            }
        elif method == "getUpdates":
            return await self._get_updates(connection, stream, params)
        elif method == "sendMessage":
            problem = self._send_problem(params)
            if problem is not None:
                await _reply(connection, stream, 400, _error(400, f"Bad Request: {problem}"))
                return True
            sent = TelegramSent(
                chat_id=int(params["chat_id"]),
                text=str(params["text"]),
                parse_mode=params.get("parse_mode"),
                at=trio.current_time(),
            )
            self.sent.append(sent)
            self._notify()
            result = {"message_id": next(self._message_ids), "text": sent.text}
        elif method == "sendChatAction":
            self.actions.append((int(params.get("chat_id", 0)), str(params.get("action"))))
            self._notify()
            result = True
        else:
            await _reply(connection, stream, 404, _error(404, "Not Found: method not found"))
            return True
        await _reply(connection, stream, 200, {"ok": True, "result": result})
        return True

    def _send_problem(self, params: Mapping[str, Any]) -> str | None:
        text = params.get("text")
        if not isinstance(params.get("chat_id"), int):
            return "chat_id is empty"
        if not isinstance(text, str) or not text.strip():
            return "message text is empty"
        if utf16_length(text) > MAX_MESSAGE_LENGTH:
            return "message is too long"
        if params.get("parse_mode") == "Markdown":
            problem = markdown_problem(text)
            if problem is not None:
                return f"can't parse entities: {problem}"
        return None

    async def _get_updates(
        self, connection: h11.Connection, stream: trio.SocketStream, params: Mapping[str, Any]
    ) -> bool:
        offset = params.get("offset")
        if isinstance(offset, int):
            self.confirmed_offset = max(self.confirmed_offset, offset)
            self.pending_updates = [
                u for u in self.pending_updates if u["update_id"] >= self.confirmed_offset
            ]
        timeout = params.get("timeout", 0)
        # NOTE: Telegram lets one getUpdates wait per bot: a new one ends the old with 409.
        if self._poll is not None:
            self._poll.cancel(reason="conflict")
        if not self.pending_updates and isinstance(timeout, int | float) and timeout > 0:
            scope = self._poll = trio.CancelScope()
            hung_up = False
            with scope:
                async with trio.open_nursery() as nursery:

                    async def watch_hangup() -> None:
                        nonlocal hung_up
                        await _wait_for_hangup(stream)
                        hung_up = True
                        nursery.cancel_scope.cancel()

                    async def wait_for_update() -> None:
                        with trio.move_on_after(timeout):
                            await self._arrived.wait()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch_hangup)
                    nursery.start_soon(wait_for_update)
            if self._poll is scope:
                self._poll = None
            if hung_up:
                return False
            if scope.cancelled_caught:  # only a newer getUpdates cancels it
                await _reply(connection, stream, 409, _error(409, _DESCRIPTIONS[409]))
                return True
        limit = params.get("limit", 100)
        updates = self.pending_updates[: limit if isinstance(limit, int) else 100]
        await _reply(connection, stream, 200, {"ok": True, "result": updates})
        return True


def _error(status: int, description: str) -> dict[str, Any]:
    return {"ok": False, "error_code": status, "description": description}


async def _reply(
    connection: h11.Connection, stream: trio.SocketStream, status: int, body: Mapping[str, Any]
) -> None:
    payload = json.dumps(body).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(payload)))]
    await _send(connection, stream, h11.Response(status_code=status, headers=_encode(headers)))
    await _send(connection, stream, h11.Data(data=payload))
    await _send(connection, stream, h11.EndOfMessage())


@asynccontextmanager
async def open_fake_telegram_server(
    *, token: str = "123456:fake-telegram-token", host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[FakeTelegramServer]:
    """Run a :class:`FakeTelegramServer` for the duration of the block.

    Args:
        token: the bot token it accepts (``<bot id>:<secret>``).
        host: the address to bind.
        port: the port to bind; 0 picks a free one.

    Yields:
        The serving server; give the bot ``server.api_url``.
    """
    server = FakeTelegramServer(host=host, port=port, token=token)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel(reason="open_fake_telegram_server: block exited")
    except BaseExceptionGroup as group:
        raise_collapsed(group)
