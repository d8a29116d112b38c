"""Developer sessions: ``nox -s tests quick lint typecheck examples bench``."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "examples"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
EXAMPLES = sorted(ROOT.glob("examples/*.py"))
YAML_EXAMPLES = sorted(ROOT.glob("examples/*.vega.yaml"))
# Variables a YAML workflow needs that it does not default (see each file's header).
YAML_TASKS = {
    ("team", "report"): ["topic=Go concurrency"],
    ("code-review", "review"): ["Write a binary search function"],
    ("control-flow", "polish"): ["text=Trio runs tasks in nurseries."],
}


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (offline: scripted LLM and the local fake Anthropic server)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def quick(session: nox.Session) -> None:
    """The fast tier for the inner loop: every test not marked slow (about a minute)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (with the ASYNC rules) and flake8-async (ASYNC101-104 are not in ruff)."""
    session.install("ruff", "flake8-async")
    session.run("ruff", "check", "vega_trio", "tests", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "vega_trio", "tests", "examples", "noxfile.py")
    files = [
        str(p)
        for d in ("vega_trio", "tests", "examples")
        for p in sorted(ROOT.glob(f"{d}/**/*.py"))
    ]
    session.run(
        "flake8-async",
        "--startable-in-context-manager=_run,serve,run,_run_supervisor,run_orchestrator",
        *files,
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example offline with the scripted LLM: the Python scripts, then every
    examples/*.vega.yaml through `vega-trio validate` and `vega-trio run` (each workflow)."""
    session.install("-e", ".")
    env = {"VEGA_LLM": "scripted"}
    for example in EXAMPLES:
        session.log(f"example: {example.name}")
        session.run("python", str(example), env=env)
    for document in YAML_EXAMPLES:
        name = document.name.removesuffix(".vega.yaml")
        session.run("vega-trio", "validate", str(document), env=env)
        for workflow in _workflow_names(session, document):
            session.log(f"example: {document.name} --workflow {workflow}")
            tasks = [
                arg for task in YAML_TASKS.get((name, workflow), []) for arg in ("--task", task)
            ]
            session.run("vega-trio", "run", str(document), "--workflow", workflow, *tasks, env=env)


def _workflow_names(session: nox.Session, document: Path) -> list[str]:
    """The document's workflows, as the package's own loader reads them."""
    code = (
        "import sys; from vega_trio.dsl._loader import load_file; "
        "print(*(w.name for w in load_file(sys.argv[1]).workflows))"
    )
    output = session.run("python", "-c", code, str(document), silent=True)
    return str(output).split()


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and rewrite docs/benchmarks.md with the results."""
    session.install("-e", ".")
    args = session.posargs or []
    session.run("python", "-m", "tests.benchmarks", *args, env={"PYTHONPATH": os.fspath(ROOT)})
