"""A process's mailbox keeps the semantics of the Trio memory channel it replaced (issue 16,
B2): bounded, FIFO, backpressure in arrival order, close and cancellation, checkpoints."""

from __future__ import annotations

import gc

import pytest
import trio
import trio.testing

from vega_trio import ProcessNotRunning
from vega_trio.runtime import ProcessStatus, Runtime
from vega_trio.runtime._mailbox import Mailbox

from .conftest import EchoBehaviour


def test_the_buffer_is_bounded_and_first_in_first_out() -> None:
    """``capacity`` messages wait at most; they come out in the order they went in."""
    box: Mailbox[int] = Mailbox(2)
    box.send_nowait(1)
    box.send_nowait(2)
    with pytest.raises(trio.WouldBlock):
        box.send_nowait(3)
    assert len(box) == 2
    assert [box.receive_nowait(), box.receive_nowait()] == [1, 2]
    with pytest.raises(trio.WouldBlock):
        box.receive_nowait()
    assert len(box) == 0


async def test_a_waiting_receiver_gets_a_message_without_the_buffer() -> None:
    """A message for a receiver that is already waiting is handed over directly: it
    does not take one of the ``capacity`` places."""
    box: Mailbox[str] = Mailbox(1)
    got: list[str] = []

    async def receiver() -> None:
        got.append(await box.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        box.send_nowait("direct")
        box.send_nowait("queued")  # the one place is still free
        with pytest.raises(trio.WouldBlock):
            box.send_nowait("too many")
    assert got == ["direct"]
    assert box.receive_nowait() == "queued"


async def test_senders_wait_for_room_in_arrival_order() -> None:
    """On a full mailbox ``send`` waits (backpressure); waiting senders get in in the
    order they arrived, each as the receiver makes room."""
    box: Mailbox[str] = Mailbox(1)
    box.send_nowait("first")
    sent: list[str] = []

    async def sender(value: str) -> None:
        await box.send(value)
        sent.append(value)

    async with trio.open_nursery() as nursery:
        for value in ("a", "b", "c"):
            nursery.start_soon(sender, value)
            await trio.testing.wait_all_tasks_blocked()
        assert sent == [] and len(box) == 1
        received = [box.receive_nowait()]
        while len(received) < 4:
            await trio.testing.wait_all_tasks_blocked()
            received.append(await box.receive())
    assert received == ["first", "a", "b", "c"]
    assert sent == ["a", "b", "c"]


async def test_close_ends_the_senders_and_lets_the_receiver_drain() -> None:
    """After ``close`` waiting and later senders get ClosedResourceError; the receiver
    takes what is queued, then EndOfChannel."""
    box: Mailbox[str] = Mailbox(1)
    box.send_nowait("queued")
    errors: list[type[BaseException]] = []

    async def blocked_sender() -> None:
        try:
            await box.send("never")
        except trio.ClosedResourceError as exc:
            errors.append(type(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_sender)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
        box.close()  # idempotent
    assert errors == [trio.ClosedResourceError]
    assert box.closed
    with pytest.raises(trio.ClosedResourceError):
        box.send_nowait("late")
    with pytest.raises(trio.ClosedResourceError):
        await box.send("late")
    assert await box.receive() == "queued"
    with pytest.raises(trio.EndOfChannel):
        await box.receive()
    with pytest.raises(trio.EndOfChannel):
        box.receive_nowait()


async def test_close_wakes_a_waiting_receiver_with_end_of_channel() -> None:
    """A receiver waiting on an empty mailbox gets EndOfChannel when it is closed."""
    box: Mailbox[str] = Mailbox(4)
    ended: list[bool] = []

    async def receiver() -> None:
        with pytest.raises(trio.EndOfChannel):
            await box.receive()
        ended.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    assert ended == [True]


async def test_a_cancelled_sender_delivers_nothing_and_others_go_on() -> None:
    """A sender cancelled while it waits for room takes its message back; the senders
    behind it keep their places."""
    box: Mailbox[str] = Mailbox(1)
    box.send_nowait("first")
    withdrawn = trio.CancelScope()

    async def cancelled_sender() -> None:
        with withdrawn:
            await box.send("withdrawn")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.send, "a")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(cancelled_sender)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(box.send, "b")
        await trio.testing.wait_all_tasks_blocked()
        withdrawn.cancel()
        await trio.testing.wait_all_tasks_blocked()
        received = [box.receive_nowait() for _ in range(3)]
    assert withdrawn.cancelled_caught
    assert received == ["first", "a", "b"]
    with pytest.raises(trio.WouldBlock):
        box.receive_nowait()


async def test_a_cancelled_receiver_leaves_the_mailbox_working() -> None:
    """A receive cancelled while waiting unregisters its task: the next message is
    queued for the next receive, not handed to the task that left."""
    box: Mailbox[str] = Mailbox(2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.receive)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    box.send_nowait("kept")
    assert await box.receive() == "kept"


async def test_send_and_receive_are_checkpoints() -> None:
    """Both are Trio checkpoints, also when they need not wait; cancelled before they
    start, they send or take nothing."""
    box: Mailbox[str] = Mailbox(2)
    with trio.testing.assert_checkpoints():
        await box.send("x")
    with trio.testing.assert_checkpoints():
        assert await box.receive() == "x"
    with trio.CancelScope() as scope:
        scope.cancel()
        await box.send("cancelled")
    assert len(box) == 0
    box.send_nowait("y")
    with trio.CancelScope() as scope:
        scope.cancel()
        await box.receive()
    assert len(box) == 1


async def test_receive_on_an_empty_mailbox_is_a_checkpoint_that_leaves_no_receiver() -> None:
    """With nothing queued, receive goes straight to its wait, which is the checkpoint:
    already cancelled, it raises Cancelled and leaves no receiver registered (the next
    message is queued, and the next receive takes it)."""
    box: Mailbox[str] = Mailbox(2)
    with trio.CancelScope() as scope:
        scope.cancel()
        await box.receive()
    assert scope.cancelled_caught
    box.send_nowait("queued")
    assert len(box) == 1
    with trio.testing.assert_checkpoints():
        assert await box.receive() == "queued"


async def test_only_one_task_receives() -> None:
    """A mailbox has one receiver (its process's task): a second one is refused."""
    box: Mailbox[str] = Mailbox(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await box.receive()
        box.send_nowait("done")


async def test_an_idle_process_mailbox_is_one_object(runtime: Runtime) -> None:
    """A process waiting on its mailbox holds one mailbox object: no buffer, no waiter
    closure, no channel endpoints (a Trio memory channel held seven such objects and
    made a closure, two cells and a tuple per wait)."""
    proc = await runtime.spawn(EchoBehaviour())
    assert await proc.call("x") == "x"
    await trio.testing.wait_all_tasks_blocked()
    box = proc._mailbox
    held = [type(o).__name__ for o in gc.get_referents(box) if gc.is_tracked(o)]
    held.remove("type")  # its class
    assert held == ["Task"]  # its receiver, the process's task: nothing else
    assert proc.status == ProcessStatus.RUNNING


async def test_a_sender_waiting_on_a_full_mailbox_learns_the_process_stopped(
    runtime: Runtime,
) -> None:
    """A caller waiting for room when the process is killed gets ProcessNotRunning, and
    the messages already queued are answered (ProcessExited), as with the channel."""
    proc = await runtime.spawn(EchoBehaviour(), mailbox_size=1)
    blocking = proc.call_async("block")
    await trio.testing.wait_all_tasks_blocked()
    queued = proc.call_async("queued")
    outcome: list[BaseException] = []

    async def waiting_caller() -> None:
        try:
            await proc.call("waits for room")
        except ProcessNotRunning as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting_caller)
        await trio.testing.wait_all_tasks_blocked()
        proc.kill("test")
    assert len(outcome) == 1
    await proc.wait()
    for future in (blocking, queued):
        with pytest.raises(Exception, match="exited before answering"):
            future.result()
