"""Developer sessions: ``nox -s tests quick lint typecheck examples bench``."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import nox
from nox.command import CommandFailed

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
    """Run the test suite (offline: scripted LLM and the local fake Anthropic server).

    The store tests run a real PostgreSQL server and the dashboard's tests (tests/web) a
    real browser: when their binaries are missing and we can install them (root,
    apt-get), Debian's ``postgresql`` and ``chromium`` packages are installed first;
    otherwise those tests skip and say why."""
    _ensure_postgresql(session)
    _ensure_chromium(session)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


def _ensure_postgresql(session: nox.Session) -> None:
    """Install Debian's ``postgresql`` (server binaries for the store tests) if absent."""
    # The tests' own finder (stdlib only), loaded by path: one definition of "installed".
    spec = importlib.util.spec_from_file_location(
        "_postgres_server", ROOT / "tests" / "store" / "_postgres_server.py"
    )
    assert spec is not None and spec.loader is not None
    finder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(finder)
    if finder.find_pg_bin() is not None:
        return
    _apt_install(session, "the store tests (PostgreSQL)", "postgresql")


def _ensure_chromium(session: nox.Session) -> None:
    """Install Debian's ``chromium`` (the dashboard's browser tests drive it through
    Playwright; ``playwright install`` downloads a browser, which is not needed) if absent."""
    if Path(os.environ.get("VEGA_TEST_CHROMIUM", "/usr/bin/chromium")).exists():
        return
    _apt_install(session, "the dashboard's browser tests", "chromium", "fonts-liberation")


def _apt_install(session: nox.Session, what: str, *packages: str) -> None:
    """``apt-get install`` Debian packages for ``what`` when we can (root, apt-get);
    otherwise say that those tests will skip."""
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        session.log(f"{' '.join(packages)} not installed (and can't be here): {what} will skip")
        return
    session.log(f"installing Debian's {' '.join(packages)} for {what} (apt-get)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    quiet = ("-y", "-q", "-o", "Dpkg::Use-Pty=0")
    try:
        session.run(apt_get, "install", *quiet, *packages, external=True, env=env, silent=True)
    except CommandFailed:
        # A fresh machine may have no package lists yet.
        session.run(apt_get, "update", "-q", external=True, env=env, silent=True)
        session.run(apt_get, "install", *quiet, *packages, external=True, env=env, silent=True)


@nox.session
def quick(session: nox.Session) -> None:
    """The fast tier for the inner loop: every test not marked slow (about a minute)."""
    _ensure_postgresql(session)  # the browser tests are all slow: no chromium needed
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
