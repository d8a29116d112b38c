"""Agents using the orchestrator's tools by name and glob: the sandbox's built-ins, MCP
servers' tools (the npm reference filesystem server, a real subprocess) and plain functions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio import Agent, ToolNotFound, open_orchestrator
from vega_trio.llm import ToolResultBlock
from vega_trio.testing import ScriptedLLM, Step
from vega_trio.tools import MCPServerConfig


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def tool_results(llm: ScriptedLLM) -> list[ToolResultBlock]:
    """Every tool result the model was shown, in order."""
    return [
        block
        for request in llm.requests
        for block in request.messages[-1].content
        if isinstance(block, ToolResultBlock)
    ]


async def test_agents_pick_orchestrator_tools_by_name() -> None:
    """Agent(tools=["add"]) gets the orchestrator's tool; the model sees its schema."""
    llm = ScriptedLLM([Step.tool_call("add", {"a": 2, "b": 3}), Step.text("5")])
    async with open_orchestrator(llm=llm, tools=[add]) as orch:
        proc = await orch.spawn(Agent(name="calc", tools=["add"]))
        assert await proc.send("2+3?") == "5"
    assert [t.name for t in llm.requests[0].tools] == ["add"]
    assert tool_results(llm)[0].content == "5"


async def test_unknown_tool_names_fail_the_spawn_clearly() -> None:
    """A name nobody registered, or a glob that matches nothing, fails at spawn with a hint."""
    async with open_orchestrator(llm=ScriptedLLM(), tools=[add]) as orch:
        with pytest.raises(ToolNotFound, match=r"agent 'a'.*'ad'"):
            await orch.spawn(Agent(name="a", tools=["ad"]))
        with pytest.raises(ToolNotFound, match=r"'fs__\*', but no tool matches; known tools: add"):
            await orch.spawn(Agent(name="a", tools=["fs__*"]))


async def test_sandbox_built_ins_refuse_paths_outside_and_the_model_sees_why(
    tmp_path: Path,
) -> None:
    """With sandbox=, an agent writes and reads inside it; a read outside is refused and
    the refusal reaches the model as an error tool result."""
    box = tmp_path / "box"
    box.mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    llm = ScriptedLLM(
        [
            Step.tool_call("write_file", {"path": "notes/a.txt", "content": "hello"}),
            Step.tool_call("read_file", {"path": "notes/a.txt"}),
            Step.tool_call("read_file", {"path": "../secret.txt"}),
            Step.text("done"),
        ]
    )
    agent = Agent(name="clerk", tools=["read_file", "write_file"])
    async with open_orchestrator(llm=llm, sandbox=box) as orch:
        proc = await orch.spawn(agent)
        with trio.fail_after(30):
            assert await proc.send("work") == "done"
    wrote, read, refused = tool_results(llm)
    assert (box / "notes" / "a.txt").read_text() == "hello" and not wrote.is_error
    assert "hello" in read.content and not read.is_error
    assert refused.is_error and "outside the sandbox" in refused.content
    assert "top secret" not in refused.content


@pytest.mark.slow
async def test_filesystem_mcp_server_and_built_ins_together(
    filesystem_server_js: Path, tmp_path: Path
) -> None:
    """Acceptance: an agent given filesystem__* (the npm server, a real subprocess) and the
    built-ins reads and writes inside its sandbox, and both refuse a path outside it — the
    model sees each refusal."""
    box = tmp_path / "box"
    box.mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    node = shutil.which("node")
    assert node is not None
    server = MCPServerConfig(
        name="filesystem", command=node, args=[str(filesystem_server_js), str(box)], timeout=30
    )
    inside, outside = str(box / "mcp.txt"), str(tmp_path / "secret.txt")
    llm = ScriptedLLM(
        [
            Step.tool_call("filesystem__write_file", {"path": inside, "content": "from mcp"}),
            Step.tool_call("read_file", {"path": "mcp.txt"}),
            Step.tool_call("write_file", {"path": "builtin.txt", "content": "from builtin"}),
            Step.tool_call("filesystem__read_text_file", {"path": str(box / "builtin.txt")}),
            Step.tool_call("filesystem__read_text_file", {"path": outside}),
            Step.tool_call("read_file", {"path": outside}),
            Step.text("all done"),
        ]
    )
    agent = Agent(name="archivist", tools=["filesystem__*", "read_file", "write_file"])
    with trio.fail_after(60):
        async with open_orchestrator(llm=llm, sandbox=box, mcp_servers=[server]) as orch:
            assert orch.mcp is not None and orch.mcp["filesystem"].status == "connected"
            proc = await orch.spawn(agent)
            assert await proc.send("file things") == "all done"
            names = [t.name for t in llm.requests[0].tools]
    assert "filesystem__read_text_file" in names and "read_file" in names
    results = tool_results(llm)
    assert [r.is_error for r in results] == [False, False, False, False, True, True]
    assert "from mcp" in results[1].content
    assert "from builtin" in results[3].content
    assert all("top secret" not in r.content for r in results)
    assert "outside the sandbox" in results[5].content
    mcp_refusal: Any = results[4].content
    assert "denied" in mcp_refusal.lower() or "outside" in mcp_refusal.lower()
