"""What a skill is: a named block of instructions and the triggers that activate it."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from .._errors import SkillError

__all__ = ["Skill", "SkillError", "SkillTrigger", "TriggerType", "keyword_regex"]


class TriggerType(enum.StrEnum):
    """How a :class:`SkillTrigger` decides that a message calls for its skill."""

    KEYWORD = "keyword"
    """One of its keywords appears in the message as a whole word or phrase."""
    PATTERN = "pattern"
    """Its regular expression matches somewhere in the message."""
    ALWAYS = "always"
    """Every message."""


def keyword_regex(keyword: str) -> re.Pattern[str]:
    """The regex that finds ``keyword`` as a whole word (or phrase), case-insensitively.

    Words of a phrase may be separated by any whitespace; the keyword may not touch a
    letter, digit or underscore on either side, so ``"PR"`` finds ``"open a PR."`` but
    not ``"improve"``.

    Raises:
        ValueError: the keyword is empty or only whitespace.
    """
    words = keyword.split()
    if not words:
        raise ValueError("a keyword must have at least one non-space character")
    body = r"\s+".join(re.escape(word) for word in words)
    # NOTE: lookarounds instead of \b: \b between two non-word characters (``C++``
    # followed by a space) is *not* a boundary, so \b would never match such keywords.
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def _keywords(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("SkillTrigger keywords must be a list of strings, not one string")
    return tuple(" ".join(str(k).split()) for k in value)


def _pattern(value: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if value is None or isinstance(value, re.Pattern):
        return value
    return re.compile(value, re.IGNORECASE)


@attrs.frozen(kw_only=True)
class SkillTrigger:
    """One way a skill becomes active for a message.

    Build them with :meth:`keyword`, :meth:`regex` and :meth:`always`, or from a
    skill file's ``triggers:`` list.

    Attributes:
        type: ``keyword``, ``pattern`` or ``always``.
        keywords: for ``keyword`` triggers: words or phrases, matched whole and
            case-insensitively (whitespace inside a phrase is normalised).
        pattern: for ``pattern`` triggers: the compiled regex (a string given here is
            compiled case-insensitively; write ``(?-i:...)`` for a case-sensitive part).
    """

    type: TriggerType = attrs.field(converter=TriggerType)
    keywords: tuple[str, ...] = attrs.field(default=(), converter=_keywords)
    pattern: re.Pattern[str] | None = attrs.field(default=None, converter=_pattern)
    _keyword_regexes: tuple[re.Pattern[str], ...] = attrs.field(
        init=False, eq=False, hash=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if self.type is TriggerType.KEYWORD:
            if not self.keywords:
                raise ValueError("a keyword trigger needs at least one keyword")
            if not all(self.keywords):
                raise ValueError("a keyword trigger's keywords must not be empty")
        elif self.keywords:
            raise ValueError(f"a {self.type} trigger takes no keywords")
        if self.type is TriggerType.PATTERN and self.pattern is None:
            raise ValueError("a pattern trigger needs a pattern")
        if self.type is not TriggerType.PATTERN and self.pattern is not None:
            raise ValueError(f"a {self.type} trigger takes no pattern")
        object.__setattr__(self, "_keyword_regexes", tuple(keyword_regex(k) for k in self.keywords))

    @classmethod
    def keyword(cls, *keywords: str) -> SkillTrigger:
        """A trigger for messages containing any of ``keywords`` (whole words/phrases)."""
        return cls(type=TriggerType.KEYWORD, keywords=keywords)

    @classmethod
    def regex(cls, pattern: str | re.Pattern[str]) -> SkillTrigger:
        """A trigger for messages ``pattern`` matches (a string compiles case-insensitively)."""
        return cls(type=TriggerType.PATTERN, pattern=pattern)

    @classmethod
    def always(cls) -> SkillTrigger:
        """A trigger for every message."""
        return cls(type=TriggerType.ALWAYS)

    def hits(self, message: str) -> tuple[str, ...]:
        """What in ``message`` fires this trigger, for scoring and explanations:
        the matched keywords (each once, in declaration order), the pattern's first
        match, or ``"always"``; empty when it does not fire."""
        if self.type is TriggerType.ALWAYS:
            return ("always",)
        if self.type is TriggerType.PATTERN:
            assert self.pattern is not None
            found = self.pattern.search(message)
            return () if found is None else (found.group(0),)
        return tuple(
            keyword
            for keyword, regex in zip(self.keywords, self._keyword_regexes, strict=True)
            if regex.search(message)
        )

    def to_dict(self) -> dict[str, Any]:
        """The trigger as it is written in a skill file's front matter."""
        if self.type is TriggerType.KEYWORD:
            return {"type": "keyword", "keywords": list(self.keywords)}
        if self.type is TriggerType.PATTERN:
            assert self.pattern is not None
            return {"type": "pattern", "pattern": self.pattern.pattern}
        return {"type": "always"}


def _check_name(_instance: Any, _attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Skill.name must be a non-empty string, got {value!r}")
    if value != value.strip() or "\n" in value:
        raise ValueError(f"Skill.name must be one line without surrounding spaces, got {value!r}")


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"expected a list of strings, not the string {value!r}")
    return tuple(value)


def _triggers(value: Iterable[SkillTrigger]) -> tuple[SkillTrigger, ...]:
    triggers = tuple(value)
    for trigger in triggers:
        if not isinstance(trigger, SkillTrigger):
            raise TypeError(
                f"Skill.triggers holds SkillTrigger objects, not {type(trigger).__name__}; "
                "build them with SkillTrigger.keyword(...), .regex(...) or .always()"
            )
    return triggers


@attrs.frozen(kw_only=True)
class Skill:
    """A skill: instructions injected into an agent's system prompt while the
    current message calls for them, and tools that become available meanwhile.

    Usually parsed from a ``*.skill.md`` / ``SKILL.md`` file (see
    :func:`~vega_trio.skills.parse_skill`), but plain construction works too.

    Attributes:
        name: unique within a :class:`~vega_trio.skills.SkillSet`; include/exclude
            globs match it.
        description: one line shown with the instructions.
        instructions: the Markdown body of the skill file.
        tags: free labels (for people and for listing skills).
        tools: names (or globs) of tools exposed while the skill is active.
        triggers: what activates it; a skill without triggers is never activated
            automatically.
        path: the file it came from, if any (not part of equality).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = ""
    instructions: str = ""
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    tools: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    triggers: tuple[SkillTrigger, ...] = attrs.field(default=(), converter=_triggers)
    path: Path | None = attrs.field(default=None, eq=False)

    @property
    def where(self) -> str:
        """Where the skill is defined, for messages: its file, or ``<skill NAME>``."""
        return str(self.path) if self.path is not None else f"<skill {self.name!r}>"
