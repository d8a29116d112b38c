"""Names a package exports but imports only on first use.

Some of vega-trio's names pull in heavy modules: the ``anthropic`` and ``openai`` SDKs
take about a second each to import, the fake servers bring ``h11``. A package lists
such names in a table and sets ``__getattr__ = lazy_attributes(__name__, table)``; the
module is imported the first time the name is read (PEP 562), and the value is then
kept in the package's namespace, so later reads cost nothing. ``vega-trio --help``,
``validate`` and a ``run`` on one backend thereby import only what they use
(tests/test_lazy_imports.py checks it).

Each such package also imports the names under ``if TYPE_CHECKING:`` for type checkers.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` that imports ``table``'s names on demand.

    Args:
        package: the package's ``__name__``.
        table: exported name → the module (relative to ``package``, like ``"._openai"``)
            that defines it.

    Returns:
        The function to assign to the package's ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
