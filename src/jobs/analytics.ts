/**
 * Analytics (the seed's "Analytics Scheduler"): per local day (TIMEZONE), from its figures (the `daily_stats` row of
 * a past day, today's counters for today) — verification and bypass rates of the tokens made that day and the bypass
 * rate's 7-day trend, the share of deletions done on time and their lateness percentiles, files delivered per active
 * user, and broadcast reach. One `analytics` row per day: today's and the day just ended's rewritten every run, the
 * missing ones of the 30 days before filled. When the bypass rate of today or of the day just ended is above
 * BYPASS_ALERT_RATE with at least {@link ALERT_MIN_TOKENS} tokens made that day, admins are told once for that day.
 */
import { dayIn, lastDays } from '../clock.ts';
import type { Store } from '../store/db.ts';
import { DAILY_STATS_FIELDS, statsOfDays, type DayFigures } from '../store/daily-stats.ts';
import {
  ANALYTICS_FIELDS,
  LATENESS_BOUNDS_S,
  analyticsOfDays,
  claimBypassAlert,
  latenessOfDays,
  saveAnalytics,
  type AnalyticsFigures,
  type LatenessCounts,
} from '../store/analytics.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';
import { STATS_FILL_DAYS, daysBefore, figuresOf, recentDays, type DayView } from './stats.ts';

export type { AnalyticsFigures } from '../store/analytics.ts';

/** The days of the bypass rate's trend: the day and the 6 before it. */
export const TREND_DAYS = 7;
/** A day's bypass rate is alerted on only when at least this many tokens were made that day. */
export const ALERT_MIN_TOKENS = 20;

/** Counts of an analytics run. */
export interface AnalyticsSummary {
  /** Day rows written: today, the day just ended, and missing ones of the 30 days before. */
  days_written: number;
  /** The oldest and newest day written, `YYYY-MM-DD` in TIMEZONE (null when none). */
  first_day: string | null;
  last_day: string | null;
  /** Today's bypass rate so far, 0–1; null while no token was made today. */
  bypass_rate_today: number | null;
  /** Days whose high bypass rate this run told the admins about (each day is told once, by one run). */
  alerts_sent: string[];
  /** Dry run only: the days that would be written. */
  would_write?: number;
  /** Dry run only: the days admins would be told about (high, not told yet, someone to tell). */
  would_alert?: string[];
}

/** What the analytics job needs. */
export interface AnalyticsDeps {
  store: Store;
  timezone: string;
  /** BYPASS_ALERT_RATE, 0–1. */
  alertRate: number;
  /** Tells every admin `text` (the health check's notifier); null when there is nobody to tell. */
  notify: ((text: string) => Promise<void>) | null;
}

const round = (x: number, places: number) => Math.round(x * 10 ** places) / 10 ** places;
/** `n / d` to 4 decimal places; null when `d` is 0 (nothing to divide by). */
const ratio = (n: number, d: number) => (d > 0 ? round(n / d, 4) : null);

/**
 * The `q` quantile (0–1) of a lateness histogram, in seconds to the millisecond; null when it holds nothing. Linear
 * interpolation inside the bucket the rank falls in, as Prometheus' `histogram_quantile` does: the first bucket
 * runs from 0 s, and a rank in the last bucket (beyond an hour, no upper bound) reports that bucket's lower bound,
 * 3600 s. Pure.
 */
export function latenessQuantile(counts: LatenessCounts, q: number): number | null {
  const total = counts.reduce((a, n) => a + n, 0);
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i] ?? 0;
    if (n > 0 && below + n >= rank) {
      const lower = i === 0 ? 0 : LATENESS_BOUNDS_S[i - 1]!;
      const upper = LATENESS_BOUNDS_S[i]!;
      if (upper === Infinity) return lower;
      return round(lower + ((upper - lower) * (rank - below)) / n, 3);
    }
    below += n;
  }
  return null; // not reached: the last bucket with a count holds the total
}

/**
 * A day's analytics from its figures, the figures of the {@link TREND_DAYS} days ending with it (itself included) and
 * its lateness histogram. Rates and shares are fractions 0–1 and ratios are rounded to 4 decimal places; each is
 * null when its denominator is 0:
 * - `verification_rate` = tokens verified / created, `bypass_rate` = bypassed / created (tokens count on the day
 *   they were made), `bypass_rate_7d` = bypassed / created summed over the 7 days;
 * - `on_time_share` = deletions on time (≤ 1 s after `delete_at`) / deletions done (failed ones are not done), and
 *   `lateness_p50_s` / `lateness_p99_s` of the done ones, from the histogram ({@link latenessQuantile});
 * - `deliveries_per_active_user` = files delivered / users active;
 * - `broadcast_reach` = recipients reached / the audience of the broadcasts whose sending ended that day.
 * Pure.
 */
export function analyticsOf(day: DayFigures, week: DayFigures[], lateness: LatenessCounts): AnalyticsFigures {
  const sum = (k: 'tokens_created' | 'tokens_bypassed') => week.reduce((a, f) => a + f[k], 0);
  return {
    verification_rate: ratio(day.tokens_verified, day.tokens_created),
    bypass_rate: ratio(day.tokens_bypassed, day.tokens_created),
    bypass_rate_7d: ratio(sum('tokens_bypassed'), sum('tokens_created')),
    on_time_share: ratio(day.deletions_on_time, day.deletions_done),
    lateness_p50_s: latenessQuantile(lateness, 0.5),
    lateness_p99_s: latenessQuantile(lateness, 0.99),
    deliveries_per_active_user: ratio(day.files_delivered, day.users_active),
    broadcast_reach: ratio(day.recipients_reached, day.broadcast_audience),
  };
}

/** Whether a day's bypass rate calls for telling the admins: above `rate` with enough tokens made. Pure. */
export function bypassTooHigh(day: Pick<DayFigures, 'tokens_created' | 'tokens_bypassed'>, rate: number): boolean {
  return day.tokens_created >= ALERT_MIN_TOKENS && day.tokens_bypassed / day.tokens_created > rate;
}

const pickFigures = (r: DayFigures): DayFigures =>
  Object.fromEntries(DAILY_STATS_FIELDS.map((k) => [k, r[k]])) as DayFigures;

/**
 * The figures of `days`: today's counted now, an earlier day's from its `daily_stats` row, or counted now when the
 * stats job has not written it (yet: the day just ended, before 00:05).
 */
export async function figuresOfDays(
  store: Store,
  timezone: string,
  today: string,
  days: string[],
): Promise<Map<string, DayFigures>> {
  const rows = new Map(
    (
      await statsOfDays(
        store,
        days.filter((d) => d !== today),
      )
    ).map((r) => [r.day, r]),
  );
  const out = new Map<string, DayFigures>();
  for (const d of new Set(days)) {
    const r = rows.get(d);
    out.set(d, r ? pickFigures(r) : await figuresOf(store, d, timezone));
  }
  return out;
}

/** The analytics of each of `days`, from the figures of those days and the 6 before each. */
async function analyticsOfEach(
  store: Store,
  timezone: string,
  today: string,
  days: string[],
): Promise<{ figures: Map<string, DayFigures>; analytics: Map<string, AnalyticsFigures> }> {
  const figures = await figuresOfDays(store, timezone, today, [
    ...new Set(days.flatMap((d) => lastDays(d, TREND_DAYS))),
  ]);
  const lateness = await latenessOfDays(store, days);
  const analytics = new Map<string, AnalyticsFigures>();
  for (const d of days) {
    const week = lastDays(d, TREND_DAYS).map((w) => figures.get(w)!);
    analytics.set(d, analyticsOf(figures.get(d)!, week, lateness.get(d)!));
  }
  return { figures, analytics };
}

/** `x` as a percentage with one decimal (`0.4286` → `42.9%`), `–` for null. */
export const formatRate = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);
/** Seconds as stored (`57.6 s`), `–` for null. */
export const formatSeconds = (x: number | null): string => (x === null ? '–' : `${x} s`);
/** A ratio with two decimals (`1.50`), `–` for null. */
export const formatRatio = (x: number | null): string => (x === null ? '–' : x.toFixed(2));

/**
 * Writes today's row and the day just ended's (at `ctx.now` in TIMEZONE), and the missing rows of the 30 days before;
 * then tells the admins of a high bypass rate today or the day just ended, once per day (recorded first, by one
 * conditional update: of two runs or instances, one tells). With nobody to tell nothing is recorded, so an admin
 * added later that day still hears of it.
 */
export async function writeAnalytics(
  deps: AnalyticsDeps,
  ctx: Pick<RunContext, 'now' | 'dryRun' | 'wallClock' | 'logger'>,
): Promise<AnalyticsSummary> {
  const { store, timezone } = deps;
  const today = dayIn(ctx.now, timezone);
  const [ended, ...earlier] = daysBefore(today, STATS_FILL_DAYS + 1) as [string, ...string[]];
  const stored = new Map((await analyticsOfDays(store, [today, ended, ...earlier])).map((r) => [r.day, r]));
  // Oldest first: rows appear in the order of their days.
  const days = [today, ended, ...earlier.filter((d) => !stored.has(d))].sort();
  const { figures, analytics } = await analyticsOfEach(store, timezone, today, days);
  const high = [ended, today].filter((d) => bypassTooHigh(figures.get(d)!, deps.alertRate));
  const summary: AnalyticsSummary = {
    days_written: 0,
    first_day: null,
    last_day: null,
    bypass_rate_today: analytics.get(today)!.bypass_rate,
    alerts_sent: [],
  };
  if (ctx.dryRun) {
    const untold = deps.notify ? high.filter((d) => (stored.get(d)?.bypass_alert_at ?? null) === null) : [];
    return { ...summary, would_write: days.length, would_alert: untold };
  }
  const at = ctx.wallClock.now().getTime();
  for (const d of days) await saveAnalytics(store, d, analytics.get(d)!, at);
  Object.assign(summary, { days_written: days.length, first_day: days[0] ?? null, last_day: days.at(-1) ?? null });
  if (!deps.notify) return summary;
  for (const d of high) {
    if (!(await claimBypassAlert(store, d, at))) continue;
    const f = figures.get(d)!;
    const rate = formatRate(f.tokens_bypassed / f.tokens_created);
    const when = d === today ? `${d} (today so far)` : d;
    const text =
      `⚠️ Bypass rate on ${when}: ${rate} — ${f.tokens_bypassed} of ${f.tokens_created} tokens bypassed ` +
      `(alert above ${formatRate(deps.alertRate)}, BYPASS_ALERT_RATE).`;
    ctx.logger.warn({ day: d, bypassed: f.tokens_bypassed, created: f.tokens_created }, text);
    await deps.notify(text);
    summary.alerts_sent.push(d);
  }
  return summary;
}

/** The job definition for the engine (hourly by default). */
export function analyticsJob(deps: AnalyticsDeps, schedule: string): JobDefinition<AnalyticsSummary, 'analytics'> {
  return {
    name: 'analytics',
    title: 'Analytics',
    label: 'analytics',
    schedule,
    run: (ctx) => writeAnalytics(deps, ctx),
    successLine: (s, at) =>
      s.would_write !== undefined
        ? `📈 Analytics would write ${s.would_write} days (dry run) at ${at}`
        : `✅ Analytics completed at ${at} (${s.days_written} days, ${s.first_day ?? '-'} to ${s.last_day ?? '-'}; ` +
          `bypass rate today ${formatRate(s.bypass_rate_today)}${s.alerts_sent.length ? `; admins told of ${s.alerts_sent.join(', ')}` : ''})`,
  };
}

/** One day's analytics as the status page, `/stats` and `stats --json` show them. */
export type AnalyticsDay = { day: string } & AnalyticsFigures;

const NONE = Object.fromEntries(ANALYTICS_FIELDS.map((k) => [k, null])) as AnalyticsFigures;
const pickAnalytics = (r: AnalyticsFigures): AnalyticsFigures =>
  Object.fromEntries(ANALYTICS_FIELDS.map((k) => [k, r[k]])) as AnalyticsFigures;

/**
 * The analytics of the last `n` local days at `now` (today included, newest first): today's computed now from
 * today's counters (as `stats` shows today's figures), earlier days from their `analytics` rows, nulls where a day
 * has none.
 */
export async function recentAnalytics(store: Store, timezone: string, now: Date, n: number): Promise<AnalyticsDay[]> {
  if (n < 1) return [];
  const today = dayIn(now, timezone);
  const earlier = daysBefore(today, n - 1);
  const rows = new Map((await analyticsOfDays(store, earlier)).map((r) => [r.day, r]));
  const { analytics } = await analyticsOfEach(store, timezone, today, [today]);
  const past = earlier.map((day) => {
    const r = rows.get(day);
    return { day, ...(r ? pickAnalytics(r) : NONE) };
  });
  return [{ day: today, ...analytics.get(today)! }, ...past];
}

/** One day as `tg-janitor stats` shows it: its figures and its analytics. */
export type StatsDay = DayView & AnalyticsFigures;

/** The last `n` days' figures ({@link recentDays}) with each day's analytics ({@link recentAnalytics}). */
export async function recentStats(store: Store, timezone: string, now: Date, n: number): Promise<StatsDay[]> {
  const days = await recentDays(store, timezone, now, n);
  const analytics = await recentAnalytics(store, timezone, now, n);
  return days.map((d, i) => ({ ...d, ...pickAnalytics(analytics[i] ?? { day: d.date, ...NONE }) }));
}
