"""The meta-agents over a real server (SPEC §6) with scripted models: Mother builds a
team that answers through REST and survives a restart on the same store; Hermes routes
the seed's competitive-analysis flow with every step visible as events and as nested
activity in the chat stream; the reserved names are refused over REST (403)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from vega_trio import Agent, Orchestrator, add_meta_agents, open_orchestrator
from vega_trio.runtime import Subscription
from vega_trio.store import open_store
from vega_trio.testing import ScriptedLLM

from ..team.test_meta_agents import by_role, call, of, results
from ._helpers import Running, collect_events, running_server


def search(query: str) -> str:
    """Search the web.

    Args:
        query: what to search for.
    """
    return f"results for {query}"


@asynccontextmanager
async def meta_server(
    llm: ScriptedLLM, tmp_path: Path, *, store: Any = None, meta: bool = True
) -> AsyncIterator[Running]:
    """A server with a builtin ``assistant``, the tool ``search`` and (by default) the
    meta-agents."""
    async with open_orchestrator(llm=llm, tools=[search], store=store) as orch:
        orch.agents.define(Agent(name="assistant", system="assistant"), source="builtin")
        if meta:
            add_meta_agents(orch, blueprints=tmp_path / "blueprints")
        async with running_server(orch) as srv:
            yield srv


def sources(agents: list[dict[str, Any]]) -> dict[str, str]:
    return {a["name"]: a["source"] for a in agents}


@pytest.mark.slow
async def test_mother_builds_a_team_that_answers_over_rest_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    """Mother's agents are composed, stored, served, and back after a restart."""
    llm = by_role(
        {
            "mother": [
                call(
                    "create_agent",
                    name="researcher",
                    system="researcher",
                    description="finds facts on the web",
                    tools=["search"],
                ),
                call("create_agent", name="writer", system="writer", tools=[]),
                call(
                    "create_agent",
                    name="lead",
                    system="lead",
                    description="answers with the team",
                    team=["researcher", "writer"],
                ),
                "Team ready: talk to lead.",
            ],
            "lead": [
                call("delegate", agent="researcher", message="Find facts on Trio."),
                call("delegate", agent="writer", message="Write up: Trio is structured."),
                "Report: Trio is structured.",
                call("delegate", agent="researcher", message="And AnyIO?"),
                "AnyIO runs on Trio.",
            ],
            "researcher": [
                call("search", query="Trio"),
                "Trio is structured.",
                "AnyIO runs on Trio.",
            ],
            "writer": ["Trio is structured, in prose."],
        }
    )
    db = tmp_path / "serve.db"
    async with open_store(str(db)) as store, meta_server(llm, tmp_path, store=store) as srv:
        reply = await srv.client.post(
            "/api/agents/mother/chat", json={"message": "Build a research team"}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["response"] == "Team ready: talk to lead."
        listed = (await srv.client.get("/api/agents")).json()["agents"]
        assert sources(listed) == {
            "assistant": "builtin",
            "mother": "builtin",
            "hermes": "builtin",
            "researcher": "composed",
            "writer": "composed",
            "lead": "composed",
        }
        answer = await srv.client.post("/api/agents/lead/chat", json={"message": "Trio?"})
        assert answer.json()["response"] == "Report: Trio is structured."
    assert [t.name for t in of(llm, "researcher")[0].tools] == ["search"]
    assert of(llm, "writer")[0].tools == ()  # an empty list is no tools, not every tool

    async with open_store(str(db)) as store, meta_server(llm, tmp_path, store=store) as srv:
        listed = (await srv.client.get("/api/agents")).json()["agents"]
        assert sources(listed)["lead"] == "composed"
        writer = (await srv.client.get("/api/agents/writer")).json()
        assert writer["tools"] == []
        answer = await srv.client.post("/api/agents/lead/chat", json={"message": "AnyIO?"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"] == "AnyIO runs on Trio."
        for method in ("PUT", "DELETE"):
            refused = await srv.client.request(
                method, "/api/agents/mother", json={"system": "x"} if method == "PUT" else None
            )
            assert refused.status_code == 403
    # the lead's conversation went on across the restart
    assert [m.text for m in of(llm, "lead")[-2].messages][:1] == ["Trio?"]


@pytest.mark.parametrize("meta", [True, False])
async def test_the_reserved_names_are_refused_over_rest(tmp_path: Path, meta: bool) -> None:
    """POST, PUT, DELETE and import of mother/hermes: 403, with or without them defined."""
    async with meta_server(ScriptedLLM.echo(), tmp_path, meta=meta) as srv:
        client = srv.client
        attempts = [
            await client.post("/api/agents", json={"name": "mother", "system": "x"}),
            await client.post("/api/agents", json={"name": "hermes", "system": "x"}),
            await client.put("/api/agents/mother", json={"system": "x"}),
            await client.put("/api/agents/hermes", json={"system": "x"}),
            await client.delete("/api/agents/mother"),
            await client.delete("/api/agents/hermes"),
            await client.post("/api/agents/import", json={"agents": {"hermes": {"system": "x"}}}),
            await client.post(
                "/api/agents/import", json={"yaml": "agents:\n  mother:\n    system: x\n"}
            ),
        ]
        assert [r.status_code for r in attempts] == [403] * len(attempts)
        assert {r.json()["error_class"] for r in attempts} == {"protected_agent"}
        names = [a["name"] for a in (await client.get("/api/agents")).json()["agents"]]
        assert names == (["assistant", "mother", "hermes"] if meta else ["assistant"])
        if meta:
            mother = srv.orch.agents.get("mother")
            assert (mother.source, mother.revision) == ("builtin", 1)


def competitive_analysis() -> ScriptedLLM:
    """The seed's flow: Hermes lists agents, asks Mother for a researcher and a writer,
    sends research to the researcher three times and the write-up to the writer."""
    return by_role(
        {
            "hermes": [
                call("list_agents"),
                call(
                    "send_to_agent",
                    agent="mother",
                    message="Create a web researcher agent and a writer agent.",
                ),
                call("send_to_agent", agent="researcher", message="Research competitor A."),
                call("send_to_agent", agent="researcher", message="Research competitor B."),
                call("send_to_agent", agent="researcher", message="Research competitor C."),
                call(
                    "send_to_agent",
                    agent="writer",
                    message="Write up: A leads, B challenges, C is niche.",
                ),
                "Competitive analysis: A leads, B challenges, C is niche (polished).",
            ],
            "mother": [
                call(
                    "create_agent",
                    name="researcher",
                    system="researcher",
                    description="researches companies on the web",
                    tools=["search"],
                ),
                call(
                    "create_agent",
                    name="writer",
                    system="writer",
                    description="writes clear reports",
                    tools=[],
                ),
                "Created researcher and writer.",
            ],
            "researcher": [
                call("search", query="competitor A"),
                "A leads the market.",
                "B is the challenger.",
                "C serves a niche.",
            ],
            "writer": ["Report: A leads, B challenges, C is niche."],
        }
    )


@pytest.mark.slow
async def test_hermes_routes_the_competitive_analysis_with_every_step_visible(
    tmp_path: Path,
) -> None:
    """The seed's Hermes flow over the chat stream: nested activity per agent, events on
    the bus, children in the spawn tree, the synthesis as the reply."""
    llm = competitive_analysis()
    async with meta_server(llm, tmp_path) as srv:
        orch: Orchestrator = srv.orch
        with orch.subscribe(types=["tool.*", "agent.*", "process.started"]) as bus:
            async with srv.client.stream(
                "POST",
                "/api/agents/hermes/chat/stream",
                json={"message": "Do a competitive analysis of our top 3 competitors"},
            ) as response:
                assert response.status_code == 200
                events = await collect_events(response)
            tree = (await srv.client.get("/api/spawn-tree")).json()["tree"]
            history = drain(bus)
    data = [e.json for e in events]
    assert data[-1]["type"] == "done"
    final = "".join(d["delta"] for d in data if d["type"] == "text_delta" and "agent" not in d)
    assert final == "Competitive analysis: A leads, B challenges, C is niche (polished)."
    own = [d["tool_name"] for d in data if d["type"] == "tool_start" and "agent" not in d]
    assert own == ["list_agents"] + ["send_to_agent"] * 5
    nested = [
        (d["agent"], d["tool_name"]) for d in data if d["type"] == "tool_start" and "agent" in d
    ]
    assert nested == [
        ("mother", "create_agent"),
        ("mother", "create_agent"),
        ("researcher", "search"),
    ]
    nested_text = {d["agent"] for d in data if d["type"] == "text_delta" and "agent" in d}
    assert nested_text == {"mother", "researcher", "writer"}

    kinds = [(e.type, getattr(e, "tool", None) or getattr(e, "agent", None)) for e in history]
    assert ("agent.created", "researcher") in kinds and ("agent.created", "writer") in kinds
    assert kinds.index(("agent.created", "writer")) < kinds.index(("tool.start", "search"))
    started = [e for e in history if e.type == "process.started"]
    hermes_id = next(e.process_id for e in started if e.agent == "hermes")
    children = [e.agent for e in started if e.parent_id == hermes_id]
    assert children == ["mother", "researcher", "writer"]
    (hermes_node,) = [n for n in tree if n["agent_name"] == "hermes"]
    assert [c["agent_name"] for c in hermes_node["children"]] == ["mother", "researcher", "writer"]

    listing = results(of(llm, "hermes")[1])[0].content
    assert '"mother"' in listing and '"assistant"' in listing and '"hermes"' not in listing
    assert [m.text for m in of(llm, "researcher")[-1].messages if m.role == "user" and m.text] == [
        "Research competitor A.",
        "Research competitor B.",
        "Research competitor C.",
    ]


def drain(bus: Subscription) -> list[Any]:
    """The events the subscription holds now."""
    found = []
    while (event := bus.receive_nowait()) is not None:
        found.append(event)
    return found


async def test_hermes_over_plain_rest_returns_the_synthesis(tmp_path: Path) -> None:
    """POST /api/agents/hermes/chat answers with the synthesis; the new agents are listed."""
    llm = competitive_analysis()
    async with meta_server(llm, tmp_path) as srv:
        reply = await srv.client.post(
            "/api/agents/hermes/chat", json={"message": "Competitive analysis please"}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["response"].startswith("Competitive analysis: A leads")
        listed = sources((await srv.client.get("/api/agents")).json()["agents"])
        assert listed["researcher"] == listed["writer"] == "composed"
    assert of(llm, "writer")[0].tools == ()
    assert [t.name for t in of(llm, "researcher")[0].tools] == ["search"]
