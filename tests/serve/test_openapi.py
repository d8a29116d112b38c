"""GET /api/openapi.json: generated from the route declarations, complete (every route and
no other), valid JSON Schema 2020-12, and the same declarations parse the inputs; the
response hook of tests/serve/conftest.py fails on what the document does not describe."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import httpx2
import jsonschema
import pytest
import trio
from quart_trio import QuartTrio

from vega_trio import Orchestrator
from vega_trio.dsl import load_file
from vega_trio.dsl._interpreter import open_runner
from vega_trio.serve import ServeConfig, create_app
from vega_trio.serve._openapi import api_of
from vega_trio.serve._state import ServerState
from vega_trio.testing import ScriptedLLM

from ._helpers import collect_events, orchestrator_with_assistant, running_server
from ._openapi_check import ResponseChecker, generated_document
from .conftest import CheckedResponses
from .test_workflows import EXAMPLE

TOKEN = "openapi-test-token-0123456789abcdef"
_DOCUMENTED_PREFIXES = ("/api/", "/metrics", "/healthz")


def _app(config: ServeConfig | None = None) -> QuartTrio:
    return create_app(ServerState(cast(Orchestrator, None), config or ServeConfig()))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


async def test_openapi_json_is_the_generated_document_behind_the_token() -> None:
    """The server serves its declarations' document (OpenAPI 3.1, bearer scheme); it
    needs the token like every /api route."""
    config = ServeConfig(port=0, token=TOKEN, max_page_size=50)
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        async with httpx2.AsyncClient(base_url=srv.url) as bare:
            assert (await bare.get("/api/openapi.json")).status_code == 401
        response = await srv.client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document == json.loads(json.dumps(generated_document(config)))
    assert document["openapi"] == "3.1.0"
    assert document["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert document["paths"]["/api/agents"]["get"]["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    limit = next(
        p for p in document["paths"]["/api/processes"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 50  # the server's own bounds


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    """The document's paths and methods are exactly the app's /api, /metrics and /healthz
    rules (HEAD is implied by GET; OPTIONS is the CORS preflight Quart answers)."""
    app = _app()
    rules: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(_DOCUMENTED_PREFIXES):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        methods = {"GET"} if rule.websocket else set(rule.methods or ()) - {"HEAD"}
        rules |= {(path, method.lower()) for method in methods}
    document = api_of(app).document()
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == rules
    assert ("/api/openapi.json", "get") in documented
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            variables = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert variables == {part[1:-1] for part in path.split("/") if part.startswith("{")}, (
                path,
                method,
            )


def test_the_document_is_valid_json_schema_with_resolvable_references() -> None:
    """Every schema passes the 2020-12 meta-schema; every $ref points into the document and
    every component is used; operation ids are unique; every operation answers 500 with
    the error body."""
    document = generated_document()
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert name
    targets = set(_refs(document))
    for target in targets:
        assert target.startswith("#/components/")
        kind, name = target.removeprefix("#/components/").split("/")
        assert name in document["components"][kind], target
    for kind in ("schemas", "responses"):  # no schema nobody uses
        assert {f"#/components/{kind}/{name}" for name in document["components"][kind]} <= targets
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for ops in document["paths"].values():
        for op in ops.values():
            assert op["responses"]["500"] == {"$ref": "#/components/responses/InternalServerError"}
            for param in op.get("parameters", ()):
                jsonschema.Draft202012Validator.check_schema(param["schema"])


async def test_query_bounds_and_enums_in_the_document_are_the_ones_enforced() -> None:
    """?limit= up to the documented maximum passes, one more is a 422; a ?status= of runs
    outside the documented enum is a 422 (it used to answer an empty list)."""
    config = ServeConfig(port=0, max_page_size=3)
    document = generated_document(config)
    runs_status = next(
        p
        for p in document["paths"]["/api/workflows/runs"]["get"]["parameters"]
        if p["name"] == "status"
    )
    enum = runs_status["schema"]["items"]["enum"]
    async with open_runner(load_file(EXAMPLE), llm=ScriptedLLM.echo()) as runner:
        async with running_server(runner.orchestrator, config, runner=runner) as srv:
            ok = await srv.client.get("/api/processes", params={"limit": 3})
            assert ok.status_code == 200 and ok.json()["limit"] == 3
            over = await srv.client.get("/api/processes", params={"limit": 4})
            assert over.status_code == 422 and over.json()["fields"][0]["path"] == "limit"
            for status in enum:
                listed = await srv.client.get("/api/workflows/runs", params={"status": status})
                assert listed.status_code == 200
            bogus = await srv.client.get("/api/workflows/runs", params={"status": "bogus"})
            assert bogus.status_code == 422
            assert bogus.json()["fields"][0]["path"] == "status"
            extra = await srv.client.post("/api/workflows/runs/nope/cancel", json={"x": 1})
            assert extra.status_code == 422 and extra.json()["fields"][0]["path"] == "x"


async def test_the_response_hook_checks_every_response_of_the_test(
    checked_responses: CheckedResponses,
) -> None:
    """The autouse hook saw this test's responses, streamed ones and their events included."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        await srv.client.get("/api/stats")
        async with srv.client.stream("GET", "/api/agents/nobody/chat/stream") as response:
            assert response.status_code == 404
        async with srv.client.stream("GET", "/api/agents/assistant/chat/stream") as response:
            assert response.status_code == 404
            assert response.json()["error_class"] == "no_reply"
        async with srv.client.stream(
            "POST", "/api/agents/assistant/chat/stream", json={"message": "hi"}
        ) as response:
            with trio.fail_after(10):
                events = await collect_events(response)
    assert [e.event for e in events] == ["text_delta", "done"]
    post = "POST /api/agents/assistant/chat/stream -> 200"
    assert checked_responses.checked == [
        "GET /api/stats -> 200",
        "GET /api/agents/nobody/chat/stream -> 404",
        "GET /api/agents/assistant/chat/stream -> 404",
        post,
        f"{post} event text_delta",
        f"{post} event done",
    ]


def test_the_checker_rejects_what_the_document_does_not_describe() -> None:
    """A body off its schema, an undocumented status, method, path or media type, and an
    SSE event off its schema, undeclared or of another type fails."""
    document = generated_document()
    checker = ResponseChecker(document)
    stats = {
        "live_processes": 1,
        "total_spawned": 1,
        "live_cost_usd": 0.0,
        "total_cost_usd": 0.0,
        "events_published": 3,
    }
    body = json.dumps(stats).encode()
    checker.check("GET", "/api/stats", 200, "application/json", body)
    wrong = json.dumps({**stats, "events_published": "3"}).encode()
    with pytest.raises(AssertionError, match="events_published"):
        checker.check("GET", "/api/stats", 200, "application/json", wrong)
    with pytest.raises(AssertionError, match="not documented"):
        checker.check("GET", "/api/stats", 404, "application/json", b"{}")
    with pytest.raises(AssertionError, match="POST is not documented"):
        checker.check("POST", "/api/stats", 200, "application/json", body)
    with pytest.raises(AssertionError, match="not a route"):
        checker.check("GET", "/api/nowhere", 200, "application/json", body)
    with pytest.raises(AssertionError, match="media type"):
        checker.check("GET", "/api/stats", 200, "text/html", b"<p>")
    error = {"error": "e", "error_class": "agent_not_found", "request_id": "1"}
    checker.check("GET", "/api/agents/x", 404, "application/json", json.dumps(error).encode())
    no_id = b'{"error": "e", "error_class": "x"}'
    with pytest.raises(AssertionError, match="request_id"):
        checker.check("GET", "/api/agents/x", 404, "application/json", no_id)
    chat = ("POST", "/api/agents/a/chat/stream", 200)
    checker.check_event(*chat, "text_delta", '{"type": "text_delta", "delta": "Hi"}')
    with pytest.raises(AssertionError, match="delta"):
        checker.check_event(*chat, "text_delta", '{"type": "text_delta", "text": "Hi"}')
    with pytest.raises(AssertionError, match="not documented"):
        checker.check_event(*chat, "process.started", '{"type": "process.started"}')
    with pytest.raises(AssertionError, match="type is not"):
        checker.check_event(*chat, "done", '{"type": "text_delta", "delta": "Hi"}')
    events = ("GET", "/api/events", 200)
    checker.check_event(*events, "lagged", '{"type": "lagged", "missed": 2}')
    with pytest.raises(AssertionError, match="seq"):
        checker.check_event(*events, "process.started", '{"type": "process.started"}')
    broken = copy.deepcopy(document)
    broken["components"]["schemas"]["Stats"]["required"].append("uptime")
    with pytest.raises(AssertionError, match="uptime"):
        ResponseChecker(broken).check("GET", "/api/stats", 200, "application/json", body)


def test_a_route_declared_elsewhere_is_registered_parsed_and_documented() -> None:
    """What another module adds through api_of(app) (an HTTP route, a WebSocket) is a rule
    of the app and an operation of the document; a second declaration is refused."""
    from quart import Response

    from vega_trio.serve._openapi import IntQuery, Json, JsonBody, TextField, ref

    app = _app()
    api = api_of(app)
    size = IntQuery("size", default=1, minimum=1, maximum=9, description="how many")

    @api.route(
        "PUT",
        "/api/things/<thing>",
        summary="Put a thing",
        params=(size,),
        body=JsonBody(TextField("label")),
        responses={201: Json(ref("Cleared"))},
        errors=(409,),
    )
    async def put_thing(thing: str) -> Response:  # noqa: ASYNC124 # pragma: no cover
        raise AssertionError

    @api.websocket("/api/things-ws", summary="Things, live")
    async def things_ws() -> None:  # noqa: ASYNC124 # pragma: no cover
        raise AssertionError

    with pytest.raises(ValueError, match="declared twice"):
        api.route("PUT", "/api/things/<other>", summary="again", responses={})(put_thing)
    document = api.document()
    put = document["paths"]["/api/things/{thing}"]["put"]
    assert set(put["responses"]) == {"201", "400", "401", "403", "409", "413", "415", "422", "500"}
    assert put["requestBody"]["content"]["application/json"]["schema"]["required"] == ["label"]
    assert [p["name"] for p in put["parameters"]] == ["thing", "size"]
    ws = document["paths"]["/api/things-ws"]
    assert list(ws) == ["get"] and ws["get"]["x-websocket"] is True
    assert "101" in ws["get"]["responses"]
    rules = {(r.rule, r.websocket) for r in app.url_map.iter_rules()}
    assert {("/api/things/<thing>", False), ("/api/things-ws", True)} <= rules
