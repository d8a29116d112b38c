"""The builder: every settings and agent key of a document reaches the runtime, and
has the effect a user would notice when a workflow runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from vega_trio import ErrorClass, OrchestratorConfig, SendTimeout
from vega_trio.agent import Delegation
from vega_trio.dsl._build import build_agents, orchestrator_config
from vega_trio.dsl._interpreter import WorkflowError, open_runner
from vega_trio.dsl._model import (
    AgentSpec,
    AgentStep,
    BackoffSpec,
    BreakerSpec,
    DelegationSpec,
    Document,
    ExecSpec,
    HttpSpec,
    MCPServerSpec,
    ParamSpec,
    RateLimitSpec,
    RetrySpec,
    Settings,
    SkillsSpec,
    SupervisionSpec,
    ToolSpec,
    WorkflowSpec,
)
from vega_trio.llm import LLMRequest
from vega_trio.resilience import Budget, CircuitBreaker, RateLimit, RetryPolicy
from vega_trio.runtime import Backoff, Supervision
from vega_trio.skills import SkillError, SkillsPrompt
from vega_trio.testing import ScriptedLLM
from vega_trio.testing import Step as Reply
from vega_trio.tools.mcp import MCPServerConfig

from .test_interpreter import agent_of, last_user_text, routed


def doc_with(
    *agents: AgentSpec,
    steps: tuple[Any, ...] = (),
    settings: Settings | None = None,
    tools: tuple[ToolSpec, ...] = (),
) -> Document:
    """A document with these agents, one workflow ``main`` of ``steps``."""
    return Document(
        agents=agents,
        tools=tools,
        workflows=(WorkflowSpec(name="main", steps=steps),) if steps else (),
        settings=settings or Settings(),
    )


def spec(name: str, **options: Any) -> AgentSpec:
    """An agent spec whose system prompt is ``You are <name>.``."""
    return AgentSpec(name=name, system=f"You are {name}.", **options)


# -- orchestrator options ------------------------------------------------------------------


def test_orchestrator_config_maps_every_setting(tmp_path: Path) -> None:
    """default_model, budget, rate_limit, prices, sandbox (created, relative to the file),
    MCP servers and top-level tools all become open_orchestrator options."""
    settings = Settings(
        default_model="claude-haiku-4-5",
        budget=2.5,
        rate_limit=RateLimitSpec(requests_per_minute=60, tokens_per_minute=1000, strategy="reject"),
        prices={"local-model": {"input": 1.0, "output": 2.0}},
        sandbox="work/box",
        mcp_servers=(
            MCPServerSpec(
                name="fs", command="npx", args=("-y", "server"), env={"A": "1"}, cwd="srv"
            ),
            MCPServerSpec(
                name="web", url="http://127.0.0.1:9/mcp", headers={"X": "y"}, timeout=5.0
            ),
        ),
    )
    tools = (
        ToolSpec(
            name="fetch",
            description="Fetch a page",
            params=(ParamSpec(name="url", description="the page"),),
            implementation=HttpSpec(url="https://example.com/{{url}}", timeout=3.0),
        ),
        ToolSpec(
            name="shout",
            params=(ParamSpec(name="msg"), ParamSpec(name="times", type="integer", default=1)),
            implementation=ExecSpec(command="echo {{msg}}"),
        ),
    )
    config = orchestrator_config(
        doc_with(spec("a"), settings=settings, tools=tools), base_dir=tmp_path
    )
    assert isinstance(config, OrchestratorConfig)
    assert config.default_model == "claude-haiku-4-5"
    assert config.budget == Budget(limit=2.5)
    assert config.rate_limit == RateLimit(
        requests_per_minute=60, tokens_per_minute=1000, strategy="reject"
    )
    assert config.prices is not None
    price = config.prices.lookup("local-model")
    assert price is not None and (price.input, price.output) == (1.0, 2.0)
    assert config.prices.lookup("claude-haiku-4-5") is not None  # the packaged table stays
    assert config.sandbox is not None
    assert config.sandbox.root == (tmp_path / "work" / "box").resolve()
    assert (tmp_path / "work" / "box").is_dir()
    fs, web = config.mcp_servers
    assert isinstance(fs, MCPServerConfig)
    assert (fs.name, fs.command, fs.args, dict(fs.env), fs.cwd, fs.transport) == (
        "fs",
        "npx",
        ("-y", "server"),
        {"A": "1"},
        str(tmp_path / "srv"),
        "stdio",
    )
    assert (web.url, dict(web.headers), web.timeout, web.transport) == (
        "http://127.0.0.1:9/mcp",
        {"X": "y"},
        5.0,
        "http",
    )
    fetch, shout = config.tools
    assert (fetch.name, fetch.description) == ("fetch", "Fetch a page")
    assert fetch.input_schema["required"] == ["url"]
    assert shout.input_schema["properties"]["times"]["type"] == "integer"
    assert shout.input_schema["required"] == ["msg"]


def test_empty_settings_leave_the_orchestrator_defaults(tmp_path: Path) -> None:
    """A document without settings or tools keeps every default of the config."""
    config = orchestrator_config(doc_with(spec("a")), base_dir=tmp_path)
    default = OrchestratorConfig()
    for field in attrs.fields(OrchestratorConfig):
        if field.name != "tools":  # a fresh (empty) registry each; compared by size below
            assert getattr(config, field.name) == getattr(default, field.name), field.name
    assert len(config.tools) == 0


# -- agents --------------------------------------------------------------------------------


def test_build_agents_maps_every_agent_key(tmp_path: Path) -> None:
    """Each agent key becomes the matching Agent field or runtime object."""
    full = spec(
        "lead",
        model="claude-haiku-4-5",
        fallback_model="openai:gpt-4o-mini",
        description="Leads the team",
        temperature=0.3,
        max_tokens=1000,
        max_iterations=7,
        tools=("read_file", "fs__*"),
        budget=1.5,
        budget_on_exceed="warn",
        budget_scope="tree",
        supervision=SupervisionSpec(
            strategy="restart",
            max_restarts=4,
            window=30.0,
            backoff=BackoffSpec(kind="constant", initial=2.0),
            restart_state="fresh",
        ),
        retry=RetrySpec(
            max_attempts=5,
            backoff=BackoffSpec(kind="linear", initial=1.0, max=9.0),
            retry_on=("rate_limit",),
        ),
        rate_limit=RateLimitSpec(requests_per_minute=10),
        circuit_breaker=BreakerSpec(threshold=2, reset_after=15.0, half_open_max=3),
        team=("helper",),
        delegation=DelegationSpec(context_window=4, include_roles=("user",), blackboard=True),
        timeout=45.0,
    )
    agents = build_agents(doc_with(full, spec("helper")), base_dir=tmp_path)
    lead, helper = agents["lead"], agents["helper"]
    assert list(agents) == ["lead", "helper"]
    assert (lead.model, lead.description, lead.temperature) == (
        "claude-haiku-4-5",
        "Leads the team",
        0.3,
    )
    assert lead.fallback_model == "openai:gpt-4o-mini" and helper.fallback_model is None
    assert (lead.max_tokens, lead.max_iterations, lead.send_timeout) == (1000, 7, 45.0)
    assert lead.tool_names == ("read_file", "fs__*")
    assert lead.budget == Budget(limit=1.5, on_exceed="warn")
    assert lead.budget_scope == "tree"
    assert lead.supervision == Supervision(
        strategy="restart",
        max_restarts=4,
        window=30.0,
        backoff=Backoff(kind="constant", initial=2.0, multiplier=2.0, max=30.0, jitter=0.0),
        restart_state="fresh",
    )
    assert lead.retry == RetryPolicy(
        max_attempts=5,
        backoff=Backoff(kind="linear", initial=1.0, multiplier=2.0, max=9.0),
        retry_on=("rate_limit",),
    )
    assert lead.rate_limit == RateLimit(requests_per_minute=10)
    breaker = lead.circuit_breaker
    assert isinstance(breaker, CircuitBreaker)
    assert (breaker.threshold, breaker.reset_after, breaker.half_open_max) == (2, 15.0, 3)
    assert lead.team == (helper,)
    assert lead.delegation == Delegation(context_window=4, include_roles=("user",), blackboard=True)
    assert lead.system == "You are lead."
    # unset keys keep the Agent defaults
    assert (helper.max_tokens, helper.max_iterations, helper.retry) == (4096, 50, RetryPolicy())
    assert helper.supervision is None and helper.circuit_breaker is None


def test_each_build_gets_fresh_circuit_breakers(tmp_path: Path) -> None:
    """Breakers hold state, so every built agent gets its own."""
    doc = doc_with(
        spec("a", circuit_breaker=BreakerSpec()), spec("b", circuit_breaker=BreakerSpec())
    )
    first, second = build_agents(doc, base_dir=tmp_path), build_agents(doc, base_dir=tmp_path)
    breakers = [first["a"].circuit_breaker, first["b"].circuit_breaker, second["a"].circuit_breaker]
    assert len({id(b) for b in breakers}) == 3


def test_team_cycle_falls_back_to_names(tmp_path: Path) -> None:
    """Agents in each other's team are built; the member still being built is named."""
    agents = build_agents(
        doc_with(spec("a", team=("b",)), spec("b", team=("a",))), base_dir=tmp_path
    )
    assert agents["a"].team == (agents["b"],)
    assert agents["b"].team == ("a",)


def test_runtime_refusal_names_the_agent(tmp_path: Path) -> None:
    """A value the runtime refuses is an error naming the agent."""
    with pytest.raises(ValueError, match=r"agent .a.*max_tokens"):
        build_agents(doc_with(spec("a", max_tokens=0)), base_dir=tmp_path)


# -- effects when a workflow runs ------------------------------------------------------------


async def run_main(doc: Document, llm: ScriptedLLM, base_dir: Path) -> Any:
    """Run ``main`` and return its result."""
    async with open_runner(doc, llm=llm, base_dir=base_dir) as runner:
        return await runner.run("main", {})


async def test_model_temperature_and_max_tokens_are_sent(tmp_path: Path) -> None:
    """An agent's model, temperature and max_tokens are what the backend receives;
    settings.default_model is used by agents that name none."""
    llm = routed()
    doc = doc_with(
        spec("a", model="claude-haiku-4-5", temperature=0.2, max_tokens=123),
        spec("b"),
        steps=(AgentStep(agent="a", send="x"), AgentStep(agent="b", send="y")),
        settings=Settings(default_model="claude-opus-4-1"),
    )
    await run_main(doc, llm, tmp_path)
    a, b = llm.requests
    assert (a.model, a.temperature, a.max_tokens) == ("claude-haiku-4-5", 0.2, 123)
    assert b.model == "claude-opus-4-1"


async def test_agent_budget_blocks_the_call_that_would_go_over(tmp_path: Path) -> None:
    """`budget: "$0.0005"` lets the first call through; its long reply spends more than
    that, so the next call is refused with budget_exceeded before any request is sent."""
    llm = routed(lambda agent, text, request: "long reply " * 40)
    doc = doc_with(
        spec("a", budget=0.0005),
        steps=(AgentStep(agent="a", send="first"), AgentStep(agent="a", send="second")),
    )
    with pytest.raises(WorkflowError) as info:
        await run_main(doc, llm, tmp_path)
    assert info.value.error_class == "budget_exceeded"
    assert info.value.path == "workflows.main.steps[1]"
    assert len(llm.requests) == 1


async def test_global_budget_blocks_across_agents(tmp_path: Path) -> None:
    """`settings.budget` counts every agent's spend."""
    llm = routed(lambda agent, text, request: "long reply " * 40)
    doc = doc_with(
        spec("a"),
        spec("b"),
        steps=(AgentStep(agent="a", send="first"), AgentStep(agent="b", send="second")),
        settings=Settings(budget=0.0005),
    )
    with pytest.raises(WorkflowError) as info:
        await run_main(doc, llm, tmp_path)
    assert info.value.error_class == "budget_exceeded"
    assert len(llm.requests) == 1


async def test_supervision_restarts_a_crashed_process(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With `supervision: restart`, a send failing with a retryable error crashes the
    process, which is restarted and answers the re-delivered message; without it the
    step fails."""
    script = iter([Reply.error(ErrorClass.OVERLOADED, "busy"), Reply.text("recovered")])
    supervised = doc_with(
        spec(
            "a",
            retry=RetrySpec(max_attempts=1),
            supervision=SupervisionSpec(max_restarts=2, backoff=BackoffSpec(initial=1.0)),
        ),
        steps=(AgentStep(agent="a", send="go"),),
    )
    llm = routed(lambda agent, text, request: next(script))
    async with open_runner(supervised, llm=llm, base_dir=tmp_path) as runner:
        with runner.orchestrator.subscribe(types=["process.restarted"]) as restarts:
            result = await runner.run("main", {})
            assert restarts.receive_nowait() is not None
    assert result.output == "recovered"

    unsupervised = doc_with(
        spec("a", retry=RetrySpec(max_attempts=1)), steps=(AgentStep(agent="a", send="go"),)
    )
    llm = routed(lambda agent, text, request: Reply.error(ErrorClass.OVERLOADED, "busy"))
    with pytest.raises(WorkflowError) as info:
        await run_main(unsupervised, llm, tmp_path)
    assert info.value.error_class == "overloaded"


async def test_retry_policy_retries_llm_calls_with_its_backoff(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """`retry: {max_attempts: 3, backoff: constant 2s}` recovers from two overloads,
    waiting 2 s before each retry."""
    script = iter(
        [Reply.error(ErrorClass.OVERLOADED), Reply.error(ErrorClass.OVERLOADED), Reply.text("ok")]
    )
    llm = routed(lambda agent, text, request: next(script))
    doc = doc_with(
        spec(
            "a",
            retry=RetrySpec(max_attempts=3, backoff=BackoffSpec(kind="constant", initial=2.0)),
        ),
        steps=(AgentStep(agent="a", send="go"),),
    )
    start = trio.current_time()
    assert (await run_main(doc, llm, tmp_path)).output == "ok"
    assert trio.current_time() - start == pytest.approx(4.0)


async def test_agent_rate_limit_queues_calls(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """`rate_limit: {requests_per_minute: 1}` makes the second call wait for the window."""
    llm = routed()
    doc = doc_with(
        spec("a", rate_limit=RateLimitSpec(requests_per_minute=1)),
        steps=(AgentStep(agent="a", send="1"), AgentStep(agent="a", send="2")),
    )
    start = trio.current_time()
    await run_main(doc, llm, tmp_path)
    assert trio.current_time() - start >= 59.0
    assert len(llm.requests) == 2


async def test_settings_rate_limit_is_shared_per_model(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """`settings.rate_limit` is shared by every agent on a model; another model has its
    own window."""
    llm = routed()
    doc = doc_with(
        spec("a"),
        spec("b"),
        spec("c", model="claude-haiku-4-5"),
        steps=(
            AgentStep(agent="a", send="1"),
            AgentStep(agent="c", send="other model"),
            AgentStep(agent="b", send="2"),
        ),
        settings=Settings(rate_limit=RateLimitSpec(requests_per_minute=1)),
    )
    times: list[float] = []
    start = trio.current_time()

    def record(event: Any) -> None:
        if event.kind == "step_finished":
            times.append(trio.current_time() - start)

    async with open_runner(doc, llm=llm, base_dir=tmp_path) as runner:
        await runner.run("main", {}, on_progress=record)
    assert times[0] < 1.0 and times[1] < 1.0
    assert times[2] >= 59.0


async def test_circuit_breaker_fails_fast_once_open(tmp_path: Path) -> None:
    """`circuit_breaker: {threshold: 1}`: after one failure the next step fails without
    calling the model."""
    llm = routed(lambda agent, text, request: Reply.error(ErrorClass.OVERLOADED, "down"))
    doc = doc_with(
        spec(
            "a",
            retry=RetrySpec(max_attempts=1),
            circuit_breaker=BreakerSpec(threshold=1, reset_after=600.0),
        ),
        steps=(
            AgentStep(agent="a", send="1", continue_on_error=True),
            AgentStep(agent="a", send="2"),
        ),
    )
    with pytest.raises(WorkflowError) as info:
        await run_main(doc, llm, tmp_path)
    assert "circuit" in str(info.value).lower()
    assert len(llm.requests) == 1


async def test_agent_timeout_is_the_send_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """An agent's `timeout` bounds each send (SendTimeout), independent of steps."""
    llm = routed(lambda agent, text, request: Reply.text("late", delay=60.0))
    doc = doc_with(spec("a", timeout=5.0), steps=(AgentStep(agent="a", send="x"),))
    start = trio.current_time()
    with pytest.raises(WorkflowError) as info:
        await run_main(doc, llm, tmp_path)
    assert isinstance(info.value.cause, SendTimeout)
    assert trio.current_time() - start == pytest.approx(5.0)


async def test_max_iterations_bounds_the_tool_loop(tmp_path: Path) -> None:
    """`max_iterations: 2` stops an agent that keeps calling tools."""
    llm = routed(lambda agent, text, request: Reply.tool_call("list_files", {"path": "."}))
    doc = doc_with(
        spec("a", max_iterations=2, tools=("list_files",)),
        steps=(AgentStep(agent="a", send="x"),),
        settings=Settings(sandbox="box"),
    )
    with pytest.raises(WorkflowError) as info:
        await run_main(doc, llm, tmp_path)
    assert info.value.error_class == "max_iterations_exceeded"
    assert len(llm.requests) == 2


def tool_then_text(name: str, arguments: dict[str, Any]) -> Any:
    """A responder: call the tool once, then reply with the tool's result."""

    def respond(agent: str, text: str, request: LLMRequest) -> Reply | str:
        results = request.messages[-1].tool_results
        if results:
            return f"tool said: {results[0].content}"
        return Reply.tool_call(name, arguments)

    return respond


async def test_builtin_tools_by_name_work_in_the_sandbox(tmp_path: Path) -> None:
    """`tools: [write_file]` with `settings.sandbox` lets the agent write inside it."""
    llm = routed(tool_then_text("write_file", {"path": "notes/a.txt", "content": "hello"}))
    doc = doc_with(
        spec("a", tools=("write_file",)),
        steps=(AgentStep(agent="a", send="write it"),),
        settings=Settings(sandbox="box"),
    )
    result = await run_main(doc, llm, tmp_path)
    assert (tmp_path / "box" / "notes" / "a.txt").read_text() == "hello"
    assert result.output.startswith("tool said:")
    assert [t.name for t in llm.requests[0].tools] == ["write_file"]


async def test_unknown_tool_name_fails_the_step_clearly(tmp_path: Path) -> None:
    """An agent asking for a tool nobody provides fails its first step, naming it."""
    doc = doc_with(spec("a", tools=("nope",)), steps=(AgentStep(agent="a", send="x"),))
    with pytest.raises(WorkflowError) as info:
        await run_main(doc, routed(), tmp_path)
    assert "'nope'" in str(info.value)
    assert info.value.error_class == "tool_not_found"


async def test_declarative_exec_tool_runs_in_the_sandbox(tmp_path: Path) -> None:
    """A top-level exec tool runs for real: a parameter fills one argument (no shell
    injection), and without `cwd` it runs in the sandbox."""
    tools = (
        ToolSpec(
            name="shout",
            params=(ParamSpec(name="msg"),),
            implementation=ExecSpec(command="echo {{msg}}"),
        ),
        ToolSpec(name="where", implementation=ExecSpec(command="pwd")),
    )
    settings = Settings(sandbox="box")
    llm = routed(tool_then_text("shout", {"msg": "hi; echo injected"}))
    doc = doc_with(
        spec("a", tools=("shout",)),
        steps=(AgentStep(agent="a", send="x"),),
        settings=settings,
        tools=tools,
    )
    with trio.fail_after(20):
        result = await run_main(doc, llm, tmp_path)
    assert result.output.strip() == "tool said: hi; echo injected"
    llm = routed(tool_then_text("where", {}))
    doc = doc_with(
        spec("a", tools=("where",)),
        steps=(AgentStep(agent="a", send="x"),),
        settings=settings,
        tools=tools,
    )
    with trio.fail_after(20):
        result = await run_main(doc, llm, tmp_path)
    assert Path(result.output.removeprefix("tool said: ").strip()) == (tmp_path / "box").resolve()


def write_skill(directory: Path, name: str, keyword: str) -> None:
    """A skill file triggered by ``keyword``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.skill.md").write_text(
        f"---\nname: {name}\ndescription: {name} help\ntriggers:\n"
        f"  - type: keyword\n    keywords: [{keyword}]\n---\nINSTRUCTIONS FOR {name.upper()}\n"
    )


async def test_skills_are_injected_when_the_message_calls_for_them(tmp_path: Path) -> None:
    """Global and agent skill directories are loaded (a missing global one is skipped),
    `include` filters them, and a matching message gets them under # Active Skills."""
    write_skill(tmp_path / "skills", "code-review", "review")
    write_skill(tmp_path / "skills", "deprecated-old", "review")
    write_skill(tmp_path / "mine", "poetry", "poem")
    llm = routed()
    doc = doc_with(
        spec(
            "a",
            skills=SkillsSpec(directories=("mine",), exclude=("deprecated-*",), max_active=2),
        ),
        steps=(
            AgentStep(agent="a", send="please review this"),
            AgentStep(agent="a", send="write a poem"),
            AgentStep(agent="a", send="nothing special"),
        ),
        settings=Settings(skill_directories=("skills", "~/no-such-vega-skills-dir")),
    )
    agents = build_agents(doc, base_dir=tmp_path)
    assert isinstance(agents["a"].system, SkillsPrompt)
    await run_main(doc, llm, tmp_path)
    review, poem, plain = (r.system for r in llm.requests)
    assert "# Active Skills" in review and "INSTRUCTIONS FOR CODE-REVIEW" in review
    assert "DEPRECATED" not in review
    assert "INSTRUCTIONS FOR POETRY" in poem
    assert plain == "You are a."


def test_a_skill_directory_named_twice_is_read_once_and_include_spans_all(
    tmp_path: Path,
) -> None:
    """The same directory globally and on the agent is loaded once (no duplicate-name
    error), and an include naming a skill of the agent's own directory is not an error
    for the global one."""
    write_skill(tmp_path / "skills", "code-review", "review")
    write_skill(tmp_path / "mine", "poetry", "poem")
    doc = doc_with(
        spec("a", skills=SkillsSpec(directories=("skills", "mine"), include=("poetry",))),
        settings=Settings(skill_directories=("skills",)),
    )
    system = build_agents(doc, base_dir=tmp_path)["a"].system
    assert isinstance(system, SkillsPrompt)
    assert [skill.name for skill in system.skills] == ["poetry"]


def test_missing_agent_skill_directory_is_an_error(tmp_path: Path) -> None:
    """An agent's own skill directory must exist."""
    doc = doc_with(spec("a", skills=SkillsSpec(directories=("nowhere",))))
    with pytest.raises(SkillError, match="nowhere"):
        build_agents(doc, base_dir=tmp_path)


async def test_team_delegation_reaches_the_member_and_its_process_is_stopped(
    tmp_path: Path,
) -> None:
    """`team: [helper]` gives the lead a delegate tool; the helper answers as a child
    process, which is stopped when the run ends."""

    def respond(agent: str, text: str, request: LLMRequest) -> Reply | str:
        if agent == "helper":
            return f"helped with {text}"
        results = request.messages[-1].tool_results
        if results:
            return f"final: {results[0].content}"
        return Reply.tool_call("delegate", {"agent": "helper", "message": "the sub task"})

    llm = routed(respond)
    doc = doc_with(
        spec("lead", team=("helper",), delegation=DelegationSpec(context_window=0)),
        spec("helper"),
        steps=(AgentStep(agent="lead", send="big task"),),
    )
    async with open_runner(doc, llm=llm, base_dir=tmp_path) as runner:
        result = await runner.run("main", {})
        assert runner.orchestrator.processes() == []
    assert result.output == "final: helped with the sub task"
    assert [agent_of(r) for r in llm.requests] == ["lead", "helper", "lead"]
    assert last_user_text(llm.requests[1]) == "the sub task"
    assert result.cost_usd > 0


def test_prices_from_settings_are_used_for_costs(tmp_path: Path) -> None:
    """A price override replaces the packaged price of that model."""
    config = orchestrator_config(
        doc_with(
            spec("a"),
            settings=Settings(prices={"claude-haiku-4-5": {"input": 100.0, "output": 200.0}}),
        ),
        base_dir=tmp_path,
    )
    assert config.prices is not None
    price = config.prices.lookup("claude-haiku-4-5")
    assert price is not None and (price.input, price.output) == (100.0, 200.0)
