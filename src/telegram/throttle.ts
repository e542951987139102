/** One shared rate limit for every Bot API call a process makes: calls are spaced evenly at `rate` per second. */

/** A leaky-bucket limiter. `take()` resolves when the caller may make one call. */
export class Throttle {
  private nextSlot = 0;
  private pausedUntil = 0;
  private pauses = 0;
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
    // Slots booked before the pause are void: their callers queue again, spaced from the pause's end.
    this.nextSlot = this.pausedUntil;
    this.pauses++;
  }

  /** Waits for the next free slot (no wait when unlimited and not paused). */
  async take(): Promise<void> {
    for (;;) {
      const now = performance.now();
      const slot = Math.max(now, this.nextSlot, this.pausedUntil);
      if (this.interval > 0) this.nextSlot = slot + this.interval;
      const pauses = this.pauses;
      // Timers may fire a little early against performance.now(): sleep until the slot is really reached, so no
      // call goes out before a 429 pause ends.
      while (performance.now() < slot) await new Promise((r) => setTimeout(r, Math.max(1, slot - performance.now())));
      if (this.pauses === pauses) return;
    }
  }
}
