"""Streaming: watch a reply arrive, tool calls included, then stream plain text chunks.

``send_stream_rich`` yields typed events (text_delta, tool_start, tool_end, then exactly one
done or error); ``send_stream`` yields only the text. Run it::

    python examples/streaming.py                      # a real model when ANTHROPIC_API_KEY is set
    VEGA_LLM=scripted python examples/streaming.py    # offline: scripted replies, no network
"""

import json
import os

import trio

from vega_trio import Agent, AnthropicLLM, Tools, open_orchestrator
from vega_trio.agent import DoneEvent, ErrorEvent, TextDeltaEvent, ToolEndEvent, ToolStartEvent
from vega_trio.testing import ScriptedLLM, Step

REAL_MODEL = bool(os.environ.get("ANTHROPIC_API_KEY")) and os.environ.get("VEGA_LLM") != "scripted"

tools = Tools()


@tools.tool
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    await trio.sleep(0.25)  # pretend this is a slow service, so the tool panel shows a duration
    return a + b


# What the scripted stand-in answers, in order: one request per LLM round.
SCRIPT = [
    Step.tool_call("add", {"a": 19, "b": 23}, text="Let me add those.", chunk_delay=0.05),
    Step.text("19 + 23 = 42.", chunk_delay=0.05),
    Step.text(
        "Structured concurrency means every task lives inside a block that waits for it.",
        chunk_delay=0.05,
    ),
]


async def main() -> None:
    llm = AnthropicLLM() if REAL_MODEL else ScriptedLLM(SCRIPT)
    if not REAL_MODEL:
        print("(offline: replies are scripted, not from a model; token counts are estimates)")
    calculator = Agent(
        name="calculator",
        system="You are a terse assistant. Use the add tool for arithmetic.",
        tools=tools,
        max_tokens=300,
    )

    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(calculator)

        # 1. Rich events: print text as it arrives and a panel for each tool call.
        print("--- send_stream_rich ---")
        async with proc.send_stream_rich("What is 19 + 23? Use the add tool.") as stream:
            async for event in stream:
                match event:
                    case TextDeltaEvent(delta=delta):
                        print(delta, end="", flush=True)
                    case ToolStartEvent(tool_name=name, arguments=arguments):
                        print(f"\n[tool {name}({json.dumps(dict(arguments))})]")
                    case ToolEndEvent(duration_ms=ms, result=result, is_error=is_error):
                        print(f"[{'FAILED' if is_error else 'done'} in {ms} ms → {result}]")
                    case DoneEvent(metrics=m):
                        tokens = f"{m.input_tokens} input + {m.output_tokens} output tokens"
                        print(f"\n[metrics: {tokens}, ${m.cost_usd:.6f}, {m.duration_ms} ms]")
                    case ErrorEvent(error=error, error_class=error_class):
                        print(f"\n[error ({error_class}): {error}]")

        # 2. Plain text chunks: the simplest way to show a reply as it is written.
        #    (A failure is raised from the loop, after the text that came before it.)
        print("--- send_stream ---")
        async with proc.send_stream("In one sentence: what is structured concurrency?") as chunks:
            async for text in chunks:
                print(text, end="", flush=True)
        print()

    if isinstance(llm, AnthropicLLM):
        await llm.aclose()  # close the HTTP connection pool inside the Trio run


if __name__ == "__main__":
    trio.run(main)
