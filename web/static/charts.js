// Bar charts drawn as inline SVG with DOM calls: no library, no inline
// style (colours come from classes in style.css, sizes from SVG
// attributes, which the Content-Security-Policy allows). Each chart is a
// <figure> with the SVG (role="img", named by its title) and the same
// figures as a table for screen readers and for reading exact values.
//
// An item is { label, value, display, state }: state "value" draws a bar
// of value, "suppressed" a hatched stub marked "<5" (a small cell the
// server hid), "empty" nothing but "no data". Every item is one
// <g class="chart-item" data-state=...>, which the tests count.

const NS = 'http://www.w3.org/2000/svg';

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

let seq = 0;

// barChart returns a figure. opts: id, title, items, max (the scale's
// top; default the largest value), columns (vertical bars, for a time
// axis or a histogram), labels { suppressed, suppressedShort, empty,
// emptyShort, none, table, item, value }. A suppressed item's display,
// if given, replaces suppressedShort.
export function barChart(opts) {
  const { title, items, labels } = opts;
  const id = opts.id || 'chart-' + (++seq);
  const values = items.filter((it) => it.state === 'value').map((it) => it.value);
  const max = opts.max || Math.max(1, ...values);
  const svg = opts.columns ? columns(items, max, labels) : rows(items, max, labels);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-labelledby', id + '-title');
  svg.setAttribute('class', 'chart-svg' + (opts.columns ? ' chart-columns' : ''));
  svg.setAttribute('data-chart', id);
  svg.prepend(svgEl('title', { id: id + '-title' }, title));

  const fig = document.createElement('figure');
  fig.className = 'chart';
  fig.id = id;
  const cap = document.createElement('figcaption');
  cap.className = 'chart-title';
  cap.textContent = title;
  fig.append(cap, svg);
  if (!items.length) {
    const p = document.createElement('p');
    p.className = 'hint';
    p.textContent = labels.none;
    fig.append(p);
  }
  fig.append(dataTable(items, labels));
  return fig;
}

function itemGroup(it) {
  return svgEl('g', { class: 'chart-item', 'data-state': it.state, 'data-label': it.label });
}

// rows draws horizontal bars: label above, bar and value below, so long
// labels fit a phone.
function rows(items, max, labels) {
  const W = 320;
  const rowH = 40;
  const barW = 236;
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${Math.max(1, items.length) * rowH + 4}`, width: W, height: Math.max(1, items.length) * rowH + 4 });
  items.forEach((it, i) => {
    const y = i * rowH;
    const g = itemGroup(it);
    g.append(svgEl('text', { x: 0, y: y + 13, class: 'chart-label' }, it.label));
    g.append(svgEl('rect', { x: 0, y: y + 18, width: barW, height: 14, rx: 2, class: 'chart-track' }));
    if (it.state === 'value') {
      const w = Math.max(it.value > 0 ? 2 : 0, (it.value / max) * barW);
      g.append(svgEl('rect', { x: 0, y: y + 18, width: w.toFixed(1), height: 14, rx: 2, class: 'chart-bar' }));
      g.append(svgEl('text', { x: barW + 6, y: y + 30, class: 'chart-value' }, it.display));
    } else if (it.state === 'suppressed') {
      g.append(svgEl('rect', { x: 0, y: y + 18, width: 24, height: 14, rx: 2, class: 'chart-bar-suppressed' }));
      g.append(svgEl('text', { x: barW + 6, y: y + 30, class: 'chart-value chart-suppressed' }, it.display || labels.suppressedShort));
    } else {
      g.append(svgEl('text', { x: barW + 6, y: y + 30, class: 'chart-value chart-empty' }, labels.emptyShort));
    }
    svg.append(g);
  });
  return svg;
}

// columns draws vertical bars along an axis (months, time buckets).
function columns(items, max, labels) {
  const H = 180;
  const base = 150;
  const top = 20;
  const colW = 52;
  const W = Math.max(320, items.length * colW + 8);
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
  svg.append(svgEl('line', { x1: 0, y1: base + 0.5, x2: W, y2: base + 0.5, class: 'chart-axis' }));
  items.forEach((it, i) => {
    const x = 4 + i * colW;
    const g = itemGroup(it);
    const cx = x + colW / 2 - 2;
    if (it.state === 'value') {
      const h = Math.max(it.value > 0 ? 2 : 0, (it.value / max) * (base - top));
      g.append(svgEl('rect', { x: x + 8, y: (base - h).toFixed(1), width: colW - 20, height: h.toFixed(1), rx: 2, class: 'chart-bar' }));
      g.append(svgEl('text', { x: cx, y: (base - h - 4).toFixed(1), 'text-anchor': 'middle', class: 'chart-value' }, it.display));
    } else if (it.state === 'suppressed') {
      g.append(svgEl('rect', { x: x + 8, y: base - 24, width: colW - 20, height: 24, rx: 2, class: 'chart-bar-suppressed' }));
      g.append(svgEl('text', { x: cx, y: base - 28, 'text-anchor': 'middle', class: 'chart-value chart-suppressed' }, it.display || labels.suppressedShort));
    } else {
      g.append(svgEl('text', { x: cx, y: base - 6, 'text-anchor': 'middle', class: 'chart-value chart-empty' }, labels.emptyShort));
    }
    g.append(svgEl('text', { x: cx, y: base + 18, 'text-anchor': 'middle', class: 'chart-label' }, it.label));
    svg.append(g);
  });
  return svg;
}

// dataTable is the chart's figures as a table in a disclosure.
function dataTable(items, labels) {
  const d = document.createElement('details');
  d.className = 'chart-data';
  const s = document.createElement('summary');
  s.textContent = labels.table;
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  for (const h of [labels.item, labels.value]) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    head.append(th);
  }
  const body = table.createTBody();
  for (const it of items) {
    const r = body.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = it.label;
    r.append(th);
    const td = r.insertCell();
    td.textContent = it.state === 'value' ? it.display : it.state === 'suppressed' ? labels.suppressed : labels.empty;
    if (it.state === 'suppressed') td.className = 'chart-suppressed';
  }
  d.append(s, table);
  return d;
}
