"""Server-sent events, decoded incrementally (shared by the Anthropic and OpenAI-compatible
backends)."""

from __future__ import annotations

import attrs

__all__ = ["SSEDecoder"]


@attrs.define(eq=False)
class SSEDecoder:
    """An incremental ``text/event-stream`` decoder with a bounded buffer.

    Both backends use it. NOTE: we decode SSE ourselves instead of iterating an SDK's
    ``AsyncStream``: its
    chain of async generators (``__stream__`` → ``_iter_events`` → ``SSEDecoder``) is
    left suspended when a stream ends early or with an ``error`` event, and Trio warns
    (``ResourceWarning``) about every async generator garbage-collected unexhausted.
    ``httpx2.Response.aiter_bytes`` closes its own chain with ``aclosing``, so one
    ``aclose()`` of it releases everything.
    """

    max_buffer: int = 16 * 1024 * 1024
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _event: str = attrs.field(default="", init=False)
    _data: list[str] = attrs.field(factory=list, init=False)
    _data_size: int = attrs.field(default=0, init=False)

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """Add bytes; return the events completed by them as ``(event, data)``."""
        self._buffer += chunk
        events: list[tuple[str, str]] = []
        while True:
            end = _line_end(self._buffer)
            if end is None:
                break
            line_end, next_start = end
            line = bytes(self._buffer[:line_end]).decode("utf-8", errors="replace")
            del self._buffer[:next_start]
            event = self._line(line)
            if event is not None:
                events.append(event)
        if len(self._buffer) + self._data_size > self.max_buffer:
            raise ValueError(
                f"an SSE event exceeds {self.max_buffer} bytes; the stream is malformed"
            )
        return events

    def close(self) -> list[tuple[str, str]]:
        """The end of the body: finish a last event that had no blank line after it."""
        events = self.feed(b"\n") if self._buffer else []
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = (self._event or "message", "\n".join(self._data))
            self._event, self._data, self._data_size = "", [], 0
            return event
        if line.startswith(":"):
            return None  # a comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._data_size += len(value)
        return None  # id, retry and unknown fields do not matter here


def _line_end(buffer: bytearray) -> tuple[int, int] | None:
    """Where the first line of ``buffer`` ends and the next begins (``\\n``, ``\\r\\n``
    or ``\\r``); ``None`` while the line is incomplete."""
    newline = buffer.find(b"\n")
    carriage = buffer.find(b"\r")
    if carriage == -1 or (newline != -1 and newline < carriage):
        return None if newline == -1 else (newline, newline + 1)
    if carriage == len(buffer) - 1:
        return None  # a "\r\n" may be split across reads: wait for the next byte
    if buffer[carriage + 1] == ord("\n"):
        return carriage, carriage + 2
    return carriage, carriage + 1
