"""Helpers of the server tests: a real server on 127.0.0.1:0 in the test's nursery, a
real HTTP client (httpx2) and a small SSE parser (the wire format of the HTML spec)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx2
import trio

from vega_trio import Agent, Orchestrator, open_orchestrator
from vega_trio.serve import ServeConfig, serve
from vega_trio.testing import ScriptedLLM

from ._openapi_check import CHECK_EVENT


@attrs.frozen
class SSE:
    """One server-sent event, or a comment (``event == ""``, ``comment`` set)."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


async def _lines(response: httpx2.Response) -> AsyncIterator[str]:
    buffer = b""
    async with aclosing(response.aiter_raw()) as chunks:  # closed even when we stop early
        async for chunk in chunks:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode("utf-8").rstrip("\r")  # noqa: ASYNC119 - always used under aclosing
    if buffer:
        yield buffer.decode("utf-8")


async def _parse(response: httpx2.Response) -> AsyncIterator[SSE]:
    """Events from the response's lines: ``field: value`` lines until a blank line;
    ``:`` starts a comment (yielded on its own, so heartbeats are visible). Each event is
    checked against the OpenAPI document when the response hook (conftest.py) asks."""
    check = response.extensions.get(CHECK_EVENT)
    event, data, event_id = "message", [], None
    async with aclosing(_lines(response)) as lines:
        async for line in lines:
            if not line:
                if data:
                    if check is not None:
                        check(event, "\n".join(data))
                    yield SSE(event=event, data="\n".join(data), id=event_id)  # noqa: ASYNC119 - always used under aclosing
                event, data, event_id = "message", [], None
                continue
            if line.startswith(":"):
                yield SSE(event="", comment=line[1:].strip())  # noqa: ASYNC119 - always used under aclosing
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value


@asynccontextmanager
async def parse_sse(response: httpx2.Response) -> AsyncIterator[AsyncIterator[SSE]]:
    """``async with parse_sse(response) as events: async for event in events``."""
    async with aclosing(_parse(response)) as events:
        yield events


@attrs.define
class Running:
    """A running server and a client for it."""

    orch: Orchestrator
    url: str
    client: httpx2.AsyncClient
    stop: trio.Event
    nursery: trio.Nursery


@asynccontextmanager
async def running_server(
    orch: Orchestrator,
    config: ServeConfig | None = None,
    *,
    token: str | None = None,
    runner: Any = None,
) -> AsyncIterator[Running]:
    """Serve ``orch`` on 127.0.0.1:0 for the block; a graceful stop at its end."""
    config = config or ServeConfig(port=0, token=token)
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: serve(
                orch, config, shutdown_trigger=stop.wait, runner=runner, task_status=task_status
            )
        )
        async with httpx2.AsyncClient(
            base_url=urls[0], headers=headers, timeout=httpx2.Timeout(10)
        ) as client:
            yield Running(orch, urls[0], client, stop, nursery)
        stop.set()


@asynccontextmanager
async def orchestrator_with_assistant(
    llm: Any = None, **options: Any
) -> AsyncIterator[Orchestrator]:
    """An orchestrator with an ``assistant`` definition (a scripted echo model)."""
    async with open_orchestrator(llm=llm or ScriptedLLM.echo(), **options) as orch:
        orch.agents.define(Agent(name="assistant", model="test-model"), source="builtin")
        yield orch


async def collect_events(response: httpx2.Response) -> list[SSE]:
    """Every event (not comments) until the server ends the stream."""
    async with parse_sse(response) as events:
        return [event async for event in events if event.event]


@contextmanager
def leaving_a_stream_early() -> Iterator[None]:
    """Around a client that leaves a stream before its end: httpcore2 does not close its
    own pool-stream generator then (the response is closed, the generator object is only
    collected), which trio reports as a ResourceWarning; that one warning is not ours."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Async generator 'httpcore2", category=ResourceWarning
        )
        yield
        gc.collect()


def event_log_of(orch: Orchestrator) -> Any:
    """The running server's event log: its sink on the bus (while it has readers)."""
    from vega_trio.serve._fanout import EventLog

    logs = [
        getattr(sink, "__self__", None)
        for sink in orch.events._sinks
        if isinstance(getattr(sink, "__self__", None), EventLog)
    ]
    assert len(logs) == 1, f"expected one event log attached to the bus, found {len(logs)}"
    return logs[0]


ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def vega_serve_process(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    program: Sequence[str] = ("-m", "vega_trio"),
) -> AsyncIterator[tuple[trio.Process, str]]:
    """``vega-trio serve --addr 127.0.0.1:0 ARGS`` as a subprocess of this worktree's code
    (PYTHONPATH), no ``ANTHROPIC_*``/``VEGA_*`` variable of the developer, ``env`` added;
    yields the process and its URL; kills it if the block did not stop it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "VEGA_"))}
    proc = await trio.lowlevel.open_process(
        [sys.executable, *program, "serve", "--addr", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**clean, "PYTHONPATH": str(ROOT), "HOME": str(cwd), **(env or {})},
        cwd=cwd,
    )
    try:
        assert proc.stdout is not None
        buffer = b""
        with trio.fail_after(60):
            while b"\n" not in buffer:
                chunk = await proc.stdout.receive_some()
                assert chunk, "vega-trio serve exited before printing its URL"
                buffer += chunk
        line = buffer.decode().splitlines()[0]
        yield proc, line.split(" on ", 1)[1].split()[0]
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(10) as cleanup:
                cleanup.shield = True
                await proc.wait()
