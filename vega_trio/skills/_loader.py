"""Finding and loading skill files from directories."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
import trio

from ._matching import SkillSet
from ._model import Skill, SkillError
from ._parser import is_skill_file, read_skill

__all__ = ["SkillLoader", "load_skills", "load_skills_async"]


def _paths(value: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    if isinstance(value, str | os.PathLike):
        return (Path(value),)
    return tuple(Path(item) for item in value)


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen(kw_only=True)
class SkillLoader:
    """Loads the skill files under some directories into a :class:`SkillSet`.

    Every ``*.skill.md`` and ``SKILL.md`` under each directory is read, recursively
    (hidden directories such as ``.git`` are skipped), in a stable order. A path
    that is itself a skill file is read as one.

    Attributes:
        directories: where to look; ``~`` is expanded, and relative paths are taken
            from ``base_dir`` (default: the current directory).
        include: skill-name globs to keep (all when empty); a plain name that matches
            no skill is an error.
        exclude: skill-name globs to drop.
        base_dir: what relative directories are relative to (a ``.vega.yaml`` file's
            folder, say).
        missing_ok: skip directories that do not exist instead of failing.

    Loading does blocking file I/O: call :meth:`load` at startup, or
    ``await`` :meth:`load_async` (a worker thread) from Trio code.
    """

    directories: tuple[Path, ...] = attrs.field(converter=_paths)
    include: tuple[str, ...] = attrs.field(default=(), converter=_names)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=_names)
    base_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    missing_ok: bool = False

    def resolved_directories(self) -> tuple[Path, ...]:
        """The directories with ``~`` expanded and relative ones made absolute."""
        base = (self.base_dir or Path.cwd()).expanduser()
        return tuple((base / d.expanduser()).absolute() for d in self.directories)

    def files(self) -> list[Path]:
        """Every skill file found, each once: directories in the order given; within one,
        its files by name, then its subdirectories by name.

        Raises:
            SkillError: a directory does not exist (unless ``missing_ok``) or cannot
                be listed.
        """
        found: dict[Path, Path] = {}  # resolved (to drop repeats) -> as found
        for given, directory in zip(self.directories, self.resolved_directories(), strict=True):
            if directory.is_file():
                if not is_skill_file(directory):
                    raise SkillError(
                        f"skills path {str(given)!r} ({directory}) is a file but not a skill "
                        "file; name it *.skill.md or SKILL.md, or give its directory",
                        path=directory,
                    )
                found.setdefault(directory.resolve(), directory)
                continue
            if not directory.is_dir():
                if self.missing_ok:
                    continue
                raise SkillError(
                    f"skills directory {str(given)!r} ({directory}) does not exist; "
                    "create it, fix the path, or remove it from the directories",
                    path=directory,
                )
            for path in _walk(directory):
                found.setdefault(path.resolve(), path)
        return list(found.values())

    def load(self) -> SkillSet:
        """Read every skill file and return the filtered :class:`SkillSet` (blocking).

        Raises:
            SkillError: a directory is missing, a file is invalid (when several are,
                one error lists them all in ``.errors``), two skills share a name
                (naming both files), or an ``include`` name matches no skill.
        """
        skills: list[Skill] = []
        errors: list[SkillError] = []
        for path in self.files():
            try:
                skills.append(read_skill(path))
            except SkillError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            listing = "\n".join(f"  - {e}" for e in errors)
            raise SkillError(f"{len(errors)} skill files are invalid:\n{listing}", errors=errors)
        return SkillSet(skills).filter(self.include, self.exclude)

    async def load_async(self) -> SkillSet:
        """:meth:`load` in a worker thread, so the Trio loop keeps running."""
        return await trio.to_thread.run_sync(self.load)


def _walk(directory: Path) -> list[Path]:
    found: list[Path] = []

    def raise_error(exc: OSError) -> None:
        raise SkillError(
            f"cannot list skills directory {exc.filename or directory} "
            f"({exc.strerror or exc}); check its permissions",
            path=directory,
        )

    for root, dirs, files in os.walk(directory, onerror=raise_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root, name) for name in sorted(files) if is_skill_file(Path(name)))
    return found


def load_skills(
    directories: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    include: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
    missing_ok: bool = False,
) -> SkillSet:
    """Load the skills under ``directories`` (blocking; see :class:`SkillLoader`).

    Raises:
        SkillError: see :meth:`SkillLoader.load`.
    """
    return SkillLoader(
        directories=directories,
        include=include,
        exclude=exclude,
        base_dir=base_dir,
        missing_ok=missing_ok,
    ).load()


async def load_skills_async(
    directories: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    include: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
    missing_ok: bool = False,
) -> SkillSet:
    """:func:`load_skills` in a worker thread, for use from Trio code.

    Raises:
        SkillError: see :meth:`SkillLoader.load`.
    """
    return await SkillLoader(
        directories=directories,
        include=include,
        exclude=exclude,
        base_dir=base_dir,
        missing_ok=missing_ok,
    ).load_async()
