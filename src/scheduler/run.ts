/**
 * One run of a job: its lease kept while it works, its end recorded while it is still this process's, and a manual
 * run outside the schedule. The engine's ticks and `run` both end up here.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { backoff } from '../backoff.ts';
import { formatIn, offsetClock, type Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import type { RunStatus } from '../store/schema.ts';
import * as runs from '../store/job-runs.ts';
import { LeaseKeeper } from './lease-keeper.ts';
import type { JobDefinition, RunContext, RunResult } from './job.ts';

/** A new owner id: host, pid and a random part, so two engines in one process differ too. */
export function newOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/**
 * The owner name one run claims rows under: the process's owner and a random part, so two runs in one process (the
 * cron sweep and a wake-up) never renew or release each other's claims.
 */
export function runOwner(processOwner: string): string {
  return `${processOwner}/${randomBytes(3).toString('hex')}`;
}

export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** What {@link execute} needs to run a job whose run row (if any) is in place. */
export interface ExecuteOptions {
  store: Store;
  clock: Clock;
  wallClock: Clock;
  logger: Logger;
  timezone: string;
  leaseMs: number;
  owner: string;
  runId: number | null;
  /** Whether the run holds its job's lock (a scheduled run), which its lease renewal then keeps too. */
  holdsLock: boolean;
  scheduledFor: Date | null;
  startedAt: Date;
  evaluatedAt: Date;
  dryRun: boolean;
  trigger: RunContext['trigger'];
  signal: AbortSignal;
}

/**
 * Runs a job whose run row (if any) is already in place, renewing its lease, and records how it ended. A run whose
 * lease is found lost is told to stop (its signal aborts); one another process marked `abandoned` keeps that status.
 */
export async function execute<S extends object, N extends string>(
  job: JobDefinition<S, N>,
  o: ExecuteOptions,
): Promise<RunResult<S, N>> {
  const { store, clock, wallClock, logger, runId } = o;
  // The job stops taking new work when the engine stops or when the run is no longer ours. Combined by hand, not
  // with AbortSignal.any: the engine's signal lives as long as the process, and Node keeps every signal derived
  // from a long-lived one (nodejs/node#55351); this listener is removed when the run ends.
  const runAbort = new AbortController();
  const stopRun = () => runAbort.abort();
  if (o.signal.aborted) stopRun();
  else o.signal.addEventListener('abort', stopRun, { once: true });
  const keeper =
    runId === null
      ? null
      : new LeaseKeeper({
          what: `run ${runId} of ${job.name}`,
          periodMs: Math.max(1000, o.leaseMs / 3),
          leaseMs: o.leaseMs,
          clock: wallClock,
          renew: () => {
            const until = wallClock.now().getTime() + o.leaseMs;
            return runs.renewLease(store.db, job.name, runId, o.owner, until, { lock: o.holdsLock });
          },
          logger: logger.child({ job: job.name, run_id: runId }),
          onLost: stopRun,
        }).start();
  let summary: S | null = null;
  let error: string | undefined;
  let status: RunStatus = 'ok';
  try {
    summary = await job.run({
      now: o.evaluatedAt,
      clock,
      wallClock,
      dryRun: o.dryRun,
      trigger: o.trigger,
      signal: runAbort.signal,
      logger: logger.child({ job: job.name }),
    });
    const failed = job.failure?.(summary) ?? null;
    if (failed !== null) [status, error] = ['error', failed];
  } catch (e) {
    status = 'error';
    error = errorText(e);
  } finally {
    o.signal.removeEventListener('abort', stopRun);
    // Waits for a renewal in flight: nothing touches the lease after the run is recorded.
    await keeper?.stop();
  }
  const finishedAt = wallClock.now();
  const durationMs = finishedAt.getTime() - o.startedAt.getTime();
  const { scheduledFor, startedAt, evaluatedAt } = o;
  const base = { job: job.name, runId, scheduledFor, startedAt, finishedAt, evaluatedAt };
  const other =
    runId === null ? null : await recordEnd(o, job, runId, status, finishedAt.getTime(), summary ?? {}, error);
  if (other !== null) {
    // Another process decided how this run ended, and the row keeps that: report it, not what the job returned.
    const outcome = status === 'ok' ? 'ok' : `with an error (${error})`;
    const why = `the run finished ${outcome} but had been marked ${other}: its lease ran out while it still worked`;
    logger.error(
      { job: job.name, run_id: runId, status: other, outcome: status, duration_ms: durationMs, ...summary },
      `⚠️ ${job.title}: run ${runId} finished but had been marked ${other} by another process; outcome not recorded`,
    );
    // Only the owner records `ok`: another process can only have given the run up (or ended it with an error).
    return { ...base, status: other === 'ok' ? 'abandoned' : other, summary: summary ?? {}, error: why };
  }
  const fields = { job: job.name, run_id: runId, status, duration_ms: durationMs, dry_run: o.dryRun || undefined };
  if (status === 'ok' && summary) {
    // The log line speaks of the instant the run decided at (`--now` for a manual run), like the seed's.
    const at = formatIn(new Date(o.evaluatedAt.getTime() + durationMs), o.timezone);
    const logged: object = { ...fields, ...summary };
    logger.info(logged, job.successLine(summary, at));
    return { ...base, status: 'ok', summary };
  }
  const failedFields: object = { ...fields, ...summary, err: error };
  logger.error(failedFields, `❌ Error during ${job.label}: ${error}`);
  return { ...base, status: 'error', summary: summary ?? {}, ...(error ? { error } : {}) };
}

/**
 * Records a run's end while it is still ours, retrying a database blip briefly. Null when recorded (or left to lease
 * expiry after the retries); else the status the row has instead (`abandoned`: another process gave up on it).
 */
async function recordEnd(
  o: ExecuteOptions,
  job: { name: string },
  runId: number,
  status: RunStatus,
  finishedMs: number,
  summary: object,
  error: string | undefined,
): Promise<RunStatus | null> {
  const { store, logger, owner } = o;
  // A database blip here must not lose the outcome silently; retry briefly, then leave it to lease expiry.
  for (let attempt = 1; ; attempt++) {
    try {
      if (await runs.finishRun(store.db, runId, owner, status, finishedMs, summary, error ?? null)) return null;
      // Nothing changed. Read why, only to report it: the decision was the conditional update's.
      const row = await runs.runById(store.db, runId);
      // An earlier attempt whose answer was lost already recorded exactly this.
      if (row && row.owner === owner && row.status === status && Number(row.finished_at) === finishedMs) return null;
      return row?.status ?? 'abandoned';
    } catch (e) {
      if (attempt >= 5) {
        const fields = { job: job.name, run_id: runId, err: errorText(e) };
        logger.error(fields, 'could not record the end of a run; it will show as abandoned');
        return null;
      }
      await o.wallClock.sleep(backoff(attempt, { base: 200, cap: 3200 }));
    }
  }
}

/** Options for {@link runManual}. */
export interface ManualRunOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  timezone?: string;
  leaseMs?: number;
  owner?: string;
  /** Real time for the run's lease and claims (default `clock`). */
  wallClock?: Clock;
  /** Evaluate as if at this instant (default: the clock's now). */
  now?: Date;
  /** Report only; writes nothing, not even `job_runs` (default false). */
  dryRun?: boolean;
  signal?: AbortSignal;
}

/**
 * One run of a job now, outside its schedule: recorded in `job_runs` as a manual run (no tick, no job lock: the
 * jobs claim their work row by row, so a manual run is safe beside a scheduled one). A dry run records nothing.
 */
export async function runManual<S extends object, N extends string>(
  job: JobDefinition<S, N>,
  o: ManualRunOptions,
): Promise<RunResult<S, N>> {
  const evaluatedAt = o.now ?? o.clock.now();
  const wallClock = o.wallClock ?? o.clock;
  // Every decision of the run (what is due, back-off) is made as if at `now`, time moving on from there.
  const clock = o.now ? offsetClock(o.now, o.clock) : o.clock;
  const leaseMs = o.leaseMs ?? 60_000;
  const owner = o.owner ?? newOwnerId();
  const dryRun = o.dryRun ?? false;
  // The row records when the run really happened (its decisions use `evaluatedAt`): history and health stay true,
  // and its lease is real time, so a live engine never calls it abandoned.
  const startedAt = wallClock.now();
  const runId = dryRun
    ? null
    : await runs.insertManualRun(o.store.db, job.name, owner, startedAt.getTime(), startedAt.getTime() + leaseMs);
  return execute(job, {
    store: o.store,
    clock,
    wallClock,
    logger: o.logger,
    timezone: o.timezone ?? 'UTC',
    leaseMs,
    owner,
    runId,
    holdsLock: false,
    trigger: 'manual',
    scheduledFor: null,
    startedAt,
    evaluatedAt,
    dryRun,
    signal: o.signal ?? new AbortController().signal,
  });
}
