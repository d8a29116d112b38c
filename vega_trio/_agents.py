"""The orchestrator's agent registry (``orch.agents``) and its sessions.

**Definitions.** A definition is a named :class:`~vega_trio.Agent` with where it came
from (``yaml``: a document; ``composed``: built at run time, e.g. over the REST API or
by Mother; ``builtin``: shipped with vega-trio) and a revision. Definitions change at
run time: :meth:`AgentRegistry.define`, :meth:`~AgentRegistry.update`,
:meth:`~AgentRegistry.remove`. A new definition is checked by resolving what a spawn
would resolve (its tools, its skills' tools, its team members' tools) *before* it
replaces anything, so a failed update leaves the old definition in place (a ``yaml``
definition is checked by its document's validator when it is first defined).
Every change is published: ``agent.created``, ``agent.updated``, ``agent.deleted``.

**Sessions.** A session is the live process of one (agent, user) pair, registered under
the name ``agent:user`` (``agent`` alone for the agent's default conversation) — the
``agent:user-id`` the REST API, Telegram's per-user clones and the dashboard's chat
address. ``orch.session(agent, user=...)`` returns it and spawns it on first use (the
conversation loaded from the configured :class:`~vega_trio.store.Store`, if any; with
one, every completed turn is committed to it before the reply is delivered, and ending
the session clears it there too). A per-pair lock makes concurrent first
calls share one process. The session is replaced by a fresh process of the current
definition, *with the same structured history*, when:

* its definition was updated — the old process finishes the reply it is working on
  (never cut mid-reply) and then stops; the swap starts at once in the background and
  ``session()`` waits for it;
* its process died (crash, kill, timeout) — on the next ``session()``.

Removing a definition stops its sessions the same way (a reply in progress is
finished); messages still queued on a stopped process get
:class:`~vega_trio.ProcessExited`.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args

import attrs
import trio

from ._errors import AgentExists, AgentNotFound
from ._persist import load_history
from .agent import Agent, AgentProcess
from .agent._bus_events import AgentCreated, AgentDeleted, AgentUpdated
from .llm import Message

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

__all__ = ["AgentDefinition", "AgentRegistry", "AgentSource"]

AgentSource = Literal["yaml", "composed", "builtin"]
"""Where a definition came from."""

_SOURCES: tuple[str, ...] = get_args(AgentSource)
_log = logging.getLogger("vega_trio")


def _check_source(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _SOURCES:
        raise ValueError(
            f"an agent definition's source must be one of {', '.join(_SOURCES)}, got {value!r}"
        )


def _check_agent(instance: object, attribute: attrs.Attribute[Agent], value: Agent) -> None:
    if not isinstance(value, Agent):
        raise TypeError(f"an agent definition holds an Agent, not {type(value).__name__}")


@attrs.frozen(kw_only=True)
class AgentDefinition:
    """One named agent in the registry.

    Attributes:
        agent: the blueprint.
        source: ``yaml``, ``composed`` or ``builtin``.
        revision: 1 when defined, one more on every update.
        mapping: the definition as its YAML-equivalent mapping (what is written under
            ``agents.<name>`` of a ``.vega.yaml``, as plain JSON data) when it was made
            from one — a document's agents, agents composed over the REST API — else
            ``None``. The server's template route shows it and the store keeps it.
    """

    agent: Agent = attrs.field(validator=_check_agent)
    source: AgentSource = attrs.field(validator=_check_source)
    revision: int = 1
    mapping: Mapping[str, Any] | None = attrs.field(default=None, hash=False)

    @property
    def name(self) -> str:
        """The agent's name (the registry key)."""
        return self.agent.name

    def as_mapping(self) -> tuple[dict[str, Any], bool]:
        """The definition as its YAML-equivalent JSON mapping, and whether that mapping
        is complete: :attr:`mapping` when known (a document's agents, composed ones),
        else the plain fields of its ``Agent`` (an agent defined in Python: ``complete``
        is false — what Python gave it beyond these, such as a retry policy object or
        tool functions, has no YAML form). The one conversion the server's routes and
        the store's ``AgentRecord.definition`` share."""
        if self.mapping is not None:
            return dict(self.mapping), True
        agent = self.agent
        defaults = Agent(name=agent.name)
        data: dict[str, Any] = {}
        for field in ("model", "fallback_model", "description", "temperature", "budget_scope"):
            value = getattr(agent, field)
            if value != getattr(defaults, field):
                data[field] = value
        if isinstance(agent.system, str) and agent.system:
            data["system"] = agent.system
        for field in ("max_tokens", "max_iterations"):
            if getattr(agent, field) != getattr(defaults, field):
                data[field] = getattr(agent, field)
        if agent.send_timeout is not None:
            data["timeout"] = agent.send_timeout
        if agent.tool_names:
            data["tools"] = list(agent.tool_names)
        if agent.team:
            data["team"] = [m if isinstance(m, str) else m.name for m in agent.team]
        if agent.budget is not None:
            data["budget"] = {"limit": agent.budget.limit, "on_exceed": agent.budget.on_exceed}
        return data, False


@attrs.define(eq=False)
class _Session:
    """The bookkeeping of one (agent, user) pair."""

    process: AgentProcess | None = None
    definition: AgentDefinition | None = None
    """The definition ``process`` runs (by identity: a removed and re-defined agent
    starts at revision 1 again)."""
    history: list[Message] | None = None


def session_name(agent: str, user: str | None) -> str:
    """The registry name of a session's process: ``agent:user`` (``agent`` for the
    default conversation)."""
    return agent if user is None else f"{agent}:{user}"


class AgentRegistry:
    """The agents an orchestrator knows by name: ``orch.agents``. Made by the
    orchestrator; its methods are synchronous and safe to call from any task of the
    orchestrator's Trio run.
    """

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orch = orchestrator
        self._definitions: dict[str, AgentDefinition] = {}
        self._sessions: dict[tuple[str, str | None], _Session] = {}
        self._locks: dict[tuple[str, str | None], trio.Lock] = {}
        #: Processes of removed definitions finishing their last reply, by session.
        self._retiring: dict[tuple[str, str | None], AgentProcess] = {}

    # ---------------------------------------------------------------- definitions
    def define(
        self,
        agent: Agent,
        *,
        source: AgentSource = "composed",
        mapping: Mapping[str, Any] | None = None,
    ) -> AgentDefinition:
        """Add a new definition (publishes ``agent.created``).

        ``mapping`` is the blueprint's YAML-equivalent mapping when it was made from one
        (see :attr:`AgentDefinition.mapping`).

        A ``composed`` or ``builtin`` definition is checked first (its tools, its skills'
        tools and its team members' tools must resolve here); a ``yaml`` one was checked
        by its document's validator, and a tool that is missing when it spawns fails
        that spawn (the workflow step) instead.

        Raises:
            AgentExists: a definition of that name exists (use :meth:`update`).
            ToolNotFound, SkillError, ValueError, TypeError: the agent would not
                spawn here (the message names the agent and what is missing).
        """
        if isinstance(agent, Agent) and agent.name in self._definitions:
            raise AgentExists(
                f"an agent named {agent.name!r} is already defined "
                f"({self._definitions[agent.name].source}); update it with "
                "orch.agents.update(agent) or remove it first",
                name=agent.name,
            )
        definition = AgentDefinition(agent=agent, source=source, mapping=mapping)
        if source != "yaml":
            # NOTE: a document's agents were checked by its validator; what is only
            # known at run time (an MCP server that is still reconnecting) fails the
            # step that spawns the agent, as it always did, not the whole document.
            self._orch._check_spawnable(agent)
        self._definitions[agent.name] = definition
        self._emit(AgentCreated, definition)
        return definition

    def update(
        self,
        agent: Agent,
        *,
        source: AgentSource | None = None,
        mapping: Mapping[str, Any] | None = None,
    ) -> AgentDefinition:
        """Replace the definition named ``agent.name`` (publishes ``agent.updated``).

        The new blueprint is checked first; if it fails, the old definition stays and
        nothing restarts. Otherwise every session of the agent is restarted with the
        new blueprint and its conversation, between messages (a reply in progress is
        finished by the old process first).

        Args:
            agent: the new blueprint (its name picks the definition).
            source: the new source (default: the old one).
            mapping: the new blueprint's YAML-equivalent mapping, if it was made from
                one (the old mapping is dropped either way: it described the old one).

        Raises:
            AgentNotFound: there is no such definition (use :meth:`define`).
            ToolNotFound, SkillError, ValueError, TypeError: the new blueprint would
                not spawn; the old definition is kept.
        """
        if not isinstance(agent, Agent):
            raise TypeError(f"update() takes an Agent, not {type(agent).__name__}")
        old = self.get(agent.name)
        definition = AgentDefinition(
            agent=agent,
            source=old.source if source is None else source,
            revision=old.revision + 1,
            mapping=mapping,
        )
        self._orch._check_spawnable(agent)
        self._definitions[agent.name] = definition
        self._emit(AgentUpdated, definition)
        for key, session in list(self._sessions.items()):
            if key[0] == agent.name and session.process is not None:
                self._orch._background(self._refresh_quietly, key)
        return definition

    def remove(self, name: str) -> AgentDefinition:
        """Remove a definition (publishes ``agent.deleted``) and stop its sessions; a
        reply in progress is finished first, and the conversations are forgotten.

        Returns:
            The removed definition.

        Raises:
            AgentNotFound: there is no such definition.
        """
        definition = self.get(name)
        del self._definitions[name]
        self._emit(AgentDeleted, definition)
        for key in [k for k in self._sessions if k[0] == name]:
            # NOTE: forgotten now (a re-defined agent starts new conversations), stopped
            # after the reply in progress; a new session of the same name waits for it.
            proc = self._sessions.pop(key).process
            if proc is not None and proc.alive:
                proc.stop(f"agent definition {name!r} removed")
                self._retiring[key] = proc
        return definition

    def get(self, name: str) -> AgentDefinition:
        """The definition named ``name``.

        Raises:
            AgentNotFound: there is none (the message lists the defined agents).
        """
        definition = self._definitions.get(name)
        if definition is None:
            known = ", ".join(self._definitions) or "none"
            raise AgentNotFound(
                f"no agent named {name!r} is defined (defined agents: {known}); define it "
                "with orch.agents.define(Agent(...))",
                name=name,
            )
        return definition

    def list(self) -> list[AgentDefinition]:
        """Every definition, in the order they were first defined."""
        return list(self._definitions.values())

    def __contains__(self, name: object) -> bool:
        return name in self._definitions

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._definitions))

    def __len__(self) -> int:
        return len(self._definitions)

    def _emit(
        self,
        kind: type[AgentCreated] | type[AgentUpdated] | type[AgentDeleted],
        definition: AgentDefinition,
    ) -> None:
        self._orch._runtime.bus.emit(
            kind,
            agent=definition.name,
            source=definition.source,
            revision=definition.revision,
        )

    # ------------------------------------------------------------------- sessions
    async def _session(self, agent: str, user: str | None) -> AgentProcess:
        """See :meth:`Orchestrator.session <vega_trio.Orchestrator.session>`."""
        _check_user(user)
        self.get(agent)  # fail fast, before queueing on the lock
        key = (agent, user)
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            return await self._refresh_locked(key)

    async def _end_session(self, agent: str, user: str | None) -> bool:
        """See :meth:`Orchestrator.end_session <vega_trio.Orchestrator.end_session>`."""
        _check_user(user)
        return await self._end((agent, user), "session ended")

    async def _refresh_locked(self, key: tuple[str, str | None]) -> AgentProcess:
        agent_name, user = key
        definition = self.get(agent_name)
        session = self._sessions.get(key)
        if session is None:
            history = await self._load(agent_name, user)
            session = self._sessions[key] = _Session(history=history)
        old = session.process
        if old is not None:
            if old.alive and session.definition is definition:
                return old
            if old.alive:
                # NOTE: stop() lets the reply in progress finish (never cut mid-reply);
                # the new process starts from the history that includes it.
                old.stop(f"agent definition {agent_name!r} updated")
                await old.wait()
            session.history = old.history
            session.process = None
        retiring = self._retiring.pop(key, None)
        if retiring is not None:
            await retiring.wait()  # it still holds the session's name
        proc = await self._orch._spawn_session(
            definition.agent, agent_name, session.history or (), user
        )
        session.process = proc
        session.definition = definition
        return proc

    async def _refresh_quietly(self, key: tuple[str, str | None]) -> None:
        """An update's restart of one session, in the background: a failure is logged
        and the next ``session()`` tries again (and raises it to its caller)."""
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            if key not in self._sessions or key[0] not in self._definitions:
                return
            try:
                await self._refresh_locked(key)
            except Exception as exc:  # the session's next use retries and reports it
                _log.warning(
                    "could not restart session %s with the updated definition: %s",
                    session_name(*key),
                    exc,
                )

    async def _end(self, key: tuple[str, str | None], why: str) -> bool:
        """Stop a session (after its reply in progress) and forget it."""
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            session = self._sessions.pop(key, None)
            store = self._orch.config.store
            stored = False
            if store is not None:
                # NOTE: a session not spawned since a restart still has its stored
                # conversation; ending it forgets that too.
                stored = bool(await store.load_conversation(*key))
            if session is not None:
                proc = session.process
                if proc is not None and proc.alive:
                    proc.stop(why)
                    await proc.wait()
            if store is not None:
                await store.replace_conversation(key[0], key[1], [])
            return session is not None or stored

    async def _load(self, agent: str, user: str | None) -> builtins.list[Message]:
        store = self._orch.config.store
        if store is None:
            return []
        return await load_history(store, agent, user)


def _check_user(user: str | None) -> None:
    if user is None:
        return
    if not isinstance(user, str) or not user or ":" in user or user != user.strip():
        raise ValueError(
            f"a session's user must be a non-empty id without ':' or surrounding spaces "
            f"(e.g. user='42'), got {user!r}"
        )
