"""Running the server: Hypercorn's Trio worker inside the caller's nursery."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ..dsl._interpreter import Runner
from ..observability import Tracing, instrument, metrics_collector, tracing_from_env
from ..observability._tracing import OTEL_EXTRA_HINT
from ..orchestrator import Orchestrator
from ..store._open import RETENTION_INTERVAL, prune_loop
from ._app import create_app
from ._compose import restore_agents
from ._config import ServeConfig
from ._state import ServerState
from ._telegram import run_telegram

__all__ = ["serve"]

_log = logging.getLogger("vega_trio.serve")


def _hypercorn_config(config: ServeConfig) -> HypercornConfig:
    hconfig = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hconfig.bind = [f"{host}:{config.port}"]
    hconfig.graceful_timeout = config.graceful_timeout
    hconfig.accesslog = None
    hconfig.errorlog = _log
    hconfig.include_server_header = False
    # WebSocket: one message is bounded like a request body (1009 past it).
    # NOTE: not Hypercorn's websocket_ping_interval: its ping task outlives a closed
    # connection and holds a graceful shutdown for the whole graceful_timeout; /api/ws
    # sends its own heartbeat message instead (_ws.py).
    hconfig.websocket_max_message_size = config.max_body_bytes
    return hconfig


async def serve(  # noqa: ASYNC128 - _serve calls task_status.started()
    orch: Orchestrator,
    config: ServeConfig | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    runner: Runner | None = None,
    tracer_provider: Any = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``orch`` over HTTP (REST and SSE, SPEC §10) until told to stop::

        async with open_orchestrator(llm=...) as orch, trio.open_nursery() as nursery:
            urls = await nursery.start(serve, orch, ServeConfig(port=0))

    Supports ``nursery.start``: ``started()`` is called with the list of bound URLs
    (``["http://127.0.0.1:54321"]``, the real port when ``port`` is 0) once the socket
    listens; a failure to bind is raised from ``nursery.start``.

    It stops gracefully when ``shutdown_trigger`` returns or the orchestrator starts
    closing (:meth:`~vega_trio.Orchestrator.close`): new connections are refused, every
    open stream ends at once with a final event (``error`` with ``error_class``
    ``server_shutdown`` for a chat reply, ``shutdown`` for ``/api/events``); other
    requests and the chat replies still running get ``config.graceful_timeout``
    seconds to finish (a finished reply is kept in its conversation), then what
    still runs (replies, workflow runs, which become ``interrupted``) is cancelled
    and it returns. Cancelling it stops everything at once.

    OpenTelemetry: with ``tracer_provider`` the orchestrator's spans go there;
    otherwise ``config.otel`` decides (by default the standard ``OTEL_*``
    environment: :func:`~vega_trio.observability.tracing_from_env`; a provider made
    from it is flushed and shut down when the server stops).

    Args:
        orch: the orchestrator whose agents, processes and events it serves.
        config: where to listen and what to let in (default :class:`ServeConfig`).
        shutdown_trigger: an async function; its return starts the graceful shutdown.
        runner: a document's workflow runner (``open_runner``): its workflows are
            served under ``/api/workflows`` (without one that list is empty). When it
            has a store, runs the store holds as ``running`` are marked
            ``interrupted`` first (their process died), so they can be resumed.
        tracer_provider: an OpenTelemetry tracer provider for the orchestrator's
            spans (the caller owns it); without one, ``config.otel`` decides.
        task_status: given by ``nursery.start``.
    """
    config = ServeConfig() if config is None else config
    if runner is not None and runner.store is not None:
        # Runs left `running` by a previous process that died are interrupted: marked so
        # (with an event) before anyone can ask, and resumable over the API.
        await runner.mark_interrupted()
    if orch.persistence is not None:
        # Composed agents saved by a previous process are defined again before anyone
        # can ask for them (after the document's agents: a name there wins).
        await restore_agents(
            orch,
            settings=runner.document.settings if runner is not None else None,
            base_dir=runner.base_dir if runner is not None else None,
        )
    # NOTE: attached now, so /metrics counts everything from the server's start.
    metrics_collector(orch)
    tracing = _start_tracing(orch, config, tracer_provider)
    try:
        await _serve(orch, config, shutdown_trigger, runner, task_status)
    finally:
        if tracing is not None:
            await _stop_tracing(orch, tracing)  # noqa: ASYNC102 - shielded, bounded inside


def _start_retention(orch: Orchestrator, config: ServeConfig, nursery: trio.Nursery) -> None:
    """Prune the store as ``config.retention_days`` says, in the background for as long
    as the server runs (the first pass at once: it never holds the start)."""
    if config.retention_days is None:
        return
    if orch.persistence is None:
        _log.warning(
            "ServeConfig(retention_days=%g) but the orchestrator has no store: nothing "
            "is kept, so nothing is pruned",
            config.retention_days,
        )
        return
    _log.info(
        "store retention: rows older than %g days are deleted now and every %g s",
        config.retention_days,
        RETENTION_INTERVAL,
    )
    nursery.start_soon(prune_loop, orch.persistence.store, config.retention_days)


def _start_tracing(orch: Orchestrator, config: ServeConfig, provider: Any) -> Tracing | None:
    """Instrument ``orch`` as ``config.otel`` says; returns the tracing this server
    made from the environment (it flushes and stops it when it ends)."""
    if provider is not None:
        instrument(orch, tracer_provider=provider)
        return None
    if config.otel is False:
        return None
    tracing = tracing_from_env()
    if tracing is not None:
        instrument(orch, tracer_provider=tracing.provider)
        _log.info("OpenTelemetry: spans go to %s", tracing.destination)
        return tracing
    if config.otel:
        try:
            from opentelemetry import trace
        except ImportError:
            _log.warning(
                "ServeConfig(otel=True) but OpenTelemetry is not installed: %s; serving "
                "without traces",
                OTEL_EXTRA_HINT,
            )
            return None
        instrument(orch)
        if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
            _log.warning(
                "ServeConfig(otel=True) but no exporter is configured: set "
                "OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT, or set a global "
                "tracer provider; spans go nowhere until then"
            )
        else:
            _log.info("OpenTelemetry: spans go to the application's global tracer provider")
    return None


async def _stop_tracing(orch: Orchestrator, tracing: Tracing) -> None:
    """End the spans still open and export what is buffered (bounded: a collector
    that does not answer must not hold the shutdown)."""
    instrumentation = orch._observers.pop("otel", None)
    close = getattr(instrumentation, "close", None)
    if close is not None:
        close()
    with trio.move_on_after(5, shield=True):
        await trio.to_thread.run_sync(tracing.shutdown, abandon_on_cancel=True)


async def _serve(  # noqa: ASYNC114 - only serve() starts it, passing its task_status
    orch: Orchestrator,
    config: ServeConfig,
    shutdown_trigger: Callable[[], Awaitable[object]] | None,
    runner: Runner | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    state = ServerState(orch, config, runner=runner)
    app = create_app(state)

    async def trigger() -> None:
        async with trio.open_nursery() as nursery:

            async def first(wait: Callable[[], Awaitable[object]]) -> None:
                await wait()
                nursery.cancel_scope.cancel(reason="shutdown requested")

            nursery.start_soon(first, orch._close_requested.wait)
            nursery.start_soon(first, state.stop_requested.wait)
            if shutdown_trigger is not None:
                nursery.start_soon(first, shutdown_trigger)
        state.begin_shutdown()

    async def run_http(  # noqa: ASYNC114, ASYNC128 - hypercorn's serve calls started()
        done: trio.CancelScope, *, task_status: trio.TaskStatus[list[str]]
    ) -> None:
        try:
            await hypercorn_serve(
                app,
                _hypercorn_config(config),
                shutdown_trigger=trigger,
                task_status=task_status,
            )
            # The HTTP side is done; the replies still running get until the
            # shutdown deadline to finish (and be kept in their conversation).
            state.begin_shutdown()
            with trio.move_on_at(state.shutdown_deadline):
                while state.in_flight:
                    await next(iter(state.in_flight)).finished.wait()
                if state.telegram is not None:  # finished replies still being sent
                    await state.telegram.drained()
        finally:
            # Whatever still runs (replies past the deadline, workflow runs) goes now.
            state.begin_shutdown()
            done.cancel(reason="the server stopped")

    async with trio.open_nursery() as nursery:
        state.nursery = nursery
        urls: list[str] = await nursery.start(run_http, nursery.cancel_scope)
        _start_retention(orch, config, nursery)
        if config.telegram is not None:
            await nursery.start(run_telegram, state, config.telegram)
        state.ports = frozenset(p for p in (urlsplit(u).port for u in urls) if p is not None)
        _log.info("vega-trio serve listening on %s", ", ".join(urls))
        task_status.started(urls)
