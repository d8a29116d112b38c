"""The JSON form of events: the generated per-class encoders give exactly what the
general rule gives (every non-plain value through cattrs, the event's own fields
through the full redaction), for every event class, on arbitrary values."""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs
import hypothesis.strategies as st
from hypothesis import given, settings

import vega_trio.events as events_module
from vega_trio._exit import ProcessStatus
from vega_trio._redact import register_secret
from vega_trio.agent._events import SendMetrics
from vega_trio.runtime import Event
from vega_trio.runtime._events import _reference_to_dict

SECRET = "registered-s3cret-for-json"


class _Level(enum.IntEnum):
    LOW = 1


# Text with what the redaction looks for (a registered secret, URL userinfo, a bearer
# token, a key pair, a provider-shaped key) and what it must leave alone.
_TEXT = st.lists(
    st.sampled_from(
        [
            *"ab Z9:=-_/@\n\"'",
            SECRET,
            "https://u:pw12345@h",
            "Bearer abcdefghij",
            "api_key=abcdefgh",
            "sk-ant-abcdefghijklmnop",
            "é",
        ]
    ),
    max_size=12,
).map("".join)
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
    st.sampled_from([ProcessStatus.RUNNING, ProcessStatus.FAILED, _Level.LOW]),
)
_KEYS = st.sampled_from(["path", "api_key", "token", "input_tokens", "Authorization", "n"])
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=3),
        st.builds(SendMetrics, input_tokens=st.integers(0, 9), cost_usd=st.floats(0, 1)),
    ),
    max_leaves=6,
)


@st.composite
def any_event(draw: st.DrawFn) -> Event:
    """An event of any class, its fields holding any JSON-like value (whatever their
    declared type: attrs does not check, and the encoder must not trust it)."""
    cls = draw(st.sampled_from(sorted(events_module.event_classes().values(), key=str)))
    fields: dict[str, Any] = {}
    for f in attrs.fields(cls):
        if not f.init:
            continue
        if f.converter is not None:  # a tuple of names, a mapping of inputs
            fields[f.name] = draw(st.one_of(st.lists(_TEXT, max_size=3), st.just({})))
            try:
                f.converter(fields[f.name])
            except Exception:
                fields[f.name] = ()
        else:
            fields[f.name] = draw(_VALUE)
    try:
        return cls(**fields)
    except Exception:
        return cls(seq=draw(st.integers(0, 10)))


@settings(max_examples=500, deadline=None)
@given(any_event())
def test_generated_encoder_equals_the_general_rule(event: Event) -> None:
    """Every event class's fast JSON form (dict and text) equals the cattrs-and-full-
    redaction form, key order included, with secrets in any field masked alike."""
    register_secret(SECRET)  # forgotten after the test (tests/conftest.py)
    expected = _reference_to_dict(event)
    got = event.to_dict()
    assert got == expected
    assert list(got) == list(expected)
    text = json.dumps(expected, ensure_ascii=False, separators=(",", ":"), default=str)
    assert event.to_json() == text


def test_every_event_class_has_one_encoder() -> None:
    """Each class's encoder is generated once and reused (not rebuilt per event)."""
    from vega_trio.runtime import _events

    for cls in events_module.event_classes().values():
        cls().to_dict()
        first = _events._ENCODERS[cls]
        cls().to_dict()
        assert _events._ENCODERS[cls] is first
