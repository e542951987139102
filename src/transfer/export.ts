/**
 * Exports one collection as JSON Lines in the original bot's document shapes, streamed page by page so a large
 * table never sits in memory. The order is the natural key (or id) in byte order on both dialects, so the same
 * data exports to the same bytes from SQLite and PostgreSQL.
 */
import { CompiledQuery, sql, type Kysely, type SelectQueryBuilder } from 'kysely';
import type { Store } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { columnsOf, TABLE_KEYS, type TableName } from './tables.ts';
import {
  formatBroadcast,
  formatPendingDeletion,
  formatSetting,
  formatToken,
  formatTokenCount,
  formatUser,
  type Collection,
} from './documents.ts';

export { COLLECTIONS, isCollection, type Collection } from './documents.ts';

/** Receives one JSON document (without a newline); a returned promise is awaited before the next row. */
export type LineWriter = (line: string) => void | Promise<void>;

const PAGE = 1000;

type Row = Record<string, unknown>;

interface Source<R extends Row = Row> {
  /** The key columns, in order; together unique. */
  keys: readonly string[];
  /** Key columns holding text: PostgreSQL orders them with COLLATE "C" (byte order, as SQLite's BINARY). */
  textKeys?: readonly string[];
  query(db: Kysely<Database>): SelectQueryBuilder<Database, keyof Database, R>;
  /** Formats a row; `db` is the connection reading it, for follow-up queries. */
  format(row: R, db: Kysely<Database>): string | Promise<string>;
}

// Each source is typed by its own query; the table of them only needs the row-agnostic shape.
const source = <R extends Row>(s: Source<R>): Source => s;

/**
 * Calls `onRow` for every row of `src` in key order.
 * SQLite: keyset pages on the primary key (short queries, so other users of the single connection are not held up).
 * PostgreSQL: a server-side cursor in a read-only repeatable-read transaction: one consistent snapshot, and a text
 * key sorted by "C" once instead of once per page (that order cannot use the default-collation index).
 */
async function forEachRow(
  store: Store,
  src: Source,
  onRow: (row: Row, db: Kysely<Database>) => Promise<void>,
  /** PostgreSQL: an open read-only repeatable-read transaction to read in (one snapshot across several tables). */
  snapshot?: Kysely<Database>,
): Promise<void> {
  const ordered = (db: Kysely<Database>) =>
    src.keys.reduce(
      (q, k) =>
        q.orderBy(
          store.dialect === 'postgres' && src.textKeys?.includes(k) ? sql`${sql.ref(k)} collate "C"` : sql.ref(k),
        ),
      src.query(db),
    );
  if (store.dialect === 'sqlite') {
    let last: Row | undefined;
    for (;;) {
      let q = ordered(store.db).limit(PAGE);
      if (last) {
        const after = last;
        q = q.where(
          sql<boolean>`(${sql.join(src.keys.map((k) => sql.ref(k)))}) > (${sql.join(src.keys.map((k) => after[k]))})`,
        );
      }
      const rows = await q.execute();
      for (const row of rows) await onRow(row, store.db);
      if (rows.length < PAGE) return;
      last = rows[rows.length - 1];
    }
  }
  const read = async (trx: Kysely<Database>) => {
    const q = ordered(trx).compile();
    await trx.executeQuery(CompiledQuery.raw(`declare tgj_export no scroll cursor for ${q.sql}`, [...q.parameters]));
    for (;;) {
      const { rows } = await trx.executeQuery<Row>(CompiledQuery.raw(`fetch forward ${PAGE} from tgj_export`));
      for (const row of rows) await onRow(row, trx);
      if (rows.length < PAGE) break;
    }
    // Closed, so the next table read in the same snapshot can declare it again.
    await trx.executeQuery(CompiledQuery.raw('close tgj_export'));
  };
  if (snapshot) return read(snapshot);
  await inSnapshot(store, read);
}

/** Runs `fn` in one read-only repeatable-read transaction (PostgreSQL): every read sees the same instant. */
export async function inSnapshot<T>(store: Store, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (store.dialect === 'sqlite') return fn(store.db);
  return store.db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(fn);
}

const SOURCES: Record<Collection, Source> = {
  users: source({
    keys: ['user_id'],
    query: (db) => db.selectFrom('users').selectAll(),
    format: formatUser,
  }),
  tokens: source({
    keys: ['token'],
    textKeys: ['token'],
    query: (db) => db.selectFrom('tokens').selectAll(),
    format: formatToken,
  }),
  token_generator_count: source({
    keys: ['user_id', 'date'],
    textKeys: ['date'],
    query: (db) => db.selectFrom('token_generator_count').selectAll(),
    format: formatTokenCount,
  }),
  pending_deletions: source({
    keys: ['id'],
    query: (db) =>
      db
        .selectFrom('pending_deletions')
        .select([
          'id',
          'source_id',
          'user_id',
          'chat_id',
          'message_ids',
          'delete_at',
          'unique_id',
          'created_at',
          'attempts',
          'next_attempt_at',
          'last_error',
          'notice',
        ]),
    format: formatPendingDeletion,
  }),
  broadcasts: source({
    keys: ['id'],
    query: (db) =>
      db
        .selectFrom('broadcasts')
        .select([
          'id',
          'source_id',
          'message_id',
          'text',
          'caption',
          'file_id',
          'duration_hours',
          'channel_message_id',
          'created_at',
          'delete_at',
          'status',
        ]),
    // A broadcast's recipients all go on its one line, so they are read whole, broadcast by broadcast.
    format: async (r, db) => {
      // A reservation (message_id 0) is a copy never confirmed: there is no message to delete, so it is left out.
      const messages = await db
        .selectFrom('broadcast_messages')
        .select(['chat_id', 'message_id'])
        .where('broadcast_id', '=', r.id)
        .where('message_id', '>', 0)
        .orderBy('chat_id')
        .execute();
      return formatBroadcast(r, messages);
    },
  }),
  settings: source({
    keys: ['key'],
    textKeys: ['key'],
    query: (db) => db.selectFrom('settings').selectAll(),
    format: (r) => formatSetting(r),
  }),
};

/**
 * Writes every document of `collection` to `write`, one JSON line per call (no trailing newline), ordered by the
 * natural key (users: user_id; tokens: token; token_generator_count: user_id, date; settings: key) or, for
 * pending_deletions and broadcasts, by id (import order).
 * @returns the number of documents written.
 */
export async function exportCollection(store: Store, collection: Collection, write: LineWriter): Promise<number> {
  const src = SOURCES[collection];
  let n = 0;
  await forEachRow(store, src, async (row, db) => {
    await write(await src.format(row, db));
    n++;
  });
  return n;
}

/**
 * Writes every row of `table` as it is stored (all columns, instants as epoch milliseconds) in key order, one JSON
 * object per call; `snapshot` reads it inside an open {@link inSnapshot} transaction. Returns the rows written.
 */
export async function exportTable(
  store: Store,
  table: TableName,
  write: (row: Record<string, unknown>) => void | Promise<void>,
  snapshot?: Kysely<Database>,
): Promise<number> {
  const cols = await columnsOf(snapshot ?? store.db, store.dialect, table);
  const src: Source = {
    keys: TABLE_KEYS[table],
    textKeys: cols.filter((c) => c.type === 'text').map((c) => c.name),
    // The table is chosen at run time: its rows are plain objects of its columns.
    query: (db) => (db as unknown as Kysely<Record<string, Row>>).selectFrom(table).selectAll(),
    format: () => '',
  };
  let n = 0;
  await forEachRow(
    store,
    src,
    async (row) => {
      await write(row);
      n++;
    },
    snapshot,
  );
  return n;
}

/** Writes every row of one of the table collections as JSON Lines (see {@link exportTable}). */
export function exportTableLines(store: Store, table: TableName, write: LineWriter): Promise<number> {
  return exportTable(store, table, (row) => write(JSON.stringify(row)));
}
