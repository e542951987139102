/**
 * Restoring a backup into the database of `DATABASE_URL`, whichever kind the backup came from. Refused before
 * anything is touched when the manifest, the checksum or the schema version does not match, or the database holds
 * rows (without `--force`); the rows are then written in one transaction, so an error changes nothing.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { openStore, writeTransaction, type Store } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { latestMigration, migrateToLatest } from '../store/migrations.ts';
import { DocumentError } from '../transfer/documents.ts';
import { exportTable } from '../transfer/export.ts';
import {
  ALL_TABLES,
  BACKUP_TABLES,
  checkRow,
  columnsOf,
  emptyTables,
  insertRows,
  resetSequences,
  tablesWithRows,
  type Column,
  type TableName,
} from '../transfer/tables.ts';
import { readJsonl, sha256Of } from './backup.ts';
import { BackupError, parseManifest, type Manifest } from './manifest.ts';

/** Options for {@link restoreBackup}. */
export interface RestoreOptions {
  /** Replace whatever the database holds (default false: it must be empty). */
  force?: boolean;
}

/** What a restore wrote. */
export interface RestoreResult {
  manifest: Manifest;
  /** Rows written per table. */
  tables: Record<string, number>;
}

/** Reads and checks a backup folder: its manifest, the data file's size and checksum, the schema version. */
export async function checkBackup(folder: string): Promise<{ manifest: Manifest; file: string }> {
  let text: string;
  try {
    text = await readFile(join(folder, 'manifest.json'), 'utf8');
  } catch {
    throw new BackupError(`${folder} has no readable manifest.json: not a backup folder`);
  }
  const manifest = parseManifest(text);
  const file = join(folder, manifest.data_file);
  const size = await stat(file).then(
    (s) => s.size,
    () => null,
  );
  if (size === null) throw new BackupError(`${manifest.data_file} is missing from ${folder}`);
  if (size !== manifest.bytes || (await sha256Of(file)) !== manifest.sha256)
    throw new BackupError(
      `${manifest.data_file} does not match the checksum in manifest.json (${size} bytes, ${manifest.bytes} ` +
        `recorded): the backup is corrupted or truncated`,
    );
  const latest = latestMigration();
  if (manifest.schema_version !== latest)
    throw new BackupError(
      `the backup's schema version is ${manifest.schema_version}, this version's is ${latest}: restore it with ` +
        `the version of tg-janitor that made it`,
    );
  for (const t of Object.keys(manifest.tables))
    if (!(BACKUP_TABLES as string[]).includes(t)) throw new BackupError(`manifest.json names an unknown table ${t}`);
  return { manifest, file };
}

/** Restores `folder` into `store` (migrated to the latest schema first). Throws {@link BackupError} on refusal. */
export async function restoreBackup(store: Store, folder: string, o: RestoreOptions = {}): Promise<RestoreResult> {
  const { manifest, file } = await checkBackup(folder);
  // Asked before migrating, so a refused restore leaves even the schema as it was.
  if (!o.force) await refuseRows(store, await existingTables(store));
  await migrateToLatest(store);
  const written: Record<string, number> = {};
  const source = manifest.kind === 'sqlite' ? await openStore(`sqlite:${file}`, { readonly: true }) : null;
  try {
    await writeTransaction(store, async (trx) => {
      if (o.force) await emptyTables(trx);
      else await refuseRows(store, ALL_TABLES, trx);
      const columns = new Map<string, Column[]>();
      for (const t of BACKUP_TABLES) columns.set(t, await columnsOf(trx, store.dialect, t));
      let table: TableName | null = null;
      let batch: Record<string, unknown>[] = [];
      const flush = async () => {
        if (table && batch.length) await insertRows(trx, table, batch);
        batch = [];
      };
      const add = async (t: TableName, value: unknown, where: string) => {
        if (t !== table) {
          // Tables come in the order they are written (a broadcast before its recipients), each once.
          if (table && BACKUP_TABLES.indexOf(t) <= BACKUP_TABLES.indexOf(table))
            throw new BackupError(`${where}: ${t} rows after ${table} rows: the archive is out of order`);
          await flush();
          table = t;
        }
        try {
          batch.push(checkRow(t, columns.get(t)!, value));
        } catch (e) {
          if (e instanceof DocumentError) throw new BackupError(`${where}: ${t}: ${e.message}`);
          throw e;
        }
        written[t] = (written[t] ?? 0) + 1;
        if (batch.length >= 500) await flush();
      };
      if (source) {
        for (const t of BACKUP_TABLES) await exportTable(source, t, (row) => add(t, row, manifest.data_file));
      } else {
        for await (const r of readJsonl(file)) await add(r.table as TableName, r.row, `line ${r.line}`);
      }
      await flush();
      for (const t of BACKUP_TABLES)
        if ((written[t] ?? 0) !== (manifest.tables[t] ?? 0))
          throw new BackupError(
            `${t}: ${written[t] ?? 0} rows in the data file, ${manifest.tables[t] ?? 0} in manifest.json`,
          );
      await resetSequences(trx, store.dialect);
    });
  } catch (e) {
    // A broken gzip stream or SQLite file surfaces as its library's error: the backup is what is wrong.
    if (e instanceof BackupError) throw e;
    throw new BackupError(`the backup could not be read or written (${(e as Error).message}); nothing was changed`);
  } finally {
    await source?.close();
  }
  return { manifest, tables: written };
}

/** The schema's tables that exist in `store` (none before its first migration). */
async function existingTables(store: Store): Promise<(keyof Database)[]> {
  const { rows } =
    store.dialect === 'sqlite'
      ? await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(store.db)
      : await sql<{ name: string }>`select table_name as name from information_schema.tables
          where table_schema = current_schema()`.execute(store.db);
  const have = new Set(rows.map((r) => r.name));
  return ALL_TABLES.filter((t) => have.has(t));
}

async function refuseRows(store: Store, tables: (keyof Database)[], db: Kysely<Database> = store.db): Promise<void> {
  const filled = await tablesWithRows(db, tables);
  if (filled.length)
    throw new BackupError(
      `${store.describe} is not empty (rows in ${filled.join(', ')}): restore into an empty database, or pass ` +
        `--force to replace everything in it`,
    );
}
