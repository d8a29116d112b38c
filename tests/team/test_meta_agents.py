"""The meta-agents (SPEC §6) on a library orchestrator with scripted models: Mother's
tools (tools exactly as named, reserved and protected names, atomic updates that
restart sessions, blueprints kept inside their directory) and Hermes's (list, send as
a child, no sending to himself, the depth limit, failures as error results)."""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import Agent, AgentExists, AgentProcess, add_meta_agents, open_orchestrator
from vega_trio.llm import LLMRequest, ToolResultBlock
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools import Tools

MODEL = "claude-sonnet-4-5"  # priced, so spend can be compared
ECHO_SERVER = Path(__file__).resolve().parents[1] / "tools" / "mcp_servers" / "echo_server.py"


def role(request: LLMRequest) -> str:
    """Which agent a request is from: Mother and Hermes by their prompts, any other
    agent's system prompt is its name."""
    if request.system.startswith("You are Mother"):
        return "mother"
    if request.system.startswith("You are Hermes"):
        return "hermes"
    return request.system


def by_role(scripts: dict[str, Iterable[Step | str]]) -> ScriptedLLM:
    """One scripted model for several agents, a queue of steps per agent."""
    queues = {name: collections.deque(steps) for name, steps in scripts.items()}

    def respond(request: LLMRequest) -> Step | str:
        return queues[role(request)].popleft()

    return ScriptedLLM(responder=respond)


def of(llm: ScriptedLLM, name: str) -> list[LLMRequest]:
    """The requests one agent made."""
    return [r for r in llm.requests if role(r) == name]


def results(request: LLMRequest) -> list[ToolResultBlock]:
    """The tool results a request carried back to the model."""
    return [b for b in request.messages[-1].content if isinstance(b, ToolResultBlock)]


def lookup(query: str) -> str:
    """Look something up.

    Args:
        query: what to look up.
    """
    return f"found {query}"


def search(query: str) -> str:
    """Search the web.

    Args:
        query: what to search.
    """
    return f"results for {query}"


def call(tool: str, /, **arguments: Any) -> Step:
    """A scripted call of ``tool`` with keyword arguments."""
    return Step.tool_call(tool, arguments)


async def test_add_meta_agents_defines_both_builtin_on_the_default_model(tmp_path: Path) -> None:
    """One call defines mother and hermes (source builtin); they use default_model."""
    llm = by_role({"mother": ["hello from mother"], "hermes": ["hello from hermes"]})
    async with open_orchestrator(llm=llm, default_model="m-default") as orch:
        mother, hermes = add_meta_agents(orch, blueprints=tmp_path)
        assert (mother.name, mother.source, hermes.name, hermes.source) == (
            "mother",
            "builtin",
            "hermes",
            "builtin",
        )
        assert await (await orch.session("mother")).send("hi") == "hello from mother"
        assert await (await orch.session("hermes")).send("hi") == "hello from hermes"
        with pytest.raises(AgentExists, match="already defined"):
            add_meta_agents(orch)
    assert {r.model for r in llm.requests} == {"m-default"}
    assert {t.name for t in of(llm, "mother")[0].tools} >= {
        "create_agent",
        "update_agent",
        "delete_agent",
        "list_agents",
        "list_tools",
        "list_skills",
        "list_mcp_servers",
        "save_blueprint",
        "list_blueprints",
    }
    assert {t.name for t in of(llm, "hermes")[0].tools} == {"list_agents", "send_to_agent"}


async def test_mother_gives_a_new_agent_exactly_the_tools_it_names(tmp_path: Path) -> None:
    """An empty or missing tool list means no tools (not every tool); a named one only it."""
    llm = by_role(
        {
            "mother": [
                Step.tool_calls(
                    [
                        ("create_agent", {"name": "empty", "system": "empty", "tools": []}),
                        ("create_agent", {"name": "missing", "system": "missing"}),
                        ("create_agent", {"name": "one", "system": "one", "tools": ["lookup"]}),
                    ]
                ),
                "created three",
            ],
            "empty": ["e"],
            "missing": ["m"],
            "one": ["o"],
        }
    )
    async with open_orchestrator(llm=llm, tools=[lookup, search]) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        await (await orch.session("mother")).send("make three agents")
        assert [r.is_error for r in results(of(llm, "mother")[1])] == [False, False, False]
        for name in ("empty", "missing", "one"):
            assert orch.agents.get(name).source == "composed"
            await (await orch.session(name)).send("hi")
    assert of(llm, "empty")[0].tools == ()
    assert of(llm, "missing")[0].tools == ()
    assert [t.name for t in of(llm, "one")[0].tools] == ["lookup"]


async def test_an_unknown_tool_is_an_error_result_listing_the_tools(tmp_path: Path) -> None:
    """A tool name the orchestrator lacks: nothing is defined, the result lists what exists."""
    llm = by_role(
        {
            "mother": [
                call("create_agent", name="web", system="web", tools=["web_search"]),
                call("create_agent", name="lead", system="lead", team=["ghost"]),
                "could not",
            ]
        }
    )
    async with open_orchestrator(llm=llm, tools=[lookup, search]) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        await (await orch.session("mother")).send("make a web agent")
        assert "web" not in orch.agents and "lead" not in orch.agents
    (tool_result,) = results(of(llm, "mother")[1])
    assert tool_result.is_error
    assert "unknown tool 'web_search'" in tool_result.content
    assert "available tools: lookup, search" in tool_result.content
    (team_result,) = results(of(llm, "mother")[2])
    assert team_result.is_error and "unknown agent 'ghost'" in team_result.content
    assert "defined agents:" in team_result.content and "mother" in team_result.content


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("create_agent", {"name": "mother", "system": "x"}),
        ("create_agent", {"name": "hermes", "system": "x"}),
        ("update_agent", {"name": "mother", "system": "x"}),
        ("update_agent", {"name": "hermes", "system": "x"}),
        ("delete_agent", {"name": "mother"}),
        ("delete_agent", {"name": "hermes"}),
        ("update_agent", {"name": "assistant", "system": "x"}),
        ("delete_agent", {"name": "assistant"}),
        ("update_agent", {"name": "reviewer", "system": "x"}),
        ("delete_agent", {"name": "reviewer"}),
        ("create_agent", {"name": "assistant", "system": "x"}),
    ],
)
async def test_mother_cannot_touch_reserved_builtin_or_yaml_agents(
    tmp_path: Path, tool: str, arguments: dict[str, Any]
) -> None:
    """Reserved names, builtin and yaml agents: an error result, every definition intact."""
    llm = by_role({"mother": [call(tool, **arguments), "no"]})
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="assistant", system="a"), source="builtin")
        orch.agents.define(Agent(name="reviewer", system="r"), source="yaml")
        add_meta_agents(orch, blueprints=tmp_path)
        before = {d.name: d for d in orch.agents.list()}
        await (await orch.session("mother")).send("do it")
        after = {d.name: d for d in orch.agents.list()}
    (result,) = results(of(llm, "mother")[1])
    assert result.is_error, result.content
    assert after == before and all(after[n] is before[n] for n in before)


async def test_an_update_by_mother_restarts_the_session_between_messages(tmp_path: Path) -> None:
    """update_agent changes only the fields given; the session goes on with its history."""
    llm = by_role(
        {
            "mother": [
                call("create_agent", name="helper", system="helper", tools=["lookup"]),
                "created",
                call("update_agent", name="helper", system="helper2", description="better"),
                "updated",
            ],
            "helper": ["first"],
            "helper2": ["second"],
        }
    )
    async with open_orchestrator(llm=llm, tools=[lookup]) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        mother = await orch.session("mother")
        await mother.send("create helper")
        assert await (await orch.session("helper", user="u1")).send("one") == "first"
        with orch.subscribe(types="agent.updated") as events:
            await mother.send("improve helper")
            assert (await events.receive()).revision == 2
        definition = orch.agents.get("helper")
        assert definition.mapping is not None
        assert definition.mapping["description"] == "better"
        assert definition.mapping["tools"] == ["lookup"]  # kept: not given
        assert await (await orch.session("helper", user="u1")).send("two") == "second"
    last = of(llm, "helper2")[0]
    assert [t.name for t in last.tools] == ["lookup"]
    assert [m.text for m in last.messages] == ["one", "first", "two"]


async def test_a_failed_update_keeps_the_old_definition(tmp_path: Path) -> None:
    """An update naming an unknown tool is an error result; revision 1 stays."""
    llm = by_role(
        {
            "mother": [
                call("create_agent", name="helper", system="helper"),
                call("update_agent", name="helper", tools=["nope"]),
                "done",
            ]
        }
    )
    async with open_orchestrator(llm=llm, tools=[lookup]) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        await (await orch.session("mother")).send("go")
        assert orch.agents.get("helper").revision == 1
    (result,) = results(of(llm, "mother")[2])
    assert result.is_error and "available tools: lookup" in result.content


async def test_blueprints_are_saved_and_listed_inside_their_directory(tmp_path: Path) -> None:
    """save_blueprint writes <name>.vega.yaml that loads back; list_blueprints shows it."""
    from vega_trio.dsl import load_document

    workspace = tmp_path / "blueprints"
    llm = by_role(
        {
            "mother": [
                call("create_agent", name="researcher", system="r", description="finds"),
                call("create_agent", name="lead", system="l", team=["researcher"]),
                call("save_blueprint", name="research-team", agents=["researcher", "lead"]),
                call("list_blueprints"),
                "saved",
            ]
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=workspace)
        await (await orch.session("mother")).send("save it")
    saved = results(of(llm, "mother")[3])[0]
    assert not saved.is_error, saved.content
    document = load_document((workspace / "research-team.vega.yaml").read_text())
    assert [a.name for a in document.agents] == ["researcher", "lead"]
    assert document.agents[1].team == ("researcher",)
    listed = json.loads(results(of(llm, "mother")[4])[0].content)
    assert listed == [{"name": "research-team", "agents": ["researcher", "lead"]}]


def files_under(path: Path) -> list[Path]:
    """Every file below ``path``."""
    return [p for p in path.rglob("*") if p.is_file()]


def absolute_files() -> list[str]:
    """What the absolute-path name would have written."""
    return sorted(str(p) for p in Path("/tmp").glob("absolute*"))


BAD_NAMES = [
    "../escape",
    "../../etc/passwd",
    "/tmp/absolute",
    "sub/dir",
    "..",
    ".hidden",
    "nul\x00byte",
    "x" * 300,
    "",
    "back\\slash",
]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_a_blueprint_name_cannot_leave_the_workspace(tmp_path: Path, name: str) -> None:
    """Traversal, absolute paths, NUL and very long names are error results; no file."""
    workspace = tmp_path / "ws" / "blueprints"
    llm = by_role(
        {
            "mother": [
                call("create_agent", name="researcher", system="r"),
                call("save_blueprint", name=name, agents=["researcher"]),
                "no",
            ]
        }
    )
    before = absolute_files()
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=workspace)
        await (await orch.session("mother")).send("save")
    (result,) = results(of(llm, "mother")[2])
    assert result.is_error and "blueprint name" in result.content
    assert files_under(tmp_path) == []
    assert absolute_files() == before


async def test_a_symlink_cannot_take_a_blueprint_out_of_the_workspace(tmp_path: Path) -> None:
    """A link named like a blueprint that points outside is refused, its target untouched."""
    workspace = tmp_path / "blueprints"
    workspace.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    os.symlink(outside, workspace / "team.vega.yaml")
    llm = by_role(
        {
            "mother": [
                call("create_agent", name="researcher", system="r"),
                call("save_blueprint", name="team", agents=["researcher"]),
                "no",
            ]
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=workspace)
        await (await orch.session("mother")).send("save")
    (result,) = results(of(llm, "mother")[2])
    assert result.is_error and "outside the blueprint directory" in result.content
    assert outside.read_text() == "keep"


# ---------------------------------------------------------------------------- Hermes
async def test_hermes_lists_every_other_agent_with_its_purpose(tmp_path: Path) -> None:
    """list_agents: name and purpose of each agent, Mother included, Hermes not."""
    llm = by_role({"hermes": [call("list_agents"), "listed"]})
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="writer", system="writer", description="writes prose"))
        orch.agents.define(Agent(name="plain", system="Answers questions.\nBriefly."))
        add_meta_agents(orch, blueprints=tmp_path)
        await (await orch.session("hermes")).send("who is there?")
    listed = json.loads(results(of(llm, "hermes")[1])[0].content)
    assert [a["name"] for a in listed] == ["writer", "plain", "mother"]
    assert listed[0]["purpose"] == "writes prose"
    assert listed[1]["purpose"] == "Answers questions."
    assert listed[2]["purpose"].startswith("The agent architect")


async def test_send_to_agent_runs_it_as_a_child_and_costs_roll_up(tmp_path: Path) -> None:
    """The agent runs under Hermes in the spawn tree; Hermes's cost includes its spend."""
    llm = by_role(
        {
            "hermes": [
                call("send_to_agent", agent="researcher", message="Research A."),
                call("send_to_agent", agent="researcher", message="Research B."),
                "A and B researched",
            ],
            "researcher": ["A is big", "B is small"],
        }
    )
    async with open_orchestrator(llm=llm, default_model=MODEL) as orch:
        orch.agents.define(Agent(name="researcher", system="researcher"))
        add_meta_agents(orch, blueprints=tmp_path)
        hermes = await orch.session("hermes")
        assert await hermes.send("research A and B") == "A and B researched"
        (node,) = [n for n in orch.spawn_tree() if n.process_id == hermes.id]
        (child,) = node.children  # one child, reused: it keeps its conversation
        assert child.agent_name == "researcher"
        researcher = orch.get(child.process_id)
        assert isinstance(researcher, AgentProcess)
        costs = orch.costs()["agents"]
        child_cost = researcher.metrics.cost_usd
        assert child_cost > 0
        assert costs["hermes"]["cost_usd"] == pytest.approx(hermes.metrics.cost_usd + child_cost)
        assert orch.costs()["total_usd"] == pytest.approx(hermes.metrics.cost_usd + child_cost)
    assert [r.content for r in results(of(llm, "hermes")[1])] == ["A is big"]
    assert [m.text for m in of(llm, "researcher")[1].messages] == [
        "Research A.",
        "A is big",
        "Research B.",
    ]


async def test_cancelling_hermes_cancels_the_agent_he_waits_for(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A send to Hermes abandoned mid-delegation cancels the child's request at once."""
    llm = by_role(
        {
            "hermes": [call("send_to_agent", agent="slow", message="take your time")],
            "slow": [Step.text("too late", delay=1000)],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="slow", system="slow"))
        add_meta_agents(orch, blueprints=tmp_path)
        hermes = await orch.session("hermes")
        with trio.move_on_after(5):
            await hermes.send("go")
        (node,) = [n for n in orch.spawn_tree() if n.process_id == hermes.id]
        child = orch.get(node.children[0].process_id)
        with trio.fail_after(1):
            while child.busy:  # noqa: ASYNC110 - a property without an event; bounded
                await trio.sleep(0.01)
        assert trio.current_time() < 10  # not the 1000 s the reply would have taken


async def test_hermes_cannot_send_to_himself_or_to_an_unknown_agent(tmp_path: Path) -> None:
    """Both are error results he can read; nothing is spawned."""
    llm = by_role(
        {
            "hermes": [
                call("send_to_agent", agent="hermes", message="loop"),
                call("send_to_agent", agent="ghost", message="boo"),
                "ok",
            ]
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        hermes = await orch.session("hermes")
        await hermes.send("go")
        assert [n.children for n in orch.spawn_tree()] == [()]
    (himself,) = results(of(llm, "hermes")[1])
    assert himself.is_error and "cannot send to yourself" in himself.content
    (ghost,) = results(of(llm, "hermes")[2])
    assert ghost.is_error and "no agent named 'ghost'" in ghost.content
    assert "mother" in ghost.content


async def test_a_failed_agent_comes_back_as_an_error_result(tmp_path: Path) -> None:
    """The delegate's LLM failure is an error result naming the agent and the class."""
    from vega_trio import ErrorClass

    llm = by_role(
        {
            "hermes": [call("send_to_agent", agent="broken", message="work"), "it failed"],
            "broken": [Step.error(ErrorClass.INVALID_REQUEST, "bad request body")],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="broken", system="broken"))
        add_meta_agents(orch, blueprints=tmp_path)
        assert await (await orch.session("hermes")).send("go") == "it failed"
    (result,) = results(of(llm, "hermes")[1])
    assert result.is_error
    assert "agent 'broken' failed (invalid_request)" in result.content
    assert "bad request body" in result.content


async def test_a_loop_between_agents_stops_at_the_depth_limit(tmp_path: Path) -> None:
    """hermes → relay (team: hermes) → hermes → ... ends at the limit with an error."""

    def respond(request: LLMRequest) -> Step | str:
        if results(request):
            return f"stopped: {results(request)[0].content[:300]}"
        if role(request) == "hermes":
            return call("send_to_agent", agent="relay", message="pass it on")
        return call("delegate", agent="hermes", message="pass it back")

    llm = ScriptedLLM(responder=respond)
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=tmp_path, max_depth=4)
        orch.agents.define(Agent(name="relay", system="relay", team=["hermes"]))
        with trio.fail_after(30):
            reply = await (await orch.session("hermes")).send("start")
    refusals = [r for r in llm.requests if results(r) and results(r)[0].is_error]
    assert len(refusals) == 1
    refusal = results(refusals[0])[0].content
    assert "levels deep" in refusal and "limit is 4" in refusal
    assert reply.startswith("stopped:") and "limit is 4" in reply


async def test_a_cached_child_follows_an_update_of_its_agent(tmp_path: Path) -> None:
    """After Mother updates an agent, Hermes's next send runs the new definition, with
    the child's conversation kept."""
    llm = by_role(
        {
            "hermes": [
                call("send_to_agent", agent="helper", message="one"),
                "sent one",
                call("send_to_agent", agent="helper", message="two"),
                "sent two",
            ],
            "mother": [call("update_agent", name="helper", system="helper2"), "updated"],
            "helper": ["first"],
            "helper2": ["second"],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        orch.agents.define(Agent(name="helper", system="helper"), mapping={"system": "helper"})
        hermes = await orch.session("hermes")
        await hermes.send("first task")
        await (await orch.session("mother")).send("update helper")
        await hermes.send("second task")
    assert [m.text for m in of(llm, "helper2")[0].messages] == ["one", "first", "two"]


async def test_a_running_team_lead_follows_an_update_of_a_member(tmp_path: Path) -> None:
    """After Mother updates a team member, a lead already running delegates to the new
    definition (members named by string are looked up at each delegation), with the
    member's conversation kept."""
    llm = by_role(
        {
            "lead": [
                call("delegate", agent="helper", message="one"),
                "sent one",
                call("delegate", agent="helper", message="two"),
                "sent two",
            ],
            "mother": [call("update_agent", name="helper", system="helper2"), "updated"],
            "helper": ["first"],
            "helper2": ["second"],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        orch.agents.define(Agent(name="helper", system="helper"), mapping={"system": "helper"})
        orch.agents.define(Agent(name="lead", system="lead", team=["helper"]))
        lead = await orch.session("lead")
        await lead.send("first task")
        await (await orch.session("mother")).send("update helper")
        with trio.fail_after(30):
            await lead.send("second task")
    assert of(llm, "helper2"), "the lead kept delegating to the old definition"
    assert [m.text for m in of(llm, "helper2")[0].messages][-1].endswith("two")


async def test_team_delegation_is_depth_limited_too() -> None:
    """Two agents in each other's team (ping ↔ pong) stop at the delegation depth limit."""

    def respond(request: LLMRequest) -> Step | str:
        if results(request):
            return f"stopped: {results(request)[0].content[:300]}"
        other = "pong" if request.system == "ping" else "ping"
        return call("delegate", agent=other, message="your turn")

    llm = ScriptedLLM(responder=respond)
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="ping", system="ping", team=["pong"]))
        orch.agents.define(Agent(name="pong", system="pong", team=["ping"]))
        with trio.fail_after(30):
            reply = await (await orch.session("ping")).send("start")
    assert reply.startswith("stopped:")
    refusals = [r for r in llm.requests if results(r) and results(r)[0].is_error]
    assert len(refusals) == 1 and "limit is 5" in results(refusals[0])[0].content


def test_mother_tools_have_schemas_a_model_can_fill() -> None:
    """create_agent's tools parameter is an optional array of strings."""
    from vega_trio.team._meta import mother_tools

    class Nothing:
        skill_directories: tuple[Path, ...] = ()

    tools: Tools = mother_tools(None, Nothing(), blueprints=Path("."))  # type: ignore[arg-type]
    schema = tools["create_agent"].input_schema
    assert schema["required"] == ["name", "system"]
    assert "array" in json.dumps(schema["properties"]["tools"])


async def test_a_deleted_agents_running_copy_is_stopped_on_the_next_send(tmp_path: Path) -> None:
    """After Mother deletes an agent Hermes used, his copy of it stops; the send fails."""
    llm = by_role(
        {
            "hermes": [
                call("send_to_agent", agent="helper", message="one"),
                "sent",
                call("send_to_agent", agent="helper", message="two"),
                "gone",
            ],
            "mother": [call("delete_agent", name="helper"), "deleted"],
            "helper": ["first"],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        orch.agents.define(Agent(name="helper", system="helper"), mapping={"system": "helper"})
        hermes = await orch.session("hermes")
        await hermes.send("first task")
        (node,) = [n for n in orch.spawn_tree() if n.process_id == hermes.id]
        copy = orch.get(node.children[0].process_id)
        await (await orch.session("mother")).send("delete helper")
        assert await hermes.send("second task") == "gone"
        with trio.fail_after(5):
            await copy.wait()
    (result,) = results(of(llm, "hermes")[3])
    assert result.is_error and "no agent named 'helper'" in result.content


async def test_mother_lists_tools_skills_and_mcp_servers(tmp_path: Path) -> None:
    """list_tools, list_skills (the document's skill directories) and list_mcp_servers."""
    from vega_trio.dsl._model import Settings

    skills = tmp_path / "skills"
    skills.mkdir()
    (skills / "research.skill.md").write_text(
        "---\nname: research\ndescription: How to research well\ntools: [lookup]\n---\n"
        "Check two sources.\n"
    )
    llm = by_role(
        {
            "mother": [
                Step.tool_calls(
                    [("list_tools", {}), ("list_skills", {}), ("list_mcp_servers", {})]
                ),
                "listed",
            ]
        }
    )
    async with open_orchestrator(llm=llm, tools=[lookup]) as orch:
        add_meta_agents(
            orch,
            blueprints=tmp_path / "bp",
            settings=Settings(skill_directories=("skills",)),
            base_dir=tmp_path,
        )
        await (await orch.session("mother")).send("what is there?")
    listed_tools, listed_skills, servers = results(of(llm, "mother")[1])
    assert json.loads(listed_tools.content) == [
        {"name": "lookup", "description": "Look something up."}
    ]
    assert json.loads(listed_skills.content) == [
        {"name": "research", "description": "How to research well", "tools": ["lookup"]}
    ]
    assert servers.content == "no MCP servers are configured"


@pytest.mark.slow
async def test_mother_lists_mcp_servers_and_gives_their_tools(tmp_path: Path) -> None:
    """A real MCP server: listed with its tools; an agent given server__tool gets it."""
    import sys

    from vega_trio.tools.mcp import MCPServerConfig

    config = MCPServerConfig(name="echo", command=sys.executable, args=[str(ECHO_SERVER)])
    llm = by_role(
        {
            "mother": [
                call("list_mcp_servers"),
                call("create_agent", name="echoer", system="echoer", tools=["echo__*"]),
                "made",
            ],
            "echoer": ["ok"],
        }
    )
    with trio.fail_after(30):
        async with open_orchestrator(llm=llm, mcp_servers=[config]) as orch:
            add_meta_agents(orch, blueprints=tmp_path)
            await (await orch.session("mother")).send("use the echo server")
            await (await orch.session("echoer")).send("hi")
    (servers,) = results(of(llm, "mother")[1])
    (server,) = json.loads(servers.content)
    assert (server["name"], server["status"]) == ("echo", "connected")
    assert "echo__echo" in server["tools"]
    assert "echo__echo" in [t.name for t in of(llm, "echoer")[0].tools]


@pytest.mark.parametrize("name", ["../evil", "a:b", "/abs", "x" * 100, "nul\x00"])
async def test_mother_refuses_agent_names_the_api_would_refuse(tmp_path: Path, name: str) -> None:
    """An agent name that is not a plain name is an error result; nothing is defined."""
    llm = by_role({"mother": [call("create_agent", name=name, system="x"), "no"]})
    async with open_orchestrator(llm=llm) as orch:
        add_meta_agents(orch, blueprints=tmp_path)
        await (await orch.session("mother")).send("make it")
        assert list(orch.agents) == ["mother", "hermes"]
    (result,) = results(of(llm, "mother")[1])
    assert result.is_error and "cannot be used" in result.content
