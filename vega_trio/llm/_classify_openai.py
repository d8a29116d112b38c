"""Sorting failures of OpenAI-compatible calls into the seven :class:`~vega_trio.ErrorClass`
classes (SPEC §3.1), the ``openai`` SDK's counterpart of :mod:`._classify`.

The order of evidence is the same, most reliable first:

1. the exception's type (``openai.APITimeoutError``, ``APIConnectionError``, timeouts
   and transport errors under the SDK);
2. the HTTP status code, refined by the body's ``error.code`` / ``error.type``: a 429
   whose code is ``insufficient_quota`` is an exhausted quota or credit
   (``BUDGET_EXCEEDED``), not a rate limit;
3. the ``code`` / ``type`` of an error object sent inside a stream (it arrives on a 200
   response, so for a mid-stream failure this is all there is);
4. the message text, only as a last resort.

Retry waits come from ``retry-after-ms`` / ``retry-after`` through
:func:`._classify.retry_after_from_headers`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

import httpx2
import openai
import trio

from .._errors import ErrorClass, LLMError
from ._classify import build_llm_error, request_label, retry_after_from_headers

__all__ = ["OPENAI_CALL_FAILURES", "classify_openai", "openai_llm_error"]

#: The exception types that mean "the call to the model failed" (as opposed to a bug in
#: our own code). :class:`~vega_trio.llm.OpenAICompatibleLLM` translates exactly these.
OPENAI_CALL_FAILURES: Final = (
    openai.OpenAIError,
    httpx2.HTTPError,
    httpx2.StreamError,
    trio.TooSlowError,
    TimeoutError,
    OSError,
    json.JSONDecodeError,
)

# ``error.code`` / ``error.type`` values that mean the account cannot pay for the call.
_QUOTA_CODES: Final = frozenset({"insufficient_quota", "billing_hard_limit_reached"})

# ``error.code`` / ``error.type`` of an error object (also one sent mid-stream). OpenAI
# puts its stable cause in ``code``; vLLM, Ollama and llama.cpp mostly fill ``type``.
_ERROR_CODES: Final[Mapping[str, ErrorClass]] = {
    "insufficient_quota": ErrorClass.BUDGET_EXCEEDED,
    "billing_hard_limit_reached": ErrorClass.BUDGET_EXCEEDED,
    "rate_limit_exceeded": ErrorClass.RATE_LIMIT,
    "rate_limit_error": ErrorClass.RATE_LIMIT,
    "requests": ErrorClass.RATE_LIMIT,
    "tokens": ErrorClass.RATE_LIMIT,
    "server_is_overloaded": ErrorClass.OVERLOADED,
    "overloaded_error": ErrorClass.OVERLOADED,
    "slow_down": ErrorClass.OVERLOADED,
    "timeout": ErrorClass.TIMEOUT,
    "server_error": ErrorClass.TEMPORARY,
    "internal_error": ErrorClass.TEMPORARY,
    "api_error": ErrorClass.TEMPORARY,
    "invalid_api_key": ErrorClass.AUTHENTICATION,
    "authentication_error": ErrorClass.AUTHENTICATION,
    "permission_error": ErrorClass.AUTHENTICATION,
    "invalid_request_error": ErrorClass.INVALID_REQUEST,
    "context_length_exceeded": ErrorClass.INVALID_REQUEST,
    "model_not_found": ErrorClass.INVALID_REQUEST,
    "not_found_error": ErrorClass.INVALID_REQUEST,
}

_TEXT_HINTS: Final[tuple[tuple[tuple[str, ...], ErrorClass], ...]] = (
    (("exceeded your current quota", "insufficient_quota", "billing"), ErrorClass.BUDGET_EXCEEDED),
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
    ErrorClass.OVERLOADED: "the server is overloaded; retry later or use another model",
    ErrorClass.TIMEOUT: "retry, or raise the LLM call timeout for long generations",
    ErrorClass.TEMPORARY: "this is usually transient; retry",
    ErrorClass.INVALID_REQUEST: (
        "fix the request (model name, max_tokens, messages, tool schemas); retrying will not help"
    ),
    ErrorClass.AUTHENTICATION: (
        "check OPENAI_API_KEY (or the api_key passed to OpenAICompatibleLLM) and its permissions"
    ),
    ErrorClass.BUDGET_EXCEEDED: (
        "the account's quota or credit is exhausted; check the plan and billing of the API key"
    ),
}


def classify_openai(exc: BaseException) -> ErrorClass:
    """Sort one failure of an OpenAI-compatible call into its :class:`~vega_trio.ErrorClass`.

    Args:
        exc: the exception raised by the ``openai`` SDK (or by the transport under it).

    Returns:
        The class. A failure with no recognisable evidence at all is ``TEMPORARY``:
        the retry policy bounds how often it is tried again.
    """
    if isinstance(exc, LLMError):
        return exc.error_class
    # Timeouts first: APITimeoutError is a subclass of APIConnectionError.
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException | trio.TooSlowError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, TimeoutError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return ErrorClass.TEMPORARY
    if isinstance(exc, openai.APIResponseValidationError):
        # The server answered 2xx with a body we cannot read: a broken reply, not ours.
        return ErrorClass.TEMPORARY
    codes = _error_codes(exc)
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc.status_code, codes, _error_text(exc))
    for code in codes:
        if code in _ERROR_CODES:
            return _ERROR_CODES[code]
    if isinstance(exc, httpx2.TransportError | httpx2.DecodingError | httpx2.StreamError):
        return ErrorClass.TEMPORARY
    if isinstance(exc, OSError | json.JSONDecodeError):
        return ErrorClass.TEMPORARY
    return _classify_text(_error_text(exc)) or ErrorClass.TEMPORARY


def _classify_status(status: int, codes: tuple[str, ...], text: str) -> ErrorClass:
    if status == 402 or any(code in _QUOTA_CODES for code in codes):
        return ErrorClass.BUDGET_EXCEEDED
    if status == 429:
        # NOTE: OpenAI answers an exhausted quota with 429 too; without a code, only the
        # wording tells it from a rate limit ("You exceeded your current quota").
        if _classify_text(text) is ErrorClass.BUDGET_EXCEEDED:
            return ErrorClass.BUDGET_EXCEEDED
        return ErrorClass.RATE_LIMIT
    if status in (503, 529):
        return ErrorClass.OVERLOADED
    if status in (408, 504):
        return ErrorClass.TIMEOUT
    if status >= 500:
        return ErrorClass.TEMPORARY
    if status in (401, 403):
        return ErrorClass.AUTHENTICATION
    if status in (409, 499):
        # 409: a conflict the server expects to clear; 499: the request was closed before
        # the server answered. Neither is the request's fault.
        return ErrorClass.TEMPORARY
    return ErrorClass.INVALID_REQUEST


def _classify_text(text: str) -> ErrorClass | None:
    lowered = text.lower()
    for phrases, error_class in _TEXT_HINTS:
        if any(phrase in lowered for phrase in phrases):
            return error_class
    return None


def _error_codes(exc: BaseException) -> tuple[str, ...]:
    """``code`` then ``type`` of the error object, as far as they are strings."""
    found: list[str] = []
    for name in ("code", "type"):
        value = getattr(exc, name, None)
        if isinstance(value, str) and value:
            found.append(value)
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            for name in ("code", "type"):
                value = error.get(name)
                if isinstance(value, str) and value and value not in found:
                    found.append(value)
    return tuple(found)


def _error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    return str(exc) or type(exc).__name__


def openai_llm_error(exc: BaseException, *, output_started: bool = False) -> LLMError:
    """Translate a failed OpenAI-compatible call into an :class:`~vega_trio.LLMError`.

    The result carries the class (:func:`classify_openai`), the HTTP status (when the
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
    error_class = classify_openai(exc)
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    retry_after = (
        retry_after_from_headers(exc.response.headers)
        if isinstance(exc, openai.APIStatusError)
        else None
    )
    what = f"HTTP {status}" if status is not None else type(exc).__name__
    codes = _error_codes(exc)
    if codes:
        what = f"{what} {codes[0]}"
    return build_llm_error(
        exc,
        error_class=error_class,
        status=status,
        retry_after=retry_after,
        label=what,
        where=request_label(exc, "the OpenAI-compatible API"),
        detail=_error_text(exc),
        advice=_ADVICE,
        output_started=output_started,
    )
