"""The ``vega-trio`` command line: its async command functions called directly, and the
real command end to end in subprocesses (against the local fake Anthropic server)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

import vega_trio
from vega_trio._cli import repl_command, run_command, validate_command
from vega_trio.cli import main
from vega_trio.testing import (
    FakeChatResponse,
    FakeResponse,
    open_fake_anthropic_server,
    open_fake_openai_server,
)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
TEAM = EXAMPLES_DIR / "team.vega.yaml"
SUBPROCESS_LIMIT = 60.0

TWO_WORKFLOWS = """\
agents:
  helper:
    system: You help.
workflows:
  first:
    steps:
      - helper: "one {{x | default:'?'}}"
  second:
    steps:
      - helper: "two"
"""

BROKEN = """\
agents:
  writer:
    system: You write.
    temprature: 0.5
workflows:
  report:
    steps:
      - writr: "Summarise {{ text | uper }}"
"""


def test_version() -> None:
    """`vega-trio --version` prints the package version."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"vega-trio, version {vega_trio.__version__}\n"


def test_help() -> None:
    """`vega-trio --help` (and -h) describes the tool and lists its commands."""
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0
        assert "fault-tolerant AI agent orchestration" in result.output
        for command in ("run", "validate", "repl"):
            assert f"\n  {command} " in result.output


def test_python_dash_m() -> None:
    """`python -m vega_trio --version` works like the console script."""
    out = subprocess.run(
        [sys.executable, "-m", "vega_trio", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert vega_trio.__version__ in out.stdout


# -- run, called directly ------------------------------------------------------------------


async def _run(file: Path, **kwargs: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("llm", "scripted")
    with trio.fail_after(SUBPROCESS_LIMIT):
        status = await run_command(file, out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return status, out.getvalue(), err.getvalue()


async def test_run_text_output_and_progress() -> None:
    """run prints the result on stdout and one line per step start/finish on stderr."""
    status, out, err = await _run(TEAM, tasks=["topic=Go concurrency"])
    assert status == 0, err
    assert out == "[writer] Summarise: [researcher] Research Go concurrency\n"
    lines = err.splitlines()
    assert lines[0] == "▶ report.steps[0] researcher · Research Go concurrency"
    assert lines[1].startswith("✓ report.steps[0] researcher ")
    assert " tokens $" in lines[1]
    assert lines[2] == "▶ report.steps[1] writer · Summarise: [researcher] Research Go concurrency"
    assert lines[-1].startswith("✓ workflow report done: 2 step(s), ")


async def test_run_json_output() -> None:
    """--output json prints the output, variables, cost and token counts as JSON."""
    status, out, err = await _run(TEAM, tasks=["topic=Go"], output="json")
    assert status == 0, err
    result = json.loads(out)
    assert result["output"] == "[writer] Summarise: [researcher] Research Go"
    assert result["variables"]["topic"] == "Go"
    assert result["variables"]["findings"] == "[researcher] Research Go"
    assert result["tokens"]["input"] > 0 and result["tokens"]["output"] > 0
    assert isinstance(result["cost_usd"], float)
    assert result["steps_run"] == 2


async def test_run_offline_notice_when_no_key() -> None:
    """Without --llm and without Anthropic variables, run says its replies are scripted."""
    status, _, err = await _run(TEAM, tasks=["topic=Go"], llm=None, env={})
    assert status == 0, err
    assert err.splitlines()[0].startswith("vega-trio: offline: replies are scripted")
    status, _, err = await _run(TEAM, tasks=["topic=Go"], llm="scripted", env={})
    assert "offline" not in err


async def test_run_input_file_and_task_precedence(tmp_path: Path) -> None:
    """--input variables are used, and a --task for the same name wins over them."""
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"topic": "from file"}))
    status, out, err = await _run(TEAM, input_file=data)
    assert status == 0, err
    assert out == "[writer] Summarise: [researcher] Research from file\n"
    status, out, err = await _run(TEAM, input_file=data, tasks=["topic=from flag"])
    assert out == "[writer] Summarise: [researcher] Research from flag\n"


async def test_run_workflow_selection(tmp_path: Path) -> None:
    """Several workflows need --workflow (the error lists them); a typo gets a hint."""
    doc = tmp_path / "two.vega.yaml"
    doc.write_text(TWO_WORKFLOWS)
    status, out, err = await _run(doc)
    assert (status, out) == (2, "")
    assert err.strip() == (
        f"vega-trio: error: {doc} defines 2 workflows (first, second); choose one with "
        "--workflow NAME"
    )
    status, _, err = await _run(doc, workflow="secnd")
    assert status == 2
    assert "has no workflow 'secnd'; did you mean 'second'? (workflows: first, second)" in err
    status, out, err = await _run(doc, workflow="second")
    assert (status, out) == (0, "[helper] two\n")


async def test_run_invalid_file_prints_every_diagnostic(tmp_path: Path) -> None:
    """An invalid document prints all its errors, a summary line, and exits 2: nothing ran."""
    doc = tmp_path / "broken.vega.yaml"
    doc.write_text(BROKEN)
    status, out, err = await _run(doc)
    assert (status, out) == (2, "")
    lines = err.splitlines()
    assert any(f"{doc}:4:5: error: agents.writer.temprature: " in ln for ln in lines), err
    assert any("unknown agent 'writr'" in ln and "did you mean 'writer'?" in ln for ln in lines)
    assert any("uper" in ln and "did you mean 'upper'?" in ln for ln in lines), err
    assert lines[-1] == f"vega-trio: {doc}: {len(lines) - 1} errors; nothing was run"


async def test_run_failure_exit_1_cause_on_one_line() -> None:
    """A run that fails (an undefined variable) exits 1; the error's first line names the
    workflow, the step and the cause (its caret diagram and hint follow)."""
    status, out, err = await _run(TEAM)
    assert (status, out) == (1, "")
    cause = next(ln for ln in err.splitlines() if ln.startswith("vega-trio: error: "))
    assert cause.startswith("vega-trio: error: workflow 'report' failed: ")
    assert "undefined variable 'topic'" in cause


async def test_run_timeout_exit_1(tmp_path: Path) -> None:
    """--timeout ends a run that takes longer, with exit status 1 and the reason."""
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.text("late", first_byte_delay=30.0))
        env = {"ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_API_KEY": "test"}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            status, out, err = await _run(TEAM, tasks=["topic=Go"], llm="anthropic", time_limit=0.5)
    assert (status, out) == (1, "")
    assert err.splitlines()[-1] == (
        "vega-trio: error: workflow 'report' timed out after 0.5s (--timeout); give it "
        "longer or leave --timeout out"
    )


# -- validate, called directly -------------------------------------------------------------


async def test_validate_reports_all_errors_exit_1(tmp_path: Path) -> None:
    """validate prints every diagnostic as file:line:col: severity: path: message and
    exits 1 on errors."""
    doc = tmp_path / "broken.vega.yaml"
    doc.write_text(BROKEN)
    out = io.StringIO()
    assert await validate_command(doc, verbose=True, out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"{doc}:4:5: error: agents.writer.temprature: ")
    assert "did you mean 'temperature'?" in lines[0]
    assert lines[-1].startswith(f"{doc}: invalid (3 errors")
    assert not any(line.startswith("document:") for line in lines)  # no summary


async def test_validate_warnings_exit_0_and_verbose_summary() -> None:
    """The seed's file: a warning for {{topic}} (it may come from --task), exit 0, and
    --verbose summarises agents and workflow steps."""
    out = io.StringIO()
    assert await validate_command(TEAM, verbose=True, out=out) == 0
    text = out.getvalue()
    assert f"{TEAM}:" in text and ": warning: " in text and "'topic'" in text
    assert "document: MyTeam" in text
    assert "  researcher: model claude-sonnet-4-20250514" in text
    assert "    report.steps[0] researcher: send 'Research {{topic}}' -> findings" in text
    assert text.splitlines()[-1] == f"{TEAM}: valid (0 errors, 1 warning)"


# -- repl, called directly -----------------------------------------------------------------


async def _repl(file: Path, script: str) -> tuple[int, str, str]:
    stdin = trio.wrap_file(io.StringIO(script))
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(SUBPROCESS_LIMIT):
        status = await repl_command(
            file, llm="scripted", read_line=stdin.readline, interactive=False, out=out, err=err
        )
    return status, out.getvalue(), err.getvalue()


async def test_repl_commands() -> None:
    """The repl lists agents and workflows, talks to the chosen agent (streamed), runs a
    workflow, ends a conversation, and complains clearly about mistakes."""
    script = "\n".join(
        [
            "/agents",
            "/workflows",
            "Hello?",
            "/ask writr",
            "/ask writer",
            "Hello writer",
            "/run report topic='Go channels'",
            "/end",
            "/bogus",
            "/quit",
            "never read",
        ]
    )
    status, out, err = await _repl(TEAM, script)
    assert status == 0, err
    assert out.splitlines() == [
        "  researcher (claude-sonnet-4-20250514): You research topics thoroughly.",
        "  writer (claude-sonnet-4-20250514): You write clear summaries.",
        "  report",
        "(talking to writer; /end forgets the conversation)",
        "[writer] Hello writer",
        "[writer] Summarise: [researcher] Research Go channels",
        "(conversation with writer ended)",
    ]
    assert "no agent selected; choose one with /ask AGENT (agents: researcher, writer)" in err
    assert "no agent 'writr'; did you mean 'writer'?" in err
    assert "unknown command '/bogus'" in err
    assert "▶ report.steps[0] researcher" in err


async def test_repl_single_agent_and_eof() -> None:
    """With one agent the repl talks to it at once; the end of input ends the session."""
    status, out, err = await _repl(EXAMPLES_DIR / "simple-agent.vega.yaml", "Hi there\n")
    assert status == 0, err
    assert out == "[helper] Hi there\n"


# -- end to end, in subprocesses -----------------------------------------------------------


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.pop("VEGA_LLM", None)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def _text_of(message: dict[str, object]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    assert isinstance(content, list)
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


@pytest.mark.slow
async def test_seed_example_end_to_end_against_fake_anthropic(tmp_path: Path) -> None:
    """The seed's command, flags after the file, against an Anthropic-compatible server:
    the researcher's reply reaches the writer through {{findings}}, the writer's reply
    is printed, and the agents' models and prompts are really sent."""
    findings = "Goroutines are cheap; channels carry values between them."
    summary = "Go runs cheap goroutines that talk over channels."
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.text(findings, chunks=3), FakeResponse.text(summary, chunks=2))
        env = _child_env(ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY="test")
        command = [sys.executable, "-m", "vega_trio", "run", str(TEAM)]
        command += ["--workflow", "report", "--task", "topic=Go concurrency"]
        with trio.fail_after(SUBPROCESS_LIMIT):
            done = await trio.run_process(
                command, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert stdout == summary + "\n"
    assert len(server.requests) == 2
    first, second = (request.body for request in server.requests)
    assert _text_of(first["messages"][-1]) == "Research Go concurrency"
    assert _text_of(second["messages"][-1]) == f"Summarise: {findings}"
    assert [first["model"], second["model"]] == ["claude-sonnet-4-20250514"] * 2
    assert "You write clear summaries." in json.dumps(second["system"])
    assert "▶ report.steps[0] researcher · Research Go concurrency\n" in stderr
    assert "✓ report.steps[1] writer " in stderr
    assert "offline" not in stderr


@pytest.mark.slow
async def test_openai_compatible_backend_end_to_end(tmp_path: Path) -> None:
    """--llm openai against an OpenAI-compatible server (OPENAI_BASE_URL, e.g. Ollama): the
    same seed workflow runs, with the document's model names sent as they are."""
    findings = "Goroutines are cheap."
    summary = "Go uses cheap goroutines."
    async with open_fake_openai_server() as server:
        server.enqueue(FakeChatResponse.text(findings), FakeChatResponse.text(summary))
        env = _child_env(OPENAI_BASE_URL=server.base_url)
        env.pop("OPENAI_API_KEY", None)
        command = [sys.executable, "-m", "vega_trio", "run", str(TEAM), "--llm", "openai"]
        command += ["--task", "topic=Go concurrency"]
        with trio.fail_after(SUBPROCESS_LIMIT):
            done = await trio.run_process(
                command, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert stdout == summary + "\n"
    first, second = (request.body for request in server.requests)
    assert first["messages"][-1]["content"] == "Research Go concurrency"
    assert second["messages"][-1]["content"] == f"Summarise: {findings}"
    assert second["messages"][0] == {"role": "system", "content": "You write clear summaries."}


@pytest.mark.slow
async def test_cli_failure_end_to_end() -> None:
    """In a subprocess: a bad workflow name exits 2 and a failed run exits 1, each with
    a one-line cause on stderr and nothing on stdout."""
    env = _child_env(VEGA_LLM="scripted")
    base = [sys.executable, "-m", "vega_trio", "run", str(TEAM)]
    with trio.fail_after(SUBPROCESS_LIMIT):
        async with trio.open_nursery() as nursery:
            results: dict[str, subprocess.CompletedProcess[bytes]] = {}

            async def go(key: str, args: list[str]) -> None:
                results[key] = await trio.run_process(
                    base + args, env=env, capture_stdout=True, capture_stderr=True, check=False
                )

            nursery.start_soon(go, "unknown", ["-w", "reprot", "-t", "topic=x"])
            nursery.start_soon(go, "failed", ["-w", "report"])
    unknown, failed = results["unknown"], results["failed"]
    assert (unknown.returncode, unknown.stdout) == (2, b"")
    assert unknown.stderr.decode().splitlines()[-1] == (
        f"vega-trio: error: {TEAM} has no workflow 'reprot'; did you mean 'report'? "
        "(workflows: report)"
    )
    assert (failed.returncode, failed.stdout) == (1, b"")
    cause = [ln for ln in failed.stderr.decode().splitlines() if ln.startswith("vega-trio: e")]
    assert len(cause) == 1 and "undefined variable 'topic'" in cause[0]


@pytest.mark.slow
async def test_repl_end_to_end_through_a_pipe() -> None:
    """`vega-trio repl` reads commands from a pipe and streams the agent's reply."""
    env = _child_env(VEGA_LLM="scripted")
    script = b"/agents\n/ask researcher\nWhat is a nursery?\n/quit\n"
    with trio.fail_after(SUBPROCESS_LIMIT):
        done = await trio.run_process(
            [sys.executable, "-m", "vega_trio", "repl", str(TEAM)],
            stdin=script,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert stdout.splitlines()[-2:] == [
        "(talking to researcher; /end forgets the conversation)",
        "[researcher] What is a nursery?",
    ]
    assert "/help lists the commands" in stderr


@pytest.mark.parametrize("setting", ["", "  prompt_caching: false\n"])
async def test_run_sends_prompt_caching_as_settings_say(tmp_path: Path, setting: str) -> None:
    """`run` on the Anthropic backend marks a long system prompt for prompt caching unless
    the document's settings.prompt_caching is false."""
    doc = tmp_path / "cached.vega.yaml"
    system = "You answer questions about the handbook. " * 200  # ~8,000 chars: cacheable
    doc.write_text(
        f"settings:\n  default_model: claude-sonnet-4-20250514\n{setting}"
        f"agents:\n  helper:\n    system: {json.dumps(system)}\n"
        "workflows:\n  ask:\n    steps:\n      - helper: 'Hi'\n"
    )
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.text("Hello"))
        env = {"ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_API_KEY": "test"}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            status, out, err = await _run(doc, llm="anthropic")
    assert (status, out) == (0, "Hello\n"), err
    system_blocks = server.requests[0].body["system"]
    marked = isinstance(system_blocks, list) and any("cache_control" in b for b in system_blocks)
    assert marked is (setting == "")
