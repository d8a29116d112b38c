"""The Store contract (SPEC §12), run against every engine in conftest.ENGINES."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio.store import (
    AgentRecord,
    CostRecord,
    ProcessRecord,
    RunRecord,
    StepRecord,
    Store,
    StoreClosed,
    StoredEvent,
    StoreHealth,
    open_store,
)

from .conftest import OpenStore


def _event(seq: int, type_: str = "process.started", ts: float = 1000.0) -> StoredEvent:
    return StoredEvent(
        seq=seq, type=type_, timestamp=ts, data={"seq": seq, "type": type_, "timestamp": ts}
    )


def _process(pid: str, started: float, **kw: object) -> ProcessRecord:
    fields: dict[str, object] = {"agent": "helper", "status": "running"} | kw
    return ProcessRecord(id=pid, started_at=started, **fields)  # type: ignore[arg-type]


def _run(rid: str, started: float, status: str = "running", **kw: object) -> RunRecord:
    return RunRecord(id=rid, workflow="wf", status=status, started_at=started, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- events
async def test_events_read_back_in_order_with_after_and_limit(store: Store) -> None:
    """Events come back by sequence, after a given seq, at most ``limit`` of them."""
    await store.append_events([_event(3), _event(1), _event(2)])
    await store.append_events([_event(4)])
    assert [e.seq for e in await store.read_events()] == [1, 2, 3, 4]
    assert [e.seq for e in await store.read_events(after=2)] == [3, 4]
    assert [e.seq for e in await store.read_events(after=1, limit=2)] == [2, 3]
    first = (await store.read_events(limit=1))[0]
    assert first == _event(1)
    assert await store.last_event_seq() == 4


async def test_empty_store_has_no_events(store: Store) -> None:
    """A fresh store reads no events and its last sequence number is 0."""
    assert await store.read_events() == []
    assert await store.last_event_seq() == 0


async def test_event_append_is_idempotent_by_seq(store: Store) -> None:
    """Appending an event twice (a retried batch) stores it once, the first version."""
    await store.append_events([_event(1), _event(2)])
    await store.append_events([_event(2, "other.kind"), _event(3)])
    events = await store.read_events()
    assert [(e.seq, e.type) for e in events] == [
        (1, "process.started"),
        (2, "process.started"),
        (3, "process.started"),
    ]


async def test_event_type_filters_exact_and_prefix(store: Store) -> None:
    """``types`` takes exact names and ``prefix.*``; a prefix does not match a longer word."""
    await store.append_events(
        [
            _event(1, "llm.call"),
            _event(2, "llm.retry"),
            _event(3, "llmx.call"),
            _event(4, "process.started"),
            _event(5, "run.completed"),
        ]
    )
    got = await store.read_events(types=["llm.*", "run.completed"])
    assert [e.seq for e in got] == [1, 2, 5]
    assert [e.seq for e in await store.read_events(types=["process.started"])] == [4]
    assert await store.read_events(types=[]) == []
    assert len(await store.read_events(types=["*"])) == 5


async def test_wait_events_committed_waits_for_the_event_to_be_handed_and_committed(
    store: Store,
) -> None:
    """A stream that saw event N on the bus first is released only once N is committed."""
    released: list[int] = []

    async def waiter() -> None:
        await store.wait_events_committed(2)
        released.append(len(await store.read_events()))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert released == []
            await store.append_events([_event(1)])
            await trio.testing.wait_all_tasks_blocked()
            assert released == []
            await store.append_events([_event(2), _event(3)])
    assert released == [3]
    await store.wait_events_committed(3)  # already committed: returns at once


async def test_concurrent_writes_are_all_committed_when_each_returns(store: Store) -> None:
    """Many concurrent writers (group commit): each one's data is readable when it returns."""
    missing: list[int] = []

    async def writer(i: int) -> None:
        await store.append_messages("chat", f"u{i}", [{"role": "user", "content": f"m{i}"}])
        if await store.load_conversation("chat", f"u{i}") != [{"role": "user", "content": f"m{i}"}]:
            missing.append(i)

    async def events(start: int) -> None:
        await store.append_events([_event(start + k) for k in range(10)])

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(150):
                nursery.start_soon(writer, i)
            for start in range(1, 500, 10):
                nursery.start_soon(events, start)
    assert missing == []
    assert len(await store.list_conversations()) == 150
    assert await store.last_event_seq() == 500
    assert len(await store.read_events(limit=10_000)) == 500


async def test_a_write_that_is_not_json_fails_alone(store: Store) -> None:
    """A value JSON cannot hold fails its caller at once; the store is unharmed."""
    with pytest.raises(TypeError):
        await store.put_state("bad", {"x": object()})
    with pytest.raises(ValueError):
        await store.put_state("bad", float("nan"))
    assert await store.get_state("bad") is None


async def test_a_failing_write_in_a_batch_fails_alone(store: Store) -> None:
    """A write the database rejects fails its own caller; its batch-mates commit."""
    failures: list[Exception] = []

    async def bad() -> None:
        try:
            await store.record_costs(
                [CostRecord(seq=1, timestamp=1.0, model="m", input_tokens=2**80)]
            )
        except Exception as exc:
            failures.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(store.put_state, f"k{i}", i)
            nursery.start_soon(bad)
            for i in range(20, 40):
                nursery.start_soon(store.put_state, f"k{i}", i)
    assert len(failures) == 1
    assert (await store.counts())["state"] == 40
    assert (await store.counts())["costs"] == 0
    assert store.health().status == "ok"


# -------------------------------------------------------------------- processes
async def test_processes_upsert_get_and_list_newest_first(store: Store) -> None:
    """Processes are upserted by id, read back whole, listed newest first with totals."""
    await store.save_processes(
        [
            _process("p1", 10.0, parent="sup", run_id="r1", user="ann", metrics={"tokens": 5}),
            _process("p2", 20.0, agent="other"),
            _process("p3", 30.0, status="failed", ended_at=31.0, error="boom", restarts=2),
        ]
    )
    await store.save_processes([_process("p1", 10.0, status="completed", ended_at=12.5)])
    p1 = await store.get_process("p1")
    assert p1 == _process("p1", 10.0, status="completed", ended_at=12.5)
    assert await store.get_process("nope") is None
    page = await store.list_processes()
    assert [p.id for p in page.items] == ["p3", "p2", "p1"] and page.total == 3
    assert (await store.get_process("p3")) == _process(
        "p3", 30.0, status="failed", ended_at=31.0, error="boom", restarts=2
    )


async def test_one_save_may_hold_a_process_twice_and_the_last_wins(store: Store) -> None:
    """A batch of process records naming one id twice (two lifecycle events batched
    together) is stored, with the later record's values, on every engine."""
    await store.save_processes(
        [_process("p1", 10.0), _process("p1", 10.0, status="completed", ended_at=11.0)]
    )
    assert await store.get_process("p1") == _process("p1", 10.0, status="completed", ended_at=11.0)


async def test_processes_filter_and_page(store: Store) -> None:
    """Status and agent filters and limit/offset paging report the filtered total."""
    await store.save_processes(
        [_process(f"p{i}", float(i), status="running" if i % 2 else "completed") for i in range(10)]
        + [_process("x", 100.0, agent="other", status="stopped")]
    )
    page = await store.list_processes(status=["running"], limit=2, offset=1)
    assert [p.id for p in page.items] == ["p7", "p5"] and page.total == 5
    assert (await store.list_processes(agent="other")).total == 1
    assert (await store.list_processes(status=["completed"], agent="helper")).total == 5
    assert (await store.list_processes(status=[])).total == 0
    rest = await store.list_processes(offset=10)
    assert [p.id for p in rest.items] == ["p0"] and rest.total == 11


# --------------------------------------------------------------- conversations
async def test_conversations_append_load_replace_and_list(store: Store) -> None:
    """Messages keep their order per (agent, user); no user and user "" are apart."""
    m = [{"role": "user", "content": [{"type": "text", "text": f"hi {i}"}]} for i in range(4)]
    await store.append_messages("a", None, m[:2])
    await store.append_messages("a", None, m[2:])
    await store.append_messages("a", "", [m[0]])
    await store.append_messages("a", "bob", [m[1]])
    await store.append_messages("b", "bob", [])
    assert await store.load_conversation("a", None) == m
    assert await store.load_conversation("a", "") == [m[0]]
    assert await store.load_conversation("b", "bob") == []
    assert await store.list_conversations() == [("a", None, 4), ("a", "", 1), ("a", "bob", 1)]
    await store.replace_conversation("a", None, [m[3]])
    await store.append_messages("a", None, [m[0]])
    assert await store.load_conversation("a", None) == [m[3], m[0]]
    await store.replace_conversation("a", "bob", [])
    assert await store.load_conversation("a", "bob") == []
    assert ("a", "bob", 1) not in await store.list_conversations()


# ------------------------------------------------------------------------ runs
async def test_runs_upsert_get_list_and_filter(store: Store) -> None:
    """Runs are upserted whole, listed newest first, filtered by status with totals."""
    await store.save_run(_run("r1", 1.0, inputs={"task": "x"}, document="/w.vega.yaml"))
    await store.save_run(_run("r2", 2.0))
    done = _run(
        "r1",
        1.0,
        status="failed",
        inputs={"task": "x"},
        document="/w.vega.yaml",
        ended_at=3.0,
        output={"partial": [1, 2]},
        error="step failed",
        error_class="timeout",
        step="steps[1]",
        cost_usd=0.25,
        resumes=1,
    )
    await store.save_run(done)
    assert await store.get_run("r1") == done
    assert await store.get_run("missing") is None
    page = await store.list_runs()
    assert [r.id for r in page.items] == ["r2", "r1"] and page.total == 2
    failed = await store.list_runs(status=["failed"])
    assert [r.id for r in failed.items] == ["r1"] and failed.total == 1
    second = await store.list_runs(limit=1, offset=1)
    assert [r.id for r in second.items] == ["r1"] and second.total == 2


async def test_steps_are_checkpoints_in_save_order(store: Store) -> None:
    """Steps load in the order first saved; saving a path again replaces its result."""
    await store.save_run(_run("r1", 1.0))
    paths = [
        "steps[0]",
        "steps[1].parallel[1].steps[0]",
        "steps[1].parallel[0].steps[0]",
        "steps[2].for[7]",
    ]
    for i, path in enumerate(paths):
        await store.save_step(
            StepRecord(run_id="r1", path=path, status="completed", result={"i": i}, tokens=i)
        )
    await store.save_step(StepRecord(run_id="r2", path="steps[0]", status="failed"))
    again = StepRecord(
        run_id="r1",
        path=paths[1],
        status="completed",
        result="new",
        started_at=5.0,
        ended_at=6.0,
        cost_usd=0.5,
        tokens=99,
    )
    await store.save_step(again)
    steps = await store.load_steps("r1")
    assert [s.path for s in steps] == paths
    assert steps[1] == again
    assert steps[0].result == {"i": 0}
    assert [s.status for s in await store.load_steps("r2")] == ["failed"]
    assert await store.load_steps("none") == []


# ----------------------------------------------------------------------- costs
async def test_costs_totals_and_series(store: Store) -> None:
    """Costs are idempotent by seq; totals group by key; the series buckets by time."""
    costs = [
        CostRecord(
            seq=1,
            timestamp=100.0,
            model="m1",
            agent="a",
            run_id="r",
            input_tokens=10,
            output_tokens=1,
            cost_usd=0.5,
        ),
        CostRecord(seq=2, timestamp=130.0, model="m2", agent="a", input_tokens=5, cost_usd=0.25),
        CostRecord(seq=3, timestamp=190.0, model="m1", agent="b", cost_usd=1.0),
        CostRecord(seq=4, timestamp=200.0, model="m1", cost_usd=2.0),
    ]
    await store.record_costs(costs)
    await store.record_costs(costs[:1])
    by_agent = await store.cost_totals(by="agent")
    assert by_agent["a"] == {"cost_usd": 0.75, "input_tokens": 15, "output_tokens": 1, "calls": 2}
    assert by_agent["b"]["calls"] == 1
    assert by_agent[""]["cost_usd"] == 2.0
    by_model = await store.cost_totals(by="model", since=130.0)
    assert by_model == {
        "m2": {"cost_usd": 0.25, "input_tokens": 5, "output_tokens": 0, "calls": 1},
        "m1": {"cost_usd": 3.0, "input_tokens": 0, "output_tokens": 0, "calls": 2},
    }
    assert set(await store.cost_totals(by="run_id")) == {"r", ""}
    series = await store.cost_series(bucket_seconds=60)
    assert series == [
        {"start": 60.0, "cost_usd": 0.5, "calls": 1},
        {"start": 120.0, "cost_usd": 0.25, "calls": 1},
        {"start": 180.0, "cost_usd": 3.0, "calls": 2},
    ]
    assert await store.cost_series(bucket_seconds=60, since=150.0) == [
        {"start": 180.0, "cost_usd": 3.0, "calls": 2}
    ]


# ---------------------------------------------------------------------- agents
async def test_agents_save_list_delete(store: Store) -> None:
    """Agents upsert by name (created_at kept), list by name, delete says if it existed."""
    await store.save_agent(
        AgentRecord(name="b", definition={"model": "x"}, created_at=1.0, updated_at=1.0)
    )
    await store.save_agent(
        AgentRecord(
            name="a", definition={"model": "y", "tools": ["t"]}, created_at=2.0, updated_at=2.0
        )
    )
    await store.save_agent(
        AgentRecord(name="b", definition={"model": "z"}, created_at=9.0, updated_at=3.0)
    )
    assert await store.list_agents() == [
        AgentRecord(
            name="a", definition={"model": "y", "tools": ["t"]}, created_at=2.0, updated_at=2.0
        ),
        AgentRecord(name="b", definition={"model": "z"}, created_at=1.0, updated_at=3.0),
    ]
    assert await store.delete_agent("b") is True
    assert await store.delete_agent("b") is False
    assert [a.name for a in await store.list_agents()] == ["a"]


# ----------------------------------------------------------------------- state
async def test_state_holds_json_values(store: Store) -> None:
    """Small named values: unset is None; JSON values round-trip and overwrite."""
    assert await store.get_state("telegram.offset") is None
    await store.put_state("telegram.offset", 41)
    await store.put_state("telegram.offset", 42)
    await store.put_state("budget", {"spent": 1.5, "window": [1, "x", None, True]})
    assert await store.get_state("telegram.offset") == 42
    assert await store.get_state("budget") == {"spent": 1.5, "window": [1, "x", None, True]}


# ------------------------------------------------------------------- retention
async def _fill(store: Store, *, old: float, new: float) -> None:
    await store.append_events([_event(1, ts=old), _event(2, ts=new)])
    await store.save_processes(
        [
            _process("old-done", old, status="completed", ended_at=old),
            _process("old-running", old),
            _process("new-done", new, status="completed", ended_at=new),
        ]
    )
    await store.save_run(_run("old-done", old, status="completed", ended_at=old))
    await store.save_run(_run("old-interrupted", old, status="interrupted"))
    await store.save_run(_run("new-done", new, status="failed", ended_at=new))
    for rid in ("old-done", "old-interrupted", "new-done"):
        await store.save_step(StepRecord(run_id=rid, path="steps[0]", status="completed"))
    await store.record_costs(
        [CostRecord(seq=1, timestamp=old, model="m"), CostRecord(seq=2, timestamp=new, model="m")]
    )
    await store.append_messages("a", None, [{"role": "user", "content": "x"}])
    await store.save_agent(AgentRecord(name="a", definition={}))
    await store.put_state("k", 1)


async def test_counts_prune_and_reset(store: Store) -> None:
    """counts per table; prune drops only old finished rows; reset empties every table."""
    await _fill(store, old=100.0, new=10_000.0)
    assert await store.counts() == {
        "events": 2,
        "processes": 3,
        "messages": 1,
        "runs": 3,
        "steps": 3,
        "costs": 2,
        "agents": 1,
        "state": 1,
    }
    deleted = await store.prune(older_than=5000.0)
    assert deleted == {"events": 1, "steps": 1, "runs": 1, "processes": 1, "costs": 1}
    assert {r.id for r in (await store.list_runs()).items} == {"old-interrupted", "new-done"}
    assert {p.id for p in (await store.list_processes()).items} == {"old-running", "new-done"}
    assert [e.seq for e in await store.read_events()] == [2]
    assert [s.run_id for s in await store.load_steps("old-interrupted")] == ["old-interrupted"]
    assert await store.prune(older_than=5000.0) == dict.fromkeys(deleted, 0)
    counts = await store.counts()
    assert await store.reset() == counts
    assert set((await store.counts()).values()) == {0}
    await store.append_events([_event(7)])  # the schema stays
    assert await store.last_event_seq() == 7


async def _fill_expired(store: Store, n: int) -> None:
    """``n`` expired rows in each prunable table (runs with two steps each), and one
    fresh row of each that must stay."""
    await store.append_events([_event(i, ts=100.0) for i in range(1, n + 1)])
    await store.append_events([_event(n + 1, ts=9000.0)])
    await store.save_processes(
        [_process(f"p{i}", 50.0, status="completed", ended_at=100.0) for i in range(n)]
        + [_process("fresh", 50.0, status="completed", ended_at=9000.0)]
    )
    await store.record_costs(
        [CostRecord(seq=i, timestamp=100.0, model="m") for i in range(1, n + 1)]
        + [CostRecord(seq=n + 1, timestamp=9000.0, model="m")]
    )
    for i in range(n):
        await store.save_run(_run(f"r{i:03d}", 50.0, status="completed", ended_at=100.0))
        for path in ("steps[0]", "steps[1]"):
            await store.save_step(StepRecord(run_id=f"r{i:03d}", path=path, status="completed"))
    await store.save_run(_run("fresh", 50.0, status="completed", ended_at=9000.0))


async def test_prune_deletes_in_bounded_transactions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large prune is a series of writes of at most PRUNE_BATCH rows per table (other
    writes go between them), and still deletes every expired row, and nothing else."""
    from vega_trio.store import _writer

    monkeypatch.setattr(_writer, "PRUNE_BATCH", 10)
    await _fill_expired(store, 35)
    writes: list[Any] = []
    write = store._write  # type: ignore[attr-defined]

    async def counted(apply: Any, **kw: Any) -> Any:
        result = await write(apply, **kw)
        writes.append(result)
        return result

    store._write = counted  # type: ignore[attr-defined]
    deleted = await store.prune(older_than=5000.0)
    assert deleted == {"events": 35, "steps": 70, "runs": 35, "processes": 35, "costs": 35}
    assert len(writes) == 4  # 10 + 10 + 10 + 5
    counts = await store.counts()
    assert (counts["events"], counts["processes"], counts["costs"], counts["runs"]) == (1, 1, 1, 1)
    assert counts["steps"] == 0


async def test_a_write_during_a_large_prune_commits_before_the_prune_ends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that arrives while a prune is under way is committed between its
    batches, not after the whole prune (a chat turn is not held by the retention)."""
    from vega_trio.store import _writer

    monkeypatch.setattr(_writer, "PRUNE_BATCH", 10)
    await _fill_expired(store, 60)
    first_batch_done = trio.Event()
    write = store._write  # type: ignore[attr-defined]

    async def watched(apply: Any, **kw: Any) -> Any:
        result = await write(apply, **kw)
        first_batch_done.set()
        return result

    store._write = watched  # type: ignore[attr-defined]
    finished: list[str] = []

    async def prune() -> None:
        await store.prune(older_than=5000.0)
        finished.append("prune")

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(prune)
            await first_batch_done.wait()
            await store.put_state("turn", 1)
            finished.append("write")
    assert finished == ["write", "prune"]
    assert await store.get_state("turn") == 1


# ------------------------------------------------------------------ durability
async def test_everything_survives_a_reopen(opened: OpenStore) -> None:
    """Closing and opening the same database again gives back every committed row."""
    async with opened() as store:
        await _fill(store, old=100.0, new=200.0)
        before = await store.counts()
        assert store.health().status == "ok"
    assert store.health().status == "closed"
    async with opened() as again:
        assert await again.counts() == before
        assert await again.last_event_seq() == 2
        assert await again.load_conversation("a", None) == [{"role": "user", "content": "x"}]
        assert (await again.get_run("old-done")) == _run(
            "old-done", 100.0, status="completed", ended_at=100.0
        )
        assert await again.get_state("k") == 1
        # The writer continues the event numbering after the stored events.
        await again.append_events([_event(3)])
        await again.wait_events_committed(3)


async def test_the_engine_implements_the_protocol(store: Store, engine: str) -> None:  # noqa: ASYNC124
    """The opened store is a Store of the engine asked for, healthy, nothing pending."""
    assert isinstance(store, Store)
    assert store.engine == engine
    assert store.health() == StoreHealth(status="ok", engine=engine)


async def test_writes_after_close_are_refused(opened: OpenStore) -> None:
    """A write (or read) on a closed store raises StoreClosed instead of vanishing."""
    async with opened() as store:
        pass
    with pytest.raises(StoreClosed, match="closed"):
        await store.put_state("k", 1)
    with pytest.raises(StoreClosed, match="closed"):
        await store.get_state("k")
    with pytest.raises(StoreClosed):
        await store.wait_events_committed(1)


async def test_exit_flushes_writes_still_queued(opened: OpenStore) -> None:
    """Writes queued when the store closes are committed before its exit returns."""
    closing = trio.Event()

    async def hold_the_writer(limiter: trio.CapacityLimiter, task_status: Any) -> None:  # noqa: ASYNC114
        async with limiter:
            task_status.started()
            await closing.wait()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            async with opened() as store:
                # Hold the engine's writer (its GroupCommitter's limiter) so the writes
                # are still queued when the store closes.
                committer = getattr(store, "_committer", None)
                if committer is None:
                    pytest.skip(f"{store.engine} does not write through a GroupCommitter")
                await nursery.start(hold_the_writer, committer._limiter)
                for i in range(50):
                    nursery.start_soon(store.put_state, f"k{i}", i)  # noqa: ASYNC111 - on purpose
                await trio.testing.wait_all_tasks_blocked()
                assert store.health().pending_writes == 50
                closing.set()
    async with opened() as again:
        assert (await again.counts())["state"] == 50


_KILL_WRITER = textwrap.dedent(
    """
    import sys, trio
    from vega_trio.store import open_store, StoredEvent

    async def main(location):
        async with open_store(location) as store:
            seq = 0
            async def turn(i):
                await store.append_messages("chat", "u", [{"role": "user", "content": str(i)}])
                print(f"msg {i}", flush=True)
            async def events(first):
                await store.append_events(
                    [StoredEvent(seq=first + k, type="x", timestamp=1.0, data={}) for k in range(5)]
                )
                print(f"ev {first + 4}", flush=True)
            i = 0
            while True:
                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(turn, i)
                        i += 1
                    nursery.start_soon(events, seq + 1)
                    seq += 5

    trio.run(main, sys.argv[1])
    """
)


@pytest.mark.slow
async def test_kill_9_loses_nothing_acknowledged(db: str, tmp_path: Path) -> None:
    """A writer SIGKILLed mid-stream: every write it acknowledged is in the database."""
    script = tmp_path / "writer.py"
    script.write_text(_KILL_WRITER)
    for round_ in range(3):
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(script), db],
            stdout=subprocess.PIPE,
            env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])},
        )
        assert proc.stdout is not None
        buffer = b""
        with trio.fail_after(60):
            while buffer.count(b"\n") < 300 + 200 * round_:
                chunk = await proc.stdout.receive_some()
                assert chunk, "the writer exited early"
                buffer += chunk
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        await proc.stdout.aclose()
        # Only complete lines are acknowledgements (a line may be cut by the kill).
        acked = buffer.decode().split("\n")[:-1]
        messages = {int(a.split()[1]) for a in acked if a.startswith("msg")}
        last_event = max((int(a.split()[1]) for a in acked if a.startswith("ev")), default=0)
        async with open_store(db) as store:
            stored = await store.load_conversation("chat", "u")
            contents = [int(m["content"]) for m in stored]
            assert messages <= set(contents), sorted(messages - set(contents))[:5]
            assert len(contents) == len(set(contents))
            events = await store.read_events(limit=1_000_000)
            assert {e.seq for e in events} >= set(range(1, last_event + 1))
            # Start the next round afresh so "acknowledged" is per round.
            await store.reset()
    if db.startswith(("postgresql://", "postgres://")):
        return
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
