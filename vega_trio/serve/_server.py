"""Running the server: Hypercorn's Trio worker inside the caller's nursery."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ..dsl._interpreter import Runner
from ..observability import metrics_collector
from ..orchestrator import Orchestrator
from ._app import create_app
from ._config import ServeConfig
from ._state import ServerState

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


async def serve(
    orch: Orchestrator,
    config: ServeConfig | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    runner: Runner | None = None,
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
    ``server_shutdown`` for a chat reply, ``shutdown`` for ``/api/events``), other
    requests get ``config.graceful_timeout`` seconds, then the chat replies still
    running are cancelled and it returns. Cancelling it stops everything at once.

    Args:
        orch: the orchestrator whose agents, processes and events it serves.
        config: where to listen and what to let in (default :class:`ServeConfig`).
        shutdown_trigger: an async function; its return starts the graceful shutdown.
        runner: a document's workflow runner (``open_runner``): its workflows are
            served under ``/api/workflows`` (without one that list is empty). When it
            has a store, runs the store holds as ``running`` are marked
            ``interrupted`` first (their process died), so they can be resumed.
        task_status: given by ``nursery.start``.
    """
    config = ServeConfig() if config is None else config
    if runner is not None and runner.store is not None:
        # Runs left `running` by a previous process that died are interrupted: marked so
        # (with an event) before anyone can ask, and resumable over the API.
        await runner.mark_interrupted()
    # NOTE: attached now, so /metrics counts everything from the server's start.
    metrics_collector(orch)
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
        finally:
            # The HTTP side is done: the replies still running go with it.
            state.begin_shutdown()
            done.cancel(reason="the server stopped")

    async with trio.open_nursery() as nursery:
        state.nursery = nursery
        urls: list[str] = await nursery.start(run_http, nursery.cancel_scope)
        state.ports = frozenset(p for p in (urlsplit(u).port for u in urls) if p is not None)
        _log.info("vega-trio serve listening on %s", ", ".join(urls))
        task_status.started(urls)
