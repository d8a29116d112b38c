// Hash routing (`#/chat/assistant`): every page has a URL, the server serves one page, and
// no link can 404. PAGES lists every page of SPEC §10.5 in the navigation's order; a page
// not built yet has no `load` and shows the "coming in a later release" placeholder.
import { signal } from './lib.js';

export const PAGES = [
  { id: 'chat', title: 'Chat', key: 'c', load: () => import('./pages/chat.js'),
    about: 'Talk to an agent, watch its tools run.' },
  { id: 'overview', title: 'Overview', key: 'o', load: () => import('./pages/overview.js'),
    about: 'Live stats, recent events, active processes, health alerts.' },
  { id: 'processes', title: 'Process Explorer', key: 'p', load: () => import('./pages/processes.js'),
    about: 'Every process, sortable and filterable, with its conversation; kill one.' },
  { id: 'spawn-tree', title: 'Spawn Tree', key: 't', load: () => import('./pages/spawn-tree.js'),
    about: 'Which process started which.' },
  { id: 'supervision', title: 'Supervision Tree', key: 's', load: () => import('./pages/supervision.js'),
    about: 'Supervisors and their children, live: restarts and give-ups as they happen.' },
  { id: 'events', title: 'Event Stream', key: 'e', load: () => import('./pages/events.js'),
    about: 'Every runtime event, live, filterable, pausable.' },
  { id: 'agents', title: 'Agent Registry', key: 'a', load: () => import('./pages/agents.js'),
    about: 'YAML and composed agents; create, edit, delete, export and import templates.' },
  { id: 'mcp', title: 'MCP Servers', key: 'm', load: () => import('./pages/mcp.js'),
    about: 'Each MCP server: status, tools, last error.' },
  { id: 'workflows', title: 'Workflow Launcher', key: 'w', load: () => import('./pages/workflows.js'),
    about: 'Run a workflow from a generated form; live per-step progress; resume.' },
  { id: 'costs', title: 'Cost Dashboard', key: 'd', load: () => import('./pages/costs.js'),
    about: 'Spending per agent, process, run and model, over time.' },
];

export const DEFAULT_PAGE = 'chat';

function parse() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const page = PAGES.find((p) => p.id === parts[0]) ? parts[0] : DEFAULT_PAGE;
  return { page, args: parts.slice(1).filter(Boolean) };
}

export const route = signal(parse());
addEventListener('hashchange', () => { route.value = parse(); });

/** The href of a page (with arguments, e.g. the agent of the chat). */
export function href(page, ...args) {
  return '#/' + [page, ...args].map(encodeURIComponent).join('/');
}

export function go(page, ...args) {
  const target = href(page, ...args);
  if (location.hash !== target) location.hash = target;
}
