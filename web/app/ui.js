// Small shared pieces of the pages.
import { html } from './lib.js';
import { ApiError, Unreachable } from './api.js';

export function formatCost(usd) {
  if (usd === null || usd === undefined) return '—';
  if (usd === 0) return '$0';
  return usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return '';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

// One formatter for every call: toLocaleTimeString(locale, options) builds a new
// Intl.DateTimeFormat each time, which cost the Event Stream 25% of its CPU at 1,000 events/s
// (200 rows redrawn per frame; benchmark B12).
const TIME = new Intl.DateTimeFormat([], { hour: 'numeric', minute: 'numeric', second: 'numeric', hour12: false });

export function formatTime(seconds) {
  if (!seconds) return '';
  return TIME.format(new Date(seconds * 1000));
}

export function formatAgo(seconds) {
  if (!seconds) return '';
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return `${Math.round(delta)} s ago`;
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  return `${Math.round(delta / 3600)} h ago`;
}

const ENVELOPE = new Set(['type', 'seq', 'timestamp', 'process_id', 'agent', 'run_id', 'user']);

/** An event's own fields (not the envelope), as a short line. */
export function eventDetail(event) {
  const parts = [];
  for (const [key, value] of Object.entries(event)) {
    if (ENVELOPE.has(key) || value === null || value === undefined || value === '') continue;
    const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
    parts.push(`${key}=${text.length > 80 ? `${text.slice(0, 80)}…` : text}`);
    if (parts.length >= 6) break;
  }
  return parts.join(' ');
}

export function ErrorNote({ error }) {
  if (!error) return null;
  let text = error.message || String(error);
  if (error instanceof ApiError && error.requestId) text += ` (request ${error.requestId})`;
  if (error instanceof Unreachable) text = 'The server is unreachable; retrying.';
  return html`<p class="error" role="alert">${text}</p>`;
}

export function StatusBadge({ status }) {
  return html`<span class=${`badge st-${status}`}>${status}</span>`;
}
