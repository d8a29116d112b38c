"""Snapshot tests: each broken document in tests/dsl/broken/ gives exactly the diagnostics
(file:line:col, severity, path, message, hint) written in its sibling .expected file."""

from __future__ import annotations

import pathlib

import pytest

from vega_trio.dsl import DSLError, load_document, validate_text

BROKEN = pathlib.Path(__file__).parent / "broken"
CASES = sorted(BROKEN.glob("*.vega.yaml"))


def _expected(path: pathlib.Path) -> list[str]:
    snapshot = path.with_name(path.name.removesuffix(".vega.yaml") + ".expected")
    return snapshot.read_text(encoding="utf-8").splitlines()


def test_there_are_about_thirty_cases() -> None:
    """The snapshot corpus covers at least 30 broken documents, each with a snapshot."""
    assert len(CASES) >= 30
    for case in CASES:
        assert _expected(case), case.name


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name.removesuffix(".vega.yaml"))
def test_broken_document_diagnostics(case: pathlib.Path) -> None:
    """validate_text reports exactly the snapshot's diagnostics, in file order."""
    diagnostics = validate_text(case.read_text(encoding="utf-8"), file=case.name)
    assert [str(d) for d in diagnostics] == _expected(case)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name.removesuffix(".vega.yaml"))
def test_load_document_raises_every_error(case: pathlib.Path) -> None:
    """load_document raises DSLError carrying every error of the snapshot (no warnings)."""
    with pytest.raises(DSLError) as caught:
        load_document(case.read_text(encoding="utf-8"), file=case.name)
    errors = [line for line in _expected(case) if ": error: " in line]
    assert [str(d) for d in caught.value.diagnostics] == errors
