"""Crash test (issue 13): ``vega-trio serve`` on a fresh store (a SQLite file, or a
PostgreSQL database), served by the project's fake Anthropic server and driven at once
with chat turns, streamed turns, an event stream and workflow runs (a for loop and a
parallel step); SIGKILLed at a random (seeded) moment in each of ten rounds and
restarted on the same store each time.

After every kill the store is read directly: every acknowledged turn (HTTP 200, or a
received ``done``), every event delivered with an id and every run answered with 202 is
there. After every restart, the runs that were ``running`` are ``interrupted`` and are
resumed over the API; at the end every run has completed.

"No completed step was sent to the model twice" is checked on the fake server's request
log. Every model request is matched to one step by its last user message: each agent
step's message starts with the run's unique tag and names the step (and loop item or
branch), and the fake model's reply starts with ``done: <that message>``, so a stored
checkpoint's result names its step too. Then: (1) a step checkpointed when the server
was killed is never requested after the kill; (2) a step is requested at most once plus
once per kill that found it in flight (requested, not checkpointed).
"""

from __future__ import annotations

import random
import signal
import sqlite3
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs
import httpx2
import pytest
import trio

from vega_trio.store import open_store
from vega_trio.testing import FakeAnthropicServer, FakeResponse, open_fake_anthropic_server

from ._helpers import leaving_a_stream_early, parse_sse, vega_serve_process

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 10
SEED = 13

DOCUMENT = """\
name: Crash
settings:
  default_model: claude-sonnet-4-20250514
agents:
  assistant:
    system: You help.
  planner:
    system: You plan.
  writer:
    system: You write.
workflows:
  pipeline:
    inputs:
      tag:
        type: string
    steps:
      - planner:
          send: "[{{tag}}] plan"
          save: parts
      - for: part in parts
        steps:
          - writer: "[{{tag}}] write {{part}}"
        save: paragraphs
      - parallel:
          - writer:
              send: "[{{tag}}] left"
              save: left
          - - writer:
                send: "[{{tag}}] right"
                save: right
            - writer: "[{{tag}}] right again"
      - writer: "[{{tag}}] end {{left}} / {{right}}"
"""


def _last_user_text(body: Any) -> str:
    """The text of the last user message of a Messages API request body."""
    message = body["messages"][-1]
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def _reply(body: Any) -> FakeResponse:
    """``done: <the message>``; the plan step's reply adds three lines (the loop's items).
    Workflow steps take a little while, so kills land in the middle of runs."""
    key = _last_user_text(body)
    if key.startswith("["):
        text = f"done: {key}\nalpha\nbeta" if key.endswith("] plan") else f"done: {key}"
        return FakeResponse.text(text, chunks=2, first_byte_delay=0.05)
    return FakeResponse.text(f"done: {key}", chunks=3)


def _step_of(result: Any) -> str | None:
    """The step key a checkpoint's result names (``None`` for a loop or parallel step,
    whose value is its children's). A checkpoint keeps the step's ``value``, the
    variables it ``assigned`` and the agent's conversation."""
    if isinstance(result, Mapping):
        result = result.get("value")
    if isinstance(result, str) and result.startswith("done: "):
        return result.split("\n", 1)[0].removeprefix("done: ")
    return None


@attrs.define
class Stored:
    """What the store holds after a kill."""

    turns: list[str]
    seqs: set[int]
    runs: dict[str, str]  # run id -> status
    checkpointed: set[str]  # step keys


async def _read_store(location: str) -> Stored:
    """Everything the crash test checks, read straight from the store."""
    async with open_store(location) as store:
        conversation = await store.load_conversation("assistant", "crash")
        turns = [
            m["content"][0]["text"]  # type: ignore[index]
            for m in conversation
            if isinstance(m, Mapping) and m.get("role") == "user"
        ]
        seqs: set[int] = set()
        while batch := await store.read_events(after=max(seqs, default=0), limit=1000):
            seqs.update(e.seq for e in batch)
        runs: dict[str, str] = {}
        while page := (await store.list_runs(limit=100, offset=len(runs))).items:
            runs.update((r.id, r.status) for r in page)
        checkpointed: set[str] = set()
        for run_id in runs:
            for step in await store.load_steps(run_id):
                key = _step_of(step.result)
                if key is not None and step.status == "completed":
                    checkpointed.add(key)
    return Stored(turns, seqs, runs, checkpointed)


def _serving(
    location: str, home: Path, fake: FakeAnthropicServer
) -> AbstractAsyncContextManager[tuple[trio.Process, str]]:
    """``vega-trio serve crash.vega.yaml --db location`` on the fake Anthropic server."""
    return vega_serve_process(
        [str(home / "crash.vega.yaml"), "--llm", "anthropic", "--db", location],
        cwd=home,
        env={"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": fake.base_url},
    )


@attrs.define
class Driver:
    """What the clients of all rounds saw acknowledged."""

    turns: list[str] = attrs.field(factory=list)
    event_ids: set[int] = attrs.field(factory=set)
    runs: dict[str, str] = attrs.field(factory=dict)  # run id -> tag
    resumed: int = 0

    async def chat(self, client: httpx2.AsyncClient, round_: int) -> None:
        for i in range(10_000):
            text = f"r{round_}-{i}"
            if i % 2:
                response = await client.post(
                    "/api/agents/assistant:crash/chat", json={"message": text}
                )
                if response.status_code == 200:
                    self.turns.append(text)
                continue
            async with client.stream(
                "POST", "/api/agents/assistant:crash/chat/stream", json={"message": text}
            ) as response:
                async with parse_sse(response) as events:
                    async for event in events:
                        if event.event == "done":
                            self.turns.append(text)

    async def watch(self, client: httpx2.AsyncClient, ids: list[int]) -> None:
        async with client.stream("GET", "/api/events") as response:
            async with parse_sse(response) as events:
                async for event in events:
                    if event.id is not None:
                        ids.append(int(event.id))

    async def start_runs(self, client: httpx2.AsyncClient, round_: int) -> None:
        for i in range(10_000):
            tag = f"r{round_}-w{i}"
            response = await client.post("/api/workflows/pipeline/run", json={"tag": tag})
            if response.status_code == 202:
                self.runs[response.json()["run_id"]] = tag
            await trio.sleep(0.15)


async def _resume_interrupted(
    client: httpx2.AsyncClient, were_running: set[str], driver: Driver
) -> None:
    """The runs the killed server left running are ``interrupted``; resume them all
    (also those stored whose 202 the kill cut off)."""
    for run_id in sorted(set(driver.runs) | were_running):
        run = (await client.get(f"/api/workflows/runs/{run_id}")).json()
        if run_id in were_running:
            assert run["status"] == "interrupted", f"{run_id} was running: {run['status']}"
        if run["status"] == "interrupted":
            response = await client.post(f"/api/workflows/runs/{run_id}/resume", json={})
            assert response.status_code == 202, response.text
            driver.resumed += 1


async def _crash_rounds(location: str, home: Path, integrity: Path | None) -> None:
    (home / "crash.vega.yaml").write_text(DOCUMENT)
    rng = random.Random(SEED)
    driver = Driver()
    highest_before = 0
    in_flight: Counter[str] = Counter()  # step key -> kills that found it in flight
    were_running: set[str] = set()
    kills: list[tuple[int, set[str]]] = []  # requests sent before, steps checkpointed
    async with open_fake_anthropic_server(responder=_reply) as fake:
        for round_ in range(ROUNDS):
            round_ids: list[int] = []
            try:
                async with _serving(location, home, fake) as (proc, url):
                    async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
                        with trio.fail_after(60):
                            await _resume_interrupted(client, were_running, driver)
                        with leaving_a_stream_early():
                            async with trio.open_nursery() as nursery:
                                nursery.start_soon(driver.watch, client, round_ids)
                                nursery.start_soon(driver.chat, client, round_)
                                nursery.start_soon(driver.start_runs, client, round_)
                                await trio.sleep(rng.uniform(0.3, 2.0))  # then the crash
                                proc.send_signal(signal.SIGKILL)
                                with trio.fail_after(10):
                                    await proc.wait()
                                with trio.move_on_after(1):  # the clients see the drop
                                    await trio.sleep_forever()
                                nursery.cancel_scope.cancel()
            except* (httpx2.HTTPError, trio.BrokenResourceError):
                pass  # a request cut by the kill was never acknowledged
            assert proc.returncode == -signal.SIGKILL
            sent_before_kill = len(fake.requests)
            with trio.fail_after(30):
                stored = await _read_store(location)
            missing = [t for t in driver.turns if t not in stored.turns]
            assert not missing, f"round {round_}: acknowledged turns lost: {missing[:5]}"
            assert all(seq > highest_before for seq in round_ids)  # numbering continued
            highest_before = max(round_ids, default=highest_before)
            driver.event_ids.update(round_ids)
            assert not (driver.event_ids - stored.seqs), f"round {round_}: delivered events lost"
            lost_runs = set(driver.runs) - set(stored.runs)
            assert not lost_runs, f"round {round_}: 202'd runs lost: {sorted(lost_runs)}"
            were_running = {r for r, status in stored.runs.items() if status == "running"}
            requested = {_last_user_text(r.body) for r in fake.requests[:sent_before_kill]}
            in_flight.update(requested - stored.checkpointed)
            kills.append((sent_before_kill, stored.checkpointed))
        # real work was done, and kills did land in the middle of runs and steps
        assert len(driver.turns) > ROUNDS and len(driver.runs) > ROUNDS
        assert driver.resumed > 0 and in_flight
        async with _serving(location, home, fake) as (proc, url):
            async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
                with trio.fail_after(60):
                    await _resume_interrupted(client, were_running, driver)
                with trio.fail_after(60):
                    for run_id in sorted(set(driver.runs) | set(stored.runs)):
                        while True:
                            run = (await client.get(f"/api/workflows/runs/{run_id}")).json()
                            if run["status"] != "running":
                                break
                            await trio.sleep(0.1)
                        assert run["status"] == "completed", run
                        tag = driver.runs.get(run_id, "")
                        assert run["output"].startswith(f"done: [{tag}"), run
                        assert "] end done: [" in run["output"], run
                # the conversation goes on with its whole history
                messages: list[Any] = []
                while True:
                    page = (
                        await client.get(
                            "/api/agents/assistant:crash/chat",
                            params={"limit": 1000, "offset": len(messages)},
                        )
                    ).json()
                    messages += page["messages"]
                    if not page["messages"] or len(messages) >= page["total"]:
                        break
                texts = [m["content"][0]["text"] for m in messages if m["role"] == "user"]
                acknowledged = set(driver.turns)
                assert [t for t in texts if t in acknowledged] == driver.turns  # in order
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                await proc.wait()
        log = [_last_user_text(r.body) for r in fake.requests]
        # (1) a step checkpointed when the server was killed is never sent again
        for kill, (sent_before_kill, checkpointed) in enumerate(kills):
            again = [k for k in log[sent_before_kill:] if k in checkpointed]
            assert not again, f"steps checkpointed at kill {kill} sent again: {again[:5]}"
        # (2) at most once, plus once per kill that found the step in flight
        sent = Counter(log)
        final = await _read_store(location)
        assert {k for k in sent if k.startswith("[")} <= final.checkpointed
        twice = {k: n for k, n in sent.items() if n > 1 + in_flight[k]}
        assert not twice, f"steps sent to the model more often than their crashes explain: {twice}"
    if integrity is not None:
        conn = sqlite3.connect(integrity)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_acknowledged_on_sqlite(
    tmp_path: Path,
) -> None:
    """Ten SIGKILLs on SQLite: nothing acknowledged lost, runs resume and finish, no
    completed step sent to the model twice, the file intact."""
    db = tmp_path / "crash.db"
    await _crash_rounds(str(db), tmp_path, integrity=db)


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_acknowledged_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    """Ten SIGKILLs on PostgreSQL: nothing acknowledged lost, runs resume and finish, no
    completed step sent to the model twice."""
    await _crash_rounds(postgres_url, tmp_path, integrity=None)
