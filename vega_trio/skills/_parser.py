"""Parsing ``*.skill.md`` / ``SKILL.md`` files: YAML front matter plus a Markdown body.

::

    ---
    name: code-review
    description: Expert code review guidance
    tags: [code, review]
    tools: [read_file]
    triggers:
      - type: keyword
        keywords: [review, PR, pull request]
      - type: pattern
        pattern: "review (this|my) (code|changes)"
    ---
    # Code Review Expert
    When reviewing code, focus on security first.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .._errors import InputFileError
from .._files import MAX_ALIAS_EXPANSION, check_alias_expansion, read_bounded_text
from ._model import Skill, SkillError, SkillTrigger, TriggerType

__all__ = ["is_skill_file", "parse_skill", "read_skill"]

_FENCE = re.compile(r"^---[ \t]*$")
_END_FENCE = re.compile(r"^(---|\.\.\.)[ \t]*$")
_KEYS = ("name", "description", "tags", "tools", "triggers")
_TRIGGER_KEYS = {
    TriggerType.KEYWORD: ("type", "keywords"),
    TriggerType.PATTERN: ("type", "pattern"),
    TriggerType.ALWAYS: ("type",),
}

_Location = tuple[str | int, ...]


def is_skill_file(path: Path) -> bool:
    """Whether ``path``'s name marks a skill file: ``*.skill.md`` or ``SKILL.md``."""
    return path.name == "SKILL.md" or (
        path.name.endswith(".skill.md") and len(path.name) > len(".skill.md")
    )


def read_skill(path: str | Path, *, max_bytes: int | None = None) -> Skill:
    """Read and parse one skill file (blocking file I/O: call it at startup or
    through :func:`trio.to_thread.run_sync`).

    Args:
        path: the skill file; it must be a regular UTF-8 file.
        max_bytes: the size cap (default ``$VEGA_MAX_INPUT_BYTES``, else 4 MiB).

    Raises:
        SkillError: the file cannot be read (missing, not a regular file, over the
            size cap, not UTF-8) or is not a valid skill.
    """
    path = Path(path)
    try:
        text = read_bounded_text(path, what="skill file", max_bytes=max_bytes)
    except InputFileError as exc:  # missing, not a regular file, over the cap, not UTF-8
        raise SkillError(str(exc), path=path) from None
    return parse_skill(text, path=path)


def parse_skill(text: str, *, path: str | Path | None = None) -> Skill:
    """Parse the text of a skill file.

    Args:
        text: the whole file: ``---``, YAML front matter, ``---``, Markdown body.
        path: where the text comes from, for error messages and :attr:`Skill.path`.

    Returns:
        The :class:`Skill`; its ``instructions`` are the body without surrounding
        blank lines.

    Raises:
        SkillError: missing or unclosed front matter, invalid YAML, unknown keys,
            wrong types, an empty name, a bad trigger or regex. The message names
            the file and line and says how to fix it.
    """
    return _Parser(text, Path(path) if path is not None else None).parse()


class _Parser:
    def __init__(self, text: str, path: Path | None) -> None:
        self.text = text.removeprefix("\ufeff")
        self.path = path
        self.where = str(path) if path is not None else "<skill text>"
        self.first_yaml_line = 2  # 1-based line of the first front-matter line
        self.yaml_text = ""
        self._root: Node | None = None

    # -- errors ---------------------------------------------------------------------------
    def fail(self, message: str, line: int | None = None) -> NoReturn:
        at = f"{self.where}:{line}" if line is not None else self.where
        raise SkillError(f"{at}: {message}", path=self.path, line=line)

    def fail_at(self, location: _Location, message: str) -> NoReturn:
        self.fail(message, self.line_of(location))

    def line_of(self, location: _Location) -> int | None:
        """The file line of the key or item at ``location`` in the front matter."""
        if self._root is None:
            self._root = YAML(typ="safe", pure=True).compose(self.yaml_text)
        node: Node | None = self._root
        found: Node | None = None
        for step in location:
            if isinstance(node, MappingNode) and isinstance(step, str):
                pairs = node.value
                match = next(
                    ((k, v) for k, v in pairs if isinstance(k, ScalarNode) and k.value == step),
                    None,
                )
                if match is None:
                    break
                found, node = match[0], match[1]
            elif isinstance(node, SequenceNode) and isinstance(step, int):
                if step >= len(node.value):
                    break
                found = node = node.value[step]
            else:
                break
        if found is None:
            found = self._root
        if found is None:
            return None
        return int(found.start_mark.line) + self.first_yaml_line

    # -- document -------------------------------------------------------------------------
    def parse(self) -> Skill:
        data, body = self.split()
        unknown = [k for k in data if k not in _KEYS]
        if unknown:
            key = unknown[0]
            self.fail_at(
                (str(key),),
                f"unknown front-matter key {key!r}{_did_you_mean(str(key), _KEYS)}; "
                f"a skill takes {', '.join(_KEYS)}",
            )
        name = data.get("name")
        if name is None and "name" in data:
            self.fail_at(("name",), "'name' is empty; give the skill a name like 'code-review'")
        if name is None:
            self.fail(
                "the front matter has no 'name'; add a line like 'name: code-review'",
                self.first_yaml_line,
            )
        if not isinstance(name, str):
            self.fail_at(
                ("name",), f"'name' must be a string, got {_describe(name)}; quote it if needed"
            )
        if not name.strip():
            self.fail_at(("name",), "'name' is empty; give the skill a name like 'code-review'")
        if "\n" in name.strip():
            self.fail_at(("name",), "'name' must be one line")
        description = data.get("description", "")
        if description is None:
            description = ""
        if not isinstance(description, str):
            self.fail_at(
                ("description",),
                f"'description' must be a string, got {_describe(description)}",
            )
        return Skill(
            name=name.strip(),
            description=" ".join(description.split()),
            instructions=body.strip("\n").rstrip(),
            tags=self.strings(data, "tags"),
            tools=self.strings(data, "tools"),
            triggers=self.triggers(data.get("triggers")),
            path=self.path,
        )

    def split(self) -> tuple[dict[str, Any], str]:
        lines = self.text.splitlines(keepends=True)
        if not lines or not _FENCE.match(lines[0].rstrip("\r\n")):
            self.fail(
                "no YAML front matter: a skill file must start with a line '---', then "
                "YAML keys ('name: my-skill', 'description: …', 'triggers: …'), then a "
                "closing '---', then the Markdown instructions",
                1,
            )
        for index in range(1, len(lines)):
            if _END_FENCE.match(lines[index].rstrip("\r\n")):
                end = index
                break
        else:
            self.fail(
                "the front matter opened on line 1 is never closed; "
                "add a line '---' after the last front-matter key",
                1,
            )
        self.yaml_text = "".join(lines[1:end])
        body = "".join(lines[end + 1 :])
        try:
            root = YAML(typ="safe", pure=True).compose(self.yaml_text)
            anchor = None if root is None else check_alias_expansion(root)
            if anchor is not None:
                self.fail(
                    f"YAML aliases expand the front matter by more than "
                    f"{MAX_ALIAS_EXPANSION:,} values (an alias bomb?); write the values out",
                    int(anchor.start_mark.line) + self.first_yaml_line,
                )
            data = YAML(typ="safe", pure=True).load(self.yaml_text)
        except RecursionError:
            self.fail("the front matter is nested too deeply", self.first_yaml_line)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + self.first_yaml_line if mark is not None else None
            problem = exc.problem or exc.context or "malformed YAML"
            self.fail(f"invalid YAML in the front matter: {problem}", line)
        except YAMLError as exc:
            self.fail(f"invalid YAML in the front matter: {exc}", self.first_yaml_line)
        if data is None:
            self.fail(
                "the front matter is empty; it needs at least 'name:' "
                "(and usually 'description:' and 'triggers:')",
                1,
            )
        if not isinstance(data, dict):
            self.fail(
                f"the front matter must be a mapping of keys (name: …), got {_describe(data)}",
                self.first_yaml_line,
            )
        return data, body

    # -- fields ---------------------------------------------------------------------------
    def strings(self, data: dict[str, Any], key: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail_at(
                (key,),
                f"'{key}' must be a list of strings, got {_describe(value)}; "
                f"write it as {key}: [a, b]",
            )
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail_at(
                    (key, index),
                    f"{key}[{index}] must be a non-empty string, got {_describe(item)}"
                    + ("; quote it" if isinstance(item, int | float | bool) else ""),
                )
        return tuple(item.strip() for item in value)

    def triggers(self, value: Any) -> tuple[SkillTrigger, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail_at(
                ("triggers",),
                f"'triggers' must be a list, got {_describe(value)}; write "
                "'triggers:' then items like '- type: keyword' / '  keywords: [review, PR]'",
            )
        return tuple(self.trigger(index, item) for index, item in enumerate(value))

    def trigger(self, index: int, item: Any) -> SkillTrigger:
        where: _Location = ("triggers", index)
        label = f"triggers[{index}]"
        if not isinstance(item, dict):
            self.fail_at(
                where,
                f"{label} must be a mapping with a 'type' (keyword, pattern or always), "
                f"got {_describe(item)}",
            )
        kind = item.get("type")
        if kind is None:
            self.fail_at(where, f"{label} has no 'type'; use keyword, pattern or always")
        try:
            trigger_type = TriggerType(kind) if isinstance(kind, str) else None
        except ValueError:
            trigger_type = None
        if trigger_type is None:
            types = [t.value for t in TriggerType]
            self.fail_at(
                (*where, "type"),
                f"{label} has unknown type {kind!r}"
                f"{_did_you_mean(str(kind), types)}; use keyword, pattern or always",
            )
        allowed = _TRIGGER_KEYS[trigger_type]
        for key in item:
            if key not in allowed:
                self.fail_at(
                    (*where, str(key)),
                    f"{label} ({trigger_type} trigger) has unknown key {key!r}"
                    f"{_did_you_mean(str(key), allowed)}; it takes {', '.join(allowed)}",
                )
        if trigger_type is TriggerType.KEYWORD:
            return SkillTrigger.keyword(*self.keywords(where, label, item.get("keywords")))
        if trigger_type is TriggerType.PATTERN:
            return SkillTrigger.regex(self.pattern(where, label, item.get("pattern")))
        return SkillTrigger.always()

    def keywords(self, where: _Location, label: str, value: Any) -> list[str]:
        if value is None:
            self.fail_at(
                where, f"{label} is a keyword trigger without 'keywords'; add keywords: [a, b]"
            )
        if not isinstance(value, list) or not value:
            self.fail_at(
                (*where, "keywords"),
                f"{label}.keywords must be a non-empty list of words or phrases, "
                f"got {_describe(value)}; write keywords: [review, pull request]",
            )
        for position, keyword in enumerate(value):
            if not isinstance(keyword, str) or not keyword.strip():
                self.fail_at(
                    (*where, "keywords", position),
                    f"{label}.keywords[{position}] must be a non-empty string, "
                    f"got {_describe(keyword)}"
                    + ("; quote it" if isinstance(keyword, int | float | bool) else ""),
                )
        return value

    def pattern(self, where: _Location, label: str, value: Any) -> re.Pattern[str]:
        if value is None:
            self.fail_at(
                where, f"{label} is a pattern trigger without 'pattern'; add pattern: '<regex>'"
            )
        if not isinstance(value, str) or not value:
            self.fail_at(
                (*where, "pattern"),
                f"{label}.pattern must be a non-empty regular expression string, "
                f"got {_describe(value)}",
            )
        try:
            return re.compile(value, re.IGNORECASE)
        except re.error as exc:
            self.fail_at(
                (*where, "pattern"),
                f"{label}.pattern {value!r} is not a valid regular expression: {exc}; "
                "fix it (Python 're' syntax; quote the YAML string and escape backslashes)",
            )


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
