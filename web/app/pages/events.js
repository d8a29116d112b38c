// Event Stream: every runtime event as it happens, filtered by type, agent and process,
// pausable. The DOM is bounded and cheap to update: the page keeps the latest KEPT events
// in memory and draws a windowed list of them, newest first — only the rows in view (plus a
// few), each of a fixed height, recycled as the list moves. New events are batched and drawn
// at most once per animation frame, outside Preact: a frame reads the scroll position once,
// then only writes (the rows' text where it changed, one transform, the spacer's height), so
// the browser restyles and lays out a couple of dozen rows in a contained box, not a table
// (benchmark B12: 1,000 events/s on a loaded machine).
import { html, useEffect, useRef, useState } from '../lib.js';
import { subscribe, missed, recent } from '../live.js';
import { formatTime, eventDetail } from '../ui.js';

const KEPT = 5000;
/** Every row's height in px (style.css: .erow). */
export const ROW = 28;
/** Rows drawn above and below the ones in view (smooth scrolling). */
const OVERSCAN = 3;
/** New events redraw the list at most this often (ms): at 1,000 events/s each redraw
 * repaints every row in view, and five a second is as fast as anyone reads such a flood
 * (on a loaded machine a frame's paint and commit to the compositor wait for the CPU, so
 * fewer frames mean fewer long tasks: B12); scrolling, filters and pause redraw at the
 * next frame. */
const LIVE_EVERY = 200;
const COLUMNS = ['seq', 'time', 'type', 'agent', 'process', 'detail'];

function matcher({ type, agent, process }) {
  const types = type.split(',').map((t) => t.trim()).filter(Boolean);
  return (e) => {
    if (types.length && !types.some((t) => (t.endsWith('*') ? e.type.startsWith(t.slice(0, -1)) : e.type === t || e.type.startsWith(`${t}.`)))) return false;
    if (agent && !(e.agent || '').includes(agent)) return false;
    if (process && !(e.process_id || '').includes(process)) return false;
    return true;
  };
}

/** A recyclable row: a div of six cells whose text is set in place. */
function makeRow(onOpen) {
  const row = document.createElement('div');
  row.className = 'erow';
  row.setAttribute('role', 'row');
  const cells = {};
  for (const name of COLUMNS) {
    const cell = document.createElement('div');
    cell.className = `ecell ec-${name}`;
    cell.setAttribute('role', 'cell');
    row.append(cell);
    cells[name] = cell;
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'link';
  button.addEventListener('click', () => { if (row.event) onOpen(row.event); });
  cells.detail.append(button);
  const type = document.createElement('span');
  cells.type.append(type);
  const code = document.createElement('code');
  cells.process.append(code);
  // Text nodes whose data is replaced in place: a redraw creates no node.
  const text = (parent) => parent.appendChild(document.createTextNode(''));
  row.parts = {
    button, type, code,
    seq: text(cells.seq), time: text(cells.time), typeText: text(type), agent: text(cells.agent),
    process: text(code), detail: text(button),
  };
  row.event = null;
  return row;
}

function fill(row, event, open) {
  const isOpen = event === open;
  if (row.event === event) {
    if (row.isOpen !== isOpen) { row.isOpen = isOpen; row.classList.toggle('open', isOpen); row.parts.button.setAttribute('aria-expanded', String(isOpen)); }
    return;
  }
  row.event = event;
  const p = row.parts;
  p.seq.data = event.seq ?? '';
  p.time.data = formatTime(event.timestamp);
  p.typeText.data = event.type;
  const kind = `etype et-${event.type.split('.')[0]}`;
  if (p.type.className !== kind) p.type.className = kind;
  p.agent.data = event.agent || '';
  p.process.data = event.process_id || '';
  if (p.code.hidden !== !event.process_id) p.code.hidden = !event.process_id;
  p.detail.data = eventDetail(event) || 'details';
  p.button.setAttribute('aria-expanded', String(isOpen));
  if (row.isOpen !== isOpen) { row.isOpen = isOpen; row.classList.toggle('open', isOpen); }
  row.hidden = false;
}

export default function Events() {
  const buffer = useRef(recent.slice(-KEPT)); // every kept event, oldest first
  const matched = useRef([]); // the kept events that match the filters, oldest first
  const total = useRef(0);
  const [paused, setPaused] = useState(false);
  const [filters, setFilters] = useState({ type: '', agent: '', process: '' });
  const [open, setOpen] = useState(null); // the event whose JSON is shown
  const [empty, setEmpty] = useState(null); // null | 'none' | 'nomatch' (the hint shown)
  const state = useRef({ paused: false, unseen: 0, frame: 0, match: matcher(filters), open: null, height: 0, rows: [], drawn: 0, timer: 0 });
  const viewport = useRef(null);
  const spacer = useRef(null);
  const window_ = useRef(null);
  const counts = useRef(null);
  const frozen = useRef(null);

  // Draw the rows in view. Reads first (scrollTop; the height comes from a ResizeObserver),
  // then writes only: no layout is forced in between.
  function draw() {
    const s = state.current;
    s.frame = 0;
    s.drawn = performance.now();
    const list = s.paused ? frozen.current.matched : matched.current;
    const kept = s.paused ? frozen.current.kept : buffer.current;
    const view = viewport.current;
    if (!view) return;
    const top = view.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const wanted = Math.ceil((s.height || 600) / ROW) + 2 * OVERSCAN;
    while (s.rows.length < wanted) {
      const row = makeRow((event) => setOpen((current) => (current === event ? null : event)));
      s.rows.push(row);
      window_.current.append(row);
    }
    const n = list.length;
    for (let i = 0; i < s.rows.length; i++) {
      const index = first + i; // 0 = the newest
      const row = s.rows[i];
      if (index < n) fill(row, list[n - 1 - index], s.open);
      else if (!row.hidden) { row.hidden = true; row.event = null; }
    }
    window_.current.style.transform = `translateY(${first * ROW}px)`;
    spacer.current.style.height = `${n * ROW}px`;
    let text = `${total.current} received · ${n} matching of ${kept.length} kept`;
    if (s.paused) text += ` · paused, ${s.unseen} new`;
    if (counts.current.firstChild.data !== text) counts.current.firstChild.data = text;
    const hint = n ? null : kept.length ? 'nomatch' : 'none';
    setEmpty(hint); // a no-op for Preact when unchanged
  }

  function schedule() {
    const s = state.current;
    if (s.timer) { clearTimeout(s.timer); s.timer = 0; }
    if (!s.frame) s.frame = requestAnimationFrame(draw);
  }

  // A redraw for new events: at the next frame at least LIVE_EVERY ms after the last one.
  function scheduleLive() {
    const s = state.current;
    if (s.frame || s.timer) return;
    const wait = s.drawn + LIVE_EVERY - performance.now();
    if (wait <= 0) s.frame = requestAnimationFrame(draw);
    else s.timer = setTimeout(() => { s.timer = 0; schedule(); }, wait);
  }

  useEffect(() => {
    matched.current = buffer.current.filter(state.current.match);
    const off = subscribe((batch) => {
      const s = state.current;
      total.current += batch.length;
      const kept = buffer.current;
      kept.push(...batch);
      let dropped = 0;
      if (kept.length > KEPT) { dropped = kept.length - KEPT; kept.splice(0, dropped); }
      const list = matched.current;
      for (const event of batch) if (s.match(event)) list.push(event);
      if (dropped && list.length) {
        // The events dropped from `kept` are its oldest: drop them here too.
        const oldest = kept[0];
        let cut = 0;
        while (cut < list.length && list[cut].seq < oldest.seq) cut++;
        if (cut) list.splice(0, cut);
        if (list.length > KEPT) list.splice(0, list.length - KEPT);
      }
      if (s.paused) s.unseen += batch.length;
      scheduleLive();
    });
    const view = viewport.current;
    const resize = new ResizeObserver((entries) => {
      state.current.height = entries[entries.length - 1].contentRect.height;
      schedule();
    });
    resize.observe(view);
    const onScroll = () => schedule();
    view.addEventListener('scroll', onScroll, { passive: true });
    schedule();
    return () => {
      off();
      resize.disconnect();
      view.removeEventListener('scroll', onScroll);
      cancelAnimationFrame(state.current.frame);
      clearTimeout(state.current.timer);
    };
  }, []);

  function togglePause() {
    const s = state.current;
    s.paused = !s.paused;
    // Paused, the list holds still (filters still apply to the events it held).
    frozen.current = s.paused ? { kept: buffer.current.slice(), matched: matched.current.slice() } : null;
    s.unseen = 0;
    setPaused(s.paused);
    schedule();
  }

  function setFilter(key) {
    return (e) => {
      const next = { ...filters, [key]: e.currentTarget.value };
      const s = state.current;
      s.match = matcher(next);
      matched.current = buffer.current.filter(s.match);
      if (frozen.current) frozen.current.matched = frozen.current.kept.filter(s.match);
      setFilters(next);
      schedule();
    };
  }

  function clear() {
    buffer.current = [];
    matched.current = [];
    if (frozen.current) frozen.current = { kept: [], matched: [] };
    setOpen(null);
    schedule();
  }

  useEffect(() => {
    state.current.open = open;
    schedule();
  }, [open]);

  return html`<section class="page events-page" aria-labelledby="page-title">
    <h1 id="page-title">Event Stream</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()} role="search">
      <label>Type <input value=${filters.type} onInput=${setFilter('type')} placeholder="process.*, llm.call" data-testid="filter-type" /></label>
      <label>Agent <input value=${filters.agent} onInput=${setFilter('agent')} placeholder="any" data-testid="filter-agent" /></label>
      <label>Process <input value=${filters.process} onInput=${setFilter('process')} placeholder="any" data-testid="filter-process" /></label>
      <button type="button" onClick=${togglePause} aria-pressed=${paused} data-testid="pause">${paused ? 'Resume' : 'Pause'}</button>
      <button type="button" class="ghost" onClick=${clear}>Clear</button>
    </form>
    <p class="muted" data-testid="event-counts"><span ref=${counts}>${' '}</span>${missed.value ? html` · <span class="error">${missed.value} missed (the page fell behind)</span>` : null}</p>
    ${empty ? html`<p class="muted" data-testid="event-empty">${empty === 'nomatch' ? 'No event matches the filters.' : 'Waiting for events… (chat with an agent to make some)'}</p>` : null}
    <div class="event-table" role="table" aria-label="Events, newest first" data-testid="event-table">
      <div class="erow ehead" role="row">
        <div class="ecell ec-seq" role="columnheader">#</div><div class="ecell ec-time" role="columnheader">Time</div>
        <div class="ecell ec-type" role="columnheader">Type</div><div class="ecell ec-agent" role="columnheader">Agent</div>
        <div class="ecell ec-process" role="columnheader">Process</div><div class="ecell ec-detail" role="columnheader">Details</div>
      </div>
      <div class="event-viewport" ref=${viewport} tabindex="0" data-testid="event-viewport">
        <div class="event-spacer" ref=${spacer}></div>
        <div class="event-window" role="rowgroup" ref=${window_}></div>
      </div>
    </div>
    ${open ? html`<div class="card event-open" data-testid="event-detail">
      <div class="detail-head"><h2>Event ${open.seq ?? ''} · <span class="etype">${open.type}</span></h2>
        <button type="button" class="ghost" onClick=${() => setOpen(null)}>Close</button></div>
      <pre class="event-json">${JSON.stringify(open, null, 2)}</pre>
    </div>` : null}
  </section>`;
}
