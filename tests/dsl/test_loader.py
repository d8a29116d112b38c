"""The loader: every key and step form of SPEC §8.1/§8.2 becomes the right model object."""

from __future__ import annotations

import pathlib

import pytest

from vega_trio import InputFileError
from vega_trio.dsl import DSLError, load_document, load_file, validate_file, validate_text
from vega_trio.dsl._model import (
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
    SkillsSpec,
    SupervisionSpec,
    TryStep,
    WorkflowStep,
)

HERE = pathlib.Path(__file__).parent
EVERYTHING = HERE / "valid" / "everything.vega.yaml"

SEED = """\
name: MyTeam
agents:
  researcher:
    model: claude-sonnet-4-20250514
    system: You research topics thoroughly.
  writer:
    model: claude-sonnet-4-20250514
    system: You write clear summaries.
workflows:
  report:
    steps:
      - researcher:
          send: "Research {{topic}}"
          save: findings
      - writer:
          send: "Summarise: {{findings}}"
"""


@pytest.fixture(scope="module")
def everything() -> Document:
    return load_file(EVERYTHING)


def test_seed_report_workflow() -> None:
    """The seed's team.vega.yaml loads into two agents and the two-step report workflow."""
    doc = load_document(SEED, file="team.vega.yaml")
    assert doc.name == "MyTeam"
    assert [a.name for a in doc.agents] == ["researcher", "writer"]
    assert doc.agents[0].model == "claude-sonnet-4-20250514"
    assert doc.agents[1].system == "You write clear summaries."
    report = doc.workflow("report")
    assert report is not None
    assert report.steps == (
        AgentStep(agent="researcher", send="Research {{topic}}", save="findings"),
        AgentStep(agent="writer", send="Summarise: {{findings}}"),
    )


def test_seed_warns_only_about_topic() -> None:
    """validate on the seed gives one warning ({{topic}} may come from --task) and no error."""
    diagnostics = validate_text(SEED, file="team.vega.yaml")
    assert [str(d) for d in diagnostics] == [
        "team.vega.yaml:13:29: warning: workflows.report.steps[0].send: variable 'topic' is "
        "not defined before this use (declare it under workflows.report.inputs, save or set it "
        "in an earlier step, or pass it with --task topic=...)"
    ]


def test_document_and_settings(everything: Document) -> None:
    """Top-level keys and every settings key are read, durations and money converted."""
    doc = everything
    assert doc.name == "Everything"
    assert doc.description == "Every key and every step form."
    s = doc.settings
    assert s.default_model == "claude-sonnet-4-20250514"
    assert s.sandbox == "./workspace"
    assert s.budget == 100.0
    assert s.mcp_servers == (
        MCPServerSpec(
            name="filesystem",
            transport="stdio",
            command="npx",
            args=("-y", "@modelcontextprotocol/server-filesystem", "/workspace"),
            env={"DEBUG": "true"},
            cwd="/tmp",
            timeout=30.0,
        ),
        MCPServerSpec(
            name="github",
            url="https://mcp.example.com/mcp",
            headers={"Authorization": "Bearer ${GITHUB_TOKEN}"},
        ),
    )
    assert s.skill_directories == ("./skills", "~/.vega/skills")
    assert s.rate_limit == RateLimitSpec(
        requests_per_minute=60, tokens_per_minute=100000, strategy="reject"
    )
    assert s.prices == {
        "my-model": {"input": 1.5, "output": 6.0, "cache_write": 1.875, "cache_read": 0.15}
    }
    assert s.log_level == "info"
    assert s.health == HealthSpec(
        stale_after=120.0, max_iterations_ratio=0.8, consecutive_errors=3, cost_usd=1.0
    )
    assert s.retention_days == 30.0


def test_agent_keys(everything: Document) -> None:
    """Every agent key is read into AgentSpec and its nested specs."""
    researcher = everything.agent("researcher")
    assert researcher is not None
    assert researcher.model == "openai:llama3"
    assert researcher.system == "You research topics thoroughly."
    assert researcher.description == "Finds facts."
    assert researcher.temperature == 0.7
    assert researcher.max_tokens == 2048
    assert researcher.max_iterations == 20
    assert researcher.tools == (
        "read_file",
        "fetch_weather",
        "filesystem__*",
        "github__create_issue",
        "fetch_*",
    )
    assert (researcher.budget, researcher.budget_on_exceed) == (5.0, "block")
    assert researcher.budget_scope == "tree"
    assert researcher.timeout == 120.0
    assert researcher.supervision == SupervisionSpec(
        strategy="restart",
        max_restarts=5,
        window=300.0,
        backoff=BackoffSpec(kind="linear", initial=0.1, multiplier=1.5, max=30.0, jitter=0.1),
        restart_state="fresh",
    )
    assert researcher.retry == RetrySpec(
        max_attempts=4,
        backoff=BackoffSpec(kind="constant"),
        retry_on=("RateLimit", "Overloaded"),
    )
    assert researcher.rate_limit == RateLimitSpec(requests_per_minute=10)
    assert researcher.circuit_breaker == BreakerSpec(threshold=3, reset_after=60.0, half_open_max=2)
    assert researcher.skills == SkillsSpec(
        directories=("./agent-skills",),
        include=("coding-*", "review"),
        exclude=("deprecated-*",),
        max_active=2,
    )
    assert researcher.team == ("writer",)
    assert researcher.delegation == DelegationSpec(
        context_window=4, include_roles=("user",), blackboard=True
    )
    writer = everything.agent("writer")
    assert writer is not None
    assert (writer.budget, writer.budget_on_exceed) == (2.0, "warn")
    assert writer.retry == RetrySpec(max_attempts=2)


def test_tools(everything: Document) -> None:
    """Top-level http and exec tools keep params and every implementation key."""
    weather = everything.tool("fetch_weather")
    assert weather is not None
    assert weather.description == "Get weather for a city"
    assert weather.params == (
        ParamSpec(name="city", type="string", description="City name", required=True),
        ParamSpec(name="units", default="metric", enum=("metric", "imperial")),
    )
    assert weather.implementation == HttpSpec(
        url="https://api.weather.example/v1/current?city={{.city}}&units={{units}}",
        method="GET",
        headers={"Authorization": "Bearer ${WEATHER_API_KEY}"},
        query={"lang": "en"},
        timeout=10.0,
        max_response_bytes=65536,
        allowed_hosts=("api.weather.example",),
        follow_redirects=True,
    )
    script = everything.tool("run_script")
    assert script is not None
    assert script.params == (ParamSpec(name="script", allow_options=True),)
    assert script.implementation == ExecSpec(
        command="python3 {{script}}",
        timeout=60.0,
        shell=False,
        cwd="./workspace",
        max_output_bytes=10000,
        env={"PYTHONUNBUFFERED": "1"},
        limits=LimitsSpec(
            cpu=30.0, memory=512 * 1024**2, file_size=64_000_000, open_files=256, processes=64
        ),
    )


def test_workflow_inputs_and_output(everything: Document) -> None:
    """Inputs keep type, description, required, default and enum; output is kept as text."""
    main = everything.workflow("main")
    assert main is not None
    assert main.description == "Uses every step."
    assert main.inputs == (
        InputSpec(name="topic", description="What to research", required=True),
        InputSpec(name="count", type="integer", default=3),
        InputSpec(name="mode", default="fast", enum=("fast", "slow")),
        InputSpec(name="extra"),
    )
    assert main.output == "{{draft}}"


def test_every_step_form(everything: Document) -> None:
    """Each step form (agent short/long, if, for, parallel, try, repeat, set, workflow,
    return) becomes its step class with its keys."""
    main = everything.workflow("main")
    assert main is not None
    assert main.steps == (
        AgentStep(agent="researcher", send="Research {{topic}}"),
        AgentStep(
            agent="researcher",
            send="More on {{topic}}",
            save="findings",
            timeout=30.0,
            retry=2,
            continue_on_error=True,
            format="json",
        ),
        IfStep(
            condition="findings and count > 2",
            then=(AgentStep(agent="writer", send="Summarise {{findings}}"),),
            otherwise=(SetStep(values={"summary": "none"}),),
        ),
        ForStep(
            variable="item",
            items="findings | lines",
            steps=(AgentStep(agent="writer", send="Item {{loop.index}}: {{item}}"),),
            save="notes",
        ),
        ParallelStep(
            branches=(
                (AgentStep(agent="researcher", send="A {{topic}}", save="a"),),
                (AgentStep(agent="writer", send="B {{topic}}"), SetStep(values={"b": "done"})),
            ),
            save="both",
        ),
        TryStep(
            steps=(AgentStep(agent="writer", send="risky"),),
            catch=(SetStep(values={"failure": "{{error_class}}: {{error}}"}),),
        ),
        RepeatStep(
            steps=(AgentStep(agent="writer", send="Improve {{notes}}", save="draft"),),
            until="'good' in draft",
            max=3,
        ),
        SetStep(values={"title": "Notes on {{topic | upper}}", "n": 3}),
        WorkflowStep(workflow="helper", inputs={"text": "{{title}}"}, save="helped"),
        ReturnStep(value="{{helped}}"),
    )


def test_everything_has_no_diagnostics() -> None:
    """The every-key fixture validates with no error and no warning."""
    assert validate_file(EVERYTHING) == []


def test_positions_are_kept(everything: Document) -> None:
    """Model objects remember file, line, column and YAML path."""
    main = everything.workflow("main")
    assert main is not None
    where = main.steps[2].where
    assert (where.file, where.line, where.column, where.path) == (
        str(EVERYTHING),
        128,
        9,
        "workflows.main.steps[2]",
    )


def test_durations_and_money_forms() -> None:
    """Durations accept 250ms/1h30m/bare numbers; money accepts "$1,000", "5" and numbers."""
    doc = load_document(
        "settings: {budget: '$1,000'}\n"
        "agents:\n"
        "  a: {timeout: 1h30m, budget: 5}\n"
        "  b: {timeout: 250ms, budget: '5'}\n"
        "  c: {timeout: 12, circuit_breaker: {reset_after: 1.5}}\n"
    )
    assert doc.settings.budget == 1000.0
    assert [a.timeout for a in doc.agents] == [5400.0, 0.25, 12.0]
    assert [a.budget for a in doc.agents] == [5.0, 5.0, None]
    assert doc.agents[2].circuit_breaker == BreakerSpec(reset_after=1.5)


def test_agent_without_keys_and_empty_sections() -> None:
    """An agent written with no keys gets the defaults; empty tools/workflows are allowed."""
    doc = load_document("agents:\n  helper:\ntools:\nworkflows:\n")
    assert doc.agents[0].name == "helper"
    assert doc.agents[0].system == ""
    assert doc.tools == ()
    assert doc.workflows == ()


def test_load_document_raises_all_errors() -> None:
    """load_document raises one DSLError listing every error, one per line, in file order."""
    with pytest.raises(DSLError) as caught:
        load_document("agents:\n  a: {modle: x, temperature: hot}\n", file="f.yaml")
    error = caught.value
    assert [str(d) for d in error.diagnostics] == [
        "f.yaml:2:7: error: agents.a.modle: unknown key 'modle' in agent 'a' "
        "(did you mean 'model'?)",
        "f.yaml:2:30: error: agents.a.temperature: expected a number, got 'hot'",
    ]
    assert str(error).splitlines()[1:] == [str(d) for d in error.diagnostics]


def test_warnings_do_not_raise() -> None:
    """A document whose only problems are warnings loads."""
    doc = load_document("agents: {a: {}}\nworkflows:\n  w:\n    steps:\n      - a: '{{x}}'\n")
    assert doc.workflows[0].steps == (AgentStep(agent="a", send="{{x}}"),)


def test_missing_file(tmp_path: pathlib.Path) -> None:
    """A missing file is an InputFileError naming the file (nothing was parsed)."""
    missing = tmp_path / "nope.vega.yaml"
    with pytest.raises(InputFileError) as caught:
        load_file(missing)
    assert str(caught.value) == f"{missing}: document not found; check the path"
    assert caught.value.path == str(missing)
    with pytest.raises(InputFileError, match="not found"):
        validate_file(missing)


def test_non_utf8_file(tmp_path: pathlib.Path) -> None:
    """A file that is not UTF-8 is a clear InputFileError, not a UnicodeDecodeError."""
    path = tmp_path / "latin1.vega.yaml"
    path.write_bytes(b"agents: {caf\xe9: {}}\n")
    with pytest.raises(InputFileError, match=r"not UTF-8 text .* save it as UTF-8"):
        load_file(path)


def test_store_retention_days_must_be_a_positive_number() -> None:
    """settings.store.retention_days: 0, text and unknown keys are errors with their path."""
    for text, path in (
        ("retention_days: 0", "settings.store.retention_days"),
        ("retention_days: soon", "settings.store.retention_days"),
        ("retention: 3", "settings.store.retention"),
    ):
        with pytest.raises(DSLError) as caught:
            load_document(f"agents:\n  a: {{}}\nsettings:\n  store:\n    {text}\n")
        assert [d.source.path for d in caught.value.diagnostics] == [path]


def test_settings_prompt_caching_is_a_boolean_on_by_default() -> None:
    """settings.prompt_caching: on unless the document says false; not a boolean is an error
    with its path."""
    assert load_document("agents:\n  a: {}\n").settings.prompt_caching is True
    off = load_document("agents:\n  a: {}\nsettings:\n  prompt_caching: false\n")
    assert off.settings.prompt_caching is False
    with pytest.raises(DSLError) as caught:
        load_document("agents:\n  a: {}\nsettings:\n  prompt_caching: sometimes\n")
    assert [d.source.path for d in caught.value.diagnostics] == ["settings.prompt_caching"]
