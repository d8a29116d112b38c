"""B13: the ``vega-trio`` command from start to exit, wall clock::

    python -m tests.benchmarks._cli              # 7 interleaved rounds, prints JSON
    python -m tests.benchmarks._cli --repeats 3

Each measure is a fresh interpreter started with :func:`subprocess.run` and timed from
the call to its exit: ``vega-trio --help``, ``validate`` and ``run`` of a one-step
workflow on each backend — the scripted model, and the OpenAI-compatible and Anthropic
backends against the fake servers of :mod:`vega_trio.testing` on loopback (served from a
thread of this process, so the server's own start-up is not counted). For scale, the same
for a bare ``python -c pass`` and for importing each SDK alone: what a run on that backend
cannot go below.

The commands run round-robin (one of each per round, so load drifts hit them alike) after
one warm-up round, whose bytecode caching makes them what an installed package does; the
median and the minimum of the rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

__all__ = ["B13_MAX_S", "b13", "render_b13"]

ROOT = Path(__file__).resolve().parents[2]

#: The goal (issue 16): a one-step ``run`` against a local server, start to exit.
B13_MAX_S = 1.0

ONE_STEP = """\
name: one
agents:
  helper:
    system: You help.
workflows:
  only:
    inputs:
      task: {type: string}
    steps:
      - helper: "Say {{task}}"
"""


@contextmanager
def _fake_servers() -> Iterator[tuple[str, str]]:
    """The fake Anthropic and OpenAI servers, answering every request with one word, in
    a thread; yields their base URLs."""
    from vega_trio.testing import (
        FakeAnthropicServer,
        FakeChatResponse,
        FakeOpenAIServer,
        FakeResponse,
    )

    ready = threading.Event()
    urls: list[str] = []
    stop: list[trio.CancelScope] = []
    token: list[trio.lowlevel.TrioToken] = []

    async def serve() -> None:
        anthropic = FakeAnthropicServer(responder=lambda _: FakeResponse.text("done"))
        openai = FakeOpenAIServer(responder=lambda _: FakeChatResponse.text("done"))
        async with trio.open_nursery() as nursery:
            await nursery.start(anthropic.serve)
            await nursery.start(openai.serve)
            urls.extend([anthropic.base_url, openai.base_url])
            stop.append(nursery.cancel_scope)
            token.append(trio.lowlevel.current_trio_token())
            ready.set()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("B13: the fake servers did not start within 30 s")
    try:
        yield urls[0], urls[1]
    finally:
        trio.from_thread.run_sync(stop[0].cancel, trio_token=token[0])
        thread.join(10)


def _environment(home: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "OPENAI_", "VEGA_", "OTEL_", "TELEGRAM_"))
        and key != "PYTHONDONTWRITEBYTECODE"  # cached bytecode, as an installed package has
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["VEGA_HOME"] = home  # an empty one: no ~/.vega/env of this machine
    return env


def _time(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"B13: {command} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def b13(repeats: int = 7) -> dict[str, Any]:
    """Time each command ``repeats`` times (after a warm-up round); seconds per command."""
    python = sys.executable
    cli = [python, "-m", "vega_trio"]
    with tempfile.TemporaryDirectory() as home, _fake_servers() as (anthropic_url, openai_url):
        workflow = Path(home) / "one.vega.yaml"
        workflow.write_text(ONE_STEP)
        run = [*cli, "run", str(workflow), "--task", "hi", "--llm"]
        base = _environment(home)
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([python, "-c", "pass"], base),
            "python -c 'import anthropic'": ([python, "-c", "import anthropic"], base),
            "python -c 'import openai'": ([python, "-c", "import openai"], base),
            "vega-trio --help": ([*cli, "--help"], base),
            "vega-trio validate": ([*cli, "validate", str(workflow)], base),
            "vega-trio run --llm scripted": ([*run, "scripted"], base),
            "vega-trio run --llm openai": (
                [*run, "openai"],
                {**base, "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": openai_url},
            ),
            "vega-trio run --llm anthropic": (
                [*run, "anthropic"],
                {**base, "ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": anthropic_url},
            ),
        }
        load_before = os.getloadavg()
        for command, env in commands.values():  # warm-up: bytecode written, files cached
            _time(command, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeats):
            for name, (command, env) in commands.items():
                samples[name].append(_time(command, env))
        load_after = os.getloadavg()
    return {
        "repeats": repeats,
        "samples": samples,
        "median": {name: statistics.median(values) for name, values in samples.items()},
        "min": {name: min(values) for name, values in samples.items()},
        "loadavg": [load_before, load_after],
    }


def render_b13(r: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """The report section and the summary rows for B13."""
    median, least = r["median"], r["min"]
    before, after = r["loadavg"]
    rows = []
    for backend, sdk in (("openai", "openai"), ("anthropic", "anthropic")):
        name = f"vega-trio run --llm {backend}"
        floor = median[f"python -c 'import {sdk}'"]
        rows.append(
            [
                f"B13: `{name}` of a one-step workflow against a local server "
                f"≤ {B13_MAX_S:g} s wall",
                f"{median[name]:.2f} s median ({least[name]:.2f} s min); importing the "
                f"{sdk} SDK alone: {floor:.2f} s",
                "✅" if median[name] <= B13_MAX_S else "❌",
            ]
        )
    load = "{:.2f} / {:.2f} / {:.2f} before, {:.2f} / {:.2f} / {:.2f} after".format(*before, *after)
    table = "\n".join(
        f"| `{name}` | {median[name]:.2f} s | {least[name]:.2f} s |" for name in median
    )
    text = f"""## B13 — the command line, start to exit

Wall time of a fresh interpreter from start to exit, each command run {r["repeats"]} times
round-robin after a warm-up round (`tests/benchmarks/_cli.py`; alone:
`python -m tests.benchmarks._cli`). The `run`s execute a one-step workflow against the fake
servers of `vega_trio.testing` on loopback. Load average (1/5/15 min): {load}.

| command | median | min |
| --- | ---: | ---: |
{table}

A command imports only what it uses: `--help`, `validate` and `--llm scripted` no SDK, a
run on one backend that backend's SDK only (`tests/test_lazy_imports.py` pins this). What is
left is the SDK's own import — its `python -c 'import …'` row is the floor of a run on
that backend — and vega-trio's own modules and the run itself, the difference between the
`run` row and the SDK row.
"""
    return text, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks._cli", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="rounds to time")
    args = parser.parse_args(argv)
    print(json.dumps(b13(args.repeats)))


if __name__ == "__main__":
    main()
