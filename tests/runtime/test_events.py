from __future__ import annotations

import trio
import trio.testing

from vega_trio.runtime import Event, EventBus, Lagged, Runtime

from .conftest import EchoBehaviour


async def test_fanout_to_every_subscriber() -> None:
    """Each subscriber receives every event it accepts, in publish order."""
    bus = EventBus()
    with bus.subscribe() as a, bus.subscribe(types=["process."]) as b:
        bus.emit("process.started", process_id="p1")
        bus.emit("llm.call", process_id="p1", model="m")
        assert [(await a.receive()).type for _ in range(2)] == ["process.started", "llm.call"]  # type: ignore[union-attr]
        got = await b.receive()
        assert isinstance(got, Event) and got.type == "process.started"
        assert b.receive_nowait() is None


def test_slow_subscriber_never_blocks_and_is_told_what_it_missed() -> None:
    """A full subscriber buffer drops events for that subscriber only and reports Lagged."""
    bus = EventBus()
    with bus.subscribe(max_buffer=2) as slow, bus.subscribe(max_buffer=100) as fast:
        for i in range(5):
            bus.emit("tick", n=i)
        assert slow.receive_nowait() == Lagged(missed=3)
        first = slow.receive_nowait()
        assert isinstance(first, Event) and first.data == {"n": 0}
        assert slow.dropped_total == 3
        assert fast.dropped_total == 0
        assert len([fast.receive_nowait() for _ in range(5)]) == 5


async def test_close_ends_iteration_after_draining() -> None:
    """Closing the bus ends subscribers' async-for loops once their buffers are drained."""
    bus = EventBus()
    seen: list[str] = []
    with bus.subscribe() as sub:

        async def reader() -> None:
            async for item in sub:
                assert isinstance(item, Event)
                seen.append(item.type)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            bus.emit("a")
            await trio.testing.wait_all_tasks_blocked()
            bus.emit("b")
            bus.close()
    assert seen == ["a", "b"]


async def test_process_lifecycle_events(runtime: Runtime) -> None:
    """Starting, completing and crashing processes publish SPEC §10.3 events."""
    with runtime.bus.subscribe() as sub:
        p = await runtime.spawn(EchoBehaviour())
        p.complete()
        await p.wait()
        q = await runtime.spawn(EchoBehaviour())
        q.call_async("crash")
        await q.wait()
        r = await runtime.spawn(EchoBehaviour())
        r.kill()
        await r.wait()
        types = []
        while (item := sub.receive_nowait()) is not None:
            assert isinstance(item, Event)
            types.append((item.type, item.process_id))
    assert types == [
        ("process.started", p.id),
        ("process.completed", p.id),
        ("process.started", q.id),
        ("process.failed", q.id),
        ("process.started", r.id),
        ("process.stopped", r.id),
    ]
