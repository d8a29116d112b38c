"""The runnable examples in ``examples/``: each runs offline and prints what it promises.

Every example is run as a user would run it, in a subprocess, with ``VEGA_LLM=scripted`` and
no ``ANTHROPIC_*`` variables, and with warnings turned into errors. A separate test takes
the real-model branch against the local fake Anthropic API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from vega_trio.testing import FakeResponse, open_fake_anthropic_server

# NOTE: every test here starts a fresh interpreter (subprocess); the fast tier skips them.
pytestmark = pytest.mark.slow

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(path.stem for path in EXAMPLES_DIR.glob("*.py"))
TIMEOUT = 120.0  # seconds for all examples together (importing the SDK alone takes seconds)
SCRIPTED_NOTICE = "(offline: replies are scripted, not from a model"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.pop("VEGA_LLM", None)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def _command(name: str) -> list[str]:
    return [sys.executable, "-W", "error", str(EXAMPLES_DIR / f"{name}.py")]


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every example, run offline; in parallel, since each spends seconds on imports."""
    env = _env(VEGA_LLM="scripted")
    procs = {
        name: subprocess.Popen(
            _command(name),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        for name in EXAMPLES
    }
    deadline = time.monotonic() + TIMEOUT
    results = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _output(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, f"{run.args[-1]} exited with {run.returncode}:\n{run.stderr}"
    assert run.stderr == "", run.stderr
    return run.stdout


def test_examples_found() -> None:
    """The four documented examples exist (the glob below is not silently empty)."""
    assert {"hello", "streaming", "fanout", "tools"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_offline(runs: dict[str, subprocess.CompletedProcess[str]], name: str) -> None:
    """Every example exits 0 offline, silently on stderr, and says its replies are scripted."""
    assert _output(runs[name]).startswith(SCRIPTED_NOTICE)


def test_hello(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """hello.py prints the reply, the completed status and the token/cost metrics."""
    out = _output(runs["hello"])
    assert "assistant: Hello! I'm your assistant." in out
    assert "process status: completed (exit reason: normal)" in out
    assert re.search(
        r"metrics: 1 LLM call\(s\), \d+ input \+ \d+ output tokens, cost \$0\.\d{6}", out
    )


def test_streaming(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """streaming.py shows text deltas, the tool panels, the done metrics and plain chunks."""
    out = _output(runs["streaming"])
    assert 'Let me add those.\n[tool add({"a": 19, "b": 23})]\n' in out
    assert re.search(r"\[done in \d+ ms → 42\]\n19 \+ 23 = 42\.\n", out)
    assert re.search(r"\[metrics: \d+ input \+ \d+ output tokens, \$0\.\d{6}, \d+ ms\]", out)
    assert "--- send_stream ---\nStructured concurrency means every task lives" in out


def test_fanout(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """fanout.py gathers three replies, survives the timed-out one, beats sequential time,
    fans in through the coordinator and prints the spawn tree."""
    out = _output(runs["fanout"])
    for topic in ("nurseries", "cancel scopes", "memory channels"):
        assert re.search(rf"{topic} \(\d\.\d s\): [A-Z]", out), topic
    assert re.search(r"essay \(\d\.\d s\): FAILED \(SendTimeout\)", out)
    times = re.search(r"wall time (\d+\.\d) s; one after another it would take ~(\d+\.\d) s", out)
    assert times is not None
    assert float(times[1]) < float(times[2])
    assert "coordinator: Trio in short:" in out
    tree = out.split("spawn tree:\n", 1)[1].splitlines()
    assert tree[0].startswith("  coordinator p-")
    assert [line.split()[0] for line in tree[1:]] == ["researcher"] * 3 + ["essayist"]
    assert all(line.startswith("      ") and "<- fan-out" in line for line in tree[1:])


def test_supervision(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """supervision.py: the flaky worker restarts in place and every caller gets its answer;
    the fragile tree replaces its worker, callers see clear errors, and it gives up."""
    out = _output(runs["supervision"])
    for i in range(1, 7):
        assert f"   flaky #{i}: done: Say 'task {i}'." in out
    assert "flaky: 2 restarts in place, tree restarts: 0" in out
    assert out.count("error (overloaded): injected: model overloaded") == 3
    assert "fragile tree: gave up=True, exit reason=shutdown" in out


def test_tools(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """tools.py prints the schemas, logs each call (sync one in a thread), and the model
    recovers from the tool that raised."""
    out = _output(runs["tools"])
    for name in ("get_weather", "convert_currency", "whoami"):
        assert f"\n  {name}: " in out, name
    assert '"enum": ["celsius", "fahrenheit"]' in out
    assert "'agent': 'helper', 'worker_thread': True}" in out
    assert "'to_code': 'BTC'} raised ValueError: no exchange rate" in out
    assert "'to_code': 'EUR'} -> 92.0" in out
    assert "tool calls: 4, LLM rounds: 3" in out
    assert "is_error results the model saw: ['Error: ValueError: no exchange rate" in out


async def test_real_model_branch_against_fake_api() -> None:
    """With ANTHROPIC_API_KEY set, streaming.py streams from the Anthropic wire API through
    AnthropicLLM (here the local fake server) and prints no scripted notice."""
    async with open_fake_anthropic_server() as server:
        server.enqueue(
            FakeResponse.tool_use("add", {"a": 2, "b": 3}, fragments=3, text_before="Adding."),
            FakeResponse.text("2 + 3 = 5.", chunks=3),
            FakeResponse.text("Tasks live in nurseries.", chunks=3),
        )
        env = _env(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=server.base_url)
        with trio.fail_after(TIMEOUT):
            run = await trio.run_process(
                _command("streaming"),
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    out, err = run.stdout.decode(), run.stderr.decode()
    assert run.returncode == 0, err
    assert SCRIPTED_NOTICE not in out
    assert '[tool add({"a": 2, "b": 3})]' in out
    assert "2 + 3 = 5." in out
    assert "Tasks live in nurseries." in out
    assert [request.stream for request in server.requests] == [True, True, True]
