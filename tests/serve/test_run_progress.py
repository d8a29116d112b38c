"""Workflow runs over the API: per-step progress in ``GET /api/workflows/runs/{id}``,
``POST …/resume`` (202, 404, 409) that does not call the model for completed steps, and
the server keeping only the last finished runs in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from vega_trio import ErrorClass
from vega_trio.dsl._events import WorkflowStepStatus
from vega_trio.dsl._interpreter import Runner, open_runner
from vega_trio.dsl._model import AgentStep, Document, ForStep
from vega_trio.llm import LLMRequest
from vega_trio.serve import ServeConfig
from vega_trio.store import Store, open_store
from vega_trio.testing import ScriptedLLM
from vega_trio.testing import Step as Reply

from ..dsl.test_interpreter import agent_of, document, last_user_text, workflow
from ._helpers import Running, running_server


class Model:
    """Answers ``<agent>: <message>``; fails the messages in ``failing``; holds the
    messages in ``slow`` for an hour; keeps every message sent."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.slow: set[str] = set()
        self.slow_sent = trio.Event()
        self.llm = ScriptedLLM(responder=self._respond)

    def _respond(self, request: LLMRequest) -> Reply:
        text = last_user_text(request)
        if text in self.failing:
            return Reply.error(ErrorClass.INVALID_REQUEST, f"refused {text!r}")
        if text in self.slow:
            self.slow_sent.set()
            return Reply.text(f"{agent_of(request)}: {text}", delay=3600)
        return Reply.text(f"{agent_of(request)}: {text}")

    def sent(self) -> list[str]:
        return [last_user_text(r) for r in self.llm.requests]


def chain() -> Document:
    return document(
        workflow(
            AgentStep(agent="researcher", send="find {{ topic }}", save="found"),
            ForStep(
                variable="part",
                items="parts",
                steps=(AgentStep(agent="writer", send="write {{ part }}"),),
            ),
            AgentStep(agent="writer", send="end {{ found }}"),
        )
    )


@asynccontextmanager
async def served(
    model: Model, store: Store | None = None, **config: Any
) -> AsyncIterator[tuple[Runner, Running]]:
    options = {} if store is None else {"store": store}
    async with open_runner(chain(), llm=model.llm, base_dir=Path.cwd(), **options) as runner:
        async with running_server(
            runner.orchestrator, ServeConfig(port=0, **config), runner=runner
        ) as srv:
            yield runner, srv


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The real SQLite store on a fresh file."""
    async with open_store(tmp_path / "runs.db") as opened:
        yield opened


async def start(srv: Running, runner: Runner, **inputs: Any) -> tuple[str, str]:
    """Start a run of ``main``; wait for it to end; its id and final status."""
    with runner.orchestrator.subscribe(types=("workflow.completed", "workflow.failed")) as done:
        accepted = await srv.client.post("/api/workflows/main/run", json=inputs)
        assert accepted.status_code == 202, accepted.text
        with trio.fail_after(10):
            event = await done.receive()
    run_id = accepted.json()["run_id"]
    assert event.run_id == run_id
    return run_id, event.type.removeprefix("workflow.")


async def test_a_run_shows_per_step_progress_while_it_runs_and_after() -> None:
    """GET runs/{id} lists each step with its status, times, tokens and error: the
    running step as running, loop iterations as their own steps, a failure's error."""
    model = Model()
    model.slow.add("write b")
    async with served(model) as (runner, srv):
        with runner.orchestrator.subscribe(types="workflow.step") as steps:
            accepted = await srv.client.post(
                "/api/workflows/main/run", json={"topic": "Go", "parts": ["a", "b"]}
            )
            run_id = accepted.json()["run_id"]
            with trio.fail_after(10):
                async for event in steps:
                    assert isinstance(event, WorkflowStepStatus)
                    if event.path.endswith("for[1].steps[0]") and event.status == "started":
                        break
        with trio.fail_after(10):
            await model.slow_sent.wait()
        run = (await srv.client.get(f"/api/workflows/runs/{run_id}")).json()
        progress = {s["path"]: s for s in run["steps"]}
        assert [s["path"] for s in run["steps"]] == [
            "main.steps[0]",
            "main.steps[1]",
            "main.steps[1].for[0].steps[0]",
            "main.steps[1].for[1].steps[0]",
        ]
        first = progress["main.steps[0]"]
        assert (first["status"], first["step"], first["agent"]) == (
            "completed",
            "agent",
            "researcher",
        )
        assert first["tokens"] > 0 and first["ended_at"] >= first["started_at"] > 0
        assert first["error"] is None
        assert progress["main.steps[1]"]["status"] == "running"
        assert progress["main.steps[1].for[1].steps[0]"]["status"] == "running"
        assert progress["main.steps[1].for[1].steps[0]"]["ended_at"] is None

        model.slow.clear()
        model.failing.add("end researcher: find Go")
        await srv.client.post(f"/api/workflows/runs/{run_id}/cancel", json={})
        run_id, status = await start(srv, runner, topic="Go", parts=["a"])
        assert status == "failed"
        run = (await srv.client.get(f"/api/workflows/runs/{run_id}")).json()
    failed = run["steps"][-1]
    assert (failed["path"], failed["status"]) == ("main.steps[2]", "failed")
    assert "refused 'end researcher: find Go'" in failed["error"]
    assert run["status"] == "failed" and run["step"] == "workflows.main.steps[2]"


async def test_resume_route_statuses_and_no_model_call_for_completed_steps(store: Store) -> None:
    """POST runs/{id}/resume: 404 unknown, 202 for a failed run (which then completes
    without sending its completed steps again; reused steps show as ``reused``), 409
    once it completed, 409 while it runs."""
    model = Model()
    model.failing.add("end researcher: find Go")
    async with served(model, store) as (runner, srv):
        missing = await srv.client.post("/api/workflows/runs/main-nope/resume", json={})
        assert missing.status_code == 404
        assert missing.json()["error_class"] == "run_not_found"

        run_id, status = await start(srv, runner, topic="Go", parts=["a", "b"])
        assert status == "failed"
        assert model.sent() == ["find Go", "write a", "write b", "end researcher: find Go"]
        model.failing.clear()
        with runner.orchestrator.subscribe(types="workflow.completed") as done:
            resumed = await srv.client.post(f"/api/workflows/runs/{run_id}/resume", json={})
            assert resumed.status_code == 202, resumed.text
            assert resumed.json() == {"run_id": run_id, "status": "running"}
            with trio.fail_after(10):
                await done.receive()
        assert model.sent()[4:] == ["end researcher: find Go"]
        run = (await srv.client.get(f"/api/workflows/runs/{run_id}")).json()
        assert (run["status"], run["resumes"]) == ("completed", 1)
        assert run["output"] == "writer: end researcher: find Go"
        statuses = [(s["path"], s["status"]) for s in run["steps"]]
        assert statuses == [
            ("main.steps[0]", "reused"),
            ("main.steps[1]", "reused"),
            ("main.steps[2]", "completed"),
        ]
        again = await srv.client.post(f"/api/workflows/runs/{run_id}/resume", json={})
        assert again.status_code == 409
        assert again.json()["error_class"] == "run_completed"

        model.slow.add("find slow")
        with runner.orchestrator.subscribe(types="workflow.step") as steps:
            accepted = await srv.client.post(
                "/api/workflows/main/run", json={"topic": "slow", "parts": []}
            )
            with trio.fail_after(10):
                await steps.receive()
        busy = await srv.client.post(
            f"/api/workflows/runs/{accepted.json()['run_id']}/resume", json={}
        )
        assert busy.status_code == 409
        assert busy.json()["error_class"] == "run_running"
        with trio.fail_after(10):
            await srv.client.post(
                f"/api/workflows/runs/{accepted.json()['run_id']}/cancel", json={}
            )
        cancelled = await store.get_run(accepted.json()["run_id"])
        assert cancelled is not None and cancelled.status == "cancelled"


async def test_a_cancelled_run_resumes_over_the_api(store: Store) -> None:
    """A run cancelled over the API (``cancelled`` in the store too) resumes with 202
    and finishes, the step it was cancelled in running again."""
    model = Model()
    model.slow.add("write a")
    async with served(model, store) as (runner, srv):
        with runner.orchestrator.subscribe(types="workflow.step") as steps:
            accepted = await srv.client.post(
                "/api/workflows/main/run", json={"topic": "Go", "parts": ["a"]}
            )
            run_id = accepted.json()["run_id"]
            with trio.fail_after(10):
                async for event in steps:
                    if isinstance(event, WorkflowStepStatus) and event.agent == "writer":
                        break
        with trio.fail_after(10):
            cancelled = await srv.client.post(f"/api/workflows/runs/{run_id}/cancel", json={})
        assert cancelled.json()["status"] == "cancelled"
        model.slow.clear()
        with runner.orchestrator.subscribe(types="workflow.completed") as done:
            resumed = await srv.client.post(f"/api/workflows/runs/{run_id}/resume", json={})
            assert resumed.status_code == 202
            with trio.fail_after(10):
                await done.receive()
    assert model.sent().count("find Go") == 1
    assert model.sent().count("write a") == 2


async def test_finished_runs_beyond_the_bound_are_dropped_from_memory(store: Store) -> None:
    """With max_finished_runs=2 and no store the server lists only the last two finished
    runs (newest first) and an older one is 404; with a store every run is listed and
    served from it."""
    model = Model()
    async with served(model, max_finished_runs=2) as (runner, srv):
        ids = [(await start(srv, runner, topic=str(n), parts=[]))[0] for n in range(4)]
        listed = (await srv.client.get("/api/workflows/runs")).json()["runs"]
        assert [r["run_id"] for r in listed] == ids[:1:-1]
        assert (await srv.client.get(f"/api/workflows/runs/{ids[0]}")).status_code == 404
    async with served(model, store, max_finished_runs=1) as (runner, srv):
        ids = [(await start(srv, runner, topic=str(n), parts=[]))[0] for n in range(3)]
        listed = (await srv.client.get("/api/workflows/runs")).json()["runs"]
        assert [r["run_id"] for r in listed] == ids[::-1]
        old = await srv.client.get(f"/api/workflows/runs/{ids[0]}")
        assert old.status_code == 200
        body = old.json()
        assert (body["status"], body["output"]) == ("completed", "writer: end researcher: find 0")
        assert [s["path"] for s in body["steps"]] == [
            "main.steps[0]",
            "main.steps[1]",
            "main.steps[2]",
        ]


async def test_a_server_started_on_a_store_marks_dead_runs_interrupted(store: Store) -> None:
    """Runs a dead process left ``running`` in the store are ``interrupted`` once the
    server has started (served from the store), and resume there from their last
    checkpoint without sending the completed step again."""
    model = Model()
    model.slow.add("write a")
    async with served(model, store) as (runner, srv):
        with runner.orchestrator.subscribe(types="workflow.step") as steps:
            accepted = await srv.client.post(
                "/api/workflows/main/run", json={"topic": "Go", "parts": ["a"]}
            )
            run_id = accepted.json()["run_id"]
            with trio.fail_after(10):
                async for event in steps:
                    if isinstance(event, WorkflowStepStatus) and event.agent == "writer":
                        break
        record = await store.get_run(run_id)
        assert record is not None
    # The first server is gone; make its run look like its process died mid-run.
    await store.save_run(attrs.evolve(record, status="running"))
    model.slow.clear()
    async with served(model, store) as (runner, srv):
        run = (await srv.client.get(f"/api/workflows/runs/{run_id}")).json()
        assert run["status"] == "interrupted"
        assert [(s["path"], s["status"]) for s in run["steps"]] == [("main.steps[0]", "completed")]
        with runner.orchestrator.subscribe(types="workflow.completed") as done:
            resumed = await srv.client.post(f"/api/workflows/runs/{run_id}/resume", json={})
            assert resumed.status_code == 202
            with trio.fail_after(10):
                await done.receive()
    assert model.sent().count("find Go") == 1


async def test_the_runs_list_reads_the_store_newest_first_paginated_by_status(
    store: Store,
) -> None:
    """With a store, GET /api/workflows/runs lists every stored run (also those of a
    server before a restart) newest first, paginated, filtered by ?status=."""
    model = Model()
    model.failing.add("end researcher: find 1")
    async with served(model, store) as (runner, srv):
        ids = [await start(srv, runner, topic=str(n), parts=[]) for n in range(3)]
    assert [status for _, status in ids] == ["completed", "failed", "completed"]
    async with served(model, store) as (runner, srv):  # a new server: nothing in memory
        later, _ = await start(srv, runner, topic="3", parts=[])
        newest_first = [later, *(run_id for run_id, _ in reversed(ids))]
        listed = (await srv.client.get("/api/workflows/runs")).json()
        assert [r["run_id"] for r in listed["runs"]] == newest_first
        assert listed["total"] == 4
        assert listed["runs"][1]["steps"][0]["path"] == "main.steps[0]"  # a stored one
        page = (await srv.client.get("/api/workflows/runs?limit=2&offset=1")).json()
        assert [r["run_id"] for r in page["runs"]] == newest_first[1:3]
        assert (page["total"], page["offset"], page["limit"]) == (4, 1, 2)
        failed = (await srv.client.get("/api/workflows/runs?status=failed")).json()
        assert [(r["run_id"], r["status"]) for r in failed["runs"]] == [(ids[1][0], "failed")]
        assert failed["total"] == 1
