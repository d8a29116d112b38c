// Shared by the Spawn Tree and Supervision Tree pages: a tree fetched from the API and
// fetched again (at most every 500 ms) when events that change it arrive.
import { html, useEffect, useRef, useState } from '../lib.js';
import { getJSON } from '../api.js';
import { subscribe } from '../live.js';
import { ErrorNote } from '../ui.js';

/** [data, error, changes] of GET `path`, refreshed on events `relevant(event)` says matter;
 * `changes` counts the refreshes (a page can highlight what changed). */
export function useLiveTree(path, relevant) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  async function load() {
    try { setData(await getJSON(path)); setError(null); } catch (failure) { setError(failure); }
  }
  useEffect(() => {
    load();
    const off = subscribe((batch) => {
      if (!batch.some(relevant) || timer.current) return;
      timer.current = setTimeout(() => { timer.current = null; load(); }, 500);
    });
    return () => { off(); clearTimeout(timer.current); timer.current = null; };
  }, [path]);
  return [data, error];
}

export function TreePage({ title, about, data, error, empty, children }) {
  return html`<section class="page tree-page" aria-labelledby="page-title">
    <h1 id="page-title">${title}</h1>
    <p class="muted">${about}</p>
    <${ErrorNote} error=${error} />
    ${data === null && !error ? html`<p class="muted">Loading…</p>` : null}
    ${data !== null && empty ? html`<p class="muted">${empty}</p>` : null}
    ${children}
  </section>`;
}
