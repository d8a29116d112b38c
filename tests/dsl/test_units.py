"""parse_duration: the DSL's durations (30s, 5m, 1h30m, 250ms, numbers)."""

from __future__ import annotations

import math

import pytest

from vega_trio.dsl import DurationError, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("2d", 172800.0),
        ("1H", 3600.0),
        ("1m30s500ms", 90.5),
        (" 10s ", 10.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (30, 30.0),
        (2.5, 2.5),
        (0, 0.0),
        ("0s", 0.0),
    ],
)
def test_durations(value: str | float, seconds: float) -> None:
    """Each accepted spelling gives the expected number of seconds."""
    assert parse_duration(value) == pytest.approx(seconds)
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("5 mins", "unknown unit 'mins'"),
        ("10x", "unknown unit 'x'"),
        ("1h30", "'30' has no unit"),
        ("-5s", "cannot be negative"),
        ("soon", "cannot read 'soon'"),
        (-1, "zero or more"),
        (math.inf, "finite"),
        (math.nan, "finite"),
        (True, "expected a number of seconds"),
        (None, "expected a number of seconds"),
        ([1], "expected a number of seconds"),
    ],
)
def test_bad_durations(value: object, message: str) -> None:
    """A bad duration raises DurationError saying what is wrong and how to write one."""
    with pytest.raises(DurationError) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "30s" in str(caught.value)
    assert caught.value.value is value
