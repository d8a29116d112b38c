"""vega-trio: fault-tolerant AI agent orchestration on Trio."""

from __future__ import annotations

from ._errors import (
    DuplicateTool,
    ErrorClass,
    LLMError,
    MaxIterationsExceeded,
    NameTaken,
    OrchestratorClosed,
    ProcessError,
    ProcessExited,
    ProcessNotFound,
    ProcessNotRunning,
    RequestCancelled,
    RequestError,
    SendTimeout,
    TooManyProcesses,
    ToolError,
    ToolNotFound,
    ToolSchemaError,
    VegaError,
)
from ._version import __version__

__all__ = [
    "DuplicateTool",
    "ErrorClass",
    "LLMError",
    "MaxIterationsExceeded",
    "NameTaken",
    "OrchestratorClosed",
    "ProcessError",
    "ProcessExited",
    "ProcessNotFound",
    "ProcessNotRunning",
    "RequestCancelled",
    "RequestError",
    "SendTimeout",
    "TooManyProcesses",
    "ToolError",
    "ToolNotFound",
    "ToolSchemaError",
    "VegaError",
    "__version__",
]
