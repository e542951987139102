/**
 * Setup faults: a job that met a rejected token or a storm of "chat not found" rests here until `retry_at`, so every
 * process (and a restarted one) backs off together and /healthz can name it until a run works again.
 */
import type { Store } from './db.ts';
import type { JobFaultsTable } from './schema.ts';

/** A recorded setup fault. */
export type JobFault = JobFaultsTable;

/** How long a job rests after its `count`-th setup fault in a row: 1 min, doubling, at most 15 min. */
export function faultBackoffMs(count: number): number {
  return Math.min(60_000 * 2 ** Math.max(0, count - 1), 15 * 60_000);
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

/** Clears the job's fault after a run that worked; true when there was one. */
export async function clearFault(store: Store, job: string): Promise<boolean> {
  const r = await store.db.deleteFrom('job_faults').where('job', '=', job).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}
