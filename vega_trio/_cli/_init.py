"""``vega-trio init``: write the Anthropic key (checked first) and the Telegram settings
to ``$VEGA_HOME/env`` (default ``~/.vega/env``), which every command loads at start.

Secrets are read without echo and never printed back; the file is written atomically
with mode 0600, and keeps whatever else it holds.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal, TextIO

import attrs
import click
import trio

from .._errors import ErrorClass, InputFileError, LLMError
from .._files import read_bounded_text
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, write
from ._env import ENV_FILE_MAX_BYTES, env_file, parse_env, update_env_file

__all__ = [
    "ANTHROPIC_KEY",
    "KeyCheck",
    "TELEGRAM_TOKEN",
    "TELEGRAM_USERS",
    "check_anthropic_key",
    "init_command",
    "parse_user_ids",
]

ANTHROPIC_KEY: Final = "ANTHROPIC_API_KEY"
TELEGRAM_TOKEN: Final = "TELEGRAM_BOT_TOKEN"
TELEGRAM_USERS: Final = "TELEGRAM_ALLOWED_USERS"

#: How long the key check may take (one request of one token).
CHECK_TIMEOUT: Final = 30.0

# What BotFather hands out: the bot's numeric id, ':', then ~35 URL-safe characters.
_BOT_TOKEN: Final = re.compile(r"[0-9]{3,}:[A-Za-z0-9_-]{20,}")


@attrs.frozen
class KeyCheck:
    """What the 1-token request said about a key.

    Attributes:
        verdict: ``ok`` (answered), ``accepted`` (the key authenticated but the call
            failed for another reason: no credit, a rate limit...), ``refused`` (the key
            is wrong) or ``unreachable`` (no answer: network, timeout, server error).
        detail: the one-line cause when it was not ``ok`` (redacted).
    """

    verdict: Literal["ok", "accepted", "refused", "unreachable"]
    detail: str = ""


async def check_anthropic_key(key: str, *, seconds: float = CHECK_TIMEOUT) -> KeyCheck:
    """Ask for one output token with ``key`` through :class:`~vega_trio.llm.AnthropicLLM`
    (at ``ANTHROPIC_BASE_URL`` when set, else the API), allowing it ``seconds``."""
    from ..llm import DEFAULT_MODEL, AnthropicLLM, LLMRequest, Message

    request = LLMRequest(model=DEFAULT_MODEL, messages=(Message.user("ping"),), max_tokens=1)
    try:
        async with AnthropicLLM(api_key=key, timeout=seconds) as llm:
            await llm.generate(request)
    except LLMError as exc:
        from ._common import one_line_cause

        detail = one_line_cause(exc)
        if exc.error_class is ErrorClass.AUTHENTICATION:
            return KeyCheck("refused", detail)
        if exc.status_code is None or exc.status_code >= 500 or exc.status_code == 408:
            return KeyCheck("unreachable", detail)
        return KeyCheck("accepted", detail)
    return KeyCheck("ok")


def parse_user_ids(text: str) -> str:
    """Telegram user ids as ``TELEGRAM_ALLOWED_USERS`` holds them: ``"123,456"``.

    Raises:
        ValueError: a part is not a number.
    """
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    bad = [part for part in parts if not part.isdigit()]
    if bad:
        raise ValueError(
            f"{bad[0]!r} is not a Telegram user id (a number such as 123456789; the bot "
            "tells users theirs when they write to it)"
        )
    return ",".join(dict.fromkeys(parts))


def _read_existing(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text = read_bounded_text(path, what="env file", max_bytes=ENV_FILE_MAX_BYTES)
    return {line.key: line.value for line in parse_env(text) if line.key is not None}


def _prompt_text(question: str) -> str:
    answer: str = click.prompt(question, default="", show_default=False)
    return answer


def _ask_secret(label: str, current: bool) -> str:
    keep = "Enter keeps the current one" if current else "Enter skips"
    answer: str = click.prompt(
        f"{label} ({keep}; input is hidden)",
        default="",
        show_default=False,
        hide_input=True,
    )
    return answer.strip()


@attrs.define
class _Given:
    """An option as given: ``None`` when absent (then asked for, unless --no-input)."""

    anthropic_key: str | None
    telegram_token: str | None
    telegram_users: str | None


def _read_dash(given: _Given, stdin: TextIO) -> _Given:
    """Options given as ``-`` take the first line of stdin (a secret stays out of
    ``ps`` and the shell history)."""
    dashes = [
        name
        for name, value in (
            ("--anthropic-key", given.anthropic_key),
            ("--telegram-token", given.telegram_token),
            ("--telegram-users", given.telegram_users),
        )
        if value == "-"
    ]
    if len(dashes) > 1:
        raise click.UsageError(f"only one option can read stdin ('-'); got {' and '.join(dashes)}")
    if not dashes:
        return given
    line = stdin.readline().strip()
    if dashes[0] == "--anthropic-key":
        return attrs.evolve(given, anthropic_key=line)
    if dashes[0] == "--telegram-token":
        return attrs.evolve(given, telegram_token=line)
    return attrs.evolve(given, telegram_users=line)


def init_command(
    *,
    anthropic_key: str | None,
    telegram_token: str | None,
    telegram_users: str | None,
    check: bool,
    no_input: bool,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """What ``vega-trio init`` does (prompts through click, so a ``CliRunner`` drives it).

    Each value not given as an option is asked for (a secret without echo; Enter keeps
    what the file has); with ``no_input`` nothing is asked. A new Anthropic key is
    checked with a 1-token request unless ``check`` is false: a refused key writes
    nothing; when the API cannot be reached the user is asked whether to save it anyway
    (with ``no_input``: not saved).

    Returns:
        0 when the file was written (or nothing changed), 1 when nothing was written
        because the key could not be checked (or the user said no, or the file could not
        be written), 2 for a refused key or a value that is not valid (nothing written),
        130 for Ctrl-C.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    path = env_file(env)
    given = _read_dash(_Given(anthropic_key, telegram_token, telegram_users), sys.stdin)
    try:
        existing = _read_existing(path)
    except InputFileError as exc:
        write(err, f"vega-trio: error: {exc}; fix or move it, then run vega-trio init again")
        return EXIT_INVALID
    try:
        return _init(given, existing, path, check=check, no_input=no_input, out=out, err=err)
    except click.Abort:
        # NOTE: click turns both Ctrl-C and the end of stdin into Abort while prompting.
        write(
            err,
            "vega-trio: init stopped before the end (Ctrl-C, or stdin ended while a "
            f"question was asked); nothing was written to {path}. In a script, pass the "
            "values as options with --no-input",
        )
        return EXIT_INTERRUPTED


def _init(
    given: _Given,
    existing: Mapping[str, str],
    path: Path,
    *,
    check: bool,
    no_input: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    updates: dict[str, str] = {}
    if not no_input:
        write(out, f"vega-trio init: writing {path}")

    key = given.anthropic_key
    if key is None and not no_input:
        key = _ask_secret("Anthropic API key", ANTHROPIC_KEY in existing)
    key = (key or "").strip()
    if key:
        if check:
            status = _check(key, no_input=no_input, out=out, err=err, path=path)
            if status is not None:
                return status
        updates[ANTHROPIC_KEY] = key

    token = given.telegram_token
    if token is None and not no_input:
        token = _ask_secret(
            "Telegram bot token from @BotFather (optional)", TELEGRAM_TOKEN in existing
        )
    token = (token or "").strip()
    if token:
        if not _BOT_TOKEN.fullmatch(token):
            write(
                err,
                "vega-trio: error: that is not a Telegram bot token (BotFather's look like "
                f"123456789:AA... : digits, ':', then letters, digits, - and _); nothing "
                f"was written to {path}",
            )
            return EXIT_INVALID
        updates[TELEGRAM_TOKEN] = token

    users = given.telegram_users
    if users is None and not no_input and (token or TELEGRAM_TOKEN in existing):
        current = existing.get(TELEGRAM_USERS)
        users = _prompt_text(
            "Telegram user ids allowed to talk to the bot, comma-separated "
            + (f"(Enter keeps {current})" if current else "(Enter: nobody yet)")
        )
    if users and users.strip():
        try:
            updates[TELEGRAM_USERS] = parse_user_ids(users)
        except ValueError as exc:
            write(err, f"vega-trio: error: {TELEGRAM_USERS}: {exc}; nothing was written to {path}")
            return EXIT_INVALID

    if not updates:
        write(out, f"vega-trio init: nothing to change; {path} left as it was")
        return EXIT_OK
    try:
        kept = update_env_file(path, updates)
    except (OSError, InputFileError) as exc:
        write(err, f"vega-trio: error: cannot write {path}: {exc}")
        return EXIT_FAILED
    names = ", ".join(updates)
    others = f"; kept {len(kept)} other setting(s)" if kept else ""
    write(out, f"vega-trio init: wrote {names} to {path} (mode 0600){others}")
    if TELEGRAM_TOKEN in updates and not (
        updates.get(TELEGRAM_USERS) or existing.get(TELEGRAM_USERS)
    ):
        write(
            out,
            f"vega-trio init: no {TELEGRAM_USERS} yet: the bot serves nobody and tells each "
            "user their id; add ids with vega-trio init --telegram-users ID,...",
        )
    return EXIT_OK


def _check(key: str, *, no_input: bool, out: TextIO, err: TextIO, path: Path) -> int | None:
    """Check ``key``; ``None`` to go on, else the exit status (nothing written)."""
    if not no_input:
        write(out, "Checking the key with a 1-token request…")
    result = trio.run(check_anthropic_key, key)
    if result.verdict == "ok":
        write(out, "The key works.")
        return None
    if result.verdict == "accepted":
        write(out, f"The key was accepted, but the call failed: {result.detail}")
        return None
    if result.verdict == "refused":
        write(
            err,
            f"vega-trio: error: the Anthropic API refused the key ({result.detail}); "
            f"nothing was written to {path}. Copy the key again from "
            "https://console.anthropic.com/settings/keys",
        )
        return EXIT_INVALID
    write(err, f"vega-trio: could not check the key: the API did not answer ({result.detail})")
    if no_input:
        write(
            err,
            f"vega-trio: nothing was written to {path}; run again when the network is "
            "back, or pass --no-check to save the key without checking it",
        )
        return EXIT_FAILED
    if click.confirm("Save the key anyway, unchecked?", default=False):
        return None
    write(out, f"vega-trio init: nothing was written to {path}")
    return EXIT_FAILED
