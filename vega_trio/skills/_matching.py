"""A set of uniquely named skills, and which of them a message calls for."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Iterator, Sequence

import attrs

from ._model import Skill, SkillError, TriggerType

__all__ = ["DEFAULT_MAX_ACTIVE", "PATTERN_SCORE", "SkillMatch", "SkillSet", "check_max_active"]

DEFAULT_MAX_ACTIVE = 3
"""How many skills are active at once unless told otherwise (SPEC §5.5)."""

PATTERN_SCORE = 2
"""Score of a matching ``pattern`` trigger; a keyword scores its number of words."""


def check_max_active(max_active: int) -> int:
    """Return ``max_active`` if it is a whole number >= 0, else raise ``ValueError``."""
    if isinstance(max_active, bool) or not isinstance(max_active, int) or max_active < 0:
        raise ValueError(
            f"max_active must be a whole number >= 0 (0 turns skills off), got {max_active!r}"
        )
    return max_active


@attrs.frozen(kw_only=True)
class SkillMatch:
    """Why a skill fits a message.

    Attributes:
        skill: the skill.
        score: keyword hits (each distinct keyword counts its number of words, so
            ``"pull request"`` scores 2) plus :data:`PATTERN_SCORE` per matching pattern
            trigger.
        always: it has an ``always`` trigger (such skills rank before all others).
        hits: what fired, for people: ``"always"``, ``"keyword 'PR'"``,
            ``"pattern 'review my code'"``.
    """

    skill: Skill
    score: int
    always: bool
    hits: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[bool, int, str]:
        """Always-skills first, then higher scores, then names A→Z."""
        return (not self.always, -self.score, self.skill.name)


def _score(skill: Skill, message: str) -> SkillMatch | None:
    always = False
    score = 0
    hits: list[str] = []
    seen: set[str] = set()
    for trigger in skill.triggers:
        fired = trigger.hits(message)
        if not fired:
            continue
        if trigger.type is TriggerType.ALWAYS:
            always = True
        elif trigger.type is TriggerType.PATTERN:
            score += PATTERN_SCORE
            hits.append(f"pattern {fired[0]!r}")
        else:
            for keyword in fired:
                folded = keyword.casefold()
                if folded not in seen:  # the same keyword in two triggers counts once
                    seen.add(folded)
                    score += len(keyword.split())
                    hits.append(f"keyword {keyword!r}")
    if not always and score == 0:
        return None
    return SkillMatch(
        skill=skill, score=score, always=always, hits=(("always",) if always else ()) + tuple(hits)
    )


class SkillSet:
    """Skills with unique names, in the order given (a loader gives them sorted by path).

    Iterating yields the :class:`Skill` objects; ``name in skills`` and ``len`` work on
    names. Immutable: :meth:`filter` returns a new set.

    Raises:
        SkillError: two skills share a name (the message names both files).
    """

    __slots__ = ("_skills",)

    def __init__(self, skills: Iterable[Skill] = ()) -> None:
        by_name: dict[str, Skill] = {}
        for skill in skills:
            if not isinstance(skill, Skill):
                raise TypeError(f"a SkillSet holds Skill objects, not {type(skill).__name__}")
            other = by_name.get(skill.name)
            if other is not None:
                raise SkillError(
                    f"two skills are named {skill.name!r}: {other.where} and {skill.where}; "
                    "skill names must be unique — rename one, or drop one of the files "
                    "or directories",
                    path=skill.path,
                )
            by_name[skill.name] = skill
        self._skills = by_name

    def __repr__(self) -> str:
        return f"SkillSet({list(self._skills)!r})"

    def __len__(self) -> int:
        return len(self._skills)

    def __iter__(self) -> Iterator[Skill]:
        return iter(tuple(self._skills.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._skills

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SkillSet):
            return NotImplemented
        return list(self._skills.values()) == list(other._skills.values())

    __hash__ = None  # type: ignore[assignment]

    @property
    def names(self) -> tuple[str, ...]:
        """The skill names, in order."""
        return tuple(self._skills)

    def get(self, name: str) -> Skill | None:
        """The skill called ``name``, or ``None``."""
        return self._skills.get(name)

    def __getitem__(self, name: str) -> Skill:
        skill = self._skills.get(name)
        if skill is None:
            raise KeyError(f"no skill named {name!r}{_hint(name, self._skills)}")
        return skill

    def filter(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> SkillSet:
        """The skills whose names match an ``include`` glob (all, when ``include`` is
        empty) and no ``exclude`` glob (shell-style: ``security-*``, ``code-?``).

        Raises:
            SkillError: an ``include`` entry without glob characters names no skill
                (a typo would otherwise silently drop the skill).
        """
        include, exclude = _globs("include", include), _globs("exclude", exclude)
        for name in include:
            if not _is_glob(name) and name not in self._skills:
                raise SkillError(
                    f"skills include {name!r}, but no loaded skill has that name"
                    f"{_hint(name, self._skills)}; fix the name or add the skill's directory"
                )
        return SkillSet(
            skill
            for skill in self._skills.values()
            if (not include or any(fnmatch.fnmatchcase(skill.name, p) for p in include))
            and not any(fnmatch.fnmatchcase(skill.name, p) for p in exclude)
        )

    def rank(self, message: str) -> tuple[SkillMatch, ...]:
        """Every skill ``message`` calls for, best first: skills with an ``always``
        trigger, then by score (high first), then by name — a deterministic order."""
        matches = [m for skill in self._skills.values() if (m := _score(skill, message))]
        return tuple(sorted(matches, key=lambda m: m.sort_key))

    def match(self, message: str, *, max_active: int = DEFAULT_MAX_ACTIVE) -> tuple[Skill, ...]:
        """The (at most ``max_active``) best-matching skills for ``message``, best first.

        Raises:
            ValueError: ``max_active`` is not a whole number >= 0.
        """
        limit = check_max_active(max_active)
        return tuple(m.skill for m in self.rank(message)[:limit])


def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")


def _globs(label: str, value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"skills {label} must be a list of names or globs, not one string")
    for item in value:
        if not isinstance(item, str) or not item:
            raise TypeError(f"skills {label} entries must be non-empty strings, got {item!r}")
    return tuple(value)


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
