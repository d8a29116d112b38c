"""The offline model behind ``--llm scripted``: deterministic replies, no network.

It is a :class:`~vega_trio.testing.ScriptedLLM` with a responder that follows a few
simple rules, so every ``.vega.yaml`` file can be run (and its data flow checked)
without an API key:

1. **Text.** The reply is ``[<agent>] <first line of the latest user message>``,
   shortened to :data:`REPLY_WIDTH` characters. The agent is recognised by its
   ``system`` prompt (the longest one contained in the request's system prompt).
2. **JSON.** When that message mentions ``JSON`` (as a ``format: json`` step's
   instruction does), the reply is valid JSON: an array of three strings
   (``["<agent> item 1", ...]``) when the message also says ``array`` or ``list``,
   otherwise an object ``{"agent": "<agent>", "reply": "<first line>"}``.
3. **Tools.** When the message names one of the request's tools in backticks followed
   by a JSON object (``Use `word_count` with {"text": "hi"}``), the model calls that
   tool once with those arguments (no object: no arguments), then replies
   ``[<agent>] <tool> returned: <first line of the result>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final

from ..llm._messages import Message, ToolUseBlock
from ..llm._protocol import LLMRequest
from ..testing import ScriptedLLM, Step

__all__ = ["REPLY_WIDTH", "offline_llm", "shorten"]

#: Replies quote at most this many characters of what they answer.
REPLY_WIDTH: Final = 72

_JSON_WORD: Final = re.compile(r"\bjson\b", re.IGNORECASE)
_LIST_WORD: Final = re.compile(r"\b(array|list)\b", re.IGNORECASE)
_TOOL_MENTION: Final = re.compile(r"`([A-Za-z0-9_.\-]+)`")
_END_OF_CONTEXT: Final = "--- end of context ---"


def shorten(text: str, width: int = REPLY_WIDTH) -> str:
    """The first non-blank line of ``text``, cut to ``width`` characters (with ``…``)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def offline_llm(agents: Iterable[tuple[str, str]] = ()) -> ScriptedLLM:
    """A scripted model that answers every request by the rules in this module's
    docstring.

    Args:
        agents: ``(name, system prompt)`` pairs, used to tell which agent is asking.

    Returns:
        A fresh :class:`~vega_trio.testing.ScriptedLLM` (no script, only the responder).
    """
    # NOTE: longest prompt first, so an agent whose prompt contains another's wins.
    systems = sorted(
        ((system.strip(), name) for name, system in agents if system.strip()),
        key=lambda pair: -len(pair[0]),
    )

    def agent_of(request: LLMRequest) -> str:
        for system, name in systems:
            if system in request.system:
                return name
        return "assistant"

    def respond(request: LLMRequest) -> Step:
        agent = agent_of(request)
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role == "user" and last.tool_results and not last.text:
            result = last.tool_results[0]
            tool = _tool_name(request.messages, result.tool_use_id)
            verb = "failed" if result.is_error else "returned"
            return Step.text(f"[{agent}] {tool} {verb}: {shorten(result.content)}")
        text = next((m.text for m in reversed(request.messages) if m.role == "user" and m.text), "")
        # A delegate's message starts with the delegation context block: answer the ask.
        if text.lstrip().startswith("--- context from ") and _END_OF_CONTEXT in text:
            text = text.split(_END_OF_CONTEXT, 1)[1]
        call = _tool_call(text, {tool.name for tool in request.tools})
        if call is not None:
            return Step.tool_call(call[0], call[1])
        if _JSON_WORD.search(text):
            reply: Any
            if _LIST_WORD.search(text):
                reply = [f"{agent} item {i}" for i in (1, 2, 3)]
            else:
                reply = {"agent": agent, "reply": shorten(text)}
            return Step.text(json.dumps(reply, ensure_ascii=False))
        return Step.text(f"[{agent}] {shorten(text)}")

    return ScriptedLLM(responder=respond)


def _tool_call(text: str, offered: set[str]) -> tuple[str, dict[str, Any]] | None:
    for match in _TOOL_MENTION.finditer(text):
        name = match.group(1)
        if name not in offered:
            continue
        rest = text[match.end() :]
        brace = rest.find("{")
        # Arguments are the JSON object that follows on the same line, if any.
        if brace < 0 or "\n" in rest[:brace]:
            return name, {}
        try:
            arguments, _ = json.JSONDecoder().raw_decode(rest[brace:])
        except ValueError:
            return name, {}
        return name, arguments if isinstance(arguments, dict) else {}
    return None


def _tool_name(messages: Iterable[Message], tool_use_id: str) -> str:
    for message in messages:
        for block in message.content:
            if isinstance(block, ToolUseBlock) and block.id == tool_use_id:
                return block.name
    return "the tool"
