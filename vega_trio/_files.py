"""Reading files a user names — bounded (SPEC §11).

Every file the library reads because a user gave its path (a ``.vega.yaml`` document, a
skill file, ``--input`` JSON) goes through :func:`read_bounded_text`:

* only a **regular file** is read. The file is opened with ``O_NONBLOCK`` and checked with
  ``fstat`` before any read, so a FIFO is refused at once instead of blocking forever, and
  ``/dev/zero``, a terminal or a directory are refused instead of being read until memory
  runs out;
* at most a **size cap** of bytes is read (default :data:`DEFAULT_MAX_INPUT_BYTES`, 4 MiB;
  the ``VEGA_MAX_INPUT_BYTES`` environment variable or a ``max_bytes`` argument changes
  it). The read itself never asks for more than the cap plus one byte, so a file that
  grows while it is read is refused too;
* the bytes must be UTF-8 text.

Anything else raises :class:`~vega_trio.InputFileError`, whose message names the file,
says why and what to do.

YAML readers also bound what *aliases* may expand to (:func:`check_alias_expansion`): a
"billion laughs" document is a few hundred bytes that expand to billions of values.
"""

from __future__ import annotations

import os
import stat
from typing import Final

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from ._errors import InputFileError

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "MAX_ALIAS_EXPANSION",
    "MAX_INPUT_BYTES_ENV",
    "check_alias_expansion",
    "max_input_bytes",
    "read_bounded_text",
]

DEFAULT_MAX_INPUT_BYTES: Final = 4 * 1024 * 1024
"""The largest input file read when nothing else is configured (4 MiB)."""

MAX_INPUT_BYTES_ENV: Final = "VEGA_MAX_INPUT_BYTES"
"""The environment variable that overrides :data:`DEFAULT_MAX_INPUT_BYTES` (bytes)."""

MAX_ALIAS_EXPANSION: Final = 100_000
"""How many values YAML aliases (``*name``) may add to a document, counted as if every
alias were written out in full."""

_CHUNK: Final = 1024 * 1024


def max_input_bytes() -> int:
    """The size cap in force: ``$VEGA_MAX_INPUT_BYTES`` when set, else 4 MiB.

    Raises:
        InputFileError: the variable is not a positive whole number.
    """
    raw = os.environ.get(MAX_INPUT_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_INPUT_BYTES
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise InputFileError(
            f"{MAX_INPUT_BYTES_ENV}={raw!r} is not a positive whole number of bytes; "
            f"set it like {MAX_INPUT_BYTES_ENV}=8388608 (8 MiB) or unset it for 4 MiB",
            path=None,
        )
    return value


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bounded_text(
    path: str | os.PathLike[str], *, what: str = "input file", max_bytes: int | None = None
) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``max_bytes`` long.

    Blocking file I/O: call it at startup or through :func:`trio.to_thread.run_sync`.

    Args:
        path: the file a user named.
        what: what the file is, for the message (``"document"``, ``"skill file"``, ...).
        max_bytes: the size cap; ``None`` for :func:`max_input_bytes`.

    Raises:
        InputFileError: the file does not exist or cannot be opened, is not a regular
            file (a FIFO, a device such as ``/dev/zero``, a directory), is larger than the
            cap, or is not UTF-8 text. ``.path`` names it; the message says what to do.
    """
    name = os.fspath(path)
    limit = max_input_bytes() if max_bytes is None else max_bytes

    def fail(why: str, fix: str) -> InputFileError:
        return InputFileError(f"{name}: {what} {why}; {fix}", path=name)

    try:
        # NOTE: O_NONBLOCK so that opening a FIFO with no writer returns at once (a plain
        # open() would wait for a writer forever); fstat on the descriptor, not stat on the
        # name, so what is checked is what is read.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise fail("not found", "check the path") from None
    except IsADirectoryError:
        raise fail("is a directory, not a file", "give the path of a file") from None
    except OSError as exc:
        raise fail(
            f"cannot be opened ({exc.strerror or exc})", "check the path and its permissions"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            shown = kind if kind.startswith("not") else f"is {kind}"
            raise fail(f"{shown}, not a regular file", "give the path of a regular file")
        too_big = fail(
            f"is larger than the {limit:,}-byte limit for input files",
            f"make it smaller, or raise the limit with {MAX_INPUT_BYTES_ENV}=BYTES",
        )
        if info.st_size > limit:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            try:
                chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            except OSError as exc:
                raise fail(
                    f"cannot be read ({exc.strerror or exc})", "check the file and its disk"
                ) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise too_big
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(
            f"is not UTF-8 text ({exc.reason} at byte {exc.start})", "save it as UTF-8"
        ) from None


def check_alias_expansion(root: Node, *, limit: int = MAX_ALIAS_EXPANSION) -> Node | None:
    """``None`` when the aliases of the composed YAML tree ``root`` add at most ``limit``
    values to it; otherwise the anchored node whose repeats weigh most (to point at).

    A composed tree shares one node for every alias of an anchor; walking it as data
    visits the shared node again each time. This counts, in time linear in the number of
    *distinct* nodes, how many values such a walk visits, and compares the surplus over
    the distinct count with ``limit``. Recursive aliases (a node inside itself) are left
    to the readers, which report them.
    """
    expanded: dict[int, int] = {}
    shared: dict[int, Node] = {}
    active: set[int] = set()
    distinct = 0
    # Iterative post-order: a deeply nested document must not overflow the stack here.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            expanded[key] = 1 + sum(expanded.get(id(child), 1) for child in _children(node))
            continue
        if key in expanded:
            shared[key] = node
            continue
        if key in active:
            continue
        distinct += 1
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))
    if expanded.get(id(root), 1) - distinct <= limit:
        return None
    return max(shared.values(), key=lambda node: expanded[id(node)], default=root)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []
