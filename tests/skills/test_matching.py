"""Which skills a message activates: whole-word keywords, patterns, always, ranking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega_trio.skills import (
    DEFAULT_MAX_ACTIVE,
    Skill,
    SkillError,
    SkillSet,
    SkillTrigger,
    keyword_regex,
)

KEYWORD_TABLE = [
    # whole words only
    ("PR", "open a PR", True),
    ("PR", "please improve this", False),
    ("PR", "PRs are welcome", False),
    ("PR", "the PR_NUMBER is 3", False),
    ("PR", "PR2 is out", False),
    # case-insensitive, both ways
    ("PR", "can you look at my pr?", True),
    ("review", "REVIEW THIS", True),
    ("Review", "a quick review", True),
    # punctuation around the word
    ("PR", "(PR)", True),
    ("PR", "PR, then merge", True),
    ("PR", "the PR.", True),
    ("PR", '"PR"', True),
    ("PR", "see-PR-123", True),
    ("review", "review!", True),
    # multi-word phrases, any whitespace between the words
    ("pull request", "open a pull request now", True),
    ("pull request", "open a Pull\n  Request", True),
    ("pull request", "pull requests are queued", False),
    ("pull request", "pull the request", False),
    ("pull request", "pullrequest", False),
    # keywords that start or end with punctuation
    ("C++", "I write C++ daily", True),
    ("C++", "I write C++, daily", True),
    ("C++", "I write C+ daily", False),
    ("on-call", "who is on-call?", True),
    ("on-call", "who is on call?", False),
    ("5xx", "we see 5xx errors", True),
    ("5xx", "we see 15xx errors", False),
    # regex metacharacters are literal in keywords
    ("a.b", "a.b", True),
    ("a.b", "axb", False),
    # non-ASCII words
    ("café", "un CAFÉ noir", True),
    ("café", "cafés", False),
]


@pytest.mark.parametrize(("keyword", "message", "expected"), KEYWORD_TABLE)
def test_keyword_matching_table(keyword: str, message: str, expected: bool) -> None:
    """Keywords match whole words and phrases, case-insensitively, next to punctuation."""
    trigger = SkillTrigger.keyword(keyword)
    assert bool(trigger.hits(message)) is expected


_WORD_CHARS = st.text(
    st.characters(codec="utf-8", categories=("Lu", "Ll", "Lt", "Lo", "Nd")), min_size=1
).filter(lambda s: re.fullmatch(r"\w+", s) is not None)


@given(keyword=_WORD_CHARS, prefix=st.text("abcXYZ019_é", max_size=3), data=st.data())
def test_keyword_never_matches_inside_a_longer_word(
    keyword: str, prefix: str, data: st.DataObject
) -> None:
    """A keyword embedded in a longer word (letters/digits on either side) never matches."""
    suffix = data.draw(st.text("abcXYZ019_é", min_size=0 if prefix else 1, max_size=3))
    message = f"({prefix}{keyword}{suffix}) !"
    assert keyword_regex(keyword).search(message) is None


@given(
    keyword=st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1),
    left=st.sampled_from(["", " ", "(", '"', "-", "\n", "¡"]),
    right=st.sampled_from(["", " ", ")", ".", "?", ",", "!\n"]),
)
def test_keyword_always_matches_as_a_whole_word(keyword: str, left: str, right: str) -> None:
    """A keyword standing alone (any case, any punctuation around it) always matches."""
    message = f"say {left}{keyword.swapcase()}{right} ok"
    assert keyword_regex(keyword).search(message) is not None


def test_keyword_regex_rejects_blank_keywords() -> None:
    """An empty keyword is an error, not a pattern matching everywhere."""
    with pytest.raises(ValueError, match="at least one non-space character"):
        keyword_regex("   ")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("please review my code", True),
        ("Review THIS changes", True),
        ("review your code", False),
        ("reviewing my code", False),
    ],
)
def test_pattern_triggers_search_case_insensitively(message: str, expected: bool) -> None:
    """A pattern trigger fires when its regex (compiled case-insensitively) is found."""
    trigger = SkillTrigger.regex(r"\breview (this|my) (code|changes)")
    assert bool(trigger.hits(message)) is expected


def test_pattern_can_opt_out_of_case_insensitivity() -> None:
    """An inline (?-i:...) group keeps a part of the pattern case-sensitive."""
    trigger = SkillTrigger.regex(r"(?-i:JIRA)-\d+")
    assert trigger.hits("see JIRA-12") == ("JIRA-12",)
    assert trigger.hits("see jira-12") == ()


def test_always_trigger_fires_for_every_message() -> None:
    """An always trigger fires even for an empty message."""
    assert SkillTrigger.always().hits("") == ("always",)


def _skill(name: str, *triggers: SkillTrigger) -> Skill:
    return Skill(name=name, triggers=triggers)


SKILLS = SkillSet(
    [
        _skill("code-review", SkillTrigger.keyword("review", "PR", "pull request")),
        _skill("security", SkillTrigger.keyword("security", "CVE"), SkillTrigger.regex(r"inject")),
        _skill("style", SkillTrigger.always()),
        _skill("git", SkillTrigger.keyword("git", "PR")),
        _skill("silent"),  # no triggers: never activated automatically
        _skill("deploy", SkillTrigger.keyword("deploy")),
    ]
)


def test_rank_orders_always_then_score_then_name() -> None:
    """Always-skills first, then higher scores, then names A-Z; non-matching skills are left out."""
    ranked = SKILLS.rank("Review this PR for SQL injection, then git push")
    assert [(m.skill.name, m.score, m.always) for m in ranked] == [
        ("style", 0, True),
        ("code-review", 2, False),  # 'review' + 'PR'
        ("git", 2, False),  # 'git' + 'PR'; tie with code-review broken by name
        ("security", 2, False),  # a pattern scores 2
    ]
    assert ranked[1].hits == ("keyword 'review'", "keyword 'PR'")
    assert ranked[3].hits == ("pattern 'inject'",)
    assert ranked[0].hits == ("always",)


def test_phrases_score_by_their_number_of_words() -> None:
    """A matched phrase scores its word count, so a specific phrase outranks a single word."""
    ranked = SKILLS.rank("a pull request about git")
    assert [(m.skill.name, m.score) for m in ranked] == [
        ("style", 0),
        ("code-review", 2),
        ("git", 1),
    ]


def test_the_same_keyword_in_two_triggers_counts_once() -> None:
    """Repeating a keyword across triggers does not inflate a skill's score."""
    skill = _skill("x", SkillTrigger.keyword("PR"), SkillTrigger.keyword("pr"))
    (match,) = SkillSet([skill]).rank("my PR")
    assert match.score == 1 and match.hits == ("keyword 'PR'",)


def test_match_is_capped_at_max_active() -> None:
    """match() returns at most max_active skills (default 3), best first."""
    message = "Review this PR for SQL injection, then git push"
    assert DEFAULT_MAX_ACTIVE == 3
    assert [s.name for s in SKILLS.match(message)] == ["style", "code-review", "git"]
    assert [s.name for s in SKILLS.match(message, max_active=1)] == ["style"]
    assert [s.name for s in SKILLS.match(message, max_active=10)] == [
        "style",
        "code-review",
        "git",
        "security",
    ]
    assert SKILLS.match(message, max_active=0) == ()


def test_only_always_skills_match_an_unrelated_message() -> None:
    """A message no trigger fires on gets only the always-skills."""
    assert [s.name for s in SKILLS.match("please improve the docs")] == ["style"]


def test_ties_are_broken_by_name_regardless_of_load_order() -> None:
    """Equal scores come out in name order whatever order the skills were given in."""
    skills = [_skill(n, SkillTrigger.keyword("deploy")) for n in ("zeta", "alpha", "mid")]
    for order in (skills, skills[::-1]):
        assert [s.name for s in SkillSet(order).match("deploy it")] == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_max_active_must_be_a_whole_number(bad: object) -> None:
    """A negative, fractional, boolean or string max_active is rejected with a clear message."""
    with pytest.raises(ValueError, match=r"max_active must be a whole number >= 0"):
        SKILLS.match("hi", max_active=bad)  # type: ignore[arg-type]


def test_duplicate_names_in_a_set_are_an_error() -> None:
    """Two skills with one name cannot form a set."""
    with pytest.raises(SkillError, match=r"two skills are named 'a'.*rename one"):
        SkillSet([Skill(name="a"), Skill(name="a", description="other")])


def test_skill_set_lookup_and_filter() -> None:
    """A set looks skills up by name and filters by include/exclude globs."""
    assert SKILLS.names == ("code-review", "security", "style", "git", "silent", "deploy")
    assert "git" in SKILLS and "nope" not in SKILLS and len(SKILLS) == 6
    assert SKILLS["git"].name == "git" and SKILLS.get("nope") is None
    with pytest.raises(KeyError, match="did you mean 'deploy'"):
        SKILLS["deplyo"]
    assert SKILLS.filter(include=["s*"]).names == ("security", "style", "silent")
    assert SKILLS.filter(include=["s*"], exclude=["st*"]).names == ("security", "silent")
    assert SKILLS.filter(exclude=["code-*", "nothing-matches"]).names == (
        "security",
        "style",
        "git",
        "silent",
        "deploy",
    )
    with pytest.raises(SkillError, match=r"include 'gti', but no loaded skill.*did you mean 'git'"):
        SKILLS.filter(include=["gti"])
