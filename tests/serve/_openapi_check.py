"""Checking a server's responses against its OpenAPI document: the route (path template
and method), the status, the media type and, for JSON, the body against the declared
JSON Schema (Draft 2020-12, with ``jsonschema``)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any, cast

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from vega_trio import Orchestrator
from vega_trio.serve import ServeConfig, create_app
from vega_trio.serve._openapi import api_of
from vega_trio.serve._state import ServerState

_URI = "urn:vega-trio:openapi"
#: Where the response hook leaves a stream's event check (``response.extensions``).
CHECK_EVENT = "vega_trio.check_event"


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def generated_document(config: ServeConfig | None = None) -> dict[str, Any]:
    """The document a server with ``config`` serves, made from its app's declarations
    (the routes only read the orchestrator while answering, so none is needed here)."""
    app = create_app(ServerState(cast(Orchestrator, None), config or ServeConfig()))
    return api_of(app).document()


class ResponseChecker:
    """Checks responses against one OpenAPI document (raises ``AssertionError``)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        resource = Resource(contents=dict(document), specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_URI, resource)
        templates = []
        for template in document["paths"]:
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            # NOTE: a literal segment wins over a variable (/runs/x is not /{name}/run).
            templates.append((template.count("{"), template, re.compile(f"^{pattern}$")))
        self._templates = sorted(templates)

    def template(self, path: str) -> str:
        """The document's path template matching ``path``."""
        for _, template, regex in self._templates:
            if regex.match(path):
                return template
        raise AssertionError(f"{path} is not a route of the OpenAPI document")

    def _reply(self, method: str, path: str, status: int) -> tuple[str, str, dict[str, Any]]:
        """``(where, JSON pointer, response object)`` of a documented response."""
        template = self.template(path)
        operations = self.document["paths"][template]
        verb = "get" if method.upper() == "HEAD" else method.lower()
        where = f"{method} {path} ({template}) -> {status}"
        if verb not in operations:
            raise AssertionError(f"{where}: {method} is not documented for {template}")
        responses = operations[verb]["responses"]
        if str(status) not in responses:
            raise AssertionError(
                f"{where}: status {status} is not documented (documented: {sorted(responses)})"
            )
        pointer = f"/paths/{_escape(template)}/{verb}/responses/{status}"
        reply = responses[str(status)]
        if "$ref" in reply:
            pointer = reply["$ref"].removeprefix("#")
            reply = functools.reduce(
                lambda node, key: node[key.replace("~1", "/").replace("~0", "~")],
                pointer.strip("/").split("/"),
                self.document,
            )
        return where, pointer, reply

    def _validate(self, where: str, pointer: str, data: Any) -> None:
        schema = {"$ref": f"{_URI}#{pointer}"}
        validator = jsonschema.Draft202012Validator(schema, registry=self._registry)
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
        if error is not None:
            location = "/".join(str(p) for p in error.absolute_path) or "(the body)"
            raise AssertionError(
                f"{where}: the body does not match its schema at {location}: {error.message}\n"
                f"body: {json.dumps(data)[:1000]}"
            )

    def check(
        self,
        method: str,
        path: str,
        status: int,
        content_type: str,
        body: bytes | None,
    ) -> None:
        """Check one response (``body`` ``None``: not read, e.g. a stream).

        Raises:
            AssertionError: an unknown route or status, an undeclared media type, or a
                body that does not match its schema (the message says which).
        """
        where, pointer, reply = self._reply(method, path, status)
        content = reply.get("content", {})
        media = content_type.split(";")[0].strip().lower()
        if not content:
            if body:
                raise AssertionError(f"{where}: documented without a body, got {body[:200]!r}")
            return
        if media not in content:
            raise AssertionError(
                f"{where}: media type {media!r} is not documented ({list(content)})"
            )
        if media != "application/json" or body is None or method.upper() == "HEAD":
            return
        self._validate(where, f"{pointer}/content/{_escape(media)}/schema", json.loads(body))

    def check_event(self, method: str, path: str, status: int, event: str, data: str) -> None:
        """Check one SSE event of a ``text/event-stream`` response against the schema its
        response's ``x-events`` gives its name (``*``: any other); its ``data`` is a JSON
        object whose ``type`` is the event's name.

        Raises:
            AssertionError: an undeclared event, or data off its schema.
        """
        where, pointer, reply = self._reply(method, path, status)
        where = f"{where}: event {event!r}"
        events = reply.get("x-events", {})
        name = event if event in events else "*"
        if name not in events:
            raise AssertionError(f"{where} is not documented (documented: {sorted(events)})")
        payload = json.loads(data)
        if not isinstance(payload, dict) or payload.get("type") != event:
            raise AssertionError(f"{where}: its data's type is not {event!r}: {data[:200]}")
        self._validate(where, f"{pointer}/x-events/{_escape(name)}", payload)


@functools.cache
def default_checker() -> ResponseChecker:
    """The checker of the document of a server with the default config."""
    return ResponseChecker(generated_document())
