// The task list: summary tiles and one row per task, updated in place from
// the live stream (rows are kept, only their text changes, so hovering or
// selecting text survives the one-second refresh).

import { h, setText, fmtInt, fmtRate, fmtLag, pill, updatePill, sparkline, drawSpark, callout, toast, errorText } from './ui.js';
import { post, taskPath } from './api.js';
import * as live from './live.js';

export function title() { return 'Tasks'; }

export function render(main) {
  const tiles = {
    tasks: tile('Tasks'),
    running: tile('Running'),
    attention: tile('Not running'),
    rate: tile('Events/s', 'all tasks'),
    received: tile('Received'),
    dead: tile('Dead-lettered'),
  };
  const filter = h('input', { type: 'search', placeholder: 'Filter tasks', 'aria-label': 'Filter tasks', id: 'task-filter' });
  const body = h('tbody');
  const banner = h('div');
  const table = h('table', { id: 'tasks' },
    h('thead', h('tr',
      h('th', 'Task'), h('th', 'State'), h('th.num', 'Events/s'), h('th', { title: 'events per second, one point a second, up to the last 5 minutes' }, 'Throughput'),
      h('th.num', 'Received'), h('th.num', 'Delivered'), h('th.num', 'Filtered'), h('th.num', 'Failed'),
      h('th.num', { title: 'events sent to the dead-letter queue' }, 'Dead-lettered'), h('th.num', { title: 'Kafka consumer lag (records behind the end of the topic)' }, 'Lag'), h('th', ''))),
    body);
  const empty = h('div.empty', 'Waiting for the task list…');
  const reloadBtn = h('button', { type: 'button', id: 'reload', title: 'Read the task files again: changed tasks restart from their committed position, the others are left alone' }, 'Reload task files');
  const reloadMsg = h('div', { id: 'reload-result' });
  reloadBtn.addEventListener('click', async () => {
    reloadBtn.disabled = true;
    reloadMsg.replaceChildren();
    try {
      reloadMsg.replaceChildren(reloadOutcome(await post('reload')));
      await live.refresh();
    } catch (err) {
      reloadMsg.replaceChildren(reloadFailure(err));
    } finally {
      reloadBtn.disabled = false;
    }
  });
  main.append(
    h('div.page-head',
      h('div', h('h1', 'Tasks'), h('div.sub', 'Every task of this sluice, live.')),
      h('div.actions', filter, reloadBtn)),
    reloadMsg,
    banner,
    h('div.tiles', Object.values(tiles).map((t) => t.el)),
    h('div.panel', h('div.table-wrap', table), empty));

  const rows = new Map();
  const update = (list) => {
    banner.replaceChildren();
    const q = filter.value.trim().toLowerCase();
    let running = 0, attention = 0, rate = 0, received = 0, dead = 0;
    const seen = new Set();
    for (const t of list) {
      seen.add(t.name);
      if (t.state === 'Running') running++;
      else if (t.state !== 'Starting') attention++;
      rate += t.rate || 0;
      received += t.counters.received;
      dead += t.counters.dead_lettered;
      let row = rows.get(t.name);
      if (!row) { row = makeRow(t); rows.set(t.name, row); }
      row.update(t);
      row.el.classList.toggle('hidden', q !== '' && !t.name.toLowerCase().includes(q));
      body.append(row.el); // keeps the server's order
    }
    for (const [name, row] of rows) if (!seen.has(name)) { row.el.remove(); rows.delete(name); }
    setText(tiles.tasks.value, fmtInt(list.length));
    setText(tiles.running.value, fmtInt(running));
    setText(tiles.attention.value, fmtInt(attention));
    tiles.attention.el.classList.toggle('bad', attention > 0);
    setText(tiles.rate.value, fmtRate(rate));
    setText(tiles.received.value, fmtInt(received));
    setText(tiles.dead.value, fmtInt(dead));
    empty.classList.toggle('hidden', list.length > 0);
    if (!list.length) empty.textContent = 'This sluice runs no tasks.';
  };
  filter.addEventListener('input', () => update(live.current()));
  const offTasks = live.onTasks(update);
  const offStatus = live.onStatus((s, err) => {
    if (s === 'locked') {
      const again = h('button.small', { type: 'button', id: 'enter-token' }, 'Enter the token');
      again.addEventListener('click', () => live.retry());
      banner.replaceChildren(h('div.callout.warn', { role: 'status' },
        h('div.msg', h('strong', 'The admin token is needed '), 'to show the tasks of this sluice. '), again));
      if (!live.current().length) empty.textContent = 'No task list yet.';
    } else if (s === 'off' && err) {
      banner.replaceChildren(callout('bad', 'Cannot read the task list:', err.message));
      if (!live.current().length) empty.textContent = 'No task list yet.';
    }
  });
  return () => { offTasks(); offStatus(); };
}

// reloadOutcome says what POST /reload did, task by task.
function reloadOutcome(res) {
  const parts = [];
  for (const [key, verb] of [['started', 'started'], ['restarted', 'restarted'], ['stopped', 'stopped']]) {
    const names = Array.isArray(res[key]) ? res[key] : [];
    if (names.length) parts.push(`${verb} ${names.join(', ')}`);
  }
  const same = Array.isArray(res.unchanged) ? res.unchanged.length : 0;
  parts.push(`${same} unchanged`);
  return callout('ok', 'Reloaded:', parts.join('; ') + '.');
}

// reloadFailure shows a refused reload: every problem of the files, each
// FILE:LINE:COL, and that the running tasks were left alone.
function reloadFailure(err) {
  const problems = Array.isArray(err.body?.problems) ? err.body.problems : [];
  if (!problems.length) return callout(err.status === 405 || err.status === 404 ? 'warn' : 'bad', 'Reload:', errorText(err));
  return h('div.callout.bad', { role: 'alert' },
    h('div.msg',
      h('strong', `Reload refused: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the task files. `),
      'The running tasks keep running unchanged.',
      h('ul.problems', problems.map((p) => h('li', h('code', p))))));
}

function tile(label, hint) {
  const value = h('div.value', '—');
  const el = h('div.tile', h('div.label', label, hint ? h('span.faint', ' · ' + hint) : null), value);
  return { el, value };
}

function makeRow(t) {
  const open = () => { location.hash = '#/tasks/' + encodeURIComponent(t.name); };
  const name = h('a.task-name', { href: '#/tasks/' + encodeURIComponent(t.name) }, t.name);
  const desc = h('div.desc');
  const state = pill(t.state);
  const reason = h('div.reason');
  const cells = {
    rate: h('td.num'), received: h('td.num'), delivered: h('td.num'), filtered: h('td.num'),
    failed: h('td.num'), dead: h('td.num'), lag: h('td.num'),
  };
  const spark = sparkline([], { width: 110, height: 28, slots: 60 });
  const toggle = h('button.small', { type: 'button' });
  toggle.addEventListener('click', async (e) => {
    e.stopPropagation();
    const action = toggle.dataset.action;
    toggle.disabled = true;
    try {
      await post(taskPath(t.name, '/' + action));
      await live.refresh();
    } catch (err) {
      toast(`${action === 'pause' ? 'Pause' : 'Resume'} of ${t.name} refused: ${errorText(err)}`, 'bad');
    } finally {
      toggle.disabled = false;
    }
  });
  const el = h('tr.link', { dataset: { task: t.name } },
    h('td', name, desc),
    h('td', state, reason),
    cells.rate,
    h('td', spark),
    cells.received, cells.delivered, cells.filtered, cells.failed, cells.dead, cells.lag,
    h('td.num', toggle));
  el.addEventListener('click', (e) => { if (!e.target.closest('a,button')) open(); });
  return {
    el,
    update(t) {
      setText(desc, t.description || '');
      desc.classList.toggle('hidden', !t.description);
      updatePill(state, t.state);
      setText(reason, t.reason || '');
      reason.title = t.reason || '';
      reason.classList.toggle('hidden', !t.reason);
      setText(cells.rate, fmtRate(t.rate));
      // At least a minute wide, up to five as the history grows.
      drawSpark(spark, t.rate_history, { width: 110, height: 28, slots: 60 });
      const c = t.counters;
      for (const [k, v] of [['received', c.received], ['delivered', c.delivered], ['filtered', c.filtered], ['failed', c.failed], ['dead', c.dead_lettered]]) {
        setText(cells[k], fmtInt(v));
        cells[k].classList.toggle('zero', !v);
      }
      setText(cells.lag, fmtLag(t.lag));
      cells.lag.classList.toggle('zero', t.lag === null || t.lag === undefined);
      const paused = t.state === 'Paused' || t.state === 'Blocked';
      const action = paused ? 'resume' : 'pause';
      if (toggle.dataset.action !== action) {
        toggle.dataset.action = action;
        toggle.textContent = paused ? 'Resume' : 'Pause';
      }
      toggle.classList.toggle('hidden', !['Running', 'Paused', 'Blocked'].includes(t.state));
    },
  };
}
