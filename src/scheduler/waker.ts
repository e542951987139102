/**
 * Wakes at the instant work becomes due instead of at the next cron tick: re-reads the earliest due time every
 * `pollMs` (so work other processes add is seen), sleeps until then, and runs the work. The cron sweep stays as the
 * recorded run and the safety net. Never throws; logs, backs off and keeps going.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';

/** Options for {@link Waker}. */
export interface WakerOptions {
  /** For logs, e.g. "message deletion". */
  name: string;
  clock: Clock;
  logger: Logger;
  /** How often the earliest due time is re-read (default 250 ms). */
  pollMs?: number;
  /** The earliest instant (epoch ms) work becomes due, or null when there is none. */
  earliest(nowMs: number): Promise<number | null>;
  /** Does the due work; returns how many items it worked (0: nothing was workable, e.g. claimed elsewhere). */
  work(signal: AbortSignal): Promise<number>;
  /** How long `stop()` waits for work in hand (default 30 s). */
  stopTimeoutMs?: number;
}

/** A due-time waker. `start()`, `stop()`. */
export class Waker {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private busy: Promise<unknown> | null = null;
  private readonly abort = new AbortController();
  private failures = 0;

  constructor(private readonly o: WakerOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm(0);
  }

  /** Stops waking; waits for the work in hand (which stops taking new items) up to the stop timeout. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    if (this.busy)
      await Promise.race([this.busy.catch(() => {}), sleep(this.o.stopTimeoutMs ?? 30_000, undefined, { ref: false })]);
  }

  private arm(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(
      () => {
        // busy covers the whole step, the earliest() query too: stop() waits for it before the store closes.
        const step = this.step();
        this.busy = step;
        void step.then((delay) => {
          this.busy = null;
          this.arm(delay);
        });
      },
      Math.max(0, ms),
    );
  }

  /** Looks for due work and does it; resolves to the wait before the next step. Never rejects. */
  private async step(): Promise<number> {
    const pollMs = this.o.pollMs ?? 250;
    try {
      const now = this.o.clock.now().getTime();
      const next = await this.o.earliest(now);
      if (next === null || next > now || !this.running) {
        this.failures = 0;
        return next === null || !this.running ? pollMs : Math.min(pollMs, next - now);
      }
      const worked = await this.o.work(this.abort.signal);
      // Reset only once the work itself went through: work that keeps failing backs off toward 30 s.
      this.failures = 0;
      // More may be due right away (a next batch); if nothing was workable, look again after a poll.
      return worked > 0 ? 0 : pollMs;
    } catch (e) {
      this.failures++;
      const delay = Math.min(30_000, pollMs * 2 ** this.failures);
      this.o.logger.error(
        { err: (e as Error).message, retry_in_ms: delay },
        `❌ Error during ${this.o.name} wake-up: ${(e as Error).message}`,
      );
      return delay;
    }
  }
}
