"""The sandbox: a directory the file tools may not leave, resolved race-free.

Every path a model hands to a file tool is *walked*, never looked up by name and checked after
the fact::

    Sandbox.open_resolved(path, flags) / make_directory(path) / resolve(path)
      └─ root fd (the canonical root, opened once per call)
           └─ each component opened relative to the directory fd before it, links not followed:
                openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) for runs of plain names where the
                kernel offers it (Linux ≥ 5.6, not blocked by seccomp), else one
                os.open(name, O_NOFOLLOW | O_DIRECTORY, dir_fd=...) per component
           ─ a symbolic link met on the way is read (readlinkat) and its target walked the same
             way, from the directory that holds it (relative) or from the root (absolute);
             a target outside the root → SandboxViolation
           ─ ``..`` goes up one *walked* directory (the parent as the walk found it, re-walked
             from the root fd); ``..`` at the root → the path is outside → SandboxViolation
           ─ missing directories (write/append) are made with mkdirat relative to their parent
             fd, then opened with O_NOFOLLOW like any other component
           └─ the final component opened relative to its directory fd with O_NOFOLLOW
                (O_CREAT/O_TRUNC/O_APPEND included); a link there is followed as above

Because every step acts on an already-open directory and never follows a link by itself, a
concurrent swap of any component for a symbolic link cannot make a read, write, truncate, create,
mkdir, append or listing happen outside: the swapped-in link is seen as a link, read, and its
target refused (or, when it points inside, walked like any other path).

Decisions:

* Links that stay inside the sandbox are followed, component by component (never by the OS), so
  ``link_in/a.txt`` keeps working; links that lead out are refused, whether they lead out
  directly, via ``..`` or by an absolute target.
* ``..`` means what it means to the OS (``realpath``): the parent of the directory the walk has
  reached, after links; past the root it is refused. An absolute path (or absolute link target)
  inside the root is walked from the root; one spelled through another name for the root (a link
  above it) is translated with ``os.path.realpath`` first — only a hint, the walk from the root
  fd is what decides.
* The root itself, and the directories above it, are trusted: the root is resolved once, when
  the :class:`Sandbox` is made, and opened by that path for each operation.
* Needs ``dir_fd`` support for ``os.open``, ``os.mkdir`` and ``os.readlink`` (every POSIX system
  Python supports: Linux, macOS, the BSDs). Where it is missing (Windows) making a
  :class:`Sandbox` raises :class:`OSError` rather than confining paths with a racy check.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import attrs

from .._errors import SandboxViolation, ToolError

__all__ = ["Sandbox", "SandboxViolation", "open_beneath"]

_T = TypeVar("_T")

_DEFAULT_PATH_MAX = 4096
_DEFAULT_NAME_MAX = 255
# NOTE: like the kernel's MAXSYMLINKS: more links than this in one resolution is a loop.
_MAX_HOPS = 40

_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
# NOTE: walked directories are only used as dir_fd; O_PATH (Linux) / O_SEARCH need no read
# permission on them, just search permission, as a lookup by path does.
_O_SEARCH: int = getattr(os, "O_PATH", 0) or getattr(os, "O_SEARCH", 0) or os.O_RDONLY
_DIR_FLAGS = _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC | _O_SEARCH
# The errors an O_NOFOLLOW open gives for a symbolic link: ELOOP (Linux, POSIX), ENOTDIR
# (Linux with O_DIRECTORY), EMLINK (FreeBSD), EFTYPE (NetBSD).
_LINK_ERRNOS = frozenset(
    code
    for code in (
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EMLINK,
        getattr(errno, "EFTYPE", None),
    )
    if code is not None
)
_DIR_FD_SUPPORTED = {os.open, os.mkdir, os.readlink} <= os.supports_dir_fd

# openat2(2): Linux ≥ 5.6; the same syscall number on every architecture.
_SYS_OPENAT2 = 437
_AT_FDCWD = -100
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


# -- openat2 ---------------------------------------------------------------------------------


@functools.cache
def _openat2_call() -> Callable[[int, bytes, int, int], int] | None:
    """``openat2`` through ``syscall(2)`` if this kernel offers it, else ``None``.

    Probed once: ``ENOSYS`` (older kernel), ``EPERM`` (a seccomp filter that doesn't know the
    call, as in older container runtimes) or anything else unexpected means "not here", and
    the component walk does the work.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
    except ImportError:  # pragma: no cover - Python built without ctypes
        return None

    class OpenHow(ctypes.Structure):
        _fields_ = (
            ("flags", ctypes.c_uint64),
            ("mode", ctypes.c_uint64),
            ("resolve", ctypes.c_uint64),
        )

    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long

    def openat2(dir_fd: int, path: bytes, flags: int, resolve: int) -> int:
        how = OpenHow(flags=flags, mode=0, resolve=resolve)
        fd = int(
            syscall(
                ctypes.c_long(_SYS_OPENAT2),
                ctypes.c_int(dir_fd),
                ctypes.c_char_p(path),
                ctypes.byref(how),
                ctypes.c_size_t(ctypes.sizeof(how)),
            )
        )
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return fd

    return openat2 if _works(openat2) else None


def _works(openat2: Callable[[int, bytes, int, int], int]) -> bool:
    """Whether ``openat2`` really opens something here (one probe of the current directory)."""
    try:
        probe = openat2(_AT_FDCWD, b".", _DIR_FLAGS, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
    except OSError:  # ENOSYS: older kernel; EPERM: a seccomp filter; EINVAL: unknown flags
        return False
    os.close(probe)
    return True


def _use_openat2() -> bool:
    """Whether walks may take the ``openat2`` fast path (tests switch it off)."""
    return _openat2_call() is not None


def _openat2_beneath(dir_fd: int, names: Sequence[str], flags: int) -> int:
    openat2 = _openat2_call()
    assert openat2 is not None
    return openat2(
        dir_fd,
        os.fsencode("/".join(names)),
        flags | _O_CLOEXEC,
        _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
    )


def open_beneath(dir_fd: int, names: Sequence[str], flags: int) -> int:
    """Open ``names`` (plain components, no ``.``/``..``) below the directory ``dir_fd``
    without following any symbolic link, and return the new fd.

    Used where a link must not be followed at all (a recursive listing descending into the
    subdirectories it just saw): ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` where the
    kernel offers it, else one ``O_NOFOLLOW`` open per component.

    Raises:
        OSError: a component is missing, not a directory, or a symbolic link (``ELOOP``,
            ``ENOTDIR``, or the platform's errno for an ``O_NOFOLLOW`` link).
    """
    if not names:
        return os.open(".", flags | _O_CLOEXEC, dir_fd=dir_fd)
    if any(name in ("", ".", "..") or "/" in name for name in names):
        raise ValueError(f"open_beneath takes plain names, got {list(names)!r}")
    if _use_openat2():
        return _openat2_beneath(dir_fd, names, flags)
    current = dir_fd
    try:
        for name in names[:-1]:
            step = os.open(name, _DIR_FLAGS, dir_fd=current)
            if current != dir_fd:
                os.close(current)
            current = step
        return os.open(names[-1], flags | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=current)
    finally:
        if current != dir_fd:
            os.close(current)


def _link_target(dir_fd: int, name: str, error: OSError) -> str | None:
    """The target of ``name`` if the open that failed with ``error`` met a symbolic link."""
    if error.errno not in _LINK_ERRNOS:
        return None
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:  # not a link (EINVAL), or gone: the open's own error stands
        return None


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


# -- the walk --------------------------------------------------------------------------------


class _Outside(Exception):
    """The walk left the root; ``where`` is the absolute path it led to (for the message)."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


class _Walk:
    """One resolution in progress.

    It stands at an open directory (``fd``, reached from the root fd one component at a time;
    ``names`` are its canonical components below the root), possibly with ``virtual`` names
    below it that don't exist (yet), and ``final``, the last component, not opened (``None``:
    the directory itself).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_parts = list(root.parts[1:])
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.fd = self.root_fd
        self.names: list[str] = []
        self.virtual: list[str] = []
        self.final: str | None = None
        self.hops = 0
        # NOTE: resolve() only answers "where does it lead": like realpath, a component it
        # can't enter (a file, no permission) just ends the real part of the walk.
        self.lenient = False
        # NOTE: once openat2 met something it won't cross (a link, a missing or non-directory
        # component), the rest of this walk goes component by component.
        self.stepwise = not _use_openat2()

    def close(self) -> None:
        self._leave()
        os.close(self.root_fd)

    def path(self) -> Path:
        """Where the walk stands: the canonical absolute path (it may not exist)."""
        tail = [] if self.final is None else [self.final]
        return self.root.joinpath(*self.names, *self.virtual, *tail)

    # -- moving ------------------------------------------------------------------------------

    def _leave(self) -> None:
        if self.fd != self.root_fd:
            os.close(self.fd)
        self.fd = self.root_fd

    def _to_root(self) -> None:
        self._leave()
        self.names = []
        self.virtual = []

    def _enter(self, fd: int, names: Iterable[str]) -> None:
        self._leave()
        self.fd = fd
        self.names.extend(names)

    def _hop(self) -> None:
        self.hops += 1
        if self.hops > _MAX_HOPS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))

    def start(self, requested: str) -> list[str]:
        """The components to walk for ``requested`` (relative to the root, or absolute)."""
        if requested.startswith("/"):
            return self._absolute(requested, [])
        return _components(requested)

    def _absolute(self, path: str, rest: Sequence[str]) -> list[str]:
        """Go to the root and return the components below it that ``path/rest`` names.

        Raises:
            _Outside: the path is not the root or below it.
        """
        parts = _components(path) + list(rest)
        count = len(self.root_parts)
        if parts[:count] == self.root_parts:
            self._to_root()
            return parts[count:]
        # NOTE: not spelled through the root (e.g. through a link above it): realpath says
        # where it leads. That is only a translation; the walk from the root fd decides.
        try:
            real = os.path.realpath(os.path.join(path, *rest))
        except OSError:
            real = os.path.normpath(os.path.join(path, *rest))
        if not Path(real).is_relative_to(self.root):
            raise _Outside(real)
        self._to_root()
        return list(Path(real).relative_to(self.root).parts)

    def follow(self, target: str, rest: Sequence[str]) -> list[str]:
        """The components to walk after meeting a link to ``target`` in the current directory,
        with ``rest`` still to come."""
        self._hop()
        if target.startswith("/"):
            return self._absolute(target, rest)
        return _components(target) + list(rest)

    def advance(self, pending_parts: Sequence[str], *, create: bool) -> None:
        """Walk ``pending_parts`` from where the walk stands, up to the final component.

        Args:
            pending_parts: components (``..`` allowed; ``.`` and empty ones are skipped).
            create: make missing directories on the way (mkdirat relative to their parent).

        Raises:
            _Outside: the path leads out of the root.
            OSError: a component could not be opened (not a directory, permission, a loop).
        """
        parts: Sequence[str] | None = pending_parts
        while parts is not None:
            pending = deque(part for part in parts if part not in ("", "."))
            self.final = None
            while pending:
                name = pending.popleft()
                if name == "..":
                    self._up(pending)
                elif self.virtual:
                    # NOTE: below a missing directory nothing exists; ".." pops lexically,
                    # as realpath does.
                    if pending:
                        self.virtual.append(name)
                    else:
                        self.final = name
                elif not pending:
                    self.final = name
                else:
                    self._down(name, pending)
            if self.final is None:
                parts = self._name_the_directory()
                if parts is not None:
                    continue
            parts = self._make_virtual() if create and self.virtual else None

    def _up(self, pending: deque[str]) -> None:
        if self.virtual:
            self.virtual.pop()
            return
        if not self.names:
            # NOTE: above the root: outside, unless the rest leads back in by name
            # ("../sandbox/x"); _absolute decides and restarts from the root.
            self._hop()
            rest = self._absolute(str(self.root.parent), list(pending))
            pending.clear()
            pending.extend(rest)
            return
        # NOTE: the parent is the directory the walk came through; walk to it again from the
        # root fd rather than opening "..", which follows whatever the directory is now under.
        parents = self.names[:-1]
        self._to_root()
        pending.extendleft(reversed(parents))

    def _down(self, name: str, pending: deque[str]) -> None:
        """Enter the directory ``name`` (and, with openat2, the plain names after it)."""
        if not self.stepwise:
            run = [name]
            while len(pending) > 1 and pending[0] != "..":
                run.append(pending.popleft())
            if len(run) > 1:
                try:
                    fd = _openat2_beneath(self.fd, run, _DIR_FLAGS)
                except OSError:
                    self.stepwise = True
                else:
                    self._enter(fd, run)
                    return
            pending.extendleft(reversed(run[1:]))
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            target = _link_target(self.fd, name, exc)
            if target is not None:
                follow = self.follow(target, list(pending))
                pending.clear()
                pending.extend(part for part in follow if part not in ("", "."))
                return
            if exc.errno != errno.ENOENT and not self.lenient:
                raise
            self.virtual.append(name)
            return
        self._enter(fd, [name])

    def _name_the_directory(self) -> list[str] | None:
        """The walk ended on a directory (``.``, ``x/..``): make it the final component of
        its parent; ``None`` when it is the root (``final`` stays ``None``)."""
        if self.virtual:
            self.final = self.virtual.pop()
            return None
        if not self.names:
            return None
        names = self.names
        self._to_root()
        return names

    def _make_virtual(self) -> list[str] | None:
        """Make the missing directories; ``None`` when done, else components to walk on
        (a link appeared where a directory was made)."""
        while self.virtual:
            name = self.virtual[0]
            try:
                os.mkdir(name, dir_fd=self.fd)
            except FileExistsError:
                pass  # made meanwhile, or a file or link: the open below tells
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
            except OSError as exc:
                target = _link_target(self.fd, name, exc)
                if target is None:
                    raise
                rest = [*self.virtual[1:], *([] if self.final is None else [self.final])]
                self.virtual = []
                return self.follow(target, rest)
            self.virtual.pop(0)
            self._enter(fd, [name])
        return None


# -- the sandbox -----------------------------------------------------------------------------


def _canonical_root(root: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(root))))


def _check_root(instance: Sandbox, attribute: attrs.Attribute[Path], value: Path) -> None:
    if not _DIR_FD_SUPPORTED:
        raise OSError(
            errno.ENOTSUP,
            "this platform's os module cannot open files relative to a directory (dir_fd), "
            "which the sandbox needs to confine paths without races; run vega-trio on Linux, "
            "macOS or a BSD (on Windows: WSL or a container)",
        )
    if not value.is_dir():
        raise ValueError(
            f"sandbox root {str(value)!r} is not an existing directory; create it first "
            "(Sandbox.create(root) makes it) or pass another directory"
        )


def _pathconf(root: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(root, name)
    except (OSError, ValueError, AttributeError):
        return default
    return value if value > 0 else default


@attrs.frozen
class Sandbox:
    """A directory that file tools are confined to.

    ``Sandbox(root)`` takes an existing directory (``~`` expanded; the root's own symbolic
    links are resolved once, here). :meth:`create` makes the directory first.

    Every operation (:meth:`open_resolved`, :meth:`open`, :meth:`make_directory`) walks the
    path from an open root directory, component by component, never letting the OS follow a
    link (see the module docstring), so a concurrent swap of a component for a link cannot
    make it act outside. :meth:`resolve` walks the same way, to say where a path leads.

    Attributes:
        root: the canonical absolute path of the sandbox directory.

    Raises:
        ValueError: ``root`` is not an existing directory.
        OSError: the platform cannot open files relative to a directory (no ``dir_fd``).
    """

    root: Path = attrs.field(converter=_canonical_root, validator=_check_root)
    _path_max: int = attrs.field(init=False, repr=False, eq=False)
    _name_max: int = attrs.field(init=False, repr=False, eq=False)

    @_path_max.default
    def _default_path_max(self) -> int:
        return _pathconf(self.root, "PC_PATH_MAX", _DEFAULT_PATH_MAX)

    @_name_max.default
    def _default_name_max(self) -> int:
        return _pathconf(self.root, "PC_NAME_MAX", _DEFAULT_NAME_MAX)

    @classmethod
    def create(cls, root: str | os.PathLike[str]) -> Sandbox:
        """A sandbox at ``root``, creating the directory (and its parents) if needed.

        Raises:
            OSError: the directory could not be created.
        """
        os.makedirs(os.path.expanduser(os.fspath(root)), exist_ok=True)
        return cls(root)

    # -- paths --------------------------------------------------------------------------------

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """Where ``path`` really leads, provided that is inside the sandbox.

        Relative paths are relative to :attr:`root`. Symbolic links are followed (by the
        walk, one component at a time), including a dangling last link and links among the
        parents of a file that does not exist yet. This touches the file system; from async
        code call it in a worker thread.

        The answer is for display and validation: by the time it is used the file system may
        have changed, so no operation relies on it — they walk the path again themselves.

        Args:
            path: the path the model asked for.

        Returns:
            The absolute, symlink-free path (it may not exist yet).

        Raises:
            SandboxViolation: the path leads outside the sandbox, contains a NUL byte, is
                too long, is not a valid file name, or can't be resolved (a link loop).
        """
        requested = self._checked(path)

        def where(walk: _Walk) -> Path:
            while walk.final is not None and not walk.virtual:
                try:
                    target = os.readlink(walk.final, dir_fd=walk.fd)
                except OSError:  # not a link, or missing: the path ends here
                    break
                walk.advance(walk.follow(target, []), create=False)
            return walk.path()

        try:
            return self._walk(requested, where, create=False, lenient=True)
        except SandboxViolation:
            raise
        except OSError as exc:
            raise self._refuse(
                requested,
                None,
                f"path {requested!r} could not be resolved: {exc.strerror or exc}",
                "Use a path without symbolic link loops."
                if exc.errno == errno.ELOOP
                else "Check that its directories exist and can be searched.",
            ) from None

    def relative(self, resolved: Path) -> str:
        """``resolved`` (a result of :meth:`resolve`) relative to the root, as the model
        should write it: ``"notes/todo.txt"``, or ``"."`` for the root itself."""
        return resolved.relative_to(self.root).as_posix() or "."

    def open_resolved(
        self,
        path: str | os.PathLike[str],
        flags: int,
        mode: int = 0o644,
        *,
        make_parents: bool = False,
    ) -> tuple[int, Path]:
        """Open ``path`` inside the sandbox (blocking): the file descriptor, and where it is.

        The path is walked from the root (see the class docstring) and the last component is
        opened relative to its directory with ``O_NOFOLLOW`` and ``O_CLOEXEC`` added to
        ``flags``; a link there is followed by the walk, not by the OS. ``O_CREAT``,
        ``O_TRUNC`` and ``O_APPEND`` thus only ever act on a file inside. ``"."`` (or a
        path that ends in a directory) opens that directory: pass ``os.O_DIRECTORY`` to
        insist on one.

        Args:
            path: the path the model asked for.
            flags: ``os.O_*`` flags.
            mode: permission bits for a file that ``os.O_CREAT`` creates.
            make_parents: create missing directories on the way (each relative to its
                parent's fd).

        Returns:
            ``(fd, resolved)``: the open descriptor (the caller closes it) and the canonical
            absolute path it was opened at.

        Raises:
            SandboxViolation: the path leads outside (also when a component was swapped for
                a link that leads out while it was being walked), or is not a valid path.
            OSError: the file could not be opened (not found, a directory, ...).
        """
        requested = self._checked(path)
        flags |= _O_NOFOLLOW | _O_CLOEXEC

        def act(walk: _Walk) -> tuple[int, Path]:
            name = "." if walk.final is None else walk.final
            return os.open(name, flags, mode, dir_fd=walk.fd), walk.path()

        return self._walk(requested, act, create=make_parents)

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
        """Open ``path`` inside the sandbox and return the file descriptor (blocking).

        :meth:`open_resolved` without the path.
        """
        fd, _ = self.open_resolved(path, flags, mode)
        return fd

    def open_directory(self, path: str | os.PathLike[str]) -> tuple[int, Path]:
        """Open the directory ``path`` inside the sandbox for use as a ``dir_fd`` or with
        ``os.fchdir`` (``O_PATH`` where the OS has it: search permission suffices; not for
        listing — :meth:`open_resolved` with ``os.O_RDONLY | os.O_DIRECTORY`` for that).

        Returns:
            ``(fd, resolved)``, as :meth:`open_resolved`.

        Raises:
            SandboxViolation: see :meth:`open_resolved`.
            OSError: it is missing (``FileNotFoundError``) or not a directory
                (``NotADirectoryError``).
        """
        return self.open_resolved(path, _DIR_FLAGS)

    def make_directory(self, path: str | os.PathLike[str]) -> Path:
        """Create the directory ``path`` and its missing parents inside the sandbox (like
        ``os.makedirs(exist_ok=True)``), each relative to its parent's fd.

        Returns:
            The directory's canonical absolute path.

        Raises:
            SandboxViolation: see :meth:`open_resolved`.
            OSError: a component is a file, or the directory could not be made.
        """
        requested = self._checked(path)

        def act(walk: _Walk) -> Path:
            if walk.final is not None:
                try:
                    os.mkdir(walk.final, dir_fd=walk.fd)
                except FileExistsError:
                    pass  # a directory already, or something the open below refuses
            name = "." if walk.final is None else walk.final
            os.close(os.open(name, _DIR_FLAGS, dir_fd=walk.fd))
            return walk.path()

        return self._walk(requested, act, create=True)

    # -- helpers ------------------------------------------------------------------------------

    def _walk(
        self,
        requested: str,
        act: Callable[[_Walk], _T],
        *,
        create: bool,
        lenient: bool = False,
    ) -> _T:
        """Walk ``requested`` and call ``act`` on its last component; when ``act`` fails on
        a symbolic link there, follow the link and call it again."""
        try:
            walk = _Walk(self.root)
        except OSError as exc:
            raise ToolError(
                f"the sandbox root {str(self.root)!r} could not be opened: "
                f"{exc.strerror or exc}; re-create the directory or use another sandbox"
            ) from None
        walk.lenient = lenient
        try:
            parts = walk.start(requested)
            while True:
                walk.advance(parts, create=create)
                if walk.virtual and not lenient:
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), requested)
                try:
                    return act(walk)
                except OSError as exc:
                    if walk.final is None or walk.virtual:
                        raise
                    target = _link_target(walk.fd, walk.final, exc)
                    if target is None:
                        raise
                    parts = walk.follow(target, [])
        except _Outside as outside:
            raise self._outside(requested, outside.where) from None
        finally:
            walk.close()

    def _checked(self, path: str | os.PathLike[str]) -> str:
        requested = os.fspath(path)
        if not isinstance(requested, str):
            raise TypeError(f"sandbox paths are str, not {type(requested).__name__}")
        if "\x00" in requested:
            raise self._refuse(
                requested,
                None,
                f"path {requested!r} contains a NUL byte, which no file name can contain",
                "Pass the path without the NUL character.",
            )
        try:
            encoded = os.fsencode(requested)
        except UnicodeEncodeError:
            raise self._refuse(
                requested,
                None,
                f"path {requested!r} is not a valid file name (it cannot be encoded for "
                "the file system)",
                "Use a path made of ordinary characters.",
            ) from None
        self._check_length(requested, encoded, os.fsencode(self.root / requested))
        return requested

    def _outside(self, requested: str, where: str) -> SandboxViolation:
        lexical = Path(os.path.normpath(self.root / requested))
        how = (
            "a symbolic link on the way points outside the sandbox"
            if lexical.is_relative_to(self.root)
            else "it is outside the sandbox"
        )
        return self._refuse(
            requested,
            Path(where),
            f"path {requested!r} resolves to {where!r}, and {how} "
            f"{str(self.root)!r}; file tools only reach files inside the sandbox",
            "Use a path relative to the sandbox root, such as 'notes/todo.txt', "
            "and no '..' or links that lead out of it.",
        )

    def _check_length(self, requested: str, encoded: bytes, joined: bytes) -> None:
        longest = max((len(part) for part in encoded.split(b"/")), default=0)
        if longest > self._name_max:
            raise self._refuse(
                requested,
                None,
                f"path {requested[:80]!r}... has a component of {longest} bytes; file names "
                f"here are limited to {self._name_max} bytes",
                "Use shorter file and directory names.",
            )
        if len(joined) >= self._path_max:
            raise self._refuse(
                requested,
                None,
                f"path {requested[:80]!r}... is {len(joined)} bytes long within the sandbox; "
                f"paths here are limited to {self._path_max - 1} bytes",
                "Use a shorter path.",
            )

    def _refuse(
        self, requested: str, resolved: Path | None, what: str, todo: str
    ) -> SandboxViolation:
        return SandboxViolation(
            f"{what} (sandbox root: {str(self.root)!r}). {todo}",
            requested=requested,
            resolved=None if resolved is None else str(resolved),
            root=str(self.root),
        )
