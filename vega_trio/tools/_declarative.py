"""Declarative tools: a name, a description, typed parameters and an HTTP or exec
implementation — the objects behind the YAML DSL's top-level ``tools:`` (SPEC §5.3).

::

    weather = DeclarativeTool(
        name="fetch_weather",
        description="Get the weather for a city",
        params=[ToolParam(name="city", description="City name")],
        implementation=HttpImplementation(
            url="https://api.example.com/v1/current?city={{.city}}",
            headers={"Authorization": "Bearer ${WEATHER_API_KEY}"},
            allowed_hosts=["api.example.com"],
        ),
    )
    tools.register(weather.to_tool())

Everything is checked when the object is made: unknown placeholders, malformed templates and
parameters that contradict themselves are a :class:`ToolDefinitionError` then, not when the
model first calls the tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import attrs
import httpx2

from ._declarative_core import (
    ToolDefinitionError,
    ToolParam,
    argument_preparer,
    check_params,
    input_schema,
)
from ._exec_tool import ExecImplementation
from ._http_tool import HttpImplementation
from ._registry import _NAME, Tool, ToolHandler

__all__ = ["DeclarativeTool", "ToolImplementation"]

ToolImplementation: TypeAlias = HttpImplementation | ExecImplementation
"""What a declarative tool does when it is called."""


def _freeze_params(value: Sequence[ToolParam]) -> tuple[ToolParam, ...]:
    return tuple(value)


def _check_name(instance: DeclarativeTool, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ToolDefinitionError(
            f"tool name {value!r} is invalid: model APIs accept 1-64 letters, digits, '_' and '-'",
            tool=str(value),
            where="name",
        )


def _check_implementation(
    instance: DeclarativeTool, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if not isinstance(value, HttpImplementation | ExecImplementation):
        raise ToolDefinitionError(
            f"tool {instance.name!r}: implementation must be an HttpImplementation or an "
            f"ExecImplementation, got {type(value).__name__}",
            tool=instance.name,
            where="implementation",
        )


@attrs.frozen(kw_only=True)
class DeclarativeTool:
    """A tool defined by data: typed parameters and an HTTP or exec implementation.

    Attributes:
        name: the tool's name (1-64 letters, digits, ``_`` and ``-``).
        description: what the model is told the tool does.
        params: the parameters, in order; they become the JSON input schema (``enum``,
            ``default`` and ``required`` included).
        implementation: an :class:`HttpImplementation` or an :class:`ExecImplementation`;
            its ``timeout`` becomes the tool's.

    Raises:
        ToolDefinitionError: the name is not a valid tool name, a parameter name is
            repeated, or a template is malformed or uses a placeholder that names no
            parameter (the message names the placeholder, where it is, and the parameters
            there are).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = ""
    params: tuple[ToolParam, ...] = attrs.field(factory=tuple, converter=_freeze_params)
    implementation: ToolImplementation = attrs.field(validator=_check_implementation)

    def __attrs_post_init__(self) -> None:
        check_params(self.name, self.params)
        # NOTE: compile once here so that every definition error surfaces when the tool is
        # defined (at load time for YAML), not when the model first calls it.
        self._bind(None)

    @property
    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments: one property per parameter, no others allowed."""
        return input_schema(self.params)

    def _bind(self, transport: httpx2.AsyncBaseTransport | None) -> ToolHandler:
        implementation = self.implementation
        if isinstance(implementation, HttpImplementation):
            return implementation.bind(self.name, self.params, transport=transport)
        if transport is not None:
            raise ValueError(
                f"tool {self.name!r} runs a command; http_transport applies only to HTTP tools"
            )
        return implementation.bind(self.name, self.params)

    def to_tool(self, *, http_transport: httpx2.AsyncBaseTransport | None = None) -> Tool:
        """The :class:`~vega_trio.tools.Tool` to register.

        Each call's arguments are checked against the parameters (types, enums, required
        ones, no unknown names), the defaults of missing optional parameters are filled in,
        then the implementation runs under the implementation's ``timeout``.

        Args:
            http_transport: for HTTP tools, an ``httpx2`` transport to send requests through
                (``httpx2.MockTransport`` in tests); real connections by default.

        """
        return Tool(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema,
            handler=self._bind(http_transport),
            timeout=self.implementation.timeout,
            prepare=argument_preparer(self.params),
        )
