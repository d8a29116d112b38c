"""Parse errors: what is wrong, the exact position, a caret, and what to do."""

from __future__ import annotations

import pytest

from vega_trio.dsl import Condition, Template, TemplateError


@pytest.mark.parametrize(
    ("text", "position", "summary", "hint"),
    [
        ("Hi {{ name", 3, "'{{' is never closed", "close the placeholder with '}}'"),
        ("Hi {{ }}", 3, "empty placeholder", "put a variable inside"),
        ("{{ x | uper }}", 7, "unknown filter 'uper'", "did you mean 'upper'?"),
        ("{{ x | lenght }}", 7, "unknown filter 'lenght'", "did you mean 'length'?"),
        ("{{ x | zzz }}", 7, "unknown filter 'zzz'", "The filters are: upper, lower"),
        ("{{ x | truncate:abc }}", 16, "truncate needs a whole number", "truncate:100"),
        ("{{ x | truncate:0 }}", 16, "got '0'", "truncate:100"),
        ("{{ x | truncate:-3 }}", 16, "got '-3'", "truncate:100"),
        ("{{ x | truncate }}", 7, "filter 'truncate' needs an argument", "truncate:100"),
        ("{{ x | default }}", 7, "filter 'default' needs an argument", 'default:"n/a"'),
        ("{{ x | default: }}", 15, "missing its argument after ':'", 'default:"n/a"'),
        ("{{ x | upper:1 }}", 12, "filter 'upper' takes no argument", "remove the ':'"),
        ("{{ x | }}", 7, "expected a filter name after '|', found '}}'", "filters are"),
        ("{{ x y }}", 5, "expected '}}' or a filter", ""),
        ("{{ x } }}", 5, "unexpected character '}'", "ends with '}}'"),
        ('{{ "abc }}', 3, "unterminated string", 'close the string with "'),
        ("{{ 'a\\u12' }}", 5, "bad \\u escape", "four hex digits"),
        ("{{ user. }}", 7, "unexpected character '.'", "a name after each dot"),
        ("{{ items[0] }}", 8, "unexpected character '['", "items.0"),
        ("{{ a + b }}", 5, "unexpected character '+'", "no arithmetic"),
        ("{{ not.x }}", 3, "'not' is a keyword", "write .not.x"),
    ],
)
def test_template_parse_errors(text: str, position: int, summary: str, hint: str) -> None:
    """Each malformed template is a TemplateError at the exact offset, with a hint."""
    with pytest.raises(TemplateError) as caught:
        Template.parse(text)
    error = caught.value
    assert error.position == position, str(error)
    assert error.text == text
    assert summary in error.summary
    assert hint in error.hint
    assert error.variable is None
    assert error.where is None


@pytest.mark.parametrize(
    ("text", "position", "summary", "hint"),
    [
        ("", 0, "empty condition", "status == 'done'"),
        ("   ", 3, "empty condition", ""),
        ("a = b", 2, "unexpected character '='", "write '=='"),
        ("a && b", 2, "unexpected character '&'", "write 'and'"),
        ("a || b", 2, "unexpected '||'", "write 'or'"),
        ("!a", 0, "unexpected character '!'", "write 'not x'"),
        ("a ==", 4, "expected a value, found the end of the text", ""),
        ("(a == b", 0, "'(' is never closed", "add the missing ')'"),
        ("a == b)", 6, "expected the end of the condition", "combine conditions"),
        ("a b", 2, "expected the end of the condition, found 'b'", ""),
        ("a < b < c", 6, "comparisons cannot be chained", "a < b and b < c"),
        ("a not b", 6, "expected 'in' after 'not'", "x not in items"),
        ("a and", 5, "expected a value", ""),
        ("and a", 0, "expected a value, found 'and'", ""),
        ("{{ a", 4, "expected '}}'", ""),
        ("'{{ a' == 1", 1, "'{{' is never closed", ""),
        ("x | uppr == 'A'", 4, "unknown filter 'uppr'", "did you mean 'upper'?"),
        ("'unterminated", 0, "unterminated string", "close the string with '"),
        ("a == 'x\u0007", 5, "unterminated string", ""),
        ("a \u0000 b", 2, "unexpected character U+0000", ""),
    ],
)
def test_condition_parse_errors(text: str, position: int, summary: str, hint: str) -> None:
    """Each malformed condition is a TemplateError at the exact offset, with a hint."""
    with pytest.raises(TemplateError) as caught:
        Condition.parse(text)
    assert caught.value.position == position, str(caught.value)
    assert summary in caught.value.summary
    assert hint in caught.value.hint


def test_message_shows_what_where_and_what_to_do() -> None:
    """str(error) is the summary, the text with a caret under the offset, and the hint."""
    with pytest.raises(TemplateError) as caught:
        Template.parse("Write {{ text | uper }} now")
    assert str(caught.value) == (
        "unknown filter 'uper'\n"
        "    Write {{ text | uper }} now\n"
        "                    ^\n"
        "did you mean 'upper'? The filters are: upper, lower, trim, default, truncate, join, "
        "lines, words, length, first, last, json"
    )


def test_multiline_text_shows_the_offending_line_and_its_line_and_column() -> None:
    """In a multi-line template the excerpt is the offending line; line/column are 1-based."""
    text = "line one\nline {{ two | bad }}\nline three"
    with pytest.raises(TemplateError) as caught:
        Template.parse(text)
    error = caught.value
    assert error.position == text.index("bad")
    assert (error.line, error.column) == (2, 15)
    assert str(error).splitlines()[1:3] == ["    line {{ two | bad }}", " " * 18 + "^"]


def test_long_lines_are_cut_around_the_caret() -> None:
    """A long line is shown as a window around the problem, the caret still under it."""
    text = "x" * 200 + "{{ y | nope }}" + "z" * 200
    with pytest.raises(TemplateError) as caught:
        Template.parse(text)
    excerpt, caret = str(caught.value).splitlines()[1:3]
    assert excerpt.startswith("    …") and excerpt.endswith("…")
    assert len(excerpt) < 100
    assert excerpt[caret.index("^") :].startswith("nope")


def test_tabs_keep_the_caret_aligned() -> None:
    """Tabs in the excerpt are shown as spaces so the caret stays under the character."""
    with pytest.raises(TemplateError) as caught:
        Template.parse("\t{{ x | nope }}")
    excerpt, caret = str(caught.value).splitlines()[1:3]
    assert excerpt[caret.index("^") :].startswith("nope")


def test_too_deep_nesting_is_a_template_error() -> None:
    """Absurd nesting is refused with a TemplateError, never a RecursionError."""
    with pytest.raises(TemplateError, match="nested more than"):
        Condition.parse("(" * 500 + "a" + ")" * 500)
    with pytest.raises(TemplateError, match="nested more than"):
        Condition.parse("not " * 500 + "a")
    assert Condition.parse("(" * 30 + "a" + ")" * 30).evaluate({"a": 1})
