"""``vega-trio reset``: delete everything in a store, after showing what and asking."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final, TextIO

import trio

from .._errors import StoreError
from .._redact import redact
from ._common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, write

__all__ = ["DEFAULT_DB", "reset_command"]

DEFAULT_DB: Final = ".vega-serve.db"
"""``vega-trio serve``'s default ``--db`` (SPEC §9), so a bare ``reset`` clears it."""


def _ask_stdin(question: str, out: TextIO) -> bool:
    """Print ``question`` and read a line from stdin (EOF: no)."""
    out.write(question)
    out.flush()
    answer = sys.stdin.readline()
    if not sys.stdin.isatty():
        out.write("\n")  # a piped answer is not echoed: end the question's line
    return answer.strip().lower() in ("y", "yes")


def _is_file_location(db: str) -> bool:
    return "://" not in db or db.startswith("sqlite://")


async def reset_command(
    db: str,
    *,
    yes: bool = False,
    ask: Callable[[str, TextIO], bool] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """What ``vega-trio reset`` does: show the rows per table of the store at ``db``,
    ask, and delete them all (the schema stays).

    Args:
        db: ``--db`` (a SQLite path, ``sqlite:///PATH`` or ``postgresql://…``).
        yes: ``--yes``: do not ask.
        ask: asks a yes/no question (default: a line from stdin; EOF is no).
        out: the counts and the question (default ``sys.stdout``).
        err: problems (default ``sys.stderr``).

    Returns:
        0 when the store was emptied (or there was nothing to delete), 1 when the
        question was answered no (nothing deleted), 2 when the store can't be opened.
    """
    from ..store import open_store

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    ask = _ask_stdin if ask is None else ask
    shown = redact(db)
    if _is_file_location(db):
        path = db.removeprefix("sqlite:///") if db.startswith("sqlite:///") else db
        if path != ":memory:" and not await trio.Path(path).exists():
            write(out, f"vega-trio: nothing to reset: there is no database at {shown}")
            return EXIT_OK
    try:
        async with open_store(db) as store:
            counts = await store.counts()
            total = sum(counts.values())
            if total == 0:
                write(out, f"vega-trio: {shown} is empty; nothing to delete")
                return EXIT_OK
            write(out, f"{shown}:")
            width = max(len(table) for table in counts)
            for table, count in counts.items():
                write(out, f"  {table:<{width}}  {count:>9,}")
            if not yes:
                question = f"Delete all {total:,} rows (events, runs, conversations…)? [y/N] "
                confirmed = await trio.to_thread.run_sync(
                    ask, question, out, abandon_on_cancel=True
                )
                if not confirmed:
                    write(out, "vega-trio: nothing deleted")
                    return EXIT_FAILED
            deleted = await store.reset()
    except StoreError as exc:
        write(err, f"vega-trio: error: {exc}")
        return EXIT_INVALID
    write(out, f"vega-trio: deleted {sum(deleted.values()):,} rows from {shown}")
    return EXIT_OK
