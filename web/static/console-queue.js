// Staff console: the mediator's queue (today's sessions, instant
// requests, overdue cases, open cases) and the case page.
import { t } from './i18n.js';
import { api, el, field, heading, fmtDateTime, fmtMoney, fmtDuration, label } from './console-api.js';

// The queue's timers: the presence heartbeat and the offer poll.
let timers = [];
export function stopQueue() {
  for (const id of timers) clearInterval(id);
  timers = [];
}

// The mediator record the account acts as is remembered per tab.
const MEDIATOR_KEY = 'concord.console.mediator';
const DUTY_KEY = 'concord.console.onDuty';

function store(key, v) {
  try {
    if (v === null) sessionStorage.removeItem(key); else sessionStorage.setItem(key, v);
  } catch (_) { /* ignore */ }
}
function stored(key) {
  try { return sessionStorage.getItem(key); } catch (_) { return null; }
}

const ACTIVE = ['dispatched', 'respondent_contacted', 'accepted', 'mediating'];

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// todaysSessions: the open sessions scheduled for today, and those
// without a time that were created today (an instant session).
function isToday(sess, now) {
  if (sess.status === 'ended' || sess.status === 'cancelled') return false;
  const when = sess.scheduledAt ? new Date(sess.scheduledAt) : new Date(sess.createdAt);
  return sameDay(when, now);
}

// mediatorsOf lists the active mediator records of the account's
// institution; accounts do not name their record, so the console picks
// the one with the account's name, or lets the user choose.
async function mediatorsOf(acct) {
  if (!acct.institutionId) return [];
  const ans = await api('GET', `/api/v1/institutions/${encodeURIComponent(acct.institutionId)}/mediators`);
  return (ans.items || []).filter((m) => m.status === 'active');
}

function pickMediator(acct, list) {
  const saved = stored(MEDIATOR_KEY);
  return list.find((m) => m.id === saved) || list.find((m) => m.name === acct.name) || list[0] || null;
}

function caseLink(c) {
  return el('a', { href: '#case/' + encodeURIComponent(c.id) }, c.number);
}

function list(items, render, emptyKey) {
  if (!items.length) return el('p', { class: 'cs-empty' }, t(emptyKey));
  return el('ul', { class: 'cs-list' }, items.map((x) => el('li', { class: 'cs-item' }, render(x))));
}

export async function renderQueue(section, acct, ui) {
  const now = new Date();
  const [activeCases, overdue, mediators] = await Promise.all([
    api('GET', '/api/v1/cases?limit=100'),
    api('GET', '/api/v1/cases?overdue=true&limit=100'),
    mediatorsOf(acct).catch(() => []),
  ]);
  const open = (activeCases.items || []).filter((c) => ACTIVE.includes(c.state));
  // Today's sessions come from the records of the open cases.
  const records = await Promise.all(open.filter((c) => c.state === 'mediating' || c.state === 'accepted')
    .slice(0, 30).map((c) => api('GET', '/api/v1/cases/' + encodeURIComponent(c.id)).catch(() => null)));
  const today = [];
  for (const rec of records) {
    if (!rec) continue;
    for (const s of rec.sessions || []) if (isToday(s, now)) today.push({ rec, s });
  }
  today.sort((a, b) => new Date(a.s.scheduledAt || a.s.createdAt) - new Date(b.s.scheduledAt || b.s.createdAt));

  const me = pickMediator(acct, mediators);
  const requestsBox = el('div', { id: 'queue-requests' });
  const dutyBtn = el('button', { type: 'button', id: 'duty-toggle', class: 'btn', 'aria-pressed': 'false' }, t('cs.queue.onDuty'));
  const dutyState = el('p', { id: 'duty-state', class: 'hint' });
  let onDuty = false;

  const mediatorPicker = mediators.length > 1
    ? field('acting-as', t('cs.queue.actingAs'), el('select', {
      onchange: (ev) => { store(MEDIATOR_KEY, ev.target.value); ui.refresh(); },
    }, mediators.map((m) => el('option', { value: m.id, selected: me && m.id === me.id }, m.name))))
    : null;

  async function loadRequests() {
    let status = null;
    let reqs = [];
    try {
      [status, reqs] = await Promise.all([
        me ? api('GET', `/api/v1/queue/mediators/${encodeURIComponent(me.id)}`) : null,
        api('GET', '/api/v1/queue/requests').then((a) => a.items || []),
      ]);
    } catch (err) {
      ui.error(err);
      return;
    }
    if (status) {
      dutyState.textContent = status.onDuty ? t('cs.queue.dutyOn') : (status.onShift ? t('cs.queue.dutyOff') : t('cs.queue.noShift'));
    }
    const offer = status && status.offer;
    const rows = [];
    if (offer) {
      rows.push(el('li', { class: 'cs-item cs-offer', 'data-request': offer.requestId },
        el('p', { class: 'cs-item-title' }, t('cs.queue.offered'), ' ', el('a', { href: '#case/' + encodeURIComponent(offer.caseId) }, offer.caseNumber)),
        el('p', { class: 'cs-meta' }, label('cs.cat', offer.category), ' · ',
          t('cs.queue.waiting', { time: fmtDuration(offer.waitingSeconds) }),
          offer.escalated ? ' · ' + t('cs.queue.escalated') : ''),
        el('div', { class: 'cs-actions' },
          el('button', { type: 'button', class: 'btn primary small', 'data-action': 'accept', onclick: () => answer(offer, true) }, t('cs.queue.accept')),
          el('button', { type: 'button', class: 'btn small', 'data-action': 'pass', onclick: () => answer(offer, false) }, t('cs.queue.pass')))));
    }
    for (const r of reqs) {
      if (offer && r.id === offer.requestId) continue;
      const waited = (Date.now() - new Date(r.createdAt).getTime()) / 1000;
      rows.push(el('li', { class: 'cs-item', 'data-request': r.id },
        el('p', { class: 'cs-item-title' }, el('a', { href: '#case/' + encodeURIComponent(r.caseId) }, r.caseNumber)),
        el('p', { class: 'cs-meta' }, label('cs.cat', r.category), ' · ', label('cs.qstatus', r.status), ' · ',
          t('cs.queue.waiting', { time: fmtDuration(waited) }))));
    }
    requestsBox.replaceChildren(rows.length ? el('ul', { class: 'cs-list' }, rows) : el('p', { class: 'cs-empty' }, t('cs.queue.noRequests')));
  }

  async function answer(offer, take) {
    try {
      const ans = await api('POST', `/api/v1/queue/requests/${encodeURIComponent(offer.requestId)}/${take ? 'accept' : 'pass'}`, { mediatorId: me.id });
      ui.announce(take ? t('cs.queue.accepted', { number: offer.caseNumber }) : t('cs.queue.passed'));
      if (take && ans && ans.caseId) {
        ui.go('#case/' + encodeURIComponent(ans.caseId));
        return;
      }
    } catch (err) {
      ui.error(err);
    }
    loadRequests();
  }

  async function heartbeat(available) {
    if (!me) return;
    try {
      const st = await api('PUT', `/api/v1/queue/mediators/${encodeURIComponent(me.id)}/presence`, { available });
      dutyState.textContent = st.onDuty ? t('cs.queue.dutyOn') : (st.onShift ? t('cs.queue.dutyOff') : t('cs.queue.noShift'));
    } catch (err) {
      ui.error(err);
    }
  }

  async function setDuty(on) {
    onDuty = on;
    store(DUTY_KEY, on ? '1' : null);
    dutyBtn.setAttribute('aria-pressed', String(on));
    stopQueue();
    await heartbeat(on);
    if (on) {
      timers.push(setInterval(() => heartbeat(true), 20000));
    }
    timers.push(setInterval(loadRequests, 5000));
    loadRequests();
  }
  dutyBtn.addEventListener('click', () => setDuty(!onDuty));

  section.replaceChildren(
    heading('queue-heading', t('cs.queue.heading')),
    el('section', { class: 'panel cs-block', 'aria-labelledby': 'today-heading' },
      el('h2', { id: 'today-heading' }, t('cs.queue.today'), ' ', el('span', { class: 'count' }, `(${today.length})`)),
      list(today, ({ rec, s }) => [
        el('p', { class: 'cs-item-title' }, caseLink(rec)),
        el('p', { class: 'cs-meta' },
          s.scheduledAt ? fmtDateTime(s.scheduledAt) : t('cs.session.unscheduled'), ' · ',
          label('cs.sstatus', s.status), ' · ', label('cs.cat', rec.category)),
      ], 'cs.queue.noToday')),
    el('section', { class: 'panel cs-block', 'aria-labelledby': 'instant-heading' },
      el('h2', { id: 'instant-heading' }, t('cs.queue.instant')),
      me ? [mediatorPicker, el('div', { class: 'cs-actions' }, dutyBtn), dutyState]
        : el('p', { class: 'hint' }, t('cs.queue.noMediator')),
      requestsBox),
    el('section', { class: 'panel cs-block', 'aria-labelledby': 'overdue-heading' },
      el('h2', { id: 'overdue-heading' }, t('cs.queue.overdue'), ' ', el('span', { class: 'count' }, `(${(overdue.items || []).length})`)),
      list(overdue.items || [], (c) => [
        el('p', { class: 'cs-item-title' }, caseLink(c)),
        el('p', { class: 'cs-meta cs-late' }, label('cs.state', c.state), ' · ', t('cs.case.due', { date: dueOf(c) })),
      ], 'cs.queue.noOverdue')),
    el('section', { class: 'panel cs-block', 'aria-labelledby': 'open-heading' },
      el('h2', { id: 'open-heading' }, t('cs.queue.open'), ' ', el('span', { class: 'count' }, `(${open.length})`)),
      list(open, (c) => [
        el('p', { class: 'cs-item-title' }, caseLink(c)),
        el('p', { class: 'cs-meta' }, label('cs.state', c.state), ' · ', label('cs.cat', c.category), ' · ', fmtMoney(c.amountCents)),
      ], 'cs.queue.noOpen')),
  );
  if (me && stored(DUTY_KEY) === '1') setDuty(true);
  else {
    timers.push(setInterval(loadRequests, 5000));
    await loadRequests();
  }
}

function dueOf(c) {
  const d = (c.deadlines || []).filter((x) => !x.metAt).pop();
  return d ? d.dueDate : '';
}

// ---------------------------------------------------------------- case page

// transitionsFor says which steps the case page offers in a state.
const STEPS = {
  dispatched: ['respondent_contacted'],
  respondent_contacted: ['accepted', 'rejected'],
};

export async function renderCase(section, acct, ui, id) {
  const rec = await api('GET', '/api/v1/cases/' + encodeURIComponent(id));
  const back = el('p', {}, el('a', { href: '#queue' }, t('cs.case.back')));
  const parts = [back, heading('case-heading', t('cs.case.heading', { number: rec.number }))];

  const due = (rec.deadlines || []).filter((x) => !x.metAt).pop();
  parts.push(el('dl', { class: 'cs-facts panel' },
    el('dt', {}, t('cs.case.state')), el('dd', { id: 'case-state', 'data-state': rec.state }, label('cs.state', rec.state)),
    el('dt', {}, t('cs.case.category')), el('dd', {}, label('cs.cat', rec.category)),
    el('dt', {}, t('cs.case.channel')), el('dd', {}, label('cs.channel', rec.channel)),
    el('dt', {}, t('cs.case.applicant')), el('dd', {}, rec.applicant.name),
    el('dt', {}, t('cs.case.respondent')), el('dd', {}, rec.respondent.name),
    el('dt', {}, t('cs.case.amount')), el('dd', {}, fmtMoney(rec.amountCents)),
    rec.claims ? [el('dt', {}, t('cs.case.claims')), el('dd', { class: 'cs-pre' }, rec.claims)] : null,
    due ? [el('dt', {}, t('cs.case.deadline')), el('dd', {}, t('cs.case.due', { date: due.dueDate }))] : null,
    rec.outcome ? [el('dt', {}, t('cs.case.outcome')), el('dd', {}, label('cs.result', rec.outcome.result))] : null,
  ));

  const actions = await caseActions(rec, acct, ui);
  if (actions) parts.push(actions);

  parts.push(el('section', { class: 'panel cs-block', 'aria-labelledby': 'sessions-heading' },
    el('h2', { id: 'sessions-heading' }, t('cs.case.sessions')),
    list(rec.sessions || [], (s) => sessionItem(rec, s, ui), 'cs.case.noSessions')));

  parts.push(el('section', { class: 'panel cs-block', 'aria-labelledby': 'history-heading' },
    el('h2', { id: 'history-heading' }, t('cs.case.history')),
    el('ol', { class: 'cs-timeline', id: 'case-history' }, (rec.events || []).map((e) => el('li', { 'data-type': e.type },
      el('span', { class: 'cs-when' }, fmtDateTime(e.at)), ' ',
      el('span', { class: 'cs-event' }, label('cs.event', e.type)), ' ',
      el('span', { class: 'cs-meta' }, actorName(e.actor)))))));
  section.replaceChildren(...parts);
}

function actorName(actor) {
  if (!actor) return '';
  if (actor.startsWith('staff:')) return t('cs.actor.staff');
  if (actor.startsWith('system')) return t('cs.actor.system');
  if (actor === 'operator') return t('cs.actor.operator');
  if (actor.startsWith('p_')) return t('cs.actor.participant');
  return actor;
}

function sessionItem(rec, s, ui) {
  const open = s.status !== 'ended' && s.status !== 'cancelled';
  const mediator = (s.participants || []).find((p) => p.role === 'mediator');
  const when = el('input', { type: 'datetime-local' });
  if (s.scheduledAt) when.value = toLocalInput(s.scheduledAt);
  const out = [
    el('p', { class: 'cs-item-title' }, label('cs.mode', s.mode || 'joint'), ' · ', label('cs.sstatus', s.status)),
    el('p', { class: 'cs-meta' }, s.scheduledAt ? fmtDateTime(s.scheduledAt) : t('cs.session.unscheduled'), ' · ',
      (s.participants || []).map((p) => p.name).join(', ')),
  ];
  if (open && mediator) {
    out.push(el('div', { class: 'cs-actions' },
      el('button', { type: 'button', class: 'btn primary small', 'data-action': 'open-room', onclick: () => openRoom(s, mediator, ui) }, t('cs.session.open'))));
  }
  if (open && s.status === 'scheduled') {
    const id = 'when-' + s.id;
    out.push(el('form', { class: 'cs-inline', onsubmit: async (ev) => {
      ev.preventDefault();
      if (!when.value) return;
      try {
        await api('PUT', `/api/v1/sessions/${encodeURIComponent(s.id)}/schedule`, { scheduledAt: new Date(when.value).toISOString() });
        ui.announce(t('cs.session.timeSaved'));
        ui.refresh();
      } catch (err) { ui.error(err); }
    } }, field(id, t('cs.session.time'), when), el('button', { type: 'submit', class: 'btn small' }, t('cs.session.setTime'))));
  }
  return out;
}

function toLocalInput(s) {
  const d = new Date(s);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// openRoom issues the mediator's own join link and opens the room page
// in a new tab. The tab is opened at once, while the click still counts
// as the user's, and sent to the link when it arrives.
async function openRoom(s, mediator, ui) {
  const win = window.open('', '_blank');
  try {
    const ans = await api('POST', `/api/v1/sessions/${encodeURIComponent(s.id)}/links`, { participantIds: [mediator.id] });
    const link = (ans.items || [])[0];
    if (!link) throw new Error('no link');
    if (win) {
      win.opener = null;
      win.location.href = link.url;
    } else {
      location.href = link.url;
    }
  } catch (err) {
    if (win) win.close();
    ui.error(err);
  }
}

async function caseActions(rec, acct, ui) {
  const steps = STEPS[rec.state] || [];
  const canSchedule = rec.state === 'accepted' || rec.state === 'mediating';
  if (!steps.length && !canSchedule) return null;
  const box = el('section', { class: 'panel cs-block', 'aria-labelledby': 'actions-heading' },
    el('h2', { id: 'actions-heading' }, t('cs.case.actions')));
  const move = async (body) => {
    try {
      await api('POST', `/api/v1/cases/${encodeURIComponent(rec.id)}/transitions`, { ...body, version: rec.version });
      ui.announce(t('cs.case.moved', { state: label('cs.state', body.to) }));
      ui.refresh();
    } catch (err) { ui.error(err); }
  };
  if (steps.includes('respondent_contacted')) {
    box.append(el('div', { class: 'cs-actions' }, el('button', { type: 'button', class: 'btn primary small', 'data-action': 'contacted',
      onclick: () => move({ to: 'respondent_contacted' }) }, t('cs.case.contacted'))));
  }
  if (steps.includes('accepted')) {
    box.append(el('div', { class: 'cs-actions' }, el('button', { type: 'button', class: 'btn primary small', 'data-action': 'accept-case',
      onclick: () => move({ to: 'accepted' }) }, t('cs.case.accept'))));
  }
  if (steps.includes('rejected')) {
    let reasons = [];
    try {
      const rs = await api('GET', '/api/v1/rulesets');
      const set = (rs.items || []).find((r) => r.id === rec.ruleSetId) || (rs.items || [])[0];
      reasons = (set && set.rejectReasons) || [];
    } catch (_) { /* the form still shows; the server names the problem */ }
    const code = el('select', { required: true }, el('option', { value: '' }, t('cs.case.chooseReason')),
      reasons.map((r) => el('option', { value: r.code }, r.label)));
    const text = el('textarea', { required: true, 'aria-required': 'true', rows: 3 });
    const err = el('p', { class: 'form-error', role: 'alert' });
    box.append(el('form', { class: 'cs-form', id: 'reject-form', onsubmit: (ev) => {
      ev.preventDefault();
      err.textContent = '';
      if (!code.value || !text.value.trim()) {
        err.textContent = t('cs.case.reasonRequired');
        (code.value ? text : code).focus();
        return;
      }
      move({ to: 'rejected', reasonCode: code.value, reason: text.value.trim() });
    } },
    el('h3', {}, t('cs.case.reject')),
    field('reject-code', t('cs.case.reasonCode'), code),
    field('reject-reason', t('cs.case.reason'), text, t('cs.case.reasonHint')),
    err,
    el('button', { type: 'submit', class: 'btn danger-outline small' }, t('cs.case.rejectSubmit'))));
  }
  if (canSchedule) {
    const when = el('input', { type: 'datetime-local' });
    const notify = el('input', { type: 'checkbox', id: 'schedule-notify', checked: true });
    box.append(el('form', { class: 'cs-form', id: 'schedule-form', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const sess = await api('POST', `/api/v1/cases/${encodeURIComponent(rec.id)}/sessions`, {
          participants: [
            { name: acct.name, role: 'mediator', side: 'neutral' },
            { name: rec.applicant.name, role: 'party', side: 'applicant' },
            { name: rec.respondent.name, role: 'party', side: 'respondent' },
          ],
          notify: notify.checked,
        });
        if (when.value) {
          await api('PUT', `/api/v1/sessions/${encodeURIComponent(sess.id)}/schedule`, { scheduledAt: new Date(when.value).toISOString() });
        }
        ui.announce(t('cs.case.scheduled'));
        ui.refresh();
      } catch (err) { ui.error(err); }
    } },
    el('h3', {}, t('cs.case.schedule')),
    field('schedule-when', t('cs.session.time'), when, t('cs.case.scheduleHint')),
    el('label', { class: 'check', for: 'schedule-notify' }, notify, t('cs.case.notify')),
    el('button', { type: 'submit', class: 'btn small' }, t('cs.case.scheduleSubmit'))));
  }
  return box;
}
