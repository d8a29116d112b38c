"""The tool registry: registration, middleware, validation and execution."""

from __future__ import annotations

import dataclasses
import enum
import pathlib
import threading
import types
from collections.abc import Mapping
from typing import Any, TypedDict

import attrs
import pytest
import trio

import vega_trio.tools
from vega_trio import DuplicateTool, ToolNotFound, ToolSchemaError
from vega_trio.runtime._context import _current, current_process
from vega_trio.tools import (
    CallNext,
    Tool,
    ToolArgumentError,
    ToolCall,
    Tools,
    ToolTimeout,
    render_result,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Point:
    x: int = attrs.field(validator=attrs.validators.ge(0))
    y: int = 0


@dataclasses.dataclass
class Box:
    width: float
    tags: tuple[str, ...] = ()


class Options(TypedDict):
    mode: Color


def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    return a + b


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id="toolu_1", name=name, arguments=arguments)


def test_public_api_is_pinned() -> None:
    """vega_trio.tools exports exactly this public API."""
    assert sorted(vega_trio.tools.__all__) == [
        "ArgumentPreparer",
        "ArgumentProblem",
        "BUILTIN_TOOL_NAMES",
        "CallNext",
        "CommandPolicy",
        "CommandResult",
        "DeclarativeTool",
        "ExecImplementation",
        "ExecToolError",
        "FunctionSchema",
        "HostNotAllowed",
        "HttpImplementation",
        "HttpToolError",
        "MCPConfigError",
        "MCPConnection",
        "MCPServerConfig",
        "MCPServerError",
        "MCPServerUnavailable",
        "MCPServers",
        "MCPToolError",
        "MCPToolInfo",
        "Middleware",
        "MissingEnvironmentVariable",
        "ResourceLimits",
        "Sandbox",
        "SandboxViolation",
        "Tool",
        "ToolArgumentError",
        "ToolCall",
        "ToolDefinitionError",
        "ToolHandler",
        "ToolImplementation",
        "ToolParam",
        "ToolTimeout",
        "Tools",
        "builtin_tools",
        "function_schema",
        "json_schema_validator",
        "open_mcp_servers",
        "render_mcp_result",
        "render_result",
        "run_in_sandbox",
        "tool_schema",
    ]


# --------------------------------------------------------------------------------------------
# Registration


def test_register_function_builds_a_tool() -> None:
    """register() turns a function into a Tool with its schema, and honours overrides."""
    tools = Tools()
    tool = tools.register(add, timeout=3)
    assert (tool.name, tool.description, tool.timeout) == ("add", "Add two integers.", 3)
    assert tool.input_schema["required"] == ["a"]
    renamed = tools.register(add, name="plus", description="Sum.")
    assert (renamed.name, renamed.description) == ("plus", "Sum.")
    assert tools.names() == ("add", "plus")


def test_decorator_forms_return_the_function_unchanged() -> None:
    """@tools.tool and @tools.tool(...) register the function and leave it callable."""
    tools = Tools()

    @tools.tool
    def double(x: int) -> int:
        """Double x."""
        return 2 * x

    @tools.tool(name="triple_it", timeout=5)
    async def triple(x: int) -> int:
        """Triple x."""
        await trio.lowlevel.checkpoint()
        return 3 * x

    assert double(4) == 8
    assert tools.names() == ("double", "triple_it")
    assert tools["triple_it"].timeout == 5


async def test_prebuilt_tool_object() -> None:
    """A prebuilt Tool is registered as is; its handler gets the arguments mapping."""
    seen: list[Mapping[str, Any]] = []

    async def handler(arguments: Mapping[str, Any]) -> str:
        await trio.lowlevel.checkpoint()
        seen.append(arguments)
        return f"weather in {arguments['city']}"

    weather = Tool(
        name="weather",
        description="Current weather.",
        input_schema={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        handler=handler,
    )
    tools = Tools()
    assert tools.register(weather) is weather
    assert await tools.execute(call("weather", city="Oslo")) == "weather in Oslo"
    assert seen == [{"city": "Oslo"}]
    assert tools.register(weather, name="weather2").name == "weather2"


async def test_prebuilt_tool_arguments_checked_against_its_schema() -> None:
    """A prebuilt Tool's arguments are validated against its input_schema unless prepare=None."""

    async def handler(arguments: Mapping[str, Any]) -> Any:
        await trio.lowlevel.checkpoint()
        return dict(arguments)

    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["n"],
        "additionalProperties": False,
    }
    tools = Tools()
    tools.register(Tool(name="strict", input_schema=schema, handler=handler))
    tools.register(Tool(name="lenient", input_schema=schema, handler=handler, prepare=None))

    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "missing required argument 'n' (an integer)"),
        ({"n": "x"}, "argument 'n' must be an integer, got string 'x'"),
        ({"n": 1, "unit": "k"}, "argument 'unit' must be one of \"c\", \"f\", got string 'k'"),
        ({"n": 1, "tags": ["a", 2]}, "argument 'tags[1]' must be a string, got integer 2"),
        ({"n": 1, "z": 0}, "unknown argument 'z'; the arguments allowed are: 'n', 'unit', 'tags'"),
    ]
    for arguments, problem in cases:
        with pytest.raises(ToolArgumentError) as info:
            await tools.execute(ToolCall(id="t", name="strict", arguments=arguments))
        assert str(info.value) == (
            f"invalid arguments for tool 'strict': {problem}. "
            "Fix the arguments and call 'strict' again."
        )
    assert await tools.execute(call("strict", n=2, unit="c")) == '{"n":2,"unit":"c"}'
    assert await tools.execute(call("lenient", n="x")) == '{"n":"x"}'


def test_duplicate_names_raise() -> None:
    """A second, different tool with a taken name raises DuplicateTool; nothing is replaced."""
    tools = Tools()
    first = tools.register(add)

    def other(a: int) -> int:
        """Another."""
        return a

    with pytest.raises(DuplicateTool, match="a tool named 'add' is already registered"):
        tools.register(other, name="add")
    with pytest.raises(DuplicateTool):
        tools.register(add)
    with pytest.raises(DuplicateTool):

        @tools.tool(name="add")
        def again(a: int) -> int:
            return a

    assert tools["add"] is first
    assert tools.register(first) is first  # the very same Tool object is not a conflict
    assert len(tools) == 1


@pytest.mark.parametrize("name", ["", "has space", "dots.not.allowed", "x" * 65])
def test_invalid_tool_names_are_refused(name: str) -> None:
    """Names model APIs would reject are refused at registration, with the rule spelled out."""
    with pytest.raises(ToolSchemaError, match="1-64 letters, digits, '_' and '-'"):
        Tools().register(add, name=name)


async def _noop(arguments: Mapping[str, Any]) -> None:
    await trio.lowlevel.checkpoint()
    return None


def test_invalid_timeout_and_input_schema_are_refused() -> None:
    """A non-positive timeout and a non-object input schema are refused."""
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        Tool(name="t", handler=_noop, timeout=0)
    with pytest.raises(ToolSchemaError, match="input_schema must be a JSON object schema"):
        Tool(name="t", handler=_noop, input_schema={"type": "string"})


def test_lookup_and_container_protocol() -> None:
    """names, in, len, get, [] and iteration reflect registration order."""
    tools = Tools()
    a = tools.register(add)
    b = tools.register(add, name="b")
    assert tools.names() == ("add", "b")
    assert "add" in tools
    assert "nope" not in tools
    assert len(tools) == 2
    assert tools.get("b") is b
    assert tools.get("nope") is None
    assert list(tools) == [a, b]
    with pytest.raises(
        ToolNotFound, match="no tool named 'nope' is registered; available tools: 'add', 'b'"
    ):
        tools["nope"]


def test_schemas_in_registration_order() -> None:
    """schemas() lists tools in registration order, filtered by names, refreshed on register."""
    tools = Tools()
    tools.register(add, name="first")
    tools.register(add, name="second")
    assert [s.name for s in tools.schemas()] == ["first", "second"]
    assert [s.name for s in tools.schemas(["second", "first"])] == ["first", "second"]
    tools.register(add, name="third")
    assert [s.name for s in tools.schemas()] == ["first", "second", "third"]
    assert tools.schemas()[0].to_dict() == {
        "name": "first",
        "description": "Add two integers.",
        "input_schema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
            "required": ["a"],
            "additionalProperties": False,
        },
    }
    with pytest.raises(ToolNotFound):
        tools.schemas(["missing"])


async def test_subset_and_merged() -> None:
    """subset() and merged() build per-agent tool sets, keeping order and middleware."""
    log: list[str] = []

    async def logging(call: ToolCall, call_next: CallNext) -> Any:
        log.append(call.name)
        return await call_next(call)

    base = Tools()
    base.use(logging)
    for name in ("fs__read", "fs__write", "calc"):
        base.register(add, name=name)

    fs = base.subset(["fs__*", "calc"])
    assert fs.names() == ("fs__read", "fs__write", "calc")
    assert base.subset(["calc", "nothing__*"]).names() == ("calc",)
    with pytest.raises(ToolNotFound, match="'missing'"):
        base.subset(["missing"])

    extra = Tools()
    extra.register(add, name="extra")
    merged = base.subset(["calc"]).merged(extra)
    assert merged.names() == ("calc", "extra")
    assert await merged.execute(call("extra", a=1)) == "2"
    assert log == ["extra"]  # base's middleware came along
    assert base.merged(base).names() == base.names()  # same Tool objects: no conflict

    clash = Tools()
    clash.register(add, name="calc")
    with pytest.raises(DuplicateTool):
        base.merged(clash)


# --------------------------------------------------------------------------------------------
# Middleware


async def test_middleware_order_first_registered_outermost() -> None:
    """The first middleware sees the call first and the result last."""
    events: list[str] = []
    tools = Tools()

    @tools.tool
    def work() -> str:
        """Work."""
        events.append("tool")
        return "done"

    def make(label: str) -> Any:
        async def middleware(call: ToolCall, call_next: CallNext) -> Any:
            events.append(f"{label}>")
            result = await call_next(call)
            events.append(f"<{label}")
            return result

        return middleware

    tools.use(make("outer"))
    tools.use(make("inner"))
    assert await tools.execute(call("work")) == "done"
    assert events == ["outer>", "inner>", "tool", "<inner", "<outer"]


async def test_middleware_can_modify_call_and_result() -> None:
    """Middleware can rewrite the arguments and replace the (raw) result before rendering."""
    tools = Tools()
    tools.register(add)

    @tools.use
    async def bump(call: ToolCall, call_next: CallNext) -> Any:
        changed = attrs.evolve(call, arguments={**call.arguments, "b": 100})
        result = await call_next(changed)
        return {"sum": result, "by": "middleware"}

    assert await tools.execute(call("add", a=1)) == '{"sum":101,"by":"middleware"}'


async def test_middleware_sees_errors_and_can_recover() -> None:
    """Errors (unknown tool, bad arguments) pass through middleware, which may handle them."""
    tools = Tools()
    tools.register(add)
    seen: list[str] = []

    @tools.use
    async def recover(call: ToolCall, call_next: CallNext) -> Any:
        try:
            return await call_next(call)
        except (ToolNotFound, ToolArgumentError) as exc:
            seen.append(type(exc).__name__)
            return "recovered"

    assert await tools.execute(call("nope")) == "recovered"
    assert await tools.execute(call("add", a="one")) == "recovered"
    assert seen == ["ToolNotFound", "ToolArgumentError"]


# --------------------------------------------------------------------------------------------
# Execution


async def test_unknown_tool_lists_available_names() -> None:
    """Calling an unregistered tool raises ToolNotFound naming the tools that exist."""
    tools = Tools()
    tools.register(add)
    tools.register(add, name="sum")
    with pytest.raises(ToolNotFound) as info:
        await tools.execute(call("multiply", a=1))
    assert str(info.value) == (
        "no tool named 'multiply' is registered; available tools: 'add', 'sum'. "
        "Call one of those, or register the tool first."
    )


async def test_sync_tool_runs_in_worker_thread_and_loop_keeps_running() -> None:
    """A sync tool runs in another thread while the event loop keeps serving other tasks."""
    loop_thread = threading.get_ident()
    entered = trio.Event()
    release = threading.Event()
    tools = Tools()

    @tools.tool
    def blocking() -> int:
        """Block until released."""
        trio.from_thread.run_sync(entered.set)
        assert release.wait(timeout=10)  # safety net only; the test releases it at once
        return threading.get_ident()

    results: list[str] = []

    async def run() -> None:
        results.append(await tools.execute(call("blocking")))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.fail_after(10):
            await entered.wait()
        # The tool is still blocked, yet this task runs: the loop is not blocked.
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        assert results == []
        release.set()
    assert len(results) == 1
    assert int(results[0]) != loop_thread


async def test_async_tool_runs_in_the_calling_thread() -> None:
    """An async tool is awaited directly in the event loop's thread."""
    tools = Tools()

    @tools.tool
    async def where() -> int:
        """Report the thread."""
        await trio.lowlevel.checkpoint()
        return threading.get_ident()

    assert await tools.execute(call("where")) == str(threading.get_ident())


async def test_timeout_cancels_async_tool_at_exact_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A tool over its timeout is cancelled exactly at the deadline with ToolTimeout."""
    tools = Tools()
    finished: list[bool] = []

    @tools.tool(timeout=2.5)
    async def slow() -> str:
        """Slow."""
        await trio.sleep(10)
        finished.append(True)
        return "late"

    start = trio.current_time()
    with pytest.raises(ToolTimeout) as info:
        await tools.execute(call("slow"))
    assert trio.current_time() == start + 2.5
    assert finished == []
    assert (info.value.tool, info.value.timeout) == ("slow", 2.5)
    assert str(info.value) == (
        "tool 'slow' did not finish within its 2.5 s timeout and was cancelled; "
        "try a smaller request, or raise the tool's timeout"
    )


async def test_timeout_not_reached(autojump_clock: trio.testing.MockClock) -> None:
    """A tool that finishes before its timeout returns normally at its own pace."""
    tools = Tools()

    @tools.tool(timeout=5)
    async def quick() -> str:
        """Quick."""
        await trio.sleep(1)
        return "ok"

    start = trio.current_time()
    assert await tools.execute(call("quick")) == "ok"
    assert trio.current_time() == start + 1


async def test_tools_own_too_slow_error_is_not_a_tool_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A TooSlowError from the tool's own deadline propagates as itself, not as ToolTimeout."""
    tools = Tools()

    @tools.tool(timeout=10)
    async def impatient() -> None:
        """Gives up on its own."""
        with trio.fail_after(1):
            await trio.sleep(5)

    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        await tools.execute(call("impatient"))
    assert trio.current_time() == start + 1


async def test_timeout_abandons_blocked_sync_tool(autojump_clock: trio.testing.MockClock) -> None:
    """A sync tool stuck in its thread still times out on schedule (the thread is abandoned)."""
    release = threading.Event()
    tools = Tools()

    @tools.tool(timeout=3)
    def stuck() -> str:
        """Stuck."""
        release.wait(timeout=10)
        return "late"

    start = trio.current_time()
    try:
        with pytest.raises(ToolTimeout):
            await tools.execute(call("stuck"))
        assert trio.current_time() == start + 3
    finally:
        release.set()


async def test_cancellation_propagates_through_execute() -> None:
    """Cancelling the caller cancels the tool; Cancelled is not swallowed or converted."""
    tools = Tools()
    reached: list[str] = []

    @tools.tool
    async def forever() -> None:
        """Never returns."""
        try:
            await trio.sleep_forever()
        finally:
            reached.append("tool cleanup")

    with trio.CancelScope() as scope:
        scope.cancel()
        await tools.execute(call("forever"))
        reached.append("after execute")  # pragma: no cover - must not run
    assert scope.cancelled_caught
    assert reached == ["tool cleanup"]


@pytest.mark.parametrize("is_async", [False, True])
async def test_tool_exceptions_propagate_unchanged(is_async: bool) -> None:
    """The exception a tool raises reaches the caller as the same object."""
    error = KeyError("boom")
    tools = Tools()

    def sync_fail() -> None:
        raise error

    async def async_fail() -> None:
        await trio.lowlevel.checkpoint()
        raise error

    tools.register(async_fail if is_async else sync_fail, name="fail")
    with pytest.raises(KeyError) as info:
        await tools.execute(call("fail"))
    assert info.value is error


async def test_arguments_are_converted_to_declared_types() -> None:
    """Enums, attrs classes, dataclasses, TypedDicts, tuples, sets, paths and numbers convert."""
    received: dict[str, Any] = {}
    tools = Tools()

    @tools.tool
    def convert(
        color: Color,
        point: Point,
        box: Box,
        opts: Options,
        pair: tuple[str, int],
        unique: set[int],
        path: pathlib.Path,
        ratio: float,
        count: int,
    ) -> None:
        """Convert."""
        received.update(
            color=color,
            point=point,
            box=box,
            opts=opts,
            pair=pair,
            unique=unique,
            path=path,
            ratio=ratio,
            count=count,
        )

    await tools.execute(
        call(
            "convert",
            color="blue",
            point={"x": 1},
            box={"width": 2, "tags": ["a"]},
            opts={"mode": "red"},
            pair=["a", 1],
            unique=[1, 2, 2],
            path="/tmp/x",
            ratio=1,
            count=3.0,
        )
    )
    assert received == {
        "color": Color.BLUE,
        "point": Point(x=1, y=0),
        "box": Box(width=2.0, tags=("a",)),
        "opts": {"mode": Color.RED},
        "pair": ("a", 1),
        "unique": {1, 2},
        "path": pathlib.Path("/tmp/x"),
        "ratio": 1.0,
        "count": 3,
    }
    assert type(received["ratio"]) is float
    assert type(received["count"]) is int


@pytest.mark.parametrize(
    ("arguments", "argument", "problem"),
    [
        ({}, "a", "missing required argument 'a' (an integer)"),
        ({"a": 1, "c": 2}, "c", "unknown argument 'c'; the arguments allowed are: 'a', 'b'"),
        ({"a": "1"}, "a", "argument 'a' must be an integer, got string '1'"),
        ({"a": True}, "a", "argument 'a' must be an integer, got boolean true"),
        ({"a": 1.5}, "a", "argument 'a' must be an integer, got number 1.5"),
        ({"a": None}, "a", "argument 'a' must be an integer, got null"),
        ({"a": [1]}, "a", "argument 'a' must be an integer, got array"),
    ],
)
async def test_argument_validation_messages(
    arguments: dict[str, Any], argument: str, problem: str
) -> None:
    """Wrong arguments raise ToolArgumentError naming the argument and what was expected."""
    tools = Tools()
    tools.register(add)
    with pytest.raises(ToolArgumentError) as info:
        await tools.execute(ToolCall(id="t", name="add", arguments=arguments))
    assert str(info.value) == (
        f"invalid arguments for tool 'add': {problem}. Fix the arguments and call 'add' again."
    )
    assert (info.value.tool, info.value.argument) == ("add", argument)


@pytest.mark.parametrize(
    ("arguments", "argument", "problem"),
    [
        ({"point": {}}, "point.x", "missing required argument 'point.x' (an integer)"),
        (
            {"point": {"x": 1, "z": 1}},
            "point.z",
            "unknown argument 'point.z'; the arguments allowed in 'point' are: 'x', 'y'",
        ),
        ({"point": "1,2"}, "point", "argument 'point' must be an object (Point), got string '1,2'"),
        (
            {"point": {"x": -1}},
            "point",
            "argument 'point' is invalid: 'x' must be >= 0: -1",
        ),
        (
            {"point": {"x": 1}, "colors": ["red", "green"]},
            "colors[1]",
            ("argument 'colors[1]' must be one of \"red\", \"blue\", got string 'green'"),
        ),
        (
            {"point": {"x": 1}, "limit": "ten"},
            "limit",
            ("argument 'limit' must be an integer or null, got string 'ten'"),
        ),
    ],
)
async def test_nested_argument_validation_messages(
    arguments: dict[str, Any], argument: str, problem: str
) -> None:
    """Problems inside nested objects and arrays are reported with their full path."""
    tools = Tools()

    @tools.tool
    def draw(point: Point, colors: list[Color] | None = None, limit: int | None = None) -> None:
        """Draw."""

    with pytest.raises(ToolArgumentError) as info:
        await tools.execute(ToolCall(id="t", name="draw", arguments=arguments))
    assert str(info.value) == (
        f"invalid arguments for tool 'draw': {problem}. Fix the arguments and call 'draw' again."
    )
    assert info.value.argument == argument


async def test_current_process_visible_in_sync_and_async_tools() -> None:
    """Tools see the calling process through current_process(), in threads too."""
    process = types.SimpleNamespace(id="proc-7")
    tools = Tools()

    @tools.tool
    def sync_who() -> str:
        """Who calls (sync)."""
        return current_process().id  # type: ignore[no-any-return]

    @tools.tool
    async def async_who() -> str:
        """Who calls (async)."""
        await trio.lowlevel.checkpoint()
        return current_process().id  # type: ignore[no-any-return]

    token = _current.set(process)  # type: ignore[arg-type]
    try:
        assert await tools.execute(call("sync_who")) == "proc-7"
        assert await tools.execute(call("async_who")) == "proc-7"
    finally:
        _current.reset(token)
    with pytest.raises(RuntimeError, match="outside a vega-trio process"):
        await tools.execute(call("sync_who"))


# --------------------------------------------------------------------------------------------
# Results


@attrs.frozen
class Reply:
    color: Color
    point: Point


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        (None, ""),
        ({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'),
        ([1, "zwei", None], '[1,"zwei",null]'),
        ((1, 2), "[1,2]"),
        (Reply(color=Color.RED, point=Point(x=1)), '{"color":"red","point":{"x":1,"y":0}}'),
        (Box(width=1.5, tags=("x",)), '{"width":1.5,"tags":["x"]}'),
        ({"s": "é"}, '{"s":"é"}'),
        (42, "42"),
        (True, "True"),
        (Color.BLUE, "Color.BLUE"),
    ],
)
def test_render_result(value: Any, text: str) -> None:
    """Results become text: str as-is, None empty, structures compact JSON, others str()."""
    assert render_result(value) == text
