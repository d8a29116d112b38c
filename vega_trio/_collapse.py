"""Unwrapping the exception group a public ``async with`` made around a single error."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["raise_collapsed"]


def raise_collapsed(
    group: BaseExceptionGroup[BaseException], *, only_exceptions: bool = False
) -> NoReturn:
    """Re-raise ``group``'s only error bare (trio-websocket / tractor's ``collapse_eg``),
    keeping that error's own cause and context; real multi-failures stay a group.

    Call it from ``except BaseExceptionGroup as group:`` at a public ``async with``
    boundary whose nursery wrapped the block's (or its own) single error.

    Args:
        group: the group caught.
        only_exceptions: unwrap only an ``Exception`` (leave ``Cancelled`` and other
            ``BaseException``\\ s grouped).
    """
    if len(group.exceptions) == 1:
        error = group.exceptions[0]
        if not only_exceptions or isinstance(error, Exception):
            context, suppress = error.__context__, error.__suppress_context__
            try:
                raise error  # noqa: ASYNC123 - its cause and context are restored below
            finally:
                error.__context__, error.__suppress_context__ = context, suppress
    raise group
