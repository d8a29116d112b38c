"""Type adapters: a Python type hint becomes a node of the JSON validator (:mod:`._validate`)
that checks the model's JSON value and converts it into what the function expects (enum
members, attrs instances, dataclasses, tuples, sets, paths, ...).

:class:`AdapterBuilder` runs once per parameter, at registration; the node's ``schema`` is
what the model is told, its ``convert`` runs on every call.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import pathlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from ._docstrings import parse_docstring
from ._validate import (
    Adapter,
    AnyAdapter,
    ArrayAdapter,
    ChoiceAdapter,
    Field,
    FixedTupleAdapter,
    MappingAdapter,
    ObjectAdapter,
    TypeAdapter,
    UnionAdapter,
    with_description,
)

__all__ = [
    "SUPPORTED_TYPES",
    "AdapterBuilder",
    "json_default",
    "type_hints",
    "unwrap_annotated",
]


SUPPORTED_TYPES: Final = (
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


def unwrap_annotated(tp: Any) -> tuple[Any, str]:
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


def json_default(value: object) -> tuple[bool, Any]:
    """``(True, json_value)`` when a parameter's default can be shown in the schema."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return True, json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return False, None


class AdapterBuilder:
    """Turns type hints into adapters, guarding against recursive types."""

    def __init__(self) -> None:
        self._building: list[type] = []

    def build(self, tp: Any) -> Adapter:
        """The adapter of the type hint ``tp``.

        Raises:
            _UnsupportedType: ``tp`` (or a type inside it) has no JSON schema.
        """
        if tp is Any or tp is object:
            return AnyAdapter()
        if tp is None or tp is type(None):
            return TypeAdapter(["null"])
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            inner, description = unwrap_annotated(tp)
            return with_description(self.build(inner), description)
        if origin is typing.Union or origin is types.UnionType:
            return UnionAdapter([self.build(arg) for arg in typing.get_args(tp)])
        if origin is typing.Literal:
            values = typing.get_args(tp)
            for value in values:
                if not (value is None or isinstance(value, str | int | bool)):
                    raise _UnsupportedType(
                        f"Literal value {value!r} is not a JSON scalar (str, int, bool, None)"
                    )
            return ChoiceAdapter([(v, v) for v in values])
        if origin is typing.Required or origin is typing.NotRequired:
            return self.build(typing.get_args(tp)[0])
        if origin in _SEQUENCE_ORIGINS:
            return ArrayAdapter(self._arg(tp, 0), list, unique=False)
        if origin in _SET_ORIGINS:
            return ArrayAdapter(
                self._arg(tp, 0), frozenset if origin is frozenset else set, unique=True
            )
        if origin is tuple:
            args = typing.get_args(tp)
            if len(args) == 2 and args[1] is Ellipsis:
                return ArrayAdapter(self.build(args[0]), tuple, unique=False)
            if not args:
                return ArrayAdapter(AnyAdapter(), tuple, unique=False)
            return FixedTupleAdapter([self.build(arg) for arg in args])
        if origin in _MAPPING_ORIGINS:
            key, value = (*typing.get_args(tp), Any, Any)[:2]
            if key is not str and key is not Any:
                raise _UnsupportedType(
                    f"{tp!r} has {key!r} keys, but JSON object keys are always strings"
                )
            return MappingAdapter(self.build(value))
        if origin is not None:
            raise _UnsupportedType(f"{tp!r} is not supported")
        return self._build_plain(tp)

    def _arg(self, tp: Any, index: int) -> Adapter:
        args = typing.get_args(tp)
        return self.build(args[index]) if len(args) > index else AnyAdapter()

    def _build_plain(self, tp: Any) -> Adapter:
        if tp is str:
            return TypeAdapter(["string"])
        if tp is bool:
            return TypeAdapter(["boolean"])
        if tp is int:
            return TypeAdapter(["integer"], convert_to=int)
        if tp is float:
            return TypeAdapter(["number"], convert_to=float)
        if tp is list or tp is collections.abc.Sequence:
            return ArrayAdapter(AnyAdapter(), list, unique=False)
        if tp is tuple:
            return ArrayAdapter(AnyAdapter(), tuple, unique=False)
        if tp is set or tp is frozenset:
            return ArrayAdapter(AnyAdapter(), tp, unique=True)
        if tp is dict or tp is collections.abc.Mapping:
            return MappingAdapter(AnyAdapter())
        if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
            return TypeAdapter(["string"], convert_to=pathlib.Path, expected="a path string")
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

    def _build_enum(self, cls: type[enum.Enum]) -> Adapter:
        choices: list[tuple[Any, Any]] = []
        for member in cls:
            value = member.value
            if not (value is None or isinstance(value, str | int | float | bool)):
                raise _UnsupportedType(
                    f"enum {cls.__qualname__} has the value {value!r}, which is not a JSON scalar"
                )
            # NOTE: an IntEnum's values are plain ints on the wire.
            choices.append((value, member))
        return ChoiceAdapter(choices)

    def _build_class(self, cls: type) -> Adapter:
        if cls in self._building:
            raise _UnsupportedType(f"{cls.__qualname__} refers to itself (recursive types)")
        self._building.append(cls)
        try:
            hints = type_hints(cls)
            doc = parse_docstring(cls.__doc__)
            fields: dict[str, Field] = {}
            properties: dict[str, Any] = {}
            for name, hint, required, extra_description in _class_fields(cls, hints):
                tp, annotated_description = unwrap_annotated(hint)
                try:
                    adapter = self.build(tp)
                except _UnsupportedType as exc:
                    raise _UnsupportedType(f"field {cls.__qualname__}.{name}: {exc}") from None
                description = (
                    annotated_description or extra_description or doc.attributes.get(name, "")
                )
                fields[name] = Field(adapter, required)
                properties[name] = with_description(adapter, description).schema
            if attrs.has(cls) or dataclasses.is_dataclass(cls):
                factory: Callable[..., Any] | None = cls
                what = cls.__qualname__
            else:
                factory = None  # a TypedDict is a plain dict at runtime
                what = cls.__qualname__
            return ObjectAdapter(fields, properties, factory, what, _class_summary(cls))
        finally:
            self._building.pop()


def _is_typeddict(tp: type) -> bool:
    # NOTE: duck-typed, so that typing_extensions.TypedDict (a separate implementation on
    # Python < 3.13) is recognised too.
    return (
        issubclass(tp, dict)
        and hasattr(tp, "__required_keys__")
        and hasattr(tp, "__optional_keys__")
    )


def type_hints(obj: Any) -> dict[str, Any]:
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
        origin = typing.get_origin(unwrap_annotated(hint)[0])
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
