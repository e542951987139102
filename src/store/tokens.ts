/** Verification tokens and the per-day count of tokens a user created. */
import { sql, type Kysely } from 'kysely';
import type { Database, Token, TokenStatus } from './schema.ts';
import { writeTransaction, type Store } from './db.ts';

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

/**
 * Takes one of the user's token slots for `day` if fewer than `limit` are used: one atomic upsert, so parallel
 * requests cannot pass the limit. Returns the count after taking it, or null when the limit is reached.
 */
export async function takeTokenSlot(db: Db, userId: number, day: string, limit: number): Promise<number | null> {
  const row = await db
    .insertInto('token_generator_count')
    .values({ user_id: userId, date: day, token_generated: 1 })
    .onConflict((oc) =>
      oc
        .columns(['user_id', 'date'])
        .doUpdateSet({ token_generated: sql<number>`token_generator_count.token_generated + 1` })
        .where('token_generator_count.token_generated', '<', limit),
    )
    .returning('token_generated')
    .executeTakeFirst();
  return row ? Number(row.token_generated) : null;
}

/** Inserts a new `not_used` token. */
export async function insertToken(
  db: Db,
  t: Omit<Token, 'status' | 'direct_link'> & { direct_link?: number },
): Promise<void> {
  await db
    .insertInto('tokens')
    .values({ ...t, status: 'not_used' })
    .execute();
}

/** Records that the user was given the direct link (the shortener failed). */
export async function markDirectLink(db: Db, token: string): Promise<void> {
  await db.updateTable('tokens').set({ direct_link: 1 }).where('token', '=', token).execute();
}

/** The token with this value, or undefined. */
export async function getToken(db: Db, token: string): Promise<Token | undefined> {
  return db.selectFrom('tokens').selectAll().where('token', '=', token).executeTakeFirst();
}

/** The token with this short unique id made by this user, or undefined. */
export async function getTokenByUniqueId(db: Db, uniqueId: string, userId: number): Promise<Token | undefined> {
  return db
    .selectFrom('tokens')
    .selectAll()
    .where('unique_id', '=', uniqueId)
    .where('created_by', '=', userId)
    .executeTakeFirst();
}

/** Moves a token from `not_used` to `status`; false when it was no longer `not_used` (opened twice at once). */
export async function markToken(db: Db, token: string, status: 'verified' | 'bypassed'): Promise<boolean> {
  const r = await db
    .updateTable('tokens')
    .set({ status })
    .where('token', '=', token)
    .where('status', '=', 'not_used')
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * Redeems a verified token for `userId`: deletes it and adds `accesses` to the user in one transaction. Deleting the
 * token is the gate, so two redeems at once grant once. Returns the user's new access count, or null when the token
 * was not (or no longer) a verified token.
 */
export async function redeemVerifiedToken(
  store: Store,
  token: string,
  userId: number,
  accesses: number,
): Promise<number | null> {
  return writeTransaction(store, async (trx) => {
    const del = await trx
      .deleteFrom('tokens')
      .where('token', '=', token)
      .where('status', '=', 'verified')
      .executeTakeFirst();
    if (Number(del.numDeletedRows) !== 1) return null;
    const u = await trx
      .updateTable('users')
      .set((eb) => ({ user_access_count: eb('user_access_count', '+', accesses) }))
      .where('user_id', '=', userId)
      .returning('user_access_count')
      .executeTakeFirst();
    return u ? Number(u.user_access_count) : accesses;
  });
}
