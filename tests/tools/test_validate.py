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


def _positive(instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen
class Leg:
    name: str
    stops: list[Spot]
    length: float = attrs.field(default=1.0, validator=_positive)


def plan(
    legs: list[Leg],
    pair: tuple[int, str] = (0, ""),
    weights: dict[str, float] | None = None,
    when: int | None = None,
    spot: Spot | None = None,
    deep: dict[str, list[Spot]] | None = None,
    tags: set[str] | None = None,
) -> None:
    """Plan."""


# (arguments, (argument, kind, problem) from the function, the same from its schema alone or
# None when the schema alone accepts them: it does not know prefixItems or attrs validators).
# The wordings are those of the validator before paths were built only for problems.
_NESTED_PROBLEMS: list[tuple[dict[str, Any], tuple[str, str, str], tuple[str, str, str] | None]] = [
    (
        {"legs": [{"name": "a", "stops": [{"x": 1}, {"x": "b"}]}]},
        (
            "legs[0].stops[1].x",
            "type",
            "argument 'legs[0].stops[1].x' must be an integer, got string 'b'",
        ),
        (
            "legs[0].stops[1].x",
            "type",
            "argument 'legs[0].stops[1].x' must be an integer, got string 'b'",
        ),
    ),
    (
        {"legs": [{"name": "a", "stops": []}, {"name": 3, "stops": []}]},
        ("legs[1].name", "type", "argument 'legs[1].name' must be a string, got integer 3"),
        ("legs[1].name", "type", "argument 'legs[1].name' must be a string, got integer 3"),
    ),
    (
        {"legs": [{"name": "a"}]},
        (
            "legs[0].stops",
            "missing",
            "missing required argument 'legs[0].stops' (an array (items: an object (Spot)))",
        ),
        (
            "legs[0].stops",
            "missing",
            "missing required argument 'legs[0].stops' (an array (items: an object))",
        ),
    ),
    (
        {"legs": [{"name": "a", "stops": [], "length": -2}]},
        ("legs[0]", "invalid", "argument 'legs[0]' is invalid: length must be positive, got -2.0"),
        None,
    ),
    (
        {"legs": [], "pair": [1, 2]},
        ("pair[1]", "type", "argument 'pair[1]' must be a string, got integer 2"),
        None,
    ),
    (
        {"legs": [], "pair": [1]},
        ("pair", "type", "argument 'pair' must be an array of exactly 2 items, got array"),
        None,
    ),
    (
        {"legs": [], "weights": {"a": 1, "b": "x"}},
        ("weights['b']", "type", "argument \"weights['b']\" must be a number, got string 'x'"),
        ("weights.b", "type", "argument 'weights.b' must be a number, got string 'x'"),
    ),
    (
        {"legs": [], "when": "soon"},
        ("when", "type", "argument 'when' must be an integer or null, got string 'soon'"),
        ("when", "type", "argument 'when' must be an integer or null, got string 'soon'"),
    ),
    (
        {"legs": [], "when": 2.5},
        ("when", "type", "argument 'when' must be an integer or null, got number 2.5"),
        ("when", "type", "argument 'when' must be an integer or null, got number 2.5"),
    ),
    (
        {"legs": [], "spot": {"x": "1"}},
        ("spot.x", "type", "argument 'spot.x' must be an integer, got string '1'"),
        ("spot.x", "type", "argument 'spot.x' must be an integer, got string '1'"),
    ),
    (
        {"legs": [], "spot": {"x": 1, "q": 2}},
        (
            "spot.q",
            "unknown",
            "unknown argument 'spot.q'; the arguments allowed in 'spot' are: 'x', 'y'",
        ),
        (
            "spot.q",
            "unknown",
            "unknown argument 'spot.q'; the arguments allowed in 'spot' are: 'x', 'y'",
        ),
    ),
    (
        {"legs": [], "spot": 7},
        ("spot", "type", "argument 'spot' must be an object (Spot) or null, got integer 7"),
        ("spot", "type", "argument 'spot' must be an object or null, got integer 7"),
    ),
    (
        {"legs": [], "deep": {"k": [{"x": 1}, {"x": 1, "q": 2}]}},
        (
            "deep['k'][1].q",
            "unknown",
            "unknown argument \"deep['k'][1].q\"; "
            "the arguments allowed in \"deep['k'][1]\" are: 'x', 'y'",
        ),
        (
            "deep.k[1].q",
            "unknown",
            "unknown argument 'deep.k[1].q'; the arguments allowed in 'deep.k[1]' are: 'x', 'y'",
        ),
    ),
    (
        {"legs": [], "deep": {"k": [{"y": 1}]}},
        ("deep['k'][0].x", "missing", "missing required argument \"deep['k'][0].x\" (an integer)"),
        ("deep.k[0].x", "missing", "missing required argument 'deep.k[0].x' (an integer)"),
    ),
    (
        {"legs": [], "tags": ["a", 1]},
        ("tags[1]", "type", "argument 'tags[1]' must be a string, got integer 1"),
        ("tags[1]", "type", "argument 'tags[1]' must be a string, got integer 1"),
    ),
    (
        {"legs": "none"},
        (
            "legs",
            "type",
            "argument 'legs' must be an array (items: an object (Leg)), got string 'none'",
        ),
        ("legs", "type", "argument 'legs' must be an array (items: an object), got string 'none'"),
    ),
    (
        {"legs": [[]]},
        ("legs[0]", "type", "argument 'legs[0]' must be an object (Leg), got array"),
        ("legs[0]", "type", "argument 'legs[0]' must be an object, got array"),
    ),
]


@pytest.mark.parametrize(("arguments", "from_function", "from_schema"), _NESTED_PROBLEMS, ids=repr)
def test_nested_problems_are_worded_where_they_are(
    arguments: dict[str, Any],
    from_function: tuple[str, str, str],
    from_schema: tuple[str, str, str] | None,
) -> None:
    """A problem deep inside the arguments (arrays of objects, tuples, dicts, unions, a class's
    own validator) names its full path, in the same words as ever, from a function's adapters
    and from its schema compiled alone."""
    schema = function_schema(plan)
    with pytest.raises(ArgumentProblem) as info:
        schema.prepare(arguments)
    assert (info.value.argument, info.value.kind, info.value.problem) == from_function
    check = json_schema_validator(schema.input_schema)
    if from_schema is None:
        assert check(arguments) is arguments
        return
    with pytest.raises(ArgumentProblem) as info:
        check(arguments)
    assert (info.value.argument, info.value.kind, info.value.problem) == from_schema
