"""An HTTP tool's templates: where each placeholder of the URL sits (path, query, fragment, or
the whole URL), and the JSON body as data with placeholders in its values.

Compiled once when the tool is defined; :mod:`._http_tool` renders them for each call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

import attrs

from ._declarative_core import (
    _BRACES,
    _PLACEHOLDER,
    Placeholder,
    Template,
    Text,
    ToolDefinitionError,
    ToolParam,
    parse_template,
)

__all__ = ["OMIT", "UrlTemplate", "compile_url", "freeze_body", "render_body", "url_host_parameter"]


_Section: TypeAlias = str  # "path" | "query" | "fragment"


@attrs.frozen
class UrlTemplate:
    template: Template
    sections: tuple[_Section, ...]  # one per placeholder, in order
    verbatim: bool  # the whole URL is one placeholder


def compile_url(url: str, tool: str, params: Sequence[ToolParam]) -> UrlTemplate:
    where = "implementation.url"
    template = parse_template(url, where=where, tool=tool, params=params)
    if template.whole is not None:
        return UrlTemplate(template, ("url",), verbatim=True)
    first = template.parts[0] if template.parts else None
    prefix = first.text if isinstance(first, Text) else ""
    scheme_end = prefix.find("://")
    if scheme_end < 0 or prefix[:scheme_end].lower() not in ("http", "https"):
        raise ToolDefinitionError(
            f"tool {tool!r}: {where} must start with http:// or https:// followed by the host, "
            f"got {url!r}",
            tool=tool,
            where=where,
        )
    state = "authority"
    sections: list[_Section] = []
    for index, part in enumerate(template.parts):
        if isinstance(part, Placeholder):
            if state == "authority":
                raise ToolDefinitionError(
                    f"tool {tool!r}: {where} has the placeholder {part.source!r} in its scheme "
                    "or host; the model must not choose which server is called. Put "
                    "placeholders in the path or query, or make the whole URL one placeholder "
                    "(url: '{{url}}') together with allowed_hosts.",
                    tool=tool,
                    where=where,
                )
            sections.append(state)
            continue
        assert isinstance(part, Text)
        text = part.text[scheme_end + 3 :] if index == 0 else part.text
        for char in text:
            if char == "#":
                state = "fragment"
            elif char == "?" and state in ("authority", "path"):
                state = "query"
            elif char == "/" and state == "authority":
                state = "path"
    return UrlTemplate(template, tuple(sections), verbatim=False)


def url_host_parameter(url: str) -> str | None:
    """The parameter whose placeholder decides the scheme, host or port of the URL template
    ``url`` (``"url"`` for ``"{{url}}"``), or ``None`` when the template fixes them.

    ``vega-trio validate`` warns about such a tool without ``allowed_hosts``: the model then
    chooses the server (public ones, as internal destinations are refused anyway).
    """
    match = _BRACES.search(url)
    if match is None:
        return None
    prefix = url[: match.start()]
    scheme_end = prefix.find("://")
    if scheme_end >= 0 and any(c in prefix[scheme_end + 3 :] for c in "/?#"):
        return None
    name = _PLACEHOLDER.match(match.group(1))
    return None if name is None else name.group(1)


def freeze_body(value: Any, *, tool: str, params: Sequence[ToolParam], where: str) -> Any:
    """The body with every string replaced by its parsed :class:`Template`."""
    if isinstance(value, str):
        return parse_template(value, where=where, tool=tool, params=params)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or "{{" in key:
                raise ToolDefinitionError(
                    f"tool {tool!r}: {where} has the key {key!r}; body keys must be plain "
                    "strings (placeholders go in values)",
                    tool=tool,
                    where=where,
                )
            out[key] = freeze_body(item, tool=tool, params=params, where=f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [
            freeze_body(item, tool=tool, params=params, where=f"{where}[{i}]")
            for i, item in enumerate(value)
        ]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ToolDefinitionError(
        f"tool {tool!r}: {where} is a {type(value).__name__} ({value!r}); a JSON body holds "
        "only mappings, lists, strings, numbers, booleans and null",
        tool=tool,
        where=where,
    )


OMIT: Final = object()


def render_body(node: Any, arguments: Mapping[str, Any], tool: str) -> Any:
    if isinstance(node, Template):
        whole = node.whole
        if whole is not None:
            value = arguments.get(whole.name)
            return OMIT if value is None else value
        return node.render(arguments, tool=tool)
    if isinstance(node, dict):
        rendered = {k: render_body(v, arguments, tool) for k, v in node.items()}
        return {k: v for k, v in rendered.items() if v is not OMIT}
    if isinstance(node, list):
        items = [render_body(v, arguments, tool) for v in node]
        return [None if v is OMIT else v for v in items]
    return node
