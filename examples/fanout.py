"""Fan-out / fan-in: ask several worker processes at once, survive one failing, combine.

``send_async`` queues a message and returns a future at once, so every worker thinks in
parallel; ``await future.wait()`` collects each reply (or raises its error). Run it::

    python examples/fanout.py                      # a real model when ANTHROPIC_API_KEY is set
    VEGA_LLM=scripted python examples/fanout.py    # offline: scripted replies, no network
"""

import os
from collections.abc import Sequence

import trio

from vega_trio import Agent, AnthropicLLM, VegaError, open_orchestrator
from vega_trio.llm import LLMRequest
from vega_trio.runtime import SpawnNode
from vega_trio.testing import ScriptedLLM, Step

REAL_MODEL = bool(os.environ.get("ANTHROPIC_API_KEY")) and os.environ.get("VEGA_LLM") != "scripted"

TOPICS = ["nurseries", "cancel scopes", "memory channels"]
ANSWERS = {  # the scripted stand-in's replies, keyed by words of the question (first match)
    "Combine": "Trio in short: nurseries own tasks, cancel scopes bound them, channels link them.",
    "nurseries": "A nursery runs child tasks and waits for all of them before its block ends.",
    "cancel scopes": "A cancel scope cancels everything inside it, e.g. when a deadline passes.",
    "memory channels": "Memory channels pass objects between tasks, with backpressure.",
}


def scripted_reply(request: LLMRequest) -> Step:
    question = request.messages[-1].text
    answer = next((a for key, a in ANSWERS.items() if key in question), None)
    if answer is None:  # the essay: slower than the essayist's 1 s send_timeout
        return Step.text("It was a dark and stormy night... " * 50, delay=3.0)
    return Step.text(answer, delay=0.5)  # each answer "takes" half a second


async def main() -> None:
    llm = AnthropicLLM() if REAL_MODEL else ScriptedLLM(responder=scripted_reply)
    if not REAL_MODEL:
        print("(offline: replies are scripted, not from a model)")
    concise = "Answer in one sentence."
    coordinator = Agent(name="coordinator", system=concise, max_tokens=200)
    researcher = Agent(name="researcher", system=concise, max_tokens=200)
    # This one has a tight deadline: a send taking longer than 1 s fails with SendTimeout.
    essayist = Agent(name="essayist", max_tokens=2000, send_timeout=1.0)

    async with open_orchestrator(llm=llm) as orch:
        boss = await orch.spawn(coordinator, task="explain Trio's building blocks")
        start = trio.current_time()
        futures = {}
        for topic in TOPICS:
            worker = await orch.spawn(
                researcher, parent=boss, reason="fan-out: one topic each", task=topic
            )
            futures[topic] = worker.send_async(f"What are Trio {topic}?")  # returns at once
        writer = await orch.spawn(essayist, parent=boss, reason="fan-out: long form", task="essay")
        futures["essay"] = writer.send_async("Write a 3000-word essay on the history of Trio.")

        # Gather: one task per future; a failure is caught in its own task, so it can't
        # cancel the others. Each task notes when its reply arrived.
        replies: dict[str, str] = {}
        took: dict[str, float] = {}  # seconds from the fan-out to each reply

        async def collect(name: str) -> None:
            try:
                replies[name] = await futures[name].wait()
            except VegaError as exc:  # LLMError, SendTimeout, ProcessExited, ...
                replies[name] = f"FAILED ({type(exc).__name__}): {exc}"
            took[name] = trio.current_time() - start

        async with trio.open_nursery() as nursery:
            for name in futures:
                nursery.start_soon(collect, name)
        wall = trio.current_time() - start

        for name in futures:
            print(f"{name:>15} ({took[name]:.1f} s): {replies[name]}")
        sequential = sum(took.values())  # each reply's own time, added up
        print(f"wall time {wall:.1f} s; one after another it would take ~{sequential:.1f} s")

        # Fan-in: the coordinator combines the answers that made it.
        notes = "\n".join(replies[t] for t in TOPICS if not replies[t].startswith("FAILED"))
        print("coordinator:", await boss.send(f"Combine these notes into one line:\n{notes}"))

        print("spawn tree:")  # live processes only: finished ones leave the tree
        print_tree(orch.spawn_tree())

    if isinstance(llm, AnthropicLLM):
        await llm.aclose()  # close the HTTP connection pool inside the Trio run


def print_tree(nodes: Sequence[SpawnNode], indent: str = "  ") -> None:
    for node in nodes:
        why = f"  <- {node.spawn_reason}" if node.spawn_reason else ""
        print(f"{indent}{node.agent_name} {node.process_id} [{node.status}] {node.task!r}{why}")
        print_tree(node.children, indent + "    ")


if __name__ == "__main__":
    trio.run(main)
