import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { createJanitor } from '../src/janitor.ts';
import type { Store } from '../src/store/db.ts';
import { addToDay, noteActive, saveDay, type DayFigures } from '../src/store/daily-stats.ts';
import {
  ANALYTICS_FIELDS,
  addLateness,
  analyticsOfDays,
  emptyLateness,
  latenessBucket,
} from '../src/store/analytics.ts';
import { countTokenEvent } from '../src/store/stats.ts';
import {
  analyticsOf,
  latenessQuantile,
  recentAnalytics,
  recentStats,
  writeAnalytics,
  type AnalyticsDeps,
} from '../src/jobs/analytics.ts';
import { collectStatus } from '../src/jobs/status.ts';
import { renderStatusPage } from '../src/http/status-page.ts';
import { formatAnalyticsDays } from '../src/bot/admin.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { runContext } from './support/context.ts';

const logger = createLogger({ level: 'silent' });
const TZ = 'Asia/Kolkata'; // UTC+5:30: a local day runs from 18:30 UTC the day before
const NOW = '2026-11-29T12:00:00Z'; // 17:30 on the 29th in Kolkata

/** A day's figures: zeros but for `f`. */
const figures = (f: Partial<DayFigures>): DayFigures => ({
  users_total: 0,
  users_new: 0,
  users_active: 0,
  users_blocked: 0,
  tokens_created: 0,
  tokens_verified: 0,
  tokens_bypassed: 0,
  files_delivered: 0,
  deletions_done: 0,
  deletions_on_time: 0,
  deletions_late: 0,
  deletions_failed: 0,
  broadcasts_sent: 0,
  broadcasts_deleted: 0,
  recipients_reached: 0,
  broadcast_audience: 0,
  ...f,
});

/** A histogram from lateness values in seconds. */
function histogram(seconds: number[]) {
  const h = emptyLateness();
  for (const s of seconds) h[latenessBucket(s)]!++;
  return h;
}

test('lateness quantiles: linear inside the bucket the rank falls in; the unbounded bucket reports an hour', () => {
  // 4 deletions in (0, 0.25] s and 4 in (2, 5] s. p50: rank 4 ends the first bucket: 0 + 0.25 × 4/4 = 0.25 s.
  // p99: rank 7.92 falls in (2, 5] with 4 below it: 2 + 3 × (7.92 − 4)/4 = 4.94 s.
  const h = histogram([0.1, 0.1, 0.2, 0.25, 3, 3, 4, 5]);
  assert.equal(latenessQuantile(h, 0.5), 0.25);
  assert.equal(latenessQuantile(h, 0.99), 4.94);
  assert.equal(latenessQuantile(emptyLateness(), 0.5), null, 'no deletions: no percentile');
  assert.equal(latenessQuantile(histogram([7200]), 0.99), 3600, 'beyond an hour: the bucket has no upper bound');
  assert.deepEqual(
    [0, 0.25, 0.2501, 1, 1.001, 3600, 3601].map(latenessBucket),
    [0, 0, 1, 2, 3, 11, 12],
    'upper bounds are inclusive',
  );
});

test('analyticsOf: rates of the day, the 7-day trend, null where nothing was counted to divide by', () => {
  const day = figures({
    tokens_created: 7,
    tokens_verified: 3,
    tokens_bypassed: 2,
    deletions_done: 8,
    deletions_on_time: 6,
    files_delivered: 5,
    users_active: 3,
    recipients_reached: 9,
    broadcast_audience: 12,
  });
  const week = [day, figures({ tokens_created: 13, tokens_bypassed: 4 })];
  assert.deepEqual(analyticsOf(day, week, histogram([0.1, 0.1, 0.2, 0.25, 3, 3, 4, 5])), {
    verification_rate: 0.4286, // 3/7
    bypass_rate: 0.2857, // 2/7
    bypass_rate_7d: 0.3, // (2 + 4)/(7 + 13)
    on_time_share: 0.75, // 6/8
    lateness_p50_s: 0.25,
    lateness_p99_s: 4.94,
    deliveries_per_active_user: 1.6667, // 5/3
    broadcast_reach: 0.75, // 9/12
  });
  const none = analyticsOf(figures({}), [figures({})], emptyLateness());
  assert.ok(ANALYTICS_FIELDS.every((k) => none[k] === null));
});

test('SCHEDULE_ANALYTICS is hourly and BYPASS_ALERT_RATE 0.3 by default; a bad rate names the variable', () => {
  const c = loadConfig({});
  assert.equal(c.schedules.analytics, '0 * * * *');
  assert.equal(c.bypassAlertRate, 0.3);
  assert.equal(loadConfig({ BYPASS_ALERT_RATE: '0' }).bypassAlertRate, 0);
  for (const [value, why] of [
    ['1.5', /^BYPASS_ALERT_RATE="1.5" is not valid: expected at most 1$/],
    ['30%', /^BYPASS_ALERT_RATE="30%" is not valid: expected a number from 0 to 1$/],
  ] as const) {
    assert.throws(
      () => loadConfig({ BYPASS_ALERT_RATE: value }),
      (e: Error) => e instanceof ConfigError && e.variable === 'BYPASS_ALERT_RATE' && why.test(e.message),
    );
  }
});

/**
 * Seeded figures (Kolkata days), the days just ended written by the stats job, today's counted as things happen:
 * - 11-22 (stats row): 5 tokens, 5 bypassed.
 * - 11-25 (stats row): 10 tokens, 5 verified, 2 bypassed.
 * - 11-27 (no stats row: counted from the counters): 2 tokens.
 * - 11-28, the day just ended (stats row): 20 tokens, 12 verified, 7 bypassed; 6 files to 4 active users; 4
 *   deletions done, 3 on time, lateness 0.1, 0.4, 0.9 and 45 s; a broadcast reached 6 of 7.
 * - 11-29, today: 10 tokens, 3 verified, 1 bypassed; 2 files to 3 active users; 2 deletions done, 1 on time, lateness
 *   0.2 and 3 s.
 */
async function seed(store: Store): Promise<void> {
  await saveDay(store, '2026-11-22', figures({ tokens_created: 5, tokens_bypassed: 5 }), 0);
  await saveDay(store, '2026-11-25', figures({ tokens_created: 10, tokens_verified: 5, tokens_bypassed: 2 }), 0);
  for (let i = 0; i < 2; i++) await countTokenEvent(store, '2026-11-27', 'created');
  const yesterday = {
    tokens_created: 20,
    tokens_verified: 12,
    tokens_bypassed: 7,
    users_active: 4,
    files_delivered: 6,
    deletions_done: 4,
    deletions_on_time: 3,
    deletions_late: 1,
    broadcasts_sent: 1,
    recipients_reached: 6,
    broadcast_audience: 7,
  };
  await saveDay(store, '2026-11-28', figures(yesterday), 0);
  await addLateness(store, '2026-11-28', histogram([0.1, 0.4]));
  await addLateness(store, '2026-11-28', histogram([0.9, 45])); // a second batch adds to the first
  for (const [event, n] of [
    ['created', 10],
    ['verified', 3],
    ['bypassed', 1],
  ] as const)
    for (let i = 0; i < n; i++) await countTokenEvent(store, '2026-11-29', event);
  for (const u of [1, 2, 3]) await noteActive(store, '2026-11-29', u);
  await addToDay(store, '2026-11-29', { files_delivered: 2, deletions_done: 2, deletions_on_time: 1 });
  await addToDay(store, '2026-11-29', { deletions_late: 1 });
  await addLateness(store, '2026-11-29', histogram([0.2, 3]));
}

/** Hand-computed analytics of the seeded days (7-day sums over the days that have tokens in each window). */
const EXPECTED = {
  // Tokens 11-23..29: bypassed 2 + 0 + 7 + 1 = 10 of 10 + 2 + 20 + 10 = 42. Lateness 0.2 s and 3 s: p50 rank 1 in
  // (0, 0.25]: 0.25 s; p99 rank 1.98 in (2, 5] with 1 below: 2 + 3 × 0.98 = 4.94 s.
  '2026-11-29': {
    verification_rate: 0.3, // 3/10
    bypass_rate: 0.1, // 1/10
    bypass_rate_7d: 0.2381, // 10/42
    on_time_share: 0.5, // 1/2
    lateness_p50_s: 0.25,
    lateness_p99_s: 4.94,
    deliveries_per_active_user: 0.6667, // 2/3
    broadcast_reach: null, // no broadcast ended
  },
  // Tokens 11-22..28: bypassed 5 + 2 + 0 + 7 = 14 of 5 + 10 + 2 + 20 = 37. Lateness 0.1, 0.4, 0.9, 45 s: p50 rank 2
  // ends (0.25, 0.5]: 0.25 + 0.25 × 1/1 = 0.5 s; p99 rank 3.96 in (30, 60] with 3 below: 30 + 30 × 0.96 = 58.8 s.
  '2026-11-28': {
    verification_rate: 0.6, // 12/20
    bypass_rate: 0.35, // 7/20
    bypass_rate_7d: 0.3784, // 14/37
    on_time_share: 0.75, // 3/4
    lateness_p50_s: 0.5,
    lateness_p99_s: 58.8,
    deliveries_per_active_user: 1.5, // 6/4
    broadcast_reach: 0.8571, // 6/7
  },
  // From the counters (no stats row): 2 tokens, none verified or bypassed. Tokens 11-21..27: 7 of 17.
  '2026-11-27': {
    verification_rate: 0,
    bypass_rate: 0,
    bypass_rate_7d: 0.4118, // (5 + 2)/(5 + 10 + 2)
    on_time_share: null,
    lateness_p50_s: null,
    lateness_p99_s: null,
    deliveries_per_active_user: null,
    broadcast_reach: null,
  },
  // Tokens 11-19..25: (5 + 2)/(5 + 10).
  '2026-11-25': { verification_rate: 0.5, bypass_rate: 0.2, bypass_rate_7d: 0.4667 },
  // Nothing that day; 11-22's tokens are in its window (11-18..24), and nothing before 11-22 has any.
  '2026-11-24': { verification_rate: null, bypass_rate: null, bypass_rate_7d: 1 },
  '2026-11-15': { bypass_rate_7d: null },
};

for (const backend of BACKENDS) {
  describe(`analytics on ${backend}`, () => {
    test('rows of the seeded days as computed by hand; stats --json, the status page and /stats show them', () =>
      withTestDb(backend, async (store) => {
        await seed(store);
        const clock = new FakeClock(NOW);
        const ctx = { ...runContext(clock, logger), now: clock.now() };
        const deps: AnalyticsDeps = { store, timezone: TZ, alertRate: 0.3, notify: null };

        const dry = await writeAnalytics(deps, { ...ctx, dryRun: true });
        assert.equal(dry.would_write, 32, 'today, the day just ended and the 30 before it');
        assert.deepEqual(dry.would_alert, [], 'nobody to tell');
        assert.equal((await analyticsOfDays(store, ['2026-11-29'])).length, 0, 'a dry run writes nothing');

        const s = await writeAnalytics(deps, ctx);
        assert.deepEqual(s, {
          days_written: 32,
          first_day: '2026-10-29',
          last_day: '2026-11-29',
          bypass_rate_today: 0.1,
          alerts_sent: [],
        });
        const rows = new Map(
          (await analyticsOfDays(store, Object.keys(EXPECTED))).map((r) => [r.day, r] as [string, typeof r]),
        );
        for (const [day, expected] of Object.entries(EXPECTED)) {
          const row = rows.get(day);
          assert.ok(row, day);
          for (const [k, v] of Object.entries(expected)) assert.equal(row[k as keyof typeof row], v, `${day} ${k}`);
          assert.equal(row.computed_at, clock.now().getTime());
        }
        assert.equal(rows.get('2026-11-28')!.bypass_alert_at, null, 'nobody told: nothing recorded');
        assert.equal((await store.db.selectFrom('analytics').select('day').execute()).length, 32);

        // A later run rewrites today and the day just ended only.
        await countTokenEvent(store, '2026-11-29', 'created');
        clock.advance(3600_000);
        const again = await writeAnalytics(deps, { ...ctx, now: clock.now() });
        assert.deepEqual([again.days_written, again.first_day, again.last_day], [2, '2026-11-28', '2026-11-29']);
        assert.equal(again.bypass_rate_today, 0.0909, '1 of 11');
        assert.equal((await analyticsOfDays(store, ['2026-11-29']))[0]!.verification_rate, 0.2727, '3 of 11');
        await countTokenEvent(store, '2026-11-29', 'verified'); // today so far: 4 of 11, after the last run

        // stats --json: today computed now, earlier days from their rows.
        const days = await recentStats(store, TZ, clock.now(), 3);
        assert.deepEqual(
          days.map((d) => [d.date, d.tokens_created, d.verification_rate, d.bypass_rate, d.bypass_rate_7d]),
          [
            ['2026-11-29', 11, 0.3636, 0.0909, 0.2326], // 4/11, 1/11, 10/43
            ['2026-11-28', 20, 0.6, 0.35, 0.3784],
            // No stats row: its figures show zeros (as `stats` always did), its analytics came from the counters.
            ['2026-11-27', 0, 0, 0, 0.4118],
          ],
        );
        const yesterday = days[1]!;
        assert.deepEqual(Object.fromEntries(ANALYTICS_FIELDS.map((k) => [k, yesterday[k]])), EXPECTED['2026-11-28']);
        assert.equal(
          JSON.stringify(days[0]).indexOf('"broadcast_reach":null') > 0,
          true,
          'null where nothing was counted, in JSON too',
        );

        // The status page: 14 days, today first.
        const config = loadConfig({ TIMEZONE: TZ });
        const snap = await collectStatus({ config, store, clock, startedAt: null, telegram: false });
        assert.equal(snap.analytics.length, 14);
        assert.deepEqual([snap.analytics[0]!.day, snap.analytics[13]!.day], ['2026-11-29', '2026-11-16']);
        const html = renderStatusPage(snap);
        const cells = (day: string) =>
          [
            ...(new RegExp(`<tr data-day="${day}">([\\s\\S]*?)</tr>`).exec(html)?.[1] ?? '').matchAll(
              /<td[^>]*>(.*?)<\/td>/g,
            ),
          ].map((m) => m[1]);
        assert.deepEqual(cells('2026-11-28'), ['60.0%', '35.0%', '37.8%', '75.0%', '0.5 s', '58.8 s', '1.50', '85.7%']);
        assert.deepEqual(cells('2026-11-29'), ['36.4%', '9.1%', '23.3%', '50.0%', '0.25 s', '4.94 s', '0.67', '–']);
        assert.deepEqual(cells('2026-11-24'), ['–', '–', '100.0%', '–', '–', '–', '–', '–']);

        // /stats: the last 7 days, rates as percentages.
        const text = formatAnalyticsDays(await recentAnalytics(store, TZ, clock.now(), 7), TZ);
        const lines = text.split('\n');
        assert.equal(lines[0], '📈 Analytics, last 7 days (Asia/Kolkata)');
        const at = lines.indexOf('2026-11-28');
        assert.deepEqual(lines.slice(at, at + 4), [
          '2026-11-28',
          '🎟️ tokens: 60.0% verified, 35.0% bypassed (7 days: 37.8%)',
          '🗑️ deletions: 75.0% on time, lateness p50 0.5 s, p99 58.8 s',
          '📦 1.50 files per active user · 📢 broadcast reach 85.7%',
        ]);
        assert.deepEqual(
          lines.filter((l) => /^\d{4}-\d\d-\d\d$/.test(l)),
          ['2026-11-29', '2026-11-28', '2026-11-27', '2026-11-26', '2026-11-25', '2026-11-24', '2026-11-23'],
        );
      }));

    test('a high bypass rate is told once per day: not again on the next run, nor from another store at once', () =>
      withTestDb(backend, async (store, tdb) => {
        await seed(store);
        const clock = new FakeClock(NOW);
        const told: string[] = [];
        const notify = async (text: string) => void told.push(text);
        const deps: AnalyticsDeps = { store, timezone: TZ, alertRate: 0.3, notify };
        const ctx = () => ({ ...runContext(clock, logger), now: clock.now() });

        // The day just ended: 7 of 20 bypassed (35% > 30%); today: 1 of 10, and too few tokens anyway.
        assert.deepEqual((await writeAnalytics(deps, { ...ctx(), dryRun: true })).would_alert, ['2026-11-28']);
        const first = await writeAnalytics(deps, ctx());
        assert.deepEqual(first.alerts_sent, ['2026-11-28']);
        assert.deepEqual(told, [
          '⚠️ Bypass rate on 2026-11-28: 35.0% — 7 of 20 tokens bypassed (alert above 30.0%, BYPASS_ALERT_RATE).',
        ]);
        assert.equal((await analyticsOfDays(store, ['2026-11-28']))[0]!.bypass_alert_at, clock.now().getTime());
        clock.advance(3600_000);
        assert.deepEqual((await writeAnalytics(deps, ctx())).alerts_sent, [], 'told once');
        assert.deepEqual((await writeAnalytics(deps, { ...ctx(), dryRun: true })).would_alert, []);

        // Today reaches 11 of 25 bypassed (44%): two stores run at the same moment, one tells.
        for (let i = 0; i < 15; i++) await countTokenEvent(store, '2026-11-29', 'created');
        for (let i = 0; i < 10; i++) await countTokenEvent(store, '2026-11-29', 'bypassed');
        const other: AnalyticsDeps = { ...deps, store: await tdb.open() };
        const both = await Promise.all([writeAnalytics(deps, ctx()), writeAnalytics(other, ctx())]);
        assert.deepEqual(both.flatMap((s) => s.alerts_sent).sort(), ['2026-11-29']);
        assert.equal(told.length, 2);
        assert.equal(
          told[1],
          '⚠️ Bypass rate on 2026-11-29 (today so far): 44.0% — 11 of 25 tokens bypassed (alert above 30.0%, BYPASS_ALERT_RATE).',
        );
        // Exactly the limit is not above it.
        const strict = await writeAnalytics({ ...deps, alertRate: 0.44 }, ctx());
        assert.deepEqual(strict.alerts_sent, []);
        // On the 26th the day just ended is the 25th: 2 of 10 bypassed is above 10%, but 10 tokens are too few.
        const few = await writeAnalytics(
          { ...deps, alertRate: 0.1 },
          { ...ctx(), now: new Date('2026-11-26T12:00:00Z') },
        );
        assert.deepEqual(few.alerts_sent, []);
        assert.equal(told.length, 2);
      }));

    test('two janitors on one database run each analytics tick once, recorded with its summary', () =>
      withTestDb(backend, async (store, tdb) => {
        // Kolkata's hours start at half past UTC's.
        const clock = new FakeClock('2026-11-29T10:29:59.500Z');
        const off = { 'token-cleanup': 'off', 'token-count-reset': 'off', stats: 'off', 'health-check': 'off' };
        const make = async (s: Store) =>
          createJanitor({
            store: s,
            clock,
            logger,
            config: { timezone: TZ, catchUpMissed: false, schedules: { ...off, analytics: '0 * * * *' } },
          });
        const [a, b] = [await make(store), await make(await tdb.open())];
        await a.engine.start({ timers: false });
        await b.engine.start({ timers: false });
        const settle = (ps: Promise<unknown>[]) => Promise.all(ps);
        for (let i = 0; i < 3; i++) {
          clock.set(new Date(Date.parse('2026-11-29T10:30:00Z') + i * 3600_000));
          await Promise.all([settle(a.engine.tick()), settle(b.engine.tick())]);
        }
        const runs = await store.db
          .selectFrom('job_runs')
          .selectAll()
          .where('job', '=', 'analytics')
          .orderBy('id')
          .execute();
        assert.equal(runs.length, 3, 'three ticks, three runs');
        assert.ok(runs.every((r) => r.status === 'ok'));
        assert.equal(new Set(runs.map((r) => Number(r.scheduled_for))).size, 3);
        const last = JSON.parse(runs.at(-1)!.summary!) as Record<string, unknown>;
        assert.deepEqual([last.days_written, last.last_day], [2, '2026-11-29']);
        await a.stop();
        await b.stop();
      }));
  });
}
