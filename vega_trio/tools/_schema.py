"""JSON schemas from Python signatures, and the argument checks that go with them.

A function becomes a tool by analysing it **once**, at registration:

* the description is the docstring's summary (its first paragraph);
* each parameter's description comes from ``Annotated[T, "..."]`` or, failing that, from the
  docstring (Google/Napoleon ``Args:``, NumPy ``Parameters``, or Sphinx ``:param x:``);
* each parameter's type hint becomes a JSON schema *and* an adapter that validates the model's
  JSON value and converts it into what the function expects (enum members, attrs instances,
  dataclasses, tuples, sets, ...).

The result is a :class:`FunctionSchema`; its :meth:`FunctionSchema.prepare` is the cheap per-call
step. Prebuilt tools (HTTP, exec, MCP) that only have a JSON schema get a plain validator from
:func:`json_schema_validator`.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import enum
import functools
import inspect
import json
import pathlib
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from .._errors import ArgumentProblem, ToolArgumentError, ToolSchemaError
from ..llm._protocol import ToolSchema

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


# --------------------------------------------------------------------------------------------
# Docstrings


@attrs.frozen(kw_only=True)
class Docstring:
    """The parts of a docstring a tool schema uses."""

    summary: str = ""
    params: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    attributes: Mapping[str, str] = attrs.field(factory=dict, hash=False)


_GOOGLE_PARAM_SECTIONS: Final = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "kwargs",
        "other parameters",
    }
)
_GOOGLE_ATTRIBUTE_SECTIONS: Final = frozenset({"attributes"})
_GOOGLE_SECTIONS: Final = (
    _GOOGLE_PARAM_SECTIONS
    | _GOOGLE_ATTRIBUTE_SECTIONS
    | frozenset(
        {
            "returns",
            "return",
            "yields",
            "yield",
            "raises",
            "raise",
            "examples",
            "example",
            "note",
            "notes",
            "warning",
            "warnings",
            "see also",
            "references",
            "todo",
            "methods",
            "warns",
        }
    )
)
_GOOGLE_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z ]*):\s*$")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?::.*)?$")
_SPHINX_FIELD = re.compile(
    r"^(param|parameter|arg|argument|key|keyword|ivar|var|cvar)\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:\s*(.*)$"
)
_SPHINX_ATTRIBUTE_FIELDS: Final = frozenset({"ivar", "var", "cvar"})


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_google_header(line: str) -> str | None:
    match = _GOOGLE_HEADER.match(line)
    if match is None:
        return None
    title = match.group(1).strip().lower()
    return title if title in _GOOGLE_SECTIONS else None


def _is_numpy_header(lines: list[str], i: int) -> bool:
    return (
        i + 1 < len(lines)
        and bool(lines[i].strip())
        and _NUMPY_UNDERLINE.match(lines[i + 1]) is not None
    )


def _join(parts: list[str]) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


def parse_docstring(doc: str | None) -> Docstring:
    """Split a docstring into its summary and its per-parameter / per-attribute descriptions.

    Understands Google/Napoleon sections (``Args:``, ``Arguments:``, ``Parameters:``,
    ``Keyword Args:``, ``Attributes:``), NumPy sections (``Parameters`` underlined with dashes)
    and Sphinx fields (``:param x:``, ``:param int x:``, ``:ivar x:``). Multi-line descriptions
    are joined into one line.

    Args:
        doc: the raw docstring (``fn.__doc__``), or ``None``.

    Returns:
        The summary (the first paragraph, joined into one line) and two name → description maps.
    """
    if not doc:
        return Docstring()
    lines = inspect.cleandoc(doc).splitlines()
    params: dict[str, str] = {}
    attributes: dict[str, str] = {}

    summary: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if (
            not stripped
            or _is_google_header(line)
            or _is_numpy_header(lines, i)
            or stripped.startswith(":")
        ):
            break
        summary.append(stripped)

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        google = _is_google_header(line)
        if google is not None:
            target = _section_target(google, params, attributes)
            i = _parse_google_section(lines, i + 1, _indent(line), target)
            continue
        if _is_numpy_header(lines, i):
            title = stripped.lower()
            target = _section_target(title, params, attributes)
            i = _parse_numpy_section(lines, i + 2, target)
            continue
        if stripped.startswith(":"):
            match = _SPHINX_FIELD.match(stripped[1:])
            if match is not None:
                kind, name, first = match.groups()
                parts = [first]
                field_indent = _indent(line)
                i += 1
                while i < len(lines) and lines[i].strip():
                    if lines[i].strip().startswith(":") or _indent(lines[i]) <= field_indent:
                        break
                    parts.append(lines[i])
                    i += 1
                (attributes if kind in _SPHINX_ATTRIBUTE_FIELDS else params)[name] = _join(parts)
                continue
        i += 1
    return Docstring(summary=_join(summary), params=params, attributes=attributes)


def _section_target(
    title: str, params: dict[str, str], attributes: dict[str, str]
) -> dict[str, str] | None:
    if title in _GOOGLE_PARAM_SECTIONS:
        return params
    if title in _GOOGLE_ATTRIBUTE_SECTIONS:
        return attributes
    return None


def _parse_google_section(
    lines: list[str], start: int, header_indent: int, target: dict[str, str] | None
) -> int:
    """Parse the body of a Google section; return the index of the first line after it."""
    entry_indent: int | None = None
    name: str | None = None
    parts: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if line.strip():
            indent = _indent(line)
            if indent <= header_indent:
                break
            if entry_indent is None:
                entry_indent = indent
            if indent <= entry_indent:
                if name is not None and target is not None:
                    target[name] = _join(parts)
                match = _GOOGLE_ENTRY.match(line.strip())
                name, parts = (match.group(1), [match.group(2)]) if match else (None, [])
            else:
                parts.append(line)
        i += 1
    if name is not None and target is not None:
        target[name] = _join(parts)
    return i


def _parse_numpy_section(lines: list[str], start: int, target: dict[str, str] | None) -> int:
    """Parse the body of a NumPy section; return the index of the first line after it."""
    entry_indent: int | None = None
    name: str | None = None
    parts: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if _is_numpy_header(lines, i):
            break
        if line.strip():
            indent = _indent(line)
            if entry_indent is None:
                entry_indent = indent
            if indent <= entry_indent:
                if name is not None and target is not None:
                    target[name] = _join(parts)
                match = _NUMPY_ENTRY.match(line.strip())
                name, parts = (match.group(1), []) if match else (None, [])
            else:
                parts.append(line)
        i += 1
    if name is not None and target is not None:
        target[name] = _join(parts)
    return i


# --------------------------------------------------------------------------------------------
# Adapters: one per type, built once; ``convert`` validates a JSON value and converts it.

_JSON_TYPE_NAMES: Final[Mapping[type, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    list: "array",
    tuple: "array",
    dict: "object",
}


def _describe(value: object) -> str:
    """How a received JSON value is named in an error message: its JSON type, plus the value
    itself when it is short."""
    kind = _JSON_TYPE_NAMES.get(type(value))
    if kind is None:
        kind = "object" if isinstance(value, Mapping) else type(value).__name__
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = repr(value)
        return f"{kind} {text}" if len(text) <= 40 else f"{kind} {text[:37]}..."
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    return kind


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Adapter:
    """Validates and converts one JSON value; ``schema`` is what the model is told."""

    __slots__ = ("expected", "schema")

    schema: dict[str, Any]
    expected: str

    def convert(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def _wrong(self, value: Any, path: str) -> ArgumentProblem:
        return ArgumentProblem(
            path, f"argument {path!r} must be {self.expected}, got {_describe(value)}"
        )


class _AnyAdapter(_Adapter):
    __slots__ = ()

    def __init__(self) -> None:
        self.schema = {}
        self.expected = "any JSON value"

    def convert(self, value: Any, path: str) -> Any:
        return value


class _StrAdapter(_Adapter):
    __slots__ = ()

    def __init__(self) -> None:
        self.schema = {"type": "string"}
        self.expected = "a string"

    def convert(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return value
        raise self._wrong(value, path)


class _PathAdapter(_StrAdapter):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.expected = "a path string"

    def convert(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return pathlib.Path(value)
        raise self._wrong(value, path)


class _IntAdapter(_Adapter):
    __slots__ = ()

    def __init__(self) -> None:
        self.schema = {"type": "integer"}
        self.expected = "an integer"

    def convert(self, value: Any, path: str) -> Any:
        kind = type(value)
        if kind is int:
            return value
        # NOTE: JSON does not distinguish 3 from 3.0, and JSON Schema calls 3.0 an integer.
        if kind is float and value.is_integer():
            return int(value)
        raise self._wrong(value, path)


class _FloatAdapter(_Adapter):
    __slots__ = ()

    def __init__(self) -> None:
        self.schema = {"type": "number"}
        self.expected = "a number"

    def convert(self, value: Any, path: str) -> Any:
        kind = type(value)
        if kind is float:
            return value
        if kind is int:
            return float(value)
        raise self._wrong(value, path)


class _BoolAdapter(_Adapter):
    __slots__ = ()

    def __init__(self) -> None:
        self.schema = {"type": "boolean"}
        self.expected = "a boolean"

    def convert(self, value: Any, path: str) -> Any:
        if value is True or value is False:
            return value
        raise self._wrong(value, path)


class _NullAdapter(_Adapter):
    __slots__ = ()

    def __init__(self) -> None:
        self.schema = {"type": "null"}
        self.expected = "null"

    def convert(self, value: Any, path: str) -> Any:
        if value is None:
            return None
        raise self._wrong(value, path)


class _ArrayAdapter(_Adapter):
    """``list[T]``, ``set[T]``, ``frozenset[T]``, ``tuple[T, ...]``, ``Sequence[T]``."""

    __slots__ = ("build", "item")

    def __init__(self, item: _Adapter, build: Callable[[list[Any]], Any], unique: bool) -> None:
        self.item = item
        self.build = build
        self.schema = {"type": "array", "items": item.schema} if item.schema else {"type": "array"}
        if unique:
            self.schema["uniqueItems"] = True
        self.expected = f"an array (items: {item.expected})" if item.schema else "an array"

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            raise self._wrong(value, path)
        item = self.item
        items = [item.convert(v, f"{path}[{i}]") for i, v in enumerate(value)]
        try:
            return self.build(items)
        except TypeError as exc:  # unhashable items for a set
            raise ArgumentProblem(path, f"argument {path!r} is invalid: {exc}") from exc


class _FixedTupleAdapter(_Adapter):
    """``tuple[A, B, C]``: exactly these items, in this order."""

    __slots__ = ("items",)

    def __init__(self, items: list[_Adapter]) -> None:
        self.items = items
        self.schema = {
            "type": "array",
            "prefixItems": [a.schema for a in items],
            "items": False,
            "minItems": len(items),
            "maxItems": len(items),
        }
        self.expected = f"an array of exactly {len(items)} items"

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(self.items):
            raise self._wrong(value, path)
        return tuple(
            a.convert(v, f"{path}[{i}]")
            for i, (a, v) in enumerate(zip(self.items, value, strict=True))
        )


class _MappingAdapter(_Adapter):
    """``dict[str, T]`` / ``Mapping[str, T]``."""

    __slots__ = ("value",)

    def __init__(self, value: _Adapter) -> None:
        self.value = value
        self.schema = {"type": "object"}
        if value.schema:
            self.schema["additionalProperties"] = value.schema
        self.expected = f"an object (values: {value.expected})" if value.schema else "an object"

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise self._wrong(value, path)
        adapter = self.value
        return {k: adapter.convert(v, f"{path}[{k!r}]") for k, v in value.items()}


class _UnionAdapter(_Adapter):
    """``A | B | None``: the first alternative that accepts the value wins."""

    __slots__ = ("options",)

    def __init__(self, options: list[_Adapter]) -> None:
        # NOTE: null is tried first, so that ``None`` never reaches a converting alternative;
        # the schema keeps the declared order.
        self.options = sorted(options, key=lambda a: not isinstance(a, _NullAdapter))
        self.schema = {"anyOf": [o.schema for o in options]}
        self.expected = " or ".join(o.expected for o in options)

    def convert(self, value: Any, path: str) -> Any:
        problems: list[ArgumentProblem] = []
        for option in self.options:
            try:
                return option.convert(value, path)
            except ArgumentProblem as problem:
                problems.append(problem)
        # A problem deeper inside the value (``items[2]`` of ``list[int] | None``) is more
        # useful than "must be A or B" when only one alternative could have matched.
        deeper = [p for p in problems if p.argument != path]
        if len(deeper) == 1:
            raise deeper[0]
        raise self._wrong(value, path)


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    kinds = {type(v) for v in values}
    if len(kinds) == 1:
        (kind,) = kinds
        name = _JSON_TYPE_NAMES.get(kind)
        if name is not None and name not in ("array", "object"):
            if name == "null":
                return {"type": "null"}
            return {"type": name, "enum": values}
    return {"enum": values}


class _ChoiceAdapter(_Adapter):
    """``Literal[...]`` and ``Enum`` subclasses: one of a fixed set of JSON scalars."""

    __slots__ = ("choices",)

    def __init__(self, choices: Mapping[tuple[type, Any], Any]) -> None:
        # NOTE: keyed by (type, value) so that True does not match 1 and 1 does not match True.
        self.choices = choices
        values = [value for _, value in choices]
        self.schema = _enum_schema(values)
        self.expected = "one of " + ", ".join(json.dumps(v) for v in values)

    def convert(self, value: Any, path: str) -> Any:
        try:
            return self.choices[(type(value), value)]
        except (KeyError, TypeError):  # TypeError: an unhashable value
            raise self._wrong(value, path) from None


class _Field:
    __slots__ = ("adapter", "required")

    def __init__(self, adapter: _Adapter, required: bool) -> None:
        self.adapter = adapter
        self.required = required


class _ObjectAdapter(_Adapter):
    """A fixed set of named properties: the tool's parameters, an attrs class, a dataclass or a
    TypedDict. ``factory`` builds the result from the converted keyword arguments."""

    __slots__ = ("factory", "fields", "n_required", "what")

    def __init__(
        self,
        fields: dict[str, _Field],
        properties: dict[str, Any],
        factory: Callable[..., Any] | None,
        what: str,
        description: str = "",
    ) -> None:
        self.fields = fields
        self.factory = factory
        self.what = what
        self.n_required = sum(f.required for f in fields.values())
        self.schema = {"type": "object"}
        if description:
            self.schema["description"] = description
        self.schema["properties"] = properties
        required = [name for name, f in fields.items() if f.required]
        if required:
            self.schema["required"] = required
        self.schema["additionalProperties"] = False
        self.expected = f"an object ({what})"

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise self._wrong(value, path)
        fields = self.fields
        out: dict[str, Any] = {}
        seen_required = 0
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                raise self._unknown(key, path)
            out[key] = field.adapter.convert(item, _child(path, key))
            seen_required += field.required
        if seen_required != self.n_required:
            raise self._missing(out, path)
        factory = self.factory
        if factory is None:
            return out
        try:
            return factory(**out)
        except (TypeError, ValueError) as exc:
            # The class's own validators (attrs validators, __post_init__) refused the value.
            raise ArgumentProblem(path, f"argument {path!r} is invalid: {exc}") from exc

    def _unknown(self, key: object, path: str) -> ArgumentProblem:
        where = _child(path, str(key))
        known = ", ".join(repr(k) for k in self.fields) or "none"
        scope = f"in {path!r} " if path else ""
        return ArgumentProblem(
            where, f"unknown argument {where!r}; the arguments allowed {scope}are: {known}"
        )

    def _missing(self, out: Mapping[str, Any], path: str) -> ArgumentProblem:
        for name, field in self.fields.items():
            if field.required and name not in out:
                where = _child(path, name)
                return ArgumentProblem(
                    where,
                    f"missing required argument {where!r} ({field.adapter.expected})",
                )
        raise AssertionError("unreachable: required count mismatch without a missing field")


def _with_description(adapter: _Adapter, description: str) -> _Adapter:
    if not description:
        return adapter
    clone = copy.copy(adapter)
    clone.schema = {**adapter.schema, "description": description}
    return clone


# --------------------------------------------------------------------------------------------
# Building adapters from type hints

_SUPPORTED_TYPES: Final = (
    "str, int, float, bool, None, pathlib.Path, list[T], tuple[...], set[T], dict[str, T], "
    "Literal[...], an Enum, an attrs class, a dataclass, a TypedDict, Any, "
    "or Optional/Union/Annotated of those"
)
_SEQUENCE_ORIGINS: Final = frozenset(
    {list, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Iterable}
)
_SET_ORIGINS: Final = frozenset({set, frozenset, collections.abc.Set, collections.abc.MutableSet})
_MAPPING_ORIGINS: Final = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})


class _UnsupportedType(Exception):
    """Internal: a type cannot become a schema; the builder adds where it happened."""


def _description_from_metadata(metadata: tuple[Any, ...]) -> str:
    for item in metadata:
        if isinstance(item, str):
            return item
        documentation = getattr(item, "documentation", None)  # PEP 727 ``Doc("...")``
        if isinstance(documentation, str):
            return documentation
    return ""


def _unwrap_annotated(tp: Any) -> tuple[Any, str]:
    """``Annotated[T, "desc"]`` → ``(T, "desc")``; anything else → ``(tp, "")``."""
    if typing.get_origin(tp) is typing.Annotated:
        return tp.__origin__, _description_from_metadata(tp.__metadata__)
    return tp, ""


def _class_summary(cls: type) -> str:
    doc = cls.__doc__
    if not doc:
        return ""
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        return ""  # the signature dataclasses writes into classes without a docstring
    return parse_docstring(doc).summary


def _json_default(value: object) -> tuple[bool, Any]:
    """``(True, json_value)`` when a parameter's default can be shown in the schema."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return True, json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return False, None


class _Builder:
    """Turns type hints into adapters, guarding against recursive types."""

    def __init__(self) -> None:
        self._building: list[type] = []

    def build(self, tp: Any) -> _Adapter:
        if tp is Any or tp is object:
            return _AnyAdapter()
        if tp is None or tp is type(None):
            return _NullAdapter()
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            inner, description = _unwrap_annotated(tp)
            return _with_description(self.build(inner), description)
        if origin is typing.Union or origin is types.UnionType:
            return _UnionAdapter([self.build(arg) for arg in typing.get_args(tp)])
        if origin is typing.Literal:
            values = typing.get_args(tp)
            for value in values:
                if not (value is None or isinstance(value, str | int | bool)):
                    raise _UnsupportedType(
                        f"Literal value {value!r} is not a JSON scalar (str, int, bool, None)"
                    )
            return _ChoiceAdapter({(_plain_type(v), v): v for v in values})
        if origin is typing.Required or origin is typing.NotRequired:
            return self.build(typing.get_args(tp)[0])
        if origin in _SEQUENCE_ORIGINS:
            return _ArrayAdapter(self._arg(tp, 0), list, unique=False)
        if origin in _SET_ORIGINS:
            return _ArrayAdapter(
                self._arg(tp, 0), frozenset if origin is frozenset else set, unique=True
            )
        if origin is tuple:
            args = typing.get_args(tp)
            if len(args) == 2 and args[1] is Ellipsis:
                return _ArrayAdapter(self.build(args[0]), tuple, unique=False)
            if not args:
                return _ArrayAdapter(_AnyAdapter(), tuple, unique=False)
            return _FixedTupleAdapter([self.build(arg) for arg in args])
        if origin in _MAPPING_ORIGINS:
            key, value = (*typing.get_args(tp), Any, Any)[:2]
            if key is not str and key is not Any:
                raise _UnsupportedType(
                    f"{tp!r} has {key!r} keys, but JSON object keys are always strings"
                )
            return _MappingAdapter(self.build(value))
        if origin is not None:
            raise _UnsupportedType(f"{tp!r} is not supported")
        return self._build_plain(tp)

    def _arg(self, tp: Any, index: int) -> _Adapter:
        args = typing.get_args(tp)
        return self.build(args[index]) if len(args) > index else _AnyAdapter()

    def _build_plain(self, tp: Any) -> _Adapter:
        if tp is str:
            return _StrAdapter()
        if tp is bool:
            return _BoolAdapter()
        if tp is int:
            return _IntAdapter()
        if tp is float:
            return _FloatAdapter()
        if tp is list or tp is collections.abc.Sequence:
            return _ArrayAdapter(_AnyAdapter(), list, unique=False)
        if tp is tuple:
            return _ArrayAdapter(_AnyAdapter(), tuple, unique=False)
        if tp is set or tp is frozenset:
            return _ArrayAdapter(_AnyAdapter(), tp, unique=True)
        if tp is dict or tp is collections.abc.Mapping:
            return _MappingAdapter(_AnyAdapter())
        if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
            return _PathAdapter()
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._build_enum(tp)
        if isinstance(tp, type) and (
            attrs.has(tp) or dataclasses.is_dataclass(tp) or _is_typeddict(tp)
        ):
            return self._build_class(tp)
        supertype = getattr(tp, "__supertype__", None)  # typing.NewType
        if supertype is not None:
            return self.build(supertype)
        alias_value = getattr(tp, "__value__", None)  # ``type X = ...`` (Python 3.12+)
        if alias_value is not None and type(tp).__name__ == "TypeAliasType":
            return self.build(alias_value)
        if isinstance(tp, str | typing.ForwardRef):
            raise _UnsupportedType(f"the annotation {tp!r} could not be resolved")
        raise _UnsupportedType(f"{tp!r} is not supported")

    def _build_enum(self, cls: type[enum.Enum]) -> _Adapter:
        choices: dict[tuple[type, Any], Any] = {}
        for member in cls:
            value = member.value
            if not (value is None or isinstance(value, str | int | float | bool)):
                raise _UnsupportedType(
                    f"enum {cls.__qualname__} has the value {value!r}, which is not a JSON scalar"
                )
            # NOTE: an IntEnum's values are plain ints on the wire.
            choices[(_plain_type(value), value)] = member
        return _ChoiceAdapter(choices)

    def _build_class(self, cls: type) -> _Adapter:
        if cls in self._building:
            raise _UnsupportedType(f"{cls.__qualname__} refers to itself (recursive types)")
        self._building.append(cls)
        try:
            hints = _type_hints(cls)
            doc = parse_docstring(cls.__doc__)
            fields: dict[str, _Field] = {}
            properties: dict[str, Any] = {}
            for name, hint, required, extra_description in _class_fields(cls, hints):
                tp, annotated_description = _unwrap_annotated(hint)
                try:
                    adapter = self.build(tp)
                except _UnsupportedType as exc:
                    raise _UnsupportedType(f"field {cls.__qualname__}.{name}: {exc}") from None
                description = (
                    annotated_description or extra_description or doc.attributes.get(name, "")
                )
                fields[name] = _Field(adapter, required)
                properties[name] = _with_description(adapter, description).schema
            if attrs.has(cls) or dataclasses.is_dataclass(cls):
                factory: Callable[..., Any] | None = cls
                what = cls.__qualname__
            else:
                factory = None  # a TypedDict is a plain dict at runtime
                what = cls.__qualname__
            return _ObjectAdapter(fields, properties, factory, what, _class_summary(cls))
        finally:
            self._building.pop()


def _plain_type(value: object) -> type:
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    return type(value)


def _is_typeddict(tp: type) -> bool:
    # NOTE: duck-typed, so that typing_extensions.TypedDict (a separate implementation on
    # Python < 3.13) is recognised too.
    return (
        issubclass(tp, dict)
        and hasattr(tp, "__required_keys__")
        and hasattr(tp, "__optional_keys__")
    )


def _type_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception as exc:  # NameError, TypeError, SyntaxError from string annotations
        raise _UnsupportedType(
            f"its annotations could not be resolved ({type(exc).__name__}: {exc}); with "
            "`from __future__ import annotations` every type named in an annotation must be "
            "importable from the module's globals — move types defined inside a function to "
            "module level"
        ) from exc


def _class_fields(cls: type, hints: Mapping[str, Any]) -> list[tuple[str, Any, bool, str]]:
    """``(property name, type hint, required, description)`` for each constructor field."""
    out: list[tuple[str, Any, bool, str]] = []
    if attrs.has(cls):
        for field in attrs.fields(cls):
            if not field.init:
                continue
            hint = hints.get(field.name, field.type)
            if hint is None:
                raise _UnsupportedType(
                    f"field {cls.__qualname__}.{field.name} has no type annotation"
                )
            description = field.metadata.get("description", "")
            out.append(
                (
                    field.alias or field.name,
                    hint,
                    field.default is attrs.NOTHING,
                    description if isinstance(description, str) else "",
                )
            )
        return out
    if dataclasses.is_dataclass(cls):
        for dc_field in dataclasses.fields(cls):
            if not dc_field.init:
                continue
            hint = hints.get(dc_field.name)
            if hint is None:
                raise _UnsupportedType(
                    f"field {cls.__qualname__}.{dc_field.name} has no resolvable type annotation"
                )
            required = (
                dc_field.default is dataclasses.MISSING
                and dc_field.default_factory is dataclasses.MISSING
            )
            description = dc_field.metadata.get("description", "")
            out.append(
                (
                    dc_field.name,
                    hint,
                    required,
                    description if isinstance(description, str) else "",
                )
            )
        return out
    # TypedDict
    required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    for name, hint in hints.items():
        origin = typing.get_origin(_unwrap_annotated(hint)[0])
        # NOTE: under `from __future__ import annotations` Python < 3.13 cannot see
        # Required/NotRequired when the class is created; the resolved hints can.
        if origin is typing.Required:
            required = True
        elif origin is typing.NotRequired:
            required = False
        else:
            required = name in required_keys
        out.append((name, hint, required, ""))
    return out


# --------------------------------------------------------------------------------------------
# Functions


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
    _adapter: _ObjectAdapter = attrs.field(alias="adapter", repr=False, eq=False, hash=False)

    def prepare(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the model's arguments and convert them into keyword arguments.

        Args:
            arguments: the JSON object the model sent.

        Returns:
            Keyword arguments for the function (enums, attrs instances, ... already built).

        Raises:
            ArgumentProblem: an argument is missing, unknown or of the wrong type.
        """
        result: dict[str, Any] = self._adapter.convert(arguments, "")
        return result

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
        hints = _type_hints(hint_source)
    except _UnsupportedType as exc:
        raise ToolSchemaError(f"cannot build a tool from {where}: {exc}") from None
    doc = parse_docstring(inspect.getdoc(hint_source))

    builder = _Builder()
    fields: dict[str, _Field] = {}
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
        tp, annotated_description = _unwrap_annotated(hints[param.name])
        try:
            adapter = builder.build(tp)
        except _UnsupportedType as exc:
            raise ToolSchemaError(
                f"{where_param} has an unsupported type: {exc}. Use {_SUPPORTED_TYPES}."
            ) from None
        required = param.default is param.empty
        prop = _with_description(
            adapter, annotated_description or doc.params.get(param.name, "")
        ).schema
        if not required:
            ok, default = _json_default(param.default)
            if ok:
                prop = {**prop, "default": default}
        fields[param.name] = _Field(adapter, required)
        properties[param.name] = prop
    adapter = _ObjectAdapter(fields, properties, None, f"the arguments of {tool_name!r}")
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


# --------------------------------------------------------------------------------------------
# Plain JSON-schema validation for prebuilt tools

_Check = Callable[[Any, str], None]

_TYPE_CHECKS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (type(v) is int) or (type(v) is float and v.is_integer()),
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: v is True or v is False,
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, Mapping),
}
_ARTICLES: Final[Mapping[str, str]] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
    "array": "an array",
    "object": "an object",
}


def _compile(schema: Any) -> tuple[_Check | None, str]:
    """Compile a JSON schema into a check; ``None`` accepts everything. Unknown keywords are
    ignored (the check is a guard for the model's mistakes, not a full validator)."""
    if schema is False:
        return _reject, "nothing"
    if not isinstance(schema, Mapping) or not schema:
        return None, "any JSON value"
    checks: list[_Check] = []
    expected = "any JSON value"

    kind = schema.get("type")
    if isinstance(kind, str | list):
        kinds = [kind] if isinstance(kind, str) else [k for k in kind if isinstance(k, str)]
        tests = [_TYPE_CHECKS[k] for k in kinds if k in _TYPE_CHECKS]
        expected = " or ".join(_ARTICLES.get(k, k) for k in kinds)
        if tests:
            checks.append(_type_check(tests, expected))

    if "enum" in schema and isinstance(schema["enum"], list):
        allowed = list(schema["enum"])
        expected = "one of " + ", ".join(json.dumps(v, default=str) for v in allowed)
        checks.append(_enum_check(allowed, expected))
    elif "const" in schema:
        allowed = [schema["const"]]
        expected = json.dumps(schema["const"], default=str)
        checks.append(_enum_check(allowed, expected))

    properties = schema.get("properties")
    if isinstance(properties, Mapping) or "required" in schema or "additionalProperties" in schema:
        checks.append(_object_check(schema))

    items = schema.get("items")
    if isinstance(items, Mapping):
        item_check, _ = _compile(items)
        if item_check is not None:
            checks.append(_items_check(item_check))

    for key in ("anyOf", "oneOf"):
        alternatives = schema.get(key)
        if isinstance(alternatives, list) and alternatives:
            compiled = [_compile(a) for a in alternatives]
            if all(check is not None for check, _ in compiled):
                names = " or ".join(e for _, e in compiled)
                checks.append(_any_of_check([c for c, _ in compiled if c is not None], names))
                expected = names

    if not checks:
        return None, expected
    if len(checks) == 1:
        return checks[0], expected

    def check_all(value: Any, path: str) -> None:
        for check in checks:
            check(value, path)

    return check_all, expected


def _reject(value: Any, path: str) -> None:
    raise ArgumentProblem(path, f"argument {path!r} is not allowed")


def _type_check(tests: list[Callable[[Any], bool]], expected: str) -> _Check:
    def check(value: Any, path: str) -> None:
        for test in tests:
            if test(value):
                return
        raise ArgumentProblem(path, f"argument {path!r} must be {expected}, got {_describe(value)}")

    return check


def _enum_check(allowed: list[Any], expected: str) -> _Check:
    keys = [(_plain_type(v), v) for v in allowed]

    def check(value: Any, path: str) -> None:
        if (_plain_type(value), value) not in keys:
            raise ArgumentProblem(
                path, f"argument {path!r} must be {expected}, got {_describe(value)}"
            )

    return check


def _items_check(item_check: _Check) -> _Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                item_check(item, f"{path}[{i}]")

    return check


def _any_of_check(checks: list[_Check], expected: str) -> _Check:
    def check(value: Any, path: str) -> None:
        for alternative in checks:
            try:
                alternative(value, path)
            except ArgumentProblem:
                continue
            return
        raise ArgumentProblem(path, f"argument {path!r} must be {expected}, got {_describe(value)}")

    return check


def _object_check(schema: Mapping[str, Any]) -> _Check:
    raw_properties = schema.get("properties")
    properties: Mapping[str, Any] = raw_properties if isinstance(raw_properties, Mapping) else {}
    raw_required = schema.get("required")
    required = (
        [r for r in raw_required if isinstance(r, str)] if isinstance(raw_required, list) else []
    )
    compiled = {name: _compile(sub) for name, sub in properties.items()}
    property_checks = {name: c for name, (c, _) in compiled.items() if c is not None}
    additional = schema.get("additionalProperties", True)
    closed = additional is False
    additional_check = _compile(additional)[0] if isinstance(additional, Mapping) else None
    allowed = ", ".join(repr(k) for k in properties) or "none"

    def check(value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            return  # the "type" keyword reports this
        for name in required:
            if name not in value:
                where = _child(path, name)
                _, expected = compiled.get(name, (None, "a value"))
                raise ArgumentProblem(where, f"missing required argument {where!r} ({expected})")
        for key, item in value.items():
            item_check = property_checks.get(key)
            if item_check is not None:
                item_check(item, _child(path, key))
            elif key not in properties:
                where = _child(path, str(key))
                if closed:
                    scope = f"in {path!r} " if path else ""
                    raise ArgumentProblem(
                        where,
                        f"unknown argument {where!r}; the arguments allowed {scope}are: {allowed}",
                    )
                if additional_check is not None:
                    additional_check(item, where)

    return check


def json_schema_validator(
    input_schema: Mapping[str, Any],
) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """Compile a tool's JSON schema into a cheap argument check (done once per tool).

    Understands ``type``, ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties``, ``items``, ``anyOf`` and ``oneOf``; other keywords are ignored.

    Args:
        input_schema: the tool's ``input_schema`` (an object schema).

    Returns:
        A function that returns the arguments unchanged, or raises :class:`ArgumentProblem`.
    """
    check, _ = _compile(input_schema)

    def validate(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        if not isinstance(arguments, Mapping):
            raise ArgumentProblem(
                "", f"the arguments must be an object, got {_describe(arguments)}"
            )
        if check is not None:
            check(arguments, "")
        return arguments

    return validate
