/** What the commands share: opening a migrated store, reading stdin, writing with back-pressure. */
import type { Config } from '../config.ts';
import type { Store } from '../store/db.ts';

/** Opens the configured database, migrates it, runs `fn`, closes it. */
export async function withStore<T>(config: Config, fn: (store: Store) => Promise<T>): Promise<T> {
  // Loaded here, not at the top: `--help` must not wait for the database drivers.
  const { openStore } = await import('../store/db.ts');
  const { migrateToLatest } = await import('../store/migrations.ts');
  const store = await openStore(config.databaseUrl);
  try {
    await migrateToLatest(store);
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Reads a whole stream as UTF-8. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

/** Writes `s`, waiting for the stream to drain when it asks. */
export function write(out: NodeJS.WritableStream, s: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.write(s)) resolve();
    else out.once('drain', resolve).once('error', reject);
  });
}
