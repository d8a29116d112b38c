"""``settings.health`` in the DSL: loaded, validated, built onto the orchestrator, dumped."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from vega_trio import open_orchestrator
from vega_trio.dsl import load_document, orchestrator_config, validate_text
from vega_trio.events import HealthAlert
from vega_trio.observability import HealthConfig
from vega_trio.testing import ScriptedLLM, Step

DOC = """
settings:
  health:
    stale_after: 2m
    max_iterations_ratio: 0.5
    consecutive_errors: 4
    cost_usd: "$2.50"
agents:
  helper: {system: You help.}
"""


def test_settings_health_builds_a_health_config(tmp_path: Path) -> None:
    """settings.health becomes OrchestratorConfig.health with the given thresholds."""
    config = orchestrator_config(load_document(DOC), base_dir=tmp_path)
    assert config.health == HealthConfig(
        stale_after=120, max_iterations_ratio=0.5, consecutive_errors=4, cost_usd=2.5
    )


def test_empty_health_means_defaults_and_absent_means_off(tmp_path: Path) -> None:
    """`health: {}` turns the monitor on with defaults; no `health` key leaves it off."""
    on = load_document("settings:\n  health: {}\nagents:\n  a: {system: x}\n")
    assert orchestrator_config(on, base_dir=tmp_path).health == HealthConfig()
    off = load_document("agents:\n  a: {system: x}\n")
    assert orchestrator_config(off, base_dir=tmp_path).health is None


def test_bad_health_settings_name_path_and_fix() -> None:
    """Each bad threshold is reported with its path, all at once."""
    text = (
        "settings:\n  health:\n    stale_after: soon\n    max_iterations_ratio: 2\n"
        "    consecutive_errors: 0\n    cost_usd: '$0'\n    stale_afer: 1m\n"
        "agents:\n  a: {system: x}\n"
    )
    messages = [str(d) for d in validate_text(text)]
    joined = "\n".join(messages)
    for path in ("stale_after", "max_iterations_ratio", "consecutive_errors", "cost_usd"):
        assert f"settings.health.{path}" in joined, joined
    assert "did you mean 'stale_after'" in joined


async def test_settings_health_alerts_at_run_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """An orchestrator built from settings.health emits health.alert at run time."""
    doc = load_document("settings:\n  health: {stale_after: 30s}\nagents:\n  a: {system: x}\n")
    config = orchestrator_config(doc, base_dir=tmp_path)
    async with open_orchestrator(config, llm=ScriptedLLM([Step.text("x", delay=45)])) as orch:
        from vega_trio import Agent

        with orch.subscribe(types="health.alert") as sub:
            proc = await orch.spawn(Agent(name="a"))
            await proc.send("hi")
            item = sub.receive_nowait()
    assert isinstance(item, HealthAlert) and item.alert == "stale_progress"
