"""LLM backends, the conversation model and pricing.

Every backend implements the small :class:`LLM` protocol (``generate`` and
``stream``); :class:`AnthropicLLM` is the one on the official ``anthropic`` SDK.
"""

from __future__ import annotations

from ._anthropic import DEFAULT_MODEL, INVALID_JSON_KEY, AnthropicLLM
from ._classify import classify, to_llm_error
from ._messages import (
    ContentBlock,
    Message,
    Role,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    marshal_messages,
    unmarshal_messages,
)
from ._pricing import ModelPrice, PriceTable
from ._protocol import (
    LLM,
    LLMRequest,
    LLMResponse,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ToolInputChunk,
    ToolSchema,
    Usage,
)

__all__ = [
    "DEFAULT_MODEL",
    "INVALID_JSON_KEY",
    "LLM",
    "AnthropicLLM",
    "ContentBlock",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "MessageComplete",
    "ModelPrice",
    "PriceTable",
    "Role",
    "StreamChunk",
    "TextBlock",
    "TextChunk",
    "ToolInputChunk",
    "ToolResultBlock",
    "ToolSchema",
    "ToolUseBlock",
    "Usage",
    "classify",
    "marshal_messages",
    "to_llm_error",
    "unmarshal_messages",
]
