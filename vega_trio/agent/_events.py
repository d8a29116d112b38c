"""Typed streaming events (SPEC §1.4), also the SSE wire format.

The wire form (:meth:`to_dict`, :meth:`to_sse`) is redacted (SPEC §11): secrets in text,
tool arguments, results and errors are masked by :func:`vega_trio._redact.redact_data`
when an event is serialised — the events themselves stay as they are, so the streaming
hot path pays nothing. (A secret split across two text deltas is not recognised.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeAlias

import attrs

from .._redact import redact_data

__all__ = [
    "ChatEvent",
    "DoneEvent",
    "ErrorEvent",
    "SendMetrics",
    "TextDeltaEvent",
    "ToolEndEvent",
    "ToolStartEvent",
]


@attrs.frozen(kw_only=True)
class SendMetrics:
    """What one send cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The wire form."""
        return attrs.asdict(self)


class _Wire:
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the wire form (always with ``"type"``), redacted."""
        return redact_data(self._fields())  # type: ignore[no-any-return]

    def _fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.name == "agent" and value is None:
                continue  # the streaming agent's own event: no name on the wire
            data[field.name] = value.to_dict() if isinstance(value, SendMetrics) else value
        return data

    def to_sse(self) -> str:
        """``event: <type>`` + ``data: <json>`` + blank line."""
        payload = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        return f"event: {self.type}\ndata: {payload}\n\n"


@attrs.frozen(kw_only=True)
class TextDeltaEvent(_Wire):
    """Incremental text of the reply."""

    type: ClassVar[Literal["text_delta"]] = "text_delta"
    delta: str
    agent: str | None = None
    """The delegate that produced it (a team member's nested stream), else ``None``."""


@attrs.frozen(kw_only=True)
class ToolStartEvent(_Wire):
    """A tool call began; ``arguments`` is the complete JSON object."""

    type: ClassVar[Literal["tool_start"]] = "tool_start"
    tool_call_id: str
    tool_name: str
    arguments: Mapping[str, Any] = attrs.field(hash=False)
    agent: str | None = None
    """The delegate that called the tool (a team member's nested stream), else ``None``."""

    def _fields(self) -> dict[str, Any]:
        data = super()._fields()
        data["arguments"] = dict(self.arguments)
        return data


@attrs.frozen(kw_only=True)
class ToolEndEvent(_Wire):
    """A tool call finished (``is_error`` when it failed; the model saw the error)."""

    type: ClassVar[Literal["tool_end"]] = "tool_end"
    tool_call_id: str
    tool_name: str
    result: str
    duration_ms: int
    is_error: bool = False
    agent: str | None = None
    """The delegate that called the tool (a team member's nested stream), else ``None``."""


@attrs.frozen(kw_only=True)
class ErrorEvent(_Wire):
    """The send failed; the last event of its stream."""

    type: ClassVar[Literal["error"]] = "error"
    error: str
    error_class: str | None = None


@attrs.frozen(kw_only=True)
class DoneEvent(_Wire):
    """The send finished; the last event of its stream."""

    type: ClassVar[Literal["done"]] = "done"
    metrics: SendMetrics = SendMetrics()


ChatEvent: TypeAlias = TextDeltaEvent | ToolStartEvent | ToolEndEvent | ErrorEvent | DoneEvent
