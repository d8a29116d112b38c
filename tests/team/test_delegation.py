"""Teams: delegate restricted to the team, context enrichment, delegates in the spawn tree,
nested streaming named after the delegate, the shared blackboard and group broadcast."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable

import pytest
import trio

from vega_trio import Agent, AgentProcess, open_orchestrator
from vega_trio.agent import Delegation, TextDeltaEvent, ToolEndEvent, ToolStartEvent
from vega_trio.llm import LLMRequest, ToolResultBlock
from vega_trio.team import format_context
from vega_trio.testing import ScriptedLLM, Step


def by_agent(scripts: dict[str, Iterable[Step | str]]) -> ScriptedLLM:
    """One scripted LLM for several agents: each agent's system prompt is its name."""
    queues = {name: collections.deque(steps) for name, steps in scripts.items()}

    def respond(request: LLMRequest) -> Step | str:
        return queues[request.system].popleft()

    return ScriptedLLM(responder=respond)


def requests_of(llm: ScriptedLLM, agent: str) -> list[LLMRequest]:
    """The requests one agent made."""
    return [r for r in llm.requests if r.system == agent]


def last_tool_result(request: LLMRequest) -> ToolResultBlock:
    """The tool result a request carried back to the model."""
    block = request.messages[-1].content[0]
    assert isinstance(block, ToolResultBlock)
    return block


RESEARCHER = Agent(name="researcher", system="researcher", description="finds facts")
WRITER = Agent(name="writer", system="writer", description="writes prose")


async def test_delegate_runs_a_member_as_a_child_process_and_returns_its_reply() -> None:
    """The lead's delegate call reaches the researcher, a child of the lead in the spawn
    tree, and the reply comes back as the tool result."""
    llm = by_agent(
        {
            "lead": [
                Step.tool_call("delegate", {"agent": "researcher", "message": "Find X."}),
                "X is 42, says my researcher.",
            ],
            "researcher": ["X is 42."],
        }
    )
    lead = Agent(name="lead", system="lead", team=[RESEARCHER, WRITER])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(lead)
        assert await proc.send("What is X?") == "X is 42, says my researcher."
        (node,) = orch.spawn_tree()
        assert [child.agent_name for child in node.children] == ["researcher"]
    schema = next(t for t in requests_of(llm, "lead")[0].tools if t.name == "delegate")
    assert schema.input_schema["properties"]["agent"]["enum"] == ["researcher", "writer"]
    assert "researcher: finds facts" in schema.description
    assert requests_of(llm, "researcher")[0].messages[-1].text == "Find X."
    assert last_tool_result(requests_of(llm, "lead")[1]).content == "X is 42."


async def test_delegation_outside_the_team_is_refused_and_the_model_sees_it() -> None:
    """Naming an agent outside the team is an error tool result; nothing is spawned."""
    llm = by_agent(
        {
            "lead": [
                Step.tool_call("delegate", {"agent": "intruder", "message": "hi"}),
                "ok",
            ],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        await orch.spawn(Agent(name="intruder", system="intruder"))
        proc = await orch.spawn(Agent(name="lead", system="lead", team=[RESEARCHER]))
        assert await proc.send("go") == "ok"
        assert proc.children == []
    result = last_tool_result(requests_of(llm, "lead")[1])
    assert result.is_error
    assert "must be one of \"researcher\", got string 'intruder'" in result.content


async def test_the_delegate_tool_itself_refuses_strangers() -> None:
    """Even past the schema (a middleware that drops validation, say), the tool refuses."""
    from vega_trio.team import DelegationRefused, team_tools

    tools = team_tools(Agent(name="lead"), {"researcher": RESEARCHER}, spawn=None)  # type: ignore[arg-type]
    delegate = tools["delegate"]
    with pytest.raises(DelegationRefused, match="'x' is not in the team of 'lead'"):
        await delegate.handler({"agent": "x", "message": "hi"})


async def test_recent_turns_are_forwarded_in_a_delimited_block() -> None:
    """context_window=3 forwards the last three user/assistant turns, the message being
    answered included, before the delegated message."""
    llm = by_agent(
        {
            "lead": [
                "Noted.",
                Step.tool_call("delegate", {"agent": "researcher", "message": "Check it."}),
                "Done.",
            ],
            "researcher": ["Checked."],
        }
    )
    lead = Agent(
        name="lead", system="lead", team=[RESEARCHER], delegation=Delegation(context_window=3)
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(lead)
        await proc.send("The budget is 5k.")
        await proc.send("Is the budget right?")
    forwarded = requests_of(llm, "researcher")[0].messages[-1].text
    assert forwarded == (
        "--- context from lead (recent conversation, oldest first) ---\n"
        "[user] The budget is 5k.\n"
        "[assistant] Noted.\n"
        "[user] Is the budget right?\n"
        "--- end of context ---\n\n"
        "Check it."
    )


def test_format_context_filters_roles_and_window() -> None:
    """include_roles and the window pick the turns; no turns, no block."""
    from vega_trio.llm import Message

    turns = [Message.user("a"), Message.assistant("b"), Message.user("c")]
    block = format_context(turns, caller="lead", window=5, include_roles=["user"])
    assert "[user] a" in block and "[assistant]" not in block
    assert format_context(turns, caller="lead", window=0, include_roles=["user"]) == ""
    assert format_context([], caller="lead", window=3, include_roles=["user"]) == ""
    with pytest.raises(ValueError, match="include_roles"):
        Delegation(include_roles=("system",))
    with pytest.raises(ValueError, match="context_window"):
        Delegation(context_window=-1)


async def test_a_delegate_is_reused_and_keeps_its_conversation() -> None:
    """Two delegations to the same member go to the same child process, which remembers."""
    llm = by_agent(
        {
            "lead": [
                Step.tool_call("delegate", {"agent": "researcher", "message": "one"}),
                Step.tool_call("delegate", {"agent": "researcher", "message": "two"}),
                "done",
            ],
            "researcher": ["r1", "r2"],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="lead", system="lead", team=[RESEARCHER]))
        await proc.send("go")
        (child_id,) = proc.children
        child = orch.get(child_id)
        assert isinstance(child, AgentProcess)
        assert [m.text for m in child.history] == ["one", "r1", "two", "r2"]


async def test_team_members_share_a_blackboard() -> None:
    """With blackboard=True the lead writes, the delegate (which has no bb tools of its own)
    reads and lists the same board."""
    llm = by_agent(
        {
            "lead": [
                Step.tool_call("bb_write", {"key": "plan", "value": "ship friday"}),
                Step.tool_call("delegate", {"agent": "writer", "message": "Read the plan."}),
                "done",
            ],
            "writer": [
                Step.tool_call("bb_list", {}),
                Step.tool_call("bb_read", {"key": "plan"}),
                Step.tool_call("bb_read", {"key": "nope"}),
                Step.tool_call("bb_write", {"key": "draft", "value": "we ship friday"}),
                "The plan is to ship friday.",
            ],
        }
    )
    lead = Agent(name="lead", system="lead", team=[WRITER], delegation=Delegation(blackboard=True))
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(lead)
        assert await proc.send("go") == "done"
        group = f"team:{proc.id}"  # the lead's team group
        board = orch.group(group).blackboard
        assert board.snapshot() == {"plan": "ship friday", "draft": "we ship friday"}
    writer = requests_of(llm, "writer")
    assert {t.name for t in writer[0].tools} == {"bb_read", "bb_write", "bb_list"}
    assert json.loads(last_tool_result(writer[1]).content) == ["plan"]
    assert last_tool_result(writer[2]).content == "ship friday"
    missing = last_tool_result(writer[3])
    assert missing.is_error and "no entry 'nope'" in missing.content


async def test_a_streaming_lead_forwards_the_delegates_events_with_its_name() -> None:
    """When the lead streams, the delegate's text and tool events arrive in the lead's
    stream with agent='researcher'; the lead's own events carry no agent name."""

    def lookup(topic: str) -> str:
        """Look a topic up."""
        return f"facts about {topic}"

    researcher = Agent(name="researcher", system="researcher", tools=[lookup])
    llm = by_agent(
        {
            "lead": [
                Step.tool_call("delegate", {"agent": "researcher", "message": "trio"}),
                "Summary.",
            ],
            "researcher": [Step.tool_call("lookup", {"topic": "trio"}), "Trio is neat."],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="lead", system="lead", team=[researcher]))
        async with proc.send_stream_rich("tell me") as stream:
            events = [event async for event in stream]
    nested = [e for e in events if getattr(e, "agent", None) == "researcher"]
    assert [type(e) for e in nested] == [ToolStartEvent, ToolEndEvent] + [TextDeltaEvent] * len(
        [e for e in nested if isinstance(e, TextDeltaEvent)]
    )
    assert "".join(e.delta for e in nested if isinstance(e, TextDeltaEvent)) == "Trio is neat."
    own = [e for e in events if isinstance(e, ToolEndEvent) and e.agent is None]
    assert [e.tool_name for e in own] == ["delegate"] and own[0].result == "Trio is neat."
    assert nested[0].to_dict()["agent"] == "researcher"
    assert "agent" not in own[0].to_dict()
    assert stream.text == "Summary."


async def test_team_members_may_be_named() -> None:
    """team=["researcher"] resolves through the orchestrator's agents; an unknown name fails
    the spawn, naming the known agents."""
    llm = by_agent(
        {
            "lead": [Step.tool_call("delegate", {"agent": "researcher", "message": "q"}), "ok"],
            "researcher": ["a"],
        }
    )
    async with open_orchestrator(llm=llm) as orch:
        with pytest.raises(
            ValueError,
            match="'researcher' in its team, but no agent of that name is defined",
        ):
            await orch.spawn(Agent(name="lead", system="lead", team=["researcher"]))
        orch.agents.define(RESEARCHER)
        proc = await orch.spawn(Agent(name="lead", system="lead", team=["researcher"]))
        assert await proc.send("go") == "ok"
    with pytest.raises(ValueError, match="own team"):
        Agent(name="solo", team=["solo"])


async def test_broadcast_sends_to_every_member_of_a_group() -> None:
    """orch.broadcast asks every live member of a group and returns replies by process id."""
    llm = ScriptedLLM.echo("heard: ")
    async with open_orchestrator(llm=llm) as orch:
        procs = [await orch.spawn(Agent(name=f"m{i}")) for i in range(3)]
        for proc in procs:
            orch.group("reviewers").join(proc)
        with trio.fail_after(5):
            replies = await orch.broadcast("reviewers", "standup", exclude=procs[2])
    assert replies == {procs[0].id: "heard: standup", procs[1].id: "heard: standup"}
