"""Writing a :class:`Document` back as ``.vega.yaml`` text that :func:`load_document` reads
into an equal document (positions aside).

The writer is the loader's walk run backwards, from the same plans of each model class
(:func:`._loader.schema_of`: a field's YAML key and group, its kind of value, the
``type:`` tag of its class), so a key added to the model is written with no change here.
Only what differs from the defaults is written, in the order of the model's fields
(required keys and a control step's keyword always); durations are written as seconds and
money as US dollars (both plain numbers, which the loader accepts), sizes as bytes, agent
steps in their long form, parallel branches as lists of steps, and a group holding only
its short key as that key's value (``budget: 5.0``).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from ruamel.yaml import YAML

from ._loader import CONTROL_STEPS, schema_of
from ._model import AgentSpec, AgentStep, Document, Step

__all__ = ["dump_agent", "dump_agents", "dump_document"]


def dump_document(document: Document) -> str:
    """The document as YAML text; ``load_document(dump_document(d)) == d``.

    Args:
        document: a valid document (as :func:`load_document` returns).

    Returns:
        Block-style YAML, keys in the order of the model's fields (the order the loader's
        "valid keys" hints list them in).
    """
    return _yaml_text(_section(document))


def dump_agent(agent: AgentSpec) -> dict[str, Any]:
    """One agent as plain JSON data: the mapping written under ``agents.<name>`` (only
    what differs from the defaults; durations in seconds, money in US dollars)."""
    return _section(agent)


def dump_agents(agents: Mapping[str, Mapping[str, Any]]) -> str:
    """An ``agents:`` section as YAML text (a document :func:`load_document` reads),
    from agent mappings by name (as :func:`dump_agent` makes them)."""
    return _yaml_text({"agents": {name: _plain(dict(data)) for name, data in agents.items()}})


def _yaml_text(data: Mapping[str, Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 4096
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def _plain(value: Any) -> Any:
    """Plain YAML data: tuples as lists, mappings as dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


_KEEP: Final[Any] = object()
"""The "default" of a field that is always written."""


@functools.cache
def _writing(cls: type) -> tuple[tuple[Any, Any], ...]:
    """Each written field's plan and default (``_KEEP``: always written): fields without a
    default, required keys (in a group, only the keyword's: ``repeat.steps``) and the
    keyword that makes a control step what it is."""
    schema = schema_of(cls)
    keyword = next((k for k, step in CONTROL_STEPS.items() if step is cls), None)
    fields = attrs.fields_dict(cls)
    result = []
    for plan in schema.plans:
        if plan.key is None:
            continue  # NOTE: the name a section is written under, written by its container
        default: Any = fields[plan.name].default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        # NOTE: a required key is written where its group always is: at the top or in the
        # keyword's group (``repeat.steps``); ``budget.limit`` only when there is a budget.
        required = plan.spec.required is not None and (plan.sub is None or plan.key == keyword)
        if default is attrs.NOTHING or required or (plan.key == keyword and plan.sub is None):
            default = _KEEP
        result.append((plan, default))
    return tuple(result)


def _section(obj: Any) -> dict[str, Any]:
    """An attrs object of the model as the mapping it is written as."""
    cls: type = type(obj)
    tag = schema_of(cls).section.tag
    data: dict[str, Any] = {"type": tag} if tag else {}
    shorts = []
    for plan, default in _writing(cls):
        value = getattr(obj, plan.name)
        if default is not _KEEP and value == default:
            continue
        written = _WRITERS.get(plan.kind, _value)(obj, plan, value)
        if plan.sub is None:
            data[plan.key] = written
            continue
        data.setdefault(plan.key, {})[plan.sub] = written
        if plan.spec.short:
            shorts.append((plan.key, plan.sub))
    for group, short in shorts:
        if data[group].keys() == {short}:
            data[group] = data[group][short]
    return data


def _value(obj: Any, plan: Any, value: Any) -> Any:
    return _plain(value)


def _step(step: Step) -> dict[str, Any]:
    if isinstance(step, AgentStep):
        return {step.agent: _section(step)}
    return _section(step)


_WRITERS: Final[Mapping[str, Callable[[Any, Any, Any], Any]]] = {
    "section": lambda obj, plan, value: _section(value),
    "union": lambda obj, plan, value: _section(value),
    "named": lambda obj, plan, value: {item.name: _section(item) for item in value},
    "list": lambda obj, plan, value: [_section(item) for item in value],
    "steps": lambda obj, plan, value: [_step(step) for step in value],
    "branches": lambda obj, plan, value: [[_step(step) for step in branch] for branch in value],
    "for": lambda obj, plan, value: f"{value} in {obj.items}",
}
"""How each kind of value the loader reads (``_KINDS`` there) is written, when not as plain
data; the hooks' kinds (a ``for`` header, ``parallel`` branches) write what they read."""
