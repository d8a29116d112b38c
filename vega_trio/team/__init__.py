"""Teams (SPEC §6): ``delegate`` to team members, the team's shared blackboard.

Give an agent ``team=[...]`` (and optionally ``delegation=Delegation(...)``); the
orchestrator adds the tools when it spawns it. See ``docs/teams.md``.
"""

from __future__ import annotations

from ..agent._agent import Delegation
from ._delegation import (
    BLACKBOARD_TOOL_NAMES,
    DELEGATE_TOOL_NAME,
    DelegationRefused,
    blackboard_tools,
    format_context,
    team_tools,
)

__all__ = [
    "BLACKBOARD_TOOL_NAMES",
    "DELEGATE_TOOL_NAME",
    "Delegation",
    "DelegationRefused",
    "blackboard_tools",
    "format_context",
    "team_tools",
]
