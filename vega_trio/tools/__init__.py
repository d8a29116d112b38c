"""Tools: Python functions (and other callables) the model can call.

Register functions on a :class:`Tools` registry; their JSON schemas come from type hints and
docstrings. :meth:`Tools.execute` validates the model's arguments, runs the tool (sync
functions in a worker thread) under its timeout and middleware, and returns the result as text.
"""

from __future__ import annotations

from ._builtins import (
    BUILTIN_TOOL_NAMES,
    CommandPolicy,
    CommandResult,
    ResourceLimits,
    builtin_tools,
    run_in_sandbox,
)
from ._declarative import DeclarativeTool, ToolImplementation
from ._declarative_core import (
    ExecToolError,
    HttpToolError,
    MissingEnvironmentVariable,
    ToolDefinitionError,
    ToolParam,
)
from ._exec_tool import ExecImplementation
from ._http_tool import HostNotAllowed, HttpImplementation
from ._registry import (
    ArgumentPreparer,
    CallNext,
    Middleware,
    Tool,
    ToolCall,
    ToolHandler,
    Tools,
    ToolTimeout,
    render_result,
)
from ._sandbox import Sandbox, SandboxViolation
from ._schema import (
    ArgumentProblem,
    FunctionSchema,
    ToolArgumentError,
    function_schema,
    json_schema_validator,
    tool_schema,
)
from .mcp import (
    MCPConfigError,
    MCPConnection,
    MCPServerConfig,
    MCPServerError,
    MCPServers,
    MCPServerUnavailable,
    MCPToolError,
    MCPToolInfo,
    open_mcp_servers,
    render_mcp_result,
)

__all__ = [
    "DeclarativeTool",
    "ExecImplementation",
    "ExecToolError",
    "HostNotAllowed",
    "HttpImplementation",
    "HttpToolError",
    "MissingEnvironmentVariable",
    "ToolDefinitionError",
    "ToolImplementation",
    "ToolParam",
    "BUILTIN_TOOL_NAMES",
    "CommandPolicy",
    "CommandResult",
    "ResourceLimits",
    "Sandbox",
    "SandboxViolation",
    "builtin_tools",
    "run_in_sandbox",
    "MCPConfigError",
    "MCPConnection",
    "MCPServerConfig",
    "MCPServerError",
    "MCPServerUnavailable",
    "MCPServers",
    "MCPToolError",
    "MCPToolInfo",
    "open_mcp_servers",
    "render_mcp_result",
    "ArgumentPreparer",
    "ArgumentProblem",
    "CallNext",
    "FunctionSchema",
    "Middleware",
    "Tool",
    "ToolArgumentError",
    "ToolCall",
    "ToolHandler",
    "ToolTimeout",
    "Tools",
    "function_schema",
    "json_schema_validator",
    "render_result",
    "tool_schema",
]
