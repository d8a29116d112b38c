"""Crash test (issue 13): ``vega-trio serve`` on a fresh SQLite file, driven with chat
turns, streamed turns and an event stream, SIGKILLed at random moments over ten rounds
and restarted on the same file each time: every acknowledged turn and every event
delivered with an id is there afterwards, event numbers only grow, and the file passes
``PRAGMA integrity_check``."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from ._helpers import leaving_a_stream_early, parse_sse

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 10


async def _start(db: Path) -> tuple[trio.Process, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VEGA_TOKEN", None)
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "vega_trio",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--llm",
            "scripted",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=db.parent,
    )
    assert proc.stdout is not None
    buffer = b""
    with trio.fail_after(60):
        while b"\n" not in buffer:
            chunk = await proc.stdout.receive_some()
            assert chunk, "vega-trio serve exited before printing its URL"
            buffer += chunk
    line = buffer.decode().splitlines()[0]
    return proc, line.split(" on ", 1)[1].split()[0]


def _stored_turns(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        found = conn.execute(
            "SELECT message FROM messages WHERE agent = 'assistant' AND user_key = '=crash' "
            "ORDER BY position"
        ).fetchall()
    finally:
        conn.close()
    return [
        json.loads(m)["content"][0]["text"] for (m,) in found if json.loads(m)["role"] == "user"
    ]


def _stored_seqs(db: Path) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {seq for (seq,) in conn.execute("SELECT seq FROM events")}
    finally:
        conn.close()


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Ten SIGKILLs at random moments: every acknowledged chat turn (plain or streamed)
    and every event sent with an id is in the file; the conversation goes on in order;
    numbering continues; the file is intact."""
    db = tmp_path / "crash.db"
    rng = random.Random(13)
    acknowledged: list[str] = []
    event_ids: set[int] = set()
    highest_before: int = 0
    for round_ in range(ROUNDS):
        proc, url = await _start(db)
        round_ids: list[int] = []
        try:
            async with httpx2.AsyncClient(base_url=url, timeout=10) as client:

                async def chat(round_: int = round_, client: Any = client) -> None:
                    for i in range(10_000):
                        text = f"r{round_}-{i}"
                        if i % 2:
                            response = await client.post(
                                "/api/agents/assistant:crash/chat", json={"message": text}
                            )
                            if response.status_code == 200:
                                acknowledged.append(text)
                            continue
                        async with client.stream(
                            "POST",
                            "/api/agents/assistant:crash/chat/stream",
                            json={"message": text},
                        ) as response:
                            async with parse_sse(response) as events:
                                async for event in events:
                                    if event.event == "done":
                                        acknowledged.append(text)

                async def watch(client: Any = client, ids: list[int] = round_ids) -> None:
                    async with client.stream("GET", "/api/events") as response:
                        async with parse_sse(response) as events:
                            async for event in events:
                                if event.id is not None:
                                    ids.append(int(event.id))

                with leaving_a_stream_early():
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(watch)
                        nursery.start_soon(chat)
                        await trio.sleep(rng.uniform(0.2, 1.5))  # then the crash, anywhere
                        proc.send_signal(signal.SIGKILL)
                        with trio.fail_after(10):
                            await proc.wait()
                        with trio.move_on_after(1):  # the clients see the connections drop
                            await trio.sleep_forever()
                        nursery.cancel_scope.cancel()
        except* (httpx2.HTTPError, trio.BrokenResourceError):
            pass  # a request cut by the kill was never acknowledged
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert all(seq > highest_before for seq in round_ids)  # numbering continued
        if round_ids:
            highest_before = max(round_ids)
        event_ids.update(round_ids)
        stored = _stored_turns(db)
        missing = [t for t in acknowledged if t not in stored]
        assert not missing, f"round {round_}: acknowledged turns lost: {missing[:5]}"
        assert not (event_ids - _stored_seqs(db)), f"round {round_}: delivered events lost"
    assert len(acknowledged) > ROUNDS  # the rounds did real work
    stored = _stored_turns(db)
    assert [t for t in stored if t in set(acknowledged)] == acknowledged  # in order
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    # a last start on the file: the conversation goes on with its whole history
    proc, url = await _start(db)
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
            messages: list[Any] = []
            while True:  # every page of the stored conversation
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
            assert [t for t in texts if t in set(acknowledged)] == acknowledged
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            await proc.wait()
