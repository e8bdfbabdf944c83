// The console's shell: the hash router (#/, #/tasks/NAME, #/tap, #/dlq,
// #/playground: hash routes keep every page on the one URL the server
// serves, which also makes a path prefix behind a proxy a non-issue), the
// token dialog, the theme switch and the connection indicator.

import { setTokenAsker, token, setToken, onTokenChange } from './api.js';
import * as live from './live.js';
import { setText } from './ui.js';
import * as tasksPage from './tasks.js';
import * as taskPage from './task.js';
import * as tapPage from './tap.js';
import * as dlqPage from './dlq.js';
import * as playgroundPage from './playground.js';

const main = document.getElementById('main');
let cleanup = null;

function parse() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  const params = Object.fromEntries(new URLSearchParams(query));
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params };
}

function route() {
  const { parts, params } = parse();
  if (cleanup) { try { cleanup(); } catch { /* a page's cleanup never blocks the next */ } }
  cleanup = null;
  main.replaceChildren();
  document.getElementById('toasts').replaceChildren(); // a page's messages end with it
  let page = tasksPage;
  let nav = 'tasks';
  if (parts[0] === 'tasks' && parts[1]) { page = taskPage; params.name = parts[1]; }
  else if (parts[0] === 'tap') { page = tapPage; nav = 'tap'; }
  else if (parts[0] === 'dlq') { page = dlqPage; nav = 'dlq'; }
  else if (parts[0] === 'playground') { page = playgroundPage; nav = 'playground'; }
  for (const a of document.querySelectorAll('.topbar nav a')) a.classList.toggle('active', a.dataset.nav === nav);
  document.title = (page.title ? page.title(params) + ' · ' : '') + 'Sluice console';
  cleanup = page.render(main, params) || null;
  window.scrollTo(0, 0);
}

// ---- token dialog ----

const dialog = document.getElementById('token-dialog');
const input = document.getElementById('token-input');
const errorBox = document.getElementById('token-error');
document.getElementById('token-cancel').addEventListener('click', () => dialog.close('cancel'));

setTokenAsker((refused) => new Promise((resolve) => {
  errorBox.textContent = refused ? 'That token was refused (401): check it and try again.' : '';
  input.value = '';
  dialog.returnValue = '';
  const done = () => {
    dialog.removeEventListener('close', done);
    const t = dialog.returnValue === 'ok' ? input.value.trim() : '';
    input.value = '';
    resolve(t);
  };
  dialog.addEventListener('close', done);
  if (!dialog.open) dialog.showModal();
  input.focus();
}));

// ---- header ----

const lock = document.getElementById('lock');
const showLock = (has) => lock.classList.toggle('hidden', !has);
showLock(!!token());
onTokenChange(showLock);
lock.addEventListener('click', () => {
  setToken('');
  location.reload();
});

const liveEl = document.getElementById('live');
live.onStatus((s, err) => {
  const text = {
    connecting: 'connecting',
    on: 'live',
    polling: 'live (polling)',
    reconnecting: 'reconnecting',
    off: 'disconnected',
    locked: 'token needed',
  }[s] || s;
  setText(liveEl, text);
  liveEl.className = 'live ' + (s === 'on' ? 'on' : s === 'polling' ? 'polling' : s === 'off' || s === 'locked' ? 'off' : '');
  liveEl.title = s === 'locked' ? 'Click to enter the admin token' : err ? err.message : 'Connection to the admin API';
  liveEl.classList.toggle('clickable', s === 'locked');
});
liveEl.addEventListener('click', () => live.retry());

const themes = ['auto', 'light', 'dark'];
const themeBtn = document.getElementById('theme');
function applyTheme(t) {
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  themeBtn.textContent = 'Theme: ' + t;
  themeBtn.title = t === 'auto' ? 'Theme: follows the system' : 'Theme: ' + t;
}
let theme = localStorage.getItem('sluice.theme') || 'auto';
if (!themes.includes(theme)) theme = 'auto';
applyTheme(theme);
themeBtn.addEventListener('click', () => {
  theme = themes[(themes.indexOf(theme) + 1) % themes.length];
  localStorage.setItem('sluice.theme', theme);
  applyTheme(theme);
});

window.addEventListener('hashchange', route);
live.start();
route();
