// The kiosk of a community station's remote mediation room: signed in
// once as the device; the station's staff start a session for a walk-in
// visitor, the page shows the visitor's place in the queue and the
// expected wait, and "Join now" opens the room on the kiosk as the
// visitor's device. Large type, huge buttons, Chinese by default.
import { t, applyDom, wireSwitch, onLangChange } from './i18n.js';
import { ApiError, api, login, refresh, onSignedOut } from './console-api.js';

const CATEGORIES = ['e-commerce', 'online-payment', 'internet-service', 'product-quality', 'service-quality', 'consumer-finance', 'other'];
const POLL_MS = 5000;

let pollTimer = 0;
let sessions = [];

const $ = (id) => document.getElementById(id);

function show(view) {
  for (const id of ['kiosk-login', 'kiosk-home', 'kiosk-form-view']) $(id).hidden = id !== view;
}

function alertText(msg) { $('kiosk-alert').textContent = msg || ''; }

// call is the console's API client (the access token in memory, renewed
// before it expires from the refresh cookie, which keeps the device signed
// in across restarts) with the kiosk's own wording for a lost network.
async function call(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (e) {
    if (e.code === 'network') throw new ApiError(0, 'network', t('kiosk.err.network'));
    throw e;
  }
}

function signedOut() {
  clearTimeout(pollTimer);
  show('kiosk-login');
}

function fmtWait(seconds) {
  const m = Math.max(1, Math.round(seconds / 60));
  return t('kiosk.wait', { m });
}

function render() {
  const list = $('kiosk-list');
  list.textContent = '';
  for (const s of sessions) {
    const li = document.createElement('li');
    li.textContent = s.caseNumber + ' · ' + s.visitor + ' · ' + t('kiosk.status.' + (s.ticket ? s.ticket.status : 'none'));
    list.append(li);
  }
  const cur = sessions.length ? sessions[sessions.length - 1] : null;
  const box = $('kiosk-current');
  box.hidden = !cur;
  if (!cur) return;
  const tk = cur.ticket;
  $('kiosk-visitor').textContent = t('kiosk.visitor', { name: cur.visitor });
  const waiting = tk && (tk.status === 'waiting' || tk.status === 'offered');
  $('kiosk-place').textContent = waiting ? t('kiosk.place', { n: tk.position }) : t('kiosk.status.' + (tk ? tk.status : 'none'));
  $('kiosk-wait').textContent = waiting ? fmtWait(tk.expectedWaitSeconds) : '';
  $('kiosk-join').disabled = !(tk && tk.status === 'accepted');
}

async function poll() {
  clearTimeout(pollTimer);
  try {
    const ans = await call('GET', '/api/v1/kiosk/sessions');
    sessions = ans.items || [];
    render();
    alertText('');
  } catch (e) {
    if (e.status === 401) { signedOut(); return; }
    alertText(e.message);
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

function home() {
  show('kiosk-home');
  poll();
}

function fillCategories() {
  const sel = $('kiosk-category');
  const keep = sel.value;
  sel.textContent = '';
  for (const c of CATEGORIES) {
    const o = document.createElement('option');
    o.value = c;
    o.textContent = t('kiosk.cat.' + c);
    sel.append(o);
  }
  if (keep) sel.value = keep;
}

function wire() {
  $('kiosk-login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await login($('kiosk-login-name').value, $('kiosk-login-password').value);
      $('kiosk-login-password').value = '';
      alertText('');
      home();
    } catch (e) {
      alertText(e.message || t('kiosk.err.login'));
    }
  });
  $('kiosk-new').addEventListener('click', () => {
    $('kiosk-form').reset();
    $('kiosk-form-error').textContent = '';
    show('kiosk-form-view');
    $('kiosk-name').focus();
  });
  $('kiosk-cancel').addEventListener('click', home);
  $('kiosk-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {
      name: $('kiosk-name').value.trim(),
      category: $('kiosk-category').value,
      description: $('kiosk-description').value.trim(),
    };
    const phone = $('kiosk-phone').value.trim();
    if (phone) body.phone = phone;
    const respondent = $('kiosk-respondent').value.trim();
    if (respondent) body.respondentName = respondent;
    if (!body.name || !body.description) {
      $('kiosk-form-error').textContent = t('kiosk.err.required');
      return;
    }
    try {
      await call('POST', '/api/v1/kiosk/sessions', body);
      home();
    } catch (e) {
      $('kiosk-form-error').textContent = e.message;
    }
  });
  $('kiosk-join').addEventListener('click', async () => {
    const cur = sessions[sessions.length - 1];
    if (!cur) return;
    try {
      const ans = await call('POST', '/api/v1/kiosk/sessions/' + encodeURIComponent(cur.caseId) + '/join', {});
      location.assign(ans.url);
    } catch (e) {
      alertText(e.message);
    }
  });
}

async function start() {
  applyDom(document);
  wireSwitch($('lang-switch'));
  fillCategories();
  onLangChange(() => { fillCategories(); render(); });
  wire();
  onSignedOut(signedOut);
  try {
    await refresh();
    home();
  } catch (_) {
    show('kiosk-login');
  }
}

start();
