// Spawn Tree: which process started which (GET /api/spawn-tree), live.
import { html } from '../lib.js';
import { href } from '../router.js';
import { formatTime, StatusBadge } from '../ui.js';
import { useLiveTree, TreePage } from './trees.js';

function Node({ node }) {
  return html`<li>
    <div class="node">
      <a href=${href('processes', node.process_id)}><code>${node.process_id}</code></a>
      <strong>${node.name || node.agent_name}</strong>
      <${StatusBadge} status=${node.status} />
      <span class="muted">${node.spawn_reason}${node.task && node.task !== node.spawn_reason ? ` · ${node.task.slice(0, 80)}` : ''} · ${formatTime(node.started_at)}</span>
    </div>
    ${node.children.length ? html`<ul class="tree">${node.children.map((c) => html`<${Node} key=${c.process_id} node=${c} />`)}</ul>` : null}
  </li>`;
}

export default function SpawnTree() {
  const [data, error] = useLiveTree('/api/spawn-tree', (e) => e.type.startsWith('process.'));
  const roots = data ? data.tree : [];
  return html`<${TreePage} title="Spawn Tree" about="Every live process under the process that started it, in start order."
    data=${data} error=${error} empty=${data && !roots.length ? 'No process is running.' : ''}>
    <ul class="tree root" data-testid="spawn-tree">${roots.map((n) => html`<${Node} key=${n.process_id} node=${n} />`)}</ul>
  </${TreePage}>`;
}
