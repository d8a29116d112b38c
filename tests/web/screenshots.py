"""Rewrite the dashboard's screenshots in docs/dashboard/ (not a test):

    PYTHONPATH=. python -m tests.web.screenshots

A real ``serve`` with the browser tests' scripted model, a short chat with a tool call,
then each page at 1280x800 (and the chat at phone width, in dark); the launcher and
the costs on examples/code-review.vega.yaml with a store.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from ._browser import browser_page, in_browser, web_server, workflow_server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"


async def main() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    async with web_server(mcp=True) as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/chat/researcher")
                page.fill("#chat-input", "Find out about vega with the tool")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-status=done]")
                page.locator("[data-testid=tool-panel] summary").click()
                page.goto(srv.url + "/#/chat/assistant")
                page.fill("#chat-input", "Say hello in **Markdown**")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-status=done]")
                page.goto(srv.url + "/#/chat/researcher")
                page.wait_for_selector("[data-testid=tool-panel]")
                page.locator("[data-testid=tool-panel] summary").click()
                page.screenshot(path=str(DOCS / "chat.png"))
                page.goto(srv.url + "/#/overview")
                page.wait_for_selector("[data-testid=stats] .stat-value:not(:has-text('…'))")
                page.wait_for_timeout(300)
                page.screenshot(path=str(DOCS / "overview.png"))
                page.goto(srv.url + "/#/processes")
                page.locator("[data-testid=process-table] tbody tr a").first.click()
                page.wait_for_selector("[data-testid=process-detail] .msg")
                page.screenshot(path=str(DOCS / "processes.png"))
                page.goto(srv.url + "/#/spawn-tree")
                page.wait_for_selector("[data-testid=spawn-tree] li")
                page.screenshot(path=str(DOCS / "spawn-tree.png"))
                page.goto(srv.url + "/#/supervision")
                page.wait_for_selector("[data-testid=supervisor]")
                page.screenshot(path=str(DOCS / "supervision.png"))
                page.goto(srv.url + "/#/agents/researcher")
                page.wait_for_selector("[data-testid=agent-yaml]")
                page.screenshot(path=str(DOCS / "agents.png"))
                page.goto(srv.url + "/#/mcp")
                page.wait_for_selector("[data-testid=mcp-server] td code")
                page.screenshot(path=str(DOCS / "mcp.png"))
                page.goto(srv.url + "/#/events")
                page.wait_for_selector("[data-testid=event-table] .event-window [role=row]")
                page.screenshot(path=str(DOCS / "events.png"))
                assert console.errors == [], console.errors
            with browser_page(width=390, height=844, color_scheme="dark") as (page, console):
                page.goto(srv.url + "/#/chat/researcher")
                page.wait_for_selector("[data-testid=tool-panel]")
                page.screenshot(path=str(DOCS / "chat-phone-dark.png"))
                assert console.errors == [], console.errors

        await in_browser(scenario)

    with tempfile.TemporaryDirectory() as tmp, trio.fail_after(120):
        await _launcher_and_costs(Path(tmp) / "vega.db")


async def _launcher_and_costs(db: Path) -> None:
    async with workflow_server(db) as srv:

        def launcher() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/workflows")
                page.fill("#input-task", "Write a binary search function")
                page.click("[data-testid=launcher] button[type=submit]")
                page.wait_for_selector("[data-testid=run-status]:has-text('completed')")
                page.screenshot(path=str(DOCS / "workflows.png"))
                page.goto(srv.url + "/#/costs")
                page.wait_for_selector("[data-testid=cost-chart] canvas")
                page.screenshot(path=str(DOCS / "costs.png"), full_page=True)
                assert console.errors == [], console.errors

        await in_browser(launcher)


if __name__ == "__main__":
    trio.run(main)
