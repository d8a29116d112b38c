"""Declarative exec tools: argv without a shell, quoting with one, limits and environment."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import sys
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from vega_trio.tools import (
    DeclarativeTool,
    ExecImplementation,
    ExecToolError,
    MissingEnvironmentVariable,
    Tool,
    ToolArgumentError,
    ToolCall,
    ToolParam,
    Tools,
    ToolTimeout,
)

PYTHON = shlex.quote(sys.executable)
ECHO_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"
POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="process groups and /bin/sh")

INJECTIONS = [
    "'; rm -rf /",
    "$(touch pwned)",
    "`touch pwned`",
    "a b  c",
    "\"quoted\" and 'single'",
    "line one\nline two; touch pwned",
    "--help",
    "* ? [a-z] ~ $HOME ${HOME} \\ & | > < #",
    "",
]


def make(command: Any, params: list[ToolParam] | None = None, **options: Any) -> Tool:
    """An exec tool with one string parameter ``x`` (unless ``params`` are given); ``x``
    allows options, since these tests send any text (option refusal is tested below)."""
    return DeclarativeTool(
        name="cmd",
        params=[ToolParam(name="x", allow_options=True)] if params is None else params,
        implementation=ExecImplementation(command=command, **options),
    ).to_tool()


async def argv_of(tool: Tool, arguments: dict[str, Any]) -> list[str]:
    """Run an echo-argv tool and decode what the program received."""
    with trio.fail_after(20):
        return list(json.loads(await tool.invoke(arguments)))


@pytest.mark.parametrize("value", INJECTIONS)
async def test_values_arrive_as_one_literal_argument(value: str, tmp_path: pathlib.Path) -> None:
    """Shell syntax, quotes, newlines and option-like text in a value are one argv entry,
    exactly as sent; nothing is executed."""
    tool = make(f"{PYTHON} -c '{ECHO_ARGV}' before {{{{x}}}} after", cwd=tmp_path)
    assert await argv_of(tool, {"x": value}) == ["before", value, "after"]
    assert list(await trio.Path(tmp_path).iterdir()) == []


async def test_placeholder_fills_part_of_one_argument() -> None:
    """``--name={{x}}`` stays one argument whatever the value holds; both spellings work."""
    tool = make(f"{PYTHON} -c '{ECHO_ARGV}' --name={{{{x}}}} '{{{{ .x }}}}:{{{{.x}}}}'")
    assert await argv_of(tool, {"x": "a b; c"}) == ["--name=a b; c", "a b; c:a b; c"]


async def test_list_command_is_used_as_given() -> None:
    """A list command is one template per argument (no splitting at all)."""
    tool = make([sys.executable, "-c", ECHO_ARGV, "two words {{x}}", "{{x}}"])
    assert await argv_of(tool, {"x": "'q'"}) == ["two words 'q'", "'q'"]


async def test_typed_values_render_as_json_text() -> None:
    """Integers, booleans, arrays and a missing optional value render as text."""
    params = [
        ToolParam(name="n", type="integer"),
        ToolParam(name="flag", type="boolean"),
        ToolParam(name="items", type="array"),
        ToolParam(name="note", required=False),
    ]
    tool = make(
        [sys.executable, "-c", ECHO_ARGV, "{{n}}", "{{flag}}", "{{items}}", "<{{note}}>"],
        params=params,
    )
    argv = await argv_of(tool, {"n": 7, "flag": False, "items": ["a", 1]})
    assert argv == ["7", "false", '["a",1]', "<>"]


@settings(max_examples=15, deadline=None)
@given(value=st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"])))
async def test_any_text_value_is_one_argument(value: str) -> None:
    """Property: whatever text the model sends, the program gets it back verbatim as one
    argument."""
    tool = make([sys.executable, "-c", ECHO_ARGV, "{{x}}"])
    assert await argv_of(tool, {"x": value}) == [value]


async def test_nul_in_a_value_is_an_argument_error() -> None:
    """A NUL can't be on a command line: the model is told which argument."""
    with pytest.raises(ToolArgumentError, match=r"'x' contains a NUL"):
        await make([sys.executable, "-c", ECHO_ARGV, "{{x}}"]).invoke({"x": "a\0b"})


@POSIX_ONLY
@pytest.mark.parametrize("value", INJECTIONS)
async def test_shell_true_quotes_every_value(value: str, tmp_path: pathlib.Path) -> None:
    """With shell: true the value is shell-quoted: printed literally, never executed."""
    tool = make("printf '%s|' {{x}} && echo done", shell=True, cwd=tmp_path)
    with trio.fail_after(20):
        out = await tool.invoke({"x": value})
    assert out == f"{value}|done\n"
    assert list(await trio.Path(tmp_path).iterdir()) == []


@POSIX_ONLY
async def test_shell_true_runs_pipes() -> None:
    """shell: true is for pipes and redirections, which then work."""
    tool = make("printf '%s\\n' {{x}} b a | sort | tr -d '\\n'", shell=True)
    with trio.fail_after(20):
        assert await tool.invoke({"x": "c"}) == "abc"


async def test_nonzero_exit_is_an_error_with_status_and_output() -> None:
    """A failing command is an error result with its exit status and output (stderr too)."""
    tool = make(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); sys.stderr.write('bad ' + sys.argv[1] + '\\n'); sys.exit(3)",
            "{{x}}",
        ]
    )
    with trio.fail_after(20), pytest.raises(ExecToolError) as caught:
        await tool.invoke({"x": "thing"})
    assert caught.value.exit_code == 3
    assert "exited with status 3" in str(caught.value)
    assert "out\n" in caught.value.output
    assert "bad thing" in caught.value.output


async def test_missing_program_is_a_clear_error() -> None:
    """A program that doesn't exist is named in the error."""
    tool = make("no-such-program-vega-trio {{x}}")
    with pytest.raises(ExecToolError, match=r"could not run 'no-such-program-vega-trio'"):
        await tool.invoke({"x": "a"})


async def test_output_is_capped_and_marked() -> None:
    """Output beyond max_output_bytes is dropped (the command still finishes) and a marker
    says so."""
    tool = make(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 1_000_000); print('END')"],
        params=[],
        max_output_bytes=1000,
    )
    with trio.fail_after(20):
        out = await tool.invoke({})
    head, marker = out.split("\n", 1)
    assert head == "x" * 1000
    assert "[output truncated: the command wrote more than 1000 bytes" in marker


async def test_runs_in_the_working_directory(tmp_path: pathlib.Path) -> None:
    """The command runs in ``cwd``."""
    (tmp_path / "marker.txt").write_text("here")
    tool = make(
        [sys.executable, "-c", "import os; print(sorted(os.listdir('.')))"],
        params=[],
        cwd=tmp_path,
    )
    with trio.fail_after(20):
        assert (await tool.invoke({})).strip() == "['marker.txt']"


async def test_missing_working_directory_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    """A cwd that doesn't exist is named in the error."""
    tool = make("true", params=[], cwd=tmp_path / "gone")
    with pytest.raises(ExecToolError, match=r"working directory .*gone.* does not exist"):
        await tool.invoke({})


async def test_environment_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command sees no API keys, tokens or secrets of the parent; ``env`` adds
    variables, and ``${NAME}`` there passes one on explicitly."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    monkeypatch.setenv("MY_SECRET", "s3cret")
    monkeypatch.setenv("VEGA_TEST_SHARED", "shared-value")
    tool = make(
        [sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
        env={"SHARED": "${VEGA_TEST_SHARED}", "FROM_ARG": "v={{x}}", "FALLBACK": "${NOPE:-dflt}"},
    )
    with trio.fail_after(20):
        env = json.loads(await tool.invoke({"x": "${MY_SECRET}"}))
    assert env["SHARED"] == "shared-value"
    assert env["FROM_ARG"] == "v=${MY_SECRET}"  # a value is never expanded
    assert env["FALLBACK"] == "dflt"
    assert env.get("PATH") == os.environ.get("PATH")
    assert "sk-secret" not in json.dumps(env)
    assert not {"ANTHROPIC_API_KEY", "GITHUB_TOKEN", "MY_SECRET"} & set(env)


async def test_missing_env_variable_is_named_when_the_tool_runs() -> None:
    """``${NAME}`` without default that is not set fails the call, naming the variable."""
    tool = make("true", env={"KEY": "${VEGA_TEST_UNSET_VARIABLE}"})
    with pytest.raises(MissingEnvironmentVariable, match=r"'VEGA_TEST_UNSET_VARIABLE'") as caught:
        await tool.invoke({"x": "a"})
    assert caught.value.variable == "VEGA_TEST_UNSET_VARIABLE"


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def _wait_until_gone(pid: int) -> None:
    # The killed grandchild is reaped by init; poll /proc until it is gone (bounded): an
    # unrelated process's death is not an event we can wait on.
    with trio.fail_after(5):
        while _running(pid):  # noqa: ASYNC110
            await trio.sleep(0.01)


SPAWN_AND_WAIT = (
    "import subprocess, sys; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "open(sys.argv[1], 'w').write(str(child.pid)); "
    "sys.stdout.flush(); child.wait()"
)

needs_proc = pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs /proc")


@POSIX_ONLY
@needs_proc
async def test_timeout_kills_the_whole_process_group(tmp_path: pathlib.Path) -> None:
    """On timeout the command *and its children* are killed, and the tool fails with
    ToolTimeout."""
    pid_file = tmp_path / "pid"
    tool = make([sys.executable, "-c", SPAWN_AND_WAIT, "{{x}}"], timeout=1.0)
    with trio.fail_after(20), pytest.raises(ToolTimeout, match=r"1 s timeout"):
        await tool.invoke({"x": str(pid_file)})
    await _wait_until_gone(int(pid_file.read_text()))


@POSIX_ONLY
@needs_proc
async def test_cancellation_kills_the_whole_process_group(tmp_path: pathlib.Path) -> None:
    """Cancelling the caller (an agent stopped) kills the command's whole group too."""
    pid_file = tmp_path / "pid"
    tool = make([sys.executable, "-c", SPAWN_AND_WAIT, "{{x}}"], timeout=None)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tool.invoke, {"x": str(pid_file)})
            # The command's child writes its pid from another process: poll (bounded).
            while not pid_file.exists() or not pid_file.read_text():  # noqa: ASYNC110
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel(reason="the test stops the call")
    await _wait_until_gone(int(pid_file.read_text()))


@POSIX_ONLY
@needs_proc
async def test_background_children_do_not_outlive_the_call() -> None:
    """``cmd &`` left behind by a finished command is killed, and the call returns at once
    instead of waiting for it to close the output pipe."""
    tool = make("sleep 60 & echo $!", params=[], shell=True, timeout=30)
    with trio.fail_after(10):
        out = await tool.invoke({})
    await _wait_until_gone(int(out.strip()))


# -- values as arguments of code, and option injection (SPEC §5.3) ----------------------------


@POSIX_ONLY
@pytest.mark.parametrize("value", INJECTIONS[:3])
async def test_the_suggested_form_passes_the_value_as_data(
    value: str, tmp_path: pathlib.Path
) -> None:
    """`sh -c 'printf %s "$1"' _ {{x}}` (the hint's form) prints the value; nothing runs."""
    tool = make("sh -c 'printf %s \"$1\"' _ {{x}}", cwd=tmp_path)
    with trio.fail_after(20):
        assert await tool.invoke({"x": value}) == value
    assert list(await trio.Path(tmp_path).iterdir()) == []


OPTIONS = ["--output=/etc/passwd", "-rf", "-", "-5"]


@pytest.mark.parametrize("value", OPTIONS)
async def test_option_like_value_in_option_position_is_an_error_result(value: str) -> None:
    """A value starting with '-' where the program reads options is refused at call time
    with a ToolArgumentError (the agent loop turns it into an is_error result for the model)
    saying why and what to send; the program never runs."""
    tools = Tools()
    tools.register(make(f"{PYTHON} -c '{ECHO_ARGV}' {{{{x}}}}", params=[ToolParam(name="x")]))
    with trio.fail_after(20), pytest.raises(ToolArgumentError) as caught:
        await tools.execute(ToolCall(id="1", name="cmd", arguments={"x": value}))
    assert caught.value.argument == "x"
    assert "starts with '-'" in str(caught.value)
    assert "Send a value that does not start with '-'" in str(caught.value)


@pytest.mark.parametrize(
    ("command", "params"),
    [
        (f"{PYTHON} -c '{ECHO_ARGV}' -- {{{{x}}}}", [ToolParam(name="x")]),
        (f"{PYTHON} -c '{ECHO_ARGV}' {{{{x}}}}", [ToolParam(name="x", allow_options=True)]),
    ],
    ids=["after --", "allow_options"],
)
async def test_option_like_values_pass_after_double_dash_or_with_allow_options(
    command: str, params: list[ToolParam]
) -> None:
    """After a literal -- (or with allow_options) a value starting with '-' is data."""
    tool = make(command, params=params)
    argv = await argv_of(tool, {"x": "--output=/etc/passwd"})
    assert argv[-1] == "--output=/etc/passwd"


async def test_option_like_value_inside_an_argument_is_data() -> None:
    """`--name={{x}}` starts with literal text: a value '-v' can't become an option."""
    tool = make(f"{PYTHON} -c '{ECHO_ARGV}' --name={{{{x}}}}", params=[ToolParam(name="x")])
    assert await argv_of(tool, {"x": "-v"}) == ["--name=-v"]


@POSIX_ONLY
async def test_shell_true_refuses_option_like_values_in_option_position() -> None:
    """With shell: true a quoted '-n' is still an option to the command: refused."""
    tool = make("printf '%s|' {{x}}", shell=True, params=[ToolParam(name="x")])
    with pytest.raises(ToolArgumentError, match=r"starts with '-'"):
        await tool.invoke({"x": "-v"})
    allowed = make("printf '%s|' {{x}}", shell=True)
    with trio.fail_after(20):
        assert await allowed.invoke({"x": "-v"}) == "-v|"
