"""The fake Telegram Bot API behaves as Telegram does where the bot depends on it:
offsets confirm updates, long polls wait in virtual time, one poller at a time, and
what Telegram refuses is refused (through the bot's own client, over real HTTP)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from vega_trio.serve import TelegramError
from vega_trio.serve._telegram_api import open_bot_api
from vega_trio.testing import open_fake_telegram_server


async def test_offsets_confirm_updates_and_an_empty_poll_waits_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """getUpdates returns what is pending from the offset on, forgets what is before it,
    and with nothing pending answers [] after exactly `timeout` seconds."""
    async with (
        open_fake_telegram_server() as telegram,
        open_bot_api(telegram.token, telegram.api_url) as api,
    ):
        first = telegram.add_message(1, "a")
        telegram.add_message(1, "b")
        assert [u["update_id"] for u in await api.get_updates(None, 30)] == [first, first + 1]
        assert [u["update_id"] for u in await api.get_updates(first + 1, 30)] == [first + 1]
        assert len(telegram.pending_updates) == 1
        start = trio.current_time()
        assert await api.get_updates(first + 2, 30) == []
        assert trio.current_time() - start == 30
        assert telegram.pending_updates == []


async def test_a_waiting_poll_returns_as_soon_as_a_message_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A long poll ends with the update the moment one is added."""
    async with (
        open_fake_telegram_server() as telegram,
        open_bot_api(telegram.token, telegram.api_url) as api,
    ):

        async def later() -> None:
            await trio.sleep(5)
            telegram.add_message(7, "hi")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            start = trio.current_time()
            [update] = await api.get_updates(None, 50)
        assert trio.current_time() - start == 5
        assert update["message"]["text"] == "hi" and update["message"]["from"]["id"] == 7


async def test_the_fake_refuses_what_telegram_refuses() -> None:
    """A wrong token is 401, a second poller ends the first with 409, a scripted 429
    carries retry_after, an overlong message or unparsable Markdown is 400."""
    async with open_fake_telegram_server() as telegram:
        async with open_bot_api("1:wrong-token-here", telegram.api_url) as wrong:
            with pytest.raises(TelegramError) as refused:
                await wrong.get_me()
            assert refused.value.error_code == 401
        async with open_bot_api(telegram.token, telegram.api_url) as api:
            conflicts: list[TelegramError] = []

            async def first_poller() -> None:
                try:
                    await api.get_updates(None, 50)
                except TelegramError as exc:
                    conflicts.append(exc)

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(first_poller)
                    await telegram.wait_for_calls("getUpdates", 1)
                    await trio.testing.wait_all_tasks_blocked()  # the first one waits
                    assert await api.get_updates(None, 0) == []
            assert [c.error_code for c in conflicts] == [409]
            assert "terminated by other getUpdates request" in conflicts[0].description
            telegram.fail("sendMessage", 429, retry_after=9)
            with pytest.raises(TelegramError) as limited:
                await api.send_message(1, "x", markdown=False)
            assert (limited.value.error_code, limited.value.retry_after) == (429, 9)
            with pytest.raises(TelegramError, match="message is too long"):
                await api.send_message(1, "x" * 4097, markdown=False)
            with pytest.raises(TelegramError, match="can't parse entities"):
                await api.send_message(1, "2 * 3", markdown=True)
            await api.send_message(1, "x" * 4096, markdown=False)
        assert [len(m.text) for m in telegram.sent] == [4096]
