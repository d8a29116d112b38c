"""Bounded input files (SPEC §11): only regular files under a size cap are read, with a
bounded read; YAML aliases may not explode. The library raises a clear error; the CLI
prints one line and exits 2 without running anything."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from vega_trio import InputFileError
from vega_trio._files import (
    DEFAULT_MAX_INPUT_BYTES,
    MAX_INPUT_BYTES_ENV,
    check_alias_expansion,
    read_bounded_text,
)
from vega_trio.cli import main
from vega_trio.dsl import DSLError, load_file, validate_file, validate_text
from vega_trio.skills import SkillError, read_skill

VALID = (
    "agents:\n  helper:\n    system: You help.\nworkflows:\n  w:\n    steps:\n      - helper: hi\n"
)

# Nine anchors, each nine aliases of the one before: 9**9 (387 million) strings.
LAUGHS = (
    'l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"l{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
    + "agents:\n  helper:\n    system: You help.\n"
    + "workflows:\n  w:\n    steps:\n      - set: {v: *a8}\n      - helper: '{{v}}'\n"
)


@pytest.fixture(autouse=True)
def default_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own cap setting does not leak into these tests."""
    monkeypatch.delenv(MAX_INPUT_BYTES_ENV, raising=False)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A named pipe nobody writes to: opening it for reading normally blocks forever."""
    path = tmp_path / "pipe.vega.yaml"
    os.mkfifo(path)
    return path


def _big(tmp_path: Path, size: int = 50 * 1024 * 1024) -> Path:
    """A sparse file of ``size`` bytes (instant to make, and reading it would be slow)."""
    path = tmp_path / "big.vega.yaml"
    with path.open("wb") as file:
        file.write(VALID.encode())
        file.truncate(size)
    return path


async def _in_thread(call: Callable[[], object]) -> object:
    """Run a blocking call in a thread, abandoned (and the test failed) if it hangs."""
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(call, abandon_on_cancel=True)


# -- the one reader -------------------------------------------------------------------------


async def test_a_fifo_is_refused_at_once(fifo: Path) -> None:
    """A FIFO is refused without waiting for a writer (no hang)."""
    with pytest.raises(InputFileError, match=r"is a FIFO \(named pipe\), not a regular file"):
        await _in_thread(lambda: read_bounded_text(fifo, what="document"))


async def test_dev_zero_is_refused_without_reading() -> None:
    """/dev/zero (endless) is refused as a device, not read until memory runs out."""
    with pytest.raises(InputFileError, match=r"/dev/zero: document is a character device"):
        await _in_thread(lambda: read_bounded_text("/dev/zero", what="document"))


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A directory is refused, naming it and saying what to give instead."""
    with pytest.raises(InputFileError, match=r"is a directory.*give the path of a"):
        read_bounded_text(tmp_path, what="document")


def test_a_file_over_the_default_cap_is_refused(tmp_path: Path) -> None:
    """A 50 MB file is refused at once under the default 4 MiB cap, saying how to raise it."""
    path = _big(tmp_path)
    with pytest.raises(InputFileError) as caught:
        read_bounded_text(path, what="document")
    message = str(caught.value)
    assert f"{DEFAULT_MAX_INPUT_BYTES:,}-byte limit" in message
    assert MAX_INPUT_BYTES_ENV in message and caught.value.path == str(path)


def test_the_cap_is_overridable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_bytes= and $VEGA_MAX_INPUT_BYTES move the cap; at the cap a file is accepted."""
    path = tmp_path / "doc.vega.yaml"
    path.write_text(VALID)
    size = len(VALID.encode())
    assert read_bounded_text(path, max_bytes=size) == VALID
    with pytest.raises(InputFileError, match=f"the {size - 1:,}-byte limit"):
        read_bounded_text(path, max_bytes=size - 1)
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, str(size - 1))
    with pytest.raises(InputFileError, match="limit"):
        read_bounded_text(path)
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, "lots")
    with pytest.raises(InputFileError, match=f"{MAX_INPUT_BYTES_ENV}='lots' is not a positive"):
        read_bounded_text(path)


def test_the_read_never_asks_for_more_than_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the size on disk looks fine, at most cap + 1 bytes are ever requested."""
    path = tmp_path / "doc.vega.yaml"
    path.write_text("x" * 10_000)
    requested: list[int] = []
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        requested.append(n)
        return real_read(fd, n)

    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:  # pretend the file is small (it grew after)
        info = list(real_fstat(fd))
        info[6] = 10  # st_size
        return os.stat_result(info)

    monkeypatch.setattr(os, "read", read)
    monkeypatch.setattr(os, "fstat", fstat)
    with pytest.raises(InputFileError, match="limit"):
        read_bounded_text(path, max_bytes=100)
    assert sum(requested) <= 101


def test_not_utf8_and_missing_are_clear(tmp_path: Path) -> None:
    """Bytes that are not UTF-8, and a missing file, are InputFileErrors saying what to do."""
    path = tmp_path / "latin.json"
    path.write_bytes(b"caf\xe9")
    with pytest.raises(InputFileError, match=r"not UTF-8 text .*at byte 3.*save it as UTF-8"):
        read_bounded_text(path, what="--input file")
    with pytest.raises(InputFileError, match=r"nope\.json: --input file not found; check"):
        read_bounded_text(tmp_path / "nope.json", what="--input file")


# -- every reader of a user's file uses it --------------------------------------------------


async def test_dsl_loader_refuses_what_is_not_a_small_regular_file(
    fifo: Path, tmp_path: Path
) -> None:
    """load_file and validate_file refuse a FIFO, /dev/zero, a directory and a big file."""
    for path in (fifo, Path("/dev/zero"), tmp_path, _big(tmp_path)):
        for read in (load_file, validate_file):
            with pytest.raises(InputFileError, match=str(path)):
                await _in_thread(lambda read=read, path=path: read(path))  # type: ignore[misc]


async def test_skill_files_are_bounded(tmp_path: Path) -> None:
    """A skill "file" that is a FIFO or over the cap is a SkillError, not a hang."""
    pipe = tmp_path / "pipe.skill.md"
    os.mkfifo(pipe)
    with pytest.raises(SkillError, match="FIFO"):
        await _in_thread(lambda: read_skill(pipe))
    big = tmp_path / "big.skill.md"
    big.write_text("---\nname: big\n---\n" + "x" * 100)
    with pytest.raises(SkillError, match="limit"):
        read_skill(big, max_bytes=50)


async def test_a_billion_laughs_document_is_refused_fast() -> None:
    """Aliases that would expand to 387 million values are one clear error, at once."""
    diagnostics = await _in_thread(lambda: validate_text(LAUGHS, file="laughs.vega.yaml"))
    assert isinstance(diagnostics, list)
    (error,) = [d for d in diagnostics if d.severity == "error"]
    assert "YAML aliases expand the document by more than 100,000 values" in error.message
    assert error.source.line > 0  # it points at an anchor
    with pytest.raises(DSLError, match="alias"):
        await _in_thread(lambda: load_file_text(LAUGHS))


def load_file_text(text: str) -> object:
    from vega_trio.dsl import load_document

    return load_document(text)


async def test_a_billion_laughs_skill_is_refused_fast() -> None:
    """The same limit guards a skill file's front matter."""
    from vega_trio.skills import parse_skill

    front = LAUGHS.split("agents:")[0] + "name: laughs\n"
    with pytest.raises(SkillError, match="alias"):
        await _in_thread(lambda: parse_skill(f"---\n{front}---\nbody\n"))


def test_moderate_aliases_are_fine() -> None:
    """Ordinary reuse of an anchor is within the limit; a recursive alias is not counted."""
    text = "settings: {}\nagents:\n" + "".join(
        f"  a{i}: {{system: hi, retry: *r}}\n"
        if i
        else "  a0: {system: hi, retry: &r {max_attempts: 3}}\n"
        for i in range(200)
    )
    assert [d for d in validate_text(text) if "alias" in d.message] == []
    from ruamel.yaml import YAML

    assert check_alias_expansion(YAML(typ="safe", pure=True).compose("x: &a [1, *a]\n")) is None


# -- the CLI: one line, exit 2, nothing ran ----------------------------------------------


def _one_line_exit_2(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("vega-trio: error: "), result.output
    assert expected in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["validate", "run", "repl"])
def test_cli_refuses_a_fifo_and_dev_zero(command: str, fifo: Path) -> None:
    """validate, run and repl of a FIFO or /dev/zero: one line, exit 2 (no hang, no
    MemoryError)."""
    extra = ["--llm", "scripted"] if command != "validate" else []
    _one_line_exit_2([command, str(fifo), *extra], "FIFO")
    _one_line_exit_2([command, "/dev/zero", *extra], "character device")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_refuses_a_file_over_the_cap(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file over the cap (default, or VEGA_MAX_INPUT_BYTES) is one line and exit 2;
    raising the cap lets the same file through."""
    _one_line_exit_2([command, str(_big(tmp_path))], "4,194,304-byte limit")
    small = tmp_path / "small.vega.yaml"
    small.write_text(VALID)
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, "20")
    _one_line_exit_2([command, str(small)], "20-byte limit")
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, "100000")
    assert CliRunner().invoke(main, ["validate", str(small)]).exit_code == 0


def test_cli_input_json_is_bounded(tmp_path: Path, fifo: Path) -> None:
    """run --input of a FIFO, /dev/zero or a file over the cap: one line, exit 2."""
    doc = tmp_path / "doc.vega.yaml"
    doc.write_text(VALID)
    run = ["run", str(doc), "--llm", "scripted", "--input"]
    _one_line_exit_2([*run, str(fifo)], "--input file is a FIFO")
    _one_line_exit_2([*run, "/dev/zero"], "--input file is a character device")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"x": "y" * 100}))
    os.truncate(big, DEFAULT_MAX_INPUT_BYTES + 1)
    _one_line_exit_2([*run, str(big)], "limit")


def test_cli_a_directory_exits_2(tmp_path: Path) -> None:
    """A directory given as FILE exits 2 (refused before anything runs)."""
    assert CliRunner().invoke(main, ["validate", str(tmp_path)]).exit_code == 2


def test_cli_billion_laughs(tmp_path: Path) -> None:
    """run refuses an alias bomb with exit 2 (nothing ran); validate reports it as the
    document's error (exit 1), pointing at the anchor."""
    path = tmp_path / "laughs.vega.yaml"
    path.write_text(LAUGHS)
    ran = CliRunner().invoke(main, ["run", str(path), "--llm", "scripted"])
    assert ran.exit_code == 2 and "YAML aliases expand the document" in ran.output
    checked = CliRunner().invoke(main, ["validate", str(path)])
    assert checked.exit_code == 1 and "YAML aliases expand the document" in checked.output


@pytest.mark.slow
async def test_the_real_command_refuses_unbounded_inputs(tmp_path: Path, fifo: Path) -> None:
    """End to end, `vega-trio validate` of /dev/zero, a FIFO and a 50 MB file each end
    within seconds with one line on stdout and exit 2 (was: MemoryError, a hang, 34 s)."""
    for path, expected in (
        (Path("/dev/zero"), "character device"),
        (fifo, "FIFO"),
        (_big(tmp_path), "limit"),
    ):
        with trio.fail_after(30):
            done = await trio.run_process(
                [sys.executable, "-m", "vega_trio", "validate", str(path)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        lines = done.stdout.decode().splitlines()
        assert done.returncode == 2, done
        assert len(lines) == 1 and expected in lines[0] and not done.stderr, done
