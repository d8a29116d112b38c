"""The Telegram bot of ``vega-trio serve`` (SPEC §10.6) against the fake Bot API
(real HTTP on loopback): allow-list, sessions and history, splitting, Markdown,
commands, offset persistence across a restart, a crashed poller's restart, fatal
answers (401, 409) that stop only the bot, and friendly errors."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from vega_trio import Agent, ErrorClass, open_orchestrator
from vega_trio.runtime import Backoff
from vega_trio.serve import ServeConfig, TelegramConfig
from vega_trio.store import open_store
from vega_trio.testing import FakeTelegramServer, ScriptedLLM, Step, open_fake_telegram_server

from ._helpers import Running, running_server

USER = 42
FAST = Backoff(kind="exponential", initial=0.01, multiplier=2, max=0.05)


def _config(telegram: FakeTelegramServer, **options: Any) -> TelegramConfig:
    options.setdefault("allowed_users", {USER})
    return TelegramConfig(token=telegram.token, api_url=telegram.api_url, **options)


@asynccontextmanager
async def _bot(
    llm: ScriptedLLM,
    telegram: FakeTelegramServer,
    *,
    store: Any = None,
    agent: str = "hermes",
    **options: Any,
) -> AsyncIterator[Running]:
    """A server whose orchestrator defines ``agent`` on ``llm``, with a bot on ``telegram``."""
    async with open_orchestrator(llm=llm, store=store) as orch:
        orch.agents.define(Agent(name=agent, model="test-model"), source="builtin")
        config = ServeConfig(port=0, telegram=_config(telegram, agent=agent, **options))
        async with running_server(orch, config) as srv:
            yield srv


async def _health(srv: Running) -> dict[str, Any]:
    response = await srv.client.get("/healthz")
    assert response.status_code == 200
    return dict(response.json())


async def test_an_allowed_user_gets_the_reply_in_their_own_persisted_session(
    tmp_path: Path,
) -> None:
    """Each allowed user talks to their own session `hermes:<id>`: the reply comes back
    as a Telegram message after a typing indicator, and the history is readable at
    /api/agents/hermes:<id>/chat."""
    llm = ScriptedLLM(["Hello Ada.", "Hello Bob."])
    async with (
        open_store(str(tmp_path / "t.db")) as store,
        open_fake_telegram_server() as telegram,
        _bot(llm, telegram, store=store, allowed_users={USER, 43}) as srv,
    ):
        telegram.add_message(USER, "hi, I am Ada")
        with trio.fail_after(10):
            await telegram.wait_for_sent(1)
        telegram.add_message(43, "hi, I am Bob")
        with trio.fail_after(10):
            await telegram.wait_for_sent(2)
        assert [(m.chat_id, m.text) for m in telegram.sent] == [
            (USER, "Hello Ada."),
            (43, "Hello Bob."),
        ]
        typing = telegram.calls_of("sendChatAction")
        assert typing and typing[0].params == {"chat_id": USER, "action": "typing"}
        assert typing[0].at <= telegram.sent[0].at
        ada = (await srv.client.get(f"/api/agents/hermes:{USER}/chat")).json()["messages"]
        assert [m["role"] for m in ada] == ["user", "assistant"]
        assert "Ada" in str(ada[0]) and "Bob" not in str(ada)  # isolated sessions
        assert "hi, I am Bob" in str(
            (await srv.client.get("/api/agents/hermes:43/chat")).json()["messages"]
        )
        health = await _health(srv)
        assert health["telegram"]["status"] == "polling"
        assert health["telegram"]["username"] == telegram.bot_username


async def test_without_an_allow_list_nobody_is_served_and_the_user_learns_their_id() -> None:
    """With TELEGRAM_ALLOWED_USERS empty, a user gets their id and how to allow it (once
    an hour, however often they write), and the agent never runs."""
    llm = ScriptedLLM([])  # any model call would raise ScriptExhausted
    async with open_fake_telegram_server() as telegram, _bot(llm, telegram, allowed_users=()):
        telegram.add_message(777, "let me in")
        with trio.fail_after(10):
            await telegram.wait_for_sent(1)
        telegram.add_message(777, "please")
        telegram.add_message(USER, "me too")
        with trio.fail_after(10):
            await telegram.wait_for_sent(2)  # 777's second message came before USER's
            await trio.testing.wait_all_tasks_blocked()
        assert [m.chat_id for m in telegram.sent] == [777, USER]  # 777 was told once
        notice = telegram.sent[0].text
        assert "777" in notice and "TELEGRAM_ALLOWED_USERS" in notice
        assert llm.requests == []


async def test_a_long_reply_is_split_at_paragraphs_and_nothing_is_lost() -> None:
    """A reply over 4,096 characters goes out as several messages, each within the
    limit, cut at paragraph breaks, together the whole reply."""
    paragraphs = [f"Paragraph {i}. " + "word " * 150 for i in range(20)]
    reply = "\n\n".join(p.strip() for p in paragraphs)
    assert len(reply) > 3 * 4096
    async with open_fake_telegram_server() as telegram, _bot(ScriptedLLM([reply]), telegram):
        telegram.add_message(USER, "write a lot")
        with trio.fail_after(10):
            while "".join(m.text for m in telegram.sent) != reply:
                await telegram.wait_for_sent(len(telegram.sent) + 1)
        texts = [m.text for m in telegram.sent]
        assert len(texts) == 4 and all(len(text) <= 4096 for text in texts)
        assert all(text.endswith("word\n\n") for text in texts[:-1])  # paragraph ends


async def test_markdown_telegram_cannot_parse_is_sent_again_as_plain_text() -> None:
    """A reply is sent as Markdown; one Telegram refuses to parse is sent again as plain
    text, so the user still gets it."""
    llm = ScriptedLLM(["*Bold* and `code`", "2 * 3 = 6, a_b"])
    async with open_fake_telegram_server() as telegram, _bot(llm, telegram):
        telegram.add_message(USER, "one")
        telegram.add_message(USER, "two")
        with trio.fail_after(10):
            await telegram.wait_for_sent(2)
        assert [(m.text, m.parse_mode) for m in telegram.sent] == [
            ("*Bold* and `code`", "Markdown"),
            ("2 * 3 = 6, a_b", None),
        ]
        refused = [c for c in telegram.calls_of("sendMessage") if c.params.get("parse_mode")]
        assert len(refused) == 2  # the second reply was tried as Markdown first


async def test_start_greets_and_reset_starts_a_new_conversation() -> None:
    """/start answers without the agent; /reset forgets the user's conversation, so the
    next message reaches the model without the earlier turns."""
    llm = ScriptedLLM(["First answer.", "Fresh answer."])
    async with open_fake_telegram_server() as telegram, _bot(llm, telegram) as srv:
        telegram.add_message(USER, "/start")
        telegram.add_message(USER, "remember the number 7")
        telegram.add_message(USER, f"/reset@{telegram.bot_username}")
        telegram.add_message(USER, "what was the number?")
        with trio.fail_after(10):
            await telegram.wait_for_sent(4)
        texts = [m.text for m in telegram.sent]
        assert "hermes" in texts[0] and "/reset" in texts[0]
        assert texts[1] == "First answer."
        assert "new conversation" in texts[2]
        assert texts[3] == "Fresh answer."
        assert len(llm.requests) == 2
        last = llm.requests[1].messages
        assert "number 7" not in str(last) and "what was the number?" in str(last)
        history = (await srv.client.get(f"/api/agents/hermes:{USER}/chat")).json()["messages"]
        assert len(history) == 2 and "number 7" not in str(history)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
async def test_the_update_offset_survives_a_restart_so_no_message_is_answered_twice(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Updates taken by one server, which died before Telegram heard the next offset, are
    not answered again by the next server on the same store (SQLite, PostgreSQL): it asks
    from the stored offset on."""
    db = (
        str(tmp_path / "serve.db")
        if engine == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    async with open_fake_telegram_server() as telegram:
        telegram.add_message(USER, "one")
        telegram.add_message(USER, "two")
        # The first server's later polls never reach Telegram (its network is down).
        telegram.fail("getUpdates", 500, times=10_000, after=1)
        llm = ScriptedLLM(["Answer one.", "Answer two.", "Answer three."])
        async with open_store(db) as store, _bot(llm, telegram, store=store, backoff=FAST):
            with trio.fail_after(10):
                await telegram.wait_for_sent(2)
        assert len(telegram.pending_updates) == 2  # Telegram would send them again
        telegram.clear_failures()
        third = telegram.add_message(USER, "three")
        async with open_store(db) as store, _bot(llm, telegram, store=store, backoff=FAST):
            with trio.fail_after(10):
                await telegram.wait_for_sent(3)
                while telegram.confirmed_offset <= third:
                    await telegram.wait_for_calls(
                        "getUpdates", len(telegram.calls_of("getUpdates")) + 1
                    )
        assert [m.text for m in telegram.sent] == ["Answer one.", "Answer two.", "Answer three."]
        assert telegram.calls_of("getUpdates")[-1].params["offset"] == third + 1


async def test_a_crashed_poller_restarts_with_backoff_in_virtual_time(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram failing (500) crashes the poller; it restarts after 1, 2, 4 s (the
    runtime's restart engine), then serves messages again; /healthz counts the restarts."""
    caplog.set_level(logging.WARNING, logger="vega_trio.serve.telegram")
    async with open_fake_telegram_server() as telegram:
        telegram.fail("getUpdates", 500, times=3)
        async with _bot(ScriptedLLM(["Back again."]), telegram) as srv:
            with trio.fail_after(100):
                await telegram.wait_for_calls("getUpdates", 4)
            polls = [call.at for call in telegram.calls_of("getUpdates")]
            assert [b - a for a, b in itertools.pairwise(polls)] == [1.0, 2.0, 4.0]
            telegram.add_message(USER, "are you there?")
            with trio.fail_after(100):
                await telegram.wait_for_sent(1)
            assert telegram.sent[0].text == "Back again."
            health = (await _health(srv))["telegram"]
            assert health["status"] == "polling" and health["restarts"] == 3
            assert "500" in health["last_error"]
    restarts = [r.getMessage() for r in caplog.records if "restart #" in r.getMessage()]
    assert len(restarts) == 3 and "in 4 s" in restarts[-1]


async def test_a_rate_limited_poll_waits_as_long_as_telegram_says(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 429 on getUpdates is not a crash: the next poll comes retry_after seconds later."""
    async with open_fake_telegram_server() as telegram:
        telegram.fail("getUpdates", 429, retry_after=7)
        async with _bot(ScriptedLLM([]), telegram) as srv:
            with trio.fail_after(100):
                await telegram.wait_for_calls("getUpdates", 2)
            first, second = telegram.calls_of("getUpdates")[:2]
            assert second.at - first.at == 7.0
            assert len(telegram.calls_of("getMe")) == 1
            assert (await _health(srv))["telegram"]["restarts"] == 0


async def test_a_refused_token_stops_the_bot_and_the_server_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 (a wrong token) stops the bot with an error naming TELEGRAM_BOT_TOKEN, never
    retried and never showing the token; the server keeps serving."""
    caplog.set_level(logging.ERROR, logger="vega_trio.serve.telegram")
    wrong = "123456:wrong-secret-token-value"
    async with open_fake_telegram_server() as telegram:
        config = TelegramConfig(token=wrong, api_url=telegram.api_url, allowed_users={USER})
        async with open_orchestrator(llm=ScriptedLLM(["still here"])) as orch:
            orch.agents.define(Agent(name="hermes", model="test-model"), source="builtin")
            async with running_server(orch, ServeConfig(port=0, telegram=config)) as srv:
                with trio.fail_after(100):
                    await telegram.wait_for_calls("getMe", 1)
                await trio.sleep(600)  # a restart would have come long before this
                assert len(telegram.calls) == 1
                health = (await _health(srv))["telegram"]
                assert health["status"] == "stopped"
                assert "TELEGRAM_BOT_TOKEN" in health["last_error"]
                reply = await srv.client.post("/api/agents/hermes/chat", json={"message": "x"})
                assert reply.json()["response"] == "still here"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "401" in errors[0] and "TELEGRAM_BOT_TOKEN" in errors[0]
    assert "wrong-secret-token-value" not in caplog.text + str(health)


async def test_a_second_bot_polling_the_same_token_stops_the_first_with_a_conflict() -> None:
    """Two servers polling one bot: Telegram ends the first one's poll with 409; that bot
    stops with an error saying another program polls, the other one goes on."""
    async with open_fake_telegram_server() as telegram:
        async with _bot(ScriptedLLM([]), telegram) as first:
            with trio.fail_after(10):
                await telegram.wait_for_calls("getUpdates", 1)
                # wait until the first poll is waiting at Telegram
                await trio.testing.wait_all_tasks_blocked()
            async with _bot(ScriptedLLM(["from the second"]), telegram) as second:
                with trio.fail_after(10):
                    # NOTE: the state is another server's, read over HTTP in real time.
                    while (await _health(first))["telegram"]["status"] != "stopped":  # noqa: ASYNC110
                        await trio.sleep(0.01)
                stopped = (await _health(first))["telegram"]
                assert "409" in stopped["last_error"] and "another program" in stopped["last_error"]
                telegram.add_message(USER, "who answers?")
                with trio.fail_after(10):
                    await telegram.wait_for_sent(1)
                assert telegram.sent[0].text == "from the second"
                assert (await _health(second))["telegram"]["status"] == "polling"


async def test_an_undefined_agent_is_a_clear_error_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """TELEGRAM_AGENT naming no agent: an error that says which agents exist, no polling
    (no update is taken), and the server serves as usual."""
    caplog.set_level(logging.ERROR, logger="vega_trio.serve.telegram")
    async with open_fake_telegram_server() as telegram:
        config = _config(telegram)  # agent "hermes", which this server lacks
        async with open_orchestrator(llm=ScriptedLLM(["ok"])) as orch:
            orch.agents.define(Agent(name="assistant", model="test-model"), source="builtin")
            async with running_server(orch, ServeConfig(port=0, telegram=config)) as srv:
                health = await _health(srv)
                reply = await srv.client.post("/api/agents/assistant/chat", json={"message": "x"})
                assert reply.json()["response"] == "ok"
        assert telegram.calls == []
        assert "telegram" not in health
    [error] = [r.getMessage() for r in caplog.records]
    assert "'hermes' is not defined" in error and "assistant" in error


async def test_any_agent_can_answer_through_telegram_agent() -> None:
    """TELEGRAM_AGENT routes users to any agent; the session is `<agent>:<user id>`."""
    async with (
        open_fake_telegram_server() as telegram,
        _bot(ScriptedLLM(["I assist."]), telegram, agent="assistant") as srv,
    ):
        telegram.add_message(USER, "who are you?")
        with trio.fail_after(10):
            await telegram.wait_for_sent(1)
        history = (await srv.client.get(f"/api/agents/assistant:{USER}/chat")).json()
        assert "I assist." in str(history["messages"])


async def test_a_failed_reply_is_a_short_message_with_a_reference_and_the_log_has_details(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply that fails gives the user a friendly line with a reference id; the server
    log has the cause under that reference, with secrets masked."""
    monkeypatch.setenv("SOME_API_KEY", "sk-ant-secretsecretsecret")
    caplog.set_level(logging.ERROR, logger="vega_trio.serve.telegram")
    llm = ScriptedLLM(
        [Step.error(ErrorClass.INVALID_REQUEST, "bad key sk-ant-secretsecretsecret"), "Fine."]
    )
    async with open_fake_telegram_server() as telegram, _bot(llm, telegram):
        telegram.add_message(USER, "fail please")
        telegram.add_message(USER, "and now?")
        with trio.fail_after(10):
            await telegram.wait_for_sent(2)
    failed, fine = (m.text for m in telegram.sent)
    assert fine == "Fine."  # the bot goes on
    assert "ref " in failed and "bad key" not in failed and len(failed) < 200
    reference = failed.split("ref ", 1)[1].split(")", 1)[0]
    [record] = [r for r in caplog.records if reference in r.getMessage()]
    assert "bad key" in record.getMessage()
    assert "secretsecret" not in record.getMessage()


async def test_the_typing_indicator_repeats_while_the_agent_works(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While a reply takes 10 s, "typing…" is sent at once and every 4 s until it is done."""
    llm = ScriptedLLM([Step.text("Done thinking.", delay=10)])
    async with open_fake_telegram_server() as telegram, _bot(llm, telegram):
        message_at = trio.current_time()
        telegram.add_message(USER, "think hard")
        with trio.fail_after(100):
            await telegram.wait_for_sent(1)
        typing = [call.at - message_at for call in telegram.calls_of("sendChatAction")]
        sent_at = telegram.sent[0].at - message_at
        assert typing == [0.0, 4.0, 8.0] and sent_at == 10.0


async def test_a_reply_in_progress_at_shutdown_is_still_delivered() -> None:
    """A graceful stop lets a reply that is being written finish and reach the user."""
    llm = ScriptedLLM([Step.text("Made it.", delay=0.3)])
    async with open_fake_telegram_server() as telegram:
        async with _bot(llm, telegram) as srv:
            telegram.add_message(USER, "quick")
            with trio.fail_after(10):
                await telegram.wait_for_calls("sendChatAction", 1)
            srv.stop.set()  # the block's end waits for the server to stop
        assert [m.text for m in telegram.sent] == ["Made it."]


async def test_odd_updates_are_skipped_and_the_bot_goes_on() -> None:
    """A group message is ignored, a photo is answered "text only", a malformed update
    is skipped (logged), and the next message is answered as usual."""
    async with (
        open_fake_telegram_server() as telegram,
        _bot(ScriptedLLM(["Still here."]), telegram) as srv,
    ):
        telegram.add_message(USER, "hello group", chat_id=-100, chat_type="group")
        telegram.add_message(USER, None)  # a photo
        telegram.add_update({"message": {"chat": {"type": "private"}, "from": {}}})
        telegram.add_update({"edited_message": {"text": "changed"}})
        telegram.add_message(USER, "and text?")
        with trio.fail_after(10):
            await telegram.wait_for_sent(2)
        assert [(m.chat_id, m.text) for m in telegram.sent] == [
            (USER, "I read text messages only."),
            (USER, "Still here."),
        ]
        assert (await _health(srv))["telegram"]["restarts"] == 0
