"""OpenAI-compatible servers' evidence for the shared classification ladder
(:mod:`._classification`): :data:`OPENAI_ERRORS`, and :func:`classify_openai` /
:func:`openai_llm_error` on it.

OpenAI puts its stable cause in the body's ``error.code``; vLLM, Ollama and llama.cpp
mostly fill ``error.type``. A 429 whose code is ``insufficient_quota`` is an exhausted
quota or credit (``BUDGET_EXCEEDED``), not a rate limit; without a code, only the
wording tells it ("You exceeded your current quota").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import openai

from .._errors import ErrorClass, LLMError
from ._classification import TRANSPORT_FAILURES, ErrorTable

__all__ = ["OPENAI_CALL_FAILURES", "OPENAI_ERRORS", "classify_openai", "openai_llm_error"]

#: The exception types that mean "the call to the model failed" (as opposed to a bug in
#: our own code). :class:`~vega_trio.llm.OpenAICompatibleLLM` translates exactly these.
OPENAI_CALL_FAILURES: Final = (openai.OpenAIError, *TRANSPORT_FAILURES)


def _codes(exc: BaseException) -> tuple[str, ...]:
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


def _text(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    return str(exc) or type(exc).__name__


#: OpenAI-compatible servers' row of the classification table.
OPENAI_ERRORS: Final = ErrorTable(
    where="the OpenAI-compatible API",
    failures=OPENAI_CALL_FAILURES,
    exception_classes=(
        ((openai.APITimeoutError,), ErrorClass.TIMEOUT),
        ((openai.APIConnectionError,), ErrorClass.TEMPORARY),
        # The server answered 2xx with a body we cannot read: a broken reply, not ours.
        ((openai.APIResponseValidationError,), ErrorClass.TEMPORARY),
    ),
    error_codes={
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
    },
    budget_codes=frozenset({"insufficient_quota", "billing_hard_limit_reached"}),
    billing_phrases=("exceeded your current quota", "insufficient_quota", "billing"),
    codes=_codes,
    text=_text,
    overloaded_advice="the server is overloaded; retry later or use another model",
    authentication_advice=(
        "check OPENAI_API_KEY (or the api_key passed to OpenAICompatibleLLM) and its permissions"
    ),
    budget_advice=(
        "the account's quota or credit is exhausted; check the plan and billing of the API key"
    ),
)


def classify_openai(exc: BaseException) -> ErrorClass:
    """Sort one failure of an OpenAI-compatible call into its :class:`~vega_trio.ErrorClass`.

    Args:
        exc: the exception raised by the ``openai`` SDK (or by the transport under it).

    Returns:
        The class. A failure with no recognisable evidence at all is ``TEMPORARY``:
        the retry policy bounds how often it is tried again.
    """
    return OPENAI_ERRORS.classify(exc)


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
    return OPENAI_ERRORS.error(exc, output_started=output_started)
