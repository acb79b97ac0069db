// Staff console: sign-in, then the views of the account's role, chosen
// by the URL fragment (#queue, #case/ID, #stats, #inbox, #dashboard).
import { t, applyDom, wireSwitch, onLangChange } from './i18n.js';
import { login, logout, resume, currentAccount, onSignedOut, errorText } from './console-api.js';
import { renderQueue, renderCase, stopQueue } from './console-queue.js';
import { renderStats } from './console-stats.js';
import { renderInbox, renderDashboard } from './console-merchant.js';

const $ = (id) => document.getElementById(id);

const VIEWS = ['login', 'queue', 'case', 'stats', 'inbox', 'dashboard'];

// Which views each role may open; the first is its home.
const ROLE_VIEWS = {
  mediator: ['queue', 'case'],
  institution_admin: ['queue', 'case', 'stats'],
  platform_admin: ['queue', 'case', 'stats'],
  merchant_agent: ['inbox', 'dashboard'],
};

// ui is what the views share: alerts, status messages, navigation.
export const ui = {
  alert(msg) {
    $('cs-alert-text').textContent = msg;
    $('cs-alert').hidden = false;
  },
  clearAlert() { $('cs-alert').hidden = true; },
  error(err) { ui.alert(errorText(err)); },
  announce(msg) {
    const s = $('cs-status');
    s.textContent = '';
    setTimeout(() => { s.textContent = msg; }, 50);
  },
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  refresh() { route(); },
};

function showView(name) {
  for (const v of VIEWS) $('view-' + v).hidden = v !== name;
  document.body.dataset.view = name;
}

// focusHeading moves focus to the new view's heading, so that a screen
// reader announces where the user is.
function focusHeading(name) {
  const h = $('view-' + name).querySelector('h1');
  if (h) h.focus();
}

function showSignedIn(acct) {
  const who = $('cs-who');
  who.textContent = `${acct.name} · ${t('cs.role.' + acct.role)}`;
  who.hidden = false;
  $('cs-signout').hidden = false;
  const nav = $('cs-nav');
  nav.hidden = false;
  for (const li of nav.querySelectorAll('li')) li.hidden = !li.dataset.roles.split(' ').includes(acct.role);
}

function showSignedOut() {
  $('cs-who').hidden = true;
  $('cs-signout').hidden = true;
  $('cs-nav').hidden = true;
}

let rendering = 0;

// route renders the view the fragment names.
async function route() {
  const acct = currentAccount();
  stopQueue();
  if (!acct) {
    showSignedOut();
    showView('login');
    focusHeading('login');
    return;
  }
  showSignedIn(acct);
  const allowed = ROLE_VIEWS[acct.role] || [];
  let [name, arg] = location.hash.replace(/^#/, '').split('/');
  if (!allowed.includes(name)) name = allowed[0];
  for (const a of $('cs-nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === '#' + name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!name) {
    ui.alert(t('cs.err.role'));
    return;
  }
  const mine = ++rendering;
  const section = $('view-' + name);
  showView(name);
  section.setAttribute('aria-busy', 'true');
  try {
    switch (name) {
      case 'queue': await renderQueue(section, acct, ui); break;
      case 'case': await renderCase(section, acct, ui, decodeURIComponent(arg || '')); break;
      case 'stats': await renderStats(section, acct, ui); break;
      case 'inbox': await renderInbox(section, acct, ui); break;
      case 'dashboard': await renderDashboard(section, acct, ui); break;
    }
  } catch (err) {
    ui.error(err);
  } finally {
    section.removeAttribute('aria-busy');
  }
  if (mine === rendering) focusHeading(name);
}

function wireLogin() {
  const form = $('login-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = $('login-name');
    const pw = $('login-password');
    const out = $('login-error');
    out.textContent = '';
    if (!name.value.trim() || !pw.value) {
      out.textContent = t('cs.login.missing');
      (name.value.trim() ? pw : name).focus();
      return;
    }
    $('login-submit').disabled = true;
    try {
      await login(name.value.trim(), pw.value);
      pw.value = '';
      ui.clearAlert();
      route();
    } catch (err) {
      out.textContent = errorText(err);
      pw.focus();
    } finally {
      $('login-submit').disabled = false;
    }
  });
}

async function start() {
  applyDom(document);
  wireSwitch($('lang-switch'));
  onLangChange(() => { if (currentAccount()) route(); });
  $('cs-alert-close').addEventListener('click', () => ui.clearAlert());
  $('cs-signout').addEventListener('click', async () => {
    await logout();
    location.hash = '';
    ui.announce(t('cs.signedOut'));
  });
  onSignedOut(() => route());
  window.addEventListener('hashchange', () => { ui.clearAlert(); route(); });
  wireLogin();
  await resume();
  route();
}

start();
