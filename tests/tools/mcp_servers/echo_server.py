"""A small MCP server (the SDK's ``MCPServer``) that the MCP client tests run as a subprocess.

    python echo_server.py                      # stdio
    python echo_server.py legacy               # stdio, the pre-2026 initialize handshake only
    python echo_server.py http                 # streamable HTTP on 127.0.0.1
    python echo_server.py sse                  # legacy HTTP+SSE on 127.0.0.1

Over HTTP the server binds port 0 and prints the port (a line on stdout) once the socket is
listening, so a test that reads that line can connect at once.
"""

from __future__ import annotations

import os
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Audio, Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import EmbeddedResource, ResourceLink, TextContent, TextResourceContents

server = MCPServer("echo", version="1.0")

# A 1x1 transparent PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(message: str) -> str:
    """Always fail with the given message."""
    raise ToolError(message)


@server.tool()
def picture() -> Image:
    """A 1x1 PNG image."""
    return Image(data=PNG, format="png")


@server.tool()
def sound() -> Audio:
    """Four bytes of WAV audio."""
    return Audio(data=b"RIFF", format="wav")


@server.tool()
def document() -> list[TextContent | EmbeddedResource | ResourceLink]:
    """Text, an embedded text resource and a resource link."""
    return [
        TextContent(text="see attached"),
        EmbeddedResource(
            resource=TextResourceContents(
                uri="file:///notes.txt", mime_type="text/plain", text="the notes"
            )
        ),
        ResourceLink(
            uri="file:///big.bin",
            name="big.bin",
            mime_type="application/octet-stream",
            size=2048,
        ),
    ]


@server.tool()
def environment(name: str) -> str:
    """The value of an environment variable of the server process ('' if unset)."""
    return os.environ.get(name, "")


@server.tool()
def header(name: str, ctx: Context) -> str:
    """The value of an HTTP request header ('' if absent or not over HTTP)."""
    headers = ctx.headers
    return "" if headers is None else str(headers.get(name, ""))


@server.tool()
def crash() -> str:
    """Exit the server process at once, without answering."""
    os._exit(1)


@server.tool()
async def slow(report_port: int) -> str:
    """Run until cancelled, reporting 'started' and then 'cancelled' over TCP to the test
    listening on 127.0.0.1:report_port."""
    async with await anyio.connect_tcp("127.0.0.1", report_port) as report:
        await report.send(b"started\n")
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await report.send(b"cancelled\n")
            raise
    return "finished"


@server.tool()
def refuse(code: int, message: str) -> str:
    """Refuse the call with a JSON-RPC error (not an isError result)."""
    raise MCPError(code, message)


def _reverse(text: str) -> str:
    return text[::-1]


async def _announce_tools_changed(ctx: Context) -> None:
    # 2026-07-28 connections get list changes only on subscriptions/listen streams (the
    # first call); earlier protocols as a notification on the connection (the second).
    # Each is a no-op on the other kind of connection.
    await ctx.notify_tools_changed()
    await ctx.session.send_tool_list_changed()


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Offer a new tool called `name` (it reverses a text) and announce the change."""
    server.add_tool(_reverse, name=name, description="Reverse the text.")
    await _announce_tools_changed(ctx)
    return f"added {name}"


@server.tool()
async def forget(name: str, ctx: Context) -> str:
    """Stop offering the tool called `name` and announce the change."""
    server.remove_tool(name)
    await _announce_tools_changed(ctx)
    return f"removed {name}"


async def _serve_legacy_stdio() -> None:
    """Serve stdio with the initialize handshake only, like servers built before 2026-07-28
    (they announce tool changes with a plain notifications/tools/list_changed)."""
    from mcp.server.lowlevel.server import NotificationOptions
    from mcp.server.runner import serve_loop
    from mcp.server.stdio import stdio_server

    # NOTE: MCPServer.run() serves both protocol eras; serve_loop() is the SDK's
    # handshake-only loop, and it needs the low-level server MCPServer wraps.
    lowlevel = server._lowlevel_server
    options = lowlevel.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        async with lowlevel.lifespan(lowlevel) as state:
            await serve_loop(
                lowlevel, read_stream, write_stream, lifespan_state=state, init_options=options
            )


def _serve_http(kind: str) -> None:
    app = server.streamable_http_app() if kind == "http" else server.sse_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("http", "sse"):
        _serve_http(sys.argv[1])
    elif len(sys.argv) > 1 and sys.argv[1] == "legacy":
        anyio.run(_serve_legacy_stdio)
    else:
        server.run()
