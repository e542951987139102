/** One shared rate limit for every Bot API call a process makes: calls are spaced evenly at `rate` per second. */

/** A leaky-bucket limiter. `take()` resolves when the caller may make one call. */
export class Throttle {
  private nextSlot = 0;
  private readonly interval: number;

  /** @param rate calls per second; 0 or Infinity = unlimited. */
  constructor(rate: number) {
    this.interval = rate > 0 && Number.isFinite(rate) ? 1000 / rate : 0;
  }

  /** Waits for the next free slot (no wait when unlimited). */
  take(): Promise<void> {
    if (this.interval === 0) return Promise.resolve();
    const now = performance.now();
    const slot = Math.max(now, this.nextSlot);
    this.nextSlot = slot + this.interval;
    const wait = slot - now;
    return wait < 1 ? Promise.resolve() : new Promise((r) => setTimeout(r, wait));
  }
}
