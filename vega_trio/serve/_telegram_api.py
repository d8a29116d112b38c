"""A small Telegram Bot API client on httpx2 (STACK.md: no Telegram library runs on
current Trio): the four methods the bot needs, each one ``POST`` with a JSON body.

Every failure is a :class:`~vega_trio.TelegramError` carrying the API's ``error_code``,
``description`` and ``retry_after``, or an ``httpx2.HTTPError`` when the network failed.
The bot token is part of every URL (``/bot<token>/<method>``): it is registered with the
redaction layer, so no error text or log record shows it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import httpx2

from .._errors import TelegramError
from .._redact import redact, register_secret

__all__ = ["DEFAULT_API_URL", "BotAPI", "open_bot_api"]

DEFAULT_API_URL: Final = "https://api.telegram.org"
"""Where the Bot API lives (tests point the bot at a fake server instead)."""

_CONNECT_TIMEOUT: Final = 10.0
_SLACK: Final = 20.0
"""Seconds a long poll's read waits beyond the poll's own timeout (STACK.md: the read
timeout must be longer than the poll, or every quiet poll fails)."""


@attrs.define(eq=False)
class BotAPI:
    """The Bot API of one bot (one token). Open it with :func:`open_bot_api`."""

    _client: httpx2.AsyncClient
    _method_url: str

    async def call(self, method: str, params: Mapping[str, Any], *, read_timeout: float) -> Any:
        """Call ``method`` with ``params``; its ``result``.

        Raises:
            TelegramError: the API answered ``ok: false`` (or not with its JSON).
            httpx2.HTTPError: the request failed on the network (or timed out).
        """
        timeout = httpx2.Timeout(_CONNECT_TIMEOUT, read=read_timeout)
        response = await self._client.post(
            f"{self._method_url}{method}", json=dict(params), timeout=timeout
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, Mapping) or "ok" not in body:
            raise TelegramError(
                method,
                f"the API answered HTTP {response.status_code} without its JSON "
                f"({redact(response.text[:200])!r})",
                error_code=response.status_code if response.status_code >= 400 else None,
            )
        if body["ok"] is True:
            return body.get("result")
        parameters = body.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, Mapping) else None
        code = body.get("error_code")
        raise TelegramError(
            method,
            redact(str(body.get("description") or "no description")),
            error_code=code if isinstance(code, int) else response.status_code,
            retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        )

    async def get_me(self) -> Mapping[str, Any]:
        """The bot itself (``id``, ``username``): checks the token."""
        result = await self.call("getMe", {}, read_timeout=_CONNECT_TIMEOUT)
        if not isinstance(result, Mapping):
            raise TelegramError("getMe", f"the API answered {result!r}, not the bot")
        return result

    async def get_updates(self, offset: int | None, poll_timeout: float) -> list[Mapping[str, Any]]:
        """Long-poll for updates from ``offset`` on (confirming the ones before it)."""
        params: dict[str, Any] = {"timeout": int(poll_timeout), "allowed_updates": ["message"]}
        if offset is not None:
            params["offset"] = offset
        result = await self.call("getUpdates", params, read_timeout=poll_timeout + _SLACK)
        if not isinstance(result, list):
            raise TelegramError("getUpdates", f"the API answered {result!r}, not a list")
        return [update for update in result if isinstance(update, Mapping)]

    async def send_message(self, chat_id: int, text: str, *, markdown: bool) -> None:
        """Send ``text`` to ``chat_id`` (as Telegram Markdown when ``markdown``)."""
        params: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if markdown:
            params["parse_mode"] = "Markdown"
        await self.call("sendMessage", params, read_timeout=_CONNECT_TIMEOUT)

    async def send_typing(self, chat_id: int) -> None:
        """Show "typing…" in ``chat_id`` (Telegram shows it for about 5 s)."""
        await self.call(
            "sendChatAction",
            {"chat_id": chat_id, "action": "typing"},
            read_timeout=_CONNECT_TIMEOUT,
        )


@asynccontextmanager
async def open_bot_api(token: str, api_url: str = DEFAULT_API_URL) -> AsyncIterator[BotAPI]:
    """The Bot API of the bot with ``token`` for the block (one connection pool)."""
    register_secret(token)
    async with httpx2.AsyncClient(
        timeout=httpx2.Timeout(_CONNECT_TIMEOUT), follow_redirects=False
    ) as client:
        yield BotAPI(client, f"{api_url.rstrip('/')}/bot{token}/")
