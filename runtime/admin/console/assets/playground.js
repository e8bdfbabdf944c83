// The playground: an event and a [filter] / [[transform]] fragment in, the
// outputs (or "filtered out", or the error at its line and column) out. The
// server runs them through the code path of `sluice test`; nothing reaches
// a task. What was typed stays in this tab (sessionStorage) across reloads.

import { h, jsonView, callout, errorText } from './ui.js';
import { post } from './api.js';

export function title() { return 'Playground'; }

const SAMPLE_EVENT = `{
  "specversion": "1.0",
  "id": "order-1042",
  "source": "shop/checkout",
  "type": "order.created",
  "data": {
    "order_id": "A-1042",
    "region": "eu-west-1",
    "amount": 240.5,
    "status": "paid",
    "customer": { "id": "c-77", "tier": "gold" }
  }
}`;

const SAMPLE_CONFIG = `# Keep paid EU orders over 100, then reshape them.
[filter.pattern.data]
region = [{ prefix = "eu-" }]
amount = [{ numeric = [">", 100] }]
status = ["paid"]

[[transform]]
type = "template"
variables = { order = "$.data.order_id", amount = "$.data.amount", tier = "$.data.customer.tier" }
template = '{"order":"\${order}","amount":\${amount},"tier":"\${tier}"}'
`;

const KEY_EVENT = 'sluice.playground.event';
const KEY_CONFIG = 'sluice.playground.config';

export function render(main) {
  // wrap=off: a line of the fragment stays one line, as the error positions count them.
  const event = h('textarea', { id: 'pg-event', spellcheck: 'false', wrap: 'off', 'aria-label': 'Event' });
  const config = h('textarea', { id: 'pg-config', spellcheck: 'false', wrap: 'off', 'aria-label': 'Filter and transforms (TOML)' });
  event.value = load(KEY_EVENT, SAMPLE_EVENT);
  config.value = load(KEY_CONFIG, SAMPLE_CONFIG);
  const runBtn = h('button.primary', { type: 'button', id: 'pg-run' }, 'Run');
  const resetBtn = h('button', { type: 'button' }, 'Reset to the example');
  const result = h('div.pg-result', { id: 'pg-result' }, h('div.faint', 'Run to see what the task would do with this event.'));
  const timing = h('span.hint');

  main.append(
    h('div.page-head',
      h('div', h('h1', 'Playground'), h('div.sub', 'Try a filter and transforms on an event, exactly as ', h('code', 'sluice test'), ' runs them. Nothing is sent anywhere.')),
      h('div.actions', resetBtn, runBtn)),
    h('div.pg-grid',
      h('div',
        h('div.panel', h('div.panel-head', h('h2', 'Event'), h('span.hint', 'JSON, or a line of text')), event),
        h('div.panel', h('div.panel-head', h('h2', 'Filter and transforms'), h('span.hint', 'TOML: [filter] and [[transform]] tables'), h('div.right', h('span.kbd', 'Ctrl'), h('span.kbd', 'Enter'))), config)),
      h('div', h('div.panel', h('div.panel-head', h('h2', 'Result'), h('div.right', timing)), result))));

  let seq = 0;
  async function run() {
    sessionStorage.setItem(KEY_EVENT, event.value);
    sessionStorage.setItem(KEY_CONFIG, config.value);
    const mine = ++seq;
    runBtn.disabled = true;
    const t0 = performance.now();
    try {
      const res = await post('playground', { event: event.value, config: config.value });
      if (mine !== seq) return;
      timing.textContent = `${Math.round(performance.now() - t0)} ms`;
      const outputs = Array.isArray(res.outputs) ? res.outputs : [];
      if (res.filtered || outputs.length === 0) {
        result.replaceChildren(callout('warn', 'Filtered out:', res.filtered ? 'the filter (or a transform) dropped this event; nothing would reach the sink.' : 'no output.'));
      } else {
        result.replaceChildren(
          callout('ok', `${outputs.length} output${outputs.length === 1 ? '' : 's'}`, 'would reach the sink:'),
          ...outputs.map((o, i) => h('div', { class: 'pg-output', dataset: { index: String(i) } }, jsonView(o))));
      }
    } catch (err) {
      if (mine !== seq) return;
      timing.textContent = '';
      result.replaceChildren(...errorBlock(err, config));
    } finally {
      if (mine === seq) runBtn.disabled = false;
    }
  }
  runBtn.addEventListener('click', run);
  resetBtn.addEventListener('click', () => { event.value = SAMPLE_EVENT; config.value = SAMPLE_CONFIG; run(); });
  const keys = (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } };
  event.addEventListener('keydown', keys);
  config.addEventListener('keydown', keys);
}

// errorBlock shows an error; with a position it also shows the lines around
// it with a caret under the column, and a button that puts the cursor there.
function errorBlock(err, config) {
  const line = err.body?.line, col = err.body?.column;
  const where = line ? `line ${line}${col ? `, column ${col}` : ''}` : '';
  const out = [h('div', { id: 'pg-error', class: 'callout bad', role: 'alert', dataset: { line: String(line || ''), column: String(col || '') } },
    h('div.msg', h('strong', where ? `Error at ${where}: ` : 'Error: '), errorText(err)))];
  if (line && err.status === 400) {
    const lines = config.value.replace(/\n+$/, '').split('\n');
    const ex = h('pre.excerpt', { id: 'pg-excerpt' });
    for (let i = Math.max(1, line - 2); i <= Math.min(lines.length, line + 2); i++) {
      ex.append(h('span.row' + (i === line ? '.hit' : ''), h('span.ln', String(i)), lines[i - 1] || ' '));
      if (i === line && col) ex.append(h('span.row', h('span.ln', ''), ' '.repeat(Math.max(0, col - 1)), h('span.caret', '^')));
    }
    const go = h('button.small', { type: 'button' }, `Go to ${where}`);
    go.addEventListener('click', () => {
      let at = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
      at += Math.max(0, (col || 1) - 1);
      config.focus();
      config.setSelectionRange(at, Math.min(at + 1, config.value.length));
    });
    out.push(ex, h('div', go));
  }
  return out;
}

function load(key, fallback) {
  try { return sessionStorage.getItem(key) ?? fallback; } catch { return fallback; }
}
