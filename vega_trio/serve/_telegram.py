"""The Telegram bot of ``vega-trio serve`` (SPEC §10.6): a chat surface over the same
sessions and replies as ``POST /api/agents/{name}/chat``.

Shape: :func:`run_telegram` runs in the server's nursery for as long as the server
runs. One **poller** long-polls ``getUpdates``; it is supervised by the runtime's
restart engine (a crash — the network, a 5xx, a bad answer — restarts it after a
backoff; a refused token (401) or a conflict (409: another bot instance polls with the
token, or a webhook is set) stops the bot with an error in the log, and the server goes
on). Each Telegram user has a small queue and one **worker** that answers their
messages in order, so a slow reply to one user never holds another.

Delivery: the update offset is committed to the store (``Store.put_state``, key
``telegram.offset.<bot id>``) *before* the updates of a batch are handled, so an update
is handled at most once, also across restarts (a message being answered when the
process is killed is not answered; graceful shutdowns tell the user to send it again).

Each user's conversation is the session ``<agent>:<user id>`` (``hermes:12345``): its
history is persisted and readable at ``GET /api/agents/hermes:12345/chat``, and the
reply in progress can be followed there too, as any other reply of the server.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import attrs
import httpx2
import trio

from .._agents import session_name
from .._errors import RequestRejected, TelegramError
from .._redact import redact
from ..runtime._restart import RestartEngine
from ..runtime._restart import wait as restart_wait
from ._app import start_reply
from ._state import ChatReply, ServerState
from ._telegram_api import BotAPI, open_bot_api
from ._telegram_config import ENV_ALLOWED_USERS, ENV_TOKEN, TelegramConfig

__all__ = ["MAX_MESSAGE_LENGTH", "TelegramBot", "run_telegram", "split_message", "utf16_length"]

_log = logging.getLogger("vega_trio.serve.telegram")

MAX_MESSAGE_LENGTH: Final = 4096
"""The longest message Telegram takes, in UTF-16 code units (how it counts)."""

OFFSET_KEY: Final = "telegram.offset.{bot_id}"
"""The store's ``put_state`` key of a bot's next update id."""

NOTICE_INTERVAL: Final = 3600.0
"""Seconds between two "you are not allowed" answers to the same user."""

_SEND_ATTEMPTS: Final = 4
_FATAL_CODES: Final = frozenset({401, 404, 409})
"""The Bot API's answers that no restart cures: a refused token (401; 404 for a token
of the wrong shape) and a conflict (409)."""


# ------------------------------------------------------------------------ splitting
def utf16_length(text: str) -> int:
    """How long ``text`` is for Telegram: UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _fitting(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` UTF-16 code units."""
    if len(text) <= limit // 2:
        return len(text)
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def split_message(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """``text`` cut into messages of at most ``limit`` UTF-16 code units.

    Each cut is at the last paragraph break (a blank line) that fits, else the last
    line break, else the last space, else (one very long word) at the limit. Nothing
    is lost: the parts joined give ``text`` back (a break stays at the end of the part
    before it).
    """
    if limit < 2:
        raise ValueError(f"split_message: limit must be at least 2, got {limit}")
    parts: list[str] = []
    rest = text
    while utf16_length(rest) > limit:
        fit = _fitting(rest, limit)
        window = rest[:fit]
        cut = 0
        for separator in ("\n\n", "\n", " "):
            found = window.rfind(separator)
            if found > 0:
                cut = found + len(separator)
                break
        if cut == 0:
            cut = fit
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


# --------------------------------------------------------------------------- the bot
@attrs.frozen(kw_only=True)
class _Incoming:
    """One message a user sent (what a worker needs of the update)."""

    update_id: int
    chat_id: int
    user_id: int
    text: str | None


@attrs.define(eq=False)
class _Chat:
    """One user's queue: the worker answers its messages in order."""

    pending: deque[_Incoming] = attrs.field(factory=deque)
    working: bool = False


@attrs.define(eq=False)
class TelegramBot:
    """The running bot of one server (see the module's docstring).

    Attributes:
        status: ``starting``, ``polling``, ``restarting`` or ``stopped``.
        last_error: why it restarted or stopped last (redacted).
        restarts: how many times the poller was restarted after a crash.
        username: the bot's Telegram username (from ``getMe``).
        offset: the next update id to ask for (committed before it is used).
    """

    state: ServerState
    config: TelegramConfig
    api: BotAPI
    nursery: trio.Nursery
    status: str = "starting"
    last_error: str | None = None
    restarts: int = 0
    username: str | None = None
    offset: int | None = None
    _chats: dict[int, _Chat] = attrs.field(factory=dict)
    _noticed: dict[int, float] = attrs.field(factory=dict)
    _idle: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._idle.set()

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` shows about the bot."""
        return {
            "status": self.status,
            "agent": self.config.agent,
            "username": self.username,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    # -- polling -----------------------------------------------------------------------
    async def keep_polling(self) -> None:
        """Poll until the server shuts down or Telegram refuses the bot for good;
        restart a crashed poller through the runtime's restart engine."""
        config = self.config
        engine: RestartEngine[str] = RestartEngine(
            max_restarts=-1, window=config.stable_after, backoff=config.backoff
        )
        while True:
            try:
                await self._poll(engine)
            except TelegramError as exc:
                if exc.error_code in _FATAL_CODES:
                    self._stop(exc)
                    return
                cause = str(exc)
            except (httpx2.HTTPError, OSError) as exc:
                cause = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            except Exception as exc:
                cause = redact(f"{type(exc).__name__}: {exc}")
                _log.error("Telegram: the poller crashed", exc_info=exc)
            decision = engine.failure(cause, trio.current_time())
            self.status, self.last_error, self.restarts = "restarting", cause, decision.number
            _log.warning(
                "Telegram: the poller failed (%s); restart #%d in %g s",
                cause,
                decision.number,
                decision.delay,
            )
            await restart_wait(decision)

    def _stop(self, exc: TelegramError) -> None:
        self.status = "stopped"
        if exc.error_code == 409:
            what = (
                "another program polls this bot's updates (or a webhook is set): stop the "
                "other vega-trio serve or bot using the token (a webhook: call deleteWebhook)"
            )
        else:
            what = (
                f"Telegram refused the bot token: check {ENV_TOKEN} (in ~/.vega/env or the "
                "environment) against @BotFather"
            )
        self.last_error = f"{exc}; {what}"
        _log.error(
            "Telegram: the bot stopped: %s, then restart vega-trio serve. The server goes on "
            "without Telegram.",
            self.last_error,
        )

    async def _poll(self, engine: RestartEngine[str]) -> None:
        me = await self.api.get_me()
        self.username = str(me.get("username") or "") or None
        await self._load_offset()
        engine.up(trio.current_time())
        self.status = "polling"
        _log.info(
            "Telegram: polling as @%s for agent %r (%d allowed user(s))",
            self.username,
            self.config.agent,
            len(self.config.allowed_users),
        )
        while True:
            try:
                updates = await self.api.get_updates(self.offset, self.config.poll_timeout)
            except TelegramError as exc:
                if exc.error_code != 429:
                    raise
                # Rate limited: not a crash; wait as long as Telegram says.
                await trio.sleep(exc.retry_after if exc.retry_after is not None else 1.0)
                continue
            fresh = sorted(
                (u for u in updates if self._is_new(u)), key=lambda u: int(u["update_id"])
            )
            if not fresh:
                continue
            # NOTE: committed before anything is handled: an update is handled at most
            # once, also when the process dies right after this (SPEC §12).
            await self._save_offset(int(fresh[-1]["update_id"]) + 1)
            for update in fresh:
                try:
                    self._dispatch(update)
                except Exception as exc:  # a malformed update must not stop the others
                    _log.error(
                        "Telegram: update %s was skipped: %s",
                        update.get("update_id"),
                        redact(f"{type(exc).__name__}: {exc}"),
                    )

    def _is_new(self, update: Mapping[str, Any]) -> bool:
        update_id = update.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return False
        return self.offset is None or update_id >= self.offset

    def _offset_key(self) -> str:
        return OFFSET_KEY.format(bot_id=self.config.bot_id)

    async def _load_offset(self) -> None:
        persistence = self.state.orch.persistence
        if persistence is None:
            return
        stored = await persistence.store.get_state(self._offset_key())
        if isinstance(stored, int) and (self.offset is None or stored > self.offset):
            self.offset = stored

    async def _save_offset(self, offset: int) -> None:
        persistence = self.state.orch.persistence
        if persistence is not None:
            await persistence.store.put_state(self._offset_key(), offset)
        self.offset = offset

    # -- dispatching -------------------------------------------------------------------
    def _dispatch(self, update: Mapping[str, Any]) -> None:
        message = update.get("message")
        if not isinstance(message, Mapping):
            return  # not a message (getUpdates asks for messages only)
        chat, sender = message.get("chat"), message.get("from")
        if not isinstance(chat, Mapping) or not isinstance(sender, Mapping):
            return
        if chat.get("type") != "private":
            _log.info(
                "Telegram: a message in a %s chat was ignored: the bot answers in private "
                "chats only",
                chat.get("type"),
            )
            return
        text = message.get("text")
        incoming = _Incoming(
            update_id=int(update["update_id"]),
            chat_id=int(chat["id"]),
            user_id=int(sender["id"]),
            text=text if isinstance(text, str) else None,
        )
        queue = self._chats.setdefault(incoming.user_id, _Chat())
        if len(queue.pending) >= self.config.max_pending:
            _log.warning(
                "Telegram: user %s has %d messages waiting; update %d was dropped",
                incoming.user_id,
                len(queue.pending),
                incoming.update_id,
            )
            return
        queue.pending.append(incoming)
        if not queue.working:
            queue.working = True
            self._idle = trio.Event()
            self.nursery.start_soon(self._work, incoming.user_id, queue)

    async def _work(self, user_id: int, queue: _Chat) -> None:
        try:
            while queue.pending:
                await self._handle(queue.pending.popleft())
        finally:
            queue.working = False
            if self._chats.get(user_id) is queue:
                del self._chats[user_id]
            if not any(chat.working for chat in self._chats.values()):
                self._idle.set()

    async def drained(self) -> None:
        """Wait until every message taken from Telegram has been answered."""
        while not self._idle.is_set():
            await self._idle.wait()

    # -- handling ----------------------------------------------------------------------
    async def _handle(self, incoming: _Incoming) -> None:
        try:
            if incoming.user_id not in self.config.allowed_users:
                await self._refuse(incoming)
                return
            if incoming.text is None:
                await self._send(incoming.chat_id, "I read text messages only.")
                return
            command = self._command(incoming.text)
            if command == "/start":
                await self._send(
                    incoming.chat_id,
                    f"Hello! You are talking to the {self.config.agent} agent of vega-trio. "
                    "Send a message to begin; /reset starts a new conversation.",
                )
            elif command == "/reset":
                await self._reset(incoming)
            else:
                await self._answer(incoming)
        except Exception as exc:
            # NOTE: a worker never crashes the bot: the user gets a reference, the log
            # the details.
            await self._failed(incoming, exc)

    def _command(self, text: str) -> str | None:
        word = text.strip().split(maxsplit=1)[0] if text.strip() else ""
        if not word.startswith("/"):
            return None
        name, _, mention = word.partition("@")
        if mention and self.username is not None and mention.lower() != self.username.lower():
            return None  # addressed to another bot
        return name.lower() if name.lower() in ("/start", "/reset") else None

    async def _refuse(self, incoming: _Incoming) -> None:
        now = trio.current_time()
        last = self._noticed.get(incoming.user_id)
        if last is not None and now - last < NOTICE_INTERVAL:
            _log.debug("Telegram: user %s (not allowed) wrote again", incoming.user_id)
            return
        _log.warning(
            "Telegram: user %s is not in %s; their message was not answered (they were "
            "told their id)",
            incoming.user_id,
            ENV_ALLOWED_USERS,
        )
        if len(self._noticed) >= 10_000:  # bounded: forget the notices that expired
            self._noticed = {
                user: at for user, at in self._noticed.items() if now - at < NOTICE_INTERVAL
            }
        self._noticed[incoming.user_id] = now
        await self._send(
            incoming.chat_id,
            f"Sorry, this bot does not serve you yet. Your Telegram user id is "
            f"{incoming.user_id}. To allow it, add it to {ENV_ALLOWED_USERS} (ids separated "
            "by commas) in ~/.vega/env on the server and restart vega-trio serve.",
            markdown=False,
        )

    async def _reset(self, incoming: _Incoming) -> None:
        user = str(incoming.user_id)
        await self.state.orch.end_session(self.config.agent, user=user)
        self.state.replies.pop(session_name(self.config.agent, user), None)
        await self._send(
            incoming.chat_id, "Done: your next message starts a new conversation.", markdown=False
        )

    async def _answer(self, incoming: _Incoming) -> None:
        assert incoming.text is not None
        session = session_name(self.config.agent, str(incoming.user_id))
        reply: ChatReply | None = None
        failure: Exception | None = None
        async with trio.open_nursery() as typing:
            typing.start_soon(self._keep_typing, incoming.chat_id)
            try:
                reply = await start_reply(self.state, session, incoming.text)
                await reply.finished.wait()
            except Exception as exc:  # raised out of the nursery, it would be a group
                failure = exc
            typing.cancel_scope.cancel()
        if failure is not None or reply is None:
            await self._failed(incoming, failure or RuntimeError("no reply"))
        elif reply.done:
            await self._send(incoming.chat_id, reply.text or "(the agent gave an empty reply)")
        elif reply.error is not None and isinstance(reply.error, Exception):
            await self._failed(incoming, reply.error)
        else:  # the server stopped (or the reply was cancelled) before it was finished
            await self._send(
                incoming.chat_id,
                "Your message was not answered: the server stopped. Please send it again.",
                markdown=False,
            )

    async def _keep_typing(self, chat_id: int) -> None:
        while True:
            try:
                await self.api.send_typing(chat_id)
            except (TelegramError, httpx2.HTTPError) as exc:
                _log.debug("Telegram: typing indicator failed: %s", redact(str(exc)))
            await trio.sleep(self.config.typing_interval)

    async def _failed(self, incoming: _Incoming, exc: Exception) -> None:
        if isinstance(exc, RequestRejected) and exc.error_class == "server_shutdown":
            text = "Your message was not answered: the server is stopping. Please send it again."
            await self._send_quietly(incoming.chat_id, text)
            return
        reference = secrets.token_hex(4)
        _log.error(
            "Telegram: answering update %d of user %s failed (ref %s): %s",
            incoming.update_id,
            incoming.user_id,
            reference,
            redact(f"{type(exc).__name__}: {exc}"),
            exc_info=exc if not isinstance(exc, TelegramError) else None,
        )
        await self._send_quietly(
            incoming.chat_id,
            f"Sorry, something went wrong while answering (ref {reference}). Please try "
            "again; the server's log has the details under that reference.",
        )

    async def _send_quietly(self, chat_id: int, text: str) -> None:
        try:
            await self._send(chat_id, text, markdown=False)
        except Exception as exc:
            _log.error("Telegram: could not send to chat %s: %s", chat_id, redact(str(exc)))

    # -- sending -----------------------------------------------------------------------
    async def _send(self, chat_id: int, text: str, *, markdown: bool | None = None) -> None:
        """Send ``text`` in as many messages as it takes; each as Markdown first (when
        configured) and, if Telegram cannot parse it, again as plain text."""
        markdown = self.config.markdown if markdown is None else markdown
        for part in split_message(text):
            if not part.strip():
                continue
            await self._send_part(chat_id, part, markdown=markdown)

    async def _send_part(self, chat_id: int, text: str, *, markdown: bool) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.api.send_message(chat_id, text, markdown=markdown)
                return
            except TelegramError as exc:
                if exc.error_code == 400 and markdown:
                    # NOTE: the model's Markdown is not Telegram's: never lose the reply.
                    _log.info("Telegram: Markdown refused (%s); sent as plain text", exc)
                    markdown = False
                    continue
                retryable = exc.error_code == 429 or exc.error_code is None or exc.error_code >= 500
                if not retryable or attempt >= _SEND_ATTEMPTS:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else None
            except httpx2.HTTPError:
                if attempt >= _SEND_ATTEMPTS:
                    raise
                delay = None
            # 429: as long as Telegram says; a 5xx or the network: the backoff.
            await trio.sleep(delay if delay is not None else self.config.backoff.delay(attempt))


async def run_telegram(  # noqa: ASYNC114, ASYNC128 - started() is called below
    state: ServerState,
    config: TelegramConfig,
    *,
    task_status: trio.TaskStatus[TelegramBot | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the Telegram bot of ``state``'s server until the server shuts down (or
    Telegram refuses the bot: a 401 or 409 stops only the bot, with an error logged).

    Supports ``nursery.start``: ``started()`` is called with the :class:`TelegramBot`
    as soon as it is set up (before the first poll), or with ``None`` when the bot
    cannot run here (its agent is not defined: logged as an error).
    """
    orch = state.orch
    if config.agent not in orch.agents:
        known = ", ".join(sorted(orch.agents)) or "none"
        _log.error(
            "Telegram: the bot is not started: its agent %r is not defined on this server "
            "(agents: %s). Set TELEGRAM_AGENT to one of them, or define %r, and restart "
            "vega-trio serve. The server goes on without Telegram.",
            config.agent,
            known,
            config.agent,
        )
        task_status.started(None)
        return
    if not config.allowed_users:
        _log.warning(
            "Telegram: %s is empty: nobody is served; whoever writes to the bot is told "
            "their user id and how to allow it",
            ENV_ALLOWED_USERS,
        )
    if orch.persistence is None:
        _log.warning(
            "Telegram: the server has no store (--no-db): the update offset is kept in "
            "memory only, so a restart may answer recent messages again"
        )
    async with open_bot_api(config.token, config.api_url) as api, trio.open_nursery() as nursery:
        bot = TelegramBot(state, config, api, nursery)
        state.telegram = bot
        task_status.started(bot)
        with trio.CancelScope() as polling:

            async def stop_on_shutdown() -> None:
                await state.shutting_down.wait()
                polling.cancel(reason="the server is shutting down")

            nursery.start_soon(stop_on_shutdown)
            await bot.keep_polling()
        # NOTE: the messages taken from Telegram are still answered: the server waits
        # for drained() until its shutdown deadline, then cancels what is left.
        await state.shutting_down.wait()
        await bot.drained()
