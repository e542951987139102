/**
 * Wakes at the instant work becomes due instead of at the next cron tick: sleeps until the earliest due time and runs
 * the work. Work this process adds is learnt at once (`kick()`); work other processes add, through a cheap change
 * token checked every `pollMs`: the earliest due time is read again only when the token moved, when the known due time came, or after
 * `safetyPollMs` (the net for a change the token missed). The cron sweep stays as the recorded run and the last net.
 * Never throws; logs, backs off and keeps going. {@link jobWaker} makes one for a job that declares `wake`.
 */
import { backoff } from '../backoff.ts';
import type { Clock, Timer } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { JobDefinition, WakeOptions } from './job.ts';

/** Options for {@link Waker}. */
export interface WakerOptions {
  /** For logs, e.g. "message deletion". */
  name: string;
  /** Where now and every wait come from. */
  clock: Clock;
  logger: Logger;
  /** How often the change token is checked, or (without one) the earliest due time re-read (default 250 ms). */
  pollMs?: number;
  /**
   * A token that moves when work may have changed (the store's `changeToken`); without one the earliest
   * due time is read every `pollMs`.
   */
  changeToken?: () => Promise<string>;
  /** With a change token: the earliest due time is read again at least this often anyway (default 10 s). */
  safetyPollMs?: number;
  /** The earliest instant (epoch ms) work becomes due, or null when there is none. */
  earliest(nowMs: number): Promise<number | null>;
  /** Does the due work; returns how many items it worked (0: nothing was workable, e.g. claimed elsewhere). */
  work(signal: AbortSignal): Promise<number>;
  /** How long `stop()` waits for work in hand (default 30 s). */
  stopTimeoutMs?: number;
}

/** Work that keeps failing waits this long at most before the waker looks again. */
const MAX_FAILURE_WAIT_MS = 30_000;

/** A due-time waker. `start()`, `stop()`. */
export class Waker {
  private timer: Timer | null = null;
  private running = false;
  private busy: Promise<unknown> | null = null;
  private readonly abort = new AbortController();
  private failures = 0;
  /** The change token when the earliest due time was last read. */
  private token: string | null = null;
  /** The earliest due time last read (null: none), and when it was read; undefined: read it again. */
  private knownNext: number | null | undefined = undefined;
  private readAt = 0;
  /** kick() came while a step ran: the next step comes at once. */
  private kicked = false;

  constructor(private readonly o: WakerOptions) {}

  /**
   * Looks at the due work now instead of at the next poll: this process has just written some (its own writes need
   * no poll to be seen). A step in hand is followed by another at once.
   */
  kick(): void {
    if (!this.running) return;
    this.knownNext = undefined;
    if (this.busy) {
      this.kicked = true;
      return;
    }
    this.timer?.cancel();
    this.arm(0);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm(0);
  }

  /** Stops waking; waits for the work in hand (which stops taking new items) up to the stop timeout. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    this.timer?.cancel();
    if (!this.busy) return;
    const grace = new AbortController();
    // step() never rejects; the race only bounds how long a stop waits for it.
    await Promise.race([
      this.busy,
      this.o.clock.sleep(this.o.stopTimeoutMs ?? 30_000, { unref: true, signal: grace.signal }),
    ]);
    grace.abort();
  }

  private arm(ms: number): void {
    if (!this.running) return;
    this.timer = this.o.clock.timeout(ms, () => {
      // busy covers the whole step, the earliest() query too: stop() waits for it before the store closes.
      const step = this.step();
      this.busy = step;
      void step.then((delay) => {
        this.busy = null;
        const now = this.kicked;
        this.kicked = false;
        this.arm(now ? 0 : delay);
      });
    });
  }

  /** Looks for due work and does it; resolves to the wait before the next step. Never rejects. */
  private async step(): Promise<number> {
    const pollMs = this.o.pollMs ?? 250;
    try {
      const now = this.o.clock.now().getTime();
      if (this.o.changeToken) {
        // Read before the due time, so a change that lands between the two is seen on the next check.
        const token = await this.o.changeToken();
        const known = this.knownNext;
        const fresh =
          token === this.token &&
          known !== undefined &&
          (known === null || now < known) &&
          now - this.readAt < (this.o.safetyPollMs ?? 10_000);
        if (fresh) return known === null ? pollMs : Math.min(pollMs, known - now);
        this.token = token;
      }
      const next = await this.o.earliest(now);
      this.knownNext = next;
      this.readAt = now;
      if (next === null || next > now || !this.running) {
        this.failures = 0;
        return next === null || !this.running ? pollMs : Math.min(pollMs, next - now);
      }
      const worked = await this.o.work(this.abort.signal);
      // The work changed what is due: read it again on the next step.
      this.knownNext = undefined;
      // Reset only once the work itself went through: work that keeps failing backs off toward 30 s.
      this.failures = 0;
      // More may be due right away (a next batch); if nothing was workable, look again after a poll.
      return worked > 0 ? 0 : pollMs;
    } catch (e) {
      this.knownNext = undefined;
      this.failures++;
      const delay = backoff(this.failures, { base: 2 * pollMs, cap: MAX_FAILURE_WAIT_MS });
      this.o.logger.error(
        { err: (e as Error).message, retry_in_ms: delay },
        `❌ Error during ${this.o.name} wake-up: ${(e as Error).message}`,
      );
      return delay;
    }
  }
}

/** Options for {@link jobWaker}. */
export interface JobWakerOptions<S> {
  clock: Clock;
  logger: Logger;
  /** How long `stop()` waits for a wake-up in hand (default 30 s). */
  stopTimeoutMs?: number;
  /** Told each wake-up that worked something, with its summary (these runs are not recorded in `job_runs`). */
  onRun?: (summary: S) => void;
}

/**
 * The on-time wake-ups of a job that declares `wake`: at the earliest due instant the job's own `run` is called with
 * the trigger `wake-up`, and a wake-up that worked something is reported through `onRun`.
 */
export function jobWaker<S extends object, N extends string>(
  job: JobDefinition<S, N> & { wake: WakeOptions<S> },
  o: JobWakerOptions<S>,
): Waker {
  const { wake } = job;
  return new Waker({
    name: job.label,
    clock: o.clock,
    logger: o.logger,
    pollMs: wake.pollMs,
    ...(wake.changeToken ? { changeToken: wake.changeToken } : {}),
    ...(o.stopTimeoutMs !== undefined ? { stopTimeoutMs: o.stopTimeoutMs } : {}),
    earliest: (nowMs) => wake.earliest(nowMs),
    async work(signal) {
      const now = o.clock.now();
      const ctx = { now, clock: o.clock, wallClock: o.clock, dryRun: false, trigger: 'wake-up' as const, signal };
      const summary = await job.run({ ...ctx, logger: o.logger });
      const worked = wake.worked(summary);
      if (worked > 0) o.onRun?.(summary);
      return worked;
    },
  });
}
