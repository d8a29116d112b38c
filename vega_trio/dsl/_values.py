"""How template and condition values become text, truth values and comparisons.

Values are whatever Python objects the workflow's variables hold: ``str``, ``int``,
``float``, ``bool``, ``None``, lists and dicts (anything else is treated as its ``str``).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["as_number", "contains", "equal", "ordered", "to_json", "to_text", "truthy"]

_FALSE_WORDS: Final = frozenset({"", "0", "false", "no", "none", "null"})
# NOTE: ASCII only: Unicode "whitespace" such as U+001F matches \s but int() and float()
# refuse it, so such a string must compare as text rather than crash a condition.
_NUMERIC: Final = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_INTEGER: Final = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)
_COLLECTIONS: Final = (list, tuple, dict)


def truthy(value: object) -> bool:
    """Whether a value counts as true in a condition (SPEC §8.3).

    False are: ``None``, ``False``, the number zero, empty lists and dicts, and the
    strings ``""``, ``"0"``, ``"false"``, ``"no"``, ``"none"`` and ``"null"`` (in any
    case, surrounding whitespace ignored). Everything else is true, including the strings
    ``"0.0"`` and ``"off"``.
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) > 0
    return True


def to_text(value: object) -> str:
    """The text a value renders as: a string as is, ``None`` as ``""``, a bool as
    ``true``/``false``, a number in Python's notation, a list or dict as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _COLLECTIONS):
        return to_json(value)
    return str(value)


def to_json(value: object) -> str:
    """``value`` as JSON (non-ASCII kept as is; objects JSON does not know as their
    ``str``)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        # NOTE: circular containers and dicts with tuple keys end up here; a template must
        # still render something, and the text of the value is the most honest fallback.
        return json.dumps(str(value), ensure_ascii=False)


def as_number(value: object) -> int | float | None:
    """The value as a number when it is one (not a bool) or a numeric string, else
    ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        try:
            return int(value) if _INTEGER.fullmatch(value) else float(value)
        except ValueError:  # defensive: what the pattern and Python disagree on is text
            return None
    return None


def equal(left: object, right: object) -> bool:
    """``==`` in conditions.

    Numbers (and numeric strings) compare numerically; ``none`` equals only ``none``; a
    bool equals the strings ``true``/``false`` in any case; lists compare item by item
    with these rules; dicts compare by value; anything else compares as text.
    """
    left_number, right_number = as_number(left), as_number(right)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return to_text(left).strip().lower() == to_text(right).strip().lower()
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(map(equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left == right
    return to_text(left) == to_text(right)


_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def ordered(op: str, left: object, right: object) -> bool:
    """``<``, ``<=``, ``>``, ``>=``: numerically when both sides are numbers or numeric
    strings, otherwise by the sides' text."""
    compare = _ORDERINGS[op]
    left_number, right_number = as_number(left), as_number(right)
    if left_number is not None and right_number is not None:
        return compare(left_number, right_number)
    return compare(to_text(left), to_text(right))


def contains(container: object, item: object) -> bool:
    """``item in container``: membership in a list (with :func:`equal`), a key of a dict,
    otherwise a substring of the container's text."""
    if isinstance(container, (list, tuple, set, frozenset)):
        return any(equal(item, element) for element in container)
    if isinstance(container, Mapping):
        return any(equal(item, key) for key in container)
    return to_text(item) in to_text(container)
