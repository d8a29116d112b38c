"""The one JSON validator: a tree of adapters that check a JSON value and say what is wrong.

Every argument check in the project goes through these nodes, so every surface reports the
same problems in the same words:

* a function tool's parameters: :mod:`._adapters` builds the tree from type hints, and the
  nodes also *convert* (``3.0`` to ``3`` for an ``int``, a string to a ``Path``, an object to
  an attrs instance, ...);
* a prebuilt tool that only has a JSON schema (HTTP, exec, YAML, MCP, a hand-made
  :class:`~vega_trio.tools.Tool`): :func:`json_schema_validator` compiles the schema into the
  same nodes, built not to convert (the handler gets the arguments unchanged);
* a request body of the HTTP API (:mod:`vega_trio.serve._openapi`): compiled from the body's
  schema like a tool's, its problems re-worded for HTTP from the structured
  :class:`~vega_trio.tools.ArgumentProblem` (``kind``, ``expected``, ``value``).

Every node raises :class:`~vega_trio.tools.ArgumentProblem` (its ``argument`` is the path of
the offending value: ``point.x``, ``items[2]``) through :func:`problem`, the one place that words
a problem.

Paths cost nothing until something is wrong: a container converts its items with the path
``None`` ("unworded": the problem raised is not worded, the caller will ask again), and only
when one fails converts that one again with its real path, which raises the worded problem.
The nodes are deterministic, so the second pass fails where the first did; a value whose exact
type a node returns unchanged (an ``int`` for ``int``, a ``str`` for ``str``: the node's
``unchanged`` types) is taken without calling the node at all. A tool's arguments object of
plain fields goes further: :meth:`ObjectAdapter.prepared` compiles convert's fast path for its
fields once (valid arguments are checked without a call), and hands anything else to convert.

Size: the one validator is one module: the wording, every node and the JSON-schema compiler
that builds the same nodes share :func:`problem` and the type tables; split, each piece would
import the others' private parts.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from types import CodeType
from typing import Any, Final, overload

from .._errors import ArgumentProblem

__all__ = [
    "ARTICLES",
    "Adapter",
    "AllOfAdapter",
    "AnyAdapter",
    "ArrayAdapter",
    "ChoiceAdapter",
    "Field",
    "FixedTupleAdapter",
    "MappingAdapter",
    "ObjectAdapter",
    "RejectAdapter",
    "TypeAdapter",
    "UnionAdapter",
    "child",
    "compile_json_schema",
    "describe",
    "json_schema_validator",
    "plain_type",
    "problem",
    "with_description",
]

# --------------------------------------------------------------------------------------------
# Words

JSON_TYPE_NAMES: Final[Mapping[type, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    list: "array",
    tuple: "array",
    dict: "object",
}
ARTICLES: Final[Mapping[str, str]] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
    "array": "an array",
    "object": "an object",
}
TYPE_TESTS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "string": lambda v: isinstance(v, str),
    # NOTE: JSON does not distinguish 3 from 3.0, and JSON Schema calls 3.0 an integer.
    "integer": lambda v: (type(v) is int) or (type(v) is float and v.is_integer()),
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: v is True or v is False,
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list | tuple),
    # NOTE: ``type(v) is dict`` first: isinstance with an ABC runs Python-level hooks.
    "object": lambda v: type(v) is dict or isinstance(v, Mapping),
}
# For each JSON type: the exact Python types whose every value passes its test...
_UNCHANGED: Final[Mapping[str, tuple[type, ...]]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list, tuple),
    "object": (dict,),
}
# ... and those some of whose values may pass it (3.0 is an integer).
_CLAIMED: Final[Mapping[str, tuple[type, ...]]] = {**_UNCHANGED, "integer": (int, float)}


def describe(value: object) -> str:
    """How a received JSON value is named in an error message: its JSON type, plus the value
    itself when it is short."""
    kind = JSON_TYPE_NAMES.get(type(value))
    if kind is None:
        kind = "object" if isinstance(value, Mapping) else type(value).__name__
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = repr(value)
        return f"{kind} {text}" if len(text) <= 40 else f"{kind} {text[:37]}..."
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    return kind


@overload
def child(path: str, key: str) -> str: ...


@overload
def child(path: None, key: str) -> None: ...


def child(path: str | None, key: str) -> str | None:
    """The path of ``key`` inside the value at ``path`` (``""`` is the arguments object;
    ``None``, an unworded check, stays ``None``)."""
    if path is None:
        return None
    return f"{path}.{key}" if path else key


def plain_type(value: object) -> type:
    """The JSON-ish type of ``value``: ``bool`` before ``int`` (so ``True`` never equals
    ``1``), an ``IntEnum`` member counts as an ``int``."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    return type(value)


def problem(
    kind: str,
    path: str | None,
    *,
    expected: str = "",
    value: object = None,
    allowed: Sequence[str] = (),
    parent: str = "",
    detail: str = "",
) -> ArgumentProblem:
    """The one wording of an argument problem (the model reads it; so does a person).

    Args:
        kind: ``"type"`` (``value`` is not ``expected``), ``"missing"`` (a required argument
            is absent; ``expected`` says what it should be), ``"unknown"`` (an argument the
            schema does not allow; ``allowed`` lists the allowed names at that level),
            ``"not_allowed"`` (the schema is ``false``) or ``"invalid"`` (the value's own class
            refused it; ``detail`` says why).
        path: where the offending value is; ``None`` for an unworded check (the caller asks
            again with the path), which skips the wording.
        expected: what was expected.
        value: what was received.
        allowed: the names allowed next to an unknown argument.
        parent: the path of the object holding an unknown argument.
        detail: the reason for an ``"invalid"`` value.
    """
    if path is None:
        return ArgumentProblem("", "", kind=kind)
    if kind == "type":
        text = f"argument {path!r} must be {expected}, got {describe(value)}"
    elif kind == "missing":
        text = f"missing required argument {path!r} ({expected})"
    elif kind == "unknown":
        scope = f"in {parent!r} " if parent else ""
        names = ", ".join(repr(name) for name in allowed) or "none"
        text = f"unknown argument {path!r}; the arguments allowed {scope}are: {names}"
    elif kind == "not_allowed":
        text = f"argument {path!r} is not allowed"
    else:
        text = f"argument {path!r} is invalid: {detail}"
    return ArgumentProblem(
        path, text, kind=kind, expected=expected, value=value, allowed=tuple(allowed)
    )


# --------------------------------------------------------------------------------------------
# Nodes: built once per tool (or per request body), ``convert`` runs once per call.


class Adapter:
    """Checks one JSON value (and, when built from a type hint, converts it).

    Attributes:
        schema: the JSON schema the model is told (for a compiled JSON schema: a summary).
        expected: what the value must be, in words (``"an integer"``).
        unchanged: exact types whose every value this node accepts and returns as it is; a
            container takes such an item without calling :meth:`convert`.
    """

    __slots__ = ("expected", "schema")

    schema: dict[str, Any]
    expected: str
    # NOTE: a class default, overridden by a slot in the nodes that have such types.
    unchanged: frozenset[type] = frozenset()

    def convert(self, value: Any, path: str | None) -> Any:
        """The value (converted), or :class:`ArgumentProblem` naming ``path``.

        ``path`` ``None`` is an unworded check: the problem raised (if any) is not worded,
        and the caller converts the value again with its path to word it."""
        raise NotImplementedError

    def wrong(self, value: Any, path: str | None) -> ArgumentProblem:
        """The problem "``path`` must be <expected>, got <value>"."""
        return problem("type", path, expected=self.expected, value=value)


class AnyAdapter(Adapter):
    """Any JSON value, unchanged."""

    __slots__ = ()

    def __init__(self, expected: str = "any JSON value") -> None:
        self.schema = {}
        self.expected = expected

    def convert(self, value: Any, path: str | None) -> Any:
        return value


class RejectAdapter(Adapter):
    """The ``false`` schema: no value is allowed."""

    __slots__ = ()

    def __init__(self) -> None:
        self.schema = {"not": {}}
        self.expected = "nothing"

    def convert(self, value: Any, path: str | None) -> Any:
        raise problem("not_allowed", path, value=value)


class TypeAdapter(Adapter):
    """A value of one of the JSON types ``kinds``; ``convert_to`` (if any) converts it.

    ``str`` is ``TypeAdapter(["string"])``, ``int`` converts ``3.0`` to ``3``, ``float``
    converts ``3`` to ``3.0``, ``pathlib.Path`` is a converted string."""

    __slots__ = ("claims", "convert_to", "tests", "unchanged")

    def __init__(
        self,
        kinds: Sequence[str],
        *,
        convert_to: Callable[[Any], Any] | None = None,
        expected: str | None = None,
    ) -> None:
        self.tests = tuple(TYPE_TESTS[k] for k in kinds if k in TYPE_TESTS)
        self.convert_to = convert_to
        # The exact types some of whose values pass a test, and those whose every value
        # passes unchanged (a conversion to the value's own type changes nothing).
        self.claims = frozenset(t for k in kinds for t in _CLAIMED.get(k, ()))
        self.unchanged = frozenset(
            t for k in kinds for t in _UNCHANGED.get(k, ()) if convert_to is None or convert_to is t
        )
        self.schema = {"type": kinds[0] if len(kinds) == 1 else list(kinds)}
        self.expected = (
            " or ".join(ARTICLES.get(k, k) for k in kinds) if expected is None else expected
        )

    def convert(self, value: Any, path: str | None) -> Any:
        for test in self.tests:
            if test(value):
                convert_to = self.convert_to
                return value if convert_to is None else convert_to(value)
        raise self.wrong(value, path)


class ArrayAdapter(Adapter):
    """``list[T]``, ``set[T]``, ``frozenset[T]``, ``tuple[T, ...]``, ``Sequence[T]``; or a JSON
    schema's ``items`` (``build=None``: the value is returned unchanged)."""

    __slots__ = ("build", "item", "lenient")

    def __init__(
        self,
        item: Adapter,
        build: Callable[[list[Any]], Any] | None,
        unique: bool = False,
        *,
        lenient: bool = False,
    ) -> None:
        """``lenient``: a value that is not an array passes (a JSON schema's ``items`` says
        nothing about other types; its ``type`` does)."""
        self.item = item
        self.build = build
        self.lenient = lenient
        self.schema = {"type": "array", "items": item.schema} if item.schema else {"type": "array"}
        if unique:
            self.schema["uniqueItems"] = True
        self.expected = f"an array (items: {item.expected})" if item.schema else "an array"

    def convert(self, value: Any, path: str | None) -> Any:
        if not isinstance(value, list | tuple):
            if self.lenient:
                return value
            raise self.wrong(value, path)
        item = self.item
        unchanged = item.unchanged
        build = self.build
        try:
            if build is None:  # checked, never converted: no list to build
                for v in value:
                    if type(v) not in unchanged:
                        item.convert(v, None)
                return value
            items = [v if type(v) in unchanged else item.convert(v, None) for v in value]
        except ArgumentProblem:
            if path is None:
                raise
            # Again with the paths, to word the problem (the first pass skipped them).
            items = [item.convert(v, f"{path}[{i}]") for i, v in enumerate(value)]
            if build is None:
                return value
        try:
            return build(items)
        except TypeError as exc:  # unhashable items for a set
            raise problem("invalid", path, value=value, detail=str(exc)) from exc


class FixedTupleAdapter(Adapter):
    """``tuple[A, B, C]``: exactly these items, in this order."""

    __slots__ = ("items",)

    def __init__(self, items: list[Adapter]) -> None:
        self.items = items
        self.schema = {
            "type": "array",
            "prefixItems": [a.schema for a in items],
            "items": False,
            "minItems": len(items),
            "maxItems": len(items),
        }
        self.expected = f"an array of exactly {len(items)} items"

    def convert(self, value: Any, path: str | None) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(self.items):
            raise self.wrong(value, path)
        try:
            return tuple(
                [
                    v if type(v) in a.unchanged else a.convert(v, None)
                    for a, v in zip(self.items, value, strict=True)
                ]
            )
        except ArgumentProblem:
            if path is None:
                raise
        return tuple(
            a.convert(v, f"{path}[{i}]")
            for i, (a, v) in enumerate(zip(self.items, value, strict=True))
        )


class MappingAdapter(Adapter):
    """``dict[str, T]`` / ``Mapping[str, T]``."""

    __slots__ = ("value",)

    def __init__(self, value: Adapter) -> None:
        self.value = value
        self.schema = {"type": "object"}
        if value.schema:
            self.schema["additionalProperties"] = value.schema
        self.expected = f"an object (values: {value.expected})" if value.schema else "an object"

    def convert(self, value: Any, path: str | None) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise self.wrong(value, path)
        adapter = self.value
        unchanged = adapter.unchanged
        try:
            return {
                k: v if type(v) in unchanged else adapter.convert(v, None) for k, v in value.items()
            }
        except ArgumentProblem:
            if path is None:
                raise
        return {k: adapter.convert(v, f"{path}[{k!r}]") for k, v in value.items()}


class UnionAdapter(Adapter):
    """``A | B | None`` or a JSON schema's ``anyOf``/``oneOf``: the first alternative that
    accepts the value wins."""

    __slots__ = ("options", "tries", "unchanged")

    def __init__(self, options: list[Adapter]) -> None:
        # NOTE: null is tried first, so that ``None`` never reaches a converting alternative;
        # the schema keeps the declared order.
        self.options = sorted(options, key=lambda a: not _is_null(a))
        self.schema = {"anyOf": [o.schema for o in options]}
        self.expected = " or ".join(o.expected for o in options)
        # A type passes unchanged when the first alternative that may take its values (the
        # one that wins) passes it unchanged. Known for the leading TypeAdapters only (null,
        # then ``int`` in ``int | None``); any other alternative may take anything after.
        unchanged: set[type] = set()
        claimed: set[type] = set()
        for option in self.options:
            if not isinstance(option, TypeAdapter):
                break
            unchanged |= option.unchanged - claimed
            claimed |= option.claims
        self.unchanged = frozenset(unchanged)
        # The unworded pass skips an alternative that refuses every value of the value's
        # exact type (null for an object), instead of raising and catching its problem.
        self.tries = tuple((o, _refused(o)) for o in self.options)

    def convert(self, value: Any, path: str | None) -> Any:
        if type(value) in self.unchanged:
            return value
        if path is None:  # unworded: the first alternative that takes it, or any problem
            for option, refused in self.tries:
                if type(value) in refused:
                    continue
                try:
                    return option.convert(value, None)
                except ArgumentProblem:
                    pass
            raise problem("type", None)
        problems: list[ArgumentProblem] = []
        for option in self.options:
            try:
                return option.convert(value, path)
            except ArgumentProblem as found:
                problems.append(found)
        # A problem deeper inside the value (``items[2]`` of ``list[int] | None``) is more
        # useful than "must be A or B" when only one alternative could have matched.
        deeper = [p for p in problems if p.argument != path]
        if len(deeper) == 1:
            raise deeper[0]
        raise self.wrong(value, path)


_JSON_TYPES: Final = frozenset(JSON_TYPE_NAMES)


def _refused(adapter: Adapter) -> frozenset[type]:
    """The exact JSON types whose every value ``adapter`` refuses (known for the nodes that
    check the type first; empty when not known)."""
    if isinstance(adapter, TypeAdapter):
        return _JSON_TYPES - adapter.claims
    if isinstance(adapter, MappingAdapter) or (
        isinstance(adapter, ObjectAdapter) and not adapter.lenient
    ):
        return _JSON_TYPES - {dict}
    if isinstance(adapter, FixedTupleAdapter) or (
        isinstance(adapter, ArrayAdapter) and not adapter.lenient
    ):
        return _JSON_TYPES - {list, tuple}
    if isinstance(adapter, ChoiceAdapter):
        return (
            _JSON_TYPES
            - {kind for kind, _ in adapter.choices}
            - {kind for (kind, _), _ in adapter.unhashable}
        )
    return frozenset()


def _is_null(adapter: Adapter) -> bool:
    return isinstance(adapter, TypeAdapter) and adapter.schema == {"type": "null"}


def enum_schema(values: list[Any]) -> dict[str, Any]:
    """The JSON schema of "one of ``values``" (with a ``type`` when they share one)."""
    kinds = {type(v) for v in values}
    if len(kinds) == 1:
        (kind,) = kinds
        name = JSON_TYPE_NAMES.get(kind)
        if name is not None and name not in ("array", "object"):
            if name == "null":
                return {"type": "null"}
            return {"type": name, "enum": values}
    return {"enum": values}


class ChoiceAdapter(Adapter):
    """One of a fixed set of JSON values: ``Literal[...]``, an ``Enum`` (converted to its
    member), or a JSON schema's ``enum``/``const`` (unchanged)."""

    __slots__ = ("choices", "unhashable")

    def __init__(self, choices: Sequence[tuple[Any, Any]], *, expected: str | None = None) -> None:
        """``choices``: ``(JSON value, what it converts to)`` pairs."""
        # NOTE: keyed by (type, value) so that True does not match 1 and 1 does not match True.
        self.choices: dict[tuple[type, Any], Any] = {}
        self.unhashable: list[tuple[tuple[type, Any], Any]] = []
        for value, result in choices:
            key = (plain_type(value), value)
            try:
                self.choices[key] = result
            except TypeError:  # a list or an object in a JSON schema's enum
                self.unhashable.append((key, result))
        values = [value for value, _ in choices]
        self.schema = enum_schema(values)
        self.expected = (
            "one of " + ", ".join(json.dumps(v, default=str) for v in values)
            if expected is None
            else expected
        )

    def convert(self, value: Any, path: str | None) -> Any:
        key = (plain_type(value), value)
        try:
            return self.choices[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: compare it with the unhashable choices
            for choice, result in self.unhashable:
                if choice == key:
                    return result
        raise self.wrong(value, path)


class Field:
    """One named property of an :class:`ObjectAdapter`."""

    __slots__ = ("adapter", "required", "unchanged")

    def __init__(self, adapter: Adapter, required: bool) -> None:
        self.adapter = adapter
        self.required = required
        self.unchanged = adapter.unchanged  # read once per call: one attribute, not two


class ObjectAdapter(Adapter):
    """A fixed set of named properties: the tool's parameters, an attrs class, a dataclass, a
    TypedDict (``factory`` builds the result from the converted keyword arguments), or a JSON
    schema's ``properties``/``required``/``additionalProperties``.

    Problems are found in the order of the value's keys (an unknown or invalid argument), then
    in the order of the declared fields (a missing one)."""

    __slots__ = ("additional", "allowed", "factory", "fields", "lenient", "n_required", "what")

    def __init__(
        self,
        fields: dict[str, Field],
        properties: dict[str, Any],
        factory: Callable[..., Any] | None,
        what: str,
        description: str = "",
        *,
        additional: Adapter | None = None,
        lenient: bool = False,
    ) -> None:
        """``additional``: ``None`` refuses other keys (``additionalProperties: false``), an
        adapter checks them. ``lenient``: a value that is not an object passes (a JSON schema's
        ``properties`` say nothing about other types; its ``type`` does)."""
        self.fields = fields
        self.factory = factory
        self.what = what
        self.additional = additional
        self.lenient = lenient
        self.allowed = tuple(properties)
        self.n_required = sum(f.required for f in fields.values())
        self.schema = {"type": "object"}
        if description:
            self.schema["description"] = description
        self.schema["properties"] = properties
        required = [name for name, f in fields.items() if f.required]
        if required:
            self.schema["required"] = required
        self.schema["additionalProperties"] = False if additional is None else additional.schema
        self.expected = f"an object ({what})" if what else "an object"

    def convert(self, value: Any, path: str | None = "") -> Any:
        """The converted object (a dict, or what ``factory`` builds); ``path`` defaults to
        the arguments object, so the bound method is a tool's whole argument check."""
        # NOTE: the usual object of simple fields is checked here without a call per field
        # (an item of an unchanged type is taken as it is), and paths are built only to word
        # a problem: a failing item is converted again with its path (see the module notes).
        if type(value) is not dict and not isinstance(value, Mapping):
            if self.lenient:
                return value
            raise self.wrong(value, path)
        fields = self.fields
        out: dict[str, Any] = {}
        seen_required = 0
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                additional = self.additional
                if additional is None:
                    raise problem(
                        "unknown", child(path, str(key)), allowed=self.allowed, parent=path or ""
                    )
                try:
                    out[key] = additional.convert(item, None)
                except ArgumentProblem:
                    if path is None:
                        raise
                    out[key] = additional.convert(item, child(path, str(key)))
                continue
            if type(item) in field.unchanged:
                out[key] = item
            else:
                try:
                    out[key] = field.adapter.convert(item, None)
                except ArgumentProblem:
                    if path is None:
                        raise
                    out[key] = field.adapter.convert(item, child(path, key))
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
            raise problem("invalid", path, value=value, detail=str(exc)) from exc

    def prepared(self) -> Callable[..., Any]:
        """:meth:`convert` with a fast path compiled for these fields (made once per tool,
        like the ``__init__`` attrs generates): a dict holding every required field, no
        unknown key and only values of their field's ``unchanged`` types is what convert
        would return as it is, so it is copied without a call per field; any other value
        goes to convert, which converts it or words the problem. Objects with a factory,
        a field without unchanged types or checked extra keys get convert itself."""
        convert = self.convert
        additional = self.additional
        fields = self.fields
        if (
            self.factory is not None
            or (additional is not None and type(additional) is not AnyAdapter)
            or not all(type(name) is str and f.unchanged for name, f in fields.items())
        ):
            return convert
        namespace: dict[str, Any] = {"_convert": convert}
        tests: list[str] = []
        count = [str(self.n_required)]
        for i, (name, field) in enumerate(fields.items()):
            namespace[f"_u{i}"] = field.unchanged
            if field.required:
                tests.append(f"type(value[{name!r}]) in _u{i}")
            else:
                tests.append(f"({name!r} not in value or type(value[{name!r}]) in _u{i})")
                count.append(f"({name!r} in value)")
        if additional is None:  # other keys are refused: only the fields may be there
            tests.append(f"len(value) == {' + '.join(count)}")
        source = (
            "def fast_convert(value, path=''):\n"
            "    if type(value) is dict:\n"
            "        try:\n"
            f"            if {' and '.join(tests) or 'True'}:\n"
            "                return {**value}\n"
            "        except KeyError:\n"  # a required field is missing
            "            pass\n"
            "    return _convert(value, path)\n"
        )
        exec(_check_code(source), namespace)
        return namespace["fast_convert"]  # type: ignore[no-any-return]

    def _missing(self, out: Mapping[str, Any], path: str | None) -> ArgumentProblem:
        for name, field in self.fields.items():
            if field.required and name not in out:
                return problem("missing", child(path, name), expected=field.adapter.expected)
        raise AssertionError("unreachable: required count mismatch without a missing field")


@functools.lru_cache(maxsize=256)
def _check_code(source: str) -> CodeType:
    """A compiled check's code, compiled once per shape of fields (registering a tool again,
    or another of the same shape, only runs it in a new namespace)."""
    return compile(source, "<vega_trio arguments check>", "exec")


class AllOfAdapter(Adapter):
    """Several checks on one value, in order (a JSON schema's ``type`` and ``enum`` and
    ``properties`` ...); the value is returned unchanged."""

    __slots__ = ("checks",)

    def __init__(self, checks: list[Adapter], expected: str) -> None:
        self.checks = checks
        self.schema = {"allOf": [c.schema for c in checks]}
        self.expected = expected

    def convert(self, value: Any, path: str | None) -> Any:
        for check in self.checks:
            check.convert(value, path)
        return value


def with_description(adapter: Adapter, description: str) -> Adapter:
    """``adapter`` whose schema carries ``description`` (a copy; adapters are shared)."""
    if not description:
        return adapter
    clone = copy.copy(adapter)
    clone.schema = {**adapter.schema, "description": description}
    return clone


def _with_expected(adapter: Adapter, expected: str) -> Adapter:
    if adapter.expected == expected:
        return adapter
    clone = copy.copy(adapter)
    clone.expected = expected
    return clone


# --------------------------------------------------------------------------------------------
# JSON schemas → the same nodes


def compile_json_schema(schema: Any) -> Adapter | None:
    """Compile a JSON schema into a node that checks (and never converts); ``None`` accepts
    everything.

    Understands ``type``, ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties``, ``items``, ``anyOf`` and ``oneOf``; other keywords are ignored
    (the check is a guard for the model's mistakes, not a full validator).
    """
    if schema is False:
        return RejectAdapter()
    if not isinstance(schema, Mapping) or not schema:
        return None
    checks: list[Adapter] = []
    expected = "any JSON value"

    items = schema.get("items")
    item = compile_json_schema(items) if isinstance(items, Mapping) else None
    additional = schema.get("additionalProperties")
    values = (
        compile_json_schema(additional)
        if isinstance(additional, Mapping) and "properties" not in schema
        else None
    )
    kind = schema.get("type")
    if isinstance(kind, str | list):
        kinds = [kind] if isinstance(kind, str) else [k for k in kind if isinstance(k, str)]
        expected = " or ".join(ARTICLES.get(k, k) for k in kinds)
        # Worded like the adapters of list[T] and dict[str, T], so a function's schema checked
        # alone says what its adapters say.
        if kinds == ["array"] and item is not None:
            expected = f"an array (items: {item.expected})"
        elif kinds == ["object"] and values is not None:
            expected = f"an object (values: {values.expected})"
        if any(k in TYPE_TESTS for k in kinds):
            checks.append(TypeAdapter(kinds, expected=expected))

    if "enum" in schema and isinstance(schema["enum"], list):
        choice = ChoiceAdapter([(v, v) for v in schema["enum"]])
        expected = choice.expected
        checks.append(choice)
    elif "const" in schema:
        const = schema["const"]
        checks.append(ChoiceAdapter([(const, const)], expected=json.dumps(const, default=str)))
        expected = checks[-1].expected

    properties = schema.get("properties")
    if isinstance(properties, Mapping) or "required" in schema or "additionalProperties" in schema:
        checks.append(_compile_object(schema))

    if item is not None:
        checks.append(ArrayAdapter(item, None, lenient=True))

    for key in ("anyOf", "oneOf"):
        alternatives = schema.get(key)
        if isinstance(alternatives, list) and alternatives:
            compiled = [compile_json_schema(a) for a in alternatives]
            options = [c for c in compiled if c is not None]
            # An alternative that accepts everything makes the whole anyOf accept everything.
            if len(options) == len(compiled):
                union = UnionAdapter(options)
                checks.append(union)
                expected = union.expected

    if not checks:
        return AnyAdapter(expected) if expected != "any JSON value" else None
    if len(checks) == 1:
        return _with_expected(checks[0], expected)
    return AllOfAdapter(checks, expected)


def _compile_object(schema: Mapping[str, Any]) -> ObjectAdapter:
    raw_properties = schema.get("properties")
    properties: Mapping[str, Any] = raw_properties if isinstance(raw_properties, Mapping) else {}
    raw_required = schema.get("required")
    required = (
        [r for r in raw_required if isinstance(r, str)] if isinstance(raw_required, list) else []
    )
    fields: dict[str, Field] = {}
    for name, sub in properties.items():
        fields[name] = Field(compile_json_schema(sub) or AnyAdapter(), name in required)
    for name in required:
        if name not in fields:  # required, but not described: any value will do
            fields[name] = Field(AnyAdapter("a value"), True)
    additional_schema = schema.get("additionalProperties", True)
    additional: Adapter | None
    if additional_schema is False:
        additional = None
    else:
        additional = compile_json_schema(additional_schema) or AnyAdapter()
    return ObjectAdapter(fields, dict(properties), None, "", additional=additional, lenient=True)


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
    check = compile_json_schema(input_schema)

    def validate(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        if type(arguments) is not dict and not isinstance(arguments, Mapping):
            raise ArgumentProblem("", f"the arguments must be an object, got {describe(arguments)}")
        if check is not None:
            check.convert(arguments, "")
        return arguments

    return validate
