/**
 * What the analytics job reads and writes: the lateness of each day's deletions, kept as histogram buckets as the
 * message deleter works (one upsert per batch), and the `analytics` rows, one per local day (TIMEZONE), with the
 * once-per-day bypass alert.
 */
import { sql } from 'kysely';
import type { Store } from './db.ts';
import type { AnalyticsTable } from './schema.ts';

/**
 * The lateness buckets' upper bounds in seconds (inclusive), ending with the bucket beyond an hour, which has none.
 * The first three are "on time" (≤ 1 s), as the day counters count it.
 */
export const LATENESS_BOUNDS_S = [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, Infinity] as const;

/** How each bucket is stored in `deletion_lateness.le_ms`: its bound in ms, -1 for the last (unbounded) one. */
const LE_MS = LATENESS_BOUNDS_S.map((b) => (b === Infinity ? -1 : Math.round(b * 1000)));

/** Counts per lateness bucket, in the order of {@link LATENESS_BOUNDS_S}. */
export type LatenessCounts = number[];

/** A histogram with nothing counted. */
export const emptyLateness = (): LatenessCounts => LATENESS_BOUNDS_S.map(() => 0);

/** The bucket of a lateness in seconds: the first whose bound is at least it. */
export function latenessBucket(seconds: number): number {
  const i = LATENESS_BOUNDS_S.findIndex((b) => seconds <= b);
  // NaN fits no bound: counted as the unbounded bucket rather than lost.
  return i === -1 ? LATENESS_BOUNDS_S.length - 1 : i;
}

/** Adds `counts` to `day`'s histogram in one statement; a histogram of zeros writes nothing. */
export async function addLateness(store: Store, day: string, counts: LatenessCounts): Promise<void> {
  const rows = counts.flatMap((count, i) => (count > 0 ? [{ day, le_ms: LE_MS[i]!, count }] : []));
  if (rows.length === 0) return;
  await store.db
    .insertInto('deletion_lateness')
    .values(rows)
    .onConflict((oc) =>
      oc.columns(['day', 'le_ms']).doUpdateSet({ count: sql<number>`deletion_lateness.count + excluded.count` }),
    )
    .execute();
}

/** The histograms of `days` (zeros for a day without deletions). */
export async function latenessOfDays(store: Store, days: string[]): Promise<Map<string, LatenessCounts>> {
  const out = new Map(days.map((d) => [d, emptyLateness()]));
  if (days.length === 0) return out;
  const rows = await store.db.selectFrom('deletion_lateness').selectAll().where('day', 'in', days).execute();
  for (const r of rows) {
    const i = LE_MS.indexOf(Number(r.le_ms));
    // A bound this version does not know (written by another version): left out rather than misfiled.
    if (i >= 0) out.get(r.day)![i]! += Number(r.count);
  }
  return out;
}

/** The figures of an `analytics` row (without the day, when it was computed and the alert). */
export type AnalyticsFigures = Omit<AnalyticsTable, 'day' | 'computed_at' | 'bypass_alert_at'>;

/** The figures of an `analytics` row, in the order `stats --json` prints them. */
export const ANALYTICS_FIELDS = [
  'verification_rate',
  'bypass_rate',
  'bypass_rate_7d',
  'on_time_share',
  'lateness_p50_s',
  'lateness_p99_s',
  'deliveries_per_active_user',
  'broadcast_reach',
] as const satisfies readonly (keyof AnalyticsFigures)[];

/** Writes (or rewrites) `day`'s row; a bypass alert already recorded for the day stays. */
export async function saveAnalytics(
  store: Store,
  day: string,
  figures: AnalyticsFigures,
  computedAt: number,
): Promise<void> {
  await store.db
    .insertInto('analytics')
    .values({ day, ...figures, computed_at: computedAt, bypass_alert_at: null })
    .onConflict((oc) => oc.column('day').doUpdateSet({ ...figures, computed_at: computedAt }))
    .execute();
}

/** The rows of `days` (in no particular order). */
export async function analyticsOfDays(store: Store, days: string[]): Promise<AnalyticsTable[]> {
  if (days.length === 0) return [];
  const rows = await store.db.selectFrom('analytics').selectAll().where('day', 'in', days).execute();
  // bigint columns come back as strings on PostgreSQL; double precision as numbers on both.
  const num = (v: number | string | null) => (v === null ? null : Number(v));
  return rows.map((r) => {
    const out: AnalyticsTable = { ...r, computed_at: Number(r.computed_at), bypass_alert_at: num(r.bypass_alert_at) };
    for (const k of ANALYTICS_FIELDS) out[k] = num(r[k]);
    return out;
  });
}

/**
 * Records that admins are told about `day`'s bypass rate, in one conditional statement: true for the one caller that
 * set it (that caller tells them), false when it was set before (by another run, process or instance) or the day
 * has no row.
 */
export async function claimBypassAlert(store: Store, day: string, atMs: number): Promise<boolean> {
  const r = await store.db
    .updateTable('analytics')
    .set({ bypass_alert_at: atMs })
    .where('day', '=', day)
    .where('bypass_alert_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
