"""Every response a server test receives from a vega-trio server is checked against the
server's OpenAPI document (route, status, media type, JSON body, and each SSE event that
``_helpers.parse_sse`` reads): a response the document does not describe fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import httpx2
import pytest

from ._openapi_check import CHECK_EVENT, default_checker


@attrs.define
class CheckedResponses:
    """What the hook saw in one test."""

    checked: list[str] = attrs.field(factory=list)
    failures: list[str] = attrs.field(factory=list)


def _from_vega(request: httpx2.Request, response: httpx2.Response) -> bool:
    # NOTE: every vega-trio response has a request id; the path test also catches a
    # response of ours without one. Other servers (the fake model servers) are not ours.
    path = request.url.path
    return (
        "X-Request-ID" in response.headers
        or path in ("/healthz", "/metrics")
        or path == "/api"
        or path.startswith("/api/")
    )


@pytest.fixture(autouse=True)
def checked_responses(monkeypatch: pytest.MonkeyPatch) -> Iterator[CheckedResponses]:
    """Check every response of a vega-trio server this test receives over httpx2."""
    checker = default_checker()
    seen = CheckedResponses()
    original = httpx2.AsyncClient.send

    async def send(
        self: httpx2.AsyncClient, request: httpx2.Request, *args: Any, **kwargs: Any
    ) -> httpx2.Response:
        response = await original(self, request, *args, **kwargs)
        if not _from_vega(request, response):
            return response
        content_type = response.headers.get("content-type", "")
        streamed = bool(kwargs.get("stream", False))
        body: bytes | None = None
        if not streamed:
            body = response.content
        elif content_type.startswith("application/json"):
            body = await response.aread()  # a JSON reply is finite: read it for the check
        summary = f"{request.method} {request.url.path} -> {response.status_code}"
        try:
            checker.check(
                request.method, request.url.path, response.status_code, content_type, body
            )
        except AssertionError as exc:
            seen.failures.append(str(exc))
            raise
        seen.checked.append(summary)
        if streamed and content_type.startswith("text/event-stream"):

            def check_event(event: str, data: str) -> None:
                try:
                    checker.check_event(
                        request.method, request.url.path, response.status_code, event, data
                    )
                except AssertionError as exc:
                    seen.failures.append(str(exc))
                    raise
                seen.checked.append(f"{summary} event {event}")

            response.extensions[CHECK_EVENT] = check_event
        return response

    monkeypatch.setattr(httpx2.AsyncClient, "send", send)
    yield seen
    if seen.failures:
        pytest.fail("responses not described by the OpenAPI document:\n" + "\n".join(seen.failures))
