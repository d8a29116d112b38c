"""The tree of the expression language (:mod:`._expr` parses it): variable references, the
nodes and how each evaluates against a mapping of variables, and the filters of :data:`FILTERS`.

Nothing here calls ``eval``. Render-time failures (an undefined variable) are
:class:`_RenderFailure` until the template or condition that owns the text turns them into a
``TemplateError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Final, NamedTuple

import attrs

from ._errors import TemplateError
from ._values import contains, equal, ordered, to_json, to_text, truthy

__all__ = [
    "FILTERS",
    "FILTER_LIST",
    "FILTER_TABLE",
    "And",
    "Compare",
    "FilterCall",
    "Filtered",
    "Interpolation",
    "Literal",
    "Node",
    "Not",
    "Or",
    "Path",
    "VariableRef",
    "render_parts",
]


# -- references -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class VariableRef:
    """A variable a template or condition reads.

    Attributes:
        name: the root variable (``user`` for ``user.name``).
        path: the dotted path as written, without a leading dot (``user.name``).
        position: 0-based offset of the reference in the template or condition text.
        defaulted: the reference is under a ``default`` filter, so it may be undefined.
    """

    name: str
    path: str
    position: int
    defaulted: bool = False


# -- render-time failures ---------------------------------------------------------------------


class _RenderFailure(Exception):
    """Raised while rendering; the owner of the text turns it into a :class:`TemplateError`
    (it knows the text and the caller's ``where``)."""

    def __init__(self, summary: str, *, position: int, hint: str, variable: str | None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.position = position
        self.hint = hint
        self.variable = variable

    def to_error(self, text: str, where: str | None) -> TemplateError:
        return TemplateError(
            self.summary,
            text=text,
            position=self.position,
            hint=self.hint,
            where=where,
            variable=self.variable,
        )


# -- the tree ---------------------------------------------------------------------------------

Variables = Mapping[str, object]


class Node:
    """A node of the expression tree."""

    __slots__ = ()

    def eval(self, variables: Variables) -> object:
        raise NotImplementedError


class Literal(Node):
    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def eval(self, variables: Variables) -> object:
        return self.value


_MISSING: Final = object()


class Path(Node):
    """A variable with an optional dotted path: ``topic``, ``user.name``, ``items.0``."""

    __slots__ = ("keys", "path", "position", "root")

    def __init__(self, keys: tuple[str, ...], position: int) -> None:
        self.root = keys[0]
        self.keys = keys[1:]
        self.path = ".".join(keys)
        self.position = position

    def eval(self, variables: Variables) -> object:
        value = variables.get(self.root, _MISSING)
        if value is _MISSING:
            raise self._undefined(_close_match(self.root, variables, "variable"), root=True)
        walked = self.root
        for key in self.keys:
            value = self._step(value, key, walked)
            walked = f"{walked}.{key}"
        return value

    def _step(self, value: object, key: str, walked: str) -> object:
        if isinstance(value, Mapping):
            found = value.get(key, _MISSING)
            if found is _MISSING and key.isdecimal():
                # NOTE: JSON objects only have string keys, but a dict built in Python (or
                # YAML `1: x`) may use an int; `scores.1` should find either.
                found = value.get(int(key), _MISSING)
            if found is _MISSING:
                keys = ", ".join(sorted(map(str, value))) or "none"
                hint = _close_match(key, value, "key")
                raise self._undefined(f"{walked!r} has no key {key!r} (its keys: {keys}). {hint}")
            return found
        if isinstance(value, (list, tuple)):
            if not key.isdecimal():
                raise self._undefined(
                    f"{walked!r} is a list; index it with a number, like {walked}.0. "
                )
            index = int(key)
            if index >= len(value):
                raise self._undefined(
                    f"{walked!r} has {len(value)} item{'s' if len(value) != 1 else ''}, "
                    f"so there is no index {index} (indexes start at 0). "
                )
            return value[index]
        kind = "none" if value is None else type(value).__name__
        raise self._undefined(f"{walked!r} is {_article(kind)} {kind}, which has no {key!r}. ")

    def _undefined(self, detail: str, *, root: bool = False) -> _RenderFailure:
        fallback = f'{{{{ {self.path} | default:"..." }}}}'
        if root:
            todo = (
                f"Define it (a workflow input, a save:, a set:, a loop variable or "
                f"--task {self.root}=...) or give a fallback: {fallback}"
            )
        else:
            todo = f"Give a fallback if it may be missing: {fallback}"
        return _RenderFailure(
            f"undefined variable {self.path!r}",
            position=self.position,
            hint=f"{detail}{todo}",
            variable=self.path,
        )


def _article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


def _close_match(name: str, candidates: Iterable[object], what: str) -> str:
    names = [str(candidate) for candidate in candidates]
    matches = difflib.get_close_matches(name, names, n=1, cutoff=0.7)
    return f"Did you mean {what} {matches[0]!r}? " if matches else ""


class Not(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node) -> None:
        self.operand = operand

    def eval(self, variables: Variables) -> object:
        return not truthy(self.operand.eval(variables))


class And(Node):
    __slots__ = ("left", "right")

    def __init__(self, left: Node, right: Node) -> None:
        self.left = left
        self.right = right

    def eval(self, variables: Variables) -> object:
        return truthy(self.left.eval(variables)) and truthy(self.right.eval(variables))


class Or(Node):
    __slots__ = ("left", "right")

    def __init__(self, left: Node, right: Node) -> None:
        self.left = left
        self.right = right

    def eval(self, variables: Variables) -> object:
        return truthy(self.left.eval(variables)) or truthy(self.right.eval(variables))


def _eq(left: object, right: object) -> bool:
    return equal(left, right)


def _ne(left: object, right: object) -> bool:
    return not equal(left, right)


def _in(left: object, right: object) -> bool:
    return contains(right, left)


def _not_in(left: object, right: object) -> bool:
    return not contains(right, left)


def _ordering(op: str) -> Callable[[object, object], bool]:
    return lambda left, right: ordered(op, left, right)


_COMPARISONS: Final[dict[str, Callable[[object, object], bool]]] = {
    "==": _eq,
    "!=": _ne,
    "<": _ordering("<"),
    "<=": _ordering("<="),
    ">": _ordering(">"),
    ">=": _ordering(">="),
    "in": _in,
    "not in": _not_in,
}


class Compare(Node):
    __slots__ = ("compare", "left", "right")

    def __init__(self, op: str, left: Node, right: Node) -> None:
        self.compare = _COMPARISONS[op]
        self.left = left
        self.right = right

    def eval(self, variables: Variables) -> object:
        return self.compare(self.left.eval(variables), self.right.eval(variables))


class Filtered(Node):
    """``base | f1 | f2:arg``. An undefined ``base`` skips the filters before the first
    ``default`` (which supplies the value); without a ``default`` it is an error."""

    __slots__ = ("base", "calls", "default_at")

    def __init__(self, base: Node, calls: tuple[FilterCall, ...]) -> None:
        self.base = base
        self.calls = calls
        self.default_at = next(
            (index for index, call in enumerate(calls) if call.name == "default"), None
        )

    def eval(self, variables: Variables) -> object:
        start = 0
        try:
            value = self.base.eval(variables)
        except _RenderFailure as failure:
            if self.default_at is None or failure.variable is None:
                raise
            value = self.calls[self.default_at].argument
            start = self.default_at + 1
        for call in self.calls[start:]:
            value = call.function(value, call.argument)
        return value


class Interpolation(Node):
    """A quoted string with placeholders inside a condition: ``"{{x}}" == "yes"``."""

    __slots__ = ("parts", "single")

    def __init__(self, parts: tuple[str | Node, ...]) -> None:
        self.parts = parts
        self.single = parts[0] if len(parts) == 1 and isinstance(parts[0], Node) else None

    def eval(self, variables: Variables) -> object:
        if self.single is not None:
            return self.single.eval(variables)
        return render_parts(self.parts, variables)


def render_parts(parts: tuple[str | Node, ...], variables: Variables) -> str:
    """Literal text and placeholders rendered as one string."""
    return "".join(
        part if isinstance(part, str) else to_text(part.eval(variables)) for part in parts
    )


# -- filters ----------------------------------------------------------------------------------

FilterFunction = Callable[[object, object], object]


class FilterCall(NamedTuple):
    name: str
    function: FilterFunction
    argument: object


class _Filter(NamedTuple):
    function: FilterFunction
    # "none": takes no argument; "required"; "optional" (then `default_argument` applies).
    takes: str
    default_argument: object = None
    example: str = ""


def _upper(value: object, _: object) -> object:
    return to_text(value).upper()


def _lower(value: object, _: object) -> object:
    return to_text(value).lower()


def _trim(value: object, _: object) -> object:
    return to_text(value).strip()


def _default(value: object, fallback: object) -> object:
    return fallback if value is None or value == "" else value


def _truncate(value: object, limit: object) -> object:
    text = to_text(value)
    assert isinstance(limit, int)
    return text if len(text) <= limit else text[:limit] + "..."


def _join(value: object, separator: object) -> object:
    if isinstance(value, (list, tuple)):
        return str(separator).join(map(to_text, value))
    return value


def _lines(value: object, _: object) -> object:
    return len(to_text(value).splitlines())


def _words(value: object, _: object) -> object:
    return len(to_text(value).split())


def _length(value: object, _: object) -> object:
    if value is None:
        return 0
    if isinstance(value, (str, list, tuple, dict)):
        return len(value)
    return len(to_text(value))


def _first(value: object, _: object) -> object:
    if isinstance(value, (list, tuple, str)):
        return value[0] if value else None
    if isinstance(value, dict):
        return next(iter(value), None)
    return value


def _last(value: object, _: object) -> object:
    if isinstance(value, (list, tuple, str)):
        return value[-1] if value else None
    if isinstance(value, dict):
        return next(reversed(value), None)
    return value


def _json(value: object, _: object) -> object:
    return to_json(value)


FILTER_TABLE: Final[dict[str, _Filter]] = {
    "upper": _Filter(_upper, "none"),
    "lower": _Filter(_lower, "none"),
    "trim": _Filter(_trim, "none"),
    "default": _Filter(_default, "required", example='default:"n/a"'),
    "truncate": _Filter(_truncate, "required", example="truncate:100"),
    "join": _Filter(_join, "optional", ", ", example='join:", "'),
    "lines": _Filter(_lines, "none"),
    "words": _Filter(_words, "none"),
    "length": _Filter(_length, "none"),
    "first": _Filter(_first, "none"),
    "last": _Filter(_last, "none"),
    "json": _Filter(_json, "none"),
}

FILTERS: Final = frozenset(FILTER_TABLE)
"""The names of the template filters."""

FILTER_LIST: Final = ", ".join(FILTER_TABLE)
