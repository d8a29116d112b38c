"""Declarative HTTP tools: a request template the model fills in with its arguments.

Each argument is encoded for the place it goes, never pasted as raw text:

* in the URL **path**, a value is one percent-encoded segment (``/`` becomes ``%2F``; ``.`` and
  ``..`` are refused), so it cannot climb to another path;
* in the URL's **query** or in ``query:``, it is a percent-encoded value (``&``, ``=``, ``#``
  can't start another parameter);
* in a JSON **body** (a mapping or list), ``"{{x}}"`` becomes the typed JSON value and a longer
  string containing placeholders becomes one JSON string — the body is built as data and
  serialised once, never concatenated as text;
* in **headers**, a value may not contain line breaks; ``${NAME}`` in the header template's own
  text reads the environment when the tool runs.

The response body is streamed and read up to ``max_response_bytes``; a longer body is cut there
with a marker. ``allowed_hosts`` is checked for every request (redirects included) before a
connection is opened. A non-2xx answer becomes an :class:`HttpToolError` whose message (status and
the start of the body) is what the model sees.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias
from urllib.parse import quote

import attrs
import httpx2

from ._declarative_core import (
    HttpToolError,
    Placeholder,
    Template,
    Text,
    ToolDefinitionError,
    ToolParam,
    parse_template,
    text_of,
)
from ._registry import ToolHandler
from ._schema import ToolArgumentError

__all__ = ["HostNotAllowed", "HttpImplementation"]

DEFAULT_HTTP_TIMEOUT: Final = 30.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 256 * 1024

_METHOD: Final = re.compile(r"^[A-Z]{1,16}$")
_HEADER_NAME: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST_PATTERN: Final = re.compile(r"^(\*\.)?[a-z0-9.:\[\]_-]+$")
_ERROR_EXCERPT_CHARS: Final = 1000
_ERROR_READ_BYTES: Final = 16 * 1024
_DRAIN_READS: Final = 8
_READ_ERRORS: Final = (httpx2.HTTPError, httpx2.StreamError, httpx2.InvalidURL)


class HostNotAllowed(HttpToolError):
    """An HTTP tool's request (or a redirect) was for a host outside its ``allowed_hosts``;
    it was refused before any connection was made.

    Attributes:
        host: the refused host.
    """

    def __init__(self, message: str, *, tool: str, host: str) -> None:
        super().__init__(message, tool=tool)
        self.host = host


def _normalize_method(value: str) -> str:
    return value.upper() if isinstance(value, str) else value


def _check_method(
    instance: HttpImplementation, attribute: attrs.Attribute[str], value: str
) -> None:
    if not isinstance(value, str) or not _METHOD.match(value):
        raise ToolDefinitionError(
            f"HTTP method {value!r} is invalid; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
            where="implementation.method",
        )


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "timeout":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ToolDefinitionError(
            f"implementation.{attribute.name} must be a positive number, got {value!r}",
            where=f"implementation.{attribute.name}",
        )


def _freeze_hosts(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    return tuple(str(v).strip().lower().rstrip(".") for v in value)


def _check_hosts(
    instance: HttpImplementation, attribute: attrs.Attribute[Any], value: tuple[str, ...] | None
) -> None:
    for host in value or ():
        if not _HOST_PATTERN.match(host):
            raise ToolDefinitionError(
                f"allowed host {host!r} is invalid; write a host name like 'api.github.com', or "
                "'*.example.com' for every subdomain of example.com (no scheme, path or port)",
                where="implementation.allowed_hosts",
            )


def _freeze_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return {} if value is None else dict(value)


@attrs.frozen(kw_only=True)
class HttpImplementation:
    """How a declarative HTTP tool makes its request (the ``implementation: {type: http}`` of
    a YAML tool).

    Placeholders ``{{name}}`` / ``{{.name}}`` refer to the tool's parameters and may appear in
    ``url`` (path and query, not the scheme or host — unless the whole URL is one placeholder),
    header values, ``query`` values and ``body``. A missing optional argument renders as ``""``,
    and a ``query`` value or body value that is exactly ``"{{x}}"`` is left out instead.

    Attributes:
        url: ``http://`` or ``https://`` URL template.
        method: the HTTP method (upper-cased).
        headers: header name → value template; ``${NAME}`` / ``${NAME:-default}`` in a value
            is read from the environment when the tool runs.
        query: query parameter → value template, URL-encoded and added to the URL's own query;
            a value that is exactly ``"{{x}}"`` with a list argument repeats the parameter.
        body: a mapping or list is sent as JSON (rendered structurally); a string is sent as
            text (``text/plain`` unless ``headers`` set a ``Content-Type``, which must not be
            JSON then); ``None`` sends no body.
        timeout: seconds the whole call may take (connect, send, read) before the tool fails
            with :class:`~vega_trio.tools.ToolTimeout`; ``None`` for no limit.
        max_response_bytes: the most of the response body that is read; a longer body is cut
            there with a marker saying so.
        allowed_hosts: when set, the only hosts requests (and redirects) may go to: exact names
            or ``"*.example.com"`` for subdomains. Others fail with :class:`HostNotAllowed`
            before connecting.
        follow_redirects: whether 3xx answers are followed (each hop checked against
            ``allowed_hosts``); otherwise a 3xx is an error result.

    Raises:
        ToolDefinitionError: an invalid method, host pattern, size or timeout.
    """

    url: str
    method: str = attrs.field(default="GET", converter=_normalize_method, validator=_check_method)
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_mapping, hash=False)
    query: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_mapping, hash=False)
    body: Any = attrs.field(default=None, hash=False)
    timeout: float | None = attrs.field(default=DEFAULT_HTTP_TIMEOUT, validator=_check_positive)
    max_response_bytes: int = attrs.field(
        default=DEFAULT_MAX_RESPONSE_BYTES, validator=_check_positive
    )
    allowed_hosts: tuple[str, ...] | None = attrs.field(
        default=None, converter=_freeze_hosts, validator=_check_hosts
    )
    follow_redirects: bool = False

    def bind(
        self,
        tool: str,
        params: Sequence[ToolParam],
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> ToolHandler:
        """Compile the templates against ``params`` and return the tool's handler.

        Args:
            tool: the tool's name (for messages).
            params: the tool's parameters.
            transport: an ``httpx2`` transport to send through (e.g. ``httpx2.MockTransport``
                in tests); the default opens real connections.

        Raises:
            ToolDefinitionError: a template is malformed or names an unknown parameter, or
                the URL/body/headers are invalid.
        """
        return _CompiledRequest.build(self, tool, params, transport).handle


# -- compiled templates ----------------------------------------------------------------------

_Section: TypeAlias = str  # "path" | "query" | "fragment"


@attrs.frozen
class _UrlTemplate:
    template: Template
    sections: tuple[_Section, ...]  # one per placeholder, in order
    verbatim: bool  # the whole URL is one placeholder


def _compile_url(url: str, tool: str, params: Sequence[ToolParam]) -> _UrlTemplate:
    where = "implementation.url"
    template = parse_template(url, where=where, tool=tool, params=params)
    if template.whole is not None:
        return _UrlTemplate(template, ("url",), verbatim=True)
    first = template.parts[0] if template.parts else None
    prefix = first.text if isinstance(first, Text) else ""
    scheme_end = prefix.find("://")
    if scheme_end < 0 or prefix[:scheme_end].lower() not in ("http", "https"):
        raise ToolDefinitionError(
            f"tool {tool!r}: {where} must start with http:// or https:// followed by the host, "
            f"got {url!r}",
            tool=tool,
            where=where,
        )
    state = "authority"
    sections: list[_Section] = []
    for index, part in enumerate(template.parts):
        if isinstance(part, Placeholder):
            if state == "authority":
                raise ToolDefinitionError(
                    f"tool {tool!r}: {where} has the placeholder {part.source!r} in its scheme "
                    "or host; the model must not choose which server is called. Put "
                    "placeholders in the path or query, or make the whole URL one placeholder "
                    "(url: '{{url}}') together with allowed_hosts.",
                    tool=tool,
                    where=where,
                )
            sections.append(state)
            continue
        assert isinstance(part, Text)
        text = part.text[scheme_end + 3 :] if index == 0 else part.text
        for char in text:
            if char == "#":
                state = "fragment"
            elif char == "?" and state in ("authority", "path"):
                state = "query"
            elif char == "/" and state == "authority":
                state = "path"
    return _UrlTemplate(template, tuple(sections), verbatim=False)


def _freeze_body(value: Any, *, tool: str, params: Sequence[ToolParam], where: str) -> Any:
    """The body with every string replaced by its parsed :class:`Template`."""
    if isinstance(value, str):
        return parse_template(value, where=where, tool=tool, params=params)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or "{{" in key:
                raise ToolDefinitionError(
                    f"tool {tool!r}: {where} has the key {key!r}; body keys must be plain "
                    "strings (placeholders go in values)",
                    tool=tool,
                    where=where,
                )
            out[key] = _freeze_body(item, tool=tool, params=params, where=f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [
            _freeze_body(item, tool=tool, params=params, where=f"{where}[{i}]")
            for i, item in enumerate(value)
        ]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ToolDefinitionError(
        f"tool {tool!r}: {where} is a {type(value).__name__} ({value!r}); a JSON body holds "
        "only mappings, lists, strings, numbers, booleans and null",
        tool=tool,
        where=where,
    )


_OMIT: Final = object()


def _render_body(node: Any, arguments: Mapping[str, Any], tool: str) -> Any:
    if isinstance(node, Template):
        whole = node.whole
        if whole is not None:
            value = arguments.get(whole.name)
            return _OMIT if value is None else value
        return node.render(arguments, tool=tool)
    if isinstance(node, dict):
        rendered = {k: _render_body(v, arguments, tool) for k, v in node.items()}
        return {k: v for k, v in rendered.items() if v is not _OMIT}
    if isinstance(node, list):
        items = [_render_body(v, arguments, tool) for v in node]
        return [None if v is _OMIT else v for v in items]
    return node


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allowed:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


@attrs.frozen
class _CompiledRequest:
    tool: str
    spec: HttpImplementation
    url: _UrlTemplate
    headers: tuple[tuple[str, Template], ...]
    query: tuple[tuple[str, Template], ...]
    body: Any  # templates frozen into the body structure, or None
    body_is_json: bool
    transport: httpx2.AsyncBaseTransport | None

    @classmethod
    def build(
        cls,
        spec: HttpImplementation,
        tool: str,
        params: Sequence[ToolParam],
        transport: httpx2.AsyncBaseTransport | None,
    ) -> _CompiledRequest:
        url = _compile_url(spec.url, tool, params)
        headers: list[tuple[str, Template]] = []
        for name, value in spec.headers.items():
            where = f"implementation.headers[{name!r}]"
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise ToolDefinitionError(
                    f"tool {tool!r}: header name {name!r} is invalid (letters, digits and "
                    "!#$%&'*+.^_`|~- only)",
                    tool=tool,
                    where="implementation.headers",
                )
            if isinstance(value, bool | int | float):
                value = text_of(value)
            template = parse_template(value, where=where, tool=tool, params=params, allow_env=True)
            headers.append((name, template))
        query = tuple(
            (
                str(key),
                parse_template(
                    text_of(value) if isinstance(value, bool | int | float) else value,
                    where=f"implementation.query[{key!r}]",
                    tool=tool,
                    params=params,
                ),
            )
            for key, value in spec.query.items()
        )
        body_is_json = isinstance(spec.body, Mapping | list | tuple)
        content_type = next(
            (t.source for n, t in headers if n.lower() == "content-type"), ""
        ).lower()
        if isinstance(spec.body, str) and "json" in content_type:
            raise ToolDefinitionError(
                f"tool {tool!r}: implementation.body is a string but Content-Type is "
                f"{content_type!r}; write the JSON body as a mapping (YAML keys and values) so "
                "that arguments are JSON-encoded, never pasted into JSON text",
                tool=tool,
                where="implementation.body",
            )
        body = (
            None
            if spec.body is None
            else _freeze_body(spec.body, tool=tool, params=params, where="implementation.body")
        )
        return cls(tool, spec, url, tuple(headers), query, body, body_is_json, transport)

    # -- per call -------------------------------------------------------------------------

    def _render_url(self, arguments: Mapping[str, Any]) -> str:
        template = self.url.template
        if self.url.verbatim:
            assert template.whole is not None
            name = template.whole.name
            value = arguments.get(name)
            if not isinstance(value, str) or not value.lower().startswith(("http://", "https://")):
                raise ToolArgumentError(
                    f"invalid arguments for tool {self.tool!r}: argument {name!r} must be an "
                    f"http:// or https:// URL, got {value!r}",
                    tool=self.tool,
                    argument=name,
                )
            return value
        out: list[str] = []
        sections = iter(self.url.sections)
        for part in template.parts:
            if isinstance(part, Text):
                out.append(part.text)
                continue
            assert isinstance(part, Placeholder)
            section = next(sections)
            text = text_of(arguments.get(part.name))
            if section == "path" and text in (".", ".."):
                raise ToolArgumentError(
                    f"invalid arguments for tool {self.tool!r}: argument {part.name!r} is "
                    f"{text!r}, which is not allowed in a URL path",
                    tool=self.tool,
                    argument=part.name,
                )
            out.append(quote(text, safe=""))
        return "".join(out)

    def _render_headers(self, arguments: Mapping[str, Any]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, template in self.headers:
            for placeholder in template.placeholders:
                text = text_of(arguments.get(placeholder.name))
                if any(c in text for c in "\r\n\0"):
                    raise ToolArgumentError(
                        f"invalid arguments for tool {self.tool!r}: argument "
                        f"{placeholder.name!r} goes into the {name} header and must not "
                        "contain line breaks or NUL characters",
                        tool=self.tool,
                        argument=placeholder.name,
                    )
            value = template.render(arguments, tool=self.tool)
            if any(c in value for c in "\r\n\0"):
                raise HttpToolError(
                    f"tool {self.tool!r}: the {name} header would contain a line break or NUL "
                    "character (from an environment variable); fix the variable's value",
                    tool=self.tool,
                )
            headers[name] = value
        if not any(n.lower() == "accept-encoding" for n in headers):
            # NOTE: ask for an uncompressed body: max_response_bytes then bounds what is
            # received, and a small compressed chunk can't inflate into a huge one.
            headers["Accept-Encoding"] = "identity"
        return headers

    def _render_query(self, arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for key, template in self.query:
            whole = template.whole
            if whole is not None:
                value = arguments.get(whole.name)
                if value is None:
                    continue
                if isinstance(value, list | tuple):
                    pairs.extend((key, text_of(v)) for v in value)
                    continue
            pairs.append((key, template.render(arguments, tool=self.tool)))
        return pairs

    async def handle(self, arguments: Mapping[str, Any]) -> str:
        """Send the request for one call and return the response body as text."""
        spec = self.spec
        url = self._render_url(arguments)
        headers = self._render_headers(arguments)
        query = self._render_query(arguments)
        content: bytes | None = None
        if self.body is not None:
            if self.body_is_json:
                rendered = _render_body(self.body, arguments, self.tool)
                content = json.dumps(rendered, ensure_ascii=False).encode("utf-8")
                default_type = "application/json"
            else:
                assert isinstance(self.body, Template)
                content = self.body.render(arguments, tool=self.tool).encode("utf-8")
                default_type = "text/plain; charset=utf-8"
            if not any(n.lower() == "content-type" for n in headers):
                headers["Content-Type"] = default_type
        where = _display(url)
        check_host = self._host_check() if spec.allowed_hosts is not None else None
        hooks: Mapping[str, list[Callable[[httpx2.Request], Any]]] = (
            {"request": [check_host]} if check_host is not None else {}
        )
        try:
            # NOTE: timeout=None: the tool's own timeout (Tool.timeout, a cancel scope around
            # this handler) bounds the whole call; httpx's per-phase timeouts would only add a
            # second, different limit.
            async with httpx2.AsyncClient(
                transport=self.transport,
                timeout=None,
                follow_redirects=spec.follow_redirects,
                event_hooks=hooks,
            ) as client:
                request_url = httpx2.URL(url)
                if query:
                    # NOTE: merged into the URL's own query; httpx's params= would replace it.
                    request_url = request_url.copy_merge_params(tuple(query))
                async with client.stream(
                    spec.method, request_url, headers=headers, content=content
                ) as response:
                    ok = response.is_success
                    limit = spec.max_response_bytes
                    body, truncated = await _read_capped(
                        response, limit if ok else min(limit, _ERROR_READ_BYTES)
                    )
        except _READ_ERRORS as exc:
            raise HttpToolError(
                f"tool {self.tool!r}: {spec.method} {where} failed: {type(exc).__name__}: "
                f"{exc or 'no details'}. Check the URL and that the server is reachable.",
                tool=self.tool,
            ) from exc
        text = _decode(body, response)
        if not ok:
            excerpt = text[:_ERROR_EXCERPT_CHARS]
            if truncated or len(text) > _ERROR_EXCERPT_CHARS:
                excerpt += " [...]"
            hint = (
                " (a redirect: set follow_redirects to follow it)" if response.is_redirect else ""
            )
            raise HttpToolError(
                f"tool {self.tool!r}: {spec.method} {_display(str(response.url))} answered "
                f"HTTP {response.status_code} {_reason(response)}{hint}: "
                f"{excerpt or '(empty body)'}",
                tool=self.tool,
                status_code=response.status_code,
                body_excerpt=excerpt,
            )
        if truncated:
            return (
                f"{text}\n[response truncated: the body is longer than {limit} bytes; only "
                "the first ones are shown]"
            )
        if _is_json(response):
            try:
                return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            except ValueError:
                return text
        return text

    def _host_check(self) -> Callable[[httpx2.Request], Any]:
        allowed = self.spec.allowed_hosts or ()
        tool = self.tool

        # NOTE: async because AsyncClient awaits its event hooks.
        async def check_host(request: httpx2.Request) -> None:  # noqa: ASYNC124
            host = request.url.host
            if not _host_allowed(host, allowed):
                raise HostNotAllowed(
                    f"tool {tool!r} may not call host {host!r} ({request.method} "
                    f"{_display(str(request.url))}); its allowed hosts are: "
                    + ", ".join(repr(h) for h in allowed)
                    + ". The request was not sent. Add the host to allowed_hosts if it should "
                    "be reachable.",
                    tool=tool,
                    host=host,
                )

        return check_host


async def _read_capped(response: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of the body; ``True`` when there was more."""
    body = bytearray()
    chunks = response.aiter_bytes()
    try:
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return bytes(body), False
            room = limit - len(body)
            if len(chunk) > room:
                body += chunk[:room]
                await _abandon(response, chunks)
                return bytes(body), True
            body += chunk
    finally:
        await chunks.aclose()


async def _abandon(response: httpx2.Response, chunks: AsyncGenerator[bytes, None]) -> None:
    """Stop reading a body half-way and finish every generator of httpx2's read chain.

    NOTE: closing ``aiter_bytes()`` is not enough: httpx2's ``AsyncResponseStream`` does not
    close the httpcore2 generator it iterates, and Trio warns (``ResourceWarning``, an error
    under ``-W error``) about async generators garbage-collected unfinished. Once the response
    is closed the next read fails, and that failure finishes the whole chain (the same trick
    as ``vega_trio.llm``'s streaming).
    """
    await response.aclose()
    for _ in range(_DRAIN_READS):
        try:
            await chunks.__anext__()
        except StopAsyncIteration:
            return
        except Exception:  # the expected read error on a closed response
            return


def _decode(body: bytes, response: httpx2.Response) -> str:
    encoding = response.charset_encoding or "utf-8"
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _is_json(response: httpx2.Response) -> bool:
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _display(url: str) -> str:
    """The URL without its query and fragment, for messages."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _reason(response: httpx2.Response) -> str:
    if response.reason_phrase:
        return response.reason_phrase
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""
