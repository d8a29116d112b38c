"""Sorting LLM failures into the seven :class:`~vega_trio.ErrorClass` classes (SPEC §3.1):
one ladder, driven by one :class:`ErrorTable` per provider.

The order of evidence is fixed, most reliable first:

1. the exception's type (:attr:`ErrorTable.exception_classes`: the SDK's timeouts,
   connection and credential errors);
2. the HTTP status code (duck-typed ``status_code``, so other SDKs built the same way
   classify too) through :data:`STATUS_CLASSES`, refined by the body's stable codes: a
   code in :attr:`ErrorTable.budget_codes` (a spend cap, an exhausted quota) or a
   billing phrase on a status in :attr:`ErrorTable.billing_statuses` is
   ``BUDGET_EXCEEDED``, not ``RATE_LIMIT``;
3. the body's error codes / types (:attr:`ErrorTable.error_codes`): an error sent inside
   a stream arrives on a 200 response, so for a mid-stream failure this is all there is;
4. transport failures under the SDK (``TEMPORARY``);
5. the message text (:data:`TEXT_HINTS`), only as a last resort.

Whether a class is worth retrying is :attr:`~vega_trio.ErrorClass.retryable`; the wait the
server asked for comes from the response headers (:func:`retry_after_from_headers`).
:meth:`ErrorTable.error` wraps any failure into an :class:`~vega_trio.LLMError` with one
message format for every backend. This module imports no SDK: each backend's table does
(``_classify`` for Anthropic, ``_classify_openai`` for OpenAI-compatible servers).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Final

import attrs
import httpx2
import trio

from .._errors import ErrorClass, LLMError
from .._redact import redact, redact_exception

__all__ = [
    "STATUS_CLASSES",
    "TEXT_HINTS",
    "ErrorTable",
    "build_llm_error",
    "request_label",
    "retry_after_from_headers",
]

#: The failures below every SDK (the transport, timeouts, a body that is not JSON).
TRANSPORT_FAILURES: Final = (
    httpx2.HTTPError,
    httpx2.StreamError,
    trio.TooSlowError,
    TimeoutError,
    OSError,
    json.JSONDecodeError,
)

#: The exception types that are timeouts whichever SDK is in use.
_TIMEOUTS: Final = (httpx2.TimeoutException, trio.TooSlowError, TimeoutError)

#: Transport failures that are no timeout: the connection broke, try again.
_TRANSPORT_TEMPORARY: Final = (
    httpx2.TransportError,
    httpx2.DecodingError,
    httpx2.StreamError,
    OSError,
    json.JSONDecodeError,
)

#: The class of an HTTP error status; any other status is ``TEMPORARY`` from 500 up,
#: ``INVALID_REQUEST`` below.
STATUS_CLASSES: Final[Mapping[int, ErrorClass]] = {
    402: ErrorClass.BUDGET_EXCEEDED,
    429: ErrorClass.RATE_LIMIT,
    503: ErrorClass.OVERLOADED,
    529: ErrorClass.OVERLOADED,
    408: ErrorClass.TIMEOUT,
    504: ErrorClass.TIMEOUT,
    401: ErrorClass.AUTHENTICATION,
    403: ErrorClass.AUTHENTICATION,
    # 409: a lock conflict the server expects to clear; 499: the request was closed
    # before the server answered. Neither is the request's fault.
    409: ErrorClass.TEMPORARY,
    499: ErrorClass.TEMPORARY,
}

#: The last resort: phrases of the message text (after the table's own budget phrases).
TEXT_HINTS: Final[tuple[tuple[tuple[str, ...], ErrorClass], ...]] = (
    (("rate limit", "rate_limit", "too many requests"), ErrorClass.RATE_LIMIT),
    (("overloaded",), ErrorClass.OVERLOADED),
    (("timed out", "timeout", "deadline exceeded"), ErrorClass.TIMEOUT),
    (
        ("api key", "api_key", "authentication", "unauthorized", "permission denied", "forbidden"),
        ErrorClass.AUTHENTICATION,
    ),
    (("invalid", "not found", "too large", "malformed"), ErrorClass.INVALID_REQUEST),
)

_RETRY_ADVICE: Final[Mapping[ErrorClass, str]] = {
    ErrorClass.RATE_LIMIT: "slow down: wait before retrying or lower the agent's rate limit",
    ErrorClass.TIMEOUT: "retry, or raise the LLM call timeout for long generations",
    ErrorClass.TEMPORARY: "this is usually transient; retry",
    ErrorClass.INVALID_REQUEST: (
        "fix the request (model name, max_tokens, messages, tool schemas); retrying will not help"
    ),
}


@attrs.frozen(kw_only=True)
class ErrorTable:
    """One provider's evidence for the shared ladder (see the module docstring).

    Attributes:
        where: names the API in messages when the request is unknown.
        failures: the exception types that mean "the call failed" (not a bug of ours);
            a backend translates exactly these.
        exception_classes: ``(types, class)`` rows checked first, in order.
        error_codes: the class of an error body's code or type.
        budget_codes: codes that mean the account cannot pay, whatever the status.
        billing_phrases: message phrases that mean the same, on a status in
            ``billing_statuses`` or with a rate-limit code.
        budget_hints: further phrases of the text-only last resort for
            ``BUDGET_EXCEEDED``.
        billing_statuses: statuses on which a billing phrase means ``BUDGET_EXCEEDED``.
        codes: the error body's codes / types, most telling first (the first names the
            failure in the message).
        text: the failure's message text.
        overloaded_advice: what to do about an ``OVERLOADED`` failure.
        authentication_advice: what to do about an ``AUTHENTICATION`` failure.
        budget_advice: what to do about a ``BUDGET_EXCEEDED`` failure.
    """

    where: str
    failures: tuple[type[BaseException], ...]
    exception_classes: tuple[tuple[tuple[type[BaseException], ...], ErrorClass], ...]
    error_codes: Mapping[str, ErrorClass]
    budget_codes: frozenset[str]
    billing_phrases: tuple[str, ...]
    budget_hints: tuple[str, ...] = ()
    billing_statuses: frozenset[int] = frozenset({429})
    codes: Callable[[BaseException], tuple[str, ...]]
    text: Callable[[BaseException], str]
    overloaded_advice: str
    authentication_advice: str
    budget_advice: str

    def classify(self, exc: BaseException) -> ErrorClass:
        """Sort one failure of a call into its class.

        A failure with no recognisable evidence at all is ``TEMPORARY``: the retry
        policy bounds how often it is tried again.
        """
        if isinstance(exc, LLMError):
            return exc.error_class
        # Timeouts first: an SDK's timeout error is a subclass of its connection error.
        if isinstance(exc, _TIMEOUTS):
            return ErrorClass.TIMEOUT
        for types, error_class in self.exception_classes:
            if isinstance(exc, types):
                return error_class
        codes = self.codes(exc)
        text = self.text(exc)
        status = status_code(exc)
        if status is not None and status >= 400:
            return self._by_status(status, codes, text)
        for code in codes:
            if code in self.error_codes:
                by_code = self.error_codes[code]
                if by_code is ErrorClass.RATE_LIMIT and self._mentions_billing(text):
                    return ErrorClass.BUDGET_EXCEEDED
                return by_code
        if isinstance(exc, _TRANSPORT_TEMPORARY):
            return ErrorClass.TEMPORARY
        return self._by_text(text) or ErrorClass.TEMPORARY

    def error(self, exc: BaseException, *, output_started: bool = False) -> LLMError:
        """The :class:`~vega_trio.LLMError` of a failed call: its class, the HTTP status
        (when the server answered with an error status), ``retry_after`` from the
        response headers, and ``exc`` as its ``__cause__`` (raise it ``from exc``). An
        ``LLMError`` is returned as is."""
        if isinstance(exc, LLMError):
            return exc
        error_class = self.classify(exc)
        status = status_code(exc)
        if status is not None and status < 400:
            # An error sent inside a stream arrives on a 200 response; that 200 is not
            # the failure's status.
            status = None
        retry_after = (
            retry_after_from_headers(_response_headers(exc)) if status is not None else None
        )
        what = f"HTTP {status}" if status is not None else type(exc).__name__
        codes = self.codes(exc)
        if codes:
            what = f"{what} {codes[0]}"
        return build_llm_error(
            exc,
            error_class=error_class,
            status=status,
            retry_after=retry_after,
            label=what,
            where=request_label(exc, self.where),
            detail=self.text(exc),
            advice=self.advice,
            output_started=output_started,
        )

    @property
    def advice(self) -> Mapping[ErrorClass, str]:
        """What to do next, by class."""
        return {
            **_RETRY_ADVICE,
            ErrorClass.OVERLOADED: self.overloaded_advice,
            ErrorClass.AUTHENTICATION: self.authentication_advice,
            ErrorClass.BUDGET_EXCEEDED: self.budget_advice,
        }

    def _by_status(self, status: int, codes: tuple[str, ...], text: str) -> ErrorClass:
        if any(code in self.budget_codes for code in codes):
            return ErrorClass.BUDGET_EXCEEDED
        if status in self.billing_statuses and self._mentions_billing(text):
            return ErrorClass.BUDGET_EXCEEDED
        by_status = STATUS_CLASSES.get(status)
        if by_status is not None:
            return by_status
        return ErrorClass.TEMPORARY if status >= 500 else ErrorClass.INVALID_REQUEST

    def _mentions_billing(self, text: str) -> bool:
        lowered = text.lower()
        return any(phrase in lowered for phrase in self.billing_phrases)

    def _by_text(self, text: str) -> ErrorClass | None:
        lowered = text.lower()
        if any(phrase in lowered for phrase in (*self.billing_phrases, *self.budget_hints)):
            return ErrorClass.BUDGET_EXCEEDED
        for phrases, error_class in TEXT_HINTS:
            if any(phrase in lowered for phrase in phrases):
                return error_class
        return None


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a failure (its ``status_code``, or its response's)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    return None


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
