/** One shared rate limit for every Bot API call a process makes: calls are spaced evenly at `rate` per second. */

/** A leaky-bucket limiter. `take()` resolves when the caller may make one call. */
export class Throttle {
  private nextSlot = 0;
  private pausedUntil = 0;
  private readonly interval: number;

  /** @param rate calls per second; 0 or Infinity = unlimited. */
  constructor(rate: number) {
    this.interval = rate > 0 && Number.isFinite(rate) ? 1000 / rate : 0;
  }

  /**
   * Holds every caller until `ms` from now: after a 429 the whole process waits as Telegram asked, instead of the
   * other workers running into the same limit.
   */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, performance.now() + ms);
  }

  /** Waits for the next free slot (no wait when unlimited and not paused). */
  take(): Promise<void> {
    const now = performance.now();
    if (this.interval === 0) return this.pausedUntil > now ? new Promise((r) => setTimeout(r, this.pausedUntil - now)) : Promise.resolve();
    const slot = Math.max(now, this.nextSlot, this.pausedUntil);
    this.nextSlot = slot + this.interval;
    const wait = slot - now;
    return wait < 1 ? Promise.resolve() : new Promise((r) => setTimeout(r, wait));
  }
}
