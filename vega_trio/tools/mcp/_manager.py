"""The MCP servers of an application: one connection task each, tools by glob, status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..._collapse import raise_collapsed
from ..._errors import ToolNotFound
from ...runtime._events import EventBus
from .._registry import Tools
from ._config import MCPServerConfig
from ._connection import MCPConnection
from ._errors import MCPConfigError

if TYPE_CHECKING:
    import mcp_types

__all__ = ["MCPServers", "open_mcp_servers"]


@attrs.define(eq=False, init=False)
class MCPServers:
    """The MCP servers of an application (or an orchestrator), each connection in its own task.

    Open them with ``async with open_mcp_servers(configs) as servers:``, or let an owner with
    a nursery run them::

        servers = MCPServers(configs)
        await nursery.start(servers.run)   # returns once every server's first attempt ended
        ...
        servers.close()                    # or cancel the nursery

    ``servers[name]`` is a server's :class:`MCPConnection`; iterating yields them in
    configuration order; ``name in servers`` works on names.
    """

    _connections: dict[str, MCPConnection]
    _scope: trio.CancelScope
    _running: bool

    def __init__(
        self, configs: Iterable[MCPServerConfig], *, environ: Mapping[str, str] | None = None
    ) -> None:
        """Check the configurations and expand their ``${VAR}``\\ s; nothing connects yet.

        Args:
            configs: one per server; names must be unique.
            environ: where ``${VAR}`` values come from; ``os.environ`` by default.

        Raises:
            MCPConfigError: two servers share a name, or a ``${VAR}`` is not set.
        """
        connections: dict[str, MCPConnection] = {}
        for config in configs:
            if config.name in connections:
                raise MCPConfigError(
                    f"two MCP servers are named {config.name!r}; server names prefix tool "
                    "names, so they must be unique",
                    server=config.name,
                )
            connections[config.name] = MCPConnection(config=config.expanded(environ))
        self._connections = connections
        self._scope = trio.CancelScope()
        self._running = False

    # -- lifetime -----------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[MCPServers] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run every server's connection task until :meth:`close` (or cancellation).

        Supports ``await nursery.start(servers.run)``: ``started()`` (with this object) comes
        once every server's first connection attempt has finished, connected or failed (see
        each server's ``status`` and ``last_error``); a server that fails keeps retrying in
        the background.

        Raises:
            RuntimeError: it is already running (or has run).
        """
        if self._running:
            raise RuntimeError("these MCP servers are already running; run() runs once")
        self._running = True
        with self._scope:
            async with trio.open_nursery() as nursery:
                # NOTE: first attempts in parallel, so one slow server does not delay the rest.
                async with trio.open_nursery() as starting:
                    for connection in self._connections.values():
                        starting.start_soon(nursery.start, connection.run)
                task_status.started(self)

    def publish_to(self, bus: EventBus) -> None:
        """Publish each server's ``mcp.connected`` / ``mcp.disconnected`` on ``bus``."""
        for connection in self._connections.values():
            connection.events = bus

    def close(self) -> None:
        """Disconnect every server and end :meth:`run`; calls fail at once from now on.

        Each connection closes in its own task (stdio servers get their stdin closed, then a
        bounded wait, then a kill); :meth:`run` returns when all have. Idempotent.
        """
        for connection in self._connections.values():
            connection._closing = True
        self._scope.cancel(reason="the MCP servers were closed")

    # -- lookup -------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> MCPConnection:
        """The connection of the server called ``name``.

        Raises:
            KeyError: no server has that name (the message lists those there are).
        """
        try:
            return self._connections[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self._connections) or "none"
            raise KeyError(
                f"no MCP server is named {name!r}; configured servers: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._connections

    def __iter__(self) -> Iterator[MCPConnection]:
        return iter(tuple(self._connections.values()))

    def __len__(self) -> int:
        return len(self._connections)

    def names(self) -> tuple[str, ...]:
        """The configured server names, in configuration order."""
        return tuple(self._connections)

    def status(self) -> list[dict[str, Any]]:
        """Every server's state as JSON-friendly data: name, transport, status, last error,
        reconnects, server info and tools (see :meth:`MCPConnection.snapshot`)."""
        return [connection.snapshot() for connection in self._connections.values()]

    # -- tools --------------------------------------------------------------------------------

    def tools(self, patterns: Iterable[str] = ("*",)) -> Tools:
        """A :class:`~vega_trio.tools.Tools` registry of the servers' tools.

        The tools are named ``<server>__<tool>`` and pick from every server's last known tool
        list (a disconnected server's tools stay listed; calling them fails at once until it
        is back). The same :class:`~vega_trio.tools.Tool` objects are returned each time, so
        registries built from several calls merge cleanly.

        Args:
            patterns: tool names or shell-style globs (``"filesystem__*"``, ``"*__read_*"``);
                a glob may match nothing.

        Raises:
            ToolNotFound: an exact name (not a glob) is not among the servers' tools.
        """
        everything = Tools()
        for connection in self._connections.values():
            for tool in connection.tool_objects():
                everything.register(tool)
            if not connection.tools and connection.status == "failed" and connection.last_error:
                everything._provider_failed(
                    f"{connection.name}__",
                    f"the {connection.describe()} that would provide '{connection.name}__*' "
                    f"failed: {connection.last_error}",
                )
        try:
            return everything.subset(patterns)
        except ToolNotFound as exc:
            raise ToolNotFound(
                f"{exc} MCP tools are named '<server>__<tool>'; check the server's status "
                "(servers.status()) if its tools are missing."
            ) from None

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None
    ) -> mcp_types.CallToolResult:
        """Call a tool by its ``<server>__<tool>`` name (see :meth:`MCPConnection.call_tool`).

        Raises:
            ToolNotFound: no server offers a tool by that name.
            MCPServerUnavailable: the server is not connected.
            MCPToolError: the server refused the request.
            ToolTimeout: the call took longer than the server's ``timeout``.
        """
        for connection in self._connections.values():
            for info in connection.tools:
                if info.name == name:
                    return await connection.call_tool(info.remote_name, arguments)
        self.tools([name])  # raises ToolNotFound with the list of names
        raise AssertionError("unreachable")  # pragma: no cover


@asynccontextmanager
async def open_mcp_servers(
    configs: Iterable[MCPServerConfig], *, environ: Mapping[str, str] | None = None
) -> AsyncIterator[MCPServers]:
    """Connect to MCP servers for the duration of the block.

    Entering returns once every server's first connection attempt has finished; a server
    that failed is retried in the background (check ``servers[name].status``). Leaving the
    block disconnects every server, each in the task that connected it.

    Args:
        configs: one :class:`MCPServerConfig` per server.
        environ: where ``${VAR}`` values come from; ``os.environ`` by default.

    Raises:
        MCPConfigError: duplicate server names, or a ``${VAR}`` that is not set.
    """
    servers = MCPServers(configs, environ=environ)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(servers.run)
            try:
                yield servers
            finally:
                servers.close()
    except BaseExceptionGroup as group:
        # The connection tasks never raise (they record their errors), so a group here
        # wraps the block's own error: hand it back unwrapped.
        raise_collapsed(group)
