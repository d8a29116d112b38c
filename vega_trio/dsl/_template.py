"""Templates (``"Research {{ topic | trim }}"``) and conditions (``status == 'done'``).

Both are parsed once, into a tree (see :mod:`._expr`), and evaluated many times against a
mapping of variables. Neither ever calls ``eval``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final, final

from ._expr import Parser, parse_parts
from ._expr_tree import Node, VariableRef, _RenderFailure, render_parts
from ._values import truthy

__all__ = ["Condition", "Template"]

_CACHE_SIZE: Final = 1024


@final
class Template:
    """Literal text with ``{{ expr }}`` placeholders, parsed once and rendered many times.

    ``expr`` is a variable with an optional dotted path (``topic``, ``user.name``,
    ``items.0``, Vega's ``.topic``), a literal (``"text"``, ``42``), and filters chained with
    ``|`` (``{{ name | trim | upper }}``). The full language, conditions included, is in
    ``docs/dsl.md``::

        template = Template.parse("Research {{ topic | upper }}")
        template.render({"topic": "trio"})  # 'Research TRIO'

    ``Template(text)`` and ``Template.parse(text)`` are the same, except that ``parse``
    reuses the template of a text it has parsed before.

    Raises:
        TemplateError: the text is malformed (an unclosed ``{{``, an unknown filter, ...).
    """

    __slots__ = ("_filters", "_parts", "_references", "_single", "_static", "_text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"a template is a str, not {type(text).__name__}")
        references: list[VariableRef] = []
        filters: set[str] = set()
        parts = parse_parts(text, source=text, base=0, refs=references, filters=filters)
        self._text = text
        self._parts = tuple(parts)
        self._references = tuple(references)
        self._filters = frozenset(filters)
        self._static = text if not any(isinstance(part, Node) for part in parts) else None
        single = parts[0] if len(parts) == 1 else None
        self._single = single if isinstance(single, Node) else None

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text`` into a template (cached: parsing the same text again is free).

        Raises:
            TemplateError: the text is malformed.
        """
        if not isinstance(text, str):
            raise TypeError(f"a template is a str, not {type(text).__name__}")
        return _parse_template(text)

    @property
    def text(self) -> str:
        """The template text as written."""
        return self._text

    @property
    def is_static(self) -> bool:
        """The template has no placeholders: it renders to its text."""
        return self._static is not None

    @property
    def variables(self) -> frozenset[str]:
        """The root names of the variables the template reads (``user`` for
        ``{{ user.name }}``)."""
        return frozenset(reference.name for reference in self._references)

    @property
    def references(self) -> tuple[VariableRef, ...]:
        """Every variable reference, in order, with its path and position."""
        return self._references

    @property
    def filters(self) -> frozenset[str]:
        """The names of the filters the template uses."""
        return self._filters

    def render(self, variables: Mapping[str, object], *, where: str | None = None) -> str:
        """The template's text with every placeholder replaced by its value as text.

        Strings are inserted as they are, numbers and bools as text (``true``/``false``),
        ``None`` as nothing, lists and dicts as JSON.

        Args:
            variables: the values of the variables, by name.
            where: a label for error messages, such as the step
                (``"workflows.report.steps[1]"``).

        Raises:
            TemplateError: a variable (or a key or index of its path) is undefined and no
                ``default`` filter handles it. ``.variable`` holds its path.
        """
        if self._static is not None:
            return self._static
        try:
            return render_parts(self._parts, variables)
        except _RenderFailure as failure:
            raise failure.to_error(self._text, where) from None

    def render_value(self, variables: Mapping[str, object], *, where: str | None = None) -> object:
        """Like :meth:`render`, but a template that is exactly one placeholder
        (``"{{ items }}"``) gives the value itself, not its text: a list stays a list.

        Raises:
            TemplateError: as :meth:`render`.
        """
        if self._single is None:
            return self.render(variables, where=where)
        try:
            return self._single.eval(variables)
        except _RenderFailure as failure:
            raise failure.to_error(self._text, where) from None

    def __repr__(self) -> str:
        return f"Template({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other._text == self._text

    def __hash__(self) -> int:
        return hash((Template, self._text))


@final
class Condition:
    """A condition such as ``status == 'done' and not failed``, parsed once.

    Operators: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``, ``and``,
    ``or``, ``not`` and parentheses; operands are variables (with paths and filters),
    quoted strings, numbers, ``true``/``false``, ``none``/``null`` and templates
    (``{{x}} == 'yes'``, ``"{{x}}"``). A condition that is just a value (``approved``,
    ``{{approved}}``) is that value's truthiness (see :func:`truthy`)::

        Condition.parse("score >= 7 and 'ok' in tags").evaluate({"score": "8", "tags": ["ok"]})

    Raises:
        TemplateError: the text is malformed.
    """

    __slots__ = ("_filters", "_node", "_references", "_text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"a condition is a str, not {type(text).__name__}")
        references: list[VariableRef] = []
        filters: set[str] = set()
        parser = Parser(
            text,
            0,
            source=text,
            base=0,
            refs=references,
            filters=filters,
            in_placeholder=False,
        )
        self._node = parser.condition()
        self._text = text
        self._references = tuple(references)
        self._filters = frozenset(filters)

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Parse ``text`` into a condition (cached: parsing the same text again is free).

        Raises:
            TemplateError: the text is malformed.
        """
        if not isinstance(text, str):
            raise TypeError(f"a condition is a str, not {type(text).__name__}")
        return _parse_condition(text)

    @property
    def text(self) -> str:
        """The condition as written."""
        return self._text

    @property
    def variables(self) -> frozenset[str]:
        """The root names of the variables the condition reads."""
        return frozenset(reference.name for reference in self._references)

    @property
    def references(self) -> tuple[VariableRef, ...]:
        """Every variable reference, in order, with its path and position."""
        return self._references

    @property
    def filters(self) -> frozenset[str]:
        """The names of the filters the condition uses."""
        return self._filters

    def evaluate(self, variables: Mapping[str, object], *, where: str | None = None) -> bool:
        """Whether the condition holds for these variables.

        Args:
            variables: the values of the variables, by name.
            where: a label for error messages, such as the step.

        Raises:
            TemplateError: a variable the condition needs is undefined (``and``/``or``
                stop early, so ``x and x.y`` needs ``x.y`` only when ``x`` is true).
        """
        try:
            return truthy(self._node.eval(variables))
        except _RenderFailure as failure:
            raise failure.to_error(self._text, where) from None

    def __repr__(self) -> str:
        return f"Condition({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other._text == self._text

    def __hash__(self) -> int:
        return hash((Condition, self._text))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_template(text: str) -> Template:
    return Template(text)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_condition(text: str) -> Condition:
    return Condition(text)
