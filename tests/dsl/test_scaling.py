"""Validation time is linear in the size of the document (SPEC §11: bounded inputs must
also be cheap to check)."""

from __future__ import annotations

import time

import pytest

from tests.benchmarks._dsl import generated_agents_document, generated_document
from vega_trio.dsl import validate_text


def _cpu_seconds(text: str) -> float:
    """The best of two CPU times (not wall time: other load must not move the ratio)."""
    best = float("inf")
    for _ in range(2):
        started = time.process_time()
        diagnostics = validate_text(text)
        best = min(best, time.process_time() - started)
    assert not [d for d in diagnostics if d.severity == "error"]
    return best


@pytest.mark.slow
@pytest.mark.parametrize(
    ("generate", "small"),
    [(generated_document, 1_000), (generated_agents_document, 1_000)],
    ids=["steps", "agents"],
)
def test_validation_time_grows_linearly(generate: object, small: int) -> None:
    """8x the steps (or agents) costs about 8x the time, not 16x (the variable set of a
    workflow used to be copied at every step)."""
    assert callable(generate)
    ratio = _cpu_seconds(generate(small * 8)) / _cpu_seconds(generate(small))
    assert ratio < 12, f"validation is super-linear: 8x the size took {ratio:.1f}x the time"
