"""``$VEGA_HOME/env`` (default ``~/.vega/env``): settings and keys the CLI loads at start.

The file holds ``KEY=VALUE`` lines, as ``vega-trio init`` writes them::

    # comments and blank lines are ignored
    ANTHROPIC_API_KEY=sk-ant-...
    export TELEGRAM_ALLOWED_USERS="123456789, 987654321"   # 'export ' is tolerated
    GREETING='single quotes: taken literally'
    MOTD="double quotes: \\n \\t \\" \\\\ are escapes"

Variables already set in the environment win over the file. A line that cannot be read
is reported as ``FILE:LINE: ...`` and skipped (the rest still loads); a file the command
cannot read at all is reported and the command goes on without it. Neither a value nor a
malformed line's text is ever printed: the file holds secrets. ``$VAR`` is not expanded.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Final

import attrs

from .._errors import InputFileError
from .._files import read_bounded_text

__all__ = [
    "ENV_FILE_MAX_BYTES",
    "EnvLine",
    "env_file",
    "format_assignment",
    "load_env_file",
    "parse_env",
    "update_env_file",
    "vega_home",
]

#: The env file is a few lines; anything bigger is a mistake (a wrong file, a log).
ENV_FILE_MAX_BYTES: Final = 256 * 1024

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPORT: Final = re.compile(r"export\s+")
# Written unquoted: what no reader (this one, a shell, python-dotenv) could take otherwise.
_PLAIN_VALUE: Final = re.compile(r"[A-Za-z0-9_\-.:/,+@%=]*")
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$", "'": "'"}


def vega_home(env: Mapping[str, str] | None = None) -> Path:
    """vega-trio's directory: ``$VEGA_HOME``, else ``~/.vega``."""
    env = os.environ if env is None else env
    home = env.get("VEGA_HOME")
    return Path(home).expanduser() if home else Path.home() / ".vega"


def env_file(env: Mapping[str, str] | None = None) -> Path:
    """The env file: ``$VEGA_HOME/env``, else ``~/.vega/env``."""
    return vega_home(env) / "env"


@attrs.frozen
class EnvLine:
    """One line of an env file.

    Attributes:
        number: its 1-based line number.
        text: the line as written (without its newline).
        key: the variable it sets, or ``None`` (blank, comment, malformed).
        value: the value it sets (quotes removed, escapes applied).
        problem: why it was skipped, when it is malformed (never quotes the line).
    """

    number: int
    text: str
    key: str | None = None
    value: str = ""
    problem: str | None = None


def parse_env(text: str) -> list[EnvLine]:
    """Every line of an env file's ``text``, parsed (see the module docstring)."""
    # NOTE: split on "\n" only (a CRLF file's "\r" dropped): str.splitlines() would also
    # split on \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029, which a quoted value may hold.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [_parse_line(number, line.removesuffix("\r")) for number, line in enumerate(lines, 1)]


def _parse_line(number: int, line: str) -> EnvLine:
    body = line.strip()
    if not body or body.startswith("#"):
        return EnvLine(number, line)
    export = _EXPORT.match(body)
    if export:
        body = body[export.end() :]
    key, sep, rest = body.partition("=")
    key = key.strip()
    if not sep:
        return EnvLine(number, line, problem="expected KEY=VALUE (no '=' on the line)")
    if not _NAME.fullmatch(key):
        return EnvLine(
            number,
            line,
            problem="the name before '=' is not a variable name (letters, digits and _, "
            "not starting with a digit)",
        )
    try:
        value = _parse_value(rest.lstrip())
    except ValueError as exc:
        return EnvLine(number, line, problem=f"{key}: {exc}")
    if "\0" in value:
        return EnvLine(number, line, problem=f"{key}: the value contains a NUL character")
    return EnvLine(number, line, key=key, value=value)


def _parse_value(raw: str) -> str:
    """The value after ``=``: quoted (the quotes removed) or bare (an inline ``# ...``
    comment after a space removed)."""
    if raw.startswith("'"):
        end = raw.find("'", 1)
        if end < 0:
            raise ValueError("the single quote is not closed on this line")
        _only_comment_after(raw[end + 1 :])
        return raw[1:end]
    if raw.startswith('"'):
        out: list[str] = []
        index = 1
        while index < len(raw):
            char = raw[index]
            if char == '"':
                _only_comment_after(raw[index + 1 :])
                return "".join(out)
            if char == "\\" and index + 1 < len(raw):
                following = raw[index + 1]
                # NOTE: an unknown escape keeps its backslash, as a shell's double quotes do.
                out.append(_ESCAPES.get(following, "\\" + following))
                index += 2
                continue
            out.append(char)
            index += 1
        raise ValueError("the double quote is not closed on this line")
    comment = re.search(r"\s#", raw)
    return (raw[: comment.start()] if comment else raw).rstrip()


def _only_comment_after(rest: str) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ValueError("text after the closing quote (quote the whole value)")


def load_env_file(
    environ: MutableMapping[str, str] | None = None,
    *,
    warn: Callable[[str], None],
    path: Path | None = None,
) -> list[str]:
    """Load the env file into ``environ`` (default ``os.environ``); never raises.

    Variables ``environ`` already has are left as they are. Every problem goes to
    ``warn`` as one line: a malformed line (``FILE:LINE: ... ; line skipped``), a file
    that cannot be read, a file group or others may read or write.

    Args:
        environ: the environment to fill.
        warn: called with each warning.
        path: the file (default :func:`env_file` of ``environ``).

    Returns:
        The names set from the file.
    """
    environ = os.environ if environ is None else environ
    try:
        path = env_file(environ) if path is None else path
    except RuntimeError:  # no VEGA_HOME and no home directory (HOME unset): no file
        return []
    try:
        info = path.stat()
    except FileNotFoundError:
        return []
    except OSError as exc:
        warn(f"{path}: cannot read the env file ({exc.strerror or exc}); not loaded")
        return []
    try:
        text = read_bounded_text(path, what="env file", max_bytes=ENV_FILE_MAX_BYTES)
    except InputFileError as exc:
        warn(f"{exc}; not loaded")
        return []
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        warn(
            f"{path}: the env file holds secrets but group or others may access it "
            f"(mode {mode:04o}); run: chmod 600 {path}"
        )
    loaded: list[str] = []
    for line in parse_env(text):
        if line.problem is not None:
            warn(f"{path}:{line.number}: {line.problem}; line skipped")
        elif line.key is not None and line.key not in environ:
            environ[line.key] = line.value
            loaded.append(line.key)
        elif line.key is not None and line.key in loaded:
            environ[line.key] = line.value  # a later line of the file wins over an earlier one
    return loaded


def format_assignment(key: str, value: str) -> str:
    """``KEY=VALUE`` as :func:`parse_env` reads it back (double-quoted when needed)."""
    if _PLAIN_VALUE.fullmatch(value):
        return f"{key}={value}"
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'{key}="{escaped}"'


def update_env_file(path: Path, values: Mapping[str, str]) -> list[str]:
    """Set ``values`` in the env file at ``path``, keeping everything else in it.

    A key already in the file is rewritten where it first appears (its later
    duplicates removed: a later line would win); new keys are appended. Comments,
    blank lines, malformed lines and other keys stay as written. The file is replaced
    atomically (a temporary file in the same directory, then a rename) with mode 0600;
    a missing directory is created with mode 0700. When ``path`` is a symbolic link, the
    file it points at is the one replaced (the link stays).

    Args:
        path: the env file.
        values: the variables to set.

    Returns:
        The other keys the file keeps.

    Raises:
        OSError: the directory or the file cannot be written (or the old file read).
        InputFileError: the old file cannot be read as an env file (not a regular
            file, too big, not UTF-8): it is left alone.
    """
    for key, value in values.items():
        if not _NAME.fullmatch(key) or "\0" in value:
            raise ValueError(f"cannot write {key!r} to an env file")
    if path.is_symlink():  # a dotfiles manager's link: write the file it points at
        path = path.resolve()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = (
        read_bounded_text(path, what="env file", max_bytes=ENV_FILE_MAX_BYTES)
        if path.exists()
        else ""
    )
    out: list[str] = []
    written: set[str] = set()
    kept: list[str] = []
    for line in parse_env(old):
        if line.key is not None and line.key in values:
            if line.key not in written:
                out.append(format_assignment(line.key, values[line.key]))
                written.add(line.key)
            continue
        if line.key is not None and line.key not in kept:
            kept.append(line.key)
        out.append(line.text)
    out.extend(format_assignment(key, value) for key, value in values.items() if key not in written)
    data = ("\n".join(out) + "\n").encode()
    # NOTE: mkstemp creates the file 0600 (no moment where the secret is readable by
    # others) in the same directory (so the rename is atomic); it is fsynced, then renamed
    # over the old file: a crash leaves the old file or the new one, never half of one.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    replaced = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        replaced = True
    finally:
        if not replaced:
            temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return kept


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every platform opens directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
