/**
 * Making a backup: SQLite through its online backup API (a consistent copy while the service writes), checked with
 * `PRAGMA integrity_check`; PostgreSQL as gzipped JSON Lines of every table read in one snapshot by the export code,
 * read back before it counts. Either is written to a hidden folder first and renamed into place once checked; only
 * then are backups beyond the newest `keep` removed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import SQLite from 'better-sqlite3';
import type { Store } from '../store/db.ts';
import { appliedMigration } from '../store/migrations.ts';
import { exportTable, inSnapshot } from '../transfer/export.ts';
import { BACKUP_TABLES, isTableName } from '../transfer/tables.ts';
import {
  BackupError,
  beyondKeep,
  DATA_FILES,
  folderName,
  isBackupFolder,
  MANIFEST_FORMAT,
  type Manifest,
} from './manifest.ts';

/** Where and how many: the job's settings. */
export interface BackupOptions {
  /** The folder backups go in (created when missing). Default `./data/backups` (BACKUP_DIR). */
  dir: string;
  /** How many backups to keep, 1–1000; older ones are removed once a new one is checked. Default 7 (BACKUP_KEEP). */
  keep: number;
  /** The instant the folder is named after (real time). */
  at: Date;
}

/** What one backup made. */
export interface BackupResult {
  /** The backup's folder (absolute or as BACKUP_DIR gives it). */
  folder: string;
  kind: Manifest['kind'];
  bytes: number;
  /** Rows saved, over every table. */
  rows: number;
  /** Older backups removed to keep the newest `keep`. */
  removed: string[];
}

/** The SHA-256 of a file, hex. */
export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Makes one backup of `store` in `o.dir`, checks it, then prunes. A failed backup leaves nothing behind. */
export async function makeBackup(store: Store, o: BackupOptions): Promise<BackupResult> {
  await mkdir(o.dir, { recursive: true });
  const name = folderName(o.at);
  const folder = join(o.dir, name);
  if (await exists(folder)) throw new BackupError(`a backup named ${name} already exists in ${o.dir}`);
  const tmp = join(o.dir, `.partial-${name}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  try {
    const made = store.dialect === 'sqlite' ? await sqliteBackup(store, tmp) : await jsonlBackup(store, tmp);
    const file = join(tmp, DATA_FILES[made.kind]);
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      created_at: o.at.toISOString(),
      source: store.dialect,
      kind: made.kind,
      data_file: DATA_FILES[made.kind],
      bytes: (await stat(file)).size,
      sha256: await sha256Of(file),
      schema_version: made.schemaVersion,
      tables: made.tables,
    };
    await writeFile(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(tmp, folder);
    const removed = await prune(o.dir, o.keep, o.at);
    const rows = Object.values(made.tables).reduce((a, b) => a + b, 0);
    return { folder, kind: made.kind, bytes: manifest.bytes, rows, removed };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

interface Made {
  kind: Manifest['kind'];
  schemaVersion: string;
  tables: Record<string, number>;
}

/** The online backup, emptied of run history and locks, then checked; counts read from the copy. */
async function sqliteBackup(store: Store, tmp: string): Promise<Made> {
  if (!store.backupTo) throw new BackupError('this SQLite store cannot make backups');
  const file = join(tmp, DATA_FILES.sqlite);
  await store.backupTo(file);
  const copy = new SQLite(file);
  try {
    // A restore starts these empty; the copy must not carry another process's leases.
    copy.exec('delete from job_runs; delete from job_locks;');
    copy.pragma('journal_mode = DELETE');
    copy.exec('vacuum');
    const check = copy.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new BackupError(`the copy failed PRAGMA integrity_check: ${String(check)}`);
    const version = copy.prepare('select max(name) as v from kysely_migration').get() as { v: string | null };
    if (!version.v) throw new BackupError('the database has no schema version: run `tg-janitor migrate` first');
    const tables: Record<string, number> = {};
    for (const t of BACKUP_TABLES)
      tables[t] = (copy.prepare(`select count(*) as n from "${t}"`).get() as { n: number }).n;
    return { kind: 'sqlite', schemaVersion: version.v, tables };
  } finally {
    copy.close();
  }
}

/** Every table as `{"table", "row"}` lines, one snapshot, gzipped; then read back and counted again. */
async function jsonlBackup(store: Store, tmp: string): Promise<Made> {
  const file = join(tmp, DATA_FILES.jsonl);
  const gz = createGzip();
  const out = gz.pipe(createWriteStream(file));
  const tables: Record<string, number> = {};
  let schemaVersion: string | null = null;
  try {
    await inSnapshot(store, async (trx) => {
      schemaVersion = await appliedMigration(trx);
      for (const t of BACKUP_TABLES) {
        tables[t] = await exportTable(
          store,
          t,
          async (row) => {
            if (!gz.write(`${JSON.stringify({ table: t, row })}\n`)) await once(gz, 'drain');
          },
          trx,
        );
      }
    });
  } finally {
    gz.end();
    await finished(out);
  }
  if (!schemaVersion) throw new BackupError('the database has no schema version: run `tg-janitor migrate` first');
  const again = await countJsonl(file);
  for (const t of BACKUP_TABLES)
    if ((again[t] ?? 0) !== tables[t])
      throw new BackupError(`read back, ${t} has ${again[t] ?? 0} rows instead of ${tables[t]}`);
  return { kind: 'jsonl', schemaVersion, tables };
}

/** Rows per table of a JSON Lines archive (each line parsed; a broken gzip stream or line throws). */
export async function countJsonl(file: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for await (const { table } of readJsonl(file)) counts[table] = (counts[table] ?? 0) + 1;
  return counts;
}

/** The lines of a JSON Lines archive, each checked to be `{"table": <a backup table>, "row": {…}}`. */
export async function* readJsonl(file: string): AsyncGenerator<{ table: string; row: unknown; line: number }> {
  const lines = createInterface({ input: createReadStream(file).pipe(createGunzip()), crlfDelay: Infinity });
  let n = 0;
  for await (const text of lines) {
    n++;
    if (text === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new BackupError(`${DATA_FILES.jsonl} line ${n} is not JSON`);
    }
    const o = v as { table?: unknown; row?: unknown };
    if (typeof o !== 'object' || o === null || typeof o.table !== 'string' || !isTableName(o.table))
      throw new BackupError(`${DATA_FILES.jsonl} line ${n}: not a row of a known table`);
    yield { table: o.table, row: o.row, line: n };
  }
}

/**
 * Removes the backups beyond the newest `keep` (folders holding a manifest; their names are returned) and partial
 * folders more than an hour older than `at`.
 */
async function prune(dir: string, keep: number, at: Date): Promise<string[]> {
  const names: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }))
    if (e.isDirectory() && isBackupFolder(e.name) && (await exists(join(dir, e.name, 'manifest.json'))))
      names.push(e.name);
  const old = beyondKeep(names, keep);
  for (const n of old) await rm(join(dir, n), { recursive: true, force: true });
  // What a backup killed mid-way left behind: an hour old, it is no backup in progress.
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || !e.name.startsWith('.partial-')) continue;
    const path = join(dir, e.name);
    if ((await stat(path)).mtimeMs < at.getTime() - 3_600_000) await rm(path, { recursive: true, force: true });
  }
  return old;
}
