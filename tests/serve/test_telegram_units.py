"""The Telegram bot's pure parts: splitting replies (Hypothesis), its configuration from
the environment, and the fake Bot API's own rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega_trio.serve import ServeConfig, TelegramConfig
from vega_trio.serve._telegram import MAX_MESSAGE_LENGTH, split_message, utf16_length
from vega_trio.testing._fake_telegram import markdown_problem

_TEXT = st.lists(
    st.sampled_from(["a", "b", " ", "\n", "\n\n", "é", "😀", "word ", "\n\n\n"]),
    max_size=200,
).map("".join)


@given(text=_TEXT, limit=st.integers(min_value=2, max_value=60))
def test_split_parts_fit_lose_nothing_and_cut_at_the_best_break(text: str, limit: int) -> None:
    """Every part fits the limit (UTF-16 units), the parts join to the text, and each cut
    is at the last paragraph break that fits, else line break, else space."""
    parts = split_message(text, limit)
    assert "".join(parts) == text
    assert all(utf16_length(part) <= limit for part in parts)
    assert all(parts) or parts == [""]
    rest = text
    for part in parts[:-1]:
        window = part + rest[len(part) :][:limit]
        while utf16_length(window) > limit:
            window = window[:-1]
        for separator in ("\n\n", "\n", " "):
            if window.rfind(separator) > 0:
                assert part == window[: window.rfind(separator) + len(separator)]
                break
        else:
            assert part == window  # one long word: cut at the limit
        rest = rest[len(part) :]


def test_split_keeps_short_text_whole_and_never_breaks_an_emoji() -> None:
    """Text within the limit is one part; a cut never splits a character Telegram counts
    as two units."""
    assert split_message("hello") == ["hello"]
    assert split_message("x" * MAX_MESSAGE_LENGTH) == ["x" * MAX_MESSAGE_LENGTH]
    parts = split_message("😀" * 3000)
    assert [utf16_length(p) for p in parts] == [4096, 1904]


def test_config_from_the_environment() -> None:
    """TELEGRAM_BOT_TOKEN turns the bot on; TELEGRAM_AGENT and TELEGRAM_ALLOWED_USERS
    (commas and/or spaces) tune it; without a token there is no bot."""
    assert TelegramConfig.from_env({}) is None
    config = TelegramConfig.from_env(
        {
            "TELEGRAM_BOT_TOKEN": " 123:abc-DEF_1 ",
            "TELEGRAM_ALLOWED_USERS": "12345, 678 9",
        }
    )
    assert config is not None
    assert config.token == "123:abc-DEF_1" and config.agent == "hermes"
    assert config.allowed_users == {12345, 678, 9} and config.bot_id == "123"
    assert "abc-DEF" not in repr(config)
    assert (
        TelegramConfig.from_env({"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_AGENT": "a"}).agent == "a"
    )  # type: ignore[union-attr]
    assert ServeConfig(telegram=config).telegram is config


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TELEGRAM_BOT_TOKEN": "not a token"}, "TELEGRAM_BOT_TOKEN is not a Telegram bot token"),
        (
            {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_ALLOWED_USERS": "12,@bob"},
            "'@bob' is not a Telegram user id",
        ),
        ({"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_AGENT": "a:b"}, "TELEGRAM_AGENT"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    """An unusable variable is an error that names it and says what it should be."""
    with pytest.raises(ValueError, match=message):
        TelegramConfig.from_env(env)


def test_the_fake_refuses_markdown_telegram_would_refuse() -> None:
    """The fake's Markdown rule: unclosed entities outside code are refused."""
    assert markdown_problem("*bold* _it_ `x*y` [a](b) 2\\*3") is None
    assert markdown_problem("```\nx * y\n```") is None
    for bad in ("2 * 3", "snake_case", "`open", "```open", "[open"):
        assert markdown_problem(bad) is not None, bad
