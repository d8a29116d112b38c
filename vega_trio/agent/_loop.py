"""The agent loop (SPEC §1.3): the behaviour that runs inside an agent's process.

Size: the loop (context, model call through the resilience path, tool calls, streaming,
accounting) is one request's path; the per-call observer sits beside it because both are
on the hot path of every send (see docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from .._errors import (
    ErrorClass,
    LLMError,
    MaxIterationsExceeded,
    RequestError,
    SendTimeout,
    error_class_of,
)
from .._log import log_record
from ..llm import (
    INVALID_JSON_KEY,
    LLM,
    LLMRequest,
    LLMResponse,
    Message,
    MessageComplete,
    ModelPrice,
    PriceTable,
    TextChunk,
    ToolResultBlock,
    ToolSchema,
    ToolUseBlock,
    Usage,
)
from ..resilience import BudgetExceeded, BudgetTracker, CircuitBreaker
from ..resilience._breaker import BreakerState
from ..resilience._path import Attempt, CallPath, KeepAlive
from ..tools._registry import ToolCall, Tools
from ._bus_events import (
    CIRCUIT_EVENTS,
    BudgetOverrun,
    BudgetWarning,
    ContextCompacted,
    ContextCompactionFailed,
    LLMCalled,
    ToolEnded,
    ToolStarted,
)
from ._context import (
    ContextManager,
    SlidingWindowContext,
    UnboundedContext,
    estimate_message_tokens,
    estimate_tokens,
)
from ._events import ChatEvent, SendMetrics, TextDeltaEvent, ToolEndEvent, ToolStartEvent

if TYPE_CHECKING:
    from ..runtime import EventBus, Process
    from ._agent import Agent

__all__ = [
    "AgentBehaviour",
    "ChatRequest",
    "HistorySink",
    "ProcessMetrics",
    "SendResult",
    "error_class_of",
]

_log = logging.getLogger("vega_trio")
_llm_log = logging.getLogger("vega_trio.llm")
_resilience_log = logging.getLogger("vega_trio.resilience")


class HistorySink(Protocol):
    """Where a process's conversation is made durable (a session's, by the
    orchestrator's store wiring). Both calls return once the messages are committed:
    the send that produced them is answered only after that (SPEC §12, "acknowledged
    means committed")."""

    async def turn_completed(self, process: Process, messages: Sequence[Message]) -> None:
        """A send succeeded: ``messages`` (the user message, the model's turns and the
        tool results, in order) are appended to the conversation."""
        ...

    async def history_replaced(self, process: Process, messages: Sequence[Message]) -> None:
        """The conversation is now exactly ``messages`` (after a compaction)."""
        ...


@attrs.define(eq=False, slots=True)
class ChatRequest:
    """A message for an agent process; streaming requests carry an event channel."""

    message: Message
    events: trio.MemorySendChannel[ChatEvent] | None = None


@attrs.frozen(kw_only=True)
class SendResult:
    """What a send produced: the reply text and its metrics."""

    text: str
    metrics: SendMetrics


@attrs.define(eq=False, kw_only=True)
class ProcessMetrics:
    """Running totals for one process (SPEC §1.1)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    llm_attempts_failed: int = 0
    """LLM call attempts that failed (retried or not)."""
    tool_calls: int = 0
    iterations: int = 0
    errors: int = 0
    unpriced_calls: int = 0
    """LLM calls whose model the price table does not know (their cost is not counted)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return attrs.asdict(self)


class AgentBehaviour:
    """Serves :class:`ChatRequest` messages for one process of an :class:`Agent`.

    State per process: the conversation (through its context manager) and metrics.
    """

    # NOTE: slotted: past 30 attributes an instance's __dict__ stops sharing its keys
    # and becomes a dict of its own, one more GC-tracked object per process (B2). A new
    # attribute goes here too.
    __slots__ = (
        "_budgets",
        "_clock",
        "_direct",
        "_fallback",
        "_last_length",
        "_last_reply",
        "_last_tokens",
        "_own_budgets",
        "_price",
        "_schemas",
        "_skill_tools",
        "_skills",
        "_system",
        "agent",
        "bus",
        "context",
        "current_events",
        "current_message",
        "delegate_locks",
        "delegates",
        "history_sink",
        "iteration",
        "llm",
        "max_iterations",
        "metrics",
        "model",
        "name",
        "path",
        "prices",
        "team_group",
        "tools",
    )

    def __init__(
        self,
        agent: Agent,
        *,
        llm: LLM,
        model: str,
        prices: PriceTable,
        bus: EventBus,
        max_iterations: int | None = None,
        context: ContextManager | None = None,
        path: CallPath | None = None,
        budgets: Sequence[BudgetTracker] = (),
        tools: Tools | None = None,
        skill_tools: Tools | None = None,
        fallback_llm: LLM | None = None,
        fallback_model: str | None = None,
    ) -> None:
        self.agent = agent
        # NOTE: an attribute, not a property: every event about the process and the
        # spawn read it (the Agent is frozen, so it cannot go stale).
        self.name: str = agent.name
        """The agent's name."""
        self.llm = llm
        self.model = model
        self.prices = prices
        self.bus = bus
        self.max_iterations = max_iterations or agent.max_iterations
        self.tools = tools if tools is not None else agent.tool_registry
        # NOTE: a system prompt that picks skills per message (SkillsPrompt) may bring
        # tools of their own; they are looked up here and added for that round only.
        self._skills: Any = agent.system if hasattr(agent.system, "tool_names") else None
        self._skill_tools = skill_tools if skill_tools is not None else self.tools
        self.iteration = 0
        """The LLM round of the send being served (0 between sends)."""
        self.current_message: Message | None = None
        """The user message the process is answering now (``None`` between sends)."""
        self.current_events: trio.MemorySendChannel[ChatEvent] | None = None
        """Where the send being served streams its events (``None``: not streamed);
        a delegating tool forwards its delegate's events here."""
        self.team_group: str | None = None
        """The process group whose blackboard the team's ``bb_*`` tools use."""
        self.delegates: dict[str, Process] | None = None
        """This process's delegates by agent name (made on its first delegation)."""
        self.delegate_locks: dict[str, trio.Lock] | None = None
        """One lock per delegate name: concurrent asks share one child (made with
        :attr:`delegates`; an empty dict per process was 64 bytes for nothing, B2)."""
        self.context: ContextManager = context or (
            agent.context() if agent.context else UnboundedContext()
        )
        self.metrics = ProcessMetrics()
        self.history_sink: HistorySink | None = None
        """Where completed turns are committed before the send is answered (``None``:
        nowhere; a session's process has the store's)."""
        self._price = prices.lookup(model)  # None: unknown model, reported per call
        self._schemas = self.tools.schemas()
        # NOTE: the agent's own getter, shared by its processes (a bound method here
        # was one more GC-tracked object per process, and one more call per round).
        self._system = agent._system_getter
        # NOTE: (backend, model id, price) of the agent's fallback_model; the
        # orchestrator resolves the backend by the model's provider prefix.
        fallback_model = fallback_model or agent.fallback_model
        self._fallback: tuple[LLM, str, ModelPrice | None] | None = None
        if fallback_model is not None:
            self._fallback = (
                fallback_llm or llm,
                fallback_model,
                prices.lookup(fallback_model),
            )
        self.path = path or CallPath(
            retry=agent.retry,
            breaker=agent.circuit_breaker,
            timeout=agent.llm_timeout,
            fallback=None
            if self._fallback is None
            else CallPath(
                retry=agent.retry,
                breaker=fallback_breaker(agent.circuit_breaker, self._fallback[1]),
                timeout=agent.llm_timeout,
            ),
        )
        # NOTE: the agent's tracker (first) and the global one; the trackers of
        # ancestors with budget_scope="tree" join them at the first call, when the
        # process (and so its parent) is known.
        self._own_budgets = tuple(budgets)
        self._budgets: tuple[BudgetTracker, ...] | None = None
        # NOTE: whether this process's calls go straight to the model (the call path's
        # plain case: CallPath.is_direct); known once its budgets are (first call).
        self._direct = False
        # The last prompt: its tokens and its reply's, its length + 1, the reply turn
        # (three fields, not a tuple: one GC-tracked object less per process, B2).
        self._last_tokens = 0
        self._last_length = 0
        self._last_reply: Message | None = None
        # NOTE: the run's clock, read directly: trio.current_time() is three Python
        # calls deep, and a run reads the clock six times (B1).
        self._clock: trio.abc.Clock | None = None

    def _now(self) -> float:
        """The run's clock (``trio.current_time()``), read directly."""
        clock = self._clock
        if clock is None:
            clock = self._clock = trio.lowlevel.current_clock()
        return clock.current_time()

    @property
    def process_class(self) -> type[Process]:
        """The process handle a supervisor gives this behaviour's processes."""
        from ._process import AgentProcess

        return AgentProcess

    # ------------------------------------------------------------------ serving
    async def handle(self, process: Process, payload: Any) -> SendResult:
        """Serve one message: run the tool loop until the model replies with text."""
        request = _as_request(payload)
        clock = self._clock
        if clock is None:
            clock = self._clock = trio.lowlevel.current_clock()
        context = self.context
        if isinstance(context, SlidingWindowContext) and context.compact_above is not None:
            await self._maybe_compact(process, context)
        started = clock.current_time()
        metrics = self.metrics
        input_before, output_before = metrics.input_tokens, metrics.output_tokens
        cost_before = metrics.cost_usd
        timeout = self.agent.send_timeout
        try:
            if timeout is None:
                # NOTE: no nullcontext stand-in for the timeout: it was two objects
                # more per send in flight, and two calls.
                text = await self._tool_loop(process, request, clock)
            else:
                with trio.move_on_after(timeout) as scope:
                    text = await self._tool_loop(process, request, clock)
                if scope.cancelled_caught:
                    raise SendTimeout(
                        f"agent {self.name!r} (process {process.id}) did not reply within "
                        f"its send_timeout of {timeout:g}s; the conversation is unchanged"
                    )
        except RequestError:
            metrics.errors += 1
            raise
        return SendResult(
            text=text,
            metrics=SendMetrics(
                input_tokens=metrics.input_tokens - input_before,
                output_tokens=metrics.output_tokens - output_before,
                cost_usd=metrics.cost_usd - cost_before,
                duration_ms=round((clock.current_time() - started) * 1000),
            ),
        )

    def on_restart(self, process: Process, *, fresh: bool) -> None:
        """Called by the runtime before a new incarnation: the conversation is kept up
        to the last completed turn (a failed send never commits its turns), or dropped
        when the supervision says ``restart_state="fresh"``."""
        if fresh:
            self.context.clear()

    async def _maybe_compact(self, process: Process, context: SlidingWindowContext) -> None:
        assert context.compact_above is not None
        if not context.needs_compaction(context.compact_above):
            return
        try:
            # NOTE: the summary call goes through the same call path as any other
            # (budget, limits, breaker, retry) and is counted in the metrics and cost.
            compacted = await context.compact(_ResilientLLM(self, process), model=self.model)
        except LLMError as exc:
            # The history is unchanged and still valid; the send goes ahead uncompacted.
            self.bus.emit(
                ContextCompactionFailed,
                process_id=process.id,
                agent=self.name,
                run_id=process.run_id,
                user=process.user,
                error=str(exc),
                error_class=str(exc.error_class),
            )
            return
        if compacted:
            if self.history_sink is not None:
                await self.history_sink.history_replaced(process, self.context.snapshot())
            self.bus.emit(
                ContextCompacted,
                process_id=process.id,
                agent=self.name,
                run_id=process.run_id,
                user=process.user,
            )

    # NOTE: no closure or comprehension in the functions a send runs through on its plain
    # path: each name a nested scope uses becomes a cell made at every call, whichever
    # branch runs (tests/agent/test_hot_path.py checks it). The rarer branches are
    # methods of their own.
    def _skill_round_tools(self, process: Process) -> tuple[Tools, tuple[ToolSchema, ...]]:
        wanted = [
            name
            for name in self._skills.tool_names(process, self._skill_tools)
            if name not in self.tools
        ]
        if not wanted:
            return self.tools, self._schemas
        tools = self.tools.merged(self._skill_tools.subset(wanted))
        return tools, tools.schemas()

    async def _tool_loop(
        self, process: Process, request: ChatRequest, clock: trio.abc.Clock
    ) -> str:
        # NOTE: turns of this send are kept aside and committed to the context only when
        # the send succeeds, so a failed or cancelled send leaves an API-valid history.
        # One coroutine for the whole send (the bookkeeping around the rounds was a
        # frame of its own: one more per send in flight, B2).
        self.current_message = message = request.message
        self.current_events = events = request.events
        pending: list[Message] = [message]
        tools, schemas = self.tools, self._schemas
        try:
            for iteration in range(1, self.max_iterations + 1):
                self.iteration = iteration
                self.metrics.iterations += 1
                if self._skills is not None:
                    tools, schemas = self._skill_round_tools(process)
                llm_request = LLMRequest(
                    model=self.model,
                    system=self._system(process),
                    messages=(*self.context.messages(), *pending),
                    tools=schemas,
                    max_tokens=self.agent.max_tokens,
                    temperature=self.agent.temperature,
                )
                if self._direct and events is None:
                    # NOTE: the call path's plain case (CallPath.is_direct) taken here,
                    # as the path would take it: no observer, attempt or path frame
                    # per call (B1). A failure goes on in the path (retry, events).
                    started = clock.current_time()
                    try:
                        await trio.lowlevel.checkpoint_if_cancelled()
                        response = await self.llm.generate(llm_request)
                    except LLMError as exc:
                        response = await self._call_llm(
                            process, llm_request, None, pending, exc, started
                        )
                    else:
                        self._account(process, response.usage, self.model, self._price, started)
                else:
                    response = await self._call_llm(process, llm_request, events, pending)
                usage = response.usage
                self.context.record_usage(llm_request.messages, usage)
                reply = response.to_message()
                pending.append(reply)
                if not self._direct and usage.input_tokens:
                    # Only a prompt estimate asks (TPM limits, block budgets).
                    self._last_tokens = usage.total_tokens
                    self._last_length = len(llm_request.messages) + 1
                    self._last_reply = reply
                tool_uses = response.tool_uses
                if not tool_uses:
                    if self.history_sink is not None:
                        # NOTE: committed before the context takes the turn and before
                        # the send is answered: a reply the caller sees is durable, and
                        # one whose commit failed is not in the history either.
                        await self.history_sink.turn_completed(process, pending)
                    self.context.extend(pending)
                    return response.text
                if len(tool_uses) == 1:
                    results = [await self._run_tool(process, tools, tool_uses[0], events)]
                else:
                    results = await self._run_tools_together(process, tools, tool_uses, events)
                pending.append(Message(role="user", content=results))
            raise MaxIterationsExceeded(
                f"agent {self.name!r} (process {process.id}) still asked for tools after "
                f"{self.max_iterations} LLM rounds; raise max_iterations or give it a "
                "clearer task"
            )
        finally:
            self.current_message = None
            self.current_events = None
            self.iteration = 0

    # -------------------------------------------------------------------- LLM
    async def _call_llm(
        self,
        process: Process,
        request: LLMRequest,
        events: trio.MemorySendChannel[ChatEvent] | None,
        pending: Sequence[Message] | None = None,
        failed: LLMError | None = None,
        started: float | None = None,
    ) -> LLMResponse:
        """One LLM call through the agent's call path, accounted and observed.

        ``pending`` are the turns of this send that are not in the context yet (the
        rest of ``request.messages`` is): the prompt's token estimate, which only
        TPM limits and ``block`` budgets need, then costs O(pending) instead of a
        pass over the whole conversation. ``failed``: the error of the first attempt,
        made directly at ``started`` (see :meth:`_tool_loop`); the path goes on from it.
        """
        # NOTE: the observer carries what the prompt's estimate needs: a bound method
        # instead of a lambda over three cells (4 objects per call in flight, B2).
        observer = _CallObserver(self, process, request, pending)
        if started is not None:
            observer.started = started
        attempt = self._attempt(self.llm, request, events)
        budgets = self._budgets if self._budgets is not None else self._budget_chain(process)
        if self._fallback is None:
            response = await self.path.call(
                attempt,
                observer=observer,
                budgets=budgets,
                estimate_tokens=observer.estimate_tokens,
                estimate_cost=self._estimate_cost,
                started=observer.started,
                failed=failed,
            )
        else:
            fallback_llm, fallback_model, fallback_price = self._fallback
            observer.fallback_model = fallback_model
            response = await self.path.call(
                attempt,
                observer=observer,
                budgets=budgets,
                estimate_tokens=observer.estimate_tokens,
                estimate_cost=self._estimate_cost,
                started=observer.started,
                fallback=self._attempt(
                    fallback_llm, attrs.evolve(request, model=fallback_model), events
                ),
                # NOTE: a partial, not a lambda: a closure here made fallback_price a
                # cell of this frame, one more GC-tracked object per call in flight
                # on every path, fallback or not (B2).
                fallback_cost=functools.partial(_prompt_cost, fallback_price),
            )
        # NOTE: priced with the model that answered (the fallback's price after a switch).
        model = observer.model
        if not observer.fallback:
            price = self._price if model == self.model else self.prices.lookup(model)
        elif self._fallback is not None and model == self._fallback[1]:
            price = self._fallback[2]
        else:
            price = self.prices.lookup(model)
        self._account(
            process,
            response.usage,
            model,
            price,
            observer.started,
            observer.attempt,
            observer.fallback,
        )
        return response

    def _attempt(
        self,
        llm: LLM,
        request: LLMRequest,
        events: trio.MemorySendChannel[ChatEvent] | None,
    ) -> Attempt:
        """One attempt of ``request`` on ``llm``: blocking, or streamed to ``events``."""
        if events is None:
            return _Generate(llm, request)
        return self._streamed(llm, request, events)

    def _streamed(
        self,
        llm: LLM,
        request: LLMRequest,
        events: trio.MemorySendChannel[ChatEvent],
    ) -> Attempt:
        """A streamed attempt of ``request`` on ``llm``, its events sent to ``events``."""

        async def stream(keep_alive: KeepAlive) -> LLMResponse:
            return await self._stream_llm(request, events, keep_alive, llm)

        return stream

    async def _stream_llm(
        self,
        request: LLMRequest,
        events: trio.MemorySendChannel[ChatEvent],
        keep_alive: KeepAlive,
        llm: LLM | None = None,
    ) -> LLMResponse:
        response: LLMResponse | None = None
        async with (llm or self.llm).stream(request) as chunks:
            async for chunk in chunks:
                if isinstance(chunk, TextChunk):
                    keep_alive(bool(chunk.text))
                    if chunk.text:
                        await _emit(events, TextDeltaEvent(delta=chunk.text))
                elif isinstance(chunk, MessageComplete):
                    response = chunk.response
                else:
                    keep_alive(False)
        if response is None:
            raise LLMError(
                f"the {request.model} stream ended without a complete message",
                error_class=ErrorClass.TEMPORARY,
            )
        return response

    def _estimate_tokens(self, request: LLMRequest, pending: Sequence[Message] | None) -> int:
        # NOTE: the last call's reported usage counts its prompt and reply exactly;
        # when this prompt continues that one (the reply is where it was), only the
        # turns added since are estimated — O(new turns), not O(conversation).
        messages = request.messages
        reply = self._last_reply
        if reply is not None:
            tokens, length = self._last_tokens, self._last_length
            if len(messages) >= length and messages[length - 1] is reply:
                for message in messages[length:]:
                    tokens += estimate_message_tokens(message)
                return tokens
        if pending is None:
            return _estimate_request_tokens(request)
        tokens = self.context.token_count() + estimate_tokens(request.system)
        for message in pending:
            tokens += estimate_message_tokens(message)
        return tokens

    def _estimate_cost(self, tokens: int) -> float:
        # A lower bound for the budget check: the prompt alone, at the input price.
        return _prompt_cost(self._price, tokens)

    def _budget_chain(self, process: Process) -> tuple[BudgetTracker, ...]:
        """This process's budgets: its agent's, those of ancestors whose agent has
        ``budget_scope="tree"``, and the global one (each once)."""
        chain = list(self._own_budgets[:1])
        chain.extend(self.tree_budgets(process)[1 if self.agent.budget_scope == "tree" else 0 :])
        for tracker in self._own_budgets[1:]:
            if tracker not in chain:
                chain.append(tracker)
        budgets = tuple(dict.fromkeys(chain))
        # NOTE: usually the chain is the agent's own tuple, shared by all its processes.
        own = self._own_budgets
        same = len(budgets) == len(own) and all(a is b for a, b in zip(budgets, own, strict=True))
        self._budgets = own if same else budgets
        self._direct = self.path.is_direct(self._budgets)
        return self._budgets

    def tree_budgets(self, process: Process) -> tuple[BudgetTracker, ...]:
        """The trackers this process's children roll their spend up to: its agent's
        (when ``budget_scope="tree"``) and those it inherits itself."""
        inherited: tuple[BudgetTracker, ...] = ()
        parent_id = process.parent_id
        if parent_id is not None:
            parent = process._runtime._processes.get(parent_id)
            parent_behaviour = getattr(parent, "behaviour", None)
            if isinstance(parent_behaviour, AgentBehaviour) and parent is not None:
                inherited = parent_behaviour.tree_budgets(parent)
        if self.agent.budget_scope == "tree" and self._own_budgets:
            return (self._own_budgets[0], *inherited)
        return inherited

    def _account(
        self,
        process: Process,
        usage: Usage,
        model: str,
        price: ModelPrice | None,
        started: float,
        attempt: int = 1,
        fallback: bool = False,
    ) -> None:
        """Count a call that answered: metrics, cost, budgets, the log and ``llm.call``.

        ``model`` answered at ``price``, on its ``attempt``, started at ``started``;
        ``fallback``: whether it is the fallback model.
        """
        m = self.metrics
        m.llm_calls += 1
        m.input_tokens += usage.input_tokens
        m.output_tokens += usage.output_tokens
        if usage.cache_creation_input_tokens or usage.cache_read_input_tokens:
            m.cache_creation_input_tokens += usage.cache_creation_input_tokens
            m.cache_read_input_tokens += usage.cache_read_input_tokens
        cost = None if price is None else price.cost(usage)
        if cost is None:
            m.unpriced_calls += 1
        else:
            m.cost_usd += cost
            for tracker in self._budgets or ():
                if tracker._add(cost):
                    self._budget_crossed(process, tracker)
        if _llm_log.isEnabledFor(logging.DEBUG):
            self._log_call(process, usage, model, cost, started, attempt)
        if self.bus.wants(LLMCalled):
            self.bus.emit(
                LLMCalled,
                process_id=process.id,
                agent=self.name,
                run_id=process.run_id,
                user=process.user,
                model=model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                cost_usd=cost,
                priced=cost is not None,
                latency_ms=round((self._now() - started) * 1000),
                attempt=attempt,
                fallback=fallback,
                error_class=None,
                iteration=self.iteration or None,
                max_iterations=self.max_iterations,
            )

    def _log_call(
        self,
        process: Process,
        usage: Usage,
        model: str,
        cost: float | None,
        started: float,
        attempt: int,
    ) -> None:
        latency_ms = round((self._now() - started) * 1000)
        log_record(
            _llm_log,
            logging.DEBUG,
            "LLM call of %s (process %s) to %s: %d+%d tokens in %d ms",
            self.name,
            process.id,
            model,
            usage.input_tokens,
            usage.output_tokens,
            latency_ms,
            event="llm.call",
            process_id=process.id,
            agent=self.name,
            run_id=process.run_id,
            user=process.user,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost,
            latency_ms=latency_ms,
            attempt=attempt,
            error_class=None,
        )

    def _budget_crossed(self, process: Process, tracker: BudgetTracker) -> None:
        budget = tracker.budget
        assert budget is not None
        if budget.on_exceed == "warn" and _resilience_log.isEnabledFor(logging.WARNING):
            log_record(
                _resilience_log,
                logging.WARNING,
                "budget of %s exceeded: $%.4f spent of its $%.4f limit (on_exceed='warn': "
                "calls go on)",
                tracker.owner,
                tracker.spent,
                budget.limit,
                event="budget.warning",
                process_id=process.id,
                agent=self.name,
                run_id=process.run_id,
                user=process.user,
                owner=tracker.owner,
                limit_usd=budget.limit,
                spent_usd=tracker.spent,
            )
        self.bus.emit(
            BudgetWarning if budget.on_exceed == "warn" else BudgetOverrun,
            process_id=process.id,
            agent=self.name,
            run_id=process.run_id,
            user=process.user,
            owner=tracker.owner,
            limit_usd=budget.limit,
            spent_usd=tracker.spent,
            on_exceed=budget.on_exceed,
            refused=False,
        )

    # ------------------------------------------------------------------ tools
    async def _run_tools_together(
        self,
        process: Process,
        tools: Tools,
        tool_uses: Sequence[ToolUseBlock],
        events: trio.MemorySendChannel[ChatEvent] | None,
    ) -> list[ToolResultBlock]:
        """Several tool calls of one round, run concurrently; results in call order."""
        results: list[ToolResultBlock | None] = [None] * len(tool_uses)

        async def run(index: int, use: ToolUseBlock) -> None:
            results[index] = await self._run_tool(process, tools, use, events)

        async with trio.open_nursery() as nursery:
            for index, use in enumerate(tool_uses):
                nursery.start_soon(run, index, use)
        return [r for r in results if r is not None]

    async def _run_tool(
        self,
        process: Process,
        tools: Tools,
        use: ToolUseBlock,
        events: trio.MemorySendChannel[ChatEvent] | None,
    ) -> ToolResultBlock:
        self.metrics.tool_calls += 1
        arguments = use.input
        if events is not None:
            await _emit(
                events, ToolStartEvent(tool_call_id=use.id, tool_name=use.name, arguments=arguments)
            )
        if self.bus.wants(ToolStarted):
            self.bus.emit(
                ToolStarted,
                process_id=process.id,
                agent=self.name,
                run_id=process.run_id,
                user=process.user,
                tool=use.name,
                tool_call_id=use.id,
                arguments=arguments,
            )
        started = self._now()
        try:
            if INVALID_JSON_KEY in arguments:
                raise ValueError(
                    f"the arguments for {use.name!r} were not valid JSON "
                    f"({str(arguments[INVALID_JSON_KEY])[:200]!r}); send a JSON object"
                )
            if self.agent.tool_timeout is None:
                output = await tools.run(use.name, arguments, use.id)
            else:
                call = ToolCall(id=use.id, name=use.name, arguments=arguments)
                output = await self._execute_within_tool_timeout(tools, call)
            is_error = False
        except Exception as exc:  # the model sees the failure and may recover
            output = _describe_tool_error(use.name, exc)
            is_error = True
        # NOTE: the tool's end is read from the clock only for a listener (the stream or
        # the bus): without a stream nothing awaits in between, so reading it for the bus's
        # event below gives the same duration.
        duration_ms = 0
        if events is not None:
            duration_ms = round((self._now() - started) * 1000)
            await _emit(
                events,
                ToolEndEvent(
                    tool_call_id=use.id,
                    tool_name=use.name,
                    result=output,
                    duration_ms=duration_ms,
                    is_error=is_error,
                ),
            )
        if self.bus.wants(ToolEnded):
            if events is None:
                duration_ms = round((self._now() - started) * 1000)
            self.bus.emit(
                ToolEnded,
                process_id=process.id,
                agent=self.name,
                run_id=process.run_id,
                user=process.user,
                tool=use.name,
                tool_call_id=use.id,
                duration_ms=duration_ms,
                is_error=is_error,
                result=output[:2000],
            )
        return ToolResultBlock(tool_use_id=use.id, content=output, is_error=is_error)

    async def _execute_within_tool_timeout(self, tools: Tools, call: ToolCall) -> str:
        tool = tools.get(call.name)
        timeout = self.agent.tool_timeout
        if timeout is None or (tool is not None and tool.timeout is not None):
            return await tools.execute(call)  # the tool's own limit wins
        with trio.fail_after(timeout):
            return await tools.execute(call)


class _Generate:
    """A blocking attempt: calling it returns ``llm.generate(request)``'s coroutine
    itself, which the call path awaits (an ``async def`` wrapper was one more frame
    on every resume, and a closure with two cells per call in flight)."""

    __slots__ = ("llm", "request")

    def __init__(self, llm: LLM, request: LLMRequest) -> None:
        self.llm = llm
        self.request = request

    def __call__(self, keep_alive: KeepAlive) -> Awaitable[LLMResponse]:
        return self.llm.generate(self.request)


class _ResilientLLM:
    """The behaviour's backend seen through its call path (for the context's own calls)."""

    def __init__(self, behaviour: AgentBehaviour, process: Process) -> None:
        self._behaviour = behaviour
        self._process = process

    async def generate(self, request: LLMRequest) -> LLMResponse:
        return await self._behaviour._call_llm(self._process, request, None)

    def stream(self, request: LLMRequest) -> Any:
        return self._behaviour.llm.stream(request)


class _CallObserver:
    """Turns what the call path reports into events for one LLM call."""

    __slots__ = (
        "attempt",
        "behaviour",
        "fallback",
        "fallback_model",
        "model",
        "pending",
        "process",
        "request",
        "started",
    )

    def __init__(
        self,
        behaviour: AgentBehaviour,
        process: Process,
        request: LLMRequest,
        pending: Sequence[Message] | None,
    ) -> None:
        self.behaviour = behaviour
        self.process = process
        self.request = request
        self.pending = pending
        self.model = request.model
        """The model that answered (the fallback's after a switch)."""
        self.attempt = 1
        self.started = behaviour._now()
        self.fallback = False
        """Whether the call went on to the fallback model."""
        self.fallback_model = ""

    def estimate_tokens(self) -> int:
        """The prompt's estimated tokens (only TPM limits and ``block`` budgets ask)."""
        assert self.request is not None
        return self.behaviour._estimate_tokens(self.request, self.pending)

    def attempt_failed(
        self, number: int, error: LLMError, started: float, retry_in: float | None
    ) -> None:
        behaviour = self.behaviour
        behaviour.metrics.llm_attempts_failed += 1
        self.attempt = number + 1
        self.started = behaviour._now()
        if error.refused_locally:
            return  # no call was made: budget.exceeded / the breaker say why
        # NOTE: INFO, not WARNING: a retry is handled here, and a last failure is raised
        # to the caller, who reports it (logging it louder would report it twice).
        logger = _llm_log if retry_in is None else _resilience_log
        if logger.isEnabledFor(logging.INFO):
            self._log_failed(logger, number, error, started, retry_in)
        behaviour.bus.emit(
            LLMCalled,
            process_id=self.process.id,
            agent=behaviour.name,
            run_id=self.process.run_id,
            user=self.process.user,
            model=self.model,
            attempt=number,
            error_class=str(error.error_class),
            error=str(error),
            status_code=error.status_code,
            retry_in=retry_in,
            fallback=self.fallback,
            latency_ms=round((self.behaviour._now() - started) * 1000),
            iteration=behaviour.iteration or None,
            max_iterations=behaviour.max_iterations,
        )

    def falling_back(self, error: LLMError) -> None:
        if _resilience_log.isEnabledFor(logging.WARNING):
            log_record(
                _resilience_log,
                logging.WARNING,
                "LLM call of %s (process %s) to %s failed (%s) after its retries; "
                "trying the fallback model %s",
                self.behaviour.name,
                self.process.id,
                self.model,
                error.error_class,
                self.fallback_model,
                event="llm.fallback",
                process_id=self.process.id,
                agent=self.behaviour.name,
                model=self.model,
                fallback_model=self.fallback_model,
                error_class=str(error.error_class),
            )
        self.model = self.fallback_model
        self.fallback = True
        self.attempt = 1
        self.started = self.behaviour._now()

    def _log_failed(
        self,
        logger: logging.Logger,
        number: int,
        error: LLMError,
        started: float,
        retry_in: float | None,
    ) -> None:
        what = f"{error.error_class}" + (
            f", HTTP {error.status_code}" if error.status_code is not None else ""
        )
        then = "" if retry_in is None else f"; retrying in {retry_in:.2f}s"
        log_record(
            logger,
            logging.INFO,
            "LLM call of %s (process %s) to %s failed (%s) on attempt %d%s: %s",
            self.behaviour.name,
            self.process.id,
            self.model,
            what,
            number,
            then,
            str(error).splitlines()[0] if str(error) else type(error).__name__,
            event="llm.call" if retry_in is None else "llm.retry",
            process_id=self.process.id,
            agent=self.behaviour.name,
            model=self.model,
            attempt=number,
            error_class=str(error.error_class),
            status_code=error.status_code,
            delay_s=retry_in,
            latency_ms=round((self.behaviour._now() - started) * 1000),
        )

    def budget_refused(self, error: BudgetExceeded) -> None:
        behaviour = self.behaviour
        behaviour.bus.emit(
            BudgetOverrun,
            process_id=self.process.id,
            agent=behaviour.name,
            run_id=self.process.run_id,
            user=self.process.user,
            owner=error.owner,
            limit_usd=error.limit,
            spent_usd=error.spent,
            on_exceed="block",
            refused=True,
            estimated_cost_usd=error.estimated_cost,
        )

    def breaker_changed(self, breaker: CircuitBreaker, state: BreakerState) -> None:
        behaviour = self.behaviour
        behaviour.bus.emit(
            CIRCUIT_EVENTS[state],
            process_id=self.process.id,
            agent=behaviour.name,
            run_id=self.process.run_id,
            user=self.process.user,
            breaker=breaker.name,
            failures=breaker.failures,
            reset_after=breaker.reset_after,
        )


def _prompt_cost(price: ModelPrice | None, tokens: int) -> float:
    return 0.0 if price is None else price.cost(Usage(input_tokens=tokens))


def fallback_breaker(breaker: CircuitBreaker | None, model: str) -> CircuitBreaker | None:
    """The breaker of an agent's fallback model: the agent's settings and hooks, its
    own state (a breaker guards one model, so the primary's open breaker does not
    stop the fallback), named after the agent's breaker and the model."""
    if breaker is None:
        return None
    name = f"{breaker.name} fallback {model}" if breaker.name else f"fallback {model}"
    return attrs.evolve(breaker, name=name)


def _estimate_request_tokens(request: LLMRequest) -> int:
    tokens = estimate_tokens(request.system) if request.system else 0
    for message in request.messages:
        tokens += estimate_message_tokens(message)
    return tokens


def _describe_tool_error(name: str, exc: Exception) -> str:
    if isinstance(exc, trio.TooSlowError):
        return f"Error: tool {name!r} timed out"
    message = str(exc) or type(exc).__name__
    return f"Error: {type(exc).__name__}: {message}"


async def _emit(events: trio.MemorySendChannel[ChatEvent], event: ChatEvent) -> None:
    # NOTE: a bounded channel: a slow reader slows the LLM stream (backpressure).
    try:
        await events.send(event)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the reader left; its wrapper cancels this request


def _as_request(payload: Any) -> ChatRequest:
    if isinstance(payload, ChatRequest):
        return payload
    if isinstance(payload, Message):
        return ChatRequest(payload)
    if isinstance(payload, str):
        return ChatRequest(Message.user(payload))
    raise TypeError(
        f"an agent process takes a str, a Message or a ChatRequest, not {type(payload).__name__}"
    )
