"""The benchmark workload, shared by every scenario.

One *run* is one message sent to an agent that makes two LLM calls and one tool
call: the scripted model first asks for ``add(a=1, b=2)``, then answers with text.
The same :class:`~vega_trio.testing.ScriptedLLM` (and the same tool function) is
driven by vega-trio and by :class:`RawProcess`, a hand-written agent loop on raw
Trio, so the two differ only by what the framework does around them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from vega_trio import Agent, Tool, Tools
from vega_trio.llm import (
    DEFAULT_MODEL,
    LLMRequest,
    Message,
    ToolResultBlock,
    ToolSchema,
    Usage,
)
from vega_trio.testing import ScriptedLLM, Step

__all__ = [
    "MODEL",
    "PROMPT",
    "REPLY",
    "RawProcess",
    "add",
    "add_sync",
    "direct_run",
    "ran_tool",
    "make_agent",
    "make_llm",
    "tool_schemas",
]

MODEL = DEFAULT_MODEL
PROMPT = "What is 1 + 2?"
REPLY = "1 + 2 = 3"
# NOTE: an explicit usage keeps ScriptedLLM from estimating tokens (a json.dumps
# of every block of the request), which would otherwise dominate a run.
_USAGE = Usage(input_tokens=12, output_tokens=6)


async def add(a: int, b: int) -> int:  # noqa: ASYNC124 - an async tool, on purpose
    """Add two integers."""
    return a + b


def add_sync(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def make_llm(delay: float = 0.0) -> ScriptedLLM:
    """A scripted LLM that never runs out: a tool call, then text after the tool result.

    The responder decides from the last turn of the request (two attribute reads),
    so one LLM can serve any number of concurrent conversations.
    """
    call = Step.tool_call("add", {"a": 1, "b": 2}, delay=delay, usage=_USAGE)
    text = Step.text(REPLY, delay=delay, usage=_USAGE)

    def respond(request: LLMRequest) -> Step:
        return text if request.messages[-1].content[0].type == "tool_result" else call

    return ScriptedLLM(responder=respond)


def make_agent(tool: Callable[..., Any] = add) -> Agent:
    """The benchmarked agent: one tool (always named ``add``), everything else default."""
    if tool is add:
        return Agent(name="bench", tools=[add])
    return Agent(name="bench", tools=[Tool.from_function(tool, name="add")])


def ran_tool(history: list[Message]) -> bool:
    """Whether a conversation is exactly one run with a successful ``add`` call."""
    if len(history) != 4:
        return False
    result = history[2].content[0]
    return (
        isinstance(result, ToolResultBlock)
        and result.content == "3"
        and not result.is_error
        and history[3].text == REPLY
    )


def tool_schemas() -> tuple[ToolSchema, ...]:
    """The schemas vega-trio sends for :func:`add` (built once, outside any timing)."""
    tools = Tools()
    tools.register(add)
    return tools.schemas()


class _Slot:
    """Where the raw loop puts its reply."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: str | None = None


class RawProcess:
    """The same agent, hand-written on raw Trio: a task with a memory-channel mailbox.

    Per message: build the request from the history, call the LLM, run the tools it
    asks for, call the LLM again with the results, keep the turns, reply through a
    slot with a :class:`trio.Event`. No validation, events, metrics, timeouts or
    error handling: what a careful developer writes for one known workload.
    """

    def __init__(
        self,
        llm: ScriptedLLM,
        tools: dict[str, Callable[..., Awaitable[Any]]],
        schemas: tuple[ToolSchema, ...],
        mailbox_size: int = 64,
    ) -> None:
        self.llm = llm
        self.tools = tools
        self.schemas = schemas
        self.history: list[Message] = []
        self.exited = trio.Event()
        self._send, self._recv = trio.open_memory_channel[tuple[str, _Slot]](mailbox_size)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The task body: serve messages until the mailbox is closed."""
        task_status.started()
        try:
            async for text, slot in self._recv:
                pending = [Message.user(text)]
                while True:
                    request = LLMRequest(
                        model=MODEL, messages=(*self.history, *pending), tools=self.schemas
                    )
                    response = await self.llm.generate(request)
                    pending.append(response.to_message())
                    uses = response.tool_uses
                    if not uses:
                        break
                    results = []
                    for use in uses:
                        output = await self.tools[use.name](**use.input)
                        results.append(ToolResultBlock(tool_use_id=use.id, content=str(output)))
                    pending.append(Message(role="user", content=results))
                self.history.extend(pending)
                slot.value = response.text
                slot.event.set()
        finally:
            self.exited.set()

    async def send(self, text: str) -> str | None:
        """Put ``text`` in the mailbox and wait for the reply."""
        slot = _Slot()
        await self._send.send((text, slot))
        await slot.event.wait()
        return slot.value

    def close(self) -> None:
        """Close the mailbox: the task ends once it has served what is queued."""
        self._send.close()


async def direct_run(llm: ScriptedLLM, schemas: tuple[ToolSchema, ...]) -> str:
    """One run with no task, mailbox or history: the cost of the scripted LLM and the
    tool themselves (the floor under both loops)."""
    user = Message.user(PROMPT)
    first = await llm.generate(LLMRequest(model=MODEL, messages=(user,), tools=schemas))
    use = first.tool_uses[0]
    output = await add(**use.input)
    result = Message(
        role="user", content=[ToolResultBlock(tool_use_id=use.id, content=str(output))]
    )
    second = await llm.generate(
        LLMRequest(model=MODEL, messages=(user, first.to_message(), result), tools=schemas)
    )
    return second.text
