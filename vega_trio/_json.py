"""Compact JSON encoders made once (the event JSON form, the store's rows).

``json.dumps`` with options builds a new :class:`json.JSONEncoder` on every call, and
``JSONEncoder.encode`` builds a new C encoder on every call; the store encodes every
event and every row, so the encoders here are made once and reused. The text is exactly
what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"), ...)`` gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["compact_encoder"]


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact_encoder(
    *,
    allow_nan: bool = True,
    default: Callable[[Any], Any] | None = None,
    check_circular: bool = True,
) -> Callable[[Any], str]:
    """A function giving ``value``'s compact JSON text (non-ASCII kept as it is).

    Args:
        allow_nan: whether ``NaN`` and the infinities are written (as ``json.dumps``
            does) or refused with ``ValueError``.
        default: what a value JSON cannot hold becomes (``None``: ``TypeError``).
        check_circular: a value that contains itself is a ``ValueError`` (as with
            ``json.dumps``); ``False`` (for values known to be trees, like an event's
            JSON form) skips the bookkeeping, and a cycle is a ``RecursionError``.
    """
    py = json.JSONEncoder(
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=allow_nan,
        default=default,
        check_circular=check_circular,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if check_circular or make is None:
        return py.encode
    # NOTE: the arguments JSONEncoder.iterencode passes, without the circular-reference
    # markers, made once instead of per call.
    encoder = make(
        None,
        default or _refuse,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        allow_nan,
    )
    join = "".join

    def encode(value: Any) -> str:
        if isinstance(value, str):  # JSONEncoder.encode's own path for a bare string
            return py.encode(value)
        return join(encoder(value, 0))

    return encode
