"""What ``vega-trio run`` shows on stderr (SPEC §9, §13): log records (``--log-level``,
``-v``, ``--log-format json``, ``settings.logging.level``), progress lines for tool calls,
retries and budget warnings from the event bus, ``--quiet``, an MCP server that cannot
start, and secrets masked in all of it."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from vega_trio._cli import run_command
from vega_trio.cli import main
from vega_trio.testing import FakeResponse, open_fake_anthropic_server

LIMIT = 60.0

TEAM = """\
{settings}agents:
  researcher:
    system: You research.
{agent_extra}workflows:
  report:
    steps:
      - researcher: "Research {{{{topic}}}}"
"""


def document(tmp_path: Path, *, settings: str = "", agent_extra: str = "") -> Path:
    path = tmp_path / "team.vega.yaml"
    path.write_text(TEAM.format(settings=settings, agent_extra=agent_extra))
    return path


async def run(file: Path, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("llm", "scripted")
    kwargs.setdefault("tasks", ["topic=Go"])
    with trio.fail_after(LIMIT):
        status = await run_command(file, out=out, err=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def anthropic_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """ANTHROPIC_* variables are set by each test (to its fake server); none leak in."""
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "OPENAI_", "VEGA_")):
            monkeypatch.delenv(name)
    return monkeypatch


# -- log records ---------------------------------------------------------------------------


async def test_log_level_debug_shows_structured_records(tmp_path: Path) -> None:
    """--log-level debug prints the process and LLM call records, one line each."""
    status, _, err = await run(document(tmp_path), log_level="debug")
    assert status == 0, err
    lines = err.splitlines()
    spawned = [ln for ln in lines if ln.startswith("DEBUG vega_trio.runtime: process ")]
    assert any(ln.endswith(" (researcher) spawned") for ln in spawned), err
    assert any(ln.startswith("DEBUG vega_trio.llm: LLM call of researcher") for ln in lines), err


async def test_default_level_shows_no_debug_records(tmp_path: Path) -> None:
    """Without a flag or setting only warnings and up print: a clean run shows none."""
    status, _, err = await run(document(tmp_path))
    assert status == 0, err
    assert "DEBUG" not in err and "INFO" not in err


async def test_log_format_json_is_one_object_per_line(tmp_path: Path) -> None:
    """--log-format json (with --quiet): every stderr line is a JSON object with time,
    level, logger, message and the record's extra fields."""
    status, out, err = await run(
        document(tmp_path), log_level="debug", log_format="json", quiet=True
    )
    assert status == 0, err
    assert out == "[researcher] Research Go\n"
    objects = [json.loads(line) for line in err.splitlines()]
    assert objects, "no records"
    for item in objects:
        assert {"time", "level", "logger", "message"} <= item.keys()
    calls = [o for o in objects if o.get("event") == "llm.call"]
    assert calls and calls[0]["agent"] == "researcher" and calls[0]["input_tokens"] > 0
    assert calls[0]["logger"] == "vega_trio.llm" and "latency_ms" in calls[0]


async def test_settings_logging_level_applies_and_the_flag_wins(tmp_path: Path) -> None:
    """settings.logging.level: debug shows debug records with no flag; --log-level
    warning wins over it."""
    doc = document(tmp_path, settings="settings:\n  logging:\n    level: debug\n")
    status, _, err = await run(doc)
    assert status == 0, err
    assert "DEBUG vega_trio.llm: LLM call of researcher" in err
    status, _, err = await run(doc, log_level="warning")
    assert status == 0, err
    assert "DEBUG" not in err


async def test_budget_warning_is_visible_by_default(tmp_path: Path) -> None:
    """A `warn` budget that is exceeded prints one line by default: as a progress line,
    or (with --quiet) as the WARNING log record."""
    doc = document(tmp_path, agent_extra='    budget: {limit: "$0.000001", on_exceed: warn}\n')
    status, _, err = await run(doc)
    assert status == 0, err
    warned = [ln for ln in err.splitlines() if "budget of agent 'researcher'" in ln]
    assert len(warned) == 1 and warned[0].startswith("! budget of agent 'researcher' exceeded: $")
    status, _, err = await run(doc, quiet=True)
    assert status == 0, err
    assert err.startswith("WARNING vega_trio.resilience: budget of agent 'researcher' exceeded")


# -- progress ------------------------------------------------------------------------------


async def test_progress_shows_a_retry_and_a_tool_call(
    tmp_path: Path, anthropic_env: pytest.MonkeyPatch
) -> None:
    """Against a server that is overloaded once (529) and then asks for a tool: a retry
    line and a tool line appear between the step's start and finish lines."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("hi")
    doc = document(
        tmp_path,
        settings="settings:\n  sandbox: ./work\n",
        agent_extra=(
            "    tools: [list_files]\n"
            "    retry: {max_attempts: 3, backoff: {initial: 10ms, max: 10ms}}\n"
        ),
    )
    async with open_fake_anthropic_server() as server:
        server.enqueue(
            FakeResponse.error(529),
            FakeResponse.tool_use("list_files", {"path": "."}),
            FakeResponse.text("done"),
        )
        anthropic_env.setenv("ANTHROPIC_BASE_URL", server.base_url)
        anthropic_env.setenv("ANTHROPIC_API_KEY", "test-key-123456")
        status, out, err = await run(doc, llm="anthropic")
    assert status == 0, err
    assert out == "done\n"
    lines = err.splitlines()
    assert lines[0] == "▶ report.steps[0] researcher · Research Go"
    assert lines[1] == "↻ researcher: LLM call failed (overloaded, HTTP 529); retry 2 in 0.01s"
    assert lines[2].startswith("· researcher → list_files ") and lines[2].endswith(" ms")
    assert lines[3].startswith("✓ report.steps[0] researcher ")
    assert "INFO" not in err  # the retry's record is not printed a second time


async def test_a_failed_process_is_reported_once(
    tmp_path: Path, anthropic_env: pytest.MonkeyPatch
) -> None:
    """A model that stays overloaded fails the step's process: the run prints the step's
    failure line and the error once — not also the process's WARNING record."""
    doc = document(
        tmp_path,
        agent_extra="    retry: {max_attempts: 2, backoff: {initial: 10ms, max: 10ms}}\n",
    )
    async with open_fake_anthropic_server() as server:
        server.enqueue(*[FakeResponse.error(529)] * 2)
        anthropic_env.setenv("ANTHROPIC_BASE_URL", server.base_url)
        anthropic_env.setenv("ANTHROPIC_API_KEY", "test-key-123456")
        status, out, err = await run(doc, llm="anthropic")
    assert status == 1 and out == ""
    assert "overloaded" in err
    assert "WARNING" not in err, err
    assert err.count("vega-trio: error:") == 1


async def test_quiet_hides_progress_but_not_errors(tmp_path: Path) -> None:
    """--quiet prints the result only; a failing run still prints its error."""
    doc = document(tmp_path)
    status, out, err = await run(doc, quiet=True)
    assert (status, out, err) == (0, "[researcher] Research Go\n", "")
    status, out, err = await run(doc, quiet=True, tasks=[])
    assert (status, out) == (1, "")
    assert "undefined variable 'topic'" in err and "▶" not in err


# -- MCP servers that cannot start ---------------------------------------------------------

MCP_SETTINGS = """\
settings:
  mcp:
    servers:
      - name: files
        command: {command}
        args: {args}
        env: {{LEAK: "${{ANTHROPIC_API_KEY:-none}}"}}
"""


async def test_mcp_server_that_cannot_start_is_reported_first(tmp_path: Path) -> None:
    """A missing executable: an ERROR line naming the server, its command and the cause
    comes before the step line, and the run's error names the failed server too."""
    doc = document(
        tmp_path,
        settings=MCP_SETTINGS.format(command="vega-no-such-server", args='["-y", "/data"]'),
        agent_extra="    tools: [files__*]\n",
    )
    status, _, err = await run(doc)
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == (
        "ERROR vega_trio.mcp: MCP server 'files' (vega-no-such-server -y /data) failed to "
        "start: executable 'vega-no-such-server' not found on PATH (install it, or give its "
        "full path as the command); retrying in the background"
    )
    assert lines[1].startswith("▶ report.steps[0] researcher")
    assert "the MCP server 'files' (vega-no-such-server -y /data) that would provide " in lines[-1]
    assert "'files__*' failed: executable 'vega-no-such-server' not found" in lines[-1]


@pytest.mark.slow
async def test_mcp_stderr_and_secrets_in_a_real_run_at_debug(tmp_path: Path) -> None:
    """In a subprocess at -vv with ANTHROPIC_API_KEY set: an MCP server that writes the key
    to stderr and exits at once is reported with its stderr (masked); the key never
    appears on stderr, and the run itself goes on (the agent does not need the server)."""
    secret = "sk-ant-marker-for-the-redaction-test-0123456789"
    script = "import os, sys; print('fatal: bad key', os.environ['LEAK'], file=sys.stderr)"
    settings = MCP_SETTINGS.format(command=sys.executable, args=json.dumps(["-c", script]))
    doc = document(tmp_path, settings=settings)
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.text("findings"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "VEGA_"))}
        env.update(ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY=secret)
        env["PYTHONIOENCODING"] = "utf-8"
        command = [sys.executable, "-m", "vega_trio", "-vv", "run", str(doc), "-t", "topic=Go"]
        with trio.fail_after(LIMIT):
            done = await trio.run_process(
                command, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert stdout == "findings\n"
    assert secret not in stderr
    assert "INFO vega_trio.mcp.files: fatal: bad key ***" in stderr
    assert (
        "failed to start: the server exited (or closed its stdout) before the MCP handshake"
        in stderr
    )
    assert "its stderr ends with: fatal: bad key ***" in stderr
    assert "DEBUG vega_trio.llm: LLM call of researcher" in stderr


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """run_command replaced by a recorder of its arguments."""
    calls: list[dict[str, Any]] = []

    async def record(file: Path, **kwargs: Any) -> int:
        await trio.lowlevel.checkpoint()
        calls.append(kwargs)
        return 0

    import vega_trio._cli as cli_functions

    monkeypatch.setattr(cli_functions, "run_command", record)
    return calls


@pytest.mark.parametrize(
    ("args", "level", "log_format", "quiet"),
    [
        (["run", "F"], None, "text", False),
        (["run", "F", "-v"], "info", "text", False),
        (["run", "-vv", "F"], "debug", "text", False),
        (["-v", "run", "F"], "info", "text", False),
        (["--log-level", "ERROR", "run", "F", "-vv"], "debug", "text", False),
        (["run", "F", "--log-level", "error", "-vv"], "error", "text", False),
        (["--log-format", "json", "run", "F", "-q"], None, "json", True),
        (["run", "F", "--log-format", "json", "--quiet"], None, "json", True),
    ],
)
def test_logging_flags_reach_the_run(
    captured: list[dict[str, Any]],
    tmp_path: Path,
    args: list[str],
    level: str | None,
    log_format: str,
    quiet: bool,
) -> None:
    """--log-level, -v/-vv and --log-format work before or after the command (the
    command's own win; --log-level wins over -v); -q/--quiet reaches the run."""
    doc = document(tmp_path)
    result = CliRunner().invoke(main, [str(doc) if a == "F" else a for a in args])
    assert result.exit_code == 0, result.output
    (call,) = captured
    assert (call["log_level"], call["log_format"], call["quiet"]) == (level, log_format, quiet)


def test_bad_log_level_is_a_usage_error(tmp_path: Path) -> None:
    """An unknown --log-level exits 2 and lists the levels."""
    result = CliRunner().invoke(main, ["run", str(document(tmp_path)), "--log-level", "loud"])
    assert result.exit_code == 2
    assert "'loud' is not one of 'debug', 'info', 'warning', 'error', 'critical'" in result.output
