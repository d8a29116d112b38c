"""The group committer every engine writes through: batching, retry with backoff while
degraded, redacted reasons, bounded close (no database: a scripted batch runner)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio._redact import register_secret
from vega_trio.store import StoreClosed, StoreHealth
from vega_trio.store._writer import GroupCommitter, Write

SECRET = "sk-store-secret-0123456789"


class _Batches:
    """A batch runner that fails the first ``failures`` transactions, then commits."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[int] = []

    def __call__(self, writes: Sequence[Callable[[None], Any]]) -> list[tuple[bool, Any]]:
        if self.failures:
            self.failures -= 1
            raise OSError(f"disk I/O error while writing with token {SECRET}")
        self.batches.append(len(writes))
        return [(True, write(None)) for write in writes]


async def _inline(fn: Callable[..., Any], *args: Any, limiter: object = None) -> Any:  # noqa: ASYNC124
    """Run a batch in the Trio thread: with a real worker thread, the virtual clock jumps
    ahead while the thread runs (every task looks blocked), and the timings go wrong."""
    return fn(*args)


def _committer(runner: _Batches, **kw: Any) -> GroupCommitter[None]:
    kw.setdefault("to_thread", _inline)
    return GroupCommitter(
        engine="sqlite",
        location="/tmp/x.db",
        run_batch=runner,
        limiter=trio.CapacityLimiter(1),
        **kw,
    )


async def test_failed_transactions_retry_with_backoff_and_report(autojump_clock: Any) -> None:
    """Three failed commits: degraded (reason redacted) after the first, retried after
    0.05, 0.1 and 0.2 s, then committed, ok again; the caller returns only then."""
    register_secret(SECRET)
    runner = _Batches(failures=3)
    seen: list[StoreHealth] = []
    committer = _committer(runner, on_health=seen.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        start = trio.current_time()
        assert await committer.submit(lambda _: "done") == "done"
        assert trio.current_time() - start == pytest.approx(0.35)
        nursery.cancel_scope.cancel()
    assert [h.status for h in seen] == ["degraded", "ok"]
    assert seen[0].detail is not None and "OSError: disk I/O error" in seen[0].detail
    assert SECRET not in seen[0].detail and "***" in seen[0].detail
    assert seen[0].pending_writes == 1
    assert committer.health() == StoreHealth(status="ok", engine="sqlite")


async def test_backoff_is_capped(autojump_clock: Any) -> None:
    """Backoff doubles up to retry_max and stays there."""
    runner = _Batches(failures=6)
    committer = _committer(runner, retry_initial=1.0, retry_max=4.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        start = trio.current_time()
        await committer.submit(lambda _: None)
        assert trio.current_time() - start == pytest.approx(1 + 2 + 4 + 4 + 4 + 4)
        nursery.cancel_scope.cancel()


async def test_writes_queued_during_a_retry_join_it(autojump_clock: Any) -> None:
    """Writes that arrive while a batch waits to be retried commit in the same transaction."""
    runner = _Batches(failures=1)
    committer = _committer(runner)
    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        async with trio.open_nursery() as writers:
            writers.start_soon(committer.submit, lambda _: 1)
            await trio.sleep(0.01)  # the first commit failed; the retry waits 0.05 s
            for _ in range(9):
                writers.start_soon(committer.submit, lambda _: 2)
        nursery.cancel_scope.cancel()
    assert runner.batches == [10]


async def test_close_fails_what_the_flush_could_not_commit(autojump_clock: Any) -> None:
    """A close during an outage returns after flush_seconds; waiting writes get StoreClosed
    naming the last error; later writes are refused."""
    runner = _Batches(failures=10**6)
    committer = _committer(runner)
    errors: list[str] = []

    async def write() -> None:
        try:
            await committer.submit(lambda _: None)
        except StoreClosed as exc:
            errors.append(str(exc))

    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        for _ in range(3):
            nursery.start_soon(write)
        await trio.sleep(1)
        start = trio.current_time()
        await committer.close(2.0)
        assert trio.current_time() - start == pytest.approx(2.0)
        nursery.cancel_scope.cancel()
    assert len(errors) == 3 and all("not acknowledged" in e and "OSError" in e for e in errors)
    assert committer.health().status == "closed"
    with pytest.raises(StoreClosed):
        await committer.submit(lambda _: None)


async def test_events_committed_waits_for_handed_and_committed(autojump_clock: Any) -> None:
    """wait_events_committed(n) returns once event n was handed over and every event up
    to n is committed — not while its batch is in flight, nor before it is handed over."""
    gate = trio.Event()

    async def gated(fn: Callable[..., Any], *args: Any, limiter: object = None) -> Any:
        await gate.wait()  # the first batch stays in flight until the gate opens
        return fn(*args)

    committer = _committer(_Batches(), to_thread=gated)
    released: list[int] = []

    async def waiter(seq: int) -> None:
        await committer.wait_events_committed(seq)
        released.append(seq)

    def held(_: None) -> None:
        pass

    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        nursery.start_soon(waiter, 2)
        nursery.start_soon(waiter, 7)
        nursery.start_soon(partial(committer.submit, held, event_seqs=[1, 2, 3]))
        await trio.sleep(1)
        assert released == []  # 1-3 in flight
        gate.set()
        await trio.sleep(1)
        assert released == [2]  # 7 not handed over yet
        await committer.submit(lambda _: None, event_seqs=[6, 7])
        await trio.testing.wait_all_tasks_blocked()
        assert released == [2, 7]
        await committer.wait_events_committed(5)  # already past: at once
        nursery.cancel_scope.cancel()


async def test_writes_after_the_writer_task_was_cancelled_commit_at_once(
    autojump_clock: Any,
) -> None:
    """A forced stop cancels every task, the writer's too: a write made after it (the
    orchestrator's last events, in a shielded scope) commits in its caller at once, and
    close() commits what is still queued instead of waiting its whole bound for nobody
    (`vega-trio serve` forced by a second signal took 25 s and lost its last events)."""
    runner = _Batches()
    committer = _committer(runner)
    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        await committer.submit(lambda _: 1)
        nursery.cancel_scope.cancel()  # the forced stop
    started = trio.current_time()
    with trio.move_on_after(60):  # the old code waited for nobody, forever
        assert await committer.submit(lambda _: 2) == 2
    assert trio.current_time() - started < 1
    left = Write(lambda _: 3, ())  # queued by a caller that was cancelled meanwhile
    committer._queue.append(left)
    await committer.close(flush_seconds=10)
    assert trio.current_time() - started < 1
    assert left.ok and left.value == 3
    assert sum(runner.batches) == 3 and committer.health().status == "closed"
