/** Verification tokens and the per-day count of tokens a user created. */
import type { Kysely } from 'kysely';
import type { Database, TokenStatus } from './schema.ts';

type Db = Kysely<Database>;

/** Statuses whose tokens are spent and may be deleted once expired; `not_used` ones are kept (seed). */
export const CLEANABLE_STATUSES: readonly TokenStatus[] = ['verified', 'bypassed'];

/** Deletes tokens with `expires_at < now` and a spent status, in one index-backed statement. Returns the count. */
export async function deleteExpiredSpentTokens(db: Db, nowMs: number): Promise<number> {
  const r = await db
    .deleteFrom('tokens')
    .where('status', 'in', CLEANABLE_STATUSES)
    .where('expires_at', '<', nowMs)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** How many tokens {@link deleteExpiredSpentTokens} would delete. */
export async function countExpiredSpentTokens(db: Db, nowMs: number): Promise<number> {
  const r = await db
    .selectFrom('tokens')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', 'in', CLEANABLE_STATUSES)
    .where('expires_at', '<', nowMs)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Deletes `token_generator_count` rows of days before `today` (`YYYY-MM-DD`). Returns the count. */
export async function deleteCountsBefore(db: Db, today: string): Promise<number> {
  const r = await db.deleteFrom('token_generator_count').where('date', '<', today).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** How many rows {@link deleteCountsBefore} would delete. */
export async function countCountsBefore(db: Db, today: string): Promise<number> {
  const r = await db
    .selectFrom('token_generator_count')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('date', '<', today)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
