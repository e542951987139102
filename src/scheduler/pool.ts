/**
 * The one worker pool: works a list with at most `concurrency` items in hand, takes no new item once `halted()`
 * says so, and resolves when the items in hand are done.
 *
 * Written here rather than taken from p-map or p-limit: those either reject on the first error while other items
 * are still in hand, or run every item to the end; a job needs "stop taking items, finish the ones in hand".
 */

/** Options of {@link workPool}. */
export interface PoolOptions {
  /** Items worked at once (at least 1). */
  concurrency: number;
  /** Checked before each item is taken: true stops taking new items (default: never). */
  halted?: () => boolean;
}

/**
 * Works `items` with `work`, at most `concurrency` at a time, in order of the list. A rejection of `work` stops the
 * pool taking items and rejects once the items in hand are done (the first error wins).
 */
export async function workPool<T>(
  items: Iterable<T>,
  opts: PoolOptions,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const queue = items[Symbol.iterator]();
  let failed: { error: unknown } | null = null;
  const worker = async () => {
    while (!failed && !opts.halted?.()) {
      const next = queue.next();
      if (next.done) return;
      try {
        await work(next.value);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  if (failed) throw (failed as { error: unknown }).error;
}
