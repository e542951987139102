/**
 * Broadcasts and their recipients. A broadcast is claimed with a lease while it is deleted; recipient rows go one
 * by one as their message is deleted, so a crash resumes where it stopped; the broadcast row goes last.
 */
import { sql } from 'kysely';
import type { Store } from './db.ts';
import type { Broadcast } from './schema.ts';
import { sha256Key } from './deletions.ts';

/**
 * Claims the next broadcast due at `dueMs` (not claimed by a live process) for `owner`, or undefined; a broadcast
 * still `sending` at its `delete_at` is taken too: its deadline ends the sending, and what was sent goes on time.
 * The lease is real time (`wallMs`).
 */
export async function claimDueBroadcast(
  store: Store,
  owner: string,
  dueMs: number,
  wallMs: number,
  leaseMs: number,
  skip: number[] = [],
): Promise<(Broadcast & { was_sending: boolean }) | undefined> {
  // Read, then take it in one conditional update (its status and claim unchanged since): the claim is the update's,
  // and the caller learns whether the deadline cut a sending (to tell the admin). Another process's win: try the next.
  for (let attempt = 0; attempt < 5; attempt++) {
    const due = await store.db
      .selectFrom('broadcasts')
      .select(['id', 'status'])
      .where('delete_at', '<=', dueMs)
      .where((eb) => eb.or([eb('claim_expires_at', 'is', null), eb('claim_expires_at', '<', wallMs)]))
      .$if(skip.length > 0, (qb) => qb.where('id', 'not in', skip))
      .orderBy('delete_at')
      .limit(1)
      .executeTakeFirst();
    if (!due) return undefined;
    const row = await store.db
      .updateTable('broadcasts')
      .set({ claimed_by: owner, claim_expires_at: wallMs + leaseMs, status: 'deleting' })
      .where('id', '=', due.id)
      .where('status', '=', due.status)
      .where((eb) => eb.or([eb('claim_expires_at', 'is', null), eb('claim_expires_at', '<', wallMs)]))
      .returningAll()
      .executeTakeFirst();
    if (row) return { ...row, was_sending: due.status === 'sending' };
  }
  return undefined;
}

/** Claims a broadcast still being sent (status `sending`, before its `delete_at`, not claimed by a live process). */
export async function claimSendingBroadcast(
  store: Store,
  owner: string,
  nowMs: number,
  leaseMs: number,
): Promise<Broadcast | undefined> {
  const next = store.db
    .selectFrom('broadcasts')
    .select('id')
    .where('status', '=', 'sending')
    .where('delete_at', '>', nowMs)
    .where((eb) => eb.or([eb('claim_expires_at', 'is', null), eb('claim_expires_at', '<', nowMs)]))
    .orderBy('id')
    .limit(1);
  // Read first, write only when there is one: an update, even of no row, fires PostgreSQL's work trigger, whose
  // NOTIFY would wake this idle sender (and every other waiting process) again and again.
  if (!(await next.executeTakeFirst())) return undefined;
  return store.db
    .updateTable('broadcasts')
    .set({ claimed_by: owner, claim_expires_at: nowMs + leaseMs })
    .where(
      'id',
      'in',
      next.$if(store.dialect === 'postgres', (qb) => qb.forUpdate().skipLocked()),
    )
    .returningAll()
    .executeTakeFirst();
}

/** A new broadcast in status `sending`; returns its id. */
export async function insertBroadcast(
  store: Store,
  b: {
    fromChatId: number;
    messageId: number;
    text: string | null;
    caption: string | null;
    fileId: string | null;
    durationHours: number;
    createdAt: number;
    progressChatId: number | null;
    progressMessageId: number | null;
  },
): Promise<number> {
  const deleteAt = b.createdAt + Math.round(b.durationHours * 3600_000);
  // The import's key for the same fields: re-importing this broadcast's export finds it instead of adding a copy.
  const dedupeKey = broadcastDedupeKey({
    message_id: b.messageId,
    text: b.text,
    caption: b.caption,
    file_id: b.fileId,
    created_at: b.createdAt,
    delete_at: deleteAt,
  });
  const row = await store.db
    .insertInto('broadcasts')
    .values({
      source_id: null,
      dedupe_key: dedupeKey,
      message_id: b.messageId,
      text: b.text,
      caption: b.caption,
      file_id: b.fileId,
      duration_hours: b.durationHours,
      channel_message_id: null,
      created_at: b.createdAt,
      delete_at: deleteAt,
      status: 'sending',
      from_chat_id: b.fromChatId,
      send_cursor: 0,
      sent_count: 0,
      failed_count: 0,
      claimed_by: null,
      claim_expires_at: null,
      progress_chat_id: b.progressChatId,
      progress_message_id: b.progressMessageId,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

/** Records a recipient's copy made elsewhere (imports, tests); idempotent. The sender reserves first instead. */
export async function addRecipient(
  store: Store,
  broadcastId: number,
  chatId: number,
  messageId: number,
): Promise<void> {
  await store.db
    .insertInto('broadcast_messages')
    .values({ broadcast_id: broadcastId, chat_id: chatId, message_id: messageId })
    .onConflict((oc) => oc.columns(['broadcast_id', 'chat_id']).doNothing())
    .execute();
}

/** The `message_id` of a recipient reserved for a copy not yet confirmed (Telegram's ids start at 1). */
export const RESERVED = 0;

/**
 * Reserves one recipient before their copy is asked of Telegram, in one statement that also checks `owner` still
 * holds a live claim on the broadcast: the recipient's row (its key is the broadcast and the chat) then says that
 * this process, and only it, may copy to them. `reserved`: go ahead; `taken`: the recipient has a row already (a
 * recorded copy, or a copy some process asked for without an answer) — never copy again; `lost`: the claim is gone.
 */
export async function reserveRecipient(
  store: Store,
  broadcastId: number,
  chatId: number,
  owner: string,
  wallMs: number,
): Promise<'reserved' | 'taken' | 'lost'> {
  const row = await store.db
    .insertInto('broadcast_messages')
    .columns(['broadcast_id', 'chat_id', 'message_id'])
    .expression((eb) =>
      eb
        .selectFrom('broadcasts')
        .select(['id', sql<number>`cast(${chatId} as bigint)`.as('chat_id'), sql<number>`${RESERVED}`.as('message_id')])
        .where('id', '=', broadcastId)
        .where('claimed_by', '=', owner)
        .where('claim_expires_at', '>', wallMs),
    )
    .onConflict((oc) => oc.columns(['broadcast_id', 'chat_id']).doNothing())
    .returning('chat_id')
    .executeTakeFirst();
  if (row) return 'reserved';
  // Nothing inserted: read why, only to tell the caller (the decision was the statement's).
  return (await recipientMessage(store, broadcastId, chatId)) !== undefined ? 'taken' : 'lost';
}

/** A recipient's recorded message id ({@link RESERVED} while unconfirmed), or undefined without a row. */
export async function recipientMessage(store: Store, broadcastId: number, chatId: number): Promise<number | undefined> {
  const r = await store.db
    .selectFrom('broadcast_messages')
    .select('message_id')
    .where('broadcast_id', '=', broadcastId)
    .where('chat_id', '=', chatId)
    .executeTakeFirst();
  return r ? Number(r.message_id) : undefined;
}

/**
 * Records the copy a reservation was for. Conditional on the reservation (still {@link RESERVED}): it is this
 * process's own per-recipient claim, which no other process can take, so a copy that arrives after the broadcast's
 * lease ran out is still recorded and deleted on time. False when there was no reservation to fill.
 */
export async function recordCopy(
  store: Store,
  broadcastId: number,
  chatId: number,
  messageId: number,
): Promise<boolean> {
  const r = await store.db
    .updateTable('broadcast_messages')
    .set({ message_id: messageId })
    .where('broadcast_id', '=', broadcastId)
    .where('chat_id', '=', chatId)
    .where('message_id', '=', RESERVED)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Gives a reservation back: Telegram answered that nothing was copied, so the recipient may be asked again. */
export async function dropReservation(store: Store, broadcastId: number, chatId: number): Promise<void> {
  await store.db
    .deleteFrom('broadcast_messages')
    .where('broadcast_id', '=', broadcastId)
    .where('chat_id', '=', chatId)
    .where('message_id', '=', RESERVED)
    .execute();
}

/** Moves the sending cursor past `userId` and adds to the counts, while `owner` holds the claim. True when moved. */
export async function advanceSend(
  store: Store,
  id: number,
  owner: string,
  userId: number,
  sent: number,
  failed: number,
): Promise<boolean> {
  const r = await store.db
    .updateTable('broadcasts')
    .set((eb) => ({
      send_cursor: userId,
      sent_count: eb('sent_count', '+', sent),
      failed_count: eb('failed_count', '+', failed),
    }))
    .where('id', '=', id)
    .where('claimed_by', '=', owner)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/**
 * Marks a broadcast as done sending (it now waits for delete_at, or is due at once when its deadline ended the
 * sending) and releases it. With `owner`, only while that owner holds it (true when it did).
 */
export async function finishSending(store: Store, id: number, owner?: string): Promise<boolean> {
  const r = await store.db
    .updateTable('broadcasts')
    .set({ status: 'sent', claimed_by: null, claim_expires_at: null })
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .$if(owner !== undefined, (qb) => qb.where('claimed_by', '=', owner!))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** The earliest `delete_at` of a broadcast the deleter could take (not claimed by a live process), or null. */
export async function earliestDueBroadcast(store: Store, nowMs: number): Promise<number | null> {
  const r = await store.db
    .selectFrom('broadcasts')
    .select('delete_at')
    .where((eb) => eb.or([eb('claim_expires_at', 'is', null), eb('claim_expires_at', '<', nowMs)]))
    .orderBy('delete_at')
    .limit(1)
    .executeTakeFirst();
  return r ? Number(r.delete_at) : null;
}

/** Extends `owner`'s claim on a broadcast; false when it is no longer theirs. */
export async function renewBroadcastClaim(store: Store, id: number, owner: string, untilMs: number): Promise<boolean> {
  const r = await store.db
    .updateTable('broadcasts')
    .set({ claim_expires_at: untilMs })
    .where('id', '=', id)
    .where('claimed_by', '=', owner)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Releases a claim, leaving the broadcast for a later run; with `holdUntilMs`, no run takes it before then. */
export async function releaseBroadcast(
  store: Store,
  id: number,
  owner: string,
  holdUntilMs: number | null = null,
): Promise<void> {
  await store.db
    .updateTable('broadcasts')
    .set({ claimed_by: null, claim_expires_at: holdUntilMs })
    .where('id', '=', id)
    .where('claimed_by', '=', owner)
    .execute();
}

/** A page of recipients after `afterChatId`, in chat order (keyset paging: constant memory at any size). */
export async function recipientPage(
  store: Store,
  broadcastId: number,
  afterChatId: number | null,
  limit: number,
): Promise<{ chat_id: number; message_id: number }[]> {
  return store.db
    .selectFrom('broadcast_messages')
    .select(['chat_id', 'message_id'])
    .where('broadcast_id', '=', broadcastId)
    .$if(afterChatId !== null, (qb) => qb.where('chat_id', '>', afterChatId!))
    .orderBy('chat_id')
    .limit(limit)
    .execute();
}

/**
 * Removes one recipient whose message is dealt with, in one statement that checks `owner` still holds the
 * broadcast's claim. False when nothing was removed (the claim was lost, or the row is already gone).
 */
export async function removeRecipient(
  store: Store,
  broadcastId: number,
  chatId: number,
  owner: string,
): Promise<boolean> {
  const r = await store.db
    .deleteFrom('broadcast_messages')
    .where('broadcast_id', '=', broadcastId)
    .where('chat_id', '=', chatId)
    .where((eb) =>
      eb.exists(eb.selectFrom('broadcasts').select('id').where('id', '=', broadcastId).where('claimed_by', '=', owner)),
    )
    .executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** Recipients left for a broadcast. */
export async function countRecipients(store: Store, broadcastId: number): Promise<number> {
  const r = await store.db
    .selectFrom('broadcast_messages')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('broadcast_id', '=', broadcastId)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Removes a broadcast row (its recipients must be gone). */
export async function removeBroadcast(store: Store, id: number): Promise<void> {
  await store.db.deleteFrom('broadcast_messages').where('broadcast_id', '=', id).execute();
  await store.db.deleteFrom('broadcasts').where('id', '=', id).execute();
}

/** Due broadcasts (whoever holds them, sending or not) and their recipients: dry runs and what is left. */
export async function countDueBroadcasts(
  store: Store,
  nowMs: number,
): Promise<{ broadcasts: number; recipients: number }> {
  const r = await store.db
    .selectFrom('broadcasts')
    .leftJoin('broadcast_messages', 'broadcast_messages.broadcast_id', 'broadcasts.id')
    .select((eb) => [
      eb.fn.count<number>('broadcasts.id').distinct().as('b'),
      eb.fn.count<number>('broadcast_messages.chat_id').as('m'),
    ])
    .where('broadcasts.delete_at', '<=', nowMs)
    .executeTakeFirstOrThrow();
  return { broadcasts: Number(r.b), recipients: Number(r.m) };
}

/** Broadcasts not yet deleted, with recipients left, for the status page and metrics. */
export async function activeBroadcasts(store: Store): Promise<(Broadcast & { recipients_left: number })[]> {
  const rows = await store.db
    .selectFrom('broadcasts')
    .leftJoin('broadcast_messages', 'broadcast_messages.broadcast_id', 'broadcasts.id')
    .selectAll('broadcasts')
    .select((eb) => eb.fn.count<number>('broadcast_messages.chat_id').as('recipients_left'))
    .groupBy('broadcasts.id')
    .orderBy('broadcasts.delete_at')
    .execute();
  return rows.map((r) => ({ ...r, recipients_left: Number(r.recipients_left) }));
}

/**
 * The `dedupe_key` of a broadcast: `_id:<source_id>`, else `sha256:<hex>` of the JSON
 * `{"message_id","text","caption","file_id","channel_message_id","created_at","delete_at"}` (missing = null).
 */
export function broadcastDedupeKey(d: {
  source_id?: string | null;
  message_id?: number | null;
  text?: string | null;
  caption?: string | null;
  file_id?: string | null;
  channel_message_id?: number | null;
  created_at?: number | null;
  delete_at: number;
}): string {
  if (d.source_id != null) return `_id:${d.source_id}`;
  const {
    message_id = null,
    text = null,
    caption = null,
    file_id = null,
    channel_message_id = null,
    created_at = null,
    delete_at,
  } = d;
  return sha256Key({ message_id, text, caption, file_id, channel_message_id, created_at, delete_at });
}
