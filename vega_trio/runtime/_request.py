"""Requests carry a reply slot; every request is answered exactly once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs
import trio
from trio.lowlevel import reschedule

from .._errors import RequestCancelled

__all__ = ["Future", "Request"]

T = TypeVar("T")

_PENDING: Any = object()
# NOTE: an error sets ``_value`` to this too, so "answered" is one identity test of one
# slot (``done``, read several times per request on the hot path, B1).
_FAILED: Any = object()


@attrs.define(eq=False, slots=True)
class Request:
    """A message in a process's mailbox plus the slot its answer goes into.

    NOTE: invariant — every request is answered (value or error) exactly once: by the
    behaviour, by cancellation, or by the process's exit. ``set_*`` are idempotent.
    """

    payload: Any
    process_id: str
    _value: Any = _PENDING
    _error: BaseException | None = None
    _done: trio.Event | None = None
    # NOTE: the one caller of ``Process.call`` waits here (woken by _fire; the request
    # is its own abort function, see __call__), without a
    # trio.Event: an Event is three GC-tracked objects per request in flight (B2) and
    # its park/unpark about 80 bytecode instructions per request (B1). Futures, which
    # several tasks may await, wait on ``_done``.
    _waiter: trio.lowlevel.Task | None = None
    _scope: trio.CancelScope | None = None
    _callbacks: list[Callable[[], None]] | None = None

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the request is answered (at once if it already is)."""
        if self.done:
            callback()
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def _fire(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            reschedule(waiter)
        if self._done is not None:
            self._done.set()
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
            for callback in callbacks:
                callback()

    @property
    def done(self) -> bool:
        """Whether the answer is in."""
        return self._value is not _PENDING

    def set_result(self, value: Any) -> None:
        """Answer with ``value`` (ignored if already answered)."""
        if self._value is _PENDING:
            self._value = value
            self._fire()

    def set_error(self, error: BaseException) -> None:
        """Answer with ``error`` (ignored if already answered)."""
        if self._value is _PENDING:
            self._value = _FAILED
            self._error = error
            self._fire()

    def cancel(self, reason: str = "cancelled by the caller") -> None:
        """Answer with :class:`RequestCancelled` and stop any work on it."""
        if self.done:
            return
        self.set_error(
            RequestCancelled(
                f"request to process {self.process_id} {reason}", process_id=self.process_id
            )
        )
        if self._scope is not None:
            self._scope.cancel()

    def outcome(self) -> Any:
        """The value, or raise the error. Only valid when :attr:`done`."""
        if self._error is not None:
            raise self._error
        if self._value is _PENDING:
            raise RuntimeError("the request has not been answered yet; await wait() first")
        return self._value

    def __call__(self, _: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        """Abort the caller's wait (Trio calls this when the caller is cancelled)."""
        self._waiter = None
        if self._scope is None:
            # NOTE: not taken yet: withdrawn now, not when the caller resumes. The
            # process may run first (Trio runs the tasks it wakes together in a random
            # order) and must find the request answered, so a cancelled call is never
            # served. One being served is cancelled by the caller's handler (Process.call).
            self.cancel("was abandoned: the caller was cancelled")
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait_done(self) -> None:
        """Wait until the request is answered (without raising its error)."""
        if not self.done:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        else:
            await trio.lowlevel.checkpoint()

    async def wait(self) -> Any:
        """Wait for the answer; return the value or raise the error."""
        await self.wait_done()
        return self.outcome()


@attrs.define(eq=False, slots=True)
class Future(Generic[T]):
    """The answer to :meth:`send_async`, available later.

    ``done()`` tells whether it is in, ``result()`` returns it (or raises the error),
    ``await wait()`` waits for it, ``cancel()`` withdraws the request (the caller
    of ``wait`` then gets :class:`~vega_trio.RequestCancelled`).
    """

    _request: Request

    @property
    def process_id(self) -> str:
        """The process the request was sent to."""
        return self._request.process_id

    def done(self) -> bool:
        """Whether the answer is in."""
        return self._request.done

    def result(self) -> T:
        """The answer; raises its error.

        Raises:
            trio.WouldBlock: the answer is not in yet (use ``await wait()``).
        """
        if not self._request.done:
            raise trio.WouldBlock("the reply is not ready yet; use `await future.wait()`")
        return self._request.outcome()  # type: ignore[no-any-return]

    async def wait(self) -> T:
        """Wait for the answer and return it (or raise its error)."""
        return await self._request.wait()  # type: ignore[no-any-return]

    def cancel(self) -> bool:
        """Withdraw the request; returns ``False`` if it had already finished."""
        if self._request.done:
            return False
        self._request.cancel("was cancelled through its future")
        return True

    def exception(self) -> BaseException | None:
        """The error the request ended with, or ``None`` (also ``None`` while pending)."""
        return self._request._error
