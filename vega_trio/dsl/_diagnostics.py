"""Diagnostics of a ``.vega.yaml`` document: what is wrong (or suspicious), where, and
what to do about it — and :class:`DSLError`, which carries all of a document's errors.

Every diagnostic names the file, the 1-based line and column, the YAML path
(``workflows.report.steps[1]``; list indices count from 0), the problem and, when there is
one, a hint::

    team.vega.yaml:14:9: error: workflows.report.steps[1]: unknown agent 'writr'
    (did you mean 'writer'?)        <- on the same line
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

import attrs

from .._errors import DSLError
from ._model import Source

__all__ = ["DSLError", "Diagnostic", "did_you_mean"]

Severity = Literal["error", "warning"]


@attrs.frozen(kw_only=True)
class Diagnostic:
    """One problem found in a document.

    Attributes:
        severity: ``"error"`` (the document can't run) or ``"warning"`` (it may run, but
            something looks wrong, such as a variable nothing defines).
        source: the file, 1-based line and column, and YAML path of the offending value.
        message: what is wrong, in one line.
        hint: what to do about it, or ``None``.
    """

    severity: Severity
    source: Source
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        source = self.source
        position = f"{source.file}:{source.line}:{source.column}" if source.line else source.file
        head = f"{position}: {self.severity}: "
        if source.path:
            head += f"{source.path}: "
        tail = f" ({self.hint})" if self.hint else ""
        return f"{head}{self.message}{tail}"


def _order(diagnostic: Diagnostic) -> tuple[int, int]:
    return (diagnostic.source.line, diagnostic.source.column)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics in file order (line, then column; stable for equal positions)."""
    return sorted(diagnostics, key=_order)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """``"did you mean 'writer'?"`` for the candidate closest to ``word``, or ``None``."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else None
