/**
 * Opens the database named by a `DATABASE_URL`: `sqlite:<path>` (better-sqlite3, WAL, folder created) or
 * `postgres://…` (pg pool; `?schema=name` puts every table in that schema, created when missing).
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, PostgresDialect, SqliteDialect, sql, type SqliteDatabase, type Transaction } from 'kysely';
import type { Database } from './schema.ts';
import { WorkFeed } from './work-feed.ts';
import { PG_SCHEMA_NAME } from '../config.ts';

/** Which SQL dialect a store speaks. */
export type Dialect = 'sqlite' | 'postgres';

/** An open database: the typed query builder and what differs between the dialects. */
export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** A description safe to log (no password). */
  describe: string;
  /**
   * SQLite only: copies the database to `dest` through SQLite's online backup API, a consistent copy while this
   * and other connections write.
   */
  backupTo?: (dest: string) => Promise<void>;
  /**
   * A token that changes when work may have changed: rows written by any process or tool (SQLite: `PRAGMA
   * data_version` and this connection's `total_changes()`; PostgreSQL: a `LISTEN` that the work tables' triggers
   * `NOTIFY`). Cheap (no query on PostgreSQL, one pragma on SQLite), so a waker can ask it often and query for due
   * work only when it moved.
   */
  changeToken(): Promise<string>;
  close(): Promise<void>;
}

/** Options for {@link openStore}. */
export interface OpenOptions {
  /** Milliseconds SQLite waits for another process's write lock (default 10,000). */
  busyTimeoutMs?: number;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /** SQLite: open an existing file read-only, changing nothing in it (a backup being restored). Default false. */
  readonly?: boolean;
}

const SECRET_PARAMS = ['password', 'sslpassword', 'sslkey', 'sslcert'];

/** A database URL safe to show: `postgres://user:***@host/db`, secret query parameters dropped. */
export function describeUrl(url: string): string {
  if (url.startsWith('sqlite:')) return url;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const p of SECRET_PARAMS) u.searchParams.delete(p);
    return u.toString();
  } catch {
    // Printing an unparsable URL could print its password: say only that it is unparsable.
    return 'postgres://(unparsable URL)';
  }
}

/** The file path of a `sqlite:` URL, resolved against the working directory. */
export function sqlitePath(url: string): string {
  const raw = url.replace(/^sqlite:(\/\/)?/, '');
  return raw === ':memory:' ? raw : resolve(raw);
}

/** Opens a store. Does not migrate: call {@link migrateToLatest} from `./migrations.ts`. */
export async function openStore(url: string, opts: OpenOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const path = sqlitePath(url);
    if (opts.readonly) {
      const conn = new SQLite(path, { readonly: true, fileMustExist: true });
      const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(conn) }) });
      return {
        db,
        dialect: 'sqlite',
        describe: `sqlite:${path}`,
        // Nothing writes a read-only file.
        changeToken: () => Promise.resolve('readonly'),
        close: () => db.destroy(),
      };
    }
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const conn = new SQLite(path, { timeout: opts.busyTimeoutMs ?? 10_000 });
    conn.pragma('journal_mode = WAL');
    conn.pragma('synchronous = NORMAL');
    conn.pragma('foreign_keys = ON');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(conn) }) });
    const backupTo = async (dest: string) => {
      await conn.backup(dest);
    };
    // data_version moves when another connection commits; total_changes() when this one writes (raw inserts too).
    const changes = conn.prepare<[], { dv: number; tc: number }>(
      'select (select data_version from pragma_data_version) as dv, total_changes() as tc',
    );
    const changeToken = () => {
      const r = changes.get()!;
      return Promise.resolve(`${r.dv}:${r.tc}`);
    };
    return {
      db,
      dialect: 'sqlite',
      describe: `sqlite:${path}`,
      backupTo,
      changeToken,
      close: () => db.destroy(),
    };
  }
  const u = new URL(url);
  const schema = u.searchParams.get('schema');
  u.searchParams.delete('schema');
  if (schema && !PG_SCHEMA_NAME.test(schema))
    throw new Error(`DATABASE_URL: schema "${schema}" is not a lower-case identifier`);
  const pool = new pg.Pool({
    connectionString: u.toString(),
    max: opts.poolSize ?? 10,
    // A database that stops answering (a cut network) must fail calls, not hang them: the loops log and back off.
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // Telegram ids and epoch milliseconds are bigint columns: read them as numbers (they fit in 53 bits).
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === 20
          ? (v: string) => Number(v)
          : (pg.types.getTypeParser(oid, format as 'text') as (v: string) => unknown)) as typeof pg.types.getTypeParser,
    },
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // A dropped connection must not crash the process, idle (the pool's 'error') or checked out with a query in
  // flight (the client's own 'error', which nothing else listens to): the query fails, the next gets a fresh one.
  pool.on('error', () => {
    // Logged by nobody on purpose: the failing query reports it to its caller.
  });
  pool.on('connect', (client) => {
    client.on('error', () => {
      // As above: the query in flight rejects, and the pool drops this client.
    });
  });
  if (schema) {
    const c = await pool.connect();
    try {
      // Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE right on the database even when the schema
      // exists, which a role given only its own schema does not have.
      const found = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (found.rowCount === 0) await c.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    } finally {
      c.release();
    }
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const feed = new WorkFeed(pool);
  return {
    db,
    dialect: 'postgres',
    describe: describeUrl(url),
    changeToken: () => feed.token(),
    close: async () => {
      await feed.close();
      await db.destroy();
    },
  };
}

/**
 * Runs `fn` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so two processes queue for the write lock
 * instead of failing when a read transaction tries to turn into a write one.
 */
export async function writeTransaction<T>(
  store: Store,
  fn: (trx: Transaction<Database> | Kysely<Database>) => Promise<T>,
): Promise<T> {
  if (store.dialect === 'postgres') return store.db.transaction().execute(fn);
  return store.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const out = await fn(conn);
      await sql`commit`.execute(conn);
      return out;
    } catch (e) {
      await sql`rollback`.execute(conn);
      throw e;
    }
  });
}

/** Prepared statements kept per connection; past this many distinct texts the cache starts over. */
const STATEMENTS_KEPT = 256;

/**
 * The connection as Kysely's SQLite driver sees it, with its prepared statements kept by SQL text: the driver
 * prepares every query afresh, which took about 7 % of the message deleter's time, and the hot path runs a handful of
 * texts over and over. A statement still being iterated (a streamed select) is busy: a fresh one is prepared then.
 */
function withStatementCache(conn: SQLite.Database): SqliteDatabase {
  const kept = new Map<string, SQLite.Statement>();
  return {
    close: () => conn.close(),
    prepare: (sql: string) => {
      const cached = kept.get(sql);
      if (cached && !cached.busy) return cached;
      const stmt = conn.prepare(sql);
      if (!cached) {
        if (kept.size >= STATEMENTS_KEPT) kept.clear();
        kept.set(sql, stmt);
      }
      return stmt;
    },
  };
}
