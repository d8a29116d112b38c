"""Running one command so that nothing it starts outlives it: the machinery both command tools
share.

``run_command`` (:func:`~vega_trio.tools.run_in_sandbox`) and the declarative ``exec`` tool both
come here, so the hazardous part exists once::

    run_process_group(GroupCommand)
      └─ the reaper (``_reaper.py``: ``python -I -S``, a new session, stdin = control pipe)
           ─ child subreaper (Linux): orphans of the command's tree are re-parented to it
           └─ the command: argv (no shell) ─ own process group ─ stdin from /dev/null
                ─ exactly the environment given (nothing inherited) ─ ResourceLimits (rlimits)
                ─ stdout and stderr (or both merged) read concurrently, capped: head + tail kept
      ─ exit, timeout, cancellation (control pipe closed) or the caller's death (likewise)
           → the reaper SIGKILLs the command's group, then every process re-parented to it,
             until none is left (setsid'd, SIGTERM-ignoring grandchildren included)
      ─ bounded drain of the pipes ─ bounded reap (then SIGKILL to both groups as a backstop)

What the tools differ in (the environment they build, where they run, how they render the
output and report errors) stays with each tool; this module only runs and captures.
"""

from __future__ import annotations

import math
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, Final

import attrs
import trio

from .._collapse import raise_collapsed
from ._reaper import encode_request

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

__all__ = [
    "CapturedOutput",
    "GroupCommand",
    "GroupResult",
    "ResourceLimits",
    "run_process_group",
]

# NOTE: after the command exits (or is killed) the reaper kills every descendant, so the
# output pipes close; where it can't (no subreaper: not Linux) a descendant that left the group
# could still hold them open, so reading them gets this long before it is abandoned.
_DRAIN_GRACE = 1.0
# Killing and reaping SIGKILLed processes is immediate unless the kernel is stuck
# (uninterruptible I/O); then the reaper itself is killed.
_REAP_GRACE = 5.0
_REAPER: Final = str(pathlib.Path(__file__).with_name("_reaper.py"))
_LOADER_VARIABLES: Final = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")
_READ_SIZE = 64 * 1024


def _not_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"GroupCommand.{attribute.name} must be an int >= 0, got {value!r}")


def _env(value: Mapping[str, str]) -> Mapping[str, str]:
    env = dict(value)
    for name, item in env.items():
        if not name or "=" in name or "\0" in name or "\0" in item:
            raise ValueError(f"GroupCommand.env: the variable {name!r} can't be passed on")
    return env


def _argv(value: Any) -> tuple[str, ...]:
    argv = tuple(value)
    if not argv:
        raise ValueError("GroupCommand.argv is empty; give the program to run")
    for arg in argv:
        if not isinstance(arg, str) or "\0" in arg:
            raise ValueError(f"GroupCommand.argv: {arg!r} is not a string without NUL bytes")
    return argv


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a positive integer or None "
            f"(no limit), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class ResourceLimits:
    """OS resource limits (``setrlimit``) for commands; ``None`` leaves a limit as it is.

    The one set of limits of both command tools: ``run_command``
    (:attr:`~vega_trio.tools.CommandPolicy.limits`) and declarative exec tools
    (:attr:`~vega_trio.tools.ExecImplementation.limits`, ``limits:`` in YAML). A limit is never
    raised above the one vega-trio itself runs under, and a limit the OS refuses to set is
    skipped.

    Attributes:
        cpu_seconds: CPU time (``RLIMIT_CPU``); the command gets ``SIGXCPU`` when it is used up.
        memory_bytes: address space (``RLIMIT_AS``). Some runtimes (Java, Node.js, Go)
            reserve much more than they use; raise it for them.
        file_size_bytes: the largest file the command may write (``RLIMIT_FSIZE``).
        max_open_files: open file descriptors per process (``RLIMIT_NOFILE``).
        max_processes: ``RLIMIT_NPROC``. NOTE: the OS counts *all* processes (on Linux also
            threads) of the user, not only the command's, and ignores the limit for root.
    """

    cpu_seconds: int | None = attrs.field(default=60, validator=_positive_or_none)
    memory_bytes: int | None = attrs.field(default=2 * 1024**3, validator=_positive_or_none)
    file_size_bytes: int | None = attrs.field(default=256 * 1024**2, validator=_positive_or_none)
    max_open_files: int | None = attrs.field(default=1024, validator=_positive_or_none)
    max_processes: int | None = attrs.field(default=4096, validator=_positive_or_none)

    def plan(self) -> tuple[tuple[int, int, int], ...]:
        """The ``(resource, soft, hard)`` triples to apply to the command, computed in the
        parent (the reaper only calls ``setrlimit``). Empty where the ``resource`` module is
        missing."""
        if resource is None:  # pragma: no cover - not POSIX
            return ()
        wanted = (
            ("RLIMIT_CPU", self.cpu_seconds),
            ("RLIMIT_AS", self.memory_bytes),
            ("RLIMIT_FSIZE", self.file_size_bytes),
            ("RLIMIT_NOFILE", self.max_open_files),
            ("RLIMIT_NPROC", self.max_processes),
        )
        plan: list[tuple[int, int, int]] = []
        for name, value in wanted:
            which = getattr(resource, name, None)
            if value is None or which is None:
                continue
            soft, hard = resource.getrlimit(which)
            for current in (soft, hard):
                if current != resource.RLIM_INFINITY:
                    value = min(value, current)
            new_hard = value
            if name == "RLIMIT_CPU" and (hard == resource.RLIM_INFINITY or value < hard):
                # NOTE: soft < hard so the command first gets SIGXCPU (a signal that says
                # why) and SIGKILL a second later.
                new_hard = value + 1
            plan.append((which, value, new_hard))
        return tuple(plan)


@attrs.frozen(kw_only=True)
class GroupCommand:
    """One command to run with :func:`run_process_group`.

    Attributes:
        argv: the program and its arguments; never given to a shell.
        env: the command's *complete* environment; nothing of the parent's is inherited.
        cwd: the working directory; ``None`` for the current one.
        cwd_fd: an open directory to run in, instead of ``cwd``: the reaper enters it with
            ``fchdir``, never by path, so a component of its path swapped for a symbolic link
            after it was opened can't redirect the command (``run_command``'s sandbox). The
            caller keeps it open until :func:`run_process_group` returns, then closes it.
        timeout: seconds the command may run before its whole group is killed (reported as
            :attr:`GroupResult.timed_out`); ``None`` for no limit (the caller's cancellation
            still kills the group).
        keep_head: bytes kept of the start of each output stream.
        keep_tail: bytes kept of the end of each output stream; what lies between is read and
            dropped (counted in :attr:`CapturedOutput.omitted`).
        merge_stderr: send stderr into the stdout pipe (interleaved, as the command wrote it).
        limits: the OS resource limits the command runs under; ``None`` for none.
    """

    argv: tuple[str, ...] = attrs.field(converter=_argv)
    env: Mapping[str, str] = attrs.field(converter=_env, hash=False)
    cwd: str | os.PathLike[str] | None = None
    cwd_fd: int | None = None
    timeout: float | None = None
    keep_head: int = attrs.field(validator=_not_negative)
    keep_tail: int = attrs.field(default=0, validator=_not_negative)
    merge_stderr: bool = False
    limits: ResourceLimits | None = None


@attrs.frozen(kw_only=True)
class CapturedOutput:
    """What was kept of one output stream.

    Attributes:
        head: the first bytes (at most ``keep_head``).
        tail: the last bytes after the head (at most ``keep_tail``).
        total: how many bytes the stream carried in all.
    """

    head: bytes = b""
    tail: bytes = b""
    total: int = 0

    @property
    def omitted(self) -> int:
        """Bytes read and dropped between the head and the tail."""
        return self.total - len(self.head) - len(self.tail)


@attrs.frozen(kw_only=True)
class GroupResult:
    """How a command ended and what it wrote.

    Attributes:
        exit_code: the exit status; negative for a signal (``-9`` is ``SIGKILL``, also when
            the process could not be reaped in time).
        stdout: the captured standard output (with stderr in it when merged).
        stderr: the captured standard error; empty when merged into stdout.
        timed_out: :attr:`GroupCommand.timeout` killed it.
        output_incomplete: a process that left the group kept the output open, so reading
            stopped early.
    """

    exit_code: int
    stdout: CapturedOutput
    stderr: CapturedOutput
    timed_out: bool = False
    output_incomplete: bool = False


class _Capture:
    """Keeps the first and the last part of a byte stream, and counts what is left out."""

    def __init__(self, head_limit: int, tail_limit: int) -> None:
        self.head_limit = head_limit
        self.tail_limit = tail_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes | bytearray) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_limit:
            self.tail += chunk
            excess = len(self.tail) - self.tail_limit
            if excess > 0:
                del self.tail[:excess]

    def result(self) -> CapturedOutput:
        return CapturedOutput(head=bytes(self.head), tail=bytes(self.tail), total=self.total)


async def _pump(stream: trio.abc.ReceiveStream, capture: _Capture) -> None:
    while chunk := await stream.receive_some(_READ_SIZE):
        capture.add(chunk)


def _kill_group(pgid: int) -> None:
    # NOTE: the reaper leads its own session and the command its own process group, so a
    # pid is the group id; a group id cannot be reused while any member is alive. Once the
    # group is empty the kill fails with ESRCH: there is nothing left to kill. (A backstop:
    # normally the reaper has killed and reaped everything already.)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@attrs.define
class _Report:
    """What the reaper said on the status pipe (see ``_reaper.py``)."""

    command_pid: int | None = None
    exit_code: int | None = None
    error: OSError | None = None

    def add(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        try:
            if kind == "S":
                self.command_pid = int(rest)
            elif kind == "X":
                self.exit_code = int(rest)
            elif kind == "E":
                number, _, message = rest.partition(" ")
                self.error = OSError(int(number), message) if int(number) else OSError(message)
        except ValueError:
            pass  # not a line the reaper writes; the exit status then defaults to SIGKILL


async def _read_report(stream: trio.abc.ReceiveStream) -> _Report:
    data = bytearray()
    while chunk := await stream.receive_some(4096):
        data += chunk
    report = _Report()
    for line in data.decode(errors="replace").splitlines():
        report.add(line)
    return report


def _request(command: GroupCommand) -> bytes:
    plan = () if command.limits is None else command.limits.plan()
    return encode_request(
        [os.fsencode(arg) for arg in command.argv],
        {os.fsencode(name): os.fsencode(value) for name, value in command.env.items()},
        list(plan),
    )


async def run_process_group(command: GroupCommand) -> GroupResult:
    """Run ``command`` under the reaper and capture its output.

    The command runs in a process group of its own under a small reaper process (see the
    module docs) that is a child subreaper on Linux. When the command exits, on the command's
    timeout, and when the caller is cancelled (the control pipe closes), the reaper SIGKILLs
    the command's group and then every process re-parented to it until none is left — a
    grandchild that started its own session and ignores ``SIGTERM`` included — and reaps them,
    so none is left running or as a zombie. The pipes are then drained for at most a second (a
    process the reaper could not reach may hold them open:
    :attr:`GroupResult.output_incomplete`); the reaper is waited for under a bounded shield
    and killed (with the command's group) if it does not finish.

    Returns:
        The :class:`GroupResult`; a timeout and a non-zero exit status are reported in it.

    Raises:
        OSError: the command could not be started (``FileNotFoundError`` when the program
            doesn't exist, ``PermissionError`` when it isn't executable, ...), or the working
            directory doesn't exist.
    """
    if not sys.executable:  # pragma: no cover - embedded interpreters
        raise OSError("can't run commands: sys.executable is empty, so the reaper can't start")
    request = _request(command)
    status_read, status_write = os.pipe()
    try:
        reaper = [sys.executable, "-I", "-S", _REAPER, str(status_write)]
        passed = [status_write]
        if command.cwd_fd is not None:
            reaper.append(str(command.cwd_fd))
            passed.append(command.cwd_fd)
        process = await trio.lowlevel.open_process(
            reaper,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if command.merge_stderr else subprocess.PIPE,
            cwd=command.cwd if command.cwd_fd is None else None,
            # NOTE: the reaper gets only what the dynamic loader may need to start Python; the
            # command's environment comes through the control pipe (never on a command line,
            # which every user can read).
            env={name: os.environ[name] for name in _LOADER_VARIABLES if name in os.environ},
            start_new_session=True,
            pass_fds=tuple(passed),
        )
    except BaseException:
        os.close(status_read)
        raise
    finally:
        os.close(status_write)
    status = trio.lowlevel.FdStream(status_read)
    assert process.stdin is not None and process.stdout is not None
    control = process.stdin
    streams = [stream for stream in (process.stdout, process.stderr) if stream is not None]
    stdout = _Capture(command.keep_head, command.keep_tail)
    stderr = _Capture(command.keep_head, command.keep_tail)
    timeout = math.inf if command.timeout is None else command.timeout
    report = _Report()
    try:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump, process.stdout, stdout)
                if process.stderr is not None:
                    nursery.start_soon(_pump, process.stderr, stderr)
                try:
                    await control.send_all(request)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the reaper is gone already; its report (or its absence) says why
                with trio.move_on_after(timeout) as deadline:
                    await process.wait()
                if deadline.cancelled_caught:
                    # NOTE: closing the control pipe tells the reaper to kill everything.
                    await control.aclose()
                    with trio.move_on_after(_REAP_GRACE):
                        await process.wait()
                nursery.cancel_scope.deadline = trio.current_time() + _DRAIN_GRACE
        except BaseExceptionGroup as group:
            raise_collapsed(group, only_exceptions=True)
        output_incomplete = nursery.cancel_scope.cancelled_caught
    finally:
        # NOTE: also the cancellation path: the caller's Cancelled must not leave the
        # command (or anything it started) running.
        with trio.move_on_after(_REAP_GRACE, shield=True):
            await control.aclose()
            await process.wait()
        if process.returncode is None:
            _kill_group(process.pid)  # the reaper is stuck: kill it, then its command
        with trio.move_on_after(_REAP_GRACE, shield=True):
            await process.wait()
            report = await _read_report(status)
        if report.command_pid is not None:
            _kill_group(report.command_pid)  # a backstop; normally long empty (ESRCH)
        with trio.move_on_after(_REAP_GRACE, shield=True):
            for stream in (*streams, status):
                await stream.aclose()
    if report.error is not None:
        raise report.error
    return GroupResult(
        exit_code=-signal.SIGKILL if report.exit_code is None else report.exit_code,
        stdout=stdout.result(),
        stderr=stderr.result(),
        timed_out=deadline.cancelled_caught,
        output_incomplete=output_incomplete,
    )
