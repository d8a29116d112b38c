"""The Quart-Trio app: routes that translate HTTP to orchestrator calls and typed events
to JSON (SPEC §10.1). No business logic lives here: agents come from ``orch.agents``,
conversations from ``orch.session``, numbers from the orchestrator's queries."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .._agents import AgentDefinition, session_name
from .._errors import (
    ProcessNotFound,
    RequestRejected,
    WorkflowError,
    step_error_class,
)
from .._exit import ProcessStatus
from .._redact import redact_data
from ..agent import AgentProcess
from ..agent._events import DoneEvent, ErrorEvent, TextDeltaEvent
from ..dsl._inputs import is_required
from ..dsl._interpreter import Runner
from ..dsl._model import WorkflowSpec
from ..llm import marshal_messages
from ..observability import health_status, render_metrics
from ..runtime import Lagged, Process
from ._persist import (
    committed,
    cost_report,
    process_from_store,
    processes_page,
    replay_from_store,
    stored_conversation,
)
from ._problems import failure_of
from ._security import install_security
from ._state import ChatReply, ServerState, WorkflowRun

__all__ = ["create_app"]

_log = logging.getLogger("vega_trio.serve")

_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not hold events back
}
_STATUSES = frozenset(s.value for s in ProcessStatus)


# --------------------------------------------------------------------------- helpers
def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response; every body goes through the redaction layer (SPEC §11)."""
    body = json.dumps(redact_data(data), ensure_ascii=False, default=str)
    return Response(body, status=status, headers=dict(headers or {}), mimetype="application/json")


def _reject_fields(path: str, error: str) -> RequestRejected:
    return RequestRejected(
        422,
        f"invalid request: {path}: {error}",
        error_class="validation_error",
        fields=[{"path": path, "error": error}],
    )


async def json_body(allowed: frozenset[str] | None) -> dict[str, Any]:
    """The request's JSON object.

    Raises:
        RequestRejected: 400 not JSON, 413 over the size limit, 422 not an object or
            an unknown field (its path; ``allowed=None`` takes any).
    """
    raw = await request.get_data(as_text=False)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRejected(
            400, f"the request body is not valid JSON: {exc}", error_class="bad_json"
        ) from None
    if not isinstance(data, dict):
        raise _reject_fields("$", f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed) if allowed is not None else []
    if unknown and allowed is not None:
        raise _reject_fields(unknown[0], f"unknown field (allowed: {', '.join(sorted(allowed))})")
    return data


def _text_field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        raise _reject_fields(name, "required")
    if not isinstance(value, str):
        raise _reject_fields(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise _reject_fields(name, "must not be empty")
    return value


def _int_arg(name: str, default: int, *, low: int, high: int | None = None) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _reject_fields(name, f"expected an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise _reject_fields(name, f"must be {bound}, got {value}")
    return value


def _list_arg(*names: str) -> list[str] | None:
    """A filter given as ``?x=a&x=b`` or ``?x=a,b`` (under any of ``names``)."""
    values = [
        part.strip()
        for name in names
        for raw in request.args.getlist(name)
        for part in raw.split(",")
        if part.strip()
    ]
    return values or None


def _split_session(name: str) -> tuple[str, str | None]:
    """``agent:user-id`` as ``(agent, user)`` (``user`` is ``None`` without a colon)."""
    agent, sep, user = name.partition(":")
    if sep and (not user or ":" in user or user != user.strip()):
        raise _reject_fields(
            "name", f"{name!r} is not AGENT or AGENT:USER-ID (one colon, a non-empty user id)"
        )
    return agent, (user if sep else None)


def _page(items: list[Any], key: str) -> dict[str, Any]:
    state: ServerState = g.state
    limit = _int_arg("limit", state.config.page_size, low=1, high=state.config.max_page_size)
    offset = _int_arg("offset", 0, low=0)
    return {
        key: items[offset : offset + limit],
        "total": len(items),
        "offset": offset,
        "limit": limit,
    }


def process_dict(proc: Process, *, conversation: bool = False) -> dict[str, Any]:
    """A process's JSON form (SPEC §1.1)."""
    data: dict[str, Any] = {
        "id": proc.id,
        "name": proc.name,
        "agent": proc.agent_name,
        "status": str(proc.status),
        "parent_id": proc.parent_id,
        "spawn_depth": proc.spawn_depth,
        "spawn_reason": proc.spawn_reason,
        "task": proc.task,
        "started_at": proc.started_at,
        "completed_at": proc.completed_at,
        "last_active": proc.last_active,
        "restart_count": proc.restart_count,
        "groups": sorted(proc.groups),
    }
    if isinstance(proc, AgentProcess):
        data["model"] = proc.model
        data["metrics"] = proc.metrics.to_dict()
        if conversation:
            data["conversation"] = json.loads(marshal_messages(proc.history))
    return data


def _definition_dict(definition: AgentDefinition, live: list[Process]) -> dict[str, Any]:
    agent = definition.agent
    counts: dict[str, int] = {}
    for proc in live:
        if proc.agent_name == agent.name:
            counts[str(proc.status)] = counts.get(str(proc.status), 0) + 1
    return {
        "name": agent.name,
        "source": definition.source,
        "revision": definition.revision,
        "model": agent.model,
        "description": agent.description,
        "system": agent.system if isinstance(agent.system, str) else None,
        "tools": list(agent.tool_names),
        "team": [m if isinstance(m, str) else m.name for m in agent.team],
        "max_iterations": agent.max_iterations,
        "max_tokens": agent.max_tokens,
        "temperature": agent.temperature,
        "processes": counts,
    }


def _sse(event: str, data: Mapping[str, Any], *, event_id: int | None = None) -> bytes:
    payload = json.dumps(redact_data(dict(data)), ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {payload}\n\n".encode()


def _shutdown_error() -> ErrorEvent:
    return ErrorEvent(
        error="the server is shutting down; this reply was not finished",
        error_class="server_shutdown",
    )


_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


def _workflow_dict(workflow: WorkflowSpec) -> dict[str, Any]:
    """A workflow with its inputs as a JSON Schema (what a launcher form needs)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for spec in workflow.inputs:
        schema: dict[str, Any] = {"type": _JSON_TYPES.get(spec.type, "string")}
        if spec.description:
            schema["description"] = spec.description
        if spec.default is not None:
            schema["default"] = spec.default
        if spec.enum is not None:
            schema["enum"] = list(spec.enum)
        properties[spec.name] = schema
        if is_required(spec):
            required.append(spec.name)
    return {
        "name": workflow.name,
        "description": workflow.description,
        "inputs": {"type": "object", "properties": properties, "required": required},
    }


def _run_record(state: ServerState, run_id: str) -> WorkflowRun:
    record = state.runs.get(run_id)
    if record is None:
        raise RequestRejected(
            404, f"no workflow run {run_id!r} on this server", error_class="run_not_found"
        )
    return record


async def _run_workflow(
    runner: Runner,
    spec: WorkflowSpec,
    run_id: str,
    variables: dict[str, Any],
    record: WorkflowRun,
) -> None:
    """A run started over the API, as a task of the server; its record keeps the outcome."""
    try:
        with record.scope:
            result = await runner._run(spec, run_id, variables)
        if record.scope.cancelled_caught:
            record.status = "cancelled"
            return
    except Exception as exc:
        record.status = "failed"
        record.error = str(exc) or type(exc).__name__
        record.error_class = step_error_class(exc)
        record.step = exc.path if isinstance(exc, WorkflowError) else None
    else:
        record.status = "completed"
        record.output = result.output
        record.cost_usd = result.cost_usd
        record.steps_run = result.steps_run
    finally:
        if record.status == "running":  # cancelled: the server stopped under it
            record.status = "interrupted"
        record.ended.set()


# ------------------------------------------------------------------------ the replies
async def _run_reply(  # noqa: ASYNC114 - started right here with nursery.start
    reply: ChatReply,
    proc: AgentProcess,
    message: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one send as a task of the server (not of the HTTP request), keeping its events."""
    try:
        with reply.scope:
            async with proc.send_stream_rich(message) as stream:
                task_status.started()
                async for event in stream:
                    if isinstance(event, ErrorEvent):
                        reply.error = stream.error
                    reply.add(event)
        if reply.scope.cancelled_caught and not reply.ended_properly:
            reply.add(ErrorEvent(error="the reply was cancelled", error_class="cancelled"))
    finally:
        reply.finish()


async def _start_reply(state: ServerState, name: str, message: str) -> ChatReply:
    agent, user = _split_session(name)
    try:
        proc = await state.orch.session(agent, user=user)
    except ValueError as exc:
        raise _reject_fields("name", str(exc)) from None
    if state.closing or state.nursery is None:
        raise RequestRejected(
            503,
            "the server is shutting down",
            error_class="server_shutdown",
            headers={"Retry-After": "1"},
        )
    reply = ChatReply(session=session_name(agent, user))
    await state.nursery.start(_run_reply, reply, proc, message)
    state.replies[reply.session] = reply
    return reply


async def _reply_stream(state: ServerState, reply: ChatReply) -> AsyncIterator[bytes]:
    """The §1.4 SSE stream of a reply, from its first event; ends with exactly one
    ``done`` or ``error`` (``server_shutdown`` when the server stops first)."""
    index = 0
    while True:
        while index < len(reply.events):
            event = reply.events[index]
            index += 1
            yield event.to_sse().encode()
            if isinstance(event, DoneEvent | ErrorEvent):
                return
        if state.closing or reply.finished.is_set():
            yield _shutdown_error().to_sse().encode()
            return
        await reply.wait_changed()


# ------------------------------------------------------------------------------ app
def create_app(state: ServerState) -> QuartTrio:
    """The Quart-Trio app of one server (its routes close over ``state``)."""
    app = QuartTrio("vega_trio.serve")
    app.config["RESPONSE_TIMEOUT"] = None  # streams are bounded by shutdown instead
    app.config["BODY_TIMEOUT"] = 60
    app.config["MAX_CONTENT_LENGTH"] = state.config.max_body_bytes
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    orch = state.orch

    @app.before_request
    async def remember_state() -> None:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        g.state = state

    install_security(app, state)

    @app.errorhandler(Exception)
    async def handle_error(exc: Exception) -> Response:  # noqa: ASYNC124
        request_id = g.get("request_id") or "-"
        if isinstance(exc, HTTPException):
            status = exc.code or 500
            body: dict[str, Any] = {
                "error": exc.description or exc.name,
                "error_class": exc.name.lower().replace(" ", "_"),
                "request_id": request_id,
            }
            return json_response(body, status)
        failure = failure_of(exc)
        if failure.internal:
            _log.error(
                "request %s (%s %s) failed", request_id, request.method, request.path, exc_info=exc
            )
        body = {"error": failure.message, "error_class": failure.error_class}
        body.update(failure.extra)
        body["request_id"] = request_id
        return json_response(body, failure.status, failure.headers)

    # ------------------------------------------------------------------ health
    @app.get("/healthz")
    async def healthz() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        # ok / degraded (health alerts going on) / closing, and processes by status; 503
        # while closing, so a load balancer stops sending work here.
        # A degraded store (writes failing, being retried) keeps the server serving:
        # 200 "degraded"; a closed one cannot acknowledge anything: 503.
        health = health_status(orch)
        if state.closing:
            health["status"], health["closing"] = "closing", True
        store_closed = health.get("store", {}).get("status") == "closed"
        return json_response(health, status=503 if health["closing"] or store_closed else 200)

    @app.get("/metrics")
    async def metrics() -> Response:  # noqa: ASYNC124
        body, content_type = render_metrics(orch)
        return Response(body, status=200, content_type=content_type)

    # ------------------------------------------------------------------ agents
    @app.get("/api/agents")
    async def list_agents() -> Response:  # noqa: ASYNC124
        live = orch.processes()
        return json_response({"agents": [_definition_dict(d, live) for d in orch.agents.list()]})

    @app.get("/api/agents/<name>")
    async def get_agent(name: str) -> Response:  # noqa: ASYNC124
        return json_response(_definition_dict(orch.agents.get(name), orch.processes()))

    @app.post("/api/agents/<name>/chat")
    async def chat(name: str) -> Response:
        message = _text_field(await json_body(frozenset({"message"})), "message")
        reply = await _start_reply(state, name, message)
        # NOTE: the reply runs in the server's nursery: if this client leaves, it
        # still completes and stays in the conversation.
        while not reply.finished.is_set() and not state.closing:
            await reply.wait_changed()
        last = reply.events[-1] if reply.events else None
        if isinstance(last, DoneEvent):
            text = "".join(
                e.delta for e in reply.events if isinstance(e, TextDeltaEvent) and e.agent is None
            )
            return json_response({"response": text, "metrics": last.metrics.to_dict()})
        if isinstance(reply.error, Exception):
            raise reply.error
        raise RequestRejected(
            503,
            "the server is shutting down; the reply was not finished",
            error_class="server_shutdown",
            headers={"Retry-After": "1"},
        )

    @app.post("/api/agents/<name>/chat/stream")
    async def chat_stream(name: str) -> Response:
        message = _text_field(await json_body(frozenset({"message"})), "message")
        reply = await _start_reply(state, name, message)
        response = Response(_reply_stream(state, reply), headers=_SSE_HEADERS)
        response.timeout = None
        return response

    @app.get("/api/agents/<name>/chat/stream")
    async def chat_reattach(name: str) -> Response:  # noqa: ASYNC124
        agent, user = _split_session(name)
        orch.agents.get(agent)
        reply = state.replies.get(session_name(agent, user))
        if reply is None:
            raise RequestRejected(
                404,
                f"no reply of {name!r} to re-attach to; POST a message first",
                error_class="no_reply",
            )
        response = Response(_reply_stream(state, reply), headers=_SSE_HEADERS)
        response.timeout = None
        return response

    @app.delete("/api/agents/<name>/chat/stream")
    async def chat_cancel(name: str) -> Response:
        agent, user = _split_session(name)
        orch.agents.get(agent)
        reply = state.replies.get(session_name(agent, user))
        in_flight = reply is not None and not reply.finished.is_set()
        if reply is not None and in_flight:
            reply.scope.cancel(reason="cancelled over the API")
            await reply.finished.wait()
        return json_response({"cancelled": in_flight})

    @app.delete("/api/agents/<name>/chat")
    async def chat_clear(name: str) -> Response:
        agent, user = _split_session(name)
        orch.agents.get(agent)
        try:
            ended = await orch.end_session(agent, user=user)
        except ValueError as exc:
            raise _reject_fields("name", str(exc)) from None
        state.replies.pop(session_name(agent, user), None)
        return json_response({"cleared": ended})

    @app.get("/api/agents/<name>/chat")
    async def chat_history(name: str) -> Response:  # noqa: ASYNC124
        agent, user = _split_session(name)
        orch.agents.get(agent)  # 404 for an unknown agent
        stored = await stored_conversation(orch, agent, user)
        if stored is not None:  # every committed turn, also after a restart
            return json_response(_page(stored, "messages"))
        try:
            proc = orch.lookup(session_name(agent, user))
        except ProcessNotFound:
            messages: list[Any] = []
        else:
            history = proc.history if isinstance(proc, AgentProcess) else []
            messages = json.loads(marshal_messages(history))
        return json_response(_page(messages, "messages"))

    # --------------------------------------------------------------- processes
    @app.get("/api/processes")
    async def list_processes() -> Response:  # noqa: ASYNC124
        statuses = _list_arg("status")
        for value in statuses or ():
            if value not in _STATUSES:
                raise _reject_fields(
                    "status", f"{value!r} is not one of {', '.join(sorted(_STATUSES))}"
                )
        agents = _list_arg("agent")
        page = await processes_page(
            orch,
            process_dict,
            statuses=statuses,
            agents=agents,
            limit=_int_arg("limit", state.config.page_size, low=1, high=state.config.max_page_size),
            offset=_int_arg("offset", 0, low=0),
        )
        if page is not None:  # finished ones too, newest first
            return json_response(page)
        found = [
            process_dict(p)
            for p in orch.processes()
            if (statuses is None or str(p.status) in statuses)
            and (agents is None or p.agent_name in agents)
        ]
        return json_response(_page(found, "processes"))

    @app.get("/api/processes/<process_id>")
    async def get_process(process_id: str) -> Response:
        try:
            return json_response(process_dict(orch.get(process_id), conversation=True))
        except ProcessNotFound:
            stored = await process_from_store(orch, process_id)
            if stored is None:
                raise
            return json_response(stored)

    @app.delete("/api/processes/<process_id>")
    async def kill_process(process_id: str) -> Response:
        proc = orch.get(process_id)
        proc.kill("killed over the API")
        with trio.move_on_after(state.config.graceful_timeout):
            await proc.wait()
        return json_response(process_dict(proc))

    # ------------------------------------------------------------------ queries
    @app.get("/api/stats")
    async def stats() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        return json_response(orch.stats())

    @app.get("/api/spawn-tree")
    async def spawn_tree() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        return json_response({"tree": [node.to_dict() for node in orch.spawn_tree()]})

    @app.get("/api/supervision-tree")
    async def supervision_tree() -> Response:  # noqa: ASYNC124
        return json_response({"supervisors": orch.supervision_tree()})

    @app.get("/api/costs")
    async def costs() -> Response:
        since = request.args.get("since")
        try:
            since_at = None if since is None else float(since)
        except ValueError:
            raise _reject_fields(
                "since", f"expected seconds since the epoch, got {since!r}"
            ) from None
        bucket = _int_arg("bucket", 3600, low=1)
        return json_response(await cost_report(orch, bucket_seconds=bucket, since=since_at))

    @app.get("/api/mcp/servers")
    async def mcp_servers() -> Response:  # noqa: ASYNC124
        return json_response({"servers": orch.mcp.status() if orch.mcp is not None else []})

    # ---------------------------------------------------------------- workflows
    @app.get("/api/workflows")
    async def list_workflows() -> Response:  # noqa: ASYNC124
        runner = state.runner
        workflows = runner.document.workflows if runner is not None else ()
        return json_response({"workflows": [_workflow_dict(w) for w in workflows]})

    @app.post("/api/workflows/<name>/run")
    async def run_workflow(name: str) -> Response:
        runner = state.runner
        if runner is None or runner.document.workflow(name) is None:
            known = ", ".join(w.name for w in runner.document.workflows) if runner else ""
            raise RequestRejected(
                404,
                f"there is no workflow named {name!r} (workflows: {known or 'none'})",
                error_class="workflow_not_found",
            )
        body = await request.get_data(as_text=False)
        data = await json_body(None) if body.strip() else {}
        nested = data.pop("inputs", None)
        if nested is not None and not isinstance(nested, dict):
            raise _reject_fields("inputs", f"expected an object, got {type(nested).__name__}")
        inputs = {**data, **(nested or {})}  # top-level fields are inputs too
        spec, run_id, variables = runner._prepare(name, inputs)
        if state.closing or state.nursery is None:
            raise RequestRejected(
                503,
                "the server is shutting down",
                error_class="server_shutdown",
                headers={"Retry-After": "1"},
            )
        record = state.runs[run_id] = WorkflowRun(run_id=run_id, workflow=name)
        state.nursery.start_soon(_run_workflow, runner, spec, run_id, variables, record)
        return json_response({"run_id": run_id, "status": record.status}, 202)

    @app.get("/api/workflows/runs")
    async def list_runs() -> Response:  # noqa: ASYNC124
        statuses = _list_arg("status")
        runs = [
            r.to_dict() for r in state.runs.values() if statuses is None or r.status in statuses
        ]
        return json_response(_page(runs, "runs"))

    @app.post("/api/workflows/runs/<run_id>/cancel")
    async def cancel_run(run_id: str) -> Response:
        record = _run_record(state, run_id)
        if record.status == "running":
            record.scope.cancel(reason="cancelled over the API")
            with trio.move_on_after(state.config.graceful_timeout):
                await record.ended.wait()
        return json_response(record.to_dict())

    @app.get("/api/workflows/runs/<run_id>")
    async def get_run(run_id: str) -> Response:  # noqa: ASYNC124
        return json_response(_run_record(state, run_id).to_dict())

    # ------------------------------------------------------------------- events
    @app.get("/api/events")
    async def events() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        types = _list_arg("types", "type")
        agents = _list_arg("agent", "agents")
        processes = _list_arg("process", "processes")
        runs = _list_arg("run", "runs")
        last_id = request.headers.get("Last-Event-ID")
        after: int | None = None
        if last_id is not None:
            if not last_id.strip().isdigit():
                raise RequestRejected(
                    400,
                    f"Last-Event-ID must be an event's sequence number, got {last_id!r}",
                    error_class="bad_last_event_id",
                )
            after = int(last_id)
        response = Response(
            _event_stream(state, types, agents, processes, runs, after), headers=_SSE_HEADERS
        )
        response.timeout = None
        return response

    return app


async def _event_stream(
    state: ServerState,
    types: list[str] | None,
    agents: list[str] | None,
    processes: list[str] | None,
    runs: list[str] | None,
    after: int | None,
) -> AsyncIterator[bytes]:
    """``/api/events``: ``id:`` is the event's sequence number; ``: heartbeat`` after
    every quiet ``heartbeat_interval``; a ``lagged`` event when this client fell behind;
    a final ``shutdown`` event when the server stops.

    NOTE (ASYNC119): Quart closes a streamed body's iterator (``aclose``) when the
    response ends or the client leaves, so the subscription's ``with`` always exits."""
    with state.orch.subscribe(
        max_buffer=state.config.event_buffer,
        types=types,
        agents=agents,
        processes=processes,
        runs=runs,
        after=after,
    ) as subscription:
        state.subscriptions.add(subscription)
        try:
            if state.closing:
                subscription.close()
            yield b": connected\n\n"  # noqa: ASYNC119
            # Events older than the bus's history come from the store (across restarts).
            async for seq, kind, data in replay_from_store(
                state.orch,
                subscription,
                after,
                types=types,
                agents=agents,
                processes=processes,
                runs=runs,
            ):
                yield _sse(kind, data, event_id=seq)  # noqa: ASYNC119
            while True:
                item: Any = None
                with trio.move_on_after(state.config.heartbeat_interval):
                    try:
                        item = await subscription.receive()
                    except trio.EndOfChannel:
                        break
                if item is None:
                    yield b": heartbeat\n\n"  # noqa: ASYNC119
                elif isinstance(item, Lagged):
                    yield _sse("lagged", item.to_dict())  # noqa: ASYNC119
                else:
                    if not await committed(state, item.seq):  # an id is an acknowledgement
                        break
                    yield _sse(item.type, item.to_dict(), event_id=item.seq)  # noqa: ASYNC119
        finally:
            state.subscriptions.discard(subscription)
    yield _sse("shutdown", {"type": "shutdown", "reason": "the server is shutting down"})
