"""The loader is driven by the model: a field added to an attrs class (with its metadata
from :mod:`vega_trio.dsl._schema`) is read, checked and reported on with no other change."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import attrs
import pytest
from ruamel.yaml import YAML

from vega_trio.dsl import _loader
from vega_trio.dsl._diagnostics import sort_diagnostics
from vega_trio.dsl._dump import dump_agent
from vega_trio.dsl._model import AgentSpec, Document, Settings
from vega_trio.dsl._schema import Section, _Invalid, key


def _polite(value: str) -> str:
    if not value.endswith("!"):
        raise _Invalid(f"a greeting ends with '!', got {value!r}", "add '!'")
    return value


@attrs.frozen(kw_only=True)
class PoliteAgent(AgentSpec):
    """An agent with three keys the DSL does not have: each is one field here, nothing else."""

    __yaml__: ClassVar = Section(what="agent {name!r}", null=True, keep=True)
    greeting: str = attrs.field(default="hello!", metadata=key(check=_polite))
    patience: float | None = attrs.field(default=None, metadata=key(unit="duration", min=1))
    mood: Literal["calm", "cheerful"] = "calm"
    quiet_hours: tuple[str, ...] = attrs.field(default=(), metadata=key(key="schedule.quiet"))


def _read(cls: type, text: str, path: str = "agents.a") -> tuple[Any, list[str]]:
    """``text`` read as one section of ``cls`` (at ``path``) by the loader's walker."""
    reader = _loader._Reader(text, "t.yaml")
    node = YAML(typ="safe", pure=True).compose(text)
    preset = {"name": "a"} if "name" in attrs.fields_dict(cls) else {}
    obj = _loader._read(reader, cls, node, path, preset=preset)
    return obj, [str(d) for d in sort_diagnostics(reader.diagnostics)]


def test_a_new_field_is_read_with_its_unit_choices_and_group() -> None:
    """Fields added to a model class are read from YAML by kind: a duration, a Literal, a
    group key (``schedule.quiet``), next to the inherited keys."""
    agent, diagnostics = _read(
        PoliteAgent,
        "model: m\ngreeting: hi!\npatience: 1m30s\nmood: cheerful\n"
        "schedule: {quiet: ['22:00', '06:00']}\n",
    )
    assert diagnostics == []
    assert (agent.model, agent.greeting, agent.patience, agent.mood) == (
        "m",
        "hi!",
        90.0,
        "cheerful",
    )
    assert agent.quiet_hours == ("22:00", "06:00")


def test_a_new_field_gets_the_loaders_diagnostics_for_free() -> None:
    """Unknown keys (with did-you-mean over the new keys), a range, a choice, a check and a
    wrong kind are reported like those of the built-in keys, each at its position."""
    _, diagnostics = _read(
        PoliteAgent,
        "patiense: 5s\npatience: 0.5\nmood: grumpy\ngreeting: hi\nschedule: {quiet: 3, loud: 1}\n",
    )
    assert diagnostics == [
        "t.yaml:1:1: error: agents.a.patiense: unknown key 'patiense' in agent 'a' "
        "(did you mean 'patience'?)",
        "t.yaml:2:11: error: agents.a.patience: expected duration of 1 or more, got 0.5",
        "t.yaml:3:7: error: agents.a.mood: expected one of 'calm', 'cheerful', got 'grumpy'",
        "t.yaml:4:11: error: agents.a.greeting: a greeting ends with '!', got 'hi' (add '!')",
        "t.yaml:5:19: error: agents.a.schedule.quiet: expected a list of names, got 3 "
        "(write them as [a, b] or as - items)",
        "t.yaml:5:22: error: agents.a.schedule.loud: unknown key 'loud' in schedule "
        "(valid keys: quiet)",
    ]


def test_the_built_in_agent_is_unchanged_by_the_subclass() -> None:
    """The keys of the subclass are not keys of the DSL's own agents."""
    _, diagnostics = _read(AgentSpec, "mood: calm\n")
    assert diagnostics == [
        "t.yaml:1:1: error: agents.a.mood: unknown key 'mood' in agent 'a' (did you mean 'model'?)"
    ]


def _model_classes() -> list[type]:
    seen: list[type] = []
    todo: list[type] = [Document]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        schema = _loader.schema_of(cls)
        for plan in schema.plans:
            targets = plan.target if isinstance(plan.target, tuple) else (plan.target,)
            todo.extend(t for t in targets if isinstance(t, type) and attrs.has(t))
        if cls is Document:
            todo.extend(_loader.CONTROL_STEPS.values())
            todo.append(_loader.AgentStep)
    return seen


@pytest.mark.parametrize("cls", _model_classes(), ids=lambda c: c.__name__)
def test_every_model_key_is_a_yaml_key(cls: type) -> None:
    """Every field of every model class that has a YAML key is among the keys its mapping
    accepts (no field is silently unreadable)."""
    schema = _loader.schema_of(cls)
    for field in attrs.fields(cls):
        spec = field.metadata.get("yaml")
        if field.name == "where" or (spec is not None and spec.key is None):
            continue
        written = field.name if spec is None or spec.key == "" else spec.key
        head, _, sub = written.partition(".")
        assert head in schema.keys, (cls.__name__, field.name)
        if sub:
            group = [plan.sub for plan in schema.plans if plan.key == head]
            assert sub in group, (cls.__name__, field.name)


def test_a_field_of_an_unreadable_type_says_what_to_do() -> None:
    """A field whose type the walker can't read fails loudly, naming the fix."""

    @attrs.frozen(kw_only=True)
    class Odd:
        table: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)

    with pytest.raises(TypeError, match=r"Key\(read=\.\.\.\)"):
        _loader.schema_of(Odd)


def test_settings_groups_read_nested_keys_into_flat_fields() -> None:
    """``logging.level`` and ``store.retention_days`` (group keys) land in flat fields."""
    settings, diagnostics = _read(
        Settings, "logging: {level: INFO}\nstore: {retention_days: 7}\n", "settings"
    )
    assert diagnostics == []
    assert (settings.log_level, settings.retention_days) == ("info", 7.0)


def test_objects_keyed_by_id_stay_alive() -> None:
    """Every object whose ``id`` keys ``broken`` or ``locations`` is kept alive by the
    result, so a dropped one (the params of a wrong list) can't lend its ``id`` to another
    object and mark that one broken (seen: a good tool's params dropped)."""
    text = (
        "agents:\n  a: {tools: [t1, t2]}\ntools:\n"
        "  t1:\n    implementation: {command: 'echo {{q}}', type: exec}\n"
        "    params: [{name: q, enum: [1, y], default: x}]\n"
        "  t2:\n    implementation: {command: 'echo -- {{q}}', type: exec}\n"
        "    params: [{name: q, enum: [x, y], default: x}]\n"
        "workflows:\n  w:\n    steps:\n      - a: {send: '{{x}}', save: 1}\n"
    )
    loaded = _loader.read_document(text)
    alive = {id(obj) for obj in loaded.kept}
    assert loaded.broken and loaded.broken <= alive
    assert {key for key, _ in loaded.locations} <= alive
    assert loaded.document is not None
    assert [p.name for p in loaded.document.tools[1].params] == ["q"]


@attrs.frozen(kw_only=True)
class WaitingAgent(AgentSpec):
    """Keys written with the rest of the metadata: a group with a short form (``wait: 5s`` or
    ``wait: {after: 5s, why: ...}``), and a mapping of names to plain values that may not be
    empty."""

    __yaml__: ClassVar = Section(what="agent {name!r}", null=True, keep=True)
    wait: float | None = attrs.field(
        default=None, metadata=key(key="wait.after", short=True, unit="duration")
    )
    wait_reason: str | None = attrs.field(default=None, metadata=key(key="wait.why"))
    labels: Mapping[str, Any] = attrs.field(
        factory=dict, metadata=key(locate=True, empty=("'labels' is empty", "add a label"))
    )


def test_a_group_short_form_and_a_mapping_of_values_are_read_from_metadata() -> None:
    """A group's short key takes a value written instead of the group's mapping; a
    ``Mapping[str, Any]`` field reads plain values by name; both are only field metadata."""
    short, diagnostics = _read(WaitingAgent, "wait: 5s\nlabels: {team: [a, b], size: 3}\n")
    assert diagnostics == []
    assert (short.wait, short.wait_reason) == (5.0, None)
    assert short.labels == {"team": ["a", "b"], "size": 3}
    full, diagnostics = _read(WaitingAgent, "wait: {after: 1m, why: busy}\n")
    assert diagnostics == []
    assert (full.wait, full.wait_reason) == (60.0, "busy")


def test_the_group_and_empty_value_diagnostics_come_with_the_metadata() -> None:
    """A wrong value in a group, an unknown key in it and an empty mapping are reported at
    their positions, like the built-in keys'."""
    _, diagnostics = _read(WaitingAgent, "wait: {after: soon, when: 1}\nlabels: {}\n")
    assert diagnostics == [
        "t.yaml:1:15: error: agents.a.wait.after: expected a duration like 30s, got 'soon' "
        "(units are ms, s, m, h and d, as in 250ms, 30s, 5m or 1h30m; a number is seconds)",
        "t.yaml:1:21: error: agents.a.wait.when: unknown key 'when' in wait "
        "(valid keys: after, why)",
        "t.yaml:2:9: error: agents.a.labels: 'labels' is empty (add a label)",
    ]


@pytest.mark.parametrize(
    ("agent", "written"),
    [
        (
            PoliteAgent(
                name="a", greeting="hey!", patience=90.0, mood="cheerful", quiet_hours=("22:00",)
            ),
            {
                "greeting": "hey!",
                "patience": 90.0,
                "mood": "cheerful",
                "schedule": {"quiet": ["22:00"]},
            },
        ),
        (
            WaitingAgent(name="a", wait=5.0, labels={"team": ["x"]}),
            {"wait": 5.0, "labels": {"team": ["x"]}},
        ),
        (
            WaitingAgent(name="a", wait=60.0, wait_reason="busy"),
            {"wait": {"after": 60.0, "why": "busy"}},
        ),
    ],
)
def test_a_new_field_is_written_back_from_the_same_metadata(agent: Any, written: Any) -> None:
    """The dumper writes new fields under their keys and groups (a group holding only its
    short key as that key's value), defaults left out, with no change of its own; what it
    writes reads back to an equal object."""
    mapping = dump_agent(agent)
    assert mapping == written
    again, diagnostics = _read(type(agent), json.dumps(mapping))
    assert diagnostics == []
    assert again == agent
