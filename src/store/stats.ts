/** Counters kept for the status page and analytics: messages deleted per hour, tokens per day by outcome. */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';
import type { Store } from './db.ts';

const HOUR = 3600_000;

/** Adds `n` deleted messages to the hour of `atMs`. */
export async function countDeleted(store: Store, atMs: number, n: number): Promise<void> {
  if (n <= 0) return;
  const hour = Math.floor(atMs / HOUR) * HOUR;
  await store.db
    .insertInto('deletion_stats')
    .values({ hour, messages: n })
    .onConflict((oc) => oc.column('hour').doUpdateSet({ messages: sql<number>`deletion_stats.messages + ${n}` }))
    .execute();
}

/** Messages deleted per hour for the `hours` hours ending with the one holding `nowMs`, oldest first (zeros filled). */
export async function deletedPerHour(
  store: Store,
  nowMs: number,
  hours = 48,
): Promise<{ hour: number; messages: number }[]> {
  const last = Math.floor(nowMs / HOUR) * HOUR;
  const first = last - (hours - 1) * HOUR;
  const rows = await store.db
    .selectFrom('deletion_stats')
    .selectAll()
    .where('hour', '>=', first)
    .where('hour', '<=', last)
    .execute();
  const by = new Map(rows.map((r) => [Number(r.hour), Number(r.messages)]));
  return Array.from({ length: hours }, (_, i) => ({ hour: first + i * HOUR, messages: by.get(first + i * HOUR) ?? 0 }));
}

/** Counts one token event (`created`, `verified` or `bypassed`) on the day the token was created. */
export async function countTokenEvent(
  store: Store,
  day: string,
  event: 'created' | 'verified' | 'bypassed',
): Promise<void> {
  await addTokenStats(store.db, day, { created: 0, verified: 0, bypassed: 0, [event]: 1 });
}

/** Adds token counts to a creation day in one upsert (also inside a transaction: an import's). */
export async function addTokenStats(
  db: Kysely<Database>,
  day: string,
  n: { created: number; verified: number; bypassed: number },
): Promise<void> {
  await db
    .insertInto('token_stats')
    .values({ day, ...n })
    .onConflict((oc) =>
      oc.column('day').doUpdateSet({
        created: sql<number>`token_stats.created + ${n.created}`,
        verified: sql<number>`token_stats.verified + ${n.verified}`,
        bypassed: sql<number>`token_stats.bypassed + ${n.bypassed}`,
      }),
    )
    .execute();
}

/** Token outcomes per creation day for the given days (oldest first): verified, bypassed, and not used (the rest). */
export async function tokensPerDay(
  store: Store,
  days: string[],
): Promise<{ day: string; verified: number; bypassed: number; not_used: number }[]> {
  const rows = days.length
    ? await store.db.selectFrom('token_stats').selectAll().where('day', 'in', days).execute()
    : [];
  const by = new Map(rows.map((r) => [r.day, r]));
  return days.map((day) => {
    const r = by.get(day);
    const verified = Number(r?.verified ?? 0);
    const bypassed = Number(r?.bypassed ?? 0);
    return { day, verified, bypassed, not_used: Math.max(0, Number(r?.created ?? 0) - verified - bypassed) };
  });
}
