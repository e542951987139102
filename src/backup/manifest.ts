/**
 * What a backup folder holds and says about itself (pure: no I/O). A backup is one folder
 * `BACKUP_DIR/<UTC time to the millisecond>/` with its data file and `manifest.json`.
 */
import { z } from 'zod';

/** The manifest's format tag; a restore refuses anything else. */
export const MANIFEST_FORMAT = 'tg-janitor-backup/1';

/** The data file of each kind: a SQLite database file, or gzipped JSON Lines (`{"table", "row"}` per line). */
export const DATA_FILES = { sqlite: 'data.sqlite', jsonl: 'data.jsonl.gz' } as const;

const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  created_at: z.iso.datetime(),
  /** The database the backup was taken from. */
  source: z.enum(['sqlite', 'postgres']),
  kind: z.enum(['sqlite', 'jsonl']),
  data_file: z.enum([DATA_FILES.sqlite, DATA_FILES.jsonl]),
  bytes: z.int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  schema_version: z.string().min(1),
  tables: z.record(z.string(), z.int().nonnegative()),
});

/** A backup's `manifest.json`. */
export type Manifest = z.infer<typeof manifestSchema>;

/** A manifest that does not parse, or does not match its data file's kind. */
export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

/** Parses `manifest.json`'s text; throws a {@link BackupError} saying what is wrong. */
export function parseManifest(text: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new BackupError(`manifest.json is not JSON (${(e as Error).message})`);
  }
  const r = manifestSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new BackupError(`manifest.json: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  if (r.data.data_file !== DATA_FILES[r.data.kind])
    throw new BackupError(`manifest.json: a ${r.data.kind} backup's data file is ${DATA_FILES[r.data.kind]}`);
  return r.data;
}

/** A backup folder's name for an instant: `20261206T030000.123Z` (UTC; sorts as time does; no colons). */
export function folderName(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '');
}

const FOLDER = /^\d{8}T\d{6}\.\d{3}Z$/;

/** True for a name {@link folderName} makes. */
export const isBackupFolder = (name: string): boolean => FOLDER.test(name);

/**
 * The backups to remove so that the newest `keep` remain: `names` are the folders holding a manifest (the new one
 * among them, already checked); anything else in the folder is never touched.
 */
export function beyondKeep(names: readonly string[], keep: number): string[] {
  return names.filter(isBackupFolder).sort().reverse().slice(Math.max(1, keep));
}
