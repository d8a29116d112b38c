"""The public surface of vega_trio.dsl (loader, validator, interpreter, templates, units)."""

from __future__ import annotations

import vega_trio.dsl
from vega_trio._errors import VegaError
from vega_trio.dsl import DurationError, TemplateError


def test_public_api_is_pinned() -> None:
    """vega_trio.dsl exports exactly these names, all importable."""
    assert sorted(vega_trio.dsl.__all__) == [
        "Condition",
        "DSLError",
        "Diagnostic",
        "DurationError",
        "FILTERS",
        "MAX_WORKFLOW_DEPTH",
        "ProgressEvent",
        "ReplyFormatError",
        "RunNotResumable",
        "RunResult",
        "Runner",
        "StepTimeout",
        "Template",
        "TemplateError",
        "VariableRef",
        "WorkflowError",
        "WorkflowInputError",
        "build_agents",
        "dump_document",
        "load_document",
        "load_file",
        "open_runner",
        "orchestrator_config",
        "parse_duration",
        "to_text",
        "truthy",
        "validate_file",
        "validate_text",
    ]
    for name in vega_trio.dsl.__all__:
        assert getattr(vega_trio.dsl, name) is not None


def test_errors_derive_from_vega_error() -> None:
    """TemplateError and DurationError are VegaErrors (DurationError is also a ValueError)."""
    assert issubclass(TemplateError, VegaError)
    assert issubclass(DurationError, VegaError)
    assert issubclass(DurationError, ValueError)


def test_filter_names() -> None:
    """FILTERS lists exactly the filters of SPEC §8.3."""
    expected = {
        "upper",
        "lower",
        "trim",
        "default",
        "truncate",
        "join",
        "lines",
        "words",
        "length",
        "first",
        "last",
        "json",
    }
    assert expected == vega_trio.dsl.FILTERS
