"""The exception tree of vega-trio: every error class the library raises on purpose.

Every class is defined here (httpx's ``_exceptions.py``) and re-exported where users
meet it: the top level, ``vega_trio.tools``, ``vega_trio.dsl``, ``vega_trio.resilience``,
``vega_trio.runtime``, ``vega_trio.testing``. All derive from :class:`VegaError`; ``+ X``
names a second, builtin base kept for callers that catch it::

    VegaError
    ├── OrchestratorClosed            the orchestrator is shutting down or gone
    ├── TooManyProcesses              spawn would exceed ``max_processes``
    ├── NameTaken                     a registry name is bound to another live process
    ├── ProcessNotFound               no live process with that id or name
    ├── AgentNotFound                 no agent definition with that name (``orch.agents``)
    ├── AgentExists                   an agent definition with that name exists already
    ├── ChildFailed                   an ``escalate`` child failed; its parent crashes
    ├── SupervisorError               a supervisor (tree) could not do what was asked
    │   ├── ChildNotFound             no child spec with that id (``.known_ids``)
    │   ├── DuplicateChild            a child spec with that id exists already
    │   ├── ChildRunning              restart/delete of a child that is running
    │   ├── ChildStartFailed          a child's start failed (``.child_id``; cause)
    │   ├── RestartIntensityError     more than ``max_restarts`` in ``window``: gave up
    │   └── SupervisorNotRunning      the supervisor has exited
    ├── LinkedProcessError            a linked process exited abnormally (``.source``)
    ├── MonitorRemoved                ``wait()`` on a monitor that was removed
    ├── ProcessError                  a request could not be served by a process
    │   ├── ProcessNotRunning         sent to a process that has already finished
    │   ├── ProcessExited             the process ended before answering (``.reason``)
    │   ├── RequestCancelled          the request was cancelled before it finished
    │   └── MailboxFull               ``call_async`` on a running process's full mailbox
    ├── RequestError                  the request failed; the process keeps serving
    │   ├── MaxIterationsExceeded     the tool loop ran more rounds than allowed
    │   ├── SendTimeout               the agent's ``send_timeout`` elapsed
    │   └── LLMError                  the model call failed (``.error_class``)
    │       ├── BudgetExceeded        a ``block`` budget refused the call
    │       ├── RateLimited           a ``reject`` rate limiter refused it
    │       ├── RequestTooLarge       it can never fit its tokens-per-minute limit
    │       ├── CircuitOpen           the agent's circuit breaker is open
    │       └── ScriptExhausted       a ``ScriptedLLM`` ran out of script (testing)
    ├── ToolError                     tool registration or execution problems
    │   ├── DuplicateTool             a tool name is registered twice
    │   ├── ToolNotFound              the model asked for a tool that does not exist
    │   ├── ToolSchemaError           a function's signature cannot become a JSON schema
    │   │   └── ToolDefinitionError   a declarative (http/exec) tool is malformed
    │   ├── ToolArgumentError         the arguments don't match the schema
    │   ├── ArgumentProblem           raised by a validator; becomes ToolArgumentError
    │   ├── ToolTimeout               a tool ran longer than its limit
    │   ├── SandboxViolation          a path resolves outside the sandbox
    │   ├── HttpToolError             an http tool's request failed
    │   │   └── HostNotAllowed        its host or address is not allowed (SSRF guard)
    │   ├── ExecToolError             an exec tool's command failed
    │   ├── MissingEnvironmentVariable  a ``${VAR}`` a tool needs is not set
    │   ├── MCPServerError            an MCP server problem (``.server``)
    │   │   ├── MCPConfigError        + ValueError: a server's configuration is unusable
    │   │   ├── MCPServerUnavailable  the server is not connected
    │   │   └── MCPToolError          the server ran the tool and reported a failure
    │   └── DelegationRefused         a ``delegate`` call named an agent outside the team
    ├── InputFileError                a file a user named can't be read as input (``.path``)
    ├── SkillError                    a skill file or skill configuration is wrong
    ├── DSLError                      a .vega.yaml document is invalid (``.diagnostics``)
    ├── TemplateError                 a DSL template or condition is malformed
    ├── DurationError                 + ValueError: a DSL duration ("30s") is malformed
    ├── InputError                    + ValueError: a workflow input is missing or invalid
    ├── WorkflowError                 a workflow run failed (``.path``, ``.cause``)
    │   ├── WorkflowInputError        an input is missing, mistyped or not in its enum
    │   └── RunNotResumable           no such run, or it is running or completed (``.reason``)
    ├── StepTimeout                   a step ran longer than its ``timeout`` (a cause)
    ├── ReplyFormatError              a ``format: json`` reply was not JSON (a cause)
    ├── StoreError                    the durable store failed (``.location``)
    │   ├── StoreOpenError            it can't be opened (``.kind``: corrupt, foreign…)
    │   └── StoreClosed               it closed before a write was committed
    ├── UsageProblem                  the CLI's command line can't be used (exit status 2)
    ├── RequestRejected               the server refused an HTTP request (``.status``)
    └── TelegramError                 the Telegram Bot API refused a call (``.error_code``)

``RequestError`` is the line between "this request failed" and "this process
crashed": a behaviour that raises a ``RequestError`` answers the caller with it and
goes on serving; any other exception is a crash of the process. A request error
whose ``exit_kind`` is set (a budget that ran out) ends a *supervised* process with
that exit reason instead, which supervisors do not restart.

``StepTimeout`` and ``ReplyFormatError`` are the causes of a step's failure; a run
raises them wrapped in a ``WorkflowError`` (``.cause``). ``UsageProblem`` is the CLI's
own (exported from ``vega_trio._cli`` only). This module imports nothing of the runtime
(``ExitReason`` lives in the ground-floor ``vega_trio._exit``).

Size: every error class of the library lives here, in the tree drawn above
(tests/test_errors.py checks the drawing against the classes); each class is a few lines, and
one module keeps the whole tree in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import trio

from ._exit import ExitReason
from ._redact import redact

if TYPE_CHECKING:
    # Only for an annotation (``DSLError.diagnostics``); never imported at run time.
    from .dsl._diagnostics import Diagnostic

__all__ = [
    "AgentExists",
    "AgentNotFound",
    "ArgumentProblem",
    "BreakerState",
    "BudgetExceeded",
    "ChildFailed",
    "ChildNotFound",
    "ChildRunning",
    "ChildStartFailed",
    "CircuitOpen",
    "DSLError",
    "DelegationRefused",
    "DuplicateChild",
    "DuplicateTool",
    "DurationError",
    "ErrorClass",
    "ExecToolError",
    "HostNotAllowed",
    "HttpToolError",
    "InputError",
    "InputFileError",
    "LLMError",
    "LinkedProcessError",
    "MCPConfigError",
    "MCPServerError",
    "MCPServerUnavailable",
    "MCPToolError",
    "MailboxFull",
    "MaxIterationsExceeded",
    "MissingEnvironmentVariable",
    "MonitorRemoved",
    "NameTaken",
    "OrchestratorClosed",
    "ProcessError",
    "ProcessExited",
    "ProcessNotFound",
    "ProcessNotRunning",
    "RateLimited",
    "ReplyFormatError",
    "RequestCancelled",
    "RequestError",
    "RequestRejected",
    "RequestTooLarge",
    "RestartIntensityError",
    "RunNotResumable",
    "SandboxViolation",
    "ScriptExhausted",
    "SendTimeout",
    "SkillError",
    "StepTimeout",
    "StoreClosed",
    "StoreError",
    "StoreOpenError",
    "SupervisorError",
    "SupervisorNotRunning",
    "TelegramError",
    "TemplateError",
    "TooManyProcesses",
    "ToolArgumentError",
    "ToolDefinitionError",
    "ToolError",
    "ToolNotFound",
    "ToolSchemaError",
    "ToolTimeout",
    "UsageProblem",
    "VegaError",
    "WorkflowError",
    "WorkflowInputError",
    "error_class_of",
    "step_error_class",
]


class VegaError(Exception):
    """Root of every error vega-trio raises on purpose.

    Its text is redacted (SPEC §11): ``str(error)`` — and so every traceback, log record
    and CLI line that shows it — has known secrets, URL passwords and credential-shaped
    tokens masked by :func:`vega_trio._redact.redact`. The raw arguments stay in
    ``.args`` for code that needs them.
    """

    # NOTE: read by _redact.redact_exception, which leaves such exceptions as they are.
    _redacts_itself: ClassVar[bool] = True

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

    @property
    def exit_kind(self) -> str:
        """``"linked"``: the exit reason of a process that fails with this error."""
        return "linked"


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


class MailboxFull(ProcessError):
    """``call_async`` found the process's bounded mailbox full: backpressure on a
    process that is running (``await call()`` waits for room instead)."""


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


def error_class_of(exc: BaseException) -> str:
    """The ``error_class`` reported for a failure: the LLM class, else a snake_case name."""
    if isinstance(exc, LLMError):
        return str(exc.error_class)
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


# -- resilience: local refusals of an LLM call -------------------------------------------


class BudgetExceeded(LLMError):
    """A ``block`` budget refused a call (SPEC §3.5). Never retried.

    Attributes:
        owner: whose budget it is (e.g. ``"agent 'planner'"``).
        limit: the budget's limit in USD.
        spent: what had been spent when the call was refused, in USD.
        estimated_cost: the refused call's estimated cost, in USD.
    """

    refused_locally = True

    def __init__(
        self, message: str, *, owner: str, limit: float, spent: float, estimated_cost: float
    ) -> None:
        super().__init__(message, error_class=ErrorClass.BUDGET_EXCEEDED)
        self.owner = owner
        self.limit = limit
        self.spent = spent
        self.estimated_cost = estimated_cost


class RateLimited(LLMError):
    """A rate limiter with ``strategy="reject"`` refused a call that does not fit now.

    ``retry_after`` is the number of seconds until the call would fit (if nothing
    else is taken meanwhile). Its error class is ``rate_limit``, but like every local
    refusal (``refused_locally``) a retry policy does not retry it: ``reject`` means
    "fail at once"; use ``strategy="queue"`` to wait instead.
    """

    refused_locally = True

    def __init__(self, message: str, *, limiter: str, retry_after: float) -> None:
        super().__init__(message, error_class=ErrorClass.RATE_LIMIT, retry_after=retry_after)
        self.limiter = limiter


class RequestTooLarge(LLMError):
    """A call's estimated tokens exceed the whole tokens-per-minute capacity, so it
    could never fit. Its error class is ``invalid_request`` (never retried)."""

    refused_locally = True

    def __init__(self, message: str, *, limiter: str, estimated_tokens: int, capacity: int) -> None:
        super().__init__(message, error_class=ErrorClass.INVALID_REQUEST)
        self.limiter = limiter
        self.estimated_tokens = estimated_tokens
        self.capacity = capacity


BreakerState: TypeAlias = Literal["closed", "open", "half_open"]


class CircuitOpen(LLMError):
    """A circuit breaker refused the call without making it (its class is ``TEMPORARY``).

    Attributes:
        breaker: the breaker's name.
        state: ``"open"``, or ``"half_open"`` when all probe slots were taken.
        half_open_at: the Trio time at which the breaker half-opens (for an open
            breaker), else ``None``. ``retry_after`` is the seconds left until then.
            A retry policy never retries it (``refused_locally``): an open breaker
            fails fast, and the caller decides whether to come back after
            ``retry_after``.
    """

    refused_locally = True

    def __init__(
        self,
        message: str,
        *,
        breaker: str,
        state: BreakerState,
        half_open_at: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, error_class=ErrorClass.TEMPORARY, retry_after=retry_after)
        self.breaker = breaker
        self.state = state
        self.half_open_at = half_open_at


class ScriptExhausted(LLMError):
    """A :class:`ScriptedLLM` got a request after its script ran out.

    An :class:`~vega_trio.LLMError` (class ``invalid_request``, never retried), so
    the agent answers the caller with it and the test shows what was asked.
    """


class ToolError(VegaError):
    """Base for tool registration and execution problems."""


class DuplicateTool(ToolError):
    """A tool with this name is already registered."""


class ToolNotFound(ToolError):
    """The model asked for a tool that is not registered for this agent."""


class ToolSchemaError(ToolError):
    """A function's signature cannot be turned into a JSON schema."""


class ToolDefinitionError(ToolSchemaError):
    """A declarative (HTTP or exec) tool's definition is invalid: an unknown or malformed
    placeholder, a parameter whose default or enum does not fit its type, a bad URL, ...

    Raised when the tool is built, before any model can call it. The message names the tool,
    the place (``implementation.headers['Authorization']``) and what to change.

    Attributes:
        tool: the tool's name (``""`` when the problem is not tied to one tool).
        where: the path of the offending field, e.g. ``"implementation.url"``.
    """

    def __init__(self, message: str, *, tool: str = "", where: str = "") -> None:
        super().__init__(message)
        self.tool = tool
        self.where = where


class ToolArgumentError(ToolError):
    """The model called a tool with arguments that do not match its schema.

    Attributes:
        tool: the tool's name.
        argument: the offending argument's path (``"point.x"``, ``"items[2]"``), or ``""``
            when the arguments as a whole were wrong.
    """

    def __init__(self, message: str, *, tool: str, argument: str) -> None:
        super().__init__(message)
        self.tool = tool
        self.argument = argument


class ArgumentProblem(ToolError):
    """Raised by the JSON validator (:mod:`vega_trio.tools._validate`); a tool turns it into
    :class:`ToolArgumentError` with its own name (the validator doesn't know which tool it
    serves), the HTTP API into a 422 naming the field.

    Args:
        argument: path of the offending argument.
        problem: what is wrong, phrased for the model (``"argument 'n' must be an integer,
            got string 'x'"``).
        kind: what kind of problem, for a surface that words it its own way: ``"type"``,
            ``"missing"``, ``"unknown"``, ``"not_allowed"`` or ``"invalid"``.
        expected: what the value should have been (``"an integer"``).
        value: the offending value (``None`` for a missing one).
        allowed: for an unknown argument, the names allowed next to it.
    """

    def __init__(
        self,
        argument: str,
        problem: str,
        *,
        kind: str = "invalid",
        expected: str = "",
        value: object = None,
        allowed: tuple[str, ...] = (),
    ) -> None:
        super().__init__(problem)
        self.argument = argument
        self.problem = problem
        self.kind = kind
        self.expected = expected
        self.value = value
        self.allowed = allowed


class ToolTimeout(ToolError):
    """A tool ran longer than its ``timeout`` and was cancelled.

    Attributes:
        tool: the tool's name.
        timeout: the limit, in seconds.
    """

    def __init__(self, message: str, *, tool: str, timeout: float) -> None:
        super().__init__(message)
        self.tool = tool
        self.timeout = timeout


class SandboxViolation(ToolError):
    """A path was refused because it is (or resolves to something) outside the sandbox, or it
    cannot be a file name at all (NUL byte, too long).

    Attributes:
        requested: the path as it was asked for.
        resolved: where it led, symbolic links followed (``None`` when it was refused before
            it could be resolved).
        root: the sandbox root.
    """

    def __init__(self, message: str, *, requested: str, resolved: str | None, root: str) -> None:
        super().__init__(message)
        self.requested = requested
        self.resolved = resolved
        self.root = root


class HttpToolError(ToolError):
    """An HTTP tool's request failed: the server answered with a non-2xx status, could not be
    reached, or the host is not allowed. The model sees the message as the tool's error result.

    Attributes:
        tool: the tool's name.
        status_code: the HTTP status, when the server answered.
        body_excerpt: the start of the response body (decoded text), when there was one.
    """

    def __init__(
        self, message: str, *, tool: str, status_code: int | None = None, body_excerpt: str = ""
    ) -> None:
        super().__init__(message)
        self.tool = tool
        self.status_code = status_code
        self.body_excerpt = body_excerpt


class HostNotAllowed(HttpToolError):
    """An HTTP tool's request (or a redirect) was refused before any connection was made: its
    host is outside the tool's ``allowed_hosts``, or it is (or resolves to) a loopback,
    private, link-local, CGNAT, multicast, unspecified, reserved or cloud metadata destination
    that ``allowed_hosts`` does not name.

    Attributes:
        host: the refused host, as in the URL.
        address: the refused address (the host itself or what it resolved to), or ``None``
            when the host was refused by name.
        reason: what the refused destination is (``"a loopback address (127.0.0.0/8)"``), or
            ``""`` when the host is simply not in ``allowed_hosts``.
    """

    def __init__(
        self, message: str, *, tool: str, host: str, address: str | None = None, reason: str = ""
    ) -> None:
        super().__init__(message, tool=tool)
        self.host = host
        self.address = address
        self.reason = reason


class ExecToolError(ToolError):
    """An exec tool's command could not be started or exited with a non-zero status.

    Attributes:
        tool: the tool's name.
        exit_code: the command's exit status (negative: killed by that signal), or ``None``
            when it did not start.
        output: what the command wrote to stdout and stderr (capped).
    """

    def __init__(
        self, message: str, *, tool: str, exit_code: int | None = None, output: str = ""
    ) -> None:
        super().__init__(message)
        self.tool = tool
        self.exit_code = exit_code
        self.output = output


class MissingEnvironmentVariable(ToolError):
    """A ``${NAME}`` the tool reads when it runs is not set (and has no ``:-default``).

    Attributes:
        tool: the tool's name.
        variable: the environment variable's name.
    """

    def __init__(self, message: str, *, tool: str, variable: str) -> None:
        super().__init__(message)
        self.tool = tool
        self.variable = variable


class MCPServerError(ToolError):
    """Something went wrong with an MCP server.

    Attributes:
        server: the server's configured name.
    """

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class MCPConfigError(MCPServerError, ValueError):
    """A server's configuration can't be used: a ``${VAR}`` without a value, a name that
    can't prefix tool names, a transport without its command or URL."""


class MCPServerUnavailable(MCPServerError):
    """The server is not connected (or the connection was lost during the call).

    Calls fail with this at once instead of waiting for a reconnect; they work again once
    the server is back (see :meth:`MCPConnection.wait_connected`).

    Attributes:
        status: the connection status when the call failed.
        last_error: what went wrong with the connection last, if anything.
    """

    def __init__(self, message: str, *, server: str, status: str, last_error: str | None) -> None:
        super().__init__(message, server=server)
        self.status = status
        self.last_error = last_error


class MCPToolError(MCPServerError):
    """The server ran the tool and reported a failure (``isError``), or refused the request
    with a JSON-RPC error (unknown tool, invalid arguments, ...).

    Attributes:
        tool: the tool's name on the server.
        code: the JSON-RPC error code, or ``None`` for a tool result with ``isError``.
    """

    def __init__(self, message: str, *, server: str, tool: str, code: int | None = None) -> None:
        super().__init__(message, server=server)
        self.tool = tool
        self.code = code


class DelegationRefused(ToolError):
    """A ``delegate`` call named an agent outside the caller's team (the model sees it)."""


# -- skills, the DSL and the CLI ---------------------------------------------------------


class SkillError(VegaError):
    """A skill file (or a set of skills) is invalid: bad front matter, a bad trigger,
    a duplicate name, an unknown tool.

    Attributes:
        path: the file the problem is in, when there is one.
        line: the 1-based line in that file, when it is known.
        errors: for a loader that found several problems, each of them (else empty).
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        line: int | None = None,
        errors: Iterable[SkillError] = (),
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.errors: tuple[SkillError, ...] = tuple(errors)


class DSLError(VegaError):
    """A ``.vega.yaml`` document is malformed or invalid; nothing of it has run.

    The message lists every error, one per line, in file order
    (``file:line:col: error: path: message (hint)``).

    Attributes:
        diagnostics: all the errors (never warnings), in file order.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        count = len(self.diagnostics)
        noun = "error" if count == 1 else "errors"
        lines = [f"{count} {noun} in the document:"] if count > 1 else []
        lines.extend(str(d) for d in self.diagnostics)
        super().__init__("\n".join(lines) if lines else "invalid document")


class TemplateError(VegaError):
    """A template or condition is malformed (found when it is parsed), or could not be
    rendered (an undefined variable, found when it is rendered).

    The message says what is wrong, shows the text with a caret under the place, and says
    what to do. The parts are also attributes, so that the DSL validator can put them next
    to the file, line and column of the YAML value the text came from.

    Attributes:
        summary: what is wrong, in one line (``"unknown filter 'uper'"``).
        hint: what to do about it (``"did you mean 'upper'? ..."``); may be empty.
        text: the whole template or condition text.
        position: the 0-based offset in ``text`` of the offending character (for a
            one-line text, its column).
        where: the label the caller gave (``"workflows.report.steps[1]"``), or ``None``.
        variable: for an undefined variable, its dotted path as written (``"user.name"``);
            otherwise ``None``.
    """

    def __init__(
        self,
        summary: str,
        *,
        text: str,
        position: int,
        hint: str = "",
        where: str | None = None,
        variable: str | None = None,
    ) -> None:
        self.summary = summary
        self.hint = hint
        self.text = text
        self.position = max(0, min(position, len(text)))
        self.where = where
        self.variable = variable
        super().__init__(self._compose())

    @property
    def line(self) -> int:
        """The 1-based line of :attr:`position` within :attr:`text`."""
        return self.text.count("\n", 0, self.position) + 1

    @property
    def column(self) -> int:
        """The 1-based column of :attr:`position` within its line."""
        return self.position - (self.text.rfind("\n", 0, self.position) + 1) + 1

    def _compose(self) -> str:
        head = f"in {self.where}: {self.summary}" if self.where else self.summary
        excerpt, caret = _excerpt(self.text, self.position)
        lines = [head, f"    {excerpt}", f"    {' ' * caret}^"]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


# An excerpt shows at most this many characters of the offending line around the caret.
_EXCERPT_WIDTH = 80
# Tabs and line breaks would move the caret away from the character it points at.
_FLATTEN = str.maketrans({"\t": " ", "\r": " ", "\v": " ", "\f": " "})


def _excerpt(text: str, position: int) -> tuple[str, int]:
    """The line of ``text`` that holds ``position`` (cut to a window around it when it is
    long) and the caret's column in what is returned."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    if end < 0:
        end = len(text)
    line = text[start:end].translate(_FLATTEN)
    column = position - start
    if len(line) <= _EXCERPT_WIDTH:
        return line, column
    left = max(0, min(column - _EXCERPT_WIDTH // 2, len(line) - _EXCERPT_WIDTH))
    window = line[left : left + _EXCERPT_WIDTH]
    prefix = "…" if left > 0 else ""
    suffix = "…" if left + _EXCERPT_WIDTH < len(line) else ""
    return f"{prefix}{window}{suffix}", column - left + len(prefix)


class DurationError(VegaError, ValueError):
    """A duration (``timeout: 30s``) could not be read.

    Attributes:
        value: the value that was given.
    """

    def __init__(self, message: str, *, value: object) -> None:
        super().__init__(message)
        self.value = value


class InputError(VegaError, ValueError):
    """One input is missing or has a value its declaration refuses.

    Attributes:
        name: the input's name.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class WorkflowError(VegaError):
    """A workflow run failed.

    The message says where (the file position when known, and the step path such as
    ``workflows.report.steps[1]``), which agent, and what went wrong.

    Attributes:
        workflow: the workflow whose step failed (a sub-workflow's name, if it was one).
        path: the failing step's path (``workflows.report.steps[1].then[0]``), or the
            workflow's own path for errors that belong to no step.
        cause: the error behind the failure (an :class:`~vega_trio.LLMError`, a
            :class:`~vega_trio.dsl.TemplateError`, a :class:`StepTimeout`, ...), or
            ``None``.
        error_class: ``cause``'s class: an LLM error class (``rate_limit``,
            ``budget_exceeded``, ...), ``timeout`` for a step timeout, or the snake-case
            exception name (``template_error``); ``workflow_error`` without a cause.
    """

    def __init__(
        self,
        message: str,
        *,
        workflow: str,
        path: str,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.workflow = workflow
        self.path = path
        self.cause = cause
        self.error_class = step_error_class(cause) if cause is not None else "workflow_error"


class WorkflowInputError(WorkflowError):
    """An input of a workflow is missing or invalid (nothing has run yet).

    Attributes:
        input: the input's name.
    """

    def __init__(self, message: str, *, workflow: str, input: str) -> None:
        super().__init__(message, workflow=workflow, path=f"workflows.{workflow}.inputs.{input}")
        self.input = input


class RunNotResumable(WorkflowError):
    """A workflow run cannot be resumed (:meth:`~vega_trio.dsl.Runner.resume`).

    Attributes:
        run_id: the run asked for.
        reason: ``not_found`` (no run with that id in the store, or no store),
            ``running`` (it is running in this process), ``completed`` (it finished
            successfully: there is nothing to resume) or ``unknown_workflow`` (its
            workflow is not in this document).
    """

    def __init__(self, message: str, *, run_id: str, reason: str, workflow: str = "") -> None:
        super().__init__(message, workflow=workflow, path=f"runs.{run_id}")
        self.run_id = run_id
        self.reason = reason
        self.error_class = f"run_{reason}"


class StepTimeout(VegaError):
    """A step's ``timeout`` elapsed before the agent replied (``error_class``
    ``timeout``)."""


class ReplyFormatError(VegaError):
    """A ``format: json`` step got a reply that is not JSON."""


def step_error_class(exc: BaseException) -> str:
    """The ``error_class`` of a workflow step's failure (what a DSL ``catch:`` sees)."""
    if isinstance(exc, WorkflowError):
        return exc.error_class
    if isinstance(exc, StepTimeout | trio.TooSlowError):
        return "timeout"
    return error_class_of(exc)


class StoreError(VegaError):
    """The durable store (SPEC §12) failed: the message says what, where and what to do.

    Attributes:
        location: the database, redacted (a file path, ``:memory:`` or a URL without its
            password).
    """

    def __init__(self, message: str, *, location: str) -> None:
        super().__init__(message)
        self.location = location


StoreOpenKind: TypeAlias = Literal[
    "corrupt", "foreign", "newer_schema", "read_only", "unreachable", "invalid"
]


class StoreOpenError(StoreError):
    """The store cannot be opened, and nothing was changed: the file is not a database
    (``corrupt``), it is another program's database (``foreign``), its schema is newer
    than this version of vega-trio (``newer_schema``), its path is not writable
    (``read_only``), the server is not reachable (``unreachable``) or the location is
    malformed (``invalid``).

    Attributes:
        kind: one of the words above.
    """

    def __init__(self, message: str, *, location: str, kind: StoreOpenKind) -> None:
        super().__init__(message, location=location)
        self.kind: StoreOpenKind = kind


class StoreClosed(StoreError):
    """The store closed (or its shutdown flush ran out of time) before this write was
    committed: the write was *not* acknowledged, and the caller must not report success."""


class UsageProblem(VegaError):
    """The command line (or a file it names) cannot be used; the message says why and
    what to do. The commands print it on one line and exit with status 2."""


class RequestRejected(VegaError):
    """``vega-trio serve`` refused an HTTP request (bad JSON, a missing token, a hostile
    ``Host``, an invalid field): the server answers it with :attr:`status` and a JSON
    error; it is never raised out of the server.

    Attributes:
        status: the HTTP status (400, 401, 403, 404, 413, 415, 422, ...).
        error_class: the machine-readable kind (``validation_error``, ``unauthorized``).
        fields: for 422: ``[{"path": "message", "error": "..."}]`` (more keys may
            say where, e.g. ``line`` and ``column`` in a YAML text).
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_class: str,
        fields: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_class = error_class
        self.fields = fields
        self.headers = dict(headers or {})


class TelegramError(VegaError):
    """The Telegram Bot API answered a call with an error (or not as the API does): a
    refused token (401), another client polling with the same token or a webhook set
    (409), a rate limit (429, :attr:`retry_after`), an unparsable message (400).

    Attributes:
        method: the Bot API method called (``getUpdates``, ``sendMessage``…).
        error_code: the API's ``error_code`` (the HTTP status); ``None`` when the
            answer was not the API's JSON at all (a proxy's error page).
        description: what the API said (``Unauthorized``, ``Conflict: terminated by
            other getUpdates request``…).
        retry_after: seconds the API asked to wait (429), else ``None``.
    """

    def __init__(
        self,
        method: str,
        description: str,
        *,
        error_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        code = f" ({error_code})" if error_code is not None else ""
        super().__init__(f"Telegram {method} failed{code}: {description}")
        self.method = method
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
