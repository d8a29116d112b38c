"""Conditions: truthiness, operators, precedence, comparisons and embedded templates."""

from __future__ import annotations

from typing import Any

import pytest

from vega_trio.dsl import Condition, TemplateError, VariableRef, truthy


def holds(text: str, **variables: Any) -> bool:
    return Condition.parse(text).evaluate(variables)


TRUTH_TABLE: list[tuple[object, bool]] = [
    (None, False),
    (False, False),
    (True, True),
    (0, False),
    (0.0, False),
    (1, True),
    (-1, True),
    (0.5, True),
    ("", False),
    ("   ", False),
    ("0", False),
    (" 0 ", False),
    ("false", False),
    ("FALSE", False),
    ("False", False),
    ("no", False),
    ("No", False),
    ("none", False),
    ("None", False),
    ("null", False),
    ("NULL", False),
    (" null\n", False),
    ("yes", True),
    ("true", True),
    ("1", True),
    ("0.0", True),
    ("off", True),
    ("nope", True),
    ("not false", True),
    ("[]", True),
    ([], False),
    ({}, False),
    ((), False),
    ([0], True),
    ([""], True),
    ({"a": None}, True),
    (object(), True),
]


@pytest.mark.parametrize(("value", "expected"), TRUTH_TABLE)
def test_truthiness_table(value: object, expected: bool) -> None:
    """truthy() and a condition of just a variable follow SPEC §8.3's table."""
    assert truthy(value) is expected
    assert holds("v", v=value) is expected
    assert holds("{{ v }}", v=value) is expected
    assert holds("{{v}}", v=value) is expected
    assert holds("not v", v=value) is (not expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a == 'x'", True),
        ("a != 'x'", False),
        ('a == "y"', False),
        ("n == 5", True),
        ("n == '5'", True),
        ("n == 5.0", True),
        ("s == 5", True),
        ("s == ' 5 '", True),
        ("n != 6", True),
        ("n < 10", True),
        ("n <= 5", True),
        ("n > 5", False),
        ("n >= 5", True),
        ("s < 10", True),
        ("'9' < '10'", True),
        ("'abc' < 'abd'", True),
        ("'b' > 'a'", True),
        ("a < 10", False),
        ("'x' in l", True),
        ("'z' in l", False),
        ("5 in l", True),
        ("'z' not in l", True),
        ("'x' not in l", False),
        ("'ell' in 'hello'", True),
        ("'ell' not in 'hello'", False),
        ("'k' in d", True),
        ("'v' in d", False),
        ("'k' not in d", False),
        ("a in 'xyz'", True),
        ("5 in 12345", True),
    ],
)
def test_comparison_operators(text: str, expected: bool) -> None:
    """Every comparison operator, with numeric and textual operands."""
    variables = {"a": "x", "n": 5, "s": "5", "l": ["x", "y", "5"], "d": {"k": "v"}}
    assert Condition.parse(text).evaluate(variables) is expected


def test_not_in_is_membership_negated() -> None:
    """'not in' is exactly the negation of 'in' (Vega's was broken), also on lists."""
    for container in (["a", "b"], "abc", {"a": 1}, []):
        for item in ("a", "z"):
            assert holds("i not in c", i=item, c=container) is not holds(
                "i in c", i=item, c=container
            )


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (10, 9, False),
        ("10", "9", False),
        ("10", 9, False),
        (" 10 ", "9.5", False),
        ("1e3", 999, False),
        ("-3", "-20", False),
        ("abc", "abd", True),
        ("10a", "9", True),
        (True, "a", False),
        (None, "a", True),
        ([1], "[2]", True),
    ],
)
def test_numeric_versus_text_ordering(left: object, right: object, expected: bool) -> None:
    """< is numeric when both sides are numbers or numeric strings, otherwise textual."""
    assert holds("l < r", l=left, r=right) is expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (None, None, True),
        (None, "", False),
        ("", None, False),
        (None, 0, False),
        (True, "true", True),
        (True, " TRUE ", True),
        (False, "false", True),
        (True, "yes", False),
        (True, 1, False),
        (True, True, True),
        ([1, "2"], ["1", 2], True),
        ([1, 2], [1], False),
        ([1], (1,), True),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": 2}, False),
        ([1], "[1]", True),
        ("007", 7, True),
        ("x", "X", False),
    ],
)
def test_equality_rules(left: object, right: object, expected: bool) -> None:
    """== : none only equals none, bools match their text, lists item by item."""
    assert holds("l == r", l=left, r=right) is expected
    assert holds("l != r", l=left, r=right) is (not expected)


@pytest.mark.parametrize(
    "literal", ["true", "TRUE", "True", "false", "False", "none", "NONE", "null", "Null"]
)
def test_keyword_literals_are_case_insensitive(literal: str) -> None:
    """true/false/none/null are literals in any case."""
    expected = literal.lower() == "true"
    assert holds(literal) is expected
    assert holds(f"v == {literal}", v={"true": True, "false": False}.get(literal.lower())) is True


def test_boolean_operators() -> None:
    """and, or and not combine truth values."""
    assert holds("a and b", a=1, b="yes") is True
    assert holds("a and b", a=1, b="no") is False
    assert holds("a or b", a=0, b="x") is True
    assert holds("a or b", a=0, b="") is False
    assert holds("not a", a="false") is True
    assert holds("not not a", a="x") is True
    assert holds("A AND NOT B", A=1, B=0) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # and binds tighter than or
        ("t or t and f", True),
        ("(t or t) and f", False),
        ("f and t or t", True),
        ("f and (t or t)", False),
        # not binds tighter than and / or
        ("not f and f", False),
        ("not (f and f)", True),
        ("not t or t", True),
        ("not (t or t)", False),
        # comparisons bind tighter than and / or
        ("n == 1 or n == 2", True),
        ("n > 0 and n < 2", True),
        # `not` negates a whole comparison
        ("not n == 2", True),
        ("not n == 1", False),
        ("(not n) == false", True),
        ("not 'x' in l", False),
        # parentheses nest
        ("((t))", True),
        ("(t and (f or (t and t)))", True),
    ],
)
def test_precedence_and_parentheses(text: str, expected: bool) -> None:
    """Precedence: comparisons > not > and > or, and parentheses override it."""
    assert holds(text, t=True, f=False, n=1, l=["x"]) is expected


def test_and_or_short_circuit_over_undefined() -> None:
    """and/or do not evaluate their right side when the left decides."""
    assert holds("user and user.name == 'a'", user={}) is False
    assert holds("ok or missing", ok=True) is True
    with pytest.raises(TemplateError, match="undefined variable 'missing'"):
        holds("ok and missing", ok=True)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("{{x}} == 'yes'", {"x": "yes"}, True),
        ("{{ x }} == 'yes'", {"x": "no"}, False),
        ('"{{x}}" == "yes"', {"x": "yes"}, True),
        ('"{{x}}"', {"x": "no"}, False),
        ('"{{x}}"', {"x": "yes"}, True),
        ("'{{ items }}'", {"items": []}, False),
        ("'{{x}}-{{y}}' == 'a-b'", {"x": "a", "y": "b"}, True),
        ("{{ items | length }} > 2", {"items": [1, 2, 3]}, True),
        ("{{x}} and {{y}}", {"x": 1, "y": 0}, False),
        ("'{{ x | default:\"none\" }}'", {}, False),
        ("{{ approved }}", {"approved": "false"}, False),
        ("{{ approved }}", {"approved": "true"}, True),
        ("{{ .approved }}", {"approved": True}, True),
    ],
)
def test_embedded_templates(text: str, variables: dict[str, object], expected: bool) -> None:
    """Conditions may embed {{ }} placeholders and quoted templates, as Vega users write."""
    assert Condition.parse(text).evaluate(variables) is expected


def test_lone_placeholder_is_truthiness_not_always_true() -> None:
    """'{{x}}' is x's truthiness (the Go original treated it as always true)."""
    condition = Condition.parse("{{approved}}")
    assert condition.evaluate({"approved": "no"}) is False
    assert condition.evaluate({"approved": "yes"}) is True


def test_filters_in_conditions() -> None:
    """Filters apply before comparisons, with quoted and bare arguments."""
    assert holds("name | upper == 'ADA'", name="ada")
    assert holds("name | default:anon == 'anon'")
    assert holds("items | length >= 2 and items | first == 'a'", items=["a", "b"])
    assert holds("(name | trim) in names", name=" b ", names=["a", "b"])


def test_literal_only_conditions() -> None:
    """Literals alone are conditions too."""
    assert holds("'yes'") is True
    assert holds("0") is False
    assert holds("-1.5 < 0") is True
    assert holds("1e2 == 100") is True


def test_dotted_paths_in_conditions() -> None:
    """Conditions read dotted paths and Vega's leading-dot form."""
    variables = {"loop": {"first": True, "index": 0}, "r": {"score": "8"}}
    assert Condition.parse("loop.first and .r.score >= 7").evaluate(variables)
    assert Condition.parse("loop.index == 0").evaluate(variables)


def test_undefined_in_condition_names_variable_and_step() -> None:
    """An undefined variable in a condition is an error naming it, with the step label."""
    with pytest.raises(TemplateError) as caught:
        Condition.parse("status == 'done'").evaluate({}, where="workflows.w.steps[2].if")
    assert caught.value.variable == "status"
    assert caught.value.position == 0
    assert str(caught.value).startswith("in workflows.w.steps[2].if: undefined variable 'status'")


def test_undefined_inside_quoted_template_points_into_the_condition() -> None:
    """The error for a quoted template's variable points at it in the condition text."""
    text = "ok == '{{ result }}'"
    with pytest.raises(TemplateError) as caught:
        Condition.parse(text).evaluate({"ok": 1})
    assert caught.value.text == text
    assert caught.value.position == text.index("result")


def test_condition_reports_variables_references_and_filters() -> None:
    """A condition lists its root variables, references (with positions) and filters."""
    text = "a.b == 1 and '{{ c }}' or d | default:0 > 1"
    condition = Condition.parse(text)
    assert condition.variables == {"a", "c", "d"}
    assert condition.filters == {"default"}
    assert condition.references == (
        VariableRef(name="a", path="a.b", position=0),
        VariableRef(name="c", path="c", position=text.index("c }}")),
        VariableRef(name="d", path="d", position=text.index("d |"), defaulted=True),
    )


def test_condition_cache_equality_and_repr() -> None:
    """Condition.parse caches; conditions compare by text."""
    assert Condition.parse("a") is Condition.parse("a")
    assert Condition("a") == Condition.parse("a")
    assert Condition("a") != Condition("b")
    assert hash(Condition("a")) == hash(Condition("a"))
    assert repr(Condition("a == 1")) == "Condition('a == 1')"
    with pytest.raises(TypeError):
        Condition.parse(None)  # type: ignore[arg-type]
