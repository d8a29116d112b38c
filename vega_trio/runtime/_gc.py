"""An explicit opt-in to collect garbage less often, for many processes at once.

CPython's cyclic garbage collector runs a young collection every 700 net allocations
of container objects, and every few of those an older one; a full collection walks
every live object. Thousands of processes in flight keep tens of objects each alive
across their LLM calls, so the collector runs often and every full collection walks
all of them: at 10,000 concurrent runs (B2) it was about half of the wall time.

The library never changes the interpreter's GC settings by itself (they are global to
the process, and other code in it has its own needs): :func:`relaxed_gc` is for the
program's owner to choose, around the part of the program that runs the processes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["relaxed_gc"]

#: Young-generation threshold of :func:`relaxed_gc` (CPython's default is 700).
DEFAULT_YOUNG_THRESHOLD = 10_000


@contextmanager
def relaxed_gc(young: int = DEFAULT_YOUNG_THRESHOLD) -> Iterator[None]:
    """Collect garbage less often while the block runs; restore the thresholds after.

    Raises the young-generation threshold of :func:`gc.set_threshold` to ``young``
    (the older generations' thresholds are kept, and the collector stays on), so the
    collector runs about ``young / 700`` times less often. Use it around the whole
    program, not inside a library::

        with relaxed_gc():
            trio.run(main)

    The cost: garbage in reference cycles lives a little longer (up to ``young`` more
    container allocations between collections). Objects freed by reference counting,
    most of them, are freed at once as always.

    Args:
        young: the young-generation threshold while the block runs (at least 1).

    Raises:
        ValueError: ``young`` is not a whole number of at least 1.
    """
    if isinstance(young, bool) or not isinstance(young, int) or young < 1:
        raise ValueError(f"relaxed_gc(young=...) takes a whole number of at least 1, got {young!r}")
    previous = gc.get_threshold()
    gc.set_threshold(young, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
