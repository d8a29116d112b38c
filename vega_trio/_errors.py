"""The exception tree of vega-trio.

Every error the library raises on purpose derives from :class:`VegaError`::

    VegaError
    ├── OrchestratorClosed          the orchestrator is shutting down or gone
    ├── TooManyProcesses            spawn would exceed ``max_processes``
    ├── NameTaken                   a registry name is bound to another live process
    ├── ProcessNotFound             no live process with that id or name
    ├── AgentNotFound               no agent definition with that name (``.name``)
    ├── AgentExists                 an agent definition with that name exists (``.name``)
    ├── SupervisorError             a supervisor (tree) could not do what was asked
    │   ├── ChildNotFound           no child spec with that id (``.known_ids``)
    │   ├── DuplicateChild          a child spec with that id exists already
    │   ├── ChildRunning            restart/delete of a child that is running
    │   ├── ChildStartFailed        a child's start failed (``.child_id``; cause)
    │   ├── RestartIntensityError   more than ``max_restarts`` in ``window``: gave up
    │   └── SupervisorNotRunning    the supervisor has exited
    ├── LinkedProcessError          a linked process exited abnormally (``.source``)
    ├── MonitorRemoved              ``wait()`` on a monitor that was removed
    ├── ProcessError                a request could not be served by a process
    │   ├── ProcessNotRunning       sent to a process that has already finished
    │   ├── ProcessExited           the process ended before answering (``.reason``)
    │   └── RequestCancelled        the request was cancelled before it finished
    ├── RequestError                the request failed; the process keeps serving
    │   ├── MaxIterationsExceeded   the tool loop ran more rounds than allowed
    │   ├── SendTimeout             the agent's ``send_timeout`` elapsed
    │   └── LLMError                the model call failed (``.error_class``)
    │       ├── BudgetExceeded      a ``block`` budget refused the call (resilience)
    │       ├── RateLimited         a ``reject`` rate limiter refused it (resilience)
    │       ├── RequestTooLarge     it can never fit its tokens-per-minute limit
    │       └── CircuitOpen         the agent's circuit breaker is open (resilience)
    ├── ToolError                   tool registration or execution problems
    │   ├── DuplicateTool           a tool name is registered twice
    │   ├── ToolNotFound            the model asked for a tool that does not exist
    │   ├── ToolSchemaError         a function's signature cannot become a JSON schema
    │   │   └── ToolDefinitionError a declarative (http/exec) tool is malformed
    │   ├── ToolArgumentError       the arguments don't match the schema (tools)
    │   ├── ToolTimeout             a tool ran longer than its limit (tools)
    │   ├── SandboxViolation        a path resolves outside the sandbox (tools)
    │   ├── HttpToolError           an http tool's request failed (``HostNotAllowed``)
    │   ├── ExecToolError           an exec tool's command failed
    │   ├── MissingEnvironmentVariable  a ``${VAR}`` a tool needs is not set
    │   ├── MCPServerError          an MCP server problem (``MCPConfigError``,
    │   │                           ``MCPServerUnavailable``, ``MCPToolError``)
    │   └── DelegationRefused       a ``delegate`` call named an agent outside the team
    ├── InputFileError              a file a user named can't be read as input (``.path``)
    ├── SkillError                  a skill file or skill configuration is wrong (skills)
    ├── TemplateError               a DSL template or condition is malformed (dsl)
    ├── DurationError               a DSL duration ("30s", "5m") is malformed (dsl)
    ├── DSLError                    a .vega.yaml document is invalid (``.diagnostics``)
    └── WorkflowError               a workflow run failed (``.path``, ``.cause``) (dsl)
        ├── WorkflowInputError      an input is missing, mistyped or not in its enum
        ├── StepTimeout             a step ran longer than its ``timeout``
        └── ReplyFormatError        a ``format: json`` reply was not JSON

``RequestError`` is the line between "this request failed" and "this process
crashed": a behaviour that raises a ``RequestError`` answers the caller with it and
goes on serving; any other exception is a crash of the process. A request error
whose ``exit_kind`` is set (a budget that ran out) ends a *supervised* process with
that exit reason instead, which supervisors do not restart.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ._redact import redact

if TYPE_CHECKING:
    from .runtime._reason import ExitReason

__all__ = [
    "AgentExists",
    "AgentNotFound",
    "ChildFailed",
    "ChildNotFound",
    "ChildRunning",
    "ChildStartFailed",
    "DuplicateChild",
    "DuplicateTool",
    "ErrorClass",
    "InputFileError",
    "LLMError",
    "LinkedProcessError",
    "MaxIterationsExceeded",
    "MonitorRemoved",
    "NameTaken",
    "OrchestratorClosed",
    "ProcessError",
    "ProcessExited",
    "ProcessNotFound",
    "ProcessNotRunning",
    "RequestCancelled",
    "RequestError",
    "RestartIntensityError",
    "SendTimeout",
    "SupervisorError",
    "SupervisorNotRunning",
    "TooManyProcesses",
    "ToolError",
    "ToolNotFound",
    "ToolSchemaError",
    "VegaError",
]


class VegaError(Exception):
    """Root of every error vega-trio raises on purpose.

    Its text is redacted (SPEC §11): ``str(error)`` — and so every traceback, log record
    and CLI line that shows it — has known secrets, URL passwords and credential-shaped
    tokens masked by :func:`vega_trio._redact.redact`. The raw arguments stay in
    ``.args`` for code that needs them.
    """

    def __str__(self) -> str:
        return redact(super().__str__())

    def __repr__(self) -> str:
        return redact(super().__repr__())


class InputFileError(VegaError):
    """A file a user named (a ``.vega.yaml`` document, a skill file, ``--input`` JSON)
    cannot be used as input: it is missing or unreadable, not a regular file (a FIFO, a
    device such as ``/dev/zero``, a directory), larger than the size cap, or not UTF-8
    (SPEC §11). Nothing of it was parsed.

    Attributes:
        path: the file, as given (``None`` when the size cap itself is misconfigured).
    """

    def __init__(self, message: str, *, path: str | None) -> None:
        super().__init__(message)
        self.path = path


class OrchestratorClosed(VegaError):
    """The orchestrator is shutting down (or has shut down) and accepts no new work."""


class TooManyProcesses(VegaError):
    """Spawning would exceed the orchestrator's ``max_processes`` limit."""


class NameTaken(VegaError):
    """A registry name is already bound to another live process."""


class ProcessNotFound(VegaError):
    """No live process has the given id or registered name."""


class AgentNotFound(VegaError):
    """The orchestrator's agent registry has no definition with that name (``.name``)."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class AgentExists(VegaError):
    """An agent definition with that name exists already (``.name``); update it instead."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class LinkedProcessError(VegaError):
    """A process linked to this one exited abnormally, so this one was killed (SPEC §2.3).

    It is the error of a process that ended with exit reason ``linked``. Attributes:
    ``source`` is the id of the process that exited and ``reason`` its
    :class:`~vega_trio.ExitReason`; that process's error (if it had one) is this
    exception's ``__cause__``, so a chain of links keeps the first failure reachable.
    """

    def __init__(self, message: str, *, source: str, reason: ExitReason) -> None:
        super().__init__(message)
        self.source = source
        self.reason = reason


class MonitorRemoved(VegaError):
    """``Monitor.wait()`` was called on (or was waiting for) a monitor that was removed by
    ``demonitor`` or because its watcher exited; such a monitor never fires."""


class ChildFailed(VegaError):
    """A child process with ``strategy="escalate"`` failed; its parent crashes with this.

    ``child_id`` names the child; its error is this exception's ``__cause__``.
    """

    def __init__(self, message: str, *, child_id: str) -> None:
        super().__init__(message)
        self.child_id = child_id


class SupervisorError(VegaError):
    """A supervisor (SPEC §2.2) could not do what was asked.

    ``supervisor`` is the supervisor's name.
    """

    def __init__(self, message: str, *, supervisor: str) -> None:
        super().__init__(message)
        self.supervisor = supervisor


class ChildNotFound(SupervisorError):
    """No child spec with that id (OTP's ``not_found``); ``known_ids`` lists the ids there are."""

    def __init__(
        self, message: str, *, supervisor: str, child_id: str, known_ids: tuple[str, ...]
    ) -> None:
        super().__init__(message, supervisor=supervisor)
        self.child_id = child_id
        self.known_ids = known_ids


class DuplicateChild(SupervisorError):
    """``start_child`` with an id the supervisor already has (OTP's ``already_present``
    or ``already_started``)."""


class ChildRunning(SupervisorError):
    """``restart_child``/``delete_child`` of a child that is running or being restarted
    (OTP's ``running``/``restarting``): terminate it first."""


class ChildStartFailed(SupervisorError):
    """A child could not be started (OTP's ``failed_to_start_child``).

    ``child_id`` names the child; the error its start raised is this exception's
    ``__cause__`` (for a nested supervisor, another ``ChildStartFailed``).
    """

    def __init__(self, message: str, *, supervisor: str, child_id: str) -> None:
        super().__init__(message, supervisor=supervisor)
        self.child_id = child_id


class RestartIntensityError(SupervisorError):
    """A top-level supervisor gave up: more than ``max_restarts`` restarts within
    ``window`` seconds. Its children were terminated; the last child failure is this
    exception's ``__cause__`` when there was one. ``supervisor_id`` is the tree's id."""

    def __init__(
        self,
        message: str,
        *,
        supervisor: str,
        max_restarts: int,
        window: float,
        supervisor_id: str | None = None,
    ) -> None:
        super().__init__(message, supervisor=supervisor)
        self.max_restarts = max_restarts
        self.window = window
        self.supervisor_id = supervisor_id


class SupervisorNotRunning(SupervisorError):
    """The supervisor has exited (or is exiting); it takes no more requests."""


class ProcessError(VegaError):
    """A request could not be served by the process it was sent to."""

    def __init__(self, message: str, *, process_id: str) -> None:
        super().__init__(message)
        self.process_id = process_id


class ProcessNotRunning(ProcessError):
    """The process has already finished (completed, failed, stopped or timed out)."""


class ProcessExited(ProcessError):
    """The process ended before it answered this request.

    ``reason`` is the process's :class:`~vega_trio.ExitReason`; when the process
    crashed, the crash error is also this exception's ``__cause__``.
    """

    def __init__(self, message: str, *, process_id: str, reason: ExitReason) -> None:
        super().__init__(message, process_id=process_id)
        self.reason = reason


class RequestCancelled(ProcessError):
    """The request was cancelled (``future.cancel()``) before it finished."""


class RequestError(VegaError):
    """A request failed but the process that served it is healthy and keeps serving."""

    @property
    def exit_kind(self) -> str | None:
        """The exit reason a *supervised* process ends with after this failure, or
        ``None`` (the default) to keep serving. Restarting cannot cure such a failure,
        so supervisors do not restart that exit."""
        return None

    @property
    def restartable(self) -> bool:
        """Whether a restart may cure this failure: a *supervised* process crashes on
        it (and its supervision decides) instead of answering the caller and going on.
        ``False`` by default."""
        return False


class MaxIterationsExceeded(RequestError):
    """The agent's tool loop needed more than ``max_iterations`` LLM rounds."""


class SendTimeout(RequestError):
    """The agent's ``send_timeout`` elapsed before the reply was ready."""


class ErrorClass(enum.StrEnum):
    """The seven classes every LLM failure is sorted into (SPEC §3.1)."""

    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    TEMPORARY = "temporary"
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    BUDGET_EXCEEDED = "budget_exceeded"

    @property
    def retryable(self) -> bool:
        """Whether a retry may cure this class of failure by default."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {ErrorClass.RATE_LIMIT, ErrorClass.OVERLOADED, ErrorClass.TIMEOUT, ErrorClass.TEMPORARY}
)


class LLMError(RequestError):
    """A call to the language model failed.

    Attributes:
        error_class: which of the seven classes the failure belongs to.
        status_code: the HTTP status, when there was one.
        retry_after: seconds the server asked us to wait, when it said.
        output_started: ``True`` when the failure came after streamed output began
            (such a call is never retried transparently).
        attempts: how many attempts the retry policy made (1 without retries).
        refused_locally: ``True`` for refusals made before any request was sent (a
            budget, a ``reject`` rate limiter, an open circuit breaker): they are never
            retried and never count as failures of the service.
    """

    refused_locally: bool = False
    attempts: int = 1

    def __init__(
        self,
        message: str,
        *,
        error_class: ErrorClass,
        status_code: int | None = None,
        retry_after: float | None = None,
        output_started: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status_code = status_code
        self.retry_after = retry_after
        self.output_started = output_started

    @property
    def retryable(self) -> bool:
        """Whether this failure may be retried transparently."""
        return self.error_class.retryable and not self.output_started and not self.refused_locally

    @property
    def exit_kind(self) -> str | None:
        """``"budget_exceeded"`` for a spent budget (ours or the provider's spend cap)."""
        return "budget_exceeded" if self.error_class is ErrorClass.BUDGET_EXCEEDED else None

    @property
    def restartable(self) -> bool:
        """A retryable class that came back from the service (SPEC §2.1), including a
        stream that broke after output began: the process fails and its supervisor
        decides. Local refusals (open breaker, ``reject`` limiter) are not."""
        return self.error_class.retryable and not self.refused_locally


class ToolError(VegaError):
    """Base for tool registration and execution problems."""


class DuplicateTool(ToolError):
    """A tool with this name is already registered."""


class ToolNotFound(ToolError):
    """The model asked for a tool that is not registered for this agent."""


class ToolSchemaError(ToolError):
    """A function's signature cannot be turned into a JSON schema."""
