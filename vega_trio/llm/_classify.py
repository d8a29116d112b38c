"""The Anthropic API's evidence for the shared classification ladder
(:mod:`._classification`): :data:`ANTHROPIC_ERRORS`, and :func:`classify` /
:func:`to_llm_error` on it.

The API's body carries ``error.type`` (also in an SSE ``error`` event, the only evidence
of a mid-stream failure) and, for spend caps, the stable ``error.details.error_code``
(a spend-cap 429 is ``BUDGET_EXCEEDED``, not ``RATE_LIMIT``). The API has answered
"credit balance is too low" as a 400 ``invalid_request_error`` and "reached your
specified API usage limits" as a 429 ``rate_limit_error``, so billing phrases count on
those statuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import anthropic

from .._errors import ErrorClass, LLMError
from ._classification import (
    TRANSPORT_FAILURES,
    ErrorTable,
    build_llm_error,
    request_label,
    retry_after_from_headers,
)

__all__ = [
    "ANTHROPIC_ERRORS",
    "CALL_FAILURES",
    "build_llm_error",
    "classify",
    "request_label",
    "retry_after_from_headers",
    "to_llm_error",
]

#: The exception types that mean "the call to the model failed" (as opposed to a bug
#: in our own code). Backends translate exactly these into :class:`LLMError`.
CALL_FAILURES: Final = (anthropic.AnthropicError, *TRANSPORT_FAILURES)

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


def _codes(exc: BaseException) -> tuple[str, ...]:
    """``error.type`` (the SDK's ``type``, else the body's), then ``error_code``."""
    found: list[str] = []
    error_type = getattr(exc, "type", None)
    if not isinstance(error_type, str):
        body = getattr(exc, "body", None)
        error = body.get("error") if isinstance(body, Mapping) else None
        error_type = error.get("type") if isinstance(error, Mapping) else None
    if isinstance(error_type, str) and error_type:
        found.append(error_type)
    code = getattr(exc, "error_code", None)
    if isinstance(code, str) and code:
        found.append(code)
    return tuple(found)


def _text(exc: BaseException) -> str:
    api_message = getattr(exc, "api_message", None)
    if isinstance(api_message, str) and api_message:
        return api_message
    return str(exc)


#: The Anthropic API's row of the classification table.
ANTHROPIC_ERRORS: Final = ErrorTable(
    where="the Anthropic API",
    failures=CALL_FAILURES,
    exception_classes=(
        ((anthropic.APITimeoutError,), ErrorClass.TIMEOUT),
        ((anthropic.CredentialsError,), ErrorClass.AUTHENTICATION),
        ((anthropic.APIConnectionError,), ErrorClass.TEMPORARY),
        # The server answered 2xx with a body we cannot read: a broken reply, not ours.
        ((anthropic.APIResponseValidationError,), ErrorClass.TEMPORARY),
    ),
    error_codes={
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
    },
    budget_codes=_SPEND_CAP_CODES | {"billing_error"},
    billing_phrases=("credit balance", "spend limit", "spending limit", "usage limit", "billing"),
    budget_hints=("budget",),
    billing_statuses=frozenset({400, 429}),
    codes=_codes,
    text=_text,
    overloaded_advice="the model is overloaded; retry later or use another model",
    authentication_advice=(
        "check ANTHROPIC_API_KEY (or the api_key passed to the backend) and its permissions"
    ),
    budget_advice=(
        "the account's spend limit or credit is exhausted; raise it in the Anthropic console"
    ),
)


def classify(exc: BaseException) -> ErrorClass:
    """Sort one failure of an LLM call into its :class:`~vega_trio.ErrorClass`.

    Args:
        exc: the exception raised by the SDK (or by the transport under it).

    Returns:
        The class. A failure with no recognisable evidence at all is ``TEMPORARY``:
        the retry policy bounds how often it is tried again.
    """
    return ANTHROPIC_ERRORS.classify(exc)


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
    return ANTHROPIC_ERRORS.error(exc, output_started=output_started)
