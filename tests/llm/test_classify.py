"""Error classification (SPEC §3.1) from the SDK's own exception types."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import anthropic
import httpx2
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from vega_trio._errors import ErrorClass, LLMError
from vega_trio.llm._classify import classify, retry_after_from_headers, to_llm_error

URL = "https://api.anthropic.com/v1/messages"


def make_request() -> httpx2.Request:
    return httpx2.Request("POST", URL)


def status_error(
    cls: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
    message: str = "something went wrong",
    *,
    error_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> anthropic.APIStatusError:
    """An SDK status error as the SDK builds it from an API error response."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    body = {"type": "error", "error": error}
    response = httpx2.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"request-id": "req_123", **(headers or {})},
        request=make_request(),
    )
    return cls(f"Error code: {status} - {body}", response=response, body=body)


@pytest.mark.parametrize(
    ("cls", "status", "error_type", "expected"),
    [
        (anthropic.BadRequestError, 400, "invalid_request_error", ErrorClass.INVALID_REQUEST),
        (anthropic.AuthenticationError, 401, "authentication_error", ErrorClass.AUTHENTICATION),
        (anthropic.PaymentRequiredError, 402, "billing_error", ErrorClass.BUDGET_EXCEEDED),
        (anthropic.PermissionDeniedError, 403, "permission_error", ErrorClass.AUTHENTICATION),
        (anthropic.NotFoundError, 404, "not_found_error", ErrorClass.INVALID_REQUEST),
        (anthropic.RequestTimeoutError, 408, "timeout_error", ErrorClass.TIMEOUT),
        (anthropic.ContentTooLargeError, 413, "request_too_large", ErrorClass.INVALID_REQUEST),
        (
            anthropic.UnprocessableEntityError,
            422,
            "invalid_request_error",
            ErrorClass.INVALID_REQUEST,
        ),
        (anthropic.RateLimitError, 429, "rate_limit_error", ErrorClass.RATE_LIMIT),
        (anthropic.InternalServerError, 500, "api_error", ErrorClass.TEMPORARY),
        (anthropic.InternalServerError, 502, "api_error", ErrorClass.TEMPORARY),
        (anthropic.ServiceUnavailableError, 503, "overloaded_error", ErrorClass.OVERLOADED),
        (anthropic.GatewayTimeoutError, 504, "timeout_error", ErrorClass.TIMEOUT),
        (anthropic.OverloadedError, 529, "overloaded_error", ErrorClass.OVERLOADED),
    ],
)
def test_status_errors_are_classified_by_status(
    cls: type[anthropic.APIStatusError], status: int, error_type: str, expected: ErrorClass
) -> None:
    """Each HTTP status maps to the class SPEC §3.1 gives it."""
    assert classify(status_error(cls, status, error_type)) is expected


def test_status_wins_over_misleading_message_text() -> None:
    """The status code decides; message text is only a last resort."""
    exc = status_error(
        anthropic.BadRequestError, 400, "invalid_request_error", "rate limit overloaded timeout"
    )
    assert classify(exc) is ErrorClass.INVALID_REQUEST


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (anthropic.EnforcedSpendLimitReachedError, 429, "enforced_spend_limit_reached"),
        (anthropic.ContractSpendLimitReachedError, 429, "contract_spend_limit_reached"),
        (
            anthropic.LinkedOrganizationSpendLimitReachedError,
            402,
            "linked_organization_spend_limit_reached",
        ),
        # A code newer than the SDK's table arrives as a plain RateLimitError.
        (anthropic.RateLimitError, 429, "enforced_spend_limit_reached"),
    ],
)
def test_spend_cap_429_is_budget_exceeded(
    cls: type[anthropic.APIStatusError], status: int, code: str
) -> None:
    """A spend-cap error code turns a 429 into BUDGET_EXCEEDED, not RATE_LIMIT."""
    exc = status_error(cls, status, "rate_limit_error", "limit reached", error_code=code)
    assert classify(exc) is ErrorClass.BUDGET_EXCEEDED


def test_ramp_limit_429_stays_a_rate_limit() -> None:
    """A ramp limit (usage growing too fast) is a rate limit: waiting cures it."""
    exc = status_error(
        anthropic.RampLimitExceededError, 429, "rate_limit_error", error_code="ramp_limit_exceeded"
    )
    assert classify(exc) is ErrorClass.RATE_LIMIT


@pytest.mark.parametrize(
    ("cls", "status", "error_type", "message"),
    [
        (
            anthropic.RateLimitError,
            429,
            "rate_limit_error",
            "You have reached your specified API usage limits.",
        ),
        (
            anthropic.BadRequestError,
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API.",
        ),
        (anthropic.RateLimitError, 429, "billing_error", "billing problem"),
    ],
)
def test_billing_failures_without_a_code_are_budget_exceeded(
    cls: type[anthropic.APIStatusError], status: int, error_type: str, message: str
) -> None:
    """Billing failures the API reports with a generic status are still BUDGET_EXCEEDED."""
    assert classify(status_error(cls, status, error_type, message)) is ErrorClass.BUDGET_EXCEEDED


def test_connection_error_is_temporary() -> None:
    """A connection failure is TEMPORARY."""
    assert classify(anthropic.APIConnectionError(request=make_request())) is ErrorClass.TEMPORARY


def test_sdk_timeout_is_timeout() -> None:
    """The SDK's APITimeoutError (a connection error subclass) is TIMEOUT."""
    assert classify(anthropic.APITimeoutError(request=make_request())) is ErrorClass.TIMEOUT


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (trio.TooSlowError(), ErrorClass.TIMEOUT),
        (TimeoutError(), ErrorClass.TIMEOUT),
        (httpx2.ReadTimeout("read timed out"), ErrorClass.TIMEOUT),
        (httpx2.ConnectTimeout("connect timed out"), ErrorClass.TIMEOUT),
        (httpx2.RemoteProtocolError("incomplete chunked read"), ErrorClass.TEMPORARY),
        (httpx2.ReadError("connection reset"), ErrorClass.TEMPORARY),
        (ConnectionResetError(), ErrorClass.TEMPORARY),
        (anthropic.CredentialsError("no credentials"), ErrorClass.AUTHENTICATION),
    ],
)
def test_transport_failures(exc: BaseException, expected: ErrorClass) -> None:
    """Failures below the SDK (httpx2, sockets, trio deadlines) are classified too."""
    assert classify(exc) is expected


def stream_error(error_type: str, message: str = "boom") -> anthropic.APIStatusError:
    """What an SSE `error` event becomes: a status error on the 200 stream response."""
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    response = httpx2.Response(200, request=make_request())
    return anthropic.APIStatusError(json.dumps(body), response=response, body=body)


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("overloaded_error", ErrorClass.OVERLOADED),
        ("rate_limit_error", ErrorClass.RATE_LIMIT),
        ("api_error", ErrorClass.TEMPORARY),
        ("timeout_error", ErrorClass.TIMEOUT),
        ("invalid_request_error", ErrorClass.INVALID_REQUEST),
        ("authentication_error", ErrorClass.AUTHENTICATION),
        ("billing_error", ErrorClass.BUDGET_EXCEEDED),
        ("never_heard_of_it", ErrorClass.TEMPORARY),
    ],
)
def test_mid_stream_error_events_are_classified_by_error_type(
    error_type: str, expected: ErrorClass
) -> None:
    """An error event arrives on a 200 response: its error.type decides."""
    assert classify(stream_error(error_type)) is expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("upstream is overloaded", ErrorClass.OVERLOADED),
        ("rate limit hit", ErrorClass.RATE_LIMIT),
        ("the operation timed out", ErrorClass.TIMEOUT),
        ("invalid api key", ErrorClass.AUTHENTICATION),
        ("monthly spend limit reached", ErrorClass.BUDGET_EXCEEDED),
        ("something odd", ErrorClass.TEMPORARY),
    ],
)
def test_message_text_is_the_last_resort(message: str, expected: ErrorClass) -> None:
    """With no type or status to go on, the message text decides (default TEMPORARY)."""
    assert classify(RuntimeError(message)) is expected


def test_an_llm_error_keeps_its_class() -> None:
    """Classifying an LLMError returns the class it already has."""
    exc = LLMError("x", error_class=ErrorClass.BUDGET_EXCEEDED)
    assert classify(exc) is ErrorClass.BUDGET_EXCEEDED
    assert to_llm_error(exc) is exc


def test_to_llm_error_carries_status_retry_after_and_cause() -> None:
    """to_llm_error keeps the status, the retry-after wait and the SDK error as cause."""
    exc = status_error(
        anthropic.RateLimitError, 429, "rate_limit_error", "slow down", headers={"retry-after": "7"}
    )
    error = to_llm_error(exc)
    assert error.error_class is ErrorClass.RATE_LIMIT
    assert error.status_code == 429
    assert error.retry_after == 7.0
    assert error.__cause__ is exc
    assert error.retryable
    text = str(error)
    assert "429" in text
    assert URL in text  # where
    assert "slow down" in text  # what the server said
    assert "req_123" in text
    assert "retry" in text  # what to do


def test_to_llm_error_prefers_retry_after_ms() -> None:
    """retry-after-ms (milliseconds) is more precise and wins over retry-after."""
    exc = status_error(
        anthropic.OverloadedError,
        529,
        "overloaded_error",
        headers={"retry-after": "3", "retry-after-ms": "1500"},
    )
    assert to_llm_error(exc).retry_after == 1.5


def test_to_llm_error_for_a_mid_stream_error_after_output() -> None:
    """A stream error keeps output_started; the 200 of the stream is not its status."""
    error = to_llm_error(stream_error("overloaded_error"), output_started=True)
    assert error.error_class is ErrorClass.OVERLOADED
    assert error.output_started
    assert error.status_code is None
    assert not error.retryable  # output reached the caller: never retried transparently
    assert "after streamed output had started" in str(error)


def test_to_llm_error_for_a_connection_error_names_the_url() -> None:
    """Errors without a status still say where the call went."""
    error = to_llm_error(anthropic.APIConnectionError(request=make_request()))
    assert error.error_class is ErrorClass.TEMPORARY
    assert error.status_code is None
    assert URL in str(error)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "whenever"}, None),
        ({"content-type": "application/json"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_from_headers(headers: dict[str, str] | None, expected: float | None) -> None:
    """retry-after-ms wins, then retry-after seconds; junk is ignored."""
    assert retry_after_from_headers(headers) == expected


def test_retry_after_as_an_http_date() -> None:
    """retry-after may be an HTTP date: the wait is the time until then."""
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after_from_headers({"retry-after": when})
    assert wait is not None
    assert 27.0 <= wait <= 31.0


def test_retry_after_reads_httpx2_headers() -> None:
    """httpx2.Headers (case-insensitive, as the SDK hands them) work as input."""
    assert retry_after_from_headers(httpx2.Headers({"Retry-After-Ms": "100"})) == 0.1


@given(st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms", "x"]), st.text()))
def test_retry_after_never_raises_and_is_never_negative(headers: dict[str, str]) -> None:
    """Any header values at all give None or a wait >= 0."""
    wait = retry_after_from_headers(headers)
    assert wait is None or wait >= 0.0


@given(st.integers(min_value=400, max_value=599), st.text(max_size=40))
def test_every_error_status_gets_a_class(status: int, message: str) -> None:
    """classify is total over error statuses and bodies."""
    body = {"type": "error", "error": {"type": "api_error", "message": message}}
    response = httpx2.Response(status, request=make_request())
    exc = anthropic.APIStatusError(message, response=response, body=body)
    assert isinstance(classify(exc), ErrorClass)
