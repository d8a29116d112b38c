// Overview: live stats, the recent events, the active processes and the health alerts.
// Numbers come from the API and are fetched again (at most every 2 s) when events say
// something changed.
import { html, useEffect, useRef, useState } from '../lib.js';
import { getJSON } from '../api.js';
import { subscribe, recent as seen } from '../live.js';
import { href } from '../router.js';
import { formatCost, formatTime, formatAgo, eventDetail, ErrorNote, StatusBadge } from '../ui.js';

const RECENT = 15;

export default function Overview() {
  const [stats, setStats] = useState(null);
  const [health, setHealth] = useState(null);
  const [processes, setProcesses] = useState(null);
  const [recent, setRecent] = useState(() => seen.slice(-RECENT).reverse());
  const [alerts, setAlerts] = useState([]);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  const last = useRef(0);

  async function refresh() {
    last.current = Date.now();
    try {
      const [s, h, p] = await Promise.all([
        getJSON('/api/stats'),
        getJSON('/healthz').catch(() => null),
        getJSON('/api/processes?status=running,pending&limit=20'),
      ]);
      setStats(s); setHealth(h); setProcesses(p); setError(null);
    } catch (failure) { setError(failure); }
  }

  function soon() {
    if (timer.current) return;
    const wait = Math.max(0, 2000 - (Date.now() - last.current));
    timer.current = setTimeout(() => { timer.current = null; refresh(); }, wait);
  }

  useEffect(() => {
    refresh();
    const poll = setInterval(refresh, 15000);
    const off = subscribe((batch) => {
      setRecent((current) => [...batch.slice(-RECENT).reverse(), ...current].slice(0, RECENT));
      const fresh = batch.filter((e) => e.type === 'health.alert' || e.type === 'supervisor.gave_up' || e.type === 'budget.exceeded');
      if (fresh.length) setAlerts((current) => [...fresh.reverse(), ...current].slice(0, 20));
      soon();
    });
    return () => { off(); clearInterval(poll); clearTimeout(timer.current); };
  }, []);

  const healthAlerts = (health && health.alerts) || [];
  return html`<section class="page overview" aria-labelledby="page-title">
    <h1 id="page-title">Overview</h1>
    <${ErrorNote} error=${error} />
    <div class="stats" data-testid="stats">
      <${Stat} label="Live processes" value=${stats ? stats.live_processes : '…'} />
      <${Stat} label="Spawned in total" value=${stats ? stats.total_spawned : '…'} />
      <${Stat} label="Cost (live)" value=${stats ? formatCost(stats.live_cost_usd) : '…'} />
      <${Stat} label="Cost (total)" value=${stats ? formatCost(stats.total_cost_usd) : '…'} />
      <${Stat} label="Events published" value=${stats ? stats.events_published : '…'} />
      <${Stat} label="Health" value=${health ? health.status : '…'} tone=${health && health.status !== 'ok' ? 'warn' : ''} />
    </div>
    <div class="grid2">
      <section class="card" aria-labelledby="alerts-title">
        <h2 id="alerts-title">Health alerts</h2>
        ${!healthAlerts.length && !alerts.length ? html`<p class="muted">No alerts. All processes look healthy.</p>` : null}
        <ul class="plain">
          ${healthAlerts.map((a, i) => html`<li key=${`h${i}`} class="alert"><strong>${a.alert}</strong> ${a.agent || ''} ${a.process_id ? html`<code>${a.process_id}</code>` : null}</li>`)}
          ${alerts.map((e) => html`<li key=${e.seq} class="alert"><strong>${e.type === 'health.alert' ? e.alert : e.type}</strong> ${e.agent || ''} <span class="muted">${e.detail || eventDetail(e)} · ${formatTime(e.timestamp)}</span></li>`)}
        </ul>
      </section>
      <section class="card" aria-labelledby="procs-title">
        <h2 id="procs-title">Active processes</h2>
        ${processes && !processes.processes.length ? html`<p class="muted">Nothing is running. Start a <a href=${href('chat')}>chat</a>.</p>` : null}
        ${processes && processes.processes.length ? html`<div class="table-wrap"><table data-testid="active-processes">
          <thead><tr><th scope="col">Process</th><th scope="col">Agent</th><th scope="col">Status</th><th scope="col">Last active</th><th scope="col">Cost</th></tr></thead>
          <tbody>${processes.processes.map((p) => html`<tr key=${p.id}>
            <td><a href=${href('processes', p.id)}><code>${p.id}</code></a></td><td>${p.agent}${p.user ? `:${p.user}` : ''}</td><td><${StatusBadge} status=${p.status} /></td>
            <td>${formatAgo(p.last_active)}</td><td>${p.metrics ? formatCost(p.metrics.cost_usd) : '—'}</td></tr>`)}</tbody>
        </table></div>` : null}
        ${processes && processes.total > processes.processes.length ? html`<p class="muted">and ${processes.total - processes.processes.length} more</p>` : null}
      </section>
    </div>
    <section class="card" aria-labelledby="recent-title">
      <h2 id="recent-title">Recent events <a class="small" href=${href('events')}>all events →</a></h2>
      ${!recent.length ? html`<p class="muted">Waiting for events…</p>` : null}
      <ol class="events plain" data-testid="recent-events">
        ${recent.map((e) => html`<li key=${e.seq}><span class="muted">${formatTime(e.timestamp)}</span> <span class=${`etype et-${e.type.split('.')[0]}`}>${e.type}</span> ${e.agent || ''} <span class="muted">${eventDetail(e)}</span></li>`)}
      </ol>
    </section>
  </section>`;
}

function Stat({ label, value, tone = '' }) {
  return html`<div class=${`stat card ${tone}`}><div class="stat-value">${value}</div><div class="stat-label">${label}</div></div>`;
}
