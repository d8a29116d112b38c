from __future__ import annotations

import pytest

from vega_trio import ErrorClass, LLMError
from vega_trio.llm import ModelPrice, Usage
from vega_trio.resilience import Budget, BudgetExceeded, BudgetTracker, parse_money


def test_block_refuses_the_call_that_would_start_over_the_limit() -> None:
    """A block budget lets calls through until spend reaches the limit, then refuses them."""
    tracker = BudgetTracker(Budget(limit=0.01), owner="agent 'planner'")
    tracker.check()
    assert not tracker.charge(0.006)
    tracker.check()
    assert tracker.charge(0.006)  # 0.012: this charge crossed the limit
    with pytest.raises(BudgetExceeded) as info:
        tracker.check()
    error = info.value
    assert isinstance(error, LLMError)
    assert error.error_class is ErrorClass.BUDGET_EXCEEDED and not error.retryable
    assert (error.owner, error.limit, error.spent) == ("agent 'planner'", 0.01, 0.012)
    message = str(error)
    assert "agent 'planner'" in message and "$0.0100" in message and "$0.0120" in message
    assert "raise the limit" in message


def test_spend_exactly_at_the_limit_blocks() -> None:
    """Reaching the limit exactly counts as spent: the next call is refused."""
    tracker = BudgetTracker(Budget(limit=1.0))
    assert tracker.charge(1.0) == (tracker,)
    assert tracker.exceeded and tracker.remaining == 0.0
    with pytest.raises(BudgetExceeded):
        tracker.check()


def test_check_with_estimate_refuses_a_call_that_would_overrun() -> None:
    """check(estimate) refuses a call whose estimated cost would take spend past the limit."""
    tracker = BudgetTracker(Budget(limit=1.0))
    tracker.charge(0.75)
    tracker.check(0.25)
    with pytest.raises(BudgetExceeded, match=r"estimated at \$0\.3000") as info:
        tracker.check(0.30)
    assert info.value.estimated_cost == 0.30
    with pytest.raises(ValueError, match="estimated_cost"):
        tracker.check(-0.1)


def test_warn_and_allow_never_refuse_but_report_the_crossing() -> None:
    """warn and allow budgets let calls through; charge() says when the limit was crossed."""
    for on_exceed in ("warn", "allow"):
        tracker = BudgetTracker(Budget(limit=0.5, on_exceed=on_exceed))
        assert tracker.charge(0.4) == ()
        assert tracker.charge(0.2) == (tracker,)
        tracker.check(10.0)
        assert tracker.charge(0.2) == ()  # crossed once, not on every later charge
        assert tracker.spent == pytest.approx(0.8)


def test_tree_scope_rolls_child_spend_up_to_the_parent() -> None:
    """A child's charges add to every ancestor, and a check consults every ancestor."""
    root = BudgetTracker(Budget(limit=1.0), owner="global")
    team = BudgetTracker(None, owner="agent 'team'", parent=root)
    child = BudgetTracker(Budget(limit=5.0, on_exceed="warn"), owner="process 'p1'", parent=team)
    sibling = BudgetTracker(None, owner="process 'p2'", parent=team)
    assert child.charge(0.6) == ()
    assert sibling.charge(0.4) == (root,)
    assert (child.spent, sibling.spent, team.spent, root.spent) == (0.6, 0.4, 1.0, 1.0)
    with pytest.raises(BudgetExceeded, match="budget of global exceeded") as info:
        child.check()
    assert info.value.owner == "global"


def test_charge_rejects_bad_costs() -> None:
    """Negative and non-finite costs are refused rather than corrupting the totals."""
    tracker = BudgetTracker(Budget(limit=1.0))
    for cost in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="cost"):
            tracker.charge(cost)
    assert tracker.spent == 0.0


def test_charges_from_the_price_table_trip_a_block_budget() -> None:
    """Costs computed from usage and the price table accumulate until the budget blocks."""
    price = ModelPrice(input=3.0, output=15.0)
    cost = price.cost(Usage(input_tokens=1000, output_tokens=200))  # $0.006
    tracker = BudgetTracker(Budget(limit=0.01))
    tracker.check()
    tracker.charge(cost)
    tracker.check()
    tracker.charge(cost)
    with pytest.raises(BudgetExceeded):
        tracker.check()


def test_budget_spec_validation() -> None:
    """A budget needs a positive limit and a known on_exceed policy."""
    for limit in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of USD"):
            Budget(limit=limit)
    with pytest.raises(ValueError, match="on_exceed"):
        Budget(limit=1.0, on_exceed="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$5.00", 5.0),
        ("5", 5.0),
        ("$0.01", 0.01),
        (" $1,000.50 ", 1000.5),
        ("$.5", 0.5),
        ("$0", 0.0),
        (2, 2.0),
        (0.25, 0.25),
    ],
)
def test_parse_money_accepts_dollar_amounts(text: str | float, expected: float) -> None:
    """parse_money reads '$5.00'-style amounts and plain numbers as USD."""
    assert parse_money(text) == expected


@pytest.mark.parametrize(
    "text", ["", "5 dollars", "-$1", "$-1", "$", "1,00", "5.", "€5", "1e3", "nan", -1.0, True]
)
def test_parse_money_rejects_bad_input_clearly(text: str | float) -> None:
    """parse_money refuses anything that is not a non-negative dollar amount, naming it."""
    with pytest.raises(ValueError, match=r"dollars|money amount"):
        parse_money(text)
