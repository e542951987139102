/** The one exponential back-off: every retry, rest and poll that waits longer after each failure uses it. */

/** How a back-off grows. */
export interface BackoffOptions {
  /** The wait after the first failure, in ms. */
  base: number;
  /** The longest wait, in ms. */
  cap: number;
}

/**
 * The wait before attempt `attempt + 1` after `attempt` failures in a row (1 = the first failure): `base`, doubling
 * each time, never more than `cap`. `attempt` below 1 counts as 1.
 */
export function backoff(attempt: number, { base, cap }: BackoffOptions): number {
  // 2 ** 1024 is Infinity, which Math.min turns into the cap: no overflow to worry about.
  return Math.min(cap, base * 2 ** (Math.max(1, attempt) - 1));
}
