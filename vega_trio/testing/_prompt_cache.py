"""The fake Anthropic server's prompt cache: what a request's ``cache_control``
breakpoints write and read, and the usage that follows (see
:class:`~vega_trio.testing.FakeAnthropicServer`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..llm._protocol import Usage

__all__ = ["MAX_BREAKPOINTS", "PromptCache", "count_breakpoints", "count_tokens"]

#: The most ``cache_control`` blocks a request may carry (more is a 400, as on the API).
MAX_BREAKPOINTS: Final = 4

#: How many blocks before a breakpoint the cache is searched for an earlier prefix.
_LOOKBACK_BLOCKS: Final = 20


def count_tokens(text: str) -> int:
    """The fake tokenizer: a token per four characters (at least one)."""
    return max(1, -(-len(text) // 4))


def _prompt_blocks(body: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """The prompt's blocks in cache order (tools, system, messages) as canonical JSON
    without their ``cache_control``, and whether each carries one."""
    blocks: list[tuple[str, bool]] = []

    def add(kind: str, block: object) -> None:
        if not isinstance(block, Mapping):
            block = {"type": "text", "text": str(block)}
        marked = "cache_control" in block
        plain = {k: v for k, v in block.items() if k != "cache_control"}
        blocks.append((f"{kind}:{json.dumps(plain, sort_keys=True)}", marked))

    for tool in body.get("tools") or ():
        add("tool", tool)
    system = body.get("system")
    for block in [system] if isinstance(system, str) and system else system or ():
        add("system", block)
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        for block in [content] if isinstance(content, str) else content or ():
            add(str(message.get("role")), block)
    return blocks


def count_breakpoints(body: Mapping[str, Any]) -> int:
    """How many blocks of the request carry ``cache_control``."""
    return sum(marked for _, marked in _prompt_blocks(body))


@attrs.define(eq=False)
class PromptCache:
    """Cached prompt prefixes (by the digest of the prefix) and when each expires."""

    _expiry: dict[str, float] = attrs.field(factory=dict)

    def usage(
        self,
        body: Mapping[str, Any],
        scripted: Usage,
        *,
        count_all: bool,
        min_tokens: int,
        ttl: float,
        now: float,
    ) -> Usage | None:
        """The usage of a request counted from its prompt, through the cache.

        The prefix up to each breakpoint of at least ``min_tokens`` is written; the
        longest prefix in the cache at a breakpoint, or up to 20 blocks before one, is
        read. Returns ``None`` (report ``scripted`` as it is) for a request without
        breakpoints unless ``count_all``; the output tokens are always ``scripted``'s.
        """
        blocks = _prompt_blocks(body)
        breakpoints = [i for i, (_, marked) in enumerate(blocks) if marked]
        if not breakpoints and not count_all:
            return None
        digests: list[str] = []
        totals: list[int] = []
        chain = hashlib.sha256()
        total = 0
        for text, _ in blocks:
            chain.update(text.encode())
            chain.update(b"\x00")
            digests.append(chain.hexdigest())
            total += count_tokens(text)
            totals.append(total)
        read_at = -1
        for breakpoint in breakpoints:
            for position in range(breakpoint, max(-1, breakpoint - _LOOKBACK_BLOCKS), -1):
                if self._expiry.get(digests[position], -1.0) > now:
                    read_at = max(read_at, position)
                    break
        written = [b for b in breakpoints if totals[b] >= min_tokens]
        for position in [*written, read_at] if read_at >= 0 else written:
            self._expiry[digests[position]] = now + ttl  # a read refreshes the lifetime
        read = totals[read_at] if read_at >= 0 else 0
        last_write = max(written, default=-1)
        creation = totals[last_write] - read if last_write > read_at else 0
        return Usage(
            input_tokens=total - read - creation,
            output_tokens=scripted.output_tokens,
            cache_creation_input_tokens=creation,
            cache_read_input_tokens=read,
        )
