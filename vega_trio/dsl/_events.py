"""The workflow kinds of bus event (SPEC §10.3): what a run of a workflow is doing.

These are the progress of :meth:`~vega_trio.dsl.Runner.run` (the CLI's step lines are
rendered from them). Every one carries the run's ``run_id``, its ``workflow`` and the
run's token and cost totals so far (cumulative, the run's delegates included).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from ..runtime._events import Event

__all__ = [
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowInterrupted",
    "WorkflowResumed",
    "WorkflowStarted",
    "WorkflowStepStatus",
]


@attrs.frozen(kw_only=True)
class _WorkflowEvent(Event):
    workflow: str = ""
    detail: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@attrs.frozen(kw_only=True)
class WorkflowStarted(_WorkflowEvent):
    """A run began (``workflow.started``): ``inputs`` are the names of its variables."""

    type: ClassVar[str] = "workflow.started"
    inputs: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class WorkflowStepStatus(_WorkflowEvent):
    """A step started, finished or failed (``workflow.step``).

    Attributes:
        path: the step (``report.steps[1]``, ``report.steps[2].then[0]``, a
            sub-workflow's ``summary.steps[0]``).
        step: its type (``agent``, ``if``, ``for``, ``parallel``, ``try``, ``repeat``,
            ``set``, ``return``, ``workflow``).
        status: ``started``, ``finished`` or ``failed``.
        detail: for a started agent step the message sent, for a finished step its
            result (both cut to 200 characters); for a failure the error.
        agent: (inherited) the agent an agent step addresses.
    """

    type: ClassVar[str] = "workflow.step"
    path: str = ""
    step: str = ""
    status: str = ""


@attrs.frozen(kw_only=True)
class WorkflowCompleted(_WorkflowEvent):
    """A run succeeded (``workflow.completed``); ``detail`` previews its output."""

    type: ClassVar[str] = "workflow.completed"
    steps_run: int = 0


@attrs.frozen(kw_only=True)
class WorkflowFailed(_WorkflowEvent):
    """A run failed (``workflow.failed``) at step ``path`` with ``error``."""

    type: ClassVar[str] = "workflow.failed"
    path: str = ""
    error: str = ""
    error_class: str = ""


@attrs.frozen(kw_only=True)
class WorkflowInterrupted(_WorkflowEvent):
    """A run was cancelled before it ended (``workflow.interrupted``): Ctrl-C, a
    timeout, its caller's cancellation."""

    type: ClassVar[str] = "workflow.interrupted"
    steps_run: int = 0


@attrs.frozen(kw_only=True)
class WorkflowResumed(_WorkflowEvent):
    """An interrupted run was resumed from its checkpoint (``workflow.resumed``)."""

    type: ClassVar[str] = "workflow.resumed"
    path: str = ""
