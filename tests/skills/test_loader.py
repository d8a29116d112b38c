"""Loading skill files from directories: recursion, ~, include/exclude, duplicates, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega_trio.skills import SkillError, SkillLoader, load_skills, load_skills_async

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "skills"


def _write(path: Path, name: str, *, body: str = "Do the thing.", extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\nname: {name}\n{extra}---\n{body}\n", encoding="utf-8")
    return path


@pytest.fixture
def skills_dir(tmp_path: Path) -> Path:
    root = tmp_path / "skills"
    _write(root / "code-review.skill.md", "code-review")
    _write(root / "security" / "SKILL.md", "security-audit")
    _write(root / "security" / "deep" / "secrets.skill.md", "security-secrets")
    _write(root / "deprecated-old.skill.md", "deprecated-old")
    _write(root / ".git" / "hidden.skill.md", "hidden")  # hidden directories are skipped
    (root / "README.md").write_text("not a skill", encoding="utf-8")
    (root / "notes.md").write_text("---\nname: notes\n---\n", encoding="utf-8")
    return root


def test_loads_recursively_in_a_stable_order(skills_dir: Path) -> None:
    """*.skill.md and SKILL.md files are found in subdirectories; other files are ignored."""
    skills = load_skills([skills_dir])
    assert skills.names == (
        "code-review",
        "deprecated-old",
        "security-audit",
        "security-secrets",
    )
    assert skills["security-secrets"].path == skills_dir / "security" / "deep" / "secrets.skill.md"
    assert skills["code-review"].instructions == "Do the thing."


def test_include_and_exclude_globs(skills_dir: Path) -> None:
    """include keeps matching names (plain names and globs); exclude drops matches."""
    skills = load_skills(
        [skills_dir], include=["code-review", "security-*", "deprecated-*"], exclude="deprecated-*"
    )
    assert skills.names == ("code-review", "security-audit", "security-secrets")
    assert load_skills(skills_dir, include="security-?ecrets").names == ("security-secrets",)
    assert load_skills(skills_dir, include=["nothing-*"]).names == ()


def test_include_of_an_unknown_name_is_an_error(skills_dir: Path) -> None:
    """A plain include name that matches no skill is reported, with a suggestion."""
    with pytest.raises(SkillError, match=r"include 'code-reveiw'.*did you mean 'code-review'"):
        load_skills([skills_dir], include=["code-reveiw"])


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory under ~ is found in the user's home directory."""
    home = tmp_path / "home"
    _write(home / ".vega" / "skills" / "mine.skill.md", "mine")
    monkeypatch.setenv("HOME", str(home))
    assert load_skills(["~/.vega/skills"]).names == ("mine",)


def test_relative_directories_use_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative directories are resolved against base_dir, else the current directory."""
    _write(tmp_path / "project" / "skills" / "a.skill.md", "a")
    assert load_skills(["skills"], base_dir=tmp_path / "project").names == ("a",)
    monkeypatch.chdir(tmp_path / "project")
    assert load_skills("skills").names == ("a",)
    loader = SkillLoader(directories=["skills"], base_dir=tmp_path / "project")
    assert loader.resolved_directories() == (tmp_path / "project" / "skills",)


def test_several_directories_and_single_files(tmp_path: Path) -> None:
    """Directories load in the order given; a file may be given directly; repeats load once."""
    _write(tmp_path / "one" / "b.skill.md", "b")
    single = _write(tmp_path / "two" / "a.skill.md", "a")
    skills = load_skills([tmp_path / "one", single, tmp_path / "two", tmp_path / "one"])
    assert skills.names == ("b", "a")


def test_duplicate_names_name_both_files(tmp_path: Path) -> None:
    """Two files defining the same skill name is an error naming both files."""
    first = _write(tmp_path / "global" / "review.skill.md", "code-review")
    second = _write(tmp_path / "project" / "SKILL.md", "code-review")
    with pytest.raises(SkillError, match="two skills are named 'code-review'") as info:
        load_skills([tmp_path / "global", tmp_path / "project"])
    assert str(first) in str(info.value) and str(second) in str(info.value)
    assert "rename one" in str(info.value)


def test_missing_directory_is_an_error_unless_missing_ok(tmp_path: Path) -> None:
    """A directory that does not exist fails loudly, or is skipped with missing_ok=True."""
    _write(tmp_path / "skills" / "a.skill.md", "a")
    missing = tmp_path / "nope"
    with pytest.raises(SkillError, match=r"skills directory '.*nope' .* does not exist; create"):
        load_skills([tmp_path / "skills", missing])
    assert load_skills([tmp_path / "skills", missing], missing_ok=True).names == ("a",)


def test_a_file_that_is_not_a_skill_file_is_refused(tmp_path: Path) -> None:
    """Naming a non-skill file as a directory says how to fix it."""
    path = tmp_path / "notes.md"
    path.write_text("hi", encoding="utf-8")
    with pytest.raises(SkillError, match=r"is a file but not a skill file; name it \*\.skill\.md"):
        load_skills([path])


def test_one_invalid_file_raises_its_own_error(tmp_path: Path) -> None:
    """A single broken file raises its parse error, with file and line."""
    _write(tmp_path / "ok.skill.md", "ok")
    broken = _write(tmp_path / "broken.skill.md", "broken", extra="colour: red\n")
    with pytest.raises(SkillError, match="unknown front-matter key 'colour'") as info:
        load_skills([tmp_path])
    assert str(info.value).startswith(f"{broken}:3: ")


def test_every_invalid_file_is_reported(tmp_path: Path) -> None:
    """Several broken files are reported together, each with its own error."""
    _write(tmp_path / "a.skill.md", "a", extra="colour: red\n")
    (tmp_path / "b.skill.md").write_text("no front matter", encoding="utf-8")
    with pytest.raises(SkillError, match="2 skill files are invalid") as info:
        load_skills([tmp_path])
    assert [e.path for e in info.value.errors] == [tmp_path / "a.skill.md", tmp_path / "b.skill.md"]
    assert [e.line for e in info.value.errors] == [3, 1]


async def test_async_loader_runs_in_a_worker_thread(skills_dir: Path) -> None:
    """load_skills_async gives the same set as load_skills, from Trio code."""
    skills = await load_skills_async([skills_dir], exclude=["deprecated-*"])
    assert skills == load_skills([skills_dir], exclude=["deprecated-*"])
    assert await SkillLoader(directories=skills_dir).load_async() == load_skills(skills_dir)


def test_example_skills_load() -> None:
    """The sample skills shipped in examples/skills are valid."""
    skills = load_skills([EXAMPLES])
    assert set(skills.names) == {"code-review", "incident-triage", "plain-language"}
    assert [s.name for s in skills.match("Please review my PR")] == [
        "plain-language",
        "code-review",
    ]
    assert [s.name for s in skills.match("the API went down")] == [
        "plain-language",
        "incident-triage",
    ]
