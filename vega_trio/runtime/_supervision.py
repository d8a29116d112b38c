"""Per-process supervision (SPEC §2.1): the policy a process is spawned with.

The restart rule itself — intensity, backoff, hooks — is the restart engine's
(:mod:`vega_trio.runtime._restart`), shared with supervisor trees and MCP connections.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs

from ._restart import Backoff, RestartIntensity

if TYPE_CHECKING:
    from ._process import Process
    from ._reason import ExitReason

__all__ = ["Supervision"]

_DEFAULT_BACKOFF = Backoff()


@attrs.frozen(kw_only=True)
class Supervision:
    """Per-process supervision (SPEC §2.1), given to ``spawn(..., supervision=...)``.

    Attributes:
        strategy: ``restart`` the process in place; ``stop`` it (never restart);
            ``escalate`` the failure to the parent supervisor or parent process.
        max_restarts: restarts allowed within ``window`` (``-1`` unlimited, ``0`` none).
        window: the sliding window in seconds.
        backoff: the wait before each restart (Trio time, cancellable).
        restart_state: ``keep`` the conversation up to the last completed turn, or
            start ``fresh``.
        on_failure: called with ``(process, exit_reason)`` at every crash.
        on_restart: called with ``(process, restart_number)`` before each restart.
        on_give_up: called with ``(process, exit_reason)`` when restarts are exhausted.
    """

    strategy: Literal["restart", "stop", "escalate"] = "restart"
    max_restarts: int = 3
    window: float = 60.0
    backoff: Backoff = _DEFAULT_BACKOFF
    restart_state: Literal["keep", "fresh"] = "keep"
    on_failure: Callable[[Process, ExitReason], None] | None = attrs.field(default=None, eq=False)
    on_restart: Callable[[Process, int], None] | None = attrs.field(default=None, eq=False)
    on_give_up: Callable[[Process, ExitReason], None] | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.strategy not in ("restart", "stop", "escalate"):
            raise ValueError(
                f"Supervision strategy must be 'restart', 'stop' or 'escalate', "
                f"not {self.strategy!r}"
            )
        if self.restart_state not in ("keep", "fresh"):
            raise ValueError(f"restart_state must be 'keep' or 'fresh', not {self.restart_state!r}")
        RestartIntensity(self.max_restarts, self.window)  # validates both
