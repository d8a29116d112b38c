"""Templates: placeholders, dotted paths, literals, rendering and undefined variables."""

from __future__ import annotations

from typing import Any

import pytest

from vega_trio.dsl import Template, TemplateError, VariableRef


def render(text: str, **variables: Any) -> str:
    return Template.parse(text).render(variables)


def test_literal_text_renders_as_is() -> None:
    """Text without placeholders (stray '}}' included) renders unchanged and is static."""
    template = Template.parse('JSON: {"a": {"b": 1}} done')
    assert template.is_static
    assert template.render({}) == 'JSON: {"a": {"b": 1}} done'
    assert template.variables == frozenset()


@pytest.mark.parametrize(
    "text",
    ["Research {{topic}}", "Research {{ topic }}", "Research {{.topic}}", "Research {{ .topic }}"],
)
def test_variable_spellings(text: str) -> None:
    """{{topic}}, {{ topic }} and Vega's {{.topic}} all read the variable topic."""
    template = Template.parse(text)
    assert template.render({"topic": "trio"}) == "Research trio"
    assert template.variables == {"topic"}


def test_several_placeholders_and_surrounding_text() -> None:
    """Placeholders and text are stitched together in order, multi-line text kept."""
    text = "Combine: {{result1}} and {{result2}}\nthen {{ result1 }}."
    assert render(text, result1="A", result2="B") == "Combine: A and B\nthen A."


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("text", "text"),
        (42, "42"),
        (2.5, "2.5"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        ([1, "a", None], '[1, "a", null]'),
        ({"k": [1, 2]}, '{"k": [1, 2]}'),
        ("héllo ✓", "héllo ✓"),
        ("[1, 2]", "[1, 2]"),
    ],
)
def test_values_render_as_text(value: object, rendered: str) -> None:
    """Strings as is, numbers and bools as text, None as nothing, lists/dicts as JSON."""
    assert render("{{ v }}", v=value) == rendered


def test_json_array_strings_are_not_parsed() -> None:
    """A JSON-array string stays a string: paths into it are undefined."""
    with pytest.raises(TemplateError, match=r"undefined variable 'items\.0'"):
        render("{{ items.0 }}", items="[1, 2]")


def test_dotted_paths_into_dicts_and_lists() -> None:
    """Paths follow mapping keys and list indexes, to any depth."""
    data = {"user": {"name": "Ada", "tags": ["x", {"deep": "yes"}]}, "items": ["a", "b"]}
    assert render("{{ user.name }}", **data) == "Ada"
    assert render("{{ user.tags.1.deep }}", **data) == "yes"
    assert render("{{ items.0 }}-{{ items.1 }}", **data) == "a-b"
    assert render("{{ .user.tags.0 }}", **data) == "x"


def test_loop_variables() -> None:
    """loop.index and friends are ordinary dotted paths into a dict."""
    loop = {"index": 0, "count": 1, "first": True, "last": False}
    assert render("{{loop.index}}/{{loop.count}} {{loop.first}}", loop=loop) == "0/1 true"


def test_numeric_dict_keys() -> None:
    """A digit segment finds a string key, or an int key when there is no string one."""
    assert render("{{ scores.1 }}", scores={"1": "str key"}) == "str key"
    assert render("{{ scores.1 }}", scores={1: "int key"}) == "int key"


def test_hyphenated_and_unicode_names() -> None:
    """Variable names may contain hyphens (save: my-result) and non-ASCII letters."""
    assert render("{{ my-result }} {{ café }}", **{"my-result": "r", "café": "c"}) == "r c"


def test_literals_in_placeholders() -> None:
    """String and number literals render as themselves; '{{' can be written as a literal."""
    assert render('{{ "x" }}{{ 5 }}{{ -1.5 }}{{ true }}') == "x5-1.5true"
    assert render('{{ "{{" }} not a placeholder {{ "}}" }}') == "{{ not a placeholder }}"
    assert render("{{ 'it\\'s' }} {{ \"a\\nb\" }} {{ '\\u00e9' }}") == "it's a\nb é"


def test_unknown_escape_is_kept() -> None:
    """An unknown escape in a quoted string keeps its backslash."""
    assert render(r'{{ "C:\dir" }}') == r"C:\dir"


def test_undefined_variable_is_an_error_naming_it_and_the_step() -> None:
    """An undefined variable raises, naming the variable, the step and what to do."""
    template = Template.parse("Summarise: {{ findings }}")
    with pytest.raises(TemplateError) as caught:
        template.render({"finding": "x"}, where="workflows.report.steps[1]")
    error = caught.value
    assert error.variable == "findings"
    assert error.where == "workflows.report.steps[1]"
    assert error.position == template.text.index("findings")
    message = str(error)
    assert message.startswith("in workflows.report.steps[1]: undefined variable 'findings'")
    assert "did you mean variable 'finding'?" in message.lower()
    assert "default:" in message


def test_undefined_variable_is_never_rendered_as_its_name() -> None:
    """Unlike the Go original, '{{name}}' never leaks into the output."""
    with pytest.raises(TemplateError):
        render("Hello {{ name }}")


@pytest.mark.parametrize(
    ("text", "variables", "path", "detail"),
    [
        ("{{ user.name }}", {"user": {"id": 1}}, "user.name", "'user' has no key 'name'"),
        ("{{ user.a.b }}", {"user": {"a": {}}}, "user.a.b", "'user.a' has no key 'b'"),
        ("{{ items.5 }}", {"items": [1, 2]}, "items.5", "has 2 items, so there is no index 5"),
        ("{{ items.x }}", {"items": [1]}, "items.x", "'items' is a list"),
        ("{{ s.len }}", {"s": "text"}, "s.len", "'s' is a str, which has no 'len'"),
        ("{{ n.x }}", {"n": None}, "n.x", "'n' is a none"),
    ],
)
def test_missing_path_names_the_full_path(
    text: str, variables: dict[str, object], path: str, detail: str
) -> None:
    """A missing key or index is an undefined-variable error naming the full path."""
    with pytest.raises(TemplateError) as caught:
        Template.parse(text).render(variables)
    assert caught.value.variable == path
    assert f"undefined variable {path!r}" in str(caught.value)
    assert detail in str(caught.value)


def test_default_handles_undefined_variables_and_paths() -> None:
    """A default filter supplies the value of an undefined variable or path."""
    assert render('{{ name | default:"anon" }}') == "anon"
    assert render("{{ user.name | default:anon }}", user={}) == "anon"
    assert render("{{ items.3 | default:none }}", items=[]) == ""


def test_default_later_in_the_chain_still_handles_undefined() -> None:
    """Filters before a default are skipped for an undefined value; later ones apply."""
    assert render('{{ name | upper | default:"n/a" | upper }}') == "N/A"


def test_render_value_keeps_the_value_of_a_single_placeholder() -> None:
    """render_value gives a lone placeholder's value itself, otherwise the text."""
    variables = {"items": [1, 2], "n": 3}
    assert Template.parse("{{ items }}").render_value(variables) == [1, 2]
    assert Template.parse("{{ n }}").render_value(variables) == 3
    assert Template.parse("n={{ n }}").render_value(variables) == "n=3"
    assert Template.parse("plain").render_value(variables) == "plain"
    with pytest.raises(TemplateError, match="undefined variable 'nope'"):
        Template.parse("{{ nope }}").render_value(variables, where="s")


def test_variables_references_and_filters_are_reported() -> None:
    """A template reports its root variables, each reference with position, and its filters."""
    text = 'Hi {{ user.name | upper }} from {{ .team }}: {{ note | default:"" | trim }}'
    template = Template.parse(text)
    assert template.variables == {"user", "team", "note"}
    assert template.filters == {"upper", "default", "trim"}
    assert template.references == (
        VariableRef(name="user", path="user.name", position=text.index("user")),
        VariableRef(name="team", path="team", position=text.index(".team")),
        VariableRef(name="note", path="note", position=text.index("note"), defaulted=True),
    )


def test_parse_is_cached_and_templates_compare_by_text() -> None:
    """Template.parse returns the same object for the same text; equality is by text."""
    assert Template.parse("{{ a }}") is Template.parse("{{ a }}")
    assert Template("{{ a }}") == Template.parse("{{ a }}")
    assert hash(Template("x")) == hash(Template("x"))
    assert Template("x") != Template("y")
    assert repr(Template("x")) == "Template('x')"


def test_non_string_text_is_a_type_error() -> None:
    """Parsing something that is not a str is a TypeError, not a TemplateError."""
    with pytest.raises(TypeError, match="not int"):
        Template.parse(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not list"):
        Template([])  # type: ignore[arg-type]


def test_placeholders_accept_conditions() -> None:
    """A placeholder holds any expression; a comparison renders as true/false."""
    assert render("{{ n > 3 }} {{ not flag }}", n=5, flag="no") == "true true"
