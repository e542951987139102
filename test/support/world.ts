/** Seeding shared by the tests that work users and broadcasts against the emulator. */
import type { Store } from '../../src/store/db.ts';
import * as broadcasts from '../../src/store/broadcasts.ts';
import type { BotApiEmulator } from './bot-api-emulator.ts';

/** Registers users `ids`, joined at `joinedAt`, none banned or blocked. */
export async function addUsers(store: Store, ids: number[], joinedAt: number): Promise<void> {
  const rows = ids.map((u) => ({
    user_id: u,
    username: null,
    first_name: 'U',
    joined_at: joinedAt,
    is_banned: 0,
    user_access_count: 0,
    blocked_at: null,
  }));
  await store.db.insertInto('users').values(rows).execute();
}

/** The ids of users marked blocked, in order. */
export async function blockedUsers(store: Store): Promise<number[]> {
  const rows = await store.db.selectFrom('users').select('user_id').where('blocked_at', 'is not', null).execute();
  return rows.map((r) => Number(r.user_id)).sort((a, b) => a - b);
}

/**
 * A broadcast of "News" that `admin` sent the bot (its source message in the emulator), created at `createdAt` and
 * `sending`; `deleteAt` sets its deadline (default: an hour after it was made). Returns its id.
 */
export async function adminBroadcast(
  emu: BotApiEmulator,
  store: Store,
  o: { admin: number; createdAt: number; deleteAt?: number; progress?: boolean },
): Promise<number> {
  const source = emu.sendUserMessage({ id: o.admin }, 'News') as { message: { message_id: number } };
  const id = await broadcasts.insertBroadcast(store, {
    fromChatId: o.admin,
    messageId: source.message.message_id,
    text: 'News',
    caption: null,
    fileId: null,
    durationHours: 1,
    createdAt: o.createdAt,
    progressChatId: o.progress === false ? null : o.admin,
    progressMessageId: o.progress === false ? null : source.message.message_id,
  });
  if (o.deleteAt !== undefined)
    await store.db.updateTable('broadcasts').set({ delete_at: o.deleteAt }).where('id', '=', id).execute();
  return id;
}

/** A pending deletion as the tests read it back: its chat, its messages, when it falls due, whether it notifies. */
export interface PendingRow {
  chat: number;
  ids: number[];
  deleteAt: number;
  notice: number;
}

/** Every pending deletion, oldest first. */
export async function pendingRows(store: Store): Promise<PendingRow[]> {
  const rows = await store.db
    .selectFrom('pending_deletions')
    .select(['chat_id', 'message_ids', 'delete_at', 'notice'])
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    chat: Number(r.chat_id),
    ids: JSON.parse(r.message_ids) as number[],
    deleteAt: Number(r.delete_at),
    notice: Number(r.notice),
  }));
}
