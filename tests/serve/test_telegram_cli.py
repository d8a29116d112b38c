"""`vega-trio serve` runs the Telegram bot the environment describes (SPEC §10.6):
TELEGRAM_BOT_TOKEN, TELEGRAM_AGENT, TELEGRAM_ALLOWED_USERS (and TELEGRAM_API_URL)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trio

from vega_trio._cli._serve import serve_command
from vega_trio.testing import open_fake_telegram_server

ROOT = Path(__file__).resolve().parents[2]


async def test_serve_command_refuses_an_unusable_telegram_variable() -> None:
    """A malformed TELEGRAM_ALLOWED_USERS is a usage error (exit 2) naming the variable,
    before anything starts."""
    err = io.StringIO()
    env = {"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_ALLOWED_USERS": "alice"}
    status = await serve_command(None, addr="127.0.0.1:0", llm="scripted", env=env, err=err)
    assert status == 2
    assert "TELEGRAM_ALLOWED_USERS: 'alice' is not a Telegram user id" in err.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["assistant", None])
async def test_serve_subprocess_answers_telegram_users_from_the_environment(
    agent: str | None,
) -> None:
    """`vega-trio serve` with TELEGRAM_* set polls the Bot API, answers an allowed user
    through TELEGRAM_AGENT — Hermes, whom `serve` adds, when it is unset — says so on stderr
    without the token, and stops on SIGINT."""
    async with open_fake_telegram_server(token="987654:cli-secret-token-value") as telegram:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_URL": telegram.api_url,
            "TELEGRAM_ALLOWED_USERS": "42",
        }
        env.pop("VEGA_TOKEN", None)
        env.pop("TELEGRAM_AGENT", None)
        if agent is not None:
            env["TELEGRAM_AGENT"] = agent
        proc = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "vega_trio",
                "serve",
                "--addr=127.0.0.1:0",
                "--no-db",
                "--llm=scripted",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tempfile.mkdtemp(prefix="vega-serve-"),
        )
        try:
            telegram.add_message(42, "Hello from Telegram")
            with trio.fail_after(30):
                await telegram.wait_for_sent(1)
            assert "Hello from Telegram" in telegram.sent[0].text  # the scripted echo
            proc.send_signal(signal.SIGINT)
            assert proc.stderr is not None
            with trio.fail_after(30):
                stderr = b""
                while chunk := await proc.stderr.receive_some():
                    stderr += chunk
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                with trio.move_on_after(10, shield=True):
                    await proc.wait()
    text = stderr.decode()
    assert f"Telegram bot on (agent '{agent or 'hermes'}', 1 allowed user)" in text
    assert "cli-secret-token-value" not in text
