"""Teams (SPEC §6): ``delegate`` to team members, the team's shared blackboard, and the
meta-agents Mother (the agent architect) and Hermes (the router).

Give an agent ``team=[...]`` (and optionally ``delegation=Delegation(...)``); the
orchestrator adds the tools when it spawns it. See ``docs/teams.md``; the meta-agents
are added with ``vega_trio.add_meta_agents(orch)`` (``docs/meta-agents.md``).
"""

from __future__ import annotations

from ..agent._agent import Delegation
from ._delegation import (
    BLACKBOARD_TOOL_NAMES,
    DELEGATE_TOOL_NAME,
    MAX_DELEGATION_DEPTH,
    DelegationRefused,
    blackboard_tools,
    format_context,
    team_tools,
)
from ._meta import (
    HERMES,
    MOTHER,
    RESERVED_AGENT_NAMES,
    AgentComposer,
    ComposedAgent,
    hermes_agent,
    mother_agent,
)

__all__ = [
    "BLACKBOARD_TOOL_NAMES",
    "DELEGATE_TOOL_NAME",
    "HERMES",
    "MAX_DELEGATION_DEPTH",
    "MOTHER",
    "RESERVED_AGENT_NAMES",
    "AgentComposer",
    "ComposedAgent",
    "Delegation",
    "DelegationRefused",
    "blackboard_tools",
    "format_context",
    "hermes_agent",
    "mother_agent",
    "team_tools",
]
