"""Anthropic prompt caching: where :class:`~vega_trio.llm.AnthropicLLM` puts its
``cache_control`` breakpoints.

The API caches the prompt prefix up to each block marked ``cache_control`` (in the order
tools → system → messages); a later request with the same prefix reads it back. A cache
write costs 1.25 times the input price (the 5-minute cache), a read 0.1 times, so a prefix pays
for itself the first time it is read again. Prefixes shorter than the model's minimum
cacheable length are not cached at all (and not charged as writes), and a request may
carry at most :data:`MAX_BREAKPOINTS` breakpoints.

An agent resends its tool definitions and system prompt on every call, and every call of
a conversation resends the whole history before it, so up to four breakpoints go:

1. on the last tool definition (the tools are the first part of the prefix);
2. on the system prompt (tools + system: the same for every call of the agent);
3. on the last block of the last user turn: the rolling breakpoint, which writes the
   conversation so far;
4. on the last block of the user turn before it: where the previous call put its
   rolling breakpoint, so this call reads exactly what that one wrote.

A breakpoint is placed only where the prefix up to it is estimated
(:func:`estimate_tokens`) to reach the model's minimum (:func:`min_cacheable_tokens`):
below it the API would not cache, and a short request keeps its plain wire form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "CACHE_CONTROL",
    "MAX_BREAKPOINTS",
    "add_cache_breakpoints",
    "estimate_tokens",
    "min_cacheable_tokens",
]

#: The marker of a breakpoint (the default 5-minute cache).
CACHE_CONTROL: Final[Mapping[str, str]] = {"type": "ephemeral"}

#: The most ``cache_control`` blocks the API accepts in one request.
MAX_BREAKPOINTS: Final = 4

#: Characters per token of the estimate (English text and JSON average about four).
CHARS_PER_TOKEN: Final = 4

# The minimum cacheable prompt length by model family, most specific prefix first
# (Anthropic's prompt-caching documentation); a model not listed gets the default.
_MINIMUMS: Final[tuple[tuple[str, int], ...]] = (
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
)
_DEFAULT_MINIMUM: Final = 1024

# Blocks the API does not let a request mark (thinking is cached with its turn).
_UNMARKABLE: Final = frozenset({"thinking", "redacted_thinking"})


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix, in tokens, the API caches for ``model``."""
    for prefix, minimum in _MINIMUMS:
        if model.startswith(prefix):
            return minimum
    return _DEFAULT_MINIMUM


def estimate_tokens(value: object) -> int:
    """A rough token count of ``value``'s JSON (``CHARS_PER_TOKEN`` characters a token)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return -(-len(text) // CHARS_PER_TOKEN)


def _marked(block: Mapping[str, Any]) -> dict[str, Any]:
    return {**block, "cache_control": dict(CACHE_CONTROL)}


def add_cache_breakpoints(arguments: dict[str, Any]) -> int:
    """Mark the cacheable prefixes of a Messages API request (see the module docstring).

    Args:
        arguments: the request's ``model``, ``tools``, ``system`` and ``messages`` in
            their wire form; changed in place (the marked blocks are copies, so objects
            shared with the conversation are left alone).

    Returns:
        How many breakpoints were placed.
    """
    minimum = min_cacheable_tokens(str(arguments.get("model", "")))
    placed = 0
    prefix = 0
    tools: list[Any] | None = arguments.get("tools")
    if tools:
        prefix += estimate_tokens(tools)
        if prefix >= minimum:
            tools[-1] = _marked(tools[-1])
            placed += 1
    system = arguments.get("system")
    if isinstance(system, str) and system:
        prefix += estimate_tokens(system)
        if prefix >= minimum:
            arguments["system"] = [_marked({"type": "text", "text": system})]
            placed += 1
    messages: list[dict[str, Any]] = arguments.get("messages") or []
    sizes = [estimate_tokens(m) for m in messages]
    user_turns = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    # NOTE: at most two before this point, so the two turns keep within MAX_BREAKPOINTS.
    for index in reversed(user_turns[-2:]):
        if prefix + sum(sizes[: index + 1]) >= minimum and _mark_turn(messages, index):
            placed += 1
    return placed


def _mark_turn(messages: list[dict[str, Any]], index: int) -> bool:
    """Put a breakpoint on the last markable block of ``messages[index]``."""
    content: Sequence[Any] = messages[index].get("content") or ()
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    blocks = list(content)
    for position in range(len(blocks) - 1, -1, -1):
        block = blocks[position]
        if isinstance(block, Mapping) and block.get("type") not in _UNMARKABLE:
            blocks[position] = _marked(block)
            messages[index] = {**messages[index], "content": blocks}
            return True
    return False
