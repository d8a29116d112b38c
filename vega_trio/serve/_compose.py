"""Composed agents over the REST API (SPEC §10.1): create, update, delete, copy (template)
and import agent definitions at run time.

An agent is described exactly as under ``agents.<name>`` of a ``.vega.yaml`` file, as
JSON (``{"name": "helper", "model": "...", "system": "...", "tools": [...], "budget":
"$1.00", ...}``). It goes through the DSL's own loader and validator (the diagnostics of
``vega-trio validate``, as a 422 with each problem's field path) and the DSL's builder;
its tools may only name what the server already has (its tools, the sandbox's built-ins,
``server__tool`` of its configured MCP servers) and its team the server's agents. Nothing
that starts a program can be defined here (SPEC §11): a request with ``tools:`` or
``settings:`` (exec tools, MCP servers) is refused, and an agent's own
``skills.directories`` (files of the server's disk) too — those come from the server's
``.vega.yaml``.

Protected definitions: ``builtin`` ones (the default ``assistant``, Mother, Hermes) and
the ones of the server's ``.vega.yaml`` (``yaml``) answer 403 to PUT and DELETE; the
message says what to do instead (edit the file and restart, or copy the agent with its
template under a new name).

:func:`definition_mapping` and :func:`compose_agents` turn a definition into its JSON
mapping and a mapping back into agents: the one conversion the routes and the store's
``AgentRecord.definition`` share.

With a store, a composed agent's change is committed before its route answers (the
orchestrator's writer saves it from its ``agent.*`` event; the route waits for that
event's commit), and :func:`restore_agents` defines the stored ones again when a
server starts on the store.

Routes (for the OpenAPI declarations; every error is ``{"error", "error_class",
"request_id"}``, a 422 also has ``"fields": [{"path", "error"}]``):

``POST /api/agents``
    Request: an agent mapping with ``name`` (``[A-Za-z0-9_][A-Za-z0-9_.-]*``, at most
    64 characters) and the ``agents.<name>`` keys of the DSL (``model``,
    ``fallback_model``, ``system``, ``description``, ``temperature``, ``max_tokens``,
    ``max_iterations``, ``tools``, ``budget``, ``budget_scope``, ``supervision``,
    ``retry``, ``rate_limit``, ``circuit_breaker``, ``skills``, ``team``,
    ``delegation``, ``timeout``). 201 with an *agent* (below) and a ``Location``
    header; 409 ``agent_exists``; 422 ``validation_error``.
``PUT /api/agents/{name}``
    Request: the complete new mapping (``name`` optional, and equal to ``{name}``). 200
    with the agent (``revision`` one more); the agent's sessions go on with their
    conversation on the new definition (a reply in progress is finished first). 403
    ``protected_agent``; 404 ``agent_not_found``; 422.
``DELETE /api/agents/{name}``
    200 with the removed agent; its sessions stop after their reply in progress. 403;
    404.
``GET /api/agents/{name}/template[?as=NEW]``
    200 ``{"name", "source", "revision", "complete", "definition": {mapping},
    "yaml": "agents:\\n  name:\\n    ..."}``: the definition as JSON and as the YAML of
    an ``agents:`` section (``?as=`` names the copy). ``complete`` is false for an agent
    defined in Python (only its plain fields are shown). 404.
``POST /api/agents/import``
    Request: ``{"yaml": "agents:\\n  ..."}`` (the ``agents:`` section of a
    ``.vega.yaml``, as text) or ``{"agents": {"name": {mapping}, ...}}``. All or
    nothing: 201 ``{"agents": [agent, ...], "warnings": [...]}``; 409 ``agent_exists``
    (``"names"``: those that exist); 422 with every problem (``fields`` paths start at
    ``agents.<name>``; from YAML text they also have ``line`` and ``column``).

An *agent* is the ``GET /api/agents/{name}`` object (``name``, ``source``,
``revision``, ``model``, ``description``, ``system``, ``tools``, ``team``,
``max_iterations``, ``max_tokens``, ``temperature``, ``processes``) plus
``definition`` (its mapping) and ``warnings`` (the validator's, as ``{"path",
"warning"}``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quart import Response

from .._agents import AgentDefinition
from .._errors import RequestRejected, SkillError, ToolNotFound
from ..agent._bus_events import AgentNotRestored
from ..dsl._compose import NAME, RESERVED_NAMES, Composed, compose_agents
from ..dsl._diagnostics import Diagnostic, DSLError
from ..dsl._dump import dump_agents
from ..dsl._model import Settings
from ._openapi import Json, JsonBody, ObjectField, TextField, TextQuery, api_of
from ._schemas import ref
from ._state import ServerState

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from ..orchestrator import Orchestrator

__all__ = [
    "Composed",
    "compose_agents",
    "definition_mapping",
    "install_compose_routes",
    "restore_agents",
]

_log = logging.getLogger("vega_trio.serve")

_NAME_PARAM: Final = {"name": "the agent's name"}
_AGENT_BODY: Final = JsonBody(
    extra=True, description="an agent's `agents.<name>` mapping of a .vega.yaml"
)
_IMPORT_BODY: Final = JsonBody(
    TextField("yaml", required=False, description="the agents: section of a .vega.yaml"),
    ObjectField("agents", description="agent names to their mappings"),
    description='either {"yaml": ...} or {"agents": {...}}',
)
_AS_QUERY: Final = TextQuery(
    "as", pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", description="the copy's name"
)
"""A composed agent's name: usable in a URL path and as ``agent:user-id``'s agent."""


# ------------------------------------------------------------------- the conversion
def definition_mapping(definition: AgentDefinition) -> tuple[dict[str, Any], bool]:
    """A definition as its YAML-equivalent JSON mapping, and whether that mapping is
    complete (:meth:`AgentDefinition.as_mapping <vega_trio._agents.AgentDefinition.
    as_mapping>`: what the store keeps, too)."""
    return definition.as_mapping()


async def restore_agents(
    orch: Orchestrator,
    *,
    settings: Settings | None = None,
    base_dir: Path | None = None,
) -> list[AgentDefinition]:
    """Define again the composed agents ``orch``'s store holds (SPEC §12): what
    ``serve()`` does before it listens, and what an application that embeds an
    orchestrator on a store calls after defining its own agents.

    Each stored mapping goes through :func:`compose_agents` (so it is checked against
    the tools and agents ``orch`` has *now*) and is defined with source ``composed``.
    Agents whose team names another stored agent are defined after it.

    * A name ``orch`` already defines (a ``.vega.yaml`` or built-in agent) wins: the
      stored one is not restored (a warning says so) and stays stored.
    * A stored agent that no longer validates (a tool the server no longer has, a
      team member that is gone) is not defined: a warning is logged, an
      ``agent.not_restored`` event published and ``/healthz`` lists it under
      ``store.agents_not_restored``. It stays stored; defining the name again
      replaces it. Nothing here stops the server from starting.

    Args:
        orch: an orchestrator opened on a store (without one this does nothing).
        settings: the server document's settings (its skill directories).
        base_dir: what those directories are relative to.

    Returns:
        The definitions made.
    """
    persistence = orch.persistence
    if persistence is None:
        return []
    remaining: dict[str, dict[str, Any]] = {}
    for name, record in persistence.stored_agents.items():
        if name not in orch.agents:
            remaining[name] = dict(record.definition)
            continue
        existing = orch.agents.get(name)
        if existing.source != "composed":  # already composed: defined by the application
            _log.warning(
                "the stored composed agent %r is not restored: the server's %s agent of "
                "that name wins (the stored definition is kept; rename one of them)",
                name,
                "built-in" if existing.source == "builtin" else ".vega.yaml",
            )
    restored: list[AgentDefinition] = []
    problems: dict[str, str] = {}
    progress = True
    while remaining and progress:  # a team member first, then who names it
        progress = False
        for name, mapping in list(remaining.items()):
            try:
                composed = (
                    await compose_agents(
                        orch, {name: mapping}, settings=settings, base_dir=base_dir
                    )
                )[name]
                definition = orch.agents.define(
                    composed.agent, source="composed", mapping=composed.mapping
                )
            except DSLError as exc:
                problems[name] = "; ".join(
                    f"{f['path']}: {f['error']}"
                    for f in (_field(d, f"agents.{name}", False) for d in exc.diagnostics)
                ) or str(exc)
            except (SkillError, ToolNotFound, ValueError, TypeError) as exc:
                problems[name] = str(exc)
            else:
                restored.append(definition)
                del remaining[name]
                progress = True
    for name in remaining:
        detail = (
            f"the stored composed agent {name!r} is not restored: {problems[name]}; it "
            "stays in the store — give the server what it names and restart, or define "
            f"that name again (POST /api/agents), which replaces it"
        )
        _log.warning("%s", detail)
        persistence.unrestored_agents[name] = detail
        orch._runtime.bus.emit(AgentNotRestored, agent=name, detail=detail)
    return restored


# ------------------------------------------------------------------------ the errors
def _field(diagnostic: Diagnostic, strip: str | None, positions: bool) -> dict[str, Any]:
    path = diagnostic.source.path
    if strip is not None:
        if path == strip:
            path = "name"
        elif path.startswith(strip + "."):
            path = path[len(strip) + 1 :]
        elif path.startswith(strip + "["):
            path = path[len(strip) :]
    text = diagnostic.message + (f" ({diagnostic.hint})" if diagnostic.hint else "")
    field: dict[str, Any] = {"path": path or "$", "error": text}
    if positions and diagnostic.source.line:
        field["line"], field["column"] = diagnostic.source.line, diagnostic.source.column
    return field


def _rejected(error: DSLError, *, strip: str | None, positions: bool) -> RequestRejected:
    fields = [_field(d, strip, positions) for d in error.diagnostics]
    if not fields:
        fields = [{"path": "$", "error": str(error)}]
    first = fields[0]
    more = f" (and {len(fields) - 1} more problems)" if len(fields) > 1 else ""
    return RequestRejected(
        422,
        f"invalid agent definition: {first['path']}: {first['error']}{more}; nothing was changed",
        error_class="validation_error",
        fields=fields,
    )


def _warnings(composed: Composed, strip: str | None) -> list[dict[str, Any]]:
    return [
        {"path": f["path"], "warning": f["error"]}
        for f in (_field(w, strip, False) for w in composed.warnings)
    ]


# ------------------------------------------------------------------------ the routes
def install_compose_routes(app: QuartTrio, state: ServerState) -> None:
    """Register the composed-agent routes on ``app`` (``create_app`` calls it once)."""
    # NOTE: imported here: _app imports this module, and its helpers are the app's one
    # way to read a body and write a (redacted) response.
    from ._app import definition_dict, json_response

    orch = state.orch
    api = api_of(app)

    def agent_dict(definition: AgentDefinition) -> dict[str, Any]:
        return definition_dict(definition, orch.processes())

    def runner_context() -> tuple[Settings | None, Path | None]:
        runner = state.runner
        if runner is None:
            return None, None
        return runner.document.settings, runner.base_dir

    async def compose(source: Mapping[str, Any] | str, *, strip: str | None) -> dict[str, Composed]:
        settings, base_dir = runner_context()
        try:
            return await compose_agents(orch, source, settings=settings, base_dir=base_dir)
        except DSLError as exc:
            raise _rejected(exc, strip=strip, positions=isinstance(source, str)) from None
        except (SkillError, ValueError, TypeError) as exc:
            raise _invalid("$", str(exc)) from None

    def agent_out(definition: AgentDefinition, composed: Composed | None) -> dict[str, Any]:
        data = agent_dict(definition)
        data["definition"] = definition_mapping(definition)[0]
        data["warnings"] = _warnings(composed, f"agents.{definition.name}") if composed else []
        return data

    def protected(definition: AgentDefinition, verb: str) -> None:
        name = definition.name
        copy = (
            f"to change a copy, GET /api/agents/{name}/template?as=NEW and POST its "
            "'definition' (with \"name\": NEW) to /api/agents"
        )
        if definition.source == "builtin":
            raise RequestRejected(
                403,
                f"agent {name!r} is built in and cannot be {verb} over the API; {copy}",
                error_class="protected_agent",
            )
        if definition.source == "yaml":
            raise RequestRejected(
                403,
                f"agent {name!r} is defined in the server's .vega.yaml and cannot be "
                f"{verb} over the API; edit the file and restart the server, or {copy}",
                error_class="protected_agent",
            )

    def reserved(names: Iterable[str]) -> None:
        taken = [n for n in names if n in RESERVED_NAMES]
        if taken:
            listed = ", ".join(repr(n) for n in taken)
            raise RequestRejected(
                403,
                f"the agent name{'s' if len(taken) > 1 else ''} {listed} "
                f"{'are' if len(taken) > 1 else 'is'} reserved for the built-in meta-agents "
                f"({', '.join(sorted(RESERVED_NAMES))}) and cannot be created, changed or "
                "deleted over the API; pick another name",
                error_class="protected_agent",
            )

    async def saved() -> None:
        # Acknowledged means committed (SPEC §12): the orchestrator's writer saves the
        # definition in the batch of its agent.* event, published just now.
        persistence = orch.persistence
        if persistence is not None:
            await persistence.wait_committed(orch._runtime.bus.published)

    def define(composed: Composed) -> AgentDefinition:
        try:
            return orch.agents.define(composed.agent, source="composed", mapping=composed.mapping)
        except _NOT_SPAWNABLE as exc:
            raise _unspawnable(exc) from None

    @api.route(
        "POST",
        "/api/agents",
        summary="Create a composed agent",
        description="The body is the agent's `agents.<name>` mapping of a .vega.yaml, with "
        "its `name`; tools may only name what the server already has.",
        body=_AGENT_BODY,
        responses={201: Json(ref("ComposedAgent"))},
        errors=(403, 409, 422),
        tags=("agents",),
    )
    async def create_agent() -> Response:
        data = await _AGENT_BODY.read()
        name = _name_field(data)
        reserved([name])
        if name in orch.agents:
            raise _exists([name], single=True)
        composed = (await compose({name: _without_name(data)}, strip=f"agents.{name}"))[name]
        if name in orch.agents:  # defined by someone else while this one was built
            raise _exists([name], single=True)
        definition = define(composed)
        await saved()
        return json_response(
            agent_out(definition, composed), 201, {"Location": f"/api/agents/{name}"}
        )

    @api.route(
        "PUT",
        "/api/agents/<name>",
        summary="Replace a composed agent's definition",
        description="Its sessions go on with their conversations on the new definition.",
        path_params=_NAME_PARAM,
        body=_AGENT_BODY,
        responses={200: Json(ref("ComposedAgent"))},
        errors=(403, 404, 422),
        tags=("agents",),
    )
    async def update_agent(name: str) -> Response:
        reserved([name])
        protected(orch.agents.get(name), "changed")
        data = await _AGENT_BODY.read()
        if "name" in data and data["name"] != name:
            raise _invalid(
                "name",
                f"the body names {data['name']!r} but the URL {name!r}; an agent cannot be "
                "renamed: create the new name with POST /api/agents and delete this one",
            )
        composed = (await compose({name: _without_name(data)}, strip=f"agents.{name}"))[name]
        protected(orch.agents.get(name), "changed")  # it may have been replaced meanwhile
        try:
            definition = orch.agents.update(composed.agent, mapping=composed.mapping)
        except _NOT_SPAWNABLE as exc:
            raise _unspawnable(exc) from None
        await saved()
        return json_response(agent_out(definition, composed))

    @api.route(
        "DELETE",
        "/api/agents/<name>",
        summary="Delete a composed agent",
        path_params=_NAME_PARAM,
        responses={200: Json(ref("ComposedAgent"))},
        errors=(403, 404),
        tags=("agents",),
    )
    async def delete_agent(name: str) -> Response:
        reserved([name])
        protected(orch.agents.get(name), "deleted")
        definition = orch.agents.remove(name)
        await saved()
        return json_response(agent_out(definition, None))

    @api.route(
        "GET",
        "/api/agents/<name>/template",
        summary="An agent's definition as JSON and as YAML, to copy or export",
        path_params=_NAME_PARAM,
        params=(_AS_QUERY,),
        responses={200: Json(ref("AgentTemplate"))},
        errors=(404,),
        tags=("agents",),
    )
    async def agent_template(name: str) -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        definition = orch.agents.get(name)
        copy = _AS_QUERY.get() or name
        mapping, complete = definition_mapping(definition)
        return json_response(
            {
                "name": copy,
                "source": definition.source,
                "revision": definition.revision,
                "complete": complete,
                "definition": mapping,
                "yaml": dump_agents({copy: mapping}),
            }
        )

    @api.route(
        "POST",
        "/api/agents/import",
        summary="Create composed agents from an agents: section (all or nothing)",
        body=_IMPORT_BODY,
        responses={201: Json(ref("ImportedAgents"))},
        errors=(403, 409, 422),
        tags=("agents",),
    )
    async def import_agents() -> Response:
        data = await _IMPORT_BODY.read()
        source = _import_source(data)
        if isinstance(source, str):
            composed = await compose(source, strip=None)
        else:
            reserved(source)
            taken = [n for n in source if n in orch.agents]
            if taken:
                raise _exists(taken, single=False)
            composed = await compose(source, strip=None)
        reserved(composed)
        taken = [n for n in composed if n in orch.agents]
        if taken:
            raise _exists(taken, single=False)
        # NOTE: all checked above and nothing awaited since: these defines do not fail
        # on names or tools; should one fail anyway, the ones before it are taken back.
        done: list[AgentDefinition] = []
        try:
            for item in composed.values():
                done.append(define(item))
        except Exception:
            for definition in done:
                orch.agents.remove(definition.name)
            raise
        await saved()
        return json_response(
            {
                "agents": [agent_out(d, composed[d.name]) for d in done],
                "warnings": [w for d in done for w in _warnings(composed[d.name], None)],
            },
            201,
        )


#: What the registry raises when a checked definition would still not spawn here (an
#: MCP server whose tools are not connected yet, a skill naming a missing tool).
_NOT_SPAWNABLE: Final = (ToolNotFound, SkillError, ValueError, TypeError)


def _unspawnable(exc: Exception) -> RequestRejected:
    return _invalid("tools" if isinstance(exc, ToolNotFound) else "$", str(exc))


def _invalid(path: str, error: str) -> RequestRejected:
    return RequestRejected(
        422,
        f"invalid agent definition: {path}: {error}; nothing was changed",
        error_class="validation_error",
        fields=[{"path": path, "error": error}],
    )


def _exists(names: list[str], *, single: bool) -> RequestRejected:
    listed = ", ".join(repr(n) for n in names)
    return RequestRejected(
        409,
        f"{'an agent named' if len(names) == 1 else 'agents named'} {listed} already "
        f"{'exists' if len(names) == 1 else 'exist'}; nothing was created. Change a "
        "composed agent with PUT /api/agents/{name}, or pick another name",
        error_class="agent_exists",
        fields=[
            {"path": "name" if single else f"agents.{n}", "error": "already exists"} for n in names
        ],
    )


def _name_field(data: Mapping[str, Any]) -> str:
    name = data.get("name")
    if name is None:
        raise _invalid("name", "required (the new agent's name)")
    if not isinstance(name, str):
        raise _invalid("name", f"expected a string, got {type(name).__name__}")
    if not NAME.match(name):
        raise _invalid(
            "name",
            f"{name!r} is not an agent name: use letters, digits, '_', '.' and '-' (not "
            "first), at most 64 characters",
        )
    return name


def _without_name(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "name"}


def _import_source(data: Mapping[str, Any]) -> Mapping[str, Any] | str:
    if ("yaml" in data) == ("agents" in data):
        raise _invalid(
            "$",
            'send either {"yaml": "<the agents: section as text>"} or '
            '{"agents": {"<name>": {...}, ...}}',
        )
    if "yaml" in data:
        text = data["yaml"]
        if not isinstance(text, str):
            raise _invalid("yaml", f"expected a string, got {type(text).__name__}")
        return text
    agents = data["agents"]
    if not isinstance(agents, dict) or not agents:
        raise _invalid("agents", "expected a non-empty object of agent names to definitions")
    return agents
