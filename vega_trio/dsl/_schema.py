"""How the model of :mod:`._model` is written in YAML: the metadata the loader's one
generic walker reads from each attrs field (:class:`Key`) and class (:class:`Section`).

A field without metadata is read from the YAML key of its own name, as the kind of value
its type says: ``str`` text, ``int`` a whole number, ``float`` a number, ``bool``
true/false, a ``Literal`` one of its values, ``tuple[str, ...]`` a list of names,
``Mapping[str, str]`` a mapping of names to text, ``Any`` plain data, an attrs class a
nested section, a tuple of them a mapping of name → section (``agents:``) when their
``name`` is the key they are written under (``key=None``), else a list of ``- name: ...``
items, ``tuple[Step, ...]`` a list of steps, ``Mapping[str, Any]`` a mapping of names to
plain data. :func:`key` says what differs: another YAML key, a unit, a range, a
check, a required key. So adding a key to the DSL is adding a field to the model.

The rules here are data (and small check functions); the loader does the reading and the
reporting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import attrs

__all__ = [
    "STEP_KEYWORDS",
    "Key",
    "Section",
    "above",
    "identifier",
    "key",
    "one_of",
]

STEP_KEYWORDS: Final = ("if", "for", "parallel", "try", "repeat", "set", "return", "workflow")
"""The keys that make a step a control step; any other single key names an agent."""

Unit = Literal["duration", "money", "size"]
"""Leaf values written with a unit (``30s``, ``"$5.00"``, ``512MiB``) and kept as a number."""

Check = Callable[[Any], Any]
"""Validates a read value and returns the value to keep; raises :class:`_Invalid`."""


class _Invalid(Exception):
    """A value was read but breaks a rule: ``message`` and ``hint`` are the diagnostic's."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@attrs.frozen(kw_only=True)
class Key:
    """How one field is written.

    Attributes:
        key: the YAML key; ``a.b`` is key ``b`` of the mapping under ``a`` (a group: several
            fields may share ``a``); ``None``: not read from a key (a name taken from the key
            of a named section).
        short: in a group, any value written instead of the group's mapping is this key's
            (``budget: "$5"`` is ``budget: {limit: "$5"}``); cf. :attr:`Section.short`.
        unit: a leaf written with a unit.
        min: the smallest value (``expected a number of 1 or more``).
        max: the largest (``expected a number from 0 to 2``).
        check: a rule the value must pass after it was read; for a list of names it is
            applied to each item, for a mapping to each name.
        required: the key must be written; this is the hint when it is not.
        missing: that diagnostic's message, when not ``missing key '<key>'`` (``{name}`` is
            the name of the section).
        drop: when the key is missing, the section is dropped, the rest of it unread.
        fatal: when the value is wrong, the section is dropped and the rest of it unread.
        locate: remember where the value was written (templates, names resolved later);
            for a list of names or a mapping, where each item was.
        strict: in a collection or mapping, one wrong item makes the whole of it wrong.
        null: a collection written with no value is empty.
        empty: the message and hint when the value is written empty (``[]``, ``{}``); the
            value is then wrong.
        expected: what the diagnostic says was expected when a collection or mapping has the
            wrong shape.
        hint: the hint of that diagnostic.
        read: the name of a loader hook that reads this value instead of the walker (a kind
            of value of its own).
    """

    key: str | None = ""
    short: bool = False
    unit: Unit | None = None
    min: float | None = None
    max: float | None = None
    check: Check | None = None
    required: str | None = None
    missing: str | None = None
    drop: bool = False
    fatal: bool = False
    locate: bool = False
    strict: bool = False
    null: bool = False
    empty: tuple[str, str] | None = None
    expected: str | None = None
    hint: str | None = None
    read: str | None = None


@attrs.frozen(kw_only=True)
class Section:
    """How a class is written as a YAML mapping.

    Attributes:
        what: how diagnostics name it (``unknown key 'x' in a for step``); ``{name}`` is its
            name; default: the key it is written under.
        null: written with no value, it takes every default.
        short: the field that a scalar written instead of the mapping stands for
            (``backoff: linear``).
        tag: the ``type:`` that selects this class among a union's (``type: http``).
        keep: in a mapping of name → section, kept (with defaults) when its value is not a
            mapping, so that what refers to it gets no second error.
        unique: in a list of sections: the noun of the duplicate-name diagnostic;
            items without a good name are dropped.
        check: the name of a loader hook run on the fields read (checks across fields).
    """

    what: str | None = None
    null: bool = False
    short: str | None = None
    tag: str | None = None
    keep: bool = False
    unique: str | None = None
    check: str | None = None


NO_KEY: Final = Key()
NO_SECTION: Final = Section()


def key(**options: Any) -> dict[str, Key]:
    """The ``metadata=`` of an ``attrs.field`` written as ``options`` say (see :class:`Key`)."""
    return {"yaml": Key(**options)}


def above(limit: float, message: str, hint: str) -> Check:
    """A check that the value is more than ``limit`` (``{value!r}`` in the message)."""

    def check(value: Any) -> Any:
        if not value > limit:
            raise _Invalid(message.format(value=value), hint)
        return value

    return check


def one_of(
    choices: Sequence[str],
    message: str | None = None,
    fallback: str | None = None,
    *,
    lower: bool = False,
) -> Check:
    """A check that a text is one of ``choices`` (compared in lower case if ``lower``);
    the hint is the closest choice, else ``fallback``."""

    def check(value: Any) -> Any:
        # NOTE: imported here: the diagnostics module imports the model, which imports this.
        from ._diagnostics import did_you_mean

        if lower:
            value = value.lower()
        if value not in choices:
            hint = did_you_mean(value, choices) or fallback
            if message is None:
                listed = ", ".join(repr(c) for c in choices)
                message_ = f"expected one of {listed}, got {value!r}"
            else:
                message_ = message.format(value=value)
            raise _Invalid(message_, hint)
        return value

    return check


_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def identifier(message: str) -> Check:
    """A check that a text is a variable name (``save: result``); ``{value!r}`` in the
    message."""

    def check(value: Any) -> Any:
        if not _IDENTIFIER.match(value):
            raise _Invalid(
                message.format(value=value),
                "use letters, digits and '_', not starting with a digit",
            )
        return value

    return check
