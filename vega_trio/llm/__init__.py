"""LLM backends, the conversation model and pricing.

Every backend implements the small :class:`LLM` protocol (``generate`` and
``stream``); :class:`AnthropicLLM` is the one on the official ``anthropic`` SDK,
:class:`OpenAICompatibleLLM` the one on the ``openai`` SDK (OpenAI, Ollama, vLLM,
llama.cpp servers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._messages import (
    ContentBlock,
    Message,
    RedactedThinkingBlock,
    Role,
    ServerBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    marshal_messages,
    unmarshal_messages,
)
from ._pricing import ModelPrice, PriceTable
from ._protocol import (
    DEFAULT_MODEL,
    INVALID_JSON_KEY,
    LLM,
    LLMRequest,
    LLMResponse,
    MessageComplete,
    StreamChunk,
    TextChunk,
    ThinkingChunk,
    ToolInputChunk,
    ToolSchema,
    Usage,
)

if TYPE_CHECKING:
    from ._anthropic import AnthropicLLM
    from ._classify import classify, to_llm_error
    from ._openai import OpenAICompatibleLLM

# NOTE: the anthropic and openai SDKs take seconds to import; load them only when used, so
# offline work (the scripted LLM, validation, --help) starts fast.
_LAZY = {
    "AnthropicLLM": "._anthropic",
    "classify": "._classify",
    "to_llm_error": "._classify",
    "OpenAICompatibleLLM": "._openai",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


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
    "OpenAICompatibleLLM",
    "PriceTable",
    "RedactedThinkingBlock",
    "Role",
    "ServerBlock",
    "StreamChunk",
    "TextBlock",
    "TextChunk",
    "ThinkingBlock",
    "ThinkingChunk",
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
