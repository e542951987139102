/**
 * Imports JSON Lines documents of one collection. All or nothing: the whole text is validated before anything is
 * written, and the writes run in one transaction. Idempotent: importing the same documents again changes nothing.
 */
import { sql, type Kysely } from 'kysely';
import { writeTransaction, type Store } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { addTokenStats } from '../store/stats.ts';
import { checkRow, columnsOf, TABLE_KEYS, type TableName } from './tables.ts';
import { dayIn } from '../clock.ts';
import {
  DocumentError,
  ImportError,
  parseLines,
  type BroadcastDoc,
  type Collection,
  type DocumentOf,
  type PendingDeletionDoc,
} from './documents.ts';

export { COLLECTIONS, ImportError, isCollection, type Collection } from './documents.ts';

/** Options for {@link importCollection}. */
export interface ImportOptions {
  /** The import instant, used for defaults (`users.joined_at`, a deletion's `created_at`). Default: now. */
  now?: Date;
  /** The zone of the days imported tokens are counted on in `token_stats` (default UTC). */
  timezone?: string;
}

/** What an import did. `inserted + updated + unchanged === read`. */
export interface ImportResult {
  /** Documents read (non-blank lines). */
  read: number;
  /** Documents that created a row. */
  inserted: number;
  /** Documents that changed an existing row (or, for broadcasts, added recipients to one). */
  updated: number;
  /** Documents already present as they are. */
  unchanged: number;
}

type Counts = ImportResult;
type Row = Record<string, unknown>;

// Rows per statement: 13 columns × 500 stays far below SQLite's and PostgreSQL's bound-parameter limits.
const CHUNK = 500;

function* chunks<T>(items: readonly T[], size = CHUNK): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

interface UpsertSpec {
  table: TableName;
  keys: readonly string[];
  columns: readonly string[];
}

/**
 * Upserts by natural key, chunk by chunk: reads the existing rows first to tell inserted / updated / unchanged
 * apart (the same on both dialects), then writes only what changed. A key repeated in the input: the last wins.
 * `resolve` fills fields that depend on the existing row.
 */
async function upsert<D extends object>(
  trx: Kysely<Database>,
  spec: UpsertSpec,
  docs: readonly D[],
  counts: Counts,
  resolve: (doc: D, existing: Row | undefined) => Row = (d) => d as Row,
  /** Told each row written, with the row it replaces (none for a new one). */
  onWrite?: (row: Row, existing: Row | undefined) => void,
): Promise<void> {
  // The table name is dynamic here; the specs below pair each table with its own columns.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- no static table type fits a table chosen at run time
  const db = trx as unknown as Kysely<any>;
  const keyOf = (r: Row) => JSON.stringify(spec.keys.map((k) => r[k]));
  const nonKeys = spec.columns.filter((c) => !spec.keys.includes(c));
  for (const chunk of chunks(docs)) {
    let q = db.selectFrom(spec.table).select([...spec.columns]);
    if (spec.keys.length === 1) {
      const k = spec.keys[0]!;
      q = q.where(k, 'in', [...new Set(chunk.map((d) => (d as Row)[k]))]);
    } else {
      q = q.where((eb) => eb.or(chunk.map((d) => eb.and(spec.keys.map((k) => eb(k, '=', (d as Row)[k]))))));
    }
    const state = new Map<string, Row>();
    for (const row of (await q.execute()) as Row[]) state.set(keyOf(row), row);
    const dirty = new Set<string>();
    for (const doc of chunk) {
      const key = keyOf(doc as Row);
      const existing = state.get(key);
      const row = resolve(doc, existing);
      if (!existing) counts.inserted++;
      else if (spec.columns.every((c) => existing[c] === row[c])) {
        counts.unchanged++;
        continue;
      } else counts.updated++;
      onWrite?.(row, existing);
      state.set(key, row);
      dirty.add(key);
    }
    if (dirty.size === 0) continue;
    const rows = [...dirty].map((k) => Object.fromEntries(spec.columns.map((c) => [c, state.get(k)![c]])));
    await db
      .insertInto(spec.table)
      .values(rows)
      .onConflict((oc) =>
        oc.columns([...spec.keys]).doUpdateSet(Object.fromEntries(nonKeys.map((c) => [c, sql.ref(`excluded.${c}`)]))),
      )
      .execute();
  }
}

/** Inserts deletions whose dedupe_key is new; existing ones (and their processing state) are left alone. */
async function insertPending(db: Kysely<Database>, docs: readonly PendingDeletionDoc[], counts: Counts): Promise<void> {
  for (const chunk of chunks(docs)) {
    const keys = [...new Set(chunk.map((d) => d.dedupe_key))];
    const seen = new Set(
      (await db.selectFrom('pending_deletions').select('dedupe_key').where('dedupe_key', 'in', keys).execute()).map(
        (r) => r.dedupe_key,
      ),
    );
    const fresh = chunk.filter((d) => !seen.has(d.dedupe_key) && seen.add(d.dedupe_key));
    counts.inserted += fresh.length;
    counts.unchanged += chunk.length - fresh.length;
    if (fresh.length === 0) continue;
    await db
      .insertInto('pending_deletions')
      .values(
        fresh.map((d) => ({
          ...d,
          message_ids: JSON.stringify(d.message_ids),
          messages_deleted: 0,
          claimed_by: null,
          claim_expires_at: null,
        })),
      )
      .onConflict((oc) => oc.column('dedupe_key').doNothing())
      .execute();
  }
}

/**
 * Inserts broadcasts whose dedupe_key is new and adds recipients missing from `broadcast_messages`, also to a
 * broadcast that was already there. One broadcast at a time: there are few, and each needs its id.
 */
async function insertBroadcasts(db: Kysely<Database>, docs: readonly BroadcastDoc[], counts: Counts): Promise<void> {
  for (const { messages, ...b } of docs) {
    const found = await db
      .selectFrom('broadcasts')
      .select('id')
      .where('dedupe_key', '=', b.dedupe_key)
      .executeTakeFirst();
    const id = found
      ? Number(found.id)
      : Number(
          (
            await db
              .insertInto('broadcasts')
              .values({
                ...b,
                from_chat_id: null,
                send_cursor: null,
                sent_count: 0,
                failed_count: 0,
                claimed_by: null,
                claim_expires_at: null,
              })
              .returning('id')
              .executeTakeFirstOrThrow()
          ).id,
        );
    let added = 0;
    for (const part of chunks(messages, 1000)) {
      const res = await db
        .insertInto('broadcast_messages')
        .values(part.map((m) => ({ broadcast_id: id, chat_id: m.chat_id, message_id: m.message_id })))
        .onConflict((oc) => oc.columns(['broadcast_id', 'chat_id']).doNothing())
        .executeTakeFirst();
      added += Number(res.numInsertedOrUpdatedRows ?? 0n);
    }
    if (!found) counts.inserted++;
    else if (added > 0) counts.updated++;
    else counts.unchanged++;
  }
}

/** How each collection's validated documents are written (inside the import's transaction). */
const WRITERS: {
  [C in Collection]: (
    db: Kysely<Database>,
    docs: readonly DocumentOf[C][],
    counts: Counts,
    now: number,
    timezone: string,
  ) => Promise<void>;
} = {
  users: (db, docs, counts, now) => {
    const spec: UpsertSpec = {
      table: 'users',
      keys: ['user_id'],
      columns: ['user_id', 'username', 'first_name', 'joined_at', 'is_banned', 'user_access_count', 'blocked_at'],
    };
    // A document without joined_at keeps the row's; only a new user gets the import instant.
    return upsert(db, spec, docs, counts, (d, ex) => ({ ...d, joined_at: d.joined_at ?? ex?.joined_at ?? now }));
  },
  tokens: async (db, docs, counts, _now, timezone) => {
    // Imported tokens feed the per-day counters the charts and the stats job read, on the day each was made: a new
    // token counts as created (and verified or bypassed, as imported); an unused one imported as used counts its
    // outcome. Importing the same documents again counts nothing.
    const days = new Map<string, { created: number; verified: number; bypassed: number }>();
    const count = (row: Row, existing: Row | undefined) => {
      const day = dayIn(new Date(Number(row.created_at)), timezone);
      const t = days.get(day) ?? { created: 0, verified: 0, bypassed: 0 };
      days.set(day, t);
      if (!existing) t.created++;
      const outcome = row.status === 'verified' || row.status === 'bypassed' ? row.status : null;
      if (outcome && (!existing || existing.status === 'not_used')) t[outcome]++;
    };
    await upsert(
      db,
      {
        table: 'tokens',
        keys: ['token'],
        columns: [
          'token',
          'unique_id',
          'created_by',
          'status',
          'created_at',
          'expires_at',
          'file_unique_id',
          'direct_link',
        ],
      },
      docs,
      counts,
      undefined,
      count,
    );
    for (const [day, n] of days) await addTokenStats(db, day, n);
  },
  token_generator_count: (db, docs, counts) =>
    upsert(
      db,
      { table: 'token_generator_count', keys: ['user_id', 'date'], columns: ['user_id', 'date', 'token_generated'] },
      docs,
      counts,
    ),
  settings: (db, docs, counts) =>
    upsert(db, { table: 'settings', keys: ['key'], columns: ['key', 'value'] }, docs, counts),
  pending_deletions: (db, docs, counts) => insertPending(db, docs, counts),
  broadcasts: (db, docs, counts) => insertBroadcasts(db, docs, counts),
};

/**
 * Imports the JSON Lines `text` into `collection`. Validates every line first (nothing is written when one is bad),
 * then writes in one transaction. Users, tokens, token counts and settings are upserted by their natural key (the
 * document replaces the row's fields); pending deletions and broadcasts are inserted unless their `dedupe_key`
 * exists (their processing state is never reset), and a broadcast's missing recipients are added.
 * @throws ImportError naming the first bad line and field; database errors roll everything back.
 */
export async function importCollection(
  store: Store,
  collection: Collection,
  text: string,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const now = (opts.now ?? new Date()).getTime();
  if (!Number.isFinite(now)) throw new TypeError('importCollection: opts.now is not a valid Date');
  // Every line is validated before anything is written (throws ImportError naming the first bad one).
  const docs = parseLines(collection, text, now);
  const counts: Counts = { read: docs.length, inserted: 0, updated: 0, unchanged: 0 };
  if (docs.length === 0) return counts;
  const write = WRITERS[collection] as (
    db: Kysely<Database>,
    docs: readonly DocumentOf[Collection][],
    counts: Counts,
    now: number,
    timezone: string,
  ) => Promise<void>;
  const timezone = opts.timezone ?? 'UTC';
  await writeTransaction(store, (trx) => write(trx as Kysely<Database>, docs, counts, now, timezone));
  return counts;
}

/**
 * Imports JSON Lines rows of one of the {@link TABLE_COLLECTIONS} (each line a row as `export` writes it). Every line
 * is checked against the table's columns first; then the rows are upserted by the table's key in one transaction.
 * @throws ImportError naming the first bad line and field; database errors roll everything back.
 */
export async function importTable(store: Store, table: TableName, text: string): Promise<ImportResult> {
  const columns = await columnsOf(store.db, store.dialect, table);
  const rows: Row[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new ImportError(i + 1, null, `not JSON (${(e as Error).message})`);
    }
    try {
      rows.push(checkRow(table, columns, value));
    } catch (e) {
      if (e instanceof DocumentError) throw new ImportError(i + 1, e.field, e.detail);
      throw e;
    }
  });
  const counts: Counts = { read: rows.length, inserted: 0, updated: 0, unchanged: 0 };
  if (rows.length === 0) return counts;
  const spec = { table, keys: TABLE_KEYS[table], columns: columns.map((c) => c.name) };
  await writeTransaction(store, (trx) => upsert(trx as Kysely<Database>, spec, rows, counts));
  return counts;
}
