"""MCP reconnects go through the runtime's restart engine: the backoff, its streak and the
give-up, in virtual time (the connection attempts are scripted; the subprocess and HTTP
transports are covered by tests/tools/test_mcp.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
import trio
import trio.testing

from vega_trio.runtime import Backoff
from vega_trio.tools.mcp import MCPServerConfig
from vega_trio.tools.mcp._connection import MCPConnection


def _scripted(
    monkeypatch: pytest.MonkeyPatch, script: list[float | None], starts: list[float]
) -> None:
    """Replace the connect-and-serve step: each attempt takes the next entry of
    ``script`` — ``None`` fails before connecting, a number connects and stays up that
    many seconds, then the server goes away. After the script, the connection stays up."""

    async def attempt(self: MCPConnection, on_connected: Callable[[], None]) -> None:
        starts.append(trio.current_time())
        if not script:
            on_connected()
            await trio.sleep_forever()
        up = script.pop(0)
        if up is None:
            raise ConnectionError("refused")
        on_connected()
        await trio.sleep(up)

    monkeypatch.setattr(MCPConnection, "_connect_and_serve", attempt)


def _config(**changes: object) -> MCPServerConfig:
    options: dict[str, object] = {
        "name": "echo",
        "command": sys.executable,
        "backoff": Backoff(kind="exponential", initial=0.25, multiplier=2, max=10),
        "restart_window": 1.0,
    }
    options.update(changes)
    return MCPServerConfig(**options)  # type: ignore[arg-type]


async def test_reconnect_backoff_starts_over_after_a_stable_connection(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """Failed attempts and short connections back off further; a connection that stayed
    up for restart_window makes the next reconnect wait the first delay again."""
    starts: list[float] = []
    # refused, refused, up 5 s (stable), up 0.5 s, refused, then connected for good
    _scripted(monkeypatch, [None, None, 5.0, 0.5, None], starts)
    connection = MCPConnection(config=_config())
    async with trio.open_nursery() as nursery:
        await nursery.start(connection.run)
        while len(starts) < 6:
            await connection.wait_changed()
        nursery.cancel_scope.cancel()
    ends = [starts[0], starts[1], starts[2] + 5.0, starts[3] + 0.5, starts[4]]
    waits = [start - end for start, end in zip(starts[1:], ends, strict=True)]
    assert waits == [0.25, 0.5, 0.25, 0.5, 1.0]
    assert connection.reconnects == 5 and not connection.gave_up


async def test_reconnects_give_up_by_the_engine_s_intensity(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """max_restarts=2: the third failure inside restart_window gives up for good."""
    starts: list[float] = []
    _scripted(monkeypatch, [None, None, None, None], starts)
    connection = MCPConnection(
        config=_config(max_restarts=2, restart_window=60.0, backoff=Backoff(initial=0.1))
    )
    async with trio.open_nursery() as nursery:  # noqa: ASYNC112 - run is startable, as in use
        await nursery.start(connection.run)
    assert len(starts) == 3 and connection.gave_up and connection.status == "failed"
    assert connection.last_error is not None
    assert "gave up: more than 2 reconnects within 60 s" in connection.last_error
