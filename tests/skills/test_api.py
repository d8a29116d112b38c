"""The public surface of vega_trio.skills."""

from __future__ import annotations

import vega_trio.skills


def test_public_api_is_pinned() -> None:
    """vega_trio.skills exports exactly these names, all importable."""
    assert sorted(vega_trio.skills.__all__) == [
        "ACTIVE_SKILLS_HEADING",
        "BasePrompt",
        "DEFAULT_MAX_ACTIVE",
        "PATTERN_SCORE",
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
    for name in vega_trio.skills.__all__:
        assert getattr(vega_trio.skills, name) is not None
