"""How to reach one MCP server: :class:`MCPServerConfig`, and ``${VAR}`` expansion."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from ..._redact import is_secret_name, register_secret
from ...runtime._restart import Backoff
from ._errors import MCPConfigError

__all__ = ["MCPServerConfig", "MCPTransport", "expand_variables"]

MCPTransport: TypeAlias = Literal["stdio", "http", "sse"]
"""``stdio`` (a subprocess), ``http`` (streamable HTTP) or ``sse`` (the legacy HTTP+SSE
transport, for servers that have not moved to streamable HTTP)."""

_SERVER_NAME = re.compile(r"^[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# NOTE: tool names the model sees are ``<server>__<tool>`` and model APIs cap names at
# 64 characters; a 40-character server name leaves 22 for the tool's own name.
_MAX_SERVER_NAME = 40

_DEFAULT_BACKOFF = Backoff(kind="exponential", initial=0.5, multiplier=2.0, max=30.0)


def expand_variables(
    text: str,
    environ: Mapping[str, str],
    *,
    server: str,
    field: str,
    secret: bool = False,
) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in ``text`` with values from ``environ``.

    ``${VAR:-default}`` uses the default when ``VAR`` is unset or empty (as the shell does).
    Each value taken from ``environ`` is registered with the redaction layer
    (:func:`vega_trio._redact.register_secret`) when ``secret`` is true or ``VAR``'s name
    looks secret, so it never shows in an error, a log record or an event.

    Args:
        text: the text to expand.
        environ: where variables are looked up (usually ``os.environ``).
        server: the server's name, for the error message.
        field: what ``text`` is, for the error message (e.g. ``"env GITHUB_TOKEN"``).
        secret: the field holds a secret (an env value or header whose name says so).

    Raises:
        MCPConfigError: a ``${VAR}`` without a default is not set.
    """

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise MCPConfigError(
                f"MCP server {server!r}, {field}: environment variable {name!r} is not set. "
                f"Set it, or write ${{{name}:-default}} to give a default.",
                server=server,
            )
        if secret or is_secret_name(name):
            register_secret(value)
        return value

    return _VARIABLE.sub(replace, text)


def _check_name(instance: MCPServerConfig, attribute: attrs.Attribute[str], value: str) -> None:
    if not _SERVER_NAME.match(value) or len(value) > _MAX_SERVER_NAME:
        raise MCPConfigError(
            f"MCP server name {value!r} is invalid: use 1-{_MAX_SERVER_NAME} letters, digits, "
            "'-' and single '_' (its tools are named '<server>__<tool>', so '__' is reserved), "
            "e.g. 'filesystem' or 'git-hub'.",
            server=value,
        )


def _positive_or_none(
    instance: MCPServerConfig, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None and (math.isnan(value) or value <= 0):
        raise MCPConfigError(
            f"MCP server {instance.name!r}: {attribute.name} must be a positive number of "
            f"seconds or None, got {value!r}",
            server=instance.name,
        )


def _positive(instance: MCPServerConfig, attribute: attrs.Attribute[Any], value: float) -> None:
    if math.isnan(value) or value <= 0:
        raise MCPConfigError(
            f"MCP server {instance.name!r}: {attribute.name} must be a positive number of "
            f"seconds, got {value!r}",
            server=instance.name,
        )


def _default_transport(instance: MCPServerConfig) -> MCPTransport:
    return "stdio" if instance.command is not None or instance.url is None else "http"


def _str_mapping(value: Mapping[str, Any]) -> Mapping[str, str]:
    return {str(k): str(v) for k, v in dict(value).items()}


def _optional_str(value: Any) -> str | None:
    return None if value is None else os.fspath(value)


def _str_tuple(value: Iterable[Any]) -> tuple[str, ...]:
    return tuple(os.fspath(v) for v in value)


@attrs.frozen(kw_only=True)
class MCPServerConfig:
    """How to reach one MCP server, and the policies of its connection.

    A stdio server is a subprocess (``command`` and ``args``); an HTTP server is a URL.
    ``transport`` defaults to ``stdio`` when there is a ``command`` and to ``http`` when there
    is only a ``url``::

        MCPServerConfig(name="filesystem", command="npx",
                        args=["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"])
        MCPServerConfig(name="search", url="https://mcp.example.com/mcp",
                        headers={"Authorization": "Bearer ${SEARCH_TOKEN}"})

    ``${VAR}`` and ``${VAR:-default}`` in ``env`` values, ``args`` and ``headers`` values are
    expanded from the environment when the servers are opened (see :meth:`expanded`).

    Attributes:
        name: prefixes the server's tools (``<name>__<tool>``); letters, digits, ``-`` and
            single ``_``.
        transport: ``stdio``, ``http`` (streamable HTTP) or ``sse`` (legacy HTTP+SSE).
        command: the executable of a stdio server.
        args: its arguments.
        env: extra environment variables of a stdio server. The server inherits only a safe
            minimum of the caller's environment (``HOME``, ``PATH``, ``SHELL``, ``TERM``,
            ``USER``, ``LOGNAME``), never API keys: pass what it needs here.
        cwd: the working directory of a stdio server.
        url: the endpoint of an ``http`` or ``sse`` server.
        headers: HTTP headers sent with every request (e.g. ``Authorization``).
        timeout: seconds one tool call may take before it is cancelled (the cancellation is
            sent to the server); ``None`` for no limit.
        connect_timeout: seconds to start the server (or reach it), complete the handshake
            and list its tools; a connection that takes longer counts as failed.
        tools: shell-style globs over the server's own tool names (``read_*``); only the
            tools that match are offered. All of them by default.
        backoff: the wait before each reconnect, counted from the first failure after the
            connection was last stable (up for ``restart_window`` seconds).
        max_restarts: reconnects allowed within ``restart_window`` before the connection
            gives up (status ``failed`` for good); ``-1`` (the default) never gives up.
        restart_window: the sliding window for ``max_restarts``, in seconds.
    """

    name: str = attrs.field(validator=_check_name)
    command: str | None = attrs.field(default=None, converter=_optional_str)
    args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_str_mapping, hash=False)
    cwd: str | None = attrs.field(default=None, converter=_optional_str)
    url: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_str_mapping, hash=False)
    transport: MCPTransport = attrs.field(
        default=attrs.Factory(_default_transport, takes_self=True)
    )
    timeout: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    connect_timeout: float = attrs.field(default=30.0, validator=_positive)
    tools: tuple[str, ...] = attrs.field(default=("*",), converter=_str_tuple)
    backoff: Backoff = _DEFAULT_BACKOFF
    max_restarts: int = -1
    restart_window: float = attrs.field(default=60.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        where = f"MCP server {self.name!r}"
        if self.transport not in ("stdio", "http", "sse"):
            raise MCPConfigError(
                f"{where}: transport must be 'stdio', 'http' or 'sse', not {self.transport!r}",
                server=self.name,
            )
        if self.transport == "stdio":
            if not self.command:
                raise MCPConfigError(
                    f"{where}: a stdio server needs a command (and usually args), e.g. "
                    "command='npx', args=['-y', '@modelcontextprotocol/server-filesystem', '.']",
                    server=self.name,
                )
            if self.url is not None or self.headers:
                raise MCPConfigError(
                    f"{where}: url and headers are for http/sse servers; a stdio server is "
                    "started from its command",
                    server=self.name,
                )
        else:
            if not self.url:
                raise MCPConfigError(
                    f"{where}: an {self.transport} server needs a url, "
                    "e.g. url='http://127.0.0.1:8000/mcp'",
                    server=self.name,
                )
            if self.command is not None or self.args or self.env or self.cwd is not None:
                raise MCPConfigError(
                    f"{where}: command, args, env and cwd are for stdio servers; an "
                    f"{self.transport} server is reached at its url",
                    server=self.name,
                )
        if self.max_restarts < -1:
            raise MCPConfigError(
                f"{where}: max_restarts must be -1 (unlimited) or more, got {self.max_restarts}",
                server=self.name,
            )
        if not self.tools:
            raise MCPConfigError(
                f"{where}: tools is empty, so no tool would be offered; leave it out to "
                "offer every tool, or list globs such as ['read_*']",
                server=self.name,
            )

    def expanded(self, environ: Mapping[str, str] | None = None) -> MCPServerConfig:
        """This config with ``${VAR}`` / ``${VAR:-default}`` expanded in ``env`` values,
        ``args`` and ``headers`` values.

        Args:
            environ: where variables come from; ``os.environ`` by default.

        Raises:
            MCPConfigError: a variable without a default is not set (the message names the
                variable, the server and the field).
        """
        source = os.environ if environ is None else environ
        name = self.name
        return attrs.evolve(
            self,
            args=tuple(
                expand_variables(arg, source, server=name, field=f"args[{i}]")
                for i, arg in enumerate(self.args)
            ),
            env={
                key: expand_variables(
                    value, source, server=name, field=f"env {key}", secret=is_secret_name(key)
                )
                for key, value in self.env.items()
            },
            headers={
                key: expand_variables(
                    value, source, server=name, field=f"header {key}", secret=is_secret_name(key)
                )
                for key, value in self.headers.items()
            },
        )
