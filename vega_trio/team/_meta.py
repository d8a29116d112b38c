"""The meta-agents (SPEC §6): Mother, the agent architect, and Hermes, the router.

**Mother** creates, updates and deletes agents through her tools, and lists what they
can be built from (tools, skills, MCP servers). An agent she composes is described
exactly as under ``agents.<name>`` of a ``.vega.yaml`` and goes through the same
loader, validator and builder as ``POST /api/agents`` (an :class:`AgentComposer`,
given by whoever adds her — ``vega_trio.add_meta_agents`` uses the DSL's); it is
defined with source ``composed``, so a server with a store keeps it. Her rules:

* an agent gets exactly the tools it names — an empty or missing list means *no*
  tools — and a name the orchestrator does not have is an error result that lists the
  tools there are;
* the reserved names (``mother``, ``hermes``) cannot be created, changed or deleted,
  and neither can agents of a ``.vega.yaml`` or built into the server: only composed
  ones change;
* an update replaces the definition atomically (a blueprint that would not spawn
  leaves the old one in place) and restarts the agent's sessions between messages;
* blueprints (a team's ``agents:`` section saved as ``<name>.vega.yaml``) are written
  only inside their directory: a name is letters, digits, ``_`` and ``-``.

**Hermes** has ``list_agents`` (name and purpose of every agent but himself, Mother
included) and ``send_to_agent(agent, message)``: the agent runs as Hermes's child in
the spawn tree (the ``delegate`` mechanism of teams: its spend rolls up to Hermes,
cancelling Hermes cancels it, a streamed reply shows its activity nested), he cannot
send to himself, a chain of agents asking agents stops at
:data:`~vega_trio.team.MAX_DELEGATION_DEPTH`, and a failed agent comes back as an
error result naming what failed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from .._errors import DelegationRefused, DSLError, ToolError
from ..agent import Agent
from ..runtime import current_process
from ._delegation import MAX_DELEGATION_DEPTH, Spawner, _behaviour_of, ask_child

if TYPE_CHECKING:
    from .._agents import AgentDefinition
    from ..orchestrator import Orchestrator
    from ..tools import Tools

__all__ = [
    "HERMES",
    "MOTHER",
    "RESERVED_AGENT_NAMES",
    "AgentComposer",
    "ComposedAgent",
    "blueprint_path",
    "hermes_agent",
    "mother_agent",
]

MOTHER: Final = "mother"
HERMES: Final = "hermes"
RESERVED_AGENT_NAMES: Final = frozenset({MOTHER, HERMES})
"""Names no composed agent may take (Mother's tools and the REST API refuse them)."""

_BLUEPRINT_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}\Z")
_BLUEPRINT_SUFFIX: Final = ".vega.yaml"
_PURPOSE_CHARS: Final = 200


class ComposedAgent(Protocol):
    """One agent an :class:`AgentComposer` made: the blueprint and its normalised
    ``agents.<name>`` mapping."""

    @property
    def agent(self) -> Agent: ...

    @property
    def mapping(self) -> dict[str, Any]: ...


class AgentComposer(Protocol):
    """How Mother turns ``agents.<name>`` mappings into checked agents (the DSL's
    :class:`vega_trio.dsl._compose.DSLComposer` is the one implementation)."""

    async def compose(
        self, mappings: Mapping[str, Mapping[str, Any]]
    ) -> Mapping[str, ComposedAgent]:
        """The agents by name; raises :class:`~vega_trio.dsl.DSLError` with every
        problem when one is invalid."""
        ...

    def dump(self, mappings: Mapping[str, Mapping[str, Any]]) -> str:
        """The ``agents:`` section of a ``.vega.yaml`` holding ``mappings``."""
        ...

    @property
    def skill_directories(self) -> tuple[Path, ...]:
        """Where the server's skills are (absolute)."""
        ...


MOTHER_SYSTEM: Final = """\
You are Mother, the agent architect of this vega-trio server. You create, update and \
delete agents for the people (and agents) who talk to you, and you design teams rather \
than solo agents.

How you work:
- Look first: list_agents, list_tools, list_skills and list_mcp_servers show what \
exists. Name tools only from list_tools; an agent gets exactly the tools you list \
for it, and an empty list means it gets no tools at all.
- For a team, create the helpers first, each with a clear description (other agents \
read it to decide whom to ask) and a focused system prompt; then create a lead whose \
`team` names them: it gets a `delegate(agent, message)` tool for its team.
- update_agent changes only the fields you give; the agent's conversations go on with \
the new definition. delete_agent removes an agent.
- You cannot create, change or delete mother or hermes, nor agents that come from the \
server's .vega.yaml or are built in; only agents composed at run time change.
- save_blueprint stores a team's definitions under a name so it can be reused; \
list_blueprints shows the saved ones.
- When a tool returns an error, read it: it says what is wrong and what exists. Fix \
the call and try again, or explain the problem.
Reply with what you created or changed, by name, and how to use it."""

HERMES_SYSTEM: Final = """\
You are Hermes, the router of this vega-trio server: you take any goal and get it done \
with the agents there are.

How you work:
- Call list_agents first to see who is available and what each is for.
- Break the goal into tasks and hand each to the best agent with \
send_to_agent(agent, message); write each message so it stands alone (the agent does \
not see this conversation).
- If nobody fits, ask mother with send_to_agent("mother", ...) to create the agents \
you need (say what each should do), then send them the work.
- You cannot send to yourself. If an agent fails, the error says why: retry, rephrase, \
ask another agent, or report it.
- Finish with one synthesis of the results for the person who asked."""


def _purpose(definition: AgentDefinition) -> str:
    agent = definition.agent
    text = agent.description.strip()
    if not text and isinstance(agent.system, str):
        text = next((line.strip() for line in agent.system.splitlines() if line.strip()), "")
    if not text:
        return "(no description)"
    return text if len(text) <= _PURPOSE_CHARS else text[: _PURPOSE_CHARS - 1] + "…"


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1)


# ---------------------------------------------------------------------------- Mother
def blueprint_path(directory: Path, name: object) -> Path:
    """The file of blueprint ``name`` inside ``directory``.

    Raises:
        ToolError: ``name`` is not letters, digits, ``_`` and ``-`` (not first), at
            most 64 characters, or its file would not be inside ``directory`` (a
            symbolic link pointing out).
    """
    if not isinstance(name, str) or not _BLUEPRINT_NAME.match(name):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise ToolError(
            f"{shown} cannot be a blueprint name: use letters, digits, '_' and '-' (not "
            "first), at most 64 characters — a name, not a path"
        )
    root = directory.resolve()
    path = (root / f"{name}{_BLUEPRINT_SUFFIX}").resolve()
    if path.parent != root:
        raise ToolError(
            f"blueprint {name!r} would be written outside the blueprint directory "
            f"({path} is not in {root}); pick another name"
        )
    return path


def mother_agent(
    orch: Orchestrator,
    composer: AgentComposer,
    *,
    blueprints: Path,
    model: str | None = None,
) -> Agent:
    """Mother: the agent architect, with her tools bound to ``orch``.

    Args:
        orch: the orchestrator whose agents she manages.
        composer: turns her agent mappings into checked agents.
        blueprints: the directory her blueprints are saved in (made on first save).
        model: her model (default: the orchestrator's ``default_model``).
    """
    return Agent(
        name=MOTHER,
        model=model,
        system=MOTHER_SYSTEM,
        description=(
            "The agent architect: creates, updates and deletes agents, designs teams "
            "(helpers and a lead that delegates to them) from the tools, skills and MCP "
            "servers there are."
        ),
        tools=mother_tools(orch, composer, blueprints=blueprints),
        max_iterations=30,
    )


def mother_tools(orch: Orchestrator, composer: AgentComposer, *, blueprints: Path) -> Tools:
    """Mother's tools (see the module docstring)."""
    from ..tools import Tools

    tools = Tools()

    def changeable(name: str, verb: str) -> AgentDefinition:
        if name in RESERVED_AGENT_NAMES:
            raise ToolError(
                f"{name!r} is a meta-agent and cannot be {verb}; change agents you "
                "composed (list_agents shows which are 'composed')"
            )
        definition = orch.agents.get(name)  # AgentNotFound lists the agents
        if definition.source != "composed":
            where = (
                "is defined in the server's .vega.yaml"
                if definition.source == "yaml"
                else "is built into the server"
            )
            raise ToolError(
                f"agent {name!r} {where} and cannot be {verb}; only composed agents "
                "change — create a new agent (another name) based on it instead"
            )
        return definition

    async def compose(name: str, mapping: Mapping[str, Any]) -> ComposedAgent:
        try:
            return (await composer.compose({name: mapping}))[name]
        except DSLError as exc:
            raise ToolError(_problems(orch, name, exc)) from None

    async def saved() -> None:
        # Acknowledged means committed (SPEC §12), as for POST /api/agents.
        persistence = orch.persistence
        if persistence is not None:
            await persistence.wait_committed(orch._runtime.bus.published)

    def refuse_reserved(name: str) -> None:
        if name in RESERVED_AGENT_NAMES:
            raise ToolError(f"the name {name!r} is reserved for a meta-agent; pick another name")

    async def list_agents() -> str:  # noqa: ASYNC124 - a sync tool would run in a thread
        """List every agent: name, where it comes from (composed agents can be changed),
        description, tools and team."""
        found = []
        for definition in orch.agents.list():
            agent = definition.agent
            found.append(
                {
                    "name": definition.name,
                    "source": definition.source,
                    "description": _purpose(definition),
                    "tools": [*agent.tool_names, *agent.tool_registry.names()],
                    "team": [m if isinstance(m, str) else m.name for m in agent.team],
                }
            )
        return _json(found)

    async def list_tools() -> str:  # noqa: ASYNC124
        """List the tools agents can be given, by name, with what each does."""
        registry = orch.tool_registry()
        listed = [
            {"name": tool.name, "description": tool.description.strip().split("\n")[0]}
            for tool in registry
        ]
        return _json(listed) if listed else "no tools: agents can only talk (and delegate)"

    async def list_skills() -> str:
        """List the skills of the server's skill directories (name, description, tools)."""
        directories = composer.skill_directories
        if not directories:
            return "no skill directories are configured (settings.skills.directories)"
        from ..skills import load_skills_async

        skills = await load_skills_async(list(directories), missing_ok=True)
        return _json(
            [{"name": s.name, "description": s.description, "tools": list(s.tools)} for s in skills]
        )

    async def list_mcp_servers() -> str:  # noqa: ASYNC124
        """List the MCP servers, their status and their tools (named server__tool)."""
        if not orch.mcp:
            return "no MCP servers are configured"
        return _json(
            [
                {
                    "name": server["name"],
                    "status": server["status"],
                    "last_error": server["last_error"],
                    "tools": [tool["name"] for tool in server["tools"]],
                }
                for server in orch.mcp.status()
            ]
        )

    async def create_agent(
        name: str,
        system: str,
        description: str = "",
        tools: list[str] | None = None,
        team: list[str] | None = None,
        model: str = "",
        options: dict[str, Any] | None = None,
    ) -> str:
        """Create an agent.

        Args:
            name: the new agent's name (letters, digits, '_', '.', '-').
            system: its system prompt: who it is and how it works.
            description: what it is for, in one line (other agents read it).
            tools: names of tools from list_tools; empty or missing means no tools.
            team: agents it may delegate to (create them first); makes it a team lead.
            model: its model (default: the server's default model).
            options: other keys of a .vega.yaml agent (temperature, max_tokens,
                max_iterations, budget, delegation, retry, ...).
        """
        refuse_reserved(name)
        if name in orch.agents:
            raise ToolError(
                f"an agent named {name!r} exists already; change it with update_agent or "
                "pick another name"
            )
        mapping: dict[str, Any] = dict(options or {})
        mapping.update(system=system, tools=list(tools or []))
        if description:
            mapping["description"] = description
        if team:
            mapping["team"] = list(team)
        if model:
            mapping["model"] = model
        composed = await compose(name, mapping)
        refuse_reserved(name)
        if name in orch.agents:  # created by someone else meanwhile
            raise ToolError(f"an agent named {name!r} was created meanwhile; pick another name")
        orch.agents.define(composed.agent, source="composed", mapping=composed.mapping)
        await saved()
        return f"created agent {name!r}: " + _summary(composed.agent)

    async def update_agent(
        name: str,
        system: str | None = None,
        description: str | None = None,
        tools: list[str] | None = None,
        team: list[str] | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> str:
        """Change a composed agent: only the fields given change (tools=[] removes all
        its tools). Its conversations go on with the new definition.

        Args:
            name: the agent to change.
            system: a new system prompt.
            description: a new description.
            tools: the complete new list of tool names (from list_tools).
            team: the complete new team.
            model: a new model.
            options: other .vega.yaml agent keys to set (a key set to null is removed).
        """
        definition = changeable(name, "changed")
        mapping, _ = definition.as_mapping()
        for key, value in (options or {}).items():
            if value is None:
                mapping.pop(key, None)
            else:
                mapping[key] = value
        given = {
            "system": system,
            "description": description,
            "tools": tools,
            "team": team,
            "model": model,
        }
        for key, value in given.items():
            if value is not None:
                mapping[key] = value
        composed = await compose(name, mapping)
        changeable(name, "changed")  # it may have been replaced meanwhile
        orch.agents.update(composed.agent, mapping=composed.mapping)
        await saved()
        return f"updated agent {name!r}: " + _summary(composed.agent)

    async def delete_agent(name: str) -> str:
        """Delete a composed agent (its conversations end after their reply in progress).

        Args:
            name: the agent to delete.
        """
        changeable(name, "deleted")
        orch.agents.remove(name)
        await saved()
        return f"deleted agent {name!r}"

    async def save_blueprint(name: str, agents: list[str], description: str = "") -> str:
        """Save agents' definitions as a reusable blueprint (a .vega.yaml agents: section).

        Args:
            name: the blueprint's name (letters, digits, '_', '-').
            agents: the agents to save (helpers and their lead).
            description: what the blueprint is for.
        """
        path = blueprint_path(blueprints, name)
        if not agents:
            raise ToolError("save_blueprint needs the names of the agents to save")
        mappings: dict[str, dict[str, Any]] = {}
        for agent_name in agents:
            if agent_name in RESERVED_AGENT_NAMES:
                raise ToolError(f"{agent_name!r} is a meta-agent; blueprints hold other agents")
            mappings[agent_name] = orch.agents.get(agent_name).as_mapping()[0]
        header = "".join(f"# {line}\n" for line in description.splitlines() if line.strip())
        text = header + composer.dump(mappings)
        await trio.to_thread.run_sync(_write_atomically, path, text)
        return f"saved blueprint {name!r} ({', '.join(mappings)}) to {path}"

    async def list_blueprints() -> str:
        """List the saved blueprints and the agents each holds."""
        found = await trio.to_thread.run_sync(_read_blueprints, blueprints)
        if not found:
            return "no blueprints saved yet"
        return _json(found)

    for function in (
        list_agents,
        list_tools,
        list_skills,
        list_mcp_servers,
        create_agent,
        update_agent,
        delete_agent,
        save_blueprint,
        list_blueprints,
    ):
        tools.register(function)
    return tools


def _summary(agent: Agent) -> str:
    names = ", ".join(agent.tool_names) or "none"
    team = ", ".join(m if isinstance(m, str) else m.name for m in agent.team)
    return f"tools: {names}" + (f"; team: {team}" if team else "")


def _problems(orch: Orchestrator, name: str, error: DSLError) -> str:
    """The composer's diagnostics as one error result, with what exists when a tool or
    a team member was not found."""
    lines = []
    about_tools = about_team = False
    prefix = f"agents.{name}"
    for diagnostic in error.diagnostics:
        source = diagnostic.source
        path = source.path
        if path.startswith(prefix):
            path = path[len(prefix) :].lstrip(".") or "name"
        hint = f" ({diagnostic.hint})" if diagnostic.hint else ""
        lines.append(f"- {path}: {diagnostic.message}{hint}")
        about_tools = about_tools or path.startswith("tools")
        about_team = about_team or path.startswith("team")
    text = f"agent {name!r} was not created or changed:\n" + "\n".join(lines or [str(error)])
    if about_tools:
        known = ", ".join(orch.tool_registry().names()) or "none (give it no tools)"
        text += f"\navailable tools: {known}"
    if about_team:
        text += f"\ndefined agents: {', '.join(orch.agents) or 'none'}"
    return text


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _read_blueprints(directory: Path) -> list[dict[str, Any]]:
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(f"*{_BLUEPRINT_SUFFIX}")):
        text = path.read_text(encoding="utf-8")
        agents = re.findall(r"^  ([^\s:#][^:]*):\s*$", text, flags=re.MULTILINE)
        found.append({"name": path.name[: -len(_BLUEPRINT_SUFFIX)], "agents": agents})
    return found


# ---------------------------------------------------------------------------- Hermes
def hermes_agent(
    orch: Orchestrator,
    spawn: Spawner,
    *,
    model: str | None = None,
    max_depth: int = MAX_DELEGATION_DEPTH,
) -> Agent:
    """Hermes: the router, with his tools bound to ``orch``.

    His spend includes what the agents he sends to spend (``budget_scope="tree"``).

    Args:
        orch: the orchestrator whose agents he routes across.
        spawn: starts an agent as his child (the orchestrator's delegate spawner).
        model: his model (default: the orchestrator's ``default_model``).
        max_depth: the spawn-tree depth past which no agent may ask another.
    """
    return Agent(
        name=HERMES,
        model=model,
        system=HERMES_SYSTEM,
        description=(
            "The router: give him any goal; he picks the agents to involve (asking "
            "Mother for new ones), sends them the work and synthesises the result."
        ),
        tools=hermes_tools(orch, spawn, max_depth=max_depth),
        budget_scope="tree",
        max_iterations=40,
    )


def hermes_tools(orch: Orchestrator, spawn: Spawner, *, max_depth: int) -> Tools:
    """Hermes's tools: ``list_agents`` and ``send_to_agent``."""
    from ..tools import Tools

    tools = Tools()

    async def list_agents() -> str:  # noqa: ASYNC124 - a sync tool would run in a thread
        """List the agents you can send work to, with what each is for."""
        me = current_process().agent_name
        return _json(
            [{"name": d.name, "purpose": _purpose(d)} for d in orch.agents.list() if d.name != me]
        )

    async def send_to_agent(agent: str, message: str) -> str:
        """Send a task to an agent and wait for its reply (mother creates new agents).

        Args:
            agent: the agent's name, from list_agents.
            message: the complete task; the agent does not see this conversation.
        """
        me = current_process().agent_name
        if agent == me:
            raise ToolError(
                f"you are {me!r}: you cannot send to yourself; send to another agent "
                "(list_agents), or answer directly"
            )
        if agent not in orch.agents:
            # NOTE: a copy of an agent deleted since it last answered is stopped now,
            # not kept alive until Hermes's own process ends.
            stale = (_behaviour_of(current_process()).delegates or {}).pop(agent, None)
            if stale is not None and stale.alive:
                stale.stop(f"agent definition {agent!r} removed")
        definition = orch.agents.get(agent)  # AgentNotFound lists the defined agents
        try:
            return await ask_child(definition.agent, message, spawn, max_depth=max_depth)
        except DelegationRefused:
            raise
        except Exception as exc:  # the model reads the failure and decides what next
            kind = getattr(exc, "error_class", None) or type(exc).__name__
            raise ToolError(
                f"agent {agent!r} failed ({kind}): {exc}; retry, rephrase the task, or "
                "ask another agent"
            ) from exc

    tools.register(list_agents)
    tools.register(send_to_agent)
    return tools
