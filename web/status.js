// The operator's page ({base}/status): the server's own /metrics, scraped
// every 2 s from this page (a relative URL, so it works under any base path
// and behind a proxy), shown as counts and as small live charts. No
// framework, no CDN: plain DOM and inline SVG.
'use strict';

const EVERY_MS = 2000;
const POINTS = 30; // a minute of history
const JOIN_ROUTE = '/api/bots/{bot_name}/join';
const SVG = 'http://www.w3.org/2000/svg';

const $ = (sel) => document.querySelector(sel);

// -- the Prometheus text format (0.0.4) ----------------------------------------------

/// Samples of a scrape: [{name, labels: {k: v}, value}]. Comments, and
/// lines that are not samples, are skipped.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const rx = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = rx.exec(m[3])) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    samples.push({ name: m[1], labels, value });
  }
  return samples;
}

/// The sum of the samples named `name` whose labels pass `keep`.
function sum(samples, name, keep = () => true) {
  let total = 0;
  let found = false;
  for (const s of samples) {
    if (s.name === name && keep(s.labels)) {
      total += s.value;
      found = true;
    }
  }
  return found ? total : null;
}

/// Cumulative bucket counts by upper bound (le), summed over the samples
/// that pass `keep` (as `sum by (le)` does).
function buckets(samples, name, keep) {
  const byLe = new Map();
  for (const s of samples) {
    if (s.name !== name || !keep(s.labels)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) || 0) + s.value);
  }
  return byLe;
}

/// The q-quantile of the observations between two scrapes' buckets, by
/// linear interpolation inside the bucket, as histogram_quantile() does;
/// null when nothing was observed in between.
function quantileBetween(before, after, q) {
  const les = [...after.keys()].sort((a, b) => a - b);
  const counts = les.map((le) => (after.get(le) || 0) - (before.get(le) || 0));
  const total = counts[counts.length - 1];
  if (!(total > 0) || counts.some((c) => c < 0)) return null;
  const rank = q * total;
  for (let i = 0; i < les.length; i++) {
    if (counts[i] >= rank) {
      if (les[i] === Infinity) return les[i - 1] ?? null; // the highest finite bound
      const lower = i === 0 ? 0 : les[i - 1];
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      return inBucket > 0 ? lower + (les[i] - lower) * ((rank - below) / inBucket) : les[i];
    }
  }
  return null;
}

// -- what the page shows from two scrapes ---------------------------------------------

const isJoin = (l) => l.route === JOIN_ROUTE;
const accepted = (l) => isJoin(l) && /^2/.test(l.status);
const serverError = (l) => /^5/.test(l.status || '');

/// The per-second change of a counter between two scrapes; null after a
/// restart (the counter went down) or when it is absent.
function rate(before, after, dt) {
  if (before === null || after === null || !(dt > 0) || after < before) return null;
  return (after - before) / dt;
}

function figures(prev, cur) {
  const dt = (cur.at - prev.at) / 1000;
  const s0 = prev.samples;
  const s1 = cur.samples;
  const p99 = quantileBetween(
    buckets(s0, 'voicebot_http_request_duration_seconds_bucket', isJoin),
    buckets(s1, 'voicebot_http_request_duration_seconds_bucket', isJoin), 0.99);
  return {
    joins: rate(sum(s0, 'voicebot_http_requests_total', accepted), sum(s1, 'voicebot_http_requests_total', accepted), dt),
    p99ms: p99 === null ? null : p99 * 1000,
    journal: rate(sum(s0, 'voicebot_journal_appends_total'), sum(s1, 'voicebot_journal_appends_total'), dt),
    snapshots: rate(sum(s0, 'voicebot_snapshot_writes_total'), sum(s1, 'voicebot_snapshot_writes_total'), dt),
    errors: rate(sum(s0, 'voicebot_http_requests_total', serverError) ?? 0,
      sum(s1, 'voicebot_http_requests_total', serverError) ?? 0, dt),
  };
}

// -- charts -----------------------------------------------------------------------------

function svgEl(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/// A chart of up to POINTS values per series, scaled to its largest value.
class Chart {
  constructor(figure, series) {
    this.figure = figure;
    this.series = series.map((label) => ({ label, values: [] }));
    this.svg = svgEl('svg', { viewBox: '0 0 300 100', preserveAspectRatio: 'none', role: 'img' });
    figure.append(this.svg);
  }

  push(...values) {
    this.series.forEach((s, i) => {
      s.values.push(values[i]);
      if (s.values.length > POINTS) s.values.shift();
    });
    this.draw();
  }

  /// Points drawn (not null) in the first series, for tests.
  get points() {
    return this.series[0].values.filter((v) => v !== null).length;
  }

  draw() {
    const all = this.series.flatMap((s) => s.values).filter((v) => v !== null);
    const max = Math.max(1e-9, ...all) * 1.1;
    this.svg.replaceChildren();
    for (const y of [25, 50, 75]) this.svg.append(svgEl('line', { x1: 0, x2: 300, y1: y, y2: y, class: 'grid' }));
    const top = svgEl('text', { x: 3, y: 10 });
    top.textContent = all.length ? `max ${format(max / 1.1)}` : 'no data yet';
    this.svg.append(top);
    this.series.forEach((s, i) => {
      // A gap (null: no data, or a restart) breaks the line.
      let d = '';
      let pen = false;
      // The newest point at the right edge; older ones to its left.
      const offset = POINTS - s.values.length;
      s.values.forEach((v, k) => {
        if (v === null) { pen = false; return; }
        const x = ((offset + k) / (POINTS - 1)) * 300;
        const y = 100 - (v / max) * 100;
        d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)} `;
        pen = true;
      });
      if (d) this.svg.append(svgEl('path', { d, class: i === 0 ? 'line' : 'line second' }));
    });
    const last = this.series.map((s) => s.values[s.values.length - 1]);
    this.svg.setAttribute('aria-label', `${this.figure.querySelector('figcaption').firstChild.textContent.trim()}: ${last.map(format).join(', ')}`);
  }
}

function format(v) {
  if (v === null || v === undefined) return '–';
  if (v >= 100) return Math.round(v).toLocaleString('en');
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

// -- the loop ---------------------------------------------------------------------------

const charts = {
  joins: new Chart($('#chart-joins'), ['joins/s']),
  p99: new Chart($('#chart-p99'), ['p99 ms']),
  writes: new Chart($('#chart-writes'), ['journal appends/s', 'snapshot writes/s']),
  errors: new Chart($('#chart-errors'), ['5xx/s']),
};
window.statusCharts = charts; // for the browser test

let previous = null;

function showCounts(samples) {
  for (const state of ['online', 'suspect', 'unreachable', 'draining']) {
    const n = sum(samples, 'voicebot_providers', (l) => l.status === state);
    $(`#providers-${state}`).textContent = n === null ? '–' : String(n);
  }
  const count = (name) => {
    const v = sum(samples, name);
    return v === null ? '–' : Math.round(v).toLocaleString('en');
  };
  $('#lobbies').textContent = count('voicebot_lobbies');
  $('#members').textContent = count('voicebot_lobby_members');
  $('#orphaned').textContent = count('voicebot_orphaned_members');
}

function setNow(id, text) {
  $(`#${id} .now`).textContent = text;
}

async function scrape() {
  const badge = $('#scrape');
  let res;
  try {
    res = await fetch('metrics', { cache: 'no-store' });
  } catch (e) {
    res = null;
  }
  if (!res || !res.ok) {
    badge.textContent = res ? `metrics: HTTP ${res.status}` : 'metrics: no answer (server restarting?)';
    badge.className = 'badge bad';
    // The next good scrape starts the rates again.
    previous = null;
    for (const c of Object.values(charts)) c.push(...c.series.map(() => null));
    return;
  }
  const cur = { at: Date.now(), samples: parseMetrics(await res.text()) };
  badge.textContent = 'live';
  badge.className = 'badge ok';
  showCounts(cur.samples);
  if (previous) {
    const f = figures(previous, cur);
    charts.joins.push(f.joins);
    charts.p99.push(f.p99ms);
    charts.writes.push(f.journal, f.snapshots);
    charts.errors.push(f.errors);
    setNow('chart-joins', format(f.joins));
    setNow('chart-p99', f.p99ms === null ? 'no joins' : format(f.p99ms));
    setNow('chart-writes', `${format(f.journal)} / ${format(f.snapshots)}`);
    setNow('chart-errors', format(f.errors));
  }
  previous = cur;
  $('#updated').textContent = `Updated ${new Date(cur.at).toLocaleTimeString('en-GB')}.`;
}

async function loop() {
  await scrape();
  setTimeout(loop, EVERY_MS);
}

loop();
