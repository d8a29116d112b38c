"""``python tests/serve/_full_disk.py ARGS``: ``vega-trio ARGS`` on a simulated full disk.

While the file named by ``$VEGA_TEST_DISK_FULL`` exists, every SQLite connection of the
process has ``PRAGMA max_page_count`` set to the database's current size, so a write
that needs one more page fails with SQLITE_FULL, as on a full disk; when the file is
removed, the limit is lifted again. Each connection looks at the file before each
statement it runs (on its own thread, so no statement runs on it concurrently).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Any

FLAG = os.environ["VEGA_TEST_DISK_FULL"]
_NO_LIMIT = 1073741823
_connect = sqlite3.connect


class _Connection(sqlite3.Connection):
    _full = False

    def _follow_the_flag(self) -> None:
        full = os.path.exists(FLAG)
        if full != self._full:
            self._full = full
            pages = super().execute("PRAGMA page_count").fetchone()[0] if full else _NO_LIMIT
            super().execute(f"PRAGMA max_page_count = {pages}")

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        self._follow_the_flag()
        return super().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        self._follow_the_flag()
        return super().executemany(*args, **kwargs)


def _connect_on_a_full_disk(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs.setdefault("factory", _Connection)
    return _connect(*args, **kwargs)


sqlite3.connect = _connect_on_a_full_disk

if __name__ == "__main__":
    from vega_trio.cli import main

    sys.argv[0] = "vega-trio"
    main()
