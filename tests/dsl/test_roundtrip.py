"""Property tests: random valid documents survive dump_document → load_document unchanged,
and no input text makes load_document raise anything but DSLError (or validate_text raise)."""

from __future__ import annotations

import string
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vega_trio.dsl import DSLError, dump_document, load_document, validate_text
from vega_trio.dsl._model import (
    AgentSpec,
    AgentStep,
    BackoffSpec,
    BreakerSpec,
    DelegationSpec,
    Document,
    ExecSpec,
    ForStep,
    HealthSpec,
    HttpSpec,
    IfStep,
    InputSpec,
    LimitsSpec,
    MCPServerSpec,
    ParallelStep,
    ParamSpec,
    RateLimitSpec,
    RepeatStep,
    RetrySpec,
    ReturnStep,
    SetStep,
    Settings,
    SkillsSpec,
    Step,
    SupervisionSpec,
    ToolSpec,
    TryStep,
    WorkflowSpec,
    WorkflowStep,
)

KEYWORDS = {"if", "for", "parallel", "try", "repeat", "set", "return", "workflow"}
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
# Text without '{{' (templates are checked) and printable, so any of it is a valid value.
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30
).filter(lambda t: "{{" not in t and "}}" not in t)
seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
dollars = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
small = st.integers(min_value=1, max_value=1000)
plain: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


backoffs = st.builds(
    BackoffSpec,
    kind=st.sampled_from(["exponential", "linear", "constant"]),
    initial=seconds,
    multiplier=st.floats(min_value=1, max_value=10),
    max=seconds,
    jitter=st.floats(min_value=0, max_value=1),
)
rate_limits = st.builds(
    RateLimitSpec,
    requests_per_minute=_opt(small),
    tokens_per_minute=_opt(small),
    strategy=st.sampled_from(["queue", "reject"]),
)


@st.composite
def agents(draw: st.DrawFn, name: str, others: list[str]) -> AgentSpec:
    budget = draw(_opt(dollars))
    model = draw(_opt(names))
    return AgentSpec(
        name=name,
        system=draw(texts),
        model=model,
        fallback_model=draw(_opt(names.filter(lambda n: n != model))),
        description=draw(texts),
        temperature=draw(_opt(st.floats(min_value=0, max_value=2))),
        max_tokens=draw(_opt(small)),
        max_iterations=draw(_opt(small)),
        budget=budget,
        budget_on_exceed=draw(st.sampled_from(["block", "warn", "allow"])) if budget else "block",
        budget_scope=draw(st.sampled_from(["agent", "tree"])),
        supervision=draw(
            _opt(
                st.builds(
                    SupervisionSpec,
                    strategy=st.sampled_from(["restart", "stop", "escalate"]),
                    max_restarts=st.integers(0, 10),
                    window=seconds,
                    backoff=_opt(backoffs),
                    restart_state=st.sampled_from(["keep", "fresh"]),
                )
            )
        ),
        retry=draw(
            _opt(
                st.builds(
                    RetrySpec,
                    max_attempts=small,
                    backoff=_opt(backoffs),
                    retry_on=_opt(st.tuples(st.sampled_from(["RateLimit", "Timeout"]))),
                )
            )
        ),
        rate_limit=draw(_opt(rate_limits)),
        circuit_breaker=draw(
            _opt(st.builds(BreakerSpec, threshold=small, reset_after=seconds, half_open_max=small))
        ),
        skills=draw(
            _opt(
                st.builds(
                    SkillsSpec,
                    directories=st.tuples(texts),
                    include=st.tuples(names),
                    max_active=st.integers(0, 5),
                )
            )
        ),
        team=tuple(draw(st.lists(st.sampled_from(others), unique=True))) if others else (),
        delegation=draw(
            _opt(
                st.builds(
                    DelegationSpec,
                    context_window=st.integers(0, 20),
                    include_roles=st.sampled_from([("user",), ("user", "assistant")]),
                    blackboard=st.booleans(),
                )
            )
        ),
        timeout=draw(_opt(seconds)),
    )


@st.composite
def steps(draw: st.DrawFn, agent_names: list[str], depth: int = 0) -> tuple[Step, ...]:
    count = draw(st.integers(1, 3))
    return tuple(draw(step(agent_names, depth)) for _ in range(count))


@st.composite
def step(draw: st.DrawFn, agent_names: list[str], depth: int) -> Step:
    kinds = ["agent", "set", "return", "workflow"]
    if depth < 2:
        kinds += ["if", "for", "parallel", "try", "repeat"]
    kind = draw(st.sampled_from(kinds))
    save = draw(_opt(names))
    if kind == "agent":
        return AgentStep(
            agent=draw(st.sampled_from(agent_names)),
            send=draw(texts),
            save=save,
            timeout=draw(_opt(seconds)),
            retry=draw(st.integers(0, 3)),
            continue_on_error=draw(st.booleans()),
            format=draw(st.sampled_from(["text", "json"])),
        )
    if kind == "set":
        return SetStep(values=draw(st.dictionaries(names, plain, min_size=1, max_size=3)))
    if kind == "return":
        return ReturnStep(value=draw(plain))
    if kind == "workflow":
        return WorkflowStep(workflow="leaf", inputs=draw(st.dictionaries(names, plain)), save=save)
    inner = steps(agent_names, depth + 1)
    if kind == "if":
        return IfStep(condition="true", then=draw(inner), otherwise=draw(st.just(()) | inner))
    if kind == "for":
        return ForStep(variable=draw(names), items="things | lines", steps=draw(inner), save=save)
    if kind == "parallel":
        branches = tuple(draw(st.lists(inner, min_size=1, max_size=3)))
        return ParallelStep(branches=branches, save=save)
    if kind == "try":
        return TryStep(steps=draw(inner), catch=draw(st.just(()) | inner))
    return RepeatStep(steps=draw(inner), until=draw(_opt(st.just("true"))), max=draw(small))


tools = st.builds(
    ToolSpec,
    name=names,
    description=texts,
    params=st.builds(
        lambda allow: (
            ParamSpec(
                name="q", description="query", default="x", enum=("x", "y"), allow_options=allow
            ),
        ),
        st.booleans(),
    ),
    implementation=st.builds(
        HttpSpec,
        url=st.just("https://example.com/search?q={{q}}"),
        method=st.sampled_from(["GET", "POST"]),
        headers=st.dictionaries(names, texts, max_size=2),
        timeout=_opt(st.floats(min_value=0.1, max_value=100)),
        allowed_hosts=_opt(st.just(("example.com",))),
        follow_redirects=st.booleans(),
    )
    | st.builds(
        ExecSpec,
        command=st.just("echo {{q}}"),
        timeout=_opt(st.floats(0.1, 100)),
        limits=_opt(
            st.builds(
                LimitsSpec,
                cpu=_opt(st.floats(1, 3600)),
                memory=_opt(st.integers(1, 2**40)),
                file_size=_opt(st.integers(1, 2**40)),
                open_files=_opt(st.integers(1, 65536)),
                processes=_opt(st.integers(1, 65536)),
            )
        ),
    ),
)


@st.composite
def documents(draw: st.DrawFn) -> Document:
    agent_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    agent_specs = tuple(
        draw(agents(name, [n for n in agent_names if n != name])) for name in agent_names
    )
    tool_specs = tuple(draw(st.lists(tools, max_size=2, unique_by=lambda t: t.name)))
    workflow_names = draw(st.lists(names.filter(lambda n: n != "leaf"), max_size=2, unique=True))
    workflows = [
        WorkflowSpec(
            name=name,
            description=draw(texts),
            inputs=tuple(
                InputSpec(name=input_name, type="string", default=draw(_opt(texts)))
                for input_name in draw(st.lists(names, max_size=2, unique=True))
            ),
            steps=draw(steps(agent_names)),
            output=draw(plain),
        )
        for name in workflow_names
    ]
    workflows.append(WorkflowSpec(name="leaf", steps=(AgentStep(agent=agent_names[0], send="hi"),)))
    settings_ = Settings(
        default_model=draw(_opt(names)),
        sandbox=draw(_opt(texts)),
        budget=draw(_opt(dollars)),
        mcp_servers=tuple(
            MCPServerSpec(
                name=name, command="npx", args=("-y", "server"), timeout=draw(_opt(seconds))
            )
            for name in draw(st.lists(names, max_size=2, unique=True))
        ),
        skill_directories=tuple(draw(st.lists(texts, max_size=2))),
        rate_limit=draw(_opt(rate_limits)),
        prices=draw(
            st.dictionaries(names, st.fixed_dictionaries({"input": seconds, "output": seconds}))
        ),
        log_level=draw(st.sampled_from([None, "debug", "info", "warning"])),
        health=draw(
            _opt(
                st.builds(
                    HealthSpec,
                    stale_after=_opt(seconds.filter(lambda s: s > 0)),
                    max_iterations_ratio=_opt(st.sampled_from([0.5, 0.8, 1.0])),
                    consecutive_errors=_opt(st.integers(1, 10)),
                    cost_usd=_opt(dollars),
                )
            )
        ),
    )
    return Document(
        name=draw(texts),
        description=draw(texts),
        agents=agent_specs,
        tools=tool_specs,
        workflows=tuple(workflows),
        settings=settings_,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_dump_then_load_round_trips(document: Document) -> None:
    """load_document(dump_document(d)) == d for random valid documents."""
    assert load_document(dump_document(document)) == document


yaml_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "agents",
                    "workflows",
                    "steps",
                    "settings",
                    "tools",
                    "send",
                    "if",
                    "for",
                    "parallel",
                    "a",
                    "set",
                    "then",
                    "implementation",
                    "type",
                    "budget",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _check_never_crashes(text: str) -> None:
    try:
        load_document(text)
    except DSLError:
        pass
    for diagnostic in validate_text(text):
        assert diagnostic.severity in ("error", "warning")
        assert diagnostic.message


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable + "{}[]:-&*!|>'\"#", max_size=200))
def test_garbage_text_only_raises_dsl_error(text: str) -> None:
    """Random text never makes load_document raise anything but DSLError."""
    _check_never_crashes(text)


@settings(max_examples=200, deadline=None)
@given(yaml_values)
def test_random_yaml_structures_only_raise_dsl_error(value: Any) -> None:
    """Random YAML structures (dumped by ruamel) never crash the loader or the validator."""
    import io

    from ruamel.yaml import YAML

    stream = io.StringIO()
    YAML(typ="safe", pure=True).dump(value, stream)
    _check_never_crashes(stream.getvalue())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.text(max_size=30))
def test_agent_mappings_round_trip_as_yaml_and_as_json(document: Document, extra: str) -> None:
    """dump_agent's mapping reads back to the same agent, as YAML (dump_agents) and as the
    JSON the server turns into YAML (any text, emoji and line separators included)."""
    from vega_trio.dsl._compose import _json_as_yaml
    from vega_trio.dsl._dump import dump_agent, dump_agents
    from vega_trio.dsl._loader import read_document

    specs = tuple(attrs.evolve(a, system=a.system + extra) for a in document.agents)
    mappings = {a.name: dump_agent(a) for a in specs}
    for text in (dump_agents(mappings), _json_as_yaml({"agents": mappings})):
        loaded = read_document(text)
        assert loaded.diagnostics == [], [str(d) for d in loaded.diagnostics]
        assert loaded.document is not None and loaded.document.agents == specs
