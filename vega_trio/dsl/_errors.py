"""Errors of the DSL's small languages: templates, conditions and durations.

They are defined in :mod:`vega_trio._errors` with the rest of the tree; re-exported here.
"""

from __future__ import annotations

from .._errors import DurationError, TemplateError

__all__ = ["DurationError", "TemplateError"]
