/**
 * Every table as it is stored, row by row: what a backup holds and a restore writes, and the export and import of
 * the tables that are not the original bot's collections (share links, the chart and day counters, …). A row is a
 * JSON object of the table's columns, instants as epoch milliseconds; it is checked against the columns of the table
 * it goes into, read from the database itself, so both dialects agree on what is valid.
 */
import { sql, type Kysely } from 'kysely';
import type { Store } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { DocumentError } from './documents.ts';
import { BACKUP_TABLES, type TableName } from './names.ts';

export {
  BACKUP_TABLES,
  isTableCollection,
  isTableName,
  TABLE_COLLECTIONS,
  TABLE_KEYS,
  type TableName,
} from './names.ts';

/** Every table of the schema, for the "is it empty" check and `--force` (recipients before their broadcasts). */
export const ALL_TABLES: (keyof Database)[] = [...[...BACKUP_TABLES].reverse(), 'job_runs', 'job_locks'];

/** One column as the database declares it. */
export interface Column {
  name: string;
  type: 'int' | 'real' | 'text';
  nullable: boolean;
}

/** The columns of `table` in the store's database, in declaration order. */
export async function columnsOf(db: Kysely<Database>, dialect: Store['dialect'], table: string): Promise<Column[]> {
  if (dialect === 'sqlite') {
    const { rows } = await sql<{
      name: string;
      type: string;
      notnull: number;
      pk: number;
    }>`select name, type, "notnull", pk from pragma_table_info(${table})`.execute(db);
    // A single-column integer primary key is the rowid: never null, whatever `notnull` says.
    return rows.map((r) => ({ name: r.name, type: typeOf(r.type), nullable: r.notnull === 0 && r.pk === 0 }));
  }
  const { rows } = await sql<{ name: string; type: string; nullable: string }>`
    select column_name as name, data_type as type, is_nullable as nullable from information_schema.columns
    where table_schema = current_schema() and table_name = ${table} order by ordinal_position`.execute(db);
  return rows.map((r) => ({ name: r.name, type: typeOf(r.type), nullable: r.nullable === 'YES' }));
}

const typeOf = (declared: string): Column['type'] =>
  /int|serial/i.test(declared) ? 'int' : /real|double|float|numeric/i.test(declared) ? 'real' : 'text';

const fits: Record<Column['type'], (v: unknown) => boolean> = {
  int: (v) => Number.isSafeInteger(v),
  real: (v) => typeof v === 'number' && Number.isFinite(v),
  text: (v) => typeof v === 'string',
};
const WANT: Record<Column['type'], string> = { int: 'a safe integer', real: 'a number', text: 'a string' };

type Row = Record<string, unknown>;

/**
 * Checks one parsed JSON value as a row of a table with `columns`: an object holding every column and nothing else,
 * integers (safe) in integer columns, strings in text columns, null only where the column allows it.
 */
export function checkRow(table: string, columns: readonly Column[], value: unknown): Row {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new DocumentError(null, `a ${table} row must be a JSON object`);
  const row = value as Row;
  const known = new Set(columns.map((c) => c.name));
  for (const k of Object.keys(row)) if (!known.has(k)) throw new DocumentError(k, `${table} has no such column`);
  for (const c of columns) {
    if (!Object.hasOwn(row, c.name)) throw new DocumentError(c.name, 'missing');
    const v = row[c.name];
    if (v === null) {
      if (!c.nullable) throw new DocumentError(c.name, 'must not be null');
    } else if (!fits[c.type](v)) {
      throw new DocumentError(c.name, `expected ${WANT[c.type]}, got ${JSON.stringify(v)}`);
    }
  }
  return row;
}

/** Rows per insert, below both dialects' bound-parameter limits (SQLite: 32,766). */
const chunkFor = (columns: number) => Math.max(1, Math.floor(30_000 / Math.max(1, columns)));

/** Inserts checked rows of `table` (an empty table: a restore), chunk by chunk. */
export async function insertRows(db: Kysely<Database>, table: TableName, rows: readonly Row[]): Promise<void> {
  if (rows.length === 0) return;
  const size = chunkFor(Object.keys(rows[0]!).length);
  // The table is chosen at run time; the rows were checked against its columns.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- no static row type fits a table chosen at run time
  const any = db as unknown as Kysely<any>;
  for (let i = 0; i < rows.length; i += size)
    await any
      .insertInto(table)
      .values(rows.slice(i, i + size))
      .execute();
}

/**
 * After rows were written with their own ids: PostgreSQL's sequences move past the highest id, so the next insert
 * does not collide (SQLite's AUTOINCREMENT follows by itself).
 */
export async function resetSequences(db: Kysely<Database>, dialect: Store['dialect']): Promise<void> {
  if (dialect !== 'postgres') return;
  for (const table of ['pending_deletions', 'broadcasts', 'job_runs'] as const) {
    await sql`select setval(pg_get_serial_sequence(${table}, 'id'), coalesce((select max(id) from ${sql.table(table)}), 0) + 1, false)`.execute(
      db,
    );
  }
}

/** Those of `tables` (default: all of the schema's) that hold rows. */
export async function tablesWithRows(
  db: Kysely<Database>,
  tables: readonly (keyof Database)[] = ALL_TABLES,
): Promise<string[]> {
  const out: string[] = [];
  for (const t of tables) {
    const r = await db
      .selectFrom(t)
      .select(sql<number>`1`.as('one'))
      .limit(1)
      .executeTakeFirst();
    if (r) out.push(t);
  }
  return out;
}

/** Removes every row of every table (a `--force` restore), recipients before their broadcasts. */
export async function emptyTables(db: Kysely<Database>): Promise<void> {
  for (const t of ALL_TABLES) await db.deleteFrom(t).execute();
}
