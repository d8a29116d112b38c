"""The Telegram bot's configuration (SPEC §10.6): one frozen object, from
:class:`~vega_trio.serve.ServeConfig` or the environment (``~/.vega/env`` included)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from ..runtime._restart import Backoff
from ._telegram_api import DEFAULT_API_URL

__all__ = ["ENV_AGENT", "ENV_ALLOWED_USERS", "ENV_API_URL", "ENV_TOKEN", "TelegramConfig"]

ENV_TOKEN: Final = "TELEGRAM_BOT_TOKEN"
ENV_AGENT: Final = "TELEGRAM_AGENT"
ENV_ALLOWED_USERS: Final = "TELEGRAM_ALLOWED_USERS"
ENV_API_URL: Final = "TELEGRAM_API_URL"

DEFAULT_BACKOFF: Final = Backoff(kind="exponential", initial=1.0, multiplier=2.0, max=60.0)
"""A crashed poller restarts after 1, 2, 4… s, at most a minute apart."""

_TOKEN: Final = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")


def _check_token(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value.strip()):
        raise ValueError(
            f"{ENV_TOKEN} is not a Telegram bot token: it looks like 123456789:AAE... "
            "(the bot id, a colon, the secret), as @BotFather gives it"
        )


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"TelegramConfig.{attribute.name} must be positive, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"TelegramConfig.{attribute.name} must be finite, got {value!r}")


def _strip(value: str) -> str:
    return value.strip() if isinstance(value, str) else value


def _users(value: Iterable[int | str]) -> frozenset[int]:
    if isinstance(value, str):
        return parse_allowed_users(value)
    return frozenset(int(user) for user in value)


def parse_allowed_users(text: str) -> frozenset[int]:
    """``TELEGRAM_ALLOWED_USERS``: Telegram user ids separated by commas and/or spaces.

    Raises:
        ValueError: a part is not a whole number (the message names it).
    """
    users: set[int] = set()
    for part in re.split(r"[\s,;]+", text.strip()):
        if not part:
            continue
        if not re.fullmatch(r"-?[0-9]+", part):
            raise ValueError(
                f"{ENV_ALLOWED_USERS}: {part!r} is not a Telegram user id; list numeric ids "
                "separated by commas (e.g. 12345678,87654321): the bot tells each user "
                "their id when they write to it"
            )
        users.add(int(part))
    return frozenset(users)


@attrs.frozen(kw_only=True)
class TelegramConfig:
    """How ``vega-trio serve`` runs its Telegram bot (SPEC §10.6; see docs/telegram.md).

    Attributes:
        token: the bot token from @BotFather (``TELEGRAM_BOT_TOKEN``); never logged.
        agent: the agent that answers (``TELEGRAM_AGENT``, default ``hermes``); each
            Telegram user talks to their own session ``<agent>:<user-id>``.
        allowed_users: the Telegram user ids served (``TELEGRAM_ALLOWED_USERS``).
            Empty: nobody is served; whoever writes is told their id and how to allow it.
        api_url: the Bot API's base URL (``TELEGRAM_API_URL``; a local Bot API server,
            or a fake one in tests).
        poll_timeout: seconds one ``getUpdates`` long poll waits for an update.
        typing_interval: seconds between "typing…" indicators while the agent works
            (Telegram shows one for about 5 s).
        backoff: the wait before each restart of a crashed poller (the runtime's
            restart engine; the streak starts over once the poller has been up for
            ``stable_after`` seconds).
        stable_after: seconds of polling after which the poller counts as stable.
        max_pending: messages one user may have waiting behind the one being
            answered; more are dropped (and logged).
        markdown: send replies as Telegram Markdown (a reply Telegram cannot parse is
            sent again as plain text).
    """

    token: str = attrs.field(repr=False, validator=_check_token, converter=_strip)
    agent: str = "hermes"
    allowed_users: frozenset[int] = attrs.field(factory=frozenset, converter=_users)
    api_url: str = DEFAULT_API_URL
    poll_timeout: float = attrs.field(default=50.0, validator=_check_positive)
    typing_interval: float = attrs.field(default=4.0, validator=_check_positive)
    backoff: Backoff = DEFAULT_BACKOFF
    stable_after: float = attrs.field(default=60.0, validator=_check_positive)
    max_pending: int = attrs.field(default=10, validator=_check_positive)
    markdown: bool = True

    def __attrs_post_init__(self) -> None:
        if not self.agent or ":" in self.agent or self.agent != self.agent.strip():
            raise ValueError(
                f"{ENV_AGENT} must be an agent's name (no ':' or spaces), got {self.agent!r}"
            )
        if not self.api_url.startswith(("http://", "https://")):
            raise ValueError(f"{ENV_API_URL} must be an http(s) URL, got {self.api_url!r}")

    @property
    def bot_id(self) -> str:
        """The bot's id: the public part of the token, before the colon."""
        return self.token.split(":", 1)[0]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **options: Any
    ) -> TelegramConfig | None:
        """The bot ``env`` describes (default ``os.environ``, which ``vega-trio`` fills
        from ``~/.vega/env`` at start), or ``None`` without ``TELEGRAM_BOT_TOKEN``.

        Raises:
            ValueError: a variable is set but unusable (the message names it).
        """
        env = os.environ if env is None else env
        token = (env.get(ENV_TOKEN) or "").strip()
        if not token:
            return None
        settings: dict[str, Any] = {
            "allowed_users": parse_allowed_users(env.get(ENV_ALLOWED_USERS, "")),
        }
        if (env.get(ENV_AGENT) or "").strip():
            settings["agent"] = env[ENV_AGENT].strip()
        if (env.get(ENV_API_URL) or "").strip():
            settings["api_url"] = env[ENV_API_URL].strip()
        settings.update(options)
        return cls(token=token, **settings)
