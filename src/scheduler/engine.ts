/**
 * The scheduler engine: runs named jobs on cron schedules in one time zone, each tick once across every process
 * that shares the database, never two runs of a job at once, missed ticks caught up once, dead runs recovered.
 *
 * The loop owns the timer; what is due is decided by `schedule.ts`; who runs is decided by `job-runs.ts` in the
 * database. A run gets `now` from the injected clock.
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { formatIn, offsetClock, type Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import type { RunStatus } from '../store/schema.ts';
import * as runs from '../store/job-runs.ts';
import { LeaseKeeper } from './lease-keeper.ts';
import { describeSchedule, latestFireAtOrBefore, nextFire } from './schedule.ts';

/** Counts a job reports (`deleted`, `rows`, …); stored as JSON in `job_runs.summary`. */
export type Summary = Record<string, unknown>;

/** What a job run is given. */
export interface RunContext {
  /** The instant the run evaluates at; every time decision of the run uses it (or `clock`). */
  now: Date;
  /** The clock, for runs that take long enough that time moves on. */
  clock: Clock;
  /**
   * Real time, for leases and claims that other processes compare with their own clocks. The same as `clock`
   * except in a manual run `--now`, whose decisions are made at another instant but whose claims must stay real.
   */
  wallClock: Clock;
  /** Report what would change, change nothing. */
  dryRun: boolean;
  /**
   * `schedule` for a tick (catch-up included), `manual` for `run`, `/run` and the library's `run`: a manual run
   * works at once where a scheduled one waits (a job resting after a setup fault).
   */
  trigger: 'schedule' | 'manual';
  /**
   * Aborted when the engine stops, or when the run's lease was lost (another process marked it abandoned or took
   * the job): finish the item in hand, take no new work.
   */
  signal: AbortSignal;
  logger: Logger;
}

/** A job the engine can run. */
export interface JobDefinition {
  /** Name used in `job_runs`, the CLI and metrics, e.g. `token-cleanup`. */
  name: string;
  /** Title for the start line: "Token Cleanup" → "🚀 Token Cleanup Scheduler started". */
  title: string;
  /** Lower-case label for errors: "token cleanup" → "❌ Error during token cleanup: …". */
  label: string;
  /** Cron expression (5 fields, or 6 with seconds first) or `off`. */
  schedule: string;
  run(ctx: RunContext): Promise<Summary>;
  /** The success log line, e.g. "✅ Token cleanup completed at 2025-12-20 00:00:00". */
  successLine(summary: Summary, at: string): string;
}

/** How a run ended, as the engine reports it. */
export interface RunResult {
  job: string;
  runId: number | null;
  status: RunStatus;
  scheduledFor: Date | null;
  /** Real (wall-clock) start and end of the run, as recorded in `job_runs`. */
  startedAt: Date;
  finishedAt: Date;
  /** The instant the run decided at: its start, or a manual run's `--now`. */
  evaluatedAt: Date;
  summary: Summary;
  error?: string;
}

/** Options for {@link Engine}. */
export interface EngineOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** IANA zone of the cron expressions (default `UTC`). */
  timezone?: string;
  jobs: JobDefinition[];
  /** Identifies this process in `job_runs.owner` (default host:pid:random). */
  owner?: string;
  /** How long a run's lease lasts; renewed every third of it while the run is alive (default 60 s). */
  leaseMs?: number;
  /** How long `stop()` waits for runs in flight (default 30 s). */
  shutdownTimeoutMs?: number;
  /** On start, run once a job whose last tick passed while the service was down (default true). */
  catchUpMissed?: boolean;
  /** The longest the loop sleeps before re-reading the clock (default 1 s), so clock jumps never make it late. */
  maxSleepMs?: number;
  /** Finished runs older than this many days are deleted (each job's latest is kept); 0 keeps all (default 14). */
  keepRunsDays?: number;
  /** Called after every run (metrics, status). Must not throw. */
  onRunFinished?: (r: RunResult) => void;
}

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

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Runs jobs on their schedules. `start()` begins, `stop()` ends after runs in flight; `tick()` is the loop's step. */
export class Engine {
  readonly owner: string;
  private readonly o: Required<Omit<EngineOptions, 'onRunFinished' | 'owner'>> & Pick<EngineOptions, 'onRunFinished'>;
  private readonly jobs = new Map<string, JobDefinition>();
  private readonly next = new Map<string, Date>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private loopBusy = false;
  private lastRecovery = 0;
  private lastPrune = 0;
  private starting: Promise<void> | null = null;

  constructor(opts: EngineOptions) {
    this.owner = opts.owner ?? newOwnerId();
    this.o = {
      timezone: 'UTC',
      leaseMs: 60_000,
      shutdownTimeoutMs: 30_000,
      catchUpMissed: true,
      maxSleepMs: 1000,
      keepRunsDays: 14,
      ...opts,
    };
    for (const j of opts.jobs) this.jobs.set(j.name, j);
  }

  /** The jobs this engine knows, enabled or not. */
  get definitions(): JobDefinition[] {
    return [...this.jobs.values()];
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Recovers dead runs, catches up missed ticks, logs the start lines and starts the timer loop. */
  start(opts: { timers?: boolean } = {}): Promise<void> {
    // stop() waits for a start still under way, so `start(); await stop()` never races the database's close.
    this.starting ??= this.begin(opts);
    return this.starting;
  }

  private async begin(opts: { timers?: boolean }): Promise<void> {
    this.running = true;
    const now = this.o.clock.now();
    this.lastRecovery = now.getTime();
    await this.recover(now);
    for (const job of this.jobs.values()) {
      if (job.schedule === 'off') {
        this.o.logger.info({ job: job.name }, `⏸️ ${job.title} Scheduler is off`);
        continue;
      }
      const next = nextFire(job.schedule, this.o.timezone, now);
      if (next) this.next.set(job.name, next);
      this.o.logger.info(
        { job: job.name, schedule: job.schedule, next_run: next?.toISOString() ?? null, timezone: this.o.timezone },
        `🚀 ${job.title} Scheduler started (runs ${describeSchedule(job.schedule)})`,
      );
      if (this.o.catchUpMissed) await this.catchUp(job, now);
    }
    if (opts.timers !== false) this.schedule(0);
  }

  /** Stops taking new runs and waits for runs in flight, up to the shutdown timeout. */
  async stop(): Promise<void> {
    await this.starting?.catch(() => {});
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    if (this.inFlight.size === 0) return;
    this.o.logger.info({ runs: this.inFlight.size }, 'waiting for runs in flight');
    let timedOut = false;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise<void>((r) => {
        t = setTimeout(() => ((timedOut = true), r()), this.o.shutdownTimeoutMs);
      }),
    ]);
    clearTimeout(t);
    if (timedOut)
      this.o.logger.warn(
        { runs: this.inFlight.size },
        'shutdown timeout: runs still in flight are left to lease expiry',
      );
  }

  /**
   * One step of the loop at `now`: fires every job whose next tick is due (coalescing ticks missed while asleep)
   * and returns the runs started, so tests can await them.
   */
  tick(now: Date = this.o.clock.now()): Promise<RunResult | null>[] {
    const started: Promise<RunResult | null>[] = [];
    if (!this.running) return started;
    if (now.getTime() - this.lastRecovery >= this.o.leaseMs / 2) {
      this.lastRecovery = now.getTime();
      started.push(this.track(this.recover(now).then(() => null)));
    }
    for (const [name, at] of this.next) {
      if (at.getTime() > now.getTime()) continue;
      const job = this.jobs.get(name)!;
      // The due tick is the latest one at or before now: ticks missed while the process slept are coalesced.
      const tickAt = latestFireAtOrBefore(job.schedule, this.o.timezone, now) ?? at;
      const next = nextFire(job.schedule, this.o.timezone, now);
      if (next) this.next.set(name, next);
      else this.next.delete(name);
      started.push(this.track(this.fire(job, tickAt)));
    }
    return started;
  }

  /**
   * Runs a job once now, outside its schedule (the CLI's `run`, the library's `run`), started or not. A started
   * engine's `stop()` waits for it; its failure reaches the caller.
   */
  async runNow(name: string, opts: { now?: Date; dryRun?: boolean } = {}): Promise<RunResult> {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`unknown job "${name}" (known: ${[...this.jobs.keys()].join(', ')})`);
    const p = runManual(job, {
      ...this.o,
      owner: this.owner,
      now: opts.now,
      dryRun: opts.dryRun ?? false,
      signal: this.abort.signal,
    }).then((r) => {
      // An abandoned run was reported by the process that marked it: reporting it here too would count it twice.
      if (r.status !== 'abandoned') this.o.onRunFinished?.(r);
      return r;
    });
    void this.track(p);
    return p;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    const guarded = p.catch((e) => {
      this.o.logger.error({ err: errorText(e) }, `❌ scheduler error: ${errorText(e)}`);
      return null as T;
    });
    this.inFlight.add(guarded);
    void guarded.finally(() => this.inFlight.delete(guarded));
    return guarded;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => this.loop(), Math.max(0, delayMs));
  }

  private loop(): void {
    if (!this.running || this.loopBusy) return;
    this.loopBusy = true;
    try {
      const now = this.o.clock.now();
      // Not awaited: the loop only starts the runs; each is tracked (its error logged, stop() waits for it).
      void this.tick(now);
      const soonest = Math.min(...[...this.next.values()].map((d) => d.getTime()), now.getTime() + this.o.maxSleepMs);
      // Re-read the clock on every wake and never sleep longer than maxSleepMs: no drift, no pile-up.
      this.schedule(Math.min(soonest - this.o.clock.now().getTime(), this.o.maxSleepMs));
    } catch (e) {
      this.o.logger.error({ err: errorText(e) }, `❌ scheduler loop error: ${errorText(e)}`);
      this.schedule(this.o.maxSleepMs);
    } finally {
      this.loopBusy = false;
    }
  }

  private async recover(now: Date): Promise<void> {
    try {
      // At most hourly, across processes it does not matter who: the history stays bounded.
      if (this.o.keepRunsDays > 0 && now.getTime() - this.lastPrune >= 3600_000) {
        this.lastPrune = now.getTime();
        const n = await runs.pruneRuns(this.o.store.db, now.getTime() - this.o.keepRunsDays * 86400_000);
        if (n > 0) this.o.logger.debug({ pruned: n }, `pruned ${n} old job runs`);
      }
      for (const r of await runs.recoverAbandoned(this.o.store.db, now.getTime())) {
        this.o.logger.warn(
          { job: r.job, run_id: r.id, owner: r.owner },
          `⚠️ ${r.job} run ${r.id} was abandoned by ${r.owner} (lease expired); the job is free again`,
        );
        this.o.onRunFinished?.({
          job: r.job,
          runId: r.id,
          status: 'abandoned',
          scheduledFor: null,
          startedAt: now,
          finishedAt: now,
          evaluatedAt: now,
          summary: {},
        });
      }
    } catch (e) {
      this.o.logger.error({ err: errorText(e) }, `❌ could not check for abandoned runs: ${errorText(e)}`);
    }
  }

  private async catchUp(job: JobDefinition, now: Date): Promise<void> {
    try {
      const last = await runs.lastTick(this.o.store.db, job.name);
      const missed = latestFireAtOrBefore(job.schedule, this.o.timezone, now);
      if (last === null || !missed || missed.getTime() <= last) return;
      this.o.logger.info(
        { job: job.name, missed_tick: missed.toISOString() },
        `⏰ ${job.title}: a tick passed while the service was down; running it now`,
      );
      void this.track(this.fire(job, missed));
    } catch (e) {
      this.o.logger.error(
        { job: job.name, err: errorText(e) },
        `❌ could not check missed ticks of ${job.label}: ${errorText(e)}`,
      );
    }
  }

  /** Claims the tick, takes the job's lock, runs the job and records the outcome. */
  private async fire(job: JobDefinition, tickAt: Date): Promise<RunResult | null> {
    const { store, clock, logger, leaseMs } = this.o;
    let startedAt = clock.now();
    let runId: number | null = null;
    let locked = false;
    // A database blip must not drop the tick: retry the claim with back-off until it works, the engine stops, or
    // the job's next tick is due (which then takes over).
    const giveUpAt = nextFire(job.schedule, this.o.timezone, tickAt)?.getTime() ?? Infinity;
    for (let attempt = 0; ; attempt++) {
      try {
        startedAt = clock.now();
        if (runId === null) {
          runId = await runs.claimTick(store.db, job.name, tickAt.getTime(), this.owner, startedAt.getTime(), leaseMs);
          if (runId === null) {
            logger.debug({ job: job.name, tick: tickAt.toISOString() }, 'tick claimed by another process');
            return null;
          }
        }
        locked = await runs.acquireJobLock(store.db, job.name, this.owner, runId, startedAt.getTime(), leaseMs);
        break;
      } catch (e) {
        const wait = Math.min(30_000, 500 * 2 ** attempt);
        if (!this.running || clock.now().getTime() + wait >= giveUpAt) throw e;
        logger.warn(
          { job: job.name, err: errorText(e), retry_in_ms: wait },
          `could not claim the ${job.label} tick: ${errorText(e)}; retrying`,
        );
        await sleep(wait, undefined, { signal: this.abort.signal }).catch(() => {});
        if (!this.running) return null;
      }
    }
    if (!locked) {
      const summary = { reason: 'the previous run is still running' };
      await runs.finishRun(store.db, runId, this.owner, 'skipped', startedAt.getTime(), summary, null);
      logger.info(
        { job: job.name, run_id: runId, tick: tickAt.toISOString() },
        `⏭️ ${job.title}: tick skipped, the previous run is still running`,
      );
      const r: RunResult = {
        job: job.name,
        runId,
        status: 'skipped',
        scheduledFor: tickAt,
        startedAt,
        finishedAt: startedAt,
        evaluatedAt: startedAt,
        summary,
      };
      this.o.onRunFinished?.(r);
      return r;
    }
    const r = await execute(job, {
      ...this.o,
      wallClock: this.o.clock,
      owner: this.owner,
      runId,
      holdsLock: true,
      trigger: 'schedule',
      scheduledFor: tickAt,
      startedAt,
      evaluatedAt: startedAt,
      dryRun: false,
      signal: this.abort.signal,
    });
    if (r.status !== 'abandoned') this.o.onRunFinished?.(r);
    return r;
  }
}

interface ExecuteOptions {
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
async function execute(job: JobDefinition, o: ExecuteOptions): Promise<RunResult> {
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
  let status: RunStatus = 'ok';
  let summary: Summary = {};
  let error: string | undefined;
  try {
    const jobLogger = logger.child({ job: job.name });
    const signal = runAbort.signal;
    summary = await job.run({
      now: o.evaluatedAt,
      clock,
      wallClock,
      dryRun: o.dryRun,
      trigger: o.trigger,
      signal,
      logger: jobLogger,
    });
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
  const result = { job: job.name, runId, scheduledFor, startedAt, finishedAt, evaluatedAt };
  const other = runId === null ? null : await recordEnd(o, job, runId, status, finishedAt.getTime(), summary, error);
  if (other !== null) {
    // Another process decided how this run ended, and the row keeps that: report it, not what the job returned.
    const outcome = status === 'ok' ? 'ok' : `with an error (${error})`;
    const why = `the run finished ${outcome} but had been marked ${other}: its lease ran out while it still worked`;
    logger.error(
      { job: job.name, run_id: runId, status: other, outcome: status, duration_ms: durationMs, ...summary },
      `⚠️ ${job.title}: run ${runId} finished but had been marked ${other} by another process; outcome not recorded`,
    );
    return { ...result, status: other, summary, error: why };
  }
  // The log line speaks of the instant the run decided at (`--now` for a manual run), like the seed's.
  const at = formatIn(new Date(o.evaluatedAt.getTime() + finishedAt.getTime() - o.startedAt.getTime()), o.timezone);
  const base = { job: job.name, run_id: runId, status, duration_ms: durationMs, dry_run: o.dryRun || undefined };
  const fields = { ...base, ...summary };
  if (status === 'ok') logger.info(fields, job.successLine(summary, at));
  else logger.error({ ...fields, err: error }, `❌ Error during ${job.label}: ${error}`);
  return { ...result, status, summary, ...(error ? { error } : {}) };
}

/**
 * Records a run's end while it is still ours, retrying a database blip briefly. Null when recorded (or left to lease
 * expiry after the retries); else the status the row has instead (`abandoned`: another process gave up on it).
 */
async function recordEnd(
  o: ExecuteOptions,
  job: JobDefinition,
  runId: number,
  status: RunStatus,
  finishedMs: number,
  summary: Summary,
  error: string | undefined,
): Promise<RunStatus | null> {
  const { store, logger, owner } = o;
  // A database blip here must not lose the outcome silently; retry briefly, then leave it to lease expiry.
  for (let i = 0; ; i++) {
    try {
      if (await runs.finishRun(store.db, runId, owner, status, finishedMs, summary, error ?? null)) return null;
      // Nothing changed. Read why, only to report it: the decision was the conditional update's.
      const row = await runs.runById(store.db, runId);
      // An earlier attempt whose answer was lost already recorded exactly this.
      if (row && row.owner === owner && row.status === status && Number(row.finished_at) === finishedMs) return null;
      return row?.status ?? 'abandoned';
    } catch (e) {
      if (i >= 4) {
        const fields = { job: job.name, run_id: runId, err: errorText(e) };
        logger.error(fields, 'could not record the end of a run; it will show as abandoned');
        return null;
      }
      await new Promise((r) => setTimeout(r, 200 * 2 ** i));
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
export async function runManual(job: JobDefinition, o: ManualRunOptions): Promise<RunResult> {
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
