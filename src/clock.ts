/**
 * The one source of time: what "now" is and every wait (back-offs, leases, polls, the throttle, shutdown grace).
 * Components are given a clock; the service and the CLI pass {@link systemClock}, tests a {@link FakeClock} whose
 * time moves only when the test moves it, timers included.
 */

/** A pending timer of a {@link Clock}. */
export interface Timer {
  /** Stops the timer; nothing happens if it already fired. */
  cancel(): void;
}

/** Options of {@link Clock.timeout} and {@link Clock.sleep}. */
export interface TimerOptions {
  /** Let the process exit while only this timer is pending (default false: it keeps the process alive). */
  unref?: boolean;
  /** `sleep` only: resolve early when this aborts (a stop cuts a back-off short). */
  signal?: AbortSignal;
}

/** Where time comes from: the current instant, and timers that run on the same time. */
export interface Clock {
  /** The current instant. */
  now(): Date;
  /** Calls `fn` once `ms` of this clock's time have passed (at once for `ms` ≤ 0, on a later turn). */
  timeout(ms: number, fn: () => void, opts?: TimerOptions): Timer;
  /** Resolves after `ms` of this clock's time, or as soon as `opts.signal` aborts. Never rejects. */
  sleep(ms: number, opts?: TimerOptions): Promise<void>;
}

/** `sleep` made from a clock's `timeout`: one way to wait, whatever the clock. */
function sleepOn(timeout: Clock['timeout']): Clock['sleep'] {
  return (ms, opts = {}) =>
    new Promise<void>((resolve) => {
      const { signal } = opts;
      if (signal?.aborted) return resolve();
      const onAbort = () => {
        t.cancel();
        resolve();
      };
      const t = timeout(
        ms,
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        opts,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
}

function realTimeout(ms: number, fn: () => void, opts: TimerOptions = {}): Timer {
  const t = setTimeout(fn, Math.max(0, ms));
  if (opts.unref) t.unref();
  return { cancel: () => clearTimeout(t) };
}

/** The real wall clock and Node's timers. */
export const systemClock: Clock = { now: () => new Date(), timeout: realTimeout, sleep: sleepOn(realTimeout) };

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock whose time moves only when told (`set`, `advance`, `runNext`), timers included: a timer fires when the
 * clock passes its instant, in order of instant, then of creation. For tests and the CLI's fixed `--now`.
 */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Set<FakeTimer>();
  readonly sleep: Clock['sleep'] = sleepOn((ms, fn) => this.timeout(ms, fn));

  constructor(at: Date | string | number) {
    this.t = new Date(at).getTime();
  }

  now(): Date {
    return new Date(this.t);
  }

  timeout(ms: number, fn: () => void): Timer {
    const timer: FakeTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    // A timer already due needs no move of time: it fires on a later turn, as a real one would.
    if (ms <= 0) setImmediate(() => this.fireUntil(this.t));
    return { cancel: () => void this.timers.delete(timer) };
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** The instant the next timer fires (epoch ms), or null when none waits. */
  nextAt(): number | null {
    return this.next()?.at ?? null;
  }

  /**
   * Sets the time to `at` at once, as when the wall clock is set (a jump, forwards or back), then fires the timers
   * due by then, all seeing the new time.
   */
  set(at: Date | string | number): void {
    this.t = new Date(at).getTime();
    this.fireUntil(this.t);
  }

  /** Lets `ms` pass: each timer due by then fires at its own instant, in order. */
  advance(ms: number): void {
    const to = this.t + ms;
    this.fireUntil(to);
    this.t = to;
  }

  /**
   * Moves time to the next timer's instant and fires it (and any due at the same instant), then lets the
   * callbacks' promise continuations run. Returns that instant, or null when no timer waits.
   */
  async runNext(): Promise<number | null> {
    const next = this.next();
    if (!next) return null;
    this.advance(Math.max(0, next.at - this.t));
    await new Promise((r) => setImmediate(r));
    return next.at;
  }

  private next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const x of this.timers) if (!best || x.at < best.at || (x.at === best.at && x.seq < best.seq)) best = x;
    return best;
  }

  private fireUntil(to: number): void {
    for (let x = this.next(); x && x.at <= to; x = this.next()) {
      this.timers.delete(x);
      this.t = Math.max(this.t, x.at);
      x.fn();
    }
  }
}

/**
 * A clock that reads `at` now and then runs with `base`, timers too (so `--now` works for runs that wait): its
 * decisions are made as if at `at`, its waits last as long as `base`'s.
 */
export function offsetClock(at: Date, base: Clock = systemClock): Clock {
  const offset = at.getTime() - base.now().getTime();
  return {
    now: () => new Date(base.now().getTime() + offset),
    timeout: (ms, fn, opts) => base.timeout(ms, fn, opts),
    sleep: (ms, opts) => base.sleep(ms, opts),
  };
}

/** The calendar day (`YYYY-MM-DD`) of `at` in time zone `tz`. */
export function dayIn(at: Date, tz: string): string {
  // en-CA formats as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(
    at,
  );
}

/** The `n` calendar days ending with `today` (`YYYY-MM-DD`), oldest first: calendar steps, so DST never skips one. */
export function lastDays(today: string, n: number): string[] {
  const [y, m, d] = today.split('-').map(Number) as [number, number, number];
  return Array.from({ length: n }, (_, i) => new Date(Date.UTC(y, m - 1, d - (n - 1 - i))).toISOString().slice(0, 10));
}

/** `at` as local wall time in `tz`, `YYYY-MM-DD HH:MM:SS`, for logs and the status page. */
export function formatIn(at: Date, tz: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: tz,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '00';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
}

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** Days in month `m` (1–12) of year `y`, leap years counted; 0 for a month out of range. */
export function daysIn(y: number, m: number): number {
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1] ?? 0;
}

/** ISO-8601 (date, or date and time with optional fraction and offset; no offset = UTC) → epoch ms, or null. */
export function parseIso(s: string): number | null {
  const m = ISO.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((x) => Number(x ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || se > 59) return null;
  // Digits past milliseconds (Python writes microseconds) are dropped, not rounded, so a round trip is stable.
  const ms = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, se, ms);
  let out = t.getTime();
  const off = m[8];
  if (off && off !== 'Z' && off !== 'z') {
    const oh = Number(off.slice(1, 3));
    const om = off.length > 3 ? Number(off.slice(-2)) : 0;
    if (oh > 23 || om > 59) return null;
    out -= (off[0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  return out;
}
