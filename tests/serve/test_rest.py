"""The REST routes over a real Hypercorn server and a real HTTP client (SPEC §10.1)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from vega_trio import Agent
from vega_trio.testing import ScriptedLLM, Step

from ._helpers import (
    collect_events,
    leaving_a_stream_early,
    orchestrator_with_assistant,
    parse_sse,
    running_server,
)


async def test_healthz_and_agents_list_the_registry_with_source_and_live_status() -> None:
    """/healthz is ok; /api/agents lists definitions with source and live processes."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        health = (await srv.client.get("/healthz")).json()
        assert (health["status"], health["closing"], health["alerts"]) == ("ok", False, [])
        await orch.session("assistant", user="7")
        body = (await srv.client.get("/api/agents")).json()
        [agent] = body["agents"]
        assert agent["name"] == "assistant"
        assert agent["source"] == "builtin"
        assert agent["processes"] == {"running": 1}
        one = await srv.client.get("/api/agents/assistant")
        assert one.json()["name"] == "assistant"
        missing = await srv.client.get("/api/agents/nobody")
        assert missing.status_code == 404
        assert missing.json()["error_class"] == "agent_not_found"
        assert missing.json()["request_id"] == missing.headers["X-Request-ID"]


async def test_chat_returns_the_response_and_metrics_and_keeps_per_user_history() -> None:
    """POST /chat gives {response, metrics}; agent:user-id is a session of its own."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        reply = await srv.client.post("/api/agents/assistant/chat", json={"message": "Hello!"})
        assert reply.status_code == 200
        assert reply.json()["response"] == "Hello!"
        assert set(reply.json()["metrics"]) == {
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "duration_ms",
        }
        await srv.client.post("/api/agents/assistant:42/chat", json={"message": "only 42"})
        default = (await srv.client.get("/api/agents/assistant/chat")).json()
        user = (await srv.client.get("/api/agents/assistant:42/chat")).json()
        assert [m["role"] for m in default["messages"]] == ["user", "assistant"]
        assert "only 42" in str(user["messages"]) and "only 42" not in str(default["messages"])
        assert orch.lookup("assistant:42").agent_name == "assistant"
        nobody = (await srv.client.get("/api/agents/assistant:99/chat")).json()
        assert nobody["messages"] == [] and nobody["total"] == 0


async def test_chat_stream_is_exactly_the_section_1_4_sse_format() -> None:
    """POST /chat/stream sends `event: <type>` + `data: {json with type}` and ends with one done."""
    llm = ScriptedLLM(
        [Step.tool_call("echo", {"text": "hi"}, text="Let me "), Step.text("Based on it.")]
    )

    def echo(text: str) -> str:
        """Echo the text."""
        return f"echo: {text}"

    async with orchestrator_with_assistant(llm) as orch:
        orch.agents.define(Agent(name="tooly", tools=[echo]), source="composed")
        async with running_server(orch) as srv:
            async with srv.client.stream(
                "POST", "/api/agents/tooly/chat/stream", json={"message": "go"}
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                with trio.fail_after(10):
                    events = await collect_events(response)
    types = [e.event for e in events]
    assert types[0] == "text_delta"
    assert "tool_start" in types and "tool_end" in types
    assert types[-1] == "done" and types.count("done") == 1
    for event in events:
        assert event.json["type"] == event.event
    start = next(e.json for e in events if e.event == "tool_start")
    assert start["tool_name"] == "echo" and start["arguments"] == {"text": "hi"}
    end = next(e.json for e in events if e.event == "tool_end")
    assert end["result"] == "echo: hi" and end["is_error"] is False
    assert set(events[-1].json["metrics"]) == {
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "duration_ms",
    }


async def test_processes_list_filters_paginates_and_kill() -> None:
    """/api/processes filters and pages; GET one has its conversation; DELETE kills."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        procs = [await orch.spawn(Agent(name=f"worker{i % 2}")) for i in range(5)]
        await procs[0].send("remember me")
        page = (await srv.client.get("/api/processes", params={"limit": 2, "offset": 1})).json()
        assert page["total"] == 5 and page["offset"] == 1 and page["limit"] == 2
        assert [p["id"] for p in page["processes"]] == [procs[1].id, procs[2].id]
        odd = (await srv.client.get("/api/processes", params={"agent": "worker1"})).json()
        assert {p["id"] for p in odd["processes"]} == {procs[1].id, procs[3].id}
        bad = await srv.client.get("/api/processes", params={"status": "sleeping"})
        assert bad.status_code == 422 and bad.json()["fields"][0]["path"] == "status"
        one = (await srv.client.get(f"/api/processes/{procs[0].id}")).json()
        assert "remember me" in str(one["conversation"])
        killed = await srv.client.delete(f"/api/processes/{procs[2].id}")
        assert killed.status_code == 200
        assert killed.json()["status"] == "stopped"
        assert not procs[2].alive
        running = (await srv.client.get("/api/processes", params={"status": "running"})).json()
        assert procs[2].id not in {p["id"] for p in running["processes"]}
        gone = await srv.client.get("/api/processes/nope")
        assert gone.status_code == 404


async def test_processes_page_builds_only_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """GET /api/processes filters and pages the processes first and builds the JSON of
    the requested page only (not of every live process: B10, 10,000 processes)."""
    import vega_trio.serve._app as app_module

    built: list[str] = []
    real = app_module.process_dict

    def counting(proc: Any, **options: Any) -> dict[str, Any]:
        built.append(proc.id)
        return real(proc, **options)

    monkeypatch.setattr(app_module, "process_dict", counting)
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        procs = [await orch.spawn(Agent(name=f"w{i % 3}")) for i in range(60)]
        page = (
            await srv.client.get("/api/processes", params={"agent": "w1", "offset": 2, "limit": 5})
        ).json()
        expected = [p.id for p in procs if p.agent_name == "w1"][2:7]
        assert [p["id"] for p in page["processes"]] == expected
        assert page["total"] == 20
        assert built == expected


async def test_query_routes_answer_json() -> None:
    """stats, spawn-tree, supervision-tree, costs and mcp/servers give the orchestrator's data."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        parent = await orch.spawn(Agent(name="parent"))
        await orch.spawn(Agent(name="child"), parent=parent)
        stats = (await srv.client.get("/api/stats")).json()
        assert stats["live_processes"] == 2
        tree = (await srv.client.get("/api/spawn-tree")).json()["tree"]
        assert tree[0]["agent_name"] == "parent"
        assert tree[0]["children"][0]["agent_name"] == "child"
        assert (await srv.client.get("/api/supervision-tree")).json() == {"supervisors": []}
        assert "total_usd" in (await srv.client.get("/api/costs")).json()
        assert (await srv.client.get("/api/mcp/servers")).json() == {"servers": []}


async def test_delete_chat_clears_a_users_conversation() -> None:
    """DELETE /api/agents/{agent:user}/chat ends that session; the next chat starts afresh."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        url = "/api/agents/assistant:5/chat"
        await srv.client.post(url, json={"message": "first"})
        await srv.client.post("/api/agents/assistant:6/chat", json={"message": "other"})
        cleared = await srv.client.delete(url)
        assert cleared.json() == {"cleared": True}
        assert (await srv.client.get(url)).json()["messages"] == []
        await srv.client.post(url, json={"message": "again"})
        assert "first" not in str((await srv.client.get(url)).json()["messages"])
        other = (await srv.client.get("/api/agents/assistant:6/chat")).json()["messages"]
        assert len(other) == 2
        assert (await srv.client.delete("/api/agents/assistant:7/chat")).json() == {
            "cleared": False
        }


async def test_metrics_count_what_the_server_served() -> None:
    """GET /metrics is Prometheus text counting from the server's start: the session's
    process and its LLM call show up with their labels."""
    from prometheus_client.parser import text_string_to_metric_families

    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        reply = await srv.client.post("/api/agents/assistant:7/chat", json={"message": "hi"})
        assert reply.status_code == 200
        response = await srv.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    calls = [v for (name, _), v in samples.items() if name == "vega_llm_calls_total"]
    assert sum(calls) >= 1, sorted(samples)


async def test_metrics_count_the_servers_event_streams() -> None:
    """/metrics reports the server's own event streams (they read the shared log, not bus
    subscriptions): how many are open, the furthest one's backlog, events lost to lag."""
    from prometheus_client.parser import text_string_to_metric_families

    def values(text: str) -> dict[str, float]:
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        before = values((await srv.client.get("/metrics")).text)
        assert before["vega_server_streams"] == 0
        with trio.fail_after(10), leaving_a_stream_early():
            async with srv.client.stream("GET", "/api/events") as response:
                async with parse_sse(response) as events:
                    async for event in events:
                        if event.comment == "connected":
                            during = values((await srv.client.get("/metrics")).text)
                            break
    assert during["vega_server_streams"] == 1
    assert during["vega_server_stream_backlog_max"] >= 0
    assert during["vega_server_stream_lagged_events_total"] == 0
