"""The MCP client against real MCP server subprocesses: the SDK's MCPServer (stdio, streamable
HTTP, legacy SSE) and the npm reference filesystem server."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
import trio

from vega_trio import Agent, ToolNotFound, open_orchestrator
from vega_trio.events import McpConnected, McpDisconnected
from vega_trio.runtime import Backoff
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools import ToolCall, ToolTimeout
from vega_trio.tools.mcp import (
    MCPConfigError,
    MCPServerConfig,
    MCPServers,
    MCPServerUnavailable,
    MCPToolError,
    open_mcp_servers,
)

ECHO_SERVER = Path(__file__).resolve().parent / "mcp_servers" / "echo_server.py"
FAST = Backoff(kind="constant", initial=0.05)


def echo_config(**changes: Any) -> MCPServerConfig:
    options: dict[str, Any] = {
        "name": "echo",
        "command": sys.executable,
        "args": [str(ECHO_SERVER)],
        "timeout": 10.0,
        "backoff": FAST,
    }
    options.update(changes)
    return MCPServerConfig(**options)


async def run_tool(servers: MCPServers, tool: str, /, **arguments: Any) -> str:
    return await servers.tools([tool]).execute(ToolCall(id="t", name=tool, arguments=arguments))


class Reports:
    """A loopback listener the echo server's ``slow`` tool reports to ("started",
    "cancelled"), so the test waits on what the server did instead of sleeping."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self.listener = listener
        self.port: int = listener.socket.getsockname()[1]
        self.stream: trio.SocketStream | None = None
        self.received = b""

    async def expect(self, line: str) -> None:
        if self.stream is None:
            self.stream = await self.listener.accept()
        while f"{line}\n".encode() not in self.received:
            chunk = await self.stream.receive_some()
            assert chunk, f"the server closed the report stream before {line!r}"
            self.received += chunk


@pytest.fixture
async def reports() -> AsyncIterator[Reports]:
    """Where the server's slow tool reports what happened to it."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    result = Reports(listener)
    try:
        yield result
    finally:
        if result.stream is not None:
            await result.stream.aclose()
        await listener.aclose()


# -- configuration ----------------------------------------------------------------------------


def test_variables_expand_in_env_args_and_headers() -> None:
    """${VAR} and ${VAR:-default} expand in env values, args and header values."""
    environ = {"TOKEN": "s3cret", "EMPTY": ""}
    stdio = echo_config(
        args=["--token=${TOKEN}", "${MISSING:-fallback}", "${EMPTY:-used}"],
        env={"API_TOKEN": "${TOKEN}", "PLAIN": "no variables"},
    ).expanded(environ)
    assert stdio.args == ("--token=s3cret", "fallback", "used")
    assert dict(stdio.env) == {"API_TOKEN": "s3cret", "PLAIN": "no variables"}
    http = MCPServerConfig(
        name="remote", url="http://127.0.0.1:1/mcp", headers={"Authorization": "Bearer ${TOKEN}"}
    ).expanded(environ)
    assert http.transport == "http"
    assert dict(http.headers) == {"Authorization": "Bearer s3cret"}


def test_missing_variable_names_variable_and_server() -> None:
    """A ${VAR} without a value fails when the servers are opened, naming both."""
    config = echo_config(name="github", env={"GH_TOKEN": "${VEGA_TEST_UNSET_TOKEN}"})
    with pytest.raises(MCPConfigError) as info:
        MCPServers([config], environ={})
    message = str(info.value)
    assert "'VEGA_TEST_UNSET_TOKEN'" in message and "'github'" in message
    assert "env GH_TOKEN" in message and info.value.server == "github"


def test_config_errors_are_clear() -> None:
    """Bad names, missing commands/URLs and duplicate servers are refused with a hint."""
    with pytest.raises(MCPConfigError, match="'__' is reserved"):
        MCPServerConfig(name="my__server", command="x")
    with pytest.raises(MCPConfigError, match="needs a command"):
        MCPServerConfig(name="s")
    with pytest.raises(MCPConfigError, match="needs a url"):
        MCPServerConfig(name="s", transport="sse")
    with pytest.raises(MCPConfigError, match="are for stdio servers"):
        MCPServerConfig(name="s", url="http://127.0.0.1:1/mcp", env={"A": "b"})
    with pytest.raises(MCPConfigError, match="must be unique"):
        MCPServers([echo_config(), echo_config()])


# -- a Python MCPServer over stdio ------------------------------------------------------------


async def test_lists_tools_and_reports_status() -> None:
    """Tools are offered as server__tool with the server's schema; status() is JSON."""
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config(tools=["echo", "add", "p*"])]) as servers:
            tools = servers.tools()
            assert tools.names() == ("echo__echo", "echo__add", "echo__picture")
            schema = tools["echo__add"].input_schema
            assert schema["type"] == "object" and set(schema["required"]) == {"a", "b"}
            assert tools["echo__add"].description == "Add two integers."
            assert tools["echo__add"].timeout == 10.0
            (status,) = json.loads(json.dumps(servers.status()))
            assert status["name"] == "echo" and status["transport"] == "stdio"
            assert status["status"] == "connected" and status["last_error"] is None
            assert status["reconnects"] == 0
            assert status["server"] == {"name": "echo", "version": "1.0"}
            assert [t["name"] for t in status["tools"]] == [
                "echo__echo",
                "echo__add",
                "echo__picture",
            ]


async def test_glob_selection() -> None:
    """servers.tools() picks tools by exact name or glob; unknown exact names are errors."""
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config()]) as servers:
            assert servers.tools(["echo__e*"]).names() == ("echo__echo", "echo__environment")
            assert servers.tools(["*__add", "echo__echo"]).names() == ("echo__echo", "echo__add")
            assert servers.tools(["other__*"]).names() == ()
            assert servers.tools(["echo__*"])["echo__add"] is servers.tools()["echo__add"]
            with pytest.raises(ToolNotFound, match="<server>__<tool>"):
                servers.tools(["echo__nope"])


async def test_results_are_mapped_to_text() -> None:
    """Text is joined; images, audio, resources and links are described faithfully."""
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config()]) as servers:
            assert await run_tool(servers, "echo__echo", text="héllo") == "héllo"
            assert await run_tool(servers, "echo__add", a=2, b=3) == "5"
            assert await run_tool(servers, "echo__picture") == "[image: image/png, 66 bytes]"
            assert await run_tool(servers, "echo__sound") == "[audio: audio/wav, 4 bytes]"
            assert await run_tool(servers, "echo__document") == (
                "see attached\n"
                "[resource: file:///notes.txt (text/plain)]\n"
                "the notes\n"
                "[resource link: file:///big.bin (big.bin, application/octet-stream, 2048 bytes)]"
            )
            raw = await servers.call_tool("echo__add", {"a": 1, "b": 1})
            assert not raw.is_error and raw.structured_content == {"result": 2}


async def test_error_results_raise_tool_errors() -> None:
    """isError results raise MCPToolError with the server's message."""
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config()]) as servers:
            with pytest.raises(MCPToolError, match="the disk is on fire") as info:
                await run_tool(servers, "echo__fail", message="the disk is on fire")
            assert (info.value.server, info.value.tool, info.value.code) == ("echo", "fail", None)
            with pytest.raises(MCPToolError, match="validation error"):
                await run_tool(servers, "echo__add", a="not a number", b=1)


async def test_json_rpc_error_raises_tool_error_with_code() -> None:
    """A tools/call refused with a JSON-RPC error raises MCPToolError with its code and
    message, directly and through the Tool; the connection stays usable."""
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config()]) as servers:
            with pytest.raises(MCPToolError) as info:
                await servers["echo"].call_tool(
                    "refuse", {"code": -32042, "message": "quota exhausted"}
                )
            error = info.value
            assert (error.server, error.tool, error.code) == ("echo", "refuse", -32042)
            assert str(error) == (
                "MCP server 'echo' refused the call to 'refuse': quota exhausted "
                "(JSON-RPC error -32042)"
            )
            with pytest.raises(MCPToolError, match="quota exhausted") as info:
                await run_tool(servers, "echo__refuse", code=-32042, message="quota exhausted")
            assert info.value.code == -32042
            assert await run_tool(servers, "echo__echo", text="still here") == "still here"


@pytest.mark.parametrize(
    ("mode", "protocol"), [("default", "2026-07-28"), ("legacy", "2025-11-25")]
)
async def test_announced_tool_list_change_refreshes_tools(mode: str, protocol: str) -> None:
    """When the server announces a tool list change (a subscriptions/listen event at
    2026-07-28, a notification before), new tools appear, removed ones go, and unchanged
    tools keep their Tool object."""
    args = [str(ECHO_SERVER)] + (["legacy"] if mode == "legacy" else [])
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config(args=args)]) as servers:
            connection = servers["echo"]
            assert connection.protocol_version == protocol
            echo_tool = servers.tools(["echo__*"])["echo__echo"]
            assert "echo__late" not in servers.tools(["echo__*"]).names()
            assert await run_tool(servers, "echo__grow", name="late") == "added late"
            while "echo__late" not in servers.tools(["echo__*"]).names():
                await connection.wait_changed()
            tools = servers.tools(["echo__*"])
            assert tools["echo__echo"] is echo_tool
            assert tools["echo__late"].description == "Reverse the text."
            assert await run_tool(servers, "echo__late", text="abc") == "cba"
            assert "echo__late" in [t["name"] for t in servers.status()[0]["tools"]]
            # A second change: at 2026-07-28 the client also lists once after the server
            # acknowledged the listen stream, so at least one of the two changes is seen
            # only through the server's announcement.
            assert await run_tool(servers, "echo__forget", name="add") == "removed add"
            while "echo__add" in servers.tools(["echo__*"]).names():
                await connection.wait_changed()
            assert servers.tools(["echo__*"])["echo__echo"] is echo_tool
            with pytest.raises(ToolNotFound):
                servers.tools(["echo__add"])
            assert connection.status == "connected" and connection.last_error is None
            assert connection.reconnects == 0


async def test_agent_sees_mcp_results_and_errors() -> None:
    """In an agent's tool loop, MCP results and isError failures reach the model."""
    llm = ScriptedLLM(
        [
            Step.tool_calls(
                [("echo__echo", {"text": "from the server"}), ("echo__fail", {"message": "nope"})]
            ),
            Step.text("done"),
        ]
    )
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config()]) as servers:
            async with open_orchestrator(llm=llm) as orch:
                proc = await orch.spawn(Agent(name="a", tools=servers.tools(["echo__*"])))
                assert await proc.send("go") == "done"
    echoed, failed = llm.requests[1].messages[-1].tool_results
    assert (echoed.content, echoed.is_error) == ("from the server", False)
    assert failed.is_error and "MCPToolError" in failed.content and "nope" in failed.content


async def test_environment_reaches_the_server() -> None:
    """A stdio server gets its configured env, with ${VAR} expanded from the environment."""
    config = echo_config(env={"GREETING": "hello ${WHO}", "OTHER": "${UNSET:-default}"})
    with trio.fail_after(15):
        async with open_mcp_servers([config], environ={"WHO": "world"}) as servers:
            assert await run_tool(servers, "echo__environment", name="GREETING") == "hello world"
            assert await run_tool(servers, "echo__environment", name="OTHER") == "default"


async def test_crash_disconnects_then_reconnects() -> None:
    """A crashed server: the call fails, status says so, it reconnects, tools work again."""
    with trio.fail_after(20):
        async with open_mcp_servers([echo_config()]) as servers:
            tools = servers.tools()
            connection = servers["echo"]
            with pytest.raises(MCPServerUnavailable, match="was lost during the call to 'crash'"):
                await tools.execute(ToolCall(id="c", name="echo__crash", arguments={}))
            assert connection.status == "disconnected"
            assert connection.last_error == "the server closed the connection"
            await connection.wait_connected()
            assert connection.reconnects == 1
            result = await tools.execute(
                ToolCall(id="e", name="echo__echo", arguments={"text": "x"})
            )
            assert result == "x"
            assert servers.status()[0]["status"] == "connected"


async def test_calls_fail_fast_while_disconnected_and_work_after_reconnect(
    tmp_path: Path,
) -> None:
    """A server that can't start fails calls at once (status, last error); once it can
    start, the background reconnect brings it back."""
    script = tmp_path / "server.py"
    config = echo_config(args=[str(script)], backoff=Backoff(kind="constant", initial=0.2))
    with trio.fail_after(20):
        async with open_mcp_servers([config]) as servers:
            connection = servers["echo"]
            assert connection.status == "failed"
            assert connection.last_error is not None
            assert "Connection closed" in connection.last_error
            with trio.fail_after(1):
                with pytest.raises(MCPServerUnavailable) as info:
                    await connection.call_tool("echo", {"text": "x"})
            assert info.value.status == "failed" and info.value.server == "echo"
            assert "is not connected (status: failed)" in str(info.value)
            assert "Connection closed" in str(info.value)
            shutil.copy(ECHO_SERVER, script)
            await connection.wait_connected()
            assert connection.reconnects >= 1
            assert await run_tool(servers, "echo__echo", text="back") == "back"


async def test_gives_up_after_max_restarts() -> None:
    """More than max_restarts failures within the window: failed for good."""
    config = echo_config(command="/nonexistent/mcp-server", args=[], max_restarts=2)
    with trio.fail_after(10):
        async with open_mcp_servers([config]) as servers:
            connection = servers["echo"]
            with pytest.raises(MCPServerUnavailable, match="gave up reconnecting after 2"):
                await connection.wait_connected()
            assert connection.gave_up and connection.status == "failed"
            assert connection.last_error is not None
            assert "executable '/nonexistent/mcp-server' not found" in connection.last_error
            assert "gave up: more than 2 reconnects" in connection.last_error


async def test_connect_timeout() -> None:
    """A server that never answers the handshake fails after connect_timeout."""
    silent = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    config = echo_config(command=silent[0], args=silent[1:], connect_timeout=0.5, max_restarts=0)
    with trio.fail_after(10):
        async with open_mcp_servers([config]) as servers:
            connection = servers["echo"]
            assert connection.status == "failed" and connection.gave_up
            assert connection.last_error is not None
            assert "0.5 s connect_timeout" in connection.last_error


async def test_cancelling_a_call_cancels_it_on_the_server(reports: Reports) -> None:
    """Cancelling the caller sends notifications/cancelled; the server stops the tool."""
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config()]) as servers:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(run_tool, servers, "echo__slow", report_port=reports.port)
                )
                await reports.expect("started")
                nursery.cancel_scope.cancel()
            await reports.expect("cancelled")
            # The connection is unharmed.
            assert await run_tool(servers, "echo__echo", text="still here") == "still here"


async def test_timeout_cancels_the_call_on_the_server(reports: Reports) -> None:
    """A call over the server's timeout raises ToolTimeout and is cancelled on the server."""
    with trio.fail_after(15):
        async with open_mcp_servers([echo_config(timeout=0.5)]) as servers:
            with pytest.raises(ToolTimeout, match="echo__slow"):
                await run_tool(servers, "echo__slow", report_port=reports.port)
            await reports.expect("started")
            await reports.expect("cancelled")
            with pytest.raises(ToolTimeout, match="'slow' on server 'echo'"):
                await servers["echo"].call_tool("slow", {"report_port": reports.port})


async def test_nursery_start_and_close() -> None:
    """An owner runs the servers with nursery.start; close() ends run() and later calls fail."""
    servers = MCPServers([echo_config()])
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            started = await nursery.start(servers.run)
            assert started is servers
            assert await run_tool(servers, "echo__echo", text="hi") == "hi"
            servers.close()
        with pytest.raises(MCPServerUnavailable, match="shutting down"):
            await run_tool(servers, "echo__echo", text="hi")
        with pytest.raises(RuntimeError, match="runs once"):
            await servers.run()


async def test_block_error_is_not_wrapped() -> None:
    """An error in the async-with block comes out bare, not in an exception group."""
    with trio.fail_after(15):
        with pytest.raises(KeyError, match="no MCP server is named 'other'"):
            async with open_mcp_servers([echo_config()]) as servers:
                servers["other"]


# -- streamable HTTP and legacy SSE -----------------------------------------------------------


@attrs.frozen
class HttpServer:
    url: str
    transport: Literal["http", "sse"]
    process: trio.Process


@pytest.fixture(params=["http", "sse"])
async def http_echo(request: pytest.FixtureRequest) -> AsyncIterator[HttpServer]:
    """The echo server running over streamable HTTP or SSE on loopback."""
    kind: str = request.param
    process = await trio.lowlevel.open_process(
        [sys.executable, str(ECHO_SERVER), kind], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        output = b""
        with trio.fail_after(15):
            while b"\n" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, "the HTTP echo server exited before it printed its port"
                output += chunk
        port = int(output.split(b"\n", 1)[0])
        path = "/mcp" if kind == "http" else "/sse"
        yield HttpServer(url=f"http://127.0.0.1:{port}{path}", transport=kind, process=process)
    finally:
        await process.stdout.aclose()
        process.terminate()
        with trio.move_on_after(5, shield=True):
            await process.wait()
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5, shield=True):
                await process.wait()


async def test_http_transports(http_echo: HttpServer) -> None:
    """Streamable HTTP and legacy SSE: tools, calls, errors, and headers with ${VAR}."""
    config = MCPServerConfig(
        name="web",
        url=http_echo.url,
        transport=http_echo.transport,
        headers={"X-Api-Key": "${VEGA_TEST_KEY}"},
    )
    with trio.fail_after(15):
        async with open_mcp_servers([config], environ={"VEGA_TEST_KEY": "k-123"}) as servers:
            assert servers["web"].status == "connected", servers["web"].last_error
            assert "web__echo" in servers.tools().names()
            assert await run_tool(servers, "web__echo", text="over http") == "over http"
            assert await run_tool(servers, "web__header", name="x-api-key") == "k-123"
            with pytest.raises(MCPToolError, match="broken"):
                await run_tool(servers, "web__fail", message="broken")
            status = servers.status()[0]
            assert status["url"] == http_echo.url and status["transport"] == http_echo.transport


async def test_http_server_gone(http_echo: HttpServer) -> None:
    """A killed HTTP server: calls fail at once, and reconnect attempts fail with the cause."""
    config = MCPServerConfig(
        name="web",
        url=http_echo.url,
        transport=http_echo.transport,
        backoff=Backoff(kind="constant", initial=0.05),
        max_restarts=3,
    )
    with trio.fail_after(15):
        async with open_mcp_servers([config]) as servers:
            connection = servers["web"]
            assert await run_tool(servers, "web__echo", text="up") == "up"
            http_echo.process.kill()
            await http_echo.process.wait()
            with pytest.raises(MCPServerUnavailable):
                await run_tool(servers, "web__echo", text="down")
            with pytest.raises(MCPServerUnavailable, match="gave up") as info:
                await connection.wait_connected()
            assert "ConnectError" in str(info.value)
            assert connection.status == "failed" and connection.reconnects == 3


# -- the npm reference filesystem server ------------------------------------------------------


async def test_reference_filesystem_server(filesystem_server_js: Path, tmp_path: Path) -> None:
    """@modelcontextprotocol/server-filesystem: list, read and write inside its directory,
    and a refused path outside it."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("remember the milk", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("top secret", encoding="utf-8")
    node = shutil.which("node")
    assert node is not None
    config = MCPServerConfig(
        name="filesystem", command=node, args=[str(filesystem_server_js), str(allowed)]
    )
    with trio.fail_after(20):
        async with open_mcp_servers([config]) as servers:
            tools = servers.tools(["filesystem__*"])
            assert {"filesystem__read_text_file", "filesystem__write_file"} <= set(tools.names())
            assert servers["filesystem"].server_name == "secure-filesystem-server"

            async def call(name: str, **arguments: Any) -> str:
                return await tools.execute(ToolCall(id="f", name=name, arguments=arguments))

            text = await call("filesystem__read_text_file", path=str(allowed / "notes.txt"))
            assert text == "remember the milk"
            await call("filesystem__write_file", path=str(allowed / "new.txt"), content="written")
            assert (allowed / "new.txt").read_text(encoding="utf-8") == "written"
            with pytest.raises(MCPToolError, match="outside allowed directories"):
                await call("filesystem__read_text_file", path=str(tmp_path / "secret.txt"))


def test_importing_vega_trio_does_not_import_the_sdk() -> None:
    """The mcp SDK (most of a second to import) loads only when a server connects."""
    code = (
        "import sys, vega_trio.tools.mcp; print('mcp' in sys.modules, 'mcp_types' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.slow
async def test_connection_changes_are_bus_events() -> None:
    """An orchestrator's MCP server publishes mcp.disconnected when it is lost (why, and
    that it will reconnect), then mcp.connected (with its tools) when it is back."""
    with trio.fail_after(20):
        async with open_orchestrator(
            llm=ScriptedLLM([]), mcp_servers=[echo_config(tools=["echo", "crash"])]
        ) as orch:
            assert orch.mcp is not None
            connection = orch.mcp["echo"]
            with orch.subscribe(types="mcp.*") as events:
                with pytest.raises(MCPServerUnavailable):
                    await orch.mcp.tools().execute(
                        ToolCall(id="c", name="echo__crash", arguments={})
                    )
                await connection.wait_connected()
                got = [e for e in iter(events.receive_nowait, None)]
    assert [e.type for e in got] == ["mcp.disconnected", "mcp.connected"]  # type: ignore[union-attr]
    lost, back = got
    assert isinstance(lost, McpDisconnected) and lost.server == "echo" and lost.reconnecting
    assert lost.detail == "the server closed the connection"
    assert isinstance(back, McpConnected) and back.tools == ("echo__echo", "echo__crash")
