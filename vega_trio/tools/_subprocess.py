"""Running one command in a process group of its own: the machinery both command tools share.

``run_command`` (:func:`~vega_trio.tools.run_in_sandbox`) and the declarative ``exec`` tool both
come here, so the hazardous part exists once::

    run_process_group(GroupCommand)
      └─ argv (no shell) ─ new session = own process group ─ stdin from /dev/null
           ─ exactly the environment given (nothing inherited) ─ optional pre-exec hook (rlimits)
           ─ stdout and stderr (or both merged) read concurrently, capped: head + tail kept
           ─ exit → SIGKILL to the rest of the group ─ bounded drain of the pipes
           ─ timeout or cancellation → SIGKILL to the whole group ─ bounded reap

What the tools differ in (the environment they build, where they run, how they render the
output and report errors) stays with each tool; this module only runs and captures.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from .._collapse import raise_collapsed

__all__ = ["CapturedOutput", "GroupCommand", "GroupResult", "run_process_group"]

# NOTE: after the command exits (or is killed) its process group is killed too; a descendant
# that left the group (setsid) could still hold the output pipes open, so reading them gets
# this long before it is abandoned.
_DRAIN_GRACE = 1.0
# Reaping a SIGKILLed process is immediate unless the kernel is stuck (uninterruptible I/O).
_REAP_GRACE = 5.0
_READ_SIZE = 64 * 1024


def _not_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"GroupCommand.{attribute.name} must be an int >= 0, got {value!r}")


def _env(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


def _argv(value: Any) -> tuple[str, ...]:
    argv = tuple(value)
    if not argv:
        raise ValueError("GroupCommand.argv is empty; give the program to run")
    return argv


@attrs.frozen(kw_only=True)
class GroupCommand:
    """One command to run with :func:`run_process_group`.

    Attributes:
        argv: the program and its arguments; never given to a shell.
        env: the command's *complete* environment; nothing of the parent's is inherited.
        cwd: the working directory; ``None`` for the current one.
        timeout: seconds the command may run before its whole group is killed (reported as
            :attr:`GroupResult.timed_out`); ``None`` for no limit (the caller's cancellation
            still kills the group).
        keep_head: bytes kept of the start of each output stream.
        keep_tail: bytes kept of the end of each output stream; what lies between is read and
            dropped (counted in :attr:`CapturedOutput.omitted`).
        merge_stderr: send stderr into the stdout pipe (interleaved, as the command wrote it).
        preexec: called in the forked child before ``exec`` (e.g. ``setrlimit``); it must be
            async-signal-safe in spirit: no imports, locks or logging.
    """

    argv: tuple[str, ...] = attrs.field(converter=_argv)
    env: Mapping[str, str] = attrs.field(converter=_env, hash=False)
    cwd: str | os.PathLike[str] | None = None
    timeout: float | None = None
    keep_head: int = attrs.field(validator=_not_negative)
    keep_tail: int = attrs.field(default=0, validator=_not_negative)
    merge_stderr: bool = False
    preexec: Callable[[], None] | None = attrs.field(default=None, eq=False)


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
    # NOTE: the command runs in its own session, so its pid is its process group id; the
    # group id cannot be reused while any member is alive. Once the group is empty the kill
    # fails with ESRCH, which just means there is nothing left to kill.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_process_group(command: GroupCommand) -> GroupResult:
    """Run ``command`` in a new session (its own process group) and capture its output.

    When the command exits, anything it left running in its group is killed, so nothing it
    starts outlives the call; the pipes are then drained for at most a second (a process that
    left the group may hold them open: :attr:`GroupResult.output_incomplete`). On the
    command's timeout, and when the caller is cancelled, the whole group is killed with
    ``SIGKILL`` (grandchildren included) and reaped under a bounded shield. A process that
    started a session of its own escapes the group kill; that is the limit of process groups.

    Returns:
        The :class:`GroupResult`; a timeout and a non-zero exit status are reported in it.

    Raises:
        OSError: the command could not be started (``FileNotFoundError`` when the program
            doesn't exist, ``PermissionError`` when it isn't executable, ...).
        subprocess.SubprocessError: :attr:`GroupCommand.preexec` failed in the child.
    """
    process = await trio.lowlevel.open_process(
        list(command.argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if command.merge_stderr else subprocess.PIPE,
        cwd=command.cwd,
        env=dict(command.env),
        start_new_session=True,
        preexec_fn=command.preexec,
    )
    streams = [stream for stream in (process.stdout, process.stderr) if stream is not None]
    stdout = _Capture(command.keep_head, command.keep_tail)
    stderr = _Capture(command.keep_head, command.keep_tail)
    timeout = math.inf if command.timeout is None else command.timeout
    try:
        try:
            async with trio.open_nursery() as nursery:
                assert process.stdout is not None
                nursery.start_soon(_pump, process.stdout, stdout)
                if process.stderr is not None:
                    nursery.start_soon(_pump, process.stderr, stderr)
                with trio.move_on_after(timeout) as deadline:
                    await process.wait()
                # NOTE: kill what the command left running in its group (a `cmd &`), which
                # also closes their ends of the pipes so that reading them ends.
                _kill_group(process.pid)
                nursery.cancel_scope.deadline = trio.current_time() + _DRAIN_GRACE
        except BaseExceptionGroup as group:
            raise_collapsed(group, only_exceptions=True)
        output_incomplete = nursery.cancel_scope.cancelled_caught
    finally:
        # NOTE: also the cancellation path: the caller's Cancelled must not leave the
        # command (or anything it started) running.
        _kill_group(process.pid)
        with trio.move_on_after(_REAP_GRACE, shield=True):
            await process.wait()
        with trio.move_on_after(_REAP_GRACE, shield=True):
            for stream in streams:
                await stream.aclose()
    exit_code = process.returncode
    return GroupResult(
        exit_code=-signal.SIGKILL if exit_code is None else exit_code,
        stdout=stdout.result(),
        stderr=stderr.result(),
        timed_out=deadline.cancelled_caught,
        output_incomplete=output_incomplete,
    )
