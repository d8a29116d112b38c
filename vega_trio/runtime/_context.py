"""The process that is handling the current request, reachable from any code it runs."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._process import Process

__all__ = ["current_process", "current_process_or_none"]

# NOTE: Trio copies the context into every task a process's request handler starts and
# into worker threads (trio.to_thread), so tools see the process that called them.
_current: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "vega_trio_current_process", default=None
)


def current_process_or_none() -> Process | None:
    """The process handling the current request, or ``None`` outside any process."""
    return _current.get()


def current_process() -> Process:
    """The process handling the current request (for tools that spawn or inspect).

    Raises:
        RuntimeError: called outside a process's request handler.
    """
    proc = _current.get()
    if proc is None:
        raise RuntimeError(
            "current_process() was called outside a vega-trio process; "
            "call it from a tool or a behaviour while it handles a request"
        )
    return proc
