// A task's page: state and actions (pause, resume, rewind), its throughput
// over the last five minutes, its counters, its stages with their counts,
// its last errors and its task file (secrets redacted by the server).
//
// Counters and the chart follow the live stream; the stages, errors and the
// file come from GET /tasks/{name}, read again every three seconds while
// the page is visible.

import { h, setText, fmtInt, fmtRate, fmtBytes, fmtLag, fmtTime, fmtSeconds, pill, updatePill, sparkline, drawSpark, callout, toast, tomlView, svg, errorText } from './ui.js';
import { get, post, taskPath } from './api.js';
import * as live from './live.js';

export function title(p) { return p.name; }

export function render(main, { name }) {
  const state = pill('Unknown');
  const reasonBox = h('div');
  const actionsMsg = h('div');
  const pauseBtn = h('button', { type: 'button', id: 'pause' }, 'Pause');
  const resumeBtn = h('button', { type: 'button', id: 'resume' }, 'Resume');
  const rewindTo = h('select', { id: 'rewind-to', 'aria-label': 'Rewind to' },
    h('option', { value: 'earliest' }, 'earliest'),
    h('option', { value: 'latest' }, 'latest'),
    h('option', { value: 'time' }, 'a time…'));
  const rewindTime = h('input.hidden', { type: 'datetime-local', step: '1', 'aria-label': 'Rewind to this time' });
  const rewindBtn = h('button', { type: 'button', id: 'rewind' }, 'Rewind');
  const desc = h('div.sub');

  const counters = {};
  const tile = (key, label) => {
    const value = h('div.value', '—');
    counters[key] = value;
    return h('div.tile', h('div.label', label), value);
  };
  // The chart is drawn at the width it is shown at (text and strokes are
  // not stretched), and again when that changes.
  let chartW = 1000;
  const chart = sparkline([], { width: chartW, height: 90, axis: true, slots: 300 });
  const since = h('span', '5 min ago');
  const chartBox = h('div.chart', chart, h('div.chart-legend', since, h('span', 'now')));
  let lastHistory = [];
  const drawChart = () => {
    chart.setAttribute('width', chartW);
    chart.setAttribute('viewBox', `0 0 ${chartW} 90`);
    // At least a minute wide, up to five as the history grows.
    const span = Math.max(60, lastHistory.length);
    drawSpark(chart, lastHistory, { width: chartW, height: 90, axis: true, slots: span });
    setText(since, span >= 120 ? `${Math.round(span / 60)} min ago` : `${span} s ago`);
  };
  const resize = new ResizeObserver(() => {
    const w = Math.max(200, Math.floor(chartBox.clientWidth - 32));
    if (w !== chartW) { chartW = w; drawChart(); }
  });
  resize.observe(chartBox);
  const rateNow = h('span');

  const pipeline = h('div.pipeline', h('div.empty', 'Loading the stages…'));
  const errorsBody = h('div', h('div.empty', 'Loading…'));
  const tomlBody = h('div', h('div.empty', 'Loading…'));
  const detailError = h('div');

  main.append(
    h('div.page-head',
      h('div',
        h('div.crumbs', h('a', { href: '#/' }, 'Tasks'), ' / ', name),
        h('div.title-row', h('h1', { id: 'task-name' }, name), state),
        desc),
      h('div.actions',
        pauseBtn, resumeBtn,
        h('span.faint', '·'),
        h('span.muted', 'Rewind to'), rewindTo, rewindTime, rewindBtn,
        h('span.faint', '·'),
        h('a.btn', { href: `#/tap?task=${encodeURIComponent(name)}` }, 'Tap'),
        h('a.btn', { href: `#/dlq?task=${encodeURIComponent(name)}` }, 'Dead letters'))),
    reasonBox,
    actionsMsg,
    detailError,
    h('div.tiles',
      tile('received', 'Received'), tile('delivered', 'Delivered'), tile('filtered', 'Filtered'),
      tile('failed', 'Failed'), tile('dead_lettered', 'Dead-lettered'), tile('bytes_in', 'Bytes in'), tile('bytes_out', 'Bytes out'), tile('latency', 'Latency'), tile('lag', 'Kafka lag')),
    h('div.panel',
      h('div.panel-head', h('h2', 'Throughput'), h('span.hint', 'events per second, up to the last 5 minutes'), h('div.right', rateNow)),
      chartBox),
    h('div.panel',
      h('div.panel-head', h('h2', 'Stages'), h('span.hint', 'events in, out and failed at each stage')),
      pipeline),
    h('div.grid-2',
      h('div.panel', { id: 'errors' },
        h('div.panel-head', h('h2', 'Last errors'), h('span.hint', 'newest first')),
        errorsBody),
      h('div.panel', { id: 'config' },
        h('div.panel-head', h('h2', 'Task file'), h('span.hint', 'secrets and ${env:…} values shown as ***')),
        tomlBody)));

  rewindTo.addEventListener('change', () => rewindTime.classList.toggle('hidden', rewindTo.value !== 'time'));

  let cur = null;
  const setButtons = (s) => {
    pauseBtn.disabled = !(s === 'Running');
    resumeBtn.disabled = !(s === 'Paused' || s === 'Blocked');
  };
  const act = async (btn, path, body, done) => {
    btn.disabled = true;
    actionsMsg.replaceChildren();
    try {
      const res = await post(taskPath(name, path), body);
      if (res && res.state) { updatePill(state, res.state); setButtons(res.state); }
      toast(done);
      await live.refresh();
      loadDetail();
    } catch (err) {
      const what = path.slice(1);
      actionsMsg.replaceChildren(callout(err.status === 409 ? 'warn' : 'bad', `${what[0].toUpperCase()}${what.slice(1)} refused:`, errorText(err)));
      if (cur) setButtons(cur.state);
    }
  };
  pauseBtn.addEventListener('click', () => act(pauseBtn, '/pause', {}, `Paused ${name}`));
  resumeBtn.addEventListener('click', () => act(resumeBtn, '/resume', {}, `Resumed ${name}`));
  rewindBtn.addEventListener('click', () => {
    let to = rewindTo.value;
    if (to === 'time') {
      if (!rewindTime.value) { actionsMsg.replaceChildren(callout('warn', 'Rewind:', 'pick a time first.')); return; }
      to = new Date(rewindTime.value).toISOString();
    }
    act(rewindBtn, '/rewind', { to }, `Rewound ${name} to ${to}`).finally(() => { rewindBtn.disabled = false; });
  });

  const showLive = (t) => {
    if (!t) return;
    cur = t;
    updatePill(state, t.state);
    setButtons(t.state);
    setText(desc, t.description || '');
    reasonBox.replaceChildren(t.reason ? callout(t.state === 'Paused' ? 'warn' : 'bad', 'Reason:', t.reason) : '');
    const c = t.counters;
    setText(counters.received, fmtInt(c.received));
    setText(counters.delivered, fmtInt(c.delivered));
    setText(counters.filtered, fmtInt(c.filtered));
    setText(counters.failed, fmtInt(c.failed));
    setText(counters.dead_lettered, fmtInt(c.dead_lettered));
    setText(counters.bytes_in, fmtBytes(c.bytes_in));
    setText(counters.bytes_out, fmtBytes(c.bytes_out));
    setText(counters.lag, fmtLag(t.lag));
    setText(counters.latency, fmtSeconds(t.latency_seconds));
    counters.latency.parentElement.title = 'end to end, source read to sink acknowledgement, of the last delivered batch';
    counters.lag.parentElement.classList.toggle('hidden', t.lag === null || t.lag === undefined);
    setText(rateNow, `${fmtRate(t.rate)} events/s now`);
    lastHistory = t.rate_history || [];
    drawChart();
  };
  const offTasks = live.onTasks(() => {
    const t = live.task(name);
    if (t) showLive(t);
    else if (live.current().length) reasonBox.replaceChildren(callout('bad', 'No such task:', `this sluice runs no task named ${name}.`));
  });

  let stagesKey = '';
  let stageEls = new Map();
  let tomlText = null;
  const showDetail = (d) => {
    const t = live.normalize(d);
    if (!cur) showLive({ ...t, rate_history: t.rate_history || [] });
    // Stages: rebuilt when their list changes, else only the numbers move.
    const stages = Array.isArray(d.stages) ? d.stages : null;
    if (!stages) {
      pipeline.replaceChildren(h('div.empty', 'This sluice reports no per-stage counts (its admin API predates them).'));
    } else {
      const key = stages.map((s) => s.id + ':' + s.type).join('|');
      if (key !== stagesKey) {
        stagesKey = key;
        stageEls = new Map();
        pipeline.replaceChildren();
        stages.forEach((s, i) => {
          if (i > 0) pipeline.append(h('div.arrow', arrow()));
          const el = stageCard(name, s);
          stageEls.set(s.id, el);
          pipeline.append(el.el);
        });
      }
      for (const s of stages) stageEls.get(s.id)?.update(s);
    }
    const errors = Array.isArray(d.errors) ? d.errors : null;
    if (!errors) errorsBody.replaceChildren(h('div.empty', 'This sluice does not report recent errors.'));
    else if (!errors.length) errorsBody.replaceChildren(h('div.empty', 'No errors. '));
    else {
      const rows = [...errors].sort((a, b) => String(b.time).localeCompare(String(a.time))).map((e) =>
        h('tr', h('td.mono.faint', { title: e.time }, fmtTime(e.time)), h('td', h('span.badge', e.stage || '—')), h('td', e.message)));
      errorsBody.replaceChildren(h('div.table-wrap', h('table',
        h('thead', h('tr', h('th', 'Time'), h('th', 'Stage'), h('th', 'Message'))), h('tbody', rows))));
    }
    if (typeof d.toml === 'string') {
      if (d.toml !== tomlText) { tomlText = d.toml; tomlBody.replaceChildren(tomlView(d.toml)); }
    } else if (tomlText === null) {
      tomlBody.replaceChildren(h('div.empty', 'This sluice does not show task files (its admin API predates it).'));
    }
  };

  const ctl = new AbortController();
  let timer = 0;
  async function loadDetail() {
    clearTimeout(timer);
    if (ctl.signal.aborted) return;
    if (!document.hidden) {
      try {
        showDetail(await get(taskPath(name), { signal: ctl.signal }));
        detailError.replaceChildren();
      } catch (err) {
        if (ctl.signal.aborted) return;
        detailError.replaceChildren(callout('bad', err.status === 404 ? 'No such task:' : 'Cannot read the task:', errorText(err)));
        if (err.status === 404) pipeline.replaceChildren();
      }
    }
    timer = setTimeout(loadDetail, 3000);
  }
  loadDetail();
  return () => { ctl.abort(); clearTimeout(timer); offTasks(); resize.disconnect(); };
}

function stageCard(task, s) {
  const num = () => h('dd', '—');
  const inEl = num(), outEl = num(), failedEl = num();
  const kind = s.kind || s.id.replace(/\[.*$/, '');
  const el = h('div.stage', { dataset: { stage: s.id } },
    h('div.kind', kind),
    h('div.type', s.type || '—', s.id !== kind ? h('code', s.id) : null),
    h('dl', h('dt', 'in'), inEl, h('dt', 'out'), outEl, h('dt', 'failed'), failedEl),
    h('a.tap-link', { href: `#/tap?task=${encodeURIComponent(task)}&stage=${encodeURIComponent(s.id)}` }, 'Tap this stage →'));
  return {
    el,
    update(s) {
      setText(inEl, fmtInt(s.in));
      setText(outEl, fmtInt(s.out));
      setText(failedEl, fmtInt(s.failed));
      failedEl.classList.toggle('bad', s.failed > 0);
    },
  };
}

function arrow() {
  return svg('svg', { viewBox: '0 0 24 24', fill: 'none', stroke: 'currentColor', 'stroke-width': '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round' },
    svg('path', { d: 'M5 12h14M13 6l6 6-6 6' }));
}
