"""Make sure the docs are true: every ```python block in README.md and docs/ runs, and
prints what the docs show.

The convention:

* A ```python block that prints is followed by a ```text block (only blank lines
  between): the output it prints, compared line by line. ``...`` in a line matches any
  text (a timing, a temporary path); a line that is only ``...`` matches any number of
  lines.
* A block that is not compared says why in an HTML comment right before it:
  ``<!-- output not compared: <reason> -->`` (it still has to run).
* A block that prints and shows no output, and is not marked, fails the test: the docs
  must not claim nothing, nor go stale silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# NOTE: every test here starts a fresh interpreter (subprocess); the fast tier skips them.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?P<mark><!-- output not compared: (?P<reason>[^>]*?) -->\n)?"
    r"^```python\n(?P<code>.*?)^```\n"
    r"(?:(?:[ \t]*\n)*^```text\n(?P<output>.*?)^```\n)?",
    re.S | re.M,
)


def _blocks() -> list[tuple[str, str, str | None, str | None]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for i, match in enumerate(BLOCK.finditer(text)):
            found.append(
                (
                    f"{doc.relative_to(ROOT)}#{i}",
                    match.group("code"),
                    match.group("output"),
                    match.group("reason"),
                )
            )
    return found


def expected_pattern(shown: str) -> re.Pattern[str]:
    """The regular expression of a shown output: each line literally, ``...`` as any
    text, a line of only ``...`` as any lines."""
    parts = []
    for line in shown.rstrip("\n").split("\n"):
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = [re.escape(piece) for piece in line.rstrip().split("...")]
            parts.append("[^\n]*?".join(pieces) + r"[ \t]*\n")
    return re.compile("".join(parts))


def matches(shown: str, printed: str) -> bool:
    """Whether ``printed`` is what ``shown`` shows."""
    normal = "\n".join(line.rstrip() for line in printed.rstrip("\n").split("\n")) + "\n"
    return expected_pattern(shown).fullmatch(normal) is not None


def test_expected_pattern() -> None:
    """The ellipsis rules: any text within a line, any lines for a line of its own."""
    assert matches("took ...s\nok\n", "took 0.31s\nok\n")
    assert matches("first\n...\nlast\n", "first\na\nb\nlast\n")
    assert matches("first\n...\nlast\n", "first\nlast\n")
    assert not matches("ok\n", "ok\nmore\n")
    assert not matches("a ... c\n", "a b\n")


@pytest.mark.parametrize(
    ("where", "code", "shown", "reason"), _blocks(), ids=[b[0] for b in _blocks()]
)
def test_doc_snippet_prints_what_the_docs_show(
    where: str, code: str, shown: str | None, reason: str | None, tmp_path: Path
) -> None:
    """Each Python snippet in the docs runs offline and prints the output shown after it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env["VEGA_LLM"] = "scripted"
    env["PYTHONIOENCODING"] = "utf-8"
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
    if reason is not None:
        assert reason.strip(), f"{where}: say why its output is not compared"
        return
    if shown is None:
        assert not result.stdout.strip(), (
            f"{where} prints output the docs do not show; add a ```text block after it "
            f"with:\n{result.stdout}"
        )
        return
    assert matches(shown, result.stdout), (
        f"{where} printed something else than the docs show.\n--- shown:\n{shown}"
        f"--- printed:\n{result.stdout}"
    )
