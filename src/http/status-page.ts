/**
 * The status page: one server-rendered HTML document from a {@link StatusSnapshot}. Pure (no clock, no I/O: every
 * relative time is against `generated_at`), no build step, no external assets (inline CSS and SVG), readable on a
 * phone, refreshes itself with `<meta http-equiv="refresh">` (a tiny script only shows a countdown). Everything that
 * comes from data is escaped with {@link escapeHtml}.
 */
import type { BroadcastView, StatusSnapshot } from '../jobs/status.ts';
import { formatSummary, type JobView, type RunView } from '../jobs/overview.ts';
import { formatRate, formatRatio, formatSeconds } from '../jobs/analytics.ts';
import {
  deletedPerHourChart,
  formatCount,
  formatLocal,
  safeTimeZone,
  tokensPerDayChart,
  usersPerDayChart,
} from './charts.ts';
import { escapeHtml } from './html.ts';

export { formatLocal } from './charts.ts';

/** Options of {@link renderStatusPage}. */
export interface StatusPageOptions {
  /** Seconds between automatic reloads (default 15; 0 turns them off). */
  refreshSeconds?: number;
}

/**
 * How far `iso` is from `nowIso`, in words: `in 42 s`, `3 min ago`, `2 h 5 min ago`, `1 d 3 h ago`, `now`.
 * Empty when either is missing or invalid.
 */
export function relativeTime(iso: string | null | undefined, nowIso: string): string {
  if (!iso) return '';
  const t = new Date(iso).getTime();
  const now = new Date(nowIso).getTime();
  if (!Number.isFinite(t) || !Number.isFinite(now)) return '';
  const diff = Math.round((t - now) / 1000);
  if (diff === 0) return 'now';
  const words = spanWords(Math.abs(diff));
  return diff > 0 ? `in ${words}` : `${words} ago`;
}

/** A span of whole seconds in words: `42 s`, `3 min`, `2 h 5 min`, `1 d 3 h`. */
function spanWords(s: number): string {
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** A duration in milliseconds, compactly: `850 ms`, `1.2 s`, `2 min 5 s`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
}

const KNOWN_STATUSES = new Set(['ok', 'error', 'skipped', 'abandoned', 'running', 'sending', 'sent', 'deleting']);

/** A coloured status badge (ok green, error red, skipped grey, abandoned orange, running blue). */
function badge(status: string): string {
  const cls = KNOWN_STATUSES.has(status) ? status : 'other';
  return `<span class="badge b-${cls}">${escapeHtml(status)}</span>`;
}

/** A time cell: local wall time, and the relative hint under it. */
function when(iso: string | null | undefined, s: StatusSnapshot): string {
  if (!iso) return '<span class="muted">—</span>';
  const rel = relativeTime(iso, s.generated_at);
  return `<time datetime="${escapeHtml(iso)}">${escapeHtml(formatLocal(iso, s.timezone))}</time>${rel ? `<br><small class="muted">${escapeHtml(rel)}</small>` : ''}`;
}

const CSS = `
:root{color-scheme:light;--fg:#1f2328;--muted:#656d76;--bg:#f6f8fa;--card:#fff;--line:#d0d7de}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:16px}
header{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:baseline;justify-content:space-between}
h1{font-size:1.5rem;margin:0}h2{font-size:1.15rem;margin:28px 0 10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px}
.muted{color:var(--muted)}small{font-size:.8rem}
.meta{margin:4px 0 0;color:var(--muted);font-size:.9rem}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.8rem;font-weight:600;color:#fff;background:#6e7781;white-space:nowrap}
.b-ok{background:#1a7f37}.b-error{background:#cf222e}.b-skipped{background:#6e7781}.b-abandoned{background:#d4740b}
.b-running,.b-sending,.b-deleting{background:#0969da}.b-sent{background:#8250df}
.health{font-size:1rem;padding:3px 12px}
.problems{margin:8px 0 0;padding:8px 12px 8px 28px;background:#ffebe9;border:1px solid #ff818266;border-radius:8px;color:#82071e}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;background:var(--card);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid var(--line)}
th{background:#f0f3f6;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.job-runs td{background:#fafbfc;padding:4px 10px}
tr.job-runs table{font-size:.82rem}
code{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.err{color:#a40e26;white-space:pre-wrap;overflow-wrap:anywhere;display:block;max-width:40ch}
.counts{white-space:normal;overflow-wrap:anywhere;max-width:34ch;display:block}
.stats{display:grid;grid-template-columns:repeat(4,1fr);gap:10px}
.stat .v{font-size:1.6rem;font-weight:600;font-variant-numeric:tabular-nums}
.stat.warn{background:#fff1e5;border-color:#d4740b}.stat.warn .v{color:#bc4c00}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.charts h3{font-size:.95rem;margin:0 0 6px}
svg.chart{width:100%;height:auto;display:block}
svg .axis{stroke:#57606a;stroke-width:1}svg .grid{stroke:#d0d7de;stroke-dasharray:4 3}svg .tickmark{stroke:#57606a}
svg .tick{font-size:13px;fill:#57606a}svg .tick.day{font-weight:700;fill:#1f2328}
svg .empty{font-size:16px;fill:#8c959f}
svg .bar{fill:#0969da}svg .bar:hover,svg .seg:hover{opacity:.75}
svg .seg-verified{fill:#1a7f37}svg .seg-bypassed{fill:#d4740b}svg .seg-not-used{fill:#8c959f}
footer{margin:28px 0 8px;color:var(--muted);font-size:.85rem}
a{color:#0969da}
@media (max-width:700px){main{padding:10px}.stats{grid-template-columns:1fr 1fr}.charts{grid-template-columns:1fr}h1{font-size:1.25rem}}
`;

function header(s: StatusSnapshot): string {
  const health = s.health.ok
    ? '<span class="badge b-ok health" id="health">OK</span>'
    : `<span class="badge b-error health" id="health">${s.health.problems.length || ''} PROBLEM${s.health.problems.length === 1 ? '' : 'S'}</span>`;
  const problems =
    !s.health.ok && s.health.problems.length > 0
      ? `<ul class="problems">${s.health.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul>`
      : '';
  const up = s.service_started_at
    ? ` · up since ${escapeHtml(formatLocal(s.service_started_at, s.timezone))} (${escapeHtml(relativeTime(s.service_started_at, s.generated_at).replace(/ ago$/, ''))})`
    : '';
  const telegram = s.telegram ? 'on' : 'off (no BOT_TOKEN)';
  return `<header>
<div><h1>tg-janitor</h1>
<p class="meta">generated <time datetime="${escapeHtml(s.generated_at)}" id="generated-at">${escapeHtml(formatLocal(s.generated_at, s.timezone))}</time> ${escapeHtml(s.timezone)}${up}</p>
<p class="meta">database ${escapeHtml(s.database)} · Telegram jobs ${telegram} · <a href="?">refresh now</a></p></div>
<div>${health}</div>
</header>${problems}`;
}

function runsTable(runs: RunView[], s: StatusSnapshot): string {
  const rows = runs.map(
    (r) =>
      `<tr><td>${badge(r.status)}${r.manual ? ' <small class="muted">manual</small>' : ''}</td><td>${when(r.started_at, s)}</td>` +
      `<td class="num">${escapeHtml(formatDuration(r.duration_ms))}</td><td><code class="counts">${escapeHtml(formatSummary(r.summary, 60))}</code></td>` +
      `<td>${r.error ? `<code class="err">${escapeHtml(r.error)}</code>` : ''}</td></tr>`,
  );
  return `<table><thead><tr><th>Status</th><th>Started</th><th>Duration</th><th>Counts</th><th>Error</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function jobRow(j: JobView, s: StatusSnapshot): string {
  const r = j.last_run;
  const last = r
    ? `${badge(r.status)}${r.manual ? ' <small class="muted">manual</small>' : ''}<br><small class="muted">${escapeHtml(relativeTime(r.finished_at ?? r.started_at, s.generated_at))}</small>`
    : '<span class="muted">never ran</span>';
  const duration = r
    ? r.finished_at === null
      ? `running ${relativeTime(r.started_at, s.generated_at).replace(/ ago$/, '')}`
      : formatDuration(r.duration_ms)
    : '—';
  const next = j.next_run ? when(j.next_run, s) : '<span class="muted">off</span>';
  const schedule = `${escapeHtml(j.schedule_words)}<br><code class="muted">${escapeHtml(j.schedule)}</code>`;
  const runs =
    j.recent_runs.length > 0
      ? `<details><summary>Recent runs of ${escapeHtml(j.name)} (${j.recent_runs.length})</summary>${runsTable(j.recent_runs, s)}</details>`
      : '<small class="muted">no runs recorded yet</small>';
  return (
    `<tr class="job" data-job="${escapeHtml(j.name)}"><th scope="row">${escapeHtml(j.name)}</th><td>${schedule}</td><td>${next}</td><td>${last}</td>` +
    `<td><code class="counts">${escapeHtml(formatSummary(r?.summary, 60))}</code></td><td class="num">${escapeHtml(duration)}</td>` +
    `<td>${r?.error ? `<code class="err">${escapeHtml(r.error)}</code>` : ''}</td></tr>\n` +
    `<tr class="job-runs" data-job="${escapeHtml(j.name)}"><td colspan="7">${runs}</td></tr>`
  );
}

function jobs(s: StatusSnapshot): string {
  const rows = s.jobs.map((j) => jobRow(j, s)).join('\n');
  return `<h2>Jobs</h2>
<div class="scroll"><table id="jobs"><thead><tr><th>Job</th><th>Schedule</th><th>Next run</th><th>Last run</th><th>Counts</th><th>Duration</th><th>Last error</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="7" class="muted">no jobs</td></tr>'}
</tbody></table></div>`;
}

function deletions(s: StatusSnapshot): string {
  const d = s.deletions;
  const stat = (id: string, label: string, value: string, extra = '', warn = false) =>
    `<div class="card stat${warn ? ' warn' : ''}" id="${id}"><div class="muted">${label}</div><div class="v">${value}</div>${extra}</div>`;
  const next = d.next_due_at ? `${escapeHtml(formatLocal(d.next_due_at, s.timezone).slice(11))}` : '—';
  const nextExtra = d.next_due_at
    ? `<small class="muted">${escapeHtml(formatLocal(d.next_due_at, s.timezone))}<br>${escapeHtml(relativeTime(d.next_due_at, s.generated_at))}</small>`
    : '<small class="muted">nothing pending</small>';
  return `<h2>Pending deletions</h2>
<div class="stats">${stat('deletions-total', 'Total', formatCount(d.total))}${stat(
    'deletions-overdue',
    'Overdue',
    formatCount(d.overdue),
    d.overdue > 0 ? '<small>past their delete time</small>' : '',
    d.overdue > 0,
  )}${stat('deletions-next-hour', 'Due in the next hour', formatCount(d.due_next_hour))}${stat('deletions-next', 'Next due', next, nextExtra)}</div>`;
}

function broadcastRow(b: BroadcastView, s: StatusSnapshot): string {
  const text = b.text ?? '';
  const short = text.length > 80 ? `${text.slice(0, 79)}…` : text;
  return (
    `<tr><td class="num">${escapeHtml(b.id)}</td><td>${badge(b.status)}</td><td>${short ? escapeHtml(short) : '<span class="muted">(media)</span>'}</td>` +
    `<td>${when(b.created_at, s)}</td><td>${when(b.delete_at, s)}</td><td class="num">${escapeHtml(formatCount(b.sent_count))}</td>` +
    `<td class="num">${escapeHtml(formatCount(b.failed_count))}</td><td class="num">${escapeHtml(formatCount(b.recipients_left))}</td></tr>`
  );
}

function broadcasts(s: StatusSnapshot): string {
  if (s.broadcasts.length === 0)
    return '<h2>Broadcasts in progress</h2>\n<p class="card muted" id="broadcasts">none</p>';
  return `<h2>Broadcasts in progress</h2>
<div class="scroll"><table id="broadcasts"><thead><tr><th>#</th><th>Status</th><th>Text</th><th>Created</th><th>Delete at</th><th>Sent</th><th>Failed</th><th>Left to delete</th></tr></thead>
<tbody>${s.broadcasts.map((b) => broadcastRow(b, s)).join('\n')}</tbody></table></div>`;
}

function charts(s: StatusSnapshot): string {
  return `<h2>Charts</h2>
<div class="charts">
<figure class="card" style="margin:0"><h3>Messages deleted per hour (48 h)</h3>${deletedPerHourChart(s.deleted_per_hour, s.timezone)}</figure>
<figure class="card" style="margin:0"><h3>Tokens per day (14 days)</h3>${tokensPerDayChart(s.tokens_per_day)}</figure>
<figure class="card" style="margin:0"><h3>Users (30 days)</h3>${usersPerDayChart(s.users_per_day)}</figure>
</div>`;
}

/** The analytics of the snapshot's days, newest first: one row per day, rates as percentages, `–` where none. */
function analytics(s: StatusSnapshot): string {
  const head = ['Verified', 'Bypassed', 'Bypassed, 7 days', 'On time', 'Lateness p50', 'Lateness p99'];
  const heads = [...head, 'Files per active user', 'Broadcast reach'].map((h) => `<th>${h}</th>`).join('');
  const rows = s.analytics.map((d) => {
    const cells = [
      formatRate(d.verification_rate),
      formatRate(d.bypass_rate),
      formatRate(d.bypass_rate_7d),
      formatRate(d.on_time_share),
      formatSeconds(d.lateness_p50_s),
      formatSeconds(d.lateness_p99_s),
      formatRatio(d.deliveries_per_active_user),
      formatRate(d.broadcast_reach),
    ];
    return (
      `<tr data-day="${escapeHtml(d.day)}"><th scope="row">${escapeHtml(d.day)}</th>` +
      `${cells.map((c) => `<td class="num">${escapeHtml(c)}</td>`).join('')}</tr>`
    );
  });
  return `<h2>Analytics (${s.analytics.length} days)</h2>
<div class="scroll"><table id="analytics"><thead><tr><th>Day</th>${heads}</tr></thead>
<tbody>${rows.join('\n') || '<tr><td colspan="9" class="muted">no data yet</td></tr>'}</tbody></table></div>`;
}

/**
 * The whole status page for a snapshot: header (generated time in the snapshot's zone, health), jobs, pending
 * deletions, broadcasts in progress, the charts, and the last days' analytics. A pure function of its arguments. Its links and its
 * self-refresh reload the page's own address and carry no token: the server holds a remote viewer's token in a
 * cookie, so it never lands in a link, the history or a proxy's log.
 */
export function renderStatusPage(s: StatusSnapshot, opts: StatusPageOptions = {}): string {
  const refresh = Math.max(0, Math.floor(opts.refreshSeconds ?? 15));
  const tz = safeTimeZone(s.timezone);
  const snap: StatusSnapshot = tz === s.timezone ? s : { ...s, timezone: tz };
  const meta = refresh > 0 ? `\n<meta http-equiv="refresh" content="${refresh}">` : '';
  const countdown =
    refresh > 0
      ? `<span id="countdown" data-seconds="${refresh}">refreshes every ${refresh} s</span>
<script>(function(){var e=document.getElementById('countdown'),n=${refresh};setInterval(function(){n=n>1?n-1:0;e.textContent='refreshing in '+n+' s';},1000);})();</script>`
      : 'automatic refresh off';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">${meta}
<meta name="robots" content="noindex">
<title>${snap.health.ok ? '' : '⚠ '}tg-janitor status</title>
<style>${CSS}</style>
</head>
<body>
<main>
${header(snap)}
${jobs(snap)}
${deletions(snap)}
${broadcasts(snap)}
${charts(snap)}
${analytics(snap)}
<footer>${countdown} · <a href="?">refresh now</a> · times in ${escapeHtml(snap.timezone)}</footer>
</main>
</body>
</html>
`;
}
