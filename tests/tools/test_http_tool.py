"""Declarative HTTP tools against a real server on loopback (and httpx2.MockTransport)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx2
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tools._http_server import Received, Reply, open_loopback_server
from vega_trio.tools import (
    DeclarativeTool,
    HostNotAllowed,
    HttpImplementation,
    HttpToolError,
    MissingEnvironmentVariable,
    Tool,
    ToolArgumentError,
    ToolCall,
    ToolParam,
    Tools,
    ToolTimeout,
)

LOOPBACK = ["127.0.0.1"]
"""The allow-list that lets a tool reach the loopback test server (refused by default)."""


def make(url: str, params: list[ToolParam] | None = None, **options: Any) -> DeclarativeTool:
    """An HTTP tool with one string parameter ``x`` (unless ``params`` are given)."""
    return DeclarativeTool(
        name="fetch",
        description="Fetch something.",
        params=[ToolParam(name="x")] if params is None else params,
        implementation=HttpImplementation(url=url, **options),
    )


def ok(body: bytes = b"ok", content_type: str = "text/plain") -> Reply:
    """A 200 reply."""
    return Reply(body=body, headers=(("content-type", content_type),))


async def call(tool: Tool, arguments: dict[str, Any]) -> str:
    """Invoke the tool under a generous real-time guard."""
    with trio.fail_after(10):
        return str(await tool.invoke(arguments))


async def test_method_headers_and_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The method and headers are sent; ``${ENV}`` and ``${ENV:-default}`` in header templates
    are read when the tool runs, and placeholders fill header values."""
    monkeypatch.setenv("VEGA_TEST_TOKEN", "tok-123")
    async with open_loopback_server(lambda r: ok()) as server:
        tool = make(
            f"{server.url}/things",
            allowed_hosts=LOOPBACK,
            method="delete",
            headers={
                "Authorization": "Bearer ${VEGA_TEST_TOKEN}",
                "X-Region": "${VEGA_TEST_UNSET_REGION:-eu}",
                "X-Thing": "thing-{{.x}}",
            },
        ).to_tool()
        assert await call(tool, {"x": "42"}) == "ok"
    (request,) = server.requests
    assert request.method == "DELETE"
    assert request.target == "/things"
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.headers["x-region"] == "eu"
    assert request.headers["x-thing"] == "thing-42"


async def test_env_is_read_at_call_time_and_values_are_never_expanded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A changed variable is seen by the next call; a *value* of ``${SECRET}`` is sent as
    that text, so the model can't read the environment."""
    monkeypatch.setenv("VEGA_TEST_SECRET", "hunter2")
    monkeypatch.setenv("VEGA_TEST_TOKEN", "first")
    async with open_loopback_server(lambda r: ok()) as server:
        tool = make(
            f"{server.url}/",
            allowed_hosts=LOOPBACK,
            headers={"X-Token": "${VEGA_TEST_TOKEN}", "X-Value": "{{x}}"},
        ).to_tool()
        await call(tool, {"x": "${VEGA_TEST_SECRET}"})
        monkeypatch.setenv("VEGA_TEST_TOKEN", "second")
        await call(tool, {"x": "$VEGA_TEST_SECRET"})
    first, second = server.requests
    assert (first.headers["x-token"], first.headers["x-value"]) == (
        "first",
        "${VEGA_TEST_SECRET}",
    )
    assert (second.headers["x-token"], second.headers["x-value"]) == (
        "second",
        "$VEGA_TEST_SECRET",
    )


async def test_missing_env_variable_is_named_and_nothing_is_sent() -> None:
    """A ``${NAME}`` that is not set fails the call with the variable's name, before any
    request."""
    async with open_loopback_server(lambda r: ok()) as server:
        tool = make(
            f"{server.url}/",
            allowed_hosts=LOOPBACK,
            headers={"Authorization": "${VEGA_TEST_NOT_SET}"},
        ).to_tool()
        with pytest.raises(MissingEnvironmentVariable) as caught:
            await call(tool, {"x": "a"})
    assert caught.value.variable == "VEGA_TEST_NOT_SET"
    assert "'VEGA_TEST_NOT_SET'" in str(caught.value)
    assert "implementation.headers['Authorization']" in str(caught.value)
    assert server.connections == 0


async def test_line_breaks_in_header_values_are_refused() -> None:
    """A value can't add headers (CR/LF injection): it is an argument error."""
    async with open_loopback_server(lambda r: ok()) as server:
        tool = make(
            f"{server.url}/", allowed_hosts=LOOPBACK, headers={"X-Value": "{{x}}"}
        ).to_tool()
        with pytest.raises(ToolArgumentError, match=r"must not contain line breaks"):
            await call(tool, {"x": "a\r\nX-Admin: yes"})
    assert server.connections == 0


async def test_url_path_and_query_values_are_percent_encoded() -> None:
    """In the path a value is one segment (``/`` encoded); in the URL's query a value can't
    start another parameter; the ``query`` mapping is encoded too."""
    params = [ToolParam(name="owner"), ToolParam(name="q"), ToolParam(name="page", type="integer")]
    async with open_loopback_server(lambda r: ok()) as server:
        tool = make(
            f"{server.url}/repos/{{{{.owner}}}}/issues?q={{{{q}}}}&fixed=1",
            allowed_hosts=LOOPBACK,
            params=params,
            query={"page": "{{page}}", "label": "bug {{q}}"},
        ).to_tool()
        await call(tool, {"owner": "a/b c?d#e", "q": "x&admin=1 +#", "page": 2})
    (request,) = server.requests
    path, _, query = request.target.partition("?")
    assert path == "/repos/a%2Fb%20c%3Fd%23e/issues"
    assert unquote(path.split("/")[2]) == "a/b c?d#e"
    assert parse_qsl(query) == [
        ("q", "x&admin=1 +#"),
        ("fixed", "1"),
        ("page", "2"),
        ("label", "bug x&admin=1 +#"),
    ]


@pytest.mark.parametrize("value", [".", ".."])
async def test_dot_segments_are_refused_in_the_path(value: str) -> None:
    """``..`` as a path value would climb up the path: refused as an argument error."""
    tool = make("https://api.test/files/{{x}}/raw").to_tool()
    with pytest.raises(ToolArgumentError, match=r"not allowed in a URL path"):
        await tool.invoke({"x": value})


async def test_query_mapping_omits_missing_values_and_repeats_lists() -> None:
    """A query value that is exactly one placeholder is left out when the optional argument
    is missing, and repeated for a list."""
    params = [
        ToolParam(name="tags", type="array", required=False),
        ToolParam(name="limit", type="integer", required=False),
    ]
    async with open_loopback_server(lambda r: ok()) as server:
        tool = make(
            f"{server.url}/search",
            allowed_hosts=LOOPBACK,
            params=params,
            query={"tag": "{{tags}}", "limit": "{{limit}}"},
        ).to_tool()
        await call(tool, {"tags": ["a b", "c&d"]})
        await call(tool, {})
    first, second = server.requests
    assert parse_qsl(urlsplit(first.target).query) == [("tag", "a b"), ("tag", "c&d")]
    assert second.target == "/search"


async def test_json_body_is_built_as_data() -> None:
    """``"{{x}}"`` becomes the typed JSON value; placeholders inside longer strings are
    interpolated into one JSON string; quotes, backslashes and newlines are escaped; a missing
    optional value drops its key."""
    params = [
        ToolParam(name="title"),
        ToolParam(name="count", type="integer"),
        ToolParam(name="draft", type="boolean", default=False),
        ToolParam(name="labels", type="array"),
        ToolParam(name="meta", type="object", required=False),
        ToolParam(name="assignee", required=False),
    ]
    async with open_loopback_server(lambda r: ok(b"{}", "application/json")) as server:
        tool = make(
            f"{server.url}/issues",
            allowed_hosts=LOOPBACK,
            params=params,
            method="POST",
            body={
                "title": "{{.title}}",
                "body": 'Title was "{{title}}" ({{count}} items)',
                "count": "{{count}}",
                "draft": "{{draft}}",
                "labels": "{{labels}}",
                "meta": "{{meta}}",
                "assignee": "{{assignee}}",
                "fixed": {"n": 1, "list": ["{{count}}", "{{assignee}}", None, True]},
            },
        ).to_tool()
        title = 'He said "hi"\n}, "admin": true, {"x": \\'
        await call(tool, {"title": title, "count": 3, "labels": ["a", "b"]})
    (request,) = server.requests
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "title": title,
        "body": f'Title was "{title}" (3 items)',
        "count": 3,
        "draft": False,
        "labels": ["a", "b"],
        "fixed": {"n": 1, "list": [3, None, None, True]},
    }


async def test_text_body_is_sent_as_text() -> None:
    """A string body is interpolated as text and sent as text/plain."""
    async with open_loopback_server(lambda r: ok()) as server:
        tool = make(
            f"{server.url}/notes", allowed_hosts=LOOPBACK, method="PUT", body="note: {{x}}"
        ).to_tool()
        await call(tool, {"x": 'a "b"'})
    (request,) = server.requests
    assert request.body == b'note: a "b"'
    assert request.headers["content-type"] == "text/plain; charset=utf-8"


async def test_json_response_is_pretty_and_text_as_is() -> None:
    """A JSON body comes back indented for the model; other bodies unchanged."""
    replies = {
        "/json": ok(b'{"temp":21,"city":"Oslo"}', "application/json; charset=utf-8"),
        "/text": ok(b"plain  text\n"),
    }
    async with open_loopback_server(lambda r: replies[r.target]) as server:
        tool = make(f"{server.url}/{{{{x}}}}", allowed_hosts=LOOPBACK).to_tool()
        assert await call(tool, {"x": "json"}) == '{\n  "temp": 21,\n  "city": "Oslo"\n}'
        assert await call(tool, {"x": "text"}) == "plain  text\n"


async def test_response_size_is_capped_while_streaming() -> None:
    """An endless body is read only up to max_response_bytes, then the connection is dropped
    and the text is marked as truncated."""
    chunk = b"0123456789" * 100
    async with open_loopback_server(lambda r: Reply(body=chunk, endless=True)) as server:
        tool = make(f"{server.url}/big", allowed_hosts=LOOPBACK, max_response_bytes=2500).to_tool()
        out = await call(tool, {"x": "a"})
    body, marker = out.split("\n", 1)
    assert body == (chunk * 3)[:2500].decode()
    assert marker.startswith("[response truncated: the body is longer than 2500 bytes")


async def test_timeout_against_a_stalled_server() -> None:
    """A server that never answers makes the tool fail with ToolTimeout after its timeout."""
    async with open_loopback_server(lambda r: Reply(stall=True)) as server:
        tool = make(f"{server.url}/slow", allowed_hosts=LOOPBACK, timeout=0.3).to_tool()
        started = trio.current_time()
        with pytest.raises(ToolTimeout, match=r"0.3 s timeout"):
            await call(tool, {"x": "a"})
        assert 0.3 <= trio.current_time() - started < 5
    assert len(server.requests) == 1


async def test_host_allow_list_refuses_before_connecting() -> None:
    """A host outside allowed_hosts is refused without opening a connection; an allowed one
    (exact or by ``*.`` wildcard) goes through."""
    async with open_loopback_server(lambda r: ok()) as server:
        refused = make(f"{server.url}/", allowed_hosts=["localhost", "*.127.0.0.1"]).to_tool()
        with pytest.raises(HostNotAllowed) as caught:
            await call(refused, {"x": "a"})
        assert server.connections == 0
        allowed = make(f"{server.url}/", allowed_hosts=["example.com", "127.0.0.1"]).to_tool()
        assert await call(allowed, {"x": "a"}) == "ok"
    assert caught.value.host == "127.0.0.1"
    assert "'localhost', '*.127.0.0.1'" in str(caught.value)
    assert "was not sent" in str(caught.value)


async def test_wildcard_host_matches_subdomains_only() -> None:
    """``*.example.com`` allows ``api.example.com`` but not ``example.com`` or
    ``badexample.com``."""
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.host)
        return httpx2.Response(200, text="ok")

    tool = make("{{x}}", allowed_hosts=["*.example.com"]).to_tool(
        http_transport=httpx2.MockTransport(handler)
    )
    assert await call(tool, {"x": "https://api.example.com/a"}) == "ok"
    for url in ("https://example.com/", "https://badexample.com/", "https://example.com.evil/"):
        with pytest.raises(HostNotAllowed):
            await call(tool, {"x": url})
    assert seen == ["api.example.com"]


async def test_redirect_to_another_host_is_refused() -> None:
    """With follow_redirects, every hop is checked against allowed_hosts."""

    def handler(request: Received) -> Reply:
        port = request.headers["host"].rsplit(":", 1)[1]
        return Reply(status=302, headers=(("location", f"http://localhost:{port}/next"),))

    async with open_loopback_server(handler) as server:
        tool = make(f"{server.url}/start", allowed_hosts=["127.0.0.1"], follow_redirects=True)
        with pytest.raises(HostNotAllowed, match=r"host 'localhost'"):
            await call(tool.to_tool(), {"x": "a"})
    assert [r.target for r in server.requests] == ["/start"]


async def test_redirect_not_followed_is_an_error_with_a_hint() -> None:
    """Without follow_redirects a 3xx is an error that says how to follow it."""
    reply = Reply(status=301, headers=(("location", "/elsewhere"),))
    async with open_loopback_server(lambda r: reply) as server:
        with pytest.raises(HttpToolError, match=r"HTTP 301 .*set follow_redirects"):
            await call(make(f"{server.url}/old", allowed_hosts=LOOPBACK).to_tool(), {"x": "a"})


async def test_non_2xx_is_an_error_result_with_status_and_body_excerpt() -> None:
    """A 404 becomes an error the model sees: method, URL, status and the start of the body
    (long bodies cut)."""
    body = b'{"message": "Not Found"}' + b"." * 5000
    async with open_loopback_server(lambda r: Reply(status=404, body=body)) as server:
        tools = Tools()
        tools.register(
            make(f"{server.url}/repos/{{{{x}}}}?token=abc", allowed_hosts=LOOPBACK).to_tool()
        )
        with trio.fail_after(10), pytest.raises(HttpToolError) as caught:
            await tools.execute(ToolCall(id="1", name="fetch", arguments={"x": "nope"}))
    error = caught.value
    assert error.status_code == 404
    assert error.body_excerpt.startswith('{"message": "Not Found"}')
    assert error.body_excerpt.endswith("[...]")
    assert len(error.body_excerpt) < 1100
    message = str(error)
    assert f"GET {server.url}/repos/nope answered HTTP 404 Not Found" in message
    assert "token=abc" not in message


async def test_unreachable_server_is_an_error_result() -> None:
    """A refused connection is an HttpToolError saying the server could not be reached."""
    async with open_loopback_server(lambda r: ok()) as server:
        url = server.url
    tool = make(f"{url}/", allowed_hosts=LOOPBACK).to_tool()
    with pytest.raises(HttpToolError, match=r"failed: ConnectError.*reachable") as caught:
        await call(tool, {"x": "a"})
    assert caught.value.status_code is None


async def test_whole_url_placeholder_must_be_http() -> None:
    """``url: '{{url}}'`` lets the model pick the URL, but only http(s)."""
    tool = make("{{x}}").to_tool(
        http_transport=httpx2.MockTransport(lambda r: httpx2.Response(200, text=str(r.url)))
    )
    assert await call(tool, {"x": "https://a.test/p?q=1"}) == "https://a.test/p?q=1"
    for url in ("file:///etc/passwd", "ftp://a.test/", "a.test"):
        with pytest.raises(ToolArgumentError, match=r"must be an http:// or https:// URL"):
            await call(tool, {"x": url})


@settings(max_examples=60, deadline=None)
@given(
    segment=st.text(st.characters(exclude_categories=["Cs"]), min_size=1).filter(
        lambda s: s not in (".", "..")
    ),
    title=st.text(st.characters(exclude_categories=["Cs"])),
)
async def test_any_value_round_trips_through_path_and_body(segment: str, title: str) -> None:
    """Property: whatever text the model sends, the server decodes exactly that text from
    the path segment and the JSON body."""
    received: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        received.append(request)
        return httpx2.Response(200, text="ok")

    tool = make(
        "https://api.test/items/{{x}}/view",
        params=[ToolParam(name="x"), ToolParam(name="title")],
        method="POST",
        body={"title": "{{title}}", "both": "{{x}}|{{title}}"},
    ).to_tool(http_transport=httpx2.MockTransport(handler))
    await tool.invoke({"x": segment, "title": title})
    (request,) = received
    raw_path = request.url.raw_path.decode("ascii")
    assert raw_path.startswith("/items/") and raw_path.endswith("/view")
    assert unquote(raw_path.split("/")[2]) == segment
    assert json.loads(request.content) == {"title": title, "both": f"{segment}|{title}"}
