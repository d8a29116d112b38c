"""The orchestrator's configuration: one frozen object, built once.

:class:`OrchestratorConfig` holds everything :func:`~vega_trio.open_orchestrator` and
:func:`~vega_trio.run_orchestrator` take. Each field checks itself (a field validator
with a message that names the field and what to do), so a bad value fails where the
config is built — in the DSL builder, a server's settings, a test — not at the first
spawn. Change one with :func:`attrs.evolve` (``open_orchestrator(config, **overrides)``
does exactly that).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .llm import DEFAULT_MODEL, LLM, PriceTable
from .observability._health import HealthConfig
from .resilience import Budget, RateLimit, parse_money
from .store import Store
from .tools import Sandbox, Tool, Tools
from .tools.mcp import MCPServerConfig

__all__ = ["OrchestratorConfig"]


def _check_event_history(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"event_history must be a whole number of events, 0 or more (0 keeps none), "
            f"got {value!r}"
        )


def _positive_int_or_none(name: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"OrchestratorConfig.{name} must be a whole number of at least 1 (or None "
                f"for no limit), got {value!r}"
            )

    return check


def _check_shutdown_timeout(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(
            "OrchestratorConfig.shutdown_timeout must be a number of seconds >= 0 (how long "
            f"a graceful shutdown may take before the rest is cancelled), got {value!r}"
        )


def _check_mailbox_size(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"OrchestratorConfig.mailbox_size must be a whole number of at least 1, got {value!r}"
        )


def _check_default_model(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            "OrchestratorConfig.default_model must be a non-empty model id such as "
            f"{DEFAULT_MODEL!r} or 'openai:gpt-4o-mini', got {value!r}"
        )


def _check_llm(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (hasattr(value, "generate") and hasattr(value, "stream")):
        raise TypeError(
            "OrchestratorConfig.llm must be an LLM backend (AnthropicLLM, "
            "OpenAICompatibleLLM, vega_trio.testing.ScriptedLLM, ...) or None, "
            f"not {type(value).__name__}"
        )


def _as_budget(value: Budget | str | float | None) -> Budget | None:
    if value is None or isinstance(value, Budget):
        return value
    if isinstance(value, bool):
        raise TypeError("OrchestratorConfig.budget must be a Budget or an amount, not a bool")
    return Budget(limit=parse_money(value))


def _check_rate_limit(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, RateLimit):
        raise TypeError(
            f"OrchestratorConfig.rate_limit must be a RateLimit, not {type(value).__name__}"
        )


def _as_rate_limits(value: Mapping[str, RateLimit] | None) -> Mapping[str, RateLimit]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            "OrchestratorConfig.rate_limits must map model ids to RateLimit objects, "
            f"not {type(value).__name__}"
        )
    for model, spec in value.items():
        if not isinstance(spec, RateLimit):
            raise TypeError(
                f"rate_limits[{model!r}] must be a RateLimit, not {type(spec).__name__}"
            )
    return dict(value)


def _as_tools(tools: Tools | Sequence[Callable[..., Any] | Tool] | None) -> Tools:
    if isinstance(tools, Tools):
        return tools
    if tools is not None and (isinstance(tools, str | bytes) or not isinstance(tools, Sequence)):
        raise TypeError(
            "open_orchestrator(tools=...) takes a Tools registry or a list of functions / "
            f"Tool objects, not {type(tools).__name__}"
        )
    registry = Tools()
    for tool in tools or ():
        registry.register(tool)
    return registry


def _as_sandbox(value: str | os.PathLike[str] | Sandbox | None) -> Sandbox | None:
    if value is None or isinstance(value, Sandbox):
        return value
    return Sandbox(value)


def _as_servers(value: Iterable[MCPServerConfig]) -> tuple[MCPServerConfig, ...]:
    servers = tuple(value)
    for i, server in enumerate(servers):
        if not isinstance(server, MCPServerConfig):
            raise TypeError(
                f"OrchestratorConfig.mcp_servers[{i}] must be an MCPServerConfig, "
                f"not {type(server).__name__}"
            )
    return servers


def _as_backends(value: Mapping[str, LLM] | None) -> Mapping[str, LLM]:
    backends = dict(value or {})
    for provider in backends:
        if provider not in ("anthropic", "openai"):
            raise ValueError(
                f"OrchestratorConfig.backends has an unknown provider {provider!r}; "
                "use 'anthropic' or 'openai' (the prefix of model: '<provider>:<name>')"
            )
    return backends


def _check_max_concurrent(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    from .resilience import ConcurrencyCap

    ConcurrencyCap(value)  # its own message says what is wrong


def _check_store(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, Store):
        raise TypeError(
            "OrchestratorConfig.store must be a vega_trio.store.Store (open one with "
            "vega_trio.store.open_store(path)), or None for no durable state, not "
            f"{type(value).__name__}"
        )


def _check_health(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, HealthConfig):
        raise TypeError(
            "OrchestratorConfig.health must be a vega_trio.observability.HealthConfig (or "
            f"None for no health alerts), not {type(value).__name__}"
        )


@attrs.frozen(kw_only=True)
class OrchestratorConfig:
    """Everything an orchestrator is opened with (SPEC §1.2)::

        config = OrchestratorConfig(llm=ScriptedLLM.echo(), max_processes=100)
        async with open_orchestrator(config, shutdown_timeout=2) as orch: ...

    Convenient forms are normalised when the config is built: ``budget="$5"`` becomes a
    :class:`~vega_trio.resilience.Budget`, ``tools=[fn, ...]`` a
    :class:`~vega_trio.tools.Tools` registry, ``sandbox="dir"`` a
    :class:`~vega_trio.tools.Sandbox`.

    Attributes:
        llm: the default backend; ``None`` creates an :class:`~vega_trio.llm.AnthropicLLM`
            (reading ``ANTHROPIC_API_KEY``) when the first agent without its own backend
            is spawned.
        default_model: the model of agents that name none.
        max_processes: the most live processes at once (finished ones don't count).
        shutdown_timeout: seconds processes get to finish their current message at
            shutdown before they are cancelled.
        prices: the price table (``None``: the packaged one).
        mailbox_size: each process's bounded mailbox.
        budget: the global budget (a ``Budget``, or an amount such as ``"$5.00"`` for a
            ``block`` budget); every agent's spend counts against it.
        rate_limit: requests/tokens per minute of *each* model.
        rate_limits: per-model limits by model id; they replace ``rate_limit`` there.
        max_concurrent_calls: at most this many LLM calls in flight per backend.
        tools: tools every agent can ask for by name.
        sandbox: a directory (or ``Sandbox``) for the built-in file and command tools.
        mcp_servers: MCP servers to connect before the orchestrator is ready.
        backends: backends by provider for ``model: "<provider>:<name>"``.
        propagate_supervisor_failures: a top-level tree that gives up ends the
            orchestrator with its :class:`~vega_trio.RestartIntensityError`.
        store: the durable state (a :class:`~vega_trio.store.Store`, from
            :func:`~vega_trio.store.open_store`): every event, process, LLM call's
            cost, the budgets' spend and the sessions' conversations are written to it,
            and an orchestrator opened on it continues from them (event numbers, spend,
            conversations; see docs/persistence.md). ``None``: nothing is kept.
        event_history: how many of the latest events the bus keeps for
            ``subscribe(after=seq)`` to replay (0: none, the default: nothing is kept).
        health: the thresholds of ``health.alert`` events (a
            :class:`~vega_trio.observability.HealthConfig`); ``None`` (the default)
            runs no health monitor, so an agent run pays nothing for it (the monitor
            reads every ``llm.call`` and ``tool.*`` event, which the bus otherwise
            does not even build). ``vega-trio serve`` turns it on.
    """

    llm: LLM | None = attrs.field(default=None, validator=_check_llm)
    default_model: str = attrs.field(default=DEFAULT_MODEL, validator=_check_default_model)
    max_processes: int | None = attrs.field(
        default=None, validator=_positive_int_or_none("max_processes")
    )
    shutdown_timeout: float = attrs.field(default=10.0, validator=_check_shutdown_timeout)
    prices: PriceTable | None = None
    mailbox_size: int = attrs.field(default=64, validator=_check_mailbox_size)
    budget: Budget | None = attrs.field(default=None, converter=_as_budget)
    rate_limit: RateLimit | None = attrs.field(default=None, validator=_check_rate_limit)
    rate_limits: Mapping[str, RateLimit] = attrs.field(factory=dict, converter=_as_rate_limits)
    max_concurrent_calls: int | None = attrs.field(default=None, validator=_check_max_concurrent)
    tools: Tools = attrs.field(factory=Tools, converter=_as_tools)
    sandbox: Sandbox | None = attrs.field(default=None, converter=_as_sandbox)
    mcp_servers: tuple[MCPServerConfig, ...] = attrs.field(default=(), converter=_as_servers)
    backends: Mapping[str, LLM] = attrs.field(factory=dict, converter=_as_backends)
    propagate_supervisor_failures: bool = False
    store: Store | None = attrs.field(default=None, validator=_check_store)
    event_history: int = attrs.field(default=0, validator=_check_event_history)
    health: HealthConfig | None = attrs.field(default=None, validator=_check_health)
