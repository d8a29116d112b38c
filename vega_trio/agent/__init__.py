"""Agents: the blueprint, the tool loop that runs inside a process, streaming events
and conversation context management."""

from __future__ import annotations

from ._agent import Agent, Delegation, SystemPrompt
from ._context import ContextManager, SlidingWindowContext, TokenBudgetContext, UnboundedContext
from ._events import (
    ChatEvent,
    DoneEvent,
    ErrorEvent,
    SendMetrics,
    TextDeltaEvent,
    ToolEndEvent,
    ToolStartEvent,
)
from ._loop import AgentBehaviour, ChatRequest, ProcessMetrics, SendResult
from ._process import AgentProcess, ChatStream, TextStream

__all__ = [
    "Delegation",
    "Agent",
    "AgentBehaviour",
    "AgentProcess",
    "ChatEvent",
    "ChatRequest",
    "ChatStream",
    "ContextManager",
    "DoneEvent",
    "ErrorEvent",
    "ProcessMetrics",
    "SendMetrics",
    "SendResult",
    "SlidingWindowContext",
    "SystemPrompt",
    "TextDeltaEvent",
    "TextStream",
    "TokenBudgetContext",
    "ToolEndEvent",
    "ToolStartEvent",
    "UnboundedContext",
]
