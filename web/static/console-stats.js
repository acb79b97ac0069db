// Staff console: the statistics view of institution and platform admins.
// The figures come from GET /api/v1/stats, which suppresses small cells;
// a suppressed cell is shown as "<5", never as zero. Every filter is the
// server's: the page never narrows the figures itself, since only the
// server can tell which cells a narrower report would give away.
import { t } from './i18n.js';
import { api, download, el, field, heading, fmtNumber, fmtPercent, fmtDateTime, label } from './console-api.js';
import { barChart } from './charts.js';

const TOTAL = '(total)';
const CATEGORIES = ['e-commerce', 'online-payment', 'internet-service', 'product-quality', 'service-quality', 'consumer-finance', 'other'];
const CHANNELS = ['online', 'window', 'phone', 'kiosk', '12315', 'portal'];

// The filters survive re-rendering (a language switch).
const filters = { from: '', to: '', category: '', channel: '' };


function chartLabels() {
  return {
    suppressed: t('cs.stats.suppressed'), suppressedShort: '<5',
    empty: t('cs.stats.noData'), emptyShort: '–', none: t('cs.stats.noRows'),
    table: t('cs.stats.showData'), item: t('cs.stats.item'), value: t('cs.stats.value'),
  };
}

function table(rep, name) {
  return (rep.tables || []).find((x) => x.name === name) || { rows: [] };
}

// item turns one measure of a row into a chart item.
function item(row, measure, lbl, fmt) {
  const v = row.values ? row.values[measure] : null;
  if ((row.suppressed || []).includes(measure)) {
    // A count reads "<5"; a rate or a time of a small cell just says so.
    return { label: lbl, state: 'suppressed', value: 0, display: measure === 'cases' ? '<5' : t('cs.stats.hidden') };
  }
  if (v === null || v === undefined) return { label: lbl, state: 'empty', value: 0 };
  return { label: lbl, state: 'value', value: v, display: fmt(v) };
}

function query(extra) {
  const q = new URLSearchParams();
  if (filters.from) q.set('from', filters.from);
  if (filters.to) q.set('to', filters.to);
  if (filters.category) q.set('category', filters.category);
  if (filters.channel) q.set('channel', filters.channel);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

export async function renderStats(section, acct, ui) {
  const [rep, warn] = await Promise.all([
    api('GET', '/api/v1/stats' + query()),
    api('GET', '/api/v1/stats/warnings').catch((err) => { ui.error(err); return { items: [] }; }),
  ]);
  const count = (v) => fmtNumber(v, 0);

  // Filters.
  const from = el('input', { type: 'month', value: filters.from });
  const to = el('input', { type: 'month', value: filters.to });
  const cat = el('select', {}, el('option', { value: '' }, t('cs.stats.all')),
    CATEGORIES.map((c) => el('option', { value: c, selected: filters.category === c }, label('cs.cat', c))));
  const chan = el('select', {}, el('option', { value: '' }, t('cs.stats.all')),
    CHANNELS.map((c) => el('option', { value: c, selected: filters.channel === c }, label('cs.channel', c))));
  const form = el('form', { class: 'panel cs-filters', id: 'stats-filters', onsubmit: (ev) => {
    ev.preventDefault();
    Object.assign(filters, { from: from.value, to: to.value, category: cat.value, channel: chan.value });
    ui.refresh();
  } },
  el('div', { class: 'cs-filter-grid' },
    field('stats-from', t('cs.stats.from'), from),
    field('stats-to', t('cs.stats.to'), to),
    field('stats-category', t('cs.stats.category'), cat),
    field('stats-channel', t('cs.stats.channel'), chan)),
  el('p', { class: 'hint', id: 'stats-filter-note' }, t('cs.stats.filterNote')),
  el('button', { type: 'submit', class: 'btn primary small' }, t('cs.stats.apply')));

  // Figures.
  const byMonth = table(rep, 'by_month').rows;
  const totalRow = byMonth.find((r) => r.keys.month === TOTAL) || { values: {} };
  const byChannel = table(rep, 'by_channel').rows;
  const recTotal = table(rep, 'reconciliation_rate').rows.find((r) => r.keys.category === TOTAL);
  const durTotal = table(rep, 'durations').rows.find((r) => r.keys.category === TOTAL);
  const figure = (id, name, it) => el('div', { class: 'cs-figure', id },
    el('dt', {}, name),
    el('dd', { 'data-state': it.state }, it.state === 'value' ? it.display : it.state === 'suppressed' ? it.display : '–'));
  const figs = [
    figure('fig-total', t('cs.stats.total'), item(totalRow, 'cases', '', count)),
  ];
  if (filters.channel) {
    const r = byChannel.find((x) => x.keys.channel === filters.channel) || { values: {} };
    figs.push(figure('fig-channel', t('cs.stats.channelCases', { channel: label('cs.channel', filters.channel) }), item(r, 'cases', '', count)));
  }
  if (recTotal) figs.push(figure('fig-rec', t('cs.stats.recRate'), item(recTotal, 'reconciliation_rate', '', fmtPercent)));
  if (durTotal) figs.push(figure('fig-close', t('cs.stats.medianClose'), item(durTotal, 'median_days_to_close', '', (v) => t('cs.stats.days', { n: fmtNumber(v) }))));

  // Charts.
  const labels = chartLabels();
  const trend = barChart({
    id: 'chart-trend', title: t('cs.stats.trend'), columns: true, labels,
    items: byMonth.filter((r) => r.keys.month !== TOTAL).map((r) => item(r, 'cases', r.keys.month, count)),
  });
  // The report counts the chosen category only: its outcome mix is the
  // category's.
  const outcomeRows = table(rep, 'by_outcome').rows.filter((r) => r.keys.outcome !== TOTAL);
  const outcome = barChart({
    id: 'chart-outcome', labels,
    title: filters.category ? t('cs.stats.outcomeOf', { category: label('cs.cat', filters.category) }) : t('cs.stats.outcome'),
    items: outcomeRows.map((r) => item(r, 'cases', label('cs.outcome', r.keys.outcome), count)),
  });
  const closeTime = barChart({
    id: 'chart-close', title: t('cs.stats.closeTime'), columns: true, labels,
    items: table(rep, 'by_close_time').rows.filter((r) => r.keys.close_time !== TOTAL && r.keys.close_time !== 'not_closed')
      .map((r) => item(r, 'cases', label('cs.bucket', r.keys.close_time), count)),
  });
  const recRows = table(rep, 'reconciliation_rate').rows.filter((r) => r.keys.category !== TOTAL);
  const rec = barChart({
    id: 'chart-rec', title: t('cs.stats.recByCategory'), max: 1, labels,
    items: recRows.map((r) => item(r, 'reconciliation_rate', label('cs.cat', r.keys.category), fmtPercent)),
  });

  // Exports: fetched with the token, saved as files.
  const exp = (fmt) => el('button', { type: 'button', class: 'btn small', 'data-export': fmt, onclick: async () => {
    try {
      await download('/api/v1/stats' + query({ format: fmt }), `concord-stats.${fmt}`);
    } catch (err) { ui.error(err); }
  } }, t('cs.stats.export.' + fmt));

  const warnings = warn.items || [];
  section.replaceChildren(
    heading('stats-heading', t('cs.stats.heading')),
    el('p', { class: 'hint' }, t('cs.stats.privacy', { n: rep.minCell || 5 }), ' ',
      rep.generatedAt ? t('cs.stats.generated', { at: fmtDateTime(rep.generatedAt) }) : ''),
    form,
    el('dl', { class: 'cs-figures' }, figs),
    el('div', { class: 'cs-charts' }, trend, outcome, closeTime, rec),
    el('section', { class: 'panel cs-block', 'aria-labelledby': 'export-heading' },
      el('h2', { id: 'export-heading' }, t('cs.stats.export')),
      el('div', { class: 'cs-actions' }, exp('csv'), exp('json'))),
    el('section', { class: 'panel cs-block', 'aria-labelledby': 'warn-heading' },
      el('h2', { id: 'warn-heading' }, t('cs.stats.warnings'), ' ', el('span', { class: 'count' }, `(${warnings.length})`)),
      warnings.length
        ? el('ul', { class: 'cs-list', id: 'warnings' }, warnings.map((w) => el('li', { class: 'cs-item' },
          el('p', { class: 'cs-item-title' }, w.kind === 'merchant' ? (w.name || w.key) : label('cs.cat', w.key)),
          el('p', { class: 'cs-meta' }, t('cs.stats.warnLine', {
            count: w.count, baseline: fmtNumber(w.baseline), ratio: fmtNumber(w.ratio),
          })))))
        : el('p', { class: 'cs-empty' }, t('cs.stats.noWarnings'))),
  );
}
