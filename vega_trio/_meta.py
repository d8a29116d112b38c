"""``add_meta_agents``: Mother and Hermes on an orchestrator, in one call (SPEC §6).

It wires the integrations layer (``vega_trio.team``'s meta-agents) to the DSL's
composer (the one way an ``agents.<name>`` mapping becomes a checked agent), which
is why it lives above both. ``vega-trio serve`` calls it; so can an application.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ._agents import AgentDefinition
from ._errors import AgentExists
from .team._delegation import MAX_DELEGATION_DEPTH
from .team._meta import HERMES, MOTHER, hermes_agent, mother_agent

if TYPE_CHECKING:
    from .dsl._model import Settings
    from .orchestrator import Orchestrator

__all__ = ["add_meta_agents", "default_blueprint_dir"]


def default_blueprint_dir() -> Path:
    """Where Mother saves blueprints by default: ``$VEGA_HOME/blueprints`` (``VEGA_HOME``
    defaults to ``~/.vega``)."""
    home = os.environ.get("VEGA_HOME") or "~/.vega"
    return Path(home).expanduser() / "blueprints"


def add_meta_agents(
    orch: Orchestrator,
    *,
    model: str | None = None,
    blueprints: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    max_depth: int = MAX_DELEGATION_DEPTH,
) -> tuple[AgentDefinition, AgentDefinition]:
    """Define Mother (``mother``, the agent architect) and Hermes (``hermes``, the
    router) on ``orch``, with source ``builtin``::

        async with open_orchestrator(llm=...) as orch:
            add_meta_agents(orch)
            hermes = await orch.session("hermes")
            print(await hermes.send("Research Trio and write a summary"))

    Agents Mother composes are defined with source ``composed`` (a store keeps them).

    Args:
        orch: the orchestrator.
        model: their model (default: the orchestrator's ``default_model``).
        blueprints: the directory Mother saves blueprints in (default
            :func:`default_blueprint_dir`).
        settings: a document's settings (its skill directories), when the orchestrator
            runs one (``runner.document.settings``).
        base_dir: what the document's relative paths are relative to.
        max_depth: how deep in the spawn tree an agent may still ask another
            (Hermes's ``send_to_agent``): loops between agents stop there.

    Returns:
        Mother's and Hermes's definitions.

    Raises:
        AgentExists: ``mother`` or ``hermes`` is already defined (nothing was added).
    """
    from .dsl._compose import DSLComposer  # the DSL is loaded only by who needs it

    taken = [name for name in (MOTHER, HERMES) if name in orch.agents]
    if taken:
        raise AgentExists(
            f"cannot add the meta-agents: {', '.join(repr(n) for n in taken)} "
            f"{'is' if len(taken) == 1 else 'are'} already defined; rename that agent "
            "(the names mother and hermes are reserved for them)",
            name=taken[0],
        )
    composer = DSLComposer(
        orch, settings=settings, base_dir=None if base_dir is None else Path(base_dir)
    )
    directory = Path(blueprints) if blueprints is not None else default_blueprint_dir()
    mother = orch.agents.define(
        mother_agent(orch, composer, blueprints=directory, model=model), source="builtin"
    )
    hermes = orch.agents.define(
        hermes_agent(orch, orch._spawn_delegate, model=model, max_depth=max_depth),
        source="builtin",
    )
    return mother, hermes
