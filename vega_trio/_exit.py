"""Process status and exit reasons (OTP's vocabulary).

A ground-floor module: it imports nothing of vega-trio, so that both the exception tree
(``_errors.py``: ``ProcessExited.reason``, ``LinkedProcessError.reason``) and the runtime
can use it without a loop between them.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = ["ExitReason", "ProcessStatus"]


class ProcessStatus(enum.StrEnum):
    """Lifecycle of a process: ``pending → running → completed | failed | timeout | stopped``."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    STOPPED = "stopped"

    @property
    def finished(self) -> bool:
        """Whether the process has ended for good."""
        return self not in (ProcessStatus.PENDING, ProcessStatus.RUNNING)


@attrs.frozen(kw_only=True)
class ExitReason:
    """Why a process ended.

    ``kind`` is one of OTP's reasons: ``normal`` (completed), ``shutdown`` (stopped by
    its owner or the orchestrator), ``killed`` (``kill()``), ``error`` (crashed or
    ``fail()``), ``timeout`` (its lifetime deadline passed), ``linked`` (a linked
    process died; ``source`` names it) and ``noproc`` (it was already gone) — plus
    ``budget_exceeded``: a supervised process whose budget ran out, which no
    supervisor restarts (see :attr:`restartable`).
    """

    kind: str
    error: BaseException | None = attrs.field(default=None, eq=False)
    result: Any = attrs.field(default=None, eq=False)
    source: str | None = None
    detail: str = ""

    @classmethod
    def normal(cls, result: Any = None) -> ExitReason:
        """The process completed."""
        return cls(kind="normal", result=result)

    @classmethod
    def shutdown(cls, detail: str = "") -> ExitReason:
        """The process was asked to stop."""
        return cls(kind="shutdown", detail=detail)

    @classmethod
    def killed(cls, detail: str = "") -> ExitReason:
        """The process was killed (``kill`` cannot be trapped)."""
        return cls(kind="killed", detail=detail)

    @classmethod
    def crashed(cls, error: BaseException) -> ExitReason:
        """The process crashed or was failed with ``error``.

        A :class:`~vega_trio.LinkedProcessError` (a link death) gives reason ``linked``.
        """
        # NOTE: an error may name its own exit reason (``exit_kind``): a spent budget
        # (the runtime knows nothing of budgets), a link death (``linked``). Read by
        # name so that this ground-floor module need not import the exception tree.
        kind = getattr(error, "exit_kind", None) or "error"
        if kind == "linked":
            return cls.linked(error)
        return cls(kind=kind, error=error, detail=f"{type(error).__name__}: {error}")

    @classmethod
    def linked(cls, error: BaseException) -> ExitReason:
        """The process was killed because the linked process ``error.source`` exited
        (``error`` is a :class:`~vega_trio.LinkedProcessError`)."""
        source: str | None = getattr(error, "source", None)
        return cls(
            kind="linked",
            error=error,
            source=source,
            detail=f"linked process {source} exited: {getattr(error, 'reason', None)}",
        )

    @classmethod
    def noproc(cls, process_id: str) -> ExitReason:
        """``process_id`` was already gone (or never existed) when linked or monitored."""
        return cls(kind="noproc", source=process_id, detail=f"no process {process_id}")

    @classmethod
    def timed_out(cls, seconds: float) -> ExitReason:
        """The process outlived its ``timeout``."""
        return cls(kind="timeout", detail=f"lifetime timeout of {seconds:g}s elapsed")

    @property
    def abnormal(self) -> bool:
        """Anything but ``normal`` and ``shutdown`` (OTP's definition, used by ``transient``)."""
        return self.kind not in ("normal", "shutdown")

    @property
    def restartable(self) -> bool:
        """Whether a supervisor may restart after this exit: every reason but
        ``budget_exceeded`` (a restart would be refused again at once)."""
        return self.kind not in _NOT_RESTARTED

    @property
    def status(self) -> ProcessStatus:
        """The final status a process with this exit reason ends in."""
        return _STATUS_OF.get(self.kind, ProcessStatus.FAILED)

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else self.kind


_STATUS_OF = {
    "normal": ProcessStatus.COMPLETED,
    "shutdown": ProcessStatus.STOPPED,
    "killed": ProcessStatus.STOPPED,
    "timeout": ProcessStatus.TIMEOUT,
    "error": ProcessStatus.FAILED,
    "linked": ProcessStatus.FAILED,
    "budget_exceeded": ProcessStatus.FAILED,
}

_NOT_RESTARTED = frozenset({"budget_exceeded"})
