"""A workflow's inputs: typed, defaulted, required and enumerated (SPEC §8.2).

Values come from the command line (``--task n=3`` gives the text ``"3"``), from a JSON
file or from the API, so text is coerced to the declared type: ``"3"`` to an integer,
``"yes"`` to a boolean, ``'["a", "b"]'`` to an array.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._errors import InputError
from ._model import InputSpec, WorkflowSpec
from ._values import as_number, equal, to_text

__all__ = ["InputError", "coerce_input", "is_required", "resolve_inputs"]

_TRUE_WORDS: Final = frozenset({"true", "yes", "y", "on", "1"})
_FALSE_WORDS: Final = frozenset({"false", "no", "n", "off", "0"})


def is_required(spec: InputSpec) -> bool:
    """Whether the input must be given: ``required`` when written, otherwise when it
    has no default."""
    return spec.default is None and spec.required is not False


def resolve_inputs(workflow: WorkflowSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a run of ``workflow`` starts with.

    Declared inputs are coerced to their type and checked against their ``enum``;
    missing ones get their ``default`` (coerced too); a missing required one is an error.
    Values the workflow does not declare are passed through as they are.

    Raises:
        InputError: the first input that is missing or invalid (the message names it and
            the workflow, and says what is expected).
    """
    variables: dict[str, Any] = dict(given)
    for spec in workflow.inputs:
        if spec.name in given and given[spec.name] is not None:
            variables[spec.name] = coerce_input(spec, given[spec.name], workflow=workflow.name)
        elif spec.default is not None:
            variables[spec.name] = coerce_input(spec, spec.default, workflow=workflow.name)
        elif is_required(spec):
            raise InputError(_missing(workflow, spec), name=spec.name)
        else:
            variables.pop(spec.name, None)
    return variables


def coerce_input(spec: InputSpec, value: Any, *, workflow: str) -> Any:
    """``value`` as the declared type of ``spec``, checked against its ``enum``.

    Raises:
        InputError: the value cannot be read as that type or is not one of the ``enum``.
    """
    try:
        coerced = _COERCE[spec.type](value)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"input {spec.name!r} of workflow {workflow!r} must be {_ARTICLE[spec.type]}, "
            f"got {_show(value)}: {exc}",
            name=spec.name,
        ) from None
    if spec.enum is not None and not any(equal(coerced, allowed) for allowed in spec.enum):
        choices = ", ".join(_show(allowed) for allowed in spec.enum)
        raise InputError(
            f"input {spec.name!r} of workflow {workflow!r} must be one of {choices}; "
            f"got {_show(value)}",
            name=spec.name,
        )
    return coerced


def _missing(workflow: WorkflowSpec, spec: InputSpec) -> str:
    declared = ", ".join(i.name for i in workflow.inputs)
    about = f" ({spec.description})" if spec.description else ""
    return (
        f"workflow {workflow.name!r} needs input {spec.name!r}{about}; give it with "
        f'--task "{spec.name}=..." (inputs of this workflow: {declared})'
    )


def _show(value: Any) -> str:
    text = to_text(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _string(value: Any) -> str:
    if isinstance(value, list | dict | tuple):
        raise TypeError("a list or an object is not text")
    return to_text(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("true/false is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError("it has a fractional part")
    if isinstance(value, str):
        number = as_number(value)
        if isinstance(number, int):
            return number
        if isinstance(number, float) and number.is_integer():
            return int(number)
        raise ValueError("write a whole number such as 3")
    raise TypeError(f"{type(value).__name__} is not a number")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError("true/false is not a number")
    number = as_number(value)
    if number is None or (isinstance(number, float) and not math.isfinite(number)):
        raise ValueError("write a number such as 2.5")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError("write true/false (or yes/no)")


def _array(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError('write a JSON array such as ["a", "b"]') from None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError('write a JSON array such as ["a", "b"]')


def _object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError('write a JSON object such as {"key": "value"}') from None
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError('write a JSON object such as {"key": "value"}')


_COERCE: Final[dict[str, Any]] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "array": _array,
    "object": _object,
}
_ARTICLE: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
}
