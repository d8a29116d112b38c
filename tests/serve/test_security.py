"""SPEC §11 over a real server: token, Host, Origin, JSON-only mutations, size limits,
validation with field paths, and errors that carry a request id and never a traceback."""

from __future__ import annotations

import logging

import httpx2
import pytest

from vega_trio.serve import ServeConfig

from ._helpers import orchestrator_with_assistant, running_server

TOKEN = "s3cret-token-for-tests-0123456789"


async def test_non_loopback_bind_without_a_token_refuses_to_start() -> None:  # noqa: ASYNC124
    """A non-loopback address needs a token: the config refuses, saying what to do."""
    with pytest.raises(ValueError, match=r"without a token.*--token"):
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", token=TOKEN).token == TOKEN
    assert ServeConfig().host == "127.0.0.1"
    with pytest.raises(ValueError, match="wildcard"):
        ServeConfig(allowed_origins=["*"])


async def test_bearer_token_is_required_on_api_routes_and_never_read_from_the_url() -> None:
    """No or a wrong token is 401; a token in the URL is refused even if right."""
    async with orchestrator_with_assistant() as orch:
        async with running_server(orch, token=TOKEN) as srv:
            ok = await srv.client.get("/api/agents")
            assert ok.status_code == 200
            async with httpx2.AsyncClient(base_url=srv.url) as bare:
                none = await bare.get("/api/agents")
                assert none.status_code == 401
                assert none.json()["error_class"] == "unauthorized"
                assert none.headers["WWW-Authenticate"].startswith("Bearer")
                wrong = await bare.get(
                    "/api/agents", headers={"Authorization": "Bearer not-the-token"}
                )
                assert wrong.status_code == 401
                in_url = await bare.get("/api/agents", params={"token": TOKEN})
                assert in_url.status_code == 401
                assert in_url.json()["error_class"] == "token_in_url"
                assert TOKEN not in in_url.text
                assert (await bare.get("/healthz")).status_code == 200
                assert (await bare.get("/metrics")).status_code == 401  # names agents, costs
                metrics = await srv.client.get("/metrics")
                assert metrics.status_code == 200
            both = await srv.client.get("/api/agents", params={"access_token": TOKEN})
            assert both.status_code == 401


async def test_hostile_host_header_is_refused() -> None:
    """DNS rebinding: a foreign Host is a 400; localhost with the bound port passes."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        port = srv.url.rsplit(":", 1)[1]
        evil = await srv.client.get("/api/agents", headers={"Host": f"evil.example:{port}"})
        assert evil.status_code == 400
        assert evil.json()["error_class"] == "host_not_allowed"
        other_port = await srv.client.get("/healthz", headers={"Host": "127.0.0.1:1"})
        assert other_port.status_code == 400
        assert (
            await srv.client.get("/healthz", headers={"Host": f"localhost:{port}"})
        ).status_code == 200


async def test_mutations_need_json_and_a_same_origin_or_allowed_origin() -> None:
    """Hostile Origin 403, non-JSON POST 415; own and listed origins pass, CORS only for those."""
    config = ServeConfig(port=0, allowed_origins=["http://app.example"])
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        url = "/api/agents/assistant/chat"
        hostile = await srv.client.post(
            url, json={"message": "hi"}, headers={"Origin": "http://evil.example"}
        )
        assert hostile.status_code == 403
        assert hostile.json()["error_class"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in hostile.headers
        form = await srv.client.post(
            url,
            content=b"message=hi",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415
        same = srv.url.replace("127.0.0.1", "127.0.0.1")
        ok = await srv.client.post(url, json={"message": "hi"}, headers={"Origin": same})
        assert ok.status_code == 200
        listed = await srv.client.post(
            url, json={"message": "hi"}, headers={"Origin": "http://app.example"}
        )
        assert listed.status_code == 200
        assert listed.headers["Access-Control-Allow-Origin"] == "http://app.example"
        preflight = await srv.client.options(
            url, headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
        )
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        unlisted = await srv.client.options(url, headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in unlisted.headers


async def test_a_body_nested_too_deeply_is_a_400() -> None:
    """JSON nested deeper than the parser's stack is bad JSON (it was a 500)."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        deep = await srv.client.post(
            "/api/agents/assistant/chat",
            content=b'{"message": ' + b"[" * 200_000,
            headers={"Content-Type": "application/json"},
        )
        assert deep.status_code == 400
        assert deep.json()["error_class"] == "bad_json"
        assert "nested too deeply" in deep.json()["error"]


async def test_bad_bodies_get_400_413_422_with_field_paths() -> None:
    """Bad JSON 400, too big 413 (declared or chunked), wrong types 422 with the field."""
    config = ServeConfig(port=0, max_body_bytes=64)
    async with orchestrator_with_assistant() as orch, running_server(orch, config) as srv:
        url = "/api/agents/assistant/chat"
        headers = {"Content-Type": "application/json"}
        bad = await srv.client.post(url, content=b"{not json", headers=headers)
        assert bad.status_code == 400 and bad.json()["error_class"] == "bad_json"
        big = await srv.client.post(url, json={"message": "x" * 100})
        assert big.status_code == 413

        async def chunks():  # no Content-Length: the limit holds while reading  # noqa: ASYNC124
            for _ in range(10):
                yield b" " * 20

        chunked = await srv.client.post(url, content=chunks(), headers=headers)
        assert chunked.status_code == 413
        wrong = await srv.client.post(url, json={"message": 5})
        assert wrong.status_code == 422
        assert wrong.json()["fields"] == [
            {"path": "message", "error": "expected a string, got int"}
        ]
        missing = await srv.client.post(url, json={})
        assert missing.json()["fields"][0] == {"path": "message", "error": "required"}
        extra = await srv.client.post(url, json={"message": "a", "x": 1})
        assert extra.status_code == 422 and extra.json()["fields"][0]["path"] == "x"
        not_object = await srv.client.post(url, json=["a"])
        assert not_object.status_code == 422 and not_object.json()["fields"][0]["path"] == "$"
        unknown = await srv.client.post("/api/agents/nobody/chat", json={"message": "hi"})
        assert unknown.status_code == 404
        bad_user = await srv.client.post("/api/agents/assistant:/chat", json={"message": "hi"})
        assert bad_user.status_code == 422


async def test_an_unexpected_error_is_a_500_with_request_id_and_no_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug answers 500 with a request id, no traceback; the traceback is logged."""
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        from vega_trio.serve import _app

        def broken(*args: object, **kwargs: object) -> dict[str, object]:
            raise RuntimeError("internal detail /etc/secret-path")

        await orch.session("assistant")
        monkeypatch.setattr(_app, "process_dict", broken)
        with caplog.at_level(logging.ERROR, logger="vega_trio.serve"):
            response = await srv.client.get("/api/processes")
        assert response.status_code == 500
        body = response.json()
        assert body["error_class"] == "internal_error"
        assert body["request_id"] == response.headers["X-Request-ID"]
        assert "secret-path" not in response.text and "Traceback" not in response.text
        assert any(body["request_id"] in r.getMessage() and r.exc_info for r in caplog.records)


async def test_secrets_in_responses_are_redacted() -> None:
    """A registered secret that reaches a response body is masked by the redaction layer."""
    from vega_trio._redact import register_secret

    secret = "sk-ant-api03-" + "Z" * 40
    register_secret(secret)
    async with orchestrator_with_assistant() as orch, running_server(orch) as srv:
        reply = await srv.client.post(
            "/api/agents/assistant/chat", json={"message": f"my key is {secret}"}
        )
        assert reply.status_code == 200
        assert secret not in reply.text
        history = await srv.client.get("/api/agents/assistant/chat")
        assert secret not in history.text
