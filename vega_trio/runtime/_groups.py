"""Process groups (join/leave/members/broadcast) with a shared blackboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import MailboxFull, ProcessNotRunning

if TYPE_CHECKING:
    from ._process import Process
    from ._request import Future

__all__ = ["Blackboard", "Group"]


@attrs.define(eq=False)
class Blackboard:
    """A key/value store shared by the members of a group.

    All access happens on the Trio thread, so each operation is atomic.
    """

    _data: dict[str, Any] = attrs.field(factory=dict)
    version: int = 0
    """Incremented on every write or delete."""

    def read(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return self._data.get(key, default)

    def write(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value``."""
        self._data[key] = value
        self.version += 1

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it was there."""
        found = self._data.pop(key, _MISSING) is not _MISSING
        if found:
            self.version += 1
        return found

    def keys(self) -> list[str]:
        """All keys, in insertion order."""
        return list(self._data)

    def snapshot(self) -> dict[str, Any]:
        """A shallow copy of the whole board."""
        return dict(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))


_MISSING: Any = object()


@attrs.define(eq=False)
class Group:
    """A named set of live processes; members leave automatically when they exit.

    Get one with :meth:`Orchestrator.group <vega_trio.Orchestrator.group>`.
    """

    name: str
    blackboard: Blackboard = attrs.field(factory=Blackboard)
    _members: dict[str, Process] = attrs.field(factory=dict)

    def join(self, process: Process) -> None:
        """Add ``process`` (idempotent).

        Raises:
            ProcessNotRunning: the process has finished.
            TypeError: ``process`` is not a process (e.g. a supervisor).
        """
        check = getattr(process, "_check_open", None)
        if check is None:
            raise TypeError(
                f"group {self.name!r}: join takes a Process, not {process!r}; join the "
                "supervisor's child processes instead"
            )
        check()
        self._members[process.id] = process
        if process._groups is None:
            process._groups = set()
        process._groups.add(self.name)

    def leave(self, process: Process) -> None:
        """Remove ``process`` (idempotent)."""
        self._members.pop(process.id, None)
        if process._groups is not None:
            process._groups.discard(self.name)

    def members(self) -> list[Process]:
        """Live members in join order."""
        return list(self._members.values())

    def __contains__(self, process: object) -> bool:
        return getattr(process, "id", None) in self._members

    def __len__(self) -> int:
        return len(self._members)

    def broadcast(self, payload: Any, *, exclude: Process | None = None) -> list[Future[Any]]:
        """Send ``payload`` to every live member (but ``exclude``) without waiting.

        Returns one future per member that took the message; members whose mailbox
        is closed or full are skipped (their future holds the error instead).
        """
        futures: list[Future[Any]] = []
        for member in self.members():
            if member is exclude:
                continue
            try:
                futures.append(member.call_async(payload))
            except (ProcessNotRunning, MailboxFull) as exc:
                futures.append(_failed_future(member, exc))
        return futures


def _failed_future(process: Process, error: BaseException) -> Future[Any]:
    from ._request import Future, Request

    request = Request(None, process.id)
    request.set_error(error)
    return Future(request)
