// Staff console: the signed-in session, calls to the HTTP API, and small
// DOM helpers shared by the console's views.
import { t, getLang } from './i18n.js';

// ApiError is a failed call: the problem+json code and detail, or the
// network failure.
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || String(status));
    this.status = status;
    this.code = code || '';
    this.detail = detail || '';
  }
}

// The access token lives in memory only; the refresh token is an
// HttpOnly cookie the scripts never see. A flag in sessionStorage says a
// refresh is worth trying after a reload.
const SIGNED_IN = 'concord.console.signedIn';
let access = '';
let account = null;
let refreshTimer = 0;
let refreshing = null;
const signedOutListeners = new Set();

export function currentAccount() { return account; }
export function onSignedOut(fn) { signedOutListeners.add(fn); }

function setFlag(on) {
  try {
    if (on) sessionStorage.setItem(SIGNED_IN, '1'); else sessionStorage.removeItem(SIGNED_IN);
  } catch (_) { /* storage may be blocked */ }
}

function hadSession() {
  try { return sessionStorage.getItem(SIGNED_IN) === '1'; } catch (_) { return false; }
}

// adopt takes a login answer: token, expiry, account. It refreshes the
// token a minute before it expires.
function adopt(ans) {
  access = ans.accessToken;
  account = ans.account;
  setFlag(true);
  clearTimeout(refreshTimer);
  const ms = Math.max(10, (Number(ans.expiresIn) || 900) - 60) * 1000;
  refreshTimer = setTimeout(() => { refresh().catch(() => expire()); }, ms);
}

function expire() {
  access = '';
  account = null;
  setFlag(false);
  clearTimeout(refreshTimer);
  for (const fn of signedOutListeners) fn();
}

async function readProblem(resp) {
  let code = '';
  let detail = '';
  try {
    const p = await resp.json();
    code = p.code || '';
    detail = p.detail || p.title || '';
  } catch (_) { /* not JSON */ }
  return new ApiError(resp.status, code, detail);
}

async function raw(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (_) {
    throw new ApiError(0, 'network', t('cs.err.network'));
  }
  return resp;
}

export async function login(name, password) {
  const resp = await raw('POST', '/api/v1/auth/login', { login: name, password });
  if (!resp.ok) throw await readProblem(resp);
  adopt(await resp.json());
  return account;
}

// refresh trades the refresh cookie for a new access token; concurrent
// callers share one exchange (a refresh token is spent once).
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const resp = await raw('POST', '/api/v1/auth/refresh');
      if (!resp.ok) throw await readProblem(resp);
      adopt(await resp.json());
      return account;
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

// resume signs in again after a reload, if this tab was signed in.
export async function resume() {
  if (!hadSession()) return null;
  try {
    return await refresh();
  } catch (_) {
    setFlag(false);
    return null;
  }
}

export async function logout() {
  const token = access;
  expire();
  try { await raw('POST', '/api/v1/auth/logout', undefined, token); } catch (_) { /* signed out locally anyway */ }
}

// api calls the API with the access token, refreshing it once when the
// server says it expired. It returns the decoded JSON (null for 204).
export async function api(method, path, body) {
  let resp = await raw(method, path, body, access);
  if (resp.status === 401 && hadSession()) {
    try {
      await refresh();
    } catch (_) {
      expire();
      throw new ApiError(401, 'unauthorized', t('cs.err.expired'));
    }
    resp = await raw(method, path, body, access);
  }
  if (!resp.ok) throw await readProblem(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

// download fetches an export with the token and saves it as a file.
export async function download(path, filename) {
  let resp = await raw('GET', path, undefined, access);
  if (resp.status === 401 && hadSession()) {
    await refresh();
    resp = await raw('GET', path, undefined, access);
  }
  if (!resp.ok) throw await readProblem(resp);
  const url = URL.createObjectURL(await resp.blob());
  const a = el('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// errorText is what the console shows of a failure.
export function errorText(err) {
  if (err instanceof ApiError) {
    if (err.status === 0) return err.detail;
    const detail = err.detail || t('cs.err.generic');
    return err.code ? `${detail} (${err.code})` : detail;
  }
  return t('cs.err.generic');
}

// el builds an element: attrs are attributes ("class", "for", data-*,
// aria-*) or, for on*, listeners; children are nodes or strings.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// field is a labelled form control in a .field block.
export function field(id, label, control, hint) {
  control.id = id;
  const parts = [el('label', { for: id }, label), control];
  if (hint) {
    const h = el('p', { class: 'hint', id: id + '-hint' }, hint);
    control.setAttribute('aria-describedby', h.id);
    parts.push(h);
  }
  return el('div', { class: 'field' }, parts);
}

// heading is a view's h1, focusable so navigation can move focus to it.
export function heading(id, text) {
  return el('h1', { id, tabindex: '-1' }, text);
}

const locale = () => (getLang() === 'zh' ? 'zh-CN' : 'en');

export function fmtDateTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return d.toLocaleString(locale(), { dateStyle: 'medium', timeStyle: 'short' });
}

export function fmtMoney(cents) {
  return new Intl.NumberFormat(locale(), { style: 'currency', currency: 'CNY' }).format((Number(cents) || 0) / 100);
}

export function fmtNumber(n, digits) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits === undefined ? 1 : digits }).format(n);
}

export function fmtPercent(r) {
  return new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 0 }).format(r);
}

// fmtDuration says how long seconds is: "3 d 4 h", "12 min".
export function fmtDuration(secs) {
  const s = Math.max(0, Math.round(secs));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return t('cs.dur.dh', { d, h });
  if (h > 0) return t('cs.dur.hm', { h, m });
  if (m > 0) return t('cs.dur.m', { m });
  return t('cs.dur.s', { s });
}

// label translates a code (a state, a category) or shows it as it is.
export function label(prefix, code) {
  const key = prefix + '.' + code;
  const s = t(key);
  return s === key ? code : s;
}
