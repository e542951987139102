import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatLocal, relativeTime, renderStatusPage } from '../src/http/status-page.ts';
import { formatSummary } from '../src/jobs/overview.ts';
import { escapeHtml } from '../src/http/html.ts';
import type { StatusSnapshot } from '../src/jobs/status.ts';
import type { JobView, RunView } from '../src/jobs/overview.ts';

const GENERATED = '2025-03-10T12:00:00.000Z'; // 17:30:00 in Asia/Kolkata (+05:30)
const at = (offsetS: number) => new Date(Date.parse(GENERATED) + offsetS * 1000).toISOString();

function run(
  id: number,
  status: string,
  startedOffsetS: number,
  durationMs: number | null,
  summary: Record<string, unknown> | null,
  error: string | null = null,
): RunView {
  return {
    id,
    status,
    manual: false,
    scheduled_for: at(startedOffsetS),
    started_at: at(startedOffsetS),
    finished_at: durationMs === null ? null : at(startedOffsetS + durationMs / 1000),
    duration_ms: durationMs,
    summary,
    error,
  };
}

function job(name: string, schedule: string, words: string, nextOffsetS: number | null, runs: RunView[]): JobView {
  return {
    name,
    schedule,
    schedule_words: words,
    next_run: nextOffsetS === null ? null : at(nextOffsetS),
    next_run_local: nextOffsetS === null ? null : formatLocal(at(nextOffsetS), 'Asia/Kolkata'),
    last_run: runs[0] ?? null,
    recent_runs: runs,
  };
}

const XSS = 'connect ECONNREFUSED <script>alert("pwned")</script> & more';

/** 48 hourly buckets; every 5th is zero. */
const HOURS = Array.from({ length: 48 }, (_, i) => ({ hour: at((i - 47) * 3600), messages: i % 5 === 0 ? 0 : i * 2 }));
/** 14 days; some series are zero on some days. */
const DAYS = Array.from({ length: 14 }, (_, i) => ({
  day: new Date(Date.UTC(2025, 1, 25 + i)).toISOString().slice(0, 10), // 2025-02-25 … 2025-03-10
  verified: i % 3 === 0 ? 0 : i + 1,
  bypassed: i % 2 === 0 ? 0 : 2,
  not_used: i === 13 ? 0 : 5,
}));
/** 30 days of users: 10 on the first day, 3 more each day after. */
const USERS = Array.from({ length: 30 }, (_, i) => ({
  day: new Date(Date.UTC(2025, 1, 9 + i)).toISOString().slice(0, 10), // 2025-02-09 … 2025-03-10
  total: 10 + 3 * i,
  new: i === 0 ? 10 : 3,
}));
/** Two days of analytics, newest first: today with nothing counted, yesterday with every figure. */
const ANALYTICS = [
  {
    day: '2025-03-10',
    verification_rate: null,
    bypass_rate: null,
    bypass_rate_7d: 0.25,
    on_time_share: null,
    lateness_p50_s: null,
    lateness_p99_s: null,
    deliveries_per_active_user: null,
    broadcast_reach: null,
  },
  {
    day: '2025-03-09',
    verification_rate: 0.6,
    bypass_rate: 0.35,
    bypass_rate_7d: 0.4286,
    on_time_share: 0.75,
    lateness_p50_s: 1,
    lateness_p99_s: 57.6,
    deliveries_per_active_user: 1.5,
    broadcast_reach: 0.8571,
  },
];
const NONZERO_SEGMENTS = DAYS.reduce((n, d) => n + [d.verified, d.bypassed, d.not_used].filter((v) => v > 0).length, 0);

function fixture(): StatusSnapshot {
  return {
    generated_at: GENERATED,
    timezone: 'Asia/Kolkata',
    service_started_at: at(-3 * 3600 - 300),
    database: 'sqlite:./data/tg-janitor.db',
    telegram: true,
    jobs: [
      job('token-cleanup', '0 0,12 * * *', 'at 00:00 and 12:00', 6.5 * 3600, [run(10, 'ok', -180, 42, { deleted: 3 })]),
      job('message-deleter', '* * * * *', 'every minute', 42, [
        run(21, 'error', -60, 1500, { rows: 2, messages_deleted: 0 }, XSS),
        run(20, 'ok', -120, 850, { rows: 2, messages_deleted: 5, notices_sent: 2 }),
        run(19, 'skipped', -180, 0, { reason: 'the previous run is still running' }),
      ]),
      job('broadcast-deleter', '0 * * * *', 'every hour', 1800, [
        run(30, 'running', -30, null, null),
        run(29, 'abandoned', -3600, 0, null),
      ]),
      job('token-count-reset', 'off', 'off', null, []),
    ],
    deletions: { total: 17, overdue: 3, due_next_hour: 9, next_due_at: at(-20) },
    broadcasts: [
      {
        id: 7,
        status: 'deleting',
        text: 'Sale <b>today</b> & "tomorrow"',
        created_at: at(-86400),
        delete_at: at(-60),
        sent_count: 120,
        failed_count: 4,
        recipients_left: 37,
      },
      {
        id: 8,
        status: 'sent',
        text: null,
        created_at: at(-3600),
        delete_at: at(7200),
        sent_count: 10,
        failed_count: 0,
        recipients_left: 10,
      },
    ],
    deleted_per_hour: HOURS,
    tokens_per_day: DAYS,
    users_per_day: USERS,
    analytics: ANALYTICS,
    health: {
      ok: false,
      problems: ['3 pending deletions are overdue', 'message-deleter last run failed: <oops>'],
      failing: ['message-deleter'],
    },
  };
}

function emptySnapshot(): StatusSnapshot {
  return {
    ...fixture(),
    timezone: 'UTC',
    service_started_at: null,
    jobs: [],
    deletions: { total: 0, overdue: 0, due_next_hour: 0, next_due_at: null },
    broadcasts: [],
    deleted_per_hour: HOURS.map((h) => ({ ...h, messages: 0 })),
    tokens_per_day: DAYS.map((d) => ({ ...d, verified: 0, bypassed: 0, not_used: 0 })),
    users_per_day: USERS.map((d) => ({ ...d, total: 0, new: 0 })),
    analytics: [],
    health: { ok: true, problems: [], failing: [] },
  };
}

/** The `<svg id="…">…</svg>` element. */
function svgById(html: string, id: string): string {
  const m = new RegExp(`<svg id="${id}"[\\s\\S]*?</svg>`).exec(html);
  assert.ok(m, `svg #${id} present`);
  return m[0];
}

/** The contents of the first `<g class="…">` in a fragment. */
function group(fragment: string, cls: string): string {
  const m = new RegExp(`<g class="${cls}">([\\s\\S]*?)</g>`).exec(fragment);
  assert.ok(m, `group .${cls} present`);
  return m[1]!;
}

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

test('helpers: escaping, local time, relative time, durations, summaries', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  assert.equal(escapeHtml(null), '');
  assert.equal(formatLocal('2025-03-10T12:00:00Z', 'Asia/Kolkata'), '2025-03-10 17:30:00');
  assert.equal(formatLocal('2025-03-10T12:00:00Z', 'UTC'), '2025-03-10 12:00:00');
  assert.equal(formatLocal(null, 'UTC'), '—');
  assert.equal(formatLocal('not a date', 'UTC'), '—');
  assert.equal(formatLocal('2025-03-10T12:00:00Z', 'Not/AZone'), '2025-03-10 12:00:00');
  assert.equal(relativeTime(at(42), GENERATED), 'in 42 s');
  assert.equal(relativeTime(at(-180), GENERATED), '3 min ago');
  assert.equal(relativeTime(at(-(2 * 3600 + 300)), GENERATED), '2 h 5 min ago');
  assert.equal(relativeTime(at(27 * 3600), GENERATED), 'in 1 d 3 h');
  assert.equal(relativeTime(GENERATED, GENERATED), 'now');
  assert.equal(relativeTime(null, GENERATED), '');
  assert.equal(formatDuration(850), '850 ms');
  assert.equal(formatDuration(1500), '1.5 s');
  assert.equal(formatDuration(125_000), '2 min 5 s');
  assert.equal(formatDuration(null), '—');
  assert.equal(formatSummary({ deleted: 3, rows: 2, nested: { a: 1 }, skip: null }), 'deleted=3 rows=2 nested={"a":1}');
  assert.equal(formatSummary(null), '');
  assert.equal(
    formatSummary({ ids: 'x'.repeat(80) }, 60),
    `ids=${'x'.repeat(59)}…`,
    'the status page cuts long values',
  );
  assert.equal(formatSummary({ ids: 'x'.repeat(80) }), `ids=${'x'.repeat(80)}`, 'the CLI shows them whole');
});

test('renders a complete, phone-friendly, self-refreshing document', () => {
  const html = renderStatusPage(fixture());
  assert.match(html, /^<!doctype html>\n<html lang="en">/);
  assert.match(html, /<meta charset="utf-8">/);
  assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  // The refresh reloads the page's own address: no token is carried (the server keeps it in a cookie).
  assert.match(html, /<meta http-equiv="refresh" content="15">/);
  assert.match(html, /href="\?">refresh now</);
  assert.doesNotMatch(html, /token=/);
  assert.match(html, /@media \(max-width:700px\)/);
  assert.match(html, /<\/html>\n$/);
  // No external assets.
  assert.doesNotMatch(html, /<link\b|<script[^>]+src=|<img\b|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);

  const custom = renderStatusPage(fixture(), { refreshSeconds: 60 });
  assert.match(custom, /<meta http-equiv="refresh" content="60">/);
  assert.match(custom, /href="\?">refresh now</);
  assert.doesNotMatch(renderStatusPage(fixture(), { refreshSeconds: 0 }), /http-equiv="refresh"/);
});

test('header: generated time in the snapshot zone and the health verdict', () => {
  const html = renderStatusPage(fixture());
  assert.match(html, /id="generated-at">2025-03-10 17:30:00<\/time> Asia\/Kolkata/);
  assert.match(html, /up since 2025-03-10 14:25:00 \(3 h 5 min\)/);
  assert.match(html, /id="health">2 PROBLEMS</);
  assert.match(html, /<li>3 pending deletions are overdue<\/li>/);
  assert.match(html, /<li>message-deleter last run failed: &lt;oops&gt;<\/li>/);
  const ok = renderStatusPage(emptySnapshot());
  assert.match(ok, /id="health">OK</);
  assert.doesNotMatch(ok, /class="problems"/);
});

test('jobs table: one row per job with schedule, next run, status badge, counts, duration, error', () => {
  const html = renderStatusPage(fixture());
  const table = /<table id="jobs">[\s\S]*?<\/tbody><\/table><\/div>/.exec(html)?.[0] ?? '';
  assert.ok(table, 'jobs table present');
  const rows = [...table.matchAll(/<tr class="job" data-job="([^"]+)">([\s\S]*?)<\/tr>\n/g)];
  assert.deepEqual(
    rows.map((r) => r[1]),
    ['token-cleanup', 'message-deleter', 'broadcast-deleter', 'token-count-reset'],
  );
  const row = (name: string) => rows.find((r) => r[1] === name)?.[2] ?? '';

  const tc = row('token-cleanup');
  assert.match(tc, /at 00:00 and 12:00<br><code class="muted">0 0,12 \* \* \*<\/code>/);
  assert.match(tc, /2025-03-11 00:00:00<\/time><br><small class="muted">in 6 h 30 min</); // next run, Kolkata wall time
  assert.match(tc, /<span class="badge b-ok">ok<\/span>/);
  assert.match(tc, /deleted=3/);
  assert.match(tc, /42 ms/);

  const md = row('message-deleter');
  assert.match(md, /<span class="badge b-error">error<\/span>/);
  assert.match(md, /rows=2 messages_deleted=0/);
  assert.match(md, /1\.5 s/);
  assert.match(md, /in 42 s/);
  assert.match(md, /connect ECONNREFUSED &lt;script&gt;alert\(&quot;pwned&quot;\)&lt;\/script&gt; &amp; more/);

  const bd = row('broadcast-deleter');
  assert.match(bd, /<span class="badge b-running">running<\/span>/);
  assert.match(bd, /running 30 s/);

  const reset = row('token-count-reset');
  assert.match(reset, /never ran/);
  assert.match(reset, />off</);

  // Recent runs, collapsible, per job.
  assert.match(html, /<details><summary>Recent runs of message-deleter \(3\)<\/summary>/);
  assert.match(html, /<span class="badge b-skipped">skipped<\/span>/);
  assert.match(html, /<span class="badge b-abandoned">abandoned<\/span>/);
  assert.match(html, /reason=the previous run is still running/);
  assert.match(html, /no runs recorded yet/);
});

test('everything user-derived is escaped', () => {
  const html = renderStatusPage(fixture());
  assert.ok(!html.includes('<script>alert'), 'no raw <script> from the error');
  assert.ok(!html.includes('<oops>'));
  assert.ok(!html.includes('<b>today</b>'));
  assert.match(html, /Sale &lt;b&gt;today&lt;\/b&gt; &amp; &quot;tomorrow&quot;/);
  // The only script is the page's own countdown.
  assert.equal(count(html, /<script>/g), 1);
});

test('pending deletions and broadcasts', () => {
  const html = renderStatusPage(fixture());
  assert.match(html, /id="deletions-total"><div class="muted">Total<\/div><div class="v">17</);
  assert.match(
    html,
    /class="card stat warn" id="deletions-overdue"><div class="muted">Overdue<\/div><div class="v">3</,
  );
  assert.match(html, /id="deletions-next-hour"><div class="muted">Due in the next hour<\/div><div class="v">9</);
  assert.match(html, /id="deletions-next">[\s\S]*?17:29:40[\s\S]*?20 s ago/);
  const b = /<table id="broadcasts">[\s\S]*?<\/table>/.exec(html)?.[0] ?? '';
  assert.equal(count(b, /<tr>/g), 3); // header + 2
  assert.match(b, /<span class="badge b-deleting">deleting<\/span>/);
  assert.match(b, /\(media\)/);
  assert.match(b, />120<\/td><td class="num">4<\/td><td class="num">37</);

  const empty = renderStatusPage(emptySnapshot());
  assert.match(empty, /class="card stat" id="deletions-overdue"/);
  assert.match(empty, /<p class="card muted" id="broadcasts">none<\/p>/);
  assert.match(empty, /nothing pending/);
});

test('chart 1: 48 hourly bars with tooltips, hour labels in the zone, max label', () => {
  const svg = svgById(renderStatusPage(fixture()), 'chart-deleted-per-hour');
  assert.match(svg, /^<svg id="chart-deleted-per-hour" class="chart" role="img" aria-label="Messages deleted per hour/);
  const bars = group(svg, 'bars');
  assert.equal(count(bars, /<rect /g), 48);
  assert.equal(count(bars, /<title>/g), 48);
  // Last bucket starts 12:00 UTC = 17:30 Kolkata and has 47*2 = 94 messages.
  assert.match(bars, /<title>2025-03-10 17:30: 94 messages deleted<\/title>/);
  assert.match(bars, /<title>2025-03-10 10:30: 0 messages deleted<\/title>/); // i = 40
  const max = Math.max(...HOURS.map((h) => h.messages));
  assert.match(svg, new RegExp(`class="tick max-label"[^>]*>${max}<`));
  // Labels at local hours divisible by 6 (Kolkata: xx:30), the date at local midnight.
  const labels = group(svg, 'x-labels');
  const texts = [...labels.matchAll(/<text[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]);
  assert.deepEqual(texts, ['18:30', '03-09', '06:30', '12:30', '18:30', '03-10', '06:30', '12:30']);
});

test('chart 2: stacked tokens per day, zero segments left out, legend', () => {
  const svg = svgById(renderStatusPage(fixture()), 'chart-tokens-per-day');
  assert.match(
    svg,
    /role="img" aria-label="Tokens created per day over the last 14 days: \d+ verified, 14 bypassed, 65 not used"/,
  );
  const stacks = group(svg, 'stacks');
  assert.equal(NONZERO_SEGMENTS, 29);
  assert.equal(count(stacks, /<rect /g), NONZERO_SEGMENTS);
  assert.equal(count(stacks, /class="seg seg-verified"/g), DAYS.filter((d) => d.verified > 0).length);
  assert.equal(count(stacks, /class="seg seg-bypassed"/g), 7);
  assert.equal(count(stacks, /class="seg seg-not-used"/g), 13);
  assert.match(stacks, /<title>2025-02-26: 2 verified \(of 9\)<\/title>/);
  const legend = group(svg, 'legend');
  assert.deepEqual(
    [...legend.matchAll(/<text[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]),
    ['verified', 'bypassed', 'not used'],
  );
  assert.equal(count(group(svg, 'x-labels'), /<text /g), 14);
  // Stacked: each day's segments touch, bottom segment sits on the baseline (y + height = 198).
  const first = /<rect class="seg seg-not-used" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"/.exec(stacks);
  assert.ok(first);
  assert.ok(Math.abs(Number(first[1]) + Number(first[2]) - 198) < 0.2);
});

test('empty data still renders readable charts and the page', () => {
  const html = renderStatusPage(emptySnapshot());
  const c1 = svgById(html, 'chart-deleted-per-hour');
  assert.equal(count(group(c1, 'bars'), /<rect /g), 48);
  assert.match(c1, /no data yet/);
  assert.match(c1, /<line class="axis"/);
  const c2 = svgById(html, 'chart-tokens-per-day');
  assert.equal(count(group(c2, 'stacks'), /<rect /g), 0);
  assert.match(c2, /no data yet/);
  assert.match(html, /<tr><td colspan="7" class="muted">no jobs<\/td><\/tr>/);
  assert.match(html, /id="generated-at">2025-03-10 12:00:00<\/time> UTC/);

  // No buckets at all (a brand-new database).
  const bare = renderStatusPage({ ...emptySnapshot(), deleted_per_hour: [], tokens_per_day: [] });
  assert.match(svgById(bare, 'chart-deleted-per-hour'), /no data yet/);
  assert.match(svgById(bare, 'chart-tokens-per-day'), /no data yet/);
});

test('the users chart: one bar per day for 30 days, each with its total and new users; empty says so', () => {
  const c = svgById(renderStatusPage(fixture()), 'chart-users-per-day');
  assert.equal(count(group(c, 'bars'), /<rect /g), 30);
  assert.match(c, /<title>2025-03-10: 97 users, 3 new<\/title>/);
  assert.match(c, /<title>2025-02-09: 10 users, 10 new<\/title>/);
  assert.match(c, /aria-label="Registered users over the last 30 days: 97 now, 97 joined"/);
  assert.match(c, /max 97 users/);
  assert.match(svgById(renderStatusPage(emptySnapshot()), 'chart-users-per-day'), /no data yet/);
});

test('the analytics table: a row per day, newest first, rates as percentages, a dash where nothing was counted', () => {
  const html = renderStatusPage(fixture());
  const table = /<table id="analytics">[\s\S]*?<\/table>/.exec(html)?.[0] ?? '';
  assert.match(html, /<h2>Analytics \(2 days\)<\/h2>/);
  const cells = (day: string) =>
    [
      ...(new RegExp(`<tr data-day="${day}">([\\s\\S]*?)</tr>`).exec(table)?.[1] ?? '').matchAll(
        /<td[^>]*>(.*?)<\/td>/g,
      ),
    ].map((m) => m[1]);
  assert.deepEqual(cells('2025-03-09'), ['60.0%', '35.0%', '42.9%', '75.0%', '1 s', '57.6 s', '1.50', '85.7%']);
  assert.deepEqual(cells('2025-03-10'), ['–', '–', '25.0%', '–', '–', '–', '–', '–']);
  assert.ok(table.indexOf('2025-03-10') < table.indexOf('2025-03-09'), 'newest first');
  assert.match(renderStatusPage(emptySnapshot()), /<table id="analytics">[\s\S]*no data yet/);
});

test('rendering is pure: same snapshot, same output', () => {
  assert.equal(renderStatusPage(fixture()), renderStatusPage(fixture()));
});
