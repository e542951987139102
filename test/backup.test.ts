/**
 * Backups (issue 11, part 3): SQLite's online backup and PostgreSQL's gzipped JSON Lines, each restored into an empty
 * database of the other kind with every collection's export identical; corrupted, truncated, mismatched or
 * unwanted restores refused with nothing changed; retention; a backup while the service writes.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import type { Store } from '../src/store/db.ts';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { Engine } from '../src/scheduler/engine.ts';
import { backupJob } from '../src/jobs/backup.ts';
import { makeBackup } from '../src/backup/backup.ts';
import { restoreBackup } from '../src/backup/restore.ts';
import { BackupError, beyondKeep, folderName, parseManifest } from '../src/backup/manifest.ts';
import { COLLECTIONS, exportCollection, exportTableLines, TABLE_COLLECTIONS } from '../src/transfer/index.ts';
import { BACKUP_TABLES, tablesWithRows } from '../src/transfer/tables.ts';
import * as deletions from '../src/store/deletions.ts';
import { createTestDb, withTestDb, type Backend } from './support/db.ts';

const T0 = new Date('2026-12-06T03:00:00.000Z');
const logger = createLogger({ level: 'silent' });
const tmp = mkdtempSync(join(tmpdir(), 'tgj-backup-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => join(tmp, `b${++dirs}`);

/** One row or more in every table a backup holds, with nulls, Unicode and large ids. */
async function seed(store: Store): Promise<Record<string, number>> {
  const db = store.db;
  await db
    .insertInto('users')
    .values([
      {
        user_id: 1,
        username: 'ann',
        first_name: 'Ann 👋',
        joined_at: 1,
        is_banned: 0,
        user_access_count: 2,
        blocked_at: null,
      },
      {
        user_id: 9_007_199_254_740_991,
        username: null,
        first_name: null,
        joined_at: 5,
        is_banned: 1,
        user_access_count: 0,
        blocked_at: 7,
      },
    ])
    .execute();
  await db
    .insertInto('tokens')
    .values({
      token: 'tok-β',
      unique_id: 'u1',
      created_by: 1,
      status: 'verified',
      created_at: 10,
      expires_at: 99,
      file_unique_id: null,
    })
    .execute();
  await db.insertInto('token_generator_count').values({ user_id: 1, date: '2026-12-05', token_generated: 3 }).execute();
  await deletions.insertDeletion(store, { userId: 1, chatId: 1, messageIds: [5, 6], deleteAt: 1000, createdAt: 10 });
  await deletions.insertDeletion(store, {
    userId: 1,
    chatId: -100,
    messageIds: [7],
    deleteAt: 2000,
    createdAt: 11,
    uniqueId: 'f',
  });
  const b = await db
    .insertInto('broadcasts')
    .values({
      source_id: null,
      dedupe_key: 'bk',
      message_id: 3,
      text: 'News "quoted"\nline',
      caption: null,
      file_id: null,
      duration_hours: 2,
      channel_message_id: null,
      created_at: 20,
      delete_at: 30,
      status: 'sending',
      from_chat_id: 42,
      send_cursor: 1,
      sent_count: 1,
      failed_count: 0,
      claimed_by: null,
      claim_expires_at: null,
      progress_chat_id: 42,
      progress_message_id: 4,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await db
    .insertInto('broadcast_messages')
    .values([
      { broadcast_id: Number(b.id), chat_id: 1, message_id: 77 },
      { broadcast_id: Number(b.id), chat_id: 9_007_199_254_740_991, message_id: 0 },
    ])
    .execute();
  await db.insertInto('settings').values({ key: 'DELETE_AFTER_MINUTES', value: '30' }).execute();
  await db
    .insertInto('files')
    .values({ unique_id: 'f', channel_id: -1001, message_ids: '[1,2]', created_by: 1, created_at: 3 })
    .execute();
  await db.insertInto('token_stats').values({ day: '2026-12-05', created: 4, verified: 2, bypassed: 1 }).execute();
  await db.insertInto('deletion_stats').values({ hour: 1_764_900_000_000, messages: 12 }).execute();
  await db
    .insertInto('job_faults')
    .values({ job: 'message-deleter', message: 'bad token', count: 2, since: 1, retry_at: 2 })
    .execute();
  await db.insertInto('known_chats').values({ chat_id: 1, seen_at: 3 }).execute();
  await db
    .insertInto('day_counters')
    .values({
      day: '2026-12-05',
      files_delivered: 3,
      deletions_done: 2,
      deletions_on_time: 1,
      deletions_late: 1,
      deletions_failed: 0,
      broadcasts_sent: 1,
      broadcasts_deleted: 0,
      recipients_reached: 1,
      broadcast_audience: 2,
    })
    .execute();
  await db.insertInto('user_activity').values({ day: '2026-12-05', user_id: 1 }).execute();
  await db
    .insertInto('daily_stats')
    .values({
      day: '2026-12-05',
      users_total: 2,
      users_new: 1,
      users_active: 1,
      users_blocked: 1,
      tokens_created: 4,
      tokens_verified: 2,
      tokens_bypassed: 1,
      files_delivered: 3,
      deletions_done: 2,
      deletions_on_time: 1,
      deletions_late: 1,
      deletions_failed: 0,
      broadcasts_sent: 1,
      broadcasts_deleted: 0,
      recipients_reached: 1,
      broadcast_audience: 2,
      computed_at: 9,
    })
    .execute();
  await db
    .insertInto('deletion_lateness')
    .values([
      { day: '2026-12-05', le_ms: 1000, count: 1 },
      { day: '2026-12-05', le_ms: -1, count: 1 },
    ])
    .execute();
  await db
    .insertInto('analytics')
    .values({
      day: '2026-12-05',
      verification_rate: 0.5,
      bypass_rate: 0.25,
      bypass_rate_7d: null,
      on_time_share: 0.5,
      lateness_p50_s: 0.75,
      lateness_p99_s: 3600,
      deliveries_per_active_user: 3,
      broadcast_reach: 0.5,
      computed_at: 9,
      bypass_alert_at: null,
    })
    .execute();
  await db
    .insertInto('health_state')
    .values({ id: 1, healthy: 0, failing: '["telegram"]', changed_at: 5, unhealthy_told_at: 5 })
    .execute();
  // Run history and locks stay out of a backup.
  await db.insertInto('job_locks').values({ job: 'stats', owner: 'x', run_id: null, lease_expires_at: 1 }).execute();
  const counts: Record<string, number> = {};
  for (const t of BACKUP_TABLES) {
    const r = await db
      .selectFrom(t)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    counts[t] = Number(r.n);
  }
  return counts;
}

/** Every collection's export (the original bot's and the table collections), and every table row by row. */
async function exportsOf(store: Store): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const c of COLLECTIONS) {
    const lines: string[] = [];
    await exportCollection(store, c, (l) => void lines.push(l));
    out[c] = lines;
  }
  for (const t of TABLE_COLLECTIONS) {
    const lines: string[] = [];
    await exportTableLines(store, t, (l) => void lines.push(l));
    out[`table:${t}`] = lines;
  }
  return out;
}

const other = (b: Backend): Backend => (b === 'sqlite' ? 'postgres' : 'sqlite');

for (const from of ['sqlite', 'postgres'] as const) {
  describe(`a ${from} backup`, () => {
    test(`restores into an empty ${other(from)} database: every collection's export identical`, async () => {
      await withTestDb(from, async (src) => {
        const counts = await seed(src);
        const dir = newDir();
        const r = await makeBackup(src, { dir, keep: 7, at: T0 });
        assert.equal(r.folder, join(dir, '20261206T030000.000Z'));
        assert.equal(r.kind, from === 'sqlite' ? 'sqlite' : 'jsonl');
        const manifest = parseManifest(readFileSync(join(r.folder, 'manifest.json'), 'utf8'));
        assert.deepEqual(manifest.tables, counts);
        assert.equal(manifest.source, from);
        assert.equal(manifest.created_at, T0.toISOString());
        assert.equal(
          manifest.sha256,
          createHash('sha256')
            .update(readFileSync(join(r.folder, manifest.data_file)))
            .digest('hex'),
        );
        assert.deepEqual(readdirSync(dir), ['20261206T030000.000Z'], 'nothing else left in the folder');
        await withTestDb(other(from), async (dst) => {
          // A freshly migrated database: tables exist, no rows.
          const restored = await restoreBackup(dst, r.folder);
          assert.deepEqual(restored.tables, counts);
          assert.deepEqual(await exportsOf(dst), await exportsOf(src));
          assert.deepEqual(await dst.db.selectFrom('job_locks').selectAll().execute(), [], 'locks start empty');
          // The ids go on after the restored ones.
          const id = await deletions.insertDeletion(dst, {
            userId: 1,
            chatId: 1,
            messageIds: [9],
            deleteAt: 1,
            createdAt: 1,
          });
          assert.ok(Number(id) > 2, `a new id after the restored ones (got ${String(id)})`);
        });
      });
    });
  });
}

describe('a restore refuses, changing nothing', () => {
  for (const target of ['sqlite', 'postgres'] as const) {
    test(`${target}: corrupted, truncated, wrong schema version, forged checksum, not empty`, async () => {
      await withTestDb(other(target), async (src) => {
        await seed(src);
        const r = await makeBackup(src, { dir: newDir(), keep: 7, at: T0 });
        const manifestPath = join(r.folder, 'manifest.json');
        const manifest = parseManifest(readFileSync(manifestPath, 'utf8'));
        const dataPath = join(r.folder, manifest.data_file);
        const good = readFileSync(dataPath);
        const copyWith = (data: Buffer, m: object = manifest) => {
          const f = newDir();
          mkdirSync(f);
          writeFileSync(join(f, manifest.data_file), data);
          writeFileSync(join(f, 'manifest.json'), JSON.stringify(m));
          return f;
        };
        const flipped = Buffer.from(good);
        flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
        const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
        // The checksum and size made to match data that is cut short: found while reading, rolled back.
        const cut =
          manifest.kind === 'jsonl'
            ? gzipSync(gunzipSync(good).subarray(0, Math.floor(gunzipSync(good).length * 0.6)))
            : good.subarray(0, Math.floor(good.length / 2));
        const cases: [string, string, RegExp][] = [
          ['a flipped byte', copyWith(flipped), /does not match the checksum/],
          ['a truncated file', copyWith(good.subarray(0, good.length - 100)), /corrupted or truncated/],
          [
            'another schema version',
            copyWith(good, { ...manifest, schema_version: '0001_initial' }),
            /schema version is 0001_initial/,
          ],
          ['a forged checksum over cut data', copyWith(cut, { ...manifest, sha256: sha(cut), bytes: cut.length }), /./],
          [
            'no manifest',
            (() => {
              const f = newDir();
              mkdirSync(f);
              return f;
            })(),
            /not a backup folder/,
          ],
          ['a bad manifest', copyWith(good, { ...manifest, tables: 'x' }), /manifest\.json: tables/],
        ];
        const tdb = await createTestDb(target);
        try {
          const dst = await tdb.open();
          for (const [what, folder, why] of cases) {
            await assert.rejects(restoreBackup(dst, folder), (e: unknown) => {
              assert.ok(e instanceof BackupError, `${what}: ${String(e)}`);
              assert.match(e.message, why, what);
              return true;
            });
            assert.deepEqual(await tablesWithRows(dst.db), [], `${what}: nothing written`);
          }
          // Not empty: refused without --force, replaced with it.
          await dst.db.insertInto('settings').values({ key: 'X', value: '1' }).execute();
          await assert.rejects(restoreBackup(dst, r.folder), /is not empty \(rows in settings\).*--force/);
          assert.deepEqual(await dst.db.selectFrom('settings').selectAll().execute(), [{ key: 'X', value: '1' }]);
          await restoreBackup(dst, r.folder, { force: true });
          assert.deepEqual(await exportsOf(dst), await exportsOf(src));
        } finally {
          await tdb.drop();
        }
      });
    });
  }
});

test('retention keeps the newest BACKUP_KEEP backups and touches nothing else', async () => {
  await withTestDb('sqlite', async (store) => {
    await seed(store);
    const dir = newDir();
    mkdirSync(join(dir, 'my-notes'), { recursive: true });
    // Left by a backup killed mid-way a day earlier: removed; one of a backup still going: kept.
    mkdirSync(join(dir, '.partial-20261205T030000.000Z-dead'));
    utimesSync(
      join(dir, '.partial-20261205T030000.000Z-dead'),
      new Date(T0.getTime() - 86_400_000),
      new Date(T0.getTime() - 86_400_000),
    );
    mkdirSync(join(dir, '.partial-20261206T030000.000Z-busy'));
    const last = new Date(T0.getTime() + 4 * 86_400_000);
    utimesSync(join(dir, '.partial-20261206T030000.000Z-busy'), last, last);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await makeBackup(store, { dir, keep: 3, at: new Date(T0.getTime() + i * 86_400_000) });
      made.push(folderName(new Date(T0.getTime() + i * 86_400_000)));
      assert.equal(r.removed.length, i < 3 ? 0 : 1, `backup ${i + 1}: the oldest beyond 3 goes`);
    }
    assert.deepEqual(
      readdirSync(dir).sort(),
      [...made.slice(2), '.partial-20261206T030000.000Z-busy', 'my-notes'].sort(),
    );
    // A folder with the same name is never overwritten.
    await assert.rejects(
      makeBackup(store, { dir, keep: 3, at: new Date(T0.getTime() + 4 * 86_400_000) }),
      /already exists/,
    );
  });
  assert.deepEqual(beyondKeep(['20261201T000000.000Z', 'x', '20261203T000000.000Z', '20261202T000000.000Z'], 2), [
    '20261201T000000.000Z',
  ]);
});

test('SQLite: a backup taken while another connection writes is consistent and passes the integrity check', async () => {
  const tdb = await createTestDb('sqlite');
  try {
    const store = await tdb.open();
    const writer = await tdb.open();
    await seed(store);
    let writing = true;
    let written = 0;
    const loop = (async () => {
      while (writing) {
        await writer.db
          .insertInto('known_chats')
          .values({ chat_id: 1000 + written, seen_at: written })
          .execute();
        written++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    // Enough rows that the copy takes several steps while the writer goes on.
    await store.db
      .insertInto('user_activity')
      .values(Array.from({ length: 3000 }, (_, i) => ({ day: '2026-12-01', user_id: i })))
      .execute();
    const r = await makeBackup(store, { dir: newDir(), keep: 2, at: T0 });
    writing = false;
    await loop;
    assert.ok(written > 0);
    const manifest = parseManifest(readFileSync(join(r.folder, 'manifest.json'), 'utf8'));
    await withTestDb('postgres', async (dst) => {
      const restored = await restoreBackup(dst, r.folder);
      assert.deepEqual(restored.tables, manifest.tables, 'the copy holds what its manifest counted');
      assert.equal(restored.tables.user_activity, 3001);
    });
  } finally {
    await tdb.drop();
  }
});

for (const backend of ['sqlite', 'postgres'] as const) {
  test(`${backend}: two instances on one database make one backup per tick, recorded`, async () => {
    await withTestDb(backend, async (store, tdb) => {
      const counts = await seed(store);
      const dir = newDir();
      const clock = new FakeClock('2026-12-06T02:59:59.000Z');
      const engines = [store, await tdb.open()].map(
        (s) =>
          new Engine({
            store: s,
            clock,
            logger,
            jobs: [backupJob(s, { dir, keep: 7 }, '0 3 * * *')],
            catchUpMissed: false,
          }),
      );
      for (const e of engines) await e.start({ timers: false });
      for (const day of ['2026-12-06', '2026-12-07']) {
        clock.set(`${day}T03:00:00.200Z`);
        await Promise.all(engines.map((e) => Promise.all(e.tick())));
      }
      for (const e of engines) await e.stop();
      const runs = await store.db.selectFrom('job_runs').selectAll().where('job', '=', 'backup').execute();
      assert.deepEqual(
        runs.map((r) => r.status),
        ['ok', 'ok'],
        'one run per tick',
      );
      const folders = readdirSync(dir).sort();
      assert.equal(folders.length, 2, `one backup per tick: ${folders.join(', ')}`);
      const summary = JSON.parse(runs[0]!.summary!) as { folder: string; rows: number };
      assert.equal(summary.folder, join(dir, folders[0]!));
      assert.equal(
        summary.rows,
        Object.values(counts).reduce((a, b) => a + b, 0),
      );
    });
  });
}
