"""`vega-trio serve` as a real subprocess: prints its URL, answers the seed's curl lines,
stops on SIGINT/SIGTERM with exit 0; and the command's async half, in process."""

from __future__ import annotations

import gc
import io
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import httpx2
import pytest
import trio

from vega_trio._cli._serve import serve_command

from ._helpers import collect_events, leaving_a_stream_early, parse_sse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


async def _start(*args: str) -> tuple[trio.Process, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VEGA_TOKEN", None)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "vega_trio", "serve", "--addr", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tempfile.mkdtemp(prefix="vega-serve-"),  # its default --db file goes there
    )
    assert proc.stdout is not None
    buffer = b""
    with trio.fail_after(30):
        while b"\n" not in buffer:
            chunk = await proc.stdout.receive_some()
            assert chunk, "vega-trio serve exited before printing its URL"
            buffer += chunk
    line = buffer.decode().splitlines()[0]
    assert line.startswith("vega-trio serve: listening on http://127.0.0.1:")
    url = line.split(" on ", 1)[1].split()[0]
    assert not url.endswith(":0")
    return proc, url


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_serve_subprocess_answers_the_seed_curl_lines_and_stops_on_a_signal(
    signum: signal.Signals,
) -> None:
    """The default assistant chats and streams; GET routes answer; one signal exits 0."""
    proc, url = await _start("--llm", "scripted")
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
            for path in (
                "/api/processes",
                "/api/agents",
                "/api/stats",
                "/api/spawn-tree",
                "/api/mcp/servers",
            ):
                assert (await client.get(path)).status_code == 200, path
            chat = await client.post("/api/agents/assistant/chat", json={"message": "Hello!"})
            assert "Hello!" in chat.json()["response"]
            async with client.stream(
                "POST", "/api/agents/assistant/chat/stream", json={"message": "Hi"}
            ) as response:
                events = await collect_events(response)
            assert events[-1].event == "done"
            agents = (await client.get("/api/agents")).json()["agents"]
            assert [(a["name"], a["source"]) for a in agents] == [
                ("assistant", "builtin"),
                ("mother", "builtin"),
                ("hermes", "builtin"),
            ]
        proc.send_signal(signum)
        with trio.fail_after(30):
            status = await proc.wait()
        assert status == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10, shield=True):
                await proc.wait()


@pytest.mark.slow
async def test_serve_subprocess_with_a_file_serves_its_agents() -> None:
    """`vega-trio serve FILE` lists the document's agents with source yaml, and the
    meta-agents (builtin) injected without YAML."""
    proc, url = await _start(str(EXAMPLES / "team.vega.yaml"), "--llm", "scripted")
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
            agents = (await client.get("/api/agents")).json()["agents"]
        sources = {a["name"]: a["source"] for a in agents}
        assert sources.pop("mother") == sources.pop("hermes") == "builtin"
        assert sources and set(sources.values()) == {"yaml"}
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10, shield=True):
                await proc.wait()


@pytest.mark.slow
async def test_serve_subprocess_injects_the_meta_agents_on_the_documents_default_model(
    tmp_path: Path,
) -> None:
    """`vega-trio serve FILE`: mother and hermes answer without YAML, on the file's
    settings.default_model, and cannot be changed over REST."""
    document = tmp_path / "doc.vega.yaml"
    document.write_text(
        "settings:\n  default_model: m-doc\nagents:\n  helper:\n    system: You help.\n"
    )
    proc, url = await _start(str(document), "--llm", "scripted")
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
            for name in ("mother", "hermes"):
                chat = await client.post(f"/api/agents/{name}/chat", json={"message": "Hi"})
                assert chat.status_code == 200, chat.text
            processes = (await client.get("/api/processes")).json()["processes"]
            models = {p["agent"]: p["model"] for p in processes}
            assert models["mother"] == models["hermes"] == "m-doc"
            refused = await client.delete("/api/agents/mother")
            assert refused.status_code == 403
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10, shield=True):
                await proc.wait()


@pytest.mark.slow
async def test_serve_subprocess_runs_the_seed_workflow_and_event_lines() -> None:
    """The seed's remaining curl lines: POST /api/workflows/review/run with a top-level
    `task` starts a run (202) that completes, and /api/events replays its events after
    Last-Event-ID 0 as SSE with ids."""
    proc, url = await _start(str(EXAMPLES / "code-review.vega.yaml"), "--llm", "scripted")
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
            started = await client.post(
                "/api/workflows/review/run", json={"task": "Write a sort function"}
            )
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            with trio.fail_after(30):
                while True:
                    run = (await client.get(f"/api/workflows/runs/{run_id}")).json()
                    if run["status"] != "running":
                        break
                    await trio.sleep(0.05)
            assert run["status"] == "completed", run
            seen = []
            with leaving_a_stream_early():
                async with (
                    client.stream("GET", "/api/events", headers={"Last-Event-ID": "0"}) as response,
                    parse_sse(response) as events,
                ):
                    with trio.fail_after(10):
                        async for event in events:
                            if event.event:
                                seen.append(event)
                            if event.event == "workflow.completed":
                                break
        assert seen[0].id is not None and int(seen[0].id) >= 1
        assert [int(e.id or 0) for e in seen] == sorted(int(e.id or 0) for e in seen)
        assert {"workflow.started", "workflow.step", "workflow.completed"} <= {
            e.event for e in seen
        }
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10, shield=True):
                await proc.wait()


async def test_serve_command_refuses_a_public_address_without_a_token() -> None:
    """A non-loopback --addr without --token or VEGA_TOKEN exits 2 naming what to do."""
    err = io.StringIO()
    status = await serve_command(None, addr="0.0.0.0:0", llm="scripted", env={}, err=err)
    assert status == 2
    assert "without a token" in err.getvalue() and "--token" in err.getvalue()
    bad = io.StringIO()
    assert await serve_command(None, addr="nonsense", llm="scripted", env={}, err=bad) == 2
    assert "HOST:PORT" in bad.getvalue()


async def test_serve_command_reports_an_address_in_use() -> None:
    """A port that is taken exits 2 with 'cannot listen on'."""
    # NOTE: hypercorn's Config.create_sockets does not close the socket whose bind
    # failed; that one ResourceWarning is hypercorn's, collected here.
    with warnings.catch_warnings(), trio.socket.socket() as taken:
        warnings.filterwarnings("ignore", message="unclosed <socket", category=ResourceWarning)
        await taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        err = io.StringIO()
        status = await serve_command(
            None, addr=f"127.0.0.1:{port}", llm="scripted", env={}, err=err, out=io.StringIO()
        )
        gc.collect()
    assert status == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err.getvalue()
