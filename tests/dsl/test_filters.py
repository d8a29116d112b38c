"""Every template filter, alone, chained and at its edges."""

from __future__ import annotations

from typing import Any

import pytest

from vega_trio.dsl import Template, TemplateError


def render(text: str, **variables: Any) -> str:
    return Template.parse(text).render(variables)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("{{ name | upper }}", {"name": "Ada lovelace"}, "ADA LOVELACE"),
        ("{{ name | lower }}", {"name": "ADA"}, "ada"),
        ("{{ name | trim }}", {"name": "  ada \n"}, "ada"),
        ("{{ n | upper }}", {"n": True}, "TRUE"),
        ("{{ name|upper }}", {"name": "x"}, "X"),
    ],
)
def test_case_and_trim(text: str, variables: dict[str, object], expected: str) -> None:
    """upper, lower and trim work on the value's text."""
    assert Template.parse(text).render(variables) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "fallback"), ("", "fallback"), ("set", "set"), (0, "0"), (False, "false"), ([], "[]")],
)
def test_default_applies_to_none_and_empty_text_only(value: object, expected: str) -> None:
    """default replaces None and "" (and undefined), but keeps 0, false and []."""
    assert render('{{ v | default:"fallback" }}', v=value) == expected


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ('"n/a"', "n/a"),
        ("'n/a'", "n/a"),
        ("n/a", "n/a"),
        ("anon", "anon"),
        ("none", None),
        ("NULL", None),
        ("true", True),
        ("False", False),
        ("5", 5),
        ("-2.5", -2.5),
        ('"5"', "5"),
        ('""', ""),
        ("1_000", "1_000"),
        ("inf", "inf"),
    ],
)
def test_default_argument_literals(argument: str, value: object) -> None:
    """default:X takes a quoted string, or a bare none/null, bool, number or word."""
    assert Template.parse(f"{{{{ v | default:{argument} }}}}").render_value({}) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ t | truncate:5 }}", "hello..."),
        ("{{ t | truncate:11 }}", "hello world"),
        ("{{ t | truncate:100 }}", "hello world"),
        ("{{ t | truncate:1 }}", "h..."),
        ('{{ t | truncate:"3" }}', "hel..."),
    ],
)
def test_truncate(text: str, expected: str) -> None:
    """truncate:N keeps text of N characters or fewer, else its first N and '...'."""
    assert render(text, t="hello world") == expected


def test_truncate_works_on_non_text() -> None:
    """truncate cuts the rendered text of lists and numbers."""
    assert render("{{ v | truncate:4 }}", v=[1, 2, 3]) == "[1, ..."
    assert render("{{ v | truncate:2 }}", v=12345) == "12..."


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("{{ v | join }}", ["a", "b", "c"], "a, b, c"),
        ("{{ v | join:, }}", ["a", "b"], "a,b"),
        ('{{ v | join:", " }}', ["a", "b"], "a, b"),
        ("{{ v | join:' | ' }}", ["a", "b"], "a | b"),
        ('{{ v | join:"" }}', ["a", "b"], "ab"),
        ("{{ v | join:- }}", [1, True, None, [2]], "1-true--[2]"),
        ("{{ v | join:- }}", [], ""),
        ("{{ v | join:- }}", ("x", "y"), "x-y"),
        ("{{ v | join:- }}", "not a list", "not a list"),
        ("{{ v | join:- }}", 42, "42"),
        ("{{ v | join:- }}", {"k": 1}, '{"k": 1}'),
    ],
)
def test_join(text: str, value: object, expected: str) -> None:
    """join:SEP joins list items as text (default ', '); other values pass through."""
    assert render(text, v=value) == expected


@pytest.mark.parametrize(
    ("value", "lines", "words"),
    [
        ("", 0, 0),
        ("one", 1, 1),
        ("one two\nthree", 2, 3),
        ("a\nb\n", 2, 2),
        ("  spaced   out  ", 1, 2),
        ("a\r\nb", 2, 2),
    ],
)
def test_lines_and_words_count(value: str, lines: int, words: int) -> None:
    """lines counts lines and words counts words, as in Vega."""
    assert render("{{ v | lines }}", v=value) == str(lines)
    assert render("{{ v | words }}", v=value) == str(words)


@pytest.mark.parametrize(
    ("value", "length"),
    [
        ("héllo", 5),
        ("", 0),
        ([1, 2, 3], 3),
        ([], 0),
        ({"a": 1, "b": 2}, 2),
        (None, 0),
        (12345, 5),
        (True, 4),
    ],
)
def test_length(value: object, length: int) -> None:
    """length counts characters of text, items of lists, keys of dicts (None is 0)."""
    assert Template.parse("{{ v | length }}").render_value({"v": value}) == length


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        (["a", "b", "c"], "a", "c"),
        (["only"], "only", "only"),
        ("xyz", "x", "z"),
        ({"k1": 1, "k2": 2}, "k1", "k2"),
        ([], None, None),
        ("", None, None),
        ({}, None, None),
        (7, 7, 7),
    ],
)
def test_first_and_last(value: object, first: object, last: object) -> None:
    """first/last give the first/last item, character or key; empty gives none."""
    assert Template.parse("{{ v | first }}").render_value({"v": value}) == first
    assert Template.parse("{{ v | last }}").render_value({"v": value}) == last


def test_first_of_empty_combines_with_default() -> None:
    """An empty list's first item is none, which default replaces."""
    assert render('{{ v | first | default:"nothing" }}', v=[]) == "nothing"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", '"text"'),
        ('say "hi"\n', '"say \\"hi\\"\\n"'),
        (5, "5"),
        (None, "null"),
        (True, "true"),
        ({"a": [1, {"b": None}], "é": "ü"}, '{"a": [1, {"b": null}], "é": "ü"}'),
    ],
)
def test_json(value: object, expected: str) -> None:
    """json writes the value as JSON, nested values included, non-ASCII kept."""
    assert render("{{ v | json }}", v=value) == expected


def test_json_of_unknown_and_circular_values_still_renders() -> None:
    """Objects JSON does not know become their str; a circular list becomes its text."""
    assert render("{{ v | json }}", v={"when": object}) == '{"when": "<class \'object\'>"}'
    circular: list[object] = []
    circular.append(circular)
    assert render("{{ v | json }}", v=circular) == '"[[...]]"'


def test_chained_filters_apply_left_to_right() -> None:
    """Filters chain: each gets the previous one's result."""
    assert render("{{ v | trim | upper | truncate:3 }}", v="  hello ") == "HEL..."
    assert render("{{ v | first | upper }}", v=["ab", "cd"]) == "AB"
    assert render("{{ v | join:- | length }}", v=["ab", "cd"]) == "5"
    assert render("{{ v | json | length }}", v="ab") == "4"
    assert render("{{ v | upper | join }}", v=["a"]) == '["A"]'


def test_filters_on_literals_and_parentheses() -> None:
    """Filters apply to literals and to parenthesised expressions."""
    assert render('{{ "abc" | upper }}') == "ABC"
    assert render("{{ (a or b) | upper }}", a="", b="x") == "TRUE"


def test_undefined_value_through_a_filter_without_default_is_an_error() -> None:
    """A filter other than default does not hide an undefined variable."""
    with pytest.raises(TemplateError, match="undefined variable 'missing'"):
        render("{{ missing | upper }}")


def test_join_separator_spaces_need_quotes() -> None:
    """An unquoted argument stops at a space, so the Vega form 'join:, ' joins with ','."""
    assert render("{{ items | join:, }}", items=["a", "b"]) == "a,b"
