// Chat over the WebSocket `/api/ws` (protocol vega.v1, docs/serve.md): one connection per
// tab, opened when a chat first needs it and kept (the server sends heartbeats). A browser
// cannot put headers on a WebSocket, and the token never goes in a URL: it travels as the
// subprotocol `bearer.<token>` next to `vega.v1` (the server answers `vega.v1`).
//
// Callers fall back to SSE when this throws NoSocket (the socket could not be opened: a
// proxy that does not pass WebSockets, an old server); after such a failure the socket is
// not tried again for RETRY_AFTER ms, so each message does not wait for a failing handshake.
import { token, auth, ApiError } from './api.js';

/** The WebSocket could not be opened (or closed before the server said hello): use SSE. */
export class NoSocket extends Error {}
/** The WebSocket closed while a reply was streaming (the reply goes on on the server). */
export class SocketLost extends Error {}

const RETRY_AFTER = 30000;
const HELLO_TIMEOUT = 5000;

let opening = null; // Promise<WebSocket> while connecting or open
let failedAt = -Infinity;
let nextId = 0;
const requests = new Map(); // request id → { onEvent, resolve, reject }

function url() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`;
}

function dispatch(message) {
  if (message.kind === 'chat') {
    const request = requests.get(message.request_id);
    if (!request) return; // a request this page stopped following
    request.onEvent(message.event);
    if (message.event.type === 'done' || message.event.type === 'error') {
      requests.delete(message.request_id);
      request.resolve();
    }
  } else if (message.kind === 'error' && requests.has(message.id)) {
    const request = requests.get(message.id);
    requests.delete(message.id);
    request.reject(new ApiError(message.status, message));
  }
  // hello (handled in connect), heartbeat, pong, cancelled, shutdown: nothing to do here
  // (a shutdown ends every reply with its final event first).
}

function connect() {
  if (opening) return opening;
  if (Date.now() - failedAt < RETRY_AFTER) return Promise.reject(new NoSocket('the WebSocket failed recently'));
  opening = new Promise((resolve, reject) => {
    const protocols = ['vega.v1'];
    if (token.value) protocols.push(`bearer.${token.value}`);
    let socket;
    try {
      socket = new WebSocket(url(), protocols);
    } catch (error) {
      opening = null;
      failedAt = Date.now();
      reject(new NoSocket(error.message));
      return;
    }
    let ready = false;
    const timer = setTimeout(() => { if (!ready) socket.close(); }, HELLO_TIMEOUT);
    socket.onmessage = ({ data }) => {
      let message;
      try { message = JSON.parse(data); } catch { return; }
      if (message.kind === 'hello') {
        ready = true;
        clearTimeout(timer);
        resolve(socket);
        return;
      }
      dispatch(message);
    };
    socket.onclose = () => {
      clearTimeout(timer);
      opening = null;
      if (!ready) {
        failedAt = Date.now();
        reject(new NoSocket('the WebSocket /api/ws could not be opened'));
      }
      const lost = [...requests.values()];
      requests.clear();
      for (const request of lost) request.reject(new SocketLost('the WebSocket closed while the reply was streaming'));
    };
  });
  return opening;
}

/** Close the socket (signed out, or a new token: the next chat opens it again). */
export function closeSocket() {
  const current = opening;
  opening = null;
  failedAt = -Infinity;
  if (current) current.then((socket) => socket.close(), () => {});
}

/**
 * Stream a reply over the socket: `op` 'chat' (sends `message`) or 'attach' (the session's
 * latest reply, replayed from its start). Calls onEvent(event) with each §1.4 event and
 * onStart(requestId) once sent (for cancel); resolves after the final `done` or `error`.
 * Rejects with NoSocket (use SSE instead), SocketLost, ApiError (the server refused the
 * request), or an AbortError when `signal` aborts (this page stops following; the reply
 * goes on on the server).
 */
export async function streamReply({ op, agent, message, onEvent, onStart, signal }) {
  const socket = await connect();
  if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
  nextId += 1;
  const id = `c${nextId}`;
  return new Promise((resolve, reject) => {
    requests.set(id, { onEvent, resolve, reject });
    const request = { op, id, agent };
    if (op === 'chat') request.message = message;
    socket.send(JSON.stringify(request));
    if (onStart) onStart(id);
    if (signal) {
      signal.addEventListener('abort', () => {
        if (!requests.delete(id)) return;
        reject(new DOMException('aborted', 'AbortError'));
      });
    }
  });
}

/** Cancel the reply of a request of this page (as DELETE …/chat/stream); false when the
 * socket is not open (the caller uses the HTTP route). */
export async function cancelReply(id) {
  if (!opening) return false;
  let socket;
  try { socket = await opening; } catch { return false; }
  socket.send(JSON.stringify({ op: 'cancel', id }));
  return true;
}

// A refused token or signing out closes the socket; the next chat opens it with the new one.
auth.subscribe((value) => { if (value !== 'ok') closeSocket(); });
token.subscribe(() => closeSocket());
