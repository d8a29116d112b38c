"""Composed agents over the API (SPEC §10.1): create, update, delete, template and import,
through the DSL's loader and validator, over a real Hypercorn server."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import open_orchestrator
from vega_trio.dsl import load_document
from vega_trio.dsl._interpreter import open_runner
from vega_trio.serve import ServeConfig
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools.mcp import MCPServerConfig

from ._helpers import Running, orchestrator_with_assistant, running_server

SERVE_DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"
ECHO_SERVER = Path(__file__).resolve().parents[1] / "tools" / "mcp_servers" / "echo_server.py"

DOCUMENT = """
agents:
  reviewer:
    model: test-model
    system: You review code.
    temperature: 0.2
    budget: "$2.00"
"""


def lookup(query: str) -> str:
    """Look something up."""
    return f"found {query}"


@asynccontextmanager
async def served(llm: Any = None) -> AsyncIterator[Running]:
    """A server with a builtin `assistant` and a Python tool `lookup`."""
    async with (
        orchestrator_with_assistant(llm, tools=[lookup]) as orch,
        running_server(orch) as srv,
    ):
        yield srv


@asynccontextmanager
async def served_document(llm: Any = None) -> AsyncIterator[Running]:
    """A server of a document (its agent `reviewer` has source yaml)."""
    document = load_document(DOCUMENT)
    async with open_runner(document, llm=llm or ScriptedLLM.echo()) as runner:
        async with running_server(runner.orchestrator, ServeConfig(port=0), runner=runner) as srv:
            yield srv


def paths(response: Any) -> list[str]:
    return [field["path"] for field in response.json()["fields"]]


async def test_create_chat_update_and_delete_a_composed_agent() -> None:
    """POST creates (201), chat uses it, PUT updates the session (history kept), DELETE removes."""
    llm = ScriptedLLM.echo()
    async with served(llm) as srv:
        orch = srv.orch
        with orch.subscribe(types="agent.") as events:
            created = await srv.client.post(
                "/api/agents",
                json={"name": "helper", "model": "m-1", "system": "Be brief.", "tools": ["lookup"]},
            )
            assert created.status_code == 201, created.text
            assert created.headers["Location"] == "/api/agents/helper"
            body = created.json()
            assert (body["name"], body["source"], body["revision"]) == ("helper", "composed", 1)
            assert body["definition"] == {
                "model": "m-1",
                "system": "Be brief.",
                "tools": ["lookup"],
            }
            assert orch.agents.get("helper").source == "composed"

            reply = await srv.client.post("/api/agents/helper/chat", json={"message": "one"})
            assert reply.status_code == 200 and reply.json()["response"] == "one"
            first = llm.requests[-1]
            assert (first.model, first.system) == ("m-1", "Be brief.")
            assert [t.name for t in first.tools] == ["lookup"]

            updated = await srv.client.put(
                "/api/agents/helper", json={"model": "m-2", "system": "Be thorough."}
            )
            assert updated.status_code == 200, updated.text
            assert updated.json()["revision"] == 2
            assert updated.json()["definition"] == {"model": "m-2", "system": "Be thorough."}
            reply = await srv.client.post("/api/agents/helper/chat", json={"message": "two"})
            assert reply.json()["response"] == "two"
            second = llm.requests[-1]
            assert (second.model, second.system, second.tools) == ("m-2", "Be thorough.", ())
            # the session went on: the first turn is still in its conversation
            assert "one" in str(second.messages) and "two" in str(second.messages)

            deleted = await srv.client.delete("/api/agents/helper")
            assert deleted.status_code == 200 and deleted.json()["name"] == "helper"
            assert "helper" not in orch.agents
            assert (await srv.client.get("/api/agents/helper")).status_code == 404
            gone = await srv.client.post("/api/agents/helper/chat", json={"message": "three"})
            assert gone.status_code == 404
            kinds = []
            while len(kinds) < 3:
                kinds.append((await events.receive()).type)
        assert kinds == ["agent.created", "agent.updated", "agent.deleted"]


async def test_existing_names_conflict_and_unknown_agents_are_not_found() -> None:
    """POST of an existing name (any source) is 409; PUT/DELETE/template of an unknown one 404."""
    async with served() as srv:
        spec = {"name": "helper", "system": "first"}
        assert (await srv.client.post("/api/agents", json=spec)).status_code == 201
        again = await srv.client.post("/api/agents", json={"name": "helper", "system": "second"})
        assert again.status_code == 409
        assert again.json()["error_class"] == "agent_exists"
        assert "PUT /api/agents/" in again.json()["error"]
        assert srv.orch.agents.get("helper").mapping == {"system": "first"}
        builtin = await srv.client.post("/api/agents", json={"name": "assistant"})
        assert builtin.status_code == 409
        for method, url in (
            ("PUT", "/api/agents/nobody"),
            ("DELETE", "/api/agents/nobody"),
            ("GET", "/api/agents/nobody/template"),
        ):
            kwargs: dict[str, Any] = {"json": {"system": "x"}} if method == "PUT" else {}
            response = await srv.client.request(method, url, **kwargs)
            assert response.status_code == 404, (method, url)
            assert response.json()["error_class"] == "agent_not_found"


async def test_builtin_and_yaml_agents_are_protected() -> None:
    """PUT/DELETE of a builtin or a .vega.yaml agent is 403 saying what to do; nothing changes."""
    async with served() as srv:
        for response in (
            await srv.client.put("/api/agents/assistant", json={"system": "hijacked"}),
            await srv.client.delete("/api/agents/assistant"),
        ):
            assert response.status_code == 403
            assert response.json()["error_class"] == "protected_agent"
            assert "built in" in response.json()["error"]
            assert "/api/agents/assistant/template" in response.json()["error"]
        definition = srv.orch.agents.get("assistant")
        assert (definition.revision, definition.source) == (1, "builtin")
    async with served_document() as srv:
        for response in (
            await srv.client.put("/api/agents/reviewer", json={"system": "hijacked"}),
            await srv.client.delete("/api/agents/reviewer"),
        ):
            assert response.status_code == 403
            assert ".vega.yaml" in response.json()["error"]
            assert "edit the file" in response.json()["error"]
        assert srv.orch.agents.get("reviewer").revision == 1


async def test_invalid_definitions_are_422_with_the_dsl_diagnostics_and_field_paths() -> None:
    """Every problem of a body is reported (the validator's messages) with its field path."""
    async with served() as srv:
        bad = await srv.client.post(
            "/api/agents",
            json={
                "name": "helper",
                "temperature": 5,
                "max_tokens": "many",
                "budget": {"limit": "lots"},
                "supervision": {"strategy": "sometimes"},
                "sytem": "typo",
            },
        )
        assert bad.status_code == 422
        assert bad.json()["error_class"] == "validation_error"
        assert sorted(paths(bad)) == sorted(
            ["temperature", "max_tokens", "budget.limit", "supervision.strategy", "sytem"]
        )
        typo = next(f for f in bad.json()["fields"] if f["path"] == "sytem")
        assert "did you mean 'system'?" in typo["error"]
        assert "nothing was changed" in bad.json()["error"]
        for body, path in (
            ({"system": "no name"}, "name"),
            ({"name": "a:b"}, "name"),
            ({"name": 7}, "name"),
            ({"name": "if"}, "name"),  # a step keyword, as in a document
        ):
            response = await srv.client.post("/api/agents", json=body)
            assert response.status_code == 422, body
            assert paths(response) == [path], body
        assert (await srv.client.post("/api/agents", json={"name": "ok"})).status_code == 201
        rename = await srv.client.put("/api/agents/ok", json={"name": "other"})
        assert rename.status_code == 422 and paths(rename) == ["name"]
        worse = await srv.client.put("/api/agents/ok", json={"max_iterations": 0})
        assert worse.status_code == 422 and paths(worse) == ["max_iterations"]
        assert srv.orch.agents.get("ok").revision == 1
        assert sorted(srv.orch.agents) == ["assistant", "ok"]


async def test_tools_must_be_known_to_the_server() -> None:
    """An unknown tool, MCP server or team member is 422 at its list index; known ones work."""
    llm = ScriptedLLM([Step.tool_call("lookup", {"query": "trio"}), Step.text("done")])
    async with served(llm) as srv:
        unknown = await srv.client.post(
            "/api/agents", json={"name": "a", "tools": ["lookup", "lookpu", "fs__read"]}
        )
        assert unknown.status_code == 422
        fields = unknown.json()["fields"]
        assert [f["path"] for f in fields] == ["tools[1]", "tools[2]"]
        assert "unknown tool 'lookpu'" in fields[0]["error"]
        assert "did you mean 'lookup'?" in fields[0]["error"]
        assert "unknown MCP server 'fs'" in fields[1]["error"]
        builtin = await srv.client.post("/api/agents", json={"name": "a", "tools": ["run_command"]})
        assert builtin.status_code == 422 and paths(builtin) == ["tools[0]"]
        assert "sandbox" in builtin.json()["fields"][0]["error"]
        team = await srv.client.post("/api/agents", json={"name": "a", "team": ["nobody"]})
        assert team.status_code == 422 and paths(team) == ["team[0]"]
        assert "a" not in srv.orch.agents
        good = await srv.client.post(
            "/api/agents", json={"name": "a", "tools": ["look*"], "team": ["assistant"]}
        )
        assert good.status_code == 201, good.text
        reply = await srv.client.post("/api/agents/a/chat", json={"message": "go"})
        assert reply.json()["response"] == "done"
        assert "found trio" in str(llm.requests[-1].messages)


async def test_nothing_that_starts_a_program_can_be_defined() -> None:
    """Exec tools, MCP server commands and skill directories are refused (SPEC §11)."""
    async with served() as srv:
        before = srv.orch.tool_registry().names()
        inline = await srv.client.post(
            "/api/agents",
            json={
                "name": "evil",
                "implementation": {"type": "exec", "command": ["sh", "-c", "id"]},
                "command": "sh",
            },
        )
        assert inline.status_code == 422
        assert sorted(paths(inline)) == ["command", "implementation"]
        exec_tool = await srv.client.post(
            "/api/agents/import",
            json={
                "yaml": "agents:\n  evil:\n    tools: [sh]\n"
                "tools:\n  sh:\n    implementation: {type: exec, command: [sh, -c, id]}\n"
            },
        )
        assert exec_tool.status_code == 422
        assert "tools" in paths(exec_tool)
        assert "exec tool" in str(exec_tool.json()["fields"])
        mcp = await srv.client.post(
            "/api/agents/import",
            json={
                "yaml": "agents:\n  evil: {tools: ['x__*']}\n"
                "settings:\n  mcp:\n    servers:\n      - {name: x, command: sh, args: [-c, id]}\n"
            },
        )
        assert mcp.status_code == 422
        assert "settings" in paths(mcp)
        skills = await srv.client.post(
            "/api/agents", json={"name": "evil", "skills": {"directories": ["/etc"]}}
        )
        assert skills.status_code == 422 and paths(skills) == ["skills.directories"]
        assert srv.orch.tool_registry().names() == before
        assert srv.orch.mcp is None
        assert "evil" not in srv.orch.agents


async def test_import_is_all_or_nothing() -> None:
    """An import with one bad agent or one taken name defines none; a valid one defines all."""
    async with served() as srv:
        text = (
            "agents:\n"
            "  planner:\n"
            "    system: Plan.\n"
            "    team: [doer]\n"
            "  doer:\n"
            "    tools: [lookup, nope]\n"
        )
        bad = await srv.client.post("/api/agents/import", json={"yaml": text})
        assert bad.status_code == 422
        [field] = bad.json()["fields"]
        assert (field["path"], field["line"]) == ("agents.doer.tools[1]", 6)
        assert sorted(srv.orch.agents) == ["assistant"]

        taken = await srv.client.post(
            "/api/agents/import",
            json={"agents": {"fresh": {"system": "x"}, "assistant": {"system": "y"}}},
        )
        assert taken.status_code == 409
        assert paths(taken) == ["agents.assistant"]
        assert sorted(srv.orch.agents) == ["assistant"]

        malformed = await srv.client.post("/api/agents/import", json={"yaml": "agents: [\n"})
        assert malformed.status_code == 422
        assert "malformed YAML" in malformed.json()["error"]
        neither = await srv.client.post("/api/agents/import", json={})
        assert neither.status_code == 422

        good = await srv.client.post(
            "/api/agents/import", json={"yaml": text.replace(", nope", "")}
        )
        assert good.status_code == 201, good.text
        assert [a["name"] for a in good.json()["agents"]] == ["planner", "doer"]
        assert all(a["source"] == "composed" for a in good.json()["agents"])
        assert sorted(srv.orch.agents) == ["assistant", "doer", "planner"]
        reply = await srv.client.post("/api/agents/planner/chat", json={"message": "hi"})
        assert reply.status_code == 200


async def test_a_template_imports_as_a_copy() -> None:
    """GET template gives YAML and JSON; importing it under another name makes an equal agent."""
    async with served() as srv:
        spec = {
            "name": "worker",
            "model": "m-1",
            "system": "Work.\nCarefully.",
            "temperature": 0.3,
            "max_iterations": 7,
            "timeout": "90s",
            "tools": ["lookup"],
            "budget": {"limit": "$1.50", "on_exceed": "warn"},
            "supervision": {"strategy": "stop", "max_restarts": 2, "window": "1m"},
            "retry": {"max_attempts": 2},
            "team": ["assistant"],
        }
        created = await srv.client.post("/api/agents", json=spec)
        assert created.status_code == 201, created.text
        template = await srv.client.get("/api/agents/worker/template", params={"as": "copy"})
        assert template.status_code == 200
        body = template.json()
        assert body["complete"] is True and body["name"] == "copy"
        assert body["definition"]["timeout"] == 90.0
        assert body["definition"]["budget"] == {"limit": 1.5, "on_exceed": "warn"}
        assert body["yaml"].startswith("agents:\n  copy:\n")
        imported = await srv.client.post("/api/agents/import", json={"yaml": body["yaml"]})
        assert imported.status_code == 201, imported.text
        original, copy = srv.orch.agents.get("worker"), srv.orch.agents.get("copy")
        assert copy.mapping == original.mapping
        assert copy.agent.supervision == original.agent.supervision
        assert copy.agent.send_timeout == 90.0 and copy.agent.max_iterations == 7
        # the JSON form posts back as well
        again = await srv.client.post("/api/agents", json={"name": "copy2", **body["definition"]})
        assert again.status_code == 201
        assert srv.orch.agents.get("copy2").mapping == original.mapping

        builtin = (await srv.client.get("/api/agents/assistant/template")).json()
        assert builtin["complete"] is False and builtin["source"] == "builtin"
        assert builtin["definition"] == {"model": "test-model"}
    async with served_document() as srv:
        yaml_template = (await srv.client.get("/api/agents/reviewer/template")).json()
        assert yaml_template["complete"] is True
        assert yaml_template["definition"] == {
            "model": "test-model",
            "system": "You review code.",
            "temperature": 0.2,
            "budget": 2.0,
        }
        copy = await srv.client.post(
            "/api/agents", json={"name": "reviewer2", **yaml_template["definition"]}
        )
        assert copy.status_code == 201


async def test_any_text_survives_the_json_to_dsl_conversion() -> None:
    """Emoji, line and paragraph separators, NEL and control characters are kept as sent."""
    system = 'Smile 😀\u2028next\u2029para\x85nel\x7f\x00 "quoted" \\ {{ not a template }}'
    async with served() as srv:
        created = await srv.client.post("/api/agents", json={"name": "u", "system": system})
        assert created.status_code == 201, created.text
        assert created.json()["definition"] == {"system": system}
        assert srv.orch.agents.get("u").agent.system == system


async def test_without_an_orchestrator_tool_the_library_define_still_checks() -> None:
    """An orchestrator without tools: any tool name is a 422, not a 500."""
    async with (
        open_orchestrator(llm=ScriptedLLM.echo()) as orch,
        running_server(orch) as srv,
    ):
        response = await srv.client.post("/api/agents", json={"name": "a", "tools": ["x"]})
        assert response.status_code == 422 and paths(response) == ["tools[0]"]


def doc_curl_lines(marker: str) -> list[list[str]]:
    """The curl commands of the ```bash block after ``<!-- curl: marker -->`` in docs/serve.md."""
    text = SERVE_DOC.read_text(encoding="utf-8")
    block = text.split(f"<!-- curl: {marker} -->\n```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl program is not installed")
async def test_the_docs_curl_lines_for_composed_agents_work() -> None:
    """docs/serve.md's composed-agent curl lines, run by curl against a real server, all succeed."""
    commands = doc_curl_lines("composed agents")
    assert [c[0] for c in commands] == ["curl"] * 6
    async with served() as srv:
        address = srv.url.removeprefix("http://")
        outputs: list[Any] = []
        for command in commands:
            argv = [a.replace("localhost:3001", address) for a in command]
            with trio.fail_after(20):
                done = await trio.run_process(
                    [*argv, "-sS", "-w", "\n%{http_code}"], capture_stdout=True
                )
            body, _, status = done.stdout.decode().rpartition("\n")
            assert status.startswith("2"), (command, status, body)
            outputs.append(json.loads(body))
        assert srv.orch.agents.get("summarizer").revision == 2
        assert outputs[3]["name"] == "summarizer2" and outputs[3]["complete"] is True
        assert [a["name"] for a in outputs[4]["agents"]] == ["critic"]
        assert "critic" not in srv.orch.agents  # deleted by the last line


@pytest.mark.slow
async def test_the_servers_mcp_tools_can_be_named_but_only_existing_ones() -> None:
    """`server__tool` of a configured MCP server works; one it lacks is a 422 at `tools`."""
    config = MCPServerConfig(name="echo", command=sys.executable, args=[str(ECHO_SERVER)])
    llm = ScriptedLLM([Step.tool_call("echo__echo", {"text": "ping"}), Step.text("done")])
    async with (
        orchestrator_with_assistant(llm, mcp_servers=[config]) as orch,
        running_server(orch) as srv,
    ):
        missing = await srv.client.post("/api/agents", json={"name": "m", "tools": ["echo__nope"]})
        assert missing.status_code == 422, missing.text
        assert paths(missing) == ["tools"]
        assert "echo__nope" in missing.json()["error"]
        assert "m" not in orch.agents
        good = await srv.client.post("/api/agents", json={"name": "m", "tools": ["echo__e*"]})
        assert good.status_code == 201, good.text
        reply = await srv.client.post("/api/agents/m/chat", json={"message": "go"})
        assert reply.json()["response"] == "done"
        assert "ping" in str(llm.requests[-1].messages)
