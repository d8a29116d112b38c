"""Structured log records (SPEC §13): what the library logs, at which level, with which
``extra`` fields — and the formatters the CLI shows them with."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import vega_trio
from vega_trio import Agent, Budget, ErrorClass, RetryPolicy, open_orchestrator
from vega_trio._cli._logging import cli_logging
from vega_trio._log import JsonFormatter, TextFormatter, extra_fields, log_record
from vega_trio.resilience import CircuitBreaker
from vega_trio.runtime import Backoff, Process, Runtime, Supervision
from vega_trio.testing import ScriptedLLM, Step

from .runtime.conftest import EchoBehaviour

SECRET = "sk-ant-marker-0123456789abcdef"


def records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with trio.open_nursery() as nursery:
        rt = Runtime(nursery)
        yield rt
        await rt.shutdown(grace=1.0)


def test_the_library_installs_no_handler_of_its_own() -> None:
    """Importing vega_trio adds only a NullHandler: where records go is the app's choice."""
    handlers = logging.getLogger("vega_trio").handlers
    assert vega_trio.__name__ == "vega_trio"
    assert all(isinstance(h, logging.NullHandler) for h in handlers)


async def test_process_spawn_complete_and_failure_records(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A process logs its spawn and completion at DEBUG and a crash at WARNING, each with
    process_id, agent and (for the crash) reason and error_class as extra fields."""
    with caplog.at_level(logging.DEBUG, logger="vega_trio.runtime"):
        ok = await runtime.spawn(EchoBehaviour(name="worker"))
        ok.complete("done")
        await ok.wait()
        bad = await runtime.spawn(EchoBehaviour(name="crasher"))
        with pytest.raises(ValueError, match="boom"):
            await bad.call("crash")
        await bad.wait()
    (spawned,) = [r for r in records(caplog, "process.spawned") if r.process_id == ok.id]
    assert spawned.levelno == logging.DEBUG and spawned.agent == "worker"
    (completed,) = records(caplog, "process.completed")
    assert completed.levelno == logging.DEBUG
    assert (completed.process_id, completed.agent, completed.reason) == (ok.id, "worker", "normal")
    assert isinstance(completed.duration_ms, int)
    (failed,) = records(caplog, "process.failed")
    assert failed.levelno == logging.WARNING
    assert (failed.process_id, failed.agent, failed.reason) == (bad.id, "crasher", "error")
    assert failed.error_class == "ValueError"
    assert "boom" in failed.getMessage() and bad.id in failed.getMessage()


class CrashesOnce:
    """Crashes on its first message and echoes every later one."""

    name = "flaky"

    def __init__(self) -> None:
        self.crashed = False

    async def handle(self, process: Process, payload: object) -> object:
        await trio.lowlevel.checkpoint()
        if not self.crashed:
            self.crashed = True
            raise ValueError("boom")
        return payload


async def test_restart_record(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    """A supervised restart is logged at INFO with its restart count and the crash's class."""
    supervision = Supervision(max_restarts=3, backoff=Backoff(kind="constant", initial=1))
    with caplog.at_level(logging.INFO, logger="vega_trio.runtime"):
        proc = await runtime.spawn(CrashesOnce(), supervision=supervision)
        assert await proc.call("again") == "again"  # served by the restarted incarnation
    (restarted,) = records(caplog, "process.restarted")
    assert restarted.levelno == logging.INFO
    assert (restarted.process_id, restarted.agent) == (proc.id, "flaky")
    assert (restarted.restart_count, restarted.error_class) == (1, "ValueError")
    # The crash is reported by the restart record; the process itself did not exit.
    assert not records(caplog, "process.failed")


async def test_disabled_levels_create_no_records(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """With the runtime logger at WARNING, a clean spawn and exit create no record at all."""
    with caplog.at_level(logging.WARNING, logger="vega_trio"):
        proc = await runtime.spawn(EchoBehaviour())
        proc.complete()
        await proc.wait()
    assert not [r for r in caplog.records if r.name.startswith("vega_trio")]


async def test_llm_call_and_retry_records(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    """An overloaded attempt is logged at INFO as a retry (attempt, delay_s, error_class,
    latency_ms) and the call that succeeds at DEBUG (model, tokens, latency, attempt)."""
    llm = ScriptedLLM([Step.error(ErrorClass.OVERLOADED), "ok"])
    with caplog.at_level(logging.DEBUG, logger="vega_trio"):
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(Agent(name="a", model="claude-sonnet-4-20250514"))
            assert await proc.send("hi") == "ok"
    (retry,) = records(caplog, "llm.retry")
    assert retry.name == "vega_trio.resilience" and retry.levelno == logging.INFO
    assert (retry.agent, retry.process_id, retry.attempt) == ("a", proc.id, 1)
    assert (retry.error_class, retry.delay_s) == ("overloaded", 0.5)
    assert isinstance(retry.latency_ms, int)
    assert "retrying in 0.50s" in retry.getMessage()
    (call,) = records(caplog, "llm.call")
    assert call.name == "vega_trio.llm" and call.levelno == logging.DEBUG
    assert (call.agent, call.model, call.attempt, call.error_class) == (
        "a",
        "claude-sonnet-4-20250514",
        2,
        None,
    )
    assert call.input_tokens > 0 and call.output_tokens > 0
    assert isinstance(call.latency_ms, int)


async def test_last_failure_is_logged_with_its_error_class(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    """A failure that is not retried is one INFO llm.call record naming its error class
    (not a WARNING: the caller gets the error and reports it)."""
    llm = ScriptedLLM([Step.error(ErrorClass.AUTHENTICATION)])
    with caplog.at_level(logging.DEBUG, logger="vega_trio"):
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(Agent(name="a", retry=RetryPolicy(max_attempts=3)))
            with pytest.raises(vega_trio.LLMError):
                await proc.send("hi")
    (call,) = records(caplog, "llm.call")
    assert call.levelno == logging.INFO and call.error_class == "authentication"
    assert call.attempt == 1 and call.delay_s is None
    assert not records(caplog, "llm.retry")


async def test_budget_warning_record(caplog: pytest.LogCaptureFixture) -> None:
    """A `warn` budget crossing its limit logs a WARNING with owner, limit and spend."""
    llm = ScriptedLLM(["one", "two"])
    budget = Budget(limit=0.000001, on_exceed="warn")
    with caplog.at_level(logging.WARNING, logger="vega_trio"):
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(Agent(name="a", budget=budget))
            await proc.send("hi")
    (warning,) = records(caplog, "budget.warning")
    assert warning.levelno == logging.WARNING and warning.name == "vega_trio.resilience"
    assert warning.limit_usd == 0.000001 and warning.spent_usd > warning.limit_usd
    assert "agent 'a'" in warning.owner and warning.agent == "a"


async def test_circuit_open_record_has_fields(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    """A breaker that opens logs a WARNING with its name, failure count and reset time."""
    llm = ScriptedLLM(responder=lambda _r: Step.error(ErrorClass.OVERLOADED))
    breaker = CircuitBreaker(threshold=2, reset_after=30, name="llm")
    with caplog.at_level(logging.WARNING, logger="vega_trio"):
        async with open_orchestrator(llm=llm) as orch:
            proc = await orch.spawn(Agent(name="a", retry=None, circuit_breaker=breaker))
            for _ in range(2):
                with pytest.raises(vega_trio.LLMError):
                    await proc.send("hi")
    (opened,) = records(caplog, "circuit.open")
    assert (opened.breaker, opened.failures, opened.reset_after) == ("llm", 2, 30)


def test_log_record_renames_fields_that_clash() -> None:
    """A field named like a LogRecord attribute (name, msg) is kept as field_<name>."""
    logger = logging.getLogger("vega_trio.test.clash")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log_record(logger, logging.INFO, "hello %s", "x", name="mine", process_id="p-1")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    (record,) = seen
    assert record.name == "vega_trio.test.clash"
    assert extra_fields(record) == {"field_name": "mine", "process_id": "p-1"}


def _exc_info() -> BaseException:
    try:
        raise RuntimeError(f"request failed with key {SECRET}")
    except RuntimeError as exc:
        return exc


def test_formatters_redact_messages_fields_and_tracebacks() -> None:
    """Through the CLI's handler, a secret in the message, an extra field or the formatted
    traceback never reaches the stream (text and json)."""
    logger = logging.getLogger("vega_trio.test.redact")
    for log_format in ("text", "json"):
        stream = io.StringIO()
        with cli_logging(stream, level="debug", log_format=log_format):  # type: ignore[arg-type]
            logger.error("using %s", SECRET, exc_info=_exc_info(), extra={"header": SECRET})
        output = stream.getvalue()
        assert SECRET not in output, output
        assert "***" in output and "RuntimeError: request failed with key ***" in output
    line = json.loads(output)
    assert line["message"] == "using ***" and line["header"] == "***"
    assert "Traceback" in line["exception"]


def test_json_formatter_one_object_per_record() -> None:
    """The json format is one object per line: time, level, logger, message, every extra."""
    record = logging.makeLogRecord(
        {"name": "vega_trio.llm", "levelno": 10, "levelname": "DEBUG", "msg": "call %d"}
    )
    record.args = (3,)
    record.latency_ms = 12
    record.tags = ("a", "b")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "DEBUG" and data["logger"] == "vega_trio.llm"
    assert data["message"] == "call 3" and data["latency_ms"] == 12 and data["tags"] == ["a", "b"]
    assert data["time"].endswith("+00:00")
    assert TextFormatter().format(record) == "DEBUG vega_trio.llm: call 3"


def test_cli_logging_restores_the_logger() -> None:
    """The CLI's handler and level last for its block only."""
    logger = logging.getLogger("vega_trio")
    before = (list(logger.handlers), logger.level)
    with cli_logging(sys.stderr, level="info"):
        assert logger.level == logging.INFO and len(logger.handlers) == len(before[0]) + 1
    assert (list(logger.handlers), logger.level) == before
