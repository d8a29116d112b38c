// MCP Servers: each configured server's status, transport, tools and last error
// (GET /api/mcp/servers), refreshed on mcp.* events.
import { html } from '../lib.js';
import { StatusBadge } from '../ui.js';
import { useLiveTree, TreePage } from './trees.js';

function Server({ server }) {
  return html`<section class="card" data-testid="mcp-server" aria-label=${server.name}>
    <div class="node">
      <h2>${server.name}</h2> <${StatusBadge} status=${server.status} />
      <span class="badge">${server.transport}</span>
      ${server.server ? html`<span class="muted">${server.server.name}${server.server.version ? ` ${server.server.version}` : ''}</span>` : null}
      ${server.reconnects ? html`<span class="muted">reconnects: ${server.reconnects}</span>` : null}
      ${server.gave_up ? html`<strong class="error">gave up</strong>` : null}
    </div>
    <p class="muted"><code>${server.command || server.url}</code></p>
    ${server.last_error ? html`<p class="error" data-testid="mcp-error">Last error: ${server.last_error}</p>` : null}
    <h4>Tools (${server.tools.length})</h4>
    ${server.tools.length ? html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Tool</th><th scope="col">On the server</th><th scope="col">Description</th></tr></thead>
      <tbody>${server.tools.map((t) => html`<tr key=${t.name}><td><code>${t.name}</code></td><td>${t.remote_name}</td><td>${t.description || ''}</td></tr>`)}</tbody>
    </table></div>` : html`<p class="muted">No tools (yet).</p>`}
  </section>`;
}

export default function McpServers() {
  const [data, error] = useLiveTree('/api/mcp/servers', (e) => e.type.startsWith('mcp.'));
  const servers = data ? data.servers : [];
  return html`<${TreePage} title="MCP Servers" about="The MCP servers of the server's .vega.yaml (settings.mcp): status, tools, last error."
    data=${data} error=${error} empty=${data && !servers.length ? 'No MCP server is configured (add them under settings.mcp in the .vega.yaml).' : ''}>
    ${servers.map((s) => html`<${Server} key=${s.name} server=${s} />`)}
  </${TreePage}>`;
}
