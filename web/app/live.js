// The live connection: one `/api/events` stream for the whole page, read with fetch (so the
// token goes in a header), reconnecting by itself with a growing delay and resuming after
// the last event id it saw (`Last-Event-ID`: no gap, no duplicate). Pages subscribe to
// batches of events (one call per network read, not per event), so a busy server costs
// one update per batch.
import { signal } from './lib.js';
import { call, readSSE, Unreachable, ApiError, auth, reachable } from './api.js';

/** 'connecting' | 'live' | 'retrying' | 'stopped' */
export const status = signal('stopped');
/** Seconds until the next attempt while retrying. */
export const retryIn = signal(0);
/** Events missed while this page was too slow (`lagged`), in total. */
export const missed = signal(0);
/** The sequence number of the last event received. */
export const lastId = signal(null);

/** The latest RECENT events since the page loaded, oldest first (pages start from it). */
export const recent = [];
const RECENT = 5000;

const listeners = new Set();
let controller = null;
let running = false;
let generation = 0; // a stop() ends its loop even if start() runs again before it exits
let wake = null;

/** Call fn(events) with each batch of runtime events; returns the unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function deliver(batch) {
  recent.push(...batch);
  if (recent.length > RECENT) recent.splice(0, recent.length - RECENT);
  for (const fn of listeners) {
    try { fn(batch); } catch (error) { console.error('an event listener failed', error); }
  }
}

const BACKOFF = [500, 1000, 2000, 4000, 8000, 15000];

async function connectOnce() {
  controller = new AbortController();
  const headers = { Accept: 'text/event-stream' };
  if (lastId.value !== null) headers['Last-Event-ID'] = String(lastId.value);
  const response = await call('GET', '/api/events', { headers, signal: controller.signal });
  status.value = 'live';
  let pending = [];
  let scheduled = false;
  await readSSE(response, ({ event, data, id }) => {
    if (id !== null) lastId.value = Number(id);
    if (event === 'lagged') { missed.value += data.missed || 0; return; }
    if (event === 'shutdown') return;
    pending.push(data);
    // Everything one read delivers is one batch (readSSE calls back synchronously).
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(() => {
        const batch = pending;
        pending = [];
        scheduled = false;
        deliver(batch);
      });
    }
  });
}

function sleep(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    wake = () => { clearTimeout(timer); resolve(); };
  });
}

/** Start the connection (idempotent); it runs until stop(). */
export async function start() {
  if (running) return;
  running = true;
  const mine = ++generation;
  const current = () => running && mine === generation;
  let attempt = 0;
  while (current()) {
    status.value = 'connecting';
    const began = Date.now();
    try {
      await connectOnce();
    } catch (error) {
      if (!current()) break;
      if (error instanceof ApiError && error.status === 401) { running = false; break; }
      if (!(error instanceof Unreachable) && error.name !== 'AbortError' && !(error instanceof ApiError)) {
        // A stream cut in the middle (the server went away) is a network failure too.
        reachable.value = false;
      }
    }
    if (!current()) break;
    if (Date.now() - began > 10000) attempt = 0; // it was up for a while: start over
    const delay = BACKOFF[Math.min(attempt, BACKOFF.length - 1)] * (0.8 + Math.random() * 0.4);
    attempt += 1;
    status.value = 'retrying';
    retryIn.value = Math.round(delay / 1000);
    await sleep(delay);
  }
  if (mine === generation) status.value = 'stopped';
}

/** Try again now (the banner's "Retry now"). */
export function retryNow() { if (wake) wake(); }

export function stop() {
  running = false;
  generation += 1;
  if (controller) controller.abort();
  if (wake) wake();
}

// A refused token stops the stream; signing in again starts it.
auth.subscribe((value) => { if (value !== 'ok') stop(); });
