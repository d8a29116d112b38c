"""The Agent: an immutable blueprint that processes are spawned from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

if TYPE_CHECKING:
    from ..llm import LLM
    from ..runtime import Process
    from ..tools import Tool, Tools
    from ._context import ContextManager

__all__ = ["Agent", "SystemPrompt"]

SystemPrompt: TypeAlias = "str | Callable[[], str] | Callable[[Process], str]"


def _check_positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"Agent.{name} must be a positive number, got {value!r}")

    return check


def _check_name(_instance: Any, _attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Agent.name must be a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class Agent:
    """What an agent is: a name, a model, a system prompt, tools and limits.

    Many processes can run from one agent, each with its own conversation.

    Attributes:
        name: the agent's name (events, spawn tree, registry of agents).
        model: the model id sent to the backend; ``None`` uses the orchestrator's
            ``default_model``.
        system: a static string, or a callable returning the prompt (called for every
            LLM request; it may take the calling process as its one argument).
        tools: a :class:`~vega_trio.tools.Tools` registry or a list of functions /
            :class:`~vega_trio.tools.Tool` objects.
        temperature: sent to the model when set.
        max_tokens: the reply-length limit sent to the model.
        max_iterations: LLM rounds allowed per send before
            :class:`~vega_trio.MaxIterationsExceeded`.
        send_timeout: seconds one send may take before :class:`~vega_trio.SendTimeout`.
        tool_timeout: default seconds a tool call may take (a tool's own ``timeout`` wins).
        context: a factory for the conversation's context manager (e.g.
            ``lambda: TokenBudgetContext(50_000)``); default keeps everything.
        llm: a backend for this agent only (overrides the orchestrator's).
        description: what the agent is for (shown to people and to other agents).
    """

    name: str = attrs.field(validator=_check_name)
    model: str | None = None
    system: SystemPrompt = ""
    tools: Tools | Sequence[Callable[..., Any] | Tool] | None = attrs.field(
        default=None, hash=False
    )
    temperature: float | None = None
    max_tokens: int = attrs.field(default=4096, validator=_check_positive("max_tokens"))
    max_iterations: int = attrs.field(default=50, validator=_check_positive("max_iterations"))
    send_timeout: float | None = attrs.field(
        default=None, validator=_check_positive("send_timeout")
    )
    tool_timeout: float | None = attrs.field(
        default=None, validator=_check_positive("tool_timeout")
    )
    context: Callable[[], ContextManager] | None = attrs.field(default=None, hash=False)
    llm: LLM | None = attrs.field(default=None, hash=False)
    description: str = ""
