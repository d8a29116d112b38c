"""The sandbox: a directory the file tools may not leave.

Every path a model hands to a file tool goes through :meth:`Sandbox.resolve`:

* a relative path is taken relative to the sandbox root; an absolute one is taken as is;
* symbolic links are followed (also links whose target does not exist yet, and the parents of a
  file that is about to be created), so the result names what the OS would really touch;
* the result must be the root or lie below it, compared component by component (so
  ``/tmp/sandbox-evil`` is *not* inside ``/tmp/sandbox``); anything else is refused with
  :class:`SandboxViolation` — a path is never silently redirected into the sandbox.

:meth:`Sandbox.open` opens the resolved path without following a final symbolic link and, where
the OS can tell (Linux), checks again which file it really opened, so a link swapped in between
the check and the open is caught as well.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import attrs

from .._errors import ToolError

__all__ = ["Sandbox", "SandboxViolation"]

_DEFAULT_PATH_MAX = 4096
_DEFAULT_NAME_MAX = 255


class SandboxViolation(ToolError):
    """A path was refused because it is (or resolves to something) outside the sandbox, or it
    cannot be a file name at all (NUL byte, too long).

    Attributes:
        requested: the path as it was asked for.
        resolved: where it led, symbolic links followed (``None`` when it was refused before
            it could be resolved).
        root: the sandbox root.
    """

    def __init__(self, message: str, *, requested: str, resolved: str | None, root: str) -> None:
        super().__init__(message)
        self.requested = requested
        self.resolved = resolved
        self.root = root


def _canonical_root(root: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(root))))


def _check_root(instance: Sandbox, attribute: attrs.Attribute[Path], value: Path) -> None:
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

    Attributes:
        root: the canonical absolute path of the sandbox directory.
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

        Relative paths are relative to :attr:`root`. Symbolic links are followed, including
        a dangling last link and links among the parents of a file that does not exist yet.
        This touches the file system (``lstat``/``readlink``); from async code call it in a
        worker thread.

        Args:
            path: the path the model asked for.

        Returns:
            The absolute, symlink-free path (it may not exist yet).

        Raises:
            SandboxViolation: the path leads outside the sandbox, contains a NUL byte, is
                too long or is not a valid file name.
        """
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
        candidate = self.root / requested
        self._check_length(requested, encoded, os.fsencode(candidate))
        try:
            resolved = Path(os.path.realpath(candidate))
        except OSError as exc:  # e.g. ENAMETOOLONG once a link's target is spliced in
            raise self._refuse(
                requested,
                None,
                f"path {requested!r} could not be resolved: {exc.strerror or exc}",
                "Use a shorter path without symbolic link loops.",
            ) from None
        if not resolved.is_relative_to(self.root):
            lexical = Path(os.path.normpath(candidate))
            how = (
                "a symbolic link on the way points outside the sandbox"
                if lexical.is_relative_to(self.root)
                else "it is outside the sandbox"
            )
            raise self._refuse(
                requested,
                resolved,
                f"path {requested!r} resolves to {str(resolved)!r}, and {how} "
                f"{str(self.root)!r}; file tools only reach files inside the sandbox",
                "Use a path relative to the sandbox root, such as 'notes/todo.txt', "
                "and no '..' or links that lead out of it.",
            )
        return resolved

    def relative(self, resolved: Path) -> str:
        """``resolved`` (a result of :meth:`resolve`) relative to the root, as the model
        should write it: ``"notes/todo.txt"``, or ``"."`` for the root itself."""
        return resolved.relative_to(self.root).as_posix() or "."

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
        """Open ``path`` inside the sandbox and return the file descriptor (blocking).

        The path is resolved with :meth:`resolve` and opened with ``O_NOFOLLOW`` (and
        ``O_CLOEXEC``); on Linux the opened file's real path is checked once more, so a link
        swapped in by a concurrently running command is refused rather than followed.

        Args:
            path: the path the model asked for.
            flags: ``os.O_*`` flags.
            mode: permission bits for a file that ``os.O_CREAT`` creates.

        Raises:
            SandboxViolation: see :meth:`resolve`; also when the file changed into a link
                that leads out while it was being opened.
            OSError: the file could not be opened (not found, a directory, ...).
        """
        requested = os.fspath(path)
        resolved = self.resolve(requested)
        flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(resolved, flags, mode)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._refuse(
                    requested,
                    resolved,
                    f"path {requested!r} became a symbolic link while it was being opened",
                    "Try again once nothing is changing the file.",
                ) from None
            raise
        opened = _opened_path(fd)
        if opened is not None and not opened.is_relative_to(self.root):
            os.close(fd)
            raise self._refuse(
                requested,
                opened,
                f"path {requested!r} was opened as {str(opened)!r}, outside the sandbox "
                f"{str(self.root)!r} (a directory on the way was replaced by a link)",
                "Use a path whose directories are not being changed concurrently.",
            )
        return fd

    # -- helpers ------------------------------------------------------------------------------

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


def _opened_path(fd: int) -> Path | None:
    # NOTE: /proc/self/fd/N names the file an fd really refers to; other systems have no
    # cheap equivalent, and there the O_NOFOLLOW open of a just-resolved path is the guard.
    if not sys.platform.startswith("linux"):
        return None
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    if not target.startswith("/"):  # "pipe:[...]", "anon_inode:..."; not a path
        return None
    return Path(target)
