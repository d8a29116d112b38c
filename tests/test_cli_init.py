"""``vega-trio init``: the Anthropic key checked with a 1-token request against the fake
Anthropic server, the Telegram settings, and the env file written privately and
atomically, keeping what else it holds (SPEC §9)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result

from vega_trio.cli import main
from vega_trio.testing import FakeResponse, open_fake_anthropic_server

from .test_cli_env import presented_key

ROOT = Path(__file__).resolve().parents[1]
GOOD = "sk-ant-api03-the-good-key"
BAD = "sk-ant-api03-a-wrong-key"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """Every CLI start loads the env file into os.environ: undo that after each test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty $VEGA_HOME (not created yet)."""
    return tmp_path / "vega-home"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _seed(home: Path, text: str) -> None:
    """An env file with ``text`` (mode 0600) in a new ``home``."""
    home.mkdir()
    (home / "env").write_text(text)
    (home / "env").chmod(0o600)


def _closed_port_url() -> str:
    """The URL of a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _init(home: Path, base_url: str, args: list[str], stdin: str = "") -> Result:
    """Run `vega-trio init ARGS` through click's runner, in a thread (it runs its own
    trio.run for the check) while this test's Trio run serves the fake server."""
    env = {"VEGA_HOME": str(home), "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": None}
    with trio.fail_after(60):
        return await trio.to_thread.run_sync(
            partial(CliRunner().invoke, main, ["init", *args], input=stdin, env=env)
        )


async def test_a_good_key_is_checked_with_one_token_and_saved_privately(home: Path) -> None:
    """The key typed at the (hidden) prompt is checked with a max_tokens=1 request, then
    written to $VEGA_HOME/env with mode 0600 in a 0700 directory; it is never printed."""
    async with open_fake_anthropic_server(
        responder=lambda _: FakeResponse.text("p"), api_key=GOOD
    ) as server:
        result = await _init(home, server.base_url, [], f"{GOOD}\n\n")
    assert result.exit_code == 0, result.output
    assert (home / "env").read_text() == f"ANTHROPIC_API_KEY={GOOD}\n"
    assert _mode(home / "env") == 0o600
    assert _mode(home) == 0o700
    assert [request.body["max_tokens"] for request in server.requests] == [1]
    assert presented_key(server.requests[0]) == GOOD
    assert "The key works." in result.stdout
    assert GOOD not in result.output


async def test_a_refused_key_writes_nothing(home: Path) -> None:
    """A key the API refuses (401) is a clear error, exit 2, no file, no Telegram
    questions, and the key is not printed."""
    async with open_fake_anthropic_server(api_key=GOOD) as server:
        result = await _init(home, server.base_url, [], f"{BAD}\n")
    assert result.exit_code == 2, result.output
    assert not (home / "env").exists()
    assert "the Anthropic API refused the key" in result.stderr
    assert "nothing was written" in result.stderr
    assert "Telegram" not in result.output
    assert BAD not in result.output


async def test_an_unreachable_api_asks_whether_to_save_anyway(home: Path) -> None:
    """No answer from the API: the user is told so and asked; 'n' writes nothing
    (exit 1), 'y' saves the unchecked key."""
    url = _closed_port_url()
    declined = await _init(home, url, [], f"{GOOD}\nn\n")
    assert declined.exit_code == 1, declined.output
    assert "could not check the key: the API did not answer" in declined.stderr
    assert not (home / "env").exists()
    accepted = await _init(home, url, [], f"{GOOD}\ny\n\n")
    assert accepted.exit_code == 0, accepted.output
    assert (home / "env").read_text() == f"ANTHROPIC_API_KEY={GOOD}\n"
    assert GOOD not in declined.output + accepted.output


async def test_without_input_an_unchecked_key_is_not_saved_unless_no_check(home: Path) -> None:
    """--no-input cannot ask: an unreachable API writes nothing and names --no-check;
    with --no-check no request is made at all."""
    failed = await _init(home, _closed_port_url(), ["--no-input", "--anthropic-key", GOOD])
    assert failed.exit_code == 1, failed.output
    assert "--no-check" in failed.stderr
    assert not (home / "env").exists()
    async with open_fake_anthropic_server(api_key=GOOD) as server:
        saved = await _init(
            home, server.base_url, ["--no-input", "--no-check", "--anthropic-key", BAD]
        )
    assert saved.exit_code == 0, saved.output
    assert server.requests == []
    assert (home / "env").read_text() == f"ANTHROPIC_API_KEY={BAD}\n"


async def test_telegram_settings_and_other_lines_are_kept(home: Path) -> None:
    """Options set the key, the bot token and the allowed ids (normalised); the file's
    comments and other keys stay, a key already there is replaced in place."""
    _seed(home, "# mine\nOTHER=1\nTELEGRAM_ALLOWED_USERS=9\n")
    args = ["--no-input", "--no-check", "--anthropic-key", GOOD, "--telegram-token", TOKEN]
    result = await _init(home, _closed_port_url(), [*args, "--telegram-users", "11, 22 22"])
    assert result.exit_code == 0, result.output
    assert (home / "env").read_text() == (
        f"# mine\nOTHER=1\nTELEGRAM_ALLOWED_USERS=11,22\nANTHROPIC_API_KEY={GOOD}\n"
        f"TELEGRAM_BOT_TOKEN={TOKEN}\n"
    )
    assert "kept 1 other setting(s)" in result.stdout
    assert TOKEN not in result.output and GOOD not in result.output


async def test_interactive_telegram_questions(home: Path) -> None:
    """Enter skips the Anthropic key; a token typed (hidden) leads to the question for
    the allowed ids; without ids the user is told the bot serves nobody yet."""
    with_ids = await _init(home, _closed_port_url(), [], f"\n{TOKEN}\n42\n")
    assert with_ids.exit_code == 0, with_ids.output
    assert (home / "env").read_text() == f"TELEGRAM_BOT_TOKEN={TOKEN}\nTELEGRAM_ALLOWED_USERS=42\n"
    assert TOKEN not in with_ids.output
    (home / "env").unlink()
    without = await _init(home, _closed_port_url(), [], f"\n{TOKEN}\n\n")
    assert without.exit_code == 0, without.output
    assert "serves nobody" in without.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--telegram-token", "not-a-token"], "not a Telegram bot token"),
        (["--telegram-token", TOKEN, "--telegram-users", "12,@me"], "'@me' is not a Telegram"),
        (["--anthropic-key", "-", "--telegram-token", "-"], "only one option can read stdin"),
    ],
)
async def test_invalid_values_write_nothing(home: Path, args: list[str], message: str) -> None:
    """A malformed bot token or user id, or two options reading stdin: exit 2, nothing
    written, the bad token not printed."""
    result = await _init(home, _closed_port_url(), ["--no-input", "--no-check", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (home / "env").exists()
    assert "not-a-token" not in result.output


async def test_enter_keeps_what_the_file_has(home: Path) -> None:
    """Answering Enter everywhere changes nothing (and makes no request)."""
    original = f"ANTHROPIC_API_KEY={GOOD}\nTELEGRAM_BOT_TOKEN={TOKEN}\n"
    _seed(home, original)
    async with open_fake_anthropic_server(api_key=GOOD) as server:
        result = await _init(home, server.base_url, [], "\n\n\n")
    assert result.exit_code == 0, result.output
    assert "Enter keeps the current one" in result.stdout
    assert "nothing to change" in result.stdout
    assert (home / "env").read_text() == original
    assert server.requests == []


async def test_stdin_ending_mid_questions_writes_nothing(home: Path) -> None:
    """Stdin ending (or Ctrl-C) during the questions: nothing written, a line saying so."""
    result = await _init(home, _closed_port_url(), ["--no-check"], "")
    assert result.exit_code == 130, result.output
    assert "nothing was written" in result.stderr
    assert not (home / "env").exists()


@pytest.mark.slow
async def test_a_script_inits_from_stdin_and_run_uses_the_key(home: Path) -> None:
    """Real subprocesses: `init --no-input --anthropic-key -` reads the key from stdin,
    checks and saves it; a following `run` sends it without ANTHROPIC_API_KEY set."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "OPENAI_", "VEGA_"))
    }
    async with open_fake_anthropic_server(
        responder=lambda _: FakeResponse.text("hello back"), api_key=GOOD
    ) as server:
        env.update(VEGA_HOME=str(home), PYTHONPATH=str(ROOT), ANTHROPIC_BASE_URL=server.base_url)
        with trio.fail_after(60):
            init = await trio.run_process(
                [sys.executable, "-m", "vega_trio", "init", "--no-input", "--anthropic-key", "-"],
                stdin=f"{GOOD}\n".encode(),
                env=env,
                capture_stdout=True,
                capture_stderr=True,
            )
            run = await trio.run_process(
                [
                    sys.executable,
                    "-m",
                    "vega_trio",
                    "run",
                    str(ROOT / "examples" / "simple-agent.vega.yaml"),
                    "--task",
                    "hi",
                ],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
            )
    assert init.returncode == 0, init.stderr
    assert run.returncode == 0, run.stderr
    assert b"hello back" in run.stdout
    assert [presented_key(request) for request in server.requests] == [GOOD, GOOD]
    assert GOOD.encode() not in init.stdout + init.stderr + run.stdout + run.stderr
    assert _mode(home / "env") == 0o600
