"""Process status and exit reasons (OTP's vocabulary).

They live in the ground-floor :mod:`vega_trio._exit` (the exception tree needs them and
must not import the runtime); the runtime's modules import them from here.
"""

from __future__ import annotations

from .._exit import ExitReason, ProcessStatus

__all__ = ["ExitReason", "ProcessStatus"]
