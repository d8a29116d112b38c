"""The orchestrator: wires the runtime, the agents and the LLM backends together.

Open one with :func:`open_orchestrator` (an ``async with`` block), or start one in a
nursery you already have with ``await nursery.start(run_orchestrator, config)``;
everything it spawns lives inside it and is shut down (gracefully first, then by
cancellation) when it ends. Both take one :class:`~vega_trio.OrchestratorConfig`.

Size: :class:`Orchestrator` is the library's one facade (spawning, agent definitions,
sessions, queries, shutdown); its methods are thin calls into ``runtime/``, ``agent/``,
``_agents`` and ``_persist``, and splitting the class would split its public API.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import trio

from ._agents import AgentRegistry, session_name
from ._collapse import raise_collapsed
from ._config import OrchestratorConfig
from ._errors import (
    ErrorClass,
    LLMError,
    OrchestratorClosed,
    RestartIntensityError,
    ToolNotFound,
)
from ._handles import NoPublicConstructor
from ._persist import Persistence, SessionHistory
from .agent import Agent, AgentBehaviour, AgentProcess
from .agent._loop import fallback_breaker
from .llm import LLM, Message, PriceTable
from .resilience import (
    BudgetTracker,
    CircuitBreaker,
    ConcurrencyCap,
    RateLimiter,
    RateLimiters,
)
from .resilience._path import DEFAULT_LLM_TIMEOUT, CallPath
from .runtime import (
    ChildSpec,
    EventBus,
    Group,
    Monitor,
    Process,
    Runtime,
    SpawnNode,
    Subscription,
    Supervision,
    Supervisor,
    SupervisorSpec,
    current_process_or_none,
)
from .runtime._supervisor import RestartType, ShutdownPolicy
from .skills import skill_tool_names
from .team import blackboard_tools, team_tools
from .tools import Tools, builtin_tools
from .tools.mcp import MCPServers

__all__ = ["Orchestrator", "open_orchestrator", "run_orchestrator"]


@attrs.define(eq=False)
class _AgentShared:
    """What every process of one agent shares: its call path (retry, limiters,
    breaker, timeout) and its spend."""

    agent: Agent
    path: CallPath
    spend: BudgetTracker
    budgets: tuple[BudgetTracker, ...] = ()
    """``(spend, the orchestrator's tracker)``: one tuple shared by the agent's
    processes (a tuple per process was 2 more GC-tracked objects each, B2)."""


_AUTO: Any = object()
_log = logging.getLogger("vega_trio")


@attrs.define(eq=False)
class Orchestrator(metaclass=NoPublicConstructor):
    """Spawns and tracks agent processes. Made by :func:`open_orchestrator` or
    :func:`run_orchestrator` (calling the class raises ``TypeError``).

    Attributes:
        config: what it was opened with (the one place its options are read from:
            ``orch.config.default_model``, ``orch.config.shutdown_timeout``, ...).
        agents: the agent registry (named definitions that can change at run time;
            sessions are spawned from them).
        llm: the default backend in use (``config.llm``, or the one created on first use;
            agents may bring their own).
        prices: the price table used for cost accounting (``config.prices`` or the
            packaged one).
    """

    _public_constructor_hint = "use async with open_orchestrator(...) as orch"

    _runtime: Runtime
    config: OrchestratorConfig
    llm: LLM | None
    prices: PriceTable
    budget: BudgetTracker = attrs.field(factory=lambda: BudgetTracker(owner="the orchestrator"))
    """Total spend, with the global budget (if any)."""
    _supervisors: list[Supervisor] = attrs.field(factory=list)
    backends: dict[str, LLM] = attrs.field(factory=dict)
    """Backends by provider (``"anthropic"``, ``"openai"``) for ``model: "<provider>:<name>"``."""
    _owned: list[LLM] = attrs.field(factory=list)
    """Backends the orchestrator created itself, and so closes at the end."""
    tools: Tools = attrs.field(factory=Tools)
    """Tools every agent can ask for by name (``Agent(tools=["read_file", "fs__*"])``):
    ``open_orchestrator(tools=...)`` and the sandbox's built-ins; MCP tools come on top."""
    mcp: MCPServers | None = None
    """The MCP servers the orchestrator connected (``open_orchestrator(mcp_servers=...)``)."""
    agents: AgentRegistry = attrs.field(init=False)
    """Named agent definitions (``orch.agents.define(agent)``): team members and
    sessions are found here by name."""
    _limiters: RateLimiters = attrs.field(factory=RateLimiters)
    _caps: dict[int, tuple[LLM, ConcurrencyCap]] = attrs.field(factory=dict)
    _shared_by_agent: dict[int, _AgentShared] = attrs.field(factory=dict)
    _close_requested: trio.Event = attrs.field(factory=trio.Event)
    _stopping: bool = False
    _stopped: trio.Event = attrs.field(factory=trio.Event)
    _mcp_done: trio.Event = attrs.field(factory=trio.Event)
    _observers: dict[str, Any] = attrs.field(factory=dict)
    """Observers attached on first use, by kind (``vega_trio.observability``'s metrics
    collector and OpenTelemetry instrumentation)."""
    persistence: Persistence | None = None
    """The writer to ``config.store`` (``None`` without a store): what it has committed
    (``persistence.committed_seq``, ``await persistence.flush()``)."""

    def __attrs_post_init__(self) -> None:
        self.agents = AgentRegistry(self)

    # ------------------------------------------------------------------- spawn
    async def spawn(
        self,
        agent: Agent,
        *,
        parent: AgentProcess | Process | str | None = _AUTO,
        reason: str = "",
        task: str = "",
        messages: Iterable[Message] | None = None,
        name: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the process's lifetime (policy data)
        max_iterations: int | None = None,
        supervision: Supervision | None = None,
        trap_exit: bool = False,
        run_id: str | None = None,
        user: str | None = None,
    ) -> AgentProcess:
        """Start a process of ``agent`` and return it once it is running.

        Args:
            agent: the blueprint.
            parent: the parent in the spawn tree. Defaults to the process whose tool is
                calling ``spawn`` (if any); pass ``None`` for a root process.
            reason: why it was spawned (shown in the spawn tree).
            task: what it is working on (shown in the spawn tree).
            messages: an existing conversation to continue (e.g. from
                :func:`~vega_trio.unmarshal_messages`).
            name: register the process under this name until it exits.
            timeout: lifetime in seconds; afterwards it ends with status ``timeout``.
            max_iterations: overrides the agent's limit for this process.
            supervision: restart policy for this process (default: the agent's).
            trap_exit: receive linked processes' exits as :class:`~vega_trio.ExitSignal`
                messages on ``process.signals`` instead of dying with them.
            run_id: the workflow run it works for; user: the user whose session it is.
                Every event about the process (and its LLM calls and tools) carries them;
                when not given they are inherited from ``parent``.

        Raises:
            OrchestratorClosed: shutdown has begun.
            TooManyProcesses: the live-process limit is reached.
            NameTaken: ``name`` is held by another live process.
            ValueError: an option is invalid (the message says which).
            LLMError: (``authentication``) the agent needs the Anthropic backend the
                orchestrator creates itself, and no credential (``ANTHROPIC_API_KEY``,
                ``ANTHROPIC_AUTH_TOKEN``, a profile) is configured.
        """
        if not isinstance(agent, Agent):
            raise TypeError(f"spawn() takes an Agent, not {type(agent).__name__}")
        if parent is _AUTO:
            caller = current_process_or_none()
            parent = caller if caller is not None and caller._runtime is self._runtime else None
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
        behaviour = self._behaviour(agent, max_iterations=max_iterations)
        if messages is not None:
            history = list(messages)
            for i, message in enumerate(history):
                if not isinstance(message, Message):
                    raise TypeError(
                        f"messages[{i}] must be a Message, not {type(message).__name__}"
                    )
            behaviour.context.load(history)
        return await self._runtime.spawn(
            behaviour,
            process_class=AgentProcess,
            parent=parent,
            reason=reason,
            task=task,
            name=name,
            timeout=timeout,
            mailbox_size=self.config.mailbox_size,
            supervision=supervision if supervision is not None else agent.supervision,
            trap_exit=trap_exit,
            run_id=run_id,
            user=user,
        )

    def _behaviour(
        self,
        agent: Agent,
        *,
        max_iterations: int | None = None,
        extra_tools: Tools | None = None,
    ) -> AgentBehaviour:
        llm, model = self._llm_for(agent)
        fallback = None if agent.fallback_model is None else self._llm_for(agent, fallback=True)
        shared = self._shared(agent, llm, model, fallback)
        tools, skill_tools = self._tools_for(agent)
        if agent.team:
            team = team_tools(agent, self._team_of(agent), self._spawn_delegate)
            tools = (tools or agent.tool_registry).merged(team)
        if extra_tools is not None:
            tools = _with_extra_tools(tools or agent.tool_registry, extra_tools)
        return AgentBehaviour(
            agent,
            llm=llm,
            model=model,
            prices=self.prices,
            bus=self._runtime.bus,
            max_iterations=max_iterations,
            path=shared.path,
            budgets=shared.budgets,
            tools=tools,
            skill_tools=skill_tools,
            fallback_llm=None if fallback is None else fallback[0],
            fallback_model=None if fallback is None else fallback[1],
        )

    def _llm_for(self, agent: Agent, *, fallback: bool = False) -> tuple[LLM, str]:
        """The backend and model id of an agent's calls (of its ``fallback_model``
        when ``fallback`` is true).

        ``model: "openai:<name>"`` (or ``"anthropic:<name>"``) picks the backend of that
        provider (``open_orchestrator(backends={...})``, else one created on first use
        and closed at the end); an agent's own ``llm`` wins over everything.
        """
        model = (agent.fallback_model if fallback else agent.model) or self.config.default_model
        provider, colon, name = model.partition(":")
        if not colon or provider not in _PROVIDERS or not name:
            provider, name = "", model
        if agent.llm is not None:
            return agent.llm, name
        if provider:
            backend = self.backends.get(provider)
            if backend is None:
                if provider == "anthropic" and self.llm is not None:
                    backend = self.llm
                else:
                    backend = self.backends[provider] = _PROVIDERS[provider](agent)
                    self._owned.append(backend)
            return backend, name
        if self.llm is None:
            self.llm = _default_llm(agent)
            self._owned.append(self.llm)
        return self.llm, name

    def _team_of(self, agent: Agent) -> Mapping[str, Agent]:
        members: dict[str, Agent | str] = {}
        for member in agent.team:
            if isinstance(member, str):
                if member not in self.agents:
                    known = ", ".join(self.agents) or "none"
                    raise ValueError(
                        f"agent {agent.name!r} has {member!r} in its team, but no agent of that "
                        f"name is defined (defined agents: {known}); pass the Agent object, or "
                        "define it with orch.agents.define(agent)"
                    )
                members[member] = member
            else:
                members[member.name] = member
        return _Team(self.agents, members)

    async def _spawn_delegate(
        self,
        member: Agent,
        caller: Process,
        team_group: str,
        history: Sequence[Message] = (),
    ) -> Process:
        """A team member's process under ``caller`` (continuing ``history``); with a
        team blackboard it gets the ``bb_*`` tools (whatever its own tools) and joins
        the team's group."""
        behaviour = self._behaviour(member, extra_tools=blackboard_tools() if team_group else None)
        behaviour.team_group = team_group or None
        if history:
            behaviour.context.load(list(history))
        proc = await self._runtime.spawn(
            behaviour,
            process_class=AgentProcess,
            parent=caller,
            reason=f"delegate of {caller.agent_name}",
            task=f"team member of {caller.agent_name}",
            mailbox_size=self.config.mailbox_size,
            supervision=member.supervision,
        )
        if team_group:
            self._runtime.group(team_group).join(proc)
        return proc

    async def broadcast(
        self, group: str, message: str, *, exclude: Process | None = None
    ) -> dict[str, str | BaseException]:
        """Send ``message`` to every live process of ``group`` at once and wait for all.

        Returns:
            Each member's reply text, or the error it failed with, by process id.
        """
        futures = self._runtime.group(group).broadcast(message, exclude=exclude)
        results: dict[str, str | BaseException] = {}
        for future in futures:
            try:
                reply = await future.wait()
            except Exception as exc:  # one member's failure is that member's answer
                results[future.process_id] = exc
            else:
                results[future.process_id] = getattr(reply, "text", reply)
        return results

    def tool_registry(self) -> Tools:
        """Every tool agents can ask for by name: the orchestrator's own tools (and the
        sandbox's built-ins), then the MCP servers' (``<server>__<tool>``)."""
        if self.mcp is None:
            return self.tools
        return self.tools.merged(self.mcp.tools())

    def _tools_for(self, agent: Agent) -> tuple[Tools | None, Tools | None]:
        names = agent.tool_names
        wants_skills = hasattr(agent.system, "tool_names")
        if not names and not wants_skills:
            return None, None
        available = self.tool_registry()
        tools = agent.tool_registry
        if names:
            try:
                picked = available.subset(names)
            except ToolNotFound as exc:
                raise ToolNotFound(f"agent {agent.name!r}: {exc}") from None
            for name in names:
                if not _GLOB.isdisjoint(name) and not _any_match(picked, name):
                    failed = available.missing_provider(name)
                    raise ToolNotFound(
                        f"agent {agent.name!r} asks for tools {name!r}, but no tool matches"
                        + (f": {failed}" if failed else "")
                        + f"; {self._tool_hint()}"
                    )
            tools = tools.merged(picked)
        if not wants_skills:
            return tools, None
        skill_tools = tools.merged(available)
        # Every tool a skill names must exist now, not when a message first activates it.
        skill_tool_names(skill_tools, getattr(agent.system, "skills", ()))
        return tools, skill_tools

    def _tool_hint(self) -> str:
        known = self.tool_registry().names()
        servers = (
            ", ".join(f"{c.config.name}: {c.status}" for c in self.mcp) if self.mcp else "none"
        )
        return (
            f"known tools: {', '.join(known) or 'none'}; MCP servers: {servers}. Give the "
            "orchestrator the tools (tools=, sandbox=, mcp_servers=) or fix the name"
        )

    def _shared(
        self, agent: Agent, llm: LLM, model: str, fallback: tuple[LLM, str] | None = None
    ) -> _AgentShared:
        # NOTE: keyed by identity (the Agent is kept alive by the entry, so its id is
        # not reused): one breaker, limiter and spend per blueprint, made once.
        shared = self._shared_by_agent.get(id(agent))
        if shared is not None:
            return shared
        agent_limiter = None
        if agent.rate_limit is not None:
            agent_limiter = RateLimiter(agent.rate_limit, name=f"agent {agent.name!r}")
        breaker = agent.circuit_breaker
        if breaker is not None and not breaker.name:
            breaker.name = f"agent {agent.name!r}"
        path = self._path(agent, llm, model, agent_limiter, breaker)
        if fallback is not None:
            # NOTE: the fallback model has its own per-model limiter, concurrency cap
            # (of its backend) and breaker state; the agent's own limit covers both.
            path.fallback = self._path(
                agent,
                fallback[0],
                fallback[1],
                agent_limiter,
                fallback_breaker(breaker, fallback[1]),
            )
        spend = BudgetTracker(agent.budget, owner=f"agent {agent.name!r}")
        if self.persistence is not None:  # a restart cannot reset a budget
            spend.spent = self.persistence.claim_spend(agent.name)
        shared = self._shared_by_agent[id(agent)] = _AgentShared(
            agent, path, spend, (spend, self.budget)
        )
        return shared

    def _path(
        self,
        agent: Agent,
        llm: LLM,
        model: str,
        agent_limiter: RateLimiter | None,
        breaker: CircuitBreaker | None,
    ) -> CallPath:
        """The call path of one model of ``agent`` (its primary or fallback)."""
        limiters: list[RateLimiter] = []
        model_limit = self.config.rate_limits.get(model, self.config.rate_limit)
        if model_limit is not None:
            limiters.append(self._limiters.for_model(model, model_limit))
        if agent_limiter is not None:
            limiters.append(agent_limiter)
        cap = None
        if self.config.max_concurrent_calls is not None:
            entry = self._caps.get(id(llm))
            if entry is None:
                entry = self._caps[id(llm)] = (
                    llm,
                    ConcurrencyCap(self.config.max_concurrent_calls),
                )
            cap = entry[1]
        timeout = agent.llm_timeout
        if timeout is None and not hasattr(llm, "timeout"):
            # NOTE: a backend that bounds its own calls says so with a ``timeout``
            # attribute (AnthropicLLM: 300 s); for any other, the SPEC's 5 minutes.
            timeout = DEFAULT_LLM_TIMEOUT
        return CallPath(
            retry=agent.retry,
            limiters=tuple(limiters),
            cap=cap,
            breaker=breaker,
            timeout=timeout,
        )

    # ------------------------------------------------------------- supervisors
    def child_spec(
        self,
        agent: Agent,
        *,
        id: str | None = None,
        restart: RestartType = "permanent",
        shutdown: ShutdownPolicy | None = None,
        significant: bool = False,
        supervision: Supervision | None = None,
        name: str | None = None,
        run_id: str | None = None,
        user: str | None = None,
    ) -> ChildSpec:
        """A supervisor child spec that runs ``agent`` (a fresh process per restart).

        Args:
            agent: the blueprint.
            id: the child's id in its supervisor (default: the agent's name).
            restart: ``permanent``, ``transient`` or ``temporary``.
            shutdown: ``brutal_kill``, seconds, or ``infinity`` (default 5 s).
            significant: counts for the supervisor's ``auto_shutdown``.
            supervision: per-process supervision inside the tree (restart in place first).
            name: register the child's current process under this name.
            run_id: the workflow run its processes work for; user: the user whose session
                they are (their events carry both).
        """
        if not isinstance(agent, Agent):
            raise TypeError(f"child_spec() takes an Agent, not {type(agent).__name__}")
        return ChildSpec(
            id=id or agent.name,
            start=functools.partial(self._behaviour, agent),
            restart=restart,
            shutdown=shutdown,
            significant=significant,
            supervision=supervision if supervision is not None else agent.supervision,
            name=name,
            run_id=run_id,
            user=user,
        )

    def child(self, agent: Agent, **options: Any) -> ChildSpec:
        """Deprecated name of :meth:`child_spec` (it read like :meth:`Supervisor.child`,
        which returns a *running* child); it goes in the next release."""
        warnings.warn(
            "Orchestrator.child() is deprecated: use orch.child_spec(agent, ...), which "
            "returns the same ChildSpec (Supervisor.child(id) returns a running child)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.child_spec(agent, **options)

    async def start_supervisor(
        self, spec: SupervisorSpec, *, parent: Process | None = None
    ) -> Supervisor:
        """Start a supervisor tree in the orchestrator and return it once every child
        runs. Build agent children with :meth:`child_spec`.

        If the supervisor gives up (more restarts than its intensity allows), it stops
        its children, publishes ``supervisor.gave_up`` and exits with reason
        ``shutdown``: its monitors fire and its linked processes get that exit
        (``orch.monitor(sup)``, ``orch.link(sup, p)``). The orchestrator goes on, unless
        it was opened with ``propagate_supervisor_failures=True``: then the
        :class:`~vega_trio.RestartIntensityError` ends the orchestrator's block and is
        raised to its owner.

        Args:
            spec: the tree.
            parent: the tree's owner, also shown as its children's parent in the spawn
                tree. Link the two (``orch.link(sup, parent)``) and the owner's exit
                shuts the tree down (OTP's ``start_link``).

        Raises:
            ChildStartFailed: a child could not be started.
            OrchestratorClosed: shutdown has begun.
        """
        if self._runtime._closing:
            raise OrchestratorClosed("the orchestrator is shutting down; no new supervisors")
        supervisor: Supervisor = await self._runtime._nursery.start(
            functools.partial(self._run_supervisor, spec, parent=parent)
        )
        self._supervisors.append(supervisor)
        return supervisor

    async def _run_supervisor(  # noqa: ASYNC128 - spec.run calls started()
        self,
        spec: SupervisorSpec,
        *,
        parent: Process | None,
        task_status: trio.TaskStatus[Supervisor],
    ) -> None:
        try:
            await spec.run(self._runtime, parent=parent, task_status=task_status)
        except RestartIntensityError as exc:
            if self.config.propagate_supervisor_failures:
                raise  # ends the orchestrator's block; open_orchestrator unwraps it
            # NOTE: the give-up is already published (supervisor.gave_up) and its
            # monitors and links have fired; by default a top-level tree that gives up
            # does not take the orchestrator down with it.
            _log.warning("%s", exc)

    def supervisors(self) -> list[Supervisor]:
        """Supervisors started with :meth:`start_supervisor` that are still running."""
        self._supervisors = [s for s in self._supervisors if s.alive]
        return list(self._supervisors)

    def supervision_tree(self) -> list[dict[str, Any]]:
        """The live supervision trees (one per running supervisor), JSON-friendly."""
        return [s.tree() for s in self.supervisors()]

    # ---------------------------------------------------------------- sessions
    async def session(self, agent: str, *, user: str | None = None) -> AgentProcess:
        """The live process of ``agent``'s conversation with ``user``, spawned on first
        use from the agent's definition in :attr:`agents`.

        The process is registered as ``"<agent>:<user>"`` (``"<agent>"`` when ``user`` is
        ``None``: the agent's default conversation) — the ``agent:user-id`` of the REST
        API. Concurrent first calls get the same process. The first spawn loads the
        conversation from ``config.store`` when one is set. The same conversation goes
        on in a fresh process when the definition is updated (after the reply in
        progress) or when the process died. Ask for the session again for each message
        rather than keeping the process: after a restart the old one is gone::

            orch.agents.define(Agent(name="assistant"))
            proc = await orch.session("assistant", user="42")
            reply = await proc.send("Hello!")

        Raises:
            AgentNotFound: no definition of that name.
            ValueError: ``user`` is empty or contains ``:``.
            OrchestratorClosed, TooManyProcesses, NameTaken: as :meth:`spawn`.
        """
        return await self.agents._session(agent, user)

    async def end_session(self, agent: str, *, user: str | None = None) -> bool:
        """End a session and forget its conversation: the process finishes the reply in
        progress, then stops; the next :meth:`session` starts a new conversation.

        Returns:
            Whether there was such a session.
        """
        return await self.agents._end_session(agent, user)

    async def _spawn_session(
        self, agent: Agent, agent_name: str, history: Sequence[Message], user: str | None
    ) -> AgentProcess:
        proc = await self.spawn(
            agent,
            parent=None,
            name=session_name(agent_name, user),
            messages=history,
            reason="session",
            task=f"session {session_name(agent_name, user)}",
            user=user,
        )
        if self.config.store is not None:
            # NOTE: set before anyone has the process: every turn it completes is
            # committed before its send is answered.
            proc._agent_behaviour.history_sink = SessionHistory(self.config.store, agent_name, user)
        return proc

    def _check_spawnable(self, agent: Agent) -> None:
        """Raise what spawning ``agent`` here would raise about its tools, its skills'
        tools and its team members' tools (team members named by string are resolved
        when it spawns, so definitions may name each other)."""
        if not isinstance(agent, Agent):
            raise TypeError(f"an agent definition must be an Agent, not {type(agent).__name__}")
        seen: set[int] = set()
        pending = [agent]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            self._tools_for(current)
            pending.extend(m for m in current.team if isinstance(m, Agent))

    def _background(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` as a task of the orchestrator (ended with it)."""
        if not self._runtime._closing:
            self._runtime._nursery.start_soon(fn, *args)

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Ask the orchestrator to shut down and return at once.

        The shutdown ladder runs in the orchestrator's own task: supervisor trees
        first (each with its own ladder, newest first), then the remaining processes
        in reverse start order (children before parents), within
        ``config.shutdown_timeout`` seconds, then whatever still runs is cancelled;
        MCP connections close last. New spawns fail with
        :class:`~vega_trio.OrchestratorClosed` from now on. A
        :func:`run_orchestrator` task returns once the ladder is done; inside an
        ``open_orchestrator`` block the block goes on with a closed orchestrator.
        Calling it again does nothing.
        """
        self._runtime._closing = True
        self._close_requested.set()

    async def aclose(self) -> None:
        """:meth:`close`, then wait until the shutdown ladder is done."""
        self.close()
        await self._stopped.wait()

    async def _watch_close(self) -> None:
        await self._close_requested.wait()
        await self._stop()

    # ----------------------------------------------------------------- queries
    @property
    def events(self) -> EventBus:
        """The event bus every state change is published on."""
        return self._runtime.bus

    @contextmanager
    def subscribe(
        self,
        *,
        max_buffer: int = 1000,
        types: Iterable[str] | str | None = None,
        agents: Iterable[str] | str | None = None,
        processes: Iterable[str] | str | None = None,
        runs: Iterable[str] | str | None = None,
        users: Iterable[str] | str | None = None,
        after: int | None = None,
    ) -> Iterator[Subscription]:
        """Subscribe to runtime events (:mod:`vega_trio.events`) for a ``with`` block,
        filtered by type (``"llm.call"``, ``"process.*"``), agent, process, workflow run
        and user, optionally replaying those kept after sequence number ``after`` (see
        :meth:`EventBus.subscribe <vega_trio.runtime.EventBus.subscribe>`)."""

        def collect(value: Iterable[str] | str | None) -> list[str] | str | None:
            return value if value is None or isinstance(value, str) else list(value)

        with self._runtime.bus.subscribe(
            max_buffer=max_buffer,
            types=collect(types),
            agents=collect(agents),
            processes=collect(processes),
            runs=collect(runs),
            users=collect(users),
            after=after,
        ) as subscription:
            yield subscription

    def get(self, process_id: str) -> Process:
        """The live process with this id (raises :class:`~vega_trio.ProcessNotFound`)."""
        return self._runtime.get(process_id)

    def processes(self) -> list[Process]:
        """Live processes in start order."""
        return self._runtime.processes()

    def spawn_tree(self) -> list[SpawnNode]:
        """The spawn tree: nested nodes in start order."""
        return self._runtime.spawn_tree()

    def register(self, name: str, process: Process) -> None:
        """Bind ``name`` to ``process`` until it exits."""
        self._runtime.register(name, process)

    def unregister(self, name: str) -> None:
        """Release ``name``."""
        self._runtime.unregister(name)

    def lookup(self, name: str) -> Process:
        """The live process registered as ``name`` (raises :class:`~vega_trio.ProcessNotFound`)."""
        return self._runtime.lookup(name)

    def link(self, a: Process | Supervisor | str, b: Process | Supervisor | str) -> None:
        """Link two processes or supervisors: when one exits with any reason but
        ``normal``, the other dies with it (reason ``linked``) unless it traps exits;
        a supervisor traps exits. See :meth:`Runtime.link`."""
        self._runtime.link(a, b)

    def unlink(self, a: Process | Supervisor | str, b: Process | Supervisor | str) -> None:
        """Remove the link between two processes or supervisors (if any)."""
        self._runtime.unlink(a, b)

    def monitor(
        self, target: Process | Supervisor | str, *, watcher: Process | None = None
    ) -> Monitor:
        """Watch ``target`` (a process or a supervisor): ``await monitor.wait()``
        returns its :class:`~vega_trio.Down` once it exits (at once, with reason
        ``noproc``, if it is already gone)."""
        return self._runtime.monitor(target, watcher=watcher)

    def demonitor(self, monitor: Monitor) -> bool:
        """Remove exactly this monitor; returns whether it was still active."""
        return self._runtime.demonitor(monitor)

    def group(self, name: str) -> Group:
        """The process group ``name`` (created on first use) with its blackboard."""
        return self._runtime.group(name)

    def stats(self) -> dict[str, Any]:
        """Counts and totals across live processes."""
        live = self._runtime.processes()
        cost = sum(p.metrics.cost_usd for p in live if isinstance(p, AgentProcess))
        return {
            "live_processes": len(live),
            "total_spawned": self._runtime.total_spawned,
            "live_cost_usd": cost,
            "total_cost_usd": self.budget.spent,
            "events_published": self._runtime.bus.published,
            **(
                {"restarts_by_agent": dict(self.persistence.restarts)}
                if self.persistence is not None
                else {}
            ),
        }

    def costs(self) -> dict[str, Any]:
        """What was spent, in USD: in total and per agent, with their budgets.

        Returns:
            ``{"total_usd", "budget": {...} | None, "agents": {name: {"cost_usd",
            "budget": {...} | None}}}``; a budget is ``{"limit_usd", "on_exceed",
            "remaining_usd"}``. Agents that share a name are added together. Per-process
            costs are on each process's ``metrics``; per-call costs on ``llm.call``
            events.
        """
        agents: dict[str, dict[str, Any]] = {}
        for shared in self._shared_by_agent.values():
            entry = agents.setdefault(shared.agent.name, {"cost_usd": 0.0, "budget": None})
            entry["cost_usd"] += shared.spend.spent
            if shared.spend.budget is not None:
                entry["budget"] = _budget_dict(shared.spend)
        if self.persistence is not None:  # agents not spawned since a restart
            for name, spent in self.persistence.restored_spend.items():
                agents.setdefault(name, {"cost_usd": 0.0, "budget": None})["cost_usd"] += spent
        return {
            "total_usd": self.budget.spent,
            "budget": _budget_dict(self.budget) if self.budget.budget is not None else None,
            "agents": agents,
        }

    async def _stop(self) -> None:
        """The shutdown ladder (see :meth:`close`); runs once, later calls wait for it."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            grace = self.config.shutdown_timeout
            deadline = trio.current_time() + grace
            self._runtime._closing = True
            with trio.move_on_at(deadline):
                for supervisor in reversed(self.supervisors()):
                    await supervisor.shutdown()
            for supervisor in self.supervisors():
                supervisor.kill("orchestrator shutdown: grace elapsed")
            await self._runtime.shutdown(max(0.0, deadline - trio.current_time()))
            if self.mcp is not None:
                # NOTE: each connection closes in the task that opened it (stdin
                # closed, a bounded wait, then a kill) before the nursery is cancelled.
                self.mcp.close()
                with trio.move_on_after(grace):
                    await self._mcp_done.wait()
        finally:
            self._stopped.set()


# NOTE: helpers of their own, not comprehensions inside Orchestrator._behaviour and
# _tools_for: a name a nested scope uses becomes a cell made at every spawn (B2, B3).
def _with_extra_tools(mine: Tools, extra_tools: Tools) -> Tools:
    """``mine`` plus those of ``extra_tools`` it does not have already."""
    return mine.merged(extra_tools.subset(n for n in extra_tools.names() if n not in mine))


_GLOB = frozenset("*?[")


def _any_match(tools: Tools, pattern: str) -> bool:
    return any(_matches(tool.name, pattern) for tool in tools)


def _matches(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def _budget_dict(tracker: BudgetTracker) -> dict[str, Any]:
    budget = tracker.budget
    assert budget is not None
    return {
        "limit_usd": budget.limit,
        "on_exceed": budget.on_exceed,
        "remaining_usd": tracker.remaining,
    }


async def _run_mcp(  # noqa: ASYNC114, ASYNC128 - servers.run calls started()
    servers: MCPServers,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[MCPServers] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await servers.run(task_status=task_status)
    finally:
        done.set()


def _default_llm(agent: Agent) -> LLM:
    """The Anthropic backend the orchestrator creates when none was given.

    Raises:
        LLMError: (``authentication``) no credential is configured: every call would
            fail, so the spawn fails now and says what to set.
    """
    from .llm import AnthropicLLM

    llm = AnthropicLLM()
    if not llm.has_credentials:
        raise LLMError(
            f"cannot spawn agent {agent.name!r}: no LLM backend is configured and no "
            "Anthropic credentials were found; set ANTHROPIC_API_KEY, or pass a backend "
            "(open_orchestrator(llm=...) or Agent(llm=...); vega_trio.testing.ScriptedLLM "
            "runs offline; in the CLI: --llm scripted)",
            error_class=ErrorClass.AUTHENTICATION,
        )
    return llm


def _openai_llm(agent: Agent) -> LLM:
    from .llm import OpenAICompatibleLLM

    return OpenAICompatibleLLM()


_PROVIDERS: dict[str, Callable[[Agent], LLM]] = {"anthropic": _default_llm, "openai": _openai_llm}


def _configured(
    config: OrchestratorConfig | None, overrides: Mapping[str, Any]
) -> OrchestratorConfig:
    """``config`` (default: all defaults) with ``overrides`` applied by
    :func:`attrs.evolve` (so they are validated like the config's own fields)."""
    if config is not None and not isinstance(config, OrchestratorConfig):
        raise TypeError(
            "open_orchestrator() takes an OrchestratorConfig as its only positional "
            f"argument, not {type(config).__name__}; pass options by keyword "
            "(open_orchestrator(llm=...))"
        )
    unknown = sorted(set(overrides) - {f.name for f in attrs.fields(OrchestratorConfig)})
    if unknown:
        raise TypeError(
            f"open_orchestrator() got unknown option(s) {', '.join(unknown)}; see "
            "OrchestratorConfig for the options"
        )
    if config is None:
        return OrchestratorConfig(**overrides)
    return attrs.evolve(config, **overrides) if overrides else config


@asynccontextmanager
async def open_orchestrator(
    config: OrchestratorConfig | None = None, /, **overrides: Any
) -> AsyncIterator[Orchestrator]:
    """Open an orchestrator for the duration of an ``async with`` block::

        async with vega_trio.open_orchestrator(llm=ScriptedLLM.echo()) as orch:
            proc = await orch.spawn(Agent(name="assistant"))
            print(await proc.send("Hello!"))

    Args:
        config: everything the orchestrator is opened with (default: an
            :class:`~vega_trio.OrchestratorConfig` with its defaults).
        overrides: fields of :class:`~vega_trio.OrchestratorConfig` (``llm``,
            ``default_model``, ``max_processes``, ``shutdown_timeout``, ``prices``,
            ``mailbox_size``, ``budget``, ``rate_limit``, ``rate_limits``,
            ``max_concurrent_calls``, ``tools``, ``sandbox``, ``mcp_servers``,
            ``backends``, ``propagate_supervisor_failures``, ``store``) that replace the
            config's (``attrs.evolve``); see the config for what each means.

    When the block ends normally, processes are asked to stop in reverse start order
    (children before parents), then whatever still runs after ``shutdown_timeout`` is
    cancelled (:meth:`Orchestrator.close` describes the ladder); if the block raises,
    they are cancelled at once. Either way every caller still waiting gets an answer
    and nothing keeps running. With ``propagate_supervisor_failures``, a top-level
    tree's :class:`~vega_trio.RestartIntensityError` is raised from the ``async with``.

    Raises:
        TypeError, ValueError: an option is invalid (the message names it).
    """
    config = _configured(config, overrides)
    runtime: Runtime | None = None
    orch: Orchestrator | None = None
    registry = config.tools
    if config.sandbox is not None:
        registry = registry.merged(builtin_tools(config.sandbox))
    servers = MCPServers(config.mcp_servers) if config.mcp_servers else None
    try:
        async with trio.open_nursery() as nursery:
            runtime = Runtime(nursery, max_processes=config.max_processes)
            if config.event_history:
                runtime.bus.keep_history(config.event_history)
            if servers is not None:
                servers.publish_to(runtime.bus)
            orch = Orchestrator._create(
                runtime,
                config,
                config.llm,
                config.prices or PriceTable.default(),
                BudgetTracker(config.budget, owner="the global budget"),
                tools=registry,
                mcp=servers,
                backends=dict(config.backends),
            )
            if config.store is not None:
                # NOTE: before anything is published: numbers continue after the
                # stored ones, spend and restart totals are restored.
                persistence = orch.persistence = Persistence(config.store, orch)
                await persistence.restore()
                await nursery.start(persistence.run)
            if config.health is not None:
                from .observability._health import HealthMonitor

                monitor = orch._observers["health"] = HealthMonitor(config.health, runtime.bus)
                await nursery.start(monitor.run)
            if servers is not None:
                await nursery.start(_run_mcp, servers, orch._mcp_done)
            nursery.start_soon(orch._watch_close)
            try:
                yield orch
                await orch._stop()
            finally:
                runtime._closing = True
                nursery.cancel_scope.cancel(reason="orchestrator block ended")
    except BaseExceptionGroup as group:
        # The processes never raise into the nursery, so a group here wraps the
        # block's own error (or a tree's give-up, with propagate_supervisor_failures):
        # hand it back unwrapped.
        raise_collapsed(group)
    finally:
        if orch is not None and orch.persistence is not None:
            # NOTE: the last events (the shutdown's process.stopped) are written after
            # the writer task ended; bounded, so a store that is down cannot hang it.
            with trio.move_on_after(orch.config.shutdown_timeout + 5, shield=True):
                await orch.persistence.close()
        if runtime is not None:
            runtime.bus.close()
        for owned in orch._owned if orch is not None else ():
            aclose = getattr(owned, "aclose", None)
            if aclose is not None:
                # NOTE: awaited cleanup gets a deadline, even when we are being cancelled.
                with trio.move_on_after(5, shield=True):
                    await aclose()


async def run_orchestrator(
    config: OrchestratorConfig | None = None,
    /,
    *,
    task_status: trio.TaskStatus[Orchestrator] = trio.TASK_STATUS_IGNORED,
    **overrides: Any,
) -> None:
    """Run an orchestrator as a task of a nursery you already have (Trio's
    ``nursery.start`` protocol, like hypercorn's ``serve``)::

        async with trio.open_nursery() as nursery:
            orch = await nursery.start(run_orchestrator, config)
            ...
            orch.close()  # or cancel the nursery

    Supports ``nursery.start``: ``started()`` is called with the
    :class:`Orchestrator` once it is ready (its MCP servers connected), so ``await
    nursery.start(...)`` returns the orchestrator. An error before that — an invalid
    option, an MCP server that cannot start — is raised from ``nursery.start``.

    It runs until :meth:`Orchestrator.close` (or ``await orch.aclose()``) is called:
    then it runs the same graceful shutdown ladder as the end of an
    ``open_orchestrator`` block and returns. Cancelling its nursery is like an
    ``open_orchestrator`` block that raised: every process is cancelled at once, and
    every caller still waiting gets an answer. Errors that end the orchestrator (a
    top-level tree's give-up with ``propagate_supervisor_failures``) are raised into
    the nursery.

    Args:
        config: as :func:`open_orchestrator`.
        task_status: given by ``nursery.start``.
        overrides: as :func:`open_orchestrator`.
    """
    async with open_orchestrator(config, **overrides) as orch:
        task_status.started(orch)
        await orch._stopped.wait()


class _Team(Mapping[str, Agent]):
    """A lead's team by member name. A member the lead names by string is looked up in
    the registry at each delegation, so an update of its definition (REST, Mother) is
    what the next delegation runs; a member deleted since is not in the team any more."""

    __slots__ = ("_members", "_registry")

    def __init__(self, registry: AgentRegistry, members: dict[str, Agent | str]) -> None:
        self._registry = registry
        self._members = members

    def __getitem__(self, name: str) -> Agent:
        member = self._members[name]
        if isinstance(member, str):
            if member not in self._registry:
                raise KeyError(name)
            return self._registry.get(member).agent
        return member

    def __iter__(self) -> Iterator[str]:
        return (
            name
            for name, member in self._members.items()
            if not isinstance(member, str) or member in self._registry
        )

    def __len__(self) -> int:
        return sum(1 for _ in self)
