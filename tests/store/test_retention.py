"""Retention (SPEC §12): ``open_store(retention_days=...)`` prunes when the store opens
and every hour after."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio.store import ProcessRecord, RunRecord, StoredEvent, open_store
from vega_trio.store._open import RETENTION_INTERVAL, prune_loop


class _RecordingStore:
    """Only ``prune``: records when (virtual time) and with which cutoff it was called."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[tuple[float, float]] = []
        self.fail_first = fail_first

    async def prune(self, *, older_than: float) -> dict[str, int]:
        self.calls.append((trio.current_time(), older_than))
        if self.fail_first and len(self.calls) == 1:
            raise OSError("disk on fire")
        return {"events": 0}


async def test_prune_loop_runs_at_once_then_every_interval(autojump_clock: Any) -> None:
    """Passes at open and each hour; each cutoff is now minus the retention; a failed
    pass is logged and the next one still runs."""
    store = _RecordingStore(fail_first=True)
    start = trio.current_time()
    with trio.move_on_after(2.5 * RETENTION_INTERVAL):
        await prune_loop(store, 2.0)  # type: ignore[arg-type]
    assert [at - start for at, _ in store.calls] == [
        0.0,
        RETENTION_INTERVAL,
        2 * RETENTION_INTERVAL,
    ]
    for _, cutoff in store.calls:
        assert abs(cutoff - (time.time() - 2 * 86400)) < 60


async def test_open_store_with_retention_deletes_old_rows(tmp_path: Path) -> None:
    """Rows older than retention_days are gone when the store opens; newer ones stay."""
    path = tmp_path / "v.db"
    now = time.time()
    old, new = now - 10 * 86400, now - 3600
    async with open_store(path) as store:
        await store.append_events(
            [
                StoredEvent(seq=1, type="x", timestamp=old, data={}),
                StoredEvent(seq=2, type="x", timestamp=new, data={}),
            ]
        )
        await store.save_run(RunRecord(id="r", workflow="w", status="completed", ended_at=old))
        await store.save_processes(
            [ProcessRecord(id="p", agent="a", status="stopped", started_at=old, ended_at=old)]
        )
    with trio.fail_after(20):
        async with open_store(path, retention_days=7) as store:
            assert [e.seq for e in await store.read_events()] == [2]
            assert await store.get_run("r") is None
            assert await store.get_process("p") is None


@pytest.mark.parametrize("days", [0, -1, float("nan"), float("inf")])
async def test_retention_must_be_a_positive_number_of_days(days: float) -> None:
    """A retention of zero, negative, NaN or infinite days is refused with the fix."""
    with pytest.raises(ValueError, match="positive number of days"):
        async with open_store(":memory:", retention_days=days):
            pass
