"""The sandbox under a racing swapper: a concurrent swap of a directory for a link to an outside
directory never makes a file tool or run_command act outside (SPEC §5.2).

A separate process exchanges ``sandbox/d`` (a real directory) with ``sandbox/swap`` (a symbolic
link to ``outside/``) in a tight loop — atomically with ``renameat2(RENAME_EXCHANGE)`` where the
platform offers it, else with a pair of renames — while the real tool functions are called
thousands of times with paths through ``d``. Afterwards nothing outside may have changed (names,
sizes, mtimes, contents), and no tool result or error may contain the marker names and contents
that only the outside files carry. Each test also checks that the swapper really swapped and that
both outcomes (inside, refused) occurred, so none of them can pass by racing nothing.
"""

from __future__ import annotations

import os
import platform
import secrets
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from vega_trio import ToolError
from vega_trio.tools import Sandbox, SandboxViolation, ToolCall, Tools, _sandbox, builtin_tools

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX symbolic links and renames"),
]

MARKER = "MARKER-" + secrets.token_hex(8)
"""Only the outside files carry this, in their names and contents."""

# NOTE: renameat2 has no wrapper in os; the syscall numbers are per architecture.
_RENAMEAT2 = {"x86_64": 316, "amd64": 316, "aarch64": 276, "arm64": 276}

SWAPPER = r"""
import ctypes, os, signal, sys

number, root = int(sys.argv[1]), sys.argv[2]
stop = False
def on_term(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
os.chdir(root)
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2

def exchange():
    return libc.syscall(number, AT_FDCWD, b"d", AT_FDCWD, b"swap", RENAME_EXCHANGE) == 0

use_exchange = number > 0 and exchange()
swaps = 1 if use_exchange else 0
print("exchange" if use_exchange else "renames", flush=True)
while not stop:
    if use_exchange:
        exchange()
    else:
        # NOTE: without an atomic exchange, d is briefly missing between the renames.
        os.rename("d", "tmp")
        os.rename("swap", "d")
        os.rename("tmp", "swap")
    swaps += 1
print(swaps, flush=True)
"""


@attrs.frozen
class Arena:
    """The sandbox, the outside directory, the tools and a snapshot of outside."""

    sandbox: Sandbox
    outside: Path
    tools: Tools
    before: dict[str, tuple[Any, ...]]


def _snapshot(directory: Path) -> dict[str, tuple[Any, ...]]:
    """Everything below ``directory`` (itself included): type, size, mtime and contents."""
    found: dict[str, tuple[Any, ...]] = {}
    for path in [directory, *sorted(directory.rglob("*"))]:
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        found[str(path.relative_to(directory))] = (
            info.st_mode,
            info.st_size,
            info.st_mtime_ns,
            content,
        )
    return found


@pytest.fixture(params=["openat2", "component-walk"])
def arena(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Arena]:
    """sandbox/d (real dir) and sandbox/swap (link to outside/) being exchanged by a swapper;
    the sandbox resolves with openat2 or with the portable component walk."""
    if request.param == "openat2" and not _sandbox._use_openat2():
        pytest.skip("this kernel does not offer openat2 (the component walk is tested)")
    if request.param == "component-walk":
        monkeypatch.setattr(_sandbox, "_use_openat2", lambda: False)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("readme.txt", "target.txt", "log.txt"):
        (outside / name).write_text(f"{MARKER} content of outside/{name}\n")
    (outside / f"{MARKER}-name.txt").write_text(f"{MARKER}\n")
    (outside / "sub").mkdir()
    (outside / "sub" / f"{MARKER}-deeper.txt").write_text(f"{MARKER}\n")
    sandbox = Sandbox.create(tmp_path / "sandbox")
    inside = sandbox.root / "d"
    (inside / "sub").mkdir(parents=True)
    for name in ("readme.txt", "target.txt", "log.txt"):
        (inside / name).write_text(f"inside {name}\n")
    (inside / "sub" / "inner.txt").write_text("inner\n")
    os.symlink(outside, sandbox.root / "swap")
    before = _snapshot(outside)
    number = _RENAMEAT2.get(platform.machine().lower(), 0) if sys.platform == "linux" else 0
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(number), str(sandbox.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert swapper.stdout is not None
        assert swapper.stdout.readline().strip() in ("exchange", "renames")
        yield Arena(sandbox=sandbox, outside=outside, tools=builtin_tools(sandbox), before=before)
    finally:
        swapper.send_signal(signal.SIGTERM)
        out, _ = swapper.communicate(timeout=10)
    swaps = int(out.split()[-1])
    assert swaps > 1000, f"the swapper swapped only {swaps} times; the race was not exercised"


async def _hammer(
    arena: Arena,
    calls: int,
    call: Callable[[int], Awaitable[str]],
    inside: Callable[[str], bool],
) -> None:
    """Make ``calls`` calls; each must be a refusal, an ordinary tool error or an inside result.

    Both successes and refusals must occur: a loop that only ever saw one state raced nothing.
    """
    successes = refusals = 0
    for i in range(calls):
        error: ToolError | None = None
        try:
            text = await call(i)
        except ToolError as exc:  # refused, or e.g. "d" missing for a moment (rename pairs)
            error, text = exc, str(exc)
        assert MARKER not in text, f"call {i} leaked outside data: {text}"
        if error is None:
            assert inside(text), f"call {i} returned something unexpected: {text}"
            successes += 1
        elif isinstance(error, SandboxViolation):
            refusals += 1
    assert _snapshot(arena.outside) == arena.before, "something outside the sandbox changed"
    assert successes and refusals, f"{successes} inside results, {refusals} refusals"


async def _run(tools: Tools, name: str, **arguments: Any) -> str:
    return await tools.execute(ToolCall(id="toolu_race", name=name, arguments=arguments))


CALLS = 3000


async def test_write_file_never_truncates_or_creates_outside(arena: Arena) -> None:
    """write_file through a directory being swapped for a link never writes outside."""

    async def call(i: int) -> str:
        path = "d/target.txt" if i % 2 else f"d/new-{i}.txt"
        return await _run(arena.tools, "write_file", path=path, content="x")

    await _hammer(arena, CALLS, call, lambda text: text.startswith("wrote 1 bytes to 'd/"))


async def test_append_file_never_appends_or_creates_outside(arena: Arena) -> None:
    """append_file through a directory being swapped for a link never writes outside."""

    async def call(i: int) -> str:
        path = "d/log.txt" if i % 2 else f"d/new-{i}.txt"
        return await _run(arena.tools, "append_file", path=path, content="x")

    await _hammer(arena, CALLS, call, lambda text: text.startswith("appended 1 bytes to 'd/"))


async def test_directory_creation_never_makes_folders_outside(arena: Arena) -> None:
    """Creating missing directories under a swapped directory never creates them outside."""

    async def call(i: int) -> str:
        path = f"d/made-{i}/deeper/file.txt" if i % 2 else f"d/sub/made-{i}/file.txt"
        return await _run(arena.tools, "write_file", path=path, content="x")

    await _hammer(arena, CALLS, call, lambda text: text.startswith("wrote 1 bytes to 'd/"))


async def test_read_file_never_reads_outside(arena: Arena) -> None:
    """read_file through a swapped directory returns the inside file or a refusal, never outside."""

    async def call(i: int) -> str:
        path = "d/readme.txt" if i % 2 else "d/sub/inner.txt"
        return await _run(arena.tools, "read_file", path=path)

    await _hammer(arena, 2 * CALLS, call, lambda text: text in ("inside readme.txt\n", "inner\n"))


async def test_list_files_never_lists_outside(arena: Arena) -> None:
    """list_files of (and recursively through) a swapped directory never lists outside."""

    async def call(i: int) -> str:
        if i % 3 == 0:
            return await _run(arena.tools, "list_files", path=".", recursive=True)
        return await _run(arena.tools, "list_files", path="d", recursive=bool(i % 3 == 1))

    def inside(text: str) -> bool:
        prefixes = ("d/", "d@", "swap/", "swap@", "[could not list 'd", "[could not list 'swap")
        return all(line.startswith(prefixes) for line in text.splitlines())

    await _hammer(arena, CALLS, call, inside)


async def test_run_command_never_starts_outside(arena: Arena) -> None:
    """run_command with a swapped cwd runs inside it or is refused, never in the outside dir."""

    async def call(i: int) -> str:
        with trio.fail_after(10):
            return await _run(arena.tools, "run_command", command=["ls", "-a"], cwd="d")

    await _hammer(arena, 400, call, lambda text: "readme.txt" in text)
