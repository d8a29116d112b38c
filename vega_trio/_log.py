"""Structured log records, and the formatters the CLI shows them with (SPEC §13).

The library logs through the standard :mod:`logging` module under the ``vega_trio``
logger tree and never installs a handler (only a ``NullHandler``): an application
decides where records go. Each record of something that happened carries its fields as
``extra`` attributes (``record.process_id``, ``record.latency_ms``, …) and an ``event``
attribute naming what happened (``process.spawned``, ``llm.call``, ``llm.retry``,
``circuit.open``, ``budget.warning``, ``mcp.stderr``, …), so a handler can filter or
serialise them without parsing messages.

Loggers:

* ``vega_trio.runtime`` — processes spawned, completed, failed, restarted;
* ``vega_trio.llm`` — every LLM call attempt (model, tokens, latency, error class);
* ``vega_trio.resilience`` — retries with their delay, circuit breaker changes, budgets;
* ``vega_trio.tools.mcp`` — MCP server connections (a server that fails to start);
* ``vega_trio.mcp.<server>`` — each line an MCP server writes to its stderr.

HOT PATH: every call site checks ``logger.isEnabledFor(level)`` before calling
:func:`log_record`, so a disabled level costs one cached lookup and builds nothing.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Final

from ._redact import redact, redact_data

__all__ = ["STANDARD_ATTRIBUTES", "JsonFormatter", "TextFormatter", "extra_fields", "log_record"]

STANDARD_ATTRIBUTES: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
"""Attributes every :class:`logging.LogRecord` has; anything else on a record is an ``extra``."""


def log_record(
    logger: logging.Logger,
    level: int,
    message: str,
    *args: object,
    exc_info: BaseException | None = None,
    **fields: Any,
) -> None:
    """Emit one structured record: ``message % args`` with ``fields`` as ``extra``.

    Call it behind ``if logger.isEnabledFor(level):`` so that nothing (not even the
    keyword dict) is built when the level is off. A field whose name clashes with a
    standard record attribute (``name``, ``msg``, …) is stored as ``field_<name>``
    instead of making :mod:`logging` raise.
    """
    extra = {
        (f"field_{key}" if key in STANDARD_ATTRIBUTES else key): value
        for key, value in fields.items()
    }
    # stacklevel=2: the record names the caller's file and line, not this helper.
    logger.log(level, message, *args, exc_info=exc_info, extra=extra, stacklevel=2)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of ``record`` (every attribute a plain record does not have)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in STANDARD_ATTRIBUTES and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message`` (and the traceback, if any), with every secret masked —
    also in the formatted exception text, which a filter never sees."""

    def __init__(self, fmt: str = "%(levelname)s %(name)s: %(message)s") -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, every ``extra`` field, and ``exception`` (the formatted
    traceback) when there is one. Every string is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        # NOTE: redacted twice: the values (a secret-named key is masked whole), then the
        # line (a secret inside a value that only became text when serialised).
        return redact(json.dumps(redact_data(payload), ensure_ascii=False, default=_json_default))


def _json_default(value: object) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
