"""An MCP server's stderr and its failure to start (SPEC §5.4, §13): stderr becomes records
of ``vega_trio.mcp.<server>``, a server that cannot start is reported (name, command,
cause) at ERROR, and a ToolNotFound for its tools says which server failed and why."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import Agent, ToolNotFound, open_orchestrator
from vega_trio.runtime import Backoff
from vega_trio.testing import ScriptedLLM
from vega_trio.tools.mcp import MCPServerConfig, open_mcp_servers

ECHO_SERVER = Path(__file__).resolve().parent / "mcp_servers" / "echo_server.py"
# Reconnects far apart: each test sees the first attempt only.
SLOW = Backoff(kind="constant", initial=600)


def config(name: str, command: str, *args: str, **changes: Any) -> MCPServerConfig:
    return MCPServerConfig(
        name=name, command=command, args=list(args), backoff=SLOW, timeout=10.0, **changes
    )


def by_event(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


async def test_missing_executable_is_reported_with_name_command_and_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command that does not exist: one ERROR record naming the server, its command line
    and "executable … not found"; ToolNotFound for its tools says the same."""
    with caplog.at_level(logging.INFO, logger="vega_trio"), trio.fail_after(10):
        async with open_mcp_servers([config("files", "vega-no-such-mcp", "-y", "/data")]) as s:
            with pytest.raises(ToolNotFound) as info:
                s.tools(["files__read_file"])
    (record,) = by_event(caplog, "mcp.start_failed")
    assert record.levelno == logging.ERROR and record.name == "vega_trio.mcp"
    assert record.getMessage().startswith(
        "MCP server 'files' (vega-no-such-mcp -y /data) failed to start: executable "
        "'vega-no-such-mcp' not found on PATH"
    )
    assert (record.server, record.command) == ("files", "vega-no-such-mcp -y /data")
    assert "not found" in record.cause
    message = str(info.value)
    assert "no tool named 'files__read_file'" in message
    assert "the MCP server 'files' (vega-no-such-mcp -y /data) that would provide " in message
    assert "'files__*' failed: executable 'vega-no-such-mcp' not found" in message


async def test_server_that_exits_at_once_reports_its_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real server process that writes an error and exits: the cause says it exited
    before the handshake and quotes its stderr; each stderr line is an INFO record of
    vega_trio.mcp.<server> and never reaches the process's own stderr raw."""
    script = "import sys; print('Error: cannot open /data', file=sys.stderr); sys.exit(3)"
    with caplog.at_level(logging.INFO, logger="vega_trio"), trio.fail_after(10):
        async with open_mcp_servers([config("files", sys.executable, "-c", script)]) as servers:
            connection = servers["files"]
            assert connection.status == "failed"
            assert connection.last_error is not None
            assert connection.last_error.startswith(
                "the server exited (or closed its stdout) before the MCP handshake"
            )
            assert connection.last_error.endswith("its stderr ends with: Error: cannot open /data")
    (line,) = by_event(caplog, "mcp.stderr")
    assert line.name == "vega_trio.mcp.files" and line.levelno == logging.INFO
    assert line.getMessage() == "Error: cannot open /data" and line.server == "files"
    (failed,) = by_event(caplog, "mcp.start_failed")
    assert "its stderr ends with: Error: cannot open /data" in failed.getMessage()


async def test_stderr_of_a_running_server_is_logged_line_by_line_and_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A working server's stderr lines become records of its own logger; a very long line
    is cut (its record stays bounded)."""
    script = (
        "import runpy, sys; "
        "print('starting up', file=sys.stderr); "
        "print('x' * 10000, file=sys.stderr); sys.stderr.flush(); "
        f"sys.argv = [{str(ECHO_SERVER)!r}]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    with caplog.at_level(logging.INFO, logger="vega_trio"), trio.fail_after(20):
        async with open_mcp_servers([config("echo", sys.executable, "-c", script)]) as servers:
            assert servers["echo"].status == "connected"
    # Closing reads what is left of the server's stderr before the transport is gone.
    lines = by_event(caplog, "mcp.stderr")
    assert lines[0].getMessage() == "starting up"
    assert lines[1].getMessage().startswith("x" * 2000 + "… (")
    assert len(lines[1].getMessage()) < 2100
    assert all(r.name == "vega_trio.mcp.echo" for r in lines)


async def test_agent_tools_from_a_failed_server_name_it() -> None:
    """An agent asking for files__* of a server that failed to start gets a ToolNotFound
    that names the server, its command and the cause."""
    with trio.fail_after(10):
        async with open_orchestrator(
            llm=ScriptedLLM(["never"]), mcp_servers=[config("files", "vega-no-such-mcp")]
        ) as orch:
            with pytest.raises(ToolNotFound) as info:
                await orch.spawn(Agent(name="helper", tools=["files__*"]))
    message = str(info.value)
    assert (
        "agent 'helper' asks for tools 'files__*', but no tool matches: the MCP server " in message
    )
    assert "'files' (vega-no-such-mcp) that would provide 'files__*' failed: executable " in message


async def test_a_secret_the_server_prints_is_masked_in_its_failure(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that echoes a token to stderr before exiting: the connection's last_error
    and the start-failure record's message and cause show *** instead of the token."""
    secret = "tok-0123456789-abcdefghij"
    monkeypatch.setenv("VEGA_TEST_MCP_TOKEN", secret)
    script = "import os, sys; print('bad token', os.environ['LEAK'], file=sys.stderr)"
    server = config("files", sys.executable, "-c", script, env={"LEAK": "${VEGA_TEST_MCP_TOKEN}"})
    with caplog.at_level(logging.INFO, logger="vega_trio"), trio.fail_after(10):
        async with open_mcp_servers([server]) as servers:
            last_error = servers["files"].last_error
    assert last_error is not None and last_error.endswith("its stderr ends with: bad token ***")
    (failed,) = by_event(caplog, "mcp.start_failed")
    assert secret not in failed.getMessage() and secret not in failed.cause
