"""The command line's async halves (``vega-trio run``, ``validate``, ``repl``).

:mod:`vega_trio.cli` holds the thin click commands; each one calls ``trio.run`` on a
function here, and tests call these functions directly.
"""

from __future__ import annotations

from ._common import UsageProblem, choose_llm, parse_inputs
from ._offline import offline_llm
from ._repl import repl_command
from ._run import run_command
from ._validate import validate_command

__all__ = [
    "UsageProblem",
    "choose_llm",
    "offline_llm",
    "parse_inputs",
    "repl_command",
    "run_command",
    "validate_command",
]
