"""Errors of the DSL's small languages: templates, conditions and durations."""

from __future__ import annotations

from .._errors import VegaError

__all__ = ["DurationError", "TemplateError"]

# An excerpt shows at most this many characters of the offending line around the caret.
_EXCERPT_WIDTH = 80
# Tabs and line breaks would move the caret away from the character it points at.
_FLATTEN = str.maketrans({"\t": " ", "\r": " ", "\v": " ", "\f": " "})


class TemplateError(VegaError):
    """A template or condition is malformed (found when it is parsed), or could not be
    rendered (an undefined variable, found when it is rendered).

    The message says what is wrong, shows the text with a caret under the place, and says
    what to do. The parts are also attributes, so that the DSL validator can put them next
    to the file, line and column of the YAML value the text came from.

    Attributes:
        summary: what is wrong, in one line (``"unknown filter 'uper'"``).
        hint: what to do about it (``"did you mean 'upper'? ..."``); may be empty.
        text: the whole template or condition text.
        position: the 0-based offset in ``text`` of the offending character (for a
            one-line text, its column).
        where: the label the caller gave (``"workflows.report.steps[1]"``), or ``None``.
        variable: for an undefined variable, its dotted path as written (``"user.name"``);
            otherwise ``None``.
    """

    def __init__(
        self,
        summary: str,
        *,
        text: str,
        position: int,
        hint: str = "",
        where: str | None = None,
        variable: str | None = None,
    ) -> None:
        self.summary = summary
        self.hint = hint
        self.text = text
        self.position = max(0, min(position, len(text)))
        self.where = where
        self.variable = variable
        super().__init__(self._compose())

    @property
    def line(self) -> int:
        """The 1-based line of :attr:`position` within :attr:`text`."""
        return self.text.count("\n", 0, self.position) + 1

    @property
    def column(self) -> int:
        """The 1-based column of :attr:`position` within its line."""
        return self.position - (self.text.rfind("\n", 0, self.position) + 1) + 1

    def _compose(self) -> str:
        head = f"in {self.where}: {self.summary}" if self.where else self.summary
        excerpt, caret = _excerpt(self.text, self.position)
        lines = [head, f"    {excerpt}", f"    {' ' * caret}^"]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


def _excerpt(text: str, position: int) -> tuple[str, int]:
    """The line of ``text`` that holds ``position`` (cut to a window around it when it is
    long) and the caret's column in what is returned."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    if end < 0:
        end = len(text)
    line = text[start:end].translate(_FLATTEN)
    column = position - start
    if len(line) <= _EXCERPT_WIDTH:
        return line, column
    left = max(0, min(column - _EXCERPT_WIDTH // 2, len(line) - _EXCERPT_WIDTH))
    window = line[left : left + _EXCERPT_WIDTH]
    prefix = "…" if left > 0 else ""
    suffix = "…" if left + _EXCERPT_WIDTH < len(line) else ""
    return f"{prefix}{window}{suffix}", column - left + len(prefix)


class DurationError(VegaError, ValueError):
    """A duration (``timeout: 30s``) could not be read.

    Attributes:
        value: the value that was given.
    """

    def __init__(self, message: str, *, value: object) -> None:
        super().__init__(message)
        self.value = value
