"""The server's configuration: one frozen object, built once (SPEC §10, §11)."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

import attrs

from ._telegram_config import TelegramConfig

__all__ = ["DEFAULT_ADDR", "ServeConfig", "is_loopback", "parse_addr"]

DEFAULT_ADDR = "127.0.0.1:3001"
"""Where ``vega-trio serve`` listens unless told otherwise: loopback only (SPEC §11)."""

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) only
    accepts connections from this machine."""
    bare = host.strip("[]")
    if bare.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def parse_addr(addr: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:3001``, ``:3001`` for the default host) as ``(host, port)``.

    Raises:
        ValueError: not ``host:port`` with a port from 0 to 65535 (the message says so).
    """
    text = addr.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(
            f"the address {addr!r} is not HOST:PORT (e.g. 127.0.0.1:3001, [::1]:3001, "
            "or :0 for any free port)"
        )
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"the address {addr!r} has an unbalanced '[' ']' around its host")
    return (host.strip("[]") or "127.0.0.1"), int(port_text)


def _check_port(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"ServeConfig.port must be 0..65535 (0: any free port), got {value!r}")


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"ServeConfig.{attribute.name} must be positive, got {value!r}")


def _check_retention(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"ServeConfig.retention_days must be a positive number of days or None (keep "
            f"everything), got {value!r}"
        )


def _check_origins(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for origin in value:
        if origin == "*" or "*" in origin:
            raise ValueError(
                "ServeConfig.allowed_origins takes exact origins (https://app.example.com); "
                "a wildcard would let any web page call the API (SPEC §11)"
            )
        if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
            raise ValueError(
                f"ServeConfig.allowed_origins: {origin!r} is not an origin; write "
                "scheme://host[:port] without a path (e.g. http://localhost:5173)"
            )


@attrs.frozen(kw_only=True)
class ServeConfig:
    """How :func:`~vega_trio.serve.serve` listens and what it lets in.

    Attributes:
        host: the address to bind (default ``127.0.0.1``: this machine only).
        port: the port (0: any free port; ``started()`` reports the real one).
        token: the bearer token every ``/api`` request must present in its
            ``Authorization: Bearer …`` header (never in the URL). Required when
            ``host`` is not a loopback address; optional on loopback.
        allowed_origins: browser origins (``https://app.example.com``) that may call the
            API cross-origin: they get CORS headers and may send mutating requests.
            No wildcard.
        allowed_hosts: extra ``Host`` header names accepted besides the bound host,
            ``localhost``, ``127.0.0.1`` and ``[::1]`` (e.g. the name a reverse proxy
            forwards); the check defeats DNS rebinding.
        max_body_bytes: larger request bodies are refused with 413.
        heartbeat_interval: seconds between ``: heartbeat`` comments on SSE streams.
        event_buffer: the latest events the server keeps in its one event log, shared by
            every ``/api/events`` client and ``/api/ws`` subscription; a client further
            behind loses its oldest ones (it then gets a ``lagged`` event saying how many).
        graceful_timeout: seconds open connections get to finish after shutdown begins
            (streams end at once with a final event; this bounds everything else).
        page_size: the default page size of paginated lists (``?limit=`` up to
            ``max_page_size``).
        max_page_size: the largest ``?limit=`` accepted.
        ws_max_streams: streams one ``/api/ws`` connection may have open at once
            (event subscriptions plus chat replies being streamed); past it a
            ``subscribe``/``chat`` is answered with an error.
        ws_send_buffer: messages queued for one ``/api/ws`` client that reads slowly;
            past it its event subscriptions start dropping (each gets a ``lagged``
            message) while the runtime goes on. A WebSocket message larger than
            ``max_body_bytes`` closes the connection with code 1009.
        max_finished_runs: how many finished workflow runs the server keeps in memory
            for ``GET /api/workflows/runs`` (the oldest are dropped first; running
            ones are always kept). With a store, a dropped run is still read from it
            by ``GET /api/workflows/runs/{id}``.
        otel: OpenTelemetry spans of the orchestrator (SPEC §13): ``None`` (default)
            follows the standard environment (``OTEL_TRACES_EXPORTER``,
            ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...; see
            :func:`~vega_trio.observability.tracing_from_env`); ``True`` always
            instruments (with the environment's exporters, else the application's
            global tracer provider); ``False`` never.
        retention_days: with a store, delete events, finished runs (with their
            steps), finished processes and cost rows older than this many days: a
            first pass in the background as the server starts, then every hour, in
            bounded transactions so the server's own writes go between them (see
            docs/persistence.md).
            ``None`` (default): keep everything. Conversations, composed agents and
            small state are never pruned.
        telegram: run a Telegram bot while serving (SPEC §10.6, docs/telegram.md);
            ``vega-trio serve`` makes one from ``TELEGRAM_BOT_TOKEN`` and friends
            (:meth:`TelegramConfig.from_env`). ``None`` (default): no bot.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=3001, validator=_check_port)
    token: str | None = attrs.field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=_check_origins
    )
    allowed_hosts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    max_body_bytes: int = attrs.field(default=1_000_000, validator=_check_positive)
    heartbeat_interval: float = attrs.field(default=15.0, validator=_check_positive)
    event_buffer: int = attrs.field(default=10_000, validator=_check_positive)
    graceful_timeout: float = attrs.field(default=5.0, validator=_check_positive)
    page_size: int = attrs.field(default=100, validator=_check_positive)
    max_page_size: int = attrs.field(default=1000, validator=_check_positive)
    ws_max_streams: int = attrs.field(default=32, validator=_check_positive)
    ws_send_buffer: int = attrs.field(default=64, validator=_check_positive)
    max_finished_runs: int = attrs.field(default=1000, validator=_check_positive)
    otel: bool | None = None
    retention_days: float | None = attrs.field(default=None, validator=_check_retention)
    telegram: TelegramConfig | None = None

    def __attrs_post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise ValueError("ServeConfig.token is empty; give a real token or None")
        if self.token is None and not is_loopback(self.host):
            raise ValueError(
                f"refusing to listen on {self.host!r} without a token: a non-loopback "
                "address is reachable from other machines. Pass --token (or set "
                "VEGA_TOKEN; ServeConfig(token=...)), or bind 127.0.0.1"
            )

    @classmethod
    def from_addr(cls, addr: str, **options: Any) -> ServeConfig:
        """A config listening on ``addr`` (``host:port``, see :func:`parse_addr`)."""
        host, port = parse_addr(addr)
        return cls(host=host, port=port, **options)
