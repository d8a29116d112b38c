// Agent Registry: every definition (builtin, YAML, composed) with its live processes;
// a definition's template (JSON and YAML, export as a file); composed agents are edited
// (PUT with the JSON definition) and deleted; new ones are imported from an `agents:`
// YAML section (POST /api/agents/import). The server validates: its 422 lists each
// problem with its path.
import { html, useEffect, useState } from '../lib.js';
import { call, getJSON, sendJSON, seg, ApiError } from '../api.js';
import { subscribe } from '../live.js';
import { go, href } from '../router.js';
import { ErrorNote } from '../ui.js';

const EXAMPLE = 'agents:\n  summarizer:\n    system: Summarize in three bullet points.\n    temperature: 0.2\n';

function Problems({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert" data-testid="agent-error">
    <p>${error.message}</p>
    ${error instanceof ApiError && error.fields.length ? html`<ul>${error.fields.map((f, i) => html`<li key=${i}><code>${f.path}</code>: ${f.error}</li>`)}</ul>` : null}
  </div>`;
}

export default function Agents({ args }) {
  const [agents, setAgents] = useState(null);
  const [error, setError] = useState(null);
  const selected = args[0] || null;

  async function load() {
    try { setAgents((await getJSON('/api/agents')).agents); setError(null); } catch (failure) { setError(failure); }
  }
  useEffect(() => {
    load();
    return subscribe((batch) => { if (batch.some((e) => e.type.startsWith('agent.'))) load(); });
  }, []);

  return html`<section class="page agents" aria-labelledby="page-title">
    <h1 id="page-title">Agent Registry</h1>
    <${ErrorNote} error=${error} />
    <div class="split">
      <div>
        ${agents ? html`<div class="table-wrap"><table data-testid="agent-table">
          <thead><tr><th scope="col">Agent</th><th scope="col">Source</th><th scope="col">Model</th><th scope="col">Tools</th><th scope="col">Processes</th></tr></thead>
          <tbody>${agents.map((a) => html`<tr key=${a.name} class=${selected === a.name ? 'open' : ''}>
            <td><a href=${href('agents', a.name)}>${a.name}</a>${a.revision > 1 ? html` <span class="muted">rev ${a.revision}</span>` : null}</td>
            <td><span class="badge">${a.source}</span></td><td>${a.model || ''}</td>
            <td>${a.tools.join(', ')}${a.team.length ? html` <span class="muted">team: ${a.team.join(', ')}</span>` : null}</td>
            <td>${Object.entries(a.processes).map(([s, n]) => `${n} ${s}`).join(', ')}</td></tr>`)}</tbody>
        </table></div>` : html`<p class="muted">Loading…</p>`}
        <${Importer} onDone=${load} />
      </div>
      ${selected ? html`<${Detail} key=${selected} name=${selected} agent=${agents && agents.find((a) => a.name === selected)} onChanged=${load} />` : null}
    </div>
  </section>`;
}

function Importer({ onDone }) {
  const [text, setText] = useState(EXAMPLE);
  const [error, setError] = useState(null);
  const [done, setDone] = useState('');
  async function submit(event) {
    event.preventDefault();
    setError(null); setDone('');
    try {
      const result = await sendJSON('POST', '/api/agents/import', { yaml: text });
      setDone(`Created ${result.agents.map((a) => a.name).join(', ')}.`);
      onDone();
    } catch (failure) { setError(failure); }
  }
  return html`<form class="card" onSubmit=${submit} aria-labelledby="import-title">
    <h2 id="import-title">New agents</h2>
    <p class="muted">An <code>agents:</code> section, as in a .vega.yaml (composed agents: no tools or settings of their own that start programs).</p>
    <label for="import-yaml" class="visually-hidden">YAML</label>
    <textarea id="import-yaml" class="code" rows="7" value=${text} onInput=${(e) => setText(e.currentTarget.value)} data-testid="import-yaml"></textarea>
    <${Problems} error=${error} />
    ${done ? html`<p class="ok" role="status">${done}</p>` : null}
    <button type="submit">Create</button>
  </form>`;
}

function Detail({ name, agent, onChanged }) {
  const [template, setTemplate] = useState(null);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState('');
  const composed = agent && agent.source === 'composed';

  async function load() {
    try {
      const t = await getJSON(`/api/agents/${seg(name)}/template`);
      setTemplate(t); setDraft(JSON.stringify(t.definition, null, 2)); setError(null);
    } catch (failure) { setError(failure); }
  }
  useEffect(() => { load(); }, [agent && agent.revision]);

  async function save(event) {
    event.preventDefault();
    setError(null); setSaved('');
    let definition;
    try { definition = JSON.parse(draft); } catch (failure) { setError(new Error(`Not JSON: ${failure.message}`)); return; }
    try {
      const result = await sendJSON('PUT', `/api/agents/${seg(name)}`, definition);
      setSaved(`Saved: revision ${result.revision}.`);
      onChanged();
    } catch (failure) { setError(failure); }
  }

  async function remove() {
    if (!confirm(`Delete the composed agent ${name}? Its sessions stop after their reply in progress.`)) return;
    try { await call('DELETE', `/api/agents/${seg(name)}`); onChanged(); go('agents'); } catch (failure) { setError(failure); }
  }

  function exportYaml() {
    const url = URL.createObjectURL(new Blob([template.yaml], { type: 'text/yaml' }));
    const link = document.createElement('a');
    link.href = url; link.download = `${name}.vega.yaml`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  return html`<aside class="card detail" aria-labelledby="agent-title" data-testid="agent-detail">
    <div class="detail-head"><h2 id="agent-title">${name}</h2>
      <button type="button" class="ghost" onClick=${() => go('agents')} aria-label="Close">×</button></div>
    ${agent ? html`<p class="muted">${agent.source}, revision ${agent.revision}${agent.description ? ` · ${agent.description}` : ''}</p>` : null}
    <p><a href=${href('chat', name)}>Chat with ${name} →</a></p>
    <${Problems} error=${error} />
    ${template ? html`
      <h3>Template (YAML)</h3>
      ${template.complete ? null : html`<p class="muted">Defined in Python: only its plain fields have a YAML form.</p>`}
      <pre data-testid="agent-yaml">${template.yaml}</pre>
      <button type="button" class="ghost" onClick=${exportYaml}>Export as a file</button>
      ${composed ? html`<form onSubmit=${save}>
        <h3><label for="agent-json">Definition (JSON)</label></h3>
        <textarea id="agent-json" class="code" rows="10" value=${draft} onInput=${(e) => setDraft(e.currentTarget.value)} data-testid="agent-json"></textarea>
        ${saved ? html`<p class="ok" role="status">${saved}</p>` : null}
        <div class="composer-actions"><button type="submit">Save</button>
          <button type="button" class="danger" onClick=${remove} data-testid="delete-agent">Delete</button></div>
      </form>` : html`<p class="muted">${agent && agent.source === 'yaml' ? 'Defined in the server\u2019s .vega.yaml: edit the file and restart the server.' : 'Built in: take its template to make an editable copy.'}</p>`}
    ` : html`<p class="muted">Loading…</p>`}
  </aside>`;
}
