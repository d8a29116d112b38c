"""The Quart-Trio app: routes that translate HTTP to orchestrator calls and typed events
to JSON (SPEC §10.1). No business logic lives here: agents come from ``orch.agents``,
conversations from ``orch.session``, numbers from the orchestrator's queries.

Size: every REST route is declared once, next to its handler, inside :func:`create_app`
(the declaration is the OpenAPI document, see ``_openapi.py``); the WebSocket, compose and
fan-out routes already live in ``_ws.py``, ``_compose.py`` and ``_fanout.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import attrs
import outcome
import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .._agents import AgentDefinition, session_name
from .._errors import (
    ProcessNotFound,
    RequestRejected,
    RunNotResumable,
    WorkflowError,
    step_error_class,
)
from .._exit import ProcessStatus
from .._persist import exit_error
from .._redact import redact_data
from ..agent import AgentProcess
from ..agent._events import DoneEvent, ErrorEvent
from ..dsl._events import WorkflowStepStatus
from ..dsl._inputs import is_required
from ..dsl._interpreter import PROGRESS_BUFFER, Runner
from ..dsl._model import WorkflowSpec
from ..dsl._run_common import _Resumption
from ..llm import marshal_messages
from ..observability import health_status, render_metrics
from ..runtime import Event, Lagged, Process
from ..store import RunRecord, Store
from ._compose import install_compose_routes
from ._config import ServeConfig
from ._fanout import COALESCE as _COALESCE  # noqa: F401 - the tests read it here
from ._fanout import sse as _sse
from ._openapi import (
    EventStream,
    IntHeader,
    IntQuery,
    Json,
    JsonBody,
    ListQuery,
    ObjectField,
    PlainText,
    TextField,
    TextQuery,
    install_api,
    reject_field,
)
from ._persist import (
    cost_report,
    process_from_store,
    processes_page,
    stored_conversation,
)
from ._problems import failure_of
from ._schemas import CHAT_EVENT_SCHEMAS, RUN_STATUSES, RUNTIME_EVENT_SCHEMAS, ref
from ._security import install_security
from ._state import ChatReply, ServerState, WorkflowRun
from ._web import install_web

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


def _split_session(name: str) -> tuple[str, str | None]:
    """``agent:user-id`` as ``(agent, user)`` (``user`` is ``None`` without a colon)."""
    agent, sep, user = name.partition(":")
    if sep and (not user or ":" in user or user != user.strip()):
        raise reject_field(
            "name", f"{name!r} is not AGENT or AGENT:USER-ID (one colon, a non-empty user id)"
        )
    return agent, (user if sep else None)


@attrs.frozen
class _Pagination:
    """``?limit=`` and ``?offset=`` of the paginated lists (bounds from the config)."""

    limit: IntQuery
    offset: IntQuery

    @classmethod
    def of(cls, config: ServeConfig) -> _Pagination:
        return cls(
            IntQuery(
                "limit",
                default=config.page_size,
                minimum=1,
                maximum=config.max_page_size,
                description="the page size",
            ),
            IntQuery("offset", default=0, minimum=0, description="items to skip"),
        )

    @property
    def params(self) -> tuple[IntQuery, IntQuery]:
        return self.limit, self.offset

    def page(self, items: list[Any], key: str) -> dict[str, Any]:
        """The current request's page of ``items`` (schema: ``page_schema(key, ...)``)."""
        limit, offset = self.limit.get(), self.offset.get()
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
        "run_id": proc.run_id,
        "user": proc.user,
        "error": exit_error(proc),
    }
    if isinstance(proc, AgentProcess):
        data["model"] = proc.model
        data["metrics"] = proc.metrics.to_dict()
        if conversation:
            data["conversation"] = json.loads(marshal_messages(proc.history))
    return data


def definition_dict(definition: AgentDefinition, live: list[Process]) -> dict[str, Any]:
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
        # NOTE: the tools it names and the ones it brings (Python functions, the
        # meta-agents' own tools): what its processes can call, apart from a team's.
        "tools": [*agent.tool_names, *agent.tool_registry.names()],
        "team": [m if isinstance(m, str) else m.name for m in agent.team],
        "max_iterations": agent.max_iterations,
        "max_tokens": agent.max_tokens,
        "temperature": agent.temperature,
        "processes": counts,
    }


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


async def _stored_run(state: ServerState, run_id: str) -> dict[str, Any] | None:
    """A run the server no longer holds in memory (pruned, or from before a restart),
    from the store with its steps; ``None`` when there is no store or no such run."""
    store = state.runner.store if state.runner is not None else None
    if store is None:
        return None
    record = await store.get_run(run_id)
    if record is None:
        return None
    return await _stored_run_dict(store, record)


async def _runs_page(
    state: ServerState, statuses: list[str] | None, limit: int, offset: int
) -> dict[str, Any]:
    """``GET /api/workflows/runs``: newest first; with a store every stored run (from
    before a restart, pruned from memory), the ones still in memory as they are now."""
    store = state.runner.store if state.runner is not None else None
    if store is None:
        live = [
            r.to_dict()
            for r in reversed(state.runs.values())
            if statuses is None or r.status in statuses
        ]
        return {
            "runs": live[offset : offset + limit],
            "total": len(live),
            "offset": offset,
            "limit": limit,
        }
    page = await store.list_runs(status=statuses, limit=limit, offset=offset)
    items = []
    for record in page.items:
        known = state.runs.get(record.id)
        items.append(
            known.to_dict() if known is not None else await _stored_run_dict(store, record)
        )
    return {"runs": items, "total": page.total, "offset": offset, "limit": limit}


async def _stored_run_dict(store: Store, record: RunRecord) -> dict[str, Any]:
    """A stored run (with its stored steps) in the JSON form of a live one."""
    steps = await store.load_steps(record.id)
    return {
        "run_id": record.id,
        "workflow": record.workflow,
        "status": record.status,
        "output": record.output,
        "error": record.error,
        "error_class": record.error_class,
        "step": record.step,
        "cost_usd": record.cost_usd,
        "steps_run": None,
        "resumes": record.resumes,
        "steps": [
            {
                "path": step.path,
                "step": None,
                "agent": None,
                "status": step.status,
                "started_at": step.started_at,
                "ended_at": step.ended_at,
                "cost_usd": step.cost_usd,
                "tokens": step.tokens,
                "error": step.result.get("error")
                if step.status == "failed" and isinstance(step.result, Mapping)
                else None,
            }
            for step in steps
        ],
    }


async def _run_workflow(  # noqa: ASYNC114 - started right here with nursery.start
    runner: Runner,
    spec: WorkflowSpec,
    run_id: str,
    variables: dict[str, Any],
    record: WorkflowRun,
    state: ServerState,
    resumption: _Resumption | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A run started (or resumed) over the API, as a task of the server; its record
    keeps the outcome and per-step progress (from the run's ``workflow.step`` events).
    Supports ``nursery.start``: ``started()`` once the run is recorded in the store
    (SPEC §12: its 202 is sent only then)."""
    once = _StartedOnce(task_status)
    subscription = runner.orchestrator.subscribe(
        types="workflow.step", runs=run_id, max_buffer=PROGRESS_BUFFER
    )

    def track(item: Event | Lagged) -> None:
        if isinstance(item, WorkflowStepStatus):
            record.track(item)

    try:
        with subscription as events, record.scope:

            async def follow() -> None:
                async for item in events:
                    track(item)

            def track_all() -> None:
                while (item := events.receive_nowait()) is not None:
                    track(item)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                # NOTE: captured, so the run's own error leaves the nursery unwrapped.
                done = await outcome.acapture(
                    runner._run, spec, run_id, variables, resumption=resumption, task_status=once
                )
                nursery.cancel_scope.cancel()
            track_all()
            result = done.unwrap()
        if record.scope.cancelled_caught:
            record.status = "cancelled"
            await _save_cancelled(runner, run_id)
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
        state.prune_runs()
        if not once.called:  # it failed before it was recorded: the request reports it
            task_status.started()


@attrs.define(eq=False)
class _StartedOnce:
    """A ``task_status`` whose ``started()`` may be called again (then it does nothing)."""

    status: trio.TaskStatus[None]
    called: bool = False

    def started(self, value: None = None) -> None:
        if not self.called:
            self.called = True
            self.status.started()


async def _save_cancelled(runner: Runner, run_id: str) -> None:
    """Record a run cancelled over the API as ``cancelled`` (the interpreter records a
    cancellation as ``interrupted``: it does not know who cancelled)."""
    store = runner.store
    if store is None:
        return
    with trio.move_on_after(5, shield=True):
        stored = await store.get_run(run_id)
        if stored is not None and stored.status == "interrupted":
            await store.save_run(attrs.evolve(stored, status="cancelled"))


# ------------------------------------------------------------------------ the replies
async def _run_reply(  # noqa: ASYNC114 - started right here with nursery.start
    state: ServerState,
    reply: ChatReply,
    proc: AgentProcess,
    message: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one send as a task of the server (not of the HTTP request), keeping its events."""
    state.in_flight.add(reply)
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
        state.in_flight.discard(reply)
        reply.finish()


async def start_reply(state: ServerState, name: str, message: str) -> ChatReply:
    """Start ``message`` to the session ``name`` (``agent`` or ``agent:user``) as a
    detached reply of the server (every chat surface: REST, WebSocket, Telegram).

    Raises:
        RequestRejected: 422 for a bad session name, 503 when the server is shutting down.
        AgentNotFound: no such agent.
    """
    agent, user = _split_session(name)
    try:
        proc = await state.orch.session(agent, user=user)
    except ValueError as exc:
        raise reject_field("name", str(exc)) from None
    if state.closing or state.nursery is None:
        raise RequestRejected(
            503,
            "the server is shutting down",
            error_class="server_shutdown",
            headers={"Retry-After": "1"},
        )
    reply = ChatReply(session=session_name(agent, user), message=message)
    await state.nursery.start(_run_reply, state, reply, proc, message)
    state.replies[reply.session] = reply
    return reply


async def _reply_stream(state: ServerState, reply: ChatReply) -> AsyncIterator[bytes]:
    """The §1.4 SSE stream of a reply (:meth:`ChatReply.follow`). Quart closes a
    streamed body's iterator when the response ends or the client leaves."""
    async with aclosing(reply.follow(state)) as events:
        async for event in events:
            yield event.to_sse().encode()  # noqa: ASYNC119 - closed by Quart (aclose)


def _stream_metrics(state: ServerState) -> bytes:
    """The server's event streams in the Prometheus text format (SPEC §13 "subscriber
    lag"): they read the shared event log, not bus subscriptions of their own."""
    log = state.event_log
    backlog = [max(0, log.last - reader.position) for reader in log.readers]
    lines = [
        "# HELP vega_server_streams Event streams (/api/events, /api/ws subscriptions) open.",
        "# TYPE vega_server_streams gauge",
        f"vega_server_streams {len(backlog)}",
        "# HELP vega_server_stream_backlog_max Events the furthest-behind stream has not read.",
        "# TYPE vega_server_stream_backlog_max gauge",
        f"vega_server_stream_backlog_max {max(backlog, default=0)}",
        "# HELP vega_server_stream_lagged_events_total Events streams lost by falling behind "
        "(each was told: lagged).",
        "# TYPE vega_server_stream_lagged_events_total counter",
        f"vega_server_stream_lagged_events_total {log.dropped_total}",
    ]
    return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------------------ app
_CHAT_BODY = JsonBody(TextField("message", description="what the user says"))
_RUN_BODY = JsonBody(
    ObjectField("inputs", description="the workflow's inputs (top-level fields are inputs too)"),
    extra=True,
    optional=True,
    description="The workflow's inputs, as top-level fields and/or under `inputs`.",
)
_CANCEL_BODY = JsonBody(optional=True, description="Nothing (an empty object, or no body).")
_SESSION = {"name": "the agent's name, or `agent:user-id` for that user's own conversation"}
_CHAT_ERRORS = (402, 404, 409, 422, 429, 502, 503, 504)  # SPEC §10.1's mapping (failure_of)


def create_app(state: ServerState) -> QuartTrio:
    """The Quart-Trio app of one server (its routes close over ``state``); every route is
    declared through :func:`~._openapi.api_of` (see :mod:`._openapi`)."""
    app = QuartTrio("vega_trio.serve")
    app.config["RESPONSE_TIMEOUT"] = None  # streams are bounded by shutdown instead
    app.config["BODY_TIMEOUT"] = 60
    app.config["MAX_CONTENT_LENGTH"] = state.config.max_body_bytes
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    orch = state.orch
    api = install_api(app, json_response)
    pages = _Pagination.of(state.config)
    cost_since = TextQuery(
        "since",
        pattern=r"[0-9]+(?:\.[0-9]+)?",
        description="only calls after this time (seconds since the epoch)",
    )
    cost_bucket = IntQuery(
        "bucket", default=3600, minimum=1, description="the series' bucket, in seconds"
    )
    process_status = ListQuery(
        "status", enum=tuple(sorted(_STATUSES)), description="only processes in these statuses"
    )
    process_agent = ListQuery("agent", description="only processes of these agents")
    run_status = ListQuery("status", enum=RUN_STATUSES, description="only runs in these statuses")
    event_filters = (
        ListQuery("types", aliases=("type",), description="event types or prefixes (`process.*`)"),
        ListQuery("agent", aliases=("agents",), description="only events of these agents"),
        ListQuery("process", aliases=("processes",), description="only events of these processes"),
        ListQuery("run", aliases=("runs",), description="only events of these workflow runs"),
    )
    last_event_id = IntHeader(
        "Last-Event-ID",
        error_class="bad_last_event_id",
        description="an event's sequence number (resume after it)",
    )

    @app.before_request
    async def remember_state() -> None:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        g.state = state

    install_security(app, state)
    from ._ws import install_websocket  # here: _ws imports this module's chat helpers

    install_websocket(app, state)
    # The dashboard's static page and assets (not /api: no token, not in the document).
    install_web(app, token=state.config.token is not None)

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
    @api.route(
        "GET",
        "/healthz",
        summary="Health: ok, degraded or closing",
        description="503 while the server is closing, so a load balancer stops sending work.",
        responses={200: Json(ref("Health")), 503: Json(ref("Health"), "closing")},
        tags=("observability",),
    )
    async def healthz() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        # A degraded store (writes failing, being retried) keeps the server serving:
        # 200 "degraded"; a closed one cannot acknowledge anything: 503.
        health = health_status(orch)
        if state.closing:
            health["status"], health["closing"] = "closing", True
        if state.telegram is not None:
            # NOTE: a stopped bot leaves the server "ok": it serves everything else.
            health["telegram"] = state.telegram.health()
        store_closed = health.get("store", {}).get("status") == "closed"
        return json_response(health, status=503 if health["closing"] or store_closed else 200)

    @api.route(
        "GET",
        "/metrics",
        summary="Prometheus metrics",
        responses={200: PlainText("Prometheus' text exposition format")},
        tags=("observability",),
    )
    async def metrics() -> Response:  # noqa: ASYNC124
        body, content_type = render_metrics(orch)
        return Response(body + _stream_metrics(state), status=200, content_type=content_type)

    # ------------------------------------------------------------------ agents
    @api.route(
        "GET",
        "/api/agents",
        summary="The agent definitions",
        responses={200: Json(ref("AgentList"))},
        tags=("agents",),
    )
    async def list_agents() -> Response:  # noqa: ASYNC124
        live = orch.processes()
        return json_response({"agents": [definition_dict(d, live) for d in orch.agents.list()]})

    @api.route(
        "GET",
        "/api/agents/<name>",
        summary="One agent definition",
        path_params={"name": "the agent's name"},
        responses={200: Json(ref("AgentDefinition"))},
        errors=(404,),
        tags=("agents",),
    )
    async def get_agent(name: str) -> Response:  # noqa: ASYNC124
        return json_response(definition_dict(orch.agents.get(name), orch.processes()))

    install_compose_routes(app, state)

    @api.route(
        "POST",
        "/api/agents/<name>/chat",
        summary="Send a message; the reply when it is complete",
        path_params=_SESSION,
        body=_CHAT_BODY,
        responses={200: Json(ref("ChatReply"))},
        errors=_CHAT_ERRORS,
        tags=("chat",),
    )
    async def chat(name: str) -> Response:
        message = (await _CHAT_BODY.read())["message"]
        reply = await start_reply(state, name, message)
        # NOTE: the reply runs in the server's nursery: if this client leaves, it
        # still completes and stays in the conversation. When the server begins to
        # shut down it still gets until the shutdown deadline (a 503 after that).
        while not reply.finished.is_set():
            if state.closing:
                with trio.move_on_at(state.shutdown_deadline):
                    await reply.finished.wait()
                break
            await reply.wait_changed()
        last = reply.events[-1] if reply.events else None
        if isinstance(last, DoneEvent):
            return json_response({"response": reply.text, "metrics": last.metrics.to_dict()})
        if isinstance(reply.error, Exception):
            raise reply.error
        raise RequestRejected(
            503,
            "the server is shutting down; the reply was not finished",
            error_class="server_shutdown",
            headers={"Retry-After": "1"},
        )

    @api.route(
        "POST",
        "/api/agents/<name>/chat/stream",
        summary="Send a message; the reply as SSE (SPEC §1.4)",
        description="Ends with exactly one `done` or `error` event; the reply goes on if the "
        "client leaves.",
        path_params=_SESSION,
        body=_CHAT_BODY,
        responses={200: EventStream("the reply's events", CHAT_EVENT_SCHEMAS)},
        errors=(404, 409, 422, 503),
        tags=("chat",),
    )
    async def chat_stream(name: str) -> Response:
        message = (await _CHAT_BODY.read())["message"]
        reply = await start_reply(state, name, message)
        response = Response(_reply_stream(state, reply), headers=_SSE_HEADERS)
        response.timeout = None
        return response

    @api.route(
        "GET",
        "/api/agents/<name>/chat/stream",
        summary="Re-attach to the latest reply and replay it from its start",
        path_params=_SESSION,
        responses={200: EventStream("the reply's events", CHAT_EVENT_SCHEMAS)},
        errors=(404, 422),
        tags=("chat",),
    )
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

    @api.route(
        "DELETE",
        "/api/agents/<name>/chat/stream",
        summary="Cancel the reply in flight",
        path_params=_SESSION,
        responses={200: Json(ref("Cancelled"))},
        errors=(404, 422),
        tags=("chat",),
    )
    async def chat_cancel(name: str) -> Response:
        agent, user = _split_session(name)
        orch.agents.get(agent)
        reply = state.replies.get(session_name(agent, user))
        in_flight = reply is not None and not reply.finished.is_set()
        if reply is not None and in_flight:
            reply.scope.cancel(reason="cancelled over the API")
            await reply.finished.wait()
        return json_response({"cancelled": in_flight})

    @api.route(
        "DELETE",
        "/api/agents/<name>/chat",
        summary="End the session and forget its conversation",
        path_params=_SESSION,
        responses={200: Json(ref("Cleared"))},
        errors=(404, 422),
        tags=("chat",),
    )
    async def chat_clear(name: str) -> Response:
        agent, user = _split_session(name)
        orch.agents.get(agent)
        try:
            ended = await orch.end_session(agent, user=user)
        except ValueError as exc:
            raise reject_field("name", str(exc)) from None
        state.replies.pop(session_name(agent, user), None)
        return json_response({"cleared": ended})

    @api.route(
        "GET",
        "/api/agents/<name>/chat",
        summary="The conversation, paginated",
        description="`in_flight` is the reply still running, if any (its user message; "
        "GET …/chat/stream follows it): the messages of its turn may not be listed yet.",
        path_params=_SESSION,
        params=pages.params,
        responses={200: Json(ref("MessagePage"))},
        errors=(404, 422),
        tags=("chat",),
    )
    async def chat_history(name: str) -> Response:  # noqa: ASYNC124
        agent, user = _split_session(name)
        orch.agents.get(agent)  # 404 for an unknown agent
        # NOTE: read before the messages: a reply that ends in between is then both
        # announced and (part of) the history, which a client handles (it drops the
        # history from the reply's user message on and replays the reply); the other
        # order could list neither.
        reply = state.replies.get(session_name(agent, user))
        in_flight = (
            {"message": reply.message}
            if reply is not None and not reply.finished.is_set()
            else None
        )
        stored = await stored_conversation(orch, agent, user)
        if stored is not None:  # every committed turn, also after a restart
            messages: list[Any] = stored
        else:
            try:
                proc = orch.lookup(session_name(agent, user))
            except ProcessNotFound:
                messages = []
            else:
                history = proc.history if isinstance(proc, AgentProcess) else []
                messages = json.loads(marshal_messages(history))
        return json_response({**pages.page(messages, "messages"), "in_flight": in_flight})

    # --------------------------------------------------------------- processes
    @api.route(
        "GET",
        "/api/processes",
        summary="Live processes, filtered and paginated",
        params=(process_status, process_agent, *pages.params),
        responses={200: Json(ref("ProcessPage"))},
        tags=("processes",),
    )
    async def list_processes() -> Response:  # noqa: ASYNC124
        statuses = process_status.get()
        agents = process_agent.get()
        # NOTE: filter and page the processes themselves, then build the JSON of the
        # page only: with 10,000 live processes, building every dict (metrics and all)
        # for a page of 100 cost ~150 ms a request (B10).
        page = await processes_page(
            orch,
            process_dict,
            statuses=statuses,
            agents=agents,
            limit=pages.limit.get(),
            offset=pages.offset.get(),
        )
        if page is not None:  # with a store: finished ones too, newest first
            return json_response(page)
        found = [
            p
            for p in orch.processes()
            if (statuses is None or p.status in statuses)
            and (agents is None or p.agent_name in agents)
        ]
        page = pages.page(found, "processes")
        page["processes"] = [process_dict(p) for p in page["processes"]]
        return json_response(page)

    @api.route(
        "GET",
        "/api/processes/<process_id>",
        summary="One process with its metrics and conversation",
        description="A finished process no longer in memory is read from the store "
        "(without its conversation).",
        path_params={"process_id": "the process id"},
        responses={200: Json(ref("Process"))},
        errors=(404,),
        tags=("processes",),
    )
    async def get_process(process_id: str) -> Response:
        try:
            proc = orch.get(process_id)
        except ProcessNotFound as exc:
            missing = exc
        else:
            return json_response(process_dict(proc, conversation=True))
        stored = await process_from_store(orch, process_id)
        if stored is None:
            raise missing
        return json_response(stored)

    @api.route(
        "DELETE",
        "/api/processes/<process_id>",
        summary="Kill a process; its final state",
        path_params={"process_id": "the process id"},
        responses={200: Json(ref("Process"))},
        errors=(404,),
        tags=("processes",),
    )
    async def kill_process(process_id: str) -> Response:
        proc = orch.get(process_id)
        proc.kill("killed over the API")
        with trio.move_on_after(state.config.graceful_timeout):
            await proc.wait()
        return json_response(process_dict(proc))

    # ------------------------------------------------------------------ queries
    @api.route(
        "GET",
        "/api/stats",
        summary="Live processes, spawned, cost, events published",
        responses={200: Json(ref("Stats"))},
        tags=("queries",),
    )
    async def stats() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        return json_response(orch.stats())

    @api.route(
        "GET",
        "/api/spawn-tree",
        summary="The spawn tree, nested nodes in start order",
        responses={200: Json(ref("SpawnTree"))},
        tags=("queries",),
    )
    async def spawn_tree() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        return json_response({"tree": [node.to_dict() for node in orch.spawn_tree()]})

    @api.route(
        "GET",
        "/api/supervision-tree",
        summary="The live supervision trees",
        responses={200: Json(ref("SupervisionTree"))},
        tags=("queries",),
    )
    async def supervision_tree() -> Response:  # noqa: ASYNC124
        return json_response({"supervisors": orch.supervision_tree()})

    @api.route(
        "GET",
        "/api/costs",
        summary="What was spent, in total and per agent, with budgets",
        description="With a store, also every recorded call's cost per agent, process, "
        "run and model (`by`) and over time (`series`, in buckets of `bucket` seconds).",
        params=(cost_since, cost_bucket),
        responses={200: Json(ref("Costs"))},
        tags=("queries",),
    )
    async def costs() -> Response:
        since = cost_since.get()
        return json_response(
            await cost_report(
                orch,
                bucket_seconds=cost_bucket.get(),
                since=None if since is None else float(since),
            )
        )

    @api.route(
        "GET",
        "/api/mcp/servers",
        summary="Each MCP server's status, tools and last error",
        responses={200: Json(ref("MCPServers"))},
        tags=("queries",),
    )
    async def mcp_servers() -> Response:  # noqa: ASYNC124
        return json_response({"servers": orch.mcp.status() if orch.mcp is not None else []})

    # ---------------------------------------------------------------- workflows
    @api.route(
        "GET",
        "/api/workflows",
        summary="The document's workflows with their inputs as a JSON Schema",
        responses={200: Json(ref("WorkflowList"))},
        tags=("workflows",),
    )
    async def list_workflows() -> Response:  # noqa: ASYNC124
        runner = state.runner
        workflows = runner.document.workflows if runner is not None else ()
        return json_response({"workflows": [_workflow_dict(w) for w in workflows]})

    @api.route(
        "POST",
        "/api/workflows/<name>/run",
        summary="Start a workflow run",
        path_params={"name": "the workflow's name"},
        body=_RUN_BODY,
        responses={202: Json(ref("RunStarted"))},
        errors=(404, 422, 503),
        tags=("workflows",),
    )
    async def run_workflow(name: str) -> Response:
        runner = state.runner
        if runner is None or runner.document.workflow(name) is None:
            known = ", ".join(w.name for w in runner.document.workflows) if runner else ""
            raise RequestRejected(
                404,
                f"there is no workflow named {name!r} (workflows: {known or 'none'})",
                error_class="workflow_not_found",
            )
        data = await _RUN_BODY.read()
        nested = data.pop("inputs", None)
        inputs = {**data, **(nested or {})}  # top-level fields are inputs too
        spec, run_id, variables = runner._prepare(name, inputs)
        if state.closing or state.nursery is None:
            raise RequestRejected(
                503,
                "the server is shutting down",
                error_class="server_shutdown",
                headers={"Retry-After": "1"},
            )
        record = WorkflowRun(run_id=run_id, workflow=name)
        state.add_run(record)
        await state.nursery.start(_run_workflow, runner, spec, run_id, variables, record, state)
        return json_response({"run_id": run_id, "status": record.status}, 202)

    @api.route(
        "GET",
        "/api/workflows/runs",
        summary="Workflow runs, newest first, paginated",
        description="With a store (`--db`), every stored run (also from before a restart); "
        "the runs still in memory as they are now (live per-step progress).",
        params=(run_status, *pages.params),
        responses={200: Json(ref("RunPage"))},
        tags=("workflows",),
    )
    async def list_runs() -> Response:
        page = await _runs_page(state, run_status.get(), pages.limit.get(), pages.offset.get())
        return json_response(page)

    @api.route(
        "POST",
        "/api/workflows/runs/<run_id>/cancel",
        summary="Cancel a running run; its record",
        path_params={"run_id": "the run's id"},
        body=_CANCEL_BODY,
        responses={200: Json(ref("WorkflowRun"))},
        errors=(404,),
        tags=("workflows",),
    )
    async def cancel_run(run_id: str) -> Response:
        await _CANCEL_BODY.read()
        record = _run_record(state, run_id)
        if record.status == "running":
            record.scope.cancel(reason="cancelled over the API")
            with trio.move_on_after(state.config.graceful_timeout):
                await record.ended.wait()
        return json_response(record.to_dict())

    @api.route(
        "GET",
        "/api/workflows/runs/<run_id>",
        summary="A run's status, per-step progress, output, cost and error",
        description="Runs no longer kept in memory are read from the store.",
        path_params={"run_id": "the run's id"},
        responses={200: Json(ref("WorkflowRun"))},
        errors=(404,),
        tags=("workflows",),
    )
    async def get_run(run_id: str) -> Response:
        record = state.runs.get(run_id)
        if record is not None:
            return json_response(record.to_dict())
        stored = await _stored_run(state, run_id)
        if stored is None:
            _run_record(state, run_id)  # the 404
        return json_response(stored)

    @api.route(
        "POST",
        "/api/workflows/runs/<run_id>/resume",
        summary="Resume an interrupted, failed or cancelled run from its last completed step",
        description="Completed steps are not run again: their saved results are reused. "
        "Needs a store (`vega-trio serve --db`).",
        path_params={"run_id": "the run's id"},
        responses={202: Json(ref("RunStarted"))},
        errors=(404, 409, 503),
        tags=("workflows",),
    )
    async def resume_run(run_id: str) -> Response:
        runner = state.runner
        if runner is None:
            raise RequestRejected(
                404, f"no workflow run {run_id!r} on this server", error_class="run_not_found"
            )
        known = state.runs.get(run_id)
        if known is not None and not known.finished:
            raise RequestRejected(
                409,
                f"workflow run {run_id!r} is running; wait for it to end (or cancel it) "
                "before resuming it",
                error_class="run_running",
            )
        try:
            spec, variables, resumption = await runner._prepare_resume(run_id)
        except RunNotResumable as exc:
            # A run this server knows but cannot resume (no store) conflicts; one it
            # has never heard of is not found.
            status = 404 if exc.reason == "not_found" and known is None else 409
            raise RequestRejected(status, str(exc), error_class=exc.error_class) from None
        if state.closing or state.nursery is None:
            raise RequestRejected(
                503,
                "the server is shutting down",
                error_class="server_shutdown",
                headers={"Retry-After": "1"},
            )
        record = WorkflowRun(
            run_id=run_id, workflow=spec.name, resumes=resumption.record.resumes + 1
        )
        state.add_run(record)
        await state.nursery.start(
            _run_workflow, runner, spec, run_id, variables, record, state, resumption
        )
        return json_response({"run_id": run_id, "status": record.status}, 202)

    # ------------------------------------------------------------------- events
    @api.route(
        "GET",
        "/api/events",
        summary="Runtime events as SSE",
        description="`id:` is the event's sequence number; `: heartbeat` after every quiet "
        "heartbeat interval; a `lagged` event when this client fell behind; a final "
        "`shutdown` event when the server stops.",
        params=(*event_filters, last_event_id),
        responses={200: EventStream("the runtime's events (SPEC §10.3)", RUNTIME_EVENT_SCHEMAS)},
        tags=("events",),
    )
    async def events() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        types, agents, processes, runs = (f.get() for f in event_filters)
        after = last_event_id.get()
        response = Response(
            _event_stream(state, types, agents, processes, runs, after), headers=_SSE_HEADERS
        )
        response.timeout = None
        return response

    return app


async def _event_stream(
    state: ServerState,
    types: list[str] | str | None,
    agents: list[str] | None,
    processes: list[str] | None,
    runs: list[str] | None,
    after: int | None,
) -> AsyncIterator[bytes]:
    """``/api/events``: ``id:`` is the event's sequence number; ``: heartbeat`` after
    every quiet ``heartbeat_interval``; a ``lagged`` event when this client fell behind;
    a final ``shutdown`` event when the server stops. Events come from the server's
    shared event log (``_fanout.py``): one write per tick carries all of this client's.

    NOTE (ASYNC119): Quart closes a streamed body's iterator (``aclose``) when the
    response ends or the client leaves, so the reader's ``with`` always exits."""
    with state.read_events(
        types=[types] if isinstance(types, str) else types,
        agents=agents,
        processes=processes,
        runs=runs,
        after=after,
    ) as reader:
        yield b": connected\n\n"  # noqa: ASYNC119
        async with aclosing(reader.batches(state.orch, state.config.heartbeat_interval)) as batches:
            async for batch in batches:
                yield b": heartbeat\n\n" if batch is None else batch.sse()  # noqa: ASYNC119
    yield _sse("shutdown", {"type": "shutdown", "reason": "the server is shutting down"})
