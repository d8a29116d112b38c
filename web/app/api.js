// The API client: every request carries the token as an `Authorization` header (never in a
// URL); failures become ApiError (the server answered) or Unreachable (it did not).
import { signal } from './lib.js';

const TOKEN_KEY = 'vega.token';
const authMeta = document.querySelector('meta[name="vega-auth"]');

/** The token, kept for this tab only (sessionStorage). */
export const token = signal(sessionStorage.getItem(TOKEN_KEY));
/** Whether the server wants a token ('bearer') or not ('none'); the page says. */
export const authMode = authMeta ? authMeta.content : 'none';
/** 'ok' | 'needed' (sign-in screen) */
export const auth = signal(authMode === 'bearer' && !token.value ? 'needed' : 'ok');
/** Why the sign-in screen is shown again (a refused token), or ''. */
export const authError = signal('');
/** false while the server cannot be reached (the banner). */
export const reachable = signal(true);

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  token.value = value || null;
}

export function signOut() {
  setToken(null);
  authError.value = '';
  auth.value = authMode === 'bearer' ? 'needed' : 'ok';
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `the server answered ${status}`);
    this.status = status;
    this.errorClass = body && body.error_class;
    this.requestId = body && body.request_id;
    this.fields = (body && body.fields) || [];
  }
}

export class Unreachable extends Error {
  constructor(cause) {
    super('the server is unreachable; retrying');
    this.cause = cause;
  }
}

export function authHeaders(extra = {}) {
  const headers = { ...extra };
  if (token.value) headers.Authorization = `Bearer ${token.value}`;
  return headers;
}

/** encodeURIComponent for one path segment (agent names may hold `:`). */
export const seg = (value) => encodeURIComponent(value);

/** A raw fetch with the token; resolves to the Response when the server answered 2xx. */
export async function call(method, path, { body, headers = {}, signal } = {}) {
  const init = { method, headers: authHeaders(headers), signal, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    reachable.value = false;
    throw new Unreachable(error);
  }
  reachable.value = true;
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    const failure = new ApiError(response.status, data);
    if (response.status === 401) {
      authError.value = token.value
        ? 'The server refused this token. Enter the token vega-trio serve was started with.'
        : 'This server needs a token.';
      auth.value = 'needed';
    }
    throw failure;
  }
  return response;
}

export async function getJSON(path, options) {
  return (await call('GET', path, options)).json();
}

export async function sendJSON(method, path, body = {}, options = {}) {
  return (await call(method, path, { ...options, body })).json();
}

/** Read a server-sent event stream from a fetch Response (EventSource cannot send headers).
 * Calls onEvent({event, data, id}) per event, with `data` parsed as JSON. */
export async function readSSE(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = 'message';
  let data = [];
  let id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (data.length) {
            let parsed;
            try { parsed = JSON.parse(data.join('\n')); } catch { parsed = data.join('\n'); }
            onEvent({ event, data: parsed, id });
          }
          event = 'message'; data = []; id = null;
          continue;
        }
        if (line.startsWith(':')) continue; // a comment (heartbeat)
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'event') event = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
