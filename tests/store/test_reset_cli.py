"""``vega-trio reset``: shows counts per table, asks, deletes (SPEC §9, §12)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import TextIO

import pytest
import trio

from vega_trio._cli._reset import reset_command
from vega_trio.store import StoredEvent, open_store

ROOT = Path(__file__).parents[2]


async def _filled(path: Path) -> None:
    async with open_store(path) as store:
        await store.append_events(
            [StoredEvent(seq=i, type="x", timestamp=1.0, data={}) for i in range(1, 4)]
        )
        await store.append_messages("a", None, [{"role": "user", "content": "hi"}])


async def _reset(
    path: Path, *, yes: bool = False, answer: bool | None = None
) -> tuple[int, str, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    asked: list[str] = []

    def ask(question: str, stream: TextIO) -> bool:
        asked.append(question)
        assert answer is not None, "reset asked although it should not"
        return answer

    status = await reset_command(str(path), yes=yes, ask=ask, out=out, err=err)
    return status, out.getvalue(), err.getvalue(), asked


async def test_reset_shows_counts_asks_and_deletes(tmp_path: Path) -> None:
    """Counts per table are shown, the question asked; yes empties every table."""
    path = tmp_path / "v.db"
    await _filled(path)
    status, out, err, asked = await _reset(path, answer=True)
    assert status == 0 and err == ""
    assert "events" in out and "3" in out and "messages" in out
    assert asked == ["Delete all 4 rows (events, runs, conversations…)? [y/N] "]
    assert "deleted 4 rows" in out
    async with open_store(path) as store:
        assert set((await store.counts()).values()) == {0}


async def test_reset_declined_deletes_nothing_exit_1(tmp_path: Path) -> None:
    """Answering no keeps every row and exits 1."""
    path = tmp_path / "v.db"
    await _filled(path)
    status, out, _, asked = await _reset(path, answer=False)
    assert status == 1 and "nothing deleted" in out and len(asked) == 1
    async with open_store(path) as store:
        assert (await store.counts())["events"] == 3


async def test_reset_yes_does_not_ask(tmp_path: Path) -> None:
    """--yes deletes without a question."""
    path = tmp_path / "v.db"
    await _filled(path)
    status, out, _, asked = await _reset(path, yes=True)
    assert status == 0 and asked == [] and "deleted 4 rows" in out


async def test_reset_of_nothing_creates_nothing(tmp_path: Path) -> None:
    """A missing database is not created; an empty one is not asked about."""
    status, out, _, _ = await _reset(tmp_path / "none.db")
    assert status == 0 and "no database" in out and not (tmp_path / "none.db").exists()
    async with open_store(tmp_path / "empty.db"):
        pass
    status, out, _, _ = await _reset(tmp_path / "empty.db")
    assert status == 0 and "empty" in out


async def test_reset_of_an_unusable_file_exits_2(tmp_path: Path) -> None:
    """A corrupt file: one line saying what and where, exit 2, the file untouched."""
    path = tmp_path / "bad.db"
    path.write_bytes(b"not a database at all" * 100)
    status, out, err, _ = await _reset(path, yes=True)
    assert status == 2 and out == ""
    assert err.startswith("vega-trio: error: ") and str(path) in err and err.count("\n") == 1
    assert path.read_bytes() == b"not a database at all" * 100


@pytest.mark.slow
async def test_reset_command_line_reads_the_answer_from_stdin(tmp_path: Path) -> None:
    """`vega-trio reset --db F` with "n" then "y" piped in: exit 1 and keep, exit 0 and delete."""
    path = tmp_path / "v.db"
    await _filled(path)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "vega_trio", "reset", "--db", str(path)]
    with trio.fail_after(60):
        declined = await trio.run_process(
            command, stdin=b"n\n", capture_stdout=True, env=env, check=False
        )
        accepted = await trio.run_process(
            command, stdin=b"y\n", capture_stdout=True, env=env, check=False
        )
    assert declined.returncode == 1 and b"nothing deleted" in declined.stdout
    assert accepted.returncode == 0 and b"deleted 4 rows" in accepted.stdout
    assert b"messages" in accepted.stdout
