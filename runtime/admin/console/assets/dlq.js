// The dead-letter browser: a task's dead letters, 50 a page, with the stage
// that failed and why; select some and replay them through the task's
// filter, transforms and sink.

import { h, setText, fmtInt, fmtTime, jsonView, callout, errorText } from './ui.js';
import { get, post, taskPath } from './api.js';
import * as live from './live.js';

export function title() { return 'Dead letters'; }

const PAGE = 50;

export function render(main, params) {
  const taskSel = h('select', { id: 'dlq-task', 'aria-label': 'Task' });
  const reloadBtn = h('button', { type: 'button', id: 'dlq-reload' }, 'Reload');
  const replayBtn = h('button.primary', { type: 'button', id: 'dlq-replay', disabled: true }, 'Replay selected');
  // Oldest first, as the file is written.
  const prevBtn = h('button.small', { type: 'button', id: 'dlq-prev' }, '← Previous');
  const nextBtn = h('button.small', { type: 'button', id: 'dlq-next' }, 'Next →');
  const range = h('span');
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select the page' });
  const body = h('tbody');
  const empty = h('div.empty', 'Pick a task.');
  const msg = h('div'); // what replay did
  const loadMsg = h('div'); // why the list cannot be read
  const totalEl = h('span.hint');

  main.append(
    h('div.page-head',
      h('div', h('h1', 'Dead letters'), h('div.sub', 'Events a task could not deliver, with the stage that failed and why. Replay sends the selected ones through the task again.')),
      h('div.actions', h('label.field', 'Task', taskSel), reloadBtn, replayBtn)),
    msg,
    loadMsg,
    h('div.panel',
      h('div.panel-head', h('h2', 'Dead letters'), totalEl, h('div.right', h('div.pager', range, prevBtn, nextBtn))),
      h('div.table-wrap', h('table', { id: 'dlq' },
        h('thead', h('tr', h('th', all), h('th', 'Time'), h('th', 'Stage'), h('th', 'Reason'), h('th', 'Event'))),
        body)),
      empty));

  let offset = Math.max(0, parseInt(params.offset, 10) || 0);
  let total = 0;
  const selected = new Set();
  let items = [];

  const updateReplay = () => {
    replayBtn.disabled = selected.size === 0;
    replayBtn.textContent = selected.size ? `Replay selected (${selected.size})` : 'Replay selected';
    const open = items.filter((it) => !it.replayed);
    all.checked = open.length > 0 && open.every((it) => selected.has(it.id));
    all.indeterminate = !all.checked && items.some((it) => selected.has(it.id));
  };

  let loadedFor = '';
  let ctl = null;
  let names = [];
  const offTasks = live.onTasks((list) => {
    const now = list.map((t) => t.name);
    if (now.join('\n') === names.join('\n')) return;
    const keep = taskSel.value || params.task;
    names = now;
    taskSel.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
    if (keep && names.includes(keep)) taskSel.value = keep;
    if (taskSel.value !== loadedFor) load();
  });

  async function load() {
    const name = taskSel.value;
    if (!name) return;
    if (ctl) ctl.abort();
    const mine = new AbortController();
    ctl = mine;
    if (name !== loadedFor) { selected.clear(); loadedFor = name; }
    history.replaceState(null, '', `#/dlq?task=${encodeURIComponent(name)}${offset ? '&offset=' + offset : ''}`);
    try {
      const page = await get(taskPath(name, `/dlq?offset=${offset}&limit=${PAGE}`), { signal: mine.signal });
      loadMsg.replaceChildren();
      total = page.total || 0;
      items = Array.isArray(page.items) ? page.items : [];
      if (offset > 0 && items.length === 0 && total > 0) { offset = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE); return load(); }
      show();
    } catch (err) {
      if (mine.signal.aborted) return;
      items = [];
      total = 0;
      show();
      empty.textContent = 'No dead letters to show.';
      loadMsg.replaceChildren(callout(err.status === 409 ? 'warn' : 'bad', `Dead letters of ${name}:`, errorText(err)));
    }
  }

  function show() {
    body.replaceChildren();
    for (const it of items) {
      // A replayed letter is not replayed again (the API skips it).
      const box = h('input', { type: 'checkbox', 'aria-label': 'Select ' + it.id, checked: selected.has(it.id), disabled: !!it.replayed });
      box.addEventListener('change', () => { if (box.checked) selected.add(it.id); else selected.delete(it.id); row.classList.toggle('selected', box.checked); updateReplay(); });
      const preview = typeof it.event === 'string' ? it.event : JSON.stringify(it.event);
      const detail = h('tr.detail.hidden', h('td', { colSpan: 5 }, jsonView(it.event)));
      const row = h('tr.link', { dataset: { id: String(it.id) } },
        h('td', box),
        h('td.mono.faint', { title: it.time }, fmtTime(it.time)),
        h('td.nowrap', h('span.badge', it.stage || '—'), it.replayed ? h('span.pill.replayed', { title: 'sent through the task again' }, 'replayed') : null),
        h('td', it.reason || '', it.attempts || it.class
          ? h('div.faint', [it.class, it.attempts ? `${it.attempts} attempt${it.attempts === 1 ? '' : 's'}` : ''].filter(Boolean).join(' · '))
          : null),
        h('td.event-cell', h('code', preview)));
      row.classList.toggle('selected', selected.has(it.id));
      row.addEventListener('click', (e) => { if (e.target !== box) detail.classList.toggle('hidden'); });
      body.append(row, detail);
    }
    empty.classList.toggle('hidden', items.length > 0);
    empty.textContent = `${taskSel.value} has no dead letters.`;
    setText(totalEl, `${fmtInt(total)} in total`);
    setText(range, items.length ? `${fmtInt(offset + 1)}–${fmtInt(offset + items.length)} of ${fmtInt(total)}` : '');
    prevBtn.disabled = offset === 0;
    nextBtn.disabled = offset + items.length >= total;
    updateReplay();
  }

  all.addEventListener('change', () => {
    for (const it of items) { if (all.checked && !it.replayed) selected.add(it.id); else selected.delete(it.id); }
    show();
  });
  taskSel.addEventListener('change', () => { offset = 0; msg.replaceChildren(); load(); });
  reloadBtn.addEventListener('click', load);
  prevBtn.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  nextBtn.addEventListener('click', () => { offset += PAGE; load(); });
  replayBtn.addEventListener('click', async () => {
    const name = taskSel.value;
    const ids = [...selected];
    replayBtn.disabled = true;
    try {
      const res = await post(taskPath(name, '/dlq/replay'), { ids });
      const n = res.replayed ?? ids.length;
      const outcome = typeof res.delivered === 'number'
        ? ` ${res.delivered} delivered, ${res.filtered || 0} filtered, ${res.failed_again || 0} failed again.`
        : '';
      msg.replaceChildren(callout(res.failed_again ? 'warn' : 'ok', 'Replayed:', `${n} dead letter${n === 1 ? '' : 's'} sent through ${name} again.${outcome}`));
      selected.clear();
      await load();
    } catch (err) {
      msg.replaceChildren(callout(err.status === 409 ? 'warn' : 'bad', 'Replay:', errorText(err)));
      updateReplay();
    }
  });
  return () => { if (ctl) ctl.abort(); offTasks(); };
}
