// Cost Dashboard: what was spent, in total and per agent with budgets (live totals); with a
// store (`vega-trio serve --db`, the default) also per agent, process, run and model over
// the store's life and over time, as a uPlot chart (loaded only on this page). Refreshed
// (at most every 2 s) when llm.call events arrive.
import { html, useEffect, useRef, useState } from '../lib.js';
import { getJSON } from '../api.js';
import { subscribe } from '../live.js';
import { href } from '../router.js';
import { formatCost, ErrorNote } from '../ui.js';

const BUCKETS = [[60, 'minute'], [3600, 'hour'], [86400, 'day']];
const KEYS = [['agent', 'Agent'], ['model', 'Model'], ['run_id', 'Workflow run'], ['process_id', 'Process']];
let cssAdded = false;

function addChartCss() {
  if (cssAdded) return;
  cssAdded = true;
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = new URL('../../vendor/uplot-1.6.32/uPlot.min.css', import.meta.url).href;
  document.head.appendChild(link);
}

function Bars({ rows, label, title, total }) {
  const max = Math.max(...rows.map((r) => r.cost_usd), 0) || 1;
  return html`<div class="table-wrap"><table class="bars" data-testid=${`costs-by-${label}`}>
    <thead><tr><th scope="col">${title}</th><th scope="col">Cost</th><th scope="col" class="bar-col"><span class="visually-hidden">share</span></th><th scope="col">Calls</th><th scope="col">Tokens in / out</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr key=${r.key}>
      <td>${r.link ? html`<a href=${r.link}><code>${r.key}</code></a>` : r.key || html`<span class="muted">(none)</span>`}</td>
      <td>${formatCost(r.cost_usd)}</td>
      <td class="bar-col"><span class="bar" style=${{ width: `${(100 * r.cost_usd) / max}%` }} title=${total ? `${Math.round((100 * r.cost_usd) / total)}%` : ''}></span></td>
      <td>${r.calls ?? ''}</td><td>${r.input_tokens !== undefined ? `${r.input_tokens} / ${r.output_tokens}` : ''}</td></tr>`)}</tbody>
  </table></div>`;
}

function Chart({ series, bucket, seconds }) {
  const box = useRef(null);
  const [failed, setFailed] = useState(null);
  useEffect(() => {
    let plot = null;
    let alive = true;
    addChartCss();
    import('uplot').then(({ default: uPlot }) => {
      if (!alive || !box.current) return;
      // An empty bucket either side: a lone bucket would otherwise stretch the axis.
      const xs = [series[0].start - seconds, ...series.map((p) => p.start), series[series.length - 1].start + seconds];
      const ys = [0, ...series.map((p) => p.cost_usd), 0];
      const style = getComputedStyle(document.documentElement);
      const accent = style.getPropertyValue('--accent').trim() || '#3b5bdb';
      const text = style.getPropertyValue('--muted').trim() || '#666';
      plot = new uPlot({
        width: Math.max(280, box.current.clientWidth),
        height: 220,
        series: [{}, { label: `Cost per ${bucket}`, stroke: accent, fill: `${accent}33`, width: 2, paths: uPlot.paths.bars({ size: [0.8] }), value: (u, v) => (v == null ? '' : formatCost(v)) }],
        axes: [{ stroke: text }, { stroke: text, values: (u, vals) => vals.map((v) => formatCost(v)), size: 70 }],
        scales: { x: { time: true } },
        legend: { show: true },
      }, [xs, ys], box.current);
    }).catch(setFailed);
    return () => { alive = false; if (plot) plot.destroy(); };
  }, [series, bucket, seconds]);
  return html`<div><div ref=${box} class="chart" data-testid="cost-chart" role="img" aria-label=${`Cost per ${bucket} over time`}></div>
    ${failed ? html`<p class="error">The chart failed to load: ${String(failed.message || failed)}</p>` : null}</div>`;
}

export default function Costs() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [bucket, setBucket] = useState(3600);
  const last = useRef(0);
  const timer = useRef(null);

  async function load() {
    last.current = Date.now();
    try { setData(await getJSON(`/api/costs?bucket=${bucket}`)); setError(null); } catch (failure) { setError(failure); }
  }
  useEffect(() => {
    load();
    const off = subscribe((batch) => {
      if (!batch.some((e) => e.type === 'llm.call') || timer.current) return;
      timer.current = setTimeout(() => { timer.current = null; load(); }, Math.max(0, 2000 - (Date.now() - last.current)));
    });
    return () => { off(); clearTimeout(timer.current); timer.current = null; };
  }, [bucket]);

  const bucketName = (BUCKETS.find(([s]) => s === bucket) || [0, `${bucket} s`])[1];
  const agents = data ? Object.entries(data.agents).map(([key, v]) => ({ key, cost_usd: v.cost_usd, budget: v.budget })) : [];
  return html`<section class="page costs" aria-labelledby="page-title">
    <h1 id="page-title">Cost Dashboard</h1>
    <${ErrorNote} error=${error} />
    ${data ? html`
      <div class="stats">
        <div class="stat card"><div class="stat-value" data-testid="cost-total">${formatCost(data.total_usd)}</div><div class="stat-label">Spent (live processes' totals)</div></div>
        ${data.budget ? html`<div class="stat card"><div class="stat-value">${formatCost(data.budget.limit_usd)}</div><div class="stat-label">Budget</div></div>` : null}
      </div>
      <section class="card"><h2>Per agent (live)</h2>
        ${agents.length ? html`<${Bars} rows=${agents} label="agent-live" title="Agent" total=${data.total_usd} />` : html`<p class="muted">Nothing spent yet.</p>`}
      </section>
      ${data.series ? html`<section class="card"><div class="detail-head"><h2>Over time</h2>
          <label class="inline">per <select value=${bucket} onChange=${(e) => setBucket(Number(e.currentTarget.value))}>
            ${BUCKETS.map(([s, name]) => html`<option key=${s} value=${s}>${name}</option>`)}</select></label></div>
        ${data.series.length ? html`<${Chart} series=${data.series} bucket=${bucketName} seconds=${bucket} />` : html`<p class="muted">No model call recorded yet.</p>`}
      </section>
      <div class="grid2">${KEYS.map(([key, title]) => {
        const rows = Object.entries(data.by[key] || {}).map(([k, v]) => ({ key: k, ...v,
          link: key === 'process_id' && k ? href('processes', k) : key === 'run_id' && k ? href('workflows', k) : null }))
          .sort((a, b) => b.cost_usd - a.cost_usd);
        return html`<section class="card" key=${key}><h2>Per ${title.toLowerCase()}</h2>
          ${rows.length ? html`<${Bars} rows=${rows.slice(0, 20)} label=${key} title=${title} total=${data.total_usd} />` : html`<p class="muted">None yet.</p>`}</section>`;
      })}</div>` : html`<p class="muted card">Start the server with a store (<code>--db</code>, the default) for costs per model, run and process and over time.</p>`}
    ` : html`<p class="muted">Loading…</p>`}
  </section>`;
}
