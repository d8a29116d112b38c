"""Docstring parsing for tool schemas: a summary and per-parameter / per-attribute
descriptions, from Google/Napoleon, NumPy or Sphinx docstrings.

:mod:`._schema` reads a function's docstring here; :mod:`._adapters` reads a class's.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Final

import attrs

__all__ = ["Docstring", "parse_docstring"]


@attrs.frozen(kw_only=True)
class Docstring:
    """The parts of a docstring a tool schema uses."""

    summary: str = ""
    params: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    attributes: Mapping[str, str] = attrs.field(factory=dict, hash=False)


_GOOGLE_PARAM_SECTIONS: Final = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "kwargs",
        "other parameters",
    }
)
_GOOGLE_ATTRIBUTE_SECTIONS: Final = frozenset({"attributes"})
_GOOGLE_SECTIONS: Final = (
    _GOOGLE_PARAM_SECTIONS
    | _GOOGLE_ATTRIBUTE_SECTIONS
    | frozenset(
        {
            "returns",
            "return",
            "yields",
            "yield",
            "raises",
            "raise",
            "examples",
            "example",
            "note",
            "notes",
            "warning",
            "warnings",
            "see also",
            "references",
            "todo",
            "methods",
            "warns",
        }
    )
)
_GOOGLE_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z ]*):\s*$")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?::.*)?$")
_SPHINX_FIELD = re.compile(
    r"^(param|parameter|arg|argument|key|keyword|ivar|var|cvar)\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:\s*(.*)$"
)
_SPHINX_ATTRIBUTE_FIELDS: Final = frozenset({"ivar", "var", "cvar"})


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_google_header(line: str) -> str | None:
    match = _GOOGLE_HEADER.match(line)
    if match is None:
        return None
    title = match.group(1).strip().lower()
    return title if title in _GOOGLE_SECTIONS else None


def _is_numpy_header(lines: list[str], i: int) -> bool:
    return (
        i + 1 < len(lines)
        and bool(lines[i].strip())
        and _NUMPY_UNDERLINE.match(lines[i + 1]) is not None
    )


def _join(parts: list[str]) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


def parse_docstring(doc: str | None) -> Docstring:
    """Split a docstring into its summary and its per-parameter / per-attribute descriptions.

    Understands Google/Napoleon sections (``Args:``, ``Arguments:``, ``Parameters:``,
    ``Keyword Args:``, ``Attributes:``), NumPy sections (``Parameters`` underlined with dashes)
    and Sphinx fields (``:param x:``, ``:param int x:``, ``:ivar x:``). Multi-line descriptions
    are joined into one line.

    Args:
        doc: the raw docstring (``fn.__doc__``), or ``None``.

    Returns:
        The summary (the first paragraph, joined into one line) and two name → description maps.
    """
    if not doc:
        return Docstring()
    lines = inspect.cleandoc(doc).splitlines()
    params: dict[str, str] = {}
    attributes: dict[str, str] = {}

    summary: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if (
            not stripped
            or _is_google_header(line)
            or _is_numpy_header(lines, i)
            or stripped.startswith(":")
        ):
            break
        summary.append(stripped)

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        google = _is_google_header(line)
        if google is not None:
            target = _section_target(google, params, attributes)
            i = _parse_google_section(lines, i + 1, _indent(line), target)
            continue
        if _is_numpy_header(lines, i):
            title = stripped.lower()
            target = _section_target(title, params, attributes)
            i = _parse_numpy_section(lines, i + 2, target)
            continue
        if stripped.startswith(":"):
            match = _SPHINX_FIELD.match(stripped[1:])
            if match is not None:
                kind, name, first = match.groups()
                parts = [first]
                field_indent = _indent(line)
                i += 1
                while i < len(lines) and lines[i].strip():
                    if lines[i].strip().startswith(":") or _indent(lines[i]) <= field_indent:
                        break
                    parts.append(lines[i])
                    i += 1
                (attributes if kind in _SPHINX_ATTRIBUTE_FIELDS else params)[name] = _join(parts)
                continue
        i += 1
    return Docstring(summary=_join(summary), params=params, attributes=attributes)


def _section_target(
    title: str, params: dict[str, str], attributes: dict[str, str]
) -> dict[str, str] | None:
    if title in _GOOGLE_PARAM_SECTIONS:
        return params
    if title in _GOOGLE_ATTRIBUTE_SECTIONS:
        return attributes
    return None


def _parse_google_section(
    lines: list[str], start: int, header_indent: int, target: dict[str, str] | None
) -> int:
    """Parse the body of a Google section; return the index of the first line after it."""
    entry_indent: int | None = None
    name: str | None = None
    parts: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if line.strip():
            indent = _indent(line)
            if indent <= header_indent:
                break
            if entry_indent is None:
                entry_indent = indent
            if indent <= entry_indent:
                if name is not None and target is not None:
                    target[name] = _join(parts)
                match = _GOOGLE_ENTRY.match(line.strip())
                name, parts = (match.group(1), [match.group(2)]) if match else (None, [])
            else:
                parts.append(line)
        i += 1
    if name is not None and target is not None:
        target[name] = _join(parts)
    return i


def _parse_numpy_section(lines: list[str], start: int, target: dict[str, str] | None) -> int:
    """Parse the body of a NumPy section; return the index of the first line after it."""
    entry_indent: int | None = None
    name: str | None = None
    parts: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if _is_numpy_header(lines, i):
            break
        if line.strip():
            indent = _indent(line)
            if entry_indent is None:
                entry_indent = indent
            if indent <= entry_indent:
                if name is not None and target is not None:
                    target[name] = _join(parts)
                match = _NUMPY_ENTRY.match(line.strip())
                name, parts = (match.group(1), []) if match else (None, [])
            else:
                parts.append(line)
        i += 1
    if name is not None and target is not None:
        target[name] = _join(parts)
    return i
