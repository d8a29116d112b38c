"""vega-trio: fault-tolerant AI agent orchestration on Trio."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._agents import AgentDefinition, AgentRegistry, AgentSource
from ._config import OrchestratorConfig
from ._errors import (
    AgentExists,
    AgentNotFound,
    ChildFailed,
    ChildNotFound,
    ChildRunning,
    ChildStartFailed,
    DuplicateChild,
    DuplicateTool,
    ErrorClass,
    InputFileError,
    LinkedProcessError,
    LLMError,
    MaxIterationsExceeded,
    MonitorRemoved,
    NameTaken,
    OrchestratorClosed,
    ProcessError,
    ProcessExited,
    ProcessNotFound,
    ProcessNotRunning,
    RequestCancelled,
    RequestError,
    RestartIntensityError,
    SendTimeout,
    SupervisorError,
    SupervisorNotRunning,
    ToolError,
    ToolNotFound,
    ToolSchemaError,
    TooManyProcesses,
    VegaError,
)
from ._lazy import lazy_attributes
from ._meta import add_meta_agents
from ._version import __version__
from .agent import (
    Agent,
    AgentProcess,
    ChatEvent,
    ChatStream,
    DoneEvent,
    ErrorEvent,
    TextDeltaEvent,
    TextStream,
    ToolEndEvent,
    ToolStartEvent,
)
from .llm import LLM, Message, marshal_messages, unmarshal_messages
from .observability import HealthConfig
from .orchestrator import Orchestrator, open_orchestrator, run_orchestrator
from .resilience import (
    Budget,
    BudgetExceeded,
    CircuitBreaker,
    CircuitOpen,
    RateLimit,
    RateLimited,
    RetryPolicy,
)
from .runtime import (
    Backoff,
    ChildSpec,
    Down,
    ExitReason,
    ExitSignal,
    Future,
    Monitor,
    Process,
    ProcessStatus,
    Supervision,
    Supervisor,
    SupervisorSpec,
    current_process,
    open_supervisor,
)
from .tools import Tool, Tools

if TYPE_CHECKING:
    from .llm import AnthropicLLM

# A library logs, the application decides where it goes (no "lastResort" stderr output).
logging.getLogger("vega_trio").addHandler(logging.NullHandler())

__all__ = [
    "Backoff",
    "Budget",
    "BudgetExceeded",
    "CircuitBreaker",
    "CircuitOpen",
    "RateLimit",
    "RateLimited",
    "RetryPolicy",
    "ChildFailed",
    "ChildNotFound",
    "ChildRunning",
    "ChildStartFailed",
    "DuplicateChild",
    "LLM",
    "Agent",
    "AgentProcess",
    "AnthropicLLM",
    "ChatEvent",
    "ChatStream",
    "DoneEvent",
    "ErrorEvent",
    "TextDeltaEvent",
    "ToolEndEvent",
    "ToolStartEvent",
    "Down",
    "ExitReason",
    "ExitSignal",
    "Future",
    "Message",
    "Monitor",
    "Orchestrator",
    "HealthConfig",
    "OrchestratorConfig",
    "Process",
    "ProcessStatus",
    "Supervision",
    "Supervisor",
    "SupervisorSpec",
    "ChildSpec",
    "open_supervisor",
    "TextStream",
    "Tool",
    "Tools",
    "current_process",
    "marshal_messages",
    "open_orchestrator",
    "run_orchestrator",
    "unmarshal_messages",
    "AgentDefinition",
    "AgentExists",
    "AgentNotFound",
    "AgentRegistry",
    "AgentSource",
    "DuplicateTool",
    "ErrorClass",
    "InputFileError",
    "LinkedProcessError",
    "LLMError",
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
    "__version__",
    "add_meta_agents",
]


# NOTE: AnthropicLLM is loaded on first use (the SDK is slow to import).
__getattr__ = lazy_attributes(__name__, {"AnthropicLLM": ".llm"})
