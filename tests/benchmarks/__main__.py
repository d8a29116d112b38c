"""Run the benchmarks and rewrite ``docs/benchmarks.md``::

    python -m tests.benchmarks            # full run (about 2-3 minutes on 2 cores)
    python -m tests.benchmarks --quick    # smoke run: small N, prints the report
    nox -s bench                          # the full run in its own virtualenv
    VEGA_BENCH_POSTGRES=postgresql://… python -m tests.benchmarks   # B11 on that PostgreSQL

B11 runs on PostgreSQL too: on ``VEGA_BENCH_POSTGRES`` when set, else on a throwaway local
server (Debian's ``postgresql`` package, as the tests run it, with ``fsync=on``) when
its binaries and psycopg are installed.

Every scenario runs in a fresh interpreter (``tests/benchmarks/_scenarios.py``), so
peak RSS is per scenario. ``--quick`` does not touch the docs unless ``--output``
says where to write.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._report import Config, kept_notes, machine_info, render

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"

FULL = Config(
    quick=False,
    b1_n=2000,
    b1_repeats=9,
    b1_warmup=300,
    b2_ns=(1_000, 10_000),
    b2_delay=0.05,
    b3_n=100_000,
    b3_raw_n=20_000,
    b3_trace_n=1_000,
    b4_n=5_000,
    b5_n=1_000,
)
QUICK = Config(
    quick=True,
    b1_n=300,
    b1_repeats=3,
    b1_warmup=50,
    b2_ns=(100, 1_000),
    b2_delay=0.05,
    b3_n=5_000,
    b3_raw_n=5_000,
    b3_trace_n=200,
    b4_n=500,
    b5_n=200,
    b6_n=2_000,
    b6_repeats=3,
    b7_steps=500,
    b7_runs=10,
    b7_repeats=3,
    b7_agents=(1_000, 10_000),
    b7_scaling_steps=(500, 5_000),
    b8_n=50,
    b9_runs=((100, 1_000),),
    b9_seconds=1.0,
    b10_processes=1_000,
    b10_requests=20,
    b11_events=2_000,
    b11_turns=200,
    b1_store_n=300,
    b1_store_repeats=3,
    b12_seconds=5.0,
    b13_repeats=3,
)


def _scenario(name: str, timeout: float = 600, **kwargs: Any) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter and return its JSON result."""
    print(f"  {name} {json.dumps(kwargs)}", file=sys.stderr, flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.fspath(ROOT), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks._scenarios", name, json.dumps(kwargs)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def _b11_local_postgres(b11: dict[str, Any]) -> list[dict[str, Any]]:
    """B11 on a throwaway PostgreSQL server (fsync on: durable commits, as in production);
    nothing when no server can run here."""
    import importlib.util

    from tests.store._postgres_server import PostgresServer, postgres_missing_reason

    reason = postgres_missing_reason()
    if reason is None and importlib.util.find_spec("psycopg") is None:
        reason = "psycopg is not installed (pip install 'vega-trio[postgres]')"
    if reason is not None:
        print(f"  b11 on PostgreSQL skipped: {reason}", file=sys.stderr)
        return []
    with PostgresServer(fsync=True) as server:
        return [_scenario("b11", db=server.create_database(), **b11)]


def run(config: Config) -> dict[str, Any]:
    """Run every scenario of ``config``; returns the raw results."""
    results: dict[str, Any] = {"machine_before": machine_info()}
    started = time.perf_counter()
    print("baseline: an interpreter that only imports vega_trio", file=sys.stderr)
    results["baseline"] = _scenario("baseline")
    print("B1 overhead: sequential runs", file=sys.stderr)
    results["b1"] = _scenario(
        "b1", n=config.b1_n, repeats=config.b1_repeats, warmup=config.b1_warmup
    )
    print("B2 concurrency", file=sys.stderr)
    results["b2"] = (
        [
            _scenario("b2", impl=impl, n=n, delay=config.b2_delay)
            for n in config.b2_ns
            for impl in ("vega", "raw")
        ]
        + [
            # Diagnostic: the largest N again without the cyclic GC.
            _scenario("b2", impl=impl, n=config.b2_ns[-1], delay=config.b2_delay, gc_on=False)
            for impl in ("vega", "raw")
        ]
        + [
            # The opt-in GC policy (vega_trio.runtime.relaxed_gc), both implementations.
            _scenario("b2", impl=impl, n=config.b2_ns[-1], delay=config.b2_delay, relaxed_gc=True)
            for impl in ("vega", "raw")
        ]
    )
    print("B3 idle processes", file=sys.stderr)
    results["b3"] = [
        _scenario("b3", impl="vega", n=config.b3_n, trace=False),
        _scenario("b3", impl="raw", n=config.b3_raw_n, trace=False),
        _scenario("b3", impl="vega", n=config.b3_trace_n, trace=True),
        _scenario("b3", impl="raw", n=config.b3_trace_n, trace=True),
    ]
    print("B4 restart latency, B5 one_for_all", file=sys.stderr)
    results["b4"] = _scenario("b4", n=config.b4_n)
    results["b5"] = _scenario("b5", n=config.b5_n)
    print("B6 resilience overhead per call", file=sys.stderr)
    results["b6"] = _scenario("b6", n=config.b6_n, repeats=config.b6_repeats)
    print("B7 the DSL: validate, interpreter overhead per step", file=sys.stderr)
    results["b7"] = _scenario(
        "b7",
        steps=config.b7_steps,
        runs=config.b7_runs,
        repeats=config.b7_repeats,
        agents=config.b7_agents,
        scaling_steps=config.b7_scaling_steps,
    )
    print(
        "B8-B10 the server: time to first token, /api/events fan-out, /api/processes",
        file=sys.stderr,
    )
    results["b8"] = _scenario("b8", n=config.b8_n)
    results["b9"] = [
        _scenario("b9", clients=clients, rate=rate, seconds=config.b9_seconds)
        for clients, rate in config.b9_runs
    ]
    results["b10"] = _scenario("b10", processes=config.b10_processes, requests=config.b10_requests)
    print("B11 the durable store: events/s with group commit, chat-turn commits", file=sys.stderr)
    b11 = {
        "n_events": config.b11_events,
        "producers": config.b11_producers,
        "batch": config.b11_batch,
        "turns": config.b11_turns,
        "chatters": config.b11_chatters,
    }
    results["b11"] = [_scenario("b11", **b11)]
    if os.environ.get("VEGA_BENCH_POSTGRES"):
        # A PostgreSQL URL to measure the same on (its data is reset before and after).
        results["b11"].append(_scenario("b11", db=os.environ["VEGA_BENCH_POSTGRES"], **b11))
    else:
        results["b11"] += _b11_local_postgres(b11)
    print("B1 and B2 with a SQLite store attached", file=sys.stderr)
    results["b1_store"] = _scenario(
        "b1_store", n=config.b1_store_n, repeats=config.b1_store_repeats, warmup=config.b1_warmup
    )
    results["b2_store"] = [
        _scenario("b2", impl="vega", n=config.b2_ns[-1], delay=config.b2_delay, store=True)
    ]
    print(
        "B12 the dashboard in chromium: first load, Event Stream at 1,000 events/s", file=sys.stderr
    )
    results["b12"] = _scenario("b12", rate=1000, seconds=config.b12_seconds)
    if "skipped" in results["b12"]:
        print(f"  {results['b12']['skipped']}", file=sys.stderr)
    print("B13 the command line: start to exit of --help, validate and run", file=sys.stderr)
    results["b13"] = _scenario("b13", repeats=config.b13_repeats)
    print("B14 prompt caching: billed input over a 20-turn conversation", file=sys.stderr)
    results["b14"] = _scenario("b14", turns=20)
    results["total_s"] = time.perf_counter() - started
    results["machine_after"] = machine_info(calibrate=False)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the report (default: docs/benchmarks.md, or nowhere with --quick)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the report instead of writing it"
    )
    parser.add_argument("--json", type=Path, help="also save the raw results as JSON here")
    args = parser.parse_args(argv)

    config = QUICK if args.quick else FULL
    results = run(config)
    report = render(config, results, notes=kept_notes(DOC))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    output = args.output if args.output else (None if args.quick else DOC)
    if output is None or args.no_write:
        print(report)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report)
        print(f"wrote {output} ({results['total_s']:.0f} s of benchmarks)", file=sys.stderr)


if __name__ == "__main__":
    main()
