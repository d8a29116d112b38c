"""The workflow interpreter: every step type, inputs, templates in steps, results."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from vega_trio import ErrorClass
from vega_trio.dsl import TemplateError
from vega_trio.dsl._interpreter import (
    ProgressEvent,
    ReplyFormatError,
    RunResult,
    WorkflowError,
    WorkflowInputError,
    open_runner,
)
from vega_trio.dsl._model import (
    AgentSpec,
    AgentStep,
    Document,
    ForStep,
    IfStep,
    InputSpec,
    ParallelStep,
    RepeatStep,
    ReturnStep,
    SetStep,
    Source,
    Step,
    TryStep,
    WorkflowSpec,
    WorkflowStep,
)
from vega_trio.llm import LLMRequest
from vega_trio.testing import ScriptedLLM
from vega_trio.testing import Step as Reply

# -- helpers (shared with the other test_interpreter_* modules) ----------------------------

Responder = Callable[[str, str, LLMRequest], "Reply | str"]


def agent_of(request: LLMRequest) -> str:
    """The agent a request comes from (its system prompt is ``You are <name>.``)."""
    return request.system.removeprefix("You are ").split(".")[0]


def last_user_text(request: LLMRequest) -> str:
    """The text of the request's last user turn."""
    return next(m.text for m in reversed(request.messages) if m.role == "user")


def routed(respond: Responder | None = None) -> ScriptedLLM:
    """A scripted LLM whose reply is ``respond(agent, message, request)``, by default
    ``"<agent>: <message>"``."""

    def responder(request: LLMRequest) -> Reply | str:
        agent, text = agent_of(request), last_user_text(request)
        if respond is None:
            return f"{agent}: {text}"
        return respond(agent, text, request)

    return ScriptedLLM(responder=responder)


def document(
    *workflows: WorkflowSpec,
    agents: Sequence[str] = ("researcher", "writer"),
    **agent_options: Any,
) -> Document:
    """A document with these workflows and agents (system prompt ``You are <name>.``)."""
    return Document(
        agents=tuple(
            AgentSpec(name=name, system=f"You are {name}.", **agent_options) for name in agents
        ),
        workflows=workflows,
    )


def workflow(
    *steps: Step,
    name: str = "main",
    inputs: Sequence[InputSpec] = (),
    output: Any = None,
) -> WorkflowSpec:
    """A workflow of these steps."""
    return WorkflowSpec(name=name, steps=steps, inputs=tuple(inputs), output=output)


async def run(
    doc: Document,
    inputs: Mapping[str, Any] | None = None,
    *,
    llm: ScriptedLLM | None = None,
    name: str = "main",
    progress: list[ProgressEvent] | None = None,
) -> RunResult:
    """Run one workflow of ``doc`` on a fresh runner."""
    async with open_runner(doc, llm=llm or routed(), base_dir=Path.cwd()) as runner:
        return await runner.run(
            name, inputs or {}, on_progress=None if progress is None else progress.append
        )


def sent(llm: ScriptedLLM, agent: str | None = None) -> list[str]:
    """The messages an agent (or every agent) was sent, in order."""
    return [last_user_text(r) for r in llm.requests if agent is None or agent_of(r) == agent]


# -- agent steps ---------------------------------------------------------------------------


async def test_seed_report_reply_reaches_writer_through_save() -> None:
    """The researcher's reply is saved and rendered into the writer's message; the
    writer's reply is the result."""
    llm = routed()
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="Research {{topic}}", save="findings"),
            AgentStep(agent="writer", send="Write about: {{findings}}"),
        )
    )
    result = await run(doc, {"topic": "Go concurrency"}, llm=llm)
    assert sent(llm) == [
        "Research Go concurrency",
        "Write about: researcher: Research Go concurrency",
    ]
    assert result.output == "writer: Write about: researcher: Research Go concurrency"
    assert result.variables["findings"] == "researcher: Research Go concurrency"
    assert result.steps_run == 2
    assert result.input_tokens > 0 and result.output_tokens > 0 and result.cost_usd > 0


async def test_output_template_wins_over_last_result() -> None:
    """`output` is rendered with the final variables; a single placeholder keeps its type."""
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="a", save="first"),
            SetStep(values={"items": ["x", "y"]}),
            output="{{ items }}",
        )
    )
    assert (await run(doc)).output == ["x", "y"]


async def test_undefined_variable_fails_the_step_naming_path_and_variable() -> None:
    """An undefined variable in `send` is an error naming the step and the variable; no
    LLM call is made."""
    llm = routed()
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="ok", save="a"),
            AgentStep(
                agent="writer",
                send="Use {{ findngs }}",
                where=Source(file="team.vega.yaml", line=9, column=7),
            ),
        )
    )
    with pytest.raises(WorkflowError) as info:
        await run(doc, llm=llm)
    error = info.value
    assert error.path == "workflows.main.steps[1]"
    assert isinstance(error.cause, TemplateError)
    assert error.cause.variable == "findngs"
    assert error.error_class == "template_error"
    assert str(error).startswith("team.vega.yaml:9:7: workflows.main.steps[1] (writer): ")
    assert "findngs" in str(error)
    assert sent(llm) == ["ok"]


async def test_default_filter_handles_an_undefined_variable() -> None:
    """`default` turns an undefined variable into its fallback instead of an error."""
    llm = routed()
    doc = document(workflow(AgentStep(agent="writer", send="Tone: {{ tone | default:'plain' }}")))
    await run(doc, llm=llm)
    assert sent(llm) == ["Tone: plain"]


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("{{ name | upper }}", {"name": "ada"}, "ADA"),
        ("{{ name | lower }}", {"name": "ADA"}, "ada"),
        ("[{{ name | trim }}]", {"name": "  ada \n"}, "[ada]"),
        ("{{ missing | default:'n/a' }}", {}, "n/a"),
        ("{{ text | truncate:5 }}", {"text": "abcdefghij"}, "abcde..."),
        ("{{ items | join:' + ' }}", {"items": ["a", "b"]}, "a + b"),
        ("{{ text | lines }} lines", {"text": "a\nb\nc"}, "3 lines"),
        ("{{ text | words }} words", {"text": "one two  three"}, "3 words"),
        ("{{ items | length }}", {"items": [1, 2, 3, 4]}, "4"),
        ("{{ items | first }}", {"items": ["x", "y"]}, "x"),
        ("{{ items | last }}", {"items": ["x", "y"]}, "y"),
        ("{{ data | json }}", {"data": {"k": [1, "é"]}}, '{"k": [1, "é"]}'),
        ("{{ name | trim | upper | truncate:3 }}", {"name": " hello "}, "HEL..."),
    ],
)
async def test_filters_in_a_send(template: str, variables: dict[str, Any], expected: str) -> None:
    """Every filter (and a chain) works in an agent step's message."""
    llm = routed()
    await run(document(workflow(AgentStep(agent="writer", send=template))), variables, llm=llm)
    assert sent(llm) == [expected]


async def test_format_json_parses_plain_and_fenced_replies() -> None:
    """`format: json` stores data: the whole reply, or a ```json fenced block in prose."""
    replies = iter(['{"score": 8, "tags": ["ok"]}', "Sure:\n```json\n[1, 2]\n```\nDone."])
    llm = routed(lambda agent, text, request: next(replies))
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="a", save="review", format="json"),
            AgentStep(agent="researcher", send="b", save="numbers", format="json"),
            IfStep(
                condition="review.score >= 7 and 'ok' in review.tags",
                then=(ReturnStep(value="{{ numbers | last }}"),),
            ),
        )
    )
    result = await run(doc, llm=llm)
    assert result.variables["review"] == {"score": 8, "tags": ["ok"]}
    assert result.output == 2


async def test_format_json_rejects_prose_with_a_clear_error() -> None:
    """A reply that is not JSON fails the step with a ReplyFormatError that says so."""
    llm = routed(lambda agent, text, request: "I think it is fine.")
    doc = document(workflow(AgentStep(agent="researcher", send="a", format="json")))
    with pytest.raises(WorkflowError) as info:
        await run(doc, llm=llm)
    assert isinstance(info.value.cause, ReplyFormatError)
    assert "not JSON" in str(info.value)
    assert "I think it is fine." in str(info.value)
    assert "format: json" in str(info.value)


async def test_step_retry_sends_again_after_a_failure() -> None:
    """`retry: 1` tries a failed step once more; the second reply is saved."""
    script = iter([Reply.error(ErrorClass.INVALID_REQUEST, "bad request"), Reply.text("fine")])
    llm = routed(lambda agent, text, request: next(script))
    doc = document(workflow(AgentStep(agent="researcher", send="go", save="x", retry=1)))
    result = await run(doc, llm=llm)
    assert result.variables["x"] == "fine"
    assert len(llm.requests) == 2


async def test_step_without_retry_fails_once() -> None:
    """Without `retry`, one failure fails the workflow with the LLM error as cause."""
    llm = routed(lambda agent, text, request: Reply.error(ErrorClass.INVALID_REQUEST, "nope"))
    doc = document(workflow(AgentStep(agent="researcher", send="go")))
    with pytest.raises(WorkflowError) as info:
        await run(doc, llm=llm)
    assert info.value.error_class == "invalid_request"
    assert "nope" in str(info.value)
    assert len(llm.requests) == 1


async def test_continue_on_error_records_the_error_and_goes_on() -> None:
    """`continue_on_error` sets `error` and `error_class` and runs the next step."""
    llm = routed(
        lambda agent, text, request: (
            Reply.error(ErrorClass.AUTHENTICATION, "bad key") if agent == "researcher" else "ok"
        )
    )
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="a", save="r", continue_on_error=True),
            AgentStep(agent="writer", send="failed with {{ error_class }}: {{ error }}"),
        )
    )
    result = await run(doc, llm=llm)
    assert sent(llm, "writer") == ["failed with authentication: bad key"]
    assert "r" not in result.variables
    assert result.output == "ok"


# -- inputs --------------------------------------------------------------------------------


async def test_inputs_are_typed_and_defaults_applied() -> None:
    """Text inputs are coerced to their declared types; defaults fill missing inputs."""
    doc = document(
        workflow(
            IfStep(
                condition="count > 2 and verbose and 'b' in tags and opts.deep",
                then=(SetStep(values={"ok": True}),),
                otherwise=(SetStep(values={"ok": False}),),
            ),
            inputs=[
                InputSpec(name="count", type="integer"),
                InputSpec(name="ratio", type="number", default="0.5"),
                InputSpec(name="verbose", type="boolean"),
                InputSpec(name="tags", type="array"),
                InputSpec(name="opts", type="object"),
                InputSpec(name="tone", default="formal"),
            ],
        )
    )
    result = await run(
        doc, {"count": "3", "verbose": "yes", "tags": '["a", "b"]', "opts": '{"deep": true}'}
    )
    variables = result.variables
    assert variables["count"] == 3
    assert variables["ratio"] == 0.5
    assert variables["verbose"] is True
    assert variables["tags"] == ["a", "b"]
    assert variables["opts"] == {"deep": True}
    assert variables["tone"] == "formal"
    assert variables["ok"] is True


async def test_missing_required_input_names_it() -> None:
    """A required input that is not given fails before anything runs, naming it."""
    llm = routed()
    doc = document(
        workflow(
            AgentStep(agent="writer", send="{{topic}}"),
            inputs=[InputSpec(name="topic", description="what to research")],
        )
    )
    with pytest.raises(WorkflowInputError) as info:
        await run(doc, llm=llm)
    assert info.value.input == "topic"
    assert "'topic'" in str(info.value) and "what to research" in str(info.value)
    assert "--task" in str(info.value)
    assert llm.requests == []


@pytest.mark.parametrize(
    ("spec", "value", "fragment"),
    [
        (InputSpec(name="n", type="integer"), "three", "must be an integer"),
        (InputSpec(name="n", type="integer"), "2.5", "must be an integer"),
        (InputSpec(name="flag", type="boolean"), "maybe", "must be a boolean"),
        (InputSpec(name="tags", type="array"), "{", "must be an array"),
        (InputSpec(name="level", enum=("low", "high")), "mid", "one of 'low', 'high'"),
    ],
)
async def test_invalid_input_is_refused(spec: InputSpec, value: str, fragment: str) -> None:
    """Values that do not fit the type or the enum are errors naming the input."""
    doc = document(workflow(SetStep(values={"x": 1}), inputs=[spec]))
    with pytest.raises(WorkflowInputError) as info:
        await run(doc, {spec.name: value})
    assert info.value.input == spec.name
    assert fragment in str(info.value)
    assert f"'{spec.name}'" in str(info.value)


async def test_enum_accepts_a_listed_value_and_undeclared_values_are_variables() -> None:
    """An enum value passes; values the workflow does not declare are variables too."""
    llm = routed()
    doc = document(
        workflow(
            AgentStep(agent="writer", send="{{level}} / {{topic}}"),
            inputs=[InputSpec(name="level", type="integer", enum=(1, 2))],
        )
    )
    await run(doc, {"level": "2", "topic": "Trio"}, llm=llm)
    assert sent(llm) == ["2 / Trio"]


# -- if and conditions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        (" NONE ", False),
        ("null", False),
        (0, False),
        ([], False),
        (None, False),
        ("0.0", True),
        ("off", True),
        ("yes", True),
        (1, True),
        (["x"], True),
        ("anything", True),
    ],
)
async def test_if_follows_the_truthiness_rule(value: Any, expected: bool) -> None:
    """`if: "{{flag}}"` takes `then` exactly when the value is truthy (SPEC §8.3)."""
    doc = document(
        workflow(
            IfStep(
                condition="{{flag}}",
                then=(SetStep(values={"branch": "then"}),),
                otherwise=(SetStep(values={"branch": "else"}),),
            )
        )
    )
    result = await run(doc, {"flag": value})
    assert result.variables["branch"] == ("then" if expected else "else")


@pytest.mark.parametrize(
    ("tag", "expected"), [("draft", "kept"), ("final", "skipped"), ("fin", "kept")]
)
async def test_not_in_condition(tag: str, expected: str) -> None:
    """`not in` is membership negated (lists compare items, not substrings)."""
    doc = document(
        workflow(
            IfStep(
                condition="tag not in done",
                then=(SetStep(values={"r": "kept"}),),
                otherwise=(SetStep(values={"r": "skipped"}),),
            )
        )
    )
    result = await run(doc, {"tag": tag, "done": ["final", "archived"]})
    assert result.variables["r"] == expected


async def test_if_without_else_leaves_the_previous_result() -> None:
    """An `if` whose branch does not run adds no result; the workflow result is the last
    step that produced one."""
    doc = document(
        workflow(
            AgentStep(agent="writer", send="draft"),
            IfStep(condition="false", then=(AgentStep(agent="writer", send="never"),)),
        )
    )
    assert (await run(doc)).output == "writer: draft"


async def test_undefined_variable_in_condition_is_an_error() -> None:
    """A condition reading an undefined variable fails the `if` step, naming both."""
    doc = document(workflow(IfStep(condition="approved == 'yes'", then=())))
    with pytest.raises(WorkflowError) as info:
        await run(doc)
    assert info.value.path == "workflows.main.steps[0]"
    assert "approved" in str(info.value)


# -- for -----------------------------------------------------------------------------------


async def test_for_over_a_list_with_loop_variables_and_collected_save() -> None:
    """`for` sets the item and loop.index/index0/count/first/last; `save` collects each
    iteration's last result; the loop variables are gone afterwards."""
    llm = routed()
    step = ForStep(
        variable="item",
        items="items",
        save="results",
        steps=(
            AgentStep(
                agent="writer",
                send="{{loop.index}}/{{loop.count}} {{item}} {{loop.index0}} "
                "{{loop.first}} {{loop.last}}",
            ),
        ),
    )
    result = await run(document(workflow(step)), {"items": ["a", "b", "c"]}, llm=llm)
    assert sent(llm) == [
        "1/3 a 0 true false",
        "2/3 b 1 false false",
        "3/3 c 2 false true",
    ]
    assert result.variables["results"] == [f"writer: {m}" for m in sent(llm)]
    assert "item" not in result.variables and "loop" not in result.variables


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ('["x", "y"]', ["x", "y"]),
        ("  first line\n\n  second line  \n", ["first line", "second line"]),
        ("[not json", ["[not json"]),
        ([], []),
    ],
)
async def test_for_over_json_text_and_lines(items: Any, expected: list[str]) -> None:
    """A string is a JSON array when it parses as one, else its non-empty lines."""
    step = ForStep(
        variable="it", items="{{ source }}", save="seen", steps=(SetStep(values={"v": "{{it}}"}),)
    )
    result = await run(document(workflow(step)), {"source": items})
    assert result.variables["seen"] == expected


async def test_for_with_filters_in_items() -> None:
    """The items expression may use filters (`text | trim`, then split into lines)."""
    step = ForStep(
        variable="w",
        items="text | trim",
        save="out",
        steps=(SetStep(values={"u": "{{ w | upper }}"}),),
    )
    result = await run(document(workflow(step)), {"text": "  red\ngreen  "})
    assert result.variables["out"] == ["RED", "GREEN"]


async def test_for_over_a_number_is_a_clear_error() -> None:
    """Iterating over a number fails with a message saying what `for` accepts."""
    step = ForStep(variable="x", items="count", steps=())
    with pytest.raises(WorkflowError) as info:
        await run(document(workflow(step)), {"count": 3})
    assert "needs a list" in str(info.value) and "the number 3" in str(info.value)


async def test_for_restores_an_outer_variable_of_the_same_name() -> None:
    """A loop variable shadows an outer variable only inside the loop (nested loops too)."""
    inner = ForStep(
        variable="item", items="pair", steps=(SetStep(values={"last": "{{item}}{{loop.index}}"}),)
    )
    outer = ForStep(variable="pair", items="pairs", steps=(inner,))
    result = await run(
        document(workflow(outer)), {"item": "outer", "pairs": [["a", "b"], ["c", "d"]]}
    )
    assert result.variables["item"] == "outer"
    assert result.variables["last"] == "d2"


# -- try, repeat, set, return, sub-workflows ------------------------------------------------


async def test_try_catch_sees_error_and_error_class() -> None:
    """A failing step inside `try` runs `catch` with `error` and `error_class` set."""
    llm = routed(
        lambda agent, text, request: (
            Reply.error(ErrorClass.BUDGET_EXCEEDED, "spend cap reached")
            if agent == "researcher"
            else f"fallback for {text}"
        )
    )
    doc = document(
        workflow(
            TryStep(
                steps=(AgentStep(agent="researcher", send="risky", save="r"),),
                catch=(AgentStep(agent="writer", send="{{error_class}} | {{error}}", save="r"),),
            ),
            output="{{ r }}",
        )
    )
    result = await run(doc, llm=llm)
    assert result.output == "fallback for budget_exceeded | spend cap reached"


async def test_try_catch_catches_template_errors_too() -> None:
    """Any step failure is caught, e.g. an undefined variable (error_class template_error)."""
    doc = document(
        workflow(
            TryStep(
                steps=(SetStep(values={"x": "{{ nope }}"}),),
                catch=(SetStep(values={"seen": "{{ error_class }}"}),),
            )
        )
    )
    result = await run(doc)
    assert result.variables["seen"] == "template_error"
    assert "nope" in result.variables["error"]


async def test_repeat_until_stops_when_the_condition_holds() -> None:
    """`repeat` runs rounds until `until` holds (checked after each round)."""
    replies = iter(["draft 1", "draft 2", "APPROVED", "never"])
    llm = routed(lambda agent, text, request: next(replies))
    doc = document(
        workflow(
            RepeatStep(
                steps=(AgentStep(agent="writer", send="round {{loop.index}}", save="verdict"),),
                until="'APPROVED' in verdict",
                max=10,
            )
        )
    )
    result = await run(doc, llm=llm)
    assert sent(llm) == ["round 1", "round 2", "round 3"]
    assert result.output == "APPROVED"


async def test_repeat_is_bounded_by_max() -> None:
    """Without `until` ever holding, `repeat` stops after `max` rounds."""
    llm = routed()
    doc = document(
        workflow(RepeatStep(steps=(AgentStep(agent="writer", send="again"),), until="false", max=3))
    )
    result = await run(doc, llm=llm)
    assert len(llm.requests) == 3
    assert result.steps_run == 4


async def test_set_renders_values_in_order_and_keeps_types() -> None:
    """`set` renders templates (a single placeholder keeps its type), later keys see
    earlier ones, and non-strings are stored as they are."""
    doc = document(
        workflow(
            SetStep(
                values={
                    "name": "{{ who | upper }}",
                    "greeting": "hi {{ name }}",
                    "copy": "{{ nums }}",
                    "n": 7,
                    "nested": {"a": "{{ who }}", "b": ["{{ name }}"]},
                }
            )
        )
    )
    result = await run(doc, {"who": "ada", "nums": [1, 2]})
    variables = result.variables
    assert variables["greeting"] == "hi ADA"
    assert variables["copy"] == [1, 2]
    assert variables["n"] == 7
    assert variables["nested"] == {"a": "ada", "b": ["ADA"]}


async def test_return_ends_the_workflow_from_inside_a_loop() -> None:
    """`return` inside `for` inside `if` ends the workflow with its value; nothing after
    it runs and `output` is not used."""
    llm = routed()
    doc = document(
        workflow(
            IfStep(
                condition="true",
                then=(
                    ForStep(
                        variable="x",
                        items="xs",
                        steps=(
                            AgentStep(agent="writer", send="{{x}}", save="last"),
                            IfStep(
                                condition="x == 2", then=(ReturnStep(value="stopped at {{x}}"),)
                            ),
                        ),
                    ),
                ),
            ),
            AgentStep(agent="writer", send="after"),
            output="unused",
        )
    )
    result = await run(doc, {"xs": [1, 2, 3]}, llm=llm)
    assert result.output == "stopped at 2"
    assert sent(llm) == ["1", "2"]


async def test_sub_workflow_with_inputs_and_save() -> None:
    """`workflow:` runs another workflow with `with:` inputs (typed, defaulted) and saves
    its result; the caller's variables are not visible inside."""
    llm = routed()
    summary = workflow(
        AgentStep(agent="writer", send="Summarise {{text}} in {{words}} words"),
        name="summary",
        inputs=[InputSpec(name="text"), InputSpec(name="words", type="integer", default=50)],
    )
    main = workflow(
        WorkflowStep(workflow="summary", inputs={"text": "{{ topic | upper }}"}, save="s"),
        IfStep(condition="secret", then=()),
        output="[{{ s }}]",
    )
    doc = document(main, summary)
    result = await run(doc, {"topic": "trio", "secret": "1"}, llm=llm)
    assert sent(llm) == ["Summarise TRIO in 50 words"]
    assert result.output == "[writer: Summarise TRIO in 50 words]"


async def test_sub_workflow_missing_input_and_failure_say_where() -> None:
    """A sub-workflow's missing input is an error at the calling step; a failure inside
    names the inner step and where it was called from."""
    inner = workflow(SetStep(values={"x": "{{ undefined_thing }}"}), name="inner")
    needs = workflow(SetStep(values={"x": 1}), name="needs", inputs=[InputSpec(name="topic")])
    with pytest.raises(WorkflowError) as info:
        await run(document(workflow(WorkflowStep(workflow="needs")), needs))
    assert info.value.path == "workflows.main.steps[0]"
    assert "'topic'" in str(info.value) and "with:" in str(info.value)
    with pytest.raises(WorkflowError) as info:
        await run(document(workflow(WorkflowStep(workflow="inner")), inner))
    assert info.value.path == "workflows.inner.steps[0]"
    assert "called from workflows.main.steps[0]" in str(info.value)


async def test_sub_workflow_return_ends_only_the_sub_workflow() -> None:
    """`return` in a sub-workflow gives its result back to the caller, which goes on."""
    inner = workflow(ReturnStep(value="from inner"), SetStep(values={"never": 1}), name="inner")
    main = workflow(
        WorkflowStep(workflow="inner", save="got"), SetStep(values={"after": "{{got}}!"})
    )
    result = await run(document(main, inner))
    assert result.variables["after"] == "from inner!"
    assert result.output == "from inner!"


async def test_recursion_depth_is_limited() -> None:
    """A workflow calling itself forever stops at the depth limit with a clear error."""
    loop = workflow(WorkflowStep(workflow="loop"), name="loop")
    with pytest.raises(WorkflowError) as info:
        await run(document(loop), name="loop")
    message = str(info.value)
    assert "nest more than 10 deep" in message
    assert "loop → loop" in message


async def test_bounded_recursion_works() -> None:
    """A workflow may call itself while a condition holds (countdown through inputs)."""
    countdown = workflow(
        IfStep(
            condition="n > 0",
            then=(
                WorkflowStep(
                    workflow="countdown", inputs={"n": "{{ rest | first }}", "rest": "{{ rest }}"}
                ),
            ),
            otherwise=(ReturnStep(value="done"),),
        ),
        name="countdown",
        inputs=[
            InputSpec(name="n", type="integer"),
            InputSpec(name="rest", type="array", default=[0]),
        ],
    )
    result = await run(document(countdown), {"n": 3}, name="countdown")
    assert result.output == "done"


async def test_unknown_workflow_lists_the_known_ones() -> None:
    """Running a workflow that does not exist names the ones that do."""
    with pytest.raises(WorkflowError, match=r"no workflow named .mian.*main"):
        await run(document(workflow(SetStep(values={"a": 1}))), name="mian")


# -- nested control flow -------------------------------------------------------------------


async def test_nested_control_flow() -> None:
    """for → if → parallel → try nest, each with its own semantics."""
    llm = routed(
        lambda agent, text, request: (
            Reply.error(ErrorClass.INVALID_REQUEST, "boom")
            if agent == "writer" and text == "fail"
            else f"{agent}:{text}"
        )
    )
    body = IfStep(
        condition="item != 'skip'",
        then=(
            ParallelStep(
                branches=(
                    (AgentStep(agent="researcher", send="r-{{item}}", save="r"),),
                    (
                        TryStep(
                            steps=(AgentStep(agent="writer", send="{{item}}", save="w"),),
                            catch=(SetStep(values={"w": "caught {{error}}"}),),
                        ),
                    ),
                )
            ),
            SetStep(values={"pair": "{{r}} & {{w}}"}),
        ),
    )
    doc = document(workflow(ForStep(variable="item", items="items", steps=(body,), save="pairs")))
    result = await run(doc, {"items": ["a", "skip", "fail"]}, llm=llm)
    assert result.variables["pairs"] == [
        "researcher:r-a & writer:a",
        None,
        "researcher:r-fail & caught boom",
    ]


async def test_progress_reports_steps_in_order_with_cumulative_usage() -> None:
    """on_progress sees workflow and step events in order; usage only grows."""
    events: list[ProgressEvent] = []
    doc = document(
        workflow(
            AgentStep(agent="researcher", send="a", save="x"),
            IfStep(condition="x", then=(AgentStep(agent="writer", send="b"),)),
        )
    )
    await run(doc, progress=events)
    assert [(e.kind, e.path, e.agent) for e in events] == [
        ("workflow_started", "main", None),
        ("step_started", "main.steps[0]", "researcher"),
        ("step_finished", "main.steps[0]", "researcher"),
        ("step_started", "main.steps[1]", None),
        ("step_started", "main.steps[1].then[0]", "writer"),
        ("step_finished", "main.steps[1].then[0]", "writer"),
        ("step_finished", "main.steps[1]", None),
        ("workflow_finished", "main", None),
    ]
    assert events[1].detail == "a"
    assert events[2].detail == "researcher: a"
    costs = [e.cost_usd for e in events]
    assert costs == sorted(costs) and costs[-1] > 0
    assert events[-1].input_tokens > events[2].input_tokens > 0


async def test_progress_reports_a_failure() -> None:
    """A failing step is reported as step_failed, then workflow_failed."""
    events: list[ProgressEvent] = []
    llm = routed(lambda agent, text, request: Reply.error(ErrorClass.AUTHENTICATION, "bad key"))
    with pytest.raises(WorkflowError):
        await run(document(workflow(AgentStep(agent="writer", send="x"))), llm=llm, progress=events)
    assert [e.kind for e in events] == [
        "workflow_started",
        "step_started",
        "step_failed",
        "workflow_failed",
    ]
    assert "bad key" in events[2].detail


def test_helpers_parse_agent_names() -> None:
    """The test helpers read the agent from the system prompt (guards the other tests)."""
    request = LLMRequest(model="m", messages=(), system="You are writer. Be brief.")
    assert agent_of(request) == "writer"
