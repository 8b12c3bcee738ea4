import type { TaskInfo } from '../../core/catalog.js';
import type { PauseEvent } from '../../core/pauses.js';
import type { RunLogRecord, RunRecord } from '../../core/runs.js';
import type { SlotReport } from '../../core/slots.js';
import type { TaskgateError } from '../../errors.js';
import { formatDuration, formatTime, Html, html, publicError, relative, resultSummary } from './format.js';
import type { Redactor } from './redact.js';
import type { Viewer } from './session.js';
import { STYLE } from './style.js';

/**
 * The status page's HTML, rendered on the server: no script, one inline style sheet, every value
 * escaped. While a run is running the page refreshes itself every 5 s (a meta refresh).
 */

export interface TaskView {
  info: TaskInfo;
  /** Its latest runs, newest first. */
  runs: RunRecord[];
  /** Its latest pauses and resumes, newest first. */
  pauses: PauseEvent[];
  /** What became of its latest slots, newest first (none for an on-demand task). */
  slots: SlotReport[];
}

/** How many runs the table shows; the chart shows all that were read. */
const TABLE_ROWS = 8;

function layout(title: string, body: Html, options: { refresh?: boolean } = {}): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
${options.refresh ? html`<meta http-equiv="refresh" content="5">` : ''}
<title>${title}</title><link rel="icon" href="data:,">
<style>${htmlRaw(STYLE)}</style></head>
<body>${body}</body></html>
`.text;
}

/** The style sheet goes in verbatim: its hash is what the CSP allows. */
const htmlRaw = (text: string) => new Html(text);

function csrfField(viewer: Viewer): Html | string {
  return viewer.csrf ? html`<input type="hidden" name="csrf" value="${viewer.csrf}">` : '';
}

function header(viewer: Viewer, now: Date, extra: string): Html {
  const role = viewer.role === 'write' ? 'operator (read and control)' : 'read-only';
  return html`<header class="top"><h1><a href="/status">taskgate status</a></h1>
<p class="meta">${extra} · as of ${now.toISOString().slice(11, 19)} UTC · ${role}</p>
${viewer.csrf ? html`<form method="post" action="/status/logout">${csrfField(viewer)}<button type="submit">Log out</button></form>` : ''}
</header>`;
}

function statusBadge(status: string): Html {
  const mark: Record<string, string> = {
    succeeded: '✓',
    failed: '✗',
    running: '●',
    overdue: '!',
    paused: '‖',
  };
  return html`<span class="badge s-${status}">${mark[status] ? `${mark[status]} ` : ''}${status}</span>`;
}

/** A bar per run, oldest on the left, height by duration; each bar's title tells the run. */
function durationChart(runs: RunRecord[]): Html | string {
  const shown = runs.filter((run) => run.durationMs !== null || run.status === 'running').slice(0, 30);
  if (shown.length < 2) return '';
  const ordered = [...shown].reverse();
  const max = Math.max(1, ...ordered.map((run) => run.durationMs ?? 0));
  const slot = 300 / Math.max(ordered.length, 12);
  const bars = ordered.map((run, i) => {
    const height = run.durationMs === null ? 4 : Math.max(2, Math.round((run.durationMs / max) * 40));
    const kind = ['succeeded', 'failed', 'running'].includes(run.status) ? run.status : 'other';
    return html`<rect class="b-${kind}" x="${i * slot + 1}" y="${44 - height}" width="${slot - 2}" height="${height}"><title>${formatTime(run.startedAt)}: ${run.status}, ${formatDuration(run.durationMs)}</title></rect>`;
  });
  return html`<figure class="chart"><svg viewBox="0 0 300 44" preserveAspectRatio="none" role="img" aria-label="durations of the last ${ordered.length} runs, longest ${formatDuration(max)}">${bars}</svg>
<figcaption>last ${ordered.length} runs<br>longest ${formatDuration(max)}</figcaption></figure>`;
}

function runRows(runs: RunRecord[], viewer: Viewer, now: Date, redact: Redactor): Html {
  if (runs.length === 0) return html`<p class="empty">No runs yet.</p>`;
  const shown = runs.slice(0, TABLE_ROWS);
  // Only a running run has a control in its row; the run's own page has the rest.
  const controls = viewer.role === 'write' && shown.some((run) => run.status === 'running');
  const rows = shown.map((run) => {
    const did = resultSummary(run.result);
    const error = shownError(run.error, redact);
    return html`<tr>
<td class="num"><a href="/status/runs/${run.id}" title="${run.startedAt}">${formatTime(run.startedAt).slice(5, 16)}</a><span class="rel">${relative(run.startedAt, now)}</span></td>
<td>${statusBadge(run.status)}${run.dryRun ? html` <small>dry run</small>` : ''}</td>
<td class="num dur">${run.status === 'running' ? `for ${relative(run.startedAt, now).replace(' ago', '')}` : formatDuration(run.durationMs)}</td>
<td class="hide-narrow">${run.trigger}</td>
<td class="what">${did}${!did && error ? html`<span class="err">${error}</span>` : ''} <a href="/status/runs/${run.id}">log</a></td>
${controls ? html`<td class="act">${run.status === 'running' ? cancelForm(run, viewer) : ''}</td>` : ''}
</tr>`;
  });
  return html`<table class="runs"><thead><tr><th class="c-start">Started</th><th class="c-status">Status</th><th class="c-dur">Duration</th><th class="c-trig hide-narrow">Trigger</th><th>What it did</th>${controls ? html`<th class="c-act">Control</th>` : ''}</tr></thead>
<tbody>${rows}</tbody></table>`;
}

function cancelForm(run: RunRecord, viewer: Viewer, withReason = false): Html {
  return html`<form class="inline" method="post" action="/status/runs/${run.id}/cancel">${csrfField(viewer)}${withReason ? html`<input type="text" name="reason" maxlength="500" placeholder="reason (optional)" aria-label="reason">` : ''}<button class="danger" type="submit">Cancel</button></form>`;
}

function pauseControls(info: TaskInfo, viewer: Viewer): Html | string {
  if (viewer.role !== 'write') return '';
  const name = encodeURIComponent(info.name);
  if (info.paused) {
    return html`<div class="controls"><form method="post" action="/status/tasks/${name}/resume">${csrfField(viewer)}<button type="submit">Resume</button></form></div>`;
  }
  return html`<div class="controls"><form method="post" action="/status/tasks/${name}/pause">${csrfField(viewer)}
<input type="text" name="reason" required maxlength="500" placeholder="why pause it?" aria-label="reason for the pause">
<select name="for" aria-label="for how long"><option value="">until resumed</option><option value="1">for 1 hour</option><option value="8">for 8 hours</option><option value="24">for 1 day</option><option value="168">for 7 days</option></select>
<button type="submit">Pause</button></form></div>`;
}

/** The task's last pauses and resumes, folded: who, when, why, until when (`taskgate pauses` has them all). */
function pauseHistory(events: PauseEvent[]): Html | string {
  if (events.length === 0) return '';
  const items = events.map((event) => {
    const until =
      event.action === 'paused' ? (event.until ? ` until ${formatTime(event.until)}` : ' until resumed') : '';
    return html`<li><span class="num" title="${event.at}">${formatTime(event.at)}</span>: <b>${event.action}</b>${until} by ${event.by}${event.reason ? `: ${event.reason}` : ''}</li>`;
  });
  return html`<details class="pauses"><summary>Pause history (last ${events.length})</summary><ul>${items}</ul></details>`;
}

/** Each of the latest slots: when, its fate, who fired it first, duplicates refused, caught up. */
function slotList(slots: SlotReport[]): Html | string {
  if (slots.length === 0) return '';
  const items = slots.map((slot) => {
    const by = slot.caughtUp ? 'caught up' : slot.firedBy ? `by ${slot.firedBy}` : '';
    const dup = slot.duplicates > 0 ? ` +${slot.duplicates} dup` : '';
    const when = html`<span class="num" title="${slot.slot}">${formatTime(slot.slot).slice(5, 16)}</span>`;
    const badge = statusBadge(slot.fate);
    return slot.runId
      ? html`<li>${when}<a href="/status/runs/${slot.runId}">${badge}</a><small>${by}${dup}</small></li>`
      : html`<li>${when}${badge}</li>`;
  });
  return html`<ul class="slots" aria-label="latest slots">${items}</ul>`;
}

/** The next run in the schedule's zone, and in UTC when the zone is another. */
function nextRun(info: TaskInfo, now: Date): string {
  if (!info.nextRunAt) return 'on demand';
  const local =
    info.nextRunLocal && info.timeZone !== 'UTC'
      ? `${info.nextRunLocal.slice(0, 10)} ${info.nextRunLocal.slice(11, 16)} ${info.timeZone} = `
      : '';
  return `${local}${formatTime(info.nextRunAt)} (${relative(info.nextRunAt, now)})`;
}

/** How a run ended that counts as the task failing: what an operator has to look at. */
const FAILED_RUNS = new Set(['failed', 'interrupted', 'abandoned']);

/**
 * What the task's badge says, most pressing first: running, paused, its last run failed, overdue,
 * its last run cancelled, ok, never run.
 */
function taskState(view: TaskView): string {
  if (view.runs[0]?.status === 'running') return 'running';
  if (view.info.paused) return 'paused';
  const last = view.info.lastRun;
  if (last && FAILED_RUNS.has(last.status)) return 'failed';
  if (view.info.overdue) return 'overdue';
  if (last?.status === 'cancelled') return 'cancelled';
  return last ? 'ok' : 'idle';
}

function taskSection(view: TaskView, viewer: Viewer, now: Date, redact: Redactor): Html {
  const { info } = view;
  const state = taskState(view);
  const badges = [statusBadge(state)];
  if (state === 'running' && info.paused) badges.push(statusBadge('paused'));
  if ((state === 'running' || state === 'failed') && info.overdue) badges.push(statusBadge('overdue'));
  const pause = info.pause;
  return html`<section class="task" id="task-${info.name}" data-state="${state}">
<div class="task-head"><h2>${info.name}</h2>${badges}</div>
<p class="desc">${info.description}</p>
${pause ? html`<p class="notice s-paused"><b>Paused</b> ${pause.until ? `until ${formatTime(pause.until)} (${relative(pause.until, now)})` : 'until resumed'}, by ${pause.pausedBy} at ${formatTime(pause.pausedAt)}: ${pause.reason}</p>` : ''}
${info.overdue ? html`<p class="notice s-overdue"><b>Overdue</b>: a run was due at ${formatTime(info.dueAt)} (${relative(info.dueAt, now)}; grace ${formatDuration(info.graceMs)}); last success ${info.lastSuccess ? formatTime(info.lastSuccess.startedAt) : 'never'}.</p>` : ''}
<dl class="facts">
<div><dt>Schedule</dt><dd>${info.scheduleText}${info.schedule ? html` <code>${info.schedule}</code>` : ''}</dd></div>
<div><dt>Next run</dt><dd>${nextRun(info, now)}${info.paused && info.nextRunAt ? ' – skipped while paused' : ''}</dd></div>
<div><dt>Last success</dt><dd>${info.lastSuccess ? `${formatTime(info.lastSuccess.startedAt)} (${relative(info.lastSuccess.startedAt, now)})` : 'never'}</dd></div>
</dl>
${slotList(view.slots)}
${durationChart(view.runs)}
${runRows(view.runs, viewer, now, redact)}
${pauseHistory(view.pauses)}
${pauseControls(info, viewer)}
</section>`;
}

export function statusPage(
  tasks: TaskView[],
  viewer: Viewer,
  now: Date,
  redact: Redactor,
): { html: string; refresh: boolean } {
  const states = tasks.map(taskState);
  const count = (s: string) => states.filter((state) => state === s).length;
  const refresh = states.includes('running');
  const summary = html`<ul class="summary">
<li><b>${tasks.length}</b>tasks</li>
<li>${statusBadge('failed')} <b>${count('failed')}</b></li>
<li>${statusBadge('overdue')} <b>${tasks.filter((t) => t.info.overdue).length}</b></li>
<li>${statusBadge('paused')} <b>${tasks.filter((t) => t.info.paused).length}</b></li>
<li>${statusBadge('running')} <b>${count('running')}</b></li></ul>`;
  const body = html`${header(viewer, now, `${tasks.length} tasks`)}
<main>${summary}${refresh ? html`<p class="notice info">A run is in progress: this page refreshes every 5 seconds.</p>` : ''}
${tasks.map((task) => taskSection(task, viewer, now, redact))}</main>`;
  return { html: layout('taskgate status', body, { refresh }), refresh };
}

const json = (value: unknown, redact: Redactor) => JSON.stringify(redact.value(value), null, 2);

/** A run's error as the page may tell it: in plain words for the database's, redacted. */
function shownError(error: string | null, redact: Redactor): string | null {
  const text = publicError(error);
  return text === null ? null : redact.text(text);
}

/** The fields of a log line told besides its time, level and message. */
const LINE_HIDDEN = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'task', 'runId', 'requestId']);

function logLine(line: Record<string, unknown>, redact: Redactor): Html {
  const level =
    typeof line.level === 'number' ? (LEVELS[line.level] ?? String(line.level)) : String(line.level);
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(line)) {
    // A reason or message in a field may quote the database as much as an error does.
    if (!LINE_HIDDEN.has(key)) fields[key] = typeof value === 'string' ? publicError(value) : value;
  }
  // An error's stack and driver fields tell the insides: its message alone, made public.
  if (fields.err && typeof fields.err === 'object') {
    const message = (fields.err as { message?: unknown }).message;
    fields.err = publicError(typeof message === 'string' ? message : 'error');
  }
  const extra = Object.keys(fields).length ? JSON.stringify(redact.value(fields)) : '';
  const time = typeof line.time === 'number' ? new Date(line.time).toISOString().slice(11, 23) : '';
  return html`<tr><td class="num mono">${time}</td><td class="lvl lvl-${level}">${level}</td><td>${redact.text(String(line.msg ?? ''))}${extra ? html`<br><code>${extra}</code>` : ''}</td></tr>`;
}

const LEVELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

export function runPage(
  run: RunRecord,
  log: RunLogRecord | null,
  viewer: Viewer,
  now: Date,
  redact: Redactor,
): string {
  const write = viewer.role === 'write';
  const error = shownError(run.error, redact);
  const body = html`${header(viewer, now, `run of ${run.task}`)}
<main><section class="task">
<div class="task-head"><h2>${run.task}</h2>${statusBadge(run.status)}${run.dryRun ? html`<span class="badge s-idle">dry run</span>` : ''}</div>
<p class="desc mono">run ${run.id}</p>
<dl class="facts">
<div><dt>Started</dt><dd>${formatTime(run.startedAt)} (${relative(run.startedAt, now)})</dd></div>
<div><dt>Finished</dt><dd>${formatTime(run.finishedAt)}</dd></div>
<div><dt>Duration</dt><dd>${formatDuration(run.durationMs)}</dd></div>
<div><dt>Trigger</dt><dd>${run.trigger}${run.attempt > 1 ? ` (attempt ${run.attempt})` : ''}</dd></div>
${run.rerunOf ? html`<div><dt>Rerun of</dt><dd><a href="/status/runs/${run.rerunOf}">${run.rerunOf.slice(0, 8)}</a>${run.rerunReason ? `: ${run.rerunReason}` : ''}</dd></div>` : ''}
${run.cancel ? html`<div><dt>Cancel asked</dt><dd>by ${run.cancel.by} at ${formatTime(run.cancel.requestedAt)}${run.cancel.reason ? `: ${run.cancel.reason}` : ''}</dd></div>` : ''}
</dl>
${error ? html`<p class="notice s-failed">${error}</p>` : ''}
<h3>Params</h3><pre>${json(run.params, redact)}</pre>
<h3>Result</h3><pre>${run.result === null ? '–' : json(run.result, redact)}</pre>
<h3>Log</h3>
${log ? html`<table><thead><tr><th class="c-time">Time</th><th class="c-dur">Level</th><th>Message</th></tr></thead><tbody>${log.lines.map((line) => logLine(line, redact))}</tbody></table>${log.dropped ? html`<p class="empty">${log.dropped} more lines were not kept.</p>` : ''}` : html`<p class="empty">${run.status === 'running' ? 'Nothing saved yet: the log so far is saved every few seconds while the run goes on.' : 'Nothing was kept.'}</p>`}
${write ? html`<div class="controls">${run.status === 'running' ? cancelForm(run, viewer, true) : html`<form method="post" action="/status/runs/${run.id}/rerun">${csrfField(viewer)}<input type="text" name="reason" maxlength="500" placeholder="reason (optional)" aria-label="reason"><button type="submit">Rerun</button></form>`}</div>` : ''}
<p><a href="/status">← all tasks</a></p>
</section></main>`;
  return layout(`${run.task} run · taskgate`, body, { refresh: run.status === 'running' });
}

export function loginPage(message: string | null): string {
  const body = html`<main><form class="login" method="post" action="/status/login">
<h1>taskgate status</h1><p>Sign in with the status token (read-only) or the cron secret (read and control).</p>
${message ? html`<p class="error" role="alert">${message}</p>` : ''}
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button class="primary" type="submit">Sign in</button></form></main>`;
  return layout('Sign in · taskgate status', body);
}

export function errorPage(error: TaskgateError, message: string): string {
  const body = html`<main><section class="task"><div class="task-head"><h2>${error.status} ${error.code}</h2></div>
<p>${message}</p><p><a href="/status">← back to the status page</a></p></section></main>`;
  return layout(`${error.code} · taskgate status`, body);
}
