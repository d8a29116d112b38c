"""Reading a ``.vega.yaml`` document: YAML text → a tree of positioned nodes (ruamel.yaml)
→ the model of :mod:`._model`, with every problem collected as a :class:`Diagnostic`.

The loader checks shapes and types (unknown keys, missing keys, wrong types, bad
durations, money and enums, duplicate keys); :mod:`._validate` then checks what refers to
what (agents, tools, workflows, templates, variables, cycles). :func:`load_document` runs
both and raises :class:`DSLError` with *all* errors; :func:`validate_text` returns them,
warnings included.

Leaf values (numbers, durations, money, enums, ...) are converted by one ``cattrs``
converter with a structure hook per kind of value; the tree is walked here so that every
problem is reported with its position, not only the first.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NewType, TypeVar

import attrs
import cattrs
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .._files import MAX_ALIAS_EXPANSION, check_alias_expansion, read_bounded_text
from ..resilience._budget import parse_money
from ._diagnostics import Diagnostic, DSLError, did_you_mean, sort_diagnostics
from ._errors import DurationError
from ._model import (
    AgentSpec,
    AgentStep,
    BackoffSpec,
    BreakerSpec,
    DelegationSpec,
    Document,
    ExecSpec,
    ForStep,
    HealthSpec,
    HttpSpec,
    IfStep,
    InputSpec,
    LimitsSpec,
    MCPServerSpec,
    ParallelStep,
    ParamSpec,
    RateLimitSpec,
    RepeatStep,
    RetrySpec,
    ReturnStep,
    SetStep,
    Settings,
    SkillsSpec,
    Source,
    Step,
    SupervisionSpec,
    ToolSpec,
    TryStep,
    WorkflowSpec,
    WorkflowStep,
)
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

STEP_KEYWORDS: Final = ("if", "for", "parallel", "try", "repeat", "set", "return", "workflow")
"""The keys that make a step a control step; any other single key names an agent."""

IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FOR: Final = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s+in\s+(\S.*?)\s*\Z", re.S)
_MAX_DEPTH: Final = 64
_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
_TYPES: Final = ("string", "integer", "number", "boolean", "array", "object")
_STR_TAG: Final = "tag:yaml.org,2002:str"
_PLAIN_TAGS: Final = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null")
)

# -- leaf conversions: one cattrs converter, one hook per kind of value ----------------------

Text = NewType("Text", str)
WholeNumber = NewType("WholeNumber", int)
Number = NewType("Number", float)
Flag = NewType("Flag", bool)
Duration = NewType("Duration", float)
Money = NewType("Money", float)
Size = NewType("Size", int)


class _Invalid(Exception):
    """A leaf value has the wrong type; ``expected`` says what was wanted."""

    def __init__(self, expected: str, hint: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


def _text_hook(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise _Invalid("text", "quote the value to make it text")
    return value


def _whole_number_hook(value: object, _: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("a whole number")
    return value


def _number_hook(value: object, _: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid("a number")
    return float(value)


def _flag_hook(value: object, _: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _duration_hook(value: object, _: object) -> float:
    try:
        return parse_duration(value)  # type: ignore[arg-type]
    except DurationError:
        raise _Invalid(
            "a duration like 30s",
            "units are ms, s, m, h and d, as in 250ms, 30s, 5m or 1h30m; a number is seconds",
        ) from None


def _money_hook(value: object, _: object) -> float:
    try:
        return parse_money(value)  # type: ignore[arg-type]
    except ValueError:
        raise _Invalid(
            'an amount of money like "$5.00"', "write US dollars: \"$5.00\", '5' or 2.5"
        ) from None


def _size_hook(value: object, _: object) -> int:
    try:
        return parse_size(value)  # type: ignore[arg-type]
    except ValueError:
        raise _Invalid(
            "a size like 512MiB",
            "a whole number of bytes, or a number with a unit: B, KB, MB, GB, KiB, MiB, GiB",
        ) from None


_CONVERTER: Final = cattrs.Converter(forbid_extra_keys=True)
_CONVERTER.register_structure_hook(Text, _text_hook)
_CONVERTER.register_structure_hook(WholeNumber, _whole_number_hook)
_CONVERTER.register_structure_hook(Number, _number_hook)
_CONVERTER.register_structure_hook(Flag, _flag_hook)
_CONVERTER.register_structure_hook(Duration, _duration_hook)
_CONVERTER.register_structure_hook(Money, _money_hook)
_CONVERTER.register_structure_hook(Size, _size_hook)

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


def _start(node: Node) -> tuple[int, int]:
    mark = node.start_mark
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


_MISSING: Final = object()
_BAD: Final = object()
T = TypeVar("T")


class _Reader:
    """The state of one read: the file, its lines, diagnostics and positions."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.diagnostics: list[Diagnostic] = []
        self.locations: dict[tuple[int, str], ScalarLocation] = {}
        self.broken: set[int] = set()
        self._constructor: Any = None

    # -- reporting --

    def error(self, node: Node | None, path: str, message: str, hint: str | None = None) -> None:
        line, column = _start(node) if node is not None else (1, 1)
        self.diagnostics.append(
            Diagnostic(
                severity="error",
                source=Source(self.file, line, column, path),
                message=message,
                hint=hint,
            )
        )

    def where(self, node: Node, path: str) -> Source:
        line, column = _start(node)
        return Source(self.file, line, column, path)

    def locate(self, obj: object, field: str, node: Node, path: str) -> None:
        self.locations[(id(obj), field)] = ScalarLocation(self.file, path, node, self.lines)

    # -- plain values --

    def scalar(self, node: ScalarNode, path: str) -> Any:
        tag = node.tag if isinstance(node.tag, str) else getattr(node.tag, "value", str(node.tag))
        if tag == _STR_TAG:
            return node.value
        if tag == "tag:yaml.org,2002:timestamp":
            # NOTE: keep dates as written: they end up in prompts and JSON, not datetime math.
            return node.value
        if tag not in _PLAIN_TAGS:
            self.error(
                node,
                path,
                f"unsupported YAML tag {tag!r}",
                "remove the tag; values are text, numbers, true/false, null, lists and mappings",
            )
            return _BAD
        if self._constructor is None:
            self._constructor = YAML(typ="safe", pure=True).constructor
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception:  # a malformed int/float the resolver accepted
            return node.value

    def plain(self, node: Node, path: str) -> Any:
        """The node as plain data (``dict``/``list``/scalars); ``_BAD`` after an error."""
        return self._plain(node, path, set())

    def _plain(self, node: Node, path: str, active: set[int]) -> Any:
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in active:
            self.error(
                node,
                path,
                "the value contains itself (a recursive YAML alias)",
                "an alias *name may not appear inside its own anchor &name",
            )
            return _BAD
        if len(active) > _MAX_DEPTH:
            self.error(node, path, "the value is nested too deeply")
            return _BAD
        active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = [
                    self._plain(item, f"{path}[{i}]", active) for i, item in enumerate(node.value)
                ]
                return _BAD if any(item is _BAD for item in items) else items
            if isinstance(node, MappingNode):
                result: dict[str, Any] = {}
                bad = False
                for key, value in self.entries(node, path).items():
                    item = self._plain(value[1], _child(path, key), active)
                    bad = bad or item is _BAD
                    result[key] = item
                return _BAD if bad else result
        finally:
            active.discard(id(node))
        self.error(node, path, "unsupported YAML node")
        return _BAD

    def entries(self, node: MappingNode, path: str) -> dict[str, tuple[Node, Node]]:
        """The mapping's entries by key (text); reports non-text and duplicate keys."""
        result: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, path, "a key must be text, not a list or mapping")
                continue
            key = self.scalar(key_node, path)
            if key is _BAD:
                continue
            if key == "<<" and isinstance(key_node.tag, str) and key_node.tag.endswith("merge"):
                self.error(
                    key_node, path, "merge keys ('<<') are not supported", "write the keys out"
                )
                continue
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
    ) -> None:
        if got is _MISSING:
            got = _node_kind(node) if not isinstance(node, ScalarNode) else self.scalar(node, path)
        if got is _BAD:
            return
        shown = got if isinstance(got, _Kind) else _describe(got)
        self.error(node, path, f"expected {expected}, got {shown}", hint)

    def leaf(self, node: Node, path: str, kind: Any) -> Any:
        """Convert a scalar with the converter's hook for ``kind``; ``_BAD`` on error."""
        if not isinstance(node, ScalarNode):
            expected = _EXPECTED.get(kind, "a value")
            self.type_error(node, path, expected)
            return _BAD
        value = self.scalar(node, path)
        if value is _BAD:
            return _BAD
        try:
            return _CONVERTER.structure(value, kind)
        except _Invalid as problem:
            self.type_error(node, path, problem.expected, problem.hint, got=value)
            return _BAD

    def at_least(self, node: Node, path: str, kind: Any, minimum: float) -> Any:
        value = self.leaf(node, path, kind)
        if value is not _BAD and value < minimum:
            noun = "a whole number" if kind in (WholeNumber, Size) else "a number"
            what = "duration" if kind is Duration else noun
            self.error(node, path, f"expected {what} of {_number(minimum)} or more, got {value!r}")
            return _BAD
        return value

    def choice(self, node: Node, path: str, choices: Sequence[str]) -> Any:
        value = self.leaf(node, path, Text)
        if value is _BAD:
            return _BAD
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            self.error(
                node,
                path,
                f"expected one of {listed}, got {value!r}",
                did_you_mean(value, choices),
            )
            return _BAD
        return value

    def names(self, node: Node, path: str) -> tuple[str, ...] | Any:
        """A list of texts; each item's position is recorded under ``[i]``."""
        if not isinstance(node, SequenceNode):
            self.type_error(node, path, "a list of names", "write them as [a, b] or as - items")
            return _BAD
        result: list[str] = []
        bad = False
        for i, item in enumerate(node.value):
            value = self.leaf(item, f"{path}[{i}]", Text)
            bad = bad or value is _BAD
            result.append(value)
        return _BAD if bad else tuple(result)

    def text_map(self, node: Node, path: str) -> dict[str, str] | Any:
        """A mapping of names to texts (numbers and true/false are taken as their text)."""
        if not isinstance(node, MappingNode):
            self.type_error(node, path, "a mapping of names to text")
            return _BAD
        result: dict[str, str] = {}
        bad = False
        for key, (_, value_node) in self.entries(node, path).items():
            value = self.scalar(value_node, path) if isinstance(value_node, ScalarNode) else _BAD
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, int | float):
                value = str(value)
            if not isinstance(value, str):
                if value is not _BAD or not isinstance(value_node, ScalarNode):
                    self.type_error(value_node, _child(path, key), "text")
                bad = True
                continue
            result[key] = value
        return _BAD if bad else result

    def identifier(self, node: Node, path: str, what: str) -> Any:
        value = self.leaf(node, path, Text)
        if value is not _BAD and not IDENTIFIER.match(value):
            self.error(
                node,
                path,
                f"{what} {value!r} is not a valid variable name",
                "use letters, digits and '_', not starting with a digit",
            )
            return _BAD
        return value


class _Kind(str):
    """A description of a non-scalar node (``a list``), shown without quotes."""


def _node_kind(node: Node) -> _Kind:
    if isinstance(node, SequenceNode):
        return _Kind("a list")
    if isinstance(node, MappingNode):
        return _Kind("a mapping")
    return _Kind("a value")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_EXPECTED: Final[Mapping[Any, str]] = {
    Text: "text",
    WholeNumber: "a whole number",
    Number: "a number",
    Flag: "true or false",
    Duration: "a duration like 30s",
    Money: 'an amount of money like "$5.00"',
    Size: "a size like 512MiB",
}


def _build(reader: _Reader, cls: Callable[..., T], fields: dict[str, Any], bad: bool) -> T:
    """Make the model object from the fields that were read (``_BAD`` ones left at their
    defaults) and remember it as broken when something was wrong."""
    clean = {name: value for name, value in fields.items() if value is not _BAD}
    obj = cls(**clean)
    if bad or len(clean) != len(fields):
        reader.broken.add(id(obj))
    return obj


# -- sections -------------------------------------------------------------------------------

_DOCUMENT_KEYS: Final = ("name", "description", "agents", "workflows", "tools", "settings")
_SETTINGS_KEYS: Final = (
    "default_model",
    "sandbox",
    "budget",
    "mcp",
    "skills",
    "rate_limit",
    "prices",
    "logging",
    "health",
    "store",
)
_AGENT_KEYS: Final = (
    "model",
    "system",
    "description",
    "temperature",
    "max_tokens",
    "max_iterations",
    "tools",
    "budget",
    "budget_scope",
    "supervision",
    "retry",
    "rate_limit",
    "circuit_breaker",
    "skills",
    "team",
    "delegation",
    "timeout",
    "fallback_model",
)


def _document(reader: _Reader, node: Node) -> Document | None:
    if not isinstance(node, MappingNode):
        reader.type_error(
            node,
            "",
            "a mapping of 'name', 'agents', 'workflows', ... at the top level",
            "start the file with 'agents:' at the beginning of a line",
        )
        return None
    entries = reader.mapping(node, "", _DOCUMENT_KEYS, "the document")
    if entries is None:
        return None
    fields: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in entries:
            fields[key] = reader.leaf(entries[key][1], key, Text)
    if "settings" in entries:
        fields["settings"] = _settings(reader, entries["settings"][1])
    if "agents" not in entries:
        reader.error(
            node,
            "",
            "missing key 'agents'",
            "a document defines at least one agent under 'agents:'",
        )
    else:
        fields["agents"] = _named(reader, entries["agents"][1], "agents", _agent, "agent")
        if fields["agents"] == ():
            reader.error(
                entries["agents"][0],
                "agents",
                "'agents' is empty",
                "define at least one agent: 'agents: {helper: {system: ...}}'",
            )
    if "tools" in entries:
        fields["tools"] = _named(reader, entries["tools"][1], "tools", _tool, "tool")
    if "workflows" in entries:
        fields["workflows"] = _named(
            reader, entries["workflows"][1], "workflows", _workflow, "workflow"
        )
    fields["where"] = reader.where(node, "")
    return _build(reader, Document, fields, False)


def _named(
    reader: _Reader,
    node: Node,
    path: str,
    read: Callable[[_Reader, str, Node, Node, str], Any],
    what: str,
) -> tuple[Any, ...] | Any:
    """A mapping of name → definition (``agents:``, ``tools:``, ``workflows:``)."""
    if isinstance(node, ScalarNode) and reader.scalar(node, path) is None:
        return ()
    if not isinstance(node, MappingNode):
        reader.type_error(node, path, f"a mapping of {what} names to {what} definitions")
        return _BAD
    result = []
    for name, (key_node, value_node) in reader.entries(node, path).items():
        item = read(reader, name, key_node, value_node, _child(path, name))
        if item is not _BAD:
            result.append(item)
    return tuple(result)


def _settings(reader: _Reader, node: Node) -> Settings | Any:
    path = "settings"
    entries = reader.mapping(node, path, _SETTINGS_KEYS, "settings")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    for key in ("default_model", "sandbox"):
        if key in entries:
            fields[key] = reader.leaf(entries[key][1], _child(path, key), Text)
    if "budget" in entries:
        fields["budget"] = _positive_money(reader, entries["budget"][1], "settings.budget")
    if "rate_limit" in entries:
        fields["rate_limit"] = _rate_limit(reader, entries["rate_limit"][1], "settings.rate_limit")
    if "mcp" in entries:
        fields["mcp_servers"] = _mcp(reader, entries["mcp"][1], "settings.mcp")
    if "skills" in entries:
        sub = reader.mapping(entries["skills"][1], "settings.skills", ("directories",), "skills")
        if sub is None:
            fields["skill_directories"] = _BAD
        elif "directories" in sub:
            directories = sub["directories"][1]
            fields["skill_directories"] = reader.names(directories, "settings.skills.directories")
    if "prices" in entries:
        fields["prices"] = _prices(reader, entries["prices"][1], "settings.prices")
    if "logging" in entries:
        sub = reader.mapping(entries["logging"][1], "settings.logging", ("level",), "logging")
        if sub is None:
            fields["log_level"] = _BAD
        elif "level" in sub:
            level_node = sub["level"][1]
            level = reader.leaf(level_node, "settings.logging.level", Text)
            if level is not _BAD:
                level = level.lower()
                if level not in _LOG_LEVELS:
                    listed = ", ".join(repr(c) for c in _LOG_LEVELS)
                    reader.error(
                        level_node,
                        "settings.logging.level",
                        f"expected one of {listed}, got {level!r}",
                        did_you_mean(level, _LOG_LEVELS),
                    )
                    level = _BAD
            fields["log_level"] = level
    if "health" in entries:
        fields["health"] = _health(reader, entries["health"][1], "settings.health")
    if "store" in entries:
        sub = reader.mapping(entries["store"][1], "settings.store", ("retention_days",), "store")
        if sub is None:
            fields["retention_days"] = _BAD
        elif "retention_days" in sub:
            days_node = sub["retention_days"][1]
            days = reader.leaf(days_node, "settings.store.retention_days", Number)
            if days is not _BAD and not days > 0:
                reader.error(
                    days_node,
                    "settings.store.retention_days",
                    f"expected a number of days above 0, got {days!r}",
                    "leave the key out to keep everything; e.g. 30 deletes what is older "
                    "than 30 days",
                )
                days = _BAD
            fields["retention_days"] = days
    return _build(reader, Settings, fields, False)


_HEALTH_KEYS: Final = (
    "stale_after",
    "max_iterations_ratio",
    "consecutive_errors",
    "cost_usd",
    "check_interval",
)


def _health(reader: _Reader, node: Node, path: str) -> HealthSpec | Any:
    """``settings.health``: the thresholds of health alerts (an empty mapping: all
    defaults)."""
    if isinstance(node, ScalarNode) and reader.scalar(node, path) is None:
        return HealthSpec(where=reader.where(node, path))
    entries = reader.mapping(node, path, _HEALTH_KEYS, "health")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    for key in ("stale_after", "check_interval"):
        if key in entries:
            value = reader.leaf(entries[key][1], _child(path, key), Duration)
            if value is not _BAD and value <= 0:
                reader.error(
                    entries[key][1],
                    _child(path, key),
                    f"expected a duration of more than 0s, got {value!r}",
                    "write it like 2m or 30s",
                )
                value = _BAD
            fields[key] = value
    if "max_iterations_ratio" in entries:
        ratio_node = entries["max_iterations_ratio"][1]
        ratio = reader.leaf(ratio_node, _child(path, "max_iterations_ratio"), Number)
        if ratio is not _BAD and not 0 < ratio <= 1:
            reader.error(
                ratio_node,
                _child(path, "max_iterations_ratio"),
                f"expected a fraction of max_iterations above 0 and at most 1, got {ratio!r}",
                "e.g. 0.8 alerts at 80% of an agent's max_iterations",
            )
            ratio = _BAD
        fields["max_iterations_ratio"] = ratio
    if "consecutive_errors" in entries:
        fields["consecutive_errors"] = reader.at_least(
            entries["consecutive_errors"][1], _child(path, "consecutive_errors"), WholeNumber, 1
        )
    if "cost_usd" in entries:
        cost_node = entries["cost_usd"][1]
        cost = reader.leaf(cost_node, _child(path, "cost_usd"), Money)
        if cost is not _BAD and cost <= 0:
            reader.error(
                cost_node,
                _child(path, "cost_usd"),
                "a cost threshold must be more than $0",
                'give an amount like "$1.00"',
            )
            cost = _BAD
        fields["cost_usd"] = cost
    return _build(reader, HealthSpec, fields, False)


def _positive_money(reader: _Reader, node: Node, path: str) -> Any:
    value = reader.leaf(node, path, Money)
    if value is not _BAD and value <= 0:
        reader.error(
            node, path, "a budget must be more than $0", "give a positive limit or remove it"
        )
        return _BAD
    return value


def _rate_limit(reader: _Reader, node: Node, path: str) -> RateLimitSpec | Any:
    keys = ("requests_per_minute", "tokens_per_minute", "strategy")
    entries = reader.mapping(node, path, keys, "rate_limit")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    for key in keys[:2]:
        if key in entries:
            fields[key] = reader.at_least(entries[key][1], _child(path, key), WholeNumber, 1)
    if "strategy" in entries:
        fields["strategy"] = reader.choice(
            entries["strategy"][1], _child(path, "strategy"), ("queue", "reject")
        )
    return _build(reader, RateLimitSpec, fields, False)


_MCP_KEYS: Final = (
    "name",
    "transport",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "timeout",
)
_SERVER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


def _mcp(reader: _Reader, node: Node, path: str) -> tuple[MCPServerSpec, ...] | Any:
    entries = reader.mapping(node, path, ("servers",), "mcp")
    if entries is None:
        return _BAD
    if "servers" not in entries:
        return ()
    list_path = f"{path}.servers"
    servers_node = entries["servers"][1]
    if not isinstance(servers_node, SequenceNode):
        reader.type_error(servers_node, list_path, "a list of servers", "write '- name: ...' items")
        return _BAD
    servers: list[MCPServerSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(servers_node.value):
        item_path = f"{list_path}[{i}]"
        sub = reader.mapping(item, item_path, _MCP_KEYS, "an MCP server")
        if sub is None:
            continue
        fields: dict[str, Any] = {"where": reader.where(item, item_path)}
        bad = False
        if "name" not in sub:
            reader.error(item, item_path, "missing key 'name'", "every MCP server has a name")
            continue
        name_node = sub["name"][1]
        name = reader.leaf(name_node, f"{item_path}.name", Text)
        if name is _BAD:
            continue
        if not _SERVER_NAME.match(name) or "__" in name:
            reader.error(
                name_node,
                f"{item_path}.name",
                f"MCP server name {name!r} is invalid",
                "use letters, digits, '-' and single '_'; its tools are named server__tool",
            )
            bad = True
        if name in seen:
            reader.error(
                name_node,
                f"{item_path}.name",
                f"duplicate MCP server name {name!r} (first on line {seen[name]})",
                "give each server its own name",
            )
            continue
        seen[name] = name_node.start_mark.line + 1
        fields["name"] = name
        for key in ("command", "cwd", "url"):
            if key in sub:
                fields[key] = reader.leaf(sub[key][1], f"{item_path}.{key}", Text)
        if "transport" in sub:
            fields["transport"] = reader.choice(
                sub["transport"][1], f"{item_path}.transport", ("stdio", "http", "sse")
            )
        if "args" in sub:
            fields["args"] = reader.names(sub["args"][1], f"{item_path}.args")
        for key in ("env", "headers"):
            if key in sub:
                fields[key] = reader.text_map(sub[key][1], f"{item_path}.{key}")
        if "timeout" in sub:
            fields["timeout"] = reader.leaf(sub["timeout"][1], f"{item_path}.timeout", Duration)
        transport = fields.get("transport") or ("stdio" if "command" in sub else "http")
        if transport == "stdio" and "command" not in sub:
            reader.error(
                item,
                item_path,
                f"MCP server {name!r} runs over stdio but has no 'command'",
                "add 'command:' and 'args:', or give a 'url:' for an HTTP server",
            )
            bad = True
        elif transport in ("http", "sse") and "url" not in sub:
            reader.error(
                item,
                item_path,
                f"MCP server {name!r} uses {transport} but has no 'url'",
                "add 'url: https://...', or a 'command:' for a stdio server",
            )
            bad = True
        servers.append(_build(reader, MCPServerSpec, fields, bad))
    return tuple(servers)


_PRICE_KEYS: Final = ("input", "output", "cache_write", "cache_read")


def _prices(reader: _Reader, node: Node, path: str) -> dict[str, dict[str, float]] | Any:
    if not isinstance(node, MappingNode):
        reader.type_error(node, path, "a mapping of model names to prices")
        return _BAD
    result: dict[str, dict[str, float]] = {}
    bad = False
    for model, (_, value_node) in reader.entries(node, path).items():
        model_path = _child(path, model)
        sub = reader.mapping(value_node, model_path, _PRICE_KEYS, "a price")
        if sub is None:
            bad = True
            continue
        price: dict[str, float] = {}
        for key in ("input", "output"):
            if key not in sub:
                reader.error(
                    value_node,
                    model_path,
                    f"missing key {key!r}",
                    "give input and output in USD per million tokens",
                )
                bad = True
        for key, (_, price_node) in sub.items():
            value = reader.at_least(price_node, _child(model_path, key), Number, 0)
            if value is _BAD:
                bad = True
            else:
                price[key] = value
        result[model] = price
    return _BAD if bad else result


def _agent(reader: _Reader, name: str, key_node: Node, node: Node, path: str) -> AgentSpec | Any:
    if name in STEP_KEYWORDS:
        reader.error(
            key_node,
            path,
            f"agent name {name!r} is a step keyword",
            "rename the agent: a step '- " + name + ": ...' would be read as a " + name + " step",
        )
    if isinstance(node, ScalarNode) and reader.scalar(node, path) is None:
        return _build(
            reader, AgentSpec, {"name": name, "where": reader.where(key_node, path)}, False
        )
    entries = reader.mapping(node, path, _AGENT_KEYS, f"agent {name!r}")
    if entries is None:
        return _build(
            reader, AgentSpec, {"name": name, "where": reader.where(key_node, path)}, True
        )
    fields: dict[str, Any] = {"name": name, "where": reader.where(key_node, path)}

    def sub(key: str) -> tuple[Node, str] | None:
        return (entries[key][1], _child(path, key)) if key in entries else None

    for key in ("model", "fallback_model", "system", "description"):
        if (found := sub(key)) is not None:
            fields[key] = reader.leaf(*found, Text)
    if (found := sub("temperature")) is not None:
        value = reader.at_least(*found, Number, 0)
        if value is not _BAD and value > 2:
            reader.error(found[0], found[1], f"expected a number from 0 to 2, got {value!r}")
            value = _BAD
        fields["temperature"] = value
    for key in ("max_tokens", "max_iterations"):
        if (found := sub(key)) is not None:
            fields[key] = reader.at_least(*found, WholeNumber, 1)
    if (found := sub("timeout")) is not None:
        fields["timeout"] = reader.leaf(*found, Duration)
    if (found := sub("budget_scope")) is not None:
        fields["budget_scope"] = reader.choice(*found, ("agent", "tree"))
    if (found := sub("budget")) is not None:
        budget_node, budget_path = found
        if isinstance(budget_node, MappingNode):
            budget = reader.mapping(budget_node, budget_path, ("limit", "on_exceed"), "budget")
            if budget is not None:
                if "limit" not in budget:
                    reader.error(
                        budget_node, budget_path, "missing key 'limit'", 'write limit: "$5.00"'
                    )
                else:
                    fields["budget"] = _positive_money(
                        reader, budget["limit"][1], f"{budget_path}.limit"
                    )
                if "on_exceed" in budget:
                    fields["budget_on_exceed"] = reader.choice(
                        budget["on_exceed"][1],
                        f"{budget_path}.on_exceed",
                        ("block", "warn", "allow"),
                    )
        else:
            fields["budget"] = _positive_money(reader, budget_node, budget_path)
    for key in ("tools", "team"):
        if (found := sub(key)) is not None:
            fields[key] = reader.names(*found)
    if (found := sub("supervision")) is not None:
        fields["supervision"] = _supervision(reader, *found)
    if (found := sub("retry")) is not None:
        fields["retry"] = _retry(reader, *found)
    if (found := sub("rate_limit")) is not None:
        fields["rate_limit"] = _rate_limit(reader, *found)
    if (found := sub("circuit_breaker")) is not None:
        fields["circuit_breaker"] = _breaker(reader, *found)
    if (found := sub("skills")) is not None:
        fields["skills"] = _skills(reader, *found)
    if (found := sub("delegation")) is not None:
        fields["delegation"] = _delegation(reader, *found)
    agent = _build(reader, AgentSpec, fields, False)
    for key in ("tools", "team"):
        if key in entries and fields[key] is not _BAD:
            list_node = entries[key][1]
            for i, item in enumerate(list_node.value):
                reader.locate(agent, f"{key}[{i}]", item, f"{path}.{key}[{i}]")
    if "fallback_model" in entries:
        reader.locate(
            agent, "fallback_model", entries["fallback_model"][1], f"{path}.fallback_model"
        )
    return agent


def _backoff(reader: _Reader, node: Node, path: str) -> BackoffSpec | Any:
    kinds = ("exponential", "linear", "constant")
    if isinstance(node, ScalarNode):
        kind = reader.choice(node, path, kinds)
        if kind is _BAD:
            return _BAD
        return BackoffSpec(kind=kind, where=reader.where(node, path))
    keys = ("kind", "initial", "multiplier", "max", "jitter")
    entries = reader.mapping(node, path, keys, "backoff")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    if "kind" in entries:
        fields["kind"] = reader.choice(entries["kind"][1], f"{path}.kind", kinds)
    for key in ("initial", "max"):
        if key in entries:
            fields[key] = reader.leaf(entries[key][1], f"{path}.{key}", Duration)
    if "multiplier" in entries:
        fields["multiplier"] = reader.at_least(
            entries["multiplier"][1], f"{path}.multiplier", Number, 1
        )
    if "jitter" in entries:
        jitter_node = entries["jitter"][1]
        jitter = reader.at_least(jitter_node, f"{path}.jitter", Number, 0)
        if jitter is not _BAD and jitter > 1:
            reader.error(
                jitter_node, f"{path}.jitter", f"expected a number from 0 to 1, got {jitter!r}"
            )
            jitter = _BAD
        fields["jitter"] = jitter
    return _build(reader, BackoffSpec, fields, False)


def _supervision(reader: _Reader, node: Node, path: str) -> SupervisionSpec | Any:
    keys = ("strategy", "max_restarts", "window", "backoff", "restart_state")
    entries = reader.mapping(node, path, keys, "supervision")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    if "strategy" in entries:
        fields["strategy"] = reader.choice(
            entries["strategy"][1], f"{path}.strategy", ("restart", "stop", "escalate")
        )
    if "max_restarts" in entries:
        fields["max_restarts"] = reader.at_least(
            entries["max_restarts"][1], f"{path}.max_restarts", WholeNumber, 0
        )
    if "window" in entries:
        fields["window"] = reader.leaf(entries["window"][1], f"{path}.window", Duration)
    if "backoff" in entries:
        fields["backoff"] = _backoff(reader, entries["backoff"][1], f"{path}.backoff")
    if "restart_state" in entries:
        fields["restart_state"] = reader.choice(
            entries["restart_state"][1], f"{path}.restart_state", ("keep", "fresh")
        )
    return _build(reader, SupervisionSpec, fields, False)


_ERROR_CLASSES: Final = (
    "RateLimit",
    "Overloaded",
    "Timeout",
    "Temporary",
    "InvalidRequest",
    "Authentication",
    "BudgetExceeded",
)


def _retry(reader: _Reader, node: Node, path: str) -> RetrySpec | Any:
    if isinstance(node, ScalarNode):
        attempts = reader.at_least(node, path, WholeNumber, 1)
        if attempts is _BAD:
            return _BAD
        return RetrySpec(max_attempts=attempts, where=reader.where(node, path))
    entries = reader.mapping(node, path, ("max_attempts", "backoff", "retry_on"), "retry")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    if "max_attempts" in entries:
        fields["max_attempts"] = reader.at_least(
            entries["max_attempts"][1], f"{path}.max_attempts", WholeNumber, 1
        )
    if "backoff" in entries:
        fields["backoff"] = _backoff(reader, entries["backoff"][1], f"{path}.backoff")
    if "retry_on" in entries:
        classes_node = entries["retry_on"][1]
        classes = reader.names(classes_node, f"{path}.retry_on")
        if classes is not _BAD:
            for i, name in enumerate(classes):
                if name not in _ERROR_CLASSES:
                    listed = ", ".join(_ERROR_CLASSES)
                    reader.error(
                        classes_node.value[i],
                        f"{path}.retry_on[{i}]",
                        f"unknown error class {name!r}",
                        did_you_mean(name, _ERROR_CLASSES) or f"error classes: {listed}",
                    )
                    classes = _BAD
        fields["retry_on"] = classes
    return _build(reader, RetrySpec, fields, False)


def _breaker(reader: _Reader, node: Node, path: str) -> BreakerSpec | Any:
    keys = ("threshold", "reset_after", "half_open_max")
    entries = reader.mapping(node, path, keys, "circuit_breaker")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    for key in ("threshold", "half_open_max"):
        if key in entries:
            fields[key] = reader.at_least(entries[key][1], f"{path}.{key}", WholeNumber, 1)
    if "reset_after" in entries:
        fields["reset_after"] = reader.leaf(
            entries["reset_after"][1], f"{path}.reset_after", Duration
        )
    return _build(reader, BreakerSpec, fields, False)


def _skills(reader: _Reader, node: Node, path: str) -> SkillsSpec | Any:
    keys = ("directories", "include", "exclude", "max_active")
    entries = reader.mapping(node, path, keys, "skills")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    for key in keys[:3]:
        if key in entries:
            fields[key] = reader.names(entries[key][1], f"{path}.{key}")
    if "max_active" in entries:
        fields["max_active"] = reader.at_least(
            entries["max_active"][1], f"{path}.max_active", WholeNumber, 0
        )
    return _build(reader, SkillsSpec, fields, False)


_ROLES: Final = ("user", "assistant")


def _delegation(reader: _Reader, node: Node, path: str) -> DelegationSpec | Any:
    keys = ("context_window", "include_roles", "blackboard")
    entries = reader.mapping(node, path, keys, "delegation")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    if "context_window" in entries:
        fields["context_window"] = reader.at_least(
            entries["context_window"][1], f"{path}.context_window", WholeNumber, 0
        )
    if "include_roles" in entries:
        roles_node = entries["include_roles"][1]
        roles = reader.names(roles_node, f"{path}.include_roles")
        if roles is not _BAD:
            for i, role in enumerate(roles):
                if role not in _ROLES:
                    reader.error(
                        roles_node.value[i],
                        f"{path}.include_roles[{i}]",
                        f"expected one of 'user', 'assistant', got {role!r}",
                        did_you_mean(role, _ROLES),
                    )
                    roles = _BAD
        fields["include_roles"] = roles
    if "blackboard" in entries:
        fields["blackboard"] = reader.leaf(entries["blackboard"][1], f"{path}.blackboard", Flag)
    return _build(reader, DelegationSpec, fields, False)


# -- tools ----------------------------------------------------------------------------------

_TOOL_KEYS: Final = ("description", "params", "implementation")
_PARAM_KEYS: Final = (
    "name",
    "type",
    "description",
    "required",
    "default",
    "enum",
    "allow_options",
)
_HTTP_KEYS: Final = (
    "type",
    "url",
    "method",
    "headers",
    "query",
    "body",
    "timeout",
    "max_response_bytes",
    "allowed_hosts",
    "follow_redirects",
)
_EXEC_KEYS: Final = (
    "type",
    "command",
    "timeout",
    "shell",
    "cwd",
    "max_output_bytes",
    "env",
    "limits",
)
_LIMITS_KEYS: Final = ("cpu", "memory", "file_size", "open_files", "processes")


def _tool(reader: _Reader, name: str, key_node: Node, node: Node, path: str) -> ToolSpec | Any:
    entries = reader.mapping(node, path, _TOOL_KEYS, f"tool {name!r}")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"name": name, "where": reader.where(key_node, path)}
    if "description" in entries:
        fields["description"] = reader.leaf(entries["description"][1], f"{path}.description", Text)
    if "params" in entries:
        fields["params"] = _params(reader, entries["params"][1], f"{path}.params")
    if "implementation" not in entries:
        reader.error(
            key_node,
            path,
            f"tool {name!r} has no 'implementation'",
            "add 'implementation: {type: http, url: ...}' or '{type: exec, command: ...}'",
        )
        fields["implementation"] = _BAD
    else:
        fields["implementation"] = _implementation(
            reader, entries["implementation"][1], f"{path}.implementation"
        )
    if fields["implementation"] is _BAD:
        # NOTE: keep the tool (with a stand-in) so that agents naming it get no second,
        # misleading "unknown tool" error; it is marked broken and never checked further.
        fields["implementation"] = ExecSpec(command="")
        tool = ToolSpec(**{k: v for k, v in fields.items() if v is not _BAD})
        reader.broken.add(id(tool))
        return tool
    tool = _build(reader, ToolSpec, fields, False)
    implementation_node = entries["implementation"][1]
    reader.locate(tool, "implementation", implementation_node, f"{path}.implementation")
    for key_node, value_node in implementation_node.value:
        if isinstance(key_node, ScalarNode):
            key = f"implementation.{key_node.value}"
            reader.locate(tool, key, value_node, f"{path}.{key}")
    return tool


def _params(reader: _Reader, node: Node, path: str) -> tuple[ParamSpec, ...] | Any:
    if not isinstance(node, SequenceNode):
        reader.type_error(node, path, "a list of parameters", "write '- name: city' items")
        return _BAD
    params: list[ParamSpec] = []
    seen: dict[str, int] = {}
    bad = False
    for i, item in enumerate(node.value):
        item_path = f"{path}[{i}]"
        entries = reader.mapping(item, item_path, _PARAM_KEYS, "a parameter")
        if entries is None:
            bad = True
            continue
        if "name" not in entries:
            reader.error(item, item_path, "missing key 'name'", "every parameter has a name")
            bad = True
            continue
        fields = _typed_value(reader, entries, item_path)
        name_node = entries["name"][1]
        fields["name"] = name = reader.leaf(name_node, f"{item_path}.name", Text)
        if isinstance(name, str):
            if name in seen:
                reader.error(
                    name_node,
                    f"{item_path}.name",
                    f"duplicate parameter name {name!r} (first on line {seen[name]})",
                    "give each parameter its own name",
                )
                bad = True
                continue
            seen[name] = name_node.start_mark.line + 1
        if "allow_options" in entries:
            fields["allow_options"] = reader.leaf(
                entries["allow_options"][1], f"{item_path}.allow_options", Flag
            )
        fields["where"] = reader.where(item, item_path)
        param = _build(reader, ParamSpec, fields, False)
        bad = bad or id(param) in reader.broken
        params.append(param)
    return _BAD if bad else tuple(params)


def _typed_value(
    reader: _Reader, entries: dict[str, tuple[Node, Node]], path: str
) -> dict[str, Any]:
    """The ``type``, ``description``, ``required``, ``default`` and ``enum`` shared by tool
    parameters and workflow inputs, with their consistency checked."""
    fields: dict[str, Any] = {}
    kind = "string"
    if "type" in entries:
        kind = fields["type"] = reader.choice(entries["type"][1], f"{path}.type", _TYPES)
    if "description" in entries:
        fields["description"] = reader.leaf(entries["description"][1], f"{path}.description", Text)
    if "required" in entries:
        fields["required"] = reader.leaf(entries["required"][1], f"{path}.required", Flag)
    enum: Any = None
    if "enum" in entries:
        enum_node = entries["enum"][1]
        if not isinstance(enum_node, SequenceNode) or not enum_node.value:
            reader.type_error(enum_node, f"{path}.enum", "a non-empty list of allowed values")
            enum = _BAD
        else:
            enum = reader.plain(enum_node, f"{path}.enum")
            if enum is not _BAD and kind is not _BAD:
                for i, value in enumerate(enum):
                    if not _has_type(value, kind):
                        reader.error(
                            enum_node.value[i],
                            f"{path}.enum[{i}]",
                            f"enum value {_describe(value)} is not of type {kind!r}",
                            f"make every enum value a {kind}",
                        )
                        enum = _BAD
                        break
            if enum is not _BAD:
                enum = tuple(enum)
        fields["enum"] = enum
    if "default" in entries:
        default_node = entries["default"][1]
        default = reader.plain(default_node, f"{path}.default")
        if default is not _BAD and default is not None:
            if kind is not _BAD and not _has_type(default, kind):
                reader.error(
                    default_node,
                    f"{path}.default",
                    f"the default {_describe(default)} is not of type {kind!r}",
                    f"give a default of type {kind}",
                )
                default = _BAD
            elif isinstance(enum, tuple) and not _in_enum(default, enum):
                listed = ", ".join(_describe(v) for v in enum)
                reader.error(
                    default_node,
                    f"{path}.default",
                    f"the default {_describe(default)} is not one of the enum values",
                    f"allowed: {listed}",
                )
                default = _BAD
            elif fields.get("required") is True:
                reader.error(
                    entries["required"][1],
                    f"{path}.required",
                    "'required: true' with a default",
                    "a default makes the value optional: drop 'required' or the default",
                )
                fields["required"] = _BAD
        fields["default"] = default
    return fields


def _has_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _in_enum(value: Any, allowed: Sequence[Any]) -> bool:
    # NOTE: compare type and value, so that true is not taken for 1.
    return any(type(value) is type(a) and value == a for a in allowed)


def _implementation(reader: _Reader, node: Node, path: str) -> HttpSpec | ExecSpec | Any:
    if not isinstance(node, MappingNode):
        reader.type_error(node, path, "a mapping with 'type: http' or 'type: exec'")
        return _BAD
    raw = reader.entries(node, path)
    if "type" not in raw:
        reader.error(node, path, "missing key 'type'", "write 'type: http' or 'type: exec'")
        return _BAD
    kind = reader.choice(raw["type"][1], f"{path}.type", ("http", "exec"))
    if kind is _BAD:
        return _BAD
    keys = _HTTP_KEYS if kind == "http" else _EXEC_KEYS
    entries = raw
    _check_keys(reader, entries, keys, path, f"an {kind} implementation")
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    if "timeout" in entries:
        fields["timeout"] = reader.leaf(entries["timeout"][1], f"{path}.timeout", Duration)
    if kind == "http":
        if "url" not in entries:
            reader.error(node, path, "missing key 'url'", "an http tool needs 'url: https://...'")
            return _BAD
        fields["url"] = reader.leaf(entries["url"][1], f"{path}.url", Text)
        if "method" in entries:
            fields["method"] = reader.leaf(entries["method"][1], f"{path}.method", Text)
        for key in ("headers", "query"):
            if key in entries:
                fields[key] = reader.text_map(entries[key][1], f"{path}.{key}")
        if "body" in entries:
            fields["body"] = reader.plain(entries["body"][1], f"{path}.body")
        if "max_response_bytes" in entries:
            fields["max_response_bytes"] = reader.at_least(
                entries["max_response_bytes"][1], f"{path}.max_response_bytes", WholeNumber, 1
            )
        if "allowed_hosts" in entries:
            fields["allowed_hosts"] = reader.names(
                entries["allowed_hosts"][1], f"{path}.allowed_hosts"
            )
        if "follow_redirects" in entries:
            fields["follow_redirects"] = reader.leaf(
                entries["follow_redirects"][1], f"{path}.follow_redirects", Flag
            )
        return _build(reader, HttpSpec, fields, False)
    if "command" not in entries:
        reader.error(
            node, path, "missing key 'command'", "an exec tool needs 'command: program {{arg}}'"
        )
        return _BAD
    fields["command"] = reader.leaf(entries["command"][1], f"{path}.command", Text)
    if fields["command"] is _BAD:
        return _BAD
    if "shell" in entries:
        fields["shell"] = reader.leaf(entries["shell"][1], f"{path}.shell", Flag)
    if "cwd" in entries:
        fields["cwd"] = reader.leaf(entries["cwd"][1], f"{path}.cwd", Text)
    if "max_output_bytes" in entries:
        fields["max_output_bytes"] = reader.at_least(
            entries["max_output_bytes"][1], f"{path}.max_output_bytes", WholeNumber, 1
        )
    if "env" in entries:
        fields["env"] = reader.text_map(entries["env"][1], f"{path}.env")
    if "limits" in entries:
        fields["limits"] = _limits(reader, entries["limits"][1], f"{path}.limits")
    return _build(reader, ExecSpec, fields, False)


def _limits(reader: _Reader, node: Node, path: str) -> LimitsSpec | Any:
    """An exec tool's ``limits:``: ``cpu`` (a duration, at least 1s), ``memory`` and
    ``file_size`` (sizes), ``open_files`` and ``processes`` (whole numbers), each at least 1."""
    entries = reader.mapping(node, path, _LIMITS_KEYS, "resource limits")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    kinds = {
        "cpu": Duration,
        "memory": Size,
        "file_size": Size,
        "open_files": WholeNumber,
        "processes": WholeNumber,
    }
    for key, kind in kinds.items():
        if key in entries:
            fields[key] = reader.at_least(entries[key][1], f"{path}.{key}", kind, 1)
    return _build(reader, LimitsSpec, fields, False)


# -- workflows ------------------------------------------------------------------------------

_WORKFLOW_KEYS: Final = ("description", "inputs", "steps", "output")
_INPUT_KEYS: Final = ("type", "description", "required", "default", "enum")
_AGENT_STEP_KEYS: Final = ("send", "save", "timeout", "retry", "continue_on_error", "format")


def _workflow(
    reader: _Reader, name: str, key_node: Node, node: Node, path: str
) -> WorkflowSpec | Any:
    entries = reader.mapping(node, path, _WORKFLOW_KEYS, f"workflow {name!r}")
    if entries is None:
        return _BAD
    fields: dict[str, Any] = {"name": name, "where": reader.where(key_node, path)}
    if "description" in entries:
        fields["description"] = reader.leaf(entries["description"][1], f"{path}.description", Text)
    if "inputs" in entries:
        fields["inputs"] = _inputs(reader, entries["inputs"][1], f"{path}.inputs")
    if "steps" not in entries:
        reader.error(
            key_node,
            path,
            f"workflow {name!r} has no 'steps'",
            "add 'steps:' with at least one step",
        )
    else:
        steps_node = entries["steps"][1]
        fields["steps"] = _steps(reader, steps_node, f"{path}.steps", 0)
        if isinstance(steps_node, SequenceNode) and not steps_node.value:
            reader.error(steps_node, f"{path}.steps", "'steps' is empty", "add at least one step")
    output_node = entries["output"][1] if "output" in entries else None
    if output_node is not None:
        fields["output"] = reader.plain(output_node, f"{path}.output")
    workflow = _build(reader, WorkflowSpec, fields, False)
    if output_node is not None:
        reader.locate(workflow, "output", output_node, f"{path}.output")
    return workflow


def _inputs(reader: _Reader, node: Node, path: str) -> tuple[InputSpec, ...] | Any:
    if not isinstance(node, MappingNode):
        reader.type_error(node, path, "a mapping of input names to {type, ...}")
        return _BAD
    inputs: list[InputSpec] = []
    for name, (key_node, value_node) in reader.entries(node, path).items():
        input_path = _child(path, name)
        if not IDENTIFIER.match(name):
            reader.error(
                key_node,
                input_path,
                f"input name {name!r} is not a valid variable name",
                "use letters, digits and '_', not starting with a digit",
            )
            continue
        fields: dict[str, Any] = {"name": name, "where": reader.where(key_node, input_path)}
        if not (isinstance(value_node, ScalarNode) and reader.scalar(value_node, path) is None):
            entries = reader.mapping(value_node, input_path, _INPUT_KEYS, f"input {name!r}")
            if entries is None:
                continue
            fields.update(_typed_value(reader, entries, input_path))
        inputs.append(_build(reader, InputSpec, fields, False))
    return tuple(inputs)


def _steps(reader: _Reader, node: Node, path: str, depth: int) -> tuple[Step, ...] | Any:
    if not isinstance(node, SequenceNode):
        reader.type_error(node, path, "a list of steps", "write each step as a '- ' item")
        return _BAD
    if depth > _MAX_DEPTH:
        reader.error(node, path, "steps are nested too deeply", "split the workflow into several")
        return _BAD
    steps: list[Step] = []
    for i, item in enumerate(node.value):
        step = _step(reader, item, f"{path}[{i}]", depth)
        if step is not _BAD:
            steps.append(step)
    return tuple(steps)


def _step(reader: _Reader, node: Node, path: str, depth: int) -> Step | Any:
    if not isinstance(node, MappingNode):
        reader.type_error(
            node,
            path,
            "a step (a mapping such as '- writer: \"...\"' or '- if: ...')",
        )
        return _BAD
    entries = reader.entries(node, path)
    keywords = [key for key in entries if key in STEP_KEYWORDS]
    if len(keywords) > 1:
        listed = ", ".join(repr(k) for k in keywords)
        reader.error(
            entries[keywords[1]][0],
            path,
            f"a step can be only one kind, found {listed}",
            "split it into separate '- ' steps",
        )
        return _BAD
    if keywords:
        return _CONTROL[keywords[0]](reader, node, entries, path, depth)
    if len(entries) == 1:
        ((agent, (key_node, value_node)),) = entries.items()
        return _agent_step(reader, agent, key_node, value_node, path)
    if not entries:
        reader.error(node, path, "empty step", "write '- agent: \"message\"' or a control step")
        return _BAD
    keys = list(entries)
    step_keys = [k for k in keys if k in _AGENT_STEP_KEYS]
    hint = (
        f"indent {', '.join(repr(k) for k in step_keys)} under the agent's name"
        if step_keys
        else "write one step per '- ' item"
    )
    reader.error(
        node,
        path,
        "a step has exactly one key (an agent's name or one of "
        + ", ".join(STEP_KEYWORDS)
        + f"), found {', '.join(repr(k) for k in keys)}",
        hint,
    )
    return _BAD


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


def _agent_step(
    reader: _Reader, agent: str, key_node: Node, node: Node, path: str
) -> AgentStep | Any:
    fields: dict[str, Any] = {"agent": agent, "where": reader.where(key_node, path)}
    send_node: Node | None = None
    scalar = reader.scalar(node, path) if isinstance(node, ScalarNode) else _MISSING
    if isinstance(scalar, str):
        send_node = node
        fields["send"] = node.value
    elif scalar is _BAD:
        fields["send"] = ""
    elif isinstance(node, MappingNode):
        entries = reader.mapping(node, path, _AGENT_STEP_KEYS, f"a step of agent {agent!r}")
        assert entries is not None
        if "send" not in entries:
            reader.error(node, path, "missing key 'send'", "give the message: 'send: \"...\"'")
            fields["send"] = ""
        else:
            send_node = entries["send"][1]
            fields["send"] = reader.leaf(send_node, f"{path}.send", Text)
            if fields["send"] is _BAD:
                send_node = None
                fields["send"] = ""
        if "save" in entries:
            fields["save"] = reader.identifier(entries["save"][1], f"{path}.save", "save name")
        if "timeout" in entries:
            fields["timeout"] = reader.leaf(entries["timeout"][1], f"{path}.timeout", Duration)
        if "retry" in entries:
            fields["retry"] = reader.at_least(entries["retry"][1], f"{path}.retry", WholeNumber, 0)
        if "continue_on_error" in entries:
            fields["continue_on_error"] = reader.leaf(
                entries["continue_on_error"][1], f"{path}.continue_on_error", Flag
            )
        if "format" in entries:
            fields["format"] = reader.choice(
                entries["format"][1], f"{path}.format", ("text", "json")
            )
    else:
        reader.type_error(
            key_node if scalar is None else node,
            path,
            "the message to send (text) or a mapping with 'send:'",
            f"write '- {agent}: \"...\"' or '- {agent}: {{send: \"...\", save: name}}'",
            got=scalar,
        )
        fields["send"] = ""
    step = _build(reader, AgentStep, fields, False)
    reader.locate(step, "agent", key_node, path)
    if send_node is not None:
        reader.locate(step, "send", send_node, f"{path}.send" if send_node is not node else path)
    return step


def _text_field(
    reader: _Reader, entries: dict[str, tuple[Node, Node]], key: str, path: str
) -> tuple[Any, Node | None]:
    if key not in entries:
        return _MISSING, None
    node = entries[key][1]
    return reader.leaf(node, path, Text), node


def _if_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> IfStep | Any:
    _check_keys(reader, entries, ("if", "then", "else"), path, "an if step")
    condition, condition_node = _text_field(reader, entries, "if", f"{path}.if")
    fields: dict[str, Any] = {"condition": condition, "where": reader.where(node, path)}
    if "then" not in entries:
        reader.error(node, path, "an if step needs 'then:'", "list the steps to run under 'then:'")
    else:
        fields["then"] = _steps(reader, entries["then"][1], f"{path}.then", depth + 1)
    if "else" in entries:
        fields["otherwise"] = _steps(reader, entries["else"][1], f"{path}.else", depth + 1)
    if condition is _BAD:
        fields["condition"] = ""
    step = _build(reader, IfStep, fields, condition is _BAD)
    if condition is not _BAD and condition_node is not None:
        reader.locate(step, "condition", condition_node, f"{path}.if")
    return step


def _for_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> ForStep | Any:
    _check_keys(reader, entries, ("for", "steps", "save"), path, "a for step")
    header, header_node = _text_field(reader, entries, "for", f"{path}.for")
    fields: dict[str, Any] = {"where": reader.where(node, path), "variable": "", "items": ""}
    bad = header is _BAD
    if header is not _BAD and header_node is not None:
        match = _FOR.match(header)
        if match is None:
            reader.error(
                header_node,
                f"{path}.for",
                f"expected 'NAME in ITEMS', got {header!r}",
                "write 'for: item in items': a variable name, 'in', then the list",
            )
            bad = True
        else:
            fields["variable"] = match.group(1)
            fields["items"] = match.group(2)
    if "steps" not in entries:
        reader.error(node, path, "a for step needs 'steps:'", "list the steps to repeat per item")
    else:
        fields["steps"] = _steps(reader, entries["steps"][1], f"{path}.steps", depth + 1)
    if "save" in entries:
        fields["save"] = reader.identifier(entries["save"][1], f"{path}.save", "save name")
    step = _build(reader, ForStep, fields, bad)
    if not bad and header_node is not None:
        reader.locate(step, "for", header_node, f"{path}.for")
    return step


def _parallel_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> ParallelStep | Any:
    _check_keys(reader, entries, ("parallel", "save"), path, "a parallel step")
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    branches_node = entries["parallel"][1]
    branches_path = f"{path}.parallel"
    if not isinstance(branches_node, SequenceNode):
        reader.type_error(
            branches_node, branches_path, "a list of branches", "write each branch as a '- ' item"
        )
        fields["branches"] = _BAD
    elif not branches_node.value:
        reader.error(branches_node, branches_path, "'parallel' has no branches", "add branches")
        fields["branches"] = _BAD
    else:
        branches: list[tuple[Step, ...]] = []
        for i, branch in enumerate(branches_node.value):
            branch_path = f"{branches_path}[{i}]"
            if isinstance(branch, SequenceNode):
                steps = _steps(reader, branch, branch_path, depth + 1)
                if steps is not _BAD:
                    branches.append(steps)
            else:
                step = _step(reader, branch, branch_path, depth + 1)
                if step is not _BAD:
                    branches.append((step,))
        fields["branches"] = tuple(branches)
    if "save" in entries:
        fields["save"] = reader.identifier(entries["save"][1], f"{path}.save", "save name")
    return _build(reader, ParallelStep, fields, False)


def _try_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> TryStep | Any:
    _check_keys(reader, entries, ("try", "catch"), path, "a try step")
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    fields["steps"] = _steps(reader, entries["try"][1], f"{path}.try", depth + 1)
    if "catch" in entries:
        fields["catch"] = _steps(reader, entries["catch"][1], f"{path}.catch", depth + 1)
    return _build(reader, TryStep, fields, False)


def _repeat_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> RepeatStep | Any:
    _check_keys(reader, entries, ("repeat",), path, "a repeat step")
    body_path = f"{path}.repeat"
    body = reader.mapping(entries["repeat"][1], body_path, ("steps", "until", "max"), "repeat")
    if body is None:
        return _BAD
    fields: dict[str, Any] = {"where": reader.where(node, path)}
    if "steps" not in body:
        reader.error(
            entries["repeat"][1], body_path, "missing key 'steps'", "list the steps to repeat"
        )
    else:
        fields["steps"] = _steps(reader, body["steps"][1], f"{body_path}.steps", depth + 1)
    until, until_node = _text_field(reader, body, "until", f"{body_path}.until")
    if until is not _MISSING:
        fields["until"] = until
    if "max" in body:
        fields["max"] = reader.at_least(body["max"][1], f"{body_path}.max", WholeNumber, 1)
    step = _build(reader, RepeatStep, fields, False)
    if until_node is not None and until is not _BAD:
        reader.locate(step, "until", until_node, f"{body_path}.until")
    return step


def _set_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> SetStep | Any:
    _check_keys(reader, entries, ("set",), path, "a set step")
    values_node = entries["set"][1]
    values_path = f"{path}.set"
    if not isinstance(values_node, MappingNode):
        reader.type_error(
            values_node, values_path, "a mapping of variable names to values", "write 'set: {x: 1}'"
        )
        return _BAD
    if not values_node.value:
        reader.error(values_node, values_path, "'set' is empty", "write 'set: {x: 1}'")
        return _BAD
    values: dict[str, Any] = {}
    nodes: dict[str, Node] = {}
    for name, (key_node, value_node) in reader.entries(values_node, values_path).items():
        if not IDENTIFIER.match(name):
            reader.error(
                key_node,
                _child(values_path, name),
                f"variable name {name!r} is not valid",
                "use letters, digits and '_', not starting with a digit",
            )
            continue
        value = reader.plain(value_node, _child(values_path, name))
        if value is not _BAD:
            values[name] = value
            nodes[name] = value_node
    step = SetStep(values=values, where=reader.where(node, path))
    for name, value_node in nodes.items():
        reader.locate(step, f"values.{name}", value_node, _child(values_path, name))
    return step


def _return_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> ReturnStep | Any:
    _check_keys(reader, entries, ("return",), path, "a return step")
    value_node = entries["return"][1]
    value = reader.plain(value_node, f"{path}.return")
    if value is _BAD:
        return _BAD
    step = ReturnStep(value=value, where=reader.where(node, path))
    reader.locate(step, "value", value_node, f"{path}.return")
    return step


def _workflow_step(
    reader: _Reader, node: Node, entries: dict[str, tuple[Node, Node]], path: str, depth: int
) -> WorkflowStep | Any:
    _check_keys(reader, entries, ("workflow", "with", "save"), path, "a workflow step")
    name, name_node = _text_field(reader, entries, "workflow", f"{path}.workflow")
    if name is _BAD:
        return _BAD
    fields: dict[str, Any] = {"workflow": name, "where": reader.where(node, path)}
    value_nodes: dict[str, Node] = {}
    if "with" in entries:
        with_node = entries["with"][1]
        if not isinstance(with_node, MappingNode):
            reader.type_error(with_node, f"{path}.with", "a mapping of input names to values")
        else:
            inputs: dict[str, Any] = {}
            for key, (_, value_node) in reader.entries(with_node, f"{path}.with").items():
                value = reader.plain(value_node, f"{path}.with.{key}")
                if value is not _BAD:
                    inputs[key] = value
                    value_nodes[key] = value_node
            fields["inputs"] = inputs
    if "save" in entries:
        fields["save"] = reader.identifier(entries["save"][1], f"{path}.save", "save name")
    step = _build(reader, WorkflowStep, fields, False)
    assert name_node is not None
    reader.locate(step, "workflow", name_node, f"{path}.workflow")
    for key, value_node in value_nodes.items():
        reader.locate(step, f"inputs.{key}", value_node, f"{path}.with.{key}")
    return step


_CONTROL: Final[Mapping[str, Callable[..., Any]]] = {
    "if": _if_step,
    "for": _for_step,
    "parallel": _parallel_step,
    "try": _try_step,
    "repeat": _repeat_step,
    "set": _set_step,
    "return": _return_step,
    "workflow": _workflow_step,
}

# -- entry points ---------------------------------------------------------------------------


def read_document(text: str, *, file: str = "<string>") -> Loaded:
    """Parse and structure ``text`` (no cross-reference checks; see :mod:`._validate`).

    Never raises for problems in the text: they are in ``.diagnostics``.
    """
    reader = _Reader(text, file)
    try:
        root = YAML(typ="safe", pure=True).compose(text)
    except Exception as problem:  # ruamel raises many kinds; all mean "not YAML"
        _yaml_error(reader, problem)
        return Loaded(None, reader.diagnostics, reader.locations, reader.broken)
    if root is None:
        reader.error(
            None, "", "the document is empty", "define at least 'agents:'; see docs/dsl.md"
        )
        return Loaded(None, reader.diagnostics, reader.locations, reader.broken)
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
        return Loaded(None, reader.diagnostics, reader.locations, reader.broken)
    try:
        document = _document(reader, root)
    except RecursionError:
        reader.error(root, "", "the document is nested too deeply")
        document = None
    return Loaded(document, reader.diagnostics, reader.locations, reader.broken)


def _yaml_error(reader: _Reader, problem: Exception) -> None:
    mark = getattr(problem, "problem_mark", None) or getattr(problem, "context_mark", None)
    problem_text = getattr(problem, "problem", None)
    context = getattr(problem, "context", None)
    message = f"malformed YAML: {problem_text}" if problem_text else "malformed YAML"
    if isinstance(problem, RecursionError):
        message = "malformed YAML: nested too deeply"
    elif not problem_text:
        first = str(problem).strip().splitlines()
        if first and first[0]:
            message = f"malformed YAML: {first[0]}"
    if "\t" in (problem_text or ""):
        hint: str | None = "indent with spaces; YAML does not allow tabs"
    else:
        hint = context
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else 1
    reader.diagnostics.append(
        Diagnostic(
            severity="error",
            source=Source(reader.file, line, column, ""),
            message=message,
            hint=hint,
        )
    )


def validate_text(text: str, *, file: str = "<string>") -> list[Diagnostic]:
    """Every error and warning in a document, in file order; never raises for problems in
    the document.

    Args:
        text: the YAML text.
        file: the name shown in diagnostics.
    """
    from ._validate import check_document

    loaded = read_document(text, file=file)
    diagnostics = list(loaded.diagnostics)
    if loaded.document is not None:
        diagnostics.extend(check_document(loaded))
    return sort_diagnostics(diagnostics)


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
    from ._validate import check_document

    loaded = read_document(text, file=file)
    diagnostics = list(loaded.diagnostics)
    if loaded.document is not None:
        diagnostics.extend(check_document(loaded))
    errors = [d for d in sort_diagnostics(diagnostics) if d.severity == "error"]
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
