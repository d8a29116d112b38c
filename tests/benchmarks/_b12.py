"""B12: the dashboard in a real browser (Debian's chromium driven by Playwright) against a
real ``vega-trio serve`` on loopback with the browser tests' scripted model
(``tests/web/_browser.py``)::

    python -m tests.benchmarks._b12                 # 30 s at 1,000 events/s, prints JSON
    python -m tests.benchmarks._b12 --seconds 5     # a shorter smoke run

* **First load** — a fresh browser context opens ``/#/chat/assistant``: bytes
  transferred are the sum of ``transferSize`` of the navigation and every resource
  (Resource Timing: headers and bodies as they came over the wire; the event stream is
  still open and is not counted), and time to interactive is ``performance.now()`` when
  the chat's input is enabled (the app loaded, the agents fetched). Cold (first
  context) and the median of the following loads, each in a new context (empty cache).
* **Event Stream under load** — the page ``/#/events`` is open while a task on the
  server's orchestrator emits ``rate`` events per second on its bus for ``seconds``
  (``request.started`` events of 20 agents, in 10 ms slices). A
  ``PerformanceObserver('longtask')`` installed before the page's scripts records every
  long task (over 50 ms, the API's threshold) from the first event on; the DOM's
  element count is taken before and at the end.

Not a test: skipped with a message (JSON ``{"skipped": ...}``) when chromium or
Playwright is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import trio

__all__ = ["B12_MAX_BYTES", "B12_MAX_TTI_MS", "B12_MAX_LONGTASK_MS", "b12", "render_b12"]

B12_MAX_BYTES = 300_000
B12_MAX_TTI_MS = 1000.0
B12_MAX_LONGTASK_MS = 50.0

# Installed before any of the page's scripts: records long tasks with their start time.
_OBSERVE = """
window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]);
}).observe({ type: 'longtask', buffered: true });
"""
_TRANSFERRED = """() => {
  const nav = performance.getEntriesByType('navigation').map((e) => e.transferSize);
  const res = performance.getEntriesByType('resource')
    .map((e) => [e.name, e.transferSize, e.decodedBodySize]);
  return { nav: nav.reduce((a, b) => a + b, 0), resources: res };
}"""


def _first_load(url: str, loads: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.web._browser import CHROMIUM

    ttis: list[float] = []
    sizes: list[int] = []
    detail: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(loads):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(url + "/#/chat/assistant", wait_until="commit")
                page.wait_for_selector("#chat-input:enabled", timeout=15_000)
                tti = float(page.evaluate("() => performance.now()"))
                page.wait_for_load_state("load")
                got = page.evaluate(_TRANSFERRED)
                total = int(got["nav"]) + sum(int(r[1]) for r in got["resources"])
                ttis.append(tti)
                sizes.append(total)
                if not detail:
                    detail = {
                        "requests": len(got["resources"]) + 1,
                        "decoded_bytes": sum(int(r[2]) for r in got["resources"]),
                    }
                context.close()
        finally:
            browser.close()
    return {
        "tti_ms_cold": ttis[0],
        "tti_ms_median": statistics.median(ttis[1:] or ttis),
        "tti_ms_max": max(ttis),
        "bytes_cold": sizes[0],
        "bytes_max": max(sizes),
        "loads": loads,
        **detail,
    }


def _event_page(url: str, start: trio.Event, done: trio.Event, seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.web._browser import CHROMIUM

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(_OBSERVE)
            page = context.new_page()
            page.goto(url + "/#/events")
            page.wait_for_selector("[data-testid=event-table]", timeout=15_000)
            page.wait_for_timeout(500)  # let the first load's work settle
            nodes_before = int(page.evaluate("() => document.getElementsByTagName('*').length"))
            t0 = float(page.evaluate("() => performance.now()"))
            trio.from_thread.run_sync(start.set)
            # Sample the DOM size while the events flow.
            nodes_max = nodes_before
            deadline = time.monotonic() + seconds + 60
            while not trio.from_thread.run_sync(done.is_set) and time.monotonic() < deadline:
                page.wait_for_timeout(1000)
                nodes = int(page.evaluate("() => document.getElementsByTagName('*').length"))
                nodes_max = max(nodes_max, nodes)
            page.wait_for_timeout(1000)  # the last events reach the page
            t1 = float(page.evaluate("() => performance.now()"))
            tasks = [
                (s, d) for s, d in page.evaluate("() => window.__longtasks") if s >= t0 and s <= t1
            ]
            nodes_after = int(page.evaluate("() => document.getElementsByTagName('*').length"))
            counts = page.locator("[data-testid=event-counts]").text_content() or ""
        finally:
            browser.close()
    durations = [d for _, d in tasks]
    return {
        "longtasks": len(durations),
        "longtask_max_ms": max(durations, default=0.0),
        "longtask_total_ms": sum(durations),
        "nodes_before": nodes_before,
        "nodes_max": nodes_max,
        "nodes_after": nodes_after,
        "counts": " ".join(counts.split()),
        "observed_s": (t1 - t0) / 1000,
    }


async def _emit(orch: Any, start: trio.Event, rate: int, seconds: float) -> dict[str, Any]:
    """Emit ``rate`` events/s on the orchestrator's bus for ``seconds`` (10 ms slices)."""
    from vega_trio.runtime._events import RequestStarted

    await start.wait()
    bus = orch.events
    began = trio.current_time()
    emitted = 0
    total = int(rate * seconds)
    while emitted < total:
        due = min(total, int((trio.current_time() - began) * rate))
        while emitted < due:
            bus.emit(
                RequestStarted, process_id=f"bench-{emitted % 97}", agent=f"agent-{emitted % 20}"
            )
            emitted += 1
        await trio.sleep(0.01)
    return {"emitted": emitted, "emit_s": trio.current_time() - began}


async def _b12(rate: int, seconds: float, loads: int) -> dict[str, Any]:
    from tests.web._browser import web_server

    from ._report import machine_info

    result: dict[str, Any] = {"rate": rate, "seconds": seconds}
    async with web_server() as srv:
        orch = _orchestrator_of(srv)
        result["first_load"] = await trio.to_thread.run_sync(_first_load, srv.url, loads)
        start, done = trio.Event(), trio.Event()
        emitted: dict[str, Any] = {}

        async def emit() -> None:
            emitted.update(await _emit(orch, start, rate, seconds))
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(emit)
            page = await trio.to_thread.run_sync(_event_page, srv.url, start, done, seconds)
        result["event_page"] = {**page, **emitted}
    result["loadavg"] = machine_info(calibrate=False).get("loadavg")
    return result


def _orchestrator_of(srv: Any) -> Any:
    orch = getattr(srv, "orchestrator", None)
    if orch is None:
        raise RuntimeError("tests.web._browser.web_server must expose its orchestrator")
    return orch


def b12(rate: int = 1000, seconds: float = 30.0, loads: int = 6) -> dict[str, Any]:
    """Run B12 (see the module docstring); ``{"skipped": why}`` without a browser."""
    from tests.web._browser import browser_missing

    why = browser_missing()
    if why is not None:
        return {"skipped": f"B12 needs a browser: {why}"}
    return trio.run(_b12, rate, seconds, loads)


def render_b12(r: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """The report section and the summary rows for B12 (a skipped run says why)."""
    if "skipped" in r:
        row = ["B12: the dashboard in a real browser", f"not run: {r['skipped']}", "—"]
        return f"## B12 — the dashboard in a browser\n\nNot run: {r['skipped']}.\n", [row]
    first, events = r["first_load"], r["event_page"]
    load = r.get("loadavg")
    load_text = f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}" if load else "?"
    tti = max(first["tti_ms_cold"], first["tti_ms_median"])
    rows = [
        [
            f"B12: dashboard first load ≤ {B12_MAX_BYTES // 1000} kB transferred, "
            f"interactive ≤ {B12_MAX_TTI_MS / 1000:g} s",
            f"{first['bytes_cold'] / 1000:.0f} kB, interactive in {first['tti_ms_cold']:.0f} ms "
            f"cold ({first['tti_ms_median']:.0f} ms median)",
            "✅" if first["bytes_max"] <= B12_MAX_BYTES and tti <= B12_MAX_TTI_MS else "❌",
        ],
        [
            f"B12: Event Stream at {r['rate']:,} events/s for {r['seconds']:g} s: "
            f"no long task over {B12_MAX_LONGTASK_MS:g} ms",
            f"{events['longtasks']} long tasks (max {events['longtask_max_ms']:.0f} ms); "
            f"DOM {events['nodes_max']:,} elements at most",
            "✅" if events["longtask_max_ms"] <= B12_MAX_LONGTASK_MS else "❌",
        ],
    ]
    text = f"""## B12 — the dashboard in a browser

Debian's chromium (headless, driven by Playwright) against a real `vega-trio serve` on
loopback with the browser tests' scripted model (`tests/benchmarks/_b12.py`; run it alone
with `python -m tests.benchmarks._b12`). Load average during the run: {load_text}.

| measure | result |
| --- | ---: |
| first load of `/#/chat/assistant`, transferred (Resource Timing `transferSize`) \
| {first["bytes_cold"]:,} B in {first["requests"]} requests ({first["decoded_bytes"]:,} B decoded) |
| time to interactive (the chat's input enabled), cold / median of {first["loads"] - 1} more \
| {first["tti_ms_cold"]:.0f} / {first["tti_ms_median"]:.0f} ms (max {first["tti_ms_max"]:.0f} ms) |
| Event Stream: events emitted on the server / received by the page \
| {events["emitted"]:,} in {events["emit_s"]:.1f} s / {events["counts"]} |
| long tasks (`PerformanceObserver('longtask')`, over 50 ms) \
| {events["longtasks"]} (max {events["longtask_max_ms"]:.0f} ms, \
{events["longtask_total_ms"]:.0f} ms in all over {events["observed_s"]:.1f} s) |
| DOM elements: before the events / most while they flowed / at the end \
| {events["nodes_before"]:,} / {events["nodes_max"]:,} / {events["nodes_after"]:,} |

Each first load is a new browser context (empty cache); the event stream's own bytes are
not counted (it is still open). The Event Stream page keeps the latest 5,000 events in a
windowed list: only the rows in view (plus a few) exist, fixed-height and recycled, and
they are redrawn in an animation frame outside Preact (read the scroll position, then only
write their text nodes), in a box with CSS containment, at most every 200 ms while events
flood in, so the browser restyles, lays out and paints a couple of dozen rows five times a
second, not a 200-row table every frame. A long task is wall time, so it grows with the
machine's load (chromium shares the cores with the server and everything else): the load
average is part of the result.
"""
    return text, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks._b12", description=__doc__)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long they flow")
    parser.add_argument("--loads", type=int, default=6, help="first loads to time")
    args = parser.parse_args(argv)
    result = b12(args.rate, args.seconds, args.loads)
    if "skipped" in result:
        print(result["skipped"], file=sys.stderr)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
