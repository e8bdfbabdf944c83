// The live tap: pick a task and a stage and watch a sample of the events
// leaving it (the server samples at most 10 a second and never slows the
// task down; it stops after `limit` records). Read-only.

import { h, setText, fmtTime, jsonView, callout, errorText } from './ui.js';
import { get, stream, taskPath } from './api.js';
import * as live from './live.js';

export function title() { return 'Live tap'; }

const KEEP = 200; // records kept on the page, newest first

export function render(main, params) {
  const taskSel = h('select', { id: 'tap-task', 'aria-label': 'Task' });
  const stageSel = h('select', { id: 'tap-stage', 'aria-label': 'Stage' });
  const limit = h('input', { id: 'tap-limit', type: 'number', min: '1', max: '10000', value: params.limit || '100', 'aria-label': 'Records' });
  limit.style.width = '90px';
  const startBtn = h('button.primary', { type: 'button', id: 'tap-start' }, 'Start');
  const clearBtn = h('button', { type: 'button' }, 'Clear');
  const status = h('span', 'Pick a task and a stage, then Start.');
  const dot = h('span.live');
  const count = h('span.faint');
  const list = h('div.records', { id: 'tap-records' });
  const empty = h('div.empty', 'No records yet.');
  const msg = h('div');

  main.append(
    h('div.page-head',
      h('div', h('h1', 'Live tap'), h('div.sub', 'A sample of the events leaving a stage, as they pass: at most 10 a second, the task is never slowed down.'))),
    h('div.panel', h('div.panel-body', h('div.toolbar',
      h('label.field', 'Task', taskSel),
      h('label.field', 'Stage', stageSel),
      h('label.field', 'Stop after', limit),
      startBtn, clearBtn))),
    msg,
    h('div.panel',
      h('div.panel-head', h('h2', 'Records'), h('div.status-line', dot, status), h('div.right', count)),
      empty, list));

  let names = [];
  const fillTasks = (list) => {
    const now = list.map((t) => t.name);
    if (now.join('\n') === names.join('\n')) return;
    const keep = taskSel.value || params.task;
    names = now;
    taskSel.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
    if (keep && names.includes(keep)) taskSel.value = keep;
    loadStages();
  };
  let stagesFor = '';
  async function loadStages() {
    const name = taskSel.value;
    if (!name || name === stagesFor) return;
    stagesFor = name;
    const want = stageSel.value || params.stage;
    let stages = [];
    try {
      const d = await get(taskPath(name));
      if (Array.isArray(d.stages)) stages = d.stages.map((s) => ({ id: s.id, label: `${s.id} · ${s.type || s.kind || ''}` }));
    } catch { /* fall back to the fixed list */ }
    if (!stages.length) stages = ['source', 'filter', 'transform[0]', 'sink'].map((id) => ({ id, label: id }));
    stageSel.replaceChildren(...stages.map((s) => h('option', { value: s.id }, s.label)));
    const ids = stages.map((s) => s.id);
    stageSel.value = want && ids.includes(want) ? want : ids[0];
    // Opened from a task page (#/tap?task=...): tap at once.
    if (autoStart && name === params.task) { autoStart = false; begin(); }
  }
  let autoStart = !!params.task;
  taskSel.addEventListener('change', () => { stop(); loadStages(); });
  stageSel.addEventListener('change', stop);
  const offTasks = live.onTasks(fillTasks);

  let ctl = null;
  let n = 0;
  const setRunning = (on) => {
    startBtn.textContent = on ? 'Stop' : 'Start';
    startBtn.classList.toggle('primary', !on);
    dot.className = on ? 'live on' : 'live';
  };
  function stop() {
    if (ctl) { ctl.abort(); ctl = null; }
    setRunning(false);
  }
  async function begin() {
    stop();
    msg.replaceChildren();
    const name = taskSel.value, stage = stageSel.value;
    if (!name || !stage) return;
    const max = Math.max(1, Math.min(10000, parseInt(limit.value, 10) || 100));
    const mine = new AbortController();
    ctl = mine;
    setRunning(true);
    setText(status, `Connecting to ${name} / ${stage}…`);
    let got = 0;
    let ended = null; // the `end` event: the task's run ended
    try {
      await stream(taskPath(name, `/tap?stage=${encodeURIComponent(stage)}&limit=${max}`), {
        signal: mine.signal,
        onOpen: () => setText(status, `Tapping ${name} / ${stage}: waiting for events…`),
        onEvent: (type, data) => {
          if (type === 'error') { msg.replaceChildren(callout('bad', 'Tap:', typeof data === 'object' ? data.error || JSON.stringify(data) : String(data))); return; }
          if (type === 'end') { ended = data && typeof data === 'object' ? data : { message: String(data) }; return; }
          if (type !== 'record') return;
          got++;
          add(data, stage);
          setText(status, `Tapping ${name} / ${stage}: ${got} of at most ${max} records`);
        },
      });
      const records = `${got} record${got === 1 ? '' : 's'}`;
      if (ctl === mine && ended) {
        // A reload starts a changed task as a new run: Start taps that one.
        msg.replaceChildren(callout('warn', 'Tap:', `${ended.message || "the task's run ended"}.`));
        setText(status, `Ended after ${records}: the task's run ended (${ended.state || 'stopped'}).`);
      } else if (ctl === mine) setText(status, `Ended after ${records} (${got >= max ? 'the limit' : 'the server closed the tap'}).`);
    } catch (err) {
      if (mine.signal.aborted) { setText(status, `Stopped after ${got} record${got === 1 ? '' : 's'}.`); return; }
      msg.replaceChildren(callout(err.status === 429 || err.status === 409 ? 'warn' : 'bad', 'Tap:', errorText(err)));
      setText(status, 'Not tapping.');
    } finally {
      if (ctl === mine) { ctl = null; setRunning(false); }
    }
  }
  function add(rec, stage) {
    n++;
    const r = rec && typeof rec === 'object' ? rec : { event: rec };
    list.prepend(h('div.record',
      h('div.meta', h('span.badge', r.stage || stage), h('span.mono', { title: r.time }, fmtTime(r.time)), h('span.faint', '#' + n)),
      jsonView(r.event !== undefined ? r.event : r)));
    while (list.childElementCount > KEEP) list.lastElementChild.remove();
    empty.classList.add('hidden');
    setText(count, `${n} shown${n > KEEP ? ` (newest ${KEEP} kept)` : ''}`);
  }
  startBtn.addEventListener('click', () => (ctl ? stop() : begin()));
  clearBtn.addEventListener('click', () => { list.replaceChildren(); n = 0; setText(count, ''); empty.classList.remove('hidden'); });

  return () => { stop(); offTasks(); };
}
