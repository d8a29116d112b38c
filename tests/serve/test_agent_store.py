"""Composed agents in the store (SPEC §12, §10.1): what ``POST/PUT/DELETE /api/agents``,
``POST /api/agents/import`` and ``orch.agents.define(..., source="composed")`` change is
committed before it is acknowledged, and a server started again on the same file defines
the stored agents again — or says clearly why one could not be."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import Agent, Orchestrator, open_orchestrator
from vega_trio.dsl import load_document
from vega_trio.dsl._interpreter import open_runner
from vega_trio.serve import ServeConfig
from vega_trio.store import AgentRecord, open_store
from vega_trio.testing import ScriptedLLM

from ._helpers import Running, running_server


def lookup(query: str) -> str:
    """Look something up."""
    return f"found {query}"


def stored_agents(db: Path) -> dict[str, Any]:
    """The agents table as another connection sees it (name → definition)."""
    conn = sqlite3.connect(db)
    try:
        return {n: json.loads(d) for n, d in conn.execute("SELECT name, definition FROM agents")}
    finally:
        conn.close()


@asynccontextmanager
async def orchestrator_on(
    db: Path, *, tools: list[Any] | None = None, llm: Any = None
) -> AsyncIterator[Orchestrator]:
    """An orchestrator on the SQLite file with a built-in ``assistant``."""
    async with (
        open_store(str(db)) as store,
        open_orchestrator(
            llm=llm or ScriptedLLM.echo(), store=store, tools=[lookup] if tools is None else tools
        ) as orch,
    ):
        orch.agents.define(Agent(name="assistant", model="test-model"), source="builtin")
        yield orch


@asynccontextmanager
async def server_on(db: Path, **options: Any) -> AsyncIterator[Running]:
    """A real server on an orchestrator on the file (a fresh process each time)."""
    async with orchestrator_on(db, **options) as orch, running_server(orch) as srv:
        yield srv


async def test_api_changes_are_committed_before_the_answer(tmp_path: Path) -> None:
    """Right when POST, PUT, import and DELETE answer, another connection sees the change."""
    db = tmp_path / "serve.db"
    async with server_on(db) as srv:
        store = srv.orch.config.store
        assert store is not None
        save, delete = store.save_agent, store.delete_agent

        async def slow_save(record: AgentRecord) -> None:
            await trio.sleep(0.2)  # a store slow to commit: the answer must wait for it
            await save(record)

        async def slow_delete(name: str) -> bool:
            await trio.sleep(0.2)
            return await delete(name)

        store.save_agent = slow_save  # type: ignore[method-assign]
        store.delete_agent = slow_delete  # type: ignore[method-assign]
        created = await srv.client.post(
            "/api/agents", json={"name": "helper", "system": "Be brief.", "tools": ["lookup"]}
        )
        assert created.status_code == 201, created.text
        assert stored_agents(db) == {"helper": {"system": "Be brief.", "tools": ["lookup"]}}
        updated = await srv.client.put("/api/agents/helper", json={"system": "Be thorough."})
        assert updated.status_code == 200, updated.text
        assert stored_agents(db) == {"helper": {"system": "Be thorough."}}
        imported = await srv.client.post(
            "/api/agents/import", json={"yaml": "agents:\n  a1:\n    system: one\n"}
        )
        assert imported.status_code == 201, imported.text
        assert stored_agents(db)["a1"] == {"system": "one"}
        deleted = await srv.client.delete("/api/agents/helper")
        assert deleted.status_code == 200
        assert stored_agents(db) == {"a1": {"system": "one"}}


async def test_a_restarted_server_has_the_composed_agents_with_their_changes(
    tmp_path: Path,
) -> None:
    """After a restart on the same file: listed as composed (a lead after its stored team
    member), answers chat (with its conversation), an update survives, a delete survives."""
    db = tmp_path / "serve.db"
    async with server_on(db) as srv:
        for spec in (
            {"name": "helper", "system": "Be brief.", "tools": ["lookup"]},
            {"name": "doomed", "system": "Soon gone."},
            {"name": "alead", "team": ["helper"]},  # restored after helper (read by name)
        ):
            assert (await srv.client.post("/api/agents", json=spec)).status_code == 201
        reply = await srv.client.post("/api/agents/helper:7/chat", json={"message": "one"})
        assert reply.status_code == 200
    llm = ScriptedLLM.echo()
    async with server_on(db, llm=llm) as srv:
        listed = {a["name"]: a for a in (await srv.client.get("/api/agents")).json()["agents"]}
        assert listed["helper"]["source"] == "composed"
        assert listed["helper"]["tools"] == ["lookup"]
        assert listed["assistant"]["source"] == "builtin"
        assert (listed["alead"]["source"], listed["alead"]["team"]) == ("composed", ["helper"])
        reply = await srv.client.post("/api/agents/helper:7/chat", json={"message": "two"})
        assert reply.status_code == 200 and reply.json()["response"] == "two"
        request = llm.requests[-1]
        assert request.system == "Be brief."
        assert [t.name for t in request.tools] == ["lookup"]
        assert "one" in str(request.messages)  # the conversation went on
        put = await srv.client.put("/api/agents/helper", json={"system": "Be thorough."})
        assert put.status_code == 200
        assert (await srv.client.delete("/api/agents/doomed")).status_code == 200
    llm = ScriptedLLM.echo()
    async with server_on(db, llm=llm) as srv:
        names = [a["name"] for a in (await srv.client.get("/api/agents")).json()["agents"]]
        assert sorted(names) == ["alead", "assistant", "helper"]
        template = (await srv.client.get("/api/agents/helper/template")).json()
        assert (template["source"], template["definition"]) == (
            "composed",
            {"system": "Be thorough."},
        )
        await srv.client.post("/api/agents/helper/chat", json={"message": "three"})
        assert llm.requests[-1].system == "Be thorough."
        health = (await srv.client.get("/healthz")).json()
        assert health["store"]["agents_not_restored"] == []
    assert set(stored_agents(db)) == {"alead", "helper"}


async def test_an_agent_defined_with_the_library_is_saved_and_restored(tmp_path: Path) -> None:
    """``orch.agents.define(..., source="composed")`` is saved (flush commits it); a
    server on the same file defines it again; ``remove`` deletes it from the store."""
    db = tmp_path / "lib.db"
    async with orchestrator_on(db) as orch:
        assert orch.persistence is not None
        orch.agents.define(Agent(name="coder", system="Write code.", tools=["lookup"]))
        orch.agents.define(Agent(name="temp", system="x"))
        await orch.persistence.flush()
        assert stored_agents(db) == {
            "coder": {"system": "Write code.", "tools": ["lookup"]},
            "temp": {"system": "x"},
        }
        orch.agents.remove("temp")
        await orch.persistence.flush()
        assert set(stored_agents(db)) == {"coder"}
    async with server_on(db) as srv:
        coder = srv.orch.agents.get("coder")
        assert coder.source == "composed"
        assert coder.agent.system == "Write code."
        assert coder.agent.tool_names == ("lookup",)


async def test_a_stored_agent_that_no_longer_validates_is_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored agent naming a tool the server no longer has: the server starts, the
    others are restored, a warning, an ``agent.not_restored`` event and /healthz say
    why; the record stays until the name is defined again."""
    db = tmp_path / "serve.db"
    async with server_on(db) as srv:
        for spec in (
            {"name": "finder", "tools": ["lookup"]},
            {"name": "plain", "system": "Hi."},
            {"name": "lead", "team": ["finder"]},
        ):
            response = await srv.client.post("/api/agents", json=spec)
            assert response.status_code == 201, response.text
    with caplog.at_level(logging.WARNING, logger="vega_trio.serve"):
        async with orchestrator_on(db, tools=[]) as orch:  # `lookup` is gone
            with orch.subscribe(types=["agent.*"]) as events:
                async with running_server(orch) as srv:
                    names = {
                        a["name"] for a in (await srv.client.get("/api/agents")).json()["agents"]
                    }
                    assert names == {"assistant", "plain"}
                    health = (await srv.client.get("/healthz")).json()
                    missing = {
                        a["name"]: a["detail"] for a in health["store"]["agents_not_restored"]
                    }
                    assert set(missing) == {"finder", "lead"}
                    assert "lookup" in missing["finder"] and "POST /api/agents" in missing["finder"]
                    assert "finder" in missing["lead"]
                    seen = []
                    with trio.fail_after(5):
                        while len(seen) < 3:
                            event = await events.receive()
                            seen.append((event.type, event.agent))
                    assert sorted(seen) == [
                        ("agent.created", "plain"),
                        ("agent.not_restored", "finder"),
                        ("agent.not_restored", "lead"),
                    ]
                    # Defining the name again replaces the stored record.
                    again = await srv.client.post(
                        "/api/agents", json={"name": "finder", "system": "No tools now."}
                    )
                    assert again.status_code == 201
                    health = (await srv.client.get("/healthz")).json()
                    assert [a["name"] for a in health["store"]["agents_not_restored"]] == ["lead"]
    warned = [r.getMessage() for r in caplog.records if "is not restored" in r.getMessage()]
    assert any("'finder'" in m and "lookup" in m for m in warned)
    assert set(stored_agents(db)) == {"finder", "plain", "lead"}
    assert stored_agents(db)["finder"] == {"system": "No tools now."}


async def test_a_stored_name_taken_by_the_file_keeps_the_file_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored composed agent whose name the server's .vega.yaml now defines: the file's
    agent is served (logged), the stored one stays stored and untouched."""
    db = tmp_path / "serve.db"
    async with server_on(db) as srv:
        response = await srv.client.post("/api/agents", json={"name": "reviewer", "system": "API"})
        assert response.status_code == 201
    document = load_document("agents:\n  reviewer:\n    system: From the file.\n")
    with caplog.at_level(logging.WARNING, logger="vega_trio.serve"):
        async with (
            open_store(str(db)) as store,
            open_runner(document, llm=ScriptedLLM.echo(), store=store) as runner,
            running_server(runner.orchestrator, ServeConfig(port=0), runner=runner) as srv,
        ):
            agent = (await srv.client.get("/api/agents/reviewer")).json()
            assert (agent["source"], agent["system"]) == ("yaml", "From the file.")
            assert (await srv.client.get("/healthz")).json()["store"]["agents_not_restored"] == []
    assert any(
        "'reviewer'" in r.getMessage() and ".vega.yaml agent of that name wins" in r.getMessage()
        for r in caplog.records
    )
    assert stored_agents(db) == {"reviewer": {"system": "API"}}
