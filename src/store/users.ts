/** Users of the bot: registration, access counts, blocked and banned flags. */
import type { Store } from './db.ts';

/** Marks users who blocked the bot (or are gone); keeps the first time it was seen. */
export async function markBlocked(store: Store, userIds: number[], nowMs: number): Promise<void> {
  if (userIds.length === 0) return;
  await store.db.updateTable('users').set({ blocked_at: nowMs }).where('user_id', 'in', userIds).where('blocked_at', 'is', null).execute();
}
