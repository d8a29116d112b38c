"""A real, throwaway PostgreSQL server for the tests (Debian's ``postgresql`` package).

``initdb`` into a temporary directory, ``pg_ctl start`` on a free loopback port with the
socket in that directory, and ``pg_ctl stop`` (by its pid file) at the end. As root the
binaries run as the ``postgres`` user (PostgreSQL refuses to run as root).

Stdlib only: ``noxfile.py`` loads this file (by path) to decide whether it must install
the package first, before the project's dependencies exist.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_SEARCH",
    "reap_stale_servers",
    "PostgresServer",
    "PostgresUnavailable",
    "find_pg_bin",
    "postgres_missing_reason",
]

DEFAULT_SEARCH: tuple[str, ...] = ("/usr/lib/postgresql/*/bin",)
"""Where Debian puts a major version's server binaries (``initdb`` is not on ``PATH``)."""


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be run here (the reason is the message)."""


def _version_key(path: str) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` → ``(15,)`` (newest major version wins)."""
    major = Path(path).parent.name
    return tuple(int(p) for p in major.split(".") if p.isdigit()) or (0,)


def find_pg_bin(search: Sequence[str] = DEFAULT_SEARCH) -> Path | None:
    """The newest directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    found: list[str] = []
    for pattern in search:
        for directory in glob.glob(pattern):
            if all(os.access(os.path.join(directory, b), os.X_OK) for b in _BINARIES):
                found.append(directory)
    if not found:
        on_path = shutil.which("initdb")
        if on_path and shutil.which("pg_ctl") and shutil.which("postgres"):
            return Path(on_path).parent
        return None
    return Path(max(found, key=_version_key))


_BINARIES = ("initdb", "pg_ctl", "postgres")


def postgres_missing_reason(search: Sequence[str] = DEFAULT_SEARCH) -> str | None:
    """Why no test server can run here (``None`` when one can)."""
    if find_pg_bin(search) is None:
        return (
            "PostgreSQL server binaries not found (no initdb under "
            + ", ".join(search)
            + "): install Debian's `postgresql` package (`apt-get install -y postgresql`; "
            "`nox -s tests` does it when run as root)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PREFIX = "vega-pg-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_servers(tmp: str | None = None) -> list[Path]:
    """Stop and remove the servers of test sessions that died without their teardown
    (SIGKILL, a timeout): their directory's ``owner`` process is gone. The directories
    removed."""
    reaped: list[Path] = []
    for base in Path(tmp or tempfile.gettempdir()).glob(_PREFIX + "*"):
        try:
            owner = int((base / "owner").read_text())
        except (OSError, ValueError):
            # No owner yet: a session may be starting right now; only old ones are stale.
            try:
                if time.time() - base.stat().st_mtime < 300:
                    continue
            except OSError:
                continue
            owner = -1
        if owner > 0 and _alive(owner):
            continue
        pid_file = base / "data" / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        if pid > 0 and _alive(pid):
            try:
                os.kill(pid, 3)  # SIGQUIT: PostgreSQL's immediate shutdown
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, 9)
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
    return reaped


class PostgresServer:
    """One PostgreSQL cluster in a temp directory, on a free port of 127.0.0.1.

    Args:
        bin_dir: Where ``initdb``/``pg_ctl`` are (default: :func:`find_pg_bin` of ``search``).
        search: Glob patterns of candidate bin directories.
        fsync: ``False`` (the tests' default) keeps the disk quiet; a server stopped with
            ``-m immediate`` loses nothing either way (its WAL is in the OS cache), only a
            machine crash would.
    """

    user = "vega"

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        search: Sequence[str] = DEFAULT_SEARCH,
        fsync: bool = False,
    ) -> None:
        found = bin_dir or find_pg_bin(search)
        if found is None:
            raise PostgresUnavailable(postgres_missing_reason(search) or "no PostgreSQL")
        self.bin_dir = found
        self.fsync = fsync
        self.password = "pw-" + secrets.token_hex(8)
        self.port = _free_port()
        reap_stale_servers()
        self.base = Path(tempfile.mkdtemp(prefix=_PREFIX))
        (self.base / "owner").write_text(str(os.getpid()))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._run_as: tuple[int, int] | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self._run_as = (entry.pw_uid, entry.pw_gid)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._databases = 0

    # ------------------------------------------------------------------ helpers
    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """Run one server binary (as ``postgres`` when we are root); its output."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._run_as is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,
            check=False,
        )
        if check and done.returncode != 0:
            raise PostgresUnavailable(
                f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}"
                + self._log_tail()
            )
        return done.stdout + done.stderr

    def _log_tail(self) -> str:
        try:
            return "\nserver log:\n" + self.log.read_text()[-2000:]
        except OSError:
            return ""

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """A ``postgresql://`` URL of ``database`` on this server."""
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    # ---------------------------------------------------------------- lifecycle
    def init(self) -> None:
        """``initdb``: a superuser ``vega`` with a password (SCRAM over TCP)."""
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._run_as is not None:
            os.chown(pwfile, *self._run_as)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
        )

    def start(self) -> None:
        """``pg_ctl start`` and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``; falls back to SIGKILL of the pid-file's process."""
        if not self.pid_file.exists():
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        if self.pid_file.exists() and mode != "immediate":
            self._kill_by_pid_file()

    def _kill_by_pid_file(self) -> None:
        try:
            pid = int(self.pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database; its URL."""
        self._databases += 1
        name = name or f"t{self._databases}_{secrets.token_hex(3)}"
        self._run(
            "psql",
            "-h",
            str(self.base),
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            f'CREATE DATABASE "{name}"',
        )
        return self.url(name)

    def psql(self, database: str, sql: str) -> str:
        """Run SQL with ``psql`` on the socket (unaligned, tuples only); its output."""
        return self._run(
            "psql",
            "-h",
            str(self.base),
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAtc",
            sql,
        ).strip()

    def cleanup(self) -> None:
        """Stop the server (immediate: its data is thrown away; then by pid) and remove
        its directory."""
        try:
            self.stop("immediate")
            if self.pid_file.exists():
                self._kill_by_pid_file()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.init()
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
