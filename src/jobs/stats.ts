/**
 * Statistics (the seed's "Database Statistics Scheduler"): one `daily_stats` row per local day (TIMEZONE) for the
 * day that just ended, and for any of the 30 days before it still missing — users (total, new, active, blocked),
 * tokens (created, verified, bypassed), files delivered, deletions (done, on time, late, failed), broadcasts (sent,
 * deleted) and recipients reached. Re-running a day replaces its row.
 */
import { dayIn, lastDays } from '../clock.ts';
import type { Store } from '../store/db.ts';
import {
  activeUsers,
  DAILY_STATS_FIELDS,
  dayCounters,
  daysWithStats,
  saveDay,
  statsOfDays,
  type DayFigures,
} from '../store/daily-stats.ts';
import { tokensPerDay } from '../store/stats.ts';
import { dayBounds } from '../scheduler/schedule.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';

/** How many days back a run fills in missing rows. */
export const STATS_FILL_DAYS = 30;

/** Counts of a stats run. */
export interface StatsSummary {
  /** Day rows written (the day that just ended, and missing earlier ones). */
  days_written: number;
  /** The oldest and newest day written, `YYYY-MM-DD` in TIMEZONE (null when none). */
  first_day: string | null;
  last_day: string | null;
  /** Dry run only: the days that would be written. */
  would_write?: number;
}

/** The `n` local days before `today`, newest first. */
export function daysBefore(today: string, n: number): string[] {
  return lastDays(today, n + 1)
    .slice(0, n)
    .reverse();
}

/** A day's figures from the tables at the end of that day. */
export async function figuresOf(store: Store, day: string, timezone: string): Promise<DayFigures> {
  const { startMs, endMs } = dayBounds(day, timezone);
  const count = async (where: (q: ReturnType<typeof users>) => ReturnType<typeof users>) =>
    Number(
      (
        await where(users())
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const users = () => store.db.selectFrom('users');
  const [tokens] = await tokensPerDay(store, [day]);
  const counters = await dayCounters(store, day);
  return {
    users_total: await count((q) => q.where('joined_at', '<', endMs)),
    users_new: await count((q) => q.where('joined_at', '>=', startMs).where('joined_at', '<', endMs)),
    users_active: await activeUsers(store, day),
    users_blocked: await count((q) => q.where('blocked_at', 'is not', null).where('blocked_at', '<', endMs)),
    tokens_created: (tokens?.verified ?? 0) + (tokens?.bypassed ?? 0) + (tokens?.not_used ?? 0),
    tokens_verified: tokens?.verified ?? 0,
    tokens_bypassed: tokens?.bypassed ?? 0,
    ...counters,
  };
}

/** Writes the day that just ended (at `ctx.now` in `timezone`) and the missing days of the 30 before it. */
export async function writeDailyStats(
  store: Store,
  timezone: string,
  ctx: Pick<RunContext, 'now' | 'dryRun' | 'wallClock'>,
): Promise<StatsSummary> {
  const today = dayIn(ctx.now, timezone);
  const [ended, ...earlier] = daysBefore(today, STATS_FILL_DAYS + 1) as [string, ...string[]];
  const have = await daysWithStats(store, earlier);
  // Oldest first: rows appear in the order of their days.
  const days = [ended, ...earlier.filter((d) => !have.has(d))].sort();
  if (ctx.dryRun) return { days_written: 0, first_day: null, last_day: null, would_write: days.length };
  for (const day of days)
    await saveDay(store, day, await figuresOf(store, day, timezone), ctx.wallClock.now().getTime());
  return { days_written: days.length, first_day: days[0] ?? null, last_day: days.at(-1) ?? null };
}

/** The job definition for the engine (daily at 00:05 in TIMEZONE by default). */
export function statsJob(store: Store, timezone: string, schedule: string): JobDefinition<StatsSummary, 'stats'> {
  return {
    name: 'stats',
    title: 'Statistics',
    label: 'statistics',
    schedule,
    run: (ctx) => writeDailyStats(store, timezone, ctx),
    successLine: (s, at) =>
      s.would_write !== undefined
        ? `📊 Statistics would write ${s.would_write} days (dry run) at ${at}`
        : `✅ Statistics completed at ${at} (${s.days_written} days, ${s.first_day ?? '-'} to ${s.last_day ?? '-'})`,
  };
}

/** One day as `tg-janitor stats` shows it. */
export type DayView = { date: string } & DayFigures;

/**
 * The last `n` local days at `now` (today included, newest first): today's figures so far, computed now; earlier days
 * from their `daily_stats` rows, zeros where a day has none.
 */
export async function recentDays(store: Store, timezone: string, now: Date, n: number): Promise<DayView[]> {
  const today = dayIn(now, timezone);
  const earlier = daysBefore(today, Math.max(0, n - 1));
  const rows = new Map((await statsOfDays(store, earlier)).map((r) => [r.day, r]));
  const zero = Object.fromEntries(DAILY_STATS_FIELDS.map((k) => [k, 0])) as DayFigures;
  const pick = (r: DayFigures): DayFigures =>
    Object.fromEntries(DAILY_STATS_FIELDS.map((k) => [k, r[k]])) as DayFigures;
  const past = earlier.map((date) => {
    const r = rows.get(date);
    return { date, ...(r ? pick(r) : zero) };
  });
  return n > 0 ? [{ date: today, ...(await figuresOf(store, today, timezone)) }, ...past] : [];
}

/** Users at the end of each of the last `n` local days (today so far included), oldest first, for the chart. */
export async function userGrowth(
  store: Store,
  timezone: string,
  now: Date,
  n = 30,
): Promise<{ day: string; total: number; new: number }[]> {
  const today = dayIn(now, timezone);
  const earlier = daysBefore(today, n - 1);
  const rows = new Map((await statsOfDays(store, earlier)).map((r) => [r.day, r]));
  const { startMs } = dayBounds(today, timezone);
  const count = async (since: number | null) => {
    let q = store.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n'));
    if (since !== null) q = q.where('joined_at', '>=', since);
    return Number((await q.executeTakeFirstOrThrow()).n);
  };
  const past = earlier.reverse().map((day) => {
    const r = rows.get(day);
    return { day, total: r?.users_total ?? 0, new: r?.users_new ?? 0 };
  });
  return [...past, { day: today, total: await count(null), new: await count(startMs) }];
}
