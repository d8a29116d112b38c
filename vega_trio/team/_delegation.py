"""Teams (SPEC §6): delegation to team members and the team's shared blackboard.

An agent with ``team=[...]`` gets a ``delegate(agent, message)`` tool that may reach only
its team. A delegate is a child process of the caller in the spawn tree (one per member
and caller, reused across delegations, so it keeps its conversation); recent turns of the
caller's conversation are forwarded in a delimited block when ``Delegation.context_window``
asks for it. With ``Delegation(blackboard=True)`` the team — the caller and every delegate
below it — shares one blackboard through the ``bb_read``, ``bb_write`` and ``bb_list``
tools. When the caller is streaming, the delegate's text and tool events are forwarded
into the caller's stream with ``agent`` set to the delegate's name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .._errors import DelegationRefused, ToolError
from ..agent._agent import Delegation
from ..runtime import current_process

if TYPE_CHECKING:
    from ..agent import Agent, AgentBehaviour
    from ..llm import Message
    from ..runtime import Process
    from ..tools import Tools

__all__ = [
    "BLACKBOARD_TOOL_NAMES",
    "DELEGATE_TOOL_NAME",
    "MAX_DELEGATION_DEPTH",
    "Delegation",
    "DelegationRefused",
    "ask_child",
    "blackboard_tools",
    "format_context",
    "team_tools",
]

DELEGATE_TOOL_NAME: Final = "delegate"
BLACKBOARD_TOOL_NAMES: Final = ("bb_read", "bb_write", "bb_list")
_MAX_CONTEXT_CHARS: Final = 2000  # per forwarded turn


def format_context(
    messages: Iterable[Message], *, caller: str, window: int, include_roles: Sequence[str]
) -> str:
    """The delimited block of recent turns forwarded to a delegate ("" when none).

    Args:
        messages: the caller's conversation, oldest first.
        caller: the caller's agent name (named in the block's header).
        window: the most recent turns to keep.
        include_roles: the roles to keep.
    """
    if window <= 0:
        return ""
    turns = [m for m in messages if m.role in include_roles and m.text.strip()]
    if not turns:
        return ""
    lines = [f"--- context from {caller} (recent conversation, oldest first) ---"]
    for message in turns[-window:]:
        text = message.text.strip()
        if len(text) > _MAX_CONTEXT_CHARS:
            text = text[:_MAX_CONTEXT_CHARS] + " […]"
        lines.append(f"[{message.role}] {text}")
    lines.append("--- end of context ---")
    return "\n".join(lines)


Spawner = Callable[["Agent", "Process", str, "Sequence[Message]"], Any]
"""``await spawn(member, caller, team_group, history)`` starts a delegate process (with
``history`` as its conversation so far)."""

MAX_DELEGATION_DEPTH: Final = 5
"""How deep in the spawn tree an agent may still ask another (``delegate``,
``send_to_agent``): a chain of agents asking agents stops there instead of looping."""


def team_tools(
    lead: Agent,
    members: Mapping[str, Agent],
    spawn: Spawner,
) -> Tools:
    """The tools an agent with a team gets: ``delegate`` (and the ``bb_*`` tools when
    its :class:`Delegation` has ``blackboard=True``).

    Args:
        lead: the delegating agent.
        members: its team, by agent name.
        spawn: starts a delegate: ``await spawn(member, caller_process, team_group,
            history)`` returns the new :class:`~vega_trio.AgentProcess` (the
            orchestrator's).
    """
    from ..tools import Tool, Tools

    delegation = lead.delegation or Delegation()
    roster = "\n".join(
        f"- {name}: {member.description or 'no description'}" for name, member in members.items()
    )

    async def delegate(arguments: Mapping[str, Any]) -> str:
        return await _delegate(
            lead, delegation, members, spawn, str(arguments["agent"]), str(arguments["message"])
        )

    tools = Tools()
    tools.register(
        Tool(
            name=DELEGATE_TOOL_NAME,
            description=(
                "Hand a task to a member of your team and get their reply. Members:\n"
                f"{roster}\nSay everything they need to know in the message."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "agent": {
                        "type": "string",
                        "enum": list(members),
                        "description": "the team member to ask",
                    },
                    "message": {"type": "string", "description": "the task or question"},
                },
                "required": ["agent", "message"],
                "additionalProperties": False,
            },
            handler=delegate,
        )
    )
    if delegation.blackboard:
        tools = tools.merged(blackboard_tools())
    return tools


async def _delegate(
    lead: Agent,
    delegation: Delegation,
    members: Mapping[str, Agent],
    spawn: Spawner,
    name: str,
    message: str,
) -> str:
    member = members.get(name)
    if member is None:
        raise DelegationRefused(
            f"{name!r} is not in the team of {lead.name!r}; delegate to one of: "
            f"{', '.join(members) or 'nobody (the team is empty)'}"
        )
    caller = current_process()
    behaviour = _behaviour_of(caller)
    if delegation.blackboard and behaviour.team_group is None:
        behaviour.team_group = f"team:{caller.id}"
        caller._runtime.group(behaviour.team_group).join(caller)
    group = (behaviour.team_group or "") if delegation.blackboard else ""
    history = [*caller_history(caller), *_current(behaviour)]
    block = format_context(
        history,
        caller=lead.name,
        window=delegation.context_window,
        include_roles=delegation.include_roles,
    )
    text = f"{block}\n\n{message}" if block else message
    return await ask_child(member, text, spawn, group=group)


async def ask_child(
    member: Agent,
    text: str,
    spawn: Spawner,
    *,
    group: str = "",
    max_depth: int = MAX_DELEGATION_DEPTH,
) -> str:
    """Send ``text`` to the calling process's child running ``member`` and return its
    reply: the one mechanism behind ``delegate`` (teams) and Hermes's
    ``send_to_agent``.

    The child is spawned under the caller on first use (so it shows in the spawn tree,
    its spend rolls up to a ``budget_scope="tree"`` caller and cancelling the caller
    cancels it) and reused afterwards, keeping its conversation. When ``member`` is no
    longer the blueprint the child runs (its definition was updated), the old child
    stops and a new one goes on with its conversation. When the caller is streaming,
    the child's text and tool events are forwarded into the caller's stream with
    ``agent`` set to the member's name.

    Args:
        member: the blueprint to ask (its name keys the child).
        text: the message.
        spawn: starts the child (``await spawn(member, caller, group, history)``).
        group: the team's group (blackboard) the child joins, if any.
        max_depth: the deepest spawn-tree level a caller may ask from; a deeper one is
            refused, which stops loops of agents asking each other.

    Raises:
        DelegationRefused: the caller is ``max_depth`` levels deep already.
        Exception: what the child's send raised (the tool loop shows it to the model).
    """
    from ..agent import AgentProcess
    from ..agent._events import TextDeltaEvent, ToolEndEvent, ToolStartEvent

    caller = current_process()
    behaviour = _behaviour_of(caller)
    if caller.spawn_depth >= max_depth:
        raise DelegationRefused(
            f"{caller.agent_name!r} is {caller.spawn_depth} levels deep in a chain of agents "
            f"asking agents (the limit is {max_depth}), so it may not ask {member.name!r}; "
            "this stops loops between agents: answer with what you have"
        )
    name = member.name
    if behaviour.delegates is None:
        behaviour.delegates = {}
    locks = behaviour.delegate_locks
    if locks is None:
        locks = behaviour.delegate_locks = {}
    lock = locks.setdefault(name, trio.Lock())
    async with lock:  # two tool calls of one turn to one member share one child
        child = behaviour.delegates.get(name)
        history: list[Message] = []
        if isinstance(child, AgentProcess) and child.alive and child.agent is not member:
            # NOTE: its definition changed: the old child finishes what it is doing and
            # stops; the new one continues the conversation on the new blueprint.
            history = child.history
            child.stop(f"agent definition {name!r} updated")
            await child.wait()
            child = None
        if child is None or not child.alive:
            child = await spawn(member, caller, group, history)
            behaviour.delegates[name] = child
    assert isinstance(child, AgentProcess)
    events = behaviour.current_events
    if events is None:
        return await child.send(text)
    # The caller is streaming: forward the child's events, named after it.
    async with child.send_stream_rich(text) as stream:
        async for event in stream:
            if events is None or not isinstance(
                event, TextDeltaEvent | ToolStartEvent | ToolEndEvent
            ):
                continue
            try:
                await events.send(attrs.evolve(event, agent=event.agent or name))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                events = None  # the caller's reader left: let the child finish unheard
    if stream.error is not None:
        raise stream.error
    return stream.text


def caller_history(process: Process) -> list[Message]:
    """The caller's committed conversation."""
    return list(getattr(process, "history", []))


def _current(behaviour: AgentBehaviour) -> list[Message]:
    message = behaviour.current_message
    return [message] if message is not None else []


def _behaviour_of(process: Process) -> AgentBehaviour:
    from ..agent import AgentBehaviour

    behaviour = process.behaviour
    if not isinstance(behaviour, AgentBehaviour):
        raise ToolError("team tools only work inside an agent process")
    return behaviour


def _blackboard(process: Process) -> Any:
    behaviour = _behaviour_of(process)
    if behaviour.team_group is None:
        # A lead that has not delegated yet still has its team's board.
        behaviour.team_group = f"team:{process.id}"
        process._runtime.group(behaviour.team_group).join(process)
    return process._runtime.group(behaviour.team_group).blackboard


def blackboard_tools() -> Tools:
    """``bb_read(key)``, ``bb_write(key, value)`` and ``bb_list()`` on the calling
    process's team blackboard (the caller and all its delegates share one)."""
    from ..tools import Tools

    tools = Tools()

    # NOTE: async on purpose (ASYNC124): a sync tool would run in a worker thread.
    async def bb_read(key: str) -> str:  # noqa: ASYNC124
        """Read a value from the team's shared blackboard.

        Args:
            key: the entry to read.
        """
        board = _blackboard(current_process())
        if key not in board:
            keys = ", ".join(board.keys()) or "none yet"
            raise ToolError(f"the blackboard has no entry {key!r}; its keys: {keys}")
        value = board.read(key)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    async def bb_write(key: str, value: str) -> str:  # noqa: ASYNC124
        """Write a value to the team's shared blackboard (replacing any old value).

        Args:
            key: the entry to write.
            value: what to store (text; JSON is fine).
        """
        if not key.strip():
            raise ToolError("bb_write needs a non-empty key")
        _blackboard(current_process()).write(key, value)
        return f"stored {key!r}"

    async def bb_list() -> str:  # noqa: ASYNC124
        """List the keys on the team's shared blackboard."""
        keys = _blackboard(current_process()).keys()
        return json.dumps(keys, ensure_ascii=False)

    for function in (bb_read, bb_write, bb_list):
        tools.register(function)
    return tools
