"""One MCP server connection, living in its own task.

The task opens the transport and the SDK session, lists the tools, then serves tool calls
that other tasks hand it over a memory channel. When the server goes away (its process exits,
the HTTP transport fails) the task cleans up — always in the task that opened the
transport, so the SDK's cancel scopes and task groups are entered and exited by one task —
waits out a backoff and connects again (a *transient* restart: a connection that ends is
always restarted, until ``max_restarts`` within ``restart_window`` are used up)::

    MCPConnection.run()                        one task per server
      loop: connecting ─ open transport + session ─ list tools ─ connected
              └─ serve: a nursery with one task per call ─ until the server goes away
            disconnected / failed ─ backoff ─ connecting ...

    caller: MCPConnection.call_tool()  ─ request over the channel ─ wait for the reply
            (cancelled → the call task's scope is cancelled → the SDK sends
            notifications/cancelled to the server)

While connected, the server may announce that its tools changed
(``notifications/tools/list_changed``; on a 2026-07-28 connection it sends them only on a
``subscriptions/listen`` stream, which the serve nursery keeps open). The SDK's message
handler only marks the list stale — it runs on the SDK's receive path and must not wait on
the server — and a task of the serve nursery lists the tools again.

Size: one class, the connection task's state machine (connect, list tools, serve
calls, restart with backoff), whose states share the transport, the session and the pending
calls; configuration, results, events and the manager are modules of their own.
"""

from __future__ import annotations

import collections
import fnmatch
import logging
import math
import os
import re
import shlex
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import anyio
import attrs
import httpx2
import trio

from ..._log import log_record
from ..._redact import redact
from ..._version import __version__
from ...runtime._events import EventBus
from ...runtime._restart import RestartEngine
from ...runtime._restart import wait as restart_wait
from .._registry import Tool, ToolTimeout
from ._config import MCPServerConfig
from ._errors import MCPServerError, MCPServerUnavailable, MCPToolError
from ._events import McpConnected, McpDisconnected
from ._results import render_mcp_result

if TYPE_CHECKING:
    import mcp_types
    from mcp import Client
    from mcp.client.session import IncomingMessage

# NOTE: the mcp SDK is imported when a server connects, not with this module: importing it
# costs most of a second, which every `import vega_trio` (and CLI start) would pay.

__all__ = ["ConnectionStatus", "MCPConnection", "MCPToolInfo"]

logger = logging.getLogger("vega_trio.mcp")
"""Connection records; each server's stderr goes to its child logger ``vega_trio.mcp.<name>``."""

ConnectionStatus: TypeAlias = Literal["connecting", "connected", "disconnected", "failed"]
"""``connecting`` (an attempt is under way), ``connected``, ``disconnected`` (the connection
was lost; a reconnect follows the backoff) or ``failed`` (the last attempt failed; another
follows the backoff — unless the connection gave up, see :attr:`MCPConnection.gave_up`)."""

_QUEUE_SIZE: Final = 64
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_LIST_PAGE_CAP: Final = 100
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
#: A stdio server's stderr: characters kept of one line, lines kept for a failure report,
#: and seconds to read what a server that went away still had to say.
_STDERR_LINE_CHARS: Final = 2000
_STDERR_TAIL_LINES: Final = 20
_STDERR_DRAIN: Final = 1.0


@attrs.frozen(kw_only=True)
class MCPToolInfo:
    """A tool a server offers, as this client exposes it.

    Attributes:
        name: the name the model sees, ``<server>__<tool>``.
        remote_name: the tool's name on the server.
        description: what the server says it does.
        input_schema: the JSON schema of its arguments.
    """

    name: str
    remote_name: str
    description: str
    input_schema: Mapping[str, Any] = attrs.field(hash=False)


@attrs.define(eq=False)
class _PendingCall:
    """A tool call handed to the connection task; ``done`` is set once it has an answer."""

    tool: str
    arguments: dict[str, Any]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    result: mcp_types.CallToolResult | None = None
    error: Exception | None = None

    def resolve(self, result: mcp_types.CallToolResult) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()

    def fail(self, error: Exception) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class _EndWatchingReadStream:
    """Wraps a transport's read stream and calls ``on_end`` when the server closes it.

    The SDK notices a closed stdio pipe only as the end of this stream (its read loop then
    stops quietly), so this is how an idle connection learns that its server is gone.
    """

    def __init__(self, inner: Any, on_end: Callable[[], object]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    def __aiter__(self) -> _EndWatchingReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except (StopAsyncIteration, anyio.ClosedResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _EndWatchingReadStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@asynccontextmanager
async def _watch_end(
    transport: AbstractAsyncContextManager[tuple[Any, Any]], on_end: Callable[[], object]
) -> AsyncIterator[tuple[Any, Any]]:
    async with transport as (read_stream, write_stream):
        yield _EndWatchingReadStream(read_stream, on_end), write_stream


@asynccontextmanager
async def _http_transport(url: str, headers: Mapping[str, str]) -> AsyncIterator[tuple[Any, Any]]:
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers=dict(headers), timeout=_HTTP_TIMEOUT) as http_client:
        async with streamable_http_client(url, http_client=http_client) as streams:
            yield streams


def _describe(error: BaseException) -> str:
    """A one-line description of a connection error (single-error groups unwrapped)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in error.exceptions)
    if isinstance(error, MCPServerError):
        return str(error)
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@attrs.define(eq=False)
class _StaleFlag:
    """Set when the server announces a tool list change; :meth:`wait` waits and clears it.

    Announcements that arrive while a refresh is under way set it again, so they are
    answered by one more listing, never lost.
    """

    _event: trio.Event = attrs.field(factory=trio.Event)

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


@attrs.define(eq=False)
class _Starter:
    """Calls ``task_status.started(connection)`` once, at the end of the first attempt."""

    task_status: trio.TaskStatus[MCPConnection]
    connection: MCPConnection
    done: bool = False

    def started(self) -> None:
        if not self.done:
            self.done = True
            self.task_status.started(self.connection)


def _exposed_name(server: str, remote: str) -> str:
    return f"{server}__{_INVALID_CHARS.sub('_', remote)}"


@attrs.define(eq=False)
class MCPConnection:
    """The connection to one MCP server: its status, its tools, and calls to them.

    Made by :class:`MCPServers` (``manager[name]``), which runs :meth:`run` in a task of its
    own; not meant to be constructed directly. Every attribute reflects the live state.

    Attributes:
        config: the server's configuration (with ``${VAR}`` expanded).
        status: ``connecting``, ``connected``, ``disconnected`` or ``failed``.
        last_error: what went wrong last (a failed attempt, a lost connection), or ``None``.
        reconnects: how many times the connection was (re)attempted after the first.
        gave_up: ``max_restarts`` were used up; the connection stays ``failed``.
        tools: the tools offered, as of the last successful listing (kept while
            disconnected, so a registry built from them stays valid across reconnects);
            listed on connecting, and again whenever the server announces a change.
        skipped_tools: server tools that match ``config.tools`` but can't be offered
            (why, one line each).
        server_name / server_version: what the server said it is, once connected.
        protocol_version: the negotiated MCP protocol version, once connected.
    """

    config: MCPServerConfig
    status: ConnectionStatus = "connecting"
    last_error: str | None = None
    reconnects: int = 0
    gave_up: bool = False
    tools: tuple[MCPToolInfo, ...] = ()
    skipped_tools: tuple[str, ...] = ()
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str | None = None
    _requests: trio.MemorySendChannel[_PendingCall] | None = attrs.field(default=None, repr=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _tool_objects: dict[str, Tool] = attrs.field(factory=dict, repr=False)
    _closing: bool = attrs.field(default=False, repr=False)
    events: EventBus | None = attrs.field(default=None, repr=False)
    """Where ``mcp.connected`` / ``mcp.disconnected`` go (the orchestrator's bus)."""
    _stderr_tail: collections.deque[str] = attrs.field(
        factory=lambda: collections.deque(maxlen=_STDERR_TAIL_LINES), repr=False
    )

    @property
    def name(self) -> str:
        """The server's configured name (the prefix of its tool names)."""
        return self.config.name

    # -- status -------------------------------------------------------------------------------

    def _set_status(self, status: ConnectionStatus, *, error: str | None = None) -> None:
        was, self.status = self.status, status
        if error is not None:
            self.last_error = error
        if self.events is not None and status != was:
            if status == "connected":
                self.events.emit(McpConnected, server=self.name, tools=[t.name for t in self.tools])
            elif was == "connected":
                self.events.emit(
                    McpDisconnected,
                    server=self.name,
                    detail=error or "",
                    reconnecting=not self._closing,
                )
        self._announce_change()

    def _announce_change(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def snapshot(self) -> dict[str, Any]:
        """The connection's state as JSON-friendly data (for ``/api/mcp/servers``)."""
        target: dict[str, Any]
        if self.config.transport == "stdio":
            target = {"command": self.config.command}
        else:
            target = {"url": _public_url(self.config.url or "")}
        return {
            "name": self.name,
            "transport": self.config.transport,
            **target,
            "status": self.status,
            "last_error": self.last_error,
            "reconnects": self.reconnects,
            "gave_up": self.gave_up,
            "server": (
                None
                if self.server_name is None
                else {"name": self.server_name, "version": self.server_version}
            ),
            "protocol_version": self.protocol_version,
            "tools": [
                {"name": t.name, "remote_name": t.remote_name, "description": t.description}
                for t in self.tools
            ],
            "skipped_tools": list(self.skipped_tools),
        }

    async def wait_connected(self) -> None:
        """Wait until the server is connected (return at once if it is).

        Raises:
            MCPServerUnavailable: the connection gave up (``max_restarts`` used up) or is
                shutting down.
        """
        while self.status != "connected":
            if self.gave_up or self._closing:
                raise self._unavailable("waiting for it to connect")
            await self._changed.wait()

    async def wait_changed(self) -> None:
        """Wait for the next change of the connection's state: its status, its tool list
        (re-listed after the server announced a change) or :attr:`last_error`.

        Check a condition, then wait, in a loop (no checkpoint between the check and the
        call, so no change is missed)::

            while not any(t.name == "files__search" for t in connection.tools):
                await connection.wait_changed()

        Raises:
            MCPServerUnavailable: the connection gave up or is shutting down (nothing will
                change any more).
        """
        if self.gave_up or self._closing:
            raise self._unavailable("waiting for a change")
        await self._changed.wait()

    # -- calls --------------------------------------------------------------------------------

    async def call_tool(
        self, tool: str, arguments: Mapping[str, Any] | None = None
    ) -> mcp_types.CallToolResult:
        """Call one of the server's tools by its name on the server, within ``config.timeout``.

        Cancelling the caller cancels the call on the server (the SDK sends
        ``notifications/cancelled``).

        Args:
            tool: the tool's name on the server (not the ``<server>__`` name).
            arguments: its arguments.

        Returns:
            The server's result as is (``is_error`` included; see
            :func:`render_mcp_result` for its text).

        Raises:
            MCPServerUnavailable: the server is not connected, or the connection was lost
                during the call. Raised at once, without waiting for a reconnect.
            MCPToolError: the server refused the request (a JSON-RPC error).
            ToolTimeout: the call took longer than ``config.timeout`` and was cancelled.
        """
        timeout = self.config.timeout
        if timeout is None:
            return await self._call(tool, dict(arguments or {}))
        with trio.move_on_after(timeout):
            return await self._call(tool, dict(arguments or {}))
        raise ToolTimeout(
            f"MCP tool {tool!r} on server {self.name!r} did not finish within its "
            f"{timeout:g} s timeout and was cancelled; try a smaller request, or raise the "
            "server's timeout",
            tool=_exposed_name(self.name, tool),
            timeout=timeout,
        )

    async def _call(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        requests = self._requests
        if requests is None:
            raise self._unavailable(f"calling {tool!r}")
        call = _PendingCall(tool=tool, arguments=arguments)
        try:
            await requests.send(call)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self._unavailable(f"calling {tool!r}") from None
        try:
            await call.done.wait()
        finally:
            if not call.done.is_set():
                # NOTE: the caller gave up (cancelled, timed out): cancel the call task, so
                # the SDK tells the server (notifications/cancelled) and it stops working.
                call.scope.cancel(reason=f"the caller of MCP tool {tool!r} stopped waiting")
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _unavailable(self, doing: str) -> MCPServerUnavailable:
        if self.gave_up:
            state = f"gave up reconnecting after {self.reconnects} reconnects"
        elif self._closing:
            state = "is shutting down"
        else:
            state = f"is not connected (status: {self.status})"
        detail = f"; last error: {self.last_error}" if self.last_error else ""
        hint = "" if self._closing or self.gave_up else "; it reconnects by itself, try again later"
        return MCPServerUnavailable(
            f"MCP server {self.name!r} {state} while {doing}{detail}{hint}",
            server=self.name,
            status=self.status,
            last_error=self.last_error,
        )

    # -- tools --------------------------------------------------------------------------------

    def tool_objects(self) -> list[Tool]:
        """The server's tools as :class:`~vega_trio.tools.Tool` objects (same objects across
        calls while a tool's description and schema stay the same)."""
        return [self._tool_objects[info.name] for info in self.tools]

    def _make_tool(self, info: MCPToolInfo) -> Tool:
        remote = info.remote_name
        exposed = info.name

        async def handler(arguments: Mapping[str, Any]) -> str:
            result = await self._call(remote, dict(arguments))
            text = render_mcp_result(result)
            if result.is_error:
                raise MCPToolError(
                    f"MCP tool {exposed!r} reported an error: "
                    f"{text or 'no error message was given'}",
                    server=self.name,
                    tool=remote,
                )
            return text

        return Tool(
            name=exposed,
            description=info.description,
            input_schema=info.input_schema,
            handler=handler,
            timeout=self.config.timeout,
            # NOTE: the server validates the arguments against its own schema.
            prepare=None,
        )

    def _install_tools(self, listed: list[mcp_types.Tool]) -> None:
        offered: list[MCPToolInfo] = []
        skipped: list[str] = []
        seen: dict[str, str] = {}
        for tool in listed:
            if not any(fnmatch.fnmatchcase(tool.name, p) for p in self.config.tools):
                continue
            exposed = _exposed_name(self.name, tool.name)
            schema = dict(tool.input_schema)
            if "type" not in schema:
                schema["type"] = "object"
            if not _TOOL_NAME.match(exposed):
                skipped.append(
                    f"{tool.name}: '{exposed}' is longer than the 64 characters model APIs "
                    "accept; give the server a shorter name"
                )
            elif exposed in seen:
                skipped.append(f"{tool.name}: its name {exposed!r} clashes with {seen[exposed]!r}")
            elif schema.get("type") != "object":
                skipped.append(f"{tool.name}: its input schema is not a JSON object schema")
            else:
                seen[exposed] = tool.name
                offered.append(
                    MCPToolInfo(
                        name=exposed,
                        remote_name=tool.name,
                        description=tool.description or tool.title or "",
                        input_schema=schema,
                    )
                )
        objects: dict[str, Tool] = {}
        for info in offered:
            existing = self._tool_objects.get(info.name)
            if (
                existing is not None
                and existing.description == info.description
                and existing.input_schema == info.input_schema
            ):
                objects[info.name] = existing
            else:
                objects[info.name] = self._make_tool(info)
        self._tool_objects = objects
        self.tools = tuple(offered)
        self.skipped_tools = tuple(skipped)

    # -- the connection task ------------------------------------------------------------------

    async def run(  # noqa: ASYNC128 - _Starter calls started()
        self, *, task_status: trio.TaskStatus[MCPConnection] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the server connected until cancelled: connect, serve calls, reconnect.

        Supports ``await nursery.start(connection.run)``: ``started()`` (with this
        connection) comes once the first attempt has finished — connected, or failed with
        the error in :attr:`last_error`. Returns only when the connection gives up.
        """
        starter = _Starter(task_status, self)
        try:
            await self._keep_connected(starter)
        finally:
            # NOTE: cancelled (shut down) or gave up: from now on calls fail at once.
            self._closing = True

    async def _keep_connected(self, starter: _Starter) -> None:
        config = self.config
        # NOTE: a transient restart through the runtime's restart engine: every end of
        # the connection is a failure; the backoff starts over once a connection was
        # up for restart_window seconds.
        restarts: RestartEngine[str] = RestartEngine(
            config.max_restarts, config.restart_window, config.backoff
        )
        while True:
            self._set_status("connecting")
            connected_at: list[float] = []

            def on_connected(connected_at: list[float] = connected_at) -> None:
                connected_at.append(trio.current_time())
                restarts.up(connected_at[0])
                starter.started()

            self._stderr_tail.clear()
            try:
                await self._connect_and_serve(on_connected)
            except Exception as exc:
                error = self._cause(exc) if not connected_at else _describe(exc)
            except BaseExceptionGroup as group:
                # NOTE: the SDK's HTTP transport can let Cancelled of its own task group leak
                # out next to the error that cancelled it. When we are not being cancelled
                # ourselves, those are leftovers of that error: the connection failed.
                # When we are, Cancelled propagates.
                errors, cancelled = group.split(Exception)
                if errors is None:
                    raise
                if trio.current_effective_deadline() == -math.inf:
                    # Shutting down: the errors of the closing connection don't matter.
                    if cancelled is not None:
                        raise cancelled from None
                    raise
                error = self._cause(errors) if not connected_at else _describe(errors)
            else:
                error = "the server closed the connection"
            decision = restarts.failure(error, trio.current_time())
            if not decision.restart:
                self.gave_up = True
                self._set_status(
                    "failed",
                    error=(
                        f"{error} (gave up: more than {config.max_restarts} reconnects within "
                        f"{config.restart_window:g} s)"
                    ),
                )
                logger.error("MCP server %r: %s", self.name, self.last_error)
                starter.started()
                return
            status: ConnectionStatus = "disconnected" if connected_at else "failed"
            self._set_status(status, error=error)
            if not connected_at and not self.reconnects:
                # The first attempt failed: the server's tools are missing from the start,
                # which is worth an error of its own (name, command, cause), not a retry note.
                if logger.isEnabledFor(logging.ERROR):
                    log_record(
                        logger,
                        logging.ERROR,
                        "%s failed to start: %s; retrying in the background",
                        self.describe(),
                        error,
                        event="mcp.start_failed",
                        server=self.name,
                        transport=config.transport,
                        command=redact(self._command_line()),
                        cause=error,
                    )
            else:
                logger.warning("MCP server %r %s: %s; reconnecting", self.name, status, error)
            starter.started()
            await restart_wait(decision)
            self.reconnects += 1

    def describe(self) -> str:
        """``MCP server 'files' (npx -y @mcp/fs /data)``: the name and what it runs (or
        its URL), secrets masked — for messages about the server."""
        return redact(f"MCP server {self.name!r} ({self._command_line()})")

    def _command_line(self) -> str:
        config = self.config
        if config.transport == "stdio":
            return shlex.join([config.command or "", *config.args])
        return _public_url(config.url or "")

    def _cause(self, error: BaseException) -> str:
        """Why a connection attempt failed, in words (a missing executable, a server that
        exited at once), with the last lines the server wrote to its stderr."""
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        config = self.config
        command = config.command or ""
        if isinstance(error, FileNotFoundError) and config.transport == "stdio":
            if config.cwd is not None and not os.path.isdir(config.cwd):
                cause = f"its working directory {config.cwd!r} does not exist"
            elif os.sep in command:
                cause = f"executable {command!r} not found (no such file)"
            else:
                cause = (
                    f"executable {command!r} not found on PATH (install it, or give its "
                    "full path as the command)"
                )
        elif isinstance(error, PermissionError) and config.transport == "stdio":
            cause = f"{command!r} cannot be run (permission denied)"
        elif config.transport == "stdio" and "connection closed" in str(error).lower():
            cause = (
                "the server exited (or closed its stdout) before the MCP handshake "
                f"({_describe(error)})"
            )
        else:
            cause = _describe(error)
        if self._stderr_tail:
            cause += "; its stderr ends with: " + " | ".join(list(self._stderr_tail)[-3:])
        # NOTE: it becomes last_error (status, API) and messages: a server may echo a key.
        return redact(cause)

    def _open_transport(self) -> AbstractAsyncContextManager[tuple[Any, Any]]:
        from mcp.client.sse import sse_client
        from mcp.client.stdio import StdioServerParameters

        config = self.config
        if config.transport == "stdio":
            assert config.command is not None
            params = StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=dict(config.env) or None,
                cwd=config.cwd,
            )
            return self._stdio_transport(params)
        assert config.url is not None
        if config.transport == "http":
            return _http_transport(config.url, config.headers)
        return sse_client(config.url, headers=dict(config.headers), timeout=30.0)

    @asynccontextmanager
    async def _stdio_transport(self, params: Any) -> AsyncIterator[tuple[Any, Any]]:
        """The SDK's stdio transport, with the server's stderr read line by line into
        records of ``vega_trio.mcp.<name>`` (and kept for a failure report) instead of
        being written over the application's own stderr."""
        from mcp.client.stdio import stdio_client

        if sys.platform == "win32":  # pragma: no cover - no FdStream on Windows
            async with stdio_client(params, errlog=sys.stderr) as streams:
                yield streams
            return
        read_fd, write_fd = os.pipe()
        errlog = os.fdopen(write_fd, "w")  # noqa: ASYNC231 - wraps a new pipe fd: no I/O
        try:
            reader = trio.lowlevel.FdStream(read_fd)
        except BaseException:
            os.close(read_fd)
            errlog.close()
            raise
        async with trio.open_nursery() as nursery:
            drained = trio.Event()
            nursery.start_soon(self._read_stderr, reader, drained)
            try:
                async with stdio_client(params, errlog=errlog) as streams:
                    errlog.close()  # the server has its own copy: EOF comes when it exits
                    yield streams
            finally:
                errlog.close()
                # What a server that failed wrote last is the best clue: read it before
                # the error is reported — also when closing (shielded), so no line is lost.
                # Bounded: the server is stopped by now, but a grandchild may keep the pipe.
                with trio.move_on_after(_STDERR_DRAIN, shield=True):
                    await drained.wait()
                nursery.cancel_scope.cancel()

    async def _read_stderr(self, reader: trio.lowlevel.FdStream, drained: trio.Event) -> None:
        stderr_log = logging.getLogger(f"{logger.name}.{self.name}")
        pending = b""
        try:
            async with reader:
                while True:
                    try:
                        chunk = await reader.receive_some(65536)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        chunk = b""
                    if not chunk:
                        break
                    *lines, pending = (pending + chunk).split(b"\n")
                    if len(pending) > _STDERR_LINE_CHARS:  # no newline in sight: cut it here
                        lines.append(pending)
                        pending = b""
                    for line in lines:
                        self._stderr_line(stderr_log, line)
                if pending:
                    self._stderr_line(stderr_log, pending)
        finally:
            drained.set()

    def _stderr_line(self, stderr_log: logging.Logger, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if len(line) > _STDERR_LINE_CHARS:
            cut = len(line) - _STDERR_LINE_CHARS
            line = f"{line[:_STDERR_LINE_CHARS]}… ({cut} more characters)"
        if not line.strip():
            return
        self._stderr_tail.append(line)
        if stderr_log.isEnabledFor(logging.INFO):
            log_record(stderr_log, logging.INFO, "%s", line, event="mcp.stderr", server=self.name)

    async def _connect_and_serve(self, on_connected: Callable[[], None]) -> None:
        import mcp_types
        from mcp import Client

        ended = trio.Event()
        tools_stale = _StaleFlag()

        async def on_message(message: IncomingMessage) -> None:
            # NOTE: runs on the SDK's receive path: only mark the list stale; the refresh
            # task (in the serve nursery) does the listing.
            if isinstance(message, mcp_types.ToolListChangedNotification):
                tools_stale.set()
            await trio.lowlevel.checkpoint()

        def lost(reason: str = "the server closed the connection") -> None:
            # NOTE: synchronous, so that from the moment the loss is seen no new call is
            # accepted and the status says so (cleanup and the reconnect come later).
            if ended.is_set():
                return
            ended.set()
            if self._requests is not None:
                self._requests = None
                self._set_status("disconnected", error=None if self._closing else reason)

        deadline = trio.current_time() + self.config.connect_timeout
        connected = False
        with trio.CancelScope(deadline=deadline) as connect_scope:
            client = Client(
                _watch_end(self._open_transport(), lost),
                cache=None,
                message_handler=on_message,
                client_info=mcp_types.Implementation(name="vega-trio", version=__version__),
            )
            async with client:
                self._install_tools(await _list_tools(client))
                info = client.server_info
                self.server_name = info.name if info is not None else None
                self.server_version = info.version if info is not None else None
                self.protocol_version = client.protocol_version
                connect_scope.deadline = math.inf
                connected = True
                await self._serve(client, ended, lost, on_connected, tools_stale)
        if connect_scope.cancelled_caught and not connected:
            raise MCPServerError(
                f"MCP server {self.name!r} did not connect within its "
                f"{self.config.connect_timeout:g} s connect_timeout (start the server, list "
                "its tools); check the command or URL, or raise connect_timeout",
                server=self.name,
            )

    async def _serve(
        self,
        client: Client,
        ended: trio.Event,
        lost: Callable[[str], None],
        on_connected: Callable[[], None],
        tools_stale: _StaleFlag,
    ) -> None:
        send, receive = trio.open_memory_channel[_PendingCall](_QUEUE_SIZE)
        self._requests = send
        self.last_error = None
        self._set_status("connected")
        on_connected()
        try:
            async with trio.open_nursery() as nursery:

                async def watch_end() -> None:
                    await ended.wait()
                    nursery.cancel_scope.cancel(reason=f"MCP server {self.name!r} went away")

                nursery.start_soon(watch_end)
                nursery.start_soon(self._refresh_tools, client, tools_stale, ended)
                nursery.start_soon(self._listen_for_tool_changes, client, tools_stale, ended)
                async for call in receive:
                    nursery.start_soon(self._serve_call, client, call, lost)
        finally:
            self._requests = None
            send.close()
            # NOTE: no checkpoint from here on: answer the calls still queued, so that no
            # caller waits for a connection that is gone.
            while True:
                try:
                    queued = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                queued.fail(self._lost(queued.tool))
            receive.close()
            if not ended.is_set():
                # The transport failed (or we are closing); the run loop records the error
                # once the transport has been cleaned up.
                self._set_status(
                    "disconnected", error=None if self._closing else "the connection broke"
                )

    async def _serve_call(
        self, client: Client, call: _PendingCall, lost: Callable[[str], None]
    ) -> None:
        import mcp_types
        from mcp.shared.exceptions import MCPError

        try:
            with call.scope:
                result = await client.call_tool(call.tool, call.arguments)
                call.resolve(result)
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                lost("the server closed the connection")
                call.fail(self._lost(call.tool))
            else:
                call.fail(
                    MCPToolError(
                        f"MCP server {self.name!r} refused the call to {call.tool!r}: "
                        f"{exc.message} (JSON-RPC error {exc.code})",
                        server=self.name,
                        tool=call.tool,
                        code=exc.code,
                    )
                )
        except Exception as exc:
            call.fail(
                MCPServerError(
                    f"calling {call.tool!r} on MCP server {self.name!r} failed: {_describe(exc)}",
                    server=self.name,
                )
            )
        finally:
            if not call.done.is_set():
                if not call.scope.cancel_called:
                    # Not abandoned by its caller: the connection itself is going away
                    # (its transport failed, or we are closing).
                    lost("the connection broke")
                call.fail(self._lost(call.tool))

    async def _refresh_tools(self, client: Client, stale: _StaleFlag, ended: trio.Event) -> None:
        """List the tools again each time they are marked stale, until the serve nursery
        ends. A failed listing keeps the previous list and is recorded in ``last_error``."""
        while True:
            await stale.wait()
            try:
                listed = await _list_tools(client)
            except Exception as exc:
                if ended.is_set():
                    return  # the connection is gone; the run loop reports why
                self.last_error = (
                    f"listing the tools again after the server announced a change failed: "
                    f"{_describe(exc)}; the previous list stays until the next announcement "
                    "or reconnect"
                )
                logger.warning("MCP server %r: %s", self.name, self.last_error)
                self._announce_change()
                continue
            before = {info.name for info in self.tools}
            self._install_tools(listed)
            after = {info.name for info in self.tools}
            logger.info(
                "MCP server %r changed its tools: %d offered (added: %s; removed: %s)",
                self.name,
                len(after),
                ", ".join(sorted(after - before)) or "none",
                ", ".join(sorted(before - after)) or "none",
            )
            self._announce_change()

    async def _listen_for_tool_changes(
        self, client: Client, stale: _StaleFlag, ended: trio.Event
    ) -> None:
        """On a 2026-07-28 connection, keep a ``subscriptions/listen`` stream for tool list
        changes open (servers of that protocol announce changes only there).

        Its events also reach the message handler (the SDK tees them), which marks the list
        stale; this task only keeps the stream open and drains it.
        """
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        capability = client.server_capabilities.tools
        if (
            client.protocol_version not in MODERN_PROTOCOL_VERSIONS
            or capability is None
            or not capability.list_changed
        ):
            return
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                if not subscription.honored.tools_list_changed:
                    return
                # NOTE: no replay: a change between the first listing and the server's
                # acknowledgment would be lost, so list once more now.
                stale.set()
                async for _event in subscription:
                    pass
        except Exception as exc:
            if not ended.is_set():
                logger.warning(
                    "MCP server %r: listening for tool list changes failed: %s; its tools "
                    "are listed again only on reconnect",
                    self.name,
                    _describe(exc),
                )

    def _lost(self, tool: str) -> MCPServerUnavailable:
        if self._closing:
            message = f"MCP server {self.name!r} shut down during the call to {tool!r}"
        else:
            message = (
                f"the connection to MCP server {self.name!r} was lost during the call to "
                f"{tool!r}; it reconnects by itself, try again later"
            )
        return MCPServerUnavailable(
            message, server=self.name, status="disconnected", last_error=self.last_error
        )


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_LIST_PAGE_CAP):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _public_url(url: str) -> str:
    """``url`` without credentials or query (they may hold secrets)."""
    parsed = httpx2.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))
