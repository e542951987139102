/** What a job is to the scheduler: its definition, what a run is given, and how a run ended. */
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { RunStatus } from '../store/schema.ts';

/** What started a run: its schedule (catch-up included), an on-time wake-up, or a person (`run`, `/run`, `run()`). */
export type Trigger = 'schedule' | 'wake-up' | 'manual';

/** What a job run is given. */
export interface RunContext {
  /** The instant the run evaluates at; every time decision of the run uses it (or `clock`). */
  now: Date;
  /** The clock, for runs that take long enough that time moves on, and for their waits. */
  clock: Clock;
  /**
   * Real time, for leases and claims that other processes compare with their own clocks. The same as `clock`
   * except in a manual run `--now`, whose decisions are made at another instant but whose claims must stay real.
   */
  wallClock: Clock;
  /** Report what would change, change nothing. */
  dryRun: boolean;
  /**
   * A manual run works at once where a scheduled run or a wake-up waits (a job resting after a setup fault); a
   * wake-up runs again at once and skips what only a recorded run needs.
   */
  trigger: Trigger;
  /**
   * Aborted when the engine stops, or when the run's lease was lost (another process marked it abandoned or took
   * the job): finish the item in hand, take no new work.
   */
  signal: AbortSignal;
  logger: Logger;
}

/** On-time wake-ups of a job between its ticks (see `waker.ts`). */
export interface WakeOptions<S> {
  /** How often the change token is checked (ms); without one, how often the earliest due time is read again. */
  pollMs: number;
  /** A token that moves when work may have changed (the store's `changeToken`); see {@link WakerOptions}. */
  changeToken?: () => Promise<string>;
  /** The earliest instant (epoch ms) work becomes due, or null when there is none. */
  earliest(nowMs: number): Promise<number | null>;
  /** How many items a wake-up's run worked (0: nothing was workable, e.g. claimed elsewhere). */
  worked(summary: S): number;
}

/**
 * A job the engine can run, whose runs report a summary of type `S` (its counts, stored as JSON in
 * `job_runs.summary`, printed by `run --json`, shown on the status page and counted by the metrics).
 */
export interface JobDefinition<S extends object = object, N extends string = string> {
  /** Name used in `job_runs`, the CLI and metrics, e.g. `token-cleanup`. */
  name: N;
  /** Title for the start line: "Token Cleanup" → "🚀 Token Cleanup Scheduler started". */
  title: string;
  /** Lower-case label for errors: "token cleanup" → "❌ Error during token cleanup: …". */
  label: string;
  /** Cron expression (5 fields, or 6 with seconds first) or `off`. */
  schedule: string;
  run(ctx: RunContext): Promise<S>;
  /** The success log line, e.g. "✅ Token cleanup completed at 2025-12-20 00:00:00". */
  successLine(summary: S, at: string): string;
  /** Wake-ups at the instant work becomes due, besides the ticks (the deleters). */
  wake?: WakeOptions<S>;
  /**
   * Whether a run that returned `summary` failed all the same (a health check that found problems): the text is
   * recorded as the run's error, status `error`, with the summary kept. Null: the run is `ok`.
   */
  failure?(summary: S): string | null;
}

/** How a run ended, as the engine reports it, whatever its status. */
interface RunBase<N extends string> {
  job: N;
  runId: number | null;
  scheduledFor: Date | null;
  /** Real (wall-clock) start and end of the run, as recorded in `job_runs`. */
  startedAt: Date;
  finishedAt: Date;
  /** The instant the run decided at: its start, or a manual run's `--now`. */
  evaluatedAt: Date;
  error?: string;
}

/**
 * How a run ended: an `ok` run carries the job's whole summary; any other status what is known (nothing after an
 * error, the `reason` of a skipped tick, the summary of a run finished after another process gave up on it).
 */
export type RunResult<S extends object = object, N extends string = string> = RunBase<N> &
  ({ status: 'ok'; summary: S } | { status: Exclude<RunStatus, 'ok'>; summary: Partial<S> & { reason?: string } });

/** Any job definition. */
export type AnyJob = JobDefinition<object, string>;

/** The result type of a job definition type, per job when `J` is a union (so `r.job` narrows `r.summary`). */
export type ResultOf<J> = J extends JobDefinition<infer S, infer N> ? RunResult<S, N> : never;
