/**
 * The emulator's rate limits: a sliding one-second window over the calls it admitted, as Telegram's limits behave
 * seen from outside (a burst up to the limit passes, the next call is refused until the oldest leaves the window).
 */

/** One sliding 1 s window: the clock stamps of the calls it admitted, a queue read from `head`. */
export class RateWindow {
  private stamps: number[] = [];
  private head = 0;

  /**
   * Admits a call at `t` (ms) when fewer than `limit` were admitted in the second before: null. Otherwise nothing is
   * recorded and the answer is the seconds until the window has room again, at least 1 (Telegram's retry_after).
   */
  admit(t: number, limit: number): number | null {
    while (this.head < this.stamps.length && this.stamps[this.head]! <= t - 1000) this.head++;
    // Drop what the head passed now and then, not on every call: a long run would otherwise copy the array each time.
    if (this.head > 1024 && this.head * 2 > this.stamps.length) {
      this.stamps = this.stamps.slice(this.head);
      this.head = 0;
    }
    if (this.stamps.length - this.head >= limit) {
      const oldest = this.stamps[this.head] ?? t;
      return Math.max(1, Math.ceil((oldest + 1000 - t) / 1000));
    }
    this.stamps.push(t);
    return null;
  }

  /** Forgets every call admitted (a new limit starts from an empty window). */
  clear(): void {
    this.stamps = [];
    this.head = 0;
  }
}

/**
 * Whether Telegram's `method` takes `allow_paid_broadcast` (Bot API 7.11: the send* methods and copyMessage). The
 * emulator keeps its own list rather than the throttle's: it stands for Telegram, which the throttle is tested against.
 */
export function takesPaidBroadcast(method: string): boolean {
  return method === 'copyMessage' || (method.startsWith('send') && method !== 'sendChatAction');
}
