"""Group commit: the one writer every engine runs its writes through.

Callers hand a write (a function that runs on the engine's writer connection in a
worker thread) to :meth:`GroupCommitter.submit` and wait; the writer task takes every
write queued at that moment, runs them in ONE transaction and wakes each caller only
after that transaction committed ("acknowledged means committed", SPEC §12). So a
hundred concurrent chat turns cost one commit (one fsync), not a hundred.

Faults: an engine-level failure of the transaction (a full disk, an I/O error, a lost
PostgreSQL connection) rolls the batch back and retries it with exponential backoff;
the callers keep waiting, :meth:`GroupCommitter.health` says ``degraded`` with the
reason (redacted) and the ``on_health`` callback hears about each change, so a server
can publish ``store.degraded`` / ``store.recovered``. A write that is wrong in itself
(a constraint it breaks) fails alone: each write runs inside its own savepoint, so
the rest of the batch still commits. At shutdown :meth:`GroupCommitter.close` flushes
what is queued within a deadline and fails whatever is left with
:class:`~vega_trio._errors.StoreClosed` — never a hang, never a silent loss.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

import attrs
import trio

from .._errors import StoreClosed
from .._redact import redact
from ._protocol import StoreHealth

__all__ = ["PRUNE_BATCH", "BatchRunner", "GroupCommitter", "Write"]

log = logging.getLogger("vega_trio.store")

PRUNE_BATCH = 5000
"""The most rows of one table a retention transaction deletes. ``prune`` is a series of
such writes, so the writes that arrive meanwhile (a chat turn's commit) are committed
between them instead of waiting for one long delete of a large backlog."""

C = TypeVar("C")
"""The engine's connection type."""

BatchRunner = Callable[[Sequence[Callable[[C], Any]]], list[tuple[bool, Any]]]
"""Runs writes in one transaction in a worker thread: per write ``(True, result)`` or
``(False, exception)`` for a write that failed alone; raises when the transaction as a
whole failed (it was rolled back)."""


@attrs.define(eq=False)
class Write(Generic[C]):
    """One caller's write, waiting for its batch to commit."""

    apply: Callable[[C], Any]
    event_seqs: Sequence[int] = ()
    done: trio.Event = attrs.field(factory=trio.Event)
    ok: bool = False
    value: Any = None


class GroupCommitter(Generic[C]):
    """Queues writes and commits them in batches on one writer (``nursery.start``-able
    via :meth:`run`, which calls ``task_status.started()`` with no value).

    Args:
        engine: ``sqlite`` or ``postgresql`` (for :class:`StoreHealth`).
        location: the database, redacted (for error messages).
        run_batch: the engine's :data:`BatchRunner` (blocking; run in a thread).
        limiter: the writer's ``CapacityLimiter(1)``, shared with anything else that
            must use the writer connection.
        on_health: called with the new health on every change between ``ok`` and
            ``degraded`` (and at ``closed``); it must not block.
        max_batch: the most writes per transaction.
        retry_initial: first backoff after a failed transaction, in seconds.
        retry_max: longest backoff.
        to_thread: how a blocking batch runs (``trio.to_thread.run_sync``; unit tests
            pass one that runs it inline, so Trio's virtual clock sees no thread).
    """

    def __init__(
        self,
        *,
        engine: str,
        location: str,
        run_batch: Callable[[Sequence[Callable[[C], Any]]], list[tuple[bool, Any]]],
        limiter: trio.CapacityLimiter,
        on_health: Callable[[StoreHealth], None] | None = None,
        first_event_seq: int = 0,
        max_batch: int = 2000,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        to_thread: Callable[..., Awaitable[Any]] = trio.to_thread.run_sync,
    ) -> None:
        self._engine = engine
        self._location = location
        self._run_batch = run_batch
        self._to_thread = to_thread
        self._limiter = limiter
        self._on_health = on_health
        self._max_batch = max_batch
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._queue: list[Write[C]] = []
        self._in_flight: list[Write[C]] = []
        self._wakeup = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._state: Literal["ok", "degraded", "closed"] = "ok"
        self._detail: str | None = None
        self._closing = False
        self._writer_gone = trio.Event()  # run() ended (cancelled: a forced stop)
        self._drain_lock = trio.Lock()
        # Event sequence numbers handed over but not committed yet, and the highest
        # ever handed over: what wait_events_committed needs.
        self._pending_seqs: Counter[int] = Counter()
        self._handed_max = first_event_seq
        self._events_changed = trio.Event()
        self.commits = 0
        """Transactions committed (tests and benchmarks read it)."""

    # ----------------------------------------------------------------- health
    def health(self) -> StoreHealth:
        """The writer's state now (``pending_writes``: queued and in flight)."""
        return StoreHealth(
            status=self._state,
            engine=self._engine,
            detail=self._detail,
            pending_writes=len(self._queue) + len(self._in_flight),
        )

    def _set_state(self, state: Literal["ok", "degraded", "closed"], detail: str | None) -> None:
        changed = state != self._state
        self._state, self._detail = state, detail
        if changed and self._on_health is not None:
            try:
                self._on_health(self.health())
            except Exception:  # a broken observer must not stop the writer
                log.exception("store: the on_health callback failed")

    # ----------------------------------------------------------------- writes
    async def submit(self, apply: Callable[[C], Any], *, event_seqs: Sequence[int] = ()) -> Any:
        """Queue ``apply`` and return its result once its transaction committed.

        Raises:
            StoreClosed: the store is closing or closed, or its shutdown flush ran out
                of time before this write was committed.
            Exception: what ``apply`` raised when the write failed on its own (the
                rest of its batch committed).
        """
        if self._closing:
            raise StoreClosed(
                f"the store at {self._location} is closed; the write was not made "
                "(open the store again to write)",
                location=self._location,
            )
        write: Write[C] = Write(apply, event_seqs)
        for seq in event_seqs:
            self._pending_seqs[seq] += 1
        if event_seqs:
            self._handed_max = max(self._handed_max, max(event_seqs))
        self._queue.append(write)
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._wakeup.set()
        if self._writer_gone.is_set():
            await self._drain()  # nobody else will commit it
        await write.done.wait()
        if write.ok:
            return write.value
        raise write.value

    async def wait_events_committed(self, seq: int) -> None:
        """Return once the event ``seq`` — and every event before it — that was handed
        to :meth:`submit` is committed.

        NOTE: it also waits until an event numbered ``seq`` or later has been handed
        over at all, so a stream that saw event ``seq`` on the bus before the store's
        writer took it cannot send its ``id:`` too early.

        Raises:
            StoreClosed: the store closed first.
        """
        while True:
            if self._handed_max >= seq and not any(s <= seq for s in self._pending_seqs):
                return
            if self._state == "closed":
                raise StoreClosed(
                    f"the store at {self._location} closed before event {seq} was committed",
                    location=self._location,
                )
            changed = self._events_changed
            await changed.wait()

    def _finish(self, write: Write[C], ok: bool, value: Any) -> None:
        if write.done.is_set():
            return  # already failed by close(); its late commit changes nothing
        write.ok, write.value = ok, value
        for seq in write.event_seqs:
            self._pending_seqs[seq] -= 1
            if self._pending_seqs[seq] <= 0:
                del self._pending_seqs[seq]
        write.done.set()

    def _notify_events(self) -> None:
        self._events_changed.set()
        self._events_changed = trio.Event()

    # ------------------------------------------------------------------ writer
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer loop; runs until cancelled (by :meth:`close`'s caller)."""
        task_status.started()
        try:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                self._in_flight = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit_in_flight()
        finally:
            self._writer_gone.set()

    async def _commit_in_flight(self) -> None:
        delay = self._retry_initial
        while True:
            batch = self._in_flight
            try:
                results = await self._to_thread(
                    self._run_batch, [w.apply for w in batch], limiter=self._limiter
                )
            except Exception as exc:
                reason = redact(f"{type(exc).__name__}: {exc}")
                if self._state != "degraded":
                    log.warning(
                        "store: writing to %s failed (%s); %d write(s) wait and are retried "
                        "with backoff — check the disk or the database server",
                        self._location,
                        reason,
                        len(batch) + len(self._queue),
                    )
                self._set_state("degraded", reason)
                await trio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                # Writes queued meanwhile join the retry: one commit for all of them.
                room = self._max_batch - len(self._in_flight)
                if room > 0 and self._queue:
                    self._in_flight = self._in_flight + self._queue[:room]
                    del self._queue[:room]
                continue
            break
        self.commits += 1
        if self._state == "degraded":
            log.warning("store: writing to %s works again", self._location)
            self._set_state("ok", None)
        self._in_flight = []
        for write, (ok, value) in zip(batch, results, strict=True):
            self._finish(write, ok, value)
        if any(w.event_seqs for w in batch):
            self._notify_events()

    async def close(self, flush_seconds: float) -> None:
        """Refuse new writes and wait (at most ``flush_seconds``, shielded) until the
        queued ones are committed; then fail what is left with :class:`StoreClosed`.

        The caller cancels :meth:`run` afterwards.
        """
        self._closing = True
        with trio.move_on_after(flush_seconds, shield=True):
            async with trio.open_nursery() as nursery:

                async def until_idle() -> None:
                    await self._idle.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_idle)
                await self._writer_gone.wait()
                await self._drain()
                nursery.cancel_scope.cancel()
        self._fail_rest()

    async def _drain(self) -> None:
        """Commit what is queued in the calling task: the writer task was cancelled
        (a forced stop cancels every task, the writer's too), and the writes after it —
        the orchestrator's last events, the close's flush — must not wait for nobody
        until their deadline."""
        async with self._drain_lock:
            while self._in_flight or self._queue:
                if not self._in_flight:
                    self._in_flight = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                await self._commit_in_flight()

    def _fail_rest(self) -> None:
        left = self._in_flight + self._queue
        self._in_flight, self._queue = [], []
        if left:
            log.error(
                "store: %d write(s) to %s were not committed before shutdown (%s); their "
                "callers were told (StoreClosed), nothing was acknowledged",
                len(left),
                self._location,
                self._detail or "the flush ran out of time",
            )
        for write in left:
            self._finish(
                write,
                False,
                StoreClosed(
                    f"the store at {self._location} closed before this write was committed"
                    + (f" (last error: {self._detail})" if self._detail else "")
                    + "; it was not acknowledged — retry it after the store is back",
                    location=self._location,
                ),
            )
        self._set_state("closed", self._detail)
        self._notify_events()
