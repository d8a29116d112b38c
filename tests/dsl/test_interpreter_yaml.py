"""Workflows written as YAML, loaded by the loader and run by the interpreter: the
seed's report workflow and a file exercising every step type."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega_trio import ErrorClass
from vega_trio.dsl import WorkflowError, load_document, open_runner
from vega_trio.llm import LLMRequest
from vega_trio.testing import Step as Reply

from .test_interpreter import agent_of, routed, sent

SEED = """
name: Content Team
agents:
  researcher:
    model: claude-sonnet-4-20250514
    system: You are researcher.
  writer:
    model: claude-sonnet-4-20250514
    system: You are writer.
workflows:
  report:
    steps:
      - researcher:
          send: "Research: {{topic}}"
          save: findings
      - writer:
          send: "Write about: {{findings}}"
"""

CONTROL_FLOW = """
agents:
  checker:
    system: You are checker.
  writer:
    system: You are writer.
workflows:
  main:
    inputs:
      items: {type: array}
      limit: {type: integer, default: 2}
      mode: {type: string, enum: [fast, careful], default: careful}
    steps:
      - set: {count: 0, label: "{{ mode | upper }}"}
      - for: item in items
        save: drafts
        steps:
          - if: "loop.index <= limit"
            then:
              - writer: "Draft {{item}} ({{loop.index}}/{{loop.count}})"
            else:
              - set: {skipped: "{{item}}"}
      - parallel:
          - checker:
              send: "Check {{ drafts | first }}"
              format: json
              save: verdict
          - writer:
              send: "Summarise {{ drafts | length }} drafts"
              save: summary
      - try:
          - checker:
              send: "explode"
              timeout: 5s
        catch:
          - set: {failure: "{{ error_class }}"}
      - repeat:
          max: 5
          until: "'done' in status"
          steps:
            - writer:
                send: "Polish round {{ loop.index }}"
                save: status
      - workflow: wrap
        with: {text: "{{ summary }}"}
        save: wrapped
      - if: "verdict.ok and failure == 'invalid_request' and 'z' not in drafts"
        then:
          - return: "{{ label }}: {{ wrapped }}"
      - writer: "never reached"
  wrap:
    inputs:
      text: {type: string}
    steps:
      - writer: "Wrap {{ text }}"
    output: "[{{ text }}]"
"""


async def test_seed_report_workflow_runs_as_written(tmp_path: Path) -> None:
    """The seed's team.vega.yaml: the researcher's reply reaches the writer through
    {{findings}}, and the writer's reply is the result."""
    doc = load_document(SEED, file="team.vega.yaml")
    llm = routed()
    async with open_runner(doc, llm=llm, base_dir=tmp_path) as runner:
        result = await runner.run("report", {"topic": "Go concurrency"})
    assert sent(llm) == [
        "Research: Go concurrency",
        "Write about: researcher: Research: Go concurrency",
    ]
    assert result.output == "writer: Write about: researcher: Research: Go concurrency"
    assert [r.model for r in llm.requests] == ["claude-sonnet-4-20250514"] * 2


async def test_every_step_type_from_yaml(tmp_path: Path) -> None:
    """A file with set, for, if/else, parallel, format: json, try/catch, timeout,
    repeat/until, a sub-workflow and return produces the documented values."""

    def respond(agent: str, text: str, request: LLMRequest) -> Reply | str:
        if text == "explode":
            return Reply.error(ErrorClass.INVALID_REQUEST, "refused")
        if agent == "checker":
            return '```json\n{"ok": true}\n```'
        if text.startswith("Polish"):
            return "done" if text.endswith("3") else "more"
        return text.lower()

    doc = load_document(CONTROL_FLOW, file="control-flow.vega.yaml")
    llm = routed(respond)
    async with open_runner(doc, llm=llm, base_dir=tmp_path) as runner:
        result = await runner.run("main", {"items": '["a", "b", "c"]'})
    variables = result.variables
    assert variables["drafts"] == ["draft a (1/3)", "draft b (2/3)", "c"]
    assert variables["verdict"] == {"ok": True}
    assert variables["summary"] == "summarise 3 drafts"
    assert variables["failure"] == "invalid_request"
    assert variables["status"] == "done"
    assert variables["wrapped"] == "[summarise 3 drafts]"
    assert result.output == "CAREFUL: [summarise 3 drafts]"
    writer = sent(llm, "writer")
    assert writer[-1] == "Wrap summarise 3 drafts"
    assert "never reached" not in writer
    assert [t for t in writer if t.startswith("Polish")] == [f"Polish round {i}" for i in (1, 2, 3)]
    assert [agent_of(r) for r in llm.requests].count("checker") == 2


async def test_yaml_enum_and_failure_position(tmp_path: Path) -> None:
    """An enum violation is refused; a failing step's error carries its file position."""
    doc = load_document(CONTROL_FLOW, file="control-flow.vega.yaml")
    async with open_runner(doc, llm=routed(), base_dir=tmp_path) as runner:
        with pytest.raises(WorkflowError, match="'fast', 'careful'"):
            await runner.run("main", {"items": "[]", "mode": "sloppy"})
    seed = load_document(SEED, file="team.vega.yaml")
    llm = routed(lambda agent, text, request: Reply.error(ErrorClass.AUTHENTICATION, "bad key"))
    async with open_runner(seed, llm=llm, base_dir=tmp_path) as runner:
        with pytest.raises(WorkflowError) as info:
            await runner.run("report", {"topic": "x"})
    assert str(info.value).startswith("team.vega.yaml:")
    assert "workflows.report.steps[0] (researcher)" in str(info.value)
    assert "bad key" in str(info.value)
