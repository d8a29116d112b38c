"""Built-in tools: read, write, append and list files in a sandbox, and run commands there.

:func:`builtin_tools` returns a :class:`~vega_trio.tools.Tools` registry whose tools are bound to
one :class:`~vega_trio.tools.Sandbox`::

    read_file / write_file / append_file / list_files
      └─ Sandbox.open_resolved (walked from the root fd, no link followed by the OS, outside →
           SandboxViolation; missing directories made relative to their parent's fd)
           ─ act on the returned fd only ─ size caps ─ UTF-8
           ─ list_files recursion: subdirectories opened beneath the listed fd (open_beneath)
    run_command
      └─ run_in_sandbox: argv (no shell) ─ cwd opened by Sandbox.open_directory, entered with
           fchdir by the reaper (never by path) ─ minimal environment
           ─ ResourceLimits (CPU, memory, file size, open files, processes)
           └─ run_process_group (``_subprocess``, shared with exec tools): under a reaper,
                own process group ─ exit, timeout or cancel → every descendant SIGKILLed
                (setsid'd ones too) ─ output capped per stream (head and tail kept)

File work runs in worker threads (the tools are sync functions, which the registry runs with
``trio.to_thread``), so nothing blocks the event loop.
"""

from __future__ import annotations

import errno
import math
import os
import shlex
import signal
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from .._errors import ToolError
from ._registry import Tool, Tools, ToolTimeout
from ._sandbox import Sandbox, open_beneath
from ._subprocess import CapturedOutput, GroupCommand, ResourceLimits, run_process_group

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "CommandPolicy",
    "CommandResult",
    "ResourceLimits",
    "builtin_tools",
    "run_in_sandbox",
]

BUILTIN_TOOL_NAMES: Final[tuple[str, ...]] = (
    "read_file",
    "write_file",
    "append_file",
    "list_files",
    "run_command",
)
"""The names of the built-in tools, in the order :func:`builtin_tools` registers them."""

_TMPDIR = ".tmp"
_SIGNAL_HINTS: Final[Mapping[int, str]] = {
    getattr(signal, name): hint
    for name, hint in (
        ("SIGXCPU", "CPU time limit reached"),
        ("SIGXFSZ", "file size limit reached"),
        ("SIGSEGV", "crashed; it may have run out of memory"),
    )
    if hasattr(signal, name)
}


# -- policy ------------------------------------------------------------------------------------


def _positive_int(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a positive integer, got {value!r}"
        )


def _positive_seconds(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int | float) or math.isnan(value) or value <= 0:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a positive number of "
            f"seconds, got {value!r}"
        )


def _check_env(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise ValueError(f"environment variable name {key!r} is invalid")
        if not isinstance(item, str) or "\x00" in item:
            raise ValueError(f"environment variable {key!r} must be a str without NUL bytes")


@attrs.frozen(kw_only=True)
class CommandPolicy:
    """How commands run in a sandbox (:func:`run_in_sandbox`, the ``run_command`` tool).

    Attributes:
        timeout: seconds a command may run; then it and everything it started are killed.
        output_limit: bytes kept of each of stdout and stderr; longer output keeps its start
            and its end with a marker saying how much was left out.
        limits: OS resource limits.
        env: extra environment variables, on top of the minimal environment (``PATH``,
            ``HOME`` = the sandbox, ``TMPDIR`` inside it, ``LANG``, ``TERM``). Nothing else is
            inherited from the parent, so API keys and tokens never reach a command.
    """

    timeout: float = attrs.field(default=60.0, validator=_positive_seconds)
    output_limit: int = attrs.field(default=32_000, validator=_positive_int)
    limits: ResourceLimits = attrs.field(factory=ResourceLimits)
    env: Mapping[str, str] = attrs.field(factory=dict, validator=_check_env, hash=False)


@attrs.frozen(kw_only=True)
class CommandResult:
    """What a command did.

    Attributes:
        argv: the command that ran.
        cwd: its working directory, relative to the sandbox root.
        exit_code: the exit status; negative for a signal (``-9`` is ``SIGKILL``).
        stdout: standard output (UTF-8, undecodable bytes replaced), capped.
        stderr: standard error, likewise.
        timed_out: the policy's timeout killed it.
        output_truncated: some output was left out because of ``output_limit``.
        output_incomplete: a process that left the command's process group kept the output
            open, so reading stopped early.
        duration: seconds from start to exit.
    """

    argv: tuple[str, ...]
    cwd: str
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    output_truncated: bool = False
    output_incomplete: bool = False
    duration: float = 0.0

    def to_text(self) -> str:
        """The result as the model sees it: the command, the exit code, stdout and stderr."""
        status = f"exit code: {self.exit_code}"
        if self.exit_code < 0:
            number = -self.exit_code
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            hint = "timed out" if self.timed_out else _SIGNAL_HINTS.get(number, "")
            status += f" (killed by {name}{'; ' + hint if hint else ''})"
        lines = [f"$ {shlex.join(self.argv)}", status]
        if self.output_incomplete:
            lines.append(
                "note: a background process kept the output open; output may be incomplete"
            )
        lines.append(_section("stdout", self.stdout))
        lines.append(_section("stderr", self.stderr))
        return "\n".join(lines)


def _section(name: str, text: str) -> str:
    if not text:
        return f"{name}: (empty)"
    return f"{name}:\n{text.rstrip(chr(10))}"


# -- running commands ----------------------------------------------------------------------


def _output_text(output: CapturedOutput, limit: int) -> str:
    """A captured stream as text: head and tail with a marker for what was left out between."""
    if not output.omitted:
        return (output.head + output.tail).decode("utf-8", errors="replace")
    head = output.head.decode("utf-8", errors="replace")
    tail = output.tail.decode("utf-8", errors="replace")
    return (
        f"{head}\n[... {output.omitted} bytes omitted: the output was {output.total} bytes, "
        f"more than the {limit}-byte limit ...]\n{tail}"
    )


def _command_argv(command: str | Sequence[str]) -> tuple[str, ...]:
    """``command`` as an argv tuple: a sequence as is, a string split like a POSIX shell
    would split words (``shlex.split``) — but never run by a shell.

    Raises:
        ToolError: the command is empty, can't be split (unbalanced quotes) or contains a
            NUL byte.
    """
    if isinstance(command, str):
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise ToolError(
                f"could not split the command {command!r} into arguments: {exc}. Pass the "
                'command as a list of arguments, e.g. ["grep", "-n", "TODO", "notes.txt"].'
            ) from None
    else:
        argv = tuple(command)
    if not argv or not argv[0]:
        raise ToolError(
            'the command is empty; pass the program and its arguments, e.g. ["ls", "-la"]'
        )
    for arg in argv:
        if not isinstance(arg, str) or "\x00" in arg:
            raise ToolError(
                f"command argument {arg!r} is not a string without NUL bytes; pass each "
                "argument as plain text"
            )
    return argv


def _prepare_workdir(sandbox: Sandbox, cwd: str) -> tuple[int, str, str]:
    """The working directory, opened (the caller closes the fd), its path relative to the
    root, and the TMPDIR (made if missing).

    The command is started in the directory this fd refers to (``fchdir`` in the child), never
    by its path, so swapping a component for a link after the walk cannot move it outside.
    """
    try:
        fd, workdir = sandbox.open_directory(cwd)
    except (FileNotFoundError, NotADirectoryError):
        raise ToolError(
            f"working directory {cwd!r} is not a directory in the sandbox "
            f"{str(sandbox.root)!r}; pass an existing directory (default '.', the sandbox root)"
        ) from None
    try:
        tmpdir = sandbox.make_directory(_TMPDIR)
    except OSError as exc:
        os.close(fd)
        raise ToolError(
            f"could not prepare the commands' temporary directory {_TMPDIR!r} in the sandbox: "
            f"{exc.strerror or exc}; remove or rename what is in its way"
        ) from None
    except Exception:
        os.close(fd)
        raise
    return fd, sandbox.relative(workdir), str(tmpdir)


def _environment(sandbox: Sandbox, tmpdir: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": str(sandbox.root),
        "TMPDIR": tmpdir,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }
    env.update(extra)
    return env


async def run_in_sandbox(
    sandbox: Sandbox,
    command: str | Sequence[str],
    *,
    cwd: str = ".",
    policy: CommandPolicy | None = None,
) -> CommandResult:
    """Run a command in the sandbox, without a shell, and collect its output.

    The command runs in a new session (its own process group) with ``cwd`` (inside the
    sandbox) as working directory, stdin from ``/dev/null``, the policy's minimal environment
    and resource limits. When it exits, on timeout, and when the caller is cancelled, every
    process it started is killed with ``SIGKILL`` — grandchildren included, also one that
    started a session of its own (see :func:`~vega_trio.tools._subprocess.run_process_group`;
    on Linux; elsewhere the process group). Use a container for hostile code.

    Args:
        sandbox: where to run.
        command: an argv sequence, or a string split with ``shlex.split`` (never a shell;
            run ``["sh", "-c", "..."]`` explicitly for shell syntax).
        cwd: the working directory, relative to the sandbox root.
        policy: timeout, output cap, limits and extra environment; the defaults of
            :class:`CommandPolicy` when ``None``.

    Returns:
        The :class:`CommandResult`; a timeout is reported in it (``timed_out``), a non-zero
        exit status is not an error.

    Raises:
        SandboxViolation: ``cwd`` leads outside the sandbox.
        ToolError: the command is empty or can't be started (not found, not executable).
    """
    policy = CommandPolicy() if policy is None else policy
    argv = _command_argv(command)
    workdir_fd, relative_cwd, tmpdir = await trio.to_thread.run_sync(_prepare_workdir, sandbox, cwd)
    try:
        env = _environment(sandbox, tmpdir, policy.env)
        keep_head = policy.output_limit // 2
        group_command = GroupCommand(
            argv=argv,
            env=env,
            timeout=policy.timeout,
            keep_head=keep_head,
            keep_tail=policy.output_limit - keep_head,
            cwd_fd=workdir_fd,
            limits=policy.limits,
        )
        started = trio.current_time()
        outcome = await run_process_group(group_command)
    except FileNotFoundError:
        raise ToolError(
            f"command {argv[0]!r} was not found (PATH={env['PATH']!r}, working directory "
            f"{cwd!r}); check the program name, or give its path"
        ) from None
    except PermissionError:
        raise ToolError(
            f"command {argv[0]!r} could not be executed: permission denied; is it an "
            "executable file? Run scripts through their interpreter, e.g. "
            '["python3", "script.py"] or ["sh", "script.sh"]'
        ) from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolError(f"command {argv[0]!r} could not be started: {exc}") from None
    finally:
        os.close(workdir_fd)
    return CommandResult(
        argv=argv,
        cwd=relative_cwd,
        exit_code=outcome.exit_code,
        stdout=_output_text(outcome.stdout, policy.output_limit),
        stderr=_output_text(outcome.stderr, policy.output_limit),
        timed_out=outcome.timed_out,
        output_truncated=bool(outcome.stdout.omitted or outcome.stderr.omitted),
        output_incomplete=outcome.output_incomplete,
        duration=trio.current_time() - started,
    )


# -- file tools ----------------------------------------------------------------------------


def _os_problem(action: str, requested: str, exc: OSError) -> ToolError:
    if isinstance(exc, FileNotFoundError):
        what = f"{requested!r} does not exist in the sandbox; call list_files to see what does"
    elif isinstance(exc, IsADirectoryError):
        what = f"{requested!r} is a directory; call list_files to see what it contains"
    elif isinstance(exc, NotADirectoryError):
        what = f"a part of {requested!r} is a file, not a directory; check the path"
    elif isinstance(exc, PermissionError):
        what = f"permission to {action} {requested!r} was denied"
    elif exc.errno == errno.ENOSPC:
        what = "the disk is full"
    else:
        what = f"{exc.strerror or exc}"
    return ToolError(f"could not {action} {requested!r}: {what}")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_file(sandbox: Sandbox, path: str, max_bytes: int) -> str:
    try:
        fd = sandbox.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise _os_problem("read", path, exc) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ToolError(
                f"could not read {path!r}: it is a directory; call list_files to see what "
                "it contains"
            )
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(f"could not read {path!r}: it is not a regular file")
        if info.st_size > max_bytes:
            raise ToolError(
                f"{path!r} is {info.st_size} bytes, more than the {max_bytes}-byte read limit; "
                "read a part of it with a command, e.g. "
                f'run_command(["head", "-c", "{max_bytes}", {path!r}]) or '
                f'["sed", "-n", "1,200p", {path!r}]'
            )
        data = _read_at_most(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ToolError(
            f"{path!r} grew beyond the {max_bytes}-byte read limit while it was being read; "
            "read a part of it with a command (head, tail, sed -n)"
        )
    if b"\x00" in data:
        raise ToolError(
            f"{path!r} looks like a binary file (it contains NUL bytes); read_file reads "
            f'UTF-8 text only. Inspect it with a command, e.g. ["file", {path!r}]'
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(
            f"{path!r} is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); it may be binary or in another encoding. Inspect it with a "
            f'command, e.g. ["file", {path!r}]'
        ) from None


def _write_file(sandbox: Sandbox, path: str, content: str, max_bytes: int, append: bool) -> str:
    action = "append to" if append else "write"
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"could not {action} {path!r}: the content is not valid text ({exc.reason} at "
            f"character {exc.start}); send plain UTF-8 text"
        ) from None
    if len(data) > max_bytes:
        raise ToolError(
            f"could not {action} {path!r}: the content is {len(data)} bytes, more than the "
            f"{max_bytes}-byte write limit; write it in parts with append_file"
        )
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        fd, resolved = sandbox.open_resolved(path, flags, make_parents=True)
    except OSError as exc:
        if isinstance(exc, IsADirectoryError) and _is_root(sandbox, path):
            raise ToolError(
                f"could not {action} {path!r}: that is the sandbox root directory"
            ) from None
        raise _os_problem(action, path, exc) from None
    with os.fdopen(fd, "wb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ToolError(f"could not {action} {path!r}: it is not a regular file")
        try:
            file.write(data)
            file.flush()
        except OSError as exc:
            raise _os_problem(action, path, exc) from None
        size = os.fstat(fd).st_size
    where = sandbox.relative(resolved)
    if append:
        return f"appended {len(data)} bytes to {where!r} (now {size} bytes)"
    return f"wrote {len(data)} bytes to {where!r}"


def _is_root(sandbox: Sandbox, path: str) -> bool:
    """Whether ``path`` names the sandbox root (for messages only; never a safety check)."""
    try:
        return sandbox.resolve(path) == sandbox.root
    except ToolError:
        return False


def _is_file(sandbox: Sandbox, path: str) -> bool:
    """Whether ``path`` names something that is not a directory (for messages only)."""
    try:
        return os.path.lexists(sandbox.resolve(path))
    except ToolError:
        return False


def _list_files(sandbox: Sandbox, path: str, recursive: bool, max_entries: int) -> str:
    try:
        fd, resolved = sandbox.open_resolved(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        if _is_file(sandbox, path):
            raise ToolError(f"could not list {path!r}: it is a file, not a directory") from None
        raise ToolError(
            f"could not list {path!r}: it does not exist in the sandbox; list '.' to see what does"
        ) from None
    except OSError as exc:
        raise _os_problem("list", path, exc) from None
    base = sandbox.relative(resolved)
    prefix = "" if base == "." else base + "/"
    lines: list[str] = []
    # NOTE: subdirectories are remembered by their names below the listed directory and
    # opened relative to its fd without following any link (open_beneath), so a directory
    # swapped for a link after it was seen is reported, not listed.
    pending: list[tuple[str, ...]] = [()]
    stopped = False
    try:
        while pending and not stopped:
            below = pending.pop()
            where = prefix + "/".join(below) if below else base
            try:
                directory = open_beneath(fd, below, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                why = exc.strerror
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.EMLINK):
                    why = "it changed while it was being listed (it is no longer a directory)"
                lines.append(f"[could not list {where!r}: {why}]")
                continue
            try:
                with os.scandir(directory) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError as exc:
                lines.append(f"[could not list {where!r}: {exc.strerror}]")
                continue
            finally:
                os.close(directory)
            subdirectories = []
            for entry in entries:
                if len(lines) >= max_entries:
                    stopped = True
                    break
                relative = prefix + "/".join((*below, entry.name))
                if entry.is_symlink():
                    lines.append(relative + "@")
                elif entry.is_dir(follow_symlinks=False):
                    lines.append(relative + "/")
                    subdirectories.append((*below, entry.name))
                else:
                    lines.append(relative)
            if recursive:
                # NOTE: reversed onto a stack, so directories are walked in name order.
                pending.extend(reversed(subdirectories))
    finally:
        os.close(fd)
    if recursive:
        lines.sort()
    if stopped:
        lines.append(
            f"[listing stopped at {max_entries} entries; list a subdirectory"
            + (" or list without recursive" if recursive else "")
            + " to see the rest]"
        )
    if not lines:
        return f"{base!r} is empty"
    return "\n".join(lines)


# -- the registry --------------------------------------------------------------------------


def builtin_tools(
    sandbox: Sandbox,
    *,
    include: Iterable[str] | None = None,
    max_read_bytes: int = 256_000,
    max_write_bytes: int = 1_000_000,
    max_list_entries: int = 1000,
    command: CommandPolicy | None = None,
) -> Tools:
    """The built-in tools, bound to ``sandbox``, in a new registry.

    ``read_file``, ``write_file``, ``append_file``, ``list_files`` and ``run_command``
    (:data:`BUILTIN_TOOL_NAMES`). Paths are resolved by the sandbox (outside → an error the
    model sees); files are UTF-8 text. Merge the registry with your own tools
    (``mine.merged(builtin_tools(sandbox))``) or pass it to an agent as is.

    Args:
        sandbox: the directory the tools work in.
        include: only these built-ins (e.g. ``["read_file", "list_files"]`` for a read-only
            agent); all when ``None``.
        max_read_bytes: the largest file ``read_file`` returns.
        max_write_bytes: the most ``write_file``/``append_file`` write in one call.
        max_list_entries: the most entries ``list_files`` returns.
        command: how ``run_command`` runs commands (timeout, output cap, limits, extra
            environment); :class:`CommandPolicy` defaults when ``None``.

    Raises:
        ValueError: an unknown name in ``include``, or a limit that is not a positive integer.
    """
    policy = CommandPolicy() if command is None else command
    for name, value in (
        ("max_read_bytes", max_read_bytes),
        ("max_write_bytes", max_write_bytes),
        ("max_list_entries", max_list_entries),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"builtin_tools: {name} must be a positive integer, got {value!r}")
    wanted = set(BUILTIN_TOOL_NAMES if include is None else include)
    unknown = sorted(wanted.difference(BUILTIN_TOOL_NAMES))
    if unknown:
        raise ValueError(
            f"builtin_tools: no built-in tool named {', '.join(map(repr, unknown))}; the "
            f"built-ins are {', '.join(map(repr, BUILTIN_TOOL_NAMES))}"
        )

    def read_file(path: str) -> str:
        """Read a UTF-8 text file.

        Args:
            path: the file, relative to the sandbox root (e.g. "notes/todo.txt").
        """
        return _read_file(sandbox, path, max_read_bytes)

    def write_file(path: str, content: str) -> str:
        """Write a text file, replacing it if it exists.

        Args:
            path: the file, relative to the sandbox root; missing directories are created.
            content: the complete new content (UTF-8 text).
        """
        return _write_file(sandbox, path, content, max_write_bytes, append=False)

    def append_file(path: str, content: str) -> str:
        """Append text to the end of a file, creating it if needed.

        Args:
            path: the file, relative to the sandbox root; missing directories are created.
            content: the text to add (UTF-8); include a trailing newline if you want one.
        """
        return _write_file(sandbox, path, content, max_write_bytes, append=True)

    def list_files(path: str = ".", recursive: bool = False) -> str:
        """List a directory.

        Args:
            path: the directory, relative to the sandbox root ("." is the root).
            recursive: also list everything below it.
        """
        return _list_files(sandbox, path, recursive, max_list_entries)

    async def run_command(command: list[str] | str, cwd: str = ".") -> str:
        """Run a program.

        Args:
            command: the program and its arguments as a list, e.g. ["python3", "main.py"].
                A string is split into words like a shell would, but no shell runs it; for
                pipes, redirection or globs run ["sh", "-c", "..."] explicitly.
            cwd: the working directory, relative to the sandbox root.
        """
        result = await run_in_sandbox(sandbox, command, cwd=cwd, policy=policy)
        if result.timed_out:
            raise ToolTimeout(
                f"command {shlex.join(result.argv)!r} did not finish within its "
                f"{policy.timeout:g} s timeout; it and every process it started were killed. "
                "Output so far:\n"
                f"{result.to_text()}\n"
                "Run something quicker (or split the work into smaller commands).",
                tool="run_command",
                timeout=policy.timeout,
            )
        return result.to_text()

    descriptions: dict[str, tuple[Callable[..., Any], str]] = {
        "read_file": (
            read_file,
            f"Read a UTF-8 text file in the sandbox (at most {max_read_bytes} bytes).",
        ),
        "write_file": (
            write_file,
            "Write a UTF-8 text file in the sandbox, replacing it if it exists "
            f"(at most {max_write_bytes} bytes per call).",
        ),
        "append_file": (
            append_file,
            "Append UTF-8 text to a file in the sandbox, creating it if needed "
            f"(at most {max_write_bytes} bytes per call).",
        ),
        "list_files": (
            list_files,
            "List files in a sandbox directory (paths relative to the sandbox root; "
            f"directories end in '/', links in '@'; at most {max_list_entries} entries).",
        ),
        "run_command": (
            run_command,
            "Run a program (no shell) in the sandbox and return its exit code, stdout and "
            f"stderr. It is killed after {policy.timeout:g} s; each output stream is capped "
            f"at {policy.output_limit} bytes; the environment is minimal (HOME is the "
            "sandbox).",
        ),
    }
    tools = Tools()
    for name in BUILTIN_TOOL_NAMES:
        if name in wanted:
            function, description = descriptions[name]
            tools.register(Tool.from_function(function, name=name, description=description))
    return tools
