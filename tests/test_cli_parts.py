"""The CLI's building blocks that need no document: ``--task``/``--input`` parsing, the
model choice, one-line causes, the offline model, and click's argument parsing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from vega_trio._cli import UsageProblem, choose_llm, offline_llm, parse_inputs
from vega_trio._cli._common import describe_failure, one_line_cause, symbols
from vega_trio.cli import main
from vega_trio.dsl import TemplateError
from vega_trio.llm._messages import Message, ToolResultBlock, ToolUseBlock
from vega_trio.llm._protocol import LLMRequest, ToolSchema

# -- --task and --input ------------------------------------------------------------------


def test_task_forms() -> None:
    """`k=v` sets k (splitting at the first =); text without a name before = sets `task`."""
    assert parse_inputs(["topic=Go concurrency", "expr=a=b"], None) == {
        "topic": "Go concurrency",
        "expr": "a=b",
    }
    assert parse_inputs(["Write a binary search function"], None) == {
        "task": "Write a binary search function"
    }
    assert parse_inputs(["compute x=1 please"], None) == {"task": "compute x=1 please"}
    assert parse_inputs(["my-var=1", "empty="], None) == {"my-var": "1", "empty": ""}


def test_task_twice_is_an_error() -> None:
    """Two --task for one variable are refused, never silently overwritten."""
    with pytest.raises(UsageProblem, match=r"--task sets 'topic' twice"):
        parse_inputs(["topic=a", "topic=b"], None)
    with pytest.raises(UsageProblem, match=r"sets 'task' twice"):
        parse_inputs(["do this", "task=that"], None)


def test_input_file_merged_and_task_wins(tmp_path: Path) -> None:
    """--input gives variables of any JSON type; a --task for the same name wins."""
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"topic": "from file", "items": [1, 2], "n": 3}))
    assert parse_inputs(["topic=from flag"], data) == {
        "topic": "from flag",
        "items": [1, 2],
        "n": 3,
    }


@pytest.mark.parametrize(
    ("content", "problem"),
    [("[1, 2]", "expected a JSON object of variables, got list"), ("{oops", "not valid JSON")],
)
def test_input_file_must_be_a_json_object(tmp_path: Path, content: str, problem: str) -> None:
    """A --input file that is not a JSON object is a usage problem naming the file."""
    data = tmp_path / "in.json"
    data.write_text(content)
    with pytest.raises(UsageProblem, match=problem) as info:
        parse_inputs([], data)
    assert str(data) in str(info.value)


# -- the model choice --------------------------------------------------------------------


def test_llm_choice() -> None:
    """--llm wins, then VEGA_LLM, then Anthropic when a key or base URL is set, else scripted."""
    assert choose_llm("scripted", {"ANTHROPIC_API_KEY": "k"}) == ("scripted", False)
    assert choose_llm(None, {"VEGA_LLM": "scripted", "ANTHROPIC_API_KEY": "k"}) == (
        "scripted",
        False,
    )
    assert choose_llm(None, {"ANTHROPIC_API_KEY": "k"}) == ("anthropic", False)
    assert choose_llm(None, {"ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}) == ("anthropic", False)
    assert choose_llm(None, {}) == ("scripted", True)
    with pytest.raises(UsageProblem, match=r"VEGA_LLM='scriptd'.*did you mean 'scripted'"):
        choose_llm(None, {"VEGA_LLM": "scriptd"})


# -- errors and output -------------------------------------------------------------------


def test_one_line_cause() -> None:
    """A failure becomes one line: first message line and hint (plus the class for errors
    that are not vega-trio's own); groups are unwrapped."""
    try:
        from vega_trio.dsl import Template

        Template.parse("Summarise: {{ findings }}").render({}, where="workflows.r.steps[1]")
    except TemplateError as exc:
        cause = one_line_cause(ExceptionGroup("run failed", [exc]))
    assert "\n" not in cause
    assert cause.startswith("in workflows.r.steps[1]: undefined variable 'findings'")
    assert "default" in cause  # the hint says how to give a fallback
    assert one_line_cause(RuntimeError("")) == "RuntimeError: (no message)"


def test_describe_failure_keeps_the_lines() -> None:
    """The whole message: the caret diagram keeps its lines (the caret under the column),
    the class is named for errors that are not vega-trio's own; groups are unwrapped."""
    try:
        from vega_trio.dsl import Template

        Template.parse("Summarise: {{ findings }}").render({}, where="workflows.r.steps[1]")
    except TemplateError as exc:
        text = describe_failure(ExceptionGroup("run failed", [exc]))
    lines = text.splitlines()
    assert lines[0] == "in workflows.r.steps[1]: undefined variable 'findings'"
    assert lines[1] == "    Summarise: {{ findings }}"
    assert lines[2].index("^") == lines[1].index("findings")
    assert "default" in lines[3]
    assert describe_failure(RuntimeError("")) == "RuntimeError: (no message)"
    assert describe_failure(ValueError("a\n  b\n")) == "ValueError: a\n  b"


def test_symbols_fall_back_to_ascii() -> None:
    """Progress marks are ASCII on a stream that cannot encode ▶/✓/✗."""
    ascii_stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    utf8_stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert symbols(ascii_stream)["start"] == ">"
    assert symbols(utf8_stream)["start"] == "▶"


# -- the offline model -------------------------------------------------------------------

AGENTS = [("researcher", "You research topics thoroughly."), ("writer", "You write.")]


def _request(*messages: Message, system: str = "", tools: tuple[str, ...] = ()) -> LLMRequest:
    schemas = tuple(
        ToolSchema(name=name, description="", input_schema={"type": "object"}) for name in tools
    )
    return LLMRequest(model="m", messages=messages, system=system, tools=schemas)


async def test_offline_text_reply_names_the_agent() -> None:
    """The offline reply is `[agent] first line`, the agent known by its system prompt."""
    llm = offline_llm(AGENTS)
    system = "You research topics thoroughly.\n\n# Active Skills\n..."
    response = await llm.generate(
        _request(Message.user("Research Go concurrency\nin depth"), system=system)
    )
    assert response.text == "[researcher] Research Go concurrency"
    response = await llm.generate(_request(Message.user("x" * 200), system="You write."))
    assert response.text == "[writer] " + "x" * 71 + "…"
    response = await llm.generate(_request(Message.user("hi"), system="unknown"))
    assert response.text == "[assistant] hi"


async def test_offline_json_replies() -> None:
    """A message that asks for JSON gets valid JSON: a list when it says array/list."""
    llm = offline_llm(AGENTS)
    obj = await llm.generate(_request(Message.user("Plan it. Reply with JSON only.")))
    assert json.loads(obj.text) == {"agent": "assistant", "reply": "Plan it. Reply with JSON only."}
    arr = await llm.generate(_request(Message.user("Give a JSON array of subtopics")))
    assert json.loads(arr.text) == ["assistant item 1", "assistant item 2", "assistant item 3"]


async def test_offline_tool_call_then_reply() -> None:
    """A backticked offered tool with a JSON object is called once, then its result quoted."""
    llm = offline_llm(AGENTS)
    ask = Message.user('Use `shout` with {"text": "hi there"} please')
    first = await llm.generate(_request(ask, tools=("shout",)))
    (call,) = first.tool_uses
    assert (call.name, dict(call.input)) == ("shout", {"text": "hi there"})
    # Not offered: plain text instead of a call.
    plain = await llm.generate(_request(ask, tools=("other",)))
    assert plain.tool_uses == () and plain.text.startswith("[assistant] Use `shout`")
    history = (
        ask,
        Message.assistant([ToolUseBlock(id=call.id, name="shout", input=call.input)]),
        Message.user([ToolResultBlock(tool_use_id=call.id, content="HI THERE\n")]),
    )
    second = await llm.generate(_request(*history, tools=("shout",)))
    assert second.text == "[assistant] shout returned: HI THERE"


# -- click parsing -----------------------------------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the async command functions with recorders of their arguments."""
    calls: list[dict[str, Any]] = []

    def recorder(name: str, status: int) -> Any:
        async def record(file: Path, **kwargs: Any) -> int:
            await trio.lowlevel.checkpoint()
            calls.append({"command": name, "file": file, **kwargs})
            return status

        return record

    import vega_trio._cli as cli_functions

    monkeypatch.setattr(cli_functions, "run_command", recorder("run", 0))
    monkeypatch.setattr(cli_functions, "validate_command", recorder("validate", 1))
    monkeypatch.setattr(cli_functions, "repl_command", recorder("repl", 0))
    return calls


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    """An (unread) document path that exists."""
    path = tmp_path / "team.vega.yaml"
    path.write_text("agents: {}\n")
    return path


def test_run_flags_before_and_after_file(
    captured: list[dict[str, Any]], doc: Path, tmp_path: Path
) -> None:
    """Every run flag reaches run_command whether it comes before or after FILE."""
    data = tmp_path / "in.json"
    data.write_text("{}")
    flags = ["--workflow", "report", "--task", "topic=Go", "-t", "n=2", "--input", str(data)]
    flags += ["--output", "json", "--timeout", "1m30s", "--llm", "scripted", "--db", "runs.db"]
    after = CliRunner().invoke(main, ["run", str(doc), *flags])
    before = CliRunner().invoke(main, ["run", *flags, str(doc)])
    mixed = CliRunner().invoke(main, ["run", *flags[:4], str(doc), *flags[4:]])
    assert [r.exit_code for r in (after, before, mixed)] == [0, 0, 0], after.output
    expected = {
        "command": "run",
        "file": doc,
        "workflow": "report",
        "tasks": ("topic=Go", "n=2"),
        "input_file": data,
        "output": "json",
        "time_limit": 90.0,
        "llm": "scripted",
        "log_level": None,
        "log_format": "text",
        "quiet": False,
        "db": "runs.db",
        "resume": None,
    }
    assert captured == [expected, expected, expected]


def test_run_defaults_and_exit_status(captured: list[dict[str, Any]], doc: Path) -> None:
    """Without flags run gets no workflow, text output, no limit, the default model."""
    result = CliRunner().invoke(main, ["run", str(doc)])
    assert result.exit_code == 0
    assert captured[0]["workflow"] is None and captured[0]["tasks"] == ()
    assert captured[0]["output"] == "text" and captured[0]["time_limit"] is None
    assert captured[0]["llm"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "soon"], "invalid duration 'soon'"),
        (["--timeout", "0"], "not a positive duration"),
        (["--output", "yaml"], "'yaml' is not one of 'text', 'json'"),
        (["--llm", "gpt"], "'gpt' is not one of 'anthropic', 'openai', 'scripted'"),
        (["--wrkflow", "x"], "No such option '--wrkflow'. Did you mean '--workflow'?"),
        (["--task"], "Option '--task' requires an argument"),
    ],
)
def test_run_bad_flags_exit_2(
    captured: list[dict[str, Any]], doc: Path, args: list[str], message: str
) -> None:
    """A bad or unknown flag is refused with status 2 and says which; nothing runs."""
    result = CliRunner().invoke(main, ["run", str(doc), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert captured == []


def test_missing_file_exit_2(captured: list[dict[str, Any]], tmp_path: Path) -> None:
    """A FILE that does not exist is a usage error for every command."""
    for command in ("run", "validate", "repl"):
        result = CliRunner().invoke(main, [command, str(tmp_path / "nope.vega.yaml")])
        assert result.exit_code == 2
        assert "does not exist" in result.output
    assert captured == []


def test_validate_and_repl_wiring(captured: list[dict[str, Any]], doc: Path) -> None:
    """validate passes --verbose (either side of FILE) and its status; repl passes --llm."""
    assert CliRunner().invoke(main, ["validate", "--verbose", str(doc)]).exit_code == 1
    assert CliRunner().invoke(main, ["validate", str(doc), "-v"]).exit_code == 1
    assert CliRunner().invoke(main, ["repl", str(doc), "--llm", "scripted"]).exit_code == 0
    assert captured[:2] == [
        {"command": "validate", "file": doc, "verbose": True},
        {"command": "validate", "file": doc, "verbose": True},
    ]
    repl = captured[2]
    assert {k: repl[k] for k in ("command", "file", "llm")} == {
        "command": "repl",
        "file": doc,
        "llm": "scripted",
    }
    # The session reads its lines from the terminal thread (see _repl.run_repl).
    assert repl["interactive"] is False and callable(repl["read_line"])


@pytest.mark.parametrize("command", ["run", "validate", "repl"])
def test_command_help(command: str) -> None:
    """Every command has --help (and -h) that shows its usage."""
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(main, [command, flag])
        assert result.exit_code == 0
        assert f"Usage: main {command} [OPTIONS] FILE" in result.output
