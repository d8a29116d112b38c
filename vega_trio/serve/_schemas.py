"""The JSON Schemas (2020-12) of the server's response bodies: the one source the OpenAPI
document's ``components.schemas`` is made of (request bodies are declared, and parsed, by
:class:`._openapi.JsonBody`). Written as Python data, or derived from the attrs class whose
``to_dict`` makes the body (:func:`attrs_schema`), so a new field there shows up here by
itself.

Add a schema: put it in :data:`SCHEMAS` under a new name and refer to it with
``ref("Name")`` in a route's declaration (see :mod:`._openapi`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._exit import ProcessStatus
from ..agent._events import ChatEvent, SendMetrics
from ..agent._loop import ProcessMetrics
from ..runtime._events import Event
from ..runtime._runtime import SpawnNode
from ._state import StepProgress, WorkflowRun

__all__ = [
    "CHAT_EVENTS",
    "CHAT_EVENT_SCHEMAS",
    "RUNTIME_EVENT_SCHEMAS",
    "RUN_STATUSES",
    "SCHEMAS",
    "attrs_schema",
    "page_schema",
    "ref",
    "wire_event_schema",
]

#: The statuses of a workflow run started over the API (:class:`._state.WorkflowRun`).
RUN_STATUSES = ("running", "completed", "failed", "cancelled", "interrupted")

_SIMPLE: dict[Any, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}


def ref(name: str) -> dict[str, Any]:
    """A reference to ``components.schemas.<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _type_schema(hint: Any) -> dict[str, Any]:
    if hint is Any:
        return {}
    if hint is type(None):
        return {"type": "null"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [_type_schema(arg) for arg in typing.get_args(hint)]
        if all(set(o) == {"type"} for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    raise TypeError(f"no JSON Schema for the type {hint!r}; pass it in overrides")


def attrs_schema(
    cls: type,
    *,
    exclude: Iterable[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    optional: Iterable[str] = (),
    extra: bool = False,
    description: str = "",
) -> dict[str, Any]:
    """The schema of ``attrs.asdict(instance)`` for the attrs class ``cls``: every field
    (less ``exclude``) required but ``optional``, no others unless ``extra``;
    ``overrides`` gives a field's schema where its type says too little (an enum, a nested
    class).

    Raises:
        TypeError: a field's type has no schema and no override.
    """
    hints = typing.get_type_hints(cls)
    skip = set(exclude)
    given = dict(overrides or {})
    properties: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if field.name in skip:
            continue
        schema = given.pop(field.name, None)
        properties[field.name] = (
            dict(schema) if schema is not None else _type_schema(hints[field.name])
        )
    if given:
        raise TypeError(f"{cls.__name__} has no fields {sorted(given)} to override")
    skip_required = set(optional)
    schema = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in skip_required],
        "additionalProperties": extra,
    }
    if description:
        schema["description"] = description
    return schema


def wire_event_schema(cls: type[ChatEvent]) -> dict[str, Any]:
    """The ``data:`` of a §1.4 chat event (``cls.to_dict()``): ``type`` is the class's
    name; ``agent`` is there only on a delegate's event."""
    overrides: dict[str, Any] = {}
    names = {field.name for field in attrs.fields(cls)}
    if "agent" in names:
        overrides["agent"] = {"type": "string", "description": "the delegate, if any"}
    if "arguments" in names:
        overrides["arguments"] = {"type": "object"}
    if "metrics" in names:
        overrides["metrics"] = ref("SendMetrics")
    schema = attrs_schema(
        cls, overrides=overrides, optional=("agent",), description=cls.__doc__ or ""
    )
    schema["properties"] = {"type": {"const": cls.type}, **schema["properties"]}
    schema["required"] = ["type", *schema["required"]]
    return schema


#: The §1.4 chat events, by ``event:`` name.
CHAT_EVENTS: dict[str, type[ChatEvent]] = {cls.type: cls for cls in typing.get_args(ChatEvent)}


def _event_schema_name(event: str) -> str:
    """``text_delta`` -> ``TextDeltaEvent``."""
    return "".join(part.title() for part in event.split("_")) + "Event"


#: References to the chat events' schemas, by ``event:`` name (an EventStream's events).
CHAT_EVENT_SCHEMAS: dict[str, dict[str, Any]] = {
    name: ref(_event_schema_name(name)) for name in CHAT_EVENTS
}

#: ``/api/events``: a runtime event under its own type's name, or ``lagged``/``shutdown``.
RUNTIME_EVENT_SCHEMAS: dict[str, dict[str, Any]] = {
    "lagged": ref("LaggedEvent"),
    "shutdown": ref("ShutdownEvent"),
    "*": ref("RuntimeEvent"),
}


def _runtime_event_schema() -> dict[str, Any]:
    schema = attrs_schema(
        Event,
        overrides={"seq": {"type": "integer", "minimum": 1}},
        extra=True,
        description="A runtime event (SPEC §10.3): the envelope, then its own fields.",
    )
    schema["properties"] = {"type": {"type": "string"}, **schema["properties"]}
    schema["required"] = ["type", *schema["required"]]
    return schema


def _object(
    properties: Mapping[str, Any],
    *,
    optional: Iterable[str] = (),
    description: str = "",
    extra: bool = False,
) -> dict[str, Any]:
    """An object with these properties, all required but ``optional``."""
    skip = set(optional)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in skip],
        "additionalProperties": extra,
    }
    if description:
        schema["description"] = description
    return schema


def page_schema(key: str, items: Mapping[str, Any]) -> dict[str, Any]:
    """A page of a paginated list: ``{key: [...], "total", "offset", "limit"}``."""
    count = {"type": "integer", "minimum": 0}
    return _object(
        {
            key: {"type": "array", "items": dict(items)},
            "total": count,
            "offset": count,
            "limit": {"type": "integer", "minimum": 1},
        }
    )


_STRING = {"type": "string"}


def _message_page() -> dict[str, Any]:
    """A page of a conversation, with the session's reply still running (if any)."""
    schema = page_schema("messages", ref("Message"))
    schema["properties"]["in_flight"] = {
        "oneOf": [
            _object({"message": {"type": "string", "description": "what the user said"}}),
            {"type": "null"},
        ],
        "description": "The session's reply still running, or null: GET …/chat/stream "
        "follows it (the messages of its turn may not be listed yet).",
    }
    schema["required"].append("in_flight")
    return schema


_NULLABLE_STRING = {"type": ["string", "null"]}
_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_STRINGS = {"type": "array", "items": _STRING}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_BUDGET = _object(
    {
        "limit_usd": _NUMBER,
        "on_exceed": _STRING,
        "remaining_usd": _NUMBER,
    }
)

_AGENT_PROPERTIES: dict[str, Any] = {
    "name": _STRING,
    "source": {"enum": ["yaml", "composed", "builtin"]},
    "revision": {"type": "integer", "minimum": 1},
    "model": _NULLABLE_STRING,
    "description": _STRING,
    "system": {**_NULLABLE_STRING, "description": "null when made by a function"},
    "tools": _STRINGS,
    "team": _STRINGS,
    "max_iterations": _INTEGER,
    "max_tokens": _INTEGER,
    "temperature": {"type": ["number", "null"]},
    "processes": {**_COUNTS, "description": "live processes by status"},
}

_COST_TOTALS = _object(
    {"cost_usd": _NUMBER, "input_tokens": _NUMBER, "output_tokens": _NUMBER, "calls": _NUMBER}
)

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": {**_STRING, "description": "what happened and what to do next"},
            "error_class": {**_STRING, "description": "the machine-readable kind"},
            "request_id": {**_STRING, "description": "also in the X-Request-ID header"},
            "fields": {
                "type": "array",
                "description": "the invalid inputs (422)",
                "items": _object(
                    {"path": _STRING, "error": _STRING, "line": _INTEGER, "column": _INTEGER},
                    optional=("line", "column"),
                ),
            },
            "names": {**_STRINGS, "description": "the agents that already exist (409)"},
        },
        optional=("fields", "names"),
        description="Every error reply (SPEC §10.1).",
    ),
    "Health": _object(
        {
            "status": {"enum": ["ok", "degraded", "closing"]},
            "closing": {"type": "boolean"},
            "live_processes": {"type": "integer", "minimum": 0},
            "processes": _COUNTS,
            "monitor": {"type": "boolean"},
            "alerts": {
                "type": "array",
                "items": _object(
                    {
                        "alert": _STRING,
                        "process_id": _NULLABLE_STRING,
                        "agent": _NULLABLE_STRING,
                    }
                ),
            },
            "store": _object(
                {
                    "status": {"enum": ["ok", "degraded", "closed"]},
                    "engine": {"enum": ["sqlite", "postgresql"]},
                    "detail": {
                        **_NULLABLE_STRING,
                        "description": "why it is degraded (writes are being retried)",
                    },
                    "pending_writes": {"type": "integer", "minimum": 0},
                    "agents_not_restored": {
                        "type": "array",
                        "items": _object({"name": _STRING, "detail": _STRING}),
                        "description": "stored composed agents that no longer validate "
                        "(kept in the store; defining the name again replaces them)",
                    },
                },
                description="with a store (vega-trio serve --db)",
            ),
            "telegram": _object(
                {
                    "status": {"enum": ["starting", "polling", "restarting", "stopped"]},
                    "agent": _STRING,
                    "username": _NULLABLE_STRING,
                    "restarts": {"type": "integer", "minimum": 0},
                    "last_error": {
                        **_NULLABLE_STRING,
                        "description": "why the poller restarted or stopped last",
                    },
                },
                description="with a Telegram bot (TELEGRAM_BOT_TOKEN; docs/telegram.md)",
            ),
        },
        optional=("store", "telegram"),
    ),
    "OpenAPIDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths", "components"],
        "properties": {"openapi": {"const": "3.1.0"}},
    },
    "AgentDefinition": _object(_AGENT_PROPERTIES),
    "AgentList": _object({"agents": {"type": "array", "items": ref("AgentDefinition")}}),
    "ComposedAgent": _object(
        {
            **_AGENT_PROPERTIES,
            "definition": {"type": "object", "description": "its agents.<name> mapping"},
            "warnings": {"type": "array", "items": _object({"path": _STRING, "warning": _STRING})},
        },
        description="An agent definition with its mapping and the validator's warnings.",
    ),
    "AgentTemplate": _object(
        {
            "name": _STRING,
            "source": {"enum": ["yaml", "composed", "builtin"]},
            "revision": {"type": "integer", "minimum": 1},
            "complete": {
                "type": "boolean",
                "description": "false for an agent defined in Python (only its plain fields)",
            },
            "definition": {"type": "object"},
            "yaml": {**_STRING, "description": "the same as an agents: section of a .vega.yaml"},
        }
    ),
    "ImportedAgents": _object(
        {
            "agents": {"type": "array", "items": ref("ComposedAgent")},
            "warnings": {"type": "array", "items": _object({"path": _STRING, "warning": _STRING})},
        }
    ),
    "SendMetrics": attrs_schema(SendMetrics, description="What one send cost."),
    "ChatReply": _object({"response": _STRING, "metrics": ref("SendMetrics")}),
    "Message": _object(
        {
            "role": {"enum": ["user", "assistant"]},
            "content": {
                "type": "array",
                "items": {"type": "object", "required": ["type"], "properties": {"type": _STRING}},
            },
        },
        description="A message in the Anthropic API's form (`marshal_messages`).",
    ),
    "MessagePage": _message_page(),
    "Cancelled": _object({"cancelled": {"type": "boolean"}}),
    "Cleared": _object({"cleared": {"type": "boolean"}}),
    "ProcessMetrics": attrs_schema(ProcessMetrics, description="Running totals (SPEC §1.1)."),
    "Process": _object(
        {
            "id": _STRING,
            "name": _NULLABLE_STRING,
            "agent": _STRING,
            "status": {"enum": [s.value for s in ProcessStatus]},
            "parent_id": _NULLABLE_STRING,
            "spawn_depth": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "null for a process read back from the store",
            },
            "spawn_reason": _NULLABLE_STRING,
            "task": _NULLABLE_STRING,
            "started_at": {"type": ["number", "null"]},
            "completed_at": {"type": ["number", "null"]},
            "last_active": {"type": ["number", "null"]},
            "restart_count": {"type": "integer", "minimum": 0},
            "groups": _STRINGS,
            "run_id": {**_NULLABLE_STRING, "description": "the workflow run it serves"},
            "user": {**_NULLABLE_STRING, "description": "the user a session serves"},
            "error": {**_NULLABLE_STRING, "description": "why it ended abnormally"},
            "model": {**_STRING, "description": "agent processes only"},
            "metrics": ref("ProcessMetrics"),
            "conversation": {
                "type": "array",
                "items": ref("Message"),
                "description": "GET /api/processes/{id} of an agent process only",
            },
        },
        optional=("model", "metrics", "conversation"),
        description="A process (SPEC §1.1).",
    ),
    "ProcessPage": page_schema("processes", ref("Process")),
    "Stats": _object(
        {
            "live_processes": {"type": "integer", "minimum": 0},
            "total_spawned": {"type": "integer", "minimum": 0},
            "live_cost_usd": _NUMBER,
            "total_cost_usd": _NUMBER,
            "events_published": {"type": "integer", "minimum": 0},
            "restarts_by_agent": {
                **_COUNTS,
                "description": "with a store: restarts per agent, kept across restarts",
            },
        },
        optional=("restarts_by_agent",),
    ),
    "SpawnNode": attrs_schema(
        SpawnNode,
        overrides={"children": {"type": "array", "items": ref("SpawnNode")}},
        description="One node of the spawn tree (SPEC §1.2).",
    ),
    "SpawnTree": _object({"tree": {"type": "array", "items": ref("SpawnNode")}}),
    "Supervisor": _object(
        {
            "id": _STRING,
            "name": _NULLABLE_STRING,
            "type": {"const": "supervisor"},
            "strategy": _STRING,
            "status": _STRING,
            "max_restarts": _INTEGER,
            "window": _NUMBER,
            "recent_restarts": _INTEGER,
            "restart_count": _INTEGER,
            "gave_up": {"type": "boolean"},
            "auto_shutdown": _STRING,
            "exit_reason": _NULLABLE_STRING,
            "children": {
                "type": "array",
                "items": _object(
                    {
                        "id": _STRING,
                        "type": _STRING,
                        "restart": _STRING,
                        "significant": {"type": "boolean"},
                        "status": _STRING,
                        "process_id": _NULLABLE_STRING,
                        "name": _NULLABLE_STRING,
                        "agent": _NULLABLE_STRING,
                        "restart_count": _INTEGER,
                        "last_exit": _NULLABLE_STRING,
                        "supervisor": {"anyOf": [ref("Supervisor"), {"type": "null"}]},
                    }
                ),
            },
        },
        description="A live supervision tree (`Supervisor.tree()`).",
    ),
    "SupervisionTree": _object({"supervisors": {"type": "array", "items": ref("Supervisor")}}),
    "Costs": _object(
        {
            "total_usd": _NUMBER,
            "budget": {"anyOf": [_BUDGET, {"type": "null"}]},
            "agents": {
                "type": "object",
                "additionalProperties": _object(
                    {"cost_usd": _NUMBER, "budget": {"anyOf": [_BUDGET, {"type": "null"}]}}
                ),
            },
            "by": {
                "type": "object",
                "description": "with a store: every recorded call's cost per agent, "
                "process_id, run_id and model ('' for calls without one)",
                "properties": {
                    key: {"type": "object", "additionalProperties": _COST_TOTALS}
                    for key in ("agent", "process_id", "run_id", "model")
                },
                "required": ["agent", "process_id", "run_id", "model"],
                "additionalProperties": False,
            },
            "series": {
                "type": "array",
                "description": "with a store: cost over time, oldest bucket first",
                "items": _object({"start": _NUMBER, "cost_usd": _NUMBER, "calls": _NUMBER}),
            },
            "bucket_seconds": {"type": "integer", "minimum": 1},
        },
        optional=("by", "series", "bucket_seconds"),
    ),
    "MCPServers": _object(
        {
            "servers": {
                "type": "array",
                "items": _object(
                    {
                        "name": _STRING,
                        "transport": _STRING,
                        "command": _NULLABLE_STRING,
                        "url": _STRING,
                        "status": _STRING,
                        "last_error": _NULLABLE_STRING,
                        "reconnects": _INTEGER,
                        "gave_up": {"type": "boolean"},
                        "server": {
                            "anyOf": [
                                _object({"name": _STRING, "version": _NULLABLE_STRING}),
                                {"type": "null"},
                            ]
                        },
                        "protocol_version": _NULLABLE_STRING,
                        "tools": {
                            "type": "array",
                            "items": _object(
                                {
                                    "name": _STRING,
                                    "remote_name": _STRING,
                                    "description": _NULLABLE_STRING,
                                }
                            ),
                        },
                        "skipped_tools": _STRINGS,
                    },
                    optional=("command", "url"),
                ),
            }
        }
    ),
    "Workflow": _object(
        {
            "name": _STRING,
            "description": _STRING,
            "inputs": {
                "type": "object",
                "description": "the inputs as a JSON Schema",
                "required": ["type", "properties", "required"],
            },
        }
    ),
    "WorkflowList": _object({"workflows": {"type": "array", "items": ref("Workflow")}}),
    "RunStarted": _object({"run_id": _STRING, "status": {"const": "running"}}),
    "StepProgress": attrs_schema(
        StepProgress,
        exclude=("_at_start",),
        overrides={"status": {"enum": ["running", "completed", "failed", "reused"]}},
        description="One step of a run (its path is unique per execution: loop items and "
        "nested workflows have their own).",
    ),
    "WorkflowRun": attrs_schema(
        WorkflowRun,
        exclude=("scope", "ended"),
        overrides={
            "status": {"enum": list(RUN_STATUSES)},
            "steps": {"type": "array", "items": ref("StepProgress")},
        },
        description="A workflow run started over the API, with its per-step progress.",
    ),
    "RunPage": page_schema("runs", ref("WorkflowRun")),
    **{_event_schema_name(name): wire_event_schema(cls) for name, cls in CHAT_EVENTS.items()},
    "RuntimeEvent": _runtime_event_schema(),
    "LaggedEvent": _object(
        {"type": {"const": "lagged"}, "missed": {"type": "integer", "minimum": 1}}
    ),
    "ShutdownEvent": _object({"type": {"const": "shutdown"}, "reason": _STRING}),
}
