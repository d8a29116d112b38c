"""Routes declared once: the declaration registers the Quart route, parses its inputs and
is the OpenAPI 3.1 document (``GET /api/openapi.json``), so the docs cannot drift from
what the server does.

Declaring a route (inside the function that builds the app, next to its handler)::

    api = api_of(app)  # the app's Api; create_app made it with install_api()
    limit = IntQuery("limit", default=100, minimum=1, maximum=1000, description="page size")
    status = ListQuery("status", enum=("running", "failed"), description="only these")
    body = JsonBody(TextField("message", description="what to say"))

    @api.route(
        "POST",
        "/api/things/<name>/ask",
        summary="Ask a thing",
        params=(limit, status),  # the handler parses with the same objects
        path_params={"name": "the thing's name"},
        body=body,
        responses={200: Json(ref("Answer"))},
        errors=(404,),  # statuses the handler itself can answer (error body)
        tags=("things",),
    )
    async def ask(name: str) -> Response:
        data = await body.read()  # 400 not JSON, 422 with field paths
        page_size, wanted = limit.get(), status.get()  # 422 out of bounds / not in enum
        ...

- ``method``/``rule`` are Quart's (``<name>`` path variables; every one is documented as a
  path parameter, described by ``path_params``).
- ``responses`` maps each success status to a reply: :class:`Json` (a JSON Schema 2020-12
  dict, or ``ref("Name")`` to a schema in :mod:`._schemas`), :class:`EventStream` (SSE:
  ``EventStream("what", {"event-name": schema, "*": schema-of-any-other})``, documented as
  the response's ``x-events``), :class:`PlainText` or :class:`NoBody`.
- Error statuses are answered with the shared error body (``components.schemas.Error``:
  ``{"error", "error_class", "request_id", "fields"?}``). Each operation lists ``errors``
  plus what it gets for free: the security checks' statuses
  (:func:`._security.security_statuses`), 400/422 from its params and body, and 500.
- ``@api.websocket(rule, summary=...)`` declares a WebSocket route (documented as a ``GET``
  answering ``101 Switching Protocols``).
- ``OPTIONS`` (CORS preflight, answered by Quart for every rule) is documented for every
  path; ``HEAD`` is implied by ``GET``.

New response schemas go into :data:`._schemas.SCHEMAS` (Python data, or derived from an
attrs class with :func:`._schemas.attrs_schema`): one source of truth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Protocol, TypeVar

import attrs
from quart import Quart, Response, request

from .._errors import ArgumentProblem, RequestRejected
from .._version import __version__
from ..tools._validate import Adapter, compile_json_schema
from ._schemas import SCHEMAS, ref
from ._security import security_statuses, token_required

__all__ = [
    "Api",
    "EventStream",
    "IntHeader",
    "IntQuery",
    "Json",
    "JsonBody",
    "ListQuery",
    "NoBody",
    "ObjectField",
    "PlainText",
    "TextField",
    "TextQuery",
    "api_of",
    "install_api",
    "ref",
    "reject_field",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
OPENAPI_PATH = "/api/openapi.json"
_EXTENSION = "vega_trio.api"
_RULE_VARIABLE = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")

View = TypeVar("View", bound=Callable[..., Awaitable[Any]])


def reject_field(path: str, error: str) -> RequestRejected:
    """The 422 for one invalid input field (``path`` is where it is: ``message``, ``$``)."""
    return RequestRejected(
        422,
        f"invalid request: {path}: {error}",
        error_class="validation_error",
        fields=[{"path": path, "error": error}],
    )


# ----------------------------------------------------------------------- parameters
class Param(Protocol):
    """A declared input outside the body: it parses itself and documents itself."""

    def parameters(self) -> list[dict[str, Any]]:
        """Its OpenAPI parameter objects."""
        ...

    @property
    def statuses(self) -> frozenset[int]:
        """The error statuses its parsing can answer."""
        ...


@attrs.frozen(kw_only=True)
class IntQuery:
    """An integer query parameter ``?name=`` with bounds (422 outside them)."""

    name: str = attrs.field(kw_only=False)
    default: int
    minimum: int
    maximum: int | None = None
    description: str = ""

    statuses = frozenset({422})

    def get(self) -> int:
        """Its value in the current request (``default`` when absent).

        Raises:
            RequestRejected: 422 not an integer or out of bounds.
        """
        text = request.args.get(self.name)
        if text is None:
            return self.default
        try:
            value = int(text)
        except ValueError:
            raise reject_field(self.name, f"expected an integer, got {text!r}") from None
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            bound = (
                f"{self.minimum}..{self.maximum}"
                if self.maximum is not None
                else f"at least {self.minimum}"
            )
            raise reject_field(self.name, f"must be {bound}, got {value}")
        return value

    def parameters(self) -> list[dict[str, Any]]:
        schema: dict[str, Any] = {
            "type": "integer",
            "minimum": self.minimum,
            "default": self.default,
        }
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return [
            {"name": self.name, "in": "query", "description": self.description, "schema": schema}
        ]


@attrs.frozen(kw_only=True)
class ListQuery:
    """A filter given as ``?name=a&name=b`` or ``?name=a,b`` (or under one of ``aliases``);
    with ``enum``, any other value is a 422."""

    name: str = attrs.field(kw_only=False)
    aliases: tuple[str, ...] = ()
    enum: tuple[str, ...] | None = None
    description: str = ""

    @property
    def statuses(self) -> frozenset[int]:
        return frozenset({422}) if self.enum is not None else frozenset()

    def get(self) -> list[str] | None:
        """The values in the current request (``None``: no filter).

        Raises:
            RequestRejected: 422 a value outside ``enum``.
        """
        values = [
            part.strip()
            for name in (self.name, *self.aliases)
            for raw in request.args.getlist(name)
            for part in raw.split(",")
            if part.strip()
        ]
        for value in values:
            if self.enum is not None and value not in self.enum:
                raise reject_field(
                    self.name, f"{value!r} is not one of {', '.join(sorted(self.enum))}"
                )
        return values or None

    def parameters(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            item["enum"] = list(self.enum)
        found = []
        for name in (self.name, *self.aliases):
            description = self.description if name == self.name else f"the same as `{self.name}`"
            found.append(
                {
                    "name": name,
                    "in": "query",
                    "description": f"{description} (repeat it or comma-separate values)",
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "array", "items": item},
                }
            )
        return found


@attrs.frozen(kw_only=True)
class TextQuery:
    """A text query parameter ``?name=``; with ``pattern`` (a regular expression the
    whole value must match), any other value is a 422."""

    name: str = attrs.field(kw_only=False)
    pattern: str | None = None
    description: str = ""

    @property
    def statuses(self) -> frozenset[int]:
        return frozenset({422}) if self.pattern is not None else frozenset()

    def get(self) -> str | None:
        """Its value in the current request (``None`` when absent).

        Raises:
            RequestRejected: 422 a value that does not match ``pattern``.
        """
        text = request.args.get(self.name)
        if text is not None and self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise reject_field(self.name, f"{text!r} does not match {self.pattern}")
        return text

    def parameters(self) -> list[dict[str, Any]]:
        schema: dict[str, Any] = {"type": "string"}
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
        return [
            {"name": self.name, "in": "query", "description": self.description, "schema": schema}
        ]


@attrs.frozen(kw_only=True)
class IntHeader:
    """A header holding a non-negative integer (400 ``error_class`` when it does not)."""

    name: str = attrs.field(kw_only=False)
    error_class: str
    description: str = ""

    statuses = frozenset({400})

    def get(self) -> int | None:
        """Its value in the current request (``None`` when absent).

        Raises:
            RequestRejected: 400 not a non-negative integer.
        """
        text = request.headers.get(self.name)
        if text is None:
            return None
        if not text.strip().isdigit():
            raise RequestRejected(
                400,
                f"{self.name} must be {self.description or 'a non-negative integer'}, got {text!r}",
                error_class=self.error_class,
            )
        return int(text)

    def parameters(self) -> list[dict[str, Any]]:
        return [
            {
                "name": self.name,
                "in": "header",
                "description": self.description,
                "schema": {"type": "integer", "minimum": 0},
            }
        ]


# ---------------------------------------------------------------------------- bodies
@attrs.frozen(kw_only=True)
class TextField:
    """A body field holding a non-blank string."""

    name: str = attrs.field(kw_only=False)
    required: bool = True
    description: str = ""

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"\S", "description": self.description}

    def check(self, value: Any) -> str | None:
        """What is wrong with ``value`` beyond its type (``None``: nothing); the JSON
        validator has already checked the type."""
        return "must not be empty" if not value.strip() else None


@attrs.frozen(kw_only=True)
class ObjectField:
    """A body field holding a JSON object."""

    name: str = attrs.field(kw_only=False)
    required: bool = False
    description: str = ""

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "description": self.description}

    def check(self, value: Any) -> str | None:
        """Nothing beyond its type (which the JSON validator checks)."""
        return None


BodyField = TextField | ObjectField


@attrs.frozen(init=False)
class JsonBody:
    """A JSON object request body.

    Attributes:
        fields: the declared fields (checked in order).
        extra: other top-level fields are allowed (a workflow's inputs); otherwise an
            unknown field is a 422 naming it.
        optional: an empty body reads as ``{}``.
        description: what the body is.
    """

    fields: tuple[BodyField, ...]
    extra: bool
    optional: bool
    description: str

    _check: Adapter | None = attrs.field(init=False, eq=False, repr=False)

    def __init__(
        self, *fields: BodyField, extra: bool = False, optional: bool = False, description: str = ""
    ) -> None:
        self.__attrs_init__(fields, extra=extra, optional=optional, description=description)
        # The body is checked by the project's one JSON validator, compiled once from the
        # schema the OpenAPI document shows; its problems are re-worded for HTTP below.
        object.__setattr__(self, "_check", compile_json_schema(self.schema()))

    statuses = frozenset({400, 422})

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.schema() for f in self.fields},
            "required": [f.name for f in self.fields if f.required],
            "additionalProperties": self.extra,
        }
        if self.description:
            schema["description"] = self.description
        return schema

    async def read(self) -> dict[str, Any]:
        """The current request's body, checked.

        Raises:
            RequestRejected: 400 not JSON, 413 over the size limit, 422 not an object, an
                unknown field or an invalid one (with its path).
        """
        raw = await request.get_data(as_text=False)
        if self.optional and not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestRejected(
                400, f"the request body is not valid JSON: {exc}", error_class="bad_json"
            ) from None
        except RecursionError:  # nested deeper than the parser's stack
            raise RequestRejected(
                400,
                "the request body is not valid JSON: nested too deeply",
                error_class="bad_json",
            ) from None
        if not isinstance(data, dict):
            raise reject_field("$", f"expected a JSON object, got {type(data).__name__}")
        # NOTE: a field sent as null counts as absent (clients send {"inputs": null}).
        present = {key: value for key, value in data.items() if value is not None}
        if self._check is not None:
            try:
                self._check.convert(present, "")
            except ArgumentProblem as found:
                raise reject_field(found.argument, _http_wording(found)) from None
        for spec in self.fields:
            value = present.get(spec.name)
            problem = None if value is None else spec.check(value)
            if problem is not None:
                raise reject_field(spec.name, problem)
        return data


def _http_wording(found: ArgumentProblem) -> str:
    """A problem of the JSON validator, worded for an HTTP client (the ``fields[].error`` of a
    422): ``expected a string, got int``, ``required``, ``unknown field (allowed: ...)``."""
    if found.kind == "type":
        return f"expected {found.expected}, got {type(found.value).__name__}"
    if found.kind == "missing":
        return "required"
    if found.kind == "unknown":
        return f"unknown field (allowed: {', '.join(sorted(found.allowed)) or 'none'})"
    return found.problem


# --------------------------------------------------------------------------- replies
@attrs.frozen
class Json:
    """A JSON reply of ``schema`` (JSON Schema 2020-12, or ``ref("Name")``)."""

    schema: Mapping[str, Any]
    description: str = ""

    def content(self) -> dict[str, Any]:
        return {"application/json": {"schema": dict(self.schema)}}


@attrs.frozen
class EventStream:
    """A ``text/event-stream`` reply (SSE). ``events`` maps each ``event:`` name to the
    JSON Schema of its ``data:`` (``"*"``: any other name); documented as the response's
    ``x-events`` (OpenAPI 3.1 has no schema for stream items)."""

    description: str
    events: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)

    def content(self) -> dict[str, Any]:
        return {"text/event-stream": {"schema": {"type": "string"}}}


@attrs.frozen
class PlainText:
    """A text reply (``text/plain``: Prometheus' exposition format)."""

    description: str

    def content(self) -> dict[str, Any]:
        return {"text/plain": {"schema": {"type": "string"}}}


@attrs.frozen
class NoBody:
    """A reply without a body."""

    description: str

    def content(self) -> dict[str, Any]:
        return {}


Reply = Json | EventStream | PlainText | NoBody

#: Headers the error replies of some statuses carry.
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer realm"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
}


def _error_name(status: int) -> str:
    return "".join(HTTPStatus(status).phrase.title().split()).replace("-", "")


def _error_ref(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{_error_name(status)}"}


def _error_response(status: int) -> dict[str, Any]:
    """The shared error reply of ``status`` (``components.responses``)."""
    error: dict[str, Any] = {
        "description": HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if status in _ERROR_HEADERS:
        error["headers"] = _ERROR_HEADERS[status]
    return error


# ------------------------------------------------------------------------ the routes
@attrs.frozen(kw_only=True)
class Route:
    """One declared operation (a method on a rule)."""

    method: str
    rule: str
    summary: str
    description: str = ""
    params: tuple[Param, ...] = ()
    path_params: Mapping[str, str] = attrs.field(factory=dict)
    body: JsonBody | None = None
    responses: Mapping[int, Reply] = attrs.field(factory=dict)
    errors: frozenset[int] = frozenset()
    tags: tuple[str, ...] = ()
    operation_id: str = ""
    websocket: bool = False

    @property
    def path(self) -> str:
        """The OpenAPI path: ``/api/agents/{name}`` for ``/api/agents/<name>``."""
        return _RULE_VARIABLE.sub(r"{\1}", self.rule)

    @property
    def error_statuses(self) -> frozenset[int]:
        """Every status answered with the error body (the route's, its inputs', the
        security checks' and 500), less those ``responses`` declares."""
        found = set(self.errors) | security_statuses(self.method) | {500}
        for param in self.params:
            found |= param.statuses
        if self.body is not None:
            found |= JsonBody.statuses
        return frozenset(found - set(self.responses))

    def operation(self) -> dict[str, Any]:
        """The OpenAPI operation object."""
        parameters: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": self.path_params.get(name, ""),
                "schema": {"type": "string"},
            }
            for name in _RULE_VARIABLE.findall(self.rule)
        ]
        for param in self.params:
            parameters.extend(param.parameters())
        responses: dict[str, Any] = {}
        for status, reply in sorted(self.responses.items()):
            entry: dict[str, Any] = {"description": reply.description or HTTPStatus(status).phrase}
            if content := reply.content():
                entry["content"] = content
            if isinstance(reply, EventStream) and reply.events:
                entry["x-events"] = {name: dict(schema) for name, schema in reply.events.items()}
            responses[str(status)] = entry
        for status in sorted(self.error_statuses):
            responses[str(status)] = _error_ref(status)
        operation: dict[str, Any] = {
            "operationId": self.operation_id,
            "summary": self.summary,
        }
        if self.description:
            operation["description"] = self.description
        if self.tags:
            operation["tags"] = list(self.tags)
        if parameters:
            operation["parameters"] = parameters
        if self.body is not None:
            operation["requestBody"] = {
                "required": not self.body.optional,
                "content": {"application/json": {"schema": self.body.schema()}},
            }
        operation["responses"] = responses
        # NOTE: the token is required only when the server has one (optional on loopback).
        operation["security"] = [{"bearer": []}] if token_required(self.rule) else []
        return operation


_PREFLIGHT: dict[str, Any] = {
    "summary": "CORS preflight",
    "description": "Answered for every path; `Access-Control-Allow-*` headers only for an "
    "origin in ServeConfig.allowed_origins.",
    "security": [],
}


@attrs.define(eq=False)
class Api:
    """The declared routes of one app and the OpenAPI document made from them
    (see the module docstring for how to declare a route)."""

    app: Quart
    title: str = "vega-trio"
    routes: list[Route] = attrs.field(factory=list)

    def route(
        self,
        method: str,
        rule: str,
        *,
        summary: str,
        description: str = "",
        params: Iterable[Param] = (),
        path_params: Mapping[str, str] | None = None,
        body: JsonBody | None = None,
        responses: Mapping[int, Reply],
        errors: Iterable[int] = (),
        tags: Iterable[str] = (),
    ) -> Callable[[View], View]:
        """Register the decorated handler for ``method`` on ``rule`` and declare it."""

        def decorate(view: View) -> View:
            self._declare(
                Route(
                    method=method.upper(),
                    rule=rule,
                    summary=summary,
                    description=description,
                    params=tuple(params),
                    path_params=dict(path_params or {}),
                    body=body,
                    responses=dict(responses),
                    errors=frozenset(errors),
                    tags=tuple(tags),
                    operation_id=view.__name__,
                )
            )
            self.app.add_url_rule(rule, view.__name__, view, methods=[method.upper()])
            return view

        return decorate

    def websocket(
        self,
        rule: str,
        *,
        summary: str,
        description: str = "",
        params: Iterable[Param] = (),
        path_params: Mapping[str, str] | None = None,
        errors: Iterable[int] = (),
        tags: Iterable[str] = (),
    ) -> Callable[[View], View]:
        """Register the decorated handler as the WebSocket on ``rule`` and declare it
        (a ``GET`` answering ``101 Switching Protocols``)."""

        def decorate(view: View) -> View:
            self._declare(
                Route(
                    method="GET",
                    rule=rule,
                    summary=summary,
                    description=description,
                    params=tuple(params),
                    path_params=dict(path_params or {}),
                    responses={101: NoBody("Switching Protocols: the WebSocket is open")},
                    errors=frozenset(errors),
                    tags=tuple(tags),
                    operation_id=view.__name__,
                    websocket=True,
                )
            )
            self.app.add_websocket(rule, view.__name__, view)
            return view

        return decorate

    def _declare(self, route: Route) -> None:
        def shape(path: str) -> str:  # /a/{x} and /a/{y} are the same route
            return re.sub(r"\{[^}]+\}", "{}", path)

        for known in self.routes:
            if (shape(known.path), known.method) == (shape(route.path), route.method):
                raise ValueError(
                    f"{route.method} {route.rule} is declared twice (also as {known.rule})"
                )
        self.routes.append(route)

    def _error_statuses(self) -> set[int]:
        found = set(security_statuses("OPTIONS")) | {500}
        for route in self.routes:
            found |= route.error_statuses
        return found

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every declared route."""
        paths: dict[str, dict[str, Any]] = {}
        for route in self.routes:
            operations = paths.setdefault(route.path, {})
            operations[route.method.lower()] = route.operation()
            if route.websocket:
                operations[route.method.lower()]["x-websocket"] = True
        for path, operations in paths.items():
            if not all(op.get("x-websocket") for op in operations.values()):
                preflight = dict(_PREFLIGHT)
                preflight["operationId"] = "preflight" + re.sub(r"[^a-zA-Z0-9]+", "_", path)
                if variables := re.findall(r"\{([^}]+)\}", path):
                    preflight["parameters"] = [
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                        for name in variables
                    ]
                preflight["responses"] = {
                    "200": {"description": "OK"},
                    **{
                        str(status): _error_ref(status)
                        for status in sorted(security_statuses("OPTIONS") | {500})
                    },
                }
                operations["options"] = preflight
        return {
            "openapi": "3.1.0",
            "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
            "info": {
                "title": self.title,
                "version": __version__,
                "description": "The vega-trio server's HTTP API (SPEC §10), generated from "
                "its route declarations.",
            },
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": SCHEMAS,
                "responses": {
                    _error_name(status): _error_response(status)
                    for status in sorted(self._error_statuses())
                },
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "The token `vega-trio serve` was started with "
                        "(`--token`); required on /api and /metrics when the server has one. "
                        "Never in the URL.",
                    }
                },
            },
        }


def api_of(app: Quart) -> Api:
    """The :class:`Api` of an app made by :func:`install_api`."""
    api = app.extensions.get(_EXTENSION)
    if not isinstance(api, Api):
        raise LookupError("this app has no route declarations; call install_api(app) first")
    return api


def install_api(app: Quart, reply: Callable[[Any], Response]) -> Api:
    """Give ``app`` its :class:`Api` and the route serving its document
    (``GET /api/openapi.json``); ``reply`` makes a JSON response."""
    api = Api(app)
    app.extensions[_EXTENSION] = api

    @api.route(
        "GET",
        OPENAPI_PATH,
        summary="This OpenAPI 3.1 document",
        description="Generated from the server's route declarations.",
        responses={200: Json(ref("OpenAPIDocument"))},
        tags=("meta",),
    )
    async def openapi_document() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        return reply(api.document())

    return api
