"""Skills: Markdown instructions injected into an agent's system prompt when the
current message calls for them (SPEC §5.5).

A skill file (``*.skill.md`` or ``SKILL.md``) has YAML front matter (``name``,
``description``, ``tags``, ``tools``, ``triggers``) and a Markdown body (the
instructions). :func:`load_skills` reads them from directories; :class:`SkillsPrompt`
wraps an agent's system prompt so the best-matching skills are added under
``# Active Skills``::

    skills = load_skills(["./skills", "~/.vega/skills"], exclude=["deprecated-*"])
    agent = Agent(name="reviewer", system=SkillsPrompt("You review code.", skills))
"""

from __future__ import annotations

from ._loader import SkillLoader, load_skills, load_skills_async
from ._matching import DEFAULT_MAX_ACTIVE, PATTERN_SCORE, SkillMatch, SkillSet
from ._model import Skill, SkillError, SkillTrigger, TriggerType, keyword_regex
from ._parser import is_skill_file, parse_skill, read_skill
from ._prompt import (
    ACTIVE_SKILLS_HEADING,
    BasePrompt,
    SkillsPrompt,
    current_message_text,
    render_skills_prompt,
    skill_tool_names,
)

__all__ = [
    "ACTIVE_SKILLS_HEADING",
    "DEFAULT_MAX_ACTIVE",
    "PATTERN_SCORE",
    "BasePrompt",
    "Skill",
    "SkillError",
    "SkillLoader",
    "SkillMatch",
    "SkillSet",
    "SkillTrigger",
    "SkillsPrompt",
    "TriggerType",
    "current_message_text",
    "is_skill_file",
    "keyword_regex",
    "load_skills",
    "load_skills_async",
    "parse_skill",
    "read_skill",
    "render_skills_prompt",
    "skill_tool_names",
]
