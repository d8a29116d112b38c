"""The exception tree: one home, the drawing equals the classes, sensible parents."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import vega_trio
import vega_trio._errors as errors_module
from vega_trio import ProcessError, ProcessNotRunning, VegaError
from vega_trio.runtime import MailboxFull

PACKAGE = Path(vega_trio.__file__).parent

# Classes named like errors that are private control flow (never seen by users).
_PRIVATE = re.compile(r"^_")


def _import_every_module() -> None:
    for info in pkgutil.walk_packages(vega_trio.__path__, "vega_trio."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI on import
        importlib.import_module(info.name)


def _all_subclasses(root: type) -> set[type]:
    found: set[type] = set()
    todo = [root]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found and sub.__module__.startswith("vega_trio"):
                found.add(sub)
                todo.append(sub)
    return found


def _drawn_tree() -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """name -> (drawn parent, extra builtin bases) from the docstring's drawing."""
    doc = errors_module.__doc__ or ""
    drawn: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        if line.strip() == "VegaError":
            stack = ["VegaError"]
            drawn["VegaError"] = (None, ())
            continue
        match = re.match(r"^    ((?:[│ ]   )*)[├└]── (\w+)\s*(?:\+ (\w+))?", line)
        if not match or not stack:
            continue
        depth = len(match.group(1)) // 4 + 1
        del stack[depth:]
        name = match.group(2)
        assert name not in drawn, f"{name} is drawn twice"
        drawn[name] = (stack[-1], (match.group(3),) if match.group(3) else ())
        stack.append(name)
    return drawn


def test_the_drawn_tree_equals_every_vega_error_subclass() -> None:
    """Every VegaError subclass anywhere in the package is drawn once, under its real parent."""
    _import_every_module()
    real = _all_subclasses(VegaError) | {VegaError}
    drawn = _drawn_tree()
    assert sorted(drawn) == sorted(c.__name__ for c in real)
    for cls in real:
        if cls is VegaError:
            continue
        parent, extras = drawn[cls.__name__]
        bases = [b.__name__ for b in cls.__bases__]
        assert bases == [parent, *extras], f"{cls.__name__}: drawn {parent} {extras}, is {bases}"


def test_every_public_exception_class_is_defined_in_errors_module() -> None:
    """No public exception class is defined outside vega_trio/_errors.py (one home)."""
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or _PRIVATE.match(node.name):
                continue
            module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            cls = getattr(importlib.import_module(module), node.name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                outside.append(f"{module}.{node.name}")
    assert outside == []


def test_every_exception_users_meet_is_a_vega_error() -> None:
    """Every exception class a public namespace exports derives from VegaError."""
    import vega_trio.dsl
    import vega_trio.resilience
    import vega_trio.runtime
    import vega_trio.skills
    import vega_trio.testing
    import vega_trio.tools

    namespaces = (
        vega_trio,
        vega_trio.dsl,
        vega_trio.resilience,
        vega_trio.runtime,
        vega_trio.skills,
        vega_trio.testing,
        vega_trio.tools,
    )
    exported = {
        getattr(ns, name)
        for ns in namespaces
        for name in ns.__all__
        if isinstance(getattr(ns, name), type) and issubclass(getattr(ns, name), BaseException)
    }
    assert exported
    assert [c.__name__ for c in exported if not issubclass(c, VegaError)] == []
    # and each is the very class defined in the one home
    assert all(c.__module__ == "vega_trio._errors" for c in exported)


def test_errors_module_imports_nothing_of_the_runtime() -> None:
    """_errors.py imports no vega_trio module but the ground floor (no loop with the runtime)."""
    tree = ast.parse((PACKAGE / "_errors.py").read_text(encoding="utf-8"))
    imported = {
        (node.level, node.module)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    }
    runtime_imports = {module for level, module in imported if module and "runtime" in module}
    assert runtime_imports == set()
    exit_tree = ast.parse((PACKAGE / "_exit.py").read_text(encoding="utf-8"))
    assert not any(
        isinstance(node, ast.ImportFrom) and node.level > 0 for node in ast.walk(exit_tree)
    ), "_exit.py is ground floor: it imports nothing of vega_trio"


def test_the_subpackages_still_export_the_moved_classes() -> None:
    """The old import paths keep working and give the class from _errors."""
    from vega_trio.dsl import DSLError, StepTimeout, TemplateError, WorkflowError
    from vega_trio.resilience import BudgetExceeded, CircuitOpen
    from vega_trio.runtime import MailboxFull as RuntimeMailboxFull
    from vega_trio.skills import SkillError
    from vega_trio.testing import ScriptExhausted
    from vega_trio.tools import ArgumentProblem, HostNotAllowed, MCPToolError, SandboxViolation

    for cls in (
        DSLError,
        StepTimeout,
        TemplateError,
        WorkflowError,
        BudgetExceeded,
        CircuitOpen,
        RuntimeMailboxFull,
        SkillError,
        ScriptExhausted,
        ArgumentProblem,
        HostNotAllowed,
        MCPToolError,
        SandboxViolation,
    ):
        assert getattr(errors_module, cls.__name__) is cls


def test_parents_say_what_the_error_is() -> None:
    """A full mailbox is not a finished process; argument/input/usage problems are VegaErrors."""
    from vega_trio._cli import UsageProblem
    from vega_trio.dsl._inputs import InputError
    from vega_trio.tools import ArgumentProblem

    assert issubclass(MailboxFull, ProcessError)
    assert not issubclass(MailboxFull, ProcessNotRunning)
    assert issubclass(ArgumentProblem, vega_trio.ToolError)
    assert issubclass(InputError, VegaError) and issubclass(InputError, ValueError)
    assert issubclass(UsageProblem, VegaError)


def test_the_api_docs_show_the_same_tree() -> None:
    """docs/api.md's error section draws exactly the tree in _errors.py's docstring."""
    doc = errors_module.__doc__ or ""
    start = doc.index("    VegaError\n")
    drawing = [line[4:] for line in doc[start : doc.index("\n\n", start)].splitlines()]
    api = (PACKAGE.parent / "docs" / "api.md").read_text(encoding="utf-8")
    section = api[api.index("### Errors") :]
    block = section[section.index("```\n") + 4 : section.index("\n```", section.index("```\n"))]
    assert block.splitlines() == drawing
