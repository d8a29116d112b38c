"""What a run writes to the store: its record when it starts, a checkpoint per finished step,
and how it ended (the checkpoints are what :meth:`~vega_trio.dsl.Runner.resume` continues from).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import (
    WorkflowError,
)
from ..store import RunRecord, StepRecord, Store
from ._model import (
    Document,
    WorkflowSpec,
)
from ._run_common import _log, _message_of, _Resumption
from ._values import to_text

if TYPE_CHECKING:
    from ._interpreter import Runner

__all__: list[str] = []


def _json_safe(value: Any) -> bool:
    """Whether ``value`` is plain JSON that survives a store round trip unchanged in
    meaning: ``None``, booleans, integers, finite floats, strings, lists (tuples) and
    mappings with string keys of those."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_json_safe(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def _document_path(doc: Document) -> str | None:
    file = doc.where.file
    if not file or file.startswith("<"):
        return None
    path = Path(file)
    return str(path.resolve()) if path.exists() else file


@attrs.define(eq=False)
class _Recorder:
    """A run's record and step checkpoints in the store; does nothing without one
    (or for a run whose inputs are not JSON: it cannot be resumed, see :meth:`open`).

    ``checkpoints`` holds the completed steps a resumed run reuses, by path.
    """

    store: Store | None
    record: RunRecord | None = None
    checkpoints: dict[str, StepRecord] = attrs.field(factory=dict)
    base_cost: float = 0.0
    """What earlier attempts of a resumed run cost (the record's cost adds this one's)."""

    @classmethod
    async def open(
        cls,
        runner: Runner,
        spec: WorkflowSpec,
        run_id: str,
        variables: Mapping[str, Any],
        resumption: _Resumption | None,
    ) -> _Recorder:
        """Record the run as ``running`` (committed on return)."""
        store = runner.store
        if store is None:
            return cls(None)
        if resumption is not None:
            old = resumption.record
            record = attrs.evolve(
                old,
                status="running",
                ended_at=None,
                error=None,
                error_class=None,
                step=None,
                resumes=old.resumes + 1,
            )
            checkpoints = dict(resumption.checkpoints)
            base_cost = old.cost_usd
        elif _json_safe(variables):
            record = RunRecord(
                id=run_id,
                workflow=spec.name,
                status="running",
                inputs=dict(variables),
                document=_document_path(runner.document),
                started_at=time.time(),
            )
            checkpoints, base_cost = {}, 0.0
        else:
            _log.warning(
                "workflow run %s is not recorded and cannot be resumed: its inputs are not "
                "all JSON values (strings, numbers, booleans, null, lists, objects)",
                run_id,
            )
            return cls(None)
        await store.save_run(record)
        return cls(store, record, checkpoints, base_cost)

    async def _save_run(self, **changes: Any) -> None:
        if self.store is None or self.record is None:
            return
        self.record = attrs.evolve(self.record, ended_at=time.time(), **changes)
        await self.store.save_run(self.record)

    async def completed(self, output: Any, cost: float) -> None:
        if not _json_safe(output):
            _log.warning(
                "workflow run %s: its output is not a JSON value; the store keeps its text",
                self.record.id if self.record else "?",
            )
            output = to_text(output)
        await self._save_run(status="completed", output=output, cost_usd=self.base_cost + cost)

    async def failed(self, exc: WorkflowError, cost: float) -> None:
        await self._save_run(
            status="failed",
            error=_message_of(exc),
            error_class=exc.error_class,
            step=exc.path,
            cost_usd=self.base_cost + cost,
        )

    async def interrupted(self, cost: float) -> None:
        await self._save_run(status="interrupted", cost_usd=self.base_cost + cost)

    async def step(self, step: StepRecord) -> None:
        """Commit a step's record; a store failure is logged, not raised: the run goes
        on, and a resume would run that step again."""
        if self.store is None:
            return
        try:
            await self.store.save_step(step)
        except Exception as exc:
            _log.warning(
                "workflows.%s of run %s: its checkpoint could not be saved (%s); a resume "
                "would run it again",
                step.path,
                step.run_id,
                _message_of(exc),
            )
