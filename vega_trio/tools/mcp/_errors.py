"""The errors of the MCP client; all of them are :class:`~vega_trio.ToolError`\\ s
(defined in :mod:`vega_trio._errors` with the rest of the tree; re-exported here).

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

from ..._errors import MCPConfigError, MCPServerError, MCPServerUnavailable, MCPToolError

__all__ = ["MCPConfigError", "MCPServerError", "MCPServerUnavailable", "MCPToolError"]
