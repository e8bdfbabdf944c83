// Small DOM helpers shared by the pages. Text always goes in as text nodes
// (never innerHTML): event payloads and error messages come from outside and
// must not become markup.

const SVG = 'http://www.w3.org/2000/svg';

// h builds an element: h('td.num', {title: 'x'}, child, 'text', ...).
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

export function clear(el) { el.replaceChildren(); return el; }

// setText changes a node's text only when it differs (no layout churn on
// the one-second refresh).
export function setText(el, text) {
  text = String(text);
  if (el.textContent !== text) el.textContent = text;
}

const intFmt = new Intl.NumberFormat('en-US');
const oneDec = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

export function fmtInt(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  return intFmt.format(n);
}

export function fmtRate(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  if (n >= 100) return intFmt.format(Math.round(n));
  return oneDec.format(n);
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? intFmt.format(n) : oneDec.format(n)) + ' ' + units[i];
}

export function fmtSeconds(s) {
  if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0) return '—';
  if (s < 1e-3) return intFmt.format(Math.round(s * 1e6)) + ' µs';
  if (s < 1) return oneDec.format(s * 1e3) + ' ms';
  return oneDec.format(s) + ' s';
}

export function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const time = d.toLocaleTimeString('en-GB', { hour12: false });
  return sameDay ? time : d.toLocaleDateString('en-CA') + ' ' + time;
}

export function fmtLag(lag) {
  if (lag === undefined || lag === null) return '—';
  if (typeof lag === 'number') return fmtInt(lag);
  if (typeof lag === 'object') {
    const total = lag.total ?? lag.records ?? lag.messages;
    if (typeof total === 'number') return fmtInt(total);
  }
  return String(lag);
}

// pill is the colored state of a task.
export function pill(state) {
  const s = state || 'Unknown';
  return h('span.pill.' + s.toLowerCase(), { 'data-state': s }, s);
}

export function updatePill(el, state) {
  const s = state || 'Unknown';
  if (el.dataset.state === s) return;
  el.dataset.state = s;
  el.className = 'pill ' + s.toLowerCase();
  el.textContent = s;
}

// sparkline draws values (events/s, oldest first) into a small SVG; with
// opts.axis it also draws the peak and a baseline, for the task page's chart.
export function sparkline(values, { width = 120, height = 28, axis = false, slots = 0 } = {}) {
  const el = svg('svg', { class: 'spark', width, height, viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img' });
  drawSpark(el, values, { width, height, axis, slots });
  return el;
}

export function drawSpark(el, values, { width, height, axis = false, slots = 0 }) {
  values = (values || []).map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0));
  const n = Math.max(slots, values.length, 2);
  const max = Math.max(...values, 0);
  const top = axis ? 14 : 2;
  const bottom = height - 2;
  const x = (i) => ((i + (n - values.length)) / (n - 1)) * width;
  const y = (v) => (max === 0 ? bottom : bottom - (v / max) * (bottom - top));
  el.replaceChildren();
  if (axis) {
    el.append(svg('line', { class: 'grid', x1: 0, x2: width, y1: top, y2: top }));
    const label = svg('text', { x: 4, y: top - 4 });
    label.textContent = `peak ${fmtRate(max)}/s`;
    el.append(label);
  }
  el.append(svg('line', { class: 'base', x1: 0, x2: width, y1: bottom + 0.5, y2: bottom + 0.5 }));
  if (values.length < 2) {
    el.setAttribute('aria-label', 'no history yet');
    return;
  }
  const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  el.append(svg('path', { class: 'area', d: `M${x(0).toFixed(1)},${bottom} L${pts.join(' L')} L${x(values.length - 1).toFixed(1)},${bottom} Z` }));
  el.append(svg('polyline', { class: 'line', points: pts.join(' ') }));
  const last = values[values.length - 1];
  el.append(svg('circle', { class: 'dot', cx: x(values.length - 1).toFixed(1), cy: y(last).toFixed(1), r: axis ? 3 : 2 }));
  el.setAttribute('aria-label', `events per second, last ${values.length} s: now ${fmtRate(last)}, peak ${fmtRate(max)}`);
}

// toast shows a short message at the bottom right for a few seconds.
export function toast(message, kind = '') {
  const box = document.getElementById('toasts');
  const el = h('div.toast' + (kind ? '.' + kind : ''), { role: 'status' }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'bad' ? 8000 : 4000);
}

// callout is an inline message block.
export function callout(kind, title, message) {
  return h('div.callout.' + kind, { role: kind === 'bad' ? 'alert' : 'status' },
    h('div.msg', title ? h('strong', title + ' ') : null, message));
}

// jsonView renders a value as indented JSON with colored tokens.
export function jsonView(value) {
  const pre = h('pre');
  let text;
  if (typeof value === 'string') {
    try { text = JSON.stringify(JSON.parse(value), null, 2); } catch { pre.textContent = value; return pre; }
  } else {
    text = JSON.stringify(value, null, 2);
  }
  if (text === undefined) text = String(value);
  const re = /("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) pre.append(text.slice(at, m.index));
    if (m[1] && m[2]) pre.append(h('span.j-key', m[1]), m[2]);
    else if (m[1]) pre.append(h('span.j-str', m[1]));
    else if (m[3]) pre.append(h('span.j-num', m[3]));
    else pre.append(h('span.j-lit', m[4]));
    at = m.index + m[0].length;
  }
  pre.append(text.slice(at));
  return pre;
}

// tomlView renders a task file with line numbers and light highlighting;
// redacted values ("***") stand out so it is plain they were hidden.
export function tomlView(text) {
  const pre = h('pre.code');
  const lines = String(text || '').replace(/\n$/, '').split('\n');
  lines.forEach((line, i) => {
    pre.append(h('span.ln', String(i + 1)));
    highlightTOML(pre, line);
    pre.append('\n');
  });
  return pre;
}

function highlightTOML(out, line) {
  const sect = line.match(/^(\s*)(\[\[?[^\]]*\]\]?)(.*)$/);
  if (sect) {
    out.append(sect[1], h('span.tok-sect', sect[2]));
    tokens(out, sect[3]);
    return;
  }
  const kv = line.match(/^(\s*)([A-Za-z0-9_."'-]+)(\s*=)(.*)$/);
  if (kv) {
    out.append(kv[1], h('span.tok-key', kv[2]), kv[3]);
    tokens(out, kv[4]);
    return;
  }
  tokens(out, line);
}

function tokens(out, s) {
  const re = /(#.*$)|("""[\s\S]*?"""|'''[\s\S]*?'''|"(?:[^"\\]|\\.)*"|'[^']*')|(\b-?\d[\d_]*(?:\.\d+)?\b|\btrue\b|\bfalse\b)/g;
  let at = 0;
  for (const m of s.matchAll(re)) {
    if (m.index > at) out.append(s.slice(at, m.index));
    if (m[1]) out.append(h('span.tok-com', m[1]));
    else if (m[2]) out.append(h(/^["']\*\*\*["']$/.test(m[2]) ? 'span.tok-sec' : 'span.tok-str', m[2]));
    else out.append(h('span.tok-num', m[3]));
    at = m.index + m[0].length;
  }
  out.append(s.slice(at));
}

// errorText is what to show of a failed call.
export function errorText(err) {
  if (!err) return '';
  if ((err.status === 404 || err.status === 405) && /^(tasks\/[^/]+\/(tap|dlq|rewind)|playground|events|reload)/.test(err.path || '')) {
    const what = err.path.replace(/^tasks\/[^/]+\//, '').replace(/\?.*$/, '');
    if (what === 'reload') return `this sluice does not take reloads over the admin API (no POST /reload, HTTP ${err.status}): send it SIGHUP, or restart it`;
    return `this sluice's admin API has no ${what} endpoint (HTTP ${err.status}): is it older than this console?`;
  }
  return err.message || String(err);
}
