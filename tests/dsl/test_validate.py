"""The validator's variable analysis (warnings, never errors) and its speed on big files."""

from __future__ import annotations

import time

from vega_trio.dsl import load_document, validate_text

AGENTS = "agents:\n  a: {}\n"


def _warnings(steps: str, *, inputs: str = "", output: str = "") -> list[str]:
    text = AGENTS + "workflows:\n  w:\n" + inputs + "    steps:\n" + steps + output
    diagnostics = validate_text(text)
    assert all(d.severity == "warning" for d in diagnostics), [str(d) for d in diagnostics]
    return [d.message for d in diagnostics]


def test_undefined_variable_is_a_warning_with_position() -> None:
    """A variable nothing defines is a warning pointing at it, and the document still loads."""
    text = AGENTS + "workflows:\n  w:\n    steps:\n      - a: 'Hi {{ who }}'\n"
    (diagnostic,) = validate_text(text, file="f.yaml")
    assert str(diagnostic) == (
        "f.yaml:6:19: warning: workflows.w.steps[0]: variable 'who' is not defined before "
        "this use (declare it under workflows.w.inputs, save or set it in an earlier step, or "
        "pass it with --task who=...)"
    )
    assert load_document(text).workflows[0].name == "w"


def test_inputs_saves_and_sets_define_variables() -> None:
    """Inputs, earlier saves and set steps define variables: no warning."""
    steps = (
        "      - a: {send: '{{topic}}', save: found}\n"
        "      - set: {n: 1, m: '{{n}}'}\n"
        "      - a: '{{found}} {{n}} {{m}}'\n"
    )
    assert _warnings(steps, inputs="    inputs:\n      topic: {}\n") == []


def test_use_before_save_warns() -> None:
    """A variable used before the step that saves it is a warning."""
    steps = "      - a: '{{later}}'\n      - a: {send: x, save: later}\n"
    assert _warnings(steps) == ["variable 'later' is not defined before this use"]


def test_loop_and_catch_variables() -> None:
    """for defines its variable and loop.*; catch defines error and error_class; repeat
    defines loop.*; they are not defined outside."""
    steps = (
        "      - set: {xs: [1, 2]}\n"
        "      - for: x in xs\n"
        "        steps:\n"
        "          - a: '{{x}} {{loop.index}} {{loop.last}}'\n"
        "      - try:\n"
        "          - a: hi\n"
        "        catch:\n"
        "          - a: '{{error_class}}: {{error}}'\n"
        "      - repeat: {steps: [{a: '{{loop.index}}'}], until: 'loop.index > 2'}\n"
        "      - a: '{{x}} {{error}}'\n"
    )
    assert _warnings(steps) == [
        "variable 'x' is not defined before this use",
        "variable 'error' is not defined before this use",
    ]


def test_default_filter_silences_the_warning() -> None:
    """A reference under a default filter may be undefined: no warning."""
    assert _warnings("      - a: \"{{ maybe | default:'none' }}\"\n") == []


def test_conditions_with_and_parallel_saves() -> None:
    """Conditions, with-values and outputs are checked; parallel branch saves are merged."""
    steps = (
        "      - parallel:\n"
        "          - a: {send: x, save: left}\n"
        "          - a: {send: y, save: right}\n"
        '      - if: "left == right or missing"\n'
        "        then:\n"
        "          - workflow: sub\n"
        "            with: {text: '{{left}} {{nope}}'}\n"
    )
    text = (
        AGENTS
        + "workflows:\n  w:\n    steps:\n"
        + steps
        + "    output: '{{right}} {{gone}}'\n"
        + "  sub:\n    steps:\n      - a: '{{text}}'\n"
    )
    assert [d.message for d in validate_text(text)] == [
        "variable 'missing' is not defined before this use",
        "variable 'nope' is not defined before this use",
        "variable 'gone' is not defined before this use",
    ]


def test_with_keys_define_variables_of_a_sub_workflow_without_inputs() -> None:
    """A sub-workflow with no declared inputs sees the names its callers pass with with:."""
    text = (
        AGENTS
        + "workflows:\n  main:\n    steps:\n      - workflow: sub\n        with: {text: hi}\n"
        + "  sub:\n    steps:\n      - a: '{{text}}'\n"
    )
    assert validate_text(text) == []


def _big_workflow(count: int) -> str:
    lines = [AGENTS.rstrip("\n"), "  b: {}", "workflows:", "  big:", "    inputs:", "      x0: {}"]
    lines.append("    steps:")
    for i in range(count):
        lines.append(f"      - {'ab'[i % 2]}:")
        lines.append(f'          send: "Step {i}: {{{{x{i} | trim}}}}"')
        lines.append(f"          save: x{i + 1}")
    return "\n".join(lines) + "\n"


def test_two_thousand_steps_validate_quickly() -> None:
    """A generated 2,000-step workflow validates with no diagnostics in well under 5 s
    (a generous bound for slow CI; about 0.6 s on a developer machine)."""
    text = _big_workflow(2000)
    started = time.perf_counter()
    diagnostics = validate_text(text)
    elapsed = time.perf_counter() - started
    assert diagnostics == []
    assert elapsed < 5.0, elapsed


def test_fallback_model_equal_to_the_model_is_an_error() -> None:
    """`fallback_model` naming the agent's own model is an error at its position; naming
    settings.default_model, which a model-less agent uses, is a warning."""
    text = "agents:\n  a:\n    model: m1\n    fallback_model: m1\n"
    (diagnostic,) = validate_text(text, file="f.yaml")
    assert diagnostic.severity == "error"
    assert str(diagnostic).startswith(
        "f.yaml:4:21: error: agents.a.fallback_model: agent 'a' has fallback_model equal to "
        "its model ('m1')"
    )
    text = "settings:\n  default_model: m1\nagents:\n  a:\n    fallback_model: m1\n"
    (diagnostic,) = validate_text(text)
    assert diagnostic.severity == "warning" and "settings.default_model" in diagnostic.message
    ok = "agents:\n  a:\n    model: m1\n    fallback_model: openai:m2\n"
    assert validate_text(ok) == []
    assert load_document(ok).agents[0].fallback_model == "openai:m2"
