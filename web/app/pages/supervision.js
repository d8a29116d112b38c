// Supervision Tree: each supervisor, its strategy and restart intensity, its children with
// their restart counts and last exits (GET /api/supervision-tree), refreshed live on
// process and supervisor events, so restarts and give-ups show as they happen.
import { html } from '../lib.js';
import { href } from '../router.js';
import { StatusBadge } from '../ui.js';
import { useLiveTree, TreePage } from './trees.js';

function Supervisor({ sup }) {
  return html`<div class=${`card supervisor${sup.gave_up ? ' gave-up' : ''}`} data-testid="supervisor">
    <div class="node">
      <strong>${sup.name || sup.id}</strong> <span class="badge">${sup.strategy}</span>
      <${StatusBadge} status=${sup.status} />
      ${sup.gave_up ? html`<strong class="error" role="status">gave up${sup.exit_reason ? `: ${sup.exit_reason}` : ''}</strong>` : null}
      <span class="muted">restarts ${sup.recent_restarts}/${sup.max_restarts} in ${sup.window} s · ${sup.restart_count} in total</span>
    </div>
    <ul class="tree">${sup.children.map((child) => html`<li key=${child.id} data-testid="supervised-child">
      <div class="node">
        <strong>${child.id}</strong> <span class="badge">${child.restart}</span>
        <${StatusBadge} status=${child.status} />
        ${child.process_id ? html`<a href=${href('processes', child.process_id)}><code>${child.process_id}</code></a>` : null}
        <span class="muted" data-testid="child-restarts">restarts: ${child.restart_count}</span>
        ${child.last_exit ? html`<span class="muted">last exit: ${child.last_exit}</span>` : null}
      </div>
      ${child.supervisor ? html`<${Supervisor} sup=${child.supervisor} />` : null}
    </li>`)}</ul>
  </div>`;
}

export default function SupervisionTree() {
  const [data, error] = useLiveTree('/api/supervision-tree',
    (e) => e.type.startsWith('process.') || e.type.startsWith('supervisor.'));
  const sups = data ? data.supervisors : [];
  return html`<${TreePage} title="Supervision Tree" about="Live supervisors and their children: restarts and give-ups appear as they happen."
    data=${data} error=${error} empty=${data && !sups.length ? 'No supervisor is running (supervisors come from a .vega.yaml or from Python).' : ''}>
    <div data-testid="supervision-tree">${sups.map((s) => html`<${Supervisor} key=${s.id} sup=${s} />`)}</div>
  </${TreePage}>`;
}
