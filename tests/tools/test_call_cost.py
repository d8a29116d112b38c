"""The cost of one tool call, pinned: the Python frames a call runs, and no work on the success
path that only a problem needs (paths, wording). Benchmark B1 makes one such call per run."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from vega_trio import ToolNotFound
from vega_trio.tools import ArgumentProblem, ToolArgumentError, ToolCall, Tools, function_schema
from vega_trio.tools._adapters import AdapterBuilder
from vega_trio.tools._validate import Adapter, ObjectAdapter, compile_json_schema


async def add(a: int, b: int) -> int:  # noqa: ASYNC124 - an async tool, on purpose
    """Add two integers."""
    return a + b


@attrs.frozen
class Spot:
    x: int
    y: float = 0.0


@attrs.frozen
class Leg:
    name: str
    stops: list[Spot]


def plan(
    legs: list[Leg],
    pair: tuple[int, str] = (0, ""),
    weights: dict[str, float] | None = None,
    when: int | None = None,
    spot: Spot | None = None,
    tags: set[str] | None = None,
) -> None:
    """Plan."""


_VALID_PLAN: dict[str, Any] = {
    "legs": [{"name": "a", "stops": [{"x": 1}, {"x": 2.0, "y": 3}]}],
    "pair": [1, "b"],
    "weights": {"w": 1, "v": 0.5},
    "when": 3,
    "spot": None,
    "tags": ["t"],
}


def _frames(run: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``run()``'s result and the qualified names of the Python functions it entered."""
    names: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            names.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        result = run()
    finally:
        sys.setprofile(None)
    return result, names


def _coroutine_frames(run: Callable[[], Awaitable[Any]]) -> tuple[Any, list[str]]:
    """Like :func:`_frames` for a coroutine that never suspends, driven here to its end (the
    profile hook is per thread, and nothing else runs in between)."""
    coroutine = run()
    result, names = _frames(lambda: _drive(coroutine))
    return result, names[2:]  # from the coroutine's first frame on (not this helper's)


def _drive(coroutine: Any) -> Any:
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the tool call suspended; it was expected to run straight through")


async def test_a_tool_call_without_middleware_runs_six_python_frames() -> None:
    """execute → invoke → the one argument check → the handler → the function → render_result:
    no middleware chain, no per-field calls, no wrapper coroutine around the function."""
    tools = Tools()
    tools.register(add)
    call = ToolCall(id="t", name="add", arguments={"a": 1, "b": 2})
    assert await tools.execute(call) == "3"
    result, names = _coroutine_frames(lambda: tools.execute(call))
    assert result == "3"
    assert names == [
        "Tools.execute",
        "Tool._start",
        "fast_convert",
        "Tool.from_function.<locals>.handler",
        "add",
        "render_result",
    ]


async def test_a_call_by_its_parts_without_middleware_makes_no_tool_call_object() -> None:
    """Tools.run (the agent loop's way in) runs the same six frames as execute and builds no
    ToolCall when no middleware needs one: the compiled check takes valid arguments without
    calling the full ObjectAdapter.convert."""
    tools = Tools()
    tools.register(add)
    assert await tools.run("add", {"a": 1, "b": 2}, "t") == "3"
    result, names = _coroutine_frames(lambda: tools.run("add", {"a": 1, "b": 2}, "t"))
    assert result == "3"
    assert names == [
        "Tools.run",
        "Tool._start",
        "fast_convert",
        "Tool.from_function.<locals>.handler",
        "add",
        "render_result",
    ]


async def test_a_call_by_its_parts_gives_middleware_the_whole_call() -> None:
    """With middleware, Tools.run hands it a ToolCall of the id, name and arguments given, and
    renders what the chain returns; problems are raised as execute raises them."""
    seen: list[ToolCall] = []

    async def log(call: ToolCall, call_next: Callable[[ToolCall], Awaitable[Any]]) -> Any:
        seen.append(call)
        return [await call_next(call)]

    tools = Tools()
    tools.register(add)
    tools.use(log)
    assert await tools.run("add", {"a": 1, "b": 2}, "t7") == "[3]"
    assert seen == [ToolCall(id="t7", name="add", arguments={"a": 1, "b": 2})]
    with pytest.raises(ToolArgumentError, match="missing required argument 'b'"):
        await tools.run("add", {"a": 1})
    with pytest.raises(ToolNotFound, match="no tool named 'nope'"):
        await tools.run("nope", {})


async def test_middleware_added_later_wraps_the_next_call() -> None:
    """Without middleware execute dispatches directly; a middleware added afterwards (or kept
    by subset) is on the path of every later call."""
    seen: list[str] = []

    async def log(call: ToolCall, call_next: Callable[[ToolCall], Awaitable[Any]]) -> Any:
        seen.append(call.name)
        return await call_next(call)

    tools = Tools()
    tools.register(add)
    call = ToolCall(id="t", name="add", arguments={"a": 1, "b": 2})
    assert await tools.execute(call) == "3"
    tools.use(log)
    assert await tools.execute(call) == "3"
    assert await tools.subset(["add"]).execute(call) == "3"
    assert await Tools().merged(tools).execute(call) == "3"
    assert seen == ["add", "add", "add"]


def test_the_success_path_words_no_problem_and_builds_no_path() -> None:
    """Valid nested arguments (objects in arrays, a tuple, a dict, an optional int, null) are
    converted without building an argument path or an ArgumentProblem."""
    prepare = function_schema(plan).prepare
    result, names = _frames(lambda: prepare(_VALID_PLAN))
    assert result["legs"] == [Leg("a", [Spot(1), Spot(2, 3.0)])]
    assert (result["pair"], result["weights"], result["when"]) == (
        (1, "b"),
        {"w": 1.0, "v": 0.5},
        3,
    )
    assert (result["spot"], result["tags"]) == (None, {"t"})
    for needless in ("child", "problem", "describe", "ArgumentProblem.__init__"):
        assert needless not in names, names


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3) | st.text(max_size=2),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)
_SIMPLE_HINTS: list[Any] = [
    str,
    int,
    float,
    bool,
    None,
    int | None,
    float | int,
    int | float,
    str | None,
    bool | int,
    int | str | None,
    Spot | None,
    list[int],
    dict[str, float],
]


@given(st.sampled_from(_SIMPLE_HINTS), _JSON)
def test_a_value_of_an_unchanged_type_is_what_the_node_returns(hint: Any, value: Any) -> None:
    """A node's ``unchanged`` types are exactly those it accepts and returns as they are, so a
    container may take such an item without calling the node."""
    adapter = AdapterBuilder().build(hint)
    if type(value) in adapter.unchanged:
        assert adapter.convert(value, "v") is value


def _outcome(adapter: Adapter, value: Any, path: str | None) -> tuple[str, Any]:
    try:
        return "ok", adapter.convert(value, path)
    except ArgumentProblem:
        return "problem", None


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "legs": st.lists(
                st.fixed_dictionaries(
                    {"name": _JSON},
                    optional={"stops": st.lists(st.dictionaries(st.sampled_from("xyz"), _JSON))},
                ),
                max_size=3,
            )
            | _JSON,
            "pair": _JSON,
            "weights": _JSON,
            "when": _JSON,
            "spot": st.dictionaries(st.sampled_from("xyz"), _JSON) | _JSON,
            "tags": _JSON,
            "other": _JSON,
        },
    )
)
def test_an_unworded_check_agrees_with_the_worded_one(arguments: dict[str, Any]) -> None:
    """The first, path-less pass over the arguments accepts (and converts) exactly what the
    worded pass does, so a problem is always found again and worded where it is."""
    adapter = function_schema(plan)._adapter
    assert _outcome(adapter, arguments, None) == _outcome(adapter, arguments, "")


# --------------------------------------------------------------------------------------------
# The compiled check (ObjectAdapter.prepared): convert's fast path, never a second opinion.


def flat(
    a: int,
    b: str,
    c: float = 0.0,
    d: bool | None = None,
    e: int | str | None = None,
    f: str | None = None,
) -> None:
    """Plain fields, required and optional."""


def _schema_adapter(schema: dict[str, Any]) -> ObjectAdapter:
    adapter = compile_json_schema(schema)
    assert isinstance(adapter, ObjectAdapter), adapter
    return adapter


_FLAT_ADAPTERS: list[ObjectAdapter] = [
    function_schema(flat)._adapter,
    function_schema(add)._adapter,
    # A JSON schema's object: other keys are refused, or taken as they are.
    _schema_adapter(
        {
            "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
            "required": ["n"],
            "additionalProperties": False,
        }
    ),
    _schema_adapter({"properties": {"x": {"type": "number"}, "1": {"type": "boolean"}}}),
    _schema_adapter({"properties": {"n": {"type": ["integer", "null"]}}, "required": ["n"]}),
    _schema_adapter({"properties": {}, "additionalProperties": False}),
]
_KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f", "n", "s", "x", "1", "zz"])


def _verdict(run: Callable[[], Any]) -> tuple[Any, ...]:
    """What a check answered: the value with the exact type of each item, or the problem as
    the model reads it."""
    try:
        result = run()
    except ArgumentProblem as found:
        return ("problem", found.argument, found.problem, found.kind)
    if isinstance(result, dict):
        return ("ok", result, [(k, type(v)) for k, v in result.items()])
    return ("ok", result, type(result))


_VALUE = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-3, 3)
    | st.sampled_from([1.0, -2.0])
    | st.text(max_size=2)
    | _JSON
)


@settings(max_examples=500)
@given(st.data())
def test_the_compiled_check_answers_what_convert_answers(data: st.DataObject) -> None:
    """Over generated arguments (each field present or not, with a value of every JSON type,
    3.0 for an integer, unknown keys, not even an object), the compiled check returns what
    convert returns (equal, items of the same types, a new dict) or raises the same worded
    problem."""
    adapter = data.draw(st.sampled_from(_FLAT_ADAPTERS))
    keys = [*adapter.fields, "zz"]
    arguments = data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(keys, _VALUE)) | _JSON)
    prepared = adapter.prepared()
    assert prepared.__name__ == "fast_convert"
    fast = _verdict(lambda: prepared(arguments))
    event(fast[0])
    assert fast == _verdict(lambda: adapter.convert(arguments, ""))
    if fast[0] == "ok" and isinstance(arguments, dict):
        assert prepared(arguments) is not arguments


def test_objects_the_check_cannot_take_as_they_are_keep_convert() -> None:
    """A field converted on every call (an attrs class, a list), an object built by a factory
    or extra keys checked by a schema: prepared() is convert itself, not a second check."""

    def nested(spot: Spot) -> None:
        """Nested."""

    def listed(items: list[int]) -> None:
        """Listed."""

    adapters = [
        function_schema(nested)._adapter,
        function_schema(listed)._adapter,
        function_schema(plan)._adapter,
        _schema_adapter(
            {"properties": {"n": {"type": "integer"}}, "additionalProperties": {"type": "string"}}
        ),
        _schema_adapter({"additionalProperties": {"type": "integer"}, "required": ["n"]}),
    ]
    spot = AdapterBuilder().build(Spot)
    assert isinstance(spot, ObjectAdapter)
    adapters.append(spot)  # its factory builds the Spot
    for adapter in adapters:
        assert adapter.prepared() == adapter.convert, adapter.schema


def test_the_compiled_check_takes_valid_arguments_without_a_call() -> None:
    """Valid arguments of plain fields (optional ones absent or present) pass the compiled
    check alone: no call of convert or of a field's node, no path, no problem."""
    prepare = function_schema(flat).prepare
    for arguments in (
        {"a": 1, "b": "x"},
        {"b": "x", "a": 1, "e": "y", "d": None},
        {"a": 1, "b": "x", "c": 2.5, "d": True, "e": 3, "f": None},
    ):
        result, names = _frames(lambda arguments=arguments: prepare(arguments))
        assert result == arguments and result is not arguments
        assert names[1:] == ["fast_convert"], names  # after the lambda


def test_tools_of_one_shape_share_one_compiled_check() -> None:
    """The check's code is compiled once per shape of fields: another tool with the same
    fields (or the same tool registered again) only gets a new function over that code,
    bound to its own fields' nodes."""

    async def add_again(a: int, b: int) -> int:  # noqa: ASYNC124 - an async tool, on purpose
        """Add two integers."""
        return a + b

    first, second = function_schema(add).prepare, function_schema(add_again).prepare
    assert first is not second
    assert first.__code__ is second.__code__
    assert function_schema(flat).prepare.__code__ is not first.__code__
    assert first({"a": 1, "b": 2}) == second({"a": 1, "b": 2}) == {"a": 1, "b": 2}
