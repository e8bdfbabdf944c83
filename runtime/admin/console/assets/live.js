// The live task list: one stream of `GET /events` (a `tasks` event a second)
// shared by every page, so a console costs the server one connection however
// many views it shows. The stream is reopened after it ends (a proxy's idle
// timeout, a restart), with a growing delay. A sluice whose API predates the
// stream (404) is read with one `GET /tasks` every two seconds instead.

import { get, stream, APIError, onTokenChange } from './api.js';

const HISTORY = 300; // one sample a second: the last five minutes

const listeners = new Set();
const statusListeners = new Set();
let tasks = [];
let byName = new Map();
let status = 'connecting';
let started = false;
let lastError = null;
// Client-side history, for servers that send no rate_history.
const local = new Map(); // name -> {t, received, rates: []}

export function onTasks(f) {
  listeners.add(f);
  if (tasks.length || status === 'on' || status === 'polling') f(tasks);
  return () => listeners.delete(f);
}

export function onStatus(f) {
  statusListeners.add(f);
  f(status, lastError);
  return () => statusListeners.delete(f);
}

export function current() { return tasks; }
export function task(name) { return byName.get(name); }

function setStatus(s, err = null) {
  status = s;
  lastError = err;
  for (const f of statusListeners) f(s, err);
}

// normalize takes a task view of any API version: the contract's
// `counters`, or the older `stats` ({in, delivered, ...}).
export function normalize(t) {
  const c = t.counters || {};
  const s = t.stats || {};
  const pick = (...vals) => vals.find((v) => typeof v === 'number');
  return {
    ...t,
    name: t.name,
    state: t.state || 'Unknown',
    reason: t.reason || '',
    counters: {
      received: pick(c.received, s.in, 0),
      delivered: pick(c.delivered, s.delivered, 0),
      filtered: pick(c.filtered, s.filtered, 0),
      failed: pick(c.failed, (c.dead_lettered ?? s.dead_lettered ?? 0) + (c.dropped ?? s.dropped ?? 0)),
      dead_lettered: pick(c.dead_lettered, s.dead_lettered, 0),
      dropped: pick(c.dropped, s.dropped, 0),
      bytes_in: pick(c.bytes_in, s.bytes_in, 0),
      bytes_out: pick(c.bytes_out, s.bytes_out, 0),
      out: pick(c.out, s.out),
      retries: pick(c.retries, s.retries),
    },
    lag: t.lag ?? null,
  };
}

function accept(list) {
  const now = performance.now();
  const out = [];
  for (const raw of Array.isArray(list) ? list : []) {
    const t = normalize(raw);
    let l = local.get(t.name);
    if (!l) { l = { t: now, received: t.counters.received, rates: [], rate: 0 }; local.set(t.name, l); }
    const dt = (now - l.t) / 1000;
    if (dt >= 0.5) {
      l.rate = Math.max(0, (t.counters.received - l.received) / dt);
      // One sample per elapsed second, so gaps (a hidden tab) keep their width.
      const steps = Math.min(Math.round(dt), HISTORY);
      for (let i = 0; i < steps; i++) l.rates.push(l.rate);
      if (l.rates.length > HISTORY) l.rates.splice(0, l.rates.length - HISTORY);
      l.t = now;
      l.received = t.counters.received;
    }
    if (typeof t.rate !== 'number') t.rate = l.rate;
    if (!Array.isArray(t.rate_history)) t.rate_history = l.rates;
    out.push(t);
  }
  tasks = out;
  byName = new Map(out.map((t) => [t.name, t]));
  for (const f of listeners) f(tasks);
}

// A person who cancels the token dialog is not asked again every few
// seconds: the stream waits until retry() (the "token needed" indicator, the
// task list's button) or a new token.
let wake = null;
function waitWake() { return new Promise((r) => { wake = r; }); }
export function retry() { if (wake) { const w = wake; wake = null; w(); } }
onTokenChange((has) => { if (has) retry(); });

// start opens the stream once; later calls do nothing.
export function start() {
  if (started) return;
  started = true;
  run();
}

// refresh fetches the list now (after a pause or resume, so the page does
// not wait for the next tick to show the new state).
export async function refresh() {
  try { accept(await get('tasks')); } catch { /* the stream reports errors */ }
}

async function run() {
  let delay = 1000;
  for (;;) {
    try {
      let opened = false;
      await stream('events', {
        onOpen: () => { opened = true; delay = 1000; setStatus('on'); },
        onEvent: (type, data) => { if (type === 'tasks') accept(data); },
      });
      if (opened) setStatus('reconnecting');
    } catch (err) {
      if (err instanceof APIError && (err.status === 404 || err.status === 415)) {
        await poll();
        continue;
      }
      if (err.status === 401) {
        setStatus('locked', err);
        await waitWake();
        continue;
      }
      setStatus('off', err);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 15000);
  }
}

// poll reads GET /tasks every two seconds, for an API without /events; it
// returns when a call fails, and the caller tries the stream again.
async function poll() {
  setStatus('polling');
  for (;;) {
    try {
      accept(await get('tasks'));
      setStatus('polling');
    } catch (err) {
      if (err.status === 401) { setStatus('locked', err); await waitWake(); continue; }
      setStatus('off', err);
      return;
    }
    await sleep(document.hidden ? 10000 : 2000);
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
