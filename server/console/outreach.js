// The outreach view: who will likely need help and why, the calls placed for them, and the
// effect against the hold-out group, from the HTTP API (refreshed while the view is open).

import { $, el, state, toast } from './ui.js';

const REFRESH_MS = 10_000;
const NEEDS_SHOWN = 20;
const CALLS_SHOWN = 50;

let timer = 0;
let chartUrl = null;

/** Shows the live-assist or the outreach view. */
export function showView(name) {
  for (const button of document.querySelectorAll('.views button')) {
    button.classList.toggle('active', button.dataset.view === name);
  }
  const outreach = name === 'outreach';
  $('#outreach-view').hidden = !outreach;
  el.app.querySelector('.sidebar').hidden = outreach;
  el.app.querySelector('.main').hidden = outreach;
  clearInterval(timer);
  if (outreach) {
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error ?? `${path}: HTTP ${response.status}`);
  }
  return response;
}

async function refresh() {
  const results = await Promise.allSettled([renderNeeds(), renderCalls(), renderReport()]);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) toast(failed.reason.message);
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
}

async function renderNeeds() {
  const needs = await (await api(`/v1/predictions?top=${NEEDS_SHOWN}`)).json();
  const body = $('#needs tbody');
  body.replaceChildren();
  for (const n of needs) {
    const row = body.insertRow();
    cell(row, n.user);
    cell(row, n.topic);
    cell(row, `${Math.round(n.probability * 100)}%`);
    cell(row, n.reasons.map((r) => r.text).join('; '), 'why');
  }
}

async function renderCalls() {
  const calls = await (await api('/v1/calls')).json();
  calls.sort((a, b) => b.due_at - a.due_at);
  const body = $('#calls tbody');
  body.replaceChildren();
  for (const c of calls.slice(0, CALLS_SHOWN)) {
    const row = body.insertRow();
    cell(row, c.holdout ? `${c.user} (hold-out)` : c.user);
    cell(row, c.topic);
    cell(row, c.state, `state-${c.state}`);
    cell(row, String(c.attempts));
    cell(row, new Date(c.due_at).toLocaleString());
    cell(row, c.reasons, 'why');
  }
}

async function renderReport() {
  const report = await (await api('/v1/outreach/report')).json();
  const set = (name, text) => {
    $(`[data-kpi="${name}"]`).textContent = text;
  };
  set('planned', String(report.planned));
  set('answered', String(report.answered));
  const pct = (v) => `${(v * 100).toFixed(1)}%`;
  set(
    'reduction',
    report.reduction == null
      ? 'not yet known'
      : `${pct(report.reduction)} (${pct(report.reduction_ci[0])} to ${pct(report.reduction_ci[1])})`,
  );
  set('pairs', `${report.called.pairs} / ${report.holdout.pairs}`);
  // The chart needs the bearer token too, so it is fetched rather than linked.
  const blob = await (await api('/v1/outreach/report.png')).blob();
  if (chartUrl) URL.revokeObjectURL(chartUrl);
  chartUrl = URL.createObjectURL(blob);
  $('#report-chart').src = chartUrl;
}

for (const button of document.querySelectorAll('.views button')) {
  button.addEventListener('click', () => showView(button.dataset.view));
}
