// Chat: pick an agent, talk to it. The reply streams token by token over the page's
// WebSocket (`/api/ws`, op `chat`; socket.js), or over SSE (POST …/chat/stream) when the
// socket cannot be opened; tool calls are collapsible panels (arguments, result, duration,
// error), a delegate's activity nested under the call that delegated to it; Stop cancels.
// Opening a conversation whose reply is still running — after a reload, or in another tab —
// follows that reply (GET …/chat names it as `in_flight`; op `attach` or GET …/chat/stream
// replays it from its start); the history comes from GET …/chat, page by page.
import { html, useEffect, useRef, useState, useSignal } from '../lib.js';
import { call, getJSON, readSSE, seg, ApiError } from '../api.js';
import { streamReply, cancelReply, NoSocket, SocketLost } from '../socket.js';
import { renderMarkdown } from '../markdown.js';
import { go } from '../router.js';
import { formatCost, formatMs, ErrorNote } from '../ui.js';

const PAGE = 50;
const REATTACH = 3; // times a reply is followed again after its WebSocket closed

// ------------------------------------------------------------ history → turns
function blockText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((b) => (b.type === 'text' ? b.text : '')).join('');
  return '';
}

/** Messages in the Anthropic form as turns: a user turn per user text, one assistant turn
 * per reply (its text and tool calls in order, results matched by tool_use_id). */
export function toTurns(messages) {
  const turns = [];
  let assistant = null;
  const tools = new Map();
  for (const message of messages) {
    const blocks = Array.isArray(message.content) ? message.content : [{ type: 'text', text: String(message.content || '') }];
    if (message.role === 'user') {
      for (const b of blocks) {
        if (b.type === 'tool_result') {
          const part = tools.get(b.tool_use_id);
          if (part) { part.result = blockText(b.content); part.isError = !!b.is_error; part.done = true; }
        }
      }
      const text = blocks.filter((b) => b.type === 'text').map((b) => b.text).join('');
      if (text) { turns.push({ role: 'user', text }); assistant = null; }
    } else {
      if (!assistant) { assistant = { role: 'assistant', parts: [], status: 'done' }; turns.push(assistant); }
      for (const b of blocks) {
        if (b.type === 'text' && b.text) assistant.parts.push({ kind: 'text', text: b.text });
        else if (b.type === 'tool_use') {
          const part = { kind: 'tool', id: b.id, name: b.name, args: b.input, result: null, done: false, children: [] };
          tools.set(b.id, part);
          assistant.parts.push(part);
        }
      }
    }
  }
  return turns;
}

// ------------------------------------------------------------ live events → a turn
function lastOpenTool(parts) {
  for (let i = parts.length - 1; i >= 0; i--) if (parts[i].kind === 'tool' && !parts[i].done) return parts[i];
  for (let i = parts.length - 1; i >= 0; i--) if (parts[i].kind === 'tool') return parts[i];
  return null;
}

/** Apply one §1.4 event to an assistant turn (mutates it). */
export function applyEvent(turn, event) {
  let parts = turn.parts;
  if (event.agent) {
    // A delegate's event: under the call that delegated to it.
    const parent = lastOpenTool(turn.parts);
    if (parent) parts = parent.children;
  }
  switch (event.type) {
    case 'text_delta': {
      const last = parts[parts.length - 1];
      if (last && last.kind === 'text' && last.agent === (event.agent || null)) last.text += event.delta;
      else parts.push({ kind: 'text', text: event.delta, agent: event.agent || null });
      break;
    }
    case 'tool_start':
      parts.push({ kind: 'tool', id: event.tool_call_id, name: event.tool_name, args: event.arguments,
        result: null, done: false, children: [], agent: event.agent || null, started: Date.now() });
      break;
    case 'tool_end': {
      const part = findTool(turn.parts, event.tool_call_id);
      if (part) {
        part.result = event.result; part.duration = event.duration_ms; part.isError = !!event.is_error; part.done = true;
      }
      break;
    }
    case 'done':
      turn.status = 'done'; turn.metrics = event.metrics;
      break;
    case 'error':
      turn.status = event.error_class === 'cancelled' ? 'cancelled' : 'error';
      turn.error = event.error; turn.errorClass = event.error_class;
      break;
    default:
      break;
  }
}

function findTool(parts, id) {
  for (const part of parts) {
    if (part.kind !== 'tool') continue;
    if (part.id === id) return part;
    const inner = findTool(part.children, id);
    if (inner) return inner;
  }
  return null;
}

// ------------------------------------------------------------ views
function pretty(value) {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

function ToolPanel({ part }) {
  const state = !part.done ? 'running' : part.isError ? 'error' : 'ok';
  return html`<details class=${`tool tool-${state}`} data-testid="tool-panel">
    <summary>
      <span class="tool-name">${part.agent ? `${part.agent} → ` : ''}${part.name}</span>
      <span class="tool-state">${state === 'running' ? 'running…' : state === 'error' ? 'failed' : 'done'}</span>
      ${part.duration !== undefined ? html`<span class="muted">${formatMs(part.duration)}</span>` : null}
    </summary>
    <div class="tool-body">
      <h4>Arguments</h4><pre class="tool-args">${pretty(part.args)}</pre>
      ${part.done ? html`<h4>${part.isError ? 'Error' : 'Result'}</h4>
        <pre class=${part.isError ? 'tool-result error' : 'tool-result'}>${pretty(part.result)}</pre>` : null}
      ${part.children.length ? html`<div class="delegated"><h4>Delegated activity</h4><${Parts} parts=${part.children} /></div>` : null}
    </div>
  </details>`;
}

function Parts({ parts }) {
  return parts.map((part, index) => (part.kind === 'tool'
    ? html`<${ToolPanel} key=${part.id || index} part=${part} />`
    : html`<div class="md" key=${index}>${part.agent ? html`<div class="muted">${part.agent}:</div>` : null}${renderMarkdown(part.text)}</div>`));
}

export function Turn({ turn }) {
  if (turn.role === 'user') {
    return html`<div class="msg msg-user"><div class="who">You</div><div class="bubble">${turn.text}</div></div>`;
  }
  return html`<div class="msg msg-assistant" data-status=${turn.status}>
    <div class="who">Agent</div>
    <div class="bubble" data-testid="assistant-reply">
      <${Parts} parts=${turn.parts} />
      ${turn.status === 'streaming' && !turn.parts.length ? html`<span class="muted">thinking…</span>` : null}
      ${turn.status === 'streaming' ? html`<span class="cursor" aria-hidden="true"></span>` : null}
      ${turn.status === 'cancelled' ? html`<p class="muted">Stopped.</p>` : null}
      ${turn.status === 'error' ? html`<p class="error" role="alert">${turn.error}${turn.errorClass ? ` (${turn.errorClass})` : ''}</p>` : null}
      ${turn.metrics ? html`<div class="metrics muted">${turn.metrics.input_tokens} in · ${turn.metrics.output_tokens} out · ${formatCost(turn.metrics.cost_usd)} · ${formatMs(turn.metrics.duration_ms)}</div>` : null}
    </div>
  </div>`;
}

// ------------------------------------------------------------ the page
export default function Chat({ args }) {
  const agents = useSignal(null);
  const [error, setError] = useState(null);
  const session = args[0] || null;

  useEffect(() => {
    getJSON('/api/agents').then((data) => {
      agents.value = data.agents;
      if (!session && data.agents.length) {
        const first = data.agents.find((a) => a.name === 'assistant') || data.agents[0];
        go('chat', first.name);
      }
    }).catch(setError);
  }, []);

  return html`<section class="page chat" aria-labelledby="page-title">
    <div class="chat-head">
      <h1 id="page-title">Chat</h1>
      <label class="inline">Agent
        <select data-testid="agent-picker" value=${session || ''} onChange=${(e) => go('chat', e.currentTarget.value)}>
          ${!session ? html`<option value="">Pick an agent…</option>` : null}
          ${(agents.value || []).map((a) => html`<option key=${a.name} value=${a.name}>${a.name}${a.source !== 'yaml' ? ` (${a.source})` : ''}</option>`)}
          ${session && agents.value && !agents.value.some((a) => a.name === session) ? html`<option value=${session}>${session}</option>` : null}
        </select>
      </label>
    </div>
    <${ErrorNote} error=${error} />
    ${agents.value && !agents.value.length ? html`<p class="muted">No agents are defined on this server.</p>` : null}
    ${session ? html`<${Conversation} key=${session} session=${session} agent=${(agents.value || []).find((a) => a.name === session.split(':')[0])} />` : null}
  </section>`;
}

function Conversation({ session, agent }) {
  const [turns, setTurns] = useState([]);
  const [earlier, setEarlier] = useState(0); // messages before the loaded ones
  const [loading, setLoading] = useState(true);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState(null);
  const [text, setText] = useState('');
  const liveTurn = useRef(null);
  const abort = useRef(null);
  const request = useRef(null); // the WebSocket request id of the reply followed
  const [transport, setTransport] = useState(null); // 'ws' | 'sse': how replies arrive
  const frame = useRef(0);
  const log = useRef(null);
  const stick = useRef(true);
  const base = `/api/agents/${seg(session)}`;

  function refresh() {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setTurns((current) => [...current]);
    });
  }

  // Follow a reply to its end: `op` 'chat' sends `message`, 'attach' follows the session's
  // reply in flight (replayed from its start). Over the WebSocket, or SSE when it cannot
  // be opened; a socket that closes mid-reply is followed again (the reply went on).
  async function follow(op, message, turn, attempt = 0) {
    abort.current = new AbortController();
    const { signal } = abort.current;
    let got = false; // the server has the request (so a reply exists to follow again)
    const onEvent = (event) => { got = true; applyEvent(turn, event); refresh(); };
    setStreaming(true);
    try {
      try {
        await streamReply({ op, agent: session, message, onEvent, signal,
          onStart: (id) => { request.current = id; setTransport('ws'); } });
      } catch (failure) {
        if (!(failure instanceof NoSocket)) throw failure;
        request.current = null;
        setTransport('sse');
        const response = op === 'chat'
          ? await call('POST', `${base}/chat/stream`, { body: { message }, signal, headers: { Accept: 'text/event-stream' } })
          : await call('GET', `${base}/chat/stream`, { signal, headers: { Accept: 'text/event-stream' } });
        try {
          await readSSE(response, ({ data }) => onEvent(data));
        } catch (cut) {
          if (cut.name === 'AbortError') throw cut;
          throw new SocketLost('The connection was lost while the reply was streaming; reload to re-attach.');
        }
      }
      if (turn.status === 'streaming') { turn.status = 'error'; turn.error = 'the stream ended without a final event'; }
    } catch (failure) {
      if (failure.name === 'AbortError') return; // we left: the reply goes on on the server
      if (failure instanceof SocketLost && request.current && (got || op === 'attach') && attempt < REATTACH) {
        // The socket closed, not the reply: follow it again from its start.
        turn.parts = []; turn.status = 'streaming';
        refresh();
        return follow('attach', null, turn, attempt + 1);
      }
      turn.status = 'error';
      if (failure instanceof ApiError && failure.status === 404 && op === 'attach') turn.error = 'That reply is no longer on the server.';
      else { turn.error = failure.message; turn.errorClass = failure.errorClass; }
    }
    request.current = null;
    setStreaming(false);
    refresh();
  }

  async function load() {
    try {
      const head = await getJSON(`${base}/chat?limit=1&offset=0`);
      const offset = Math.max(0, head.total - PAGE);
      const page = offset === 0 && head.total <= 1 ? head : await getJSON(`${base}/chat?limit=${PAGE}&offset=${offset}`);
      let messages = page.messages;
      const running = head.in_flight || page.in_flight;
      if (running) {
        // The reply in flight is shown live: drop its user turn and anything after it.
        for (let i = messages.length - 1; i >= 0; i--) {
          const m = messages[i];
          if (m.role === 'user' && blockText(m.content) === running.message) { messages = messages.slice(0, i); break; }
        }
      }
      let loaded = toTurns(messages);
      if (running) {
        const turn = { role: 'assistant', parts: [], status: 'streaming' };
        loaded = [...loaded, { role: 'user', text: running.message }, turn];
        liveTurn.current = turn;
        follow('attach', null, turn);
      }
      setEarlier(offset);
      setTurns((current) => [...loaded, ...current]);
    } catch (failure) {
      setError(failure);
    } finally {
      setLoading(false);
    }
  }

  async function loadEarlier() {
    const offset = Math.max(0, earlier - PAGE);
    try {
      const page = await getJSON(`${base}/chat?limit=${earlier - offset}&offset=${offset}`);
      setEarlier(offset);
      stick.current = false;
      setTurns((current) => [...toTurns(page.messages), ...current]);
    } catch (failure) { setError(failure); }
  }

  useEffect(() => {
    load();
    return () => { if (abort.current) abort.current.abort(); cancelAnimationFrame(frame.current); };
  }, []);

  useEffect(() => {
    if (stick.current && log.current) log.current.scrollTop = log.current.scrollHeight;
  }, [turns]);

  async function send(event) {
    if (event) event.preventDefault();
    const message = text.trim();
    if (!message || streaming || loading) return;
    setText('');
    setError(null);
    stick.current = true;
    const turn = { role: 'assistant', parts: [], status: 'streaming' };
    liveTurn.current = turn;
    setTurns((current) => [...current, { role: 'user', text: message }, turn]);
    await follow('chat', message, turn);
  }

  async function stop() {
    // Over the WebSocket, its `cancel` op; else (SSE) DELETE …/chat/stream. Either way the
    // reply ends with an `error` event of class `cancelled`.
    try {
      if (request.current && await cancelReply(request.current)) return;
      await call('DELETE', `${base}/chat/stream`);
    } catch (failure) { setError(failure); }
  }

  async function clear() {
    if (!confirm(`Forget the conversation with ${session}?`)) return;
    try {
      await call('DELETE', `${base}/chat`);
      setTurns([]); setEarlier(0);
    } catch (failure) { setError(failure); }
  }

  function onKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) send(event);
  }

  return html`<div class="conversation">
    ${agent ? html`<p class="muted agent-line">${agent.description || agent.system || ''}${agent.model ? html` <span class="badge">${agent.model}</span>` : null}</p>` : null}
    <div class="log" ref=${log} aria-live="polite" aria-busy=${streaming} data-testid="chat-log" data-transport=${transport}
      onScroll=${(e) => { const el = e.currentTarget; stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40; }}>
      ${earlier > 0 ? html`<button type="button" class="ghost" onClick=${loadEarlier}>Load earlier messages (${earlier})</button>` : null}
      ${loading ? html`<p class="muted">Loading the conversation…</p>` : null}
      ${!loading && !turns.length ? html`<p class="muted">No messages yet. Say something to ${session}.</p>` : null}
      ${turns.map((turn, index) => html`<${Turn} key=${index} turn=${turn} />`)}
    </div>
    <${ErrorNote} error=${error} />
    <form class="composer" onSubmit=${send}>
      <label for="chat-input" class="visually-hidden">Message</label>
      <textarea id="chat-input" rows="2" placeholder=${`Message ${session} (Enter to send, Shift+Enter for a new line)`}
        value=${text} onInput=${(e) => setText(e.currentTarget.value)} onKeyDown=${onKey} disabled=${loading}></textarea>
      <div class="composer-actions">
        ${streaming
          ? html`<button type="button" class="danger" onClick=${stop} data-testid="stop">Stop</button>`
          : html`<button type="submit" disabled=${!text.trim()}>Send</button>`}
        <button type="button" class="ghost" onClick=${clear} disabled=${streaming}>Clear</button>
      </div>
    </form>
  </div>`;
}
