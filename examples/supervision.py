"""A supervised team: three workers under one supervisor; one crashes on every third message.

Shows what callers get when a process crashes:
* "steady" and "careful" run on a healthy model;
* "flaky" runs on a model that is overloaded on every third call. With its own
  per-process supervision it restarts in place and re-delivers the crashed message,
  so its callers still get answers;
* then the tree's own restart intensity (max 2 restarts in 60 s) is shown giving up
  on a worker that keeps failing.

Runs offline with a scripted model; with ANTHROPIC_API_KEY set (and VEGA_LLM not
"scripted") the healthy calls go to Claude.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

import vega_trio
from vega_trio import Agent, AnthropicLLM, Backoff, ErrorClass, LLMError, Supervision
from vega_trio.llm import LLM, LLMRequest, LLMResponse, StreamChunk
from vega_trio.runtime import SupervisorSpec
from vega_trio.testing import ScriptedLLM


class EveryThirdCallFails:
    """Wraps a backend and makes every third call fail as 'overloaded' (chaos testing)."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls % 3 == 0:
            raise LLMError("injected: model overloaded", error_class=ErrorClass.OVERLOADED)

    async def generate(self, request: LLMRequest) -> LLMResponse:
        self._maybe_fail()
        return await self.inner.generate(request)

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[StreamChunk]]:
        self._maybe_fail()
        async with self.inner.stream(request) as chunks:
            yield chunks


async def main() -> None:
    offline = not os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("VEGA_LLM") == "scripted"
    if offline:
        print("(offline: replies are scripted, not from a model)")
    llm: LLM = ScriptedLLM.echo("done: ") if offline else AnthropicLLM()
    restart_in_place = Supervision(
        strategy="restart",
        max_restarts=5,
        window=60,
        backoff=Backoff(kind="exponential", initial=0.05, max=1),
        on_restart=lambda proc, n: print(f"    [flaky restarted in place, restart #{n}]"),
    )
    async with vega_trio.open_orchestrator(llm=llm) as orch:
        # retry=None: let the failures reach supervision (by default an agent retries the
        # model call itself first; see docs/resilience.md).
        flaky_model = Agent(
            name="flaky", llm=EveryThirdCallFails(llm), system="Answer briefly.", retry=None
        )
        team = await orch.start_supervisor(
            SupervisorSpec(
                name="team",
                strategy="one_for_one",
                max_restarts=2,
                window=60,
                children=[
                    orch.child_spec(Agent(name="steady", system="Answer briefly."), name="steady"),
                    orch.child_spec(
                        Agent(name="careful", system="Answer briefly."), name="careful"
                    ),
                    orch.child_spec(flaky_model, supervision=restart_in_place, name="flaky"),
                ],
            )
        )
        for i in range(1, 7):
            for name in ("steady", "careful", "flaky"):
                worker = orch.lookup(name)
                assert isinstance(worker, vega_trio.AgentProcess)
                reply = await worker.send(f"Say 'task {i}'.")
                print(f"{name:>8} #{i}: {reply}")
        flaky = orch.lookup("flaky")
        print(
            f"flaky: {flaky.restart_count} restarts in place, tree restarts: {team.restart_count}"
        )

        # Without per-process supervision the tree replaces the worker: the caller of the
        # crashed message gets a clear error, and after 2 restarts in 60 s the tree gives up.
        fragile = await orch.start_supervisor(
            SupervisorSpec(
                name="fragile",
                max_restarts=2,
                window=60,
                children=[
                    orch.child_spec(Agent(name="fragile", llm=EveryThirdCallFails(llm), retry=None))
                ],
            )
        )
        for i in range(1, 10):
            worker = fragile.child("fragile")
            if worker is None or not fragile.alive:
                break
            assert isinstance(worker, vega_trio.AgentProcess)
            try:
                print(f"fragile #{i}: {await worker.send(f'Say {i}.')}")
            except LLMError as exc:
                print(f"fragile #{i}: error ({exc.error_class}): {exc}")
            await trio.sleep(0.01)  # let the supervisor handle the exit before the next send
        reason = await fragile.wait()
        print(f"fragile tree: gave up={fragile.gave_up}, exit reason={reason.kind}")


if __name__ == "__main__":
    trio.run(main)
