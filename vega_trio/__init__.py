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
    ToolError,
    ToolNotFound,
    ToolSchemaError,
    TooManyProcesses,
    VegaError,
)
from ._version import __version__
from .agent import Agent, AgentProcess, ChatStream, TextStream
from .llm import LLM, AnthropicLLM, Message, marshal_messages, unmarshal_messages
from .orchestrator import Orchestrator, open_orchestrator
from .runtime import ExitReason, Future, Process, ProcessStatus, current_process
from .tools import Tool, Tools

__all__ = [
    "LLM",
    "Agent",
    "AgentProcess",
    "AnthropicLLM",
    "ChatStream",
    "ExitReason",
    "Future",
    "Message",
    "Orchestrator",
    "Process",
    "ProcessStatus",
    "TextStream",
    "Tool",
    "Tools",
    "current_process",
    "marshal_messages",
    "open_orchestrator",
    "unmarshal_messages",
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
