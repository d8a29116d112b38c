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
    assert compact_encoder(default=str)(value) == json.dumps(value, default=str, **options)
    try:
        expected = json.dumps(value, allow_nan=False, **options)
    except ValueError:
        with pytest.raises(ValueError):
            compact_encoder(allow_nan=False)(value)
    else:
        assert compact_encoder(allow_nan=False)(value) == expected


def test_compact_encoder_refuses_what_json_cannot_hold() -> None:
    """Without a default, an object JSON cannot hold is a TypeError naming its type;
    with one, the default's value is written."""
    with pytest.raises(TypeError, match="type object is not JSON serializable"):
        compact_encoder()({"x": object()})
    assert compact_encoder(default=str)({"x": {1, 2}}) in ('{"x":"{1, 2}"}', '{"x":"{2, 1}"}')
    assert compact_encoder()(math.pi) == json.dumps(math.pi)
