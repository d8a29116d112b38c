// Event Stream: every runtime event as it happens, filtered by type, agent and process,
// pausable. The DOM is bounded: the page keeps the latest KEPT events in memory and shows
// at most SHOWN rows, redrawn at most once per animation frame however fast events come.
import { html, useEffect, useRef, useState } from '../lib.js';
import { subscribe, missed, recent } from '../live.js';
import { formatTime, eventDetail } from '../ui.js';

const KEPT = 5000;
const SHOWN = 200;

function matcher({ type, agent, process }) {
  const types = type.split(',').map((t) => t.trim()).filter(Boolean);
  return (e) => {
    if (types.length && !types.some((t) => (t.endsWith('*') ? e.type.startsWith(t.slice(0, -1)) : e.type === t || e.type.startsWith(`${t}.`)))) return false;
    if (agent && !(e.agent || '').includes(agent)) return false;
    if (process && !(e.process_id || '').includes(process)) return false;
    return true;
  };
}

export default function Events() {
  const buffer = useRef(recent.slice(-KEPT));
  const total = useRef(0);
  const [, setTick] = useState(0);
  const [paused, setPaused] = useState(false);
  const [filters, setFilters] = useState({ type: '', agent: '', process: '' });
  const [open, setOpen] = useState(null);
  const pausedRef = useRef(false);
  const unseen = useRef(0);
  const frame = useRef(0);

  useEffect(() => {
    const off = subscribe((batch) => {
      total.current += batch.length;
      const kept = frozen.current || buffer.current;
      kept.push(...batch);
      if (kept.length > KEPT) kept.splice(0, kept.length - KEPT);
      if (pausedRef.current) { unseen.current += batch.length; return; }
      if (!frame.current) {
        frame.current = requestAnimationFrame(() => { frame.current = 0; setTick((n) => n + 1); });
      }
    });
    return () => { off(); cancelAnimationFrame(frame.current); };
  }, []);

  const frozen = useRef(null);
  function togglePause() {
    pausedRef.current = !pausedRef.current;
    // Paused, the table shows what it showed (filters still apply to those events).
    frozen.current = pausedRef.current ? buffer.current.slice() : null;
    if (!pausedRef.current) unseen.current = 0;
    setPaused(pausedRef.current);
  }

  const setFilter = (key) => (e) => setFilters({ ...filters, [key]: e.currentTarget.value });
  const match = matcher(filters);
  const rows = [];
  const kept = frozen.current || buffer.current;
  for (let i = kept.length - 1; i >= 0 && rows.length < SHOWN; i--) if (match(kept[i])) rows.push(kept[i]);

  return html`<section class="page events-page" aria-labelledby="page-title">
    <h1 id="page-title">Event Stream</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()} role="search">
      <label>Type <input value=${filters.type} onInput=${setFilter('type')} placeholder="process.*, llm.call" data-testid="filter-type" /></label>
      <label>Agent <input value=${filters.agent} onInput=${setFilter('agent')} placeholder="any" data-testid="filter-agent" /></label>
      <label>Process <input value=${filters.process} onInput=${setFilter('process')} placeholder="any" data-testid="filter-process" /></label>
      <button type="button" onClick=${togglePause} aria-pressed=${paused} data-testid="pause">${paused ? 'Resume' : 'Pause'}</button>
      <button type="button" class="ghost" onClick=${() => { buffer.current = []; setTick((n) => n + 1); }}>Clear</button>
    </form>
    <p class="muted" aria-live="polite" data-testid="event-counts">
      ${total.current} received · ${rows.length} shown (latest ${SHOWN} matching of ${kept.length} kept)
      ${paused ? html` · <strong>paused</strong>, ${unseen.current} new` : null}
      ${missed.value ? html` · <span class="error">${missed.value} missed (the page fell behind)</span>` : null}
    </p>
    ${!rows.length ? html`<p class="muted">${kept.length ? 'No event matches the filters.' : 'Waiting for events… (chat with an agent to make some)'}</p>` : null}
    <div class="table-wrap"><table class="event-table" data-testid="event-table">
      <thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Agent</th><th scope="col">Process</th><th scope="col">Details</th></tr></thead>
      <tbody>${rows.map((e) => html`<tr key=${e.seq} class=${open === e.seq ? 'open' : ''}>
        <td>${e.seq}</td><td>${formatTime(e.timestamp)}</td>
        <td><span class=${`etype et-${e.type.split('.')[0]}`}>${e.type}</span></td>
        <td>${e.agent || ''}</td><td>${e.process_id ? html`<code>${e.process_id}</code>` : ''}</td>
        <td><button type="button" class="link" aria-expanded=${open === e.seq} onClick=${() => setOpen(open === e.seq ? null : e.seq)}>${eventDetail(e) || 'details'}</button>
          ${open === e.seq ? html`<pre class="event-json">${JSON.stringify(e, null, 2)}</pre>` : null}</td>
      </tr>`)}</tbody>
    </table></div>
  </section>`;
}
