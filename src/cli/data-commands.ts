/** The commands that move data in and out: import, export, backup, restore (each loads what it needs when it runs). */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { COLLECTIONS, isCollection, isTableCollection, TABLE_COLLECTIONS } from '../transfer/names.ts';
import { CliError, UsageError } from './errors.ts';
import { readAll, withStore, write } from './io.ts';
import type { Command } from './main.ts';

const ALL = [...COLLECTIONS, ...TABLE_COLLECTIONS];
const unknown = (name: string) => `unknown collection "${name}" (one of ${ALL.join(', ')})`;

export const importCmd: Command = {
  name: 'import',
  summary: 'import a JSON Lines file of one collection (all or nothing)',
  usage:
    `Usage: tg-janitor import <collection> <file|->\n\nCollections: ${COLLECTIONS.join(', ')} (one document per line in the ` +
    `original bot's MongoDB shapes);\n${TABLE_COLLECTIONS.join(', ')} (rows as \`export\` writes them). '-' reads ` +
    `stdin. Any bad line: exit 2, nothing written.`,
  options: {},
  async run(ctx, { positionals }) {
    const [collection, file, ...extra] = positionals;
    if (!collection || !file || extra.length) throw new UsageError('expected <collection> and <file|->', this.usage);
    if (!isCollection(collection) && !isTableCollection(collection))
      throw new UsageError(unknown(collection), this.usage);
    const config = ctx.config();
    let text: string;
    try {
      text = file === '-' ? await readAll(ctx.stdin) : readFileSync(file, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read ${file}: ${(e as Error).message}`, 2);
    }
    const { importCollection, importTable, ImportError } = await import('../transfer/index.ts');
    try {
      const r = await withStore(config, (store) =>
        isCollection(collection)
          ? importCollection(store, collection, text, { timezone: config.timezone })
          : importTable(store, collection, text),
      );
      ctx.stderr.write(
        `imported ${collection}: ${r.read} read, ${r.inserted} inserted, ${r.updated} updated, ${r.unchanged} unchanged\n`,
      );
      return 0;
    } catch (e) {
      if (e instanceof ImportError) throw new CliError(`${file}: ${e.message}; nothing was imported`, 2);
      throw e;
    }
  },
};

export const exportCmd: Command = {
  name: 'export',
  summary: 'write one collection as JSON Lines to stdout',
  usage:
    `Usage: tg-janitor export <collection>\n\nCollections: ${COLLECTIONS.join(', ')} (dates ISO-8601 UTC);\n` +
    `${TABLE_COLLECTIONS.join(', ')} (rows as stored, instants in epoch milliseconds).`,
  options: {},
  async run(ctx, { positionals }) {
    const [collection, ...extra] = positionals;
    if (!collection || extra.length) throw new UsageError('expected <collection>', this.usage);
    if (!isCollection(collection) && !isTableCollection(collection))
      throw new UsageError(unknown(collection), this.usage);
    const config = ctx.config();
    const { exportCollection, exportTableLines } = await import('../transfer/index.ts');
    const out = (line: string) => write(ctx.stdout, `${line}\n`);
    await withStore(config, (store) =>
      isCollection(collection) ? exportCollection(store, collection, out) : exportTableLines(store, collection, out),
    );
    return 0;
  },
};

export const backupCmd: Command = {
  name: 'backup',
  summary: 'make one backup now (as the backup job does) and print its folder',
  usage:
    'Usage: tg-janitor backup\n\nWrites a checked backup of DATABASE_URL to a new folder in BACKUP_DIR, removes those beyond the\nnewest BACKUP_KEEP, and prints the folder. Recorded as a manual run of the backup job. Exit 1 when it failed.',
  options: {},
  async run(ctx) {
    const config = ctx.config();
    const { createJanitor } = await import('../janitor.ts');
    const janitor = await createJanitor({ config, logger: ctx.logger(config) });
    try {
      const r = await janitor.run('backup');
      if (r.status !== 'ok' || !r.summary?.folder) {
        ctx.stderr.write(`backup failed: ${r.error ?? 'no folder written'}\n`);
        return 1;
      }
      await write(ctx.stdout, `${resolve(r.summary.folder)}\n`);
      return 0;
    } finally {
      await janitor.stop();
    }
  },
};

export const restoreCmd: Command = {
  name: 'restore',
  summary: 'restore a backup folder into DATABASE_URL (an empty database, or --force)',
  usage:
    'Usage: tg-janitor restore <folder> [--force]\n\nRestores a backup made by `backup` (from SQLite or PostgreSQL) into DATABASE_URL, of either kind. The\ndatabase must hold no rows; --force replaces everything in it. A backup whose checksum or schema version\ndoes not match is refused; any error changes nothing (exit 2 with the reason). Run history starts empty.',
  options: { force: { type: 'boolean' } },
  async run(ctx, { values, positionals }) {
    const [folder, ...extra] = positionals;
    if (!folder || extra.length) throw new UsageError('expected one <folder>', this.usage);
    const config = ctx.config();
    const { openStore } = await import('../store/db.ts');
    const { restoreBackup } = await import('../backup/restore.ts');
    const { BackupError } = await import('../backup/manifest.ts');
    const store = await openStore(config.databaseUrl);
    try {
      const r = await restoreBackup(store, folder, { force: Boolean(values.force) });
      const rows = Object.values(r.tables).reduce((a, b) => a + b, 0);
      const per = Object.entries(r.tables)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ');
      ctx.stderr.write(
        `restored ${rows} rows from ${folder} (${r.manifest.created_at}) into ${store.describe}: ${per}\n`,
      );
      return 0;
    } catch (e) {
      if (e instanceof BackupError) throw new CliError(`restore refused: ${e.message}`, 2);
      throw e;
    } finally {
      await store.close();
    }
  },
};
