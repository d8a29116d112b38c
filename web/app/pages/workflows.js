// Workflow Launcher: the document's workflows, each with a form generated from its inputs'
// JSON Schema (types, enums, defaults, required); a run's live per-step progress (refreshed
// on that run's workflow.* events), its output, cost and error; cancel; resume a failed,
// cancelled or interrupted run; the runs started on this server.
import { html, useEffect, useRef, useState } from '../lib.js';
import { getJSON, sendJSON, seg, ApiError } from '../api.js';
import { subscribe } from '../live.js';
import { go, href } from '../router.js';
import { formatCost, formatMs, formatTime, ErrorNote, StatusBadge } from '../ui.js';

function Field({ name, schema, required, value, onChange }) {
  const id = `input-${name}`;
  const label = html`<label for=${id}>${name}${required ? html` <span class="error" aria-label="required">*</span>` : ''}</label>`;
  const help = schema.description ? html`<small class="muted">${schema.description}</small>` : null;
  if (schema.enum) {
    return html`<div class="field">${label}<select id=${id} value=${value ?? ''} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${required && value === undefined ? html`<option value="">choose…</option>` : null}
      ${schema.enum.map((option) => html`<option key=${String(option)} value=${String(option)}>${String(option)}</option>`)}
    </select>${help}</div>`;
  }
  if (schema.type === 'boolean') {
    return html`<div class="field check"><input id=${id} type="checkbox" checked=${!!value} onChange=${(e) => onChange(e.currentTarget.checked)} />${label}${help}</div>`;
  }
  if (schema.type === 'integer' || schema.type === 'number') {
    return html`<div class="field">${label}<input id=${id} type="number" step=${schema.type === 'integer' ? '1' : 'any'} value=${value ?? ''} required=${required}
      onInput=${(e) => onChange(e.currentTarget.value === '' ? undefined : Number(e.currentTarget.value))} />${help}</div>`;
  }
  if (schema.type === 'array' || schema.type === 'object') {
    return html`<div class="field">${label}<textarea id=${id} class="code" rows="3" placeholder=${schema.type === 'array' ? '["a", "b"]' : '{"key": "value"}'}
      onInput=${(e) => { try { onChange(JSON.parse(e.currentTarget.value)); } catch { onChange(e.currentTarget.value); } }}></textarea><small class="muted">JSON</small>${help}</div>`;
  }
  return html`<div class="field">${label}<textarea id=${id} rows="2" value=${value ?? ''} required=${required} onInput=${(e) => onChange(e.currentTarget.value)}></textarea>${help}</div>`;
}

function Launcher({ workflow, onStarted }) {
  const props = workflow.inputs.properties || {};
  const required = new Set(workflow.inputs.required || []);
  const [values, setValues] = useState(() => Object.fromEntries(
    Object.entries(props).filter(([, s]) => s.default !== undefined).map(([k, s]) => [k, s.default])));
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    setError(null);
    const inputs = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== ''));
    try {
      const started = await sendJSON('POST', `/api/workflows/${seg(workflow.name)}/run`, { inputs });
      onStarted(started.run_id);
    } catch (failure) { setError(failure); }
  }
  return html`<form class="card" onSubmit=${submit} data-testid="launcher" aria-label=${`Run ${workflow.name}`}>
    <h2>${workflow.name}</h2>
    ${workflow.description ? html`<p class="muted">${workflow.description}</p>` : null}
    ${Object.entries(props).map(([name, schema]) => html`<${Field} key=${name} name=${name} schema=${schema} required=${required.has(name)}
      value=${values[name]} onChange=${(v) => setValues({ ...values, [name]: v })} />`)}
    ${error ? html`<div class="error" role="alert"><p>${error.message}</p>
      ${error instanceof ApiError && error.fields.length ? html`<ul>${error.fields.map((f, i) => html`<li key=${i}><code>${f.path}</code>: ${f.error}</li>`)}</ul>` : null}</div>` : null}
    <button type="submit">Run ${workflow.name}</button>
  </form>`;
}

function Run({ id, onChanged }) {
  const [run, setRun] = useState(null);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  async function load() {
    try { setRun(await getJSON(`/api/workflows/runs/${seg(id)}`)); setError(null); } catch (failure) { setError(failure); }
  }
  useEffect(() => {
    load();
    const off = subscribe((batch) => {
      if (!batch.some((e) => e.run_id === id)) return;
      if (!timer.current) timer.current = setTimeout(() => { timer.current = null; load(); }, 200);
    });
    return () => { off(); clearTimeout(timer.current); timer.current = null; };
  }, [id]);
  async function act(verb) {
    try { await sendJSON('POST', `/api/workflows/runs/${seg(id)}/${verb}`, {}); await load(); onChanged(); } catch (failure) { setError(failure); }
  }
  const resumable = run && ['failed', 'cancelled', 'interrupted'].includes(run.status);
  return html`<section class="card run" data-testid="run" aria-labelledby="run-title">
    <div class="detail-head"><h2 id="run-title"><code>${id}</code></h2>
      <button type="button" class="ghost" onClick=${() => go('workflows')} aria-label="Close">×</button></div>
    <${ErrorNote} error=${error} />
    ${run ? html`
      <p><span data-testid="run-status"><${StatusBadge} status=${run.status} /></span> ${run.workflow}
        ${run.cost_usd ? html` · ${formatCost(run.cost_usd)}` : null}${run.resumes ? html` · resumed ${run.resumes}×` : null}</p>
      ${run.status === 'running' ? html`<button type="button" class="danger" onClick=${() => act('cancel')}>Cancel</button>` : null}
      ${resumable ? html`<button type="button" onClick=${() => act('resume')} data-testid="resume">Resume</button>` : null}
      <h3>Steps</h3>
      ${run.steps && run.steps.length ? html`<ol class="steps" data-testid="steps">${run.steps.map((s, i) => html`<li key=${i} class="step">
        <${StatusBadge} status=${s.status} /> <code>${s.path}</code> ${s.agent ? html`<strong>${s.agent}</strong> ` : s.step ? html`<span class="muted">${s.step}</span> ` : null}
        <span class="muted">${s.ended_at && s.started_at ? formatMs((s.ended_at - s.started_at) * 1000) : ''}${s.tokens ? ` · ${s.tokens} tokens` : ''}${s.cost_usd ? ` · ${formatCost(s.cost_usd)}` : ''}</span>
        ${s.error ? html`<div class="error">${s.error}</div>` : null}</li>`)}</ol>` : html`<p class="muted">No step has started yet.</p>`}
      ${run.error ? html`<h3>Error</h3><p class="error" role="alert">${run.error}${run.step ? html` (at <code>${run.step}</code>)` : null}</p>` : null}
      ${run.output !== null && run.output !== undefined ? html`<h3>Result</h3><pre data-testid="run-output">${typeof run.output === 'string' ? run.output : JSON.stringify(run.output, null, 2)}</pre>` : null}
    ` : html`<p class="muted">Loading…</p>`}
  </section>`;
}

export default function Workflows({ args }) {
  const [workflows, setWorkflows] = useState(null);
  const [runs, setRuns] = useState([]);
  const [error, setError] = useState(null);
  const selected = args[0] || null;
  async function loadRuns() {
    try { setRuns((await getJSON('/api/workflows/runs?limit=50')).runs); } catch (failure) { setError(failure); }
  }
  useEffect(() => {
    getJSON('/api/workflows').then((d) => setWorkflows(d.workflows)).catch(setError);
    loadRuns();
    return subscribe((batch) => { if (batch.some((e) => e.type.startsWith('workflow.') && e.type !== 'workflow.step')) loadRuns(); });
  }, []);
  return html`<section class="page workflows" aria-labelledby="page-title">
    <h1 id="page-title">Workflow Launcher</h1>
    <${ErrorNote} error=${error} />
    ${workflows && !workflows.length ? html`<p class="muted">This server has no workflows: start it with a document (<code>vega-trio serve FILE.vega.yaml</code>).</p>` : null}
    <div class="split">
      <div>
        ${(workflows || []).map((w) => html`<${Launcher} key=${w.name} workflow=${w} onStarted=${(id) => { go('workflows', id); loadRuns(); }} />`)}
        ${runs.length ? html`<section class="card"><h2>Runs</h2><div class="table-wrap"><table data-testid="runs">
          <thead><tr><th scope="col">Run</th><th scope="col">Workflow</th><th scope="col">Status</th></tr></thead>
          <tbody>${[...runs].reverse().map((r) => html`<tr key=${r.run_id}><td><a href=${href('workflows', r.run_id)}><code>${r.run_id}</code></a></td>
            <td>${r.workflow}</td><td><${StatusBadge} status=${r.status} /></td></tr>`)}</tbody></table></div></section>` : null}
      </div>
      ${selected ? html`<${Run} key=${selected} id=${selected} onChanged=${loadRuns} />` : null}
    </div>
  </section>`;
}
