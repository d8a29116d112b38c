"""The one redaction layer (SPEC §11): what it masks and what it leaves alone."""

from __future__ import annotations

import logging

import pytest

from vega_trio._redact import MASK, RedactingFilter, redact, redact_data, register_secret


def test_env_secret_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The value of a secret-named environment variable is masked wherever it appears."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "abcdef-not-a-real-key-123")
    assert (
        redact("server said: bad key abcdef-not-a-real-key-123!") == f"server said: bad key {MASK}!"
    )


def test_non_secret_env_values_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values of ordinary variables and short values are not masked."""
    monkeypatch.setenv("HOME_DIR_NAME", "workspace")
    monkeypatch.setenv("SOME_TOKEN", "1")
    assert redact("workspace 1") == "workspace 1"


def test_url_userinfo_is_masked() -> None:
    """A password in a URL never survives."""
    assert redact("connect to https://bob:hunter2@api.example:8443/v1 failed") == (
        f"connect to https://{MASK}@api.example:8443/v1 failed"
    )


def test_credential_shapes_are_masked() -> None:
    """Bearer tokens, key=value pairs and provider-shaped keys are masked."""
    text = (
        "Authorization: Bearer abc.def.ghi x-api-key: qwertyuiop api_key=zxcvbnm12 "
        "sk-ant-api03-AAAAAAAAAAAAAAAA"
    )
    out = redact(text)
    for secret in ("abc.def.ghi", "qwertyuiop", "zxcvbnm12", "sk-ant-api03-AAAAAAAAAAAAAAAA"):
        assert secret not in out


def test_registered_secret_and_data() -> None:
    """Registered values are masked inside nested JSON-like data; secret-named keys whole."""
    register_secret("registered-secret-value")
    data = {"a": ["x registered-secret-value y"], "token": "short", "input_tokens": 12}
    assert redact_data(data) == {"a": [f"x {MASK} y"], "token": MASK, "input_tokens": 12}


def test_logging_filter_redacts_message_and_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record's formatted message and string extras are redacted by the handler filter."""
    monkeypatch.setenv("MY_SECRET", "very-secret-thing")
    record = logging.makeLogRecord(
        {"msg": "key %s", "args": ("very-secret-thing",), "url": "http://u:p4ssword@h/"}
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == f"key {MASK}"
    assert record.url == f"http://{MASK}@h/"
