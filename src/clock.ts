/** Where every time decision takes "now" from: jobs get a clock, tests give them a fixed one. */
export interface Clock {
  /** The current instant. */
  now(): Date;
}

/** The real wall clock. */
export const systemClock: Clock = { now: () => new Date() };

/** A clock stuck at one instant (the CLI's `--now`, tests); `set` and `advance` move it. */
export class FixedClock implements Clock {
  private t: number;
  constructor(at: Date | string | number) {
    this.t = new Date(at).getTime();
  }
  now(): Date {
    return new Date(this.t);
  }
  set(at: Date | string | number): void {
    this.t = new Date(at).getTime();
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A clock that reads `at` now and then runs with `base` (so `--now` works for runs that wait). */
export function offsetClock(at: Date, base: Clock = systemClock): Clock {
  const offset = at.getTime() - base.now().getTime();
  return { now: () => new Date(base.now().getTime() + offset) };
}

/** The calendar day (`YYYY-MM-DD`) of `at` in time zone `tz`. */
export function dayIn(at: Date, tz: string): string {
  // en-CA formats as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(
    at,
  );
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
