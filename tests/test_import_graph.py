"""The shape of the package: no import circle between its parts, imports that follow the layers
of DESIGN.md, and no module over 800 lines without a reason written at its top.

Everything is read with :mod:`ast`; nothing under ``vega_trio`` is imported.

**Parts.** A part is a subpackage of ``vega_trio`` (``runtime``, ``tools`` with ``tools.mcp``,
...) or a top-level module (``orchestrator``, ``_errors``, ...); ``vega_trio`` itself is the
``__init__`` that re-exports the public API.

**What counts as an import.** Every ``import`` / ``from ... import`` statement, relative ones
resolved, wherever it is: at module level, inside a function (a lazy import is still a
dependency, only deferred), inside ``try``. Imports under ``if TYPE_CHECKING:`` are left out:
they only feed annotations (which ``from __future__ import annotations`` never evaluates), so
they cannot form a circle at run time, and naming a type from above (``Orchestrator`` in an
annotation) does not make a part use what is above it. Imports of things outside ``vega_trio``
are not parts.

**Circles.** A circle between parts (``a`` imports ``b`` imports ... ``a``) fails with its path.
Circles between the modules of one part are the part's own business.

``tool_registry`` is the tool registry's core inside ``tools/`` (:data:`TOOL_REGISTRY`): the
agent loop runs tools through it, so it is a part of its own below the agents.

**Layers.** :data:`ALLOWED` is the table of which part may import which (DESIGN.md: runtime →
agent/llm/resilience → tools/skills/team → dsl → cli/serve, the store below, the runtime knows
nothing of LLMs); an import that is not in the table fails with the importing file and line.

**Size.** A module over :data:`MAX_LINES` lines must say why in its module docstring, on a
line that starts with ``Size:`` (``Size: one table per error class; splitting it would ...``).
"""

from __future__ import annotations

import ast
import functools
import itertools
import pathlib
from collections.abc import Iterator, Mapping

import attrs

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "vega_trio"
MAX_LINES = 800
SIZE_MARKER = "Size:"

# The foundation: small leaves every part may use. They import nothing of the project but each
# other (checked below like every other part).
_BASE = frozenset(
    {"_errors", "_redact", "_log", "_json", "_files", "_exit", "_collapse", "_handles", "_version"}
    | {"_lazy"}
)

# Which parts each part may import, besides itself and the foundation (DESIGN.md, "Layers").
# Read a row as "<part> may import <these>". A part missing from a row is an import that breaks
# the layering: move the code to where it belongs rather than adding it here.
_RUNTIME: frozenset[str] = frozenset()
_STORE: frozenset[str] = frozenset()
_LLM: frozenset[str] = frozenset()
_RESILIENCE = frozenset({"runtime", "llm"})
_AGENT = frozenset({"runtime", "llm", "resilience", "tool_registry"})
_TOOLS = frozenset({"runtime", "llm", "resilience", "agent"})
_SKILLS = _TOOLS | {"tools"}
_TEAM = _TOOLS | {"tools", "skills"}
_WIRING = _TEAM | {"team", "store"}  # the orchestrator and the parts it opens
ALLOWED: Mapping[str, frozenset[str]] = {
    # storage and runtime: the bottom; the runtime knows nothing about LLMs
    "store": _STORE,
    "runtime": _RUNTIME,
    # agents
    "llm": _LLM,
    "tool_registry": frozenset({"llm"}),
    "resilience": _RESILIENCE,
    "agent": _AGENT,
    # integrations
    "tools": _TOOLS,
    "skills": _SKILLS,
    "team": _TEAM,
    "testing": _AGENT | {"tools"},  # fake LLM servers and scripted models, for users' tests
    # the orchestrator wires the layers below into one running system
    "_config": _WIRING - {"team"} | {"observability"},
    "_persist": _WIRING,
    "_agents": _WIRING | {"_persist"},
    "observability": _WIRING | {"_persist"},
    "orchestrator": _WIRING | {"_agents", "_config", "_persist", "observability"},
    "events": _WIRING | {"_persist", "dsl"},  # the catalogue of every event class
    # language
    "dsl": _WIRING | {"_agents", "_config", "_persist", "observability", "orchestrator"},
    # Mother and Hermes: team/'s meta-agents wired to the DSL's composer
    "_meta": _WIRING | {"_agents", "_config", "orchestrator", "dsl"},
    # the public API and the surfaces
    "vega_trio": _WIRING
    | {"_agents", "_config", "_persist", "observability", "orchestrator", "events", "dsl"}
    | {"_meta"},
    "serve": _WIRING
    | {"_agents", "_config", "_persist", "observability", "orchestrator", "events", "dsl"},
    "_cli": _WIRING
    | {"_agents", "_config", "_persist", "observability", "orchestrator", "events", "dsl"}
    | {"serve", "vega_trio", "testing", "_meta"},  # testing: the scripted model of --offline runs
    "cli": _WIRING
    | {"_agents", "_config", "_persist", "observability", "orchestrator", "events", "dsl"}
    | {"serve", "vega_trio", "testing", "_cli", "_meta"},
    "__main__": frozenset({"cli"}),
}
# Whatever may use tools/ may use its registry core.
ALLOWED = {
    name: row | {"tool_registry"} if "tools" in row or name == "tools" else row
    for name, row in ALLOWED.items()
}

# Imports against the layers that stay until their owner (another engineer on a parallel branch,
# issue 16) reworks the files; the lead removes each entry at the merge.
_PENDING_EDGES: Mapping[tuple[str, str], str] = {}

# Modules over MAX_LINES that may not carry their reason yet because another engineer is
# rewriting them on a parallel branch (issue 16); the lead removes each entry at the merge,
# when the module is either under the limit or says why at its top.
_SIZE_PENDING: Mapping[str, str] = {}


@attrs.frozen
class Import:
    """One import of one module by another."""

    source: str  # importing module, dotted
    target: str  # imported module, dotted
    file: str  # importing file, relative to vega_trio/
    line: int


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, skipping the bodies of ``if TYPE_CHECKING:``."""
    for item in ast.iter_child_nodes(node):
        if isinstance(item, ast.If) and _is_type_checking(item.test):
            for other in item.orelse:
                yield from _walk_one(other)
            continue
        yield from _walk_one(item)


def _walk_one(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _walk(node)


def _resolve(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: Mapping[str, object]
) -> Iterator[str]:
    """The project modules ``node`` (in ``module``) imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "vega_trio" or alias.name.startswith("vega_trio."):
                yield alias.name
        return
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    if not (target == "vega_trio" or target.startswith("vega_trio.")):
        return
    for alias in node.names:
        # ``from vega_trio.tools import _schema`` imports a module; ``... import Tool`` a name.
        submodule = f"{target}.{alias.name}"
        yield submodule if submodule in known else target


@functools.cache
def imports() -> tuple[Import, ...]:
    """Every import between modules of the package (see the module docstring for what counts)."""
    known = _modules()
    found: list[Import] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in _walk(tree):
            for target in _resolve(module, is_package, node, known):
                found.append(Import(module, target, str(path.relative_to(PACKAGE)), node.lineno))
    return tuple(found)


# The tool registry's core: a function or schema → a checked, callable tool. It needs only the
# LLM protocol's ToolSchema, and the agent loop runs its tools through it, so it sits below the
# agent layer while the rest of tools/ (built-ins, sandbox, YAML tools, MCP) sits above it.
TOOL_REGISTRY = frozenset(
    f"vega_trio.tools.{name}"
    for name in ("_registry", "_schema", "_validate", "_adapters", "_docstrings")
)


def part(module: str) -> str:
    """The part a dotted module belongs to (see the module docstring)."""
    names = module.split(".")
    if ".".join(names[:3]) in TOOL_REGISTRY:
        return "tool_registry"
    return names[1] if len(names) > 1 else "vega_trio"


def part_edges() -> dict[tuple[str, str], list[Import]]:
    """``(importing part, imported part)`` → the imports that make that edge."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for found in imports():
        a, b = part(found.source), part(found.target)
        if a != b:
            edges.setdefault((a, b), []).append(found)
    return edges


def find_cycle(edges: Mapping[tuple[str, str], object]) -> list[str] | None:
    """One circle in the graph of ``edges`` (``[a, b, ..., a]``), or ``None``."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def _where(found: list[Import]) -> str:
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"vega_trio/{first.file}:{first.line} imports {first.target}{more}"


# --------------------------------------------------------------------------------------------


def test_the_finder_sees_relative_lazy_and_type_checking_imports() -> None:
    """The reader resolves relative imports and lazy ones, and leaves TYPE_CHECKING ones out."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import _b\n"
        "from ..llm import LLM\n"
        "if TYPE_CHECKING:\n"
        "    from ..store import Store\n"
        "else:\n"
        "    import vega_trio.dsl\n"
        "def f():\n"
        "    from .._errors import VegaError\n"
    )
    known = {
        "vega_trio.runtime._b": 1,
        "vega_trio.runtime": 1,
        "vega_trio.llm": 1,
        "vega_trio.dsl": 1,
    }
    found = [
        target
        for node in _walk(ast.parse(source))
        for target in _resolve("vega_trio.runtime._a", False, node, known)
    ]
    assert found == ["vega_trio.runtime._b", "vega_trio.llm", "vega_trio.dsl", "vega_trio._errors"]


def test_the_cycle_finder_reports_the_path() -> None:
    """A circle is reported as its path; a graph without one gives None."""
    assert find_cycle({("a", "b"): 1, ("b", "c"): 1, ("c", "a"): 1}) == ["a", "b", "c", "a"]
    assert find_cycle({("a", "b"): 1, ("b", "c"): 1, ("a", "c"): 1}) is None


def test_every_part_has_a_row_in_the_layer_table() -> None:
    """Each subpackage and top-level module has a row in ALLOWED (the foundation aside), so a
    new part has to be placed in the layers."""
    parts = {part(m) for m in _modules()} - _BASE
    assert sorted(parts - set(ALLOWED)) == []
    assert sorted(set(ALLOWED) - parts) == []


def test_no_import_circle_between_parts() -> None:
    """No part imports another part that (through others) imports it back."""
    edges = part_edges()
    cycle = find_cycle(edges)
    if cycle is not None:
        steps = [f"  {a} -> {b}: {_where(edges[(a, b)])}" for a, b in itertools.pairwise(cycle)]
        raise AssertionError(
            "import circle between parts: " + " -> ".join(cycle) + "\n" + "\n".join(steps)
        )


def test_imports_follow_the_layers() -> None:
    """Every import between parts is allowed by the layer table (arrows point down only)."""
    wrong = []
    for (a, b), found in sorted(part_edges().items()):
        if b in _BASE:
            if a in _BASE:
                continue  # the foundation's own order is checked by the circle test
            continue
        if a in _BASE:
            wrong.append(f"{a} (foundation) -> {b}: {_where(found)}")
        elif b not in ALLOWED.get(a, frozenset()) and (a, b) not in _PENDING_EDGES:
            wrong.append(f"{a} -> {b}: {_where(found)}")
    assert not wrong, "imports against the layers of DESIGN.md:\n" + "\n".join(wrong)


def test_pending_layer_exemptions_are_still_needed() -> None:
    """Each import exempted while another branch reworks it still exists and is still against
    the layer table (so the exemption is removed when it is no longer needed)."""
    edges = part_edges()
    stale = [
        f"{a} -> {b} ({why})"
        for (a, b), why in _PENDING_EDGES.items()
        if (a, b) not in edges or b in ALLOWED.get(a, frozenset())
    ]
    assert not stale, "remove these from _PENDING_EDGES:\n" + "\n".join(stale)


def _docstring(path: pathlib.Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def test_large_modules_say_why() -> None:
    """A module over MAX_LINES lines has a 'Size:' line in its docstring saying why it is whole."""
    missing = []
    for module, path in _modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        relative = str(path.relative_to(PACKAGE))
        if lines <= MAX_LINES or relative in _SIZE_PENDING:
            continue
        doc = _docstring(path)
        if not any(line.strip().startswith(SIZE_MARKER) for line in doc.splitlines()):
            missing.append(f"vega_trio/{relative}: {lines} lines ({module})")
    assert not missing, (
        f"modules over {MAX_LINES} lines without a '{SIZE_MARKER}' line in their docstring "
        "(split the module where it splits naturally, or write why it is one):\n"
        + "\n".join(missing)
    )


def test_pending_size_exemptions_are_still_needed() -> None:
    """Each module exempted while another branch rewrites it still exists and is still large
    without a reason (so the exemption is removed when it is no longer needed)."""
    stale = []
    for relative, owner in _SIZE_PENDING.items():
        path = PACKAGE / relative
        if not path.exists():
            stale.append(f"{relative} ({owner}): no such module")
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        has_reason = any(
            line.strip().startswith(SIZE_MARKER) for line in _docstring(path).splitlines()
        )
        if lines <= MAX_LINES or has_reason:
            stale.append(f"{relative} ({owner}): {lines} lines, reason written: {has_reason}")
    assert not stale, "remove these from _SIZE_PENDING:\n" + "\n".join(stale)
