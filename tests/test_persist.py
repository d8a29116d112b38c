"""The orchestrator on a real SQLite store (SPEC §12): what it writes, and what an
orchestrator opened again on the same file continues from — event numbers, session
conversations, processes, costs, budget spend and restart totals."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import Agent, BudgetExceeded, ErrorClass, LLMError, open_orchestrator
from vega_trio.agent import SlidingWindowContext
from vega_trio.llm import LLMRequest, Usage
from vega_trio.resilience import Budget
from vega_trio.runtime import Backoff, Supervision
from vega_trio.store import Store, open_store
from vega_trio.testing import ScriptedLLM, Step

MODEL = "claude-sonnet-5-5"  # $2 / $10 per million tokens in the packaged table


def user_turns(request: LLMRequest) -> list[str]:
    return [m.text for m in request.messages if m.role == "user" and m.text]


def costly(input_tokens: int = 2000) -> Step:
    """A reply that costs input_tokens x $2/M ($0.004 for 2,000)."""
    return Step.text("ok", usage=Usage(input_tokens=input_tokens, output_tokens=0))


@asynccontextmanager
async def store_at(path: Path) -> AsyncIterator[Store]:
    async with open_store(str(path)) as store:
        yield store


async def test_event_numbers_continue_after_a_restart_with_every_event_stored(
    tmp_path: Path,
) -> None:
    """A second orchestrator on the same file numbers its events after the stored ones;
    the store holds every event of both, numbered 1..N without a gap or a repeat."""
    db = tmp_path / "v.db"
    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            orch.agents.define(Agent(name="a"))
            await (await orch.session("a")).send("one")
        first_run = await store.last_event_seq()
        assert first_run > 3
    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            with orch.subscribe() as sub:
                orch.agents.define(Agent(name="a"))
                event = await sub.receive()
            assert event.seq == first_run + 1  # type: ignore[union-attr]
            await (await orch.session("a")).send("two")
        events = await store.read_events(after=0, limit=10_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) > first_run + 3
    assert {e.type for e in events} >= {"process.started", "llm.call", "process.stopped"}


async def test_a_session_continues_its_conversation_after_a_restart(tmp_path: Path) -> None:
    """orch.session(...) on a reopened store starts from the committed turns."""
    db = tmp_path / "v.db"
    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            orch.agents.define(Agent(name="a"))
            proc = await orch.session("a", user="42")
            await proc.send("one")
            await proc.send("two")
    llm = ScriptedLLM.echo()
    async with store_at(db) as store:
        async with open_orchestrator(llm=llm, store=store) as orch:
            orch.agents.define(Agent(name="a"))
            assert await (await orch.session("a", user="42")).send("three") == "three"
            assert await (await orch.session("a", user="7")).send("other") == "other"
        stored = await store.load_conversation("a", "42")
    assert user_turns(llm.requests[0]) == ["one", "two", "three"]
    assert user_turns(llm.requests[1]) == ["other"]  # another user's own history
    assert [m["role"] for m in stored] == ["user", "assistant"] * 3


async def test_a_reply_is_returned_only_after_its_turn_is_committed(tmp_path: Path) -> None:
    """When send() returns, another connection to the file already sees the turn."""
    db = tmp_path / "v.db"
    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            orch.agents.define(Agent(name="a"))
            proc = await orch.session("a", user="u")
            for i in range(5):
                await proc.send(f"m{i}")
                async with store_at(db) as other:  # its own connections
                    seen = await other.load_conversation("a", "u")
                assert len(seen) == 2 * (i + 1)
                assert seen[-2]["content"][0]["text"] == f"m{i}"


async def test_a_failed_turn_is_not_stored_and_ending_a_session_clears_it(
    tmp_path: Path,
) -> None:
    """Only completed turns are committed; end_session forgets the stored conversation,
    also of a session not spawned since the restart."""
    db = tmp_path / "v.db"
    llm = ScriptedLLM(["ok", Step.error(ErrorClass.AUTHENTICATION), "ok again"])
    async with store_at(db) as store:
        async with open_orchestrator(llm=llm, store=store) as orch:
            orch.agents.define(Agent(name="a"))
            proc = await orch.session("a", user="u")
            await proc.send("one")
            with pytest.raises(LLMError):
                await proc.send("fails")
            assert len(await store.load_conversation("a", "u")) == 2
    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            orch.agents.define(Agent(name="a"))
            assert await orch.end_session("a", user="u") is True
            assert await store.load_conversation("a", "u") == []
            assert await orch.end_session("a", user="u") is False


async def test_a_compaction_replaces_the_stored_conversation(tmp_path: Path) -> None:
    """After a compaction the store holds the compacted history (summary + recent
    turns), which is what a restarted session continues from."""
    db = tmp_path / "v.db"

    def respond(request: LLMRequest) -> Step:
        if request.system and "summar" in request.system.lower():
            return Step.text("SUMMARY")
        return Step.text("reply")

    agent = Agent(name="a", context=lambda: SlidingWindowContext(2, compact_above=30))
    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM(responder=respond), store=store) as orch:
            orch.agents.define(agent)
            proc = await orch.session("a")
            for i in range(6):
                await proc.send(f"turn {i} " + "x" * 40)
            live = [m.text for m in proc.history]
        stored = await store.load_conversation("a", None)
    texts = ["".join(b.get("text", "") for b in m["content"]) for m in stored]
    assert len(stored) < 12  # not every turn: the compaction replaced it
    assert texts == live


async def test_processes_and_costs_are_stored_and_the_budget_survives_a_restart(
    tmp_path: Path,
) -> None:
    """Finished processes (status, metrics) and each call's cost are in the store; the
    reopened orchestrator keeps the global and the agent's spend, so a block budget
    that was spent stays spent (two $0.005 calls of a $0.01 budget)."""
    db = tmp_path / "v.db"
    agent = Agent(name="a", model=MODEL, budget=Budget(limit=0.01))
    async with store_at(db) as store:
        llm = ScriptedLLM(responder=lambda _r: costly(2500))
        async with open_orchestrator(llm=llm, store=store, budget="$1") as orch:
            orch.agents.define(agent)
            for _ in range(2):
                proc = await orch.spawn(agent)
                await proc.send("hi")
                proc.stop()
                await proc.wait()
            spent = orch.budget.spent
            pid = proc.id
        assert spent == pytest.approx(0.01)
        record = await store.get_process(pid)
        assert record is not None and record.status == "stopped"
        assert record.metrics["cost_usd"] == pytest.approx(0.005)
        assert (await store.list_processes()).total == 2
        totals = await store.cost_totals(by="agent")
        assert totals["a"]["cost_usd"] == pytest.approx(0.01) and totals["a"]["calls"] == 2
    llm = ScriptedLLM(responder=lambda _r: costly())
    async with store_at(db) as store:
        async with open_orchestrator(llm=llm, store=store, budget="$1") as orch:
            orch.agents.define(agent)
            assert orch.budget.spent == pytest.approx(0.01)
            assert orch.costs()["agents"]["a"]["cost_usd"] == pytest.approx(0.01)
            proc = await orch.spawn(agent)
            with pytest.raises(BudgetExceeded):  # the $0.01 limit is spent
                await proc.send("hi")
    assert llm.requests == []


async def test_restart_totals_survive_a_restart(tmp_path: Path) -> None:
    """Restarts per agent are counted in the store and reported after a restart."""
    db = tmp_path / "v.db"

    supervision = Supervision(max_restarts=3, backoff=Backoff(kind="constant", initial=0))

    def crash(request: LLMRequest) -> Step:
        raise RuntimeError("a bug in the backend")  # not an LLMError: the process crashes

    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM(responder=crash), store=store) as orch:
            proc = await orch.spawn(Agent(name="flaky", supervision=supervision))
            with pytest.raises(RuntimeError):  # redelivered to each incarnation, then given up
                await proc.send("hi")
            with trio.fail_after(5):
                await proc.wait()
            assert proc.restart_count == 3
        before = await store.get_state("restarts")
    assert before == {"flaky": 3}
    async with store_at(db) as store:
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            assert orch.stats()["restarts_by_agent"]["flaky"] == before["flaky"]


def _raw_rows(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


async def test_the_end_waits_for_a_store_that_cannot_commit_once(tmp_path: Path) -> None:
    """With every write of the store failing (and retried), the orchestrator's end hands
    its last events to the store and leaves the wait to the store's own flush bound,
    instead of waiting shutdown_timeout + 5 s first (`vega-trio serve` with its store
    down took 30 s to stop)."""
    with trio.fail_after(60):
        async with open_store(str(tmp_path / "v.db"), flush_seconds=0.5) as store:
            async with open_orchestrator(
                llm=ScriptedLLM.echo(), store=store, shutdown_timeout=1
            ) as orch:
                orch.agents.define(Agent(name="a"))
                await (await orch.session("a")).send("one")
                # every write fails from now on ("attempt to write a readonly database")
                await store._on_writer(  # type: ignore[attr-defined]
                    lambda c: c.execute("PRAGMA query_only = ON")
                )
                started = trio.current_time()
            ended = trio.current_time()
    assert ended - started < 1 + 3  # the shutdown ladder, not + 5 s of waiting on the store
