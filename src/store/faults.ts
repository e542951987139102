/**
 * Setup faults: a job that met a rejected token or a storm of "chat not found" rests here until `retry_at`, so every
 * process (and a restarted one) backs off together and /healthz can name it until a run works again.
 */
import { backoff } from '../backoff.ts';
import type { Store } from './db.ts';
import type { JobFaultsTable } from './schema.ts';

/** A recorded setup fault. */
export type JobFault = JobFaultsTable;

/** How long a job rests after its `count`-th setup fault in a row: 1 min, doubling, at most 15 min. */
export function faultBackoffMs(count: number): number {
  return backoff(count, { base: 60_000, cap: 15 * 60_000 });
}

/** The job's fault, if one is recorded. */
export async function getFault(store: Store, job: string): Promise<JobFault | undefined> {
  return store.db.selectFrom('job_faults').selectAll().where('job', '=', job).executeTakeFirst();
}

/** Every recorded fault (health, status). */
export async function listFaults(store: Store): Promise<JobFault[]> {
  return store.db.selectFrom('job_faults').selectAll().orderBy('job').execute();
}

/**
 * Records a setup fault met at `nowMs`. A fault met after the rest ended counts as one more in a row (a longer
 * rest); one met during the rest (another process, a manual run) keeps the rest as it is. Returns the fault.
 */
export async function recordFault(store: Store, job: string, message: string, nowMs: number): Promise<JobFault> {
  const old = await getFault(store, job);
  const again = !old || old.retry_at <= nowMs;
  const count = old ? (again ? Number(old.count) + 1 : Number(old.count)) : 1;
  const row: JobFault = {
    job,
    message: message.slice(0, 500),
    count,
    since: old ? Number(old.since) : nowMs,
    retry_at: again ? nowMs + faultBackoffMs(count) : Number(old.retry_at),
  };
  await store.db
    .insertInto('job_faults')
    .values(row)
    .onConflict((oc) =>
      oc.column('job').doUpdateSet({ message: row.message, count: row.count, retry_at: row.retry_at }),
    )
    .execute();
  return row;
}

/**
 * Clears the job's fault after a run that proved the setup works (a call succeeded); true when there was one. With
 * `seenRetryAt`, only the fault that run saw: one another run recorded meanwhile stays.
 */
export async function clearFault(store: Store, job: string, seenRetryAt?: number): Promise<boolean> {
  const r = await store.db
    .deleteFrom('job_faults')
    .where('job', '=', job)
    .$if(seenRetryAt !== undefined, (qb) => qb.where('retry_at', '=', seenRetryAt!))
    .executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** How many recently answering chats are kept to probe the setup with. */
export const KNOWN_CHATS_KEPT = 5;

/** Remembers chats that just answered a call (once per run, not per call), keeping the newest few. */
export async function rememberChats(store: Store, chatIds: Iterable<number>, nowMs: number): Promise<void> {
  const ids = [...new Set(chatIds)].slice(-KNOWN_CHATS_KEPT);
  if (ids.length === 0) return;
  await store.db
    .insertInto('known_chats')
    .values(ids.map((chat_id) => ({ chat_id, seen_at: nowMs })))
    .onConflict((oc) => oc.column('chat_id').doUpdateSet({ seen_at: nowMs }))
    .execute();
  const keep = store.db
    .selectFrom('known_chats')
    .select('chat_id')
    .orderBy('seen_at', 'desc')
    .orderBy('chat_id')
    .limit(KNOWN_CHATS_KEPT);
  await store.db.deleteFrom('known_chats').where('chat_id', 'not in', keep).execute();
}

/** The chats that answered lately, newest first. */
export async function knownChats(store: Store): Promise<number[]> {
  const rows = await store.db.selectFrom('known_chats').select('chat_id').orderBy('seen_at', 'desc').execute();
  return rows.map((r) => Number(r.chat_id));
}
