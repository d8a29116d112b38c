"""Hello, agent: spawn one agent process and wait for its reply (a blocking send).

Run it::

    python examples/hello.py                      # a real model when ANTHROPIC_API_KEY is set
    VEGA_LLM=scripted python examples/hello.py    # offline: scripted replies, no network
"""

import os

import trio

from vega_trio import Agent, AnthropicLLM, open_orchestrator
from vega_trio.testing import ScriptedLLM, Step

# Use Claude when a key is set (and VEGA_LLM isn't "scripted"); otherwise a scripted stand-in.
REAL_MODEL = bool(os.environ.get("ANTHROPIC_API_KEY")) and os.environ.get("VEGA_LLM") != "scripted"


async def main() -> None:
    llm = (
        AnthropicLLM()
        if REAL_MODEL
        else ScriptedLLM([Step.text("Hello! I'm your assistant. What would you like to do today?")])
    )
    if not REAL_MODEL:
        print("(offline: replies are scripted, not from a model; token counts are estimates)")

    # An Agent is an immutable blueprint; the orchestrator runs processes of it.
    assistant = Agent(
        name="assistant",
        system="You are a friendly assistant. Answer in one or two sentences.",
        max_tokens=200,
    )

    # Everything spawned inside this block is shut down when the block ends.
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(assistant, task="say hello")
        print(f"spawned {proc.agent_name} as process {proc.id} (model {proc.model})")

        # send() queues the message in the process's mailbox and waits for the final text.
        reply = await proc.send("Hello!")
        print(f"assistant: {reply}")

        # Done with it: complete() records the result; the process exits normally.
        proc.complete(reply)
        reason = await proc.wait()
        print(f"process status: {proc.status} (exit reason: {reason.kind})")

        m = proc.metrics
        print(
            f"metrics: {m.llm_calls} LLM call(s), {m.input_tokens} input + "
            f"{m.output_tokens} output tokens, cost ${m.cost_usd:.6f}"
        )

    if isinstance(llm, AnthropicLLM):
        await llm.aclose()  # close the HTTP connection pool inside the Trio run


if __name__ == "__main__":
    trio.run(main)
