"""Parameters, placeholder templates and errors shared by the declarative HTTP and exec tools.

A declarative tool's strings carry placeholders for the model's arguments. Both spellings work:
``{{city}}`` and Vega's Go-template form ``{{.city}}`` (spaces inside the braces are allowed).
Templates are parsed **once**, when the tool is built, into literal text and placeholders; an
unknown name or a malformed ``{{...}}`` is a :class:`ToolDefinitionError` then, never text that
reaches a server or a command. Rendering is a plain substitution: no expressions, no ``eval``.

Where a template may read the environment (HTTP headers, an exec tool's ``env``), ``${NAME}`` and
``${NAME:-default}`` in its *literal* text are expanded when the tool runs. A parameter value is
never expanded: a model that sends ``"${AWS_SECRET_ACCESS_KEY}"`` gets that text, not the secret.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

import attrs

from .._errors import (
    ArgumentProblem,
    ExecToolError,
    HttpToolError,
    MissingEnvironmentVariable,
    ToolDefinitionError,
)
from ._registry import ArgumentPreparer
from ._validate import json_schema_validator

__all__ = [
    "EnvVar",
    "ExecToolError",
    "HttpToolError",
    "MissingEnvironmentVariable",
    "ParamType",
    "Placeholder",
    "Template",
    "Text",
    "ToolDefinitionError",
    "ToolParam",
    "argument_preparer",
    "check_params",
    "expand_env",
    "input_schema",
    "parse_template",
    "text_of",
]

ParamType: TypeAlias = Literal["string", "integer", "number", "boolean", "array", "object"]
"""The JSON types a declarative tool's parameter can have."""

_PARAM_TYPES: Final = ("string", "integer", "number", "boolean", "array", "object")
_PARAM_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


# -- errors ----------------------------------------------------------------------------------


# -- parameters ------------------------------------------------------------------------------


def _is_of_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and not (isinstance(value, float) and not math.isfinite(value))
        )
    if kind == "array":
        return isinstance(value, list | tuple)
    return isinstance(value, Mapping)


def _check_param_name(instance: ToolParam, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _PARAM_NAME.match(value):
        raise ToolDefinitionError(
            f"parameter name {value!r} is invalid: use 1-64 letters, digits and '_', not "
            "starting with a digit, so that templates can refer to it as {{name}}",
            where="params",
        )


def _check_param_type(instance: ToolParam, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _PARAM_TYPES:
        raise ToolDefinitionError(
            f"parameter {instance.name!r} has type {value!r}; use one of "
            + ", ".join(repr(t) for t in _PARAM_TYPES),
            where=f"params.{instance.name}.type",
        )


def _freeze_enum(values: Iterable[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def _required_by_default(param: ToolParam) -> bool:
    return param.default is None


@attrs.frozen(kw_only=True)
class ToolParam:
    """One parameter of a declarative tool: a property of the tool's JSON input schema.

    A parameter with a ``default`` is optional, and the default is **applied** when the model
    leaves the argument out; ``required`` is ``True`` exactly when there is no default, unless
    you say ``required=False`` (then a missing argument renders as nothing, see
    :class:`~vega_trio.tools.HttpImplementation`).

    Attributes:
        name: the argument's name; templates refer to it as ``{{name}}`` or ``{{.name}}``.
        type: its JSON type: ``"string"``, ``"integer"``, ``"number"``, ``"boolean"``,
            ``"array"`` or ``"object"``.
        description: what the model is told about it.
        default: the value used when the argument is missing (must have ``type``).
        required: whether the model must pass it (``True`` when there is no default).
        enum: the only values allowed (each must have ``type``), or ``None``.
        allow_options: an exec tool may pass a value that starts with ``-`` where the
            program reads options (before a literal ``--``); refused by default, since such
            a value would be taken as an option (``--output=/etc/passwd``).

    Raises:
        ToolDefinitionError: the name, type, default or enum is invalid (the message says which
            and why).
    """

    name: str = attrs.field(validator=_check_param_name)
    type: ParamType = attrs.field(default="string", validator=_check_param_type)
    description: str = ""
    default: Any = attrs.field(default=None, hash=False)
    required: bool = attrs.field(default=attrs.Factory(_required_by_default, takes_self=True))
    enum: tuple[Any, ...] | None = attrs.field(default=None, converter=_freeze_enum, hash=False)
    allow_options: bool = False

    def __attrs_post_init__(self) -> None:
        where = f"params.{self.name}"
        if not isinstance(self.allow_options, bool):
            raise ToolDefinitionError(
                f"parameter {self.name!r}: allow_options must be true or false, got "
                f"{self.allow_options!r}",
                where=f"{where}.allow_options",
            )
        if self.enum is not None:
            if not self.enum:
                raise ToolDefinitionError(
                    f"parameter {self.name!r} has an empty enum; list the allowed values or "
                    "drop the enum",
                    where=f"{where}.enum",
                )
            wrong = [v for v in self.enum if not _is_of_type(v, self.type)]
            if wrong:
                raise ToolDefinitionError(
                    f"parameter {self.name!r} is of type {self.type!r} but its enum has "
                    f"{wrong[0]!r}; make every enum value a {self.type}",
                    where=f"{where}.enum",
                )
        if self.default is None:
            return
        if self.required:
            raise ToolDefinitionError(
                f"parameter {self.name!r} is required but has a default ({self.default!r}); a "
                "default makes a parameter optional, so drop 'required' or the default",
                where=f"{where}.required",
            )
        if not _is_of_type(self.default, self.type):
            raise ToolDefinitionError(
                f"parameter {self.name!r} is of type {self.type!r} but its default is "
                f"{self.default!r}; give a default of that type",
                where=f"{where}.default",
            )
        if self.enum is not None and not _in_enum(self.default, self.enum):
            raise ToolDefinitionError(
                f"parameter {self.name!r}: the default {self.default!r} is not one of its enum "
                f"values {list(self.enum)!r}",
                where=f"{where}.default",
            )

    def json_schema(self) -> dict[str, Any]:
        """This parameter's JSON schema (``type``, ``description``, ``enum``, ``default``)."""
        schema: dict[str, Any] = {"type": self.type}
        if self.description:
            schema["description"] = self.description
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.default is not None:
            schema["default"] = _plain_json(self.default)
        return schema


def _in_enum(value: Any, allowed: Sequence[Any]) -> bool:
    # NOTE: compare type and value, so that True is not taken for 1 (True == 1 in Python).
    return any(type(value) is type(a) and value == a for a in allowed)


def _plain_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    return value


def check_params(tool: str, params: Sequence[ToolParam]) -> None:
    """Raise :class:`ToolDefinitionError` when two parameters share a name."""
    seen: set[str] = set()
    for param in params:
        if not isinstance(param, ToolParam):
            raise ToolDefinitionError(
                f"tool {tool!r}: params must be ToolParam objects, got {param!r}",
                tool=tool,
                where="params",
            )
        if param.name in seen:
            raise ToolDefinitionError(
                f"tool {tool!r} has two parameters named {param.name!r}; parameter names must "
                "be unique",
                tool=tool,
                where=f"params.{param.name}",
            )
        seen.add(param.name)


def input_schema(params: Sequence[ToolParam]) -> dict[str, Any]:
    """The tool's JSON input schema: one property per parameter, ``required`` listing those
    without a default, and no other arguments allowed."""
    return {
        "type": "object",
        "properties": {p.name: p.json_schema() for p in params},
        "required": [p.name for p in params if p.required],
        "additionalProperties": False,
    }


def argument_preparer(params: Sequence[ToolParam]) -> ArgumentPreparer:
    """Validate the model's arguments against the parameters (types, enum, required, no
    unknown names) and fill in the defaults of the missing optional ones.

    Returns:
        A :data:`~vega_trio.tools.ArgumentPreparer`.
    """
    validate = json_schema_validator(input_schema(params))
    defaults = {p.name: _plain_json(p.default) for p in params if p.default is not None}
    numbers = {p.name for p in params if p.type == "number"}

    def prepare(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        validate(arguments)
        for name in numbers:
            value = arguments.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ArgumentProblem(name, f"argument {name!r} must be a finite number")
        return {**defaults, **arguments}

    return prepare


# -- templates -------------------------------------------------------------------------------


@attrs.frozen
class Text:
    """Literal text of a template."""

    text: str


@attrs.frozen
class Placeholder:
    """``{{name}}`` / ``{{.name}}``: the argument ``name`` goes here."""

    name: str
    source: str


@attrs.frozen
class EnvVar:
    """``${NAME}`` or ``${NAME:-default}`` in a template's literal text."""

    name: str
    default: str | None
    source: str


Part: TypeAlias = Text | Placeholder | EnvVar

_BRACES: Final = re.compile(r"\{\{(.*?)\}\}", re.S)
_PLACEHOLDER: Final = re.compile(r"^\s*\.?([A-Za-z_][A-Za-z0-9_]*)\s*$")
_ENV: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ENV_OPEN: Final = re.compile(r"\$\{")


@attrs.frozen
class Template:
    """A parsed template: literal text, placeholders and (where allowed) ``${ENV}`` parts.

    Attributes:
        source: the template as written.
        parts: the pieces, in order.
        where: the field it came from (for error messages).
    """

    source: str
    parts: tuple[Part, ...]
    where: str

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """The placeholders, in order."""
        return tuple(p for p in self.parts if isinstance(p, Placeholder))

    @property
    def whole(self) -> Placeholder | None:
        """The placeholder when the template is exactly one placeholder (``"{{x}}"``)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Placeholder):
            return self.parts[0]
        return None

    def render(
        self,
        arguments: Mapping[str, Any],
        *,
        tool: str,
        encode: Callable[[str], str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> str:
        """Substitute the arguments (and ``${ENV}`` parts).

        Args:
            arguments: the prepared arguments.
            tool: the tool's name, for error messages.
            encode: ``f(text) -> text`` applied to each argument's text (URL quoting, shell
                quoting); ``None`` inserts the text as it is.
            environ: where ``${NAME}`` is looked up; defaults to ``os.environ``.

        Raises:
            MissingEnvironmentVariable: a ``${NAME}`` without default is not set.
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, Text):
                out.append(part.text)
            elif isinstance(part, Placeholder):
                text = text_of(arguments.get(part.name))
                out.append(encode(text) if encode is not None else text)
            else:
                out.append(expand_env(part, tool=tool, where=self.where, environ=environ))
        return "".join(out)


def expand_env(
    part: EnvVar, *, tool: str, where: str, environ: Mapping[str, str] | None = None
) -> str:
    """The value of ``${NAME}`` (or its ``:-default``) now.

    Raises:
        MissingEnvironmentVariable: the variable is not set and has no default.
    """
    env = os.environ if environ is None else environ
    value = env.get(part.name)
    if value is not None and (value or part.default is None):
        return value
    if part.default is not None:
        return part.default
    raise MissingEnvironmentVariable(
        f"tool {tool!r} needs the environment variable {part.name!r} (for {where}: "
        f"{part.source}), but it is not set. Set {part.name} in the environment that runs "
        f"vega-trio, or write ${{{part.name}:-default}} to give a fallback.",
        tool=tool,
        variable=part.name,
    )


def parse_template(
    source: str,
    *,
    where: str,
    tool: str,
    params: Sequence[ToolParam],
    allow_env: bool = False,
) -> Template:
    """Parse ``source`` into a :class:`Template`, checking every placeholder names a parameter.

    Args:
        source: the template text.
        where: the field it comes from, for error messages (``"implementation.url"``).
        tool: the tool's name, for error messages.
        params: the tool's parameters.
        allow_env: whether ``${NAME}`` / ``${NAME:-default}`` in literal text is expanded
            (HTTP headers, exec ``env``); elsewhere ``$`` is ordinary text.

    Raises:
        ToolDefinitionError: a ``{{...}}`` is malformed or names no parameter.
    """
    if not isinstance(source, str):
        raise ToolDefinitionError(
            f"tool {tool!r}: {where} must be a string, got {type(source).__name__} "
            f"{source!r}; quote it in YAML",
            tool=tool,
            where=where,
        )
    known = {p.name for p in params}
    parts: list[Part] = []
    position = 0
    for match in _BRACES.finditer(source):
        _add_literal(parts, source[position : match.start()], where, tool, allow_env)
        inner = _PLACEHOLDER.match(match.group(1))
        if inner is None:
            raise ToolDefinitionError(
                f"tool {tool!r}: {where} has a malformed placeholder {match.group(0)!r}; write "
                "{{name}} or {{.name}} with the name of one of the tool's parameters "
                "(expressions and filters are not supported in tool templates)",
                tool=tool,
                where=where,
            )
        name = inner.group(1)
        if name not in known:
            names = ", ".join(repr(n) for n in sorted(known)) or "none"
            hint = (
                f" or use ${{{name.upper()}}} to read an environment variable" if allow_env else ""
            )
            raise ToolDefinitionError(
                f"tool {tool!r}: {where} uses the placeholder {match.group(0)!r}, but the tool "
                f"has no parameter {name!r} (its parameters are: {names}). Add a parameter "
                f"named {name!r}{hint}, or fix the name.",
                tool=tool,
                where=where,
            )
        parts.append(Placeholder(name, match.group(0)))
        position = match.end()
    rest = source[position:]
    if "{{" in rest or "}}" in rest:
        raise ToolDefinitionError(
            f"tool {tool!r}: {where} has an unbalanced '{{{{' or '}}}}' in {source!r}; "
            "placeholders are written {{name}}",
            tool=tool,
            where=where,
        )
    _add_literal(parts, rest, where, tool, allow_env)
    return Template(source, tuple(parts), where)


def _add_literal(parts: list[Part], text: str, where: str, tool: str, allow_env: bool) -> None:
    if "}}" in text:
        raise ToolDefinitionError(
            f"tool {tool!r}: {where} has a '}}}}' without a matching '{{{{'; placeholders are "
            "written {{name}}",
            tool=tool,
            where=where,
        )
    if not text:
        return
    if not allow_env:
        parts.append(Text(text))
        return
    position = 0
    for match in _ENV.finditer(text):
        if match.start() > position:
            _check_no_env_open(text[position : match.start()], where, tool)
            parts.append(Text(text[position : match.start()]))
        parts.append(EnvVar(match.group(1), match.group(2), match.group(0)))
        position = match.end()
    if position < len(text):
        _check_no_env_open(text[position:], where, tool)
        parts.append(Text(text[position:]))


def _check_no_env_open(text: str, where: str, tool: str) -> None:
    if _ENV_OPEN.search(text):
        raise ToolDefinitionError(
            f"tool {tool!r}: {where} has a malformed environment reference in {text!r}; write "
            "${NAME} or ${NAME:-default} (NAME: letters, digits and '_')",
            tool=tool,
            where=where,
        )


def text_of(value: Any) -> str:
    """An argument as text: strings as they are, ``true``/``false``, numbers as in JSON,
    ``None`` as ``""``, arrays and objects as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(_plain_json(value), ensure_ascii=False, separators=(",", ":"))
