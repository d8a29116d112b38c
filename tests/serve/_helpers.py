"""Helpers of the server tests: a real server on 127.0.0.1:0 in the test's nursery, a
real HTTP client (httpx2) and a small SSE parser (the wire format of the HTML spec)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx2
import trio

from vega_trio import Agent, Orchestrator, open_orchestrator
from vega_trio.serve import ServeConfig, serve
from vega_trio.testing import ScriptedLLM


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


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSE]:
    """Events from a stream of lines: ``field: value`` lines until a blank line;
    ``:`` starts a comment (yielded on its own, so heartbeats are visible)."""
    event, data, event_id = "message", [], None
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSE(event=event, data="\n".join(data), id=event_id)
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            yield SSE(event="", comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


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
    orch: Orchestrator, config: ServeConfig | None = None, *, token: str | None = None
) -> AsyncIterator[Running]:
    """Serve ``orch`` on 127.0.0.1:0 for the block; a graceful stop at its end."""
    config = config or ServeConfig(port=0, token=token)
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: serve(orch, config, shutdown_trigger=stop.wait, task_status=task_status)
        )
        async with httpx2.AsyncClient(
            base_url=urls[0], headers=headers, timeout=httpx2.Timeout(10)
        ) as client:
            yield Running(orch, urls[0], client, stop, nursery)
        stop.set()


@asynccontextmanager
async def orchestrator_with_assistant(llm: Any = None, **options: Any) -> AsyncIterator[Orchestrator]:
    """An orchestrator with an ``assistant`` definition (a scripted echo model)."""
    async with open_orchestrator(llm=llm or ScriptedLLM.echo(), **options) as orch:
        orch.agents.define(Agent(name="assistant", model="test-model"), source="builtin")
        yield orch
