"""The dashboard in a real browser (chromium through Playwright) against a real
``vega-trio serve`` on loopback with a scripted model.

NOTE: waits use locators, never ``page.wait_for_function("…")``: a string predicate that
has to be polled is evaluated with ``new Function``, which the page's CSP (no
``unsafe-eval``) refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest
import trio

from vega_trio.llm import LLMRequest
from vega_trio.testing import ScriptedLLM, Step

from ._browser import (
    TOKEN,
    WebServer,
    browser_page,
    in_browser,
    skip_without_browser,
    web_server,
    workflow_server,
)

pytestmark = [pytest.mark.slow, skip_without_browser()]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"
BUILT = (
    "chat",
    "overview",
    "processes",
    "spawn-tree",
    "supervision",
    "events",
    "agents",
    "mcp",
    "workflows",
    "costs",
)
LATER: tuple[str, ...] = ()  # every page of SPEC §10.5 is built


def _sign_in(page: object, url: str, token: str) -> None:
    page.goto(url + "/")  # type: ignore[attr-defined]
    page.fill("#token", token)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]


async def test_every_page_loads_without_console_errors() -> None:
    """Every page of the navigation (built ones and placeholders) loads signed in with zero
    console errors, at 1280x800 and at phone width, in light and dark."""
    async with web_server(token=TOKEN) as srv:

        def scenario() -> None:
            for width, height, scheme in ((1280, 800, "light"), (390, 844, "dark")):
                with browser_page(width=width, height=height, color_scheme=scheme) as (
                    page,
                    console,
                ):
                    _sign_in(page, srv.url, TOKEN)
                    page.wait_for_selector("nav a[aria-current=page]")
                    page.wait_for_selector("[data-testid=live-status]:has-text('Live')")
                    for name in BUILT + LATER:
                        page.goto(f"{srv.url}/#/{name}")
                        page.wait_for_selector("h1#page-title")
                        if name in LATER:
                            assert page.locator("text=Coming in a later release").is_visible()
                        else:
                            assert page.locator("text=Coming in a later release").count() == 0
                    page.goto(f"{srv.url}/#/overview")
                    page.wait_for_selector("[data-testid=stats] .stat-value:not(:has-text('…'))")
                    page.keyboard.press("Alt+E")  # keyboard: Alt+letter opens a page
                    page.wait_for_url("**/#/events")
                    page.keyboard.press("Tab")  # the first stop skips to the content
                    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
                    assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_sign_in_with_the_token_works_and_a_wrong_token_shows_an_error() -> None:
    """The page loads without the token (the static files need none), asks for it; a wrong
    token is refused with a visible error and no API data; the right one opens the app and
    survives a reload (sessionStorage), and never appears in a URL."""
    async with web_server(token=TOKEN) as srv:

        def scenario() -> None:
            with browser_page() as (page, _console):
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                page.goto(srv.url + "/")
                page.wait_for_selector("#token")
                page.fill("#token", "wrong-token")
                page.click("button[type=submit]")
                error = page.locator("#signin-error")
                error.wait_for()
                page.locator("#signin-error:has-text('Wrong token')").wait_for()
                assert page.locator("nav").count() == 0
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                page.wait_for_selector("nav a[aria-current=page]")
                page.wait_for_selector("[data-testid=live-status]:has-text('Live')")
                page.reload()
                page.wait_for_selector("nav a[aria-current=page]")  # no second sign-in
                assert page.locator("#token").count() == 0
                assert not [url for url in requested if TOKEN in url or "wrong-token" in url]

        await in_browser(scenario)


async def test_chat_streams_token_by_token_and_shows_the_tool_panel() -> None:
    """A reply appears word by word while it streams (several partial texts are seen before
    the end), and a tool call is a collapsible panel with its arguments and result."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/chat/assistant")
                page.fill("#chat-input", "stream these seven words one by one")
                page.keyboard.press("Enter")
                reply = page.locator("[data-testid=assistant-reply]").last
                seen: list[str] = []
                while page.locator("[data-status=done]").count() == 0:
                    text = reply.text_content() or ""
                    if text and (not seen or seen[-1] != text):
                        seen.append(text)
                    page.wait_for_timeout(20)
                final = reply.text_content() or ""
                assert "You said: stream these seven words one by one" in final
                partial = [t for t in seen if "You said" in t and "one by one" not in t]
                assert len(partial) >= 3, seen

                page.select_option("[data-testid=agent-picker]", "researcher")
                page.wait_for_url("**/#/chat/researcher")
                page.fill("#chat-input", "use the tool please")
                page.click("button[type=submit]")
                page.wait_for_selector("[data-status=done]")
                panel = page.locator("[data-testid=tool-panel]")
                assert panel.count() == 1
                assert not panel.locator(".tool-result").is_visible()  # collapsed
                panel.locator("summary").click()
                assert panel.locator(".tool-args").text_content().strip().startswith("{")
                assert '"query": "vega"' in panel.locator(".tool-args").text_content()
                assert panel.locator(".tool-result").text_content() == "vega: 42 results"
                assert re.search(r"\d+ ms", panel.locator("summary").text_content())
                assert page.locator("[data-status=done] strong:has-text('42')").count() == 1
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_a_reload_reattaches_to_the_running_reply_and_stop_cancels() -> None:
    """Reloading while a reply streams re-attaches to it (GET …/chat/stream replays it
    from its start and follows it live, shown once); Stop cancels a reply."""
    async with web_server(token=TOKEN) as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                _sign_in(page, srv.url, TOKEN)
                page.goto(srv.url + "/#/chat/assistant")
                page.fill("#chat-input", "a slow one")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-testid=assistant-reply]:has-text('word3')")
                page.reload()
                page.wait_for_selector("[data-testid=stop]")  # streaming again
                page.wait_for_selector("[data-testid=assistant-reply]:has-text('word0')")
                page.wait_for_selector("[data-status=done]", timeout=30_000)
                replies = page.locator("[data-testid=assistant-reply]")
                assert replies.count() == 1
                text = replies.first.text_content() or ""
                assert text.count("word0 ") == 1 and "word39" in text
                assert page.locator(".msg-user").count() == 1

                page.fill("#chat-input", "another slow one")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-testid=assistant-reply] >> nth=1 >> text=word2")
                page.click("[data-testid=stop]")
                page.wait_for_selector("[data-status=cancelled]:has-text('Stopped.')")
                assert "word39" not in (replies.nth(1).text_content() or "")
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_html_and_javascript_in_a_model_reply_render_inert() -> None:
    """A reply carrying <script>, <img onerror>, inline event handlers and javascript:
    links shows them as text: no script runs, no element or link is made from them, while
    the Markdown around them still renders."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/chat/assistant")
                page.fill("#chat-input", "html please")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-status=done]")
                reply = page.locator("[data-testid=assistant-reply]").last
                page.wait_for_timeout(300)  # an onerror would have fired by now
                assert page.evaluate("window.__pwned") is None
                assert reply.locator("img, script, b, iframe").count() == 0
                assert reply.locator("a[href^='javascript']").count() == 0
                assert reply.locator("[onerror], [onmouseover]").count() == 0
                assert reply.locator("strong:has-text('bold')").count() == 1
                text = reply.text_content() or ""
                assert "<script>window.__pwned = 2</script>" in text
                assert '<img src=x onerror="window.__pwned = 1">' in text
                reply.locator("text=stays text").hover()
                assert page.evaluate("window.__pwned") is None
                # A reload renders the same text from the stored history, inert too.
                page.reload()
                page.wait_for_selector("[data-testid=assistant-reply]:has-text('stays text')")
                assert page.evaluate("window.__pwned") is None
                assert page.locator("[data-testid=assistant-reply] img").count() == 0
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_the_process_explorer_shows_a_conversation_and_kills_a_process() -> None:
    """A chat's session process is in the explorer (filterable by agent, sortable); its
    detail shows the conversation; Kill stops it and the table and detail show it stopped."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.on("dialog", lambda dialog: dialog.accept())
                page.goto(srv.url + "/#/chat/researcher")
                page.fill("#chat-input", "hello explorer")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-status=done]")
                page.goto(srv.url + "/#/processes")
                table = page.locator("[data-testid=process-table]")
                table.wait_for()
                page.select_option("[data-testid=filter-agent]", "researcher")
                others = table.locator("tbody tr:not(:has-text('researcher'))")
                others.first.wait_for(state="detached")
                page.click("th button:has-text('Agent')")
                assert table.locator("th[aria-sort=ascending]").count() == 1
                table.locator("tbody tr a").first.click()
                detail = page.locator("[data-testid=process-detail]")
                detail.locator("text=You said: hello explorer").wait_for()
                detail.locator("[data-testid=kill]").click()
                detail.locator(
                    "[data-testid=detail-status] .badge:not(:has-text('running'))"
                ).wait_for()
                # Live in the table too: no longer listed as running (without a store a
                # finished process leaves the list).
                page.locator(
                    "[data-testid=process-table] tbody .badge:has-text('running')"
                ).first.wait_for(state="detached")
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_an_unreachable_server_shows_a_banner_and_the_page_reconnects_by_itself() -> None:
    """When the server goes away the page says so (banner, badge Offline) and keeps trying;
    when a server is back on the address it reconnects without a reload (badge Live, no
    banner) and events flow again."""
    live_once, banner_seen, finished = trio.Event(), trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        async with web_server() as first:
            url = first.url

            def scenario() -> None:
                try:
                    with browser_page() as (page, _console):
                        page.goto(url + "/#/events")
                        page.wait_for_selector("[data-testid=live-status]:has-text('Live')")
                        trio.from_thread.run_sync(live_once.set)
                        page.wait_for_selector(".banner:has-text('Server unreachable')")
                        assert page.locator("[data-testid=live-status]").text_content() == "Offline"
                        trio.from_thread.run_sync(banner_seen.set)
                        page.wait_for_selector(
                            "[data-testid=live-status]:has-text('Live')", timeout=30_000
                        )
                        assert page.locator(".banner").count() == 0
                        page.goto(url + "/#/chat/assistant")
                        page.fill("#chat-input", "after the restart")
                        page.keyboard.press("Enter")
                        page.wait_for_selector("[data-status=done]")
                        page.goto(url + "/#/events")
                        page.wait_for_selector(
                            "[data-testid=event-table] [role=cell]:has-text('llm.call')"
                        )
                finally:
                    trio.from_thread.run_sync(finished.set)

            nursery.start_soon(in_browser, scenario)
            with trio.fail_after(60):
                await live_once.wait()
        # The first server has stopped; a new one comes back on the same address.
        with trio.fail_after(60):
            await banner_seen.wait()
        async with web_server(port=int(url.rsplit(":", 1)[1])):
            with trio.fail_after(90):
                await finished.wait()


async def test_the_chat_history_is_loaded_from_the_server_page_by_page() -> None:
    """Opening a chat shows the latest 50 messages of the stored conversation (tool panels
    included) and "Load earlier messages" brings the rest, oldest first."""
    async with web_server() as srv:
        async with httpx2.AsyncClient(base_url=srv.url, timeout=httpx2.Timeout(30)) as client:
            for number in range(28):  # 56 messages
                answer = await client.post(
                    "/api/agents/assistant/chat", json={"message": f"message {number}"}
                )
                assert answer.status_code == 200

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/chat/assistant")
                button = page.locator("button:has-text('Load earlier messages (6)')")
                button.wait_for()
                users = page.locator(".msg-user .bubble")
                assert users.count() == 25
                assert users.first.text_content() == "message 3"
                assert users.last.text_content() == "message 27"
                assert (
                    page.locator(".msg-assistant")
                    .last.text_content()
                    .endswith("You said: message 27")
                )
                button.click()
                page.locator(".msg-user").nth(27).wait_for()
                assert page.locator(".msg-user").count() == 28
                assert users.first.text_content() == "message 0"
                assert page.locator("button:has-text('Load earlier')").count() == 0
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_killing_a_process_in_the_explorer_updates_the_supervision_tree_live() -> None:
    """With the Supervision Tree open in another tab, killing the supervised worker in the
    Process Explorer shows its restart there without a reload (restarts: 1, a new process
    id); the Spawn Tree lists the live processes."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.on("dialog", lambda dialog: dialog.accept())
                tree = page.context.new_page()
                tree.goto(srv.url + "/#/supervision")
                child = tree.locator("[data-testid=supervised-child]")
                child.locator("text=restarts: 0").wait_for()
                first = child.locator("a code").text_content()
                assert tree.locator("[data-testid=supervisor]:has-text('workers')").count() == 1

                page.goto(srv.url + "/#/processes")
                page.locator(f"[data-testid=process-table] a:has-text('{first}')").click()
                page.locator("[data-testid=kill]").click()
                page.locator(
                    "[data-testid=detail-status] .badge:not(:has-text('running'))"
                ).wait_for()

                child.locator("text=restarts: 1").wait_for()  # live, no reload
                assert child.locator("a code").text_content() != first
                page.goto(srv.url + "/#/spawn-tree")
                page.locator("[data-testid=spawn-tree] >> text=worker").first.wait_for()
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_the_mcp_page_shows_a_server_its_status_and_tools() -> None:
    """A configured MCP server (the test suite's echo server, a real subprocess) is listed
    with its status, transport and its tools."""
    async with web_server(mcp=True) as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/mcp")
                server = page.locator("[data-testid=mcp-server]")
                server.wait_for()
                assert server.locator("h2").text_content() == "echo"
                server.locator("td code:has-text('echo__')").first.wait_for()
                assert server.locator("[data-testid=mcp-error]").count() == 0
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_the_agent_registry_creates_edits_and_deletes_a_composed_agent() -> None:
    """Import an agents: section → the agent is listed as composed; an invalid one shows
    the validator's field paths; editing its JSON definition saves revision 2; Delete
    removes it; a builtin agent offers no edit or delete."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.on("dialog", lambda dialog: dialog.accept())
                page.goto(srv.url + "/#/agents")
                table = page.locator("[data-testid=agent-table]")
                table.wait_for()
                page.fill("[data-testid=import-yaml]", "agents:\n  bad:\n    temperature: hot\n")
                page.click("button:has-text('Create')")
                problem = page.locator("[data-testid=agent-error]")
                problem.wait_for()
                assert "temperature" in (problem.text_content() or "")
                page.fill(
                    "[data-testid=import-yaml]",
                    "agents:\n  summarizer:\n    system: Summarize.\n    temperature: 0.2\n",
                )
                page.click("button:has-text('Create')")
                page.locator("text=Created summarizer.").wait_for()
                row = table.locator("tr:has-text('summarizer')")
                assert row.locator(".badge").text_content() == "composed"
                row.locator("a").click()
                detail = page.locator("[data-testid=agent-detail]")
                detail.locator("[data-testid=agent-yaml]:has-text('Summarize.')").wait_for()
                draft = detail.locator("[data-testid=agent-json]")
                draft.fill(draft.input_value().replace("Summarize.", "Summarize briefly."))
                detail.locator("button:has-text('Save')").click()
                detail.locator("text=Saved: revision 2.").wait_for()
                detail.locator("[data-testid=agent-yaml]:has-text('Summarize briefly.')").wait_for()
                detail.locator("[data-testid=delete-agent]").click()
                page.wait_for_url("**/#/agents")
                table.locator("tr:has-text('summarizer')").first.wait_for(state="detached")
                page.goto(srv.url + "/#/agents/assistant")
                page.locator("[data-testid=agent-yaml]").wait_for()
                assert (
                    page.locator("[data-testid=delete-agent], [data-testid=agent-json]").count()
                    == 0
                )
                assert [e for e in console.errors if "422" not in e] == [], console.errors

        await in_browser(scenario)


async def test_the_launcher_runs_a_workflow_from_its_generated_form_and_shows_each_step() -> None:
    """The review workflow's form is generated from its inputs (a required text, an enum
    select with its default); running it shows the run's steps as they complete, its
    status and its result."""
    async with workflow_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/workflows")
                form = page.locator("[data-testid=launcher]")
                form.wait_for()
                assert form.locator("h2").text_content() == "review"
                language = form.locator("select#input-language")
                assert language.input_value() == "Python"
                options = language.locator("option").all_text_contents()
                assert options == ["Python", "Go", "Rust"]
                assert form.locator("label[for=input-task] [aria-label=required]").count() == 1
                form.locator("#input-task").fill("Write a binary search")
                language.select_option("Go")
                form.locator("button[type=submit]").click()
                page.wait_for_url("**/#/workflows/review-*")
                run = page.locator("[data-testid=run]")
                run.locator("[data-testid=run-status]:has-text('completed')").wait_for()
                steps = run.locator("[data-testid=steps] li")
                assert steps.count() >= 2
                assert "coder" in (steps.nth(0).text_content() or "")
                assert "reviewer" in (steps.nth(1).text_content() or "")
                assert all("completed" in t for t in steps.all_text_contents()[:2])
                output = run.locator("[data-testid=run-output]").text_content() or ""
                assert "APPROVED" in output
                page.locator("[data-testid=runs] a").first.wait_for()
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_costs_appear_on_the_cost_page_per_agent_model_and_run_with_a_chart(
    tmp_path: Path,
) -> None:
    """After a workflow run on a server with a store, the cost page shows the total, the
    live per-agent costs, the stored costs per agent, model and run, and a uPlot chart of
    cost over time; it loads with no console errors."""
    async with workflow_server(tmp_path / "vega.db") as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/costs")
                page.locator("[data-testid=cost-total]").wait_for()
                assert page.locator("[data-testid=cost-total]").text_content() == "$0"
                page.goto(srv.url + "/#/workflows")
                page.fill("#input-task", "Write a sort function")
                page.click("[data-testid=launcher] button[type=submit]")
                page.locator("[data-testid=run-status]:has-text('completed')").wait_for()
                page.goto(srv.url + "/#/costs")
                by_agent = page.locator("[data-testid=costs-by-agent]")
                by_agent.locator("td:has-text('coder')").wait_for()
                total = page.locator("[data-testid=cost-total]").text_content() or ""
                assert total.startswith("$0.0") and total != "$0", total
                for agent in ("coder", "reviewer"):
                    by_agent.locator(f"td:has-text('{agent}')").wait_for()
                by_model = page.locator("[data-testid=costs-by-model]")
                assert by_model.locator("td:has-text('claude-sonnet-4-20250514')").count() == 1
                page.locator("[data-testid=costs-by-run_id] a:has-text('review-')").wait_for()
                page.locator("[data-testid=cost-chart] canvas").wait_for()
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_a_delegates_activity_is_nested_under_the_delegating_call() -> None:
    """When the lead delegates, the researcher's own tool call and text appear inside the
    lead's `delegate` panel (not in the lead's reply), and the lead's answer follows."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/chat/lead")
                page.fill("#chat-input", "please delegate this")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-status=done]")
                reply = page.locator("[data-testid=assistant-reply]").last
                outer = reply.locator(":scope > [data-testid=tool-panel]")
                assert outer.count() == 1
                assert "delegate" in (outer.locator("summary").first.text_content() or "")
                outer.locator("summary").first.click()
                nested = outer.locator(".delegated [data-testid=tool-panel]")
                assert nested.count() == 1
                assert "researcher → lookup" in (nested.locator("summary").text_content() or "")
                assert "The lookup says" in (outer.locator(".delegated").text_content() or "")
                assert "researcher:" in (outer.locator(".delegated").text_content() or "")
                assert console.errors == [], console.errors

        await in_browser(scenario)


def _emit_requests(srv: WebServer, count: int, offset: int = 0) -> list[int]:
    """Emit ``count`` ``request.started`` events on the served bus (agents ``agent-0`` to
    ``agent-19``); their sequence numbers."""
    from vega_trio.runtime._events import RequestStarted

    def emit() -> list[int]:
        seqs = []
        for number in range(offset, offset + count):
            event = srv.orchestrator.events.emit(
                RequestStarted, process_id=f"bench-{number % 97}", agent=f"agent-{number % 20}"
            )
            assert event is not None
            seqs.append(event.seq)
        return seqs

    return trio.from_thread.run_sync(emit)


async def test_the_event_stream_draws_only_the_rows_in_view_and_filters_and_pauses() -> None:
    """With 3,000 events on the page the DOM stays small (only the rows in view are drawn,
    recycled), yet every kept event is reachable by scrolling, down to the oldest; a type
    and agent filter narrows the list; Pause holds it still and counts what arrives; a
    row's details show its JSON."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/events")
                page.wait_for_selector("[data-testid=live-status]:has-text('Live')")
                seqs = _emit_requests(srv, 3000)
                rows = page.locator("[data-testid=event-table] .event-window [role=row]:visible")
                rows.first.locator(f"[role=cell]:text-is('{seqs[-1]}')").wait_for()
                elements = page.evaluate("() => document.getElementsByTagName('*').length")
                drawn = rows.count()
                assert drawn < 60, drawn  # 800 px of 28 px rows, plus a few
                assert elements < 800, elements
                # Scrolled to the bottom: the oldest event is there, drawn in the same rows.
                page.locator("[data-testid=event-viewport]").evaluate(
                    "(el) => { el.scrollTop = el.scrollHeight; }"
                )
                rows.locator(f".ec-seq:text-is('{seqs[0]}')").wait_for()
                assert rows.count() <= drawn
                page.locator("[data-testid=event-viewport]").evaluate(
                    "(el) => { el.scrollTop = 0; }"
                )
                # Filters: only agent-3's request.started events (150 of the 3,000).
                page.fill("[data-testid=filter-type]", "request.started")
                page.fill("[data-testid=filter-agent]", "agent-3")
                counts = page.locator("[data-testid=event-counts]")
                counts.locator("text=/· 150 matching of/").wait_for()
                agents = rows.locator(".ec-agent").all_text_contents()
                assert agents and set(agents) == {"agent-3"}, agents
                # Fewer matches than rows in view: only they are shown, no empty rows.
                page.fill("[data-testid=filter-process]", "bench-3")
                few = [n for n in range(3000) if n % 20 == 3 and "bench-3" in f"bench-{n % 97}"]
                counts.locator(f"text=/· {len(few)} matching of/").wait_for()
                assert rows.count() == len(few), (rows.count(), len(few))
                page.fill("[data-testid=filter-process]", "")
                counts.locator("text=/· 150 matching of/").wait_for()
                # Pause: the list holds still; what arrives is counted.
                page.click("[data-testid=pause]")
                newest = rows.first.locator(".ec-seq").text_content()
                more = _emit_requests(srv, 40, offset=3000)
                counts.locator("text=/paused, 40 new/").wait_for()
                assert rows.first.locator(".ec-seq").text_content() == newest
                page.click("[data-testid=pause]")
                rows.first.locator(f"[role=cell]:text-is('{more[-17]}')").wait_for()
                # Details: the row's event as JSON.
                rows.first.locator("button").click()
                detail = page.locator("[data-testid=event-detail]")
                assert f'"seq": {more[-17]}' in (detail.text_content() or "")
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_a_second_tab_follows_the_reply_running_in_the_first() -> None:
    """A reply started in one tab streams into a second tab that opens the same session
    (the history names it in flight; the tab attaches and replays it from its start), shown
    once, under its user message; Stop in the second tab cancels it for both."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/chat/assistant")
                page.fill("#chat-input", "a slow one")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-testid=assistant-reply]:has-text('word2')")
                other = page.context.new_page()  # its own sessionStorage: a new tab
                console.attach(other)
                other.goto(srv.url + "/#/chat/assistant")
                other.wait_for_selector("[data-testid=stop]")  # streaming there too
                reply = other.locator("[data-testid=assistant-reply]")
                reply.locator("text=/word0 word1 word2 word3/").wait_for()
                reply.locator("text=word5").wait_for()  # live, not only the replay
                assert other.locator("[data-status=streaming]").count() == 1
                page.wait_for_selector("[data-status=done]", timeout=30_000)
                other.wait_for_selector("[data-status=done]", timeout=30_000)
                assert reply.count() == 1
                text = reply.first.text_content() or ""
                assert text.count("word0 ") == 1 and "word39" in text
                assert other.locator(".msg-user .bubble").all_text_contents() == ["a slow one"]

                page.fill("#chat-input", "another slow one")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-testid=assistant-reply] >> nth=1 >> text=word1")
                other.reload()
                other.locator("[data-testid=stop]").click()
                other.wait_for_selector("[data-status=cancelled]:has-text('Stopped.')")
                page.wait_for_selector("[data-status=cancelled]:has-text('Stopped.')")
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_chat_goes_over_the_websocket_with_the_token_as_a_subprotocol() -> None:
    """Signed in, a chat message is sent and its reply streamed over `/api/ws` (op `chat`,
    `chat` messages back), not over SSE; Stop sends the socket's `cancel`; the socket's
    URL carries no token."""
    async with web_server(token=TOKEN) as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                sockets: list[str] = []
                sent: list[str] = []
                received: list[str] = []

                def on_socket(ws: object) -> None:
                    sockets.append(ws.url)  # type: ignore[attr-defined]
                    ws.on("framesent", lambda payload: sent.append(str(payload)))  # type: ignore[attr-defined]
                    ws.on("framereceived", lambda payload: received.append(str(payload)))  # type: ignore[attr-defined]

                page.on("websocket", on_socket)
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                _sign_in(page, srv.url, TOKEN)
                page.goto(srv.url + "/#/chat/assistant")
                page.fill("#chat-input", "over the socket")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-status=done]")
                text = page.locator("[data-testid=assistant-reply]").last.text_content() or ""
                assert "You said: over the socket" in text
                assert page.locator("[data-testid=chat-log][data-transport=ws]").count() == 1
                assert [url for url in sockets if url.endswith("/api/ws")], sockets
                assert not [url for url in sockets + requested if TOKEN in url]
                assert not [url for url in requested if "/chat/stream" in url], requested
                chats = [json.loads(f) for f in sent if '"op":"chat"' in f.replace(" ", "")]
                assert chats and chats[0]["message"] == "over the socket", sent
                assert any('"kind":"chat"' in f and "text_delta" in f for f in received)

                page.fill("#chat-input", "a slow one")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-testid=assistant-reply] >> nth=1 >> text=word1")
                page.click("[data-testid=stop]")
                page.wait_for_selector("[data-status=cancelled]:has-text('Stopped.')")
                assert [f for f in sent if '"op":"cancel"' in f.replace(" ", "")], sent
                assert not [url for url in requested if "/chat/stream" in url], requested
                assert console.errors == [], console.errors

        await in_browser(scenario)


async def test_chat_falls_back_to_sse_when_the_websocket_cannot_connect() -> None:
    """When `/api/ws` closes before the server's hello (a proxy without WebSockets), the
    message goes over POST …/chat/stream and streams as before."""
    async with web_server() as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.route_web_socket("**/api/ws", lambda ws: ws.close())
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                page.goto(srv.url + "/#/chat/assistant")
                page.fill("#chat-input", "without a socket")
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-status=done]")
                text = page.locator("[data-testid=assistant-reply]").last.text_content() or ""
                assert "You said: without a socket" in text
                assert page.locator("[data-testid=chat-log][data-transport=sse]").count() == 1
                assert [url for url in requested if url.endswith("/chat/stream")], requested
                assert console.errors == [], console.errors

        await in_browser(scenario)


def _reviewer(held: set[str]) -> ScriptedLLM:
    """The launcher tests' model: approves everything; while ``held`` has "review", the
    reviewer's answer takes an hour (a run stays on its second step)."""

    def respond(request: LLMRequest) -> Step:
        said = _said(request)
        delay = 3600.0 if "review" in held and said.startswith("Review this") else 0.0
        return Step.text("APPROVED " + said, delay=delay)

    return ScriptedLLM(responder=respond)


async def test_the_launcher_cancels_a_running_run_and_resumes_it_to_the_end(
    tmp_path: Path,
) -> None:
    """Cancel on a running run (its reviewer step in flight) makes it `cancelled`, with
    Resume offered; Resume continues it from its checkpoint (the coder's step is reused,
    not run again) to `completed` with its result."""
    held = {"review"}
    llm = _reviewer(held)
    async with workflow_server(tmp_path / "vega.db", llm=llm) as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(srv.url + "/#/workflows")
                page.fill("#input-task", "Write a stack")
                page.click("[data-testid=launcher] button[type=submit]")
                run = page.locator("[data-testid=run]")
                run.locator(
                    "[data-testid=steps] li:has-text('reviewer'):has-text('running')"
                ).wait_for()
                assert run.locator("[data-testid=resume]").count() == 0
                run.locator("button:has-text('Cancel')").click()
                run.locator("[data-testid=run-status]:has-text('cancelled')").wait_for()
                assert run.locator("button:has-text('Cancel')").count() == 0
                held.clear()
                run.locator("[data-testid=resume]").click()
                run.locator("[data-testid=run-status]:has-text('completed')").wait_for()
                assert "resumed 1\u00d7" in (run.text_content() or "")
                steps = run.locator("[data-testid=steps] li").all_text_contents()
                assert any("coder" in s and "reused" in s for s in steps), steps
                assert "APPROVED" in (run.locator("[data-testid=run-output]").text_content() or "")
                assert console.errors == [], console.errors

        await in_browser(scenario)
    coder = [r for r in llm.requests if _said(r).startswith("Task (")]
    assert len(coder) == 1  # resumed from the checkpoint: the coder was not asked again


async def test_the_launcher_resumes_a_run_a_stopped_server_left_interrupted(
    tmp_path: Path,
) -> None:
    """A run still going when its server stopped is `interrupted` on the next server on the
    same store; its page offers Resume, and the run finishes there."""
    db = tmp_path / "vega.db"
    held = {"review"}
    async with workflow_server(db, llm=_reviewer(held)) as srv:
        async with httpx2.AsyncClient(base_url=srv.url, timeout=httpx2.Timeout(30)) as client:
            started = await client.post("/api/workflows/review/run", json={"task": "Sort"})
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            with trio.fail_after(30):
                while True:
                    run = (await client.get(f"/api/workflows/runs/{run_id}")).json()
                    if any(s["agent"] == "reviewer" for s in run["steps"]):
                        break
                    await trio.sleep(0.05)
    held.clear()
    async with workflow_server(db, llm=_reviewer(held)) as srv:

        def scenario() -> None:
            with browser_page() as (page, console):
                page.goto(f"{srv.url}/#/workflows/{run_id}")
                run = page.locator("[data-testid=run]")
                run.locator("[data-testid=run-status]:has-text('interrupted')").wait_for()
                runs = page.locator("[data-testid=runs]")
                runs.locator(f"tr:has-text('{run_id}'):has-text('interrupted')").wait_for()
                run.locator("[data-testid=resume]").click()
                run.locator("[data-testid=run-status]:has-text('completed')").wait_for()
                assert "APPROVED" in (run.locator("[data-testid=run-output]").text_content() or "")
                runs.locator(f"tr:has-text('{run_id}'):has-text('completed')").wait_for()
                assert console.errors == [], console.errors

        await in_browser(scenario)


def _said(request: LLMRequest) -> str:
    return next((m.text for m in reversed(request.messages) if m.role == "user"), "")
