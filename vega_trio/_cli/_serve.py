"""``vega-trio serve``: the orchestrator of a document (or a default ``assistant``) over
HTTP until SIGINT/SIGTERM (SPEC §10), with the meta-agents Mother and Hermes (SPEC §6).

The first signal stops gracefully: no new connections, every stream ends with a final
event, then the orchestrator's shutdown ladder; exit 0. A second signal during that
forces: everything still running is cancelled; exit 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import attrs
import trio

from .._errors import AgentExists
from .._meta import add_meta_agents
from .._redact import redact
from ..agent import Agent
from ..observability import HealthConfig, tracing_from_env
from ..orchestrator import Orchestrator, open_orchestrator
from ..team._meta import HERMES, HERMES_SYSTEM, MOTHER, MOTHER_SYSTEM
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    OFFLINE_NOTICE,
    UsageProblem,
    backends_for,
    choose_llm,
    open_document_runner,
    open_llm,
    write,
)
from ._run import load_document

if TYPE_CHECKING:
    from ..dsl._interpreter import Runner
    from ..store import Store

__all__ = ["DEFAULT_AGENT", "EVENT_HISTORY", "serve_command"]

DEFAULT_AGENT = Agent(
    name="assistant",
    system="You are a helpful assistant. Answer clearly and concisely.",
    description="The default agent of vega-trio serve (no document given).",
)
"""The agent ``vega-trio serve`` defines (source ``builtin``) when no FILE is given."""

EVENT_HISTORY = 10_000
"""Events the server's orchestrator keeps, so ``/api/events`` clients can resume with
``Last-Event-ID`` after a reconnect."""


async def serve_command(
    file: Path | None,
    *,
    addr: str,
    token: str | None = None,
    db: str | None = None,
    retention_days: float | None = None,
    llm: str | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    log_level: str | None = None,
) -> int:
    """What ``vega-trio serve`` does: serve ``file``'s agents (or the default
    ``assistant``) until SIGINT/SIGTERM.

    Args:
        file: a ``.vega.yaml`` document, or ``None`` for the default ``assistant``.
        addr: ``--addr`` (``host:port``; port 0 picks a free one).
        token: ``--token`` (else ``$VEGA_TOKEN``); required for a non-loopback address.
        db: ``--db``: a SQLite file or a ``postgresql://`` URL the server's state is
            kept in and continues from; ``None`` (``--no-db``): nothing is kept.
        retention_days: ``--retention-days``: prune what is older from the store
            while serving (default: the file's ``settings.store.retention_days``,
            else keep everything).
        llm: ``--llm`` as for ``run``.
        env: the environment (default ``os.environ``).
        out: where the URL is printed (default ``sys.stdout``).
        err: notices and problems (default ``sys.stderr``).
        log_level: ``--log-level``.

    Returns:
        0 after a graceful stop, 2 when nothing could start (bad address, missing
        token, invalid file, no credentials, a store that cannot be opened), 130 when a
        second signal forced the stop.
    """
    from ..serve import ServeConfig, TelegramConfig, serve

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    env = os.environ if env is None else env
    token = token if token is not None else (env.get("VEGA_TOKEN") or None)
    try:
        if retention_days is not None and db is None:
            raise UsageProblem(
                "--retention-days prunes the store, but --no-db keeps none; drop one of them"
            )
        # SPEC §10.6: a bot when TELEGRAM_BOT_TOKEN is set (~/.vega/env included).
        telegram = TelegramConfig.from_env(env)
        config = ServeConfig.from_addr(
            addr, token=token, retention_days=retention_days, telegram=telegram
        )
        choice, defaulted = choose_llm(llm, env)
    except (ValueError, UsageProblem) as exc:
        write(err, f"vega-trio: error: {exc}")
        return EXIT_INVALID
    document = None
    if file is not None:
        document = await load_document(file, err)
        if document is None:
            return EXIT_INVALID
        if retention_days is None and document.settings.retention_days is not None:
            # NOTE: the flag wins over the file, as --log-level does.
            config = attrs.evolve(config, retention_days=document.settings.retention_days)
    if defaulted:
        write(err, OFFLINE_NOTICE)
    if telegram is not None:
        users = len(telegram.allowed_users)
        write(
            err,
            f"vega-trio serve: Telegram bot on (agent {telegram.agent!r}, "
            + (
                f"{users} allowed user{'s' if users != 1 else ''})"
                if users
                else "no allowed users yet: set TELEGRAM_ALLOWED_USERS)"
            ),
        )
    # The standard OTEL_* environment switches tracing on (a missing piece is a
    # warning that says what to install); this command owns the provider.
    tracing = tracing_from_env(env)
    if tracing is not None:
        write(err, f"vega-trio serve: OpenTelemetry traces go to {tracing.destination}")

    stop = trio.Event()
    force = trio.CancelScope()
    serving: list[Orchestrator] = []  # the orchestrator, once open (what a force cuts)

    @asynccontextmanager
    async def orchestrator() -> AsyncIterator[tuple[Orchestrator, Runner | None]]:
        async with open_db(db) as store, orchestrator_on(store) as found:
            yield found

    @asynccontextmanager
    async def orchestrator_on(
        store: Store | None,
    ) -> AsyncIterator[tuple[Orchestrator, Runner | None]]:
        if document is None:
            agents = [
                (DEFAULT_AGENT.name, str(DEFAULT_AGENT.system)),
                (MOTHER, MOTHER_SYSTEM),
                (HERMES, HERMES_SYSTEM),
            ]
            async with (
                open_llm(choice, agents) as model,
                open_orchestrator(
                    llm=model,
                    backends=backends_for(choice, model),
                    event_history=EVENT_HISTORY,
                    health=HealthConfig(),
                    store=store,
                ) as orch,
            ):
                orch.agents.define(DEFAULT_AGENT, source="builtin")
                _add_meta_agents(orch, None, err)
                yield orch, None
            return
        assert file is not None
        # serve watches health by default; the file's settings.health tunes it.
        health = {} if document.settings.health is not None else {"health": HealthConfig()}
        async with open_document_runner(
            document,
            file,
            choice,
            log_level=log_level,
            event_history=EVENT_HISTORY,
            store=store,
            **health,
        ) as runner:
            _add_meta_agents(runner.orchestrator, runner, err)
            yield runner.orchestrator, runner

    async def run() -> None:
        async with orchestrator() as (orch, runner), trio.open_nursery() as nursery:
            serving.append(orch)
            urls = await nursery.start(
                lambda task_status: serve(
                    orch,
                    config,
                    shutdown_trigger=stop.wait,
                    runner=runner,
                    tracer_provider=tracing.provider if tracing is not None else None,
                    task_status=task_status,
                )
            )
            write(out, f"vega-trio serve: listening on {urls[0]} (Ctrl-C to stop)")
            out.flush()

    async def watch_signals(*, task_status: trio.TaskStatus[None]) -> None:  # noqa: ASYNC114 - started right here with nursery.start
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if not stop.is_set():
                    write(
                        err,
                        f"vega-trio serve: {name}: stopping (replies in progress get "
                        f"{config.graceful_timeout:g} s to finish; a second Ctrl-C forces "
                        "the stop)",
                    )
                    stop.set()
                else:
                    what = _in_progress(serving[0]) if serving else "nothing had started yet"
                    write(
                        err,
                        f"vega-trio: interrupted: vega-trio serve was forced to stop "
                        f"by a second signal ({name}) while shutting down: {what}",
                    )
                    force.cancel(reason="a second signal")
                    return

    try:
        async with trio.open_nursery() as watcher:
            if threading.current_thread() is threading.main_thread():
                await watcher.start(watch_signals)
            with force:
                await run()
                if tracing is not None:  # the spans of the shutdown ladder too
                    with trio.move_on_after(5):
                        await trio.to_thread.run_sync(tracing.shutdown, abandon_on_cancel=True)
            watcher.cancel_scope.cancel()
    except Exception as exc:
        problem = _startup_problem(exc)
        if problem is None:
            raise
        if isinstance(problem, OSError):  # the address is taken or cannot be bound
            write(err, f"vega-trio: error: cannot listen on {addr}: {problem.strerror or problem}")
        else:  # the chosen backend has no credentials
            write(err, f"vega-trio: error: {problem}")
        return EXIT_INVALID
    return EXIT_INTERRUPTED if force.cancelled_caught else EXIT_OK


def _add_meta_agents(orch: Orchestrator, runner: Runner | None, err: TextIO) -> None:
    """Mother and Hermes on the server (SPEC §6), on the default model; a document
    that defines one of their names keeps its own agent (a notice says so)."""
    try:
        add_meta_agents(
            orch,
            settings=runner.document.settings if runner is not None else None,
            base_dir=runner.base_dir if runner is not None else None,
        )
    except AgentExists as exc:
        write(err, f"vega-trio serve: notice: {exc}")


def _in_progress(orch: Orchestrator) -> str:
    """What a forced stop cuts short: the messages being served right now (a chat
    reply, a workflow step), by process."""
    busy = [proc for proc in orch.processes() if proc.busy]
    if not busy:
        return "no message was in progress; the rest of the shutdown was skipped"
    names = ", ".join(f"{proc.name or proc.agent_name} ({proc.id})" for proc in busy)
    count = f"{len(busy)} message{'s' if len(busy) != 1 else ''}"
    return f"{count} in progress cut short: {names}"


@asynccontextmanager
async def open_db(db: str | None) -> AsyncIterator[Store | None]:
    """The store of ``--db`` for the block (``None``: no store).

    Raises:
        UsageProblem: it cannot be opened (a corrupt or foreign file, a newer schema,
            a read-only path, a server that does not answer); the message says which.
    """
    if db is None:
        yield None
        return
    from ..store import open_store

    async with AsyncExitStack() as stack:
        try:
            store = await stack.enter_async_context(open_store(db))
        except Exception as exc:
            raise UsageProblem(
                f"cannot open the store --db {redact(db)}: {redact(str(exc))}"
            ) from exc
        yield store


def _startup_problem(exc: BaseException) -> OSError | UsageProblem | None:
    """The one bind error or missing credential behind ``exc`` (which the nurseries
    may have wrapped in exception groups), else ``None``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError | UsageProblem) else None
