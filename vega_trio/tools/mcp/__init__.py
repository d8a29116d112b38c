"""MCP (Model Context Protocol) client: servers' tools as vega-trio tools.

Configure servers with :class:`MCPServerConfig` (stdio, streamable HTTP, legacy SSE), open
them with :func:`open_mcp_servers` (or run :class:`MCPServers` in a nursery), and pick their
tools — named ``<server>__<tool>`` — into a :class:`~vega_trio.tools.Tools` registry by glob::

    async with open_mcp_servers([MCPServerConfig(name="fs", command="...")]) as servers:
        tools = servers.tools(["fs__*"])
        print(servers.status())

Each server connection lives in its own task, reconnects with backoff when the server goes
away, and always cleans up in the task that opened it.
"""

from __future__ import annotations

from ._config import MCPServerConfig, MCPTransport, expand_variables
from ._connection import ConnectionStatus, MCPConnection, MCPToolInfo
from ._errors import MCPConfigError, MCPServerError, MCPServerUnavailable, MCPToolError
from ._manager import MCPServers, open_mcp_servers
from ._results import render_mcp_result

__all__ = [
    "ConnectionStatus",
    "MCPConfigError",
    "MCPConnection",
    "MCPServerConfig",
    "MCPServerError",
    "MCPServerUnavailable",
    "MCPServers",
    "MCPToolError",
    "MCPToolInfo",
    "MCPTransport",
    "expand_variables",
    "open_mcp_servers",
    "render_mcp_result",
]
