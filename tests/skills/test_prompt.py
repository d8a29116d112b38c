"""Injecting active skills into the system prompt, skill tools, and SkillsPrompt on a real agent."""

from __future__ import annotations

import pytest

import vega_trio
from vega_trio import Agent, open_orchestrator
from vega_trio.llm import Message
from vega_trio.runtime import Process
from vega_trio.skills import (
    ACTIVE_SKILLS_HEADING,
    Skill,
    SkillError,
    SkillSet,
    SkillsPrompt,
    SkillTrigger,
    current_message_text,
    render_skills_prompt,
    skill_tool_names,
)
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools import Tool, Tools

REVIEW = Skill(
    name="code-review",
    description="Expert code review guidance",
    instructions="# Code Review Expert\n\nCheck security first.",
    tools=("read_file",),
    triggers=(SkillTrigger.keyword("review", "PR"),),
)
INCIDENT = Skill(
    name="incident-triage",
    description="Triage production incidents",
    instructions="Stabilise before you diagnose.",
    tools=("pager__*",),
    triggers=(SkillTrigger.regex(r"\b(is|went) down\b"),),
)
STYLE = Skill(
    name="plain-language", instructions="Use plain words.", triggers=[SkillTrigger.always()]
)
SKILLS = SkillSet([REVIEW, INCIDENT, STYLE])


def test_render_format() -> None:
    """The base prompt comes first, then '# Active Skills' with name, description, instructions."""
    prompt = render_skills_prompt("You are helpful.\n", [STYLE, REVIEW])
    assert prompt == (
        "You are helpful.\n"
        "\n"
        "# Active Skills\n"
        "\n"
        "The skills below match the current message. "
        "Follow their instructions where they apply.\n"
        "\n"
        "## plain-language\n"
        "\n"
        "Use plain words.\n"
        "\n"
        "## code-review\n"
        "\n"
        "Expert code review guidance\n"
        "\n"
        "# Code Review Expert\n"
        "\n"
        "Check security first."
    )


def test_render_without_skills_or_base() -> None:
    """No active skills leaves the base unchanged; an empty base gives just the section."""
    assert render_skills_prompt("Base.", []) == "Base."
    assert render_skills_prompt("", [STYLE]).startswith(f"{ACTIVE_SKILLS_HEADING}\n\n")


def test_skill_tool_names_in_registry_order_with_globs() -> None:
    """Active skills bring their tools (names or globs), each once, in the registry's order."""
    tools = Tools()
    for name in ("pager__ack", "read_file", "write_file", "pager__page"):
        tools.register(lambda: "ok", name=name, description=name)
    assert skill_tool_names(tools, [INCIDENT, REVIEW]) == ("pager__ack", "read_file", "pager__page")
    assert skill_tool_names(tools, [STYLE]) == ()
    assert skill_tool_names(Tools(), [INCIDENT]) == ()  # a glob may match nothing


def test_skill_tool_names_reports_unregistered_tools() -> None:
    """A skill naming a tool that is not registered is an error naming skill, tool and fix."""
    tools = Tools()
    tools.register(lambda: "ok", name="write_file", description="w")
    with pytest.raises(
        SkillError,
        match=r"skill 'code-review' \(<skill 'code-review'>\) lists tool 'read_file', but no such "
        r"tool is registered \(registered tools: write_file\); register the tool, or remove it",
    ):
        skill_tool_names(tools, [REVIEW])


def test_skills_prompt_selects_per_message() -> None:
    """SkillsPrompt.select picks the best skills for a message, capped by max_active."""
    prompt = SkillsPrompt("Base.", SKILLS, max_active=2)
    assert prompt.select("review my PR") == (STYLE, REVIEW)
    assert SkillsPrompt("Base.", [REVIEW, STYLE], max_active=1).select("review") == (STYLE,)
    assert prompt.max_active == 2 and prompt.skills is SKILLS and prompt.base == "Base."


def test_skills_prompt_validates_its_arguments() -> None:
    """A bad base, max_active or duplicate skill names are rejected at construction."""
    with pytest.raises(TypeError, match="SkillsPrompt base must be a str or a callable"):
        SkillsPrompt(42, SKILLS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_active must be a whole number"):
        SkillsPrompt("Base.", SKILLS, max_active=-1)
    with pytest.raises(SkillError, match="two skills are named"):
        SkillsPrompt("Base.", [REVIEW, REVIEW])


def read_file(path: str) -> str:
    """Read a file."""
    return f"contents of {path}"


def page(who: str) -> str:
    """Page someone."""
    return f"paged {who}"


PAGER = Tool.from_function(page, name="pager__page")


async def test_agent_run_injects_the_skills_for_each_message() -> None:
    """A real agent's LLM requests carry the skills matching the message being answered,
    and the tools of the active skills only (read_file for the review, pager__* for the
    incident, none for plain chat)."""
    llm = ScriptedLLM(["Looks good.", "Rolling back.", "Hi!"])
    agent = Agent(name="helper", system=SkillsPrompt("You are helpful.", SKILLS))
    async with open_orchestrator(llm=llm, tools=[read_file, PAGER]) as orch:
        proc = await orch.spawn(agent)
        assert await proc.send("Please review my PR") == "Looks good."
        assert await proc.send("The API went down!") == "Rolling back."
        assert await proc.send("hello") == "Hi!"
    first, second, third = (r.system for r in llm.requests)
    assert first.startswith("You are helpful.\n\n# Active Skills\n")
    assert "## code-review" in first and "Check security first." in first
    assert "## plain-language" in first and "incident-triage" not in first
    assert "## incident-triage" in second and "code-review" not in second
    assert "## plain-language" in third and "code-review" not in third
    assert "incident-triage" not in third
    assert [[t.name for t in r.tools] for r in llm.requests] == [["read_file"], ["pager__page"], []]


async def test_a_skill_tool_missing_everywhere_is_an_error_at_spawn() -> None:
    """A skill naming a tool nobody registered fails the spawn, naming skill and tool."""
    agent = Agent(name="helper", system=SkillsPrompt("Base.", SKILLS))
    async with open_orchestrator(llm=ScriptedLLM()) as orch:
        with pytest.raises(SkillError, match="lists tool 'read_file'"):
            await orch.spawn(agent)


async def test_the_process_exposes_the_message_it_is_answering() -> None:
    """AgentProcess.current_message is the user message during a send, None between sends."""
    seen: list[str | None] = []

    def peek() -> str:
        """Look at the message being answered."""
        proc = vega_trio.current_process()
        message = getattr(proc, "current_message", None)
        seen.append(None if message is None else message.text)
        return "ok"

    llm = ScriptedLLM([Step.tool_call("peek", {}), Step.text("done")])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", tools=[peek]))
        assert proc.current_message is None
        assert await proc.send("what am I answering?") == "done"
        assert proc.current_message is None
    assert seen == ["what am I answering?"]


async def test_skills_stay_active_through_the_tool_loop() -> None:
    """Every LLM round of one send gets the same skills, also after tool results come back."""

    def lookup(topic: str) -> str:
        """Look something up."""
        return f"notes on {topic}"

    llm = ScriptedLLM([Step.tool_call("lookup", {"topic": "PR 7"}), Step.text("Reviewed.")])
    agent = Agent(name="helper", system=SkillsPrompt("Base.", SKILLS), tools=[lookup])
    async with open_orchestrator(llm=llm, tools=[read_file, PAGER]) as orch:
        proc = await orch.spawn(agent)
        assert await proc.send("review PR 7") == "Reviewed."
    assert len(llm.requests) == 2
    assert llm.requests[1].messages[-1].tool_results  # the second round answers a tool call
    assert llm.requests[0].system == llm.requests[1].system
    assert "## code-review" in llm.requests[1].system


async def test_base_prompt_may_be_a_callable_taking_the_process() -> None:
    """A callable base gets the process, like an Agent's own callable system prompt."""
    seen: list[Process] = []

    def base(process: Process) -> str:
        seen.append(process)
        return f"You are {process.agent_name}."

    llm = ScriptedLLM(["ok", "ok"])
    agents = [
        Agent(name="a", system=SkillsPrompt(base, SKILLS)),
        Agent(name="b", system=SkillsPrompt(lambda: "No process.", SKILLS, max_active=0)),
    ]
    async with open_orchestrator(llm=llm, tools=[read_file, PAGER]) as orch:
        for agent in agents:
            proc = await orch.spawn(agent)
            await proc.send("review this")
    assert llm.requests[0].system.startswith("You are a.\n\n# Active Skills")
    assert [p.agent_name for p in seen] == ["a"]
    assert llm.requests[1].system == "No process."  # max_active=0 turns skills off


async def test_current_message_text_outside_a_send_uses_history() -> None:
    """Between sends, the current message is the latest user text in the history."""
    llm = ScriptedLLM(["first reply"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a"))
        assert current_message_text(proc) == ""
        await proc.send(Message.user("the question"))
        assert current_message_text(proc) == "the question"


async def test_tool_names_follow_the_active_skills() -> None:
    """SkillsPrompt.tool_names gives the tools of the skills active for the current message."""
    registry = Tools()
    for name in ("read_file", "pager__ack"):
        registry.register(lambda: "ok", name=name, description=name)
    prompt = SkillsPrompt("Base.", SKILLS)
    seen: list[tuple[str, ...]] = []

    def system(process: Process) -> str:
        seen.append(prompt.tool_names(process, registry))
        return prompt(process)

    llm = ScriptedLLM(["ok", "ok"])
    async with open_orchestrator(llm=llm) as orch:
        proc = await orch.spawn(Agent(name="a", system=system))
        await proc.send("review it")
        await proc.send("prod is down")
    assert seen == [("read_file",), ("pager__ack",)]
