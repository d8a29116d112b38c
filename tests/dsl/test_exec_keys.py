"""The DSL keys of exec tools: `limits:` and a parameter's `allow_options` — loading, checking
with file:line:col diagnostics, building, dumping — and validate's option-position warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega_trio.dsl import dump_document, load_document, validate_text
from vega_trio.dsl._build import declarative_tool
from vega_trio.dsl._model import LimitsSpec, ParamSpec
from vega_trio.dsl._units import parse_size
from vega_trio.tools import ExecImplementation, ResourceLimits

AGENTS = "agents:\n  a: {}\n"


def _tool(implementation: str, params: str = "      - {name: x}\n") -> str:
    return (
        AGENTS + "tools:\n  t:\n    params:\n" + params + "    implementation:\n" + implementation
    )


def test_limits_load_with_units_and_build_over_the_run_command_defaults() -> None:
    """`limits:` reads durations and sizes, and builds ResourceLimits over the defaults."""
    text = _tool(
        "      type: exec\n"
        "      command: 'wc -- {{x}}'\n"
        "      limits: {cpu: 1.5s, memory: 512MiB, file_size: 64MB, open_files: 256}\n"
    )
    spec = load_document(text).tools[0]
    assert isinstance(spec.implementation.limits, LimitsSpec)
    assert spec.implementation.limits == LimitsSpec(
        cpu=1.5, memory=512 * 1024**2, file_size=64_000_000, open_files=256
    )
    built = declarative_tool(spec, base_dir=Path())
    assert isinstance(built.implementation, ExecImplementation)
    assert built.implementation.limits == ResourceLimits(
        cpu_seconds=2,
        memory_bytes=512 * 1024**2,
        file_size_bytes=64_000_000,
        max_open_files=256,
        max_processes=ResourceLimits().max_processes,
    )


def test_without_limits_an_exec_tool_gets_the_run_command_defaults() -> None:
    """No `limits:` key: the same ResourceLimits defaults as run_command."""
    spec = load_document(_tool("      type: exec\n      command: 'wc -- {{x}}'\n")).tools[0]
    built = declarative_tool(spec, base_dir=Path())
    assert isinstance(built.implementation, ExecImplementation)
    assert built.implementation.limits == ResourceLimits()


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (
            "{memory: 12 parsecs}",
            "10:24: error: tools.t.implementation.limits.memory: expected a size",
        ),
        ("{cpu: 0}", "10:21: error: tools.t.implementation.limits.cpu: expected duration of 1 or"),
        (
            "{open_files: many}",
            "10:28: error: tools.t.implementation.limits.open_files: expected a",
        ),
        (
            "{processes: 0}",
            "10:27: error: tools.t.implementation.limits.processes: expected a whole",
        ),
        ("{ram: 1GiB}", "10:16: error: tools.t.implementation.limits.ram: unknown key 'ram'"),
        ("512MiB", "10:15: error: tools.t.implementation.limits: expected a mapping"),
    ],
)
def test_invalid_limits_are_diagnosed_with_positions(limits: str, expected: str) -> None:
    """Every limits mistake is an error at its file:line:col, saying what is expected."""
    text = _tool(f"      type: exec\n      command: 'wc -- {{{{x}}}}'\n      limits: {limits}\n")
    messages = [str(d) for d in validate_text(text, file="f.yaml")]
    assert any(m.startswith(f"f.yaml:{expected}") for m in messages), messages


def test_allow_options_must_be_a_flag() -> None:
    """`allow_options: maybe` is an error at its position."""
    text = _tool(
        "      type: exec\n      command: 'wc {{x}}'\n",
        params="      - {name: x, allow_options: maybe}\n",
    )
    messages = [str(d) for d in validate_text(text, file="f.yaml")]
    assert messages == [
        "f.yaml:6:34: error: tools.t.params[0].allow_options: expected true or false, got 'maybe'"
    ]


def test_a_list_command_is_an_error_not_a_crash() -> None:
    """`command:` must be one string; a list is diagnosed (it used to crash the loader)."""
    text = _tool("      type: exec\n      command: [wc, '{{x}}']\n")
    messages = [str(d) for d in validate_text(text, file="f.yaml")]
    assert messages and messages[0].startswith(
        "f.yaml:9:16: error: tools.t.implementation.command: expected text"
    )


def test_validate_warns_on_an_option_position_placeholder() -> None:
    """A placeholder in option position without -- or allow_options is a warning pointing
    at the command, naming the parameter and both fixes."""
    text = _tool(
        "      type: exec\n      command: 'grep {{x}} notes.txt'\n",
    )
    (diagnostic,) = validate_text(text, file="f.yaml")
    assert diagnostic.severity == "warning"
    assert str(diagnostic).startswith(
        "f.yaml:9:16: warning: tools.t.implementation.command: parameter 'x' fills an argument "
        "where the program reads options"
    )
    assert diagnostic.hint is not None
    assert "'--'" in diagnostic.hint and "allow_options: true" in diagnostic.hint


@pytest.mark.parametrize(
    ("command", "params"),
    [
        ("grep -- {{x}} notes.txt", "      - {name: x}\n"),
        ("grep {{x}} notes.txt", "      - {name: x, allow_options: true}\n"),
        ("grep --regexp={{x}} notes.txt", "      - {name: x}\n"),
        ("grep {{x}} notes.txt", "      - {name: x, enum: [apple, pear]}\n"),
        ("grep {{x}} notes.txt", "      - {name: x, type: boolean}\n"),
    ],
)
def test_no_warning_after_double_dash_with_allow_options_or_inside_an_argument(
    command: str, params: str
) -> None:
    """After --, with allow_options, after literal text in the argument, or for values that
    can't start with '-' (a boolean, an enum without such a value): no warning."""
    text = _tool(f"      type: exec\n      command: '{command}'\n", params=params)
    assert validate_text(text) == []


def test_code_placeholder_is_a_validate_error_at_the_command() -> None:
    """`env sh -c {{x}}` is refused by validate at the command's position, with the hint."""
    text = _tool("      type: exec\n      command: 'env timeout 5 sh -c {{x}}'\n")
    (diagnostic,) = validate_text(text, file="f.yaml")
    assert str(diagnostic).startswith(
        "f.yaml:9:16: error: tools.t.implementation.command[5]: implementation.command[5] has "
        "the placeholder '{{x}}' where it is inside the script that sh -c runs"
    )
    assert "sh -c 'echo \"$1\"' _ {{x}}" in diagnostic.message


def test_limits_and_allow_options_round_trip_through_dump() -> None:
    """dump_document writes limits and allow_options back; loading gives the same document."""
    text = _tool(
        "      type: exec\n"
        "      command: 'grep {{x}} f'\n"
        "      limits: {cpu: 30s, processes: 64}\n",
        params="      - {name: x, allow_options: true}\n",
    )
    document = load_document(text)
    dumped = dump_document(document)
    assert "allow_options: true" in dumped
    assert "processes: 64" in dumped
    again = load_document(dumped)
    assert again == document
    assert again.tools[0].params == (ParamSpec(name="x", allow_options=True),)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MiB", 512 * 1024**2), ("64 MB", 64_000_000), ("1.5GiB", 1536 * 1024**2), (4096, 4096)],
)
def test_sizes(text: str | int, size: int) -> None:
    """Sizes are bytes, or a number with a decimal or binary unit."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["12 parsecs", "-1MB", "MiB", True, 1.5])
def test_bad_sizes(text: object) -> None:
    """Anything else is a ValueError naming the accepted units."""
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)  # type: ignore[arg-type]
