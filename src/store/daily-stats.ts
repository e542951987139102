/**
 * Figures per local day (TIMEZONE): the counters kept as things happen (deliveries, deletions and their lateness,
 * broadcasts, who was active), and the day rows the stats job writes from them and from the users and tokens.
 */
import { sql } from 'kysely';
import type { Store } from './db.ts';
import type { DailyStatsTable, DayCountersTable } from './schema.ts';

/** The counters `day_counters` keeps per day. */
export const DAY_COUNTER_NAMES = [
  'files_delivered',
  'deletions_done',
  'deletions_on_time',
  'deletions_late',
  'deletions_failed',
  'broadcasts_sent',
  'broadcasts_deleted',
  'recipients_reached',
  'broadcast_audience',
] as const;

/** One of {@link DAY_COUNTER_NAMES}. */
export type DayCounter = (typeof DAY_COUNTER_NAMES)[number];

/** The figures of a `daily_stats` row, in the order `stats --json` prints them. */
export const DAILY_STATS_FIELDS = [
  'users_total',
  'users_new',
  'users_active',
  'users_blocked',
  'tokens_created',
  'tokens_verified',
  'tokens_bypassed',
  ...DAY_COUNTER_NAMES,
] as const;

/** A day's figures (without the day and when they were computed). */
export type DayFigures = Omit<DailyStatsTable, 'day' | 'computed_at'>;

/** Adds `counts` to `day`'s counters in one upsert; zero counts change nothing and write nothing. */
export async function addToDay(store: Store, day: string, counts: Partial<Record<DayCounter, number>>): Promise<void> {
  const entries = Object.entries(counts).filter(([, n]) => n !== undefined && n > 0) as [DayCounter, number][];
  if (entries.length === 0) return;
  const values: DayCountersTable = { day, ...zeroCounters() };
  for (const [k, n] of entries) values[k] = n;
  const set: Record<string, unknown> = {};
  for (const [k, n] of entries) set[k] = sql<number>`day_counters.${sql.ref(k)} + ${n}`;
  await store.db
    .insertInto('day_counters')
    .values(values)
    .onConflict((oc) => oc.column('day').doUpdateSet(set))
    .execute();
}

const zeroCounters = () => Object.fromEntries(DAY_COUNTER_NAMES.map((k) => [k, 0])) as Record<DayCounter, number>;

/** Notes that `userId` sent the bot something on `day` (once per user and day). */
export async function noteActive(store: Store, day: string, userId: number): Promise<void> {
  await store.db
    .insertInto('user_activity')
    .values({ day, user_id: userId })
    .onConflict((oc) => oc.columns(['day', 'user_id']).doNothing())
    .execute();
}

/** `day`'s counters, zeros where nothing was counted. */
export async function dayCounters(store: Store, day: string): Promise<Record<DayCounter, number>> {
  const row = await store.db.selectFrom('day_counters').selectAll().where('day', '=', day).executeTakeFirst();
  return Object.fromEntries(DAY_COUNTER_NAMES.map((k) => [k, Number(row?.[k] ?? 0)])) as Record<DayCounter, number>;
}

/** Users who sent the bot anything on `day`. */
export async function activeUsers(store: Store, day: string): Promise<number> {
  const r = await store.db
    .selectFrom('user_activity')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('day', '=', day)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Writes (or rewrites) `day`'s row. */
export async function saveDay(store: Store, day: string, figures: DayFigures, computedAt: number): Promise<void> {
  const row = { day, ...figures, computed_at: computedAt };
  await store.db
    .insertInto('daily_stats')
    .values(row)
    .onConflict((oc) => oc.column('day').doUpdateSet({ ...figures, computed_at: computedAt }))
    .execute();
}

/** The days among `days` that have a row. */
export async function daysWithStats(store: Store, days: string[]): Promise<Set<string>> {
  if (days.length === 0) return new Set();
  const rows = await store.db.selectFrom('daily_stats').select('day').where('day', 'in', days).execute();
  return new Set(rows.map((r) => r.day));
}

/** The rows of `days` (in no particular order). */
export async function statsOfDays(store: Store, days: string[]): Promise<DailyStatsTable[]> {
  if (days.length === 0) return [];
  const rows = await store.db.selectFrom('daily_stats').selectAll().where('day', 'in', days).execute();
  // bigint columns come back as strings on PostgreSQL: every figure is a number.
  return rows.map((r) => {
    const out: DailyStatsTable = { ...r };
    for (const k of DAILY_STATS_FIELDS) out[k] = Number(r[k]);
    out.computed_at = Number(r.computed_at);
    return out;
  });
}
