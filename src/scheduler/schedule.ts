/**
 * Schedule maths, pure: when a cron expression fires in a time zone, the latest tick at or before an instant,
 * and what a schedule says in words. croner does the calendar work, daylight-saving edges included.
 */
import { Cron } from 'croner';

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

/** Twice the gap between the next two fire times after `at`: how old a last success may be before it is stale. */
export function staleAfterMs(expr: string, tz: string, at: Date): number | null {
  const [a, b] = nextFires(expr, tz, at, 2);
  return a && b ? 2 * (b.getTime() - a.getTime()) : null;
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
