// Process Explorer: every process (live ones and, with a store, finished ones), filtered by
// status and agent on the server, sorted by any column here; a process's metrics and
// conversation; Kill (DELETE /api/processes/{id}). Refreshed when process events arrive.
import { html, useEffect, useRef, useState } from '../lib.js';
import { call, getJSON, seg } from '../api.js';
import { subscribe } from '../live.js';
import { go, href } from '../router.js';
import { formatAgo, formatCost, formatTime, ErrorNote, StatusBadge } from '../ui.js';
import { toTurns, Turn } from './chat.js';

const STATUSES = ['running', 'pending', 'completed', 'failed', 'timeout', 'stopped'];
const PAGE = 100;
const ENDED = { 'process.completed': 'completed', 'process.failed': 'failed', 'process.stopped': 'stopped' };
const COLUMNS = [
  { key: 'id', label: 'Process', value: (p) => p.id },
  { key: 'agent', label: 'Agent', value: (p) => p.agent + (p.user ? `:${p.user}` : '') },
  { key: 'status', label: 'Status', value: (p) => p.status },
  { key: 'started_at', label: 'Started', value: (p) => p.started_at || 0 },
  { key: 'last_active', label: 'Last active', value: (p) => p.last_active || 0 },
  { key: 'restart_count', label: 'Restarts', value: (p) => p.restart_count },
  { key: 'cost', label: 'Cost', value: (p) => (p.metrics ? p.metrics.cost_usd : 0) },
];

export default function Processes({ args }) {
  const [status, setStatus] = useState('');
  const [agent, setAgent] = useState('');
  const [agents, setAgents] = useState([]);
  const [offset, setOffset] = useState(0);
  const [data, setData] = useState(null);
  const [sort, setSort] = useState({ key: 'started_at', desc: true });
  const [error, setError] = useState(null);
  const selected = args[0] || null;
  const timer = useRef(null);
  const query = useRef('');

  async function refresh() {
    const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (status) params.set('status', status);
    if (agent) params.set('agent', agent);
    query.current = params.toString();
    try {
      const page = await getJSON(`/api/processes?${params}`);
      if (query.current === params.toString()) { setData(page); setError(null); }
    } catch (failure) { setError(failure); }
  }

  useEffect(() => { getJSON('/api/agents').then((d) => setAgents(d.agents.map((a) => a.name))).catch(() => {}); }, []);
  useEffect(() => {
    refresh();
    const off = subscribe((batch) => {
      if (!batch.some((e) => e.type.startsWith('process.') || e.type === 'supervisor.gave_up')) return;
      if (!timer.current) timer.current = setTimeout(() => { timer.current = null; refresh(); }, 500);
    });
    return () => { off(); clearTimeout(timer.current); timer.current = null; };
  }, [status, agent, offset]);

  const column = COLUMNS.find((c) => c.key === sort.key) || COLUMNS[0];
  const rows = data ? [...data.processes].sort((a, b) => {
    const x = column.value(a); const y = column.value(b);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return sort.desc ? -order : order;
  }) : [];
  // Agents of the registry and any other seen in the list (a supervisor's children).
  const agentOptions = [...new Set([...agents, ...(data ? data.processes.map((p) => p.agent) : []), ...(agent ? [agent] : [])])].sort();
  const toggle = (key) => setSort(sort.key === key ? { key, desc: !sort.desc } : { key, desc: false });

  return html`<section class="page processes" aria-labelledby="page-title">
    <h1 id="page-title">Process Explorer</h1>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Status <select value=${status} data-testid="filter-status" onChange=${(e) => { setOffset(0); setStatus(e.currentTarget.value); }}>
        <option value="">any</option>${STATUSES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
      </select></label>
      <label>Agent <select value=${agent} data-testid="filter-agent" onChange=${(e) => { setOffset(0); setAgent(e.currentTarget.value); }}>
        <option value="">any</option>${agentOptions.map((a) => html`<option key=${a} value=${a}>${a}</option>`)}
      </select></label>
      <button type="button" class="ghost" onClick=${refresh}>Refresh</button>
    </form>
    <${ErrorNote} error=${error} />
    <div class=${selected ? 'split' : ''}>
      <div>
        ${data ? html`<p class="muted">${data.total} process${data.total === 1 ? '' : 'es'}${data.total > PAGE ? `, ${offset + 1}–${Math.min(offset + PAGE, data.total)} shown` : ''}</p>` : html`<p class="muted">Loading…</p>`}
        ${data && !data.processes.length ? html`<p class="muted">No process matches. Start a <a href=${href('chat')}>chat</a>.</p>` : null}
        ${rows.length ? html`<div class="table-wrap"><table data-testid="process-table">
          <thead><tr>${COLUMNS.map((c) => html`<th key=${c.key} scope="col" aria-sort=${sort.key === c.key ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
            <button type="button" class="link sort" onClick=${() => toggle(c.key)}>${c.label}${sort.key === c.key ? (sort.desc ? ' ▼' : ' ▲') : ''}</button></th>`)}</tr></thead>
          <tbody>${rows.map((p) => html`<tr key=${p.id} class=${selected === p.id ? 'open' : ''}>
            <td><a href=${href('processes', p.id)}><code>${p.id}</code></a></td>
            <td>${p.agent}${p.user ? `:${p.user}` : ''}</td><td><${StatusBadge} status=${p.status} /></td>
            <td>${formatTime(p.started_at)}</td><td>${formatAgo(p.last_active)}</td><td>${p.restart_count}</td>
            <td>${p.metrics ? formatCost(p.metrics.cost_usd) : '—'}</td></tr>`)}</tbody>
        </table></div>` : null}
        ${data && data.total > PAGE ? html`<div class="pager">
          <button type="button" class="ghost" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>Previous</button>
          <button type="button" class="ghost" disabled=${offset + PAGE >= data.total} onClick=${() => setOffset(offset + PAGE)}>Next</button>
        </div>` : null}
      </div>
      ${selected ? html`<${Detail} key=${selected} id=${selected} onChanged=${refresh} />` : null}
    </div>
  </section>`;
}

function Detail({ id, onChanged }) {
  const [proc, setProc] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function load() {
    try { setProc(await getJSON(`/api/processes/${seg(id)}`)); setError(null); } catch (failure) { setError(failure); }
  }
  useEffect(() => {
    load();
    let timer = null;
    const off = subscribe((batch) => {
      const mine = batch.filter((e) => e.process_id === id);
      if (!mine.length) return;
      const last = mine[mine.length - 1];
      const ended = ENDED[last.type];
      // An ended process may be gone from the server's memory (no store): take its final
      // status from the event instead of asking for a process that is no longer there.
      if (ended) { setProc((p) => (p ? { ...p, status: ended } : p)); return; }
      if (!timer) timer = setTimeout(() => { timer = null; load(); }, 300);
    });
    return () => { off(); clearTimeout(timer); };
  }, []);

  async function kill() {
    if (!confirm(`Kill ${id}? It stops at once (its supervisor may restart it).`)) return;
    setBusy(true);
    try {
      setProc({ ...(await (await call('DELETE', `/api/processes/${seg(id)}`)).json()), conversation: proc && proc.conversation });
      onChanged();
    } catch (failure) { setError(failure); } finally { setBusy(false); }
  }

  const live = proc && (proc.status === 'running' || proc.status === 'pending');
  const m = proc && proc.metrics;
  return html`<aside class="card detail" aria-labelledby="detail-title" data-testid="process-detail">
    <div class="detail-head">
      <h2 id="detail-title"><code>${id}</code></h2>
      <button type="button" class="ghost" onClick=${() => go('processes')} aria-label="Close">×</button>
    </div>
    <${ErrorNote} error=${error} />
    ${proc ? html`<dl class="facts">
      <dt>Agent</dt><dd>${proc.agent}${proc.user ? `:${proc.user}` : ''}</dd>
      <dt>Status</dt><dd data-testid="detail-status"><${StatusBadge} status=${proc.status} /></dd>
      ${proc.error ? html`<dt>Error</dt><dd class="error">${proc.error}</dd>` : null}
      ${proc.parent_id ? html`<dt>Parent</dt><dd><a href=${href('processes', proc.parent_id)}><code>${proc.parent_id}</code></a></dd>` : null}
      ${proc.run_id ? html`<dt>Run</dt><dd><code>${proc.run_id}</code></dd>` : null}
      ${proc.model ? html`<dt>Model</dt><dd>${proc.model}</dd>` : null}
      <dt>Started</dt><dd>${formatTime(proc.started_at)}</dd>
      <dt>Restarts</dt><dd>${proc.restart_count}</dd>
      ${m ? html`<dt>Tokens</dt><dd>${m.input_tokens} in · ${m.output_tokens} out</dd><dt>Cost</dt><dd>${formatCost(m.cost_usd)}</dd>` : null}
    </dl>
    ${live ? html`<button type="button" class="danger" onClick=${kill} disabled=${busy} data-testid="kill">${busy ? 'Killing…' : 'Kill'}</button>` : null}
    <h3>Conversation</h3>
    ${proc.conversation && proc.conversation.length
      ? html`<div class="log mini">${toTurns(proc.conversation).map((t, i) => html`<${Turn} key=${i} turn=${t} />`)}</div>`
      : html`<p class="muted">${proc.conversation ? 'No messages.' : 'Not available (a finished process read from the store).'}</p>`}` : html`<p class="muted">Loading…</p>`}
  </aside>`;
}
