"""Built-in tools: file tools confined to the sandbox, and run_command's process control."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import ToolError
from vega_trio.tools import (
    BUILTIN_TOOL_NAMES,
    CommandPolicy,
    ResourceLimits,
    Sandbox,
    SandboxViolation,
    ToolCall,
    Tools,
    ToolTimeout,
    builtin_tools,
    run_in_sandbox,
)

# NOTE: subprocess tests run in real time (no MockClock) and each stays well under 2 s;
# the deadline only keeps a broken kill from hanging the suite.
PROCESS_DEADLINE = 5


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """A sandbox at tmp/sandbox, with tmp/outside/secret.txt next to it."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    return Sandbox.create(tmp_path / "sandbox")


async def run(tools: Tools, name: str, **arguments: Any) -> str:
    return await tools.execute(ToolCall(id="toolu_1", name=name, arguments=arguments))


async def wait_until_dead(pid: int) -> None:
    """Return once process ``pid`` has exited (a zombie counts as exited)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:  # not Linux: poll with signal 0, under the caller's deadline
        while _exists(pid):  # noqa: ASYNC110 - no event exists for another process's exit
            await trio.sleep(0.01)
        return
    try:
        pidfd = pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)  # readable once the process has exited
    finally:
        os.close(pidfd)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- registry ------------------------------------------------------------------------------


def test_all_builtins_are_registered_in_order(sandbox: Sandbox) -> None:
    """builtin_tools registers the five built-ins, in BUILTIN_TOOL_NAMES order."""
    tools = builtin_tools(sandbox)
    assert tools.names() == BUILTIN_TOOL_NAMES
    assert BUILTIN_TOOL_NAMES == (
        "read_file",
        "write_file",
        "append_file",
        "list_files",
        "run_command",
    )
    for schema in tools.schemas():
        assert "sandbox" in schema.description


def test_include_picks_a_subset_and_rejects_unknown_names(sandbox: Sandbox) -> None:
    """include= gives a read-only set; an unknown name is an error listing the real ones."""
    tools = builtin_tools(sandbox, include=["list_files", "read_file"])
    assert tools.names() == ("read_file", "list_files")
    with pytest.raises(ValueError, match=r"'delete_file'.*'read_file'"):
        builtin_tools(sandbox, include=["read_file", "delete_file"])


def test_limits_must_be_positive(sandbox: Sandbox) -> None:
    """Non-positive caps and timeouts are configuration errors naming the field."""
    with pytest.raises(ValueError, match="max_read_bytes"):
        builtin_tools(sandbox, max_read_bytes=0)
    with pytest.raises(ValueError, match="timeout"):
        CommandPolicy(timeout=0)
    with pytest.raises(ValueError, match="cpu_seconds"):
        ResourceLimits(cpu_seconds=-1)
    with pytest.raises(ValueError, match="environment variable name"):
        CommandPolicy(env={"A=B": "x"})


# -- file tools ----------------------------------------------------------------------------


async def test_write_read_append_round_trip(sandbox: Sandbox) -> None:
    """write_file creates parent dirs, append_file adds, read_file returns the UTF-8 text."""
    tools = builtin_tools(sandbox)
    assert await run(tools, "write_file", path="notes/day/1.txt", content="héllo\n") == (
        "wrote 7 bytes to 'notes/day/1.txt'"
    )
    assert (sandbox.root / "notes" / "day" / "1.txt").read_text("utf-8") == "héllo\n"
    reply = await run(tools, "append_file", path="notes/day/1.txt", content="wörld\n")
    assert reply == "appended 7 bytes to 'notes/day/1.txt' (now 14 bytes)"
    assert await run(tools, "read_file", path="notes/day/1.txt") == "héllo\nwörld\n"
    await run(tools, "write_file", path="notes/day/1.txt", content="new")
    assert await run(tools, "read_file", path="./notes/day/../day/1.txt") == "new"


async def test_append_creates_the_file_and_its_directories(sandbox: Sandbox) -> None:
    """append_file on a missing file creates it (and missing directories)."""
    tools = builtin_tools(sandbox)
    await run(tools, "append_file", path="log/run.txt", content="one\n")
    await run(tools, "append_file", path="log/run.txt", content="two\n")
    assert (sandbox.root / "log" / "run.txt").read_text() == "one\ntwo\n"


ESCAPES = [
    ("read-dotdot", "read_file", {"path": "../outside/secret.txt"}),
    ("read-absolute", "read_file", {"path": "/etc/passwd"}),
    ("read-symlink-out", "read_file", {"path": "out/secret.txt"}),
    ("write-dotdot", "write_file", {"path": "../outside/new.txt", "content": "x"}),
    ("write-symlink-dir", "write_file", {"path": "out/new.txt", "content": "x"}),
    ("write-dangling-link", "write_file", {"path": "dangling", "content": "x"}),
    ("write-new-dirs-out", "write_file", {"path": "out/a/b/new.txt", "content": "x"}),
    ("append-symlink-file", "append_file", {"path": "secret_link", "content": "x"}),
    ("append-sibling", "append_file", {"path": "../sandbox-evil/x", "content": "x"}),
    ("list-dotdot", "list_files", {"path": ".."}),
    ("list-symlink-dir", "list_files", {"path": "out"}),
    ("read-nul", "read_file", {"path": "a\x00b"}),
    ("write-long", "write_file", {"path": "d/" * 3000 + "f", "content": "x"}),
    ("run-cwd-out", "run_command", {"command": ["pwd"], "cwd": "out"}),
]


@pytest.mark.parametrize(
    ("tool", "arguments"), [(t, a) for _, t, a in ESCAPES], ids=[i for i, _, _ in ESCAPES]
)
async def test_escapes_through_the_tools_are_refused(
    sandbox: Sandbox, tool: str, arguments: dict[str, Any]
) -> None:
    """Every tool refuses paths outside the sandbox and touches nothing there."""
    outside = sandbox.root.parent / "outside"
    evil = sandbox.root.parent / "sandbox-evil"
    evil.mkdir()
    os.symlink(outside, sandbox.root / "out")
    os.symlink(outside / "secret.txt", sandbox.root / "secret_link")
    os.symlink(outside / "dangling.txt", sandbox.root / "dangling")
    before = sorted(p.name for p in outside.rglob("*"))
    tools = builtin_tools(sandbox)
    with trio.fail_after(PROCESS_DEADLINE):
        with pytest.raises(SandboxViolation, match="sandbox root"):
            await run(tools, tool, **arguments)
    assert sorted(p.name for p in outside.rglob("*")) == before
    assert (outside / "secret.txt").read_text() == "secret"
    assert not any(evil.iterdir())


async def test_links_inside_the_sandbox_work_and_results_name_the_real_path(
    sandbox: Sandbox,
) -> None:
    """Links that stay inside are followed (walked), and results name where files really are."""
    (sandbox.root / "real").mkdir()
    os.symlink("real", sandbox.root / "alias")
    tools = builtin_tools(sandbox)
    assert await run(tools, "write_file", path="alias/new/x.txt", content="x") == (
        "wrote 1 bytes to 'real/new/x.txt'"
    )
    assert await run(tools, "read_file", path="alias/new/x.txt") == "x"
    assert await run(tools, "list_files", path="alias", recursive=True) == (
        "real/new/\nreal/new/x.txt"
    )
    with trio.fail_after(PROCESS_DEADLINE):
        text = await run(tools, "run_command", command=["pwd"], cwd="alias/new")
    assert f"stdout:\n{sandbox.root / 'real' / 'new'}\n" in text


async def test_a_subdirectory_swapped_for_a_link_while_listing_is_not_listed(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """list_files descends only into what it saw as a directory: one swapped for a link to the
    outside between the scan and the descent is reported, never listed."""
    from vega_trio.tools import _builtins

    outside = sandbox.root.parent / "outside"
    (sandbox.root / "sub").mkdir()
    (sandbox.root / "sub" / "inside.txt").write_text("")
    real_open_beneath = _builtins.open_beneath

    def swap_then_open(dir_fd: int, names: Any, flags: int) -> int:
        if list(names) == ["sub"] and not (sandbox.root / "sub").is_symlink():
            os.rename(sandbox.root / "sub", sandbox.root / "moved")
            os.symlink(outside, sandbox.root / "sub")
        return real_open_beneath(dir_fd, names, flags)

    monkeypatch.setattr(_builtins, "open_beneath", swap_then_open)
    text = await run(builtin_tools(sandbox), "list_files", recursive=True)
    assert "secret.txt" not in text
    assert "[could not list 'sub': it changed while it was being listed" in text


async def test_a_file_in_place_of_the_temporary_directory_is_a_clear_error(
    sandbox: Sandbox,
) -> None:
    """run_command says what is wrong when '.tmp' (its TMPDIR) is a file."""
    (sandbox.root / ".tmp").write_text("")
    with pytest.raises(ToolError, match=r"temporary directory '\.tmp'.*remove or rename"):
        await run(builtin_tools(sandbox), "run_command", command=["true"])


async def test_run_command_cwd_swapped_after_the_check_stays_inside(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command starts in the directory that was checked, even if its path is swapped for
    a link to the outside right after the check."""
    from vega_trio.tools import _builtins

    outside = sandbox.root.parent / "outside"
    (sandbox.root / "work").mkdir()
    (sandbox.root / "work" / "inside.txt").write_text("")
    real_prepare = _builtins._prepare_workdir

    def prepare_then_swap(box: Sandbox, cwd: str) -> Any:
        prepared = real_prepare(box, cwd)
        os.rename(sandbox.root / "work", sandbox.root / "moved")
        os.symlink(outside, sandbox.root / "work")
        return prepared

    monkeypatch.setattr(_builtins, "_prepare_workdir", prepare_then_swap)
    with trio.fail_after(PROCESS_DEADLINE):
        text = await run(builtin_tools(sandbox), "run_command", command=["ls"], cwd="work")
    assert "secret.txt" not in text
    assert "stdout:\ninside.txt" in text


async def test_read_limit_is_a_clear_error(sandbox: Sandbox) -> None:
    """A file over max_read_bytes is refused with its size, the limit, and what to do."""
    (sandbox.root / "big.txt").write_text("x" * 101)
    (sandbox.root / "ok.txt").write_text("x" * 100)
    tools = builtin_tools(sandbox, max_read_bytes=100)
    assert await run(tools, "read_file", path="ok.txt") == "x" * 100
    with pytest.raises(ToolError, match=r"101 bytes, more than the 100-byte read limit.*head"):
        await run(tools, "read_file", path="big.txt")


async def test_write_limit_is_a_clear_error(sandbox: Sandbox) -> None:
    """Content over max_write_bytes (in UTF-8 bytes) is refused and nothing is written."""
    tools = builtin_tools(sandbox, max_write_bytes=10)
    with pytest.raises(ToolError, match="11 bytes, more than the 10-byte write limit"):
        await run(tools, "write_file", path="a.txt", content="ééééé" + "x")
    with pytest.raises(ToolError, match="write limit"):
        await run(tools, "append_file", path="a.txt", content="x" * 11)
    assert not (sandbox.root / "a.txt").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("café".encode("latin-1"), r"not UTF-8 text \(invalid byte 0xe9 at offset 3\)"),
    ],
    ids=["nul-bytes", "latin-1"],
)
async def test_binary_and_non_utf8_files_are_clear_errors(
    sandbox: Sandbox, content: bytes, expected: str
) -> None:
    """read_file reads UTF-8 text only and says so for binary or other encodings."""
    (sandbox.root / "data.bin").write_bytes(content)
    tools = builtin_tools(sandbox)
    with pytest.raises(ToolError, match=expected):
        await run(tools, "read_file", path="data.bin")


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("read_file", {"path": "missing.txt"}, "does not exist in the sandbox; call list_files"),
        ("read_file", {"path": "folder"}, "is a directory"),
        ("write_file", {"path": "folder", "content": "x"}, "is a directory"),
        ("write_file", {"path": ".", "content": "x"}, "sandbox root directory"),
        ("write_file", {"path": "file.txt/x", "content": "x"}, "is a file, not a directory"),
        ("list_files", {"path": "file.txt"}, "is a file, not a directory"),
        ("list_files", {"path": "nope"}, "does not exist in the sandbox"),
    ],
    ids=[
        "read-missing",
        "read-dir",
        "write-dir",
        "write-root",
        "write-under-file",
        "list-file",
        "list-missing",
    ],
)
async def test_file_problems_are_tool_errors(
    sandbox: Sandbox, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    """Missing files, directories and files in the way give clear ToolErrors, not OSError."""
    (sandbox.root / "folder").mkdir()
    (sandbox.root / "file.txt").write_text("x")
    tools = builtin_tools(sandbox)
    with pytest.raises(ToolError, match=expected) as caught:
        await run(tools, tool, **arguments)
    assert not isinstance(caught.value, SandboxViolation)


async def test_list_files_flat_and_recursive(sandbox: Sandbox) -> None:
    """list_files marks dirs '/' and links '@', with paths relative to the root."""
    (sandbox.root / "src" / "pkg").mkdir(parents=True)
    (sandbox.root / "src" / "pkg" / "mod.py").write_text("")
    (sandbox.root / "README.md").write_text("")
    os.symlink(sandbox.root.parent / "outside", sandbox.root / "elsewhere")
    tools = builtin_tools(sandbox)
    assert await run(tools, "list_files") == "README.md\nelsewhere@\nsrc/"
    assert await run(tools, "list_files", path="src", recursive=True) == (
        "src/pkg/\nsrc/pkg/mod.py"
    )
    assert (await run(tools, "list_files", recursive=True)).splitlines() == [
        "README.md",
        "elsewhere@",
        "src/",
        "src/pkg/",
        "src/pkg/mod.py",
    ]
    (sandbox.root / "empty").mkdir()
    assert await run(tools, "list_files", path="empty") == "'empty' is empty"


async def test_list_files_is_bounded(sandbox: Sandbox) -> None:
    """Past max_list_entries the listing stops and says how to see the rest."""
    for i in range(3):
        (sandbox.root / f"d{i}").mkdir()
        for j in range(3):
            (sandbox.root / f"d{i}" / f"f{j}").write_text("")
    tools = builtin_tools(sandbox, max_list_entries=5)
    lines = (await run(tools, "list_files", recursive=True)).splitlines()
    assert len(lines) == 6
    assert lines[-1].startswith("[listing stopped at 5 entries; list a subdirectory")
    assert (await run(tools, "list_files")).splitlines() == ["d0/", "d1/", "d2/"]


# -- run_command ---------------------------------------------------------------------------


async def test_run_command_reports_exit_code_stdout_and_stderr(sandbox: Sandbox) -> None:
    """A failing command is a normal result: exit code, stdout and stderr, in the sandbox dir."""
    tools = builtin_tools(sandbox)
    with trio.fail_after(PROCESS_DEADLINE):
        text = await run(tools, "run_command", command=["sh", "-c", "pwd; echo oops >&2; exit 3"])
    assert text == (
        f"$ sh -c 'pwd; echo oops >&2; exit 3'\nexit code: 3\nstdout:\n{sandbox.root}\n"
        "stderr:\noops"
    )


async def test_string_command_is_split_never_run_by_a_shell(sandbox: Sandbox) -> None:
    """A string command is shlex-split: quotes group words, $VARS and ';' stay literal."""
    tools = builtin_tools(sandbox)
    with trio.fail_after(PROCESS_DEADLINE):
        text = await run(tools, "run_command", command='echo "a  b" $HOME; touch x')
    assert "stdout:\na  b $HOME; touch x\n" in text
    assert not (sandbox.root / "x").exists()


async def test_run_command_in_a_subdirectory(sandbox: Sandbox) -> None:
    """cwd is resolved inside the sandbox; a missing directory is a clear error."""
    (sandbox.root / "sub").mkdir()
    tools = builtin_tools(sandbox)
    with trio.fail_after(PROCESS_DEADLINE):
        text = await run(tools, "run_command", command=["pwd"], cwd="sub")
        assert f"stdout:\n{sandbox.root / 'sub'}\n" in text
        with pytest.raises(ToolError, match="'nope' is not a directory in the sandbox"):
            await run(tools, "run_command", command=["pwd"], cwd="nope")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], "the command is empty"),
        ("", "the command is empty"),
        ("echo 'unbalanced", "could not split the command"),
        (["echo", "a\x00b"], "NUL bytes"),
        (["no-such-program-vega"], "'no-such-program-vega' was not found"),
    ],
    ids=["empty-list", "empty-string", "bad-quotes", "nul-argument", "not-found"],
)
async def test_bad_commands_are_clear_errors(
    sandbox: Sandbox, command: list[str] | str, expected: str
) -> None:
    """Empty, unsplittable, NUL-containing and unknown commands are ToolErrors."""
    tools = builtin_tools(sandbox)
    with trio.fail_after(PROCESS_DEADLINE):
        with pytest.raises(ToolError, match=expected):
            await run(tools, "run_command", command=command)


async def test_environment_is_minimal_and_has_no_secrets(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child sees PATH, HOME=sandbox, TMPDIR inside it, and none of the parent's secrets."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-leaked")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-leaked")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-leaked")
    tools = builtin_tools(sandbox, command=CommandPolicy(env={"GREETING": "hi"}))
    with trio.fail_after(PROCESS_DEADLINE):
        text = await run(tools, "run_command", command=["env"])
    assert "leaked" not in text
    assert "API_KEY" not in text
    assert "TOKEN" not in text
    assert "SECRET" not in text
    lines = text.split("stdout:\n")[1].split("\nstderr:")[0].splitlines()
    env = dict(line.split("=", 1) for line in lines)
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "TERM", "GREETING"}
    assert env["HOME"] == str(sandbox.root)
    assert Path(env["TMPDIR"]).parent == sandbox.root
    assert env["GREETING"] == "hi"


async def test_output_is_capped_keeping_start_and_end(sandbox: Sandbox) -> None:
    """Long output keeps its head and tail with a marker counting what was left out."""
    policy = CommandPolicy(output_limit=100)
    script = "import sys; sys.stdout.write('S' + 'x' * 50000 + 'E'); sys.stderr.write('e' * 99)"
    with trio.fail_after(PROCESS_DEADLINE):
        result = await run_in_sandbox(sandbox, [sys.executable, "-c", script], policy=policy)
    assert result.exit_code == 0
    assert result.output_truncated
    assert result.stdout.startswith("S" + "x" * 49 + "\n[... 49902 bytes omitted")
    assert "the output was 50002 bytes, more than the 100-byte limit" in result.stdout
    assert result.stdout.endswith("...]\n" + "x" * 49 + "E")
    assert len(result.stdout) < 300
    assert result.stderr == "e" * 99


async def test_timeout_kills_the_whole_process_group(sandbox: Sandbox) -> None:
    """On timeout the command and its grandchildren die; the model gets a ToolTimeout."""
    tools = builtin_tools(sandbox, command=CommandPolicy(timeout=0.5))
    script = "sleep 100 & echo $! > grandchild.pid; echo started; wait"
    with trio.fail_after(PROCESS_DEADLINE):
        with pytest.raises(ToolTimeout) as caught:
            await run(tools, "run_command", command=["sh", "-c", script])
        await wait_until_dead(int((sandbox.root / "grandchild.pid").read_text()))
    message = str(caught.value)
    assert "did not finish within its 0.5 s timeout" in message
    assert "it and every process it started were killed" in message
    assert "exit code: -9 (killed by SIGKILL; timed out)" in message
    assert "stdout:\nstarted" in message
    assert caught.value.tool == "run_command"
    assert caught.value.timeout == 0.5


async def test_cancellation_kills_the_whole_process_group(sandbox: Sandbox) -> None:
    """A cancelled caller leaves no command or grandchild behind."""
    tools = builtin_tools(sandbox)
    script = "sleep 100 & echo $! > grandchild.pid; echo $$ > child.pid; echo go > ready; wait"
    ready = sandbox.root / "ready"
    os.mkfifo(ready)
    with trio.fail_after(PROCESS_DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(run, tools, "run_command", command=["sh", "-c", script])
            )
            # Reading the FIFO returns once the command has written both pid files.
            said = await trio.to_thread.run_sync(ready.read_text, abandon_on_cancel=True)
            assert said == "go\n"
            nursery.cancel_scope.cancel(reason="test: the agent was stopped")
        await wait_until_dead(int((sandbox.root / "child.pid").read_text()))
        await wait_until_dead(int((sandbox.root / "grandchild.pid").read_text()))


async def test_background_processes_do_not_outlive_the_command(sandbox: Sandbox) -> None:
    """A command that exits leaving a background child returns at once; the child is killed."""
    with trio.fail_after(PROCESS_DEADLINE):
        result = await run_in_sandbox(
            sandbox, ["sh", "-c", "sleep 100 & echo $! > bg.pid; echo done"]
        )
        await wait_until_dead(int((sandbox.root / "bg.pid").read_text()))
    assert result.exit_code == 0
    assert result.stdout == "done\n"
    assert result.duration < 2


async def test_resource_limits_are_applied(sandbox: Sandbox) -> None:
    """The child runs under the configured CPU, memory, file size and process limits."""
    limits = ResourceLimits(
        cpu_seconds=7, memory_bytes=1024**3, file_size_bytes=4096, max_processes=321
    )
    script = (
        "import resource as r; print(*(r.getrlimit(getattr(r, n))[0] for n in "
        "('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NPROC')))"
    )
    with trio.fail_after(PROCESS_DEADLINE):
        result = await run_in_sandbox(
            sandbox, [sys.executable, "-c", script], policy=CommandPolicy(limits=limits)
        )
    assert result.stdout.split() == ["7", str(1024**3), "4096", "321"]


async def test_file_size_limit_kills_a_writer(sandbox: Sandbox) -> None:
    """Writing past file_size_bytes gets SIGXFSZ, and the result says which limit hit."""
    policy = CommandPolicy(limits=ResourceLimits(file_size_bytes=4096))
    tools = builtin_tools(sandbox, command=policy)
    with trio.fail_after(PROCESS_DEADLINE):
        text = await run(tools, "run_command", command="dd if=/dev/zero of=big bs=20000 count=1")
    assert f"exit code: {-signal.SIGXFSZ} (killed by SIGXFSZ; file size limit reached)" in text
    assert (sandbox.root / "big").stat().st_size <= 4096


async def test_memory_limit_stops_a_big_allocation(sandbox: Sandbox) -> None:
    """An allocation beyond memory_bytes fails in the child (MemoryError), not in the host."""
    policy = CommandPolicy(limits=ResourceLimits(memory_bytes=512 * 1024**2))
    with trio.fail_after(PROCESS_DEADLINE):
        result = await run_in_sandbox(
            sandbox, [sys.executable, "-c", "b = bytearray(2 * 1024**3)"], policy=policy
        )
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr
