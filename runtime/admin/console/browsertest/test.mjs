// Browser test of the Sluice web console, run by browser_test.go against a
// real `sluice run` (it sets the environment below). Headless Chromium is
// Debian's (CHROMIUM, /usr/bin/chromium), driven by playwright-core.
//
//   SLUICE_URL         the admin API's base URL, ending in /
//   SLUICE_TOKEN       its admin token
//   SLUICE_SECRET      a ${env:...} value of a task file that no page may show
//   SLUICE_SECRET_ENV  the name of that variable
//   SINK_RECEIVED_URL  GET: the JSON array of events the webhook task delivered
//   PROXY_URL          the same API behind a reverse proxy, under a path prefix
//   TASK_FILE          the file of the task "orders", which the reload scenarios change and restore
//   SCREENSHOTS        folder for the screenshots
//   WAIT_MS            longest wait for one condition
//   DOC_IMAGES         when set, a folder for the pictures of docs/operations.md
//                      (SLUICE_CONSOLE_DOC_IMAGES=$PWD/docs/images go test -run TestBrowser ./runtime/admin/console)
//
// It prints one line per scenario ("ok", "skip" with why, "FAIL" with the
// error) and "all scenarios passed" at the end when none failed; it exits 1
// otherwise. A scenario is skipped only when the admin API has no endpoint
// for it (an older API); every page is screenshotted.

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = process.env;
const BASE = env.SLUICE_URL;
const TOKEN = env.SLUICE_TOKEN;
const SECRET = env.SLUICE_SECRET;
const SECRET_ENV = env.SLUICE_SECRET_ENV || 'SECRET';
const SHOTS = env.SCREENSHOTS || 'screenshots';
const WAIT = Number(env.WAIT_MS) || 60000;
if (!BASE || !TOKEN || !SECRET) {
  console.error('set SLUICE_URL, SLUICE_TOKEN and SLUICE_SECRET (browser_test.go does)');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

class Skip extends Error {}
let failed = 0;
const skipped = [];
const leaks = [];

function assert(cond, msg) { if (!cond) throw new Error(msg); }

async function scenario(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (err) {
    if (err instanceof Skip) {
      skipped.push(name);
      console.log(`skip ${name}: ${err.message}`);
      return;
    }
    failed++;
    console.log(`FAIL ${name}: ${err.stack || err}`);
    await shot('failure-' + name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()).catch(() => {});
  }
}

// api calls the admin API from node (not the browser), for probes and
// cross-checks.
async function api(method, path, body, token = TOKEN) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctl = new AbortController();
  const res = await fetch(new URL(path, BASE), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ctl.signal });
  let text = '';
  if ((res.headers.get('Content-Type') || '').startsWith('text/event-stream')) ctl.abort();
  else text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

// needs skips the scenario when the API has no such endpoint: the mux
// answers 405 for an unknown POST path, the console's handler a 404 "no
// page or API endpoint" for an unknown GET path.
async function needs(method, path, body) {
  const r = await api(method, path, body);
  if (r.status === 405 || (r.status === 404 && r.text.includes('no page or API endpoint'))) {
    throw new Skip(`the admin API has no ${method} /${path.replace(/\?.*$/, '')} (HTTP ${r.status})`);
  }
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, colorScheme: 'light' });
context.setDefaultTimeout(WAIT);
const page = await context.newPage();
const consoleErrors = [];
page.on('pageerror', (err) => consoleErrors.push(err.message));
// Every answer the page gets is checked for the secret (event streams are
// checked through what the page shows: their bodies never end).
const bodyChecks = [];
page.on('response', (res) => {
  const ctype = res.headers()['content-type'] || '';
  if (ctype.startsWith('text/event-stream')) return;
  bodyChecks.push(res.text().then((text) => {
    if (text.includes(SECRET)) leaks.push(`${res.request().method()} ${res.url()}`);
  }, () => {}));
});

async function shot(name) {
  const path = join(SHOTS, name + '.png');
  await page.screenshot({ path, fullPage: true });
  return path;
}

async function noSecretOnPage(where) {
  const html = await page.content();
  assert(!html.includes(SECRET), `the secret ${SECRET_ENV} shows on ${where}`);
}

async function go(hash) {
  await page.goto(BASE + hash);
}

const num = (s) => Number(String(s).replace(/[^0-9.]/g, '')) || 0;

// ---- scenarios ----

await scenario('a wrong token is refused, the right one unlocks the console', async () => {
  await go('');
  await page.locator('#token-input').waitFor({ state: 'visible' });
  await shot('token');
  // Cancelled: the console says what it needs and does not nag.
  await page.click('#token-cancel');
  await page.locator('#enter-token').click();
  await page.locator('#token-input').waitFor({ state: 'visible' });
  await page.fill('#token-input', 'not-the-token-0000000000');
  await page.click('#token-ok');
  await page.locator('#token-error', { hasText: 'refused' }).waitFor();
  assert(await page.locator('#token-dialog[open]').count() === 1, 'the dialog closed after a wrong token');
  assert(await page.locator('#tasks tbody tr').count() === 0, 'tasks are shown without the right token');
  await shot('token-refused');
  const r = await api('GET', 'tasks', undefined, 'not-the-token-0000000000');
  assert(r.status === 401, `GET /tasks with a wrong token: HTTP ${r.status}, want 401`);
  await page.fill('#token-input', TOKEN);
  await page.click('#token-ok');
  await page.locator('#tasks tbody tr[data-task="orders"]').waitFor();
  assert(await page.evaluate(() => sessionStorage.getItem('sluice.admin.token')) === TOKEN, 'the token is not kept in sessionStorage');
  assert(!page.url().includes(TOKEN), 'the token shows in the URL');
});

await scenario('the task list shows live counters that move', async () => {
  await go('#/');
  const received = page.locator('tr[data-task="orders"] td:nth-child(5)');
  await received.waitFor();
  await page.waitForFunction((el) => Number(el.textContent.replace(/[^0-9]/g, '')) > 0, await received.elementHandle());
  const first = num(await received.textContent());
  // The page never reloads: the number changes by itself (the live stream).
  await page.waitForFunction(([el, n]) => Number(el.textContent.replace(/[^0-9]/g, '')) > n, [await received.elementHandle(), first]);
  const rate = num(await page.locator('tr[data-task="orders"] td:nth-child(3)').textContent());
  assert(rate > 0, 'events/s of a running task is 0');
  assert(await page.locator('tr[data-task="orders"] .pill').textContent() === 'Running', 'orders is not shown Running');
  // Let the sparklines gather a few seconds before the picture.
  await page.waitForFunction(() => [...document.querySelectorAll('tr[data-task="orders"] svg.spark polyline')]
    .some((p) => p.getAttribute('points').split(' ').length >= 8));
  await noSecretOnPage('the task list');
  await shot('tasks');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot('tasks-dark');
  await page.emulateMedia({ colorScheme: 'light' });
});

await scenario('pause and resume change the state', async () => {
  await go('#/');
  await page.click('tr[data-task="orders"] a.task-name');
  await page.locator('#task-name', { hasText: 'orders' }).waitFor();
  await page.locator('.title-row .pill[data-state="Running"]').waitFor();
  await page.click('#pause');
  await page.locator('.title-row .pill[data-state="Paused"]').waitFor();
  assert((await api('GET', 'tasks/orders')).json().state === 'Paused', 'the API does not say Paused after the button');
  await shot('task-paused');
  await page.click('#resume');
  await page.locator('.title-row .pill[data-state="Running"]').waitFor();
  assert((await api('GET', 'tasks/orders')).json().state === 'Running', 'the API does not say Running after Resume');
  await noSecretOnPage('the task page');
});

await scenario('rewinding a source that cannot says why, and the task runs on', async () => {
  await needs('POST', 'tasks/nope/rewind', { to: 'earliest' });
  await go('#/tasks/orders');
  await page.locator('.title-row .pill[data-state="Running"]').waitFor();
  await page.selectOption('#rewind-to', 'earliest');
  await page.click('#rewind');
  const warn = page.locator('.callout.warn', { hasText: 'Rewind refused' });
  await warn.waitFor();
  assert(/generate|cannot/i.test(await warn.textContent()), `the refusal does not say why: ${await warn.textContent()}`);
  assert((await api('GET', 'tasks/orders')).json().state === 'Running', 'orders stopped after a refused rewind');
  await shot('task-rewind-refused');
});

await scenario('the task page shows stages and the task file with the secret redacted', async () => {
  await go('#/tasks/orders');
  await page.locator('.title-row .pill[data-state="Running"]').waitFor();
  await page.waitForTimeout(1500); // a picture, not synchronisation: let the chart get one more tick
  await shot('task');
  const d = (await api('GET', 'tasks/webhook')).json();
  if (!Array.isArray(d.stages) && typeof d.toml !== 'string') throw new Skip('GET /tasks/{name} has no stages nor toml');
  await go('#/tasks/webhook');
  if (Array.isArray(d.stages)) {
    await page.locator('.pipeline .stage[data-stage="sink"]').waitFor();
    assert(await page.locator('.pipeline .stage').count() === d.stages.length, 'not one card per stage');
  }
  if (typeof d.toml === 'string') {
    await page.locator('#config pre.code').waitFor();
    const text = await page.locator('#config pre.code').textContent();
    assert(text.includes('***'), 'the task file shows no *** where the secret was');
    assert(text.includes('type = "http"'), 'the task file is not shown');
  }
  await noSecretOnPage('the webhook task page');
  await shot('task-webhook');
});

await scenario('the tap shows events of a running task', async () => {
  await needs('GET', 'tasks/orders/tap?stage=sink&limit=1');
  await go('#/tap?task=orders&stage=sink');
  await page.locator('#tap-records .record').nth(2).waitFor();
  const first = await page.locator('#tap-records .record pre').first().textContent();
  assert(/"order"\s*:/.test(first) && /"region"\s*:\s*"eu-/.test(first), `a sink record is not the transformed event: ${first}`);
  await noSecretOnPage('the tap');
  await shot('tap');
  await page.click('#tap-start'); // Stop
  await page.locator('#tap-start', { hasText: 'Start' }).waitFor();
});

await scenario('a dead letter is replayed from the browser and arrives at the sink', async () => {
  await needs('GET', 'tasks/webhook/dlq?offset=0&limit=1');
  await go('#/dlq?task=webhook');
  const row = page.locator('#dlq tbody tr.link').first();
  await row.waitFor();
  const preview = await row.locator('td.event-cell code').textContent();
  let id = null;
  try { id = JSON.parse(preview).id; } catch { /* compared whole below */ }
  await row.locator('input[type="checkbox"]').check();
  await page.locator('#dlq-replay', { hasText: 'Replay selected (1)' }).waitFor();
  await noSecretOnPage('the dead-letter browser');
  await shot('dlq');
  await page.click('#dlq-replay');
  await page.locator('.callout.ok', { hasText: 'Replayed' }).waitFor();
  const deadline = Date.now() + WAIT;
  for (;;) {
    const got = await (await fetch(env.SINK_RECEIVED_URL)).json();
    if (got.some((e) => (id ? e && e.id === id : JSON.stringify(e) === JSON.stringify(JSON.parse(preview))))) break;
    assert(Date.now() < deadline, `the replayed dead letter ${id || preview} never reached the sink`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await shot('dlq-replayed');
});

const EVENT = JSON.stringify({ specversion: '1.0', id: 'pg-1', source: 'test', type: 'order', data: { order_id: 'A-7', region: 'eu-west-1', amount: 120 } }, null, 2);

await scenario('the playground shows the output', async () => {
  await needs('POST', 'playground', { event: '{}', config: '' });
  await go('#/playground');
  await page.fill('#pg-event', EVENT);
  await page.fill('#pg-config', `[filter.pattern.data]
region = [{ prefix = "eu-" }]

[[transform]]
type = "template"
variables = { order = "$.data.order_id", amount = "$.data.amount" }
template = '{"order":"\${order}","amount":\${amount}}'
`);
  await page.click('#pg-run');
  const out = page.locator('#pg-result .pg-output').first();
  await out.waitFor();
  const text = await out.textContent();
  assert(/"order"\s*:\s*"A-7"/.test(text) && /"amount"\s*:\s*120/.test(text), `playground output: ${text}`);
  await shot('playground');
});

await scenario('the playground shows an error at its line and column', async () => {
  await needs('POST', 'playground', { event: '{}', config: '' });
  await go('#/playground');
  await page.fill('#pg-event', EVENT);
  await page.fill('#pg-config', `[[transform]]
type = "template"
template = = "broken"
`);
  await page.click('#pg-run');
  const err = page.locator('#pg-error');
  await err.waitFor();
  const line = await err.getAttribute('data-line');
  assert(line === '3', `the error is at line ${line || '(none)'}, want 3: ${await err.textContent()}`);
  assert(Number(await err.getAttribute('data-column')) > 0, 'the error has no column');
  await page.locator('#pg-excerpt .row.hit').waitFor();
  assert((await page.locator('#pg-excerpt .row.hit').textContent()).includes('template = = "broken"'), 'the excerpt does not show the line');
  await shot('playground-error');
});

await scenario('the playground never shows a secret from the environment', async () => {
  await needs('POST', 'playground', { event: '{}', config: '' });
  await go('#/playground');
  await page.fill('#pg-event', EVENT);
  await page.fill('#pg-config', `[[transform]]
type = "template"
template = '{"leak":"\${env:${SECRET_ENV}}"}'
`);
  await page.click('#pg-run');
  await page.locator('#pg-result .pg-output, #pg-result .callout').first().waitFor();
  await noSecretOnPage('the playground');
});

await scenario('a reload with an invalid task file shows its problems and changes nothing', async () => {
  // No Content-Type: 415 when POST /reload exists, 405 when it does not
  // (and nothing is reloaded either way).
  const probe = await api('POST', 'reload');
  if (probe.status === 405) throw new Skip('the admin API has no POST /reload');
  if (!env.TASK_FILE) throw new Skip('no TASK_FILE');
  const good = readFileSync(env.TASK_FILE, 'utf8');
  await go('#/');
  await page.locator('tr[data-task="orders"] .pill[data-state="Running"]').waitFor();
  try {
    writeFileSync(env.TASK_FILE, good.replace('rate = 20', 'rate = "fast"'));
    await page.click('#reload');
    const refused = page.locator('#reload-result .callout.bad');
    await refused.waitFor();
    const text = await refused.textContent();
    assert(/orders\.toml:\d+:\d+/.test(text), `the refusal names no FILE:LINE:COL: ${text}`);
    assert((await api('GET', 'tasks/orders')).json().state === 'Running', 'orders stopped after a refused reload');
    await shot('reload-refused');
  } finally {
    writeFileSync(env.TASK_FILE, good);
  }
  await page.click('#reload');
  await page.locator('#reload-result .callout.ok', { hasText: 'unchanged' }).waitFor();
  await page.locator('tr[data-task="orders"] .pill[data-state="Running"]').waitFor();
});

await scenario('a tap says when a reload ends the run it watches', async () => {
  const probe = await api('POST', 'reload');
  if (probe.status === 405) throw new Skip('the admin API has no POST /reload');
  if (!env.TASK_FILE) throw new Skip('no TASK_FILE');
  const good = readFileSync(env.TASK_FILE, 'utf8');
  await go('#/tap?task=orders&stage=sink&limit=10000');
  await page.locator('#tap-records .record').first().waitFor();
  try {
    // A changed file: the reload stops this run of orders and starts another.
    writeFileSync(env.TASK_FILE, good.replace('rate = 20', 'rate = 21'));
    const r = await api('POST', 'reload', {});
    assert(r.status === 200 && (r.json().restarted || []).includes('orders'), `the reload did not restart orders: ${r.status} ${r.text}`);
    await page.locator('.callout', { hasText: "the task's run ended" }).waitFor();
    await page.locator('#tap-start', { hasText: 'Start' }).waitFor();
    await shot('tap-ended');
  } finally {
    writeFileSync(env.TASK_FILE, good);
    await api('POST', 'reload', {});
  }
  await go('#/');
  await page.locator('tr[data-task="orders"] .pill[data-state="Running"]').waitFor();
});

await scenario('the console works behind a reverse proxy under a path prefix', async () => {
  if (!env.PROXY_URL) throw new Skip('no PROXY_URL');
  const prefix = new URL(env.PROXY_URL).pathname;
  const outside = [];
  const track = (req) => { const u = new URL(req.url()); if (!u.pathname.startsWith(prefix)) outside.push(u.pathname); };
  page.on('request', track);
  try {
    await page.goto(env.PROXY_URL);
    // Another origin: its own sessionStorage, so the token is asked again.
    await page.locator('#token-input').waitFor({ state: 'visible' });
    await page.fill('#token-input', TOKEN);
    await page.click('#token-ok');
    const btn = page.locator('tr[data-task="orders"] button');
    await btn.waitFor();
    await page.locator('#live.on').waitFor(); // the event stream passes the proxy
    await btn.click(); // Pause: a POST through the proxy
    await page.locator('tr[data-task="orders"] .pill[data-state="Paused"]').waitFor();
    await btn.click(); // Resume
    await page.locator('tr[data-task="orders"] .pill[data-state="Running"]').waitFor();
    await page.goto(env.PROXY_URL + '#/tasks/orders');
    await page.locator('#config pre.code').waitFor();
    assert(outside.length === 0, `requests left the prefix ${prefix}: ${[...new Set(outside)].join(', ')}`);
  } finally {
    page.off('request', track);
  }
});

await scenario('no page and no answer shows the secret', async () => {
  const pages = {
    '#/': 'tr[data-task="webhook"] .pill',
    '#/tasks/webhook': '.title-row .pill[data-state="Running"]',
    '#/tap?task=webhook': '#tap-stage option',
    '#/dlq?task=webhook': '#dlq-task option',
    '#/playground': '#pg-run',
  };
  for (const [hash, ready] of Object.entries(pages)) {
    await go(hash);
    await page.locator(ready).first().waitFor({ state: 'attached' });
    await noSecretOnPage(hash);
  }
  await Promise.all(bodyChecks);
  assert(leaks.length === 0, `the secret was in the answers to: ${leaks.join(', ')}`);
  assert(consoleErrors.length === 0, `script errors on the pages: ${consoleErrors.join('; ')}`);
});

if (env.DOC_IMAGES) {
  await scenario('pictures for the documentation', async () => {
    mkdirSync(env.DOC_IMAGES, { recursive: true });
    await page.setViewportSize({ width: 1200, height: 440 });
    await go('#/');
    await page.locator('tr[data-task="orders"] .pill[data-state="Running"]').waitFor();
    await page.waitForTimeout(1500); // a picture, not synchronisation: one more tick of the sparklines
    await page.screenshot({ path: join(env.DOC_IMAGES, 'console-tasks.png') });
    await page.setViewportSize({ width: 1200, height: 760 });
    await go('#/tasks/webhook');
    await page.locator('.pipeline .stage[data-stage="sink"] dd').first().waitFor();
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(env.DOC_IMAGES, 'console-task.png') });
    await page.setViewportSize({ width: 1200, height: 560 });
    await go('#/playground');
    await page.fill('#pg-config', `[filter.pattern.data]
region = [{ prefix = "eu-" }]

[[transform]]
type = "template"
template = = '{"order":"\${order}"}'
`);
    await page.click('#pg-run');
    await page.locator('#pg-excerpt').waitFor();
    await page.screenshot({ path: join(env.DOC_IMAGES, 'console-playground.png') });
  });
}

await browser.close();
console.log(`screenshots: ${SHOTS}`);
if (failed) {
  console.log(`${failed} scenario(s) failed`);
  process.exit(1);
}
console.log(`all scenarios passed${skipped.length ? ` (${skipped.length} skipped: ${skipped.join('; ')})` : ''}`);
