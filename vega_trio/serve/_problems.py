"""HTTP statuses for failures: the one place where an exception becomes a status
(SPEC §10.1's mapping), and the server's own refusals (:class:`~vega_trio.RequestRejected`)."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .._errors import (
    AgentExists,
    AgentNotFound,
    BudgetExceeded,
    CircuitOpen,
    ErrorClass,
    InputError,
    LLMError,
    MailboxFull,
    NameTaken,
    OrchestratorClosed,
    ProcessNotFound,
    RateLimited,
    RequestError,
    RequestRejected,
    TooManyProcesses,
    WorkflowInputError,
    error_class_of,
)

__all__ = ["Failure", "failure_of"]


@attrs.frozen(kw_only=True)
class Failure:
    """What a failure looks like on the wire."""

    status: int
    message: str
    error_class: str
    headers: dict[str, str] = attrs.field(factory=dict)
    extra: dict[str, Any] = attrs.field(factory=dict)
    internal: bool = False
    """An unexpected error: the client gets a generic message, the log the traceback."""


_LLM_STATUS: dict[ErrorClass, int] = {
    ErrorClass.BUDGET_EXCEEDED: 402,
    ErrorClass.RATE_LIMIT: 429,
    ErrorClass.OVERLOADED: 503,
    ErrorClass.TEMPORARY: 503,
    ErrorClass.TIMEOUT: 504,
    ErrorClass.INVALID_REQUEST: 502,
    ErrorClass.AUTHENTICATION: 502,
}


def _retry_after(seconds: float | None) -> dict[str, str]:
    if seconds is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def failure_of(exc: Exception) -> Failure:
    """The status, message and headers for ``exc`` (SPEC §10.1): 402 budget, 404
    unknown agent/process, 409 exists, 422 invalid input, 429 rate limited and 503
    overloaded/breaker open/shutting down (both with ``Retry-After`` when known), 502/504
    for other model failures; anything unexpected is a 500 (``internal``)."""
    if isinstance(exc, RequestRejected):
        extra: dict[str, Any] = {"fields": exc.fields} if exc.fields is not None else {}
        return Failure(
            status=exc.status,
            message=str(exc),
            error_class=exc.error_class,
            headers=exc.headers,
            extra=extra,
        )
    message = str(exc) or type(exc).__name__
    kind = error_class_of(exc)
    if isinstance(exc, AgentNotFound | ProcessNotFound):
        return Failure(status=404, message=message, error_class=kind)
    if isinstance(exc, AgentExists | NameTaken):
        return Failure(status=409, message=message, error_class=kind)
    if isinstance(exc, WorkflowInputError):  # the CLI's diagnostics, as JSON
        return Failure(
            status=422,
            message=f"{exc}; nothing was run",
            error_class="invalid_input",
            extra={"fields": [{"path": f"inputs.{exc.input}", "error": message}]},
        )
    if isinstance(exc, InputError):
        return Failure(
            status=422,
            message=message,
            error_class="validation_error",
            extra={"fields": [{"path": exc.name, "error": message}]},
        )
    if isinstance(exc, BudgetExceeded | RateLimited | CircuitOpen | LLMError):
        status = _LLM_STATUS.get(exc.error_class, 502)
        headers = _retry_after(exc.retry_after) if status in (429, 503) else {}
        return Failure(status=status, message=message, error_class=kind, headers=headers)
    if isinstance(exc, OrchestratorClosed | TooManyProcesses | MailboxFull):
        return Failure(status=503, message=message, error_class=kind, headers={"Retry-After": "1"})
    if isinstance(exc, RequestError):  # the request failed, the process is fine
        return Failure(status=500, message=message, error_class=kind)
    return Failure(
        status=500,
        message="internal server error; the server log has the details under this request id",
        error_class="internal_error",
        internal=True,
    )
