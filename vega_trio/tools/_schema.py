"""JSON schemas from Python signatures: a function becomes a tool by analysing it **once**, at
registration.

* the description is the docstring's summary (its first paragraph, :mod:`._docstrings`);
* each parameter's description comes from ``Annotated[T, "..."]`` or, failing that, from the
  docstring (Google/Napoleon ``Args:``, NumPy ``Parameters``, or Sphinx ``:param x:``);
* each parameter's type hint becomes a JSON schema *and* an adapter (:mod:`._adapters`, a node
  of the one JSON validator in :mod:`._validate`) that checks the model's JSON value and
  converts it into what the function expects.

The result is a :class:`FunctionSchema`; its :meth:`FunctionSchema.prepare` is the cheap per-call
step. Prebuilt tools (HTTP, exec, MCP) that only have a JSON schema get a plain check from
:func:`~._validate.json_schema_validator`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._errors import ArgumentProblem, ToolArgumentError, ToolSchemaError
from ..llm._protocol import ToolSchema
from ._adapters import (
    SUPPORTED_TYPES,
    AdapterBuilder,
    _UnsupportedType,
    json_default,
    type_hints,
    unwrap_annotated,
)
from ._docstrings import Docstring, parse_docstring
from ._validate import Field, ObjectAdapter, json_schema_validator, with_description

__all__ = [
    "ArgumentProblem",
    "Docstring",
    "FunctionSchema",
    "ToolArgumentError",
    "function_schema",
    "json_schema_validator",
    "parse_docstring",
    "tool_schema",
]


@attrs.frozen(kw_only=True)
class FunctionSchema:
    """Everything a tool needs to know about a function, computed once at registration.

    Attributes:
        name: the tool name (the function's ``__name__`` unless overridden).
        description: the docstring summary (unless overridden).
        input_schema: the JSON schema of the arguments object.
        is_async: whether calling the function returns a coroutine.
    """

    name: str
    description: str
    input_schema: Mapping[str, Any] = attrs.field(hash=False)
    is_async: bool
    _adapter: ObjectAdapter = attrs.field(alias="adapter", repr=False, eq=False, hash=False)
    _prepare: Callable[[Mapping[str, Any]], dict[str, Any]] = attrs.field(
        init=False, repr=False, eq=False, hash=False
    )

    @_prepare.default
    def _prepared(self) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        return self._adapter.prepared()

    @property
    def prepare(self) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """The per-call step: ``prepare(arguments)`` validates the model's arguments (the JSON
        object it sent) and converts them into keyword arguments for the function (enums,
        attrs instances, ... already built); it raises :class:`ArgumentProblem` when an
        argument is missing, unknown or of the wrong type.

        It is the arguments adapter's ``convert`` with its compiled fast path
        (:meth:`~vega_trio.tools._validate.ObjectAdapter.prepared`), made once: what a
        function tool runs per call, with no wrapper frame around it.
        """
        return self._prepare

    def to_tool_schema(self) -> ToolSchema:
        """The :class:`~vega_trio.llm.ToolSchema` the model is shown."""
        return ToolSchema(
            name=self.name, description=self.description, input_schema=self.input_schema
        )


def _callable_parts(fn: Callable[..., Any]) -> tuple[Any, str | None, bool]:
    """``(object to read hints and docstring from, default name, is_async)``."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target):
        hint_source = target
        name = getattr(target, "__name__", None)
    else:
        call = getattr(type(target), "__call__", None)  # noqa: B004 — a callable object
        if call is None:
            raise TypeError(f"{fn!r} is not callable")
        hint_source = call
        name = None  # an instance has no natural name
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(hint_source)
    return hint_source, name, is_async


def _qualname(fn: Any) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{qualname}" if module else qualname


def function_schema(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> FunctionSchema:
    """Analyse ``fn`` once: its JSON schema and the adapter that prepares each call's arguments.

    Args:
        fn: a function, bound method, ``functools.partial`` or callable object; sync or async.
        name: the tool name; defaults to ``fn.__name__``.
        description: the tool description; defaults to the docstring's first paragraph.

    Returns:
        The analysed function.

    Raises:
        ToolSchemaError: a parameter is ``*args``/``**kwargs``, positional-only, unannotated,
            or of a type that has no JSON schema; or the tool has no usable name.
    """
    hint_source, default_name, is_async = _callable_parts(fn)
    where = _qualname(hint_source)
    if inspect.isasyncgenfunction(hint_source):
        raise ToolSchemaError(
            f"{where} is an async generator; a tool must return its result. "
            "Collect the items and return a list instead."
        )
    tool_name = default_name if name is None else name
    if tool_name is None or tool_name == "<lambda>":
        raise ToolSchemaError(
            f"{where} has no usable name for a tool; pass one: register(fn, name='...')"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolSchemaError(f"cannot read the signature of {where}: {exc}") from exc
    try:
        hints = type_hints(hint_source)
    except _UnsupportedType as exc:
        raise ToolSchemaError(f"cannot build a tool from {where}: {exc}") from None
    doc = parse_docstring(inspect.getdoc(hint_source))

    builder = AdapterBuilder()
    fields: dict[str, Field] = {}
    properties: dict[str, Any] = {}
    for param in signature.parameters.values():
        where_param = f"parameter {param.name!r} of {where}"
        if param.kind is param.VAR_POSITIONAL or param.kind is param.VAR_KEYWORD:
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolSchemaError(
                f"{where_param} is {star}{param.name}; a tool's arguments must be named and typed. "
                f"Replace {star}{param.name} with explicit annotated parameters."
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolSchemaError(
                f"{where_param} is positional-only, but tools are called with keyword arguments. "
                "Remove the '/' from the signature."
            )
        if param.name not in hints:
            raise ToolSchemaError(
                f"{where_param} has no type annotation, so the model can't be told what to pass. "
                f"Annotate it, e.g. '{param.name}: str'."
            )
        tp, annotated_description = unwrap_annotated(hints[param.name])
        try:
            adapter = builder.build(tp)
        except _UnsupportedType as exc:
            raise ToolSchemaError(
                f"{where_param} has an unsupported type: {exc}. Use {SUPPORTED_TYPES}."
            ) from None
        required = param.default is param.empty
        prop = with_description(
            adapter, annotated_description or doc.params.get(param.name, "")
        ).schema
        if not required:
            ok, default = json_default(param.default)
            if ok:
                prop = {**prop, "default": default}
        fields[param.name] = Field(adapter, required)
        properties[param.name] = prop
    adapter = ObjectAdapter(fields, properties, None, f"the arguments of {tool_name!r}")
    return FunctionSchema(
        name=tool_name,
        description=doc.summary if description is None else description,
        input_schema=adapter.schema,
        is_async=is_async,
        adapter=adapter,
    )


def tool_schema(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> ToolSchema:
    """The :class:`~vega_trio.llm.ToolSchema` a function would be shown to the model as.

    Args:
        fn: a function, bound method, ``functools.partial`` or callable object.
        name: the tool name; defaults to ``fn.__name__``.
        description: the tool description; defaults to the docstring's first paragraph.

    Raises:
        ToolSchemaError: see :func:`function_schema`.
    """
    return function_schema(fn, name=name, description=description).to_tool_schema()
