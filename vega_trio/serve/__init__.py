"""``vega-trio serve``: the orchestrator over HTTP (REST and SSE, SPEC §10), secure by
default (SPEC §11), with an optional Telegram bot (SPEC §10.6,
docs/telegram.md). Embed it with ``await nursery.start(serve, orch, ServeConfig(...))``;
see docs/serve.md."""

from __future__ import annotations

from .._errors import RequestRejected, TelegramError
from ._app import create_app
from ._compose import restore_agents
from ._config import DEFAULT_ADDR, ServeConfig, parse_addr
from ._server import serve
from ._telegram_config import TelegramConfig

__all__ = [
    "DEFAULT_ADDR",
    "RequestRejected",
    "ServeConfig",
    "create_app",
    "parse_addr",
    "restore_agents",
    "serve",
    "TelegramConfig",
    "TelegramError",
]
