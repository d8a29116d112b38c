"""The benchmark report keeps its hand-written notes when it is regenerated."""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks._report import NOTES_BEGIN, NOTES_END, kept_notes


def test_the_notes_block_is_carried_over(tmp_path: Path) -> None:
    """The block between the markers (markers included) is what a rerun writes again."""
    doc = tmp_path / "benchmarks.md"
    block = f"{NOTES_BEGIN}\n## Where the time went\n\nProfiles.\n{NOTES_END}"
    doc.write_text(f"# Benchmarks\n\n| generated |\n\n{block}\n\n## B3\n")
    assert kept_notes(doc) == block + "\n"


def test_no_notes_without_both_markers(tmp_path: Path) -> None:
    """A page without the block (or a missing page) gives no notes."""
    doc = tmp_path / "benchmarks.md"
    assert kept_notes(doc) == ""
    doc.write_text(f"# Benchmarks\n{NOTES_BEGIN}\nunfinished\n")
    assert kept_notes(doc) == ""
