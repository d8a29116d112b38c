"""The tool registry: named tools, middleware, and the execution of a model's tool call.

A :class:`Tool` is the general abstraction — a name, a description, a JSON input schema and an
async handler that takes the arguments mapping. Python functions are one way to make one
(:meth:`Tool.from_function`); HTTP, exec and MCP tools are others.

Executing a call::

    Tools.execute(call)  /  Tools.run(name, arguments, call_id)
      └─ middleware (first registered outermost) ─ call_next(call)
           └─ look up call.name ─ Tool.invoke(arguments)
                └─ prepare (validate + convert) ─ timeout ─ handler
      └─ render_result(result) → str

Without middleware ``execute`` (and ``run``, which then makes no :class:`ToolCall`) looks the
tool up itself (no chain frames) and awaits the handler's awaitable returned by
``Tool._start`` (``invoke`` without its coroutine frame); a function tool's ``prepare`` is its
arguments adapter's compiled check (``ObjectAdapter.prepared``) and its async handler returns
the function's own coroutine, so a call runs six Python frames: execute, _start, the check,
handler, the function, render_result (``tests/tools/test_call_cost.py`` pins them).
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import functools
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias, TypeVar, overload

import attrs
import trio

from .._errors import DuplicateTool, ToolNotFound, ToolSchemaError, ToolTimeout
from ..llm._protocol import ToolSchema
from ._schema import ArgumentProblem, ToolArgumentError, function_schema, json_schema_validator

__all__ = [
    "ArgumentPreparer",
    "CallNext",
    "Middleware",
    "Tool",
    "ToolCall",
    "ToolHandler",
    "ToolTimeout",
    "Tools",
    "render_result",
]

ToolHandler: TypeAlias = Callable[[Mapping[str, Any]], Awaitable[Any]]
"""``async def handler(arguments) -> result``: runs a tool with its (prepared) arguments."""

ArgumentPreparer: TypeAlias = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""Validates and converts the model's arguments before the handler sees them; raises
:class:`ToolArgumentError` (or :class:`~vega_trio.tools.ArgumentProblem`) when they are wrong."""

_F = TypeVar("_F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@attrs.frozen(kw_only=True)
class ToolCall:
    """One tool call the model asked for.

    Attributes:
        id: the ``tool_use`` block's id (the tool result answers it).
        name: the tool to run.
        arguments: the JSON object the model sent.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


CallNext: TypeAlias = Callable[[ToolCall], Awaitable[Any]]
"""What a middleware calls to run the rest of the chain (and finally the tool)."""

Middleware: TypeAlias = Callable[[ToolCall, CallNext], Awaitable[Any]]
"""``async def mw(call, call_next) -> result``; it may change the call (``attrs.evolve``)
before passing it on, and change or replace the result it gets back."""


def _check_name(instance: Tool, attribute: attrs.Attribute[str], value: str) -> None:
    if not _NAME.match(value):
        raise ToolSchemaError(
            f"tool name {value!r} is invalid: model APIs accept 1-64 letters, digits, '_' "
            "and '-'. Pass another name, e.g. register(fn, name='my_tool')."
        )


def _check_input_schema(instance: Tool, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Mapping) or value.get("type") != "object":
        raise ToolSchemaError(
            f"tool {instance.name!r}: input_schema must be a JSON object schema "
            f'({{"type": "object", ...}}), got {value!r}'
        )


def _check_timeout(instance: Tool, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (math.isnan(value) or value <= 0):
        raise ValueError(
            f"tool {instance.name!r}: timeout must be a positive number of seconds or None, "
            f"got {value!r}"
        )


def _default_preparer(tool: Tool) -> ArgumentPreparer:
    return json_schema_validator(tool.input_schema)


@attrs.frozen(kw_only=True)
class Tool:
    """A tool the model can call.

    Build one from a Python function with :meth:`from_function` (or let
    :meth:`Tools.register` do it), or directly for tools that are not Python functions::

        Tool(name="weather", description="...", input_schema={...}, handler=fetch_weather)

    Attributes:
        name: unique within a registry; 1-64 letters, digits, ``_`` and ``-``.
        description: what the model is told the tool does.
        input_schema: the JSON schema of the arguments object.
        handler: ``async def handler(arguments) -> result``; gets the prepared arguments.
        timeout: seconds the handler may run before it is cancelled with :class:`ToolTimeout`;
            ``None`` for no limit.
        prepare: validates and converts the arguments before the handler sees them. By default
            the arguments are checked against ``input_schema`` (and passed on unchanged); pass
            ``None`` to skip the check (e.g. when a remote server validates).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = ""
    input_schema: Mapping[str, Any] = attrs.field(
        factory=lambda: {"type": "object", "properties": {}},
        validator=_check_input_schema,
        hash=False,
    )
    handler: ToolHandler = attrs.field(repr=False, hash=False)
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    prepare: ArgumentPreparer | None = attrs.field(
        default=attrs.Factory(_default_preparer, takes_self=True),
        repr=False,
        eq=False,
        hash=False,
    )

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """Make a tool of a Python function (sync or async).

        The schema comes from the type hints and the docstring (see
        :func:`~vega_trio.tools.function_schema`); it is analysed here, once. Each call's
        arguments are validated and converted (enums, attrs classes, dataclasses, ...). Async
        functions are awaited in the calling task; sync functions run in a worker thread
        (``trio.to_thread.run_sync``) so they never block the event loop.

        Args:
            fn: the function, bound method, ``functools.partial`` or callable object.
            name: the tool name; defaults to ``fn.__name__``.
            description: defaults to the docstring's first paragraph.
            timeout: seconds a call may take; ``None`` for no limit.

        Raises:
            ToolSchemaError: the signature can't become a JSON schema (the message names the
                parameter and what to change).
        """
        analysed = function_schema(fn, name=name, description=description)
        handler: ToolHandler
        if analysed.is_async:
            # NOTE: a plain def that returns the function's own coroutine: awaiting it runs
            # the function directly, without a wrapper coroutine around it.
            def handler(arguments: Mapping[str, Any]) -> Awaitable[Any]:
                return fn(**arguments)  # type: ignore[no-any-return]

        else:
            thread_name = f"vega-trio tool {analysed.name}"

            async def handler(arguments: Mapping[str, Any]) -> Any:
                # NOTE: abandon_on_cancel=True lets a timeout or a cancelled agent return at
                # once; Python can't stop a thread, so the abandoned call finishes (and its
                # result is discarded) in the background.
                return await trio.to_thread.run_sync(
                    functools.partial(fn, **arguments),
                    abandon_on_cancel=True,
                    thread_name=thread_name,
                )

        return cls(
            name=analysed.name,
            description=analysed.description,
            input_schema=analysed.input_schema,
            handler=handler,
            timeout=timeout,
            prepare=analysed.prepare,
        )

    @property
    def schema(self) -> ToolSchema:
        """What the model is shown for this tool."""
        return ToolSchema(
            name=self.name, description=self.description, input_schema=self.input_schema
        )

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Run the tool once: prepare the arguments, then run the handler within ``timeout``.

        Args:
            arguments: the JSON object the model sent.

        Returns:
            Whatever the handler returned (see :func:`render_result` for the text form).

        Raises:
            ToolArgumentError: the arguments don't match the schema.
            ToolTimeout: the handler ran longer than ``timeout``.
            Exception: whatever the handler raised, unchanged.
        """
        return await self._start(arguments)

    def _start(self, arguments: Mapping[str, Any]) -> Awaitable[Any]:
        """:meth:`invoke`'s work up to the handler's awaitable, returned to be awaited by the
        caller: a registry's call awaits the function's own coroutine, with no coroutine
        frame of the tool's around it. Argument problems raise here."""
        prepare = self.prepare
        if prepare is not None:
            try:
                arguments = prepare(arguments)
            except ArgumentProblem as problem:
                raise ToolArgumentError(
                    f"invalid arguments for tool {self.name!r}: {problem.problem}. "
                    f"Fix the arguments and call {self.name!r} again.",
                    tool=self.name,
                    argument=problem.argument,
                ) from None
        if self.timeout is None:
            return self.handler(arguments)
        return self._within_timeout(self.timeout, arguments)

    async def _within_timeout(self, limit: float, arguments: Mapping[str, Any]) -> Any:
        # NOTE: move_on_after + cancelled_caught (not fail_after + TooSlowError) so that a
        # TooSlowError raised by the tool's own deadlines is not mistaken for ours.
        # Leaving the block without returning means our own deadline cancelled the handler.
        with trio.move_on_after(limit):
            return await self.handler(arguments)
        raise ToolTimeout(
            f"tool {self.name!r} did not finish within its {limit:g} s timeout and "
            "was cancelled; try a smaller request, or raise the tool's timeout",
            tool=self.name,
            timeout=limit,
        )


def _json_fallback(value: Any) -> Any:
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_fallback).encode


def render_result(value: Any) -> str:
    """The text a tool result is given to the model as.

    ``str`` as-is; ``None`` → ``""``; attrs instances, dataclasses, dicts, lists and tuples →
    compact JSON (nested attrs/dataclass/enum/set values included); anything else → ``str()``.
    """
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is int or kind is float or kind is bool:
        return str(value)
    if (
        kind is dict
        or kind is list
        or isinstance(value, Mapping | list | tuple)
        or attrs.has(kind)
        or (dataclasses.is_dataclass(value) and not isinstance(value, type))
    ):
        return _encode(value)
    return str(value)


@attrs.define(eq=False)
class Tools:
    """A registry of uniquely named tools and the middleware around them.

    ``name in tools`` and ``len(tools)`` work on names; iterating yields the :class:`Tool`
    objects in registration order.

    Build one per application (or per agent with :meth:`subset` / :meth:`merged`)::

        tools = Tools()

        @tools.tool
        def add(a: int, b: int) -> int:
            \"\"\"Add two integers.\"\"\"
            return a + b

        result = await tools.execute(ToolCall(id="t1", name="add", arguments={"a": 1, "b": 2}))
    """

    _tools: dict[str, Tool] = attrs.field(factory=dict, init=False)
    _middleware: list[Middleware] = attrs.field(factory=list, init=False)
    # The middleware chain; None while there is no middleware (execute then dispatches
    # the call itself, without the chain's frames).
    _chain: CallNext | None = attrs.field(default=None, init=False)
    _all_schemas: tuple[ToolSchema, ...] | None = attrs.field(default=None, init=False)
    # Tool-name prefixes whose provider failed (an MCP server that did not start) → why;
    # a ToolNotFound for a name under one says so, instead of only "available: none".
    _missing_providers: dict[str, str] = attrs.field(factory=dict, init=False)

    # -- registration -------------------------------------------------------------------------

    def register(
        self,
        tool: Callable[..., Any] | Tool,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """Add a tool: a Python function (sync or async) or a prebuilt :class:`Tool`.

        Args:
            tool: the function or :class:`Tool`.
            name: the tool name; defaults to the function's ``__name__`` or the tool's name.
            description: overrides the docstring summary (or the tool's description).
            timeout: seconds each call may take; for a prebuilt tool ``None`` keeps its own.

        Returns:
            The registered :class:`Tool`.

        Raises:
            DuplicateTool: a different tool with that name is already registered.
            ToolSchemaError: the function's signature can't become a JSON schema.
        """
        if isinstance(tool, Tool):
            changes: dict[str, Any] = {}
            if name is not None:
                changes["name"] = name
            if description is not None:
                changes["description"] = description
            if timeout is not None:
                changes["timeout"] = timeout
            built = attrs.evolve(tool, **changes) if changes else tool
        else:
            built = Tool.from_function(tool, name=name, description=description, timeout=timeout)
        self._add(built)
        return built

    @overload
    def tool(self, fn: _F) -> _F: ...

    @overload
    def tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Callable[[_F], _F]: ...

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Decorator that registers a function and returns it unchanged (still callable).

        Use it bare (``@tools.tool``) or with options
        (``@tools.tool(name="search", timeout=30)``); the options are those of
        :meth:`register`.
        """

        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            self.register(function, name=name, description=description, timeout=timeout)
            return function

        return decorate if fn is None else decorate(fn)

    def use(self, middleware: Middleware) -> Middleware:
        """Wrap every tool call of this registry in ``middleware``.

        Middleware registered first is outermost: it sees the call first and the result last.
        Returns the middleware, so this also works as a decorator.
        """
        self._middleware.append(middleware)
        self._rebuild_chain()
        return middleware

    def _add(self, tool: Tool) -> None:
        existing = self._tools.get(tool.name)
        if existing is not None and existing is not tool:
            raise DuplicateTool(
                f"a tool named {tool.name!r} is already registered; tool names must be unique. "
                "Register this one under another name (register(fn, name='...'))."
            )
        self._tools[tool.name] = tool
        self._all_schemas = None

    def _rebuild_chain(self) -> None:
        if not self._middleware:
            self._chain = None
            return
        chain: CallNext = self._dispatch
        for middleware in reversed(self._middleware):
            chain = _link(middleware, chain)
        self._chain = chain

    # -- lookup -------------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        """The registered tool names, in registration order."""
        return tuple(self._tools)

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None``."""
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool:
        """The tool called ``name``; raises :class:`ToolNotFound` when there is none."""
        tool = self._tools.get(name)
        if tool is None:
            raise self._not_found(name)
        return tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(tuple(self._tools.values()))

    def schemas(self, names: Iterable[str] | None = None) -> tuple[ToolSchema, ...]:
        """The schemas the model is shown, in registration order.

        Args:
            names: only these tools (still in registration order); all when ``None``.

        Raises:
            ToolNotFound: one of ``names`` is not registered.
        """
        if names is None:
            if self._all_schemas is None:
                self._all_schemas = tuple(tool.schema for tool in self._tools.values())
            return self._all_schemas
        wanted = set(names)
        for name in wanted:
            if name not in self._tools:
                raise self._not_found(name)
        return tuple(tool.schema for tool in self._tools.values() if tool.name in wanted)

    # -- per-agent tool sets ------------------------------------------------------------------

    def subset(self, names: Iterable[str]) -> Tools:
        """A new registry with only the named tools (in registration order) and this
        registry's middleware.

        Args:
            names: tool names; shell-style globs (``"filesystem__*"``) select every match and
                may match nothing (a server's tools may not be connected yet).

        Raises:
            ToolNotFound: an exact name (not a glob) is not registered.
        """
        exact: set[str] = set()
        patterns: list[str] = []
        for name in names:
            if any(c in name for c in "*?["):
                patterns.append(name)
            elif name not in self._tools:
                raise self._not_found(name)
            else:
                exact.add(name)
        result = self._empty_copy()
        for tool in self._tools.values():
            if tool.name in exact or any(fnmatch.fnmatchcase(tool.name, p) for p in patterns):
                result._add(tool)
        return result

    def merged(self, other: Tools) -> Tools:
        """A new registry with this registry's tools followed by ``other``'s.

        Middleware: this registry's, then those of ``other`` not already present. The same
        :class:`Tool` object in both is kept once.

        Raises:
            DuplicateTool: both registries have *different* tools with the same name.
        """
        result = self._empty_copy()
        for tool in (*self._tools.values(), *other._tools.values()):
            result._add(tool)
        for middleware in other._middleware:
            if not any(middleware is mine for mine in result._middleware):
                result._middleware.append(middleware)
        result._missing_providers.update(other._missing_providers)
        result._rebuild_chain()
        return result

    def _empty_copy(self) -> Tools:
        result = Tools()
        result._middleware = list(self._middleware)
        result._missing_providers = dict(self._missing_providers)
        result._rebuild_chain()
        return result

    def _provider_failed(self, prefix: str, why: str) -> None:
        """Record that the tools named ``<prefix>…`` are missing because their provider
        failed (``why`` says which and how); lookups of such names report it. Copies
        made by :meth:`subset` and :meth:`merged` keep the note."""
        self._missing_providers[prefix] = why

    def missing_provider(self, name: str) -> str | None:
        """Why the tools named like ``name`` (a name or a glob) are missing, when their
        provider failed (an MCP server that could not start); else ``None``."""
        # A glob may match a failed provider's tools when its literal head fits the prefix.
        head = re.split(r"[*?\[]", name, maxsplit=1)[0]
        reasons = [
            why
            for prefix, why in self._missing_providers.items()
            if name.startswith(prefix) or (head != name and prefix.startswith(head))
        ]
        return "; ".join(reasons) if reasons else None

    # -- execution ----------------------------------------------------------------------------

    async def execute(self, call: ToolCall) -> str:
        """Run one tool call through the middleware and return the result as text.

        Args:
            call: the model's tool call.

        Returns:
            The result as text (see :func:`render_result`).

        Raises:
            ToolNotFound: no tool is called ``call.name`` (the message lists those that are).
            ToolArgumentError: the arguments don't match the tool's schema.
            ToolTimeout: the tool ran longer than its ``timeout``.
            Exception: whatever the tool (or a middleware) raised, unchanged.
        """
        chain = self._chain
        if chain is not None:
            return render_result(await chain(call))
        # No middleware: the end of the chain (_dispatch) inline, one frame fewer.
        tool = self._tools.get(call.name)
        if tool is None:
            raise self._not_found(call.name)
        return render_result(await tool._start(call.arguments))

    async def run(self, name: str, arguments: Mapping[str, Any], call_id: str = "") -> str:
        """:meth:`execute` for a call given by its parts: the :class:`ToolCall` is made only
        for the middleware (the agent loop's path: a call without middleware makes none).

        Args:
            name: the tool to run.
            arguments: the JSON object the model sent.
            call_id: the ``tool_use`` block's id (the middleware's ``call.id``).

        Returns:
            The result as text; raises as :meth:`execute` does.
        """
        chain = self._chain
        if chain is not None:
            return render_result(await chain(ToolCall(id=call_id, name=name, arguments=arguments)))
        tool = self._tools.get(name)
        if tool is None:
            raise self._not_found(name)
        return render_result(await tool._start(arguments))

    async def _dispatch(self, call: ToolCall) -> Any:
        tool = self._tools.get(call.name)
        if tool is None:
            raise self._not_found(call.name)
        return await tool._start(call.arguments)

    def _not_found(self, name: str) -> ToolNotFound:
        available = ", ".join(repr(n) for n in self._tools) or "none"
        failed = self.missing_provider(name)
        if failed is not None:
            return ToolNotFound(
                f"no tool named {name!r}: {failed}. Available tools: {available}. Fix the "
                "server (its command, arguments and environment) and run again."
            )
        return ToolNotFound(
            f"no tool named {name!r} is registered; available tools: {available}. "
            "Call one of those, or register the tool first."
        )


def _link(middleware: Middleware, call_next: CallNext) -> CallNext:
    async def step(call: ToolCall) -> Any:
        return await middleware(call, call_next)

    return step
