"""Hypothesis properties of templates and conditions."""

from __future__ import annotations

from hypothesis import assume, example, given
from hypothesis import strategies as st

from vega_trio.dsl import Condition, Template, TemplateError
from vega_trio.dsl._values import as_number

_NO_PLACEHOLDER = st.text().filter(lambda text: "{{" not in text)
# Text made mostly of the language's own characters finds parser corners faster.
_GARBAGE = st.text(
    alphabet=st.sampled_from(list("{}|:.()'\"\\ =!<>-+0123456789aenotrduly_\n\t,"))
    | st.characters(),
    max_size=60,
)


@given(_NO_PLACEHOLDER)
@example("")
@example("}} stray closers }}")
@example("{ single { braces }")
def test_text_without_placeholders_renders_to_itself(text: str) -> None:
    """Any text without '{{' is a static template rendering to itself."""
    template = Template.parse(text)
    assert template.is_static
    assert template.render({}) == text
    assert template.variables == frozenset()


@given(_GARBAGE)
@example("{{")
@example("{{ x | default:")
@example("'\\")
@example("{{ '\\u")
@example("((((")
@example("{{ x | join:}}")
def test_garbage_raises_only_template_error(text: str) -> None:
    """Parsing arbitrary text as a template or a condition succeeds or raises TemplateError."""
    for parse in (Template.parse, Condition.parse):
        error: TemplateError | None = None
        try:
            parse(text)
        except TemplateError as caught:
            error = caught
        if error is not None:
            assert 0 <= error.position <= len(text)
            assert error.summary
            assert str(error).startswith(error.summary)


@given(st.integers(), st.integers())
def test_integer_comparisons_match_python(a: int, b: int) -> None:
    """For ints a and b, the conditions a < b (and friends) agree with Python, as numbers,
    as numeric strings and as literals."""
    cases = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}
    for op, expected in cases.items():
        condition = Condition.parse(f"a {op} b")
        assert condition.evaluate({"a": a, "b": b}) is expected
        assert condition.evaluate({"a": str(a), "b": str(b)}) is expected
        assert Condition.parse(f"{a} {op} {b}").evaluate({}) is expected


@given(st.text(), st.text())
@example(a="", b="0\x1f")  # Unicode "whitespace" int() refuses: text, not a crash
@example(a="\u0663", b="3")  # a non-ASCII digit is text too
def test_string_equality_matches_python_for_non_numeric_text(a: str, b: str) -> None:
    """Two texts that are not both numeric are equal exactly when Python says so."""
    assume(as_number(a) is None or as_number(b) is None)
    assert Condition.parse("a == b").evaluate({"a": a, "b": b}) is (a == b)
    assert Condition.parse("a in b").evaluate({"a": a, "b": b}) is (a in b)
