/**
 * Backup (the seed's "Backup Scheduler"): one checked backup of the whole database into `BACKUP_DIR` (daily at
 * 03:00 by default), then the backups beyond the newest `BACKUP_KEEP` removed. See `backup/` for what a backup is.
 */
import { makeBackup } from '../backup/backup.ts';
import type { Store } from '../store/db.ts';
import type { JobDefinition } from '../scheduler/job.ts';

/** What a backup run made. */
export interface BackupSummary {
  /** The new backup's folder (null on a dry run). */
  folder: string | null;
  /** `sqlite` (a database file) or `jsonl` (gzipped JSON Lines, from PostgreSQL); null on a dry run. */
  kind: 'sqlite' | 'jsonl' | null;
  /** The data file's size. */
  bytes: number;
  /** Rows saved over every table. */
  rows: number;
  /** Older backups removed to keep the newest BACKUP_KEEP. */
  removed: number;
  /** Dry run only: where a backup would go. */
  would_write_to?: string;
}

/** Settings of the backup job. */
export interface BackupJobOptions {
  /** BACKUP_DIR (default `./data/backups`). */
  dir: string;
  /** BACKUP_KEEP (default 7). */
  keep: number;
}

/** The job definition for the engine. */
export function backupJob(store: Store, o: BackupJobOptions, schedule: string): JobDefinition<BackupSummary, 'backup'> {
  return {
    name: 'backup',
    title: 'Backup',
    label: 'backup',
    schedule,
    async run(ctx) {
      if (ctx.dryRun) return { folder: null, kind: null, bytes: 0, rows: 0, removed: 0, would_write_to: o.dir };
      // Named after real time, whatever instant a manual run evaluates at: it is a fact about the files.
      const r = await makeBackup(store, { dir: o.dir, keep: o.keep, at: ctx.wallClock.now() });
      for (const name of r.removed) ctx.logger.info({ removed: name }, `🗑️ Old backup ${name} removed`);
      return { folder: r.folder, kind: r.kind, bytes: r.bytes, rows: r.rows, removed: r.removed.length };
    },
    successLine: (s, at) =>
      s.would_write_to !== undefined
        ? `💾 Backup would be written to ${s.would_write_to} (dry run) at ${at}`
        : `✅ Backup completed at ${at}: ${s.folder} (${s.rows} rows, ${s.bytes} bytes, ${s.removed} old removed)`,
  };
}
