"""Reading a ``.vega.yaml`` document: YAML text → a tree of positioned nodes (ruamel.yaml)
→ the model of :mod:`._model`, with every problem collected as a :class:`Diagnostic`.

The loader checks shapes and types (unknown keys, missing keys, wrong types, bad
durations, money and enums, duplicate keys); :mod:`._validate` then checks what refers to
what (agents, tools, workflows, templates, variables, cycles). :func:`load_document` runs
both and raises :class:`DSLError` with *all* errors; :func:`validate_text` returns them,
warnings included.

One walker (:func:`_read`) reads every section: the YAML keys, kinds of value, ranges,
required keys and checks come from the model's attrs fields and their metadata
(:mod:`._schema`); what no metadata can say is a small named hook: a kind of value of its
own (``_KINDS``: a ``for`` header, the branches of ``parallel``, a price table, an ``enum``)
or a check across a section's fields (``_CHECKS``). Every problem is reported with its
position, not only the first.

Size: it is the one place that turns YAML nodes into the model and diagnostics, and its
parts only make sense together — positions inside scalars (:class:`ScalarLocation`), plain
YAML values with their tag, alias and duplicate-key checks, the leaf kinds, the walker and
its hooks, and the entry points. Everything per key is metadata on the model (2,008 lines
of per-section readers before the walker); splitting what remains would only spread the
reader's private state over several modules.
"""

from __future__ import annotations

import functools
import math
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, Union, get_args, get_origin

import attrs
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .._files import MAX_ALIAS_EXPANSION, check_alias_expansion, read_bounded_text
from ..resilience._budget import parse_money
from . import _model
from ._diagnostics import Diagnostic, DSLError, did_you_mean, sort_diagnostics
from ._model import AgentStep, Document, ExecSpec, Source, Step
from ._schema import NO_KEY, NO_SECTION, STEP_KEYWORDS, Key, Section, _Invalid, one_of
from ._units import parse_duration, parse_size

__all__ = [
    "STEP_KEYWORDS",
    "DSLError",
    "Diagnostic",
    "Loaded",
    "ScalarLocation",
    "load_document",
    "load_file",
    "read_document",
    "validate_file",
    "validate_text",
]

_FOR: Final = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s+in\s+(\S.*?)\s*\Z", re.S)
_SERVER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_MAX_DEPTH: Final = 64
_KEYWORDS: Final = ", ".join(STEP_KEYWORDS)
_TEXT_TAGS: Final = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp")
_PLAIN_TAGS: Final = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null")
)
_MISSING: Final[Any] = object()
_BAD: Final[Any] = object()

# -- leaf values: what each kind accepts --------------------------------------------------------


@attrs.frozen
class _Leaf:
    """A kind of scalar: what a diagnostic says was expected (with a hint when a scalar of
    another kind was written) and the converter, which raises ``TypeError`` or
    ``ValueError`` for a wrong value."""

    expected: str
    convert: Callable[[Any], Any]
    hint: str | None = None


def _is(value: object, *kinds: type) -> bool:
    """``isinstance``, except that true and false are not numbers."""
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))


def _typed(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if not _is(value, kind):
            raise TypeError(value)
        return value

    return convert


def _real(value: Any) -> float:
    if not _is(value, int, float) or not math.isfinite(value):
        raise TypeError(value)
    return float(value)


def _as_text(value: Any) -> str:
    """A scalar as text: numbers and true/false as written (``env:``, ``headers:``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        raise TypeError(value)
    return str(value)


_LEAVES: Final[Mapping[str, _Leaf]] = {
    "text": _Leaf("text", _typed(str), "quote the value to make it text"),
    "as_text": _Leaf("text", _as_text),
    "int": _Leaf("a whole number", _typed(int)),
    "number": _Leaf("a number", _real),
    "flag": _Leaf("true or false", _typed(bool)),
    "duration": _Leaf(
        "a duration like 30s",
        parse_duration,
        "units are ms, s, m, h and d, as in 250ms, 30s, 5m or 1h30m; a number is seconds",
    ),
    "money": _Leaf(
        'an amount of money like "$5.00"', parse_money, "write US dollars: \"$5.00\", '5' or 2.5"
    ),
    "size": _Leaf(
        "a size like 512MiB",
        parse_size,
        "a whole number of bytes, or a number with a unit: B, KB, MB, GB, KiB, MiB, GiB",
    ),
}
"""Each kind of leaf (a field's unit, or its type: ``str`` is ``text``, ...)."""

# -- positions ------------------------------------------------------------------------------


@attrs.frozen
class ScalarLocation:
    """Where a text value (a template, condition, name, ...) was written, so that an offset
    inside the value can be turned into a line and column of the file."""

    file: str
    path: str
    node: Node = attrs.field(eq=False, repr=False)
    lines: Sequence[str] = attrs.field(eq=False, repr=False)

    def source(self, offset: int | None = None) -> Source:
        """The file position of ``offset`` in the value (of the value itself if ``None`` or
        when the offset can't be placed exactly, e.g. in a folded or escaped scalar)."""
        line, column = _start(self.node)
        if offset is None or not isinstance(self.node, ScalarNode):
            return Source(self.file, line, column, self.path)
        value: str = self.node.value
        style = self.node.style
        # NOTE: only place the offset when the source text is verifiably the value's text;
        # escapes, folding and plain multi-line scalars shift characters, so fall back then.
        if style in (None, "", '"', "'") and "\n" not in value:
            body = column - 1 + (1 if style in ('"', "'") else 0)
            source_line = self.lines[line - 1] if line - 1 < len(self.lines) else ""
            if source_line[body : body + len(value)] == value:
                return Source(self.file, line, body + offset + 1, self.path)
        elif style == "|":
            before = value.count("\n", 0, offset)
            text_line = value.split("\n")[before]
            index = line + before  # 0-based index of the source line holding it
            if index < len(self.lines):
                source_line = self.lines[index]
                indent = len(source_line) - len(source_line.lstrip(" "))
                if source_line[indent:] == text_line or not text_line:
                    column_in_line = offset - (value.rfind("\n", 0, offset) + 1)
                    return Source(self.file, index + 1, indent + column_in_line + 1, self.path)
        return Source(self.file, line, column, self.path)


def _start(at: Any) -> tuple[int, int]:
    """The 1-based line and column of a node or a mark."""
    mark = getattr(at, "start_mark", at)
    return mark.line + 1, mark.column + 1


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@attrs.define(eq=False)
class Loaded:
    """What :func:`read_document` found: the document (best effort when there are errors;
    ``None`` when nothing could be read), the diagnostics so far, and where each text value
    of the model was written (``locations[(id(obj), field)]``)."""

    document: Document | None
    diagnostics: list[Diagnostic]
    locations: dict[tuple[int, str], ScalarLocation]
    broken: set[int]
    """``id``s of model objects that had errors (checks that would repeat them are skipped)."""
    kept: list[object] = attrs.field(factory=list, repr=False)
    """Every object keyed by ``id`` above, kept alive: an object dropped after it was made
    (the items of a wrong list) would free its ``id`` for another one."""


class _Reader:
    """The state of one read: the file, its lines, diagnostics and positions."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.diagnostics: list[Diagnostic] = []
        self.locations: dict[tuple[int, str], ScalarLocation] = {}
        self.broken: set[int] = set()
        self.kept: list[object] = []
        self._constructor: Any = None
        self.depth = 0
        """How many control steps enclose the steps being read."""

    # -- reporting --

    def error(self, at: Any, path: str, message: str, hint: str | None = None) -> Any:
        """Report ``message`` at a node or a mark (``None``: the start of the file); returns
        ``_BAD``, the value of what was wrong (``return reader.error(...)``)."""
        source = self.where(at, path) if at is not None else Source(self.file, 1, 1, path)
        self.diagnostics.append(
            Diagnostic(severity="error", source=source, message=message, hint=hint)
        )
        return _BAD

    def where(self, at: Any, path: str) -> Source:
        return Source(self.file, *_start(at), path)

    def locate(self, obj: object, field: str, node: Node, path: str) -> None:
        self.kept.append(obj)
        self.locations[(id(obj), field)] = ScalarLocation(self.file, path, node, self.lines)

    # -- plain values --

    def scalar(self, node: ScalarNode, path: str) -> Any:
        tag = node.tag if isinstance(node.tag, str) else getattr(node.tag, "value", str(node.tag))
        # NOTE: keep dates as written: they end up in prompts and JSON, not datetime math.
        if tag in _TEXT_TAGS:
            return node.value
        if tag not in _PLAIN_TAGS:
            return self.error(
                node,
                path,
                f"unsupported YAML tag {tag!r}",
                "remove the tag; values are text, numbers, true/false, null, lists and mappings",
            )
        if self._constructor is None:
            self._constructor = YAML(typ="safe", pure=True).constructor
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception:  # a malformed int/float the resolver accepted
            return node.value

    def plain(self, node: Node, path: str, active: set[int] | None = None) -> Any:
        """The node as plain data (``dict``/``list``/scalars); ``_BAD`` after an error.
        ``active``: the ``id``s of the nodes being read around it (a recursive alias)."""
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        active = set() if active is None else active
        if id(node) in active:
            return self.error(
                node,
                path,
                "the value contains itself (a recursive YAML alias)",
                "an alias *name may not appear inside its own anchor &name",
            )
        if len(active) > _MAX_DEPTH:
            return self.error(node, path, "the value is nested too deeply")
        active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = [
                    self.plain(item, f"{path}[{i}]", active) for i, item in enumerate(node.value)
                ]
                return _BAD if any(item is _BAD for item in items) else items
            result: dict[str, Any] = {}
            for key, value in self.entries(node, path).items():
                result[key] = self.plain(value[1], _child(path, key), active)
            return _BAD if any(item is _BAD for item in result.values()) else result
        finally:
            active.discard(id(node))

    def entries(self, node: Node, path: str) -> dict[str, tuple[Node, Node]]:
        """The mapping's entries by key (text); reports non-text and duplicate keys."""
        result: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, path, "a key must be text, not a list or mapping")
                continue
            key = self.scalar(key_node, path)
            if key is _BAD:
                continue  # NOTE: merge keys ('<<') end here too: their tag is refused
            if not isinstance(key, str):
                self.error(
                    key_node,
                    path,
                    f"a key must be text, not {_describe(key)}",
                    f"quote it: '{key_node.value}'",
                )
                continue
            if key in result:
                first = result[key][0].start_mark.line + 1
                self.error(
                    key_node,
                    _child(path, key),
                    f"duplicate key {key!r} (first written on line {first})",
                    "keep one of them; names must be unique",
                )
                continue
            result[key] = (key_node, value_node)
        return result

    # -- typed reads --

    def mapping(
        self, node: Node, path: str, allowed: Sequence[str], what: str
    ) -> dict[str, tuple[Node, Node]] | None:
        """The entries of a mapping node with only ``allowed`` keys (others reported)."""
        if not isinstance(node, MappingNode):
            self.type_error(node, path, f"a mapping ({what})")
            return None
        entries = self.entries(node, path)
        _check_keys(self, entries, allowed, path, what)
        return entries

    def type_error(
        self, node: Node, path: str, expected: str, hint: str | None = None, got: Any = _MISSING
    ) -> Any:
        """``expected ..., got ...`` (``got``: the node's value unless given); returns
        ``_BAD``."""
        if got is _MISSING:
            got = self.scalar(node, path) if isinstance(node, ScalarNode) else node
        if got is not _BAD:
            self.error(node, path, f"expected {expected}, got {_describe(got)}", hint)
        return _BAD

    def leaf(self, node: Node, path: str, kind: str) -> Any:
        """Convert a scalar as its kind says (``_LEAVES``); ``_BAD`` on error."""
        leaf = _LEAVES[kind]
        if not isinstance(node, ScalarNode):
            return self.type_error(node, path, leaf.expected)
        value = self.scalar(node, path)
        if value is _BAD:
            return _BAD
        try:
            return leaf.convert(value)
        except (TypeError, ValueError):
            return self.type_error(node, path, leaf.expected, leaf.hint, got=value)

    def check(self, node: Node, path: str, value: Any, check: Callable[[Any], Any]) -> Any:
        """``check(value)``, its :class:`_Invalid` reported at ``node``; ``_BAD`` then."""
        try:
            return check(value)
        except _Invalid as problem:
            return self.error(node, path, problem.message, problem.hint)


def _describe(value: Any) -> str:
    """A value as a diagnostic shows it (``'x'``, ``null``, ``a list``; a node by kind)."""
    if isinstance(value, SequenceNode | list):
        return "a list"
    if isinstance(value, MappingNode | dict):
        return "a mapping"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_null(reader: _Reader, node: Node, path: str) -> bool:
    return isinstance(node, ScalarNode) and reader.scalar(node, path) is None


# -- the schema of each class, from its attrs fields -------------------------------------------


@attrs.frozen
class _Plan:
    """How the walker reads one field: its YAML key (``group.key`` split), kind of value
    and what the kind needs (the choices, the class, the kind of items)."""

    name: str
    key: str | None
    sub: str | None
    kind: str
    target: Any
    spec: Key
    check: Callable[[Any], Any] | None


@attrs.frozen
class _Schema:
    section: Section
    plans: tuple[_Plan, ...]
    keys: tuple[str, ...]
    blank: tuple[str, ...]
    """Required text fields, left empty when they could not be read."""


@functools.cache
def schema_of(cls: type) -> _Schema:
    """The plans of ``cls``'s fields (made once per class); :mod:`._dump` writes by them."""
    attrs.resolve_types(cls, globalns=vars(_model))
    section: Section = getattr(cls, "__yaml__", NO_SECTION)
    plans = tuple(_plan(field) for field in attrs.fields(cls) if field.name != "where")
    keys = tuple(dict.fromkeys(p.key for p in plans if p.key is not None))
    keys = ("type", *keys) if section.tag else keys
    blank = tuple(f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING and f.type is str)
    return _Schema(section, plans, keys, blank)


def _plan(field: attrs.Attribute[Any]) -> _Plan:
    spec: Key = field.metadata.get("yaml", NO_KEY)
    written = field.name if spec.key == "" else spec.key
    key, _, sub = (written or "").partition(".")
    kind, target = _kind(field.type, spec)
    check = spec.check
    if kind == "choice":
        kind, check = "text", one_of(target)
    return _Plan(field.name, key or None, sub or None, kind, target, spec, check)


def _kind(kind: Any, spec: Key) -> tuple[str, Any]:
    """The walker's name for a field type, and what reading it needs."""
    if spec.read is not None:
        return spec.read, None
    if spec.unit is not None:
        return spec.unit, None
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        rest = tuple(arg for arg in args if arg is not type(None))
        if len(rest) == 1:
            return _kind(rest[0], spec)
        return ("union", rest) if kind is not Step else ("steps", None)
    simple = {str: "text", int: "int", float: "number", bool: "flag", Any: "plain"}
    if kind in simple:
        return simple[kind], None
    if origin is Literal:
        return "choice", args
    if attrs.has(kind):
        return "section", kind
    if origin is tuple and args[0] is str:
        return "names", None
    if origin is tuple and args[0] is Step:
        return "steps", None
    if origin is tuple and attrs.has(args[0]):
        named = any(p.name == "name" and p.key is None for p in schema_of(args[0]).plans)
        return "named" if named else "list", args[0]
    if origin is Mapping and args in ((str, str), (str, Any)):
        return "mapping", "as_text" if args[1] is str else "plain"
    raise TypeError(f"no way to read a {kind!r} from YAML: give the field a Key(read=...)")


# -- the walker ----------------------------------------------------------------------------------


@attrs.define
class _Reading:
    """A section being read, as hooks and checks see it: its node, path and entries, the
    fields read so far and where values were written."""

    reader: _Reader
    node: Node
    path: str
    entries: dict[str, tuple[Node, Node]]
    fields: dict[str, Any]
    located: list[tuple[str, Node, str]] = attrs.field(factory=list)
    """Where values were written, recorded once their object exists: (field, node, path)."""


Kind = Callable[[_Reading, _Plan, Node, str], Any]
"""Reads one field's value (its node, its path) as its plan says (``_KINDS``); a hook
(``Key.read``) is a kind of its own and may set other fields."""
Check = Callable[[_Reading], str]
"""Checks a section across its fields (``Section.check``): ``ok``, ``bad`` (kept, marked
broken) or ``drop``."""


def _read(
    reader: _Reader,
    cls: type,
    node: Node,
    path: str,
    *,
    what: str | None = None,
    entries: dict[str, tuple[Node, Node]] | None = None,
    where: Node | None = None,
    anchor: Node | None = None,
    preset: dict[str, Any] | None = None,
) -> Any:
    """One section of class ``cls`` from ``node`` (``_BAD`` when it can't be made).

    Args:
        what: how diagnostics name it when its class doesn't say.
        entries: the mapping's entries when the caller already has them.
        where: the node its ``where`` points at (default ``node``).
        anchor: the node a missing key is reported at (default ``where``).
        preset: fields known before reading (a name taken from a key).
    """
    schema = schema_of(cls)
    section = schema.section
    fields = dict(preset or {})
    fields["where"] = reader.where(where or node, path)
    name = fields.get("name", fields.get("agent"))
    label = (section.what or what or "").format(name=name)
    if entries is None:
        if section.null and _is_null(reader, node, path):
            return _build(reader, cls, fields, False)
        if section.short is not None and isinstance(node, ScalarNode):
            plan = next(p for p in schema.plans if p.name == section.short)
            value = _value(_Reading(reader, node, path, {}, fields), plan, node, path)
            return _BAD if value is _BAD else cls(**{plan.name: value, "where": fields["where"]})
        entries = reader.mapping(node, path, schema.keys, label)
        if entries is None:
            return _build(reader, cls, fields, True) if section.keep else _BAD
    else:
        _check_keys(reader, entries, schema.keys, path, label)
    reading = _Reading(reader, node, path, entries, fields)
    groups: dict[str, dict[str, tuple[Node, str]] | None] = {}
    for plan in schema.plans:
        if plan.key is None:
            continue
        found = entries.get(plan.key)
        if found is None and plan.spec.required is None:
            continue  # NOTE: most keys are not written: the fast way past them
        owner, owner_path = anchor or where or node, path
        value_node, value_path = (found[1], _child(path, plan.key)) if found else (None, path)
        if plan.sub is not None:
            if value_node is None:
                continue
            owner, owner_path = value_node, value_path
            if plan.key not in groups:
                groups[plan.key] = _group(reader, schema, plan.key, value_node, value_path)
            group = groups[plan.key]
            if group is None:
                fields[plan.name] = _BAD
                continue
            value_node, value_path = group.get(plan.sub, (None, path))
        if value_node is None:
            if (spec := plan.spec).required is not None:
                message = spec.missing or f"missing key {plan.sub or plan.key!r}"
                reader.error(owner, owner_path, message.format(name=name), spec.required)
                if spec.drop:
                    return _BAD
            continue
        value = fields[plan.name] = _value(reading, plan, value_node, value_path)
        if value is _BAD:
            if plan.spec.fatal:
                return _BAD
        elif plan.spec.locate and plan.kind not in ("names", "mapping"):
            reading.located.append((plan.name, value_node, value_path))
    verdict = "ok" if section.check is None else _CHECKS[section.check](reading)
    if verdict == "drop":
        return _BAD
    obj = _build(reader, cls, fields, verdict == "bad")
    for field, value_node, value_path in reading.located:
        reader.locate(obj, field, value_node, value_path)
    return obj


def _group(
    reader: _Reader, schema: _Schema, key: str, node: Node, path: str
) -> dict[str, tuple[Node, str]] | None:
    """The values written under the group ``key`` (``budget: {limit, on_exceed}``) with
    their paths, ``None`` if it is not a mapping; its short form is its short key's value."""
    subs = {plan.sub: plan.spec.short for plan in schema.plans if plan.key == key and plan.sub}
    short = next((sub for sub, is_short in subs.items() if is_short), None)
    if short is not None and not isinstance(node, MappingNode):
        return {short: (node, path)}
    group = reader.mapping(node, path, tuple(subs), key)
    if group is None:
        return None
    return {sub: (value, _child(path, sub)) for sub, (_, value) in group.items()}


def _build(reader: _Reader, cls: type, fields: dict[str, Any], bad: bool) -> Any:
    """Make the model object from the fields that were read (``_BAD`` ones left at their
    defaults, a required text left empty) and remember it as broken when something was
    wrong."""
    clean = {name: value for name, value in fields.items() if value is not _BAD}
    bad = bad or len(clean) != len(fields)
    for name in schema_of(cls).blank:
        clean.setdefault(name, "")
    obj = cls(**clean)
    if bad:
        reader.broken.add(id(obj))
        reader.kept.append(obj)
    return obj


def _value(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """The value of one field, read as its plan says; an empty one is wrong if the field's
    ``empty`` says so."""
    value = _KINDS[plan.kind](reading, plan, node, path)
    if plan.spec.empty is None or value is _BAD or node.value:
        return value
    return reading.reader.error(node, path, *plan.spec.empty)


def _leaf(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """A scalar, converted as its kind says, within the field's range, passing its check."""
    reader, kind, spec = reading.reader, plan.kind, plan.spec
    value = reader.leaf(node, path, kind)
    if value is _BAD:
        return _BAD
    if spec.min is not None and value < spec.min:
        noun = "a whole number" if kind in ("int", "size") else "a number"
        what = "duration" if kind == "duration" else noun
        return reader.error(
            node, path, f"expected {what} of {_number(spec.min)} or more, got {value!r}"
        )
    if spec.max is not None and value > spec.max:
        return reader.error(
            node,
            path,
            f"expected a number from {_number(spec.min or 0)} to {_number(spec.max)}, "
            f"got {value!r}",
        )
    return value if plan.check is None else reader.check(node, path, value, plan.check)


def _check_keys(
    reader: _Reader,
    entries: dict[str, tuple[Node, Node]],
    allowed: Sequence[str],
    path: str,
    what: str,
) -> None:
    for key, (key_node, _) in entries.items():
        if key not in allowed:
            hint = did_you_mean(key, allowed) or "valid keys: " + ", ".join(allowed)
            reader.error(key_node, _child(path, key), f"unknown key {key!r} in {what}", hint)


def _names(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """A list of texts, each passing the field's check."""
    reader = reading.reader
    if not isinstance(node, SequenceNode):
        return reader.type_error(
            node, path, "a list of names", "write them as [a, b] or as - items"
        )
    items = [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
    result = [reader.leaf(*item, "text") for item in items]
    if plan.check is not None and _BAD not in result:
        pairs = zip(items, result, strict=True)
        result = [reader.check(*item, value, plan.check) for item, value in pairs]
    if _BAD in result:
        return _BAD
    if plan.spec.locate:
        for i, (item, item_path) in enumerate(items):
            reading.located.append((f"{plan.name}[{i}]", item, item_path))
    return tuple(result)


def _mapping(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """A mapping of names to text (``env:``) or to plain values (``set:``); the names pass
    the field's check; a wrong value is left out (the whole mapping is wrong if strict)."""
    reader, spec, plain = reading.reader, plan.spec, plan.target == "plain"
    if not isinstance(node, MappingNode):
        default = "a mapping of names to " + ("values" if plain else "text")
        return reader.type_error(node, path, spec.expected or default, spec.hint)
    result: dict[str, Any] = {}
    bad = False
    for name, (key_node, value_node) in reader.entries(node, path).items():
        item_path = _child(path, name)
        if plan.check is not None and reader.check(key_node, item_path, name, plan.check) is _BAD:
            continue
        if plain:
            value = reader.plain(value_node, item_path)
        elif isinstance(value_node, ScalarNode) and reader.scalar(value_node, path) is _BAD:
            value = _BAD  # NOTE: a refused tag, reported at the mapping's path
        else:
            value = reader.leaf(value_node, item_path, plan.target)
        if value is _BAD:
            bad = True
            continue
        result[name] = value
        if spec.locate:
            reading.located.append((f"{plan.name}.{name}", value_node, item_path))
    return _BAD if bad and spec.strict else result


def _named(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """A mapping of name → section (``agents:``, ``tools:``, ``workflows:``, ``inputs:``)."""
    reader = reading.reader
    if plan.spec.null and _is_null(reader, node, path):
        return ()
    if not isinstance(node, MappingNode):
        return reader.type_error(node, path, plan.spec.expected or "a mapping")
    name_spec = next(p for p in schema_of(plan.target).plans if p.name == "name").spec
    result = []
    for name, (key_node, value_node) in reader.entries(node, path).items():
        item_path = _child(path, name)
        check = name_spec.check
        bad = check is not None and reader.check(key_node, item_path, name, check) is _BAD
        if bad and name_spec.fatal:
            continue
        item = _read(
            reader, plan.target, value_node, item_path, where=key_node, preset={"name": name}
        )
        if item is not _BAD:
            result.append(item)
    return tuple(result)


def _list(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """``- name: ...`` items; with ``Section.unique``, names are unique and an item without
    a good name is dropped."""
    reader = reading.reader
    if not isinstance(node, SequenceNode):
        return reader.type_error(node, path, plan.spec.expected or "a list", plan.spec.hint)
    unique = schema_of(plan.target).section.unique
    result: list[Any] = []
    seen: dict[str, int] = {}
    bad = False
    for i, item in enumerate(node.value):
        item_path = f"{path}[{i}]"
        obj = _read(reader, plan.target, item, item_path)
        bad = bad or obj is _BAD or id(obj) in reader.broken
        if obj is _BAD:
            continue
        if unique is not None:
            name_node = next(v for k, v in item.value if k.value == "name")
            if obj.name in seen:
                reader.error(
                    name_node,
                    f"{item_path}.name",
                    f"duplicate {unique} name {obj.name!r} (first on line {seen[obj.name]})",
                    f"give each {unique.split()[-1]} its own name",
                )
                bad = True
                continue
            seen[obj.name] = name_node.start_mark.line + 1
        result.append(obj)
    return _BAD if bad and plan.spec.strict else tuple(result)


def _union(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """One of the classes of the field's type, chosen by the ``type:`` key (``Section.tag``)."""
    reader = reading.reader
    tags = {schema_of(cls).section.tag: cls for cls in plan.target}
    written = " or ".join(f"'type: {tag}'" for tag in tags)
    if not isinstance(node, MappingNode):
        return reader.type_error(node, path, f"a mapping with {written}")
    entries = reader.entries(node, path)
    if "type" not in entries:
        return reader.error(node, path, "missing key 'type'", f"write {written}")
    tag_node = entries["type"][1]
    tag = reader.leaf(tag_node, f"{path}.type", "text")
    if tag is not _BAD:
        tag = reader.check(tag_node, f"{path}.type", tag, one_of(tuple(tags)))  # type: ignore[arg-type]
    if tag is _BAD:
        return _BAD
    return _read(reader, tags[tag], node, path, entries=entries)


# -- steps ------------------------------------------------------------------------------------


def _steps(reader: _Reader, node: Node, path: str) -> Any:
    if not isinstance(node, SequenceNode):
        return reader.type_error(node, path, "a list of steps", "write each step as a '- ' item")
    if reader.depth > _MAX_DEPTH:
        return reader.error(
            node, path, "steps are nested too deeply", "split the workflow into several"
        )
    steps = (_step(reader, item, f"{path}[{i}]") for i, item in enumerate(node.value))
    return tuple(step for step in steps if step is not _BAD)


def _step(reader: _Reader, node: Node, path: str) -> Any:
    if not isinstance(node, MappingNode):
        return reader.type_error(
            node, path, "a step (a mapping such as '- writer: \"...\"' or '- if: ...')"
        )
    entries = reader.entries(node, path)
    keywords = [key for key in entries if key in CONTROL_STEPS]
    if len(keywords) > 1:
        listed = ", ".join(repr(k) for k in keywords)
        return reader.error(
            entries[keywords[1]][0],
            path,
            f"a step can be only one kind, found {listed}",
            "split it into separate '- ' steps",
        )
    if keywords:
        reader.depth += 1
        try:
            return _read(reader, CONTROL_STEPS[keywords[0]], node, path, entries=entries)
        finally:
            reader.depth -= 1
    if len(entries) == 1:
        ((agent, (key_node, value_node)),) = entries.items()
        return _agent_step(reader, agent, key_node, value_node, path)
    if not entries:
        return reader.error(
            node, path, "empty step", "write '- agent: \"message\"' or a control step"
        )
    found = ", ".join(repr(key) for key in entries)
    message = f"a step has exactly one key (an agent's name or one of {_KEYWORDS}), found {found}"
    step_keys = ", ".join(repr(key) for key in entries if key in schema_of(AgentStep).keys)
    hint = f"indent {step_keys} under the agent's name" if step_keys else None
    return reader.error(node, path, message, hint or "write one step per '- ' item")


def _agent_step(reader: _Reader, agent: str, key_node: Node, node: Node, path: str) -> Any:
    """``- agent: "text"`` (the short form) or ``- agent: {send: ..., ...}``."""
    preset: dict[str, Any] = {"agent": agent}
    if isinstance(node, MappingNode):
        step = _read(reader, AgentStep, node, path, where=key_node, anchor=node, preset=preset)
    else:
        scalar = reader.scalar(node, path) if isinstance(node, ScalarNode) else node
        if isinstance(scalar, str):
            preset["send"] = scalar
        elif scalar is not _BAD:
            reader.type_error(
                key_node if scalar is None else node,
                path,
                "the message to send (text) or a mapping with 'send:'",
                f"write '- {agent}: \"...\"' or '- {agent}: {{send: \"...\", save: name}}'",
                got=scalar,
            )
        step = _build(reader, AgentStep, {**preset, "where": reader.where(key_node, path)}, False)
        if isinstance(scalar, str):
            reader.locate(step, "send", node, path)
    reader.locate(step, "agent", key_node, path)
    return step


# -- hooks: what field metadata can't say -------------------------------------------------------


def _prices(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """``prices: {model: {input, output, cache_write?, cache_read?}}`` (USD per million)."""
    reader = reading.reader
    if not isinstance(node, MappingNode):
        return reader.type_error(node, path, "a mapping of model names to prices")
    result: dict[str, dict[str, Any]] = {}
    bad = False
    for model, (_, value_node) in reader.entries(node, path).items():
        model_path = _child(path, model)
        sub = reader.mapping(value_node, model_path, _PRICE_KEYS, "a price")
        if sub is None:
            bad = True
            continue
        for key in _PRICE_KEYS[:2]:
            if key not in sub:
                reader.error(
                    value_node,
                    model_path,
                    f"missing key {key!r}",
                    "give input and output in USD per million tokens",
                )
                bad = True
        # NOTE: an unknown key was reported above and is still read as a price.
        result[model] = {
            key: _leaf(reading, _AT_LEAST_0, price_node, _child(model_path, key))
            for key, (_, price_node) in sub.items()
        }
        bad = bad or _BAD in result[model].values()
    return _BAD if bad else result


_PRICE_KEYS: Final = ("input", "output", "cache_write", "cache_read")
_AT_LEAST_0: Final = _Plan("price", None, None, "number", None, Key(min=0), None)


def _enum(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """``enum:``: a non-empty list of values of the ``type`` read before it."""
    reader = reading.reader
    if not isinstance(node, SequenceNode) or not node.value:
        return reader.type_error(node, path, "a non-empty list of allowed values")
    values = reader.plain(node, path)
    if values is _BAD:
        return _BAD
    kind = reading.fields.get("type", "string")
    for i, value in enumerate(values):
        if kind is not _BAD and not _has_type(value, kind):
            return reader.error(
                node.value[i],
                f"{path}[{i}]",
                f"enum value {_describe(value)} is not of type {kind!r}",
                f"make every enum value a {kind}",
            )
    return tuple(values)


def _for(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """``for: item in items``: the variable (returned) and the items expression."""
    header = reading.reader.leaf(node, path, "text")
    if header is _BAD:
        return _BAD
    match = _FOR.match(header)
    if match is None:
        return reading.reader.error(
            node,
            path,
            f"expected 'NAME in ITEMS', got {header!r}",
            "write 'for: item in items': a variable name, 'in', then the list",
        )
    reading.fields["items"] = match.group(2)
    reading.located.append(("for", node, path))
    return match.group(1)


def _branches(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    """``parallel:`` branches: each a step or a list of steps."""
    reader = reading.reader
    if not isinstance(node, SequenceNode):
        return reader.type_error(
            node, path, "a list of branches", "write each branch as a '- ' item"
        )
    branches: list[tuple[Step, ...]] = []
    for i, branch in enumerate(node.value):
        branch_path = f"{path}[{i}]"
        if isinstance(branch, SequenceNode):
            steps = _steps(reader, branch, branch_path)
        else:
            step = _step(reader, branch, branch_path)
            steps = _BAD if step is _BAD else (step,)
        if steps is not _BAD:
            branches.append(steps)
    return tuple(branches)


def _section(reading: _Reading, plan: _Plan, node: Node, path: str) -> Any:
    return _read(reading.reader, plan.target, node, path, what=plan.sub or plan.key)


_KINDS: Final[Mapping[str, Kind]] = {
    **dict.fromkeys(_LEAVES, _leaf),
    "names": _names,
    "mapping": _mapping,
    "plain": lambda reading, _, node, path: reading.reader.plain(node, path),
    "section": _section,
    "steps": lambda reading, _, node, path: _steps(reading.reader, node, path),
    "union": _union,
    "named": _named,
    "list": _list,
    "prices": _prices,
    "enum": _enum,
    "for": _for,
    "branches": _branches,
}
"""How the walker reads each kind of value; hooks (``Key.read``) are kinds of their own."""


# -- checks across the fields of a section ------------------------------------------------------


def _check_document(reading: _Reading) -> str:
    if reading.fields.get("agents") == ():
        reading.reader.error(
            reading.entries["agents"][0],
            "agents",
            "'agents' is empty",
            "define at least one agent: 'agents: {helper: {system: ...}}'",
        )
    return "ok"


def _check_tool(reading: _Reading) -> str:
    """A tool whose implementation can't be read is kept, broken, with a stand-in (so that
    agents naming it get no second, misleading "unknown tool" error); each key written under
    a good one is located (it is checked later as a template)."""
    fields, path = reading.fields, reading.path
    if fields.get("implementation", _BAD) is _BAD:
        fields["implementation"] = ExecSpec(command="")
        return "bad"
    for key_node, value_node in reading.entries["implementation"][1].value:
        if isinstance(key_node, ScalarNode):
            key = f"implementation.{key_node.value}"
            reading.located.append((key, value_node, f"{path}.{key}"))
    return "ok"


_MCP_NEEDS: Final = {
    "stdio": (
        "runs over stdio",
        "command",
        "add 'command:' and 'args:', or give a 'url:' for an HTTP server",
    ),
    "http": ("uses http", "url", "add 'url: https://...', or a 'command:' for a stdio server"),
    "sse": ("uses sse", "url", "add 'url: https://...', or a 'command:' for a stdio server"),
}
"""What a transport needs: how the diagnostic says it's used, its key and the hint."""


def _check_mcp_server(reading: _Reading) -> str:
    reader, fields, entries, path = reading.reader, reading.fields, reading.entries, reading.path
    name = fields.get("name", _BAD)
    if name is _BAD:
        return "drop"
    verdict = "ok"
    if not _SERVER_NAME.match(name) or "__" in name:
        reader.error(
            entries["name"][1],
            f"{path}.name",
            f"MCP server name {name!r} is invalid",
            "use letters, digits, '-' and single '_'; its tools are named server__tool",
        )
        verdict = "bad"
    transport = fields.get("transport") or ("stdio" if "command" in entries else "http")
    if transport in _MCP_NEEDS and (need := _MCP_NEEDS[transport])[1] not in entries:
        uses, key, hint = need
        reader.error(reading.node, path, f"MCP server {name!r} {uses} but has no {key!r}", hint)
        verdict = "bad"
    return verdict


def _check_typed(reading: _Reading) -> str:
    """The ``default`` of a tool parameter or a workflow input agrees with its ``type``,
    ``enum`` and ``required``."""
    reader, fields, entries, path = reading.reader, reading.fields, reading.entries, reading.path
    kind, enum, default = fields.get("type", "string"), fields.get("enum"), fields.get("default")
    if default is _BAD or default is None:
        return "ok"
    shown, wrong = _describe(default), "default"
    if kind is not _BAD and not _has_type(default, kind):
        message = f"the default {shown} is not of type {kind!r}"
        hint = f"give a default of type {kind}"
    # NOTE: compare type and value, so that true is not taken for 1.
    elif isinstance(enum, tuple) and not any(
        type(default) is type(a) and default == a for a in enum
    ):
        message = f"the default {shown} is not one of the enum values"
        hint = "allowed: " + ", ".join(_describe(v) for v in enum)
    elif fields.get("required") is True:
        wrong, message = "required", "'required: true' with a default"
        hint = "a default makes the value optional: drop 'required' or the default"
    else:
        return "ok"
    reader.error(entries[wrong][1], f"{path}.{wrong}", message, hint)
    fields[wrong] = _BAD
    return "ok"


_JSON_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _has_type(value: Any, kind: str) -> bool:
    return _is(value, *_JSON_TYPES[kind])


def _check_repeat(reading: _Reading) -> str:
    # NOTE: a repeat whose body is not a mapping is dropped: it has nothing to repeat.
    return "ok" if isinstance(reading.entries["repeat"][1], MappingNode) else "drop"


_CHECKS: Final[Mapping[str, Check]] = {
    "document": _check_document,
    "tool": _check_tool,
    "mcp_server": _check_mcp_server,
    "typed": _check_typed,
    "repeat": _check_repeat,
}


CONTROL_STEPS: Final[Mapping[str, type]] = {
    schema_of(cls).keys[0]: cls for cls in get_args(Step) if cls is not AgentStep
}
"""The class of each control step, by its keyword (the key of its first field)."""


# -- entry points ---------------------------------------------------------------------------


def read_document(text: str, *, file: str = "<string>") -> Loaded:
    """Parse and structure ``text`` (no cross-reference checks; see :mod:`._validate`).

    Never raises for problems in the text: they are in ``.diagnostics``.
    """
    reader = _Reader(text, file)
    document = _document(reader, text)
    return Loaded(document, reader.diagnostics, reader.locations, reader.broken, reader.kept)


def _document(reader: _Reader, text: str) -> Document | None:
    """The document written in ``text``; ``None`` when it can't be read (reported)."""
    try:
        root = YAML(typ="safe", pure=True).compose(text)
    except Exception as problem:  # ruamel raises many kinds; all mean "not YAML"
        _yaml_error(reader, problem)
        return None
    if root is None:
        reader.error(
            None, "", "the document is empty", "define at least 'agents:'; see docs/dsl.md"
        )
        return None
    # NOTE: before any walk: every walk below visits an aliased value once per alias, so
    # a "billion laughs" document would take exponential time and memory.
    anchor = check_alias_expansion(root)
    if anchor is not None:
        reader.error(
            anchor,
            "",
            f"YAML aliases expand the document by more than {MAX_ALIAS_EXPANSION:,} values "
            "(an alias bomb?)",
            "write the repeated values out, or reuse fewer and smaller &anchors",
        )
        return None
    if not isinstance(root, MappingNode):
        reader.type_error(
            root,
            "",
            "a mapping of 'name', 'agents', 'workflows', ... at the top level",
            "start the file with 'agents:' at the beginning of a line",
        )
        return None
    try:
        document = _read(reader, Document, root, "")
    except RecursionError:
        reader.error(root, "", "the document is nested too deeply")
        return None
    return None if document is _BAD else document


def _yaml_error(reader: _Reader, problem: Exception) -> None:
    text = getattr(problem, "problem", None)
    if isinstance(problem, RecursionError):
        detail = "nested too deeply"
    else:  # NOTE: else the first line of what it says
        detail = text or next(iter(str(problem).strip().splitlines()), "")
    message = f"malformed YAML: {detail}" if detail else "malformed YAML"
    hint = getattr(problem, "context", None)
    if "\t" in (text or ""):
        hint = "indent with spaces; YAML does not allow tabs"
    mark = getattr(problem, "problem_mark", None) or getattr(problem, "context_mark", None)
    reader.error(mark, "", message, hint)


def _diagnose(text: str, file: str) -> tuple[Loaded, list[Diagnostic]]:
    """The document read from ``text`` and every diagnostic (checks included) in file order."""
    from ._validate import check_document

    loaded = read_document(text, file=file)
    diagnostics = list(loaded.diagnostics)
    if loaded.document is not None:
        diagnostics.extend(check_document(loaded))
    return loaded, sort_diagnostics(diagnostics)


def validate_text(text: str, *, file: str = "<string>") -> list[Diagnostic]:
    """Every error and warning in a document, in file order; never raises for problems in
    the document.

    Args:
        text: the YAML text.
        file: the name shown in diagnostics.
    """
    return _diagnose(text, file)[1]


def validate_file(
    path: str | os.PathLike[str], *, max_bytes: int | None = None
) -> list[Diagnostic]:
    """:func:`validate_text` of a file.

    Args:
        path: the document; it must be a regular UTF-8 file.
        max_bytes: the size cap (default ``$VEGA_MAX_INPUT_BYTES``, else 4 MiB).

    Raises:
        InputFileError: the file can't be read as input (missing, not a regular file,
            over the size cap, not UTF-8); nothing was parsed.
    """
    text = read_bounded_text(path, what="document", max_bytes=max_bytes)
    return validate_text(text, file=os.fspath(path))


def load_document(text: str, *, file: str = "<string>") -> Document:
    """Parse and validate a ``.vega.yaml`` document.

    Args:
        text: the YAML text.
        file: the name shown in diagnostics.

    Returns:
        The document's model. Warnings (such as variables that only ``--task`` may define)
        do not prevent loading; get them from :func:`validate_text`.

    Raises:
        DSLError: the document has errors; ``.diagnostics`` holds all of them.
    """
    loaded, diagnostics = _diagnose(text, file)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors or loaded.document is None:
        raise DSLError(errors)
    return loaded.document


def load_file(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Document:
    """:func:`load_document` of a file.

    Args:
        path: the document; it must be a regular UTF-8 file.
        max_bytes: the size cap (default ``$VEGA_MAX_INPUT_BYTES``, else 4 MiB).

    Raises:
        InputFileError: the file can't be read as input (missing, not a regular file,
            over the size cap, not UTF-8); nothing was parsed.
        DSLError: the document has errors.
    """
    text = read_bounded_text(path, what="document", max_bytes=max_bytes)
    return load_document(text, file=os.fspath(path))
