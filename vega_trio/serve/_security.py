"""The security checks every request passes before its route runs (SPEC §11), and the
headers every response gets after it: one middleware, so no route can forget one.

In order: a request id; the ``Host`` header (DNS rebinding); the bearer token on
``/api`` (and never a token in the URL); the body size; for mutating requests the
``Origin`` (same origin or the allow-list) and a JSON body. CORS headers go only to the
allow-listed origins.

A WebSocket handshake passes the same checks (its own hook, since Quart runs
``before_request`` hooks for HTTP only): the request id, the ``Host``, no token in the
URL, the bearer token (``Authorization`` or, for browsers that cannot set that header,
a ``bearer.<token>`` entry of ``Sec-WebSocket-Protocol``), and the ``Origin`` (every
handshake, not only "mutating" ones: a WebSocket is not bound by CORS).
"""

from __future__ import annotations

import hmac
import secrets

from quart import Quart, Response, g, request, websocket
from werkzeug.datastructures import Headers, MultiDict

from .._errors import RequestRejected
from ._state import ServerState

__all__ = [
    "BEARER_SUBPROTOCOL_PREFIX",
    "REQUEST_ID_HEADER",
    "install_security",
    "security_statuses",
    "token_required",
]

REQUEST_ID_HEADER = "X-Request-ID"

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Query parameters that would carry a credential in the URL (logs, history, Referer).
_TOKEN_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "auth"})
_CORS_METHODS = "GET, POST, PUT, DELETE"
_CORS_HEADERS = "Authorization, Content-Type, Last-Event-ID"
BEARER_SUBPROTOCOL_PREFIX = "bearer."
"""A WebSocket client that cannot set ``Authorization`` (a browser) offers the token as
the subprotocol ``bearer.<token>``."""


def token_required(path: str) -> bool:
    """Whether a request to ``path`` must carry the bearer token (when the server has one):
    every ``/api`` route and ``/metrics`` (it names agents, models and costs)."""
    return path == "/api" or path.startswith("/api/") or path == "/metrics"


def security_statuses(method: str) -> frozenset[int]:
    """The statuses :func:`install_security`'s checks can answer a ``method`` request with
    before its route runs (the OpenAPI document lists them on every operation): 400 a
    foreign ``Host``, 401 a token in the URL or a missing/wrong token, 413 a body over the
    limit; for mutating methods 403 a foreign ``Origin`` and 415 a body that is not JSON."""
    statuses = {400, 401, 413}
    if method.upper() in _MUTATING:
        statuses |= {403, 415}
    return frozenset(statuses)


def split_host(value: str) -> tuple[str, int | None]:
    """``Host`` header value as ``(name, port)``; the name lower-cased, IPv6 in brackets.

    Raises:
        ValueError: the port is not a number.
    """
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(value)
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(value)
        port_text = rest[1:]
    else:
        name, _, port_text = value.partition(":")
    if port_text and not port_text.isdigit():
        raise ValueError(value)
    return name, int(port_text) if port_text else None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_host_names(state: ServerState) -> frozenset[str]:
    """The ``Host`` names this server answers to."""
    names = {"localhost", "127.0.0.1", "[::1]", _bracketed(state.config.host.lower())}
    names.update(_bracketed(h.lower()) for h in state.config.allowed_hosts)
    return frozenset(names)


def install_security(app: Quart, state: ServerState) -> None:
    """Register the checks as the app's first ``before_request`` hook and the
    response headers as an ``after_request`` hook."""
    host_names = allowed_host_names(state)
    token = state.config.token
    expected = f"Bearer {token}".encode() if token is not None else None
    allowed_origins = frozenset(state.config.allowed_origins)

    def new_request_id(headers: Headers) -> str:
        request_id = headers.get(REQUEST_ID_HEADER, "")[:64] or secrets.token_hex(8)
        if not request_id.replace("-", "").isalnum():  # echoed back: keep it inert
            request_id = secrets.token_hex(8)
        return request_id

    def check_host(headers: Headers) -> str:
        """The ``Host`` header, if it names this server."""
        # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own name.
        raw_host = headers.get("Host", "")
        try:
            name, port = split_host(raw_host)
        except ValueError:
            name, port = "", None
        if name not in host_names or (port is not None and state.ports and port not in state.ports):
            raise RequestRejected(
                400,
                f"the Host header {raw_host!r} is not this server's; use "
                f"http://127.0.0.1:{min(state.ports, default=state.config.port)} or add the "
                "name to ServeConfig.allowed_hosts",
                error_class="host_not_allowed",
            )
        return raw_host

    def refuse_token_in_url(args: MultiDict[str, str]) -> None:
        if _TOKEN_PARAMS & set(args):
            raise RequestRejected(
                401,
                "a token in the URL is refused (URLs end up in logs and browser history); "
                "send it as the header Authorization: Bearer <token>",
                error_class="token_in_url",
            )

    def check_token(presented: str) -> None:
        """``presented`` is the ``Authorization`` value (``Bearer <token>``)."""
        if expected is not None and not hmac.compare_digest(presented.encode(), expected):
            raise RequestRejected(
                401,
                "missing or wrong bearer token; send Authorization: Bearer <token> "
                "(the token vega-trio serve was started with)",
                error_class="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="vega-trio"'},
            )

    def check_origin(headers: Headers, raw_host: str) -> None:
        origin = headers.get("Origin")
        if origin is not None:
            same = {f"http://{raw_host.strip().lower()}"}
            if origin.lower() not in same and origin not in allowed_origins:
                raise RequestRejected(
                    403,
                    f"requests from the origin {origin!r} are not allowed; add it to "
                    "ServeConfig.allowed_origins if that page should use the API",
                    error_class="origin_not_allowed",
                )

    @app.before_request
    async def check_request() -> None:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        g.request_id = new_request_id(request.headers)
        raw_host = check_host(request.headers)

        refuse_token_in_url(request.args)
        if token_required(request.path) and request.method != "OPTIONS":
            check_token(request.headers.get("Authorization", ""))

        length = request.content_length
        if length is not None and length > state.config.max_body_bytes:
            raise RequestRejected(
                413,
                f"the request body has {length} bytes; the limit is "
                f"{state.config.max_body_bytes} (ServeConfig.max_body_bytes)",
                error_class="body_too_large",
            )

        if request.method in _MUTATING:
            check_origin(request.headers, raw_host)
            # NOTE: a DELETE without a body is not a CSRF risk (a cross-site page can
            # only send one after a CORS preflight, which unlisted origins fail), and
            # `curl -X DELETE` sends no Content-Type; any body must be JSON.
            has_body = bool(length) or "Transfer-Encoding" in request.headers
            if request.method != "DELETE" or has_body:
                mimetype = request.mimetype
                if mimetype != "application/json":
                    raise RequestRejected(
                        415,
                        f"{request.method} requests must send JSON (Content-Type: "
                        f"application/json), not {mimetype or 'no Content-Type'}",
                        error_class="unsupported_media_type",
                    )

    @app.before_websocket
    async def check_websocket() -> None:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        # NOTE: a refusal here is answered as a plain HTTP response to the handshake
        # (Hypercorn supports ASGI's websocket.http.response), so a client sees 401/403.
        g.request_id = new_request_id(websocket.headers)
        raw_host = check_host(websocket.headers)
        refuse_token_in_url(websocket.args)
        # A browser cannot set Authorization on a WebSocket: it offers bearer.<token>.
        offered = [
            entry[len(BEARER_SUBPROTOCOL_PREFIX) :]
            for entry in websocket.requested_subprotocols
            if entry.startswith(BEARER_SUBPROTOCOL_PREFIX)
        ]
        presented = websocket.headers.get("Authorization", "")
        if not presented and offered:
            presented = f"Bearer {offered[0]}"
        check_token(presented)
        # A WebSocket is not bound by CORS: any page can open one to localhost, so the
        # Origin is checked on every handshake (a non-browser client sends none).
        check_origin(websocket.headers, raw_host)

    @app.after_request
    async def add_headers(response: Response) -> Response:  # noqa: ASYNC124
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        if response.status_code >= 400 and (
            request.content_length or "Transfer-Encoding" in request.headers
        ):
            # NOTE: a refused body may be unread: the connection cannot carry another
            # request, so tell the client not to reuse it (or its next request fails).
            response.headers["Connection"] = "close"
        origin = request.headers.get("Origin")
        if origin is not None and origin in allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.add("Vary", "Origin")
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
                response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
                response.headers["Access-Control-Max-Age"] = "600"
        return response
