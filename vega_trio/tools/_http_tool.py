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
with a marker. A non-2xx answer becomes an :class:`HttpToolError` whose message (status and the
start of the body) is what the model sees.

Where a request may go (SPEC §5.3), checked for the first request and for every redirect, which
is followed here hop by hop (never by httpx2):

1. the scheme is ``http`` or ``https``;
2. with ``allowed_hosts``, the URL's host is one of them (:class:`~._address_policy.AllowList`);
3. the host is resolved **once** (``trio.socket.getaddrinfo``, so
   ``trio.socket.set_custom_hostname_resolver`` is honoured) and every address it resolves to is
   checked: one loopback, private, link-local, CGNAT, multicast, unspecified, reserved or cloud
   metadata address (:func:`~._address_policy.classify`) refuses the request, unless
   ``allowed_hosts`` names the host or covers the address;
4. the connection is made to a checked address — the URL is rewritten to it, while the ``Host``
   header and the TLS server name (SNI and certificate check) stay the original host's — so a
   DNS answer that changes between the check and the connection (DNS rebinding) can't redirect
   it.

A transport passed to ``bind`` makes its own connections: steps 1, 2 and the checks that need no
lookup (literal addresses, metadata and ``localhost`` names) still apply.
"""

from __future__ import annotations

import http
import ipaddress
import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import attrs
import httpx2
import trio

from .._errors import HostNotAllowed
from .._redact import register_secret
from ._address_policy import (
    AllowList,
    IPAddress,
    classify,
    forbidden_name,
    literal_address,
    normalize_entry,
)
from ._declarative_core import (
    EnvVar,
    HttpToolError,
    Placeholder,
    Template,
    Text,
    ToolDefinitionError,
    ToolParam,
    expand_env,
    parse_template,
    text_of,
)
from ._http_template import UrlTemplate, compile_url, freeze_body, render_body
from ._registry import ToolHandler
from ._schema import ToolArgumentError

__all__ = ["HostNotAllowed", "HttpImplementation"]

DEFAULT_HTTP_TIMEOUT: Final = 30.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 256 * 1024

_METHOD: Final = re.compile(r"^[A-Z]{1,16}$")
_HEADER_NAME: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_REDIRECTS: Final = 10
_ERROR_EXCERPT_CHARS: Final = 1000
_ERROR_READ_BYTES: Final = 16 * 1024
_DRAIN_READS: Final = 8
_READ_ERRORS: Final = (httpx2.HTTPError, httpx2.StreamError, httpx2.InvalidURL)


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
    return tuple(normalize_entry(v) for v in value)


def _check_hosts(
    instance: HttpImplementation, attribute: attrs.Attribute[Any], value: tuple[str, ...] | None
) -> None:
    try:
        AllowList.parse(value or ())
    except ValueError as problem:
        raise ToolDefinitionError(
            f"allowed host {problem}; write a host name like 'api.github.com', "
            "'*.example.com' for every subdomain of example.com, an address ('10.0.0.5', "
            "'::1') or a network ('10.0.0.0/8', 'fd00::/8'), optionally with ':port' (no "
            "scheme or path)",
            where="implementation.allowed_hosts",
        ) from None


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
        allowed_hosts: when set, the only hosts requests (and redirects) may go to: exact
            names (``"api.github.com"``), ``"*.example.com"`` for subdomains, addresses
            (``"10.0.0.5"``, ``"::1"``) and networks (``"10.0.0.0/8"``); a name or address
            may end in ``:port``. With or without it, loopback, private, link-local, CGNAT,
            multicast, unspecified, reserved and cloud metadata destinations are refused
            unless an entry names the host exactly or covers its address. Refusals fail
            with :class:`HostNotAllowed` before connecting.
        follow_redirects: whether 3xx answers are followed (at most ``MAX_REDIRECTS``, each
            hop checked like the first request); otherwise a 3xx is an error result.

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
                in tests); the default opens real connections, to the checked addresses. A
                transport of your own makes its own connections: the allow-list, literal
                address and host name checks still apply, the resolved-address check does not.

        Raises:
            ToolDefinitionError: a template is malformed or names an unknown parameter, or
                the URL/body/headers are invalid.
        """
        return _CompiledRequest.build(self, tool, params, transport).handle


@attrs.frozen
class _CompiledRequest:
    tool: str
    spec: HttpImplementation
    url: UrlTemplate
    headers: tuple[tuple[str, Template], ...]
    query: tuple[tuple[str, Template], ...]
    body: Any  # templates frozen into the body structure, or None
    body_is_json: bool
    transport: httpx2.AsyncBaseTransport | None
    allow: AllowList | None
    # lower-cased names of the headers that read the environment (credentials, usually):
    # they are not sent on to another origin when a redirect leads there
    env_headers: frozenset[str]

    @classmethod
    def build(
        cls,
        spec: HttpImplementation,
        tool: str,
        params: Sequence[ToolParam],
        transport: httpx2.AsyncBaseTransport | None,
    ) -> _CompiledRequest:
        url = compile_url(spec.url, tool, params)
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
            else freeze_body(spec.body, tool=tool, params=params, where="implementation.body")
        )
        allow = None if spec.allowed_hosts is None else AllowList.parse(spec.allowed_hosts)
        env_headers = frozenset(
            name.lower() for name, t in headers if any(isinstance(p, EnvVar) for p in t.parts)
        )
        return cls(
            tool,
            spec,
            url,
            tuple(headers),
            query,
            body,
            body_is_json,
            transport,
            allow,
            env_headers,
        )

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
            for part in template.parts:
                if isinstance(part, EnvVar):
                    # NOTE: a value read from the environment for a header is a credential
                    # more often than not; redaction masks it wherever it shows up later.
                    register_secret(expand_env(part, tool=self.tool, where=template.where))
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
        url_text = self._render_url(arguments)
        headers = self._render_headers(arguments)
        query = self._render_query(arguments)
        content: bytes | None = None
        if self.body is not None:
            if self.body_is_json:
                rendered = render_body(self.body, arguments, self.tool)
                content = json.dumps(rendered, ensure_ascii=False).encode("utf-8")
                default_type = "application/json"
            else:
                assert isinstance(self.body, Template)
                content = self.body.render(arguments, tool=self.tool).encode("utf-8")
                default_type = "text/plain; charset=utf-8"
            if not any(n.lower() == "content-type" for n in headers):
                headers["Content-Type"] = default_type
        method = spec.method
        url: httpx2.URL | None = None
        try:
            url = httpx2.URL(url_text)
            if query:
                # NOTE: merged into the URL's own query; httpx's params= would replace it.
                url = url.copy_merge_params(tuple(query))
            # NOTE: timeout=None: the tool's own timeout (Tool.timeout, a cancel scope around
            # this handler) bounds the whole call; httpx's per-phase timeouts would only add a
            # second, different limit. An explicit transport also keeps httpx2 from routing
            # through a proxy from the environment, which would resolve the host itself.
            async with httpx2.AsyncClient(
                transport=self.transport or httpx2.AsyncHTTPTransport(),
                timeout=None,
                follow_redirects=False,
            ) as client:
                previous: httpx2.URL | None = None
                for hop in range(MAX_REDIRECTS + 1):
                    response = await self._send(client, method, url, headers, content, previous)
                    try:
                        if not (spec.follow_redirects and response.has_redirect_location):
                            ok = response.is_success
                            limit = spec.max_response_bytes
                            body, truncated = await _read_capped(
                                response, limit if ok else min(limit, _ERROR_READ_BYTES)
                            )
                            break
                        if hop == MAX_REDIRECTS:
                            raise HttpToolError(
                                f"tool {self.tool!r}: {method} {_display(str(url))} was "
                                f"redirected more than {MAX_REDIRECTS} times; the last answer "
                                f"was HTTP {response.status_code} to "
                                f"{_display(response.headers['location'])}. Call the final "
                                "URL directly.",
                                tool=self.tool,
                                status_code=response.status_code,
                            )
                        target = url.join(response.headers["location"])
                        method, content, headers = self._redirected(
                            method, content, headers, url, target, response.status_code
                        )
                        previous, url = url, target
                    finally:
                        await response.aclose()
        except _READ_ERRORS as exc:
            where = _display(url_text if url is None else str(url))
            raise HttpToolError(
                f"tool {self.tool!r}: {method} {where} failed: {type(exc).__name__}: "
                f"{_detail(exc)}. Check the URL and that the server is reachable.",
                tool=self.tool,
            ) from exc
        text = _decode(body, response)
        if not ok:
            excerpt = text[:_ERROR_EXCERPT_CHARS]
            if truncated or len(text) > _ERROR_EXCERPT_CHARS:
                excerpt += " [...]"
            hint = (
                " (a redirect: set follow_redirects to follow it)"
                if response.is_redirect and not spec.follow_redirects
                else ""
            )
            raise HttpToolError(
                f"tool {self.tool!r}: {method} {_display(str(url))} answered "
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

    # -- one hop --------------------------------------------------------------------------

    async def _send(
        self,
        client: httpx2.AsyncClient,
        method: str,
        url: httpx2.URL,
        headers: Mapping[str, str],
        content: bytes | None,
        previous: httpx2.URL | None,
    ) -> httpx2.Response:
        """Check where ``url`` leads, then send the request there (a streaming response)."""
        addresses = await self._destination(method, url, previous)
        if addresses is None:
            request = client.build_request(method, url, headers=headers, content=content)
            return await client.send(request, stream=True)
        hop_headers = dict(headers)
        if not any(n.lower() == "host" for n in hop_headers):
            hop_headers["Host"] = url.netloc.decode("ascii")
        extensions: dict[str, Any] = {}
        host = url.raw_host.decode("ascii")
        if url.scheme == "https" and literal_address(host) is None:
            # NOTE: the connection goes to the IP address, TLS still names (SNI) and verifies
            # the certificate of the host in the URL (httpcore2 uses sni_hostname for both).
            extensions["sni_hostname"] = host
        failure: httpx2.ConnectError | None = None
        # NOTE: the checked addresses in the resolver's order, one after the other (the
        # loopback "localhost" answers ::1 first, where a server on 127.0.0.1 refuses at once).
        for address in addresses:
            request = client.build_request(
                method,
                url.copy_with(host=str(address)),
                headers=hop_headers,
                content=content,
                extensions=extensions,
            )
            try:
                return await client.send(request, stream=True)
            except httpx2.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _destination(
        self, method: str, url: httpx2.URL, previous: httpx2.URL | None
    ) -> list[IPAddress] | None:
        """The checked addresses to connect to for ``url`` (``None``: a transport of the
        caller's connects, after the checks that need no lookup).

        Raises:
            HostNotAllowed: the scheme, host or an address it resolves to is refused.
            HttpToolError: the host name can't be resolved.
        """
        if url.scheme not in ("http", "https"):
            raise HttpToolError(
                f"tool {self.tool!r}: {method} {_display(str(url))}{_from(previous)} is not "
                "an http:// or https:// URL; only those are followed. The request was not sent.",
                tool=self.tool,
            )
        host = url.raw_host.decode("ascii").lower().rstrip(".")
        if not host:
            raise HttpToolError(
                f"tool {self.tool!r}: {method} {_display(str(url))}{_from(previous)} has no "
                "host; write a URL like https://api.example.com/path. The request was not sent.",
                tool=self.tool,
            )
        names = {host, url.host.lower().rstrip(".")}
        port = url.port or (443 if url.scheme == "https" else 80)
        literal = literal_address(host)
        allow = self.allow
        if allow is not None and not allow.matches(names, literal, port):
            raise HostNotAllowed(
                f"tool {self.tool!r} may not call host {url.host!r} ({method} "
                f"{_display(str(url))}{_from(previous)}); its allowed hosts are: "
                + (", ".join(repr(h) for h in self.spec.allowed_hosts or ()) or "none")
                + ". The request was not sent. Add the host to allowed_hosts if it should "
                "be reachable.",
                tool=self.tool,
                host=url.host,
            )
        if literal is not None:
            reason = classify(literal)
            if reason is not None and not (allow is not None and allow.covers(literal, port)):
                self._refuse(method, url, previous, literal, reason, resolved=False)
            return None if self.transport is not None else [literal]
        named = allow is not None and allow.names(names, port)
        reason = None if named else forbidden_name(host)
        if reason is not None:
            self._refuse(method, url, previous, None, reason, resolved=False)
        if self.transport is not None:
            return None
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        except OSError as exc:
            raise HttpToolError(
                f"tool {self.tool!r}: {method} {_display(str(url))}{_from(previous)} failed: "
                f"the host {url.host!r} could not be resolved ({exc}). Check the host name.",
                tool=self.tool,
            ) from exc
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if address not in addresses:
                addresses.append(address)
        if not named:
            # NOTE: one refused address refuses the host, rather than connecting to the
            # others: a name that mixes public and internal addresses is a misconfiguration
            # or an attack, and either way the refusal should be visible, not a coin toss.
            for address in addresses:
                reason = classify(address)
                if reason is not None and not (allow is not None and allow.covers(address, port)):
                    self._refuse(method, url, previous, address, reason, resolved=True)
        if not addresses:
            raise HttpToolError(
                f"tool {self.tool!r}: {method} {_display(str(url))} failed: the host "
                f"{url.host!r} resolved to no address. Check the host name.",
                tool=self.tool,
            )
        return addresses

    def _refuse(
        self,
        method: str,
        url: httpx2.URL,
        previous: httpx2.URL | None,
        address: IPAddress | None,
        reason: str,
        *,
        resolved: bool,
    ) -> None:
        host = url.host
        if resolved:
            assert address is not None
            what = f"the host {host!r} resolves to {address}, {reason}"
            fix = f"the host name {host!r} (or the address '{address}')"
        else:
            what = f"{host!r} is {reason}"
            fix = repr(host) if address is None else f"'{address}'"
        caution = (
            " Metadata services hand out the machine's credentials: allow one only on purpose."
            if "metadata" in reason
            else ""
        )
        raise HostNotAllowed(
            f"tool {self.tool!r} may not call {method} {_display(str(url))}{_from(previous)}: "
            f"{what}. Loopback, private, link-local, carrier-grade NAT, multicast, "
            "unspecified, reserved and cloud metadata destinations are refused unless the "
            "tool's allowed_hosts names them. The request was not sent. If this tool must "
            f"reach it, add {fix} to allowed_hosts.{caution}",
            tool=self.tool,
            host=host,
            address=None if address is None else str(address),
            reason=reason,
        )

    def _redirected(
        self,
        method: str,
        content: bytes | None,
        headers: dict[str, str],
        url: httpx2.URL,
        target: httpx2.URL,
        status: int,
    ) -> tuple[str, bytes | None, dict[str, str]]:
        """The method, body and headers of the request a redirect leads to (as browsers and
        httpx do it: 303, and 302/301 after POST, become a GET without body)."""
        to_get = (
            (status == http.HTTPStatus.SEE_OTHER and method != "HEAD")
            or (status == http.HTTPStatus.FOUND and method not in ("HEAD", "QUERY"))
            or (status == http.HTTPStatus.MOVED_PERMANENTLY and method == "POST")
        )
        new_method = "GET" if to_get else method
        drop = {"cookie"}
        if new_method != method and new_method == "GET":
            content = None
            drop |= {"content-type", "content-length", "transfer-encoding"}
        if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
            # NOTE: credentials stay with the origin they were written for: Authorization,
            # every header that reads the environment, and a Host set by the tool.
            drop |= {"authorization", "proxy-authorization", "host"} | self.env_headers
        kept = {n: v for n, v in headers.items() if n.lower() not in drop}
        return new_method, content, kept


def _detail(exc: BaseException) -> str:
    """The first non-empty message down an exception's cause chain (httpx2 wraps a TLS
    certificate error in errors without text of their own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if str(current):
            return str(current)
        current = current.__cause__ or current.__context__
    return "no details"


def _from(previous: httpx2.URL | None) -> str:
    return "" if previous is None else f" (a redirect from {_display(str(previous))})"


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
