"""Budgets: how much may be spent, and what happens at the limit (SPEC §3.5).

A :class:`Budget` is the frozen spec; a :class:`BudgetTracker` is the mutable
handle that counts what was spent. Before a call, :meth:`BudgetTracker.check`
refuses it with :class:`BudgetExceeded` when a ``block`` budget (its own or any
ancestor's) is already spent or would be overrun by the call's estimate; after the
call, :meth:`BudgetTracker.charge` adds its cost to the tracker and every ancestor
(``budget_scope: tree`` rolls children's spend up to the parent).
"""

from __future__ import annotations

import math
import re
from typing import Literal

import attrs

from .._errors import BudgetExceeded

__all__ = ["Budget", "BudgetExceeded", "BudgetTracker", "parse_money"]


_MONEY = re.compile(r"\$?\s*(?P<amount>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")


def parse_money(text: str | float) -> float:
    """An amount of US dollars from settings: ``"$5.00"``, ``"5"``, ``"$1,000"``, ``0.5``.

    Args:
        text: the amount, with an optional leading ``$``; numbers pass through.

    Returns:
        The amount in USD.

    Raises:
        ValueError: not a non-negative amount of dollars (e.g. ``""``, ``"-$1"``,
            ``"5 dollars"``); the message shows the accepted forms.
    """
    if isinstance(text, bool):
        raise ValueError(f"a money amount must be like '$5.00' or 5.0, got {text!r}")
    if isinstance(text, int | float):
        value = float(text)
    elif isinstance(text, str):
        match = _MONEY.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r} is not an amount of US dollars; write it like '$5.00', '5' or '$1,000'"
            )
        value = float(match["amount"].replace(",", ""))
    else:
        raise ValueError(f"a money amount must be like '$5.00' or 5.0, got {text!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a money amount must be a finite number of dollars >= 0, got {text!r}")
    return value


def _check_limit(instance: Budget, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"a budget's limit must be a positive number of USD, got {value!r}")


@attrs.frozen(kw_only=True)
class Budget:
    """How much may be spent (``limit``, USD) and what happens at the limit.

    ``on_exceed``: ``"block"`` refuses the call that would start over the limit with
    :class:`BudgetExceeded`; ``"warn"`` lets it through (the caller emits a
    ``budget.warning`` event when a charge crosses the limit); ``"allow"`` only
    counts.
    """

    limit: float = attrs.field(validator=_check_limit)
    on_exceed: Literal["block", "warn", "allow"] = attrs.field(default="block")

    @on_exceed.validator
    def _check_on_exceed(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("block", "warn", "allow"):
            raise ValueError(f"on_exceed must be 'block', 'warn' or 'allow', got {value!r}")


@attrs.define(eq=False)
class BudgetTracker:
    """What one owner (an agent, a process, a run, the whole orchestrator) has spent.

    Args:
        budget: the owner's :class:`Budget`, or ``None`` to only count (and roll up).
        owner: who this is, for messages (e.g. ``"agent 'planner'"``, ``"global"``).
        parent: the tracker spend rolls up to (``budget_scope: tree``), if any.
    """

    budget: Budget | None = None
    owner: str = "budget"
    parent: BudgetTracker | None = None
    spent: float = attrs.field(default=0.0, init=False)

    @property
    def remaining(self) -> float | None:
        """USD left before the limit (negative when over it), or ``None`` without a budget."""
        return None if self.budget is None else self.budget.limit - self.spent

    @property
    def exceeded(self) -> bool:
        """Whether spend has reached the limit."""
        return self.budget is not None and self.spent >= self.budget.limit

    def chain(self) -> list[BudgetTracker]:
        """This tracker and its ancestors, nearest first."""
        trackers: list[BudgetTracker] = []
        tracker: BudgetTracker | None = self
        while tracker is not None:
            trackers.append(tracker)
            tracker = tracker.parent
        return trackers

    def check(self, estimated_cost: float = 0.0) -> None:
        """Refuse a call that would start over a ``block`` budget.

        A call is refused when this tracker's or any ancestor's ``block`` budget is
        already spent (spent >= limit) or when spent + ``estimated_cost`` would
        exceed the limit. ``warn`` and ``allow`` budgets never refuse.

        Args:
            estimated_cost: the call's expected cost in USD (0 when unknown).

        Raises:
            BudgetExceeded: the call is refused; the message names whose budget.
            ValueError: ``estimated_cost`` is negative.
        """
        if not estimated_cost >= 0:
            raise ValueError(f"estimated_cost must be zero or more, got {estimated_cost!r}")
        for tracker in self.chain():
            budget = tracker.budget
            if budget is None or budget.on_exceed != "block":
                continue
            spent = tracker.spent
            if spent >= budget.limit or spent + estimated_cost > budget.limit:
                estimate = f" and this call is estimated at ${estimated_cost:.4f}"
                raise BudgetExceeded(
                    f"budget of {tracker.owner} exceeded: ${spent:.4f} of its ${budget.limit:.4f} "
                    f"limit spent{estimate if estimated_cost else ''}, so the call was refused; "
                    "raise the limit, set on_exceed to 'warn', or start a new run",
                    owner=tracker.owner,
                    limit=budget.limit,
                    spent=spent,
                    estimated_cost=estimated_cost,
                )

    def charge(self, cost: float) -> tuple[BudgetTracker, ...]:
        """Add a finished call's cost here and to every ancestor.

        Args:
            cost: what the call cost in USD.

        Returns:
            The trackers (this one and/or ancestors, nearest first) whose limit this
            charge crossed — truthy exactly when some limit was crossed. For a
            ``warn`` budget the caller emits ``budget.warning``; a ``block`` budget
            refuses the next :meth:`check`; ``allow`` is for information only.

        Raises:
            ValueError: ``cost`` is negative or not finite.
        """
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"a cost must be a finite number of USD >= 0, got {cost!r}")
        return self._add(cost)

    def _add(self, cost: float) -> tuple[BudgetTracker, ...]:
        """:meth:`charge` of a cost known to be finite and >= 0 (a price table's, on
        every LLM call: the check is the caller's)."""
        if self.parent is None:  # the common case, on every LLM call: no list, no loop
            budget = self.budget
            if budget is None:  # counting only (the global tracker without a budget)
                self.spent += cost
                return ()
            before = self.spent
            self.spent = before + cost
            if before < budget.limit <= self.spent:
                return (self,)
            return ()
        crossed: list[BudgetTracker] = []
        for tracker in self.chain():
            before = tracker.spent
            tracker.spent = before + cost
            budget = tracker.budget
            if budget is not None and before < budget.limit <= tracker.spent:
                crossed.append(tracker)
        return tuple(crossed)
