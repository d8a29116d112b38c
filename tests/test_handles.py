"""Handle classes have no public constructor; the supervisor API is at the top level."""

from __future__ import annotations

import pytest
import trio

import vega_trio
from vega_trio import (
    Agent,
    AgentProcess,
    ChildSpec,
    Orchestrator,
    Process,
    Supervisor,
    SupervisorSpec,
    open_orchestrator,
    open_supervisor,
)
from vega_trio.dsl import Runner
from vega_trio.runtime import EventBus, Subscription
from vega_trio.testing import ScriptedLLM


@pytest.mark.parametrize(
    ("cls", "instead"),
    [
        (Process, "orch.spawn(agent)"),
        (AgentProcess, "orch.spawn(agent)"),
        (Supervisor, "open_supervisor(runtime, spec)"),
        (Orchestrator, "open_orchestrator(...)"),
        (Subscription, "bus.subscribe(...)"),
        (Runner, "open_runner(document, ...)"),
    ],
)
def test_calling_a_handle_class_says_what_to_call_instead(cls: type, instead: str) -> None:
    """Constructing a handle directly raises TypeError naming the function that makes it."""
    with pytest.raises(TypeError, match="has no public constructor") as info:
        cls()
    assert instead in str(info.value)
    assert cls.__name__ in str(info.value)


async def test_the_library_still_builds_every_handle() -> None:
    """spawn, start_supervisor, subscribe and open_orchestrator hand back working handles."""
    llm = ScriptedLLM(["hello", "again"])
    async with open_orchestrator(llm=llm) as orch:
        assert isinstance(orch, Orchestrator)
        proc = await orch.spawn(Agent(name="a"))
        assert isinstance(proc, AgentProcess)
        with trio.fail_after(5):
            assert await proc.send("hi") == "hello"
        sup = await orch.start_supervisor(
            SupervisorSpec(children=[orch.child_spec(Agent(name="w"))])
        )
        assert isinstance(sup, Supervisor) and isinstance(sup.child("w"), AgentProcess)
        with EventBus().subscribe() as sub:
            assert isinstance(sub, Subscription)


def test_supervisor_api_is_at_the_top_level() -> None:
    """Supervisor, SupervisorSpec, ChildSpec and open_supervisor import from vega_trio."""
    for name in ("Supervisor", "SupervisorSpec", "ChildSpec", "open_supervisor"):
        assert name in vega_trio.__all__
    assert vega_trio.open_supervisor is open_supervisor
    assert ChildSpec is vega_trio.runtime.ChildSpec


async def test_child_spec_builds_a_spec_and_child_is_deprecated() -> None:
    """orch.child_spec() returns a ChildSpec; the old orch.child() warns and returns the same."""
    async with open_orchestrator(llm=ScriptedLLM([])) as orch:
        agent = Agent(name="w")
        spec = orch.child_spec(agent, id="w1", restart="transient")
        assert isinstance(spec, ChildSpec)
        assert (spec.id, spec.restart) == ("w1", "transient")
        with pytest.warns(DeprecationWarning, match="child_spec"):
            old = orch.child(agent, id="w1", restart="transient")
        assert (old.id, old.restart) == (spec.id, spec.restart)


def test_the_guard_survives_attrs_slotted_classes() -> None:
    """attrs.define rebuilds a slotted class with its metaclass: the guard and _create work."""
    import attrs

    from vega_trio._handles import NoPublicConstructor

    @attrs.define(eq=False)
    class Handle(metaclass=NoPublicConstructor):
        _public_constructor_hint = "use open_handle()"

        name: str
        count: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    assert type(Handle) is NoPublicConstructor and "__slots__" in Handle.__dict__
    with pytest.raises(TypeError, match=r"Handle has no public constructor: use open_handle\(\)"):
        Handle("x")
    made = Handle._create("x", count=2)
    assert (made.name, made.count) == ("x", 2)
    with pytest.raises(ValueError, match="count"):
        Handle._create("x", count=-1)
