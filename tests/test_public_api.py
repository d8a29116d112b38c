from __future__ import annotations

import vega_trio
import vega_trio.agent
import vega_trio.events
import vega_trio.llm
import vega_trio.observability
import vega_trio.resilience
import vega_trio.runtime
import vega_trio.serve
import vega_trio.testing
import vega_trio.tools


def test_top_level_all_is_pinned() -> None:
    """The public top-level API is exactly this list (additions are deliberate)."""
    assert sorted(vega_trio.__all__) == sorted(
        [
            "LLM",
            "Agent",
            "AgentProcess",
            "AnthropicLLM",
            "HealthConfig",
            "Backoff",
            "Budget",
            "BudgetExceeded",
            "CircuitBreaker",
            "CircuitOpen",
            "RateLimit",
            "RateLimited",
            "RetryPolicy",
            "ChatEvent",
            "ChildFailed",
            "ChildNotFound",
            "ChildRunning",
            "ChildStartFailed",
            "DuplicateChild",
            "RestartIntensityError",
            "SupervisorError",
            "SupervisorNotRunning",
            "ChatStream",
            "DoneEvent",
            "ErrorEvent",
            "Supervision",
            "Supervisor",
            "SupervisorSpec",
            "ChildSpec",
            "open_supervisor",
            "TextDeltaEvent",
            "ToolEndEvent",
            "ToolStartEvent",
            "Down",
            "DuplicateTool",
            "ErrorClass",
            "InputFileError",
            "ExitReason",
            "ExitSignal",
            "Future",
            "LinkedProcessError",
            "LLMError",
            "MaxIterationsExceeded",
            "Message",
            "Monitor",
            "MonitorRemoved",
            "NameTaken",
            "Orchestrator",
            "OrchestratorClosed",
            "OrchestratorConfig",
            "Process",
            "ProcessError",
            "ProcessExited",
            "ProcessNotFound",
            "ProcessNotRunning",
            "ProcessStatus",
            "RequestCancelled",
            "RequestError",
            "SendTimeout",
            "TextStream",
            "TooManyProcesses",
            "Tool",
            "ToolError",
            "ToolNotFound",
            "ToolSchemaError",
            "Tools",
            "VegaError",
            "__version__",
            "add_meta_agents",
            "current_process",
            "marshal_messages",
            "open_orchestrator",
            "run_orchestrator",
            "unmarshal_messages",
            "AgentDefinition",
            "AgentExists",
            "AgentNotFound",
            "AgentRegistry",
            "AgentSource",
        ]
    )


def test_observability_all_is_pinned() -> None:
    """vega_trio.observability exports exactly these names."""
    assert sorted(vega_trio.observability.__all__) == [
        "HealthConfig",
        "HealthMonitor",
        "MetricsCollector",
        "Tracing",
        "health_status",
        "instrument",
        "metrics_collector",
        "render_metrics",
        "tracing_from_env",
    ]


def test_every_exported_name_exists() -> None:
    """Each subpackage's __all__ names real attributes."""
    for module in (
        vega_trio,
        vega_trio.agent,
        vega_trio.events,
        vega_trio.llm,
        vega_trio.observability,
        vega_trio.resilience,
        vega_trio.runtime,
        vega_trio.serve,
        vega_trio.testing,
        vega_trio.tools,
    ):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_every_error_derives_from_vega_error() -> None:
    """All exported exception classes share the VegaError root."""
    errors = [
        getattr(vega_trio, n)
        for n in vega_trio.__all__
        if isinstance(getattr(vega_trio, n), type) and issubclass(getattr(vega_trio, n), Exception)
    ]
    assert errors
    assert all(issubclass(e, vega_trio.VegaError) for e in errors)


def test_serve_all_is_pinned() -> None:
    """vega_trio.serve exports exactly the server's public names."""
    assert sorted(vega_trio.serve.__all__) == [
        "DEFAULT_ADDR",
        "RequestRejected",
        "ServeConfig",
        "TelegramConfig",
        "TelegramError",
        "create_app",
        "parse_addr",
        "restore_agents",
        "serve",
    ]
