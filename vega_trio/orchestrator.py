"""The orchestrator: wires the runtime, the agents and the LLM backends together.

Open one with :func:`open_orchestrator`; everything it spawns lives inside that block
and is shut down (gracefully first, then by cancellation) when the block ends.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import trio

from ._collapse import raise_collapsed
from ._errors import (
    ErrorClass,
    LLMError,
    OrchestratorClosed,
    RestartIntensityError,
    ToolNotFound,
)
from .agent import Agent, AgentBehaviour, AgentProcess
from .agent._loop import fallback_breaker
from .llm import DEFAULT_MODEL, LLM, Message, PriceTable
from .resilience import (
    Budget,
    BudgetTracker,
    CircuitBreaker,
    ConcurrencyCap,
    RateLimit,
    RateLimiter,
    RateLimiters,
    parse_money,
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
from .tools import Sandbox, Tool, Tools, builtin_tools
from .tools.mcp import MCPServerConfig, MCPServers

__all__ = ["Orchestrator", "open_orchestrator"]


@attrs.define(eq=False)
class _AgentShared:
    """What every process of one agent shares: its call path (retry, limiters,
    breaker, timeout) and its spend."""

    agent: Agent
    path: CallPath
    spend: BudgetTracker


_AUTO: Any = object()
_log = logging.getLogger("vega_trio")


@attrs.define(eq=False)
class Orchestrator:
    """Spawns and tracks agent processes. Made by :func:`open_orchestrator`.

    Attributes:
        llm: the default backend (agents may bring their own).
        default_model: the model for agents that name none.
        prices: the price table used for cost accounting.
        shutdown_timeout: seconds a graceful shutdown may take before the rest is cancelled.
    """

    _runtime: Runtime
    llm: LLM | None
    default_model: str
    prices: PriceTable
    shutdown_timeout: float
    mailbox_size: int = 64
    budget: BudgetTracker = attrs.field(factory=lambda: BudgetTracker(owner="the orchestrator"))
    """Total spend, with the global budget (if any)."""
    rate_limit: RateLimit | None = None
    rate_limits: Mapping[str, RateLimit] = attrs.field(factory=dict)
    max_concurrent_calls: int | None = None
    _supervisors: list[Supervisor] = attrs.field(factory=list)
    propagate_supervisor_failures: bool = False
    """A top-level tree that gives up ends the orchestrator's block with its
    :class:`~vega_trio.RestartIntensityError` (``open_orchestrator(...)``'s option)."""
    backends: dict[str, LLM] = attrs.field(factory=dict)
    """Backends by provider (``"anthropic"``, ``"openai"``) for ``model: "<provider>:<name>"``."""
    _owned: list[LLM] = attrs.field(factory=list)
    """Backends the orchestrator created itself, and so closes at the end."""
    tools: Tools = attrs.field(factory=Tools)
    """Tools every agent can ask for by name (``Agent(tools=["read_file", "fs__*"])``):
    ``open_orchestrator(tools=...)`` and the sandbox's built-ins; MCP tools come on top."""
    mcp: MCPServers | None = None
    """The MCP servers the orchestrator connected (``open_orchestrator(mcp_servers=...)``)."""
    sandbox: Sandbox | None = None
    agents: dict[str, Agent] = attrs.field(factory=dict)
    """Agents known by name (every spawned agent, and ``register_agent``): team members
    may be named instead of given as objects."""
    _limiters: RateLimiters = attrs.field(factory=RateLimiters)
    _caps: dict[int, tuple[LLM, ConcurrencyCap]] = attrs.field(factory=dict)
    _shared_by_agent: dict[int, _AgentShared] = attrs.field(factory=dict)

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
        self.agents.setdefault(agent.name, agent)
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
            mailbox_size=self.mailbox_size,
            supervision=supervision if supervision is not None else agent.supervision,
            trap_exit=trap_exit,
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
            self.register_agent(agent)
            team = team_tools(agent, self._team_of(agent), self._spawn_delegate)
            tools = (tools or agent.tool_registry).merged(team)
        if extra_tools is not None:
            mine = tools or agent.tool_registry
            tools = mine.merged(extra_tools.subset(n for n in extra_tools.names() if n not in mine))
        return AgentBehaviour(
            agent,
            llm=llm,
            model=model,
            prices=self.prices,
            bus=self._runtime.bus,
            max_iterations=max_iterations,
            path=shared.path,
            budgets=(shared.spend, self.budget),
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
        model = (agent.fallback_model if fallback else agent.model) or self.default_model
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

    def register_agent(self, agent: Agent) -> None:
        """Make ``agent`` known by its name (for ``team=["name"]``).

        Raises:
            ValueError: a different agent already has that name.
        """
        known = self.agents.get(agent.name)
        if known is not None and known is not agent and known != agent:
            raise ValueError(
                f"another agent is already registered as {agent.name!r}; agent names must "
                "be unique within an orchestrator"
            )
        self.agents[agent.name] = agent

    def _team_of(self, agent: Agent) -> dict[str, Agent]:
        members: dict[str, Agent] = {}
        for member in agent.team:
            if isinstance(member, str):
                found = self.agents.get(member)
                if found is None:
                    known = ", ".join(self.agents) or "none"
                    raise ValueError(
                        f"agent {agent.name!r} has {member!r} in its team, but no agent of that "
                        f"name is known (known agents: {known}); pass the Agent object, or "
                        "register it with orch.register_agent()"
                    )
                member = found
            members[member.name] = member
        return members

    async def _spawn_delegate(self, member: Agent, caller: Process, team_group: str) -> Process:
        """A team member's process under ``caller``; with a team blackboard it gets the
        ``bb_*`` tools (whatever its own tools) and joins the team's group."""
        self.agents.setdefault(member.name, member)
        behaviour = self._behaviour(member, extra_tools=blackboard_tools() if team_group else None)
        behaviour.team_group = team_group or None
        proc = await self._runtime.spawn(
            behaviour,
            process_class=AgentProcess,
            parent=caller,
            reason=f"delegate of {caller.agent_name}",
            task=f"team member of {caller.agent_name}",
            mailbox_size=self.mailbox_size,
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
                if any(c in name for c in "*?[") and not any(
                    _matches(tool.name, name) for tool in picked
                ):
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
        shared = self._shared_by_agent[id(agent)] = _AgentShared(agent, path, spend)
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
        model_limit = self.rate_limits.get(model, self.rate_limit)
        if model_limit is not None:
            limiters.append(self._limiters.for_model(model, model_limit))
        if agent_limiter is not None:
            limiters.append(agent_limiter)
        cap = None
        if self.max_concurrent_calls is not None:
            entry = self._caps.get(id(llm))
            if entry is None:
                entry = self._caps[id(llm)] = (llm, ConcurrencyCap(self.max_concurrent_calls))
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
    def child(
        self,
        agent: Agent,
        *,
        id: str | None = None,
        restart: RestartType = "permanent",
        shutdown: ShutdownPolicy | None = None,
        significant: bool = False,
        supervision: Supervision | None = None,
        name: str | None = None,
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
        """
        if not isinstance(agent, Agent):
            raise TypeError(f"child() takes an Agent, not {type(agent).__name__}")
        return ChildSpec(
            id=id or agent.name,
            start=functools.partial(self._behaviour, agent),
            restart=restart,
            shutdown=shutdown,
            significant=significant,
            supervision=supervision if supervision is not None else agent.supervision,
            name=name,
        )

    async def start_supervisor(
        self, spec: SupervisorSpec, *, parent: Process | None = None
    ) -> Supervisor:
        """Start a supervisor tree in the orchestrator and return it once every child
        runs. Build agent children with :meth:`child`.

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
            if self.propagate_supervisor_failures:
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

    # ----------------------------------------------------------------- queries
    @property
    def runtime(self) -> Runtime:
        """The underlying process table (the LLM-free layer)."""
        return self._runtime

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
        return {
            "total_usd": self.budget.spent,
            "budget": _budget_dict(self.budget) if self.budget.budget is not None else None,
            "agents": agents,
        }

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop everything now: supervisor trees first (each with its own shutdown ladder,
        newest first), then the remaining processes in reverse start order (children
        before parents), all within ``grace`` seconds (default ``shutdown_timeout``),
        then cancel whatever still runs."""
        grace = self.shutdown_timeout if grace is None else grace
        deadline = trio.current_time() + grace
        self._runtime._closing = True
        with trio.move_on_at(deadline):
            for supervisor in reversed(self.supervisors()):
                await supervisor.shutdown()
        for supervisor in self.supervisors():
            supervisor.kill("orchestrator shutdown: grace elapsed")
        await self._runtime.shutdown(max(0.0, deadline - trio.current_time()))


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


def _as_budget(value: Budget | str | float | None) -> Budget | None:
    if value is None or isinstance(value, Budget):
        return value
    return Budget(limit=parse_money(value))


def _global_tools(tools: Tools | Sequence[Callable[..., Any] | Tool] | None) -> Tools:
    if isinstance(tools, Tools):
        return tools
    if tools is not None and (isinstance(tools, str | bytes) or not isinstance(tools, Sequence)):
        raise TypeError(
            "open_orchestrator(tools=...) takes a Tools registry or a list of functions / "
            f"Tool objects, not {type(tools).__name__}"
        )
    registry = Tools()
    for tool in tools or ():
        registry.register(tool)
    return registry


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


@asynccontextmanager
async def open_orchestrator(
    llm: LLM | None = None,
    *,
    default_model: str = DEFAULT_MODEL,
    max_processes: int | None = None,
    shutdown_timeout: float = 10.0,
    prices: PriceTable | None = None,
    mailbox_size: int = 64,
    budget: Budget | str | float | None = None,
    rate_limit: RateLimit | None = None,
    rate_limits: Mapping[str, RateLimit] | None = None,
    max_concurrent_calls: int | None = None,
    tools: Tools | Sequence[Callable[..., Any] | Tool] | None = None,
    sandbox: str | os.PathLike[str] | Sandbox | None = None,
    mcp_servers: Iterable[MCPServerConfig] = (),
    backends: Mapping[str, LLM] | None = None,
    propagate_supervisor_failures: bool = False,
) -> AsyncIterator[Orchestrator]:
    """Open an orchestrator for the duration of an ``async with`` block::

        async with vega_trio.open_orchestrator(llm=ScriptedLLM.echo()) as orch:
            proc = await orch.spawn(Agent(name="assistant"))
            print(await proc.send("Hello!"))

    Args:
        llm: the default backend; ``None`` creates an :class:`~vega_trio.llm.AnthropicLLM`
            (reading ``ANTHROPIC_API_KEY``) when the first agent without its own backend
            is spawned.
        default_model: the model of agents that name none.
        max_processes: the most live processes at once (finished ones don't count).
        shutdown_timeout: at the end of the block, seconds processes get to finish
            their current message before they are cancelled.
        prices: the price table (default: the packaged one).
        mailbox_size: each process's bounded mailbox.
        budget: the global budget: a :class:`~vega_trio.resilience.Budget`, or an
            amount (``"$5.00"``, ``5``) for a ``block`` budget; every agent's spend
            counts against it.
        rate_limit: the requests/tokens per minute of *each* model, shared by every
            process on that model (each model gets its own window).
        rate_limits: per-model limits by model id; they replace ``rate_limit`` for
            those models.
        max_concurrent_calls: at most this many LLM calls in flight per backend.
        tools: tools every agent can ask for by name (a :class:`~vega_trio.tools.Tools`
            registry or a list of functions / ``Tool`` objects).
        sandbox: a directory (or :class:`~vega_trio.tools.Sandbox`): registers the
            built-in tools ``read_file``, ``write_file``, ``append_file``,
            ``list_files`` and ``run_command``, confined to it.
        mcp_servers: MCP servers to connect before the block starts (each in its own
            task, reconnected when it fails); their tools are named
            ``<server>__<tool>`` and agents pick them by name or glob.
        backends: backends by provider for agents whose model says
            ``"openai:<name>"`` or ``"anthropic:<name>"`` (a missing one is created
            on first use: ``OpenAICompatibleLLM()`` reads ``OPENAI_API_KEY`` /
            ``OPENAI_BASE_URL``).
        propagate_supervisor_failures: when a tree started with
            :meth:`Orchestrator.start_supervisor` gives up, end the block: the work in
            it is cancelled, every process is cancelled, and the tree's
            :class:`~vega_trio.RestartIntensityError` (``supervisor``,
            ``supervisor_id``; the last child failure as ``__cause__``) is raised from
            the ``async with``. By default (``False``) the orchestrator goes on; the
            give-up is still published (``supervisor.gave_up``) and fires the tree's
            monitors and links.

    When the block ends normally, processes are asked to stop in reverse start order
    (children before parents), then whatever still runs after ``shutdown_timeout`` is
    cancelled; if the block raises, they are cancelled at once. Either way every caller
    still waiting gets an answer and nothing keeps running.
    """
    if shutdown_timeout < 0:
        raise ValueError(f"shutdown_timeout must be >= 0, got {shutdown_timeout}")
    if max_processes is not None and max_processes < 1:
        raise ValueError(f"max_processes must be at least 1, got {max_processes}")
    if max_concurrent_calls is not None:
        ConcurrencyCap(max_concurrent_calls)  # validates: a clear error now, not at first call
    for model, spec in (rate_limits or {}).items():
        if not isinstance(spec, RateLimit):
            raise TypeError(
                f"rate_limits[{model!r}] must be a RateLimit, not {type(spec).__name__}"
            )
    global_budget = BudgetTracker(_as_budget(budget), owner="the global budget")
    registry = _global_tools(tools)
    box = None if sandbox is None else sandbox if isinstance(sandbox, Sandbox) else Sandbox(sandbox)
    if box is not None:
        registry = registry.merged(builtin_tools(box))
    servers = MCPServers(mcp_servers) if mcp_servers else None
    runtime: Runtime | None = None
    orch: Orchestrator | None = None
    try:
        async with trio.open_nursery() as nursery:
            runtime = Runtime(nursery, max_processes=max_processes)
            if servers is not None:
                servers.publish_to(runtime.bus)
            orch = Orchestrator(
                runtime,
                llm,
                default_model,
                prices or PriceTable.default(),
                shutdown_timeout,
                mailbox_size,
                global_budget,
                rate_limit,
                dict(rate_limits or {}),
                max_concurrent_calls,
                tools=registry,
                mcp=servers,
                sandbox=box,
                backends=dict(backends or {}),
                propagate_supervisor_failures=propagate_supervisor_failures,
            )
            mcp_done = trio.Event()
            if servers is not None:
                await nursery.start(_run_mcp, servers, mcp_done)
            try:
                yield orch
                await orch.shutdown(shutdown_timeout)
                if servers is not None:
                    # NOTE: each connection closes in the task that opened it (stdin
                    # closed, a bounded wait, then a kill) before the nursery is cancelled.
                    servers.close()
                    with trio.move_on_after(shutdown_timeout):
                        await mcp_done.wait()
            finally:
                runtime._closing = True
                nursery.cancel_scope.cancel(reason="orchestrator block ended")
    except BaseExceptionGroup as group:
        # The processes never raise into the nursery, so a group here wraps the
        # block's own error (or a tree's give-up, with propagate_supervisor_failures):
        # hand it back unwrapped.
        raise_collapsed(group)
    finally:
        if runtime is not None:
            runtime.bus.close()
        for owned in orch._owned if orch is not None else ():
            aclose = getattr(owned, "aclose", None)
            if aclose is not None:
                # NOTE: awaited cleanup gets a deadline, even when we are being cancelled.
                with trio.move_on_after(5, shield=True):
                    await aclose()
