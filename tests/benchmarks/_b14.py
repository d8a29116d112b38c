"""B14: Anthropic prompt caching — billed input tokens over a 20-turn conversation,
cached vs uncached::

    python -m tests.benchmarks._b14               # 20 turns, prints JSON
    python -m tests.benchmarks._b14 --turns 50

One agent (a system prompt of about 3,000 tokens and six tools, as a real assistant
has) talks to :class:`~vega_trio.llm.AnthropicLLM` through the real ``anthropic`` SDK
against the fake Anthropic server over loopback, twice: ``prompt_caching=False`` and the
default ``prompt_caching=True``. The server counts every request's tokens (four
characters a token) and runs the prompt cache on the breakpoints the request carries
(``count_tokens=True``: writes where a prefix reaches 1,024 tokens, reads on a prefix
match), so both runs send the same prompts and differ only in how they are billed.

*Billed input tokens* weigh each kind by its price relative to input:
``input + 1.25 * cache writes + 0.1 * cache reads``; the dollar figures are the
orchestrator's own cost accounting with the packaged price table for the model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

__all__ = ["B14_MAX_RATIO", "b14", "render_b14"]

#: The target: billed input tokens with caching at most this fraction of without.
B14_MAX_RATIO = 0.5

_TOOL_NAMES = ("search_docs", "read_file", "write_file", "run_tests", "open_ticket", "send_mail")


def _tools() -> list[Any]:
    made = []
    for name in _TOOL_NAMES:

        def impl(query: str) -> str:
            return "ok"

        impl.__name__ = name
        impl.__doc__ = (
            f"{name.replace('_', ' ').capitalize()} for the user. "
            + "Use it only when the request needs it; say what you did. " * 6
            + "\n\nArgs:\n    query: what to act on, in the user's words.\n"
        )
        made.append(impl)
    return made


def _system() -> str:
    rule = (
        "Answer in the user's language, cite the document you used, never invent a "
        "figure, and ask before any action that cannot be undone. "
    )
    return "You are the support assistant of a software company.\n" + rule * 80


async def _conversation(prompt_caching: bool, turns: int) -> dict[str, Any]:
    from vega_trio import Agent, open_orchestrator
    from vega_trio.events import LLMCalled
    from vega_trio.llm import DEFAULT_MODEL, AnthropicLLM, Usage
    from vega_trio.testing import FakeResponse, open_fake_anthropic_server

    reply = "Thank you, noted. Here is what I found in the documentation. " * 6
    usage = Usage(output_tokens=len(reply) // 4)  # the input side is counted by the server
    async with open_fake_anthropic_server(
        responder=lambda body: FakeResponse.text(reply, usage=usage), count_tokens=True
    ) as server:
        async with (
            AnthropicLLM(
                api_key="bench", base_url=server.base_url, prompt_caching=prompt_caching
            ) as llm,
            open_orchestrator(llm=llm) as orch,
        ):
            proc = await orch.spawn(
                Agent(name="support", model=DEFAULT_MODEL, system=_system(), tools=_tools())
            )
            calls: list[LLMCalled] = []
            started = time.perf_counter()
            with orch.subscribe(types="llm.call") as subscription:
                for turn in range(turns):
                    await proc.send(
                        f"Message {turn}: my build fails after the upgrade; "
                        + "here are the details of what I tried. " * 8
                    )
                while (event := subscription.receive_nowait()) is not None:
                    if isinstance(event, LLMCalled):
                        calls.append(event)
            wall = time.perf_counter() - started
            cost = proc.metrics.cost_usd
    sums = {
        "input": sum(c.input_tokens for c in calls),
        "cache_write": sum(c.cache_creation_input_tokens or 0 for c in calls),
        "cache_read": sum(c.cache_read_input_tokens or 0 for c in calls),
        "output": sum(c.output_tokens for c in calls),
    }
    return {
        "calls": len(calls),
        **sums,
        "prompt_tokens": sums["input"] + sums["cache_write"] + sums["cache_read"],
        "billed_input": sums["input"] + 1.25 * sums["cache_write"] + 0.1 * sums["cache_read"],
        "cost_usd": cost,
        "wall_s": wall,
        "first_call": {
            "input": calls[0].input_tokens,
            "cache_write": calls[0].cache_creation_input_tokens or 0,
        },
    }


def b14(turns: int = 20) -> dict[str, Any]:
    """The same conversation without and with prompt caching."""
    import trio

    from vega_trio.llm import DEFAULT_MODEL

    uncached = trio.run(_conversation, False, turns)
    cached = trio.run(_conversation, True, turns)
    return {"turns": turns, "model": DEFAULT_MODEL, "uncached": uncached, "cached": cached}


def render_b14(r: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """The report section and the summary row for B14."""
    off, on = r["uncached"], r["cached"]
    ratio = on["billed_input"] / off["billed_input"]
    cost_ratio = on["cost_usd"] / off["cost_usd"] if off["cost_usd"] else float("nan")
    rows = [
        [
            f"B14: prompt caching, {r['turns']}-turn conversation: billed input tokens "
            f"≤ {B14_MAX_RATIO:g}x uncached",
            f"{ratio:.2f}x ({off['billed_input']:,.0f} → {on['billed_input']:,.0f}); "
            f"cost {cost_ratio:.2f}x",
            "✅" if ratio <= B14_MAX_RATIO else "❌",
        ]
    ]

    def line(name: str, x: dict[str, Any]) -> list[str]:
        return [
            name,
            f"{x['calls']}",
            f"{x['prompt_tokens']:,}",
            f"{x['input']:,}",
            f"{x['cache_write']:,}",
            f"{x['cache_read']:,}",
            f"{x['billed_input']:,.0f}",
            f"${x['cost_usd']:.4f}",
        ]

    header = [
        "",
        "calls",
        "prompt tokens",
        "input",
        "cache writes",
        "cache reads",
        "billed input",
        "cost",
    ]
    table = "\n".join(
        "| " + " | ".join(cells) + " |"
        for cells in [
            header,
            ["---"] + ["---:"] * (len(header) - 1),
            line("uncached (`prompt_caching=False`)", off),
            line("cached (the default)", on),
        ]
    )
    text = f"""## B14 — prompt caching

One agent with a system prompt of about 3,000 tokens and six tools holds a
{r["turns"]}-turn conversation through `AnthropicLLM` (the real `anthropic` SDK) against
the fake Anthropic server, which counts the tokens of every request (four characters a
token) and runs the prompt cache on the `cache_control` breakpoints the request carries
(`tests/benchmarks/_b14.py`; run it alone with `python -m tests.benchmarks._b14`). Both
runs send the same prompts; they differ only in how the prompt is billed. Billed input
weighs cache writes at 1.25 and cache reads at 0.1 of an input token; cost is the
orchestrator's own accounting for `{r["model"]}` with the packaged price table.

{table}

With caching the first call writes its whole prompt — tools, system prompt, first
message: {on["first_call"]["cache_write"]:,} tokens at 1.25x — and every later call reads
that and the conversation so far back at 0.1x, writing only its new turn: billed input is
{ratio:.2f}x the uncached run's, cost {cost_ratio:.2f}x (output tokens are the same in
both).
"""
    return text, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks._b14", description=__doc__)
    parser.add_argument("--turns", type=int, default=20, help="turns of the conversation")
    args = parser.parse_args(argv)
    print(json.dumps(b14(args.turns)), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
