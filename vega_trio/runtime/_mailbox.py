"""A process's bounded mailbox: one object in place of a Trio memory channel's seven.

A process has exactly one receiver (its own task) and needs only the sending side's
``close``, so the general machinery of ``trio.open_memory_channel`` — two endpoint objects
with a set of waiting tasks each, a shared state with two ordered dicts and a deque, a
closure per wait — is more than it uses. With 10,000 processes alive, those objects were
a seventh of what every full garbage collection walked (B2, docs/benchmarks.md).

The semantics are the memory channel's, for one receiver:

* bounded: ``capacity`` messages wait at most; a message for a receiver that is already
  waiting is handed over directly (it never touches the buffer);
* backpressure: ``send`` waits for room, in arrival order; ``send_nowait`` raises
  ``trio.WouldBlock``;
* ``close`` (of the sending side): later sends, and the senders waiting for room, get
  ``trio.ClosedResourceError``; the receiver takes what is queued, then
  ``trio.EndOfChannel``;
* ``send`` and ``receive`` are Trio checkpoints like the channel's (cancellable only
  while nothing was sent or taken); ``close`` is synchronous, so it is safe in a
  ``finally`` while ``Cancelled`` propagates.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import outcome
import trio
from trio.lowlevel import (
    Abort,
    RaiseCancelT,
    Task,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    enable_ki_protection,
    reschedule,
    wait_task_rescheduled,
)

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """A bounded FIFO with one receiving task (see the module docstring)."""

    # NOTE: slotted, and the buffer and the waiting senders are made on first use: an
    # idle process (its task waiting in receive) holds this object and nothing else.
    __slots__ = ("_buffer", "_closed", "_receiver", "_senders", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        """How many messages may wait (at least 1)."""
        self._buffer: deque[T] | None = None
        self._receiver: Task | None = None
        self._senders: dict[Task, T] | None = None  # insertion order: arrival order
        self._closed = False

    def __len__(self) -> int:
        """How many messages wait (senders blocked for room not counted)."""
        return len(self._buffer) if self._buffer else 0

    @property
    def closed(self) -> bool:
        """Whether the sending side is closed."""
        return self._closed

    # ------------------------------------------------------------------ sending
    @enable_ki_protection
    def send_nowait(self, value: T) -> None:
        """Queue ``value`` (or hand it to the waiting receiver) without blocking.

        Raises:
            trio.WouldBlock: the buffer is full.
            trio.ClosedResourceError: the mailbox is closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the mailbox is closed")
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            reschedule(receiver, outcome.Value(value))
            return
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = deque()
        if len(buffer) < self.capacity:
            buffer.append(value)
            return
        raise trio.WouldBlock

    @enable_ki_protection
    async def send(self, value: T) -> None:
        """Queue ``value``, waiting for room while the buffer is full.

        Raises:
            trio.ClosedResourceError: the mailbox is (or gets) closed.
        """
        await checkpoint_if_cancelled()
        try:
            self.send_nowait(value)
        except trio.WouldBlock:
            pass
        else:
            await cancel_shielded_checkpoint()
            return
        await self._wait_for_room(value)

    async def _wait_for_room(self, value: T) -> None:
        task = current_task()
        senders = self._senders
        if senders is None:
            senders = self._senders = {}
        senders[task] = value

        def abort(_: RaiseCancelT) -> Abort:
            del senders[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    @enable_ki_protection
    def close(self) -> None:
        """Close the sending side: waiting senders get ``trio.ClosedResourceError``,
        the receiver ``trio.EndOfChannel`` once the buffer is empty. Idempotent."""
        if self._closed:
            return
        self._closed = True
        senders, self._senders = self._senders, None
        if senders:
            for task in senders:
                reschedule(task, outcome.Error(trio.ClosedResourceError("the mailbox is closed")))
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            reschedule(receiver, outcome.Error(trio.EndOfChannel()))

    # ---------------------------------------------------------------- receiving
    @enable_ki_protection
    def receive_nowait(self) -> T:
        """Take the oldest message without blocking.

        Raises:
            trio.WouldBlock: nothing is queued.
            trio.EndOfChannel: nothing is queued and the mailbox is closed.
        """
        buffer = self._buffer
        senders = self._senders
        if senders:  # the oldest sender waiting for room gets it
            task = next(iter(senders))
            value = senders.pop(task)
            reschedule(task)
            if buffer is None:
                buffer = self._buffer = deque()
            buffer.append(value)
        if buffer:
            value = buffer.popleft()
            if not buffer:
                # NOTE: an empty deque is about 600 bytes: an idle process keeps none.
                self._buffer = None
            return value
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    @enable_ki_protection
    async def receive(self) -> T:
        """Take the oldest message, waiting for one.

        Raises:
            trio.EndOfChannel: the mailbox is closed and empty.
            trio.BusyResourceError: another task is already waiting to receive.
        """
        if self._buffer is not None or self._senders or self._closed:
            await checkpoint_if_cancelled()
            try:
                value = self.receive_nowait()
            except trio.WouldBlock:
                pass
            else:
                await cancel_shielded_checkpoint()
                return value
        # NOTE: nothing to take (an idle process's every receive, B1): the wait below is
        # the checkpoint (a cancellation already pending is delivered as it starts), so
        # neither checkpoint_if_cancelled nor the WouldBlock of receive_nowait is paid.
        if self._receiver is not None:
            raise trio.BusyResourceError("another task is already receiving from this mailbox")
        self._receiver = current_task()
        # NOTE: the mailbox is its own abort function (see __call__): no object is made
        # while the receiver waits, where the channel's closure was a function, two
        # cells and their tuple, and a bound method would still be one (B2).
        return await wait_task_rescheduled(self)  # type: ignore[no-any-return]

    def __call__(self, _: RaiseCancelT) -> Abort:
        """Abort the receiver's wait (Trio calls this when it is cancelled)."""
        self._receiver = None
        return Abort.SUCCEEDED
