"""The MCP layer's kinds of bus event (SPEC §10.3): a server connected or disconnected."""

from __future__ import annotations

from typing import ClassVar

import attrs

from ...runtime._events import Event

__all__ = ["McpConnected", "McpDisconnected"]


@attrs.frozen(kw_only=True)
class McpConnected(Event):
    """An MCP server is connected (``mcp.connected``): its name and its tools."""

    type: ClassVar[str] = "mcp.connected"
    server: str = ""
    tools: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class McpDisconnected(Event):
    """An MCP server's connection ended (``mcp.disconnected``): why, and whether it will
    be reconnected."""

    type: ClassVar[str] = "mcp.disconnected"
    server: str = ""
    detail: str = ""
    reconnecting: bool = False
