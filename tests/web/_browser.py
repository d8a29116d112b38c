"""Browser tests' machinery: a real ``serve`` on 127.0.0.1:0 with a scripted model, and
Playwright's sync API driving Debian's chromium in a worker thread (one thread per test:
Playwright's objects belong to the thread that made them).

The scripted model answers by keyword, so one server serves every scenario:

- ``delegate``: delegate "use the tool" to ``researcher`` (the ``lead`` agent's team);
- ``tool``: a ``lookup`` tool call, then a reply that uses its result;
- ``slow``: 40 words, one every 0.25 s (a reply long enough to reload the page under it);
- ``html``: Markdown carrying live HTML and ``javascript:`` links (must render inert);
- anything else: ``You said: <text>``, word by word (0.1 s apart).

The server also runs a supervisor ``workers`` with one permanent ``worker`` agent.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from vega_trio import Agent, SupervisorSpec, open_orchestrator
from vega_trio.llm import LLMRequest
from vega_trio.serve import ServeConfig, serve
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools.mcp import MCPServerConfig

ECHO_SERVER = Path(__file__).resolve().parents[1] / "tools" / "mcp_servers" / "echo_server.py"
CHROMIUM = os.environ.get("VEGA_TEST_CHROMIUM", "/usr/bin/chromium")
TOKEN = "0123456789abcdef0123456789abcdef"
HOSTILE = (
    "Here is **bold** text.\n\n"
    '<img src=x onerror="window.__pwned = 1">\n\n'
    "<script>window.__pwned = 2</script>\n\n"
    "A [link](javascript:window.__pwned=3) and ![pic](javascript:window.__pwned=4).\n\n"
    'Inline <b onmouseover="window.__pwned=5">html</b> stays text.'
)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM):
        return (
            f"no chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium "
            "fonts-liberation; `nox -s tests` does it where it can) or set VEGA_TEST_CHROMIUM"
        )
    return None


def _last_user_text(request: LLMRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user" and message.text:
            return message.text
    return ""


def respond(request: LLMRequest) -> Step:
    """The scripted model of the browser tests (see the module docstring)."""
    last = request.messages[-1] if request.messages else None
    said = _last_user_text(request)
    if last is not None and last.role == "user" and last.tool_results:
        return Step.text("The lookup says **42**.", chunk_delay=0.02)
    if "delegate" in said:
        return Step.tool_call(
            "delegate", {"agent": "researcher", "message": "use the tool"}, text="Asking. "
        )
    if "tool" in said:
        return Step.tool_call("lookup", {"query": "vega"}, text="Let me look that up. ")
    if "slow" in said:
        return Step.text(" ".join(f"word{i}" for i in range(40)), chunk_delay=0.25)
    if "html" in said:
        return Step.text(HOSTILE, chunk_delay=0.01)
    return Step.text(f"You said: {said}", chunk_delay=0.1)


def lookup(query: str) -> str:
    """Look something up."""
    return f"{query}: 42 results"


@attrs.frozen
class WebServer:
    url: str
    token: str | None
    #: the served orchestrator (the B12 benchmark emits events on its bus)
    orchestrator: Any = attrs.field(default=None, eq=False, repr=False)


@asynccontextmanager
async def web_server(
    *, token: str | None = None, port: int = 0, mcp: bool = False
) -> AsyncIterator[WebServer]:
    """A real ``serve`` on 127.0.0.1 (any free port) with the scripted model, for the block;
    with ``mcp``, the test suite's echo MCP server too (a subprocess)."""
    llm = ScriptedLLM(responder=respond)
    servers = [MCPServerConfig(name="echo", command=sys.executable, args=[str(ECHO_SERVER)])]
    async with open_orchestrator(
        llm=llm, event_history=1000, mcp_servers=servers if mcp else ()
    ) as orch:
        orch.agents.define(
            Agent(name="assistant", model="scripted", description="Answers by keyword."),
            source="builtin",
        )
        orch.agents.define(
            Agent(name="researcher", model="scripted", tools=[lookup]), source="composed"
        )
        orch.agents.define(
            Agent(name="lead", model="scripted", team=["researcher"]), source="composed"
        )
        # A supervised worker: what the Supervision Tree page shows (and restarts).
        worker = orch.child_spec(Agent(name="worker", model="scripted"))
        await orch.start_supervisor(
            SupervisorSpec(name="workers", children=[worker], max_restarts=5, window=60)
        )
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: serve(
                    orch,
                    ServeConfig(port=port, token=token),
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
            )
            try:
                yield WebServer(urls[0], token, orch)
            finally:
                stop.set()


@attrs.define
class Console:
    """What the page said on its console and the errors it threw."""

    errors: list[str] = attrs.field(factory=list)

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console.{message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))


@contextmanager
def browser_page(
    *, width: int = 1280, height: int = 800, color_scheme: str = "light"
) -> Iterator[tuple[Any, Console]]:
    """A fresh chromium page (call from a worker thread) and its console."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=color_scheme
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            console = Console()
            console.attach(page)
            yield page, console
        finally:
            browser.close()


async def in_browser(scenario: Callable[[], None]) -> None:
    """Run a Playwright scenario in a worker thread while the server runs on."""
    with trio.fail_after(120):
        await trio.to_thread.run_sync(scenario)


def skip_without_browser() -> pytest.MarkDecorator:
    reason = browser_missing()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "code-review.vega.yaml"


@asynccontextmanager
async def workflow_server(
    db: Path | None = None, *, llm: ScriptedLLM | None = None
) -> AsyncIterator[WebServer]:
    """A real ``serve`` of examples/code-review.vega.yaml (its ``review`` workflow) with a
    scripted model that approves everything (or ``llm``), for the block; with ``db``, on a
    SQLite store there (what ``vega-trio serve --db`` does)."""
    from vega_trio.dsl import load_file
    from vega_trio.dsl._interpreter import open_runner
    from vega_trio.store import open_store

    document = load_file(EXAMPLE)
    llm = llm or ScriptedLLM.echo("APPROVED ")
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(str(db))) if db else None
        runner = await stack.enter_async_context(open_runner(document, llm=llm, store=store))
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: serve(
                    runner.orchestrator,
                    ServeConfig(port=0),
                    runner=runner,
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
            )
            try:
                yield WebServer(urls[0], None)
            finally:
                stop.set()
