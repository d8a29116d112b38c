"""The cost of one tool call, pinned: the Python frames a call runs, and no work on the success
path that only a problem needs (paths, wording). Benchmark B1 makes one such call per run."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from vega_trio.tools import ArgumentProblem, ToolCall, Tools, function_schema
from vega_trio.tools._adapters import AdapterBuilder
from vega_trio.tools._validate import Adapter


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
        "Tool.invoke",
        "ObjectAdapter.convert",
        "Tool.from_function.<locals>.handler",
        "add",
        "render_result",
    ]


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
