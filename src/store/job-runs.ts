/**
 * Job runs and job locks: the database, not a process, decides who runs a tick. A tick is claimed by inserting
 * (job, scheduled_for) under a unique key; a job is taken by one conditional update of its `job_locks` row.
 */
import type { Kysely } from 'kysely';
import type { Database, JobRun, RunStatus } from './schema.ts';

type Db = Kysely<Database>;

/** Inserts a `running` run for the tick; returns its id, or null when another process claimed the tick first. */
export async function claimTick(
  db: Db,
  job: string,
  tickMs: number,
  owner: string,
  nowMs: number,
  leaseMs: number,
): Promise<number | null> {
  const row = await db
    .insertInto('job_runs')
    .values({
      job,
      scheduled_for: tickMs,
      started_at: nowMs,
      status: 'running',
      owner,
      lease_expires_at: nowMs + leaseMs,
      finished_at: null,
      summary: null,
      error: null,
    })
    .onConflict((oc) => oc.columns(['job', 'scheduled_for']).doNothing())
    .returning('id')
    .executeTakeFirst();
  return row ? Number(row.id) : null;
}

/** Inserts a manual run (no tick) started at `startedMs` with a lease until `leaseUntilMs`; returns its id. */
export async function insertManualRun(
  db: Db,
  job: string,
  owner: string,
  startedMs: number,
  leaseUntilMs: number,
): Promise<number> {
  const row = await db
    .insertInto('job_runs')
    .values({
      job,
      scheduled_for: null,
      started_at: startedMs,
      status: 'running',
      owner,
      lease_expires_at: leaseUntilMs,
      finished_at: null,
      summary: null,
      error: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

/** Takes the job's lock for `runId` unless another live run holds it. True when taken. */
export async function acquireJobLock(
  db: Db,
  job: string,
  owner: string,
  runId: number,
  nowMs: number,
  leaseMs: number,
): Promise<boolean> {
  await db
    .insertInto('job_locks')
    .values({ job, owner: null, run_id: null, lease_expires_at: null })
    .onConflict((oc) => oc.column('job').doNothing())
    .execute();
  const r = await db
    .updateTable('job_locks')
    .set({ owner, run_id: runId, lease_expires_at: nowMs + leaseMs })
    .where('job', '=', job)
    // Taking it again for the same run is a no-op success (a retry after a lost answer).
    .where((eb) => eb.or([eb('owner', 'is', null), eb('lease_expires_at', '<', nowMs), eb('run_id', '=', runId)]))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * Extends the lease of a run this process still owns (`running` under `owner`) and, with `lock` (a scheduled run,
 * which holds its job's lock; default false), the lock too. Each is one conditional statement, so a run another
 * process marked `abandoned`, or a lock another run took, is never renewed. True while the run is still ours.
 */
export async function renewLease(
  db: Db,
  job: string,
  runId: number,
  owner: string,
  untilMs: number,
  opts: { lock?: boolean } = {},
): Promise<boolean> {
  const run = await db
    .updateTable('job_runs')
    .set({ lease_expires_at: untilMs })
    .where('id', '=', runId)
    .where('status', '=', 'running')
    .where('owner', '=', owner)
    .executeTakeFirst();
  if (Number(run.numUpdatedRows) !== 1) return false;
  const lock = await db
    .updateTable('job_locks')
    .set({ lease_expires_at: untilMs })
    .where('job', '=', job)
    .where('run_id', '=', runId)
    .where('owner', '=', owner)
    .executeTakeFirst();
  // The run row is still ours, but another run took the job's lock once ours expired: two runs would overlap.
  return !opts.lock || Number(lock.numUpdatedRows) === 1;
}

/**
 * Records how a run ended and frees its lock, only while this process still owns the run: one statement with
 * `WHERE id AND status = 'running' AND owner`, so a run another process marked `abandoned` (its lease expired
 * while it was still working) keeps that status. True when the outcome was recorded.
 */
export async function finishRun(
  db: Db,
  runId: number,
  owner: string,
  status: RunStatus,
  nowMs: number,
  summary: unknown,
  error: string | null,
): Promise<boolean> {
  const json = summary === undefined ? null : JSON.stringify(summary);
  const r = await db
    .updateTable('job_runs')
    .set({ status, finished_at: nowMs, summary: json, error, lease_expires_at: null })
    .where('id', '=', runId)
    .where('status', '=', 'running')
    .where('owner', '=', owner)
    .executeTakeFirst();
  // Freed either way: a lock still naming this run is held by nobody alive.
  await db
    .updateTable('job_locks')
    .set({ owner: null, run_id: null, lease_expires_at: null })
    .where('run_id', '=', runId)
    .execute();
  return Number(r.numUpdatedRows) === 1;
}

/** One run's row, or undefined (e.g. to say why {@link finishRun} changed nothing). */
export async function runById(db: Db, runId: number): Promise<JobRun | undefined> {
  return db.selectFrom('job_runs').selectAll().where('id', '=', runId).executeTakeFirst();
}

/**
 * Marks `running` runs whose lease ran out (their process died) as `abandoned`; returns the ones this call marked
 * (one statement: when several processes recover at once, each run is reported by exactly one).
 */
export async function recoverAbandoned(db: Db, nowMs: number): Promise<{ id: number; job: string; owner: string }[]> {
  const marked = await db
    .updateTable('job_runs')
    .set({
      status: 'abandoned',
      finished_at: nowMs,
      error: 'lease expired: the process running it stopped',
      lease_expires_at: null,
    })
    .where('status', '=', 'running')
    .where('lease_expires_at', '<', nowMs)
    .returning(['id', 'job', 'owner'])
    .execute();
  return marked.map((s) => ({ id: Number(s.id), job: s.job, owner: s.owner }));
}

/** The latest tick recorded for a job (any status), or null. */
export async function lastTick(db: Db, job: string): Promise<number | null> {
  const r = await db
    .selectFrom('job_runs')
    .select((eb) => eb.fn.max('scheduled_for').as('t'))
    .where('job', '=', job)
    .executeTakeFirst();
  return r?.t == null ? null : Number(r.t);
}

/** The most recent runs of a job, newest first. */
export async function recentRuns(db: Db, job: string, limit = 10): Promise<JobRun[]> {
  return db
    .selectFrom('job_runs')
    .selectAll()
    .where('job', '=', job)
    .orderBy('started_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

/**
 * Whether a scheduled run of the job is `running` with a lease that has not expired at `nowMs`: it is alive and
 * being renewed (a message deleter working through a backlog), however long ago the last success was.
 */
export async function hasLiveRun(db: Db, job: string, nowMs: number): Promise<boolean> {
  const row = await db
    .selectFrom('job_runs')
    .select('id')
    .where('job', '=', job)
    .where('status', '=', 'running')
    .where('scheduled_for', 'is not', null)
    .where('lease_expires_at', '>=', nowMs)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** The latest finished run of a job with the given status (e.g. the last success), or undefined. */
export async function lastRunWithStatus(db: Db, job: string, status: RunStatus): Promise<JobRun | undefined> {
  return db
    .selectFrom('job_runs')
    .selectAll()
    .where('job', '=', job)
    .where('status', '=', status)
    .orderBy('finished_at', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/**
 * Deletes finished runs that ended before `beforeMs`, keeping each job's latest run and its latest tick (which
 * catch-up after downtime needs). Returns how many.
 */
export async function pruneRuns(db: Db, beforeMs: number): Promise<number> {
  const latest = db
    .selectFrom('job_runs')
    .select((eb) => eb.fn.max('id').as('id'))
    .groupBy('job');
  const r = await db
    .deleteFrom('job_runs')
    .where('status', '!=', 'running')
    .where('finished_at', '<', beforeMs)
    .where('id', 'not in', latest)
    .where((eb) =>
      eb.or([
        eb('scheduled_for', 'is', null),
        eb(
          'scheduled_for',
          '<',
          eb
            .selectFrom('job_runs as newest')
            .select((n) => n.fn.max('newest.scheduled_for').as('t'))
            .whereRef('newest.job', '=', 'job_runs.job'),
        ),
      ]),
    )
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
