"""The orchestrator's agent registry (orch.agents) and sessions (orch.session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import (
    Agent,
    AgentExists,
    AgentNotFound,
    Message,
    OrchestratorConfig,
    ProcessExited,
    ProcessNotRunning,
    open_orchestrator,
)
from vega_trio._errors import ToolNotFound
from vega_trio.llm import LLMRequest
from vega_trio.llm._messages import message_to_dict
from vega_trio.store import open_store
from vega_trio.testing import ScriptedLLM, Step


def by_system(delay: float = 0.0) -> ScriptedLLM:
    """Replies ``<system>: <latest user text>`` so a reply shows which blueprint answered."""

    def respond(request: LLMRequest) -> Step:
        text = next(m.text for m in reversed(request.messages) if m.role == "user")
        return Step.text(f"{request.system}: {text}", delay=delay)

    return ScriptedLLM(responder=respond)


def user_turns(request: LLMRequest) -> list[str]:
    return [m.text for m in request.messages if m.role == "user"]


def shout(text: str) -> str:
    """Say it louder."""
    return text.upper()


# -- definitions ------------------------------------------------------------------------------


async def test_define_get_list_and_sources() -> None:
    """Definitions are kept by name with their source and revision, in definition order."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        a = orch.agents.define(Agent(name="a"), source="yaml")
        b = orch.agents.define(Agent(name="b"))
        orch.agents.define(Agent(name="hermes"), source="builtin")
        assert [(d.name, d.source, d.revision) for d in orch.agents.list()] == [
            ("a", "yaml", 1),
            ("b", "composed", 1),
            ("hermes", "builtin", 1),
        ]
        assert orch.agents.get("a") is a and b.agent == Agent(name="b")
        assert "a" in orch.agents and "zed" not in orch.agents
        with pytest.raises(AgentExists, match=r"'a' is already defined.*orch.agents.update"):
            orch.agents.define(Agent(name="a", system="again"))
        with pytest.raises(AgentNotFound, match=r"'zed'.*defined agents: a, b, hermes"):
            orch.agents.get("zed")
        with pytest.raises(ValueError, match="source must be one of yaml, composed, builtin"):
            orch.agents.define(Agent(name="c"), source="rest")  # type: ignore[arg-type]
        assert "c" not in orch.agents


async def test_changes_are_published_as_agent_events() -> None:
    """define, update and remove publish agent.created|updated|deleted with source and revision."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        with orch.subscribe(types=["agent."]) as events:
            orch.agents.define(Agent(name="a"))
            orch.agents.update(Agent(name="a", system="v2"))
            orch.agents.remove("a")
            seen = [events.receive_nowait() for _ in range(3)]
    assert [(e.type, e.agent, e.data) for e in seen] == [
        ("agent.created", "a", {"source": "composed", "revision": 1}),
        ("agent.updated", "a", {"source": "composed", "revision": 2}),
        ("agent.deleted", "a", {"source": "composed", "revision": 2}),
    ]


async def test_a_definition_that_would_not_spawn_is_refused_and_the_old_one_stays() -> None:
    """define/update check what a spawn resolves (tools, team members' tools) first; a
    failed update keeps the old definition, publishes nothing and restarts nothing."""
    async with open_orchestrator(llm=by_system(), tools=[shout]) as orch:
        with pytest.raises(ToolNotFound, match=r"agent 'a'.*'nope'"):
            orch.agents.define(Agent(name="a", tools=["nope"]))
        assert "a" not in orch.agents
        good = orch.agents.define(Agent(name="a", system="v1", tools=["shout"]))
        proc = await orch.session("a")
        with orch.subscribe(types=["agent.", "process."]) as events:
            with pytest.raises(ToolNotFound, match=r"agent 'member'.*'missing'"):
                orch.agents.update(
                    Agent(name="a", system="v2", team=[Agent(name="member", tools=["missing"])])
                )
            await trio.testing.wait_all_tasks_blocked()
            assert events.receive_nowait() is None  # nothing published, nothing restarted
        assert orch.agents.get("a") is good
        assert await orch.session("a") is proc
        assert await proc.send("hi") == "v1: hi"


async def test_team_members_are_found_in_the_registry() -> None:
    """team=["name"] resolves through orch.agents."""
    llm = ScriptedLLM(
        responder=lambda r: (
            Step.tool_call("delegate", {"agent": "helper", "message": "q"})
            if r.system == "lead" and len(r.messages) == 1
            else Step.text(r.system)
        )
    )
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="helper", system="helper"))
        orch.agents.define(Agent(name="lead", system="lead", team=["helper"]))
        proc = await orch.session("lead")
        assert await proc.send("go") == "lead"
    assert [r.system for r in llm.requests] == ["lead", "helper", "lead"]


# -- sessions ---------------------------------------------------------------------------------


async def test_a_session_is_spawned_on_first_use_and_named_agent_colon_user() -> None:
    """session() spawns lazily, registers 'agent:user' ('agent' without a user) and
    returns the same process until it changes; each user has its own conversation."""
    llm = by_system()
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="assistant", system="A"))
        assert orch.processes() == []  # defining spawns nothing
        alice = await orch.session("assistant", user="42")
        assert orch.lookup("assistant:42") is alice
        assert await orch.session("assistant", user="42") is alice
        bob = await orch.session("assistant", user="7")
        default = await orch.session("assistant")
        assert orch.lookup("assistant:7") is bob and orch.lookup("assistant") is default
        await alice.send("one")
        await alice.send("two")
        assert await bob.send("other") == "A: other"
    assert [user_turns(r) for r in llm.requests] == [["one"], ["one", "two"], ["other"]]


async def test_concurrent_first_calls_get_one_process(tmp_path: Path) -> None:
    """Many callers asking for a new session at once all get the same single process."""
    calls = 0
    async with open_store(str(tmp_path / "v.db")) as store:
        load = store.load_conversation

        async def slow_load(agent: str, user: str | None) -> list[Any]:
            nonlocal calls
            calls += 1
            await trio.sleep(0.2)  # every caller arrives while the first is still loading
            return await load(agent, user)

        store.load_conversation = slow_load  # type: ignore[method-assign]
        async with open_orchestrator(llm=ScriptedLLM.echo(), store=store) as orch:
            orch.agents.define(Agent(name="a"))
            got = []

            async def ask() -> None:
                got.append(await orch.session("a", user="u"))

            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(ask)
            assert len({id(p) for p in got}) == 1 and len(got) == 20
            assert orch.stats()["total_spawned"] == 1
    assert calls == 1


async def test_the_store_seam_loads_the_conversation_once(tmp_path: Path) -> None:
    """With config.store, a session's first process starts from the stored history."""
    loaded: list[tuple[str, str | None]] = []
    async with open_store(str(tmp_path / "v.db")) as store:
        earlier = [Message.user("earlier question"), Message.assistant("earlier answer")]
        await store.append_messages("a", "9", [message_to_dict(m) for m in earlier])
        load = store.load_conversation

        async def counted(agent: str, user: str | None) -> list[Any]:
            loaded.append((agent, user))
            return await load(agent, user)

        store.load_conversation = counted  # type: ignore[method-assign]
        llm = by_system()
        config = OrchestratorConfig(llm=llm, store=store)
        async with open_orchestrator(config) as orch:
            orch.agents.define(Agent(name="a", system="A"))
            proc = await orch.session("a", user="9")
            assert await proc.send("and now?") == "A: and now?"
            await orch.session("a", user="9")
    assert loaded == [("a", "9")]
    assert user_turns(llm.requests[0]) == ["earlier question", "and now?"]


async def test_update_restarts_sessions_between_messages_with_the_same_conversation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An update lets the reply in progress finish on the old blueprint, then the session
    goes on in a new process of the new blueprint with the whole structured history."""
    llm = by_system(delay=5)
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="a", system="v1"))
        old = await orch.session("a", user="1")
        assert await old.send("first") == "v1: first"
        in_flight = old.send_async("second")
        await trio.sleep(1)  # the reply to "second" is being written
        orch.agents.update(Agent(name="a", system="v2"))
        new = await orch.session("a", user="1")
        assert trio.current_time() == 10  # waited for the reply in progress, no longer
        assert in_flight.result() == "v1: second"  # never cut mid-reply
        assert new is not old and not old.alive
        assert orch.lookup("a:1") is new
        assert await new.send("third") == "v2: third"
        assert [m.text for m in new.history] == [
            "first",
            "v1: first",
            "second",
            "v1: second",
            "third",
            "v2: third",
        ]
    assert user_turns(llm.requests[-1]) == ["first", "second", "third"]


async def test_update_restarts_idle_sessions_in_the_background(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without anyone asking, an update replaces every live session of the agent (and
    only those of that agent)."""
    async with open_orchestrator(llm=by_system()) as orch:
        orch.agents.define(Agent(name="a", system="v1"))
        orch.agents.define(Agent(name="b", system="b"))
        olds = [await orch.session("a", user=u) for u in ("1", "2")]
        other = await orch.session("b", user="1")
        orch.agents.update(Agent(name="a", system="v2"))
        await trio.testing.wait_all_tasks_blocked()
        assert [p.alive for p in olds] == [False, False]
        assert other.alive
        news = [orch.lookup(f"a:{u}") for u in ("1", "2")]
        assert [p.agent.system for p in news] == ["v2", "v2"]  # type: ignore[attr-defined]


async def test_remove_stops_sessions_after_the_reply_in_progress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Removing a definition finishes the reply in flight, stops the session and
    forgets it; asking for it again is a clear error."""
    async with open_orchestrator(llm=by_system(delay=5)) as orch:
        orch.agents.define(Agent(name="a", system="A"))
        proc = await orch.session("a", user="1")
        reply = proc.send_async("question")
        await trio.sleep(1)
        removed = orch.agents.remove("a")
        assert removed.name == "a"
        assert await reply.wait() == "A: question"
        await proc.wait()
        assert trio.current_time() == 5
        with pytest.raises(ProcessNotRunning):
            await proc.send("too late")
        with pytest.raises(AgentNotFound, match="no agent named 'a'"):
            await orch.session("a", user="1")
        with pytest.raises(AgentNotFound):
            orch.agents.remove("a")


async def test_a_dead_session_is_respawned_with_its_conversation() -> None:
    """A session whose process was killed comes back on next use, history intact."""
    llm = by_system()
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="a", system="A"))
        proc = await orch.session("a", user="1")
        await proc.send("remember me")
        proc.kill("test")
        await proc.wait()
        again = await orch.session("a", user="1")
        assert again is not proc and again.alive
        assert await again.send("still there?") == "A: still there?"
    assert user_turns(llm.requests[-1]) == ["remember me", "still there?"]


async def test_end_session_forgets_the_conversation() -> None:
    """end_session stops the process; the next session() starts a new conversation."""
    llm = by_system()
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="a", system="A"))
        proc = await orch.session("a")
        await proc.send("old")
        assert await orch.end_session("a") is True
        assert not proc.alive
        assert await orch.end_session("a") is False
        fresh = await orch.session("a")
        await fresh.send("new")
    assert user_turns(llm.requests[-1]) == ["new"]


async def test_bad_user_ids_are_refused() -> None:
    """A user id that would make the 'agent:user' name ambiguous is refused."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        orch.agents.define(Agent(name="a"))
        for user in ("", "a:b", " 42"):
            with pytest.raises(ValueError, match="session's user must be a non-empty id"):
                await orch.session("a", user=user)
        assert orch.processes() == []


async def test_queued_messages_on_a_replaced_session_get_a_clear_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A message still waiting in the old process's mailbox is answered with
    ProcessExited (resend it through session()), never silently dropped."""
    async with open_orchestrator(llm=by_system(delay=5)) as orch:
        orch.agents.define(Agent(name="a", system="v1"))
        old = await orch.session("a")
        first = old.send_async("first")
        queued = old.send_async("queued")
        await trio.sleep(1)
        orch.agents.update(Agent(name="a", system="v2"))
        new = await orch.session("a")
        assert first.result() == "v1: first"
        with pytest.raises(ProcessExited, match="updated"):
            queued.result()
        assert await new.send("queued") == "v2: queued"


async def test_a_removed_and_redefined_agent_starts_new_conversations(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After remove + define, the session is a new conversation on the new blueprint; it
    waits for the old process to finish its reply and free the name."""
    llm = by_system(delay=5)
    async with open_orchestrator(llm=llm) as orch:
        orch.agents.define(Agent(name="a", system="old"))
        old = await orch.session("a", user="1")
        reply = old.send_async("question")
        await trio.sleep(1)
        orch.agents.remove("a")
        orch.agents.define(Agent(name="a", system="new"))
        new = await orch.session("a", user="1")
        assert trio.current_time() == 5 and reply.result() == "old: question"
        assert new is not old and orch.lookup("a:1") is new
        assert await new.send("hello") == "new: hello"
    assert user_turns(llm.requests[-1]) == ["hello"]


async def test_a_sessions_events_carry_its_user_and_so_do_its_childrens() -> None:
    """A session's process events and LLM calls carry its user; a process it spawns (a
    delegate) inherits the user; subscribe(users=...) sees exactly that user's activity."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        orch.agents.define(Agent(name="assistant"))
        with orch.subscribe(users="42") as mine, orch.subscribe(users="7") as theirs:
            proc = await orch.session("assistant", user="42")
            await proc.send("hi")
            child = await orch.spawn(Agent(name="helper"), parent=proc)
            await child.send("hello")
            events = list(iter(mine.receive_nowait, None))
            assert theirs.receive_nowait() is None
    assert proc.user == "42" and child.user == "42" and child.run_id is None
    seen = {(e.type, e.agent) for e in events}  # type: ignore[union-attr]
    assert {("process.started", "assistant"), ("llm.call", "assistant")} <= seen
    assert {("process.started", "helper"), ("llm.call", "helper")} <= seen


async def test_a_definition_keeps_the_mapping_it_was_made_from_until_replaced() -> None:
    """define(mapping=) keeps it; update() takes the new one (or none: the old one is stale)."""
    async with open_orchestrator(llm=ScriptedLLM.echo()) as orch:
        first = orch.agents.define(Agent(name="a", system="one"), mapping={"system": "one"})
        assert first.mapping == {"system": "one"} and hash(first) == hash(first)
        second = orch.agents.update(Agent(name="a", system="two"), mapping={"system": "two"})
        assert (second.revision, second.mapping) == (2, {"system": "two"})
        third = orch.agents.update(Agent(name="a", system="three"))
        assert third.mapping is None
        assert orch.agents.define(Agent(name="b")).mapping is None
