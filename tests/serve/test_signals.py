"""`vega-trio serve` under signals, as a real subprocess against the fake Anthropic
server: the first SIGINT ends streams with a final event and lets the reply in
progress finish (exit 0); a second one while that runs forces the stop (exit 130)
and says what it cut short."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
import trio

from vega_trio.testing import FakeAnthropicServer, FakeResponse, open_fake_anthropic_server

from ._helpers import collect_events

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@asynccontextmanager
async def serving(fake: FakeAnthropicServer) -> AsyncIterator[tuple[trio.Process, str]]:
    """`vega-trio serve --llm anthropic` on a free port, talking to ``fake``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_"))}
    env.update(PYTHONPATH=str(ROOT), ANTHROPIC_BASE_URL=fake.base_url, ANTHROPIC_API_KEY="test")
    env.pop("VEGA_TOKEN", None)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "vega_trio", "serve", "--addr", "127.0.0.1:0", "--llm", "anthropic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tempfile.mkdtemp(prefix="vega-serve-"),  # its default --db file goes there
    )
    assert proc.stdout is not None
    try:
        buffer = b""
        with trio.fail_after(30):
            while b"\n" not in buffer:
                chunk = await proc.stdout.receive_some()
                assert chunk, "vega-trio serve exited before printing its URL"
                buffer += chunk
        yield proc, buffer.decode().splitlines()[0].split(" on ", 1)[1].split()[0]
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10, shield=True):
                await proc.wait()


async def _stderr(proc: trio.Process) -> str:
    assert proc.stderr is not None
    chunks = []
    while chunk := await proc.stderr.receive_some():
        chunks.append(chunk)
    return b"".join(chunks).decode()


async def _until_the_model_is_called(fake: FakeAnthropicServer) -> None:
    with trio.fail_after(10):
        await fake.wait_for_requests(1)


async def test_sigint_ends_streams_and_lets_the_reply_finish() -> None:
    """SIGINT during a reply: the SSE stream ends at once with a final server_shutdown
    event, the model's reply still completes (not aborted), exit 0."""
    async with open_fake_anthropic_server() as fake:
        fake.enqueue(FakeResponse.text("one two three", chunks=3, chunk_delay=0.5))
        async with serving(fake) as (proc, url):
            async with (
                httpx2.AsyncClient(base_url=url) as client,
                client.stream(
                    "POST", "/api/agents/assistant/chat/stream", json={"message": "hi"}
                ) as response,
            ):
                await _until_the_model_is_called(fake)
                proc.send_signal(signal.SIGINT)
                with trio.fail_after(2):  # at once, not after the reply
                    events = await collect_events(response)
            # The client has gone: no connection holds the server's shutdown.
            assert events[-1].event == "error"
            assert events[-1].json["error_class"] == "server_shutdown"
            with trio.fail_after(30):
                status = await proc.wait()
                err = await _stderr(proc)
        assert status == 0, err
        assert "SIGINT: stopping" in err
        await trio.sleep(1)  # a hang-up is seen by the fake at its next chunk (0.5 s)
        assert fake.aborted == []  # the reply ran to its end during the shutdown
        assert "interrupted" not in err


async def test_a_second_signal_forces_the_stop_and_says_what_it_cut() -> None:
    """A reply that does not end: the first SIGINT starts the graceful stop, the
    second forces it: exit 130 at once and a line naming the message cut short."""
    async with open_fake_anthropic_server() as fake:
        fake.enqueue(FakeResponse.text("slow", chunks=2, chunk_delay=60))
        async with serving(fake) as (proc, url), httpx2.AsyncClient(base_url=url) as client:
            async with client.stream(
                "POST", "/api/agents/assistant/chat/stream", json={"message": "hi"}
            ) as response:
                await _until_the_model_is_called(fake)
                proc.send_signal(signal.SIGINT)
                with trio.fail_after(2):
                    events = await collect_events(response)
            assert events[-1].json["error_class"] == "server_shutdown"
            await trio.sleep(0.5)  # still shutting down: the reply has 5 s to finish
            assert proc.returncode is None
            proc.send_signal(signal.SIGINT)
            with trio.fail_after(3):  # immediate, not after the graceful timeout
                status = await proc.wait()
            err = await _stderr(proc)
        assert status == 130, err
        line = next(ln for ln in err.splitlines() if ln.startswith("vega-trio: interrupted:"))
        assert "second signal (SIGINT)" in line
        assert "1 message in progress cut short: assistant (p-" in line
