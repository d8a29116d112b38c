"""Records to rows and back, the same for every engine (the columns of
:mod:`vega_trio.store._migrations`).

JSON is encoded in the caller's task, before a write is queued, so a value that is not
JSON-able fails its own caller at once (``TypeError``) instead of a whole batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .._json import compact_encoder
from ._protocol import AgentRecord, CostRecord, ProcessRecord, RunRecord, StepRecord, StoredEvent

__all__ = [
    "COST_COLUMNS",
    "PROCESS_COLUMNS",
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "cost_row",
    "dumps",
    "event_row",
    "loads",
    "process_from_row",
    "process_row",
    "run_from_row",
    "run_row",
    "step_from_row",
    "type_filter",
    "user_from_key",
    "user_key",
]


_ENCODE = compact_encoder(allow_nan=False)
# NOTE: made once (every stored event, process and cost row is encoded here).


def dumps(value: Any) -> str:
    """Compact JSON text (``TypeError`` for what JSON cannot hold)."""
    return _ENCODE(value)


def loads(text: str) -> Any:
    return json.loads(text)


def user_key(user: str | None) -> str:
    """The conversation key of a user: ``''`` for none, ``'=' + user`` otherwise."""
    return "" if user is None else "=" + user


def user_from_key(key: str) -> str | None:
    return None if key == "" else key[1:]


def event_row(event: StoredEvent) -> tuple[int, str, float, str]:
    data = event.data
    return (
        event.seq,
        event.type,
        event.timestamp,
        _ENCODE(data if type(data) is dict else dict(data)),
    )


def event_from_row(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(seq=row[0], type=row[1], timestamp=row[2], data=loads(row[3]))


PROCESS_COLUMNS = (
    "id, agent, status, parent, supervisor, run_id, user_name, started_at, ended_at, "
    "restarts, error, metrics"
)


def process_row(p: ProcessRecord) -> tuple[Any, ...]:
    return (
        p.id,
        p.agent,
        p.status,
        p.parent,
        p.supervisor,
        p.run_id,
        p.user,
        p.started_at,
        p.ended_at,
        p.restarts,
        p.error,
        dumps(dict(p.metrics)),
    )


def process_from_row(row: Sequence[Any]) -> ProcessRecord:
    return ProcessRecord(
        id=row[0],
        agent=row[1],
        status=row[2],
        parent=row[3],
        supervisor=row[4],
        run_id=row[5],
        user=row[6],
        started_at=row[7],
        ended_at=row[8],
        restarts=row[9],
        error=row[10],
        metrics=loads(row[11]),
    )


RUN_COLUMNS = (
    "id, workflow, status, inputs, document, started_at, ended_at, output, error, "
    "error_class, step, cost_usd, resumes"
)


def run_row(r: RunRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.workflow,
        r.status,
        dumps(dict(r.inputs)),
        r.document,
        r.started_at,
        r.ended_at,
        dumps(r.output),
        r.error,
        r.error_class,
        r.step,
        r.cost_usd,
        r.resumes,
    )


def run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        workflow=row[1],
        status=row[2],
        inputs=loads(row[3]),
        document=row[4],
        started_at=row[5],
        ended_at=row[6],
        output=loads(row[7]),
        error=row[8],
        error_class=row[9],
        step=row[10],
        cost_usd=row[11],
        resumes=row[12],
    )


STEP_COLUMNS = "run_id, path, status, result, started_at, ended_at, cost_usd, tokens"


def step_row(s: StepRecord) -> tuple[Any, ...]:
    return (
        s.run_id,
        s.path,
        s.status,
        dumps(s.result),
        s.started_at,
        s.ended_at,
        s.cost_usd,
        s.tokens,
    )


def step_from_row(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        run_id=row[0],
        path=row[1],
        status=row[2],
        result=loads(row[3]),
        started_at=row[4],
        ended_at=row[5],
        cost_usd=row[6],
        tokens=row[7],
    )


COST_COLUMNS = (
    "seq, timestamp, model, agent, process_id, run_id, user_name, input_tokens, "
    "output_tokens, cost_usd"
)


def cost_row(c: CostRecord) -> tuple[Any, ...]:
    return (
        c.seq,
        c.timestamp,
        c.model,
        c.agent,
        c.process_id,
        c.run_id,
        c.user,
        c.input_tokens,
        c.output_tokens,
        c.cost_usd,
    )


def agent_row(a: AgentRecord) -> tuple[Any, ...]:
    return (a.name, dumps(dict(a.definition)), a.created_at, a.updated_at)


def agent_from_row(row: Sequence[Any]) -> AgentRecord:
    return AgentRecord(name=row[0], definition=loads(row[1]), created_at=row[2], updated_at=row[3])


def type_filter(types: Sequence[str], placeholder: str = "?") -> tuple[str, list[str]]:
    """A SQL condition on ``type`` for ``read_events(types=...)``: exact names, or
    ``prefix.*`` for every type under a prefix (``*`` alone: every type).

    Returns:
        ``(condition, parameters)``; the condition is ``TRUE``-equivalent for ``*``.
    """
    exact: list[str] = []
    prefixes: list[str] = []
    for name in types:
        if name == "*":
            return "1 = 1", []
        if name.endswith(".*"):
            prefixes.append(name[:-1])  # keep the dot: "llm.*" -> "llm."
        else:
            exact.append(name)
    parts: list[str] = []
    params: list[str] = []
    if exact:
        parts.append(f"type IN ({', '.join([placeholder] * len(exact))})")
        params.extend(exact)
    for prefix in prefixes:
        # NOTE: substr comparison, not LIKE: no wildcard escaping, same on both engines.
        parts.append(f"substr(type, 1, {len(prefix)}) = {placeholder}")
        params.append(prefix)
    if not parts:
        return "1 = 0", []
    return "(" + " OR ".join(parts) + ")", params
