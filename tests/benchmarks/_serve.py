"""B8-B10: the server (``vega-trio serve``) on real Hypercorn over loopback.

* **B8** — time to first token of a chat streamed over HTTP (SSE) against the same
  send in process (``send_stream_rich``) on the same scripted model, interleaved in
  one run. The HTTP client is a lean raw-socket one (keep-alive, reads until the
  first ``text_delta`` event), so the figure is the server's cost, not a client's.
* **B9** — ``/api/events`` fan-out: agents run at a paced rate that publishes
  ``rate`` events/s while ``clients`` SSE clients (raw Trio sockets in a second
  process) read them; delivery latency is the receipt time minus the event's own
  ``timestamp`` (the oldest event of each chunk read, so the worst of the chunk);
  the agents' per-run cost is the wall time of a run (spawn, send, stop) with the
  clients attached against none.
* **B10** — ``GET /api/processes`` (one page of 100) with 10,000 live processes.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from typing import Any

import trio

__all__ = ["B8_MAX_MS", "B9_MAX_P99_MS", "B9_MAX_COST", "B10_MAX_P99_MS", "b8", "b9", "b10"]

B8_MAX_MS = 1.0
B9_MAX_P99_MS = 100.0
B9_MAX_COST = 0.10
B10_MAX_P99_MS = 50.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------- a raw client
class RawHTTP:
    """One keep-alive HTTP/1.1 connection on a raw Trio socket."""

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self.stream = stream
        self.host = host
        self.buffer = b""

    @classmethod
    async def connect(cls, port: int) -> RawHTTP:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        return cls(stream, f"127.0.0.1:{port}")

    async def send(self, method: str, path: str, body: bytes | None = None) -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        await self.stream.send_all(head.encode() + b"\r\n" + (body or b""))

    async def read_until(self, marker: bytes) -> None:
        """Read until ``marker`` is in the buffer; the buffer keeps what follows it."""
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                self.buffer = self.buffer[index + len(marker) :]
                return
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk

    async def get_body(self, path: str) -> bytes:
        await self.send("GET", path)
        while b"\r\n\r\n" not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)content-length:\s*(\d+)", head)
        assert match is not None, head
        length = int(match.group(1))
        while len(rest) < length:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            rest += chunk
        body, self.buffer = rest[:length], rest[length:]
        assert head.startswith(b"HTTP/1.1 200"), head
        return body


# -------------------------------------------------------------------------------- B8
def b8(n: int) -> dict[str, Any]:
    """Time to first token over HTTP (SSE) against in process, in milliseconds."""
    return trio.run(_b8, n)


async def _b8(n: int) -> dict[str, Any]:
    from vega_trio import Agent, open_orchestrator
    from vega_trio.agent._events import TextDeltaEvent
    from vega_trio.serve import ServeConfig, serve
    from vega_trio.testing import ScriptedLLM, Step

    llm = ScriptedLLM(responder=lambda request: Step.text("Hello there, this is a reply."))
    async with open_orchestrator(llm=llm) as orch, trio.open_nursery() as nursery:
        orch.agents.define(Agent(name="assistant"), source="builtin")
        stop = trio.Event()
        urls = await nursery.start(
            lambda task_status: serve(
                orch, ServeConfig(port=0), shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        port = int(urls[0].rsplit(":", 1)[1])
        client = await RawHTTP.connect(port)
        body = json.dumps({"message": "Hi"}).encode()

        async def over_http(user: str) -> float:
            started = time.perf_counter()
            await client.send("POST", f"/api/agents/assistant:{user}/chat/stream", body)
            await client.read_until(b"event: text_delta")
            first = time.perf_counter() - started
            await client.read_until(b"\r\n0\r\n\r\n")  # the chunked body's end
            return first

        async def in_process(user: str) -> float:
            proc = await orch.session("assistant", user=user)
            started = time.perf_counter()
            first = 0.0
            async with proc.send_stream_rich("Hi") as stream:
                async for event in stream:
                    if isinstance(event, TextDeltaEvent) and not first:
                        first = time.perf_counter() - started
            return first

        http_ms: list[float] = []
        local_ms: list[float] = []
        warmup = max(20, n // 10)
        for i in range(n + warmup):
            # NOTE: a fresh session every 50 turns keeps the histories short and alike.
            user = f"u{i // 50}"
            if i % 2:  # interleaved, alternating which one goes first
                http = await over_http("h" + user)
                local = await in_process("l" + user)
            else:
                local = await in_process("l" + user)
                http = await over_http("h" + user)
            if i >= warmup:
                http_ms.append(http * 1000)
                local_ms.append(local * 1000)
        await client.stream.aclose()
        stop.set()
    http_median = statistics.median(http_ms)
    local_median = statistics.median(local_ms)
    return {
        "n": n,
        "http_median_ms": http_median,
        "http_p99_ms": _quantile(http_ms, 0.99),
        "local_median_ms": local_median,
        "local_p99_ms": _quantile(local_ms, 0.99),
        "added_median_ms": http_median - local_median,
        "added_p99_ms": _quantile(http_ms, 0.99) - _quantile(local_ms, 0.99),
    }


# ------------------------------------------------------------------------------- B10
def b10(processes: int, requests: int) -> dict[str, Any]:
    """``GET /api/processes`` pages with ``processes`` live processes, in milliseconds."""
    return trio.run(_b10, processes, requests)


async def _b10(processes: int, requests: int) -> dict[str, Any]:
    from vega_trio import Agent, open_orchestrator
    from vega_trio.serve import ServeConfig, serve
    from vega_trio.testing import ScriptedLLM

    async with (
        open_orchestrator(llm=ScriptedLLM.echo(), max_processes=processes + 10) as orch,
        trio.open_nursery() as nursery,
    ):
        agent = Agent(name="idle")
        for _ in range(processes):
            await orch.spawn(agent)
        stop = trio.Event()
        urls = await nursery.start(
            lambda task_status: serve(
                orch, ServeConfig(port=0), shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        port = int(urls[0].rsplit(":", 1)[1])
        client = await RawHTTP.connect(port)
        rng = random.Random(8)
        pages: dict[str, list[float]] = {"first": [], "random": [], "filtered": []}
        for i in range(requests + 10):
            for kind, path in (
                ("first", "/api/processes"),
                ("random", f"/api/processes?offset={rng.randrange(processes)}&limit=100"),
                ("filtered", f"/api/processes?status=running&agent=idle&offset={processes - 50}"),
            ):
                started = time.perf_counter()
                body = await client.get_body(path)
                took = (time.perf_counter() - started) * 1000
                if i >= 10:
                    pages[kind].append(took)
        page = json.loads(body)
        assert page["total"] == processes, page["total"]
        await client.stream.aclose()
        stop.set()
        orch.close()
    everything = [t for times in pages.values() for t in times]
    return {
        "processes": processes,
        "requests": len(everything),
        "median_ms": statistics.median(everything),
        "p99_ms": _quantile(everything, 0.99),
        "by_kind": {
            kind: {"median_ms": statistics.median(t), "p99_ms": _quantile(t, 0.99)}
            for kind, t in pages.items()
        },
    }


# -------------------------------------------------------------------------------- B9
_TIMESTAMP = re.compile(rb'"timestamp":([0-9.]+)')


def b9_clients(port: int, clients: int, seconds: float) -> dict[str, Any]:
    """The client side of B9 (its own process): ``clients`` SSE connections to
    ``/api/events`` read for ``seconds``; returns the delivery figures."""
    return trio.run(_b9_clients, port, clients, seconds)


async def _b9_clients(port: int, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    counts = [0] * clients
    lagged = [0] * clients
    connected = 0
    all_connected = trio.Event()

    async def client(index: int, task_status: trio.TaskStatus[None]) -> None:  # noqa: ASYNC114
        nonlocal connected
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        request = (
            f"GET /api/events?types=process.,request.,llm. HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n\r\n"
        )
        await stream.send_all(request.encode())
        head = b""
        while b": connected" not in head:
            head += await stream.receive_some(65536)
        task_status.started()
        connected += 1
        if connected == clients:
            all_connected.set()
        sample = index % 10 == 0  # latency from every tenth client (parsing is costly)
        while True:
            chunk = await stream.receive_some(1 << 20)
            if not chunk:
                return
            now = time.time()
            counts[index] += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
            if b"event: lagged" in chunk:
                lagged[index] += chunk.count(b"event: lagged")
            if sample:
                match = _TIMESTAMP.search(chunk)
                if match is not None:
                    latencies.append(now - float(match.group(1)))

    async with trio.open_nursery() as nursery:
        for index in range(clients):
            await nursery.start(client, index)
        print("connected", flush=True)  # the server side starts its agents now
        started = time.time()
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    elapsed = time.time() - started
    return {
        "clients": clients,
        "seconds": elapsed,
        "events_per_client": statistics.mean(counts),
        "min_events_per_client": min(counts),
        "lagged_clients": sum(1 for x in lagged if x),
        "lagged_notices": sum(lagged),
        "latency_samples": len(latencies),
        "p50_ms": _quantile(latencies, 0.5) * 1000,
        "p99_ms": _quantile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


def b9(clients: int, rate: int, seconds: float) -> dict[str, Any]:
    """The server side of B9: per-run cost alone, then with ``clients`` attached."""
    return trio.run(_b9, clients, rate, seconds)


async def _b9(clients: int, rate: int, seconds: float) -> dict[str, Any]:
    from vega_trio import Agent, open_orchestrator
    from vega_trio.serve import ServeConfig, serve
    from vega_trio.testing import ScriptedLLM, Step

    llm = ScriptedLLM(responder=lambda request: Step.text("ok"))
    agent = Agent(name="worker")
    # process.started, request.started, llm.call, request.finished, process.stopped
    events_per_run = 5

    async def drive(orch: Any, duration: float) -> dict[str, Any]:
        """Runs (spawn, send, stop) paced to publish ``rate`` events per second."""
        runs_per_s = rate / events_per_run
        costs: list[float] = []
        cpu = time.process_time()
        started = trio.current_time()
        n = 0
        # NOTE: at most 64 runs at once: past what the machine can do the rate drops
        # (runs_per_s says so) instead of a backlog inflating every run's time.
        limiter = trio.CapacityLimiter(64)
        async with trio.open_nursery() as runs:

            async def run_one(t0: float) -> None:
                try:
                    proc = await orch.spawn(agent)
                    await proc.send("go")
                    proc.stop()
                    await proc.wait()
                    costs.append((time.perf_counter() - t0) * 1000)
                finally:
                    limiter.release_on_behalf_of(t0)

            while (now := trio.current_time()) - started < duration:
                due = started + n / runs_per_s
                if due > now:
                    await trio.sleep(due - now)
                t0 = time.perf_counter()
                await limiter.acquire_on_behalf_of(t0)
                runs.start_soon(run_one, t0)
                n += 1
        wall = trio.current_time() - started
        return {
            "runs": len(costs),
            "runs_per_s": len(costs) / wall,
            "run_median_ms": statistics.median(costs),
            "run_p99_ms": _quantile(costs, 0.99),
            "cpu_per_run_ms": (time.process_time() - cpu) / max(1, len(costs)) * 1000,
        }

    async with open_orchestrator(llm=llm) as orch, trio.open_nursery() as nursery:
        counted = 0
        with orch.events.subscribe(
            types=("process.", "request.", "llm."), max_buffer=10**7
        ) as counter:
            alone = await drive(orch, seconds)
            while counter.receive_nowait() is not None:
                counted += 1
        alone["events_per_s"] = counted / seconds

        stop = trio.Event()
        urls = await nursery.start(
            lambda task_status: serve(
                orch, ServeConfig(port=0), shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        port = int(urls[0].rsplit(":", 1)[1])
        env = dict(os.environ)
        code = (
            "import json, sys; from tests.benchmarks._serve import b9_clients; "
            f"print(json.dumps(b9_clients({port}, {clients}, {seconds + 1.0})), flush=True)"
        )
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env
        )
        assert process.stdout is not None
        output = b""
        while b"connected\n" not in output:
            chunk = await process.stdout.receive_some()
            assert chunk, "the B9 client process ended early"
            output += chunk
        attached = await drive(orch, seconds)
        while True:
            chunk = await process.stdout.receive_some()
            if not chunk:
                break
            output += chunk
        await process.wait()
        delivery = json.loads(output.decode().strip().splitlines()[-1])
        stop.set()
    return {
        "clients": clients,
        "rate": rate,
        "seconds": seconds,
        "alone": alone,
        "attached": attached,
        "delivery": delivery,
        "cost_ratio": attached["run_median_ms"] / alone["run_median_ms"] - 1,
    }


def render_b8_b10(
    b8_result: dict[str, Any] | None,
    b9_results: list[dict[str, Any]] | None,
    b10_result: dict[str, Any] | None,
) -> tuple[str, list[list[str]]]:
    """The report sections and the summary rows for B8-B10."""
    rows: list[list[str]] = []
    parts: list[str] = []
    if b8_result is not None:
        r = b8_result
        ok = r["added_median_ms"] <= B8_MAX_MS
        rows.append(
            [
                f"B8: chat over HTTP (SSE) adds at most {B8_MAX_MS:g} ms to time to first token",
                f"+{r['added_median_ms']:.2f} ms median (p99 +{r['added_p99_ms']:.2f} ms)",
                "✅" if ok else "❌",
            ]
        )
        parts.append(f"""## B8 — time to first token over HTTP

`POST /api/agents/assistant:USER/chat/stream` on real Hypercorn over loopback against the same
send in process (`send_stream_rich`), on the same scripted model, interleaved in one run
({r["n"]:,} of each; a fresh session every 50 turns). Time to first token: from the request's
first byte (or the call) to the first `text_delta` event. The HTTP client is a raw Trio socket
(keep-alive), so the difference is the server's work: routing, the security checks, the
detached reply task and SSE encoding.

| | median | p99 |
|---|---:|---:|
| in process (`send_stream_rich`) | {r["local_median_ms"]:.3f} ms | {r["local_p99_ms"]:.3f} ms |
| over HTTP (SSE) | {r["http_median_ms"]:.3f} ms | {r["http_p99_ms"]:.3f} ms |
| **added by the server** | **{r["added_median_ms"]:.3f} ms** | {r["added_p99_ms"]:.3f} ms |

Where the added time goes (the route's hooks timed in place, a separate run on this machine,
medians): the security hook 45 µs, the other hooks 20 µs, the view 250 µs (of which 160 µs
find the session and start the detached reply: the reply is a task of the server, started
with `nursery.start` so that a refusal still gets its own status), the rest — about
0.6 ms — in Hypercorn and Quart (HTTP parsing, the request context, the response head and
the first chunk's send). Our share is about a third; the framework's is the floor here.
""")
    if b9_results:
        r = b9_results[0]
        d, alone, attached = r["delivery"], r["alone"], r["attached"]
        expected = alone["events_per_s"]
        delivered = d["events_per_client"] / d["seconds"]
        p99_ok = d["p99_ms"] <= B9_MAX_P99_MS and delivered >= 0.95 * expected
        cost_ok = r["cost_ratio"] <= B9_MAX_COST
        rows.append(
            [
                f"B9: /api/events fans {r['rate']:,} events/s out to {r['clients']:,} SSE "
                f"clients, p99 delivery ≤ {B9_MAX_P99_MS:g} ms",
                f"p99 {d['p99_ms']:,.0f} ms; {delivered:,.0f} events/s reached each client",
                "✅" if p99_ok else "❌",
            ]
        )
        rows.append(
            [
                f"B9: agents' per-run cost with those clients within {B9_MAX_COST:.0%} of none",
                f"{r['cost_ratio']:+.0%} (median run {alone['run_median_ms']:.1f} → "
                f"{attached['run_median_ms']:.1f} ms)",
                "✅" if cost_ok else "❌",
            ]
        )
        lines = []
        for r in b9_results:
            d, alone, attached = r["delivery"], r["alone"], r["attached"]
            lines.append(
                f"| {r['clients']:,} clients, {r['rate']:,} events/s asked "
                f"| {alone['events_per_s']:,.0f} | {alone['runs_per_s']:,.0f} → "
                f"{attached['runs_per_s']:,.0f} | {alone['run_median_ms']:.1f} → "
                f"{attached['run_median_ms']:.1f} ms ({r['cost_ratio']:+.0%}) "
                f"| {alone['cpu_per_run_ms']:.2f} → {attached['cpu_per_run_ms']:.2f} ms "
                f"| {d['events_per_client'] / d['seconds']:,.0f} "
                f"| {d['p50_ms']:,.0f} / {d['p99_ms']:,.0f} ms "
                f"| {d['lagged_clients']:,} |"
            )
        table = "\n".join(lines)
        parts.append(f"""## B9 — `/api/events` fan-out

Agents run (each run: spawn, send, stop; five `process.*`/`request.*`/`llm.call` events;
at most 64 at once) at the asked rate for {r["seconds"]:g} s alone, then for {r["seconds"]:g}
s with the SSE clients on `/api/events` (raw Trio sockets in a second process; every tenth
client parses timestamps). Delivery latency: the time a chunk arrives minus the `timestamp`
of the oldest event in it.

| configuration | events/s made (alone) | runs/s alone → attached | median run \
| server CPU per run | events/s reaching a client | delivery p50 / p99 | clients `lagged` |
|---|---:|---:|---:|---:|---:|---:|---:|
{table}

**How the server fans out.** One sink on the bus feeds the server's event log (the latest
10,000 events, each encoded once); every client reads it at its own position with its own
filters, readers of the same filters share one filtered batch per tick, one shared
notification wakes them, one commit wait covers a whole batch. The bus's per-event work no
longer grows with the clients. What does is the write: one Hypercorn send per client per
tick (Quart's body iterator, h11's chunk, a socket send: about 0.1-0.2 ms each on this
machine), on the event loop the agents run on. The log therefore paces its ticks by the last
round of writes (`PACE`: the next tick waits at least as long as the last round took), so
the fan-out takes about half of the loop and the agents keep the rest: with many clients
delivery latency grows instead of the runs stalling. At 1,000 clients and 5,000 events/s the
streams carry about 2 GB/s of SSE (events of ~450 bytes, every one to every client),
written by one Python process and read by another on the same 2 cores: the bytes, not the
per-event work, set the floor. Meeting both targets at 1,000 clients
needs the sockets on another core (a fan-out process fed by the log), not more work per
event here.
""")
    if b10_result is not None:
        r = b10_result
        ok = r["p99_ms"] <= B10_MAX_P99_MS
        rows.append(
            [
                f"B10: GET /api/processes with {r['processes']:,} live processes under "
                f"{B10_MAX_P99_MS:g} ms p99",
                f"{r['p99_ms']:.1f} ms p99 ({r['median_ms']:.1f} ms median)",
                "✅" if ok else "❌",
            ]
        )
        kinds = "\n".join(
            f"| {label} | {r['by_kind'][kind]['median_ms']:.2f} ms | "
            f"{r['by_kind'][kind]['p99_ms']:.2f} ms |"
            for kind, label in (
                ("first", "`/api/processes` (first page of 100)"),
                ("random", "`?offset=RANDOM&limit=100`"),
                ("filtered", "`?status=running&agent=idle&offset=N-50`"),
            )
        )
        parts.append(f"""## B10 — `GET /api/processes` with {r["processes"]:,} live processes

{r["processes"]:,} idle agent processes; {r["requests"]:,} requests over one keep-alive
connection (raw socket client), three kinds of page interleaved. The route filters on the
processes themselves and builds the JSON of the requested page only.

| request | median | p99 |
|---|---:|---:|
{kinds}
""")
    return "\n".join(parts), rows
