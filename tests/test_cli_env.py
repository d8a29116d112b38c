"""``$VEGA_HOME/env``: how it is read, what loading it does to the environment, and that
every CLI start loads it (SPEC §9)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from vega_trio._cli._env import (
    env_file,
    format_assignment,
    load_env_file,
    parse_env,
    update_env_file,
    vega_home,
)
from vega_trio.cli import main
from vega_trio.testing import FakeResponse, RecordedRequest, open_fake_anthropic_server

ROOT = Path(__file__).resolve().parents[1]

SECRET = "sk-ant-api03-do-not-print-me"


def presented_key(request: RecordedRequest) -> str | None:
    """The API key a request to the fake server carried (either header the SDK uses)."""
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def _load(path: Path, environ: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    environ = {} if environ is None else environ
    warnings: list[str] = []
    load_env_file(environ, warn=warnings.append, path=path)
    return environ, warnings


def test_the_file_is_vega_home_env_else_dot_vega_in_home() -> None:
    """$VEGA_HOME/env when VEGA_HOME is set, else ~/.vega/env."""
    assert env_file({"VEGA_HOME": "/srv/vega"}) == Path("/srv/vega/env")
    assert env_file({}) == Path.home() / ".vega" / "env"
    assert vega_home({"VEGA_HOME": ""}) == Path.home() / ".vega"


def test_lines_are_read_like_a_shell_would(tmp_path: Path) -> None:
    """Comments, blank lines, `export `, spaces around '=', single quotes (literal),
    double quotes (escapes), inline comments after bare values and empty values."""
    path = _write(
        tmp_path / "env",
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "  export EXPORTED=yes  \n"
        "SPACED = around equals\n"
        "SINGLE='it''s $HOME \\n literal'\n"
        "SINGLE2='a # not a comment'   # but this is\n"
        'DOUBLE="tab\\there\\nnew \\"q\\" back\\\\slash \\$HOME \\x"\n'
        'HASH="a#b" # comment\n'
        "BARE=a#b # comment\n"
        "EMPTY=\n"
        "URL=postgresql://u:p@h/db?x=1\n",
    )
    environ, warnings = _load(path)
    assert warnings == [
        f"{path}:6: SINGLE: text after the closing quote (quote the whole value); line skipped"
    ]
    assert environ == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "around equals",
        "SINGLE2": "a # not a comment",
        "DOUBLE": 'tab\there\nnew "q" back\\slash $HOME \\x',
        "HASH": "a#b",
        "BARE": "a#b",
        "EMPTY": "",
        "URL": "postgresql://u:p@h/db?x=1",
    }


def test_malformed_lines_are_reported_with_file_and_line_and_skipped(tmp_path: Path) -> None:
    """Each bad line is one warning FILE:LINE (never its text: it may hold a secret); the
    good lines around it still load."""
    path = _write(
        tmp_path / "env",
        f"GOOD1=one\n{SECRET}\n1BAD={SECRET}\nOPEN=\"{SECRET}\nQUOTE='{SECRET}\nGOOD2=two\n",
    )
    environ, warnings = _load(path)
    assert environ == {"GOOD1": "one", "GOOD2": "two"}
    assert [w.split(": ", 1)[0] for w in warnings] == [f"{path}:{n}" for n in (2, 3, 4, 5)]
    assert "no '='" in warnings[0]
    assert "not a variable name" in warnings[1]
    assert "OPEN: the double quote is not closed" in warnings[2]
    assert "QUOTE: the single quote is not closed" in warnings[3]
    assert all(w.endswith("line skipped") and SECRET not in w for w in warnings)


def test_variables_already_set_win_and_a_later_line_wins_over_an_earlier(tmp_path: Path) -> None:
    """The environment wins over the file (an empty value counts as set); within the file
    the last assignment of a name wins."""
    path = _write(tmp_path / "env", "A=file\nB=file\nC=first\nC=second\nD=file\n")
    environ, _ = _load(path, {"A": "shell", "D": ""})
    assert environ == {"A": "shell", "B": "file", "C": "second", "D": ""}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_file_others_may_access_is_warned_about(tmp_path: Path, mode: int) -> None:
    """Group or others having any access is a warning naming the mode and the fix; the
    file still loads."""
    path = _write(tmp_path / "env", "A=1\n", mode)
    environ, warnings = _load(path)
    assert environ == {"A": "1"}
    assert warnings == [
        f"{path}: the env file holds secrets but group or others may access it "
        f"(mode {mode:04o}); run: chmod 600 {path}"
    ]


def test_a_private_file_or_no_file_is_silent(tmp_path: Path) -> None:
    """Mode 0600 gives no warning; a missing file is not an error."""
    assert _load(_write(tmp_path / "env", "A=1\n", 0o600)) == ({"A": "1"}, [])
    assert _load(tmp_path / "missing" / "env") == ({}, [])


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "not a regular file"),
        (b"A=\xff\xfe\n", "not UTF-8"),
        (b"A=" + b"x" * 300_000 + b"\n", "larger than"),
    ],
)
def test_an_unreadable_file_is_a_warning_not_a_crash(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    """A directory, binary junk or a huge file in the env file's place: one warning,
    nothing loaded, the command goes on."""
    path = tmp_path / "env"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
        path.chmod(0o600)
    environ, warnings = _load(path)
    assert environ == {}
    assert len(warnings) == 1 and str(path) in warnings[0] and why in warnings[0]


@given(st.text(alphabet=st.characters(blacklist_characters="\0", codec="utf-8")))
def test_a_written_value_reads_back_the_same(value: str) -> None:
    """format_assignment quotes whatever a value holds so parse_env returns it intact."""
    (line,) = parse_env(format_assignment("KEY", value))
    assert line.problem is None
    assert (line.key, line.value) == ("KEY", value)


def test_update_keeps_other_lines_and_rewrites_a_key_in_place(tmp_path: Path) -> None:
    """Comments, other keys and malformed lines stay; a key set again is rewritten where
    it first was and its duplicates go (a later one would win); new keys are appended;
    the file ends 0600."""
    path = _write(
        tmp_path / "env",
        "# mine\nexport OTHER='x y'\nANTHROPIC_API_KEY=old\nnot a line\nANTHROPIC_API_KEY=older\n",
        0o644,
    )
    kept = update_env_file(path, {"ANTHROPIC_API_KEY": "new key", "TELEGRAM_BOT_TOKEN": "1:a"})
    assert kept == ["OTHER"]
    assert path.read_text() == (
        "# mine\nexport OTHER='x y'\nANTHROPIC_API_KEY=\"new key\"\nnot a line\n"
        "TELEGRAM_BOT_TOKEN=1:a\n"
    )
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["env"]  # no temporary file left


def test_update_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    """An env file that is a symbolic link (dotfiles) stays one; its target is updated."""
    target = _write(tmp_path / "dotfiles" / "vega.env", "A=1\n", 0o644)
    link = tmp_path / "home" / "env"
    link.parent.mkdir()
    link.symlink_to(target)
    update_env_file(link, {"B": "2"})
    assert link.is_symlink()
    assert target.read_text() == "A=1\nB=2\n"
    assert target.stat().st_mode & 0o777 == 0o600


def test_no_home_directory_means_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without VEGA_HOME and without a home directory (HOME unset, no passwd entry)
    nothing is loaded and nothing is raised."""

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    warnings: list[str] = []
    assert load_env_file({}, warn=warnings.append) == []
    assert warnings == []


def test_update_creates_a_private_directory(tmp_path: Path) -> None:
    """A missing $VEGA_HOME is created 0700 and the file 0600, whatever the umask."""
    old = os.umask(0)
    try:
        path = tmp_path / "home" / "env"
        update_env_file(path, {"A": "1"})
    finally:
        os.umask(old)
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600


def test_every_cli_start_loads_the_file_and_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vega-trio` loads $VEGA_HOME/env before the command runs (VEGA_LLM from the file
    picks the backend of `run`) and prints its warnings on stderr."""
    home = tmp_path / "vh"
    _write(home / "env", "VEGA_LLM=nonsense\nbroken line\n", 0o644)
    monkeypatch.setenv("VEGA_HOME", str(home))
    for name in ("VEGA_LLM", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    # NOTE: loading writes to os.environ; monkeypatch restores VEGA_LLM after the test.
    monkeypatch.setenv("VEGA_LLM", "placeholder")
    monkeypatch.delenv("VEGA_LLM")
    result = CliRunner().invoke(main, ["run", str(ROOT / "examples" / "simple-agent.vega.yaml")])
    assert result.exit_code == 2, result.output
    assert f"vega-trio: warning: {home / 'env'}:2: expected KEY=VALUE" in result.stderr
    assert "group or others may access it (mode 0644)" in result.stderr
    assert "VEGA_LLM='nonsense' is not a model backend" in result.stderr


@pytest.mark.slow
async def test_the_anthropic_key_and_url_come_from_the_file_unless_set(tmp_path: Path) -> None:
    """A real `vega-trio run` subprocess talks to the server and with the key the env
    file names; a key set in the shell wins over the file's."""
    home = tmp_path / "vh"
    async with open_fake_anthropic_server(responder=lambda _: FakeResponse.text("hi")) as server:
        _write(
            home / "env",
            f"export ANTHROPIC_BASE_URL={server.base_url}\nANTHROPIC_API_KEY='{SECRET}'\n",
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ANTHROPIC_", "OPENAI_", "VEGA_"))
        }
        env.update(VEGA_HOME=str(home), PYTHONPATH=str(ROOT))
        command = [
            sys.executable,
            "-m",
            "vega_trio",
            "run",
            str(ROOT / "examples" / "simple-agent.vega.yaml"),
            "--task",
            "hello",
        ]
        with trio.fail_after(60):
            first = await trio.run_process(
                command, env=env, capture_stdout=True, capture_stderr=True
            )
            second = await trio.run_process(
                command,
                env={**env, "ANTHROPIC_API_KEY": "sk-from-the-shell"},
                capture_stdout=True,
                capture_stderr=True,
            )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert [presented_key(r) for r in server.requests] == [SECRET, "sk-from-the-shell"]
    assert b"hi" in first.stdout
