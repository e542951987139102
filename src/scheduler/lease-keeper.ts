/**
 * Keeps a lease alive while work runs: renews it on a period, notices when it is lost (another process took it, or
 * the row is gone), and stops. The one place lease renewal is written; engine runs, deletion claims, broadcast
 * claims and the broadcast sender all use it.
 */
import type { Clock, Timer } from '../clock.ts';
import type { Logger } from '../log.ts';

/** Options for {@link LeaseKeeper}. */
export interface LeaseKeeperOptions {
  /** What is held, for logs: "broadcast 12", "run 7 of token-cleanup". */
  what: string;
  /** Time from one renewal's end to the next; a third of the lease is usual. */
  periodMs: number;
  /**
   * Extends the lease in one conditional statement; resolves true while this process still owns it, false once it
   * does not. A rejection (database down) is logged and retried on the next period: the lease may still be ours.
   */
  renew: () => Promise<boolean>;
  logger: Logger;
  /**
   * How long the lease lasts. When renewals keep failing for that long (this process lost the database), the lease
   * counts as lost: another process may hold it by now. Unset: failures never make it lost.
   */
  leaseMs?: number;
  /** Real time: the renewals' period and `leaseMs` run on it. */
  clock: Clock;
  /** Called once when the lease is found lost (after `signal` is aborted). */
  onLost?: () => void;
}

/** Renews a lease until stopped or lost. `signal` aborts when the lease is lost. */
export class LeaseKeeper {
  private readonly abort = new AbortController();
  private timer: Timer | null = null;
  private inFlight: Promise<void> | null = null;
  private stopped = false;
  private lastRenewed = 0;

  constructor(private readonly o: LeaseKeeperOptions) {}

  /** Aborted when the lease was found lost: stop the work it covers. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** True once the lease was found lost. */
  get lost(): boolean {
    return this.abort.signal.aborted;
  }

  /** Starts renewing (idempotent). Returns this, so `new LeaseKeeper(o).start()` reads as one step. */
  start(): this {
    if (this.timer || this.stopped) return this;
    this.lastRenewed = this.now();
    this.arm();
    return this;
  }

  /** The next renewal, one period after the last one ended: a slow database never piles up statements. */
  private arm(): void {
    if (this.stopped || this.lost) return;
    // A lease alone must not keep the process alive: the work it covers does.
    this.timer = this.o.clock.timeout(
      this.o.periodMs,
      () => {
        this.timer = null;
        this.inFlight = this.renewOnce().finally(() => {
          this.inFlight = null;
          this.arm();
        });
      },
      { unref: true },
    );
  }

  /** Renews now (the holder learns at once whether it still owns the lease). */
  async renewNow(): Promise<boolean> {
    await this.renewOnce();
    return !this.lost;
  }

  /** Stops renewing and waits for a renewal in flight, so nothing touches the lease after the holder released it. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    await this.inFlight;
  }

  /** Marks the lease lost (the holder learned it another way, e.g. a conditional write that changed nothing). */
  markLost(why: string): void {
    if (this.lost) return;
    this.o.logger.error(
      { lease: this.o.what, why },
      `⚠️ lost the lease on ${this.o.what} (${why}); stopping that work`,
    );
    this.abort.abort();
    this.o.onLost?.();
  }

  private async renewOnce(): Promise<void> {
    if (this.lost || this.stopped) return;
    try {
      if (!(await this.o.renew())) this.markLost('another process holds it now, or it is gone');
      else this.lastRenewed = this.now();
    } catch (e) {
      const msg = (e as Error).message;
      if (this.o.leaseMs !== undefined && this.now() - this.lastRenewed >= this.o.leaseMs) {
        this.markLost(`no renewal went through for the whole lease (${msg}); another process may hold it now`);
        return;
      }
      this.o.logger.warn({ lease: this.o.what, err: msg }, `could not renew the lease on ${this.o.what}; retrying`);
    }
  }

  private now(): number {
    return this.o.clock.now().getTime();
  }
}
