"""The CLI as a new user meets it (SPEC §9): Ctrl-C, the repl's terminal handling, exit
codes of bad inputs, the `--task k:v` hint, unencodable output, errors printed once with
their lines, `--output json` on failure, redaction of every line, `vega-trio help`, and a
missing API key found at spawn."""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

import vega_trio
from vega_trio import Agent, LLMError
from vega_trio._cli import run_command
from vega_trio.cli import main
from vega_trio.testing import FakeResponse, open_fake_anthropic_server

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
TEAM = EXAMPLES_DIR / "team.vega.yaml"
LIMIT = 60.0

INPUTS = """\
agents:
  helper:
    system: You help.
workflows:
  go:
    inputs:
      text:
        type: string
        required: true
      level:
        type: string
        enum: [low, high]
        default: low
      rounds:
        type: integer
        default: 1
    steps:
      - helper: "{{text}} {{level}} {{rounds}}"
"""


async def _run(file: Path, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("llm", "scripted")
    with trio.fail_after(LIMIT):
        status = await run_command(file, out=out, err=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.pop("VEGA_LLM", None)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


class _Child:
    """A `vega-trio` subprocess whose stdout and stderr are collected as they come."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.out = bytearray()
        self.err = bytearray()

    async def pump(self, stream: trio.abc.ReceiveStream | None, into: bytearray) -> None:
        assert stream is not None
        async for data in stream:
            into.extend(data)


# -- 1. Ctrl-C during `run` ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("output", ["text", "json"])
async def test_ctrl_c_during_run_exits_130_naming_the_step(output: str) -> None:
    """SIGINT while a step waits for the model: exit 130 with one line naming the workflow
    and the step, the model connection is closed (nothing left running), no `Aborted!`."""
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.stall())
        env = _child_env(ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY="test")
        command = [sys.executable, "-m", "vega_trio", "run", str(TEAM), "-t", "topic=Go"]
        command += ["--output", output]
        with trio.fail_after(LIMIT):
            process = await trio.lowlevel.open_process(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            child = _Child(process)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child.pump, process.stdout, child.out)
                nursery.start_soon(child.pump, process.stderr, child.err)
                await server.wait_for_requests(1)  # the step is waiting for its reply
                process.send_signal(signal.SIGINT)
                await process.wait()
            await server.wait_for_aborts(1)
    stderr = child.err.decode()
    assert process.returncode == 130, stderr
    assert "Aborted" not in stderr and "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        "vega-trio: interrupted: workflow 'report' stopped at workflows.report.steps[0] "
        "(researcher) (Ctrl-C); its processes were stopped"
    )
    if output == "json":
        payload = json.loads(child.out)
        assert payload["ok"] is False and payload["error_class"] == "interrupted"
        assert payload["step"] == "workflows.report.steps[0]"
    else:
        assert child.out == b""


# -- 2. the repl: Ctrl-C, Ctrl-D, line editing and history -----------------------------------


class _Terminal:
    """The master side of a pty: what the child prints, and keys typed into it."""

    def __init__(self, master: int) -> None:
        self.stream = trio.lowlevel.FdStream(master)
        self.seen = ""
        self._at = 0

    async def expect(self, text: str) -> str:
        """Wait until ``text`` appears after what was expected last; return what came."""
        while text not in self.seen[self._at :]:
            try:
                data = await self.stream.receive_some(4096)
            except (OSError, trio.BrokenResourceError):  # EIO: the child closed the pty
                data = b""
            if not data:
                raise AssertionError(f"{text!r} never came; the terminal shows {self.seen!r}")
            self.seen += data.decode("utf-8", "replace")
        start = self._at
        self._at = self.seen.index(text, self._at) + len(text)
        return self.seen[start : self._at]

    async def type(self, keys: str) -> None:
        await self.stream.send_all(keys.encode())


@pytest.mark.slow
async def test_repl_in_a_terminal_ctrl_c_ctrl_d_and_history(tmp_path: Path) -> None:
    """On a terminal (a pty): Ctrl-C cancels the streaming reply and the prompt returns;
    Ctrl-C at the prompt discards the half-typed line; Ctrl-D leaves with status 0; the
    lines are kept in $VEGA_HOME/repl_history (readline)."""
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.stall())
        env = _child_env(
            ANTHROPIC_BASE_URL=server.base_url,
            ANTHROPIC_API_KEY="test",
            VEGA_HOME=str(tmp_path),
            TERM="dumb",
        )
        master, slave = pty.openpty()
        with trio.fail_after(LIMIT):
            try:
                process = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "vega_trio", "repl", str(TEAM)],
                    env=env,
                    stdin=slave,
                    stdout=slave,
                    stderr=subprocess.PIPE,
                )
            finally:
                os.close(slave)
            terminal = _Terminal(master)
            child = _Child(process)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child.pump, process.stderr, child.err)
                await terminal.expect("> ")
                await terminal.type("/ask researcher\r")
                await terminal.expect("researcher> ")
                await terminal.type("Tell me about nurseries\r")
                await server.wait_for_requests(1)  # the reply is on its way (stalled)
                process.send_signal(signal.SIGINT)
                await terminal.expect("researcher> ")  # the prompt is back
                await server.wait_for_aborts(1)  # and the request was really cancelled
                await terminal.type("half a line")
                await terminal.expect("half a line")
                process.send_signal(signal.SIGINT)
                await terminal.expect("researcher> ")
                await terminal.type("/agents\r")
                listing = await terminal.expect("researcher> ")
                await terminal.type("\x04")  # Ctrl-D
                await process.wait()
            await terminal.stream.aclose()
    stderr = child.err.decode()
    assert process.returncode == 0, stderr
    assert "* researcher (claude-sonnet-4-20250514)" in listing  # not "half a line/agents"
    assert "interrupted: researcher's reply was cancelled (Ctrl-C)" in stderr
    assert "Traceback" not in stderr
    assert len(server.requests) == 1  # the half line was never sent
    history = (tmp_path / "repl_history").read_text().splitlines()
    assert history[-3:] == ["/ask researcher", "Tell me about nurseries", "/agents"]


@pytest.mark.slow
async def test_repl_through_a_pipe_ctrl_c_cancels_the_reply() -> None:
    """With stdin a pipe (no terminal, no readline), Ctrl-C still cancels the reply in
    progress and the next line is read; the end of input leaves with status 0."""
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.stall())
        env = _child_env(ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY="test")
        with trio.fail_after(LIMIT):
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "vega_trio", "repl", str(TEAM)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            child = _Child(process)
            assert process.stdin is not None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child.pump, process.stdout, child.out)
                nursery.start_soon(child.pump, process.stderr, child.err)
                await process.stdin.send_all(b"/ask writer\nHello\n")
                await server.wait_for_requests(1)
                process.send_signal(signal.SIGINT)
                await server.wait_for_aborts(1)
                await process.stdin.send_all(b"/agents\n")
                await process.stdin.aclose()
                await process.wait()
    stdout, stderr = child.out.decode(), child.err.decode()
    assert process.returncode == 0, stderr
    assert "interrupted: writer's reply was cancelled (Ctrl-C)" in stderr
    assert (
        stdout.splitlines()[-1] == "* writer (claude-sonnet-4-20250514): You write clear summaries."
    )


def test_repl_history_file_location(tmp_path: Path) -> None:
    """The history lives in $VEGA_HOME/repl_history, else ~/.vega/repl_history."""
    from vega_trio._cli._repl import history_file

    assert history_file({"VEGA_HOME": str(tmp_path)}) == tmp_path / "repl_history"
    assert history_file({}) == Path.home() / ".vega" / "repl_history"


# -- 3. bad inputs exit 2 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "problem"),
    [
        ([], "needs input 'text'"),
        (["text=hi", "level=medium"], "'medium'"),
        (["text=hi", "rounds=many"], "'many'"),
    ],
    ids=["required", "enum", "type"],
)
async def test_missing_or_invalid_input_exits_2(
    tmp_path: Path, tasks: list[str], problem: str
) -> None:
    """A missing required input, a value outside its enum, or one of the wrong type exits 2
    (bad input, nothing ran), with the problem on one line; --output json says so too."""
    doc = tmp_path / "inputs.vega.yaml"
    doc.write_text(INPUTS)
    status, out, err = await _run(doc, tasks=tasks)
    assert (status, out) == (2, ""), err
    assert problem in err and err.rstrip().endswith("nothing was run")
    assert "▶" not in err  # no step started
    status, out, _ = await _run(doc, tasks=tasks, output="json")
    payload = json.loads(out)
    assert status == 2
    assert (payload["ok"], payload["error_class"], payload["workflow"]) == (
        False,
        "invalid_input",
        "go",
    )


def test_invalid_input_exit_status_of_the_command(tmp_path: Path) -> None:
    """The `vega-trio run` command itself exits 2 for a missing input."""
    doc = tmp_path / "inputs.vega.yaml"
    doc.write_text(INPUTS)
    result = CliRunner().invoke(main, ["run", str(doc), "--llm", "scripted"])
    assert result.exit_code == 2, result.output


# -- 4. --task topic:Go ----------------------------------------------------------------------


@pytest.mark.parametrize("task", ["topic:Go", "topic: Go"])
async def test_task_with_colon_gets_a_hint(task: str) -> None:
    """`--task topic:Go` sets `task`; when the run then fails on the undefined `topic`, the
    error ends with a hint naming the variable and the --task meant for it."""
    status, _, err = await _run(TEAM, tasks=[task])
    assert status == 1
    assert err.splitlines()[-1] == (
        f"hint: --task \"{task}\" set the variable 'task', not 'topic' (only K=V sets a "
        'variable K); write --task "topic=Go"'
    )


async def test_repl_run_with_colon_gets_the_hint_once() -> None:
    """In the repl, `/run report topic:Go` fails with the error printed once (caret kept)
    and the hint written as a /run command."""
    from vega_trio._cli import repl_command

    stdin = trio.wrap_file(io.StringIO("/run report topic:Go\n"))
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(LIMIT):
        status = await repl_command(
            TEAM, llm="scripted", read_line=stdin.readline, interactive=False, out=out, err=err
        )
    assert status == 0
    text = err.getvalue()
    assert text.count("undefined variable 'topic'") == 1
    assert "\n    Research {{topic}}\n" in text
    assert text.rstrip().endswith(
        "hint: /run report \"topic:Go\" set the variable 'task', not 'topic' (only K=V sets "
        'a variable K); write /run report "topic=Go"'
    )


async def test_no_task_hint_when_unrelated() -> None:
    """The hint appears only for a --task that looks meant for the undefined variable."""
    status, _, err = await _run(TEAM, tasks=["other:Go"])
    assert status == 1
    assert "hint:" not in err


# -- 5. a result stdout cannot encode ----------------------------------------------------------


UNICODE_FAILURE = """\
agents:
  helper:
    system: You help.
workflows:
  go:
    steps:
      - helper: "Résumé ✓ {{missing}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "encoding_env",
    [{"PYTHONIOENCODING": "ascii"}, {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0"}],
    ids=["PYTHONIOENCODING=ascii", "LANG=C"],
)
async def test_unencodable_output_never_a_traceback(
    encoding_env: dict[str, str], tmp_path: Path
) -> None:
    """A non-ASCII result, JSON object or error on an ASCII stdout/stderr is printed with
    escapes (exit 0 or 1 as usual), never a UnicodeEncodeError traceback."""
    env = _child_env(VEGA_LLM="scripted")
    env.pop("PYTHONIOENCODING")
    env.update(encoding_env)
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"topic": "Göteborg ✓"}))  # ASCII file, \u escapes
    failing = tmp_path / "unicode.vega.yaml"
    failing.write_text(UNICODE_FAILURE, encoding="utf-8")
    base = [sys.executable, "-m", "vega_trio", "run"]
    runs = {
        "text": [*base, str(TEAM), "--input", str(inputs)],
        "json": [*base, str(TEAM), "--input", str(inputs), "--output", "json"],
        "failed": [*base, str(failing)],
    }
    done: dict[str, subprocess.CompletedProcess[bytes]] = {}
    with trio.fail_after(LIMIT):
        for key, command in runs.items():
            done[key] = await trio.run_process(
                command, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
    for result in done.values():
        assert b"Traceback" not in result.stderr and b"UnicodeEncodeError" not in result.stderr
    assert done["text"].returncode == 0, done["text"].stderr.decode()
    assert (
        done["text"].stdout == b"[writer] Summarise: [researcher] Research G\\xf6teborg \\u2713\n"
    )
    assert done["json"].returncode == 0
    assert json.loads(done["json"].stdout)["variables"]["topic"] == "Göteborg ✓"  # valid JSON
    assert done["failed"].returncode == 1
    assert b"R\\xe9sum\\xe9 \\u2713 {{missing}}" in done["failed"].stderr


# -- 6. an error printed once, its lines kept; --output json on failure --------------------------


async def test_run_error_printed_once_with_its_caret_diagram() -> None:
    """A failed run prints its error once (the step's line only says it failed), and the
    template error's caret stays on its own line under the undefined variable."""
    status, out, err = await _run(TEAM)
    assert (status, out) == (1, "")
    assert err.count("undefined variable 'topic'") == 1
    lines = err.splitlines()
    assert lines[0] == "✗ report.steps[0] researcher failed"
    assert lines[1].startswith("vega-trio: error: workflow 'report' failed: ")
    assert lines[1].endswith("workflows.report.steps[0] (researcher): undefined variable 'topic'")
    excerpt, caret = lines[2], lines[3]
    assert excerpt == "    Research {{topic}}"
    assert caret.index("^") == excerpt.index("topic")
    assert lines[4].startswith("Define it (a workflow input")


RECOVERED = """\
agents:
  helper:
    system: You help.
workflows:
  go:
    steps:
      - set:
          parts: [a, b]
      - for: part in parts
        steps:
          - helper:
              send: "Part {{part}} of {{missing}}"
              continue_on_error: true
      - helper: "done"
"""


async def test_a_recovered_failure_shows_its_error_on_its_line(tmp_path: Path) -> None:
    """A failure the run goes on from (continue_on_error) keeps its cause on its progress
    line, as one line; the run succeeds."""
    doc = tmp_path / "recovered.vega.yaml"
    doc.write_text(RECOVERED)
    status, out, err = await _run(doc)
    assert (status, out) == (0, "[helper] done\n"), err
    failed = [line for line in err.splitlines() if line.startswith("✗")]
    assert len(failed) == 2
    for line in failed:
        assert "undefined variable 'missing'" in line
        assert "(continue_on_error: going on)" in line


async def test_nested_failure_printed_once(tmp_path: Path) -> None:
    """A failure inside a `for` fails the step and the loop: each says it failed, and the
    error itself is printed once, after them."""
    doc = tmp_path / "nested.vega.yaml"
    doc.write_text(RECOVERED.replace("              continue_on_error: true\n", ""))
    status, _, err = await _run(doc)
    assert status == 1
    assert err.count("undefined variable 'missing'") == 1
    failed = [line for line in err.splitlines() if line.startswith("✗")]
    assert failed == ["✗ go.steps[1].for[0].steps[0] helper failed", "✗ go.steps[1] for failed"]
    assert err.splitlines()[-4].startswith("vega-trio: error: workflow 'go' failed: ")


async def test_output_json_on_failure() -> None:
    """--output json prints {"ok": false, "error", "error_class", "workflow", "step"} on
    a failed run (exit 1), and {"ok": true, ...} on success."""
    status, out, _ = await _run(TEAM, output="json")
    assert status == 1
    payload = json.loads(out)
    assert payload["ok"] is False
    assert payload["error_class"] == "template_error"
    assert payload["workflow"] == "report"
    assert payload["step"] == "workflows.report.steps[0]"
    assert "undefined variable 'topic'\n    Research {{topic}}\n" in payload["error"]
    status, out, _ = await _run(TEAM, output="json", tasks=["topic=Go"])
    assert status == 0 and json.loads(out)["ok"] is True


async def test_output_json_on_usage_errors(tmp_path: Path) -> None:
    """Bad usage (no such workflow, an invalid document) prints a JSON object too, exit 2."""
    status, out, _ = await _run(TEAM, output="json", workflow="nope")
    assert status == 2
    payload = json.loads(out)
    assert (payload["ok"], payload["error_class"]) == (False, "usage_error")
    assert "has no workflow 'nope'" in payload["error"]
    broken = tmp_path / "broken.vega.yaml"
    broken.write_text("agents: [\n")
    status, out, _ = await _run(broken, output="json")
    assert status == 2
    assert json.loads(out)["error_class"] == "invalid_document"


# -- 7. redaction ------------------------------------------------------------------------------


async def test_every_output_line_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret (an environment variable named like a key) that reaches a result, the
    progress lines, an error or --output json is printed as ***."""
    secret = "hunter2-very-secret-value"
    monkeypatch.setenv("VEGA_TEST_API_KEY", secret)
    status, out, err = await _run(TEAM, tasks=[f"topic={secret}"])
    assert status == 0
    assert secret not in out + err
    assert out == "[writer] Summarise: [researcher] Research ***\n"
    status, out, err = await _run(TEAM, tasks=[f"topic={secret}"], output="json")
    assert secret not in out + err
    assert json.loads(out)["variables"]["topic"] == "***"
    status, out, err = await _run(TEAM, tasks=[f"task={secret}"], output="json")
    assert status == 1
    assert secret not in out + err


# -- 8. vega-trio help ---------------------------------------------------------------------------


def test_help_command() -> None:
    """`vega-trio help` is `--help`; `vega-trio help run` is `run --help`; an unknown
    command exits 2 with a suggestion."""
    runner = CliRunner()
    top = runner.invoke(main, ["help"])
    assert top.exit_code == 0
    assert top.output == runner.invoke(main, ["--help"]).output
    sub = runner.invoke(main, ["help", "run"])
    assert sub.exit_code == 0
    assert sub.output == runner.invoke(main, ["run", "--help"]).output
    wrong = runner.invoke(main, ["help", "rnu"])
    assert wrong.exit_code == 2
    assert "no command 'rnu'; did you mean 'run'?" in wrong.output


# -- 9. no LLM and no key: fails at spawn --------------------------------------------------------


def _without_anthropic_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    # NOTE: the SDK also reads an active profile from its config dir under the home.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


async def test_spawn_without_llm_or_key_fails_at_spawn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """open_orchestrator() with no llm= and no Anthropic credential: spawn raises an
    authentication LLMError saying what to set; nothing is sent to any server."""
    _without_anthropic_credentials(monkeypatch, tmp_path)
    async with open_fake_anthropic_server() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        async with vega_trio.open_orchestrator() as orch:
            with pytest.raises(LLMError) as caught:
                await orch.spawn(Agent(name="helper", system="You help."))
    assert caught.value.error_class == "authentication"
    message = str(caught.value)
    assert "cannot spawn agent 'helper'" in message
    for what in ("ANTHROPIC_API_KEY", "llm=", "ScriptedLLM", "--llm scripted"):
        assert what in message
    assert server.requests == []


async def test_spawn_with_a_key_is_not_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With ANTHROPIC_API_KEY set, the orchestrator's own backend spawns and answers."""
    _without_anthropic_credentials(monkeypatch, tmp_path)
    async with open_fake_anthropic_server() as server:
        server.enqueue(FakeResponse.text("hi"))
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        async with vega_trio.open_orchestrator() as orch:
            proc = await orch.spawn(Agent(name="helper", system="You help."))
            with trio.fail_after(LIMIT):
                assert await proc.send("hello") == "hi"


async def test_cli_anthropic_without_key_exits_2_before_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`run --llm anthropic` with no key exits 2 naming ANTHROPIC_API_KEY and --llm scripted;
    no step starts and no request is sent."""
    _without_anthropic_credentials(monkeypatch, tmp_path)
    async with open_fake_anthropic_server() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        status, out, err = await _run(TEAM, tasks=["topic=Go"], llm="anthropic")
    assert (status, out) == (2, "")
    assert err.splitlines()[-1] == (
        "vega-trio: error: the anthropic backend has no credentials: set ANTHROPIC_API_KEY "
        "(or ANTHROPIC_AUTH_TOKEN), or run offline with --llm scripted"
    )
    assert "▶" not in err
    assert server.requests == []


async def test_repl_anthropic_without_key_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`repl --llm anthropic` with no key exits 2 with the same message, before a prompt."""
    from vega_trio._cli import repl_command

    _without_anthropic_credentials(monkeypatch, tmp_path)
    stdin = trio.wrap_file(io.StringIO("Hello\n"))
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(LIMIT):
        status = await repl_command(
            TEAM, llm="anthropic", read_line=stdin.readline, interactive=False, out=out, err=err
        )
    assert (status, out.getvalue()) == (2, "")
    assert "no credentials: set ANTHROPIC_API_KEY" in err.getvalue()
