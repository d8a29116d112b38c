"""The one process-group runner behind run_command and exec tools: kill, cap, environment."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from vega_trio.tools import (
    DeclarativeTool,
    ExecImplementation,
    Sandbox,
    _subprocess,
    run_in_sandbox,
)
from vega_trio.tools._subprocess import GroupCommand, run_process_group

pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="process groups"),
    pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs /proc"),
]

DEADLINE = 20
PYTHON = sys.executable
ENV = {"PATH": os.environ.get("PATH") or os.defpath}

# The command starts a grandchild (same group), writes its own pid and the grandchild's, then
# waits for it; the last line opens a FIFO, which returns once the test reads it.
SPAWN_AND_WAIT = (
    "import os, subprocess, sys; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "open('pids', 'w').write(f'{os.getpid()} {child.pid}'); "
    "open('ready', 'w').write('go'); "
    "child.wait()"
)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def _wait_until_gone(pid: int) -> None:
    # A killed grandchild is reaped by init; poll /proc until it is gone (bounded): an
    # unrelated process's death is not an event we can wait on.
    with trio.fail_after(5):
        while _running(pid):  # noqa: ASYNC110
            await trio.sleep(0.01)


async def _run_command_tool(directory: pathlib.Path) -> Any:
    return await run_in_sandbox(Sandbox(directory), [PYTHON, "-c", SPAWN_AND_WAIT])


async def _exec_tool(directory: pathlib.Path) -> Any:
    tool = DeclarativeTool(
        name="spawn",
        params=[],
        implementation=ExecImplementation(
            command=[PYTHON, "-c", SPAWN_AND_WAIT], cwd=directory, timeout=None
        ),
    ).to_tool()
    return await tool.invoke({})


@pytest.mark.parametrize("call", [_run_command_tool, _exec_tool], ids=["run_command", "exec"])
async def test_cancelling_either_tool_kills_the_group_through_the_shared_runner(
    call: Callable[[pathlib.Path], Awaitable[Any]],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both tools kill the command and its grandchild on cancellation via the one runner."""
    killed: list[int] = []
    real_kill = _subprocess._kill_group

    def spy(pgid: int) -> None:
        killed.append(pgid)
        real_kill(pgid)

    monkeypatch.setattr(_subprocess, "_kill_group", spy)
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, tmp_path)
            # Reading the FIFO returns once the command has written its pid file.
            said = await trio.to_thread.run_sync(ready.read_text, abandon_on_cancel=True)
            assert said == "go"
            nursery.cancel_scope.cancel(reason="test: the agent was stopped")
        child, grandchild = map(int, (tmp_path / "pids").read_text().split())
        await _wait_until_gone(child)
        await _wait_until_gone(grandchild)
    assert killed and set(killed) == {child}


async def test_timeout_kills_the_group_and_is_reported() -> None:
    """A command over its timeout is killed with SIGKILL, grandchild too, and says so."""
    script = "sleep 100 & echo $!; wait"
    with trio.fail_after(DEADLINE):
        result = await run_process_group(
            GroupCommand(argv=("sh", "-c", script), env=ENV, timeout=0.5, keep_head=1000)
        )
        await _wait_until_gone(int(result.stdout.head))
    assert result.timed_out
    assert result.exit_code == -signal.SIGKILL
    assert not result.output_incomplete


async def test_output_keeps_head_and_tail_and_counts_the_rest() -> None:
    """Each stream keeps its first and last bytes; the bytes in between are only counted."""
    script = "import sys; sys.stdout.write('H' * 10 + 'x' * 1000 + 'T' * 5); sys.stderr.write('e')"
    with trio.fail_after(DEADLINE):
        result = await run_process_group(
            GroupCommand(argv=(PYTHON, "-c", script), env=ENV, keep_head=10, keep_tail=5)
        )
    assert (result.stdout.head, result.stdout.tail) == (b"H" * 10, b"T" * 5)
    assert (result.stdout.total, result.stdout.omitted) == (1015, 1000)
    assert (result.stderr.head, result.stderr.omitted) == (b"e", 0)
    assert result.exit_code == 0


async def test_merged_stderr_arrives_in_stdout_in_order() -> None:
    """With merge_stderr both streams share one pipe and stderr stays empty."""
    script = (
        "import sys; print('one', flush=True); "
        "sys.stderr.write('two\\n'); sys.stderr.flush(); print('three')"
    )
    with trio.fail_after(DEADLINE):
        result = await run_process_group(
            GroupCommand(argv=(PYTHON, "-c", script), env=ENV, keep_head=1000, merge_stderr=True)
        )
    assert result.stdout.head == b"one\ntwo\nthree\n"
    assert result.stderr.total == 0


async def test_environment_is_exactly_the_one_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the parent's environment is inherited, secrets included."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-leaked")
    script = "import json, os; print(json.dumps(sorted(os.environ)))"
    with trio.fail_after(DEADLINE):
        result = await run_process_group(
            GroupCommand(argv=(PYTHON, "-c", script), env={**ENV, "ONLY": "1"}, keep_head=1000)
        )
    # NOTE: the C runtime may add LC_CTYPE for Python's UTF-8 mode; nothing else appears.
    names = set(json.loads(result.stdout.head)) - {"LC_CTYPE"}
    assert names == {"PATH", "ONLY"}


async def test_a_process_that_left_the_group_does_not_hang_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A setsid escapee holding the pipe is abandoned after the drain grace and flagged."""
    monkeypatch.setattr(_subprocess, "_DRAIN_GRACE", 0.2)
    script = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid(); print(os.getpid(), flush=True); time.sleep(60)\n"
        "else:\n"
        "    time.sleep(0.2)\n"
    )
    with trio.fail_after(DEADLINE):
        result = await run_process_group(
            GroupCommand(argv=(PYTHON, "-c", script), env=ENV, keep_head=1000)
        )
    escapee = int(result.stdout.head)
    os.kill(escapee, signal.SIGKILL)
    assert result.exit_code == 0
    assert result.output_incomplete
    assert not result.timed_out
