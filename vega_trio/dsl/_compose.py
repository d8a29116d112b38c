"""Agents composed at run time from their ``agents.<name>`` mappings (SPEC §10.1, §6).

The one way an agent described as data becomes a checked :class:`~vega_trio.Agent`:
the REST API's ``POST/PUT /api/agents`` and ``/api/agents/import``, the store's restore
and Mother's tools all go through :func:`compose_agents` — the DSL's loader, validator
(against what a running orchestrator has) and builder. :class:`DSLComposer` binds it to
one orchestrator and its document's settings for the meta-agents (``vega_trio.team``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ..agent import Agent
from ..team._meta import RESERVED_AGENT_NAMES
from ._build import build_agents
from ._diagnostics import Diagnostic, DSLError, sort_diagnostics
from ._dump import dump_agent, dump_agents
from ._loader import read_document
from ._model import Document, Settings, Source
from ._validate import Known, check_agents

if TYPE_CHECKING:
    from ..orchestrator import Orchestrator

__all__ = ["NAME", "RESERVED_NAMES", "Composed", "DSLComposer", "compose_agents"]

NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
"""A composed agent's name: usable in a URL path, a file name and as ``agent:user-id``'s
agent."""

RESERVED_NAMES: Final = RESERVED_AGENT_NAMES
"""Names no composed agent may take: the meta-agents' (``vega_trio.add_meta_agents``)."""

_FROM_JSON: Final = "<request>"
_FROM_YAML: Final = "<request yaml>"


@attrs.frozen
class Composed:
    """One agent made from its mapping: the runtime blueprint and the normalized
    mapping (the DSL's dump: only what differs from the defaults)."""

    agent: Agent
    mapping: dict[str, Any]
    warnings: tuple[Diagnostic, ...] = ()


async def compose_agents(
    orch: Orchestrator,
    source: Mapping[str, Any] | str,
    *,
    settings: Settings | None = None,
    base_dir: Path | None = None,
) -> dict[str, Composed]:
    """Agents made from their mappings by the DSL (loader, validator, builder), checked
    against what ``orch`` has: the inverse of
    :meth:`AgentDefinition.as_mapping <vega_trio.AgentDefinition.as_mapping>`.

    Args:
        orch: the orchestrator the agents will be defined on: their tools must be its
            tools (or ``server__tool`` of its MCP servers), their team members its agents
            or each other.
        source: ``{name: mapping}`` (JSON data), or YAML text of a document holding only
            an ``agents:`` section.
        settings: the server document's settings, for its global skill directories
            (``settings.skills.directories``).
        base_dir: what those directories are relative to (default: the current one).

    Returns:
        The agents by name, in the order given.

    Raises:
        DSLError: the diagnostics (errors only; paths start at ``agents.<name>``); nothing
            was made. Defining something that starts a program (``tools:``,
            ``settings:``), an agent's own skill directories and names that do not
            match :data:`NAME` are errors too.
        SkillError: a skill file of the server's skill directories is invalid.
    """
    if isinstance(source, str):
        text, file = source, _FROM_YAML
    else:
        text, file = _json_as_yaml({"agents": dict(source)}), _FROM_JSON
    loaded = read_document(text, file=file)
    diagnostics = list(loaded.diagnostics)
    document = loaded.document
    if document is not None:
        diagnostics.extend(_refusals(document))
        known = Known(
            tools=frozenset(orch.tool_registry().names()),
            servers=frozenset(c.config.name for c in orch.mcp) if orch.mcp else frozenset(),
            agents=frozenset(orch.agents),
        )
        diagnostics.extend(check_agents(loaded, known))
    ordered = sort_diagnostics(diagnostics)
    errors = [d for d in ordered if d.severity == "error"]
    if errors or document is None:
        raise DSLError(errors)
    warnings = [d for d in ordered if d.severity == "warning"]
    skills = settings.skill_directories if settings is not None else ()
    build_doc = Document(agents=document.agents, settings=Settings(skill_directories=skills))
    # NOTE: in a thread: skills are files read from disk.
    built = await trio.to_thread.run_sync(
        lambda: build_agents(build_doc, base_dir=base_dir or Path.cwd())
    )
    return {
        spec.name: Composed(
            agent=built[spec.name],
            mapping=dump_agent(spec),
            warnings=tuple(w for w in warnings if _within(w.source.path, spec.name)),
        )
        for spec in document.agents
    }


# Characters YAML does not take as they are inside a double-quoted scalar: line breaks
# it would fold (NEL, LS, PS), non-printables and surrogates. JSON's own escapes are no
# help: YAML reads "\ud83d\ude00" as two lone surrogates instead of one emoji.
_YAML_UNSAFE: Final = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _json_as_yaml(data: Mapping[str, Any]) -> str:
    """JSON data as YAML text the loader reads back to the same values (JSON is YAML,
    once the characters above are escaped the way YAML spells them)."""
    text = json.dumps(data, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _within(path: str, name: str) -> bool:
    prefix = f"agents.{name}"
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _refusals(document: Document) -> list[Diagnostic]:
    """What an API request may not define (SPEC §11: no program can be started
    through the API, no file of the server's choosing read)."""
    found: list[Diagnostic] = []

    def refuse(where: Source, path: str, message: str, hint: str) -> None:
        source = Source(where.file, where.line, where.column, path)
        found.append(Diagnostic(severity="error", source=source, message=message, hint=hint))

    if document.tools:
        refuse(
            document.tools[0].where,
            "tools",
            "tools cannot be defined through the API (an exec tool would run a command "
            "on the server)",
            "define them under 'tools:' of the server's .vega.yaml and restart it; an "
            "agent's 'tools:' may name the tools the server has",
        )
    if document.settings != Settings():
        refuse(
            document.settings.where,
            "settings",
            "settings (MCP servers, sandbox, budgets, ...) cannot be set through the API",
            "set them in the server's .vega.yaml and restart it; import only the 'agents:' section",
        )
    if document.workflows:
        refuse(
            document.workflows[0].where,
            "workflows",
            "workflows cannot be imported through the API",
            "add them to the server's .vega.yaml; import only the 'agents:' section",
        )
    for spec in document.agents:
        if not NAME.match(spec.name):
            refuse(
                spec.where,
                f"agents.{spec.name}",
                f"the agent name {spec.name!r} cannot be used over the API",
                "use letters, digits, '_', '.' and '-' (not first), at most 64 characters; "
                "':' separates a user id (agent:user-id)",
            )
        if spec.skills is not None and spec.skills.directories:
            refuse(
                spec.skills.where,
                f"agents.{spec.name}.skills.directories",
                "an agent composed through the API cannot name skill directories (they "
                "are read from the server's disk)",
                "use the server's settings.skills.directories, filtered with "
                "skills.include / skills.exclude",
            )
    return found


@attrs.frozen
class DSLComposer:
    """:func:`compose_agents` bound to one orchestrator and its document's settings:
    what the meta-agents' tools compose agents with (``vega_trio.team``'s
    ``AgentComposer``).

    Attributes:
        orch: the orchestrator the agents are checked against and defined on.
        settings: the document's settings (its global skill directories), if any.
        base_dir: what the document's relative paths are relative to.
    """

    orch: Orchestrator
    settings: Settings | None = None
    base_dir: Path | None = None

    async def compose(self, mappings: Mapping[str, Mapping[str, Any]]) -> dict[str, Composed]:
        """See :func:`compose_agents` (``{name: mapping}``)."""
        return await compose_agents(
            self.orch, mappings, settings=self.settings, base_dir=self.base_dir
        )

    def dump(self, mappings: Mapping[str, Mapping[str, Any]]) -> str:
        """An ``agents:`` section of a ``.vega.yaml`` holding ``mappings``."""
        return dump_agents(mappings)

    @property
    def skill_directories(self) -> tuple[Path, ...]:
        """The document's global skill directories, made absolute."""
        if self.settings is None:
            return ()
        base = self.base_dir or Path.cwd()
        return tuple(
            (base / Path(d).expanduser()).absolute() for d in self.settings.skill_directories
        )
