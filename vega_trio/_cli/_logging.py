"""Where the CLI's log records go: one stderr handler on the ``vega_trio`` logger, for the
length of a command (the library itself installs none)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Final, Literal, TextIO

from .._log import JsonFormatter, TextFormatter
from .._redact import RedactingFilter

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "LogFormat", "cli_logging", "level_from_flags"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")

#: Without a flag or ``settings.logging.level``: warnings show (a budget's ``warn``).
DEFAULT_LEVEL: Final = logging.WARNING


def level_from_flags(log_level: str | None, verbose: int) -> str | None:
    """The level the command line asks for: ``--log-level`` wins, then ``-v`` (info)
    and ``-vv`` (debug); ``None`` when neither is given (then ``settings.logging.level``
    of the document applies, else warning)."""
    if log_level:
        return log_level.lower()
    if verbose >= 2:
        return "debug"
    if verbose == 1:
        return "info"
    return None


class _HideEvents(logging.Filter):
    """Drops records of events the command already shows as its own lines (so a budget
    warning is not printed twice: once as progress, once as a log record)."""

    def __init__(self, events: Collection[str]) -> None:
        super().__init__()
        self._events = frozenset(events)

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "event", None) not in self._events


@contextmanager
def cli_logging(
    stream: TextIO,
    *,
    level: str | None = None,
    log_format: LogFormat = "text",
    shown_elsewhere: Collection[str] = (),
) -> Iterator[logging.Handler]:
    """Show the ``vega_trio`` loggers' records on ``stream`` for the ``with`` block.

    Args:
        stream: where records go (stderr).
        level: ``debug`` … ``critical`` from the command line; ``None``: warning until
            a document's ``settings.logging.level`` says otherwise.
        log_format: ``text`` (``LEVEL logger: message``) or ``json`` (one object per
            line with ``time``, ``level``, ``logger``, ``message`` and every ``extra``).
        shown_elsewhere: ``event`` names of records not to print in text format,
            because the command prints those events itself (its progress lines).

    Yields:
        The handler (removed, and the logger's level restored, on exit).
    """
    logger = logging.getLogger("vega_trio")
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
        if shown_elsewhere:
            handler.addFilter(_HideEvents(shown_elsewhere))
    previous = logger.level
    logger.setLevel(level.upper() if level else DEFAULT_LEVEL)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
