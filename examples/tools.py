"""Tools: Python functions the model can call. Type hints + docstrings become the schemas;
sync tools run in a worker thread; the calls of one model turn run concurrently; a tool that
raises gives the model an ``is_error`` result it can recover from. Run it::

    python examples/tools.py                      # a real model when ANTHROPIC_API_KEY is set
    VEGA_LLM=scripted python examples/tools.py    # offline: scripted replies, no network
"""

import json
import os
import threading
from typing import Any, Literal

import trio

import vega_trio
from vega_trio import Agent, AnthropicLLM, Tools, open_orchestrator
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools import CallNext, ToolCall

REAL_MODEL = bool(os.environ.get("ANTHROPIC_API_KEY")) and os.environ.get("VEGA_LLM") != "scripted"
Unit = Literal["celsius", "fahrenheit"]  # a Literal becomes a JSON-schema enum
RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 150.0}  # per US dollar (made up)

tools = Tools()


@tools.tool
async def get_weather(city: str, unit: Unit = "celsius") -> dict[str, Any]:
    """Get the current weather in a city.

    Args:
        city: The city name, e.g. "Oslo".
        unit: The temperature unit.
    """
    await trio.sleep(0.1)  # an async tool awaits I/O without blocking the other tools
    return {"city": city, "temperature": 5 if unit == "celsius" else 41, "sky": "cloudy"}


@tools.tool
async def convert_currency(amount: float, from_code: str, to_code: str) -> float:
    """Convert money between currencies.

    Args:
        amount: How much money.
        from_code: The ISO code of the currency to convert from, e.g. "USD".
        to_code: The ISO code of the currency to convert to.
    """
    await trio.sleep(0.05)  # pretend to fetch today's rates
    if from_code not in RATES or to_code not in RATES:  # the model sees this as is_error
        raise ValueError(f"no exchange rate for that pair; supported: {', '.join(RATES)}")
    return round(amount / RATES[from_code] * RATES[to_code], 2)


@tools.tool
def whoami() -> dict[str, Any]:
    """Tell which agent process is running this conversation."""
    # A sync tool: it runs in a worker thread, so blocking here won't stall the event loop.
    # current_process() still works there: it is the process whose tool call this is.
    process = vega_trio.current_process()
    worker = threading.current_thread() is not threading.main_thread()
    return {"process_id": process.id, "agent": process.agent_name, "worker_thread": worker}


@tools.use
async def log_calls(call: ToolCall, call_next: CallNext) -> Any:
    """Middleware: wraps every tool call of this registry (it could also change them)."""
    what = f"{call.name}{dict(call.arguments)}"
    try:
        result = await call_next(call)
    except Exception as exc:
        print(f"  [log] {what} raised {type(exc).__name__}: {exc}")
        raise  # re-raise: the agent turns it into an is_error result for the model
    print(f"  [log] {what} -> {result!r}")
    return result


SCRIPT = [  # what the scripted stand-in answers, one step per LLM round
    Step.tool_calls(  # three calls in one turn: they run concurrently
        [
            ("whoami", {}),
            ("convert_currency", {"amount": 100, "from_code": "USD", "to_code": "BTC"}),
            ("get_weather", {"city": "Oslo", "unit": "fahrenheit"}),
        ]
    ),
    Step.tool_call("convert_currency", {"amount": 100, "from_code": "USD", "to_code": "EUR"}),
    Step.text("I'm the helper agent. Oslo is 41 °F and cloudy; no BTC rate, but 100 USD = 92 EUR."),
]


async def main() -> None:
    llm = AnthropicLLM() if REAL_MODEL else ScriptedLLM(SCRIPT)
    if not REAL_MODEL:
        print("(offline: replies are scripted, not from a model)")
    print("tool schemas (from type hints and docstrings):")
    for schema in tools.schemas():
        print(f"  {schema.name}: {schema.description}\n    {json.dumps(schema.input_schema)}")

    helper = Agent(name="helper", system="Use the tools; be brief.", tools=tools, max_tokens=500)
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(helper, task="errands")
        question = (
            "Which agent are you? What's the weather in Oslo in fahrenheit? "
            "And convert 100 USD to bitcoin (BTC), or to euros if you can't."
        )
        print(f"user: {question}")
        print(f"helper: {await proc.send(question)}")
        print(f"tool calls: {proc.metrics.tool_calls}, LLM rounds: {proc.metrics.llm_calls}")
        failed = [r.content for m in proc.history for r in m.tool_results if r.is_error]
        print(f"is_error results the model saw: {failed}")

    if isinstance(llm, AnthropicLLM):
        await llm.aclose()  # close the HTTP connection pool inside the Trio run


if __name__ == "__main__":
    trio.run(main)
