"""B11: the durable store — events per second with group commit, and what a chat turn's
commit costs (SPEC §12: a chat turn's reply is sent only after its messages are
committed).

Three measurements on a fresh SQLite file (WAL, ``synchronous=NORMAL``) or, with
``db=postgresql://…``, on PostgreSQL:

* **events, one per call**: ``producers`` tasks each append one event per
  ``append_events`` call and wait for it to commit — the worst case, carried by group
  commit (every event waiting at once shares one transaction);
* **events, batched**: one writer appends ``batch`` events per call, as the store's
  event writer does off the hot path;
* **chat turns**: ``append_messages`` of a user message and a reply (about 1 KB), alone
  (one commit each) and with ``chatters`` conversations at once; p50/p99 of the time
  from the call to its return (= committed).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["B11_MIN_EVENTS_PER_S", "b11", "render_b11"]

B11_MIN_EVENTS_PER_S = 5_000


def b11(
    n_events: int, producers: int, batch: int, turns: int, chatters: int, db: str | None = None
) -> dict[str, Any]:
    """Run B11 on ``db`` (default: a fresh SQLite file in a temporary directory)."""
    import trio

    with tempfile.TemporaryDirectory() as tmp:
        location = db or str(Path(tmp) / "b11.db")
        return trio.run(_b11, location, n_events, producers, batch, turns, chatters)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _b11(
    location: str, n_events: int, producers: int, batch: int, turns: int, chatters: int
) -> dict[str, Any]:
    import trio

    from vega_trio.store import StoredEvent, open_store

    payload = {"process_id": "p-1", "agent": "helper", "detail": "x" * 150}

    def event(seq: int) -> StoredEvent:
        return StoredEvent(seq=seq, type="process.started", timestamp=time.time(), data=payload)

    async with open_store(location) as store:
        engine = store.engine
        await store.reset()

        # Events, one per call, from many producers at once.
        per_producer = n_events // producers
        committer = getattr(store, "_committer", None)
        commits_before = committer.commits if committer else 0

        async def producer(first: int) -> None:
            for k in range(per_producer):
                await store.append_events([event(first + k)])

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for p in range(producers):
                nursery.start_soon(producer, 1 + p * per_producer)
        single_s = time.perf_counter() - started
        single_n = per_producer * producers
        commits = (committer.commits - commits_before) if committer else None

        # Events in batches, one writer.
        base = single_n + 1
        started = time.perf_counter()
        for first in range(base, base + n_events, batch):
            await store.append_events([event(s) for s in range(first, first + batch)])
        batched_s = time.perf_counter() - started
        assert await store.last_event_seq() == base + n_events - 1

        # Chat turns.
        user = {"role": "user", "content": [{"type": "text", "text": "q" * 300}]}
        reply = {"role": "assistant", "content": [{"type": "text", "text": "a" * 600}]}
        alone: list[float] = []
        for _ in range(turns):
            t0 = time.perf_counter()
            await store.append_messages("helper", "solo", [user, reply])
            alone.append(time.perf_counter() - t0)

        loaded: list[float] = []

        async def chatter(c: int) -> None:
            for _ in range(turns // chatters):
                t0 = time.perf_counter()
                await store.append_messages("helper", f"user-{c}", [user, reply])
                loaded.append(time.perf_counter() - t0)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for c in range(chatters):
                nursery.start_soon(chatter, c)
        loaded_s = time.perf_counter() - started
        await store.reset()

    return {
        "engine": engine,
        "single_n": single_n,
        "producers": producers,
        "single_per_s": single_n / single_s,
        "single_commits": commits,
        "batched_n": n_events,
        "batch": batch,
        "batched_per_s": n_events / batched_s,
        "turns": turns,
        "alone_p50_ms": statistics.median(alone) * 1e3,
        "alone_p99_ms": _percentile(alone, 0.99) * 1e3,
        "chatters": chatters,
        "loaded_turns": len(loaded),
        "loaded_p50_ms": statistics.median(loaded) * 1e3,
        "loaded_p99_ms": _percentile(loaded, 0.99) * 1e3,
        "loaded_per_s": len(loaded) / loaded_s,
    }


def render_b11(results: list[dict[str, Any]]) -> tuple[str, list[list[str]]]:
    """The report section and the summary rows for B11 (one result per engine)."""
    rows: list[list[str]] = []
    lines: list[str] = []
    for r in results:
        rate = r["single_per_s"]
        if r["engine"] == "sqlite":
            rows.append(
                [
                    f"B11: durable events/s on SQLite with group commit at least "
                    f"{B11_MIN_EVENTS_PER_S:,}",
                    f"{rate:,.0f}/s one per call ({r['batched_per_s']:,.0f}/s batched)",
                    "✅" if rate >= B11_MIN_EVENTS_PER_S else "❌",
                ]
            )
        commits = (
            f"{r['single_commits']:,} commits, {r['single_n'] / r['single_commits']:.0f} events "
            "each"
            if r["single_commits"]
            else ""
        )
        lines.append(
            f"| {r['engine']} | {rate:,.0f}/s ({commits}) | {r['batched_per_s']:,.0f}/s "
            f"| {r['alone_p50_ms']:.2f} / {r['alone_p99_ms']:.2f} ms "
            f"| {r['loaded_p50_ms']:.2f} / {r['loaded_p99_ms']:.2f} ms "
            f"({r['loaded_per_s']:,.0f} turns/s) |"
        )
    first = results[0]
    text = f"""## B11 — the durable store

Every write returns only once it is committed ("acknowledged means committed", SPEC §12);
concurrent writes share one transaction (group commit).

- Events: {first["single_n"]:,} appended one per `append_events` call by \
{first["producers"]} producers at once, then {first["batched_n"]:,} in batches of \
{first["batch"]} by one writer (as the event writer does).
- Chat turns: `append_messages` of a user message and a reply (~1 KB), {first["turns"]:,} \
one after another (each its own commit), then {first["turns"]:,} spread over \
{first["chatters"]} conversations at once; p50 / p99 from the call to its return (committed).
- SQLite in WAL with `synchronous=NORMAL` on the machine's disk: a commit survives the \
process being killed (`kill -9`), and a power cut once the next checkpoint has run.

| engine | events, one per call | events, batched | chat turn alone p50 / p99 \
| chat turn, {first["chatters"]} at once p50 / p99 |
| --- | ---: | ---: | ---: | ---: |
{chr(10).join(lines)}
"""
    return text, rows
