/**
 * Delays of the auto-delete plugin (pure): `'90s'`, `'30m'`, `'2h'`, `'1h30m'` or a number of seconds, never more
 * than 47 h 58 min — Telegram deletes no message older than 48 hours, and the two minutes left leave room for a
 * late sweep or a retry.
 */

/** A delay: a number of seconds (`90`), or hours, minutes and seconds in that order (`'2h'`, `'1h 30m'`, `'90s'`). */
export type Delay = string | number;

/** The longest delay: 47 h 58 min = 172,680 s. */
export const MAX_DELAY_S = 47 * 3600 + 58 * 60;

/** How {@link MAX_DELAY_S} is spelled in errors. */
const LIMIT = '47h58m (172680 s): Telegram deletes no message older than 48 hours';

const FORMS = 'a number of seconds, or a string such as "90s", "30m", "2h" or "1h30m"';

/** A refused auto-delete (a bad delay, a method or chat it cannot cover), thrown before anything is sent. */
export class AutoDeleteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AutoDeleteError';
  }
}

// Hours, minutes, seconds, each at most once and in that order, spaces allowed between them: '1h30m', '1h 30m 5s'.
const PARTS = /^(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?$/i;

/**
 * The seconds of a delay. `what` names it in errors (e.g. `auto_delete`).
 * @throws AutoDeleteError for anything else than a positive delay up to {@link MAX_DELAY_S}, naming the limit.
 */
export function parseDelay(delay: unknown, what = 'delay'): number {
  const shown = typeof delay === 'string' ? JSON.stringify(delay) : String(delay);
  const seconds = secondsOf(delay);
  if (seconds === null) throw new AutoDeleteError(`${what}: ${shown} is not a delay: expected ${FORMS}`);
  if (!(seconds > 0)) throw new AutoDeleteError(`${what}: ${shown} is not a delay: it must be more than 0 seconds`);
  if (seconds > MAX_DELAY_S) throw new AutoDeleteError(`${what}: ${shown} is past the limit of ${LIMIT}`);
  return seconds;
}

/** The seconds a delay spells (maybe 0, negative or too long), or null when it spells none. */
function secondsOf(delay: unknown): number | null {
  if (typeof delay === 'number') return Number.isFinite(delay) ? delay : null;
  if (typeof delay !== 'string') return null;
  const text = delay.trim();
  // A bare number in a string counts as seconds, like the number itself ('90' is '90s').
  if (/^\d+$/.test(text)) return Number(text);
  const m = PARTS.exec(text);
  if (!m || text === '' || m.slice(1).every((p) => p === undefined)) return null;
  const [h, min, s] = m.slice(1).map((p) => Number(p ?? 0)) as [number, number, number];
  return h * 3600 + min * 60 + s;
}
