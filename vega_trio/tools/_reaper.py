"""The reaper: a tiny stdlib-only program that runs one command and kills *every* descendant.

:func:`~vega_trio.tools._subprocess.run_process_group` does not start a command directly; it
starts ``python -I -S _reaper.py STATUS_FD [CWD_FD]`` (isolated, no ``site``: a few milliseconds;
with CWD_FD it first enters that open directory with ``fchdir``), which

1. reads the command (argv, complete environment, rlimits) from its stdin — the *control
   pipe* — so the environment never appears on a command line;
2. makes itself a **child subreaper** (``prctl(PR_SET_CHILD_SUBREAPER)``, Linux): a descendant
   whose parent dies is re-parented to the reaper instead of init, even one that called
   ``setsid`` to leave the command's session and process group;
3. forks the command into a process group of its own, with stdin from ``/dev/null``, default
   signal dispositions and the rlimits applied, then ``exec``s it (the output pipes are the
   reaper's stdout/stderr, inherited: nothing is copied);
4. waits until the command exits, the control pipe closes (the caller timed out, was
   cancelled, or died) or it gets ``SIGTERM``/``SIGHUP``/``SIGINT``; then SIGKILLs the
   command's group and, over and over, every child it has (found in ``/proc``) and reaps them,
   until it has no child left — what a killed process had started is re-parented to the reaper
   and killed in the next round, so nothing survives, whatever session it is in or which
   signals it ignores;
5. reports on the status fd: ``S <pid>`` once the command runs, ``E <errno> <message>`` when it
   could not be started, ``X <exit code>`` (negative: the signal) at the end.

Without ``prctl`` (not Linux) or ``/proc``, it still kills the command's process group; a
process that left the group can then survive (the caller's pipe drain stays bounded).

This file is run as a script and imports only the standard library; keep it that way (it runs
with ``-I -S``, without vega-trio or site-packages on the path).
"""

from __future__ import annotations

import os
import select
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import signal
else:
    # NOTE: the C module under ``signal``: ``signal`` itself imports enum and functools, which
    # would add a third to the reaper's start-up time (it runs once per command).
    import _signal as signal

PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# Dispositions Python changes at startup (SIGPIPE, SIGXFSZ ignored) or that the reaper sets;
# the command gets the defaults, as subprocess's restore_signals gives.
_RESET_SIGNALS = (
    signal.SIGPIPE,
    signal.SIGCHLD,
    *_STOP_SIGNALS,
    *((signal.SIGXFSZ,) if hasattr(signal, "SIGXFSZ") else ()),
)


def read_request(fd: int) -> tuple[list[bytes], dict[bytes, bytes], list[tuple[int, int, int]]]:
    """Read ``b"<length>\\n"`` and that many bytes of NUL-separated fields from ``fd``:
    the argv count and arguments, the environment count and ``NAME=value`` entries, the
    rlimit count and ``which,soft,hard`` triples (see ``encode_request``)."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("the control pipe closed before the command was sent")
        data += chunk
    length_text, _, data = data.partition(b"\n")
    length = int(length_text)
    while len(data) < length:
        chunk = os.read(fd, max(65536, length - len(data)))
        if not chunk:
            raise EOFError("the control pipe closed in the middle of the command")
        data += chunk
    fields = iter(data[:length].split(b"\0"))
    argv = [next(fields) for _ in range(int(next(fields)))]
    env: dict[bytes, bytes] = {}
    for _ in range(int(next(fields))):
        name, _, value = next(fields).partition(b"=")
        env[name] = value
    limits = []
    for _ in range(int(next(fields))):
        which, soft, hard = (int(x) for x in next(fields).split(b","))
        limits.append((which, soft, hard))
    return argv, env, limits


def encode_request(
    argv: list[bytes], env: dict[bytes, bytes], limits: list[tuple[int, int, int]]
) -> bytes:
    """The bytes :func:`read_request` reads (used by the caller's side)."""
    fields = [str(len(argv)).encode(), *argv, str(len(env)).encode()]
    fields += [name + b"=" + value for name, value in env.items()]
    fields.append(str(len(limits)).encode())
    fields += [f"{which},{soft},{hard}".encode() for which, soft, hard in limits]
    payload = b"\0".join(fields)
    return str(len(payload)).encode() + b"\n" + payload


def become_subreaper() -> bool:
    """Ask Linux to re-parent orphaned descendants to this process; ``False`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except Exception:  # no libc symbol, no ctypes: fall back to the process group alone
        return False


def children(me: int) -> list[int]:
    """The pids whose parent is ``me``, read from ``/proc`` (empty without it).

    ``/proc/<pid>/task/<tid>/children`` is used when the kernel has it; otherwise every
    ``/proc/<pid>/stat`` is scanned for its parent pid.
    """
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return found
    try:
        for task in tasks:
            with open(f"/proc/{me}/task/{task}/children", "rb") as file:
                found.extend(int(pid) for pid in file.read().split())
        return found
    except OSError:
        found.clear()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue  # it ended meanwhile
        # NOTE: the name (field 2) may contain spaces and ')'; the fields after the last
        # ')' are: state, ppid, ...
        after = stat.rpartition(b")")[2].split()
        if len(after) > 1 and int(after[1]) == me:
            found.append(int(entry))
    return found


def _kill(pid: int, group: bool = False) -> None:
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # already gone


def _spawn(argv: list[bytes], env: dict[bytes, bytes], limits: list[tuple[int, int, int]]) -> int:
    """Fork and exec the command; raise the ``OSError`` that kept it from starting."""
    error_read, error_write = os.pipe()  # close-on-exec: EOF means exec succeeded
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            os.close(error_read)
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            for number in _RESET_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            if limits:
                import resource

                for which, soft, hard in limits:
                    try:
                        resource.setrlimit(which, (soft, hard))
                    except (OSError, ValueError):
                        pass  # "where the OS allows": a limit it refuses is skipped
            os.execvpe(argv[0], argv, env)
        except Exception as exc:
            number = exc.errno if isinstance(exc, OSError) and exc.errno else 0
            message = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
            os.write(error_write, f"{number} {message}".encode(errors="replace"))
        finally:
            # NOTE: the forked child never returns into the reaper's code, whatever happens.
            os._exit(127)
    os.close(error_write)
    report = b""
    while chunk := os.read(error_read, 4096):
        report += chunk
    os.close(error_read)
    if report:
        os.waitpid(pid, 0)
        number, _, message = report.decode(errors="replace").partition(" ")
        raise OSError(int(number), message)
    return pid


class _Reaper:
    def __init__(self, status_fd: int) -> None:
        self.me = os.getpid()
        self.status_fd = status_fd
        self.stop = False
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self.wake = wake_read
        # NOTE: a signal writes a byte to the wake pipe, so poll() returns for it (PEP 475
        # would otherwise resume the poll after the handler).
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda number, frame: None)
        for number in _STOP_SIGNALS:
            signal.signal(number, self._on_stop)
        self.poller = select.poll()
        self.poller.register(self.wake, select.POLLIN)

    def _on_stop(self, number: int, frame: object) -> None:
        self.stop = True

    def say(self, text: str) -> None:
        try:
            os.write(self.status_fd, text.encode() + b"\n")
        except OSError:
            pass  # the caller is gone; the cleanup still happens

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake, 4096):
                pass
        except BlockingIOError:
            pass

    def _reap_ready(self, command: int, status: int | None) -> tuple[int | None, bool]:
        """Reap every child that has ended; ``(command's status, any child left)``."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return status, False
            if pid == 0:
                return status, True
            if pid == command:
                status = wait_status

    def run(self, command: int) -> int:
        self.poller.register(0, select.POLLIN)
        status: int | None = None
        while status is None and not self.stop:
            # NOTE: reaping here also collects re-parented orphans that end on their own.
            status, _ = self._reap_ready(command, status)
            if status is not None or self.stop:
                break
            for fd, _event in self.poller.poll():
                if fd == 0:
                    try:
                        data = os.read(0, 4096)
                    except OSError:
                        data = b""
                    if not data:  # the caller closed the control pipe: stop
                        self.stop = True
                        self.poller.unregister(0)
                else:
                    self._drain_wake()
        return self.kill_everything(command, status)

    def kill_everything(self, command: int, status: int | None) -> int:
        """Kill the command's group and every child until none is left; the exit code."""
        _kill(command, group=True)
        while True:
            # NOTE: no child at all means no descendant at all (an orphaned descendant is
            # re-parented to us), so the common case needs no scan of /proc.
            status, left = self._reap_ready(command, status)
            if not left:
                break
            for pid in children(self.me):
                _kill(pid, group=False)
            # NOTE: wait for a SIGCHLD (the wake pipe), at most 10 ms: a child re-parented
            # to us after the scan is found by the next one.
            self.poller.poll(10)
            self._drain_wake()
        if status is None:  # pragma: no cover - the command is our child: always reaped
            return -signal.SIGKILL
        return os.waitstatus_to_exitcode(status)


def main() -> int:
    status_fd = int(sys.argv[1])
    os.set_inheritable(status_fd, False)
    reaper = _Reaper(status_fd)
    if len(sys.argv) > 2:
        # NOTE: the working directory comes as an open fd (run_command's sandbox): entered
        # with fchdir, never by path, so a swapped path component can't redirect the command.
        cwd_fd = int(sys.argv[2])
        try:
            os.fchdir(cwd_fd)
        except OSError as exc:
            reaper.say(f"E {exc.errno or 0} {exc.strerror or exc}")
            return 0
        os.close(cwd_fd)
    try:
        argv, env, limits = read_request(0)
    except (EOFError, ValueError, StopIteration) as exc:
        reaper.say(f"E 0 the reaper got no valid command: {exc}")
        return 2
    become_subreaper()
    try:
        command = _spawn(argv, env, limits)
    except OSError as exc:
        reaper.say(f"E {exc.errno or 0} {exc.strerror or exc}")
        return 0
    reaper.say(f"S {command}")
    # NOTE: the command holds the output pipes now; the reaper lets go of its copies so that
    # they reach EOF when the command's last process closes them.
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    code = reaper.run(command)
    reaper.say(f"X {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
