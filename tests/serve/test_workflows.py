"""Workflows over the API: listed with their input schemas, run with top-level fields as
inputs (the seed's curl line), bad inputs as 422 with the CLI's diagnostics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from vega_trio.dsl import load_file
from vega_trio.dsl._interpreter import Runner, open_runner
from vega_trio.serve import ServeConfig
from vega_trio.testing import ScriptedLLM, Step

from ._helpers import Running, running_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "code-review.vega.yaml"


@asynccontextmanager
async def served_document() -> AsyncIterator[tuple[Runner, Running]]:
    document = load_file(EXAMPLE)
    async with open_runner(document, llm=ScriptedLLM.echo("APPROVED ")) as runner:
        async with running_server(runner.orchestrator, ServeConfig(port=0), runner=runner) as srv:
            yield runner, srv


async def test_workflows_are_listed_with_their_input_schemas() -> None:
    """GET /api/workflows gives inputs as a JSON Schema (required, default, enum)."""
    async with served_document() as (_, srv):
        [review] = (await srv.client.get("/api/workflows")).json()["workflows"]
    assert review["name"] == "review"
    inputs = review["inputs"]
    assert inputs["required"] == ["task"]
    assert inputs["properties"]["language"] == {
        "type": "string",
        "default": "Python",
        "enum": ["Python", "Go", "Rust"],
    }
    assert inputs["properties"]["task"]["type"] == "string"


async def test_the_seed_curl_line_runs_a_workflow_with_top_level_inputs() -> None:
    """POST /run {"task"} is 202 {run_id, status}; GET runs/{id} has the output."""
    async with served_document() as (runner, srv):
        with runner.orchestrator.subscribe(types="workflow.completed") as done:
            accepted = await srv.client.post(
                "/api/workflows/review/run", json={"task": "Write a sort function"}
            )
            assert accepted.status_code == 202
            body = accepted.json()
            assert body == {"run_id": "review-1", "status": "running"}
            with trio.fail_after(10):
                event = await done.receive()
        assert event.run_id == "review-1"
        run = (await srv.client.get("/api/workflows/runs/review-1")).json()
        assert run["status"] == "completed"
        assert "Write a sort function" in str(run["output"])
        nested = await srv.client.post(
            "/api/workflows/review/run", json={"inputs": {"task": "t", "language": "Go"}}
        )
        assert nested.status_code == 202
        missing = await srv.client.get("/api/workflows/runs/nope")
        assert missing.status_code == 404


async def test_bad_workflow_inputs_are_422_with_the_cli_diagnostics() -> None:
    """A bad input is 422 naming inputs.<name>; an unknown workflow 404; nothing runs."""
    async with served_document() as (runner, srv):
        bad = await srv.client.post(
            "/api/workflows/review/run", json={"task": "x", "language": "COBOL"}
        )
        assert bad.status_code == 422
        assert bad.json()["error_class"] == "invalid_input"
        assert bad.json()["fields"][0]["path"] == "inputs.language"
        assert bad.json()["error"].endswith("; nothing was run")
        missing = await srv.client.post("/api/workflows/review/run", json={})
        assert missing.status_code == 422
        assert missing.json()["fields"][0]["path"] == "inputs.task"
        unknown = await srv.client.post("/api/workflows/nope/run", json={})
        assert unknown.status_code == 404
        assert runner.orchestrator.processes() == []


async def test_runs_are_listed_by_status_and_a_running_one_can_be_cancelled() -> None:
    """POST runs/{id}/cancel stops a running run (cancelled); GET runs?status= lists it."""
    document = load_file(EXAMPLE)
    slow = ScriptedLLM(responder=lambda request: Step.text("thinking", delay=3600))
    async with open_runner(document, llm=slow) as runner:
        async with running_server(runner.orchestrator, ServeConfig(port=0), runner=runner) as srv:
            with runner.orchestrator.subscribe(types="workflow.step") as steps:
                run_id = (
                    await srv.client.post("/api/workflows/review/run", json={"task": "t"})
                ).json()["run_id"]
                with trio.fail_after(10):
                    await steps.receive()  # the first step is running
            with trio.fail_after(10):
                cancelled = await srv.client.post(f"/api/workflows/runs/{run_id}/cancel", json={})
            assert cancelled.status_code == 200
            assert cancelled.json()["status"] == "cancelled"
            listed = await srv.client.get("/api/workflows/runs", params={"status": "cancelled"})
            assert [r["run_id"] for r in listed.json()["runs"]] == [run_id]
            running = await srv.client.get("/api/workflows/runs", params={"status": "running"})
            assert running.json()["runs"] == []
            assert runner.orchestrator.processes() == []
