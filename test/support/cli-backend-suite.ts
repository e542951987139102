import { describe, test } from 'node:test';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { CliProcess, runCli } from './cli.ts';
import { createTestDb, type Backend } from './db.ts';
import { until } from './wait.ts';

/** The CLI against one backend (one test file per backend, so the two run side by side). */
export function cliBackendSuite(backend: Backend): void {
  describe(`tg-janitor on ${backend}`, () => {
    test('migrate, then run token-cleanup --now deletes exactly the expired spent tokens; --dry-run deletes none', async () => {
      const tdb = await createTestDb(backend);
      try {
        const env = { DATABASE_URL: tdb.url };
        assert.equal((await runCli(['migrate'], env)).code, 0);
        const store = await tdb.open();
        const day = 86400_000;
        const t = new Date('2026-11-29T12:00:00Z').getTime();
        const tok = (token: string, status: 'not_used' | 'verified' | 'bypassed', expiresAt: number) => ({
          token,
          unique_id: token,
          created_by: 1,
          status,
          created_at: expiresAt - 2 * day,
          expires_at: expiresAt,
          file_unique_id: null,
        });
        await store.db
          .insertInto('tokens')
          .values([
            tok('a', 'verified', t - 1),
            tok('b', 'bypassed', t - day),
            tok('c', 'not_used', t - day),
            tok('d', 'verified', t + 1),
            tok('e', 'verified', t),
          ])
          .execute();
        const dry = await runCli(['run', 'token-cleanup', '--now', '2026-11-29T12:00:00Z', '--dry-run', '--json'], env);
        assert.equal(dry.code, 0, dry.stderr);
        const dj = JSON.parse(dry.stdout) as Record<string, unknown>;
        assert.equal(dj.would_delete, 2);
        assert.equal(dj.dry_run, true);
        assert.equal((await store.db.selectFrom('tokens').select('token').execute()).length, 5);
        assert.equal(
          (await store.db.selectFrom('job_runs').select('id').execute()).length,
          0,
          'a dry run records nothing',
        );
        const real = await runCli(['run', 'token-cleanup', '--now', '2026-11-29T12:00:00Z', '--json'], env);
        assert.equal(real.code, 0, real.stderr);
        const lines = real.stdout.trim().split('\n');
        assert.equal(lines.length, 1, 'exactly one JSON object on stdout');
        const j = JSON.parse(lines[0]!) as Record<string, string | number>;
        assert.equal(j.job, 'token-cleanup');
        assert.equal(j.status, 'ok');
        assert.equal(j.deleted, 2);
        assert.equal(String(j.evaluated_at).slice(0, 19), '2026-11-29T12:00:00', 'decided as if at --now');
        assert.ok(
          Math.abs(new Date(String(j.started_at)).getTime() - Date.now()) < 60_000,
          'recorded at the real time it ran',
        );
        const left = (await store.db.selectFrom('tokens').select('token').orderBy('token').execute()).map(
          (r) => r.token,
        );
        assert.deepEqual(left, ['c', 'd', 'e']);
        const runs = await store.db.selectFrom('job_runs').selectAll().execute();
        assert.equal(runs.length, 1);
        assert.equal(runs[0]!.scheduled_for, null, 'a manual run claims no tick');
        assert.equal(runs[0]!.status, 'ok');
      } finally {
        await tdb.drop();
      }
    });

    test('run stats writes the day that ended; stats --json shows the last days newest first; a bad --days exits 2', async () => {
      const tdb = await createTestDb(backend);
      try {
        const store = await tdb.open();
        const yesterday = new Date(Date.now() - 86400_000).toISOString().slice(0, 10);
        await store.db
          .insertInto('users')
          .values({
            user_id: 7,
            username: null,
            first_name: null,
            joined_at: Date.parse(`${yesterday}T12:00:00Z`),
            is_banned: 0,
            user_access_count: 0,
            blocked_at: null,
          })
          .execute();
        await store.db.insertInto('user_activity').values({ day: yesterday, user_id: 7 }).execute();
        const env = { DATABASE_URL: tdb.url };
        const run = await runCli(['run', 'stats', '--json'], env);
        assert.equal(run.code, 0, run.stderr);
        assert.equal((JSON.parse(run.stdout) as { days_written: number }).days_written, 31);
        const r = await runCli(['stats', '--json', '--days', '3'], env);
        assert.equal(r.code, 0, r.stderr);
        const { days } = JSON.parse(r.stdout) as { days: Record<string, unknown>[] };
        assert.equal(days.length, 3);
        assert.deepEqual(
          days.map((d) => d.date),
          [
            new Date().toISOString().slice(0, 10),
            yesterday,
            new Date(Date.now() - 2 * 86400_000).toISOString().slice(0, 10),
          ],
        );
        assert.deepEqual([days[1]!.users_total, days[1]!.users_new, days[1]!.users_active], [1, 1, 1]);
        assert.deepEqual([days[2]!.users_total, days[2]!.users_new], [0, 0], 'zeros before the user joined');
        assert.equal(days[0]!.users_total, 1, 'today so far');
        const text = await runCli(['stats', '--days', '2'], env);
        assert.match(text.stdout, /^DATE\s+USERS\s+NEW\s+ACTIVE/);
        const bad = await runCli(['stats', '--days', '0'], env);
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /--days: expected a whole number from 1 to 366, got "0"/);
      } finally {
        await tdb.drop();
      }
    });

    test('run analytics [--now] [--dry-run] is recorded; stats --json and the table show yesterday as computed by hand; a bad BYPASS_ALERT_RATE exits 2', async () => {
      const tdb = await createTestDb(backend);
      try {
        const store = await tdb.open();
        const env = { DATABASE_URL: tdb.url };
        const at = ['--now', '2026-11-29T12:00:00Z'];
        const dry = await runCli(['run', 'analytics', ...at, '--dry-run', '--json'], env);
        assert.equal(dry.code, 0, dry.stderr);
        const dj = JSON.parse(dry.stdout) as Record<string, unknown>;
        assert.deepEqual([dj.dry_run, dj.would_write, dj.evaluated_at], [true, 32, '2026-11-29T12:00:00.000Z']);
        assert.equal((await store.db.selectFrom('analytics').select('day').execute()).length, 0, 'nothing written');
        const fixed = await runCli(['run', 'analytics', ...at, '--json'], env);
        assert.equal(fixed.code, 0, fixed.stderr);
        const fj = JSON.parse(fixed.stdout) as Record<string, unknown>;
        assert.deepEqual(
          [fj.status, fj.days_written, fj.first_day, fj.last_day],
          ['ok', 32, '2026-10-29', '2026-11-29'],
        );
        const [recorded] = await store.db.selectFrom('job_runs').selectAll().where('job', '=', 'analytics').execute();
        assert.equal(recorded!.status, 'ok');
        assert.match(recorded!.summary ?? '', /"days_written":32/);

        // Yesterday (real time, UTC), from the counters (the stats job has not run): 20 tokens, 12 verified, 7
        // bypassed; 6 files to 4 active users; 4 deletions done, 3 on time, lateness 0.1, 0.4, 0.9 and 45 s; 6 of 7
        // reached.
        const yesterday = new Date(Date.now() - 86400_000).toISOString().slice(0, 10);
        await store.db
          .insertInto('token_stats')
          .values({ day: yesterday, created: 20, verified: 12, bypassed: 7 })
          .execute();
        await store.db
          .insertInto('user_activity')
          .values([1, 2, 3, 4].map((u) => ({ day: yesterday, user_id: u })))
          .execute();
        await store.db
          .insertInto('day_counters')
          .values({
            day: yesterday,
            files_delivered: 6,
            deletions_done: 4,
            deletions_on_time: 3,
            deletions_late: 1,
            deletions_failed: 0,
            broadcasts_sent: 1,
            broadcasts_deleted: 0,
            recipients_reached: 6,
            broadcast_audience: 7,
          })
          .execute();
        await store.db
          .insertInto('deletion_lateness')
          .values([250, 500, 1000, 60000].map((le) => ({ day: yesterday, le_ms: le, count: 1 })))
          .execute();
        const run = await runCli(['run', 'analytics', '--json'], env);
        assert.equal(run.code, 0, run.stderr);
        const r = await runCli(['stats', '--json', '--days', '2'], env);
        assert.equal(r.code, 0, r.stderr);
        const { days } = JSON.parse(r.stdout) as { days: Record<string, unknown>[] };
        const fields = ['verification_rate', 'bypass_rate', 'bypass_rate_7d', 'on_time_share', 'lateness_p50_s'];
        const more = ['lateness_p99_s', 'deliveries_per_active_user', 'broadcast_reach'];
        const pick = (d: Record<string, unknown>) => [...fields, ...more].map((k) => d[k]);
        assert.equal(days[1]!.date, yesterday);
        // 12/20, 7/20, 7/20 over the week, 3/4; p50 rank 2 ends (0.25, 0.5]: 0.5 s; p99 rank 3.96 in (30, 60] with
        // 3 below: 30 + 30 × 0.96 = 58.8 s; 6/4; 6/7.
        assert.deepEqual(pick(days[1]!), [0.6, 0.35, 0.35, 0.75, 0.5, 58.8, 1.5, 0.8571]);
        assert.deepEqual(pick(days[0]!), [null, null, 0.35, null, null, null, null, null], 'today: nothing yet');
        const text = await runCli(['stats', '--days', '2'], env);
        assert.match(
          text.stdout,
          /VERIFIED%\s+BYPASSED%\s+BYPASSED% 7D\s+ON TIME%\s+P50\s+P99\s+FILES\/ACTIVE\s+REACH%/,
        );
        assert.match(
          text.stdout,
          new RegExp(
            `${yesterday} .* 60\\.0%\\s+35\\.0%\\s+35\\.0%\\s+75\\.0%\\s+0\\.5 s\\s+58\\.8 s\\s+1\\.50\\s+85\\.7%`,
          ),
        );

        const bad = await runCli(['run', 'analytics'], { ...env, BYPASS_ALERT_RATE: '1.5' });
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /BYPASS_ALERT_RATE="1\.5" is not valid: expected at most 1/);
      } finally {
        await tdb.drop();
      }
    });

    test('TIMEZONE=Asia/Kolkata run token-count-reset --now 2026-11-28T20:00:00Z treats 2026-11-29 as today', async () => {
      const tdb = await createTestDb(backend);
      try {
        const store = await tdb.open();
        await store.db
          .insertInto('token_generator_count')
          .values([
            { user_id: 1, date: '2026-11-27', token_generated: 3 },
            { user_id: 1, date: '2026-11-28', token_generated: 5 },
            { user_id: 1, date: '2026-11-29', token_generated: 1 },
          ])
          .execute();
        const r = await runCli(['run', 'token-count-reset', '--now', '2026-11-28T20:00:00Z', '--json'], {
          DATABASE_URL: tdb.url,
          TIMEZONE: 'Asia/Kolkata',
        });
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout) as Record<string, unknown>;
        assert.equal(j.today, '2026-11-29');
        assert.equal(j.deleted, 2);
        const left = await store.db.selectFrom('token_generator_count').select('date').execute();
        assert.deepEqual(
          left.map((x) => x.date),
          ['2026-11-29'],
        );
      } finally {
        await tdb.drop();
      }
    });

    test('backup prints its folder; restore moves it into the other kind of database; a bad one exits 2, nothing changed', async () => {
      const tdb = await createTestDb(backend);
      const target = await createTestDb(backend === 'sqlite' ? 'postgres' : 'sqlite');
      const dir = mkdtempSync(join(tmpdir(), 'tgj-cli-backup-'));
      try {
        const store = await tdb.open();
        await store.db.insertInto('settings').values({ key: 'DELETE_AFTER_MINUTES', value: '15' }).execute();
        await store.db
          .insertInto('files')
          .values({ unique_id: 'u', channel_id: -100, message_ids: '[3]', created_by: 1, created_at: 2 })
          .execute();
        const env = { DATABASE_URL: tdb.url, BACKUP_DIR: dir, BACKUP_KEEP: '2' };
        const made = await runCli(['backup'], env);
        assert.equal(made.code, 0, made.stderr);
        const folder = made.stdout.trim();
        assert.match(folder, /\/\d{8}T\d{6}\.\d{3}Z$/);
        assert.ok(existsSync(join(folder, 'manifest.json')));
        const json = await runCli(['run', 'backup', '--json'], env);
        assert.equal(json.code, 0, json.stderr);
        const summary = JSON.parse(json.stdout) as { status: string; rows: number; kind: string };
        assert.deepEqual(
          [summary.status, summary.rows, summary.kind],
          ['ok', 2, backend === 'sqlite' ? 'sqlite' : 'jsonl'],
        );
        const into = { DATABASE_URL: target.url };
        // A corrupted copy is refused before anything is written.
        const bad = join(dir, 'corrupted');
        cpSync(folder, bad, { recursive: true });
        const dataFile = readdirSync(bad).find((f) => f.startsWith('data'))!;
        appendFileSync(join(bad, dataFile), 'x');
        const refused = await runCli(['restore', bad], into);
        assert.equal(refused.code, 2);
        assert.match(refused.stderr, /restore refused: .*does not match the checksum/);
        const restored = await runCli(['restore', folder], into);
        assert.equal(restored.code, 0, restored.stderr);
        assert.match(restored.stderr, /restored 2 rows/);
        for (const c of ['settings', 'files']) {
          const a = await runCli(['export', c], { DATABASE_URL: tdb.url });
          const b = await runCli(['export', c], into);
          assert.equal(b.stdout, a.stdout, c);
          assert.ok(a.stdout.length > 0);
        }
        const again = await runCli(['restore', folder], into);
        assert.equal(again.code, 2);
        assert.match(again.stderr, /is not empty .*--force/);
        const keep = await runCli(['backup'], { ...env, BACKUP_KEEP: '0' });
        assert.equal(keep.code, 2);
        assert.match(keep.stderr, /BACKUP_KEEP/);
      } finally {
        await tdb.drop();
        await target.drop();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('two start processes on one database run a 1-second token cleanup once per tick; SIGTERM stops both with 0', async () => {
      const tdb = await createTestDb(backend);
      try {
        const store = await tdb.open(); // migrated before the race, like an operator's first `migrate`
        const env = {
          DATABASE_URL: tdb.url,
          SCHEDULE_TOKEN_CLEANUP: '* * * * * *',
          SCHEDULE_MESSAGE_DELETER: 'off',
          SCHEDULE_BROADCAST_DELETER: 'off',
          SCHEDULE_TOKEN_COUNT_RESET: 'off',
        };
        const a = new CliProcess(['start'], env);
        const b = new CliProcess(['start'], env);
        await Promise.all([
          a.waitFor(/Token Cleanup Scheduler started \(runs every second\)/),
          b.waitFor(/Token Cleanup Scheduler started/),
        ]);
        const from = Date.now();
        const runsOf = () =>
          store.db
            .selectFrom('job_runs')
            .selectAll()
            .where('job', '=', 'token-cleanup')
            .orderBy('scheduled_for')
            .execute();
        // Both processes race for every tick; five ticks after both started show each went once.
        await until(
          async () => (await runsOf()).filter((r) => r.scheduled_for! >= from + 1000).length >= 5,
          'five ticks after both started',
          20_000,
        );
        const to = Date.now();
        const [ea, eb] = await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
        assert.deepEqual(ea, { code: 0, signal: null }, a.stderr.slice(-2000));
        assert.deepEqual(eb, { code: 0, signal: null }, b.stderr.slice(-2000));
        assert.match(a.stderr, /tg-janitor stopped/);
        const runs = await runsOf();
        const ticks = runs.map((r) => r.scheduled_for!);
        assert.equal(new Set(ticks).size, ticks.length, 'no tick ran twice');
        assert.ok(
          runs.every((r) => r.status === 'ok'),
          JSON.stringify(runs.map((r) => r.status)),
        );
        // Every second inside the window has its one run.
        for (let t = Math.ceil(from / 1000) * 1000 + 1000; t < to - 1000; t += 1000)
          assert.ok(ticks.includes(t), `tick ${new Date(t).toISOString()} ran`);
      } finally {
        await tdb.drop();
      }
    });
  });
}
