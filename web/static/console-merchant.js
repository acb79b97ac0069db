// Staff console: the merchant's reconciliation inbox and its dashboard
// (its own complaints only; the server scopes both to the agent's
// enterprise).
import { t } from './i18n.js';
import { api, el, field, heading, fmtDateTime, fmtMoney, fmtDuration, fmtNumber, fmtPercent, label } from './console-api.js';
import { barChart } from './charts.js';

let countdown = 0;

function enterprisePath(acct) {
  return '/api/v1/odr/enterprises/' + encodeURIComponent(acct.enterpriseCode || '');
}

// left says how long until due: "2 d 3 h left", or that it passed.
function left(dueAt) {
  const secs = (new Date(dueAt).getTime() - Date.now()) / 1000;
  return secs > 0 ? t('cs.inbox.left', { time: fmtDuration(secs) }) : t('cs.inbox.overdue');
}

// yuan parses an amount typed in yuan ("128", "128.50") into cents.
function yuan(s) {
  const v = String(s).trim().replace(/[,，\s]/g, '');
  if (!/^\d+(\.\d{1,2})?$/.test(v)) return null;
  return Math.round(Number(v) * 100);
}

export async function renderInbox(section, acct, ui) {
  const ans = await api('GET', enterprisePath(acct) + '/inbox');
  const items = ans.items || [];
  clearInterval(countdown);
  section.replaceChildren(
    heading('inbox-heading', t('cs.inbox.heading')),
    el('p', { class: 'hint' }, t('cs.inbox.intro')),
    items.length
      ? el('ul', { class: 'cs-list', id: 'inbox-list' }, items.map((it) => el('li', { class: 'cs-item panel cs-complaint', 'data-case': it.caseId }, complaint(it, ui))))
      : el('p', { class: 'cs-empty' }, t('cs.inbox.empty')),
  );
  // The countdowns tick while the inbox is shown.
  countdown = setInterval(() => {
    if (section.hidden) { clearInterval(countdown); return; }
    for (const c of section.querySelectorAll('[data-due]')) c.textContent = left(c.dataset.due);
  }, 30000);
}

function complaint(it, ui) {
  const r = it.reconciliation || {};
  const id = it.caseId;
  const pending = (r.offers || []).filter((o) => o.status === 'pending').pop();
  const late = r.dueAt && new Date(r.dueAt).getTime() < Date.now();
  const formBox = el('div', { class: 'cs-action-form' });
  const act = async (body, done) => {
    try {
      await api('POST', `/api/v1/odr/cases/${encodeURIComponent(id)}/actions`, body);
      ui.announce(done);
      ui.refresh();
    } catch (err) { ui.error(err); }
  };
  const show = (name) => {
    formBox.replaceChildren(actionForm(name, id, it, act, () => formBox.replaceChildren()));
    const first = formBox.querySelector('input, textarea, select');
    if (first) first.focus();
  };
  const btn = (name, cls) => el('button', { type: 'button', class: 'btn small ' + (cls || ''), 'data-action': name,
    'aria-controls': 'form-' + id, onclick: () => show(name) }, t('cs.inbox.act.' + name));
  formBox.id = 'form-' + id;
  return [
    el('h2', { class: 'cs-item-title' }, it.number, ' · ', label('cs.cat', it.category)),
    el('p', { class: 'cs-meta' }, t('cs.inbox.from', { name: it.applicantName }), ' · ', fmtMoney(it.amountCents), ' · ',
      t('cs.inbox.received', { at: fmtDateTime(it.submittedAt) })),
    it.claims ? el('p', { class: 'cs-pre' }, it.claims) : null,
    el('p', { class: 'cs-meta' },
      el('span', { class: 'cs-status-tag', 'data-status': r.status }, label('cs.rec', r.status)), ' · ',
      el('strong', { class: late ? 'cs-late' : '', 'data-due': r.dueAt }, r.dueAt ? left(r.dueAt) : ''),
      r.dueDate ? ' ' + t('cs.inbox.dueDate', { date: r.dueDate }) : ''),
    pending ? el('p', { class: 'cs-offer-line' }, t('cs.inbox.pendingOffer', { amount: fmtMoney(pending.amountCents), terms: pending.terms })) : null,
    el('div', { class: 'cs-actions' }, btn('accept', 'primary'), btn('counter'), btn('video'), btn('decline', 'danger-outline')),
    formBox,
  ];
}

// actionForm is the small form of one merchant action.
function actionForm(name, id, it, act, close) {
  const err = el('p', { class: 'form-error', role: 'alert' });
  const fid = (f) => `${name}-${f}-${id}`;
  const cancel = el('button', { type: 'button', class: 'btn small', onclick: close }, t('cs.cancel'));
  let body = [];
  let submit;
  if (name === 'accept') {
    const how = el('textarea', { rows: 2 });
    body = [field(fid('terms'), t('cs.inbox.howPerform'), how, t('cs.inbox.acceptHint'))];
    submit = () => act({ action: 'accept', terms: how.value.trim() }, t('cs.inbox.done.accept'));
  } else if (name === 'counter') {
    const amount = el('input', { type: 'text', inputmode: 'decimal', autocomplete: 'off', required: true, 'aria-required': 'true' });
    const terms = el('textarea', { rows: 3, required: true, 'aria-required': 'true' });
    const by = el('input', { type: 'date' });
    body = [field(fid('amount'), t('cs.inbox.amount'), amount, t('cs.inbox.amountHint')),
      field(fid('terms'), t('cs.inbox.terms'), terms),
      field(fid('by'), t('cs.inbox.performBy'), by)];
    submit = () => {
      const cents = yuan(amount.value);
      if (cents === null) { err.textContent = t('cs.inbox.badAmount'); amount.focus(); return; }
      if (!terms.value.trim()) { err.textContent = t('cs.inbox.termsRequired'); terms.focus(); return; }
      act({ action: 'counter', amountCents: cents, terms: terms.value.trim(), performBy: by.value || undefined }, t('cs.inbox.done.counter'));
    };
  } else if (name === 'decline') {
    const reason = el('textarea', { rows: 3, required: true, 'aria-required': 'true' });
    body = [field(fid('reason'), t('cs.inbox.declineReason'), reason, t('cs.inbox.declineHint'))];
    submit = () => {
      if (!reason.value.trim()) { err.textContent = t('cs.inbox.reasonRequired'); reason.focus(); return; }
      act({ action: 'decline', reason: reason.value.trim() }, t('cs.inbox.done.decline'));
    };
  } else {
    const when = el('input', { type: 'datetime-local' });
    body = [field(fid('when'), t('cs.inbox.videoWhen'), when, t('cs.inbox.videoHint'))];
    submit = () => act({ action: 'video', scheduledAt: when.value ? new Date(when.value).toISOString() : undefined }, t('cs.inbox.done.video'));
  }
  return el('form', { class: 'cs-form', 'data-form': name, onsubmit: (ev) => { ev.preventDefault(); err.textContent = ''; submit(); } },
    el('h3', {}, t('cs.inbox.act.' + name)), body, err,
    el('div', { class: 'cs-actions' }, el('button', { type: 'submit', class: 'btn primary small', 'data-submit': name }, t('cs.inbox.submit.' + name)), cancel));
}

export async function renderDashboard(section, acct, ui) {
  const d = await api('GET', enterprisePath(acct) + '/dashboard');
  const labels = {
    suppressed: t('cs.stats.suppressed'), suppressedShort: '<5', empty: t('cs.stats.noData'), emptyShort: '–',
    none: t('cs.stats.noRows'), table: t('cs.stats.showData'), item: t('cs.stats.item'), value: t('cs.stats.value'),
  };
  const count = (n) => ({ state: 'value', value: n, display: fmtNumber(n, 0) });
  const hours = (h) => (h === null || h === undefined ? '–' : fmtDuration(h * 3600));
  const fig = (id, name, value) => el('div', { class: 'cs-figure', id }, el('dt', {}, name), el('dd', {}, value));
  section.replaceChildren(
    heading('dashboard-heading', t('cs.dash.heading')),
    el('p', { class: 'hint' }, t('cs.dash.period', { from: d.from, to: d.to })),
    el('dl', { class: 'cs-figures' },
      fig('dash-total', t('cs.dash.total'), fmtNumber(d.total, 0)),
      fig('dash-open', t('cs.dash.open'), fmtNumber(d.open, 0)),
      fig('dash-settled', t('cs.dash.settled'), fmtNumber(d.settled, 0)),
      fig('dash-escalated', t('cs.dash.escalated'), fmtNumber(d.escalated, 0)),
      fig('dash-overdue', t('cs.dash.overdue'), fmtNumber(d.overdue, 0)),
      fig('dash-rate', t('cs.stats.recRate'), d.reconciliationRate === null ? '–' : fmtPercent(d.reconciliationRate)),
      fig('dash-resolve', t('cs.dash.medianResolve'), hours(d.resolve && d.resolve.medianHours))),
    el('div', { class: 'cs-charts' },
      barChart({ id: 'chart-dash-category', title: t('cs.dash.byCategory'), labels,
        items: (d.byCategory || []).map((g) => ({ label: label('cs.cat', g.key), ...count(g.total) })) }),
      barChart({ id: 'chart-dash-outcome', title: t('cs.dash.byOutcome'), labels,
        items: (d.byOutcome || []).map((g) => ({ label: label('cs.recout', g.key), ...count(g.count) })) }),
      barChart({ id: 'chart-dash-resolve', title: t('cs.dash.resolve'), columns: true, labels,
        items: (d.resolveHistogram || []).map((g) => ({ label: g.key, ...count(g.count) })) })),
  );
}
