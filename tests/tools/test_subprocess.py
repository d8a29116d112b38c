"""The one process runner behind run_command and exec tools: kill everything, cap, environment,
resource limits."""

from __future__ import annotations

import functools
import json
import os
import pathlib
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from vega_trio.dsl import load_document
from vega_trio.dsl._build import build_tool
from vega_trio.tools import (
    CommandPolicy,
    DeclarativeTool,
    ExecImplementation,
    ExecToolError,
    ResourceLimits,
    Sandbox,
    ToolTimeout,
    _subprocess,
    builtin_tools,
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
    assert child in killed


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


# The command forks a child that starts a new session (so it leaves the command's session and
# process group) and forks the grandchild, which ignores SIGTERM, writes its pid to the file
# argv[1] and sleeps; the child exits, so the grandchild is orphaned. The command waits for the
# pid file, then exits at once (argv[2] == "exit") or sleeps.
ESCAPEE = r"""
import os, signal, sys, time
pid_file, then = sys.argv[1], sys.argv[2]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(pid_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pid_file + ".tmp", pid_file)
        time.sleep(600)
    os._exit(0)
os.wait()
while not os.path.exists(pid_file):
    time.sleep(0.01)
print("ready", flush=True)
if then != "exit":
    time.sleep(600)
"""


def _state(pid: int) -> str | None:
    """The process state letter of ``pid`` (``Z`` for a zombie), ``None`` once it is gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _assert_gone(pid_file: pathlib.Path) -> None:
    """The escapee is neither running nor a zombie: it was killed *and* reaped (no polling:
    the runner returns only after that). A survivor (old code) is killed here."""
    pid = int(pid_file.read_text())
    state = _state(pid)
    if state is not None and state != "Z":
        os.kill(pid, signal.SIGKILL)
    assert state is None, f"the setsid grandchild {pid} is left behind (state {state})"


async def _wait_for(path: pathlib.Path) -> None:
    # The grandchild's pid file appears in another process; poll for it (bounded).
    with trio.fail_after(DEADLINE):
        while not await trio.Path(path).exists():  # noqa: ASYNC110
            await trio.sleep(0.01)


def _escapee_argv(pid_file: pathlib.Path, then: str) -> list[str]:
    return [PYTHON, "-c", ESCAPEE, str(pid_file), then]


async def test_setsid_grandchild_dies_when_the_command_exits(tmp_path: pathlib.Path) -> None:
    """A double-forked, setsid, SIGTERM-ignoring grandchild dies (and is reaped) as soon as
    the command exits, so the output is complete and nothing outlives the call."""
    pid_file = tmp_path / "grandchild.pid"
    with trio.fail_after(DEADLINE):
        result = await run_process_group(
            GroupCommand(argv=_escapee_argv(pid_file, "exit"), env=ENV, keep_head=1000)
        )
    _assert_gone(pid_file)
    assert result.exit_code == 0
    assert result.stdout.head == b"ready\n"
    assert not result.output_incomplete


async def _group_timeout(pid_file: pathlib.Path, cwd: pathlib.Path) -> None:
    result = await run_process_group(
        GroupCommand(argv=_escapee_argv(pid_file, "sleep"), env=ENV, keep_head=1000, timeout=1)
    )
    assert result.timed_out and result.exit_code == -signal.SIGKILL


async def _exec_tool_timeout(pid_file: pathlib.Path, cwd: pathlib.Path) -> None:
    tool = DeclarativeTool(
        name="escape",
        implementation=ExecImplementation(command=_escapee_argv(pid_file, "sleep"), timeout=1),
    ).to_tool()
    with pytest.raises(ToolTimeout):
        await tool.invoke({})


async def _run_command_timeout(pid_file: pathlib.Path, cwd: pathlib.Path) -> None:
    result = await run_in_sandbox(
        Sandbox(cwd), _escapee_argv(pid_file, "sleep"), policy=CommandPolicy(timeout=1)
    )
    assert result.timed_out


@pytest.mark.slow
@pytest.mark.parametrize(
    "call",
    [_group_timeout, _exec_tool_timeout, _run_command_timeout],
    ids=["runner", "exec", "run_command"],
)
async def test_setsid_grandchild_dies_on_timeout(
    call: Callable[[pathlib.Path, pathlib.Path], Awaitable[None]], tmp_path: pathlib.Path
) -> None:
    """On timeout the setsid, SIGTERM-ignoring grandchild is killed and reaped, for the
    runner, an exec tool and run_command."""
    pid_file = tmp_path / "grandchild.pid"
    with trio.fail_after(DEADLINE):
        await call(pid_file, tmp_path)
    _assert_gone(pid_file)


async def _exec_tool_call(pid_file: pathlib.Path, cwd: pathlib.Path) -> None:
    tool = DeclarativeTool(
        name="escape",
        implementation=ExecImplementation(command=_escapee_argv(pid_file, "sleep"), timeout=None),
    ).to_tool()
    await tool.invoke({})


async def _run_command_call(pid_file: pathlib.Path, cwd: pathlib.Path) -> None:
    await run_in_sandbox(Sandbox(cwd), _escapee_argv(pid_file, "sleep"))


@pytest.mark.parametrize("call", [_exec_tool_call, _run_command_call], ids=["exec", "run_command"])
async def test_setsid_grandchild_dies_on_cancellation(
    call: Callable[[pathlib.Path, pathlib.Path], Awaitable[None]], tmp_path: pathlib.Path
) -> None:
    """When the caller is cancelled the setsid, SIGTERM-ignoring grandchild is killed and
    reaped before the cancellation completes."""
    pid_file = tmp_path / "grandchild.pid"
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, pid_file, tmp_path)
            await _wait_for(pid_file)
            nursery.cancel_scope.cancel(reason="test: the agent was stopped")
    _assert_gone(pid_file)


@pytest.mark.slow
async def test_the_command_dies_with_its_caller(tmp_path: pathlib.Path) -> None:
    """If the process running vega-trio is killed outright, the reaper sees its control pipe
    close and kills the command's whole tree (setsid grandchild included)."""
    pid_file = tmp_path / "grandchild.pid"
    host = (
        "import sys, trio\n"
        "from vega_trio.tools._subprocess import GroupCommand, run_process_group\n"
        f"argv = {_escapee_argv(pid_file, 'sleep')!r}\n"
        "trio.run(run_process_group, GroupCommand(argv=argv, env={}, keep_head=10))\n"
    )
    env = {**ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(trio.run_process, [PYTHON, "-c", host], env=env, check=False)
        )
        await _wait_for(pid_file)
        process.kill()
    pid = int(pid_file.read_text())
    # The reaper needs a moment to notice; poll (bounded), then check (killing a survivor).
    with trio.move_on_after(DEADLINE):
        while _state(pid) is not None:  # noqa: ASYNC110
            await trio.sleep(0.01)
    _assert_gone(pid_file)


async def test_output_held_open_outside_the_tree_does_not_hang_the_call(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process the reaper can't kill (here: the test, handed the output pipe over a Unix
    socket) keeps the pipe open: reading stops after the drain grace and says so."""
    monkeypatch.setattr(_subprocess, "_DRAIN_GRACE", 0.2)
    path = str(tmp_path / "s")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    script = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
        "socket.send_fds(s, [b'x'], [1]); s.recv(1); print('sent', flush=True)"
    )
    received: list[int] = []

    def take_the_pipe() -> None:
        connection, _ = listener.accept()
        with connection:
            received.extend(socket.recv_fds(connection, 1, 1)[1])
            connection.send(b"k")

    try:
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, take_the_pipe)
                result = await run_process_group(
                    GroupCommand(argv=(PYTHON, "-c", script, path), env=ENV, keep_head=1000)
                )
    finally:
        listener.close()
        for fd in received:
            os.close(fd)
    assert result.exit_code == 0
    assert result.stdout.head == b"sent\n"
    assert result.output_incomplete


ALLOCATE_3_GIB = "b = bytearray(3 * 1024**3); print('allocated')"


async def test_exec_tools_have_run_commands_default_limits(tmp_path: pathlib.Path) -> None:
    """A 3 GiB allocation fails in an exec tool under the default limits (those of
    run_command), and the tool's limits are run_command's."""
    assert ExecImplementation(command="true").limits == CommandPolicy().limits
    tool = DeclarativeTool(
        name="alloc", implementation=ExecImplementation(command=[PYTHON, "-c", ALLOCATE_3_GIB])
    ).to_tool()
    with trio.fail_after(DEADLINE), pytest.raises(ExecToolError) as caught:
        await tool.invoke({})
    assert "MemoryError" in caught.value.output


async def test_run_command_fails_a_3_gib_allocation_by_default(tmp_path: pathlib.Path) -> None:
    """run_command's default memory limit stops a 3 GiB allocation."""
    tools = builtin_tools(Sandbox(tmp_path), include=["run_command"])
    with trio.fail_after(DEADLINE):
        text = await tools.get("run_command").invoke({"command": [PYTHON, "-c", ALLOCATE_3_GIB]})
    assert "exit code: 1" in text
    assert "MemoryError" in text


OPEN_FILES = (
    "import sys\n"
    "try:\n"
    "    files = [open('/dev/null') for _ in range(64)]\n"
    "except OSError as e:\n"
    "    print('EMFILE', e.errno)\n"
    "else:\n"
    "    print('opened', len(files))\n"
)
MEMORY_512_MIB = "b = bytearray(512 * 1024**2); print('allocated')"


def _yaml_tool(code: str, limits: str, tmp_path: pathlib.Path) -> Any:
    limits_line = f"      limits: {limits}\n" if limits else ""
    document = load_document(
        "agents:\n  a: {}\n"
        "tools:\n"
        "  probe:\n"
        "    implementation:\n"
        "      type: exec\n"
        f"      command: {json.dumps(shlex.join([PYTHON, '-c', code]))}\n" + limits_line
    )
    return build_tool(document.tools[0], base_dir=tmp_path)


@pytest.mark.parametrize(
    ("code", "limits", "expected"),
    [
        (MEMORY_512_MIB, "", "allocated"),
        (MEMORY_512_MIB, "{memory: 256MiB}", "MemoryError"),
        (OPEN_FILES, "", "opened 64"),
        (OPEN_FILES, "{open_files: 32}", "EMFILE 24"),
    ],
)
async def test_yaml_limits_override_the_defaults_per_tool(
    code: str, limits: str, expected: str, tmp_path: pathlib.Path
) -> None:
    """`limits:` in a YAML exec tool overrides memory and open files for that tool only."""
    tool = _yaml_tool(code, limits, tmp_path)
    with trio.fail_after(DEADLINE):
        try:
            output = await tool.invoke({})
        except ExecToolError as failure:
            output = failure.output
    assert expected in output


@pytest.mark.slow
async def test_yaml_cpu_limit_stops_a_busy_loop(tmp_path: pathlib.Path) -> None:
    """`limits: {cpu: 1s}` kills a busy loop with SIGXCPU."""
    tool = _yaml_tool("while True: pass", "{cpu: 1s}", tmp_path)
    with trio.fail_after(DEADLINE), pytest.raises(ExecToolError) as caught:
        await tool.invoke({})
    assert caught.value.exit_code == -signal.SIGXCPU


async def test_run_command_limits_open_files(tmp_path: pathlib.Path) -> None:
    """run_command's ResourceLimits has the open-files limit too (RLIMIT_NOFILE)."""
    policy = CommandPolicy(limits=ResourceLimits(max_open_files=32))
    with trio.fail_after(DEADLINE):
        result = await run_in_sandbox(Sandbox(tmp_path), [PYTHON, "-c", OPEN_FILES], policy=policy)
    assert result.stdout == "EMFILE 24\n"


async def test_start_failures_cross_the_reaper_with_their_type(tmp_path: pathlib.Path) -> None:
    """A program that doesn't exist or isn't executable raises FileNotFoundError or
    PermissionError from the runner, as if it had been started directly."""
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    with trio.fail_after(DEADLINE):
        with pytest.raises(FileNotFoundError):
            await run_process_group(
                GroupCommand(argv=("no-such-program-vega",), env=ENV, keep_head=10)
            )
        with pytest.raises(PermissionError):
            await run_process_group(GroupCommand(argv=(str(script),), env=ENV, keep_head=10))
