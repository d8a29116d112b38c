"""Sorting LLM failures into the seven :class:`~vega_trio.ErrorClass` classes (SPEC §3.1).

The order of evidence is fixed, most reliable first:

1. the exception's type (the SDK's status errors, timeouts, connection errors);
2. the HTTP status code (duck-typed ``status_code``, so other SDKs built the same way
   classify too) refined by the stable ``error.details.error_code`` of the body
   (a spend-cap 429 is ``BUDGET_EXCEEDED``, not ``RATE_LIMIT``);
3. the ``error.type`` of the body (an SSE ``error`` event arrives on a 200 response,
   so for a mid-stream failure this is all there is);
4. the message text, only as a last resort.

:func:`to_llm_error` wraps any failure into an :class:`~vega_trio.LLMError` carrying
its class, status code and the server's ``retry-after``.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import Final

import httpx2
import trio

from .._errors import ErrorClass, LLMError
from .._redact import redact, redact_exception

__all__ = [
    "classify",
    "retry_after_from_headers",
    "to_llm_error",
]

# NOTE: stable codes from ``error.details.error_code``; the SDK maps each to its own
# exception subclass (``EnforcedSpendLimitReachedError`` …), but matching the code
# also covers bodies the installed SDK version does not know yet.
_SPEND_CAP_CODES: Final = frozenset(
    {
        "contract_spend_limit_reached",
        "enforced_spend_limit_reached",
        "linked_organization_spend_limit_reached",
        "linked_organization_billing_unavailable",
    }
)

# ``error.type`` of an API error body (also of an SSE ``error`` event).
_ERROR_TYPES: Final[Mapping[str, ErrorClass]] = {
    "rate_limit_error": ErrorClass.RATE_LIMIT,
    "overloaded_error": ErrorClass.OVERLOADED,
    "timeout_error": ErrorClass.TIMEOUT,
    "api_error": ErrorClass.TEMPORARY,
    "conflict_error": ErrorClass.TEMPORARY,
    "authentication_error": ErrorClass.AUTHENTICATION,
    "permission_error": ErrorClass.AUTHENTICATION,
    "billing_error": ErrorClass.BUDGET_EXCEEDED,
    "invalid_request_error": ErrorClass.INVALID_REQUEST,
    "not_found_error": ErrorClass.INVALID_REQUEST,
    "request_too_large": ErrorClass.INVALID_REQUEST,
}

# Phrases of billing failures that arrive with a non-billing status or type: the API has
# answered "credit balance is too low" as a 400 invalid_request_error and "reached your
# specified API usage limits" as a 429 rate_limit_error. Text is the last resort.
_BILLING_PHRASES: Final = (
    "credit balance",
    "spend limit",
    "spending limit",
    "usage limit",
    "billing",
)

_TEXT_HINTS: Final[tuple[tuple[tuple[str, ...], ErrorClass], ...]] = (
    ((*_BILLING_PHRASES, "budget"), ErrorClass.BUDGET_EXCEEDED),
    (("rate limit", "rate_limit", "too many requests"), ErrorClass.RATE_LIMIT),
    (("overloaded",), ErrorClass.OVERLOADED),
    (("timed out", "timeout", "deadline exceeded"), ErrorClass.TIMEOUT),
    (
        ("api key", "api_key", "authentication", "unauthorized", "permission denied", "forbidden"),
        ErrorClass.AUTHENTICATION,
    ),
    (("invalid", "not found", "too large", "malformed"), ErrorClass.INVALID_REQUEST),
)

_ADVICE: Final[Mapping[ErrorClass, str]] = {
    ErrorClass.RATE_LIMIT: "slow down: wait before retrying or lower the agent's rate limit",
    ErrorClass.OVERLOADED: "the model is overloaded; retry later or use another model",
    ErrorClass.TIMEOUT: "retry, or raise the LLM call timeout for long generations",
    ErrorClass.TEMPORARY: "this is usually transient; retry",
    ErrorClass.INVALID_REQUEST: (
        "fix the request (model name, max_tokens, messages, tool schemas); retrying will not help"
    ),
    ErrorClass.AUTHENTICATION: (
        "check ANTHROPIC_API_KEY (or the api_key passed to the backend) and its permissions"
    ),
    ErrorClass.BUDGET_EXCEEDED: (
        "the account's spend limit or credit is exhausted; raise it in the Anthropic console"
    ),
}


def classify(exc: BaseException) -> ErrorClass:
    """Sort one failure of an LLM call into its :class:`~vega_trio.ErrorClass`.

    Args:
        exc: the exception raised by the SDK (or by the transport under it).

    Returns:
        The class. A failure with no recognisable evidence at all is ``TEMPORARY``:
        the retry policy bounds how often it is tried again.
    """
    if isinstance(exc, LLMError):
        return exc.error_class
    # NOTE: imported here, not at the top: the OpenAI-compatible backend shares this
    # module's helpers and must not pay for the anthropic SDK's import (about a second).
    import anthropic

    # Timeouts first: APITimeoutError is a subclass of APIConnectionError.
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException | trio.TooSlowError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, TimeoutError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, anthropic.CredentialsError):
        return ErrorClass.AUTHENTICATION
    if isinstance(exc, anthropic.APIConnectionError):
        return ErrorClass.TEMPORARY
    if isinstance(exc, anthropic.APIResponseValidationError):
        # The server answered 2xx with a body we cannot read: a broken reply, not ours.
        return ErrorClass.TEMPORARY

    status = _status_code(exc)
    text = _error_text(exc)
    if status is not None and status >= 400:
        return _classify_status(status, _error_code(exc), _error_type(exc), text)

    error_type = _error_type(exc)
    if error_type is not None and error_type in _ERROR_TYPES:
        by_type = _ERROR_TYPES[error_type]
        if by_type is ErrorClass.RATE_LIMIT and _mentions_billing(text):
            return ErrorClass.BUDGET_EXCEEDED
        return by_type

    if isinstance(exc, httpx2.TransportError | httpx2.DecodingError | httpx2.StreamError):
        return ErrorClass.TEMPORARY
    if isinstance(exc, OSError | json.JSONDecodeError):
        return ErrorClass.TEMPORARY
    if isinstance(exc, anthropic.APIStatusError):
        # A status error without a usable status or type (an SSE error event whose data
        # was not JSON, say): the stream broke for a reason the server did not name.
        return _classify_text(text) or ErrorClass.TEMPORARY
    return _classify_text(text) or ErrorClass.TEMPORARY


def _classify_status(
    status: int, error_code: str | None, error_type: str | None, text: str
) -> ErrorClass:
    if error_code in _SPEND_CAP_CODES or error_type == "billing_error" or status == 402:
        return ErrorClass.BUDGET_EXCEEDED
    if status == 429:
        return ErrorClass.BUDGET_EXCEEDED if _mentions_billing(text) else ErrorClass.RATE_LIMIT
    if status in (503, 529):
        return ErrorClass.OVERLOADED
    if status in (408, 504):
        return ErrorClass.TIMEOUT
    if status >= 500:
        return ErrorClass.TEMPORARY
    if status in (401, 403):
        return ErrorClass.AUTHENTICATION
    if status == 400 and _mentions_billing(text):
        return ErrorClass.BUDGET_EXCEEDED
    if status in (409, 499):
        # 409: a lock conflict the server expects to clear; 499: the request was closed
        # before the server answered. Neither is the request's fault.
        return ErrorClass.TEMPORARY
    return ErrorClass.INVALID_REQUEST


def _classify_text(text: str) -> ErrorClass | None:
    lowered = text.lower()
    for phrases, error_class in _TEXT_HINTS:
        if any(phrase in lowered for phrase in phrases):
            return error_class
    return None


def _mentions_billing(text: str) -> bool:
    lowered = text.lower()
    return any(phrase in lowered for phrase in _BILLING_PHRASES)


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    return None


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


def _error_type(exc: BaseException) -> str | None:
    error_type = getattr(exc, "type", None)
    if isinstance(error_type, str):
        return error_type
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("type"), str):
            return str(error["type"])
    return None


def _error_text(exc: BaseException) -> str:
    api_message = getattr(exc, "api_message", None)
    if isinstance(api_message, str) and api_message:
        return api_message
    return str(exc)


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """The wait the server asked for, in seconds, from HTTP response headers.

    ``retry-after-ms`` (milliseconds, Anthropic's precise form) wins over
    ``retry-after``, which may be seconds (integer or, non-standard, float) or an
    HTTP date. Header names are matched case-insensitively.

    Args:
        headers: the response headers (``httpx2.Headers`` or any mapping), or ``None``.

    Returns:
        Seconds to wait (never negative), or ``None`` when the headers say nothing
        usable.
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    millis = _finite_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _finite_float(raw)
    if seconds is not None:
        return max(0.0, seconds)
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    # NOTE: an HTTP date is wall-clock by definition, so wall-clock time is right here.
    return max(0.0, float(email.utils.mktime_tz(parsed) - time.time()))


def _finite_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _response_headers(exc: BaseException) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def request_label(exc: BaseException, default: str) -> str:
    """``METHOD URL`` of the request ``exc`` is about, or ``default`` when unknown."""
    try:
        request = getattr(exc, "request", None)
    except RuntimeError:  # httpx2 raises when the exception was made without a request
        request = None
    method = getattr(request, "method", None)
    url = getattr(request, "url", None)
    if method and url:
        return f"{method} {url}"
    return default


def build_llm_error(
    exc: BaseException,
    *,
    error_class: ErrorClass,
    status: int | None,
    retry_after: float | None,
    label: str,
    where: str,
    detail: str,
    advice: Mapping[ErrorClass, str],
    output_started: bool,
) -> LLMError:
    """The :class:`~vega_trio.LLMError` of a classified failure, with one message format
    for every backend (what, from where, the detail, request id, retry-after, advice);
    ``exc`` is its ``__cause__``. Secrets are masked in the message and in ``exc`` (a
    URL's userinfo, a key the server echoed back): :mod:`vega_trio._redact`."""
    parts = [f"LLM call failed ({error_class.value}): {label} from {where}: {detail}"]
    if output_started:
        parts.append("the failure came after streamed output had started")
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str) and request_id:
        parts.append(f"request-id {request_id}")
    if retry_after is not None:
        parts.append(f"the server asked to retry after {retry_after:g}s")
    parts.append(advice[error_class])
    # NOTE: redacted here, not only when shown: a base URL's userinfo is in the label and
    # a server may echo the key in the detail (SPEC §11); the cause is scrubbed too, since
    # a traceback prints it.
    redact_exception(exc)
    error = LLMError(
        redact("; ".join(parts)),
        error_class=error_class,
        status_code=status,
        retry_after=retry_after,
        output_started=output_started,
    )
    error.__cause__ = exc
    return error


def to_llm_error(exc: BaseException, *, output_started: bool = False) -> LLMError:
    """Translate a failed call into an :class:`~vega_trio.LLMError`.

    The result carries the class (:func:`classify`), the HTTP status (when the
    server answered with an error status), ``retry_after`` from the response headers,
    and has ``exc`` as its ``__cause__``. Raise it ``from exc``.

    Args:
        exc: the SDK (or transport) exception. An ``LLMError`` is returned as is.
        output_started: whether streamed output had already reached the caller.

    Returns:
        The error to raise.
    """
    if isinstance(exc, LLMError):
        return exc
    error_class = classify(exc)
    status = _status_code(exc)
    if status is not None and status < 400:
        # An SSE error event arrives on a 200 response; that 200 is not the failure's status.
        status = None
    retry_after = retry_after_from_headers(_response_headers(exc)) if status is not None else None
    error_type = _error_type(exc)
    what = f"HTTP {status}" if status is not None else type(exc).__name__
    if error_type:
        what = f"{what} {error_type}"
    return build_llm_error(
        exc,
        error_class=error_class,
        status=status,
        retry_after=retry_after,
        label=what,
        where=request_label(exc, "the Anthropic API"),
        detail=_error_text(exc),
        advice=_ADVICE,
        output_started=output_started,
    )
