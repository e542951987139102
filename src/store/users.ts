/** Users of the bot: registration, access counts, blocked and banned flags. */
import type { Store } from './db.ts';
import type { User } from './schema.ts';

/** Marks users who blocked the bot (or are gone); keeps the first time it was seen. */
export async function markBlocked(store: Store, userIds: number[], nowMs: number): Promise<void> {
  if (userIds.length === 0) return;
  await store.db
    .updateTable('users')
    .set({ blocked_at: nowMs })
    .where('user_id', 'in', userIds)
    .where('blocked_at', 'is', null)
    .execute();
}

/** Clears `blocked_at`: the user let the bot write to them again. */
export async function markUnblocked(store: Store, userId: number): Promise<void> {
  await store.db.updateTable('users').set({ blocked_at: null }).where('user_id', '=', userId).execute();
}

/** Registers a user on any message (or refreshes their names) and clears `blocked_at`: they wrote, so they are back. */
export async function upsertUser(
  store: Store,
  u: { userId: number; username: string | null; firstName: string | null; nowMs: number },
): Promise<User> {
  return store.db
    .insertInto('users')
    .values({
      user_id: u.userId,
      username: u.username,
      first_name: u.firstName,
      joined_at: u.nowMs,
      is_banned: 0,
      user_access_count: 0,
      blocked_at: null,
    })
    .onConflict((oc) =>
      oc.column('user_id').doUpdateSet({ username: u.username, first_name: u.firstName, blocked_at: null }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The user, or undefined. */
export async function getUser(store: Store, userId: number): Promise<User | undefined> {
  return store.db.selectFrom('users').selectAll().where('user_id', '=', userId).executeTakeFirst();
}

/** Spends one file access if the user has one left; true when spent (atomic, so two requests cannot both spend the last). */
export async function spendAccess(store: Store, userId: number): Promise<boolean> {
  const r = await store.db
    .updateTable('users')
    .set((eb) => ({ user_access_count: eb('user_access_count', '-', 1) }))
    .where('user_id', '=', userId)
    .where('user_access_count', '>', 0)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Adds `n` file accesses (a verification, or a refund after a failed delivery). */
export async function grantAccess(store: Store, userId: number, n: number): Promise<void> {
  await store.db
    .updateTable('users')
    .set((eb) => ({ user_access_count: eb('user_access_count', '+', n) }))
    .where('user_id', '=', userId)
    .execute();
}

/** Broadcast recipients after `afterUserId` in id order: not blocked, not banned. */
export async function recipientsAfter(store: Store, afterUserId: number, limit: number): Promise<number[]> {
  const rows = await store.db
    .selectFrom('users')
    .select('user_id')
    .where('user_id', '>', afterUserId)
    .where('blocked_at', 'is', null)
    .where('is_banned', '=', 0)
    .orderBy('user_id')
    .limit(limit)
    .execute();
  return rows.map((r) => r.user_id);
}

/** How many users a broadcast would reach now (those after `afterUserId` in id order, when given). */
export async function countAudience(store: Store, afterUserId?: number): Promise<number> {
  let q = store.db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('blocked_at', 'is', null)
    .where('is_banned', '=', 0);
  if (afterUserId !== undefined) q = q.where('user_id', '>', afterUserId);
  const r = await q.executeTakeFirstOrThrow();
  return Number(r.n);
}
