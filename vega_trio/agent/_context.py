"""Conversation context managers: what part of the history the model sees.

A context manager owns a process's conversation history. The agent loop
:meth:`~ContextManager.add`\\ s every turn, asks :meth:`~ContextManager.messages`
for the list to send, and reports the API's usage back with
:meth:`~ContextManager.record_usage` so that token counts follow what the API
measured rather than a guess.

Three implementations:

* :class:`UnboundedContext` (the default) keeps and sends everything;
* :class:`TokenBudgetContext` drops the oldest turns so that the history fits a
  token budget;
* :class:`SlidingWindowContext` sends the last *n* messages plus an LLM-written
  summary of older turns (:meth:`SlidingWindowContext.compact`).

Every list a context returns is valid for the Anthropic Messages API: it is a
suffix of the conversation that starts with a user turn carrying no tool results,
so a ``tool_use`` is never separated from its ``tool_result``.

Token counts are exact where the API reported usage for a turn, and otherwise an
estimate of about four characters per token (:func:`estimate_tokens`).

All contexts are safe to share between threads and Trio tasks: their state sits
behind a :class:`threading.Lock` that is never held across an ``await``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol, cast, runtime_checkable

import attrs

from ..llm._messages import (
    Message,
    RedactedThinkingBlock,
    ServerBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from ..llm._protocol import LLM, LLMRequest, Usage

__all__ = [
    "SUMMARY_PREFIX",
    "ContextManager",
    "SlidingWindowContext",
    "TokenBudgetContext",
    "UnboundedContext",
    "estimate_message_tokens",
    "estimate_tokens",
]

#: The text that starts the summary turn a :class:`SlidingWindowContext` injects.
SUMMARY_PREFIX = "Summary of the earlier conversation: "

_CHARS_PER_TOKEN = 4

_SUMMARY_SYSTEM_PROMPT = (
    "You summarise conversations for an AI agent that will continue them. Keep every fact, "
    "decision, name, number, open question and tool result the agent may still need. "
    "Write compact plain prose with no preamble."
)


def estimate_tokens(text: str) -> int:
    """Estimate the tokens in ``text`` at about four characters per token.

    This is an estimate, not a tokenizer: real counts vary with language and
    content. Contexts use it only until the API reports real usage.
    """
    return -(-len(text) // _CHARS_PER_TOKEN)


def estimate_message_tokens(message: Message) -> int:
    """Estimate the tokens of one turn (at least 1): text, tool names, tool
    arguments as JSON, tool results, thinking (its text, or a redacted block's data)
    and server tool blocks as JSON, at about four characters per token."""
    chars = 0
    for block in message.content:
        if isinstance(block, TextBlock):
            chars += len(block.text)
        elif isinstance(block, ToolUseBlock):
            chars += len(block.name) + len(_json(block.input))
        elif isinstance(block, ToolResultBlock):
            chars += len(block.content)
        elif isinstance(block, ThinkingBlock):
            chars += len(block.thinking)
        elif isinstance(block, RedactedThinkingBlock):
            chars += len(block.data)
        else:
            chars += len(_json(block.data))
    return max(1, -(-chars // _CHARS_PER_TOKEN))


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@runtime_checkable
class ContextManager(Protocol):
    """What the agent loop needs from a conversation context.

    The loop calls :meth:`add` for every turn (user, assistant, tool results),
    sends :meth:`messages` to the model, then reports the call's usage with
    :meth:`record_usage`. Implementations must be thread- and task-safe.
    """

    def add(self, message: Message) -> None:
        """Append one turn to the conversation."""
        ...

    def extend(self, messages: Iterable[Message]) -> None:
        """Append several turns at once (one send's turns)."""
        ...

    def messages(self) -> list[Message]:
        """The messages to send to the model now (an API-valid list)."""
        ...

    def load(self, messages: Iterable[Message]) -> None:
        """Replace the whole history (spawning with history, restoring a snapshot)."""
        ...

    def snapshot(self) -> list[Message]:
        """Everything the context retains, for saving; :meth:`load` restores it."""
        ...

    def clear(self) -> None:
        """Forget the whole conversation."""
        ...

    def record_usage(self, prompt: Sequence[Message], usage: Usage) -> None:
        """Calibrate token counts with the usage the API reported for ``prompt``.

        ``prompt`` is the list :meth:`messages` returned for that call.
        """
        ...

    def token_count(self) -> int:
        """Tokens of what the context retains: reported where known, else estimated."""
        ...


@attrs.define(eq=False)
class _Entry:
    """One retained turn and what it costs in tokens."""

    message: Message
    tokens: int
    # NOTE: ``exact`` marks counts derived from API usage; estimates are replaced
    # by the next report that covers this turn, exact counts are never re-guessed.
    exact: bool = False


def _entry(message: Message) -> _Entry:
    if not isinstance(message, Message):
        raise TypeError(
            f"a context holds Message objects, got {type(message).__name__}; "
            "wrap text with Message.user(...) or Message.assistant(...)"
        )
    return _Entry(message=message, tokens=estimate_message_tokens(message))


def _is_clean_start(message: Message) -> bool:
    """Whether a conversation may begin with ``message``: a user turn that answers
    no tool call (a leading tool_result would dangle without its tool_use)."""
    return message.role == "user" and not any(
        isinstance(b, ToolResultBlock) for b in message.content
    )


@attrs.define(eq=False)
class _BaseContext:
    """History storage, token accounting and locking shared by every context."""

    _entries: list[_Entry] = attrs.field(init=False, factory=list, repr=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)
    # NOTE: bumped by load(), clear() and a finished compaction; a compaction that
    # started before any of them must not apply its (now stale) result.
    _generation: int = attrs.field(init=False, default=0, repr=False)

    # -- the ContextManager protocol -------------------------------------------------

    def add(self, message: Message) -> None:
        """Append one turn to the conversation."""
        self.extend((message,))

    def extend(self, messages: Iterable[Message]) -> None:
        """Append several turns at once (one send's turns)."""
        # NOTE: map, not a comprehension over self: that made a cell and a function
        # object at every send.
        entries = list(map(self._new_entry, messages))
        with self._lock:
            self._entries.extend(entries)
            self._after_change_locked()

    def _new_entry(self, message: Message) -> _Entry:
        return _entry(message)

    def messages(self) -> list[Message]:
        """The messages to send to the model now (an API-valid list)."""
        with self._lock:
            return self._messages_locked()

    def load(self, messages: Iterable[Message]) -> None:
        """Replace the whole history, e.g. to spawn with an existing conversation or
        to restore a :meth:`snapshot`."""
        entries = [_entry(m) for m in messages]
        with self._lock:
            self._generation += 1
            self._load_locked(entries)
            self._after_change_locked()

    def snapshot(self) -> list[Message]:
        """Everything the context retains, in order, for saving; :meth:`load` restores it."""
        with self._lock:
            return [e.message for e in self._entries]

    def clear(self) -> None:
        """Forget the whole conversation."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._clear_extra_locked()

    def record_usage(self, prompt: Sequence[Message], usage: Usage) -> None:
        """Calibrate token counts with the usage the API reported for ``prompt``.

        Args:
            prompt: the list :meth:`messages` returned for the call (turns are
                matched by identity, so turns added or dropped meanwhile are fine).
            usage: the call's reported usage; every prompt token counts
                (``input_tokens`` plus cache creation and cache reads).

        From the reported total, the context subtracts the turns it already counts
        exactly and the estimate of prompt turns it does not hold (e.g. turns of a
        send not committed yet), and shares the rest among its turns that were
        still estimated, in proportion to their estimates. The system prompt and
        tool schemas therefore count towards the turns too, which is what a token
        budget should cover.
        """
        with self._lock:
            self._apply_usage_locked(prompt, usage)

    def _apply_usage_locked(self, prompt: Sequence[Message], usage: Usage) -> None:
        total = usage.input_tokens + usage.cache_creation_input_tokens
        total += usage.cache_read_input_tokens
        retained = {id(e.message): e for e in self._entries}
        covered: list[_Entry] = []
        outside = 0  # estimated tokens of prompt parts the context does not hold
        for message in prompt:
            entry = retained.get(id(message))
            extra = 0
            if entry is None:
                entry, extra = self._unwrap_locked(message)
            if entry is None:
                outside += estimate_message_tokens(message)
                continue
            covered.append(entry)
            outside += extra
        known = sum(e.tokens for e in covered if e.exact)
        unknown = [e for e in covered if not e.exact]
        if not unknown:
            return
        _share(unknown, max(0, total - known - outside))
        self._after_change_locked()

    def token_count(self) -> int:
        """Tokens of what the context retains: reported where known, else estimated."""
        with self._lock:
            return self._token_count_locked()

    # -- hooks for subclasses (called with the lock held) ----------------------------

    def _messages_locked(self) -> list[Message]:
        return [e.message for e in self._entries]

    def _unwrap_locked(self, message: Message) -> tuple[_Entry | None, int]:
        """The retained turn a prompt message stands for when it is not that turn
        itself, and the estimated tokens it adds to it."""
        return None, 0

    def _load_locked(self, entries: list[_Entry]) -> None:
        self._entries = entries

    def _after_change_locked(self) -> None:
        """Trim after the history grew or its counts changed."""

    def _clear_extra_locked(self) -> None:
        """Reset state beyond the entries."""

    def _token_count_locked(self) -> int:
        return sum(e.tokens for e in self._entries)


def _share(entries: list[_Entry], total: int) -> None:
    """Split ``total`` tokens over ``entries`` in proportion to their estimates."""
    weights = [e.tokens for e in entries]
    weight_sum = sum(weights)
    given = 0
    for i, entry in enumerate(entries):
        if i == len(entries) - 1:
            entry.tokens = total - given
        else:
            entry.tokens = total * weights[i] // weight_sum
            given += entry.tokens
        entry.exact = True


def _clean_starts(entries: Sequence[_Entry]) -> list[int]:
    return [i for i, e in enumerate(entries) if _is_clean_start(e.message)]


_UNBOUNDED_LOCK = threading.Lock()
_NO_ENTRIES: list[_Entry] = []


@attrs.define(eq=False)
class UnboundedContext(_BaseContext):
    """Keeps and sends the whole conversation (the default context).

    Thread- and task-safe. Nothing is ever dropped, so a long conversation grows
    until the model's context window refuses it; use :class:`TokenBudgetContext`
    or :class:`SlidingWindowContext` for long-running processes.
    """

    # NOTE: nothing is ever trimmed, so token counts matter only to token_count().
    # This is the default context, on every agent's hot path, so its turns are kept as
    # plain messages, and their records (_Entry: the token counts) are made only when
    # token_count() asks, for the turns not counted yet (``_entries`` covers a prefix
    # of ``_messages``); usage reports are applied then too. A record per turn was one
    # GC-tracked object per message of every idle process (B2).
    _messages: list[Message] = attrs.field(init=False, factory=list, repr=False)
    # NOTE: no list of records until token_count() first needs one: until then this is
    # a shared empty list that nothing writes to (one GC-tracked object less per process).
    _entries: list[_Entry] = attrs.field(init=False, default=_NO_ENTRIES, repr=False)
    # NOTE: flat — usage, prompt length, the prompt's messages, usage, ... — not a
    # (prompt, usage) tuple or the prompt's own tuple per LLM call: one GC-tracked
    # object less per call kept (B2).
    _reports: list[Message | Usage | int] = attrs.field(init=False, factory=list, repr=False)
    _deferred: int = attrs.field(init=False, default=0, repr=False)
    # NOTE: one lock for every UnboundedContext (none calls into another while it
    # holds it, and it is never held across an await): a lock per process was one
    # more GC-tracked object per process (B2).
    _lock: threading.Lock = attrs.field(init=False, default=_UNBOUNDED_LOCK, repr=False)

    def extend(self, messages: Iterable[Message]) -> None:
        """Append several turns at once (one send's turns)."""
        added = list(messages)
        # NOTE: the types checked in C (one send's turns, on every send); a subclass
        # or anything else takes the loop.
        if not _JUST_MESSAGES.issuperset(map(type, added)):
            for message in added:
                if not isinstance(message, Message):
                    _entry(message)  # raises the TypeError that explains what to pass
        with self._lock:
            self._messages.extend(added)

    def snapshot(self) -> list[Message]:
        """Everything the context retains, in order, for saving; :meth:`load` restores it."""
        with self._lock:
            return list(self._messages)

    def record_usage(self, prompt: Sequence[Message], usage: Usage) -> None:
        """Remember a usage report; :meth:`token_count` applies the reports in order."""
        with self._lock:
            reports = self._reports
            reports.append(usage)
            reports.append(len(prompt))
            reports.extend(prompt)
            self._deferred += 1
            if self._deferred >= _MAX_DEFERRED_REPORTS:
                self._apply_reports_locked()

    def _apply_reports_locked(self) -> None:
        entries, messages = self._entries, self._messages
        if len(entries) < len(messages):
            if entries is _NO_ENTRIES:
                entries = self._entries = []
            entries.extend(map(_entry, messages[len(entries) :]))
        reports, self._reports, self._deferred = self._reports, [], 0
        i = 0
        while i < len(reports):
            usage, length = reports[i], reports[i + 1]
            assert isinstance(usage, Usage) and isinstance(length, int)
            prompt = cast("list[Message]", reports[i + 2 : i + 2 + length])
            i += 2 + length
            self._apply_usage_locked(prompt, usage)

    def _messages_locked(self) -> list[Message]:
        return list(self._messages)

    def _token_count_locked(self) -> int:
        self._apply_reports_locked()
        return sum(e.tokens for e in self._entries)

    def _load_locked(self, entries: list[_Entry]) -> None:
        self._entries = entries
        self._messages = [e.message for e in entries]
        self._reports.clear()
        self._deferred = 0

    def _clear_extra_locked(self) -> None:
        self._messages.clear()
        self._reports.clear()
        self._deferred = 0


_MAX_DEFERRED_REPORTS = 64
_JUST_MESSAGES = frozenset({Message})


@attrs.define(eq=False)
class TokenBudgetContext(_BaseContext):
    """Keeps the most recent turns that fit in ``max_tokens``.

    After every change the oldest turns are dropped until the rest fits. The
    retained history always starts with a user turn that carries no tool results,
    so a ``tool_use`` is never separated from its ``tool_result`` and the list
    stays valid for the API. When even the shortest such suffix is over budget
    (one huge turn), that suffix is kept: the model must see the current question.

    Counts are estimates (about four characters per token) until the agent loop
    reports usage (:meth:`record_usage`); from then on the budget covers the whole
    prompt, system prompt and tool schemas included. Thread- and task-safe.

    Args:
        max_tokens: the token budget for the retained conversation (> 0).
    """

    max_tokens: int = attrs.field(validator=attrs.validators.gt(0))

    def _after_change_locked(self) -> None:
        entries = self._entries
        total = sum(e.tokens for e in entries)
        if total <= self.max_tokens:
            return
        starts = _clean_starts(entries)
        if not starts:
            return  # NOTE: no API-valid suffix exists; never invent or mangle turns.
        cut = starts[-1]
        dropped = 0
        previous = 0
        for start in starts:
            dropped += sum(e.tokens for e in entries[previous:start])
            previous = start
            if total - dropped <= self.max_tokens:
                cut = start
                break
        if cut:
            del entries[:cut]


@attrs.define(eq=False)
class SlidingWindowContext(_BaseContext):
    """Sends the last ``window`` messages plus a summary of older turns.

    :meth:`messages` returns the most recent ``window`` messages, moved forward to
    the first user turn that carries no tool results (so pairs stay together and
    the list is API-valid); if there is none in the window, it reaches back to the
    latest such turn, so the model always sees the question it is answering.

    Older turns are kept (and saved by :meth:`snapshot`) until :meth:`compact`
    replaces them with an LLM-written summary, which :meth:`messages` injects at
    the front as a user turn starting with :data:`SUMMARY_PREFIX`. Call
    :meth:`needs_compaction` to decide when. Thread- and task-safe; no lock is
    held while the model writes the summary.

    Args:
        window: how many recent messages to send (> 0).
        compact_above: when set, an agent process compacts this context by itself
            before serving a message once :meth:`needs_compaction` says the retained
            conversation is over this many tokens.
    """

    window: int = attrs.field(validator=attrs.validators.gt(0))
    compact_above: int | None = attrs.field(default=None, kw_only=True)
    _summary: str | None = attrs.field(init=False, default=None, repr=False)
    # The last first-turn-with-summary messages() built, and the turn it wraps, so
    # record_usage() can tell which retained turn it stands for.
    _merged: tuple[Message, _Entry] | None = attrs.field(init=False, default=None, repr=False)

    @property
    def summary(self) -> str | None:
        """The current summary of compacted turns, if any."""
        with self._lock:
            return self._summary

    def needs_compaction(self, threshold: int) -> bool:
        """Whether the retained conversation is over ``threshold`` tokens and has
        turns older than the window that :meth:`compact` could summarise."""
        with self._lock:
            return self._window_start_locked() > 0 and self._token_count_locked() > threshold

    async def compact(self, llm: LLM, *, model: str, max_tokens: int = 1024) -> bool:
        """Summarise the turns older than the window with one ``llm.generate`` call.

        The previous summary and the older turns are sent as a transcript; the
        reply becomes the new summary and those turns are dropped. The lock is not
        held during the call: turns added meanwhile are kept, and a :meth:`load`
        or :meth:`clear` meanwhile (or another compaction finishing first) makes
        this call discard its result.

        Args:
            llm: the backend that writes the summary.
            model: the model to ask.
            max_tokens: the longest summary to accept.

        Returns:
            ``True`` when turns were summarised; ``False`` when there was nothing
            older than the window, the model replied with no text, or the history
            changed underneath (see above).

        Raises:
            LLMError: the summary call failed; the history is unchanged.
        """
        with self._lock:
            start = self._window_start_locked()
            if start == 0:
                return False
            old = self._entries[:start]
            previous_summary = self._summary
            generation = self._generation
        request = LLMRequest(
            model=model,
            system=_SUMMARY_SYSTEM_PROMPT,
            messages=(Message.user(_summary_prompt(previous_summary, old)),),
            max_tokens=max_tokens,
        )
        response = await llm.generate(request)
        summary = response.text.strip()
        if not summary:
            return False
        with self._lock:
            # NOTE: only load(), clear() and compact() remove turns, and each bumps the
            # generation; add() only appends, so ``old`` is still the oldest turns.
            if generation != self._generation:
                return False
            del self._entries[: len(old)]
            self._summary = summary
            self._merged = None
            self._generation += 1
            return True

    # -- hooks -----------------------------------------------------------------------

    def _messages_locked(self) -> list[Message]:
        visible_entries = self._entries[self._window_start_locked() :]
        visible = _with_summary(self._summary, [e.message for e in visible_entries])
        if len(visible) == len(visible_entries) and visible != [] and self._summary is not None:
            self._merged = (visible[0], visible_entries[0])
        return visible

    def _unwrap_locked(self, message: Message) -> tuple[_Entry | None, int]:
        merged = self._merged
        if merged is None or merged[0] is not message or self._summary is None:
            return None, 0
        return merged[1], estimate_tokens(SUMMARY_PREFIX + self._summary)

    def _load_locked(self, entries: list[_Entry]) -> None:
        self._summary = None
        self._merged = None
        if entries:
            first = entries[0].message
            head = first.content[0] if first.content else None
            if (
                first.role == "user"
                and isinstance(head, TextBlock)
                and head.text.startswith(SUMMARY_PREFIX)
            ):
                # A snapshot of a compacted context: take the summary back out.
                self._summary = head.text[len(SUMMARY_PREFIX) :]
                rest = first.content[1:]
                if rest:
                    entries[0] = _entry(Message.user(rest))
                else:
                    del entries[0]
        self._entries = entries

    def _clear_extra_locked(self) -> None:
        self._summary = None
        self._merged = None

    def _token_count_locked(self) -> int:
        tokens = sum(e.tokens for e in self._entries)
        if self._summary is not None:
            tokens += estimate_tokens(SUMMARY_PREFIX + self._summary)
        return tokens

    def _window_start_locked(self) -> int:
        entries = self._entries
        lower = max(0, len(entries) - self.window)
        starts = _clean_starts(entries)
        inside = [s for s in starts if s >= lower]
        if inside:
            return inside[0]
        before = [s for s in starts if s < lower]
        return before[-1] if before else 0

    def snapshot(self) -> list[Message]:
        """Everything retained, for saving: the summary (merged into the first user
        turn, as :meth:`messages` shows it) followed by every unsummarised turn.
        :meth:`load` takes the summary back out."""
        with self._lock:
            return _with_summary(self._summary, [e.message for e in self._entries])


def _with_summary(summary: str | None, messages: list[Message]) -> list[Message]:
    """``messages`` with the summary injected at the front, keeping the list API-valid."""
    if summary is None:
        return messages
    block = TextBlock(text=SUMMARY_PREFIX + summary)
    if messages and _is_clean_start(messages[0]):
        # NOTE: merged into the first user turn rather than sent as a turn of its own,
        # so user and assistant turns keep alternating as they were.
        return [Message.user((block, *messages[0].content)), *messages[1:]]
    return [Message.user((block,)), *messages]


def _summary_prompt(previous: str | None, entries: Sequence[_Entry]) -> str:
    lines = ["Summarise the earlier part of a conversation between a user and an assistant."]
    if previous is not None:
        lines += ["", "Summary of what came before it:", previous]
    lines += ["", "Transcript:"]
    for entry in entries:
        lines.extend(_transcript_lines(entry.message))
    return "\n".join(lines)


def _transcript_lines(message: Message) -> list[str]:
    speaker = "User" if message.role == "user" else "Assistant"
    lines = []
    for block in message.content:
        if isinstance(block, TextBlock):
            lines.append(f"{speaker}: {block.text}")
        elif isinstance(block, ToolUseBlock):
            arguments = _json(block.input)
            lines.append(f"Assistant called tool {block.name} [{block.id}] with {arguments}")
        elif isinstance(block, ToolResultBlock):
            outcome = "failed" if block.is_error else "returned"
            lines.append(f"Tool call [{block.tool_use_id}] {outcome}: {block.content}")
        elif isinstance(block, ServerBlock):
            # NOTE: server tool calls and results (web search, ...) are part of what
            # was said; the model's private thinking is not summarised.
            lines.append(f"Assistant's server tool block ({block.type}): {_json(block.data)}")
    return lines
