"""The YAML DSL (SPEC §8): ``.vega.yaml`` documents loaded, validated and run.

``load_file`` / ``load_document`` build the :class:`Document` model (raising
:class:`DSLError` with every problem at once), ``validate_file`` lists errors and
warnings, ``open_runner`` runs workflows on an orchestrator built from the document
(``build_agents`` / ``orchestrator_config``), and ``vega-trio run|validate|repl`` wraps
them on the command line.

Templates are text with ``{{ expr }}`` placeholders; conditions decide ``if:``, ``until:``
and friends. Both are parsed once by a small parser of their own (never ``eval``) and
evaluated against a mapping of variables::

    from vega_trio.dsl import Condition, Template

    Template.parse("Research {{ topic | upper }}").render({"topic": "trio"})  # 'Research TRIO'
    Condition.parse("score >= 7 and 'ok' in tags").evaluate({"score": 8, "tags": ["ok"]})  # True

The language is described in ``docs/dsl.md``.
"""

from __future__ import annotations

from ._build import build_agents, orchestrator_config
from ._diagnostics import Diagnostic, DSLError
from ._dump import dump_document
from ._errors import DurationError, TemplateError
from ._expr_tree import FILTERS, VariableRef
from ._interpreter import (
    MAX_WORKFLOW_DEPTH,
    ProgressEvent,
    ReplyFormatError,
    Runner,
    RunNotResumable,
    RunResult,
    StepTimeout,
    WorkflowError,
    WorkflowInputError,
    open_runner,
)
from ._loader import load_document, load_file, validate_file, validate_text
from ._template import Condition, Template
from ._units import parse_duration
from ._values import to_text, truthy

__all__ = [
    "FILTERS",
    "MAX_WORKFLOW_DEPTH",
    "ProgressEvent",
    "ReplyFormatError",
    "RunNotResumable",
    "RunResult",
    "Runner",
    "StepTimeout",
    "WorkflowError",
    "WorkflowInputError",
    "build_agents",
    "open_runner",
    "orchestrator_config",
    "Condition",
    "DSLError",
    "Diagnostic",
    "DurationError",
    "Template",
    "TemplateError",
    "VariableRef",
    "dump_document",
    "load_document",
    "load_file",
    "parse_duration",
    "to_text",
    "truthy",
    "validate_file",
    "validate_text",
]
