"""Handle classes users must not construct (trio's ``NoPublicConstructor``).

A handle — a :class:`~vega_trio.Process`, a :class:`~vega_trio.Supervisor`, an
:class:`~vega_trio.Orchestrator`, a :class:`~vega_trio.runtime.Subscription`, a DSL
:class:`~vega_trio.dsl.Runner` — only makes sense inside the block or call that made it: the
library starts its task, registers it and tears it down. Calling the class directly would give
an object that looks right and does nothing, so it raises a ``TypeError`` that says what to
call instead. The library builds instances with ``Cls._create(...)``.

A ground-floor module: it imports nothing of vega-trio.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

__all__ = ["NoPublicConstructor"]

T = TypeVar("T")


class NoPublicConstructor(type):
    """Metaclass: ``Cls(...)`` raises ``TypeError``; the library uses ``Cls._create(...)``.

    A class sets ``_public_constructor_hint`` to what users call instead (``"use
    await orch.spawn(agent)"``). Works with ``attrs.define`` (attrs rebuilds a slotted
    class with ``type(cls)``, so the metaclass carries over) and with subclasses.
    """

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        hint = getattr(cls, "_public_constructor_hint", "")
        raise TypeError(
            f"{cls.__qualname__} has no public constructor" + (f": {hint}" if hint else "")
        )

    def _create(cls: type[T], *args: Any, **kwargs: Any) -> T:
        """Build an instance (the library's own path past the guard)."""
        # NOTE: type.__call__ runs __new__ and __init__ as a normal call would.
        return type.__call__(cls, *args, **kwargs)  # type: ignore[no-any-return]
