// The admin API as the console sees it: JSON calls and Server-Sent Event
// streams, both carrying the bearer token. Streams are read with fetch() and
// a stream reader rather than EventSource, because EventSource cannot send
// an Authorization header, and a token must never travel in a URL (it would
// land in proxy logs and the browser history).
//
// Paths are relative ("tasks", not "/tasks"): behind a reverse proxy that
// serves the console under a prefix, the calls go under the same prefix.

const KEY = 'sluice.admin.token';

export function token() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}

let memo = ''; // the token when sessionStorage refuses to keep it
const tokenListeners = new Set();

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY);
  } catch { /* storage refused (private mode): the token lives until reload */ }
  memo = t || '';
  for (const f of tokenListeners) f(!!t);
}
export function onTokenChange(f) { tokenListeners.add(f); }
function currentToken() { return token() || memo; }

// An APIError carries the status and the API's {"error": ...} message (and
// any other fields of the answer, such as a playground error's position).
export class APIError extends Error {
  constructor(status, body, path) {
    const msg = (body && body.error) || `${path}: HTTP ${status}`;
    super(msg);
    this.status = status;
    this.body = body || {};
    this.path = path;
  }
}

// askToken is installed by the shell: it shows the token dialog and resolves
// to the token typed, or to '' when the person cancels. One dialog serves all
// the requests that met a 401 at the same time.
let asker = null;
let pending = null;
export function setTokenAsker(f) { asker = f; }
function ask(refused) {
  if (!asker) return Promise.resolve('');
  if (!pending) {
    pending = asker(refused).finally(() => { pending = null; });
  }
  return pending;
}

// authed sends a request with the token, asking for one on a 401 (again,
// saying it was refused, when the one sent was wrong) and retrying.
async function authed(path, init) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const headers = new Headers(init.headers || {});
    const sent = currentToken();
    if (sent) headers.set('Authorization', 'Bearer ' + sent);
    // same-origin credentials: a proxy's single sign-on cookie goes along
    // (sluice itself uses none; it reads only the bearer token).
    const res = await fetch(path, { ...init, headers, cache: 'no-store', credentials: 'same-origin' });
    if (res.status !== 401) return res;
    await res.body?.cancel().catch(() => {});
    if (sent && sent === currentToken()) setToken('');
    const t = await ask(!!sent);
    if (!t) throw new APIError(401, { error: 'the admin token is needed (it was not given)' }, path);
    setToken(t);
  }
  throw new APIError(401, { error: 'the admin token was refused' }, path);
}

async function readBody(res) {
  const text = await res.text();
  try { return JSON.parse(text); } catch { return { error: text.trim() || `HTTP ${res.status}` }; }
}

// get returns the JSON of a GET.
export async function get(path, { signal } = {}) {
  const res = await authed(path, { method: 'GET', headers: { Accept: 'application/json' }, signal });
  const body = await readBody(res);
  if (!res.ok) throw new APIError(res.status, body, path);
  return body;
}

// post sends body as JSON (the API takes state-changing requests only as
// application/json) and returns the JSON answer.
export async function post(path, body = {}, { signal } = {}) {
  const res = await authed(path, {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
  const answer = await readBody(res);
  if (!res.ok) throw new APIError(res.status, answer, path);
  return answer;
}

// stream reads a Server-Sent Events stream until it ends, signal aborts or
// the server answers an error (thrown as an APIError). onEvent(type, data)
// gets each event, its data parsed as JSON when it is JSON.
export async function stream(path, { signal, onEvent, onOpen }) {
  const res = await authed(path, { method: 'GET', headers: { Accept: 'text/event-stream' }, signal });
  if (!res.ok) throw new APIError(res.status, await readBody(res), path);
  const ctype = res.headers.get('Content-Type') || '';
  if (!ctype.startsWith('text/event-stream')) {
    await res.body?.cancel().catch(() => {});
    throw new APIError(415, { error: `${path} answered ${ctype || 'no content type'}, not an event stream` }, path);
  }
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let type = '';
  let data = [];
  const dispatch = () => {
    if (data.length) {
      const raw = data.join('\n');
      let value = raw;
      try { value = JSON.parse(raw); } catch { /* plain text data */ }
      onEvent(type || 'message', value);
    }
    type = '';
    data = [];
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') { dispatch(); continue; }
        if (line.startsWith(':')) continue; // comment: a keep-alive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') type = val;
        else if (field === 'data') data.push(val);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// taskPath is the API path of one task (its name escaped).
export function taskPath(name, rest = '') {
  return 'tasks/' + encodeURIComponent(name) + rest;
}
