// The app shell: sign-in, navigation for every page, the "server unreachable" banner,
// light/dark, keyboard shortcuts, and the page of the current route (loaded on demand).
import { html, render, useEffect, useState, useRef, signal } from './lib.js';
import { auth, authError, authMode, reachable, setToken, signOut, getJSON, ApiError, Unreachable } from './api.js';
import * as live from './live.js';
import { PAGES, route, href, go } from './router.js';

// ---------------------------------------------------------------- theme
const THEME_KEY = 'vega.theme';
const theme = signal(localStorage.getItem(THEME_KEY) || 'auto');
function applyTheme(value) {
  document.documentElement.dataset.theme = value;
  localStorage.setItem(THEME_KEY, value);
}
theme.subscribe(applyTheme);
const NEXT_THEME = { auto: 'light', light: 'dark', dark: 'auto' };

function ThemeButton() {
  return html`<button type="button" class="ghost" title="Colour theme (auto follows the system)"
    onClick=${() => { theme.value = NEXT_THEME[theme.value] || 'auto'; }}>
    Theme: ${theme.value}</button>`;
}

// ---------------------------------------------------------------- sign-in
function SignIn() {
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(authError.value);
  const input = useRef(null);
  useEffect(() => { input.current && input.current.focus(); }, []);
  async function submit(event) {
    event.preventDefault();
    const candidate = value.trim();
    if (!candidate) { setError('Enter the token.'); return; }
    setBusy(true);
    setError('');
    setToken(candidate);
    try {
      await getJSON('/api/stats');
      authError.value = '';
      auth.value = 'ok';
    } catch (failure) {
      setToken(null);
      if (failure instanceof ApiError && failure.status === 401) {
        auth.value = 'needed';
        setError('Wrong token: the server refused it. Use the token vega-trio serve was started with (--token or VEGA_TOKEN).');
      } else if (failure instanceof Unreachable) {
        setError('The server is unreachable. Is vega-trio serve running?');
      } else {
        setError(failure.message);
      }
    } finally {
      setBusy(false);
    }
  }
  return html`<main class="signin" id="main">
    <form class="card signin-card" onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title">vega-trio</h1>
      <p>This server needs its access token. It is kept for this browser tab only and sent as a header, never in a URL.</p>
      <label for="token">Token</label>
      <input id="token" ref=${input} type="password" autocomplete="current-password" value=${value}
        onInput=${(e) => setValue(e.currentTarget.value)} aria-describedby="signin-error" />
      <p id="signin-error" class="error" role="alert">${error}</p>
      <button type="submit" disabled=${busy}>${busy ? 'Checking…' : 'Sign in'}</button>
    </form>
  </main>`;
}

// ---------------------------------------------------------------- shell
function Banner() {
  if (reachable.value && live.status.value !== 'retrying') return null;
  if (reachable.value) return null;
  return html`<div class="banner" role="alert">
    <strong>Server unreachable.</strong> Reconnecting${live.retryIn.value ? ` in ${live.retryIn.value} s` : ''}…
    <button type="button" class="ghost" onClick=${() => live.retryNow()}>Retry now</button>
  </div>`;
}

function LiveBadge() {
  const state = reachable.value ? live.status.value : 'retrying';
  const label = { live: 'Live', connecting: 'Connecting', retrying: 'Offline', stopped: 'Stopped' }[state];
  return html`<span class=${`badge live-${state}`} title="The live event stream" data-testid="live-status">${label}</span>`;
}

function Nav() {
  const current = route.value.page;
  return html`<nav class="nav" aria-label="Pages">
    <ul>${PAGES.map((page) => html`<li key=${page.id}>
      <a href=${href(page.id)} aria-current=${current === page.id ? 'page' : undefined}
        title=${`${page.about} (Alt+${page.key.toUpperCase()})`}>
        ${page.title}${page.load ? null : html`<span class="soon" aria-label="coming later">soon</span>`}
      </a></li>`)}
    </ul></nav>`;
}

function Placeholder({ page }) {
  return html`<section class="page placeholder" aria-labelledby="page-title">
    <h1 id="page-title">${page.title}</h1>
    <div class="card">
      <p><strong>Coming in a later release.</strong> ${page.about}</p>
      <p>Until then the same data is in the API: see <code>/api/openapi.json</code>, or the
        <a href=${href('overview')}>Overview</a> and <a href=${href('events')}>Event Stream</a> pages.</p>
    </div>
  </section>`;
}

const loaded = new Map();
function PageView() {
  const { page: id, args } = route.value;
  const page = PAGES.find((p) => p.id === id);
  const [module, setModule] = useState(() => loaded.get(id) || null);
  const [error, setError] = useState(null);
  useEffect(() => {
    document.title = `${page.title} · vega-trio`;
    if (!page.load) { setModule(null); return; }
    if (loaded.has(id)) { setModule(loaded.get(id)); return; }
    setModule(null);
    let current = true;
    page.load().then((m) => { loaded.set(id, m); if (current) setModule(m); })
      .catch((e) => { if (current) setError(e); });
    return () => { current = false; };
  }, [id]);
  if (!page.load) return html`<${Placeholder} page=${page} />`;
  if (error) return html`<p class="error" role="alert">This page failed to load: ${String(error.message || error)}. Reload the page.</p>`;
  if (!module || module !== loaded.get(id)) return html`<p class="muted">Loading…</p>`;
  const Page = module.default;
  return html`<${Page} args=${args} key=${id} />`;
}

function Shell() {
  useEffect(() => {
    live.start();
    return () => live.stop();
  }, []);
  return html`<div class="shell">
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <a class="brand" href=${href('overview')}>vega-trio</a>
      <${LiveBadge} />
      <span class="spacer"></span>
      <${ThemeButton} />
      ${authMode === 'bearer' ? html`<button type="button" class="ghost" onClick=${signOut}>Sign out</button>` : null}
    </header>
    <${Nav} />
    <main id="main" tabindex="-1"><${Banner} /><${PageView} /></main>
  </div>`;
}

function App() {
  return auth.value === 'ok' ? html`<${Shell} />` : html`<${SignIn} />`;
}

// Alt+<letter> opens a page (the letters are in the navigation's tooltips).
addEventListener('keydown', (event) => {
  if (!event.altKey || event.ctrlKey || event.metaKey) return;
  const page = PAGES.find((p) => p.key === event.key.toLowerCase());
  if (page) { event.preventDefault(); go(page.id); }
});

applyTheme(theme.value);
render(html`<${App} />`, document.getElementById('app'));
