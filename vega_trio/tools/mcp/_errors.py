"""The errors of the MCP client; all of them are :class:`~vega_trio.ToolError`\\ s.

::

    ToolError
    └── MCPServerError            something went wrong with an MCP server (``.server``)
        ├── MCPConfigError        a server's configuration is unusable (e.g. a missing ${VAR})
        ├── MCPServerUnavailable  the server is not connected (``.status``, ``.last_error``)
        └── MCPToolError          the server answered a tool call with an error (``.tool``)

A tool backed by an MCP server raises these from its handler, so the agent loop shows the
model their message as the tool's error result.
"""

from __future__ import annotations

from ..._errors import ToolError

__all__ = ["MCPConfigError", "MCPServerError", "MCPServerUnavailable", "MCPToolError"]


class MCPServerError(ToolError):
    """Something went wrong with an MCP server.

    Attributes:
        server: the server's configured name.
    """

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class MCPConfigError(MCPServerError, ValueError):
    """A server's configuration can't be used: a ``${VAR}`` without a value, a name that
    can't prefix tool names, a transport without its command or URL."""


class MCPServerUnavailable(MCPServerError):
    """The server is not connected (or the connection was lost during the call).

    Calls fail with this at once instead of waiting for a reconnect; they work again once
    the server is back (see :meth:`MCPConnection.wait_connected`).

    Attributes:
        status: the connection status when the call failed.
        last_error: what went wrong with the connection last, if anything.
    """

    def __init__(self, message: str, *, server: str, status: str, last_error: str | None) -> None:
        super().__init__(message, server=server)
        self.status = status
        self.last_error = last_error


class MCPToolError(MCPServerError):
    """The server ran the tool and reported a failure (``isError``), or refused the request
    with a JSON-RPC error (unknown tool, invalid arguments, ...).

    Attributes:
        tool: the tool's name on the server.
        code: the JSON-RPC error code, or ``None`` for a tool result with ``isError``.
    """

    def __init__(self, message: str, *, server: str, tool: str, code: int | None = None) -> None:
        super().__init__(message, server=server)
        self.tool = tool
        self.code = code
