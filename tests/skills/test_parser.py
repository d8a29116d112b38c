"""Parsing skill files: the valid format and every error, with file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vega_trio import VegaError
from vega_trio.skills import (
    Skill,
    SkillError,
    SkillTrigger,
    TriggerType,
    is_skill_file,
    parse_skill,
    read_skill,
)

CODE_REVIEW = """\
---
name: code-review
description: Expert code review guidance
tags: [code, review]
tools: [read_file, "github__*"]
triggers:
  - type: keyword
    keywords: [review, PR, pull request]
  - type: pattern
    pattern: "review (this|my) (code|changes)"
  - type: always
---
# Code Review Expert

When reviewing code, focus on security.

"""


def test_parses_every_field() -> None:
    """Front matter fields and the Markdown body become a frozen Skill."""
    skill = parse_skill(CODE_REVIEW, path="skills/code-review.skill.md")
    assert skill.name == "code-review"
    assert skill.description == "Expert code review guidance"
    assert skill.tags == ("code", "review")
    assert skill.tools == ("read_file", "github__*")
    assert skill.instructions == "# Code Review Expert\n\nWhen reviewing code, focus on security."
    assert skill.path == Path("skills/code-review.skill.md")
    assert [t.type for t in skill.triggers] == [
        TriggerType.KEYWORD,
        TriggerType.PATTERN,
        TriggerType.ALWAYS,
    ]
    assert skill.triggers[0].keywords == ("review", "PR", "pull request")
    pattern = skill.triggers[1].pattern
    assert pattern is not None and pattern.flags & re.IGNORECASE
    assert pattern.pattern == "review (this|my) (code|changes)"
    with pytest.raises(AttributeError):
        skill.name = "other"  # type: ignore[misc]


def test_minimal_skill_has_defaults() -> None:
    """Only 'name' is required; a BOM, CRLF line ends and '...' as closing fence work."""
    skill = parse_skill("\ufeff---\r\nname: tiny\r\n...\r\nDo it.\r\n")
    assert skill == Skill(name="tiny", instructions="Do it.")
    assert skill.triggers == () and skill.tags == () and skill.tools == ()


def test_trigger_round_trips_to_front_matter_dicts() -> None:
    """Each trigger renders back to the mapping it was written as."""
    skill = parse_skill(CODE_REVIEW)
    assert [t.to_dict() for t in skill.triggers] == [
        {"type": "keyword", "keywords": ["review", "PR", "pull request"]},
        {"type": "pattern", "pattern": "review (this|my) (code|changes)"},
        {"type": "always"},
    ]


def test_read_skill_reads_the_file(tmp_path: Path) -> None:
    """read_skill parses a file from disk and remembers where it came from."""
    path = tmp_path / "code-review.skill.md"
    path.write_text(CODE_REVIEW, encoding="utf-8")
    skill = read_skill(path)
    assert skill.name == "code-review" and skill.path == path


def test_read_skill_missing_file_is_a_skill_error(tmp_path: Path) -> None:
    """A file that cannot be read is a SkillError naming it."""
    path = tmp_path / "gone.skill.md"
    with pytest.raises(
        SkillError, match=r"gone\.skill\.md: skill file not found; check the path"
    ) as info:
        read_skill(path)
    assert info.value.path == path


def test_read_skill_rejects_non_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 says so and how to fix it."""
    path = tmp_path / "latin.skill.md"
    path.write_bytes("---\nname: caf\xe9\n---\n".encode("latin-1"))
    with pytest.raises(SkillError, match=r"not UTF-8 text .* save it as UTF-8"):
        read_skill(path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("code-review.skill.md", True),
        ("SKILL.md", True),
        (".skill.md", False),
        ("skill.md", False),
        ("README.md", False),
        ("notes.skill.md.bak", False),
    ],
)
def test_is_skill_file(name: str, expected: bool) -> None:
    """Only *.skill.md and SKILL.md count as skill files."""
    assert is_skill_file(Path(name)) is expected


# (text, message regex, line) — every error names the file and, where knowable, the line.
ERRORS = [
    pytest.param(
        "# Just markdown\n",
        r"no YAML front matter: .* must start with a line '---'",
        1,
        id="no-front-matter",
    ),
    pytest.param("", "no YAML front matter", 1, id="empty-file"),
    pytest.param(
        "---\nname: x\n", "front matter opened on line 1 is never closed", 1, id="unclosed"
    ),
    pytest.param(
        "---\n---\nbody\n",
        "the front matter is empty; it needs at least 'name:'",
        1,
        id="empty-front-matter",
    ),
    pytest.param(
        "---\n- a\n- b\n---\n", r"must be a mapping of keys .*got a list", 2, id="not-a-mapping"
    ),
    pytest.param(
        "---\nname: x\ntags: [a\n---\n", "invalid YAML in the front matter", 4, id="bad-yaml"
    ),
    pytest.param(
        "---\nname: x\nname: y\n---\n", "invalid YAML.*duplicate key", 3, id="duplicate-key"
    ),
    pytest.param(
        "---\ndescription: d\n---\n",
        "no 'name'; add a line like 'name: code-review'",
        2,
        id="missing-name",
    ),
    pytest.param("---\ndescription: d\nname:\n---\n", "'name' is empty", 3, id="null-name"),
    pytest.param("---\nname: '  '\n---\n", "'name' is empty", 2, id="blank-name"),
    pytest.param(
        "---\nname: 12\n---\n", "'name' must be a string, got int 12", 2, id="name-not-string"
    ),
    pytest.param(
        "---\nname: x\ndescripton: d\n---\n",
        r"unknown front-matter key 'descripton' \(did you mean 'description'\?\)",
        3,
        id="unknown-key",
    ),
    pytest.param(
        "---\nname: x\ndescription: [a]\n---\n",
        "'description' must be a string",
        3,
        id="description-not-string",
    ),
    pytest.param(
        "---\nname: x\ntags: code\n---\n",
        r"'tags' must be a list of strings, got the string 'code'; write it as tags: \[",
        3,
        id="tags-not-list",
    ),
    pytest.param(
        "---\nname: x\ntools:\n  - read_file\n  - 3\n---\n",
        r"tools\[1\] must be a non-empty string, got int 3; quote it",
        5,
        id="tool-not-string",
    ),
    pytest.param(
        "---\nname: x\ntriggers: review\n---\n",
        "'triggers' must be a list",
        3,
        id="triggers-not-list",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - review\n---\n",
        r"triggers\[0\] must be a mapping with a 'type'",
        4,
        id="trigger-not-mapping",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - keywords: [a]\n---\n",
        r"triggers\[0\] has no 'type'",
        4,
        id="trigger-without-type",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: keywords\n---\n",
        r"unknown type 'keywords' \(did you mean 'keyword'\?\)",
        4,
        id="unknown-trigger-type",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: always\n    keywords: [a]\n---\n",
        r"\(always trigger\) has unknown key 'keywords'; it takes type",
        5,
        id="always-with-keywords",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: keyword\n    keyword: [a]\n---\n",
        r"unknown key 'keyword' \(did you mean 'keywords'\?\)",
        5,
        id="keyword-typo",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: keyword\n---\n",
        "keyword trigger without 'keywords'",
        4,
        id="keyword-without-keywords",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: keyword\n    keywords: []\n---\n",
        r"keywords must be a non-empty list.*got an empty list",
        5,
        id="empty-keywords",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: keyword\n    keywords: review\n---\n",
        r"keywords must be a non-empty list.*got the string 'review'",
        5,
        id="keywords-not-list",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: keyword\n    keywords:\n      - ok\n      - 42\n---\n",
        r"triggers\[0\]\.keywords\[1\] must be a non-empty string, got int 42; quote it",
        7,
        id="keyword-not-string",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: keyword\n    keywords: ['  ']\n---\n",
        r"keywords\[0\] must be a non-empty string",
        5,
        id="blank-keyword",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: pattern\n---\n",
        "pattern trigger without 'pattern'",
        4,
        id="pattern-missing",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: pattern\n    pattern: 5\n---\n",
        "pattern must be a non-empty regular expression string, got int 5",
        5,
        id="pattern-not-string",
    ),
    pytest.param(
        "---\nname: x\ntriggers:\n  - type: always\n  - type: pattern\n    pattern: '(oops'\n---\n",
        r"triggers\[1\]\.pattern '\(oops' is not a valid regular expression: missing \)",
        6,
        id="bad-regex",
    ),
]


@pytest.mark.parametrize(("text", "message", "line"), ERRORS)
def test_invalid_skill_files_say_what_where_and_how(text: str, message: str, line: int) -> None:
    """Each malformed skill file raises a SkillError with the file, the line and a fix."""
    with pytest.raises(SkillError, match=message) as info:
        parse_skill(text, path="skills/broken.skill.md")
    error = info.value
    assert isinstance(error, VegaError)
    assert str(error).startswith(f"skills/broken.skill.md:{line}: ")
    assert error.line == line and error.path == Path("skills/broken.skill.md")


def test_error_without_path_names_the_text() -> None:
    """Text parsed without a path is called <skill text> in errors."""
    with pytest.raises(SkillError, match=r"^<skill text>:1: no YAML front matter"):
        parse_skill("name: x")


def test_skill_model_validates_direct_construction() -> None:
    """Building Skill/SkillTrigger in code rejects what the parser would reject."""
    with pytest.raises(ValueError, match=r"Skill\.name must be a non-empty string"):
        Skill(name=" ")
    with pytest.raises(ValueError, match="one line"):
        Skill(name="a\nb")
    with pytest.raises(TypeError, match="SkillTrigger objects, not str"):
        Skill(name="a", triggers=["review"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of strings"):
        Skill(name="a", tags="code")
    with pytest.raises(ValueError, match="at least one keyword"):
        SkillTrigger.keyword()
    with pytest.raises(ValueError, match="must not be empty"):
        SkillTrigger.keyword("ok", "   ")
    with pytest.raises(ValueError, match="takes no keywords"):
        SkillTrigger(type="always", keywords=("a",))
    with pytest.raises(ValueError, match="needs a pattern"):
        SkillTrigger(type="pattern")
    with pytest.raises(ValueError, match="'sometimes' is not a valid TriggerType"):
        SkillTrigger(type="sometimes")
    with pytest.raises(re.error):
        SkillTrigger.regex("(")
