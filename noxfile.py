"""Developer sessions: ``nox -s tests lint typecheck examples bench e2e``."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "examples"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
EXAMPLES = sorted(ROOT.glob("examples/*.py"))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (offline: scripted LLM and the local fake Anthropic server)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


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
        "flake8-async", "--startable-in-context-manager=_run,serve,run,_run_supervisor", *files
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example offline with the scripted LLM."""
    session.install("-e", ".")
    env = {"VEGA_LLM": "scripted"}
    for example in EXAMPLES:
        session.log(f"example: {example.name}")
        session.run("python", str(example), env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and rewrite docs/benchmarks.md with the results."""
    session.install("-e", ".")
    args = session.posargs or []
    session.run("python", "-m", "tests.benchmarks", *args, env={"PYTHONPATH": os.fspath(ROOT)})
