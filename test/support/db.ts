/**
 * Real databases for tests: a fresh SQLite file in a temporary folder, or a fresh schema in the PostgreSQL at
 * 127.0.0.1:5432 (database `test`), dropped again on close. Every test gets its own, so files never interfere.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openStore, type Store } from '../../src/store/db.ts';
import { migrateToLatest } from '../../src/store/migrations.ts';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

/** A database a test can use and throw away. */
export interface TestDb {
  /** The `DATABASE_URL` that opens it (for child processes and the CLI). */
  url: string;
  /** Opens a migrated store on it; every store opened here is closed by `drop`. */
  open(): Promise<Store>;
  /** Closes every store and removes the database. */
  drop(): Promise<void>;
}

export type Backend = 'sqlite' | 'postgres';
export const BACKENDS: Backend[] = ['sqlite', 'postgres'];

/** Creates an empty database of the given kind. */
export async function createTestDb(kind: Backend): Promise<TestDb> {
  const stores: Store[] = [];
  let url: string;
  let cleanup: () => Promise<void>;
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'tgj-test-'));
    url = `sqlite:${join(dir, 'test.db')}`;
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  } else {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    url = `${PG_URL}?schema=${schema}`;
    cleanup = async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    };
  }
  return {
    url,
    async open() {
      const store = await openStore(url);
      await migrateToLatest(store);
      stores.push(store);
      return store;
    },
    async drop() {
      for (const s of stores.splice(0)) await s.close().catch(() => {});
      await cleanup();
    },
  };
}

/**
 * Runs `fn` with a store on a fresh database of `backend` (and the database itself, to open more stores on it);
 * the database is dropped afterwards, whether `fn` passed or threw.
 */
export async function withTestDb<T>(backend: Backend, fn: (store: Store, tdb: TestDb) => Promise<T>): Promise<T> {
  const tdb = await createTestDb(backend);
  try {
    return await fn(await tdb.open(), tdb);
  } finally {
    await tdb.drop();
  }
}
