"""Supervisor trees of agent processes, through the orchestrator."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import vega_trio
from vega_trio import (
    Agent,
    ErrorClass,
    ExitSignal,
    LinkedProcessError,
    LLMError,
    ProcessStatus,
    RestartIntensityError,
    open_orchestrator,
)
from vega_trio.llm import LLMRequest
from vega_trio.runtime import Backoff, Supervision, SupervisorSpec
from vega_trio.testing import ScriptedLLM, Step


def every_third_fails() -> ScriptedLLM:
    """An LLM that is overloaded on every third call and echoes otherwise."""
    calls = [0]

    def respond(request: LLMRequest) -> Step:
        calls[0] += 1
        if calls[0] % 3 == 0:
            return Step.error(ErrorClass.OVERLOADED)
        return Step.text(f"done: {request.messages[-1].text}")

    return ScriptedLLM(responder=respond)


async def test_agent_tree_keeps_serving_through_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three agent workers under one_for_one: a worker that crashes is replaced, callers get
    the answer or a clear error, and the tree reports restart counts."""
    llm = every_third_fails()
    async with open_orchestrator(llm=llm) as orch:
        spec = SupervisorSpec(
            name="team",
            strategy="one_for_one",
            max_restarts=10,
            window=60,
            children=[
                orch.child_spec(Agent(name=f"worker{i}", retry=None), name=f"worker{i}")
                for i in range(3)
            ],
        )
        team = await orch.start_supervisor(spec)
        answered, failed = 0, 0
        for round_ in range(6):
            for i in range(3):
                proc = orch.lookup(f"worker{i}")
                assert isinstance(proc, vega_trio.AgentProcess)
                try:
                    reply = await proc.send(f"task {round_}")
                    assert reply == f"done: task {round_}"
                    answered += 1
                except LLMError as exc:
                    failed += exc.error_class == ErrorClass.OVERLOADED
                await trio.testing.wait_all_tasks_blocked()
        assert (answered, failed) == (12, 6)
        assert team.restart_count == 6
        assert [c.process.status for c in team.which_children()] == [ProcessStatus.RUNNING] * 3
        (tree,) = orch.supervision_tree()
        assert [c["id"] for c in tree["children"]] == ["worker0", "worker1", "worker2"]


async def test_per_process_restart_inside_a_tree_retries_the_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker with its own restart supervision re-delivers the crashed message, so the
    caller gets the retried answer and the tree never sees a failure."""
    llm = every_third_fails()
    supervision = Supervision(max_restarts=5, backoff=Backoff(kind="constant", initial=1))
    async with open_orchestrator(llm=llm) as orch:
        team = await orch.start_supervisor(
            SupervisorSpec(
                children=[orch.child_spec(Agent(name="w", retry=None), supervision=supervision)]
            )
        )
        worker = team.child("w")
        assert isinstance(worker, vega_trio.AgentProcess)
        replies = [await worker.send(f"m{i}") for i in range(4)]
        assert replies == ["done: m0", "done: m1", "done: m2", "done: m3"]
        assert worker.restart_count == 1 and team.restart_count == 0
        assert trio.current_time() == 1


async def test_a_tree_that_gives_up_does_not_stop_the_orchestrator(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """More crashes than the tree's intensity: it stops its children, publishes
    supervisor.gave_up, and the orchestrator carries on."""
    llm = ScriptedLLM(responder=lambda _r: Step.error(ErrorClass.OVERLOADED))
    async with open_orchestrator(llm=llm) as orch:
        with orch.subscribe(types=["supervisor.gave_up"]) as events:
            team = await orch.start_supervisor(
                SupervisorSpec(max_restarts=1, children=[orch.child_spec(Agent(name="w"))])
            )
            for _ in range(2):
                worker = team.child("w")
                assert isinstance(worker, vega_trio.AgentProcess)
                with pytest.raises(LLMError):
                    await worker.send("hi")
                await trio.testing.wait_all_tasks_blocked()
            reason = await team.wait()
            gave_up = events.receive_nowait()
        assert reason.kind == "shutdown" and team.gave_up
        assert gave_up is not None
        assert orch.supervision_tree() == []
        other = await orch.spawn(Agent(name="still-here", llm=ScriptedLLM(["yes"])))
        assert await other.send("alive?") == "yes"


async def test_leaving_the_block_stops_the_trees(autojump_clock: trio.testing.MockClock) -> None:
    """At the end of the block, supervisors shut down with their ladders; nothing runs on."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        team = await orch.start_supervisor(
            SupervisorSpec(children=[orch.child_spec(Agent(name=f"w{i}")) for i in range(3)])
        )
        workers = [c.process for c in team.which_children()]
    assert not team.alive
    assert all(w is not None and w.status.finished for w in workers)
    assert orch.stats()["live_processes"] == 0


def always_overloaded() -> ScriptedLLM:
    """An LLM whose every call fails with a retryable class (a supervised crash)."""
    return ScriptedLLM(responder=lambda _r: Step.error(ErrorClass.OVERLOADED))


async def crash_until_it_gives_up(team: vega_trio.runtime.Supervisor) -> None:
    """Send to the tree's only worker until the tree (max_restarts=1) gives up."""
    for _ in range(2):
        worker = team.child("w")
        assert isinstance(worker, vega_trio.AgentProcess)
        with pytest.raises(LLMError):
            await worker.send("hi")
        await trio.testing.wait_all_tasks_blocked()


async def test_a_tree_that_gives_up_fires_its_monitors_and_links(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A start_supervisor tree that gives up is observable: supervisor.gave_up on the
    bus, its monitors fire once (reason shutdown), a linked non-trapping process dies
    with reason linked (its in-flight caller gets ProcessExited) and a trapping one gets
    the ExitSignal."""
    echo = ScriptedLLM.echo()
    async with open_orchestrator(llm=always_overloaded()) as orch:
        with orch.subscribe(types=["supervisor.gave_up"]) as events:
            team = await orch.start_supervisor(
                SupervisorSpec(
                    max_restarts=1, children=[orch.child_spec(Agent(name="w", retry=None))]
                )
            )
            peer = await orch.spawn(Agent(name="peer", llm=echo))
            trapper = await orch.spawn(Agent(name="trapper", llm=echo), trap_exit=True)
            orch.link(team, peer)
            orch.link(trapper, team.id)
            monitor = orch.monitor(team)
            await crash_until_it_gives_up(team)
            with trio.fail_after(1):
                down = await monitor.wait()
                peer_reason = await peer.wait()
            gave_up = events.receive_nowait()
        assert gave_up is not None and gave_up.data["supervisor_id"] == team.id
        assert down.process_id == team.id and down.reason.kind == "shutdown"
        assert peer_reason.kind == "linked"
        assert isinstance(peer_reason.error, LinkedProcessError)
        assert peer_reason.error.source == team.id
        signal = trapper.signals.receive_nowait()
        assert isinstance(signal, ExitSignal) and signal.reason.kind == "shutdown"
        assert trapper.alive
        # The orchestrator goes on (the default).
        assert await trapper.send("still here") == "still here"


async def test_propagate_supervisor_failures_raises_the_give_up_to_the_owner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """open_orchestrator(propagate_supervisor_failures=True): a top-level tree's give-up
    cancels the block and leaves the async with as a bare RestartIntensityError naming
    the tree (id, cause: the last child failure); every process is gone."""
    reached_the_end = False
    with trio.fail_after(10):
        with pytest.raises(RestartIntensityError) as raised:
            async with open_orchestrator(
                llm=always_overloaded(), propagate_supervisor_failures=True
            ) as orch:
                team = await orch.start_supervisor(
                    SupervisorSpec(
                        name="team",
                        max_restarts=1,
                        children=[orch.child_spec(Agent(name="w", retry=None))],
                    )
                )
                bystander = await orch.spawn(Agent(name="bystander", llm=ScriptedLLM.echo()))
                await crash_until_it_gives_up(team)
                await trio.sleep_forever()  # cancelled by the give-up
                reached_the_end = True
    error = raised.value
    assert error.supervisor == "team" and error.supervisor_id == team.id
    assert isinstance(error.__cause__, LLMError)
    assert team.id in str(error) and not reached_the_end
    assert bystander.status.finished and orch.stats()["live_processes"] == 0


async def test_without_the_option_a_give_up_is_not_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """By default the orchestrator's block ends normally after a tree gave up."""
    async with open_orchestrator(llm=always_overloaded()) as orch:
        team = await orch.start_supervisor(
            SupervisorSpec(max_restarts=1, children=[orch.child_spec(Agent(name="w", retry=None))])
        )
        await crash_until_it_gives_up(team)
        await team.wait()
    assert team.gave_up


async def test_a_linked_owner_shuts_its_tree_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """start_supervisor(spec, parent=owner) + link: the owner's crash shuts the tree
    down (reason linked, cause chain); nothing is restarted."""
    echo = ScriptedLLM.echo()
    async with open_orchestrator(llm=echo) as orch:
        owner = await orch.spawn(Agent(name="owner"))
        team = await orch.start_supervisor(
            SupervisorSpec(children=[orch.child_spec(Agent(name="w"))]), parent=owner
        )
        orch.link(owner, team)
        worker = team.child("w")
        assert isinstance(worker, vega_trio.AgentProcess) and worker.parent_id == owner.id
        owner.fail(RuntimeError("owner crashed"))
        with trio.fail_after(10):
            reason = await team.wait()
        assert reason.kind == "linked" and isinstance(reason.error, LinkedProcessError)
        assert isinstance(reason.error.__cause__, RuntimeError)
        assert worker.status.finished and team.restart_count == 0
