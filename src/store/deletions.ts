/**
 * Pending deletions: messages to delete at `delete_at`. Rows are claimed in batches with a lease (`FOR UPDATE SKIP
 * LOCKED` on PostgreSQL; SQLite serialises writers), so two processes never work one row at once and a dead
 * process's claims come back when the lease ends. A row leaves only when its work is done or impossible.
 */
import { createHash } from 'node:crypto';
import type { Store } from './db.ts';
import type { PendingDeletion } from './schema.ts';

/** A deletion to schedule. */
export interface NewDeletion {
  userId: number;
  chatId: number;
  messageIds: number[];
  deleteAt: number;
  /** What "Click Here" fetches again (the file's unique id). */
  uniqueId?: string | null;
  createdAt: number;
  /** Whether the "deleted" notice follows the deletion (default true). */
  notice?: boolean;
}

/** `sha256:<hex>` of the compact JSON of `content`. */
export function sha256Key(content: unknown): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(content)).digest('hex')}`;
}

/**
 * The `dedupe_key` of a pending deletion: `_id:<source_id>` when it came with an `_id`, else `sha256:<hex>` of the
 * JSON `{"user_id","chat_id","message_ids","delete_at","unique_id"}` (that key order, no spaces, instants as epoch
 * ms, a missing unique_id as null). Rows the app creates itself use this too, so an import never duplicates them.
 */
export function pendingDeletionDedupeKey(d: {
  source_id?: string | null;
  user_id: number;
  chat_id: number;
  message_ids: readonly number[];
  delete_at: number;
  unique_id?: string | null;
}): string {
  if (d.source_id != null) return `_id:${d.source_id}`;
  return sha256Key({
    user_id: d.user_id,
    chat_id: d.chat_id,
    message_ids: d.message_ids,
    delete_at: d.delete_at,
    unique_id: d.unique_id ?? null,
  });
}

/** Inserts a deletion; returns its id (the existing one when the same deletion is already there). */
export async function insertDeletion(store: Store, d: NewDeletion): Promise<number> {
  const dedupe_key = pendingDeletionDedupeKey({
    user_id: d.userId,
    chat_id: d.chatId,
    message_ids: d.messageIds,
    delete_at: d.deleteAt,
    unique_id: d.uniqueId ?? null,
  });
  const row = await store.db
    .insertInto('pending_deletions')
    .values({
      source_id: null,
      dedupe_key,
      user_id: d.userId,
      chat_id: d.chatId,
      message_ids: JSON.stringify(d.messageIds),
      delete_at: d.deleteAt,
      unique_id: d.uniqueId ?? null,
      created_at: d.createdAt,
      attempts: 0,
      next_attempt_at: d.deleteAt,
      last_error: null,
      messages_deleted: 0,
      claimed_by: null,
      claim_expires_at: null,
      notice: d.notice === false ? 0 : 1,
    })
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (row) return Number(row.id);
  const existing = await store.db
    .selectFrom('pending_deletions')
    .select('id')
    .where('dedupe_key', '=', dedupe_key)
    .executeTakeFirstOrThrow();
  return Number(existing.id);
}

/**
 * Claims up to `limit` rows due at `dueMs` (`next_attempt_at <= dueMs`, unclaimed or lease ended) for `owner`, earliest
 * first. Leases are real time (`wallMs`), since other processes compare them with their own clocks.
 */
export async function claimDue(
  store: Store,
  owner: string,
  dueMs: number,
  wallMs: number,
  leaseMs: number,
  limit: number,
): Promise<PendingDeletion[]> {
  const { db } = store;
  const due = db
    .selectFrom('pending_deletions')
    .select('id')
    .where('next_attempt_at', '<=', dueMs)
    .where('delete_at', '<=', dueMs)
    .where((eb) => eb.or([eb('claim_expires_at', 'is', null), eb('claim_expires_at', '<', wallMs)]))
    .orderBy('next_attempt_at')
    .limit(limit)
    .$if(store.dialect === 'postgres', (qb) => qb.forUpdate().skipLocked());
  return db
    .updateTable('pending_deletions')
    .set({ claimed_by: owner, claim_expires_at: wallMs + leaseMs })
    .where('id', 'in', due)
    .returningAll()
    .execute();
}

/** Counts rows due at `now` and their messages (for dry runs). */
export async function countDue(store: Store, nowMs: number): Promise<{ rows: number; messages: number }> {
  let rows = 0;
  let messages = 0;
  let after = 0;
  // Paged so a dry run over a million rows stays in constant memory.
  for (;;) {
    const page = await store.db
      .selectFrom('pending_deletions')
      .select(['id', 'message_ids', 'messages_deleted'])
      .where('next_attempt_at', '<=', nowMs)
      .where('delete_at', '<=', nowMs)
      .where('id', '>', after)
      .orderBy('id')
      .limit(1000)
      .execute();
    if (page.length === 0) return { rows, messages };
    for (const r of page) {
      rows++;
      if (!r.messages_deleted) messages += (JSON.parse(r.message_ids) as number[]).length;
    }
    after = Number(page[page.length - 1]!.id);
  }
}

/**
 * Removes a row whose work is done (or known impossible), only while `owner` still holds its claim: a process that
 * lost the claim (its lease ran out and another took the row) removes nothing. True when removed.
 */
export async function removeDeletion(store: Store, id: number, owner: string): Promise<boolean> {
  const r = await store.db
    .deleteFrom('pending_deletions')
    .where('id', '=', id)
    .where('claimed_by', '=', owner)
    .executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** Ids per statement of the statements that take a list of rows (well under SQLite's 32,766 bound parameters). */
const IDS_PER_STATEMENT = 500;

/** Runs `fn` on `ids` in slices of {@link IDS_PER_STATEMENT}, one statement each; the ids each returns, together. */
async function bySlices(ids: readonly number[], fn: (slice: number[]) => Promise<{ id: number }[]>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i += IDS_PER_STATEMENT)
    for (const r of await fn(ids.slice(i, i + IDS_PER_STATEMENT))) out.push(Number(r.id));
  return out;
}

/**
 * Removes finished rows in one statement (per 500), only those `owner` still holds (see {@link removeDeletion});
 * returns the ids removed.
 */
export async function removeDeletions(store: Store, ids: readonly number[], owner: string): Promise<Set<number>> {
  const removed = await bySlices(ids, (slice) =>
    store.db
      .deleteFrom('pending_deletions')
      .where('id', 'in', slice)
      .where('claimed_by', '=', owner)
      .returning('id')
      .execute(),
  );
  return new Set(removed);
}

/**
 * Keeps a row for a later attempt and releases `owner`'s claim. A row another process has claimed since (our lease
 * ran out) is left to that process. True when kept.
 */
export async function retryDeletion(
  store: Store,
  id: number,
  owner: string,
  r: { attempts: number; nextAttemptAt: number; lastError: string; messagesDeleted: boolean },
): Promise<boolean> {
  const res = await store.db
    .updateTable('pending_deletions')
    .set({
      attempts: r.attempts,
      next_attempt_at: r.nextAttemptAt,
      last_error: r.lastError.slice(0, 500),
      messages_deleted: r.messagesDeleted ? 1 : 0,
      claimed_by: null,
      claim_expires_at: null,
    })
    .where('id', '=', id)
    .where('claimed_by', '=', owner)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Extends `owner`'s claims on the given rows until `untilMs`; returns the ids still held (the others were lost). */
export async function renewClaims(store: Store, owner: string, ids: number[], untilMs: number): Promise<number[]> {
  return bySlices(ids, (slice) =>
    store.db
      .updateTable('pending_deletions')
      .set({ claim_expires_at: untilMs })
      .where('id', 'in', slice)
      .where('claimed_by', '=', owner)
      .returning('id')
      .execute(),
  );
}

/** Releases claims `owner` still holds on the given rows (a run ended early); their work is untouched. */
export async function releaseClaims(store: Store, owner: string, ids: number[]): Promise<void> {
  await bySlices(ids, async (slice) => {
    await store.db
      .updateTable('pending_deletions')
      .set({ claimed_by: null, claim_expires_at: null })
      .where('id', 'in', slice)
      .where('claimed_by', '=', owner)
      .execute();
    return [];
  });
}

/**
 * The earliest instant a row becomes workable, or null: the first `next_attempt_at` among rows no live process holds,
 * or the first lease end among held ones (a holder that died leaves its rows then; one that renews moves it on).
 */
export async function earliestWorkable(store: Store, nowMs: number): Promise<number | null> {
  const free = await store.db
    .selectFrom('pending_deletions')
    .select('next_attempt_at')
    .where((eb) => eb.or([eb('claim_expires_at', 'is', null), eb('claim_expires_at', '<', nowMs)]))
    .orderBy('next_attempt_at')
    .limit(1)
    .executeTakeFirst();
  const held = await store.db
    .selectFrom('pending_deletions')
    .select((eb) => eb.fn.min('claim_expires_at').as('at'))
    .where('claim_expires_at', '>=', nowMs)
    .executeTakeFirst();
  const times = [free?.next_attempt_at, held?.at].filter((t) => t !== null && t !== undefined).map(Number);
  return times.length ? Math.min(...times) : null;
}

/** Pending deletions: total, overdue at `now`, due within `withinMs` after now, and the earliest `delete_at`. */
export async function deletionStats(
  store: Store,
  nowMs: number,
  withinMs = 3600_000,
): Promise<{ total: number; overdue: number; dueSoon: number; nextDueAt: number | null }> {
  // One statement: the status page, /metrics and `status` each read them all at once.
  const r = await store.db
    .selectFrom('pending_deletions')
    .select((eb) => [
      eb.fn.countAll<number>().as('total'),
      eb.fn.sum<number>(eb.case().when('delete_at', '<=', nowMs).then(1).else(0).end()).as('overdue'),
      eb.fn
        .sum<number>(
          eb
            .case()
            .when(eb.and([eb('delete_at', '>', nowMs), eb('delete_at', '<=', nowMs + withinMs)]))
            .then(1)
            .else(0)
            .end(),
        )
        .as('soon'),
      eb.fn.min<number>('delete_at').as('next'),
    ])
    .executeTakeFirstOrThrow();
  // sum() of no rows is NULL, and PostgreSQL returns sums and counts as strings.
  return {
    total: Number(r.total),
    overdue: Number(r.overdue ?? 0),
    dueSoon: Number(r.soon ?? 0),
    nextDueAt: r.next === null ? null : Number(r.next),
  };
}
