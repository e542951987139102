/**
 * Schedule maths, pure: when a cron expression fires in a time zone, the latest tick at or before an instant,
 * and what a schedule says in words. croner does the calendar work, daylight-saving edges included.
 */
import { Cron } from 'croner';
import { dayIn } from '../clock.ts';

const cache = new Map<string, Cron>();

function cron(expr: string, tz: string): Cron {
  const key = `${tz} ${expr}`;
  let c = cache.get(key);
  if (!c) {
    c = new Cron(expr, { timezone: tz, paused: true });
    cache.set(key, c);
  }
  return c;
}

/** The first fire time strictly after `after`, or null when the expression never fires again. */
export function nextFire(expr: string, tz: string, after: Date): Date | null {
  return cron(expr, tz).nextRun(after);
}

/** The next `n` fire times strictly after `after`. */
export function nextFires(expr: string, tz: string, after: Date, n: number): Date[] {
  return cron(expr, tz).nextRuns(n, after);
}

/** The latest fire time at or before `at`, or null. */
export function latestFireAtOrBefore(expr: string, tz: string, at: Date): Date | null {
  return cron(expr, tz).previousRuns(1, new Date(at.getTime() + 1))[0] ?? null;
}

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;
/** How far ahead {@link largestGapMs} looks. */
export const GAP_WINDOW_MS = 7 * DAY_MS;
/** Fire times {@link largestGapMs} walks one by one; past them it probes once an hour. */
export const GAP_MAX_FIRES = 100;
// A computed gap is reused for a day; it covers a window one day longer, so every instant of that day sees its
// next 7 days.
const GAP_REUSE_MS = DAY_MS;
const gapCache = new Map<string, { fromMs: number; gapMs: number | null }>();

/**
 * The largest gap between consecutive fire times of `expr` in `tz` from the latest one at or before `at` through at
 * least the next 7 days ({@link GAP_WINDOW_MS}, plus the day the result is reused; the first fire past them closes
 * the last gap), or null when it fires fewer than twice. The work is bounded: {@link GAP_MAX_FIRES} fire times
 * are walked one by one; a busier schedule (every second, every minute) is probed once an hour for the rest of the
 * window, each probe measuring the gap it falls in, so every gap longer than an hour is still found. Cached per
 * expression and zone for a day.
 */
export function largestGapMs(expr: string, tz: string, at: Date): number | null {
  const key = `${tz} ${expr}`;
  const atMs = at.getTime();
  const hit = gapCache.get(key);
  if (hit && atMs >= hit.fromMs && atMs - hit.fromMs < GAP_REUSE_MS) return hit.gapMs;
  const gapMs = computeLargestGap(cron(expr, tz), atMs, atMs + GAP_WINDOW_MS + GAP_REUSE_MS);
  gapCache.set(key, { fromMs: atMs, gapMs });
  return gapMs;
}

function computeLargestGap(c: Cron, fromMs: number, endMs: number): number | null {
  const fires: number[] = [];
  const prev = c.previousRuns(1, new Date(fromMs + 1))[0];
  if (prev) fires.push(prev.getTime());
  // Stays true when the walk ends at its cap, short of the window's end.
  let cut = true;
  for (let n = 0, t = new Date(fromMs); n < GAP_MAX_FIRES; n++) {
    const next = c.nextRun(t);
    if (next) fires.push(next.getTime());
    if (!next || next.getTime() > endMs) {
      cut = false;
      break;
    }
    t = next;
  }
  let largest: number | null = null;
  for (let i = 1; i < fires.length; i++) largest = Math.max(largest ?? 0, fires[i]! - fires[i - 1]!);
  const last = fires[fires.length - 1];
  if (!cut || last === undefined) return largest;
  // An hourly probe lands inside every longer gap of the rest of the window, and measures it.
  for (let p = last + HOUR_MS; p <= endMs; p += HOUR_MS) {
    const before = c.previousRuns(1, new Date(p + 1))[0];
    const after = c.nextRun(new Date(p));
    if (before && after) largest = Math.max(largest ?? 0, after.getTime() - before.getTime());
  }
  return largest;
}

/**
 * How old a job's last success may be at `at` before it counts as stale: twice the largest gap between its fire
 * times over the next 7 days ({@link largestGapMs}), so one missed run is tolerated and a schedule with uneven
 * gaps (`0 0,6 * * *`: 6 h, then 18 h) is judged by its longest wait. Null when the schedule fires fewer than twice.
 */
export function staleAfterMs(expr: string, tz: string, at: Date): number | null {
  const gap = largestGapMs(expr, tz, at);
  return gap === null ? null : 2 * gap;
}

const pad = (n: string) => n.padStart(2, '0');

/** A schedule in words: "every minute", "every hour", "at 00:00 and 12:00", "every 2 seconds", else the cron text. */
export function describeSchedule(expr: string): string {
  if (expr === 'off') return 'off';
  const f = expr.trim().split(/\s+/);
  const [sec, rest] = f.length === 6 ? [f[0]!, f.slice(1)] : ['0', f];
  const [min, hour, dom, mon, dow] = rest as [string, string, string, string, string];
  const everyDay = dom === '*' && mon === '*' && dow === '*';
  if (!everyDay) return `cron "${expr}"`;
  const step = (s: string) => /^\*\/(\d+)$/.exec(s)?.[1];
  if (sec === '*' && min === '*' && hour === '*') return 'every second';
  if (step(sec) && min === '*' && hour === '*') return `every ${step(sec)} seconds`;
  if (sec !== '0') return `cron "${expr}"`;
  if (min === '*' && hour === '*') return 'every minute';
  if (step(min) && hour === '*') return `every ${step(min)} minutes`;
  if (/^\d+$/.test(min) && hour === '*') return min === '0' ? 'every hour' : `every hour at :${pad(min)}`;
  if (/^\d+$/.test(min) && step(hour)) return `every ${step(hour)} hours at :${pad(min)}`;
  if (/^\d+$/.test(min) && /^\d+(,\d+)*$/.test(hour)) {
    const times = hour.split(',').map((h) => `${pad(h)}:${pad(min)}`);
    if (times.length === 1) return times[0] === '00:00' ? 'daily at midnight' : `daily at ${times[0]}`;
    return `at ${times.slice(0, -1).join(', ')} and ${times[times.length - 1]}`;
  }
  return `cron "${expr}"`;
}

/**
 * The instants a local calendar day (`YYYY-MM-DD`) in `tz` starts and ends (the next day's start), daylight-saving
 * days included (23 or 25 hours long).
 */
export function dayBounds(day: string, tz: string): { startMs: number; endMs: number } {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  // Local midnight lies between 14 h before and 12 h after UTC midnight; start looking a little before.
  let start = nextFire('0 0 * * *', tz, new Date(Date.UTC(y, m - 1, d) - 15 * HOUR_MS));
  // Zones west of UTC can meet the previous day's midnight first.
  while (start && dayIn(start, tz) < day) start = nextFire('0 0 * * *', tz, start);
  if (!start || dayIn(start, tz) !== day) throw new Error(`no local day ${day} in ${tz}`);
  const end = nextFire('0 0 * * *', tz, start)!;
  return { startMs: start.getTime(), endMs: end.getTime() };
}
