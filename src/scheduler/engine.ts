/**
 * The scheduler engine: runs named jobs on cron schedules in one time zone, each tick once across every process
 * that shares the database, never two runs of a job at once, missed ticks caught up once, dead runs recovered.
 *
 * The loop owns the timer (on the injected clock); what is due is decided by `schedule.ts`; who runs is decided by
 * `job-runs.ts` in the database; a run itself is `run.ts`.
 */
import { backoff } from '../backoff.ts';
import type { Clock, Timer } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import * as runs from '../store/job-runs.ts';
import type { AnyJob, JobDefinition, ResultOf, RunResult } from './job.ts';
import { errorText, execute, newOwnerId, runManual } from './run.ts';
import { describeSchedule, latestFireAtOrBefore, nextFire } from './schedule.ts';

/** Options for {@link Engine}; `J` is the type of its jobs (a union, so results narrow by job name). */
export interface EngineOptions<J extends AnyJob = AnyJob> {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** IANA zone of the cron expressions (default `UTC`). */
  timezone?: string;
  jobs: J[];
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
  onRunFinished?: (r: ResultOf<J>) => void;
}

/** Runs jobs on their schedules. `start()` begins, `stop()` ends after runs in flight; `tick()` is the loop's step. */
export class Engine<J extends AnyJob = AnyJob> {
  readonly owner: string;
  private readonly o: Required<Omit<EngineOptions<J>, 'onRunFinished' | 'owner'>> &
    Pick<EngineOptions<J>, 'onRunFinished'>;
  private readonly jobs = new Map<string, J>();
  private readonly next = new Map<string, Date>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private timer: Timer | null = null;
  private running = false;
  private loopBusy = false;
  private lastRecovery = 0;
  private lastPrune = 0;
  private starting: Promise<void> | null = null;

  constructor(opts: EngineOptions<J>) {
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
  get definitions(): J[] {
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
    // A failed start was reported to start()'s caller; here it only has to be over.
    await this.starting?.catch(() => undefined);
    if (!this.running) return;
    this.running = false;
    this.timer?.cancel();
    this.timer = null;
    this.abort.abort();
    if (this.inFlight.size === 0) return;
    this.o.logger.info({ runs: this.inFlight.size }, 'waiting for runs in flight');
    const grace = new AbortController();
    const timedOut = await Promise.race([
      Promise.allSettled([...this.inFlight]).then(() => false),
      this.o.clock.sleep(this.o.shutdownTimeoutMs, { unref: true, signal: grace.signal }).then(() => true),
    ]);
    grace.abort();
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
  tick(now: Date = this.o.clock.now()): Promise<ResultOf<J> | null>[] {
    const started: Promise<ResultOf<J> | null>[] = [];
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
  async runNow<S extends object, N extends string>(
    job: JobDefinition<S, N>,
    opts: { now?: Date; dryRun?: boolean } = {},
  ): Promise<RunResult<S, N>> {
    // Only the engine's own jobs: their results are what onRunFinished is typed for.
    if (!this.definitions.some((d) => d === (job as AnyJob))) throw new Error(`"${job.name}" is not this engine's job`);
    const p = runManual(job, {
      ...this.o,
      owner: this.owner,
      now: opts.now,
      dryRun: opts.dryRun ?? false,
      signal: this.abort.signal,
    }).then((r) => {
      // An abandoned run was reported by the process that marked it: reporting it here too would count it twice.
      // The job is one of J (checked above), so its result is one of ResultOf<J>.
      if (r.status !== 'abandoned') this.o.onRunFinished?.(r as unknown as ResultOf<J>);
      return r;
    });
    void this.track(p);
    return p;
  }

  private track<T>(p: Promise<T>): Promise<T | null> {
    const guarded = p.catch((e: unknown) => {
      this.o.logger.error({ err: errorText(e) }, `❌ scheduler error: ${errorText(e)}`);
      return null;
    });
    this.inFlight.add(guarded);
    void guarded.finally(() => this.inFlight.delete(guarded));
    return guarded;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = this.o.clock.timeout(delayMs, () => this.loop());
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
        const job = this.jobs.get(r.job);
        // A job this engine does not run (another version's) is logged, not reported as one of ours.
        if (job) this.o.onRunFinished?.(withoutSummary(job, { runId: r.id, status: 'abandoned', at: now }));
      }
    } catch (e) {
      this.o.logger.error({ err: errorText(e) }, `❌ could not check for abandoned runs: ${errorText(e)}`);
    }
  }

  private async catchUp(job: J, now: Date): Promise<void> {
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
  private async fire(job: J, tickAt: Date): Promise<ResultOf<J> | null> {
    const { store, clock, logger, leaseMs } = this.o;
    let startedAt = clock.now();
    let runId: number | null = null;
    let locked = false;
    // A database blip must not drop the tick: retry the claim with back-off until it works, the engine stops, or
    // the job's next tick is due (which then takes over).
    const giveUpAt = nextFire(job.schedule, this.o.timezone, tickAt)?.getTime() ?? Infinity;
    for (let attempt = 1; ; attempt++) {
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
        const wait = backoff(attempt, { base: 500, cap: 30_000 });
        if (!this.running || clock.now().getTime() + wait >= giveUpAt) throw e;
        logger.warn(
          { job: job.name, err: errorText(e), retry_in_ms: wait },
          `could not claim the ${job.label} tick: ${errorText(e)}; retrying`,
        );
        await clock.sleep(wait, { signal: this.abort.signal });
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
      const r = withoutSummary(job, { runId, status: 'skipped', at: startedAt, scheduledFor: tickAt, summary });
      this.o.onRunFinished?.(r);
      return r;
    }
    // execute's result is ResultOf<J> by construction; TypeScript cannot see through the conditional type.
    const r = (await execute(job, {
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
    })) as ResultOf<J>;
    if (r.status !== 'abandoned') this.o.onRunFinished?.(r);
    return r;
  }
}

/** The result of a run that did not return a summary (a skipped tick, an abandoned run), for `job`. */
function withoutSummary<J extends AnyJob>(
  job: J,
  r: { runId: number; status: 'skipped' | 'abandoned'; at: Date; scheduledFor?: Date; summary?: { reason: string } },
): ResultOf<J> {
  const { runId, status, at } = r;
  const result: RunResult = {
    job: job.name,
    runId,
    status,
    scheduledFor: r.scheduledFor ?? null,
    startedAt: at,
    finishedAt: at,
    evaluatedAt: at,
    summary: r.summary ?? {},
  };
  // Every job's result type takes a result without summary; TypeScript cannot see it through the conditional type.
  return result as ResultOf<J>;
}
