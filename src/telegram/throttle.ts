/** One shared rate limit for every Bot API call a process makes: calls are spaced evenly at `rate` per second. */
import type { Clock } from '../clock.ts';

/** A leaky-bucket limiter on an injected clock. `take()` resolves when the caller may make one call. */
export class Throttle {
  private nextSlot = 0;
  private pausedUntil = 0;
  private pauses = 0;
  private lastNow = 0;
  private readonly interval: number;

  /**
   * @param rate calls per second; 0 or Infinity = unlimited.
   * @param clock where the slots' time and the waits come from.
   */
  constructor(
    rate: number,
    private readonly clock: Clock,
  ) {
    this.interval = rate > 0 && Number.isFinite(rate) ? 1000 / rate : 0;
  }

  /**
   * Holds every caller until `ms` from now: after a 429 the whole process waits as Telegram asked, instead of the
   * other workers running into the same limit.
   */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.now() + ms);
    // Slots booked before the pause are void: their callers queue again, spaced from the pause's end.
    this.nextSlot = this.pausedUntil;
    this.pauses++;
  }

  /** Waits for the next free slot (no wait when unlimited and not paused). */
  async take(): Promise<void> {
    for (;;) {
      const slot = Math.max(this.now(), this.nextSlot, this.pausedUntil);
      if (this.interval > 0) this.nextSlot = slot + this.interval;
      const pauses = this.pauses;
      // Sleep until the slot is really reached (a timer may fire a little early): no call goes out before a 429
      // pause ends.
      for (let now = this.now(); now < slot; now = this.now()) await this.clock.sleep(Math.max(1, slot - now));
      // After a stalled event loop a timer runs before the I/O that came meanwhile: a 429 already received would
      // announce its pause only after this call left. One turn of the loop lets that I/O in first.
      await new Promise((r) => setImmediate(r));
      if (this.pauses === pauses) return;
    }
  }

  /** The clock's time; when it steps backwards (the wall clock was set back) the booked slots move with it. */
  private now(): number {
    const now = this.clock.now().getTime();
    if (now < this.lastNow) {
      const back = this.lastNow - now;
      this.nextSlot -= back;
      this.pausedUntil -= back;
    }
    this.lastNow = now;
    return now;
  }
}
