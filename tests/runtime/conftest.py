from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio

from vega_trio.runtime import Process, Runtime


@attrs.define
class EchoBehaviour:
    """Replies with the payload; special payloads crash, fail or block."""

    name: str = "echo"
    handled: list[Any] = attrs.field(factory=list)

    async def handle(self, process: Process, payload: Any) -> Any:
        self.handled.append(payload)
        if payload == "crash":
            raise ValueError("boom")
        if payload == "block":
            await trio.sleep_forever()
        if isinstance(payload, tuple) and payload[0] == "sleep":
            await trio.sleep(payload[1])
            return f"slept {payload[1]}"
        return payload


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with trio.open_nursery() as nursery:
        rt = Runtime(nursery)
        yield rt
        await rt.shutdown(grace=1.0)
