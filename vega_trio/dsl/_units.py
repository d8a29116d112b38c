"""Units the DSL reads from YAML: durations (``30s``, ``5m``, ``1h30m``, ``250ms``) and sizes
(``512MiB``, ``64MB``, ``1GiB``)."""

from __future__ import annotations

import math
import re
from typing import Final

from ._errors import DurationError

__all__ = ["parse_duration", "parse_size"]

_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# NOTE: "ms" is tried before "m" so that "250ms" is not read as 250 minutes and an "s".
_PART: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)(?![a-z])", re.IGNORECASE)
_PLAIN_NUMBER: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*")
_EXAMPLES: Final = "like 30s, 5m, 1h30m or 250ms (units: ms, s, m, h, d)"


def parse_duration(value: str | float) -> float:
    """Read a duration and return it in seconds.

    A number (``30``, ``2.5``) is seconds; so is a string of just a number (``"30"``). A
    string is otherwise one or more number-and-unit parts, optionally separated by spaces:
    ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1h 30m"``, ``"250ms"``, ``"1.5s"``, ``"2d"``. Units
    are ``ms``, ``s``, ``m``, ``h`` and ``d`` (case does not matter).

    Args:
        value: the duration as written in the YAML document.

    Returns:
        The duration in seconds (zero or more).

    Raises:
        DurationError: the value is negative, not finite, a bool, or not written as above.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DurationError(
            f"invalid duration {value!r}: expected a number of seconds or a text {_EXAMPLES}",
            value=value,
        )
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise DurationError(
                f"invalid duration {value!r}: a duration is a finite number of seconds, "
                f"zero or more; write it {_EXAMPLES}",
                value=value,
            )
        return float(value)
    if _PLAIN_NUMBER.fullmatch(value):
        return float(value)
    total = 0.0
    position = 0
    text = value.rstrip()
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise DurationError(_bad_text(value, position), value=value)
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        position = match.end()
    if position == 0:
        raise DurationError(
            f"invalid duration {value!r}: it is empty; write it {_EXAMPLES}", value=value
        )
    return total


def _bad_text(value: str, position: int) -> str:
    rest = value[position:].strip()
    if rest.startswith("-"):
        return f"invalid duration {value!r}: a duration cannot be negative; write it {_EXAMPLES}"
    number = re.match(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)", rest)
    if number and number.group(2):
        return f"invalid duration {value!r}: unknown unit {number.group(2)!r}; write it {_EXAMPLES}"
    if number:
        return f"invalid duration {value!r}: {rest!r} has no unit; write it {_EXAMPLES}"
    return f"invalid duration {value!r}: cannot read {rest!r}; write it {_EXAMPLES}"


_SIZE_UNITS: Final = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(value: str | int) -> int:
    """Read a size and return it in bytes (rounded down to a whole byte).

    A whole number is bytes; a string is a number and a unit: ``B``, ``KB``/``MB``/``GB``/
    ``TB`` (powers of 1000) or ``KiB``/``MiB``/``GiB``/``TiB`` (powers of 1024); case does
    not matter: ``"512MiB"``, ``"64 MB"``, ``"1.5GiB"``.

    Raises:
        ValueError: a bool, a negative or fractional number, or text not written as above.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"invalid size {value!r}: write a number of bytes or e.g. 512MiB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: a size cannot be negative")
        return value
    match = _SIZE.fullmatch(value)
    unit = (match.group(2) or "b").lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(
            f"invalid size {value!r}: write a number of bytes or a number with a unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 512MiB"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])
