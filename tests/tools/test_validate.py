"""The one JSON validator (``vega_trio.tools._validate``): a function tool's type adapters and a
prebuilt tool's JSON schema are the same nodes, so they report the same problems."""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs
import pytest

from vega_trio.tools import ArgumentProblem, function_schema, json_schema_validator


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@attrs.frozen
class Spot:
    """A spot.

    Attributes:
        x: across.
        y: down.
    """

    x: int
    y: int = 0


def paint(
    n: int,
    tags: list[str],
    mode: Literal["fast", "slow"] = "fast",
    shade: Shade | None = None,
    spot: Spot | None = None,
    sizes: list[int] | None = None,
    ratio: float = 1.0,
) -> None:
    """Paint something."""


_BAD_ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"tags": []},
    {"n": "1", "tags": []},
    {"n": 1.5, "tags": []},
    {"n": True, "tags": []},
    {"n": 1, "tags": "a"},
    {"n": 1, "tags": ["a", 2]},
    {"n": 1, "tags": [], "mode": "medium"},
    {"n": 1, "tags": [], "shade": "grey"},
    {"n": 1, "tags": [], "spot": {}},
    {"n": 1, "tags": [], "spot": {"x": 1, "z": 2}},
    {"n": 1, "tags": [], "sizes": [1, "x"]},
    {"n": 1, "tags": [], "ratio": "big"},
    {"n": 1, "tags": [], "colour": "red"},
    # several problems at once: the first in the value's order wins, missing ones come last
    {"tags": [1]},
    {"zzz": 1},
]


@pytest.mark.parametrize("arguments", _BAD_ARGUMENTS, ids=repr)
def test_a_schema_and_its_function_report_the_same_problem(arguments: dict[str, Any]) -> None:
    """The function's adapters and its input_schema compiled alone report one identical problem.

    (Only a class's name, "an object (Spot)", is not in the schema, so the schema alone says
    "an object" there.)"""
    schema = function_schema(paint)
    with pytest.raises(ArgumentProblem) as from_function:
        schema.prepare(arguments)
    with pytest.raises(ArgumentProblem) as from_schema:
        json_schema_validator(schema.input_schema)(arguments)
    ours, theirs = from_function.value, from_schema.value
    assert (theirs.argument, theirs.problem) == (ours.argument, ours.problem)
    assert theirs.kind == ours.kind


@pytest.mark.parametrize(
    ("arguments", "kind", "argument", "expected", "value", "allowed"),
    [
        ({"tags": []}, "missing", "n", "an integer", None, ()),
        ({"n": "1", "tags": []}, "type", "n", "an integer", "1", ()),
        (
            {"n": 1, "tags": [], "colour": 1},
            "unknown",
            "colour",
            "",
            1,
            ("n", "tags", "mode", "shade", "spot", "sizes", "ratio"),
        ),
        ({"n": 1, "tags": [], "spot": {"x": 1, "z": 2}}, "unknown", "spot.z", "", 2, ("x", "y")),
    ],
)
def test_problems_are_structured(
    arguments: dict[str, Any],
    kind: str,
    argument: str,
    expected: str,
    value: Any,
    allowed: tuple[str, ...],
) -> None:
    """An ArgumentProblem says its kind, what was expected and what came, for surfaces that
    word problems their own way (the HTTP API)."""
    with pytest.raises(ArgumentProblem) as info:
        json_schema_validator(function_schema(paint).input_schema)(arguments)
    found = info.value
    assert (found.kind, found.argument, found.expected, found.allowed) == (
        kind,
        argument,
        expected,
        allowed,
    )
    if kind != "unknown":
        assert found.value == value


def test_a_compiled_schema_does_not_convert() -> None:
    """A prebuilt tool's handler gets its arguments unchanged (3.0 stays 3.0, 3 stays 3)."""
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "x": {"type": "number"}},
    }
    arguments = {"n": 3.0, "x": 3}
    checked = json_schema_validator(schema)(arguments)
    assert checked is arguments
    assert type(checked["n"]) is float and type(checked["x"]) is int


@pytest.mark.parametrize(
    ("schema", "arguments", "problem"),
    [
        (
            {"type": "object", "properties": {"v": {"enum": [[1, 2], {"a": 1}]}}},
            {"v": [1, 3]},
            "argument 'v' must be one of [1, 2], {\"a\": 1}, got array",
        ),
        (
            {"type": "object", "properties": {"v": {"const": "x"}}},
            {"v": "y"},
            "argument 'v' must be \"x\", got string 'y'",
        ),
        (
            {"type": "object", "properties": {"v": False}},
            {"v": 1},
            "argument 'v' is not allowed",
        ),
        (
            {"type": "object", "properties": {"v": {"type": ["string", "null"]}}},
            {"v": 1},
            "argument 'v' must be a string or null, got integer 1",
        ),
        (
            {"type": "object", "required": ["v"]},
            {},
            "missing required argument 'v' (a value)",
        ),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            {"v": "x"},
            "argument 'v' must be an integer, got string 'x'",
        ),
    ],
)
def test_json_schema_keywords(schema: dict[str, Any], arguments: Any, problem: str) -> None:
    """The JSON-schema keywords a prebuilt tool uses are checked, unhashable enum values too."""
    with pytest.raises(ArgumentProblem) as info:
        json_schema_validator(schema)(arguments)
    assert info.value.problem == problem


def test_enum_values_that_are_lists_are_accepted() -> None:
    """An enum of arrays and objects accepts an equal value."""
    schema = {"type": "object", "properties": {"v": {"enum": [[1, 2], {"a": 1}]}}}
    assert json_schema_validator(schema)({"v": {"a": 1}}) == {"v": {"a": 1}}
