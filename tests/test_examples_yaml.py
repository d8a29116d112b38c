"""The ``examples/*.vega.yaml`` files: each validates without errors and every workflow
runs offline (``--llm scripted``) through ``vega-trio run``'s own function, producing
what the example promises."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio

from vega_trio._cli import run_command, validate_command
from vega_trio.dsl._loader import load_file

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
FILES = sorted(EXAMPLES_DIR.glob("*.vega.yaml"))
EXPECTED = {
    "team",
    "simple-agent",
    "code-review",
    "dev-team",
    "tools-demo",
    "mcp-demo",
    "skills-demo",
    "supervision-demo",
    "control-flow",
}
# Variables a workflow needs that it does not default (as its header comment shows).
TASKS = {
    ("team", "report"): ["topic=Go concurrency"],
    ("code-review", "review"): ["Write a binary search function"],
    ("control-flow", "polish"): ["text=Trio runs tasks in nurseries."],
}
# The seed's file, as written, reads {{topic}} that only --task defines: a warning.
WARNINGS = {"team": 1}
RUN_LIMIT = 60.0


def _name(path: Path) -> str:
    return path.name.removesuffix(".vega.yaml")


def _workflows() -> list[tuple[str, str]]:
    return [(_name(path), w.name) for path in FILES for w in load_file(path).workflows]


def test_every_example_is_there() -> None:
    """The nine documented YAML examples exist (the glob is not silently empty)."""
    assert {_name(path) for path in FILES} == EXPECTED


@pytest.mark.parametrize("path", FILES, ids=_name)
async def test_example_validates(path: Path) -> None:
    """`vega-trio validate` finds no errors (and no warnings but the seed's) in it."""
    out = io.StringIO()
    status = await validate_command(path, verbose=True, out=out)
    lines = out.getvalue().splitlines()
    assert status == 0, out.getvalue()
    warnings = WARNINGS.get(_name(path), 0)
    verdict = f"{warnings} warning" + ("" if warnings == 1 else "s")
    assert lines[-1] == f"{path}: valid (0 errors, {verdict})", out.getvalue()
    assert lines[warnings].startswith("document: ")


async def _run(name: str, workflow: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(RUN_LIMIT):
        status = await run_command(
            EXAMPLES_DIR / f"{name}.vega.yaml",
            workflow=workflow,
            tasks=TASKS.get((name, workflow), ()),
            output="json",
            llm="scripted",
            out=out,
            err=err,
        )
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("name", "workflow"), _workflows(), ids=lambda v: str(v))
async def test_example_workflow_runs_offline(name: str, workflow: str) -> None:
    """Every workflow of every example runs offline to a non-empty result, with progress."""
    status, out, err = await _run(name, workflow)
    assert status == 0, err
    result = json.loads(out)
    assert result["output"], err
    assert result["steps_run"] >= 1
    assert f"workflow {workflow} done:" in err


async def test_team_report_passes_findings_to_the_writer() -> None:
    """The seed's report workflow: the researcher's reply reaches the writer's message."""
    status, out, err = await _run("team", "report")
    assert status == 0, err
    result = json.loads(out)
    assert result["variables"]["findings"] == "[researcher] Research Go concurrency"
    assert result["output"] == "[writer] Summarise: [researcher] Research Go concurrency"


async def test_tools_demo_exec_is_injection_safe() -> None:
    """The exec tool gets the whole text as one argument: shell syntax is just echoed."""
    status, out, err = await _run("tools-demo", "echo")
    assert status == 0, err
    assert json.loads(out)["output"] == "[helper] shout returned: hello; rm -rf / && $(whoami)"


async def test_mcp_demo_calls_the_stdio_server() -> None:
    """Both MCP tools are called through the stdio server, which keeps the note."""
    status, out, err = await _run("mcp-demo", "notes")
    assert status == 0, err
    output = json.loads(out)["output"]
    assert "notes__add_note returned: noted (1 note(s) kept)" in output
    assert "notes__list_notes returned: buy milk" in output


async def test_dev_team_pm_delegates_to_the_reviewer() -> None:
    """The PM's delegate call reaches the reviewer, whose reply comes back to the PM."""
    status, out, err = await _run("dev-team", "build")
    assert status == 0, err
    decision = json.loads(out)["variables"]["decision"]
    assert decision.startswith("[pm] delegate returned: [reviewer]"), decision
    assert "[reviewer] What is the biggest risk in shipping a todo list" in decision


async def test_control_flow_result() -> None:
    """control-flow's plan workflow goes through every step type to its return value."""
    status, out, err = await _run("control-flow", "plan")
    assert status == 0, err
    result = json.loads(out)
    variables = result["variables"]
    assert variables["subtopics"] == ["planner item 1", "planner item 2", "planner item 3"]
    assert len(variables["paragraphs"]) == 3
    assert variables["paragraphs"][2] == (
        "[writer] Part 3 of 3 (plain): write about planner item 3"
    )
    assert variables["tone"] == "relaxed"
    assert variables["attempts"] == "xx"
    assert result["output"].startswith("Notes on structured concurrency (relaxed, 2 check(s))")
    assert "[writer] Improve (round 2)" in result["output"]
