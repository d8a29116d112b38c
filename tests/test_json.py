"""The compact JSON encoders made once give exactly json.dumps's text."""

from __future__ import annotations

import json
import math
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from vega_trio._json import compact_encoder

_JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(), st.integers(), st.booleans()), inner, max_size=4),
    ),
    max_leaves=12,
)


@given(_JSONISH)
def test_compact_encoder_equals_json_dumps(value: Any) -> None:
    """Any JSON-like value (non-ASCII, NaN, tuples, non-str keys) encodes as json.dumps
    encodes it, and with allow_nan=False is refused exactly where json.dumps refuses it."""
    options: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":")}
    expected_text = json.dumps(value, default=str, **options)
    assert compact_encoder(default=str)(value) == expected_text
    assert compact_encoder(default=str, check_circular=False)(value) == expected_text
    try:
        expected = json.dumps(value, allow_nan=False, **options)
    except ValueError:
        with pytest.raises(ValueError):
            compact_encoder(allow_nan=False)(value)
        with pytest.raises(ValueError):
            compact_encoder(allow_nan=False, check_circular=False)(value)
    else:
        assert compact_encoder(allow_nan=False)(value) == expected


def test_compact_encoder_refuses_what_json_cannot_hold() -> None:
    """Without a default, an object JSON cannot hold is a TypeError naming its type;
    with one, the default's value is written."""
    with pytest.raises(TypeError, match="type object is not JSON serializable"):
        compact_encoder()({"x": object()})
    assert compact_encoder(default=str)({"x": {1, 2}}) in ('{"x":"{1, 2}"}', '{"x":"{2, 1}"}')
    assert compact_encoder()(math.pi) == json.dumps(math.pi)


def test_a_value_that_contains_itself_is_refused_as_json_dumps_refuses_it() -> None:
    """The store's encoder (circular check on, the default) says ValueError for a cycle,
    as json.dumps does; the event form's (off) still fails rather than looping."""
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        compact_encoder(allow_nan=False)({"x": cycle})
    with pytest.raises(RecursionError):
        compact_encoder(check_circular=False)({"x": cycle})
