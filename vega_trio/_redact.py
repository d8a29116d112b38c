"""One redaction layer for everything that leaves the library (SPEC §11).

Secrets — API keys, tokens, passwords in URLs, and values a server echoes back — must never
appear in an error message, a log record, an event payload, ``--output json`` or (later) an API
response. Every one of those paths calls :func:`redact` (or :func:`redact_data` for JSON-like
values) at the point where text leaves; nothing else decides what a secret is.

What counts as a secret:

* the value of every environment variable whose *name* looks secret (contains ``KEY``,
  ``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, ``CREDENTIAL``, ``AUTH`` or ``COOKIE``) and
  is at least :data:`MIN_SECRET_LENGTH` characters long — read fresh, so a key set after import
  is covered too;
* every value handed to :func:`register_secret` (settings keys, expanded ``${VAR}`` headers of
  http tools, a server's ``--token``, an LLM backend's ``api_key``) and every URL password
  handed to :func:`register_url_secret` (an LLM backend's base URL);
* the userinfo of any URL (``https://user:pass@host`` → ``https://***@host``);
* the credential after ``Bearer`` / ``Basic`` and in ``x-api-key: …`` / ``api_key=…`` pairs;
* strings shaped like provider keys (``sk-…``, ``sk-ant-…``).

Each is replaced by ``***``. Redaction is a boundary operation, never on the hot path: it is
applied when an error is built, a record is formatted or a payload is serialised.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "is_secret_name",
    "redact",
    "redact_data",
    "redact_exception",
    "register_secret",
    "register_url_secret",
]

MASK = "***"
"""What a secret is replaced with."""

MIN_SECRET_LENGTH = 8
"""Shorter values are not treated as secrets: masking ``"1"`` or ``"true"`` everywhere would
destroy the text and protect nothing."""

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE", re.I)

# Patterns whose *credential part* is masked; each keeps its first group (the label).
_PATTERNS: tuple[re.Pattern[str], ...] = (
    # URL userinfo: scheme://user:pass@host, scheme://token@host. Matched from the "://"
    # (the scheme needs no masking): a pattern that started at the scheme rescanned a long
    # run of letters from every position — quadratic, seconds for one 20 kB word.
    re.compile(r"(://)[^/\s@'\"<>]+(?=@)"),
    # Authorization: Bearer xyz / Basic xyz
    re.compile(r"(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]{6,}", re.I),
    # header or parameter pairs: x-api-key: xyz, api_key=xyz, "token": "xyz"
    re.compile(
        r"""((?:x-api-key|api[_-]?key|access[_-]?token|auth[_-]?token|password|passwd|secret)"""
        r"""["']?\s*[:=]\s*["']?)[^\s"'&,;}]{6,}""",
        re.I,
    ),
    # provider-shaped keys (Anthropic, OpenAI, ...)
    re.compile(r"()\bsk-(?:ant-)?[A-Za-z0-9_\-]{12,}"),
)

# Every pattern above needs one of these in the text (a URL's "://", a pair's ":" or "=",
# the whitespace after Bearer/Basic, a key's "sk-"): most strings of an event (a model,
# a status, an id) have none, and then one search replaces the four substitutions.
_MAYBE_CREDENTIAL = re.compile(r"[:=\s]|sk-")
# Any of the patterns, in one search (case-insensitive: it may find more than the
# patterns do, never less): a text that has a ":", "=" or a space but no credential (an
# error message, a tool's result) costs one search instead of four substitutions.
_ANY_CREDENTIAL = re.compile("|".join(f"(?:{p.pattern})" for p in _PATTERNS), re.I)

_registered: set[str] = set()
_lock = threading.Lock()
_registered_version = 0
"""Bumped by every registration, so the cache below knows when to rebuild."""
_cache_key: tuple[tuple[str, ...], int] | None = None
_cache_values: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Treat ``value`` as a secret from now on (ignored when shorter than
    :data:`MIN_SECRET_LENGTH` or empty). Safe to call from any thread, any number of times."""
    global _registered_version
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            if value not in _registered:
                _registered.add(value)
                _registered_version += 1


def register_url_secret(url: str | None) -> None:
    """Treat the password of ``url``'s userinfo (``https://user:PASSWORD@host``) as a
    secret, so it is masked even where a server echoes it without the URL around it."""
    if url:
        try:
            password = urlsplit(url).password
        except ValueError:  # not a URL (a bad port): nothing to register
            return
        register_secret(password)


_env_seen: dict[Any, Any] | None = None
_env_secrets: tuple[str, ...] = ()


def _secret_env_values() -> tuple[str, ...]:
    """The values of secret-named environment variables, re-read only when the
    environment changed.

    NOTE: every event's JSON form is redacted, so this runs thousands of times a
    second; reading ``os.environ`` decodes every entry, while comparing its raw
    mapping with a copy of it is one C-level pass that allocates nothing.
    """
    global _env_seen, _env_secrets
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):  # pragma: no cover - CPython's os.environ has _data
        data = None
    if data is None or data != _env_seen:
        _env_secrets = tuple(
            value
            for name, value in os.environ.items()
            if len(value) >= MIN_SECRET_LENGTH and _SECRET_NAME.search(name)
        )
        _env_seen = dict(data) if data is not None else None
    return _env_secrets


def _secret_values() -> tuple[str, ...]:
    """Known secret values, longest first (so a secret that contains another is masked whole)."""
    global _cache_key, _cache_values
    env = _secret_env_values()
    key = (env, _registered_version)
    if key == _cache_key:
        return _cache_values
    with _lock:
        key = (env, _registered_version)
        if key != _cache_key:
            _cache_values = tuple(sorted(set(env) | _registered, key=len, reverse=True))
            _cache_key = key
        return _cache_values


def redact(text: str) -> str:
    """``text`` with every known secret, URL password and credential-shaped token masked."""
    if not text:
        return text
    return _redact_with(text, _secret_values())


def _redact_with(text: str, secrets: tuple[str, ...]) -> str:
    if not text:
        return text
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if _MAYBE_CREDENTIAL.search(text) is None or _ANY_CREDENTIAL.search(text) is None:
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings, scalars) with every string
    redacted; a mapping entry whose key names a secret (``api_key``, ``token``, …) is masked
    whole. Other objects are returned as they are."""
    # NOTE: the known secrets are looked up once per value, not once per string in it
    # (the lookup scans the environment; an event has dozens of strings).
    return _redact_data(value, _secret_values())


_SCALARS = frozenset({int, float, bool})


def _redact_data(value: Any, secrets: tuple[str, ...]) -> Any:
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, str):
        return _redact_with(value, secrets)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if item is None or type(item) in _SCALARS:
                out[key] = item  # most fields of an event: nothing to redact
            elif isinstance(key, str) and isinstance(item, str) and _is_secret_key(key) and item:
                out[key] = MASK
            else:
                out[key] = _redact_data(item, secrets)
        return out
    if isinstance(value, list | tuple):
        items = [_redact_data(item, secrets) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_exception(error: BaseException) -> None:
    """Mask secrets inside a *foreign* exception, in place: its ``args``, a string
    ``message`` and a JSON-like ``body`` (the SDKs keep the server's error body there),
    then the same along its ``__cause__`` / ``__context__`` chain.

    For exceptions the library keeps as the cause of its own errors (an SDK's status
    error under an :class:`~vega_trio.LLMError`): a traceback prints the whole chain,
    and a server may have echoed a key back in that body. vega-trio's own errors redact
    themselves when shown and are left alone: their class says so with
    ``_redacts_itself = True`` (every :class:`~vega_trio.VegaError`), so this module needs
    nothing of ``_errors`` (which imports it).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not getattr(type(current), "_redacts_itself", False):
            try:
                current.args = tuple(redact_data(list(current.args)))
                for name in ("message", "body"):
                    value = getattr(current, name, None)
                    if isinstance(value, str | Mapping | list):
                        setattr(current, name, redact_data(value))
            except Exception:  # a read-only attribute: leave that one as it is
                pass
        current = current.__cause__ or current.__context__


def is_secret_name(name: str) -> bool:
    """Whether a variable, header or field *name* says its value is a secret
    (``GITHUB_TOKEN``, ``Authorization``, ``api_key``; not ``input_tokens``)."""
    return _is_secret_key(name)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered in {"authorization", "x-api-key", "api_key", "apikey", "api-key"}:
        return True
    return bool(_SECRET_NAME.search(key)) and not lowered.endswith(("_tokens", "tokens"))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message (arguments merged in) and its string
    ``extra`` fields. Attach it to a *handler* (handler filters see records from every child
    logger; logger filters do not)."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's error path
            return True
        record.msg = redact(message)
        record.args = None
        for name, value in list(record.__dict__.items()):
            if name not in self._STANDARD and isinstance(value, str | Mapping | list | tuple):
                setattr(record, name, redact_data(value))
        if record.exc_info and not record.exc_text:
            # NOTE: formatted here (as logging.Formatter would) so the traceback text can be
            # redacted; formatters use exc_text when it is set.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
