import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, runCliHere } from './support/cli.ts';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PG_URL } from './support/db.ts';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'tgj-cli-'));
}

describe('tg-janitor CLI basics', () => {
  test('--help and unknown commands or options', async () => {
    const help = await runCliHere(['--help'], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: tg-janitor <command>/);
    const unknown = await runCliHere(['frobnicate'], {});
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const badOpt = await runCliHere(['jobs', '--colour'], {});
    assert.equal(badOpt.code, 2);
    assert.match(badOpt.stderr, /--colour/);
    assert.match(badOpt.stderr, /Usage: tg-janitor jobs/);
    const runHelp = await runCliHere(['run', '--help'], {});
    assert.equal(runHelp.code, 0);
    assert.match(runHelp.stdout, /--dry-run/);
  });

  test('migrate creates the SQLite file of the default DATABASE_URL (folder too)', async () => {
    const dir = tmp();
    try {
      const r = await runCli(['migrate'], {}, { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(existsSync(join(dir, 'data', 'tg-janitor.db')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad configuration value exits 2 naming the variable, before anything runs', async () => {
    const dir = tmp();
    try {
      // The real process once (its exit code), the other values through main() in this process.
      const mars = await runCli(['migrate'], { TIMEZONE: 'Mars/Olympus' }, { cwd: dir });
      assert.equal(mars.code, 2, mars.stderr);
      assert.match(mars.stderr, /TIMEZONE="Mars\/Olympus" is not valid: expected an IANA time zone/);
      for (const [k, v, re] of [
        ['TOKEN_CLEANUP_HOURS', '0,25', /TOKEN_CLEANUP_HOURS/],
        ['HTTP_PORT', 'eighty', /HTTP_PORT/],
        ['SCHEDULE_TOKEN_CLEANUP', '61 * * * *', /SCHEDULE_TOKEN_CLEANUP/],
        ['DELETE_AFTER_MINUTES', '5000', /DELETE_AFTER_MINUTES.*at most 2880/],
        ['MEDIA_ACCESS_COUNT', '1001', /MEDIA_ACCESS_COUNT.*at most 1000/],
      ] as const) {
        const r = await runCliHere(['migrate'], { [k]: v, DATABASE_URL: `sqlite:${join(dir, 'data', 'db.sqlite')}` });
        assert.equal(r.code, 2, `${k}: ${r.stderr}`);
        assert.match(r.stderr, re);
      }
      assert.equal(existsSync(join(dir, 'data')), false, 'nothing ran');
      const secret = await runCliHere(['migrate'], {
        BOT_TOKEN: 'not a token 123:SECRETVALUE',
        DATABASE_URL: `sqlite:${join(dir, 'data', 'db.sqlite')}`,
      });
      assert.equal(secret.code, 2);
      assert.match(secret.stderr, /BOT_TOKEN/);
      assert.doesNotMatch(secret.stderr, /SECRETVALUE/, 'a secret is never echoed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('.env is read, and the environment wins over it', async () => {
    const dir = tmp();
    try {
      writeFileSync(join(dir, '.env'), 'TIMEZONE=Asia/Kolkata\nDATABASE_URL=sqlite:./x/db.sqlite\n');
      const r = await runCli(['jobs', '--json'], {}, { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { timezone: string }).timezone, 'Asia/Kolkata');
      assert.ok(existsSync(join(dir, 'x', 'db.sqlite')));
      const r2 = await runCli(['jobs', '--json'], { TIMEZONE: 'UTC' }, { cwd: dir });
      assert.equal((JSON.parse(r2.stdout) as { timezone: string }).timezone, 'UTC');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--now without an offset is UTC, never the host's zone; an impossible date is refused", async () => {
    const dir = tmp();
    try {
      const env = { DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}`, TIMEZONE: 'Asia/Kolkata' };
      // A real process with TZ=UTC+14: read in the host's zone, 20:00 would be 06:00Z, the 28th in Kolkata.
      const spaced = await runCli(['run', 'token-count-reset', '--now', '2026-11-28 20:00:00', '--dry-run', '--json'], {
        ...env,
        TZ: 'Pacific/Kiritimati',
      });
      assert.equal(spaced.code, 0, spaced.stderr);
      assert.equal((JSON.parse(spaced.stdout) as { today: string }).today, '2026-11-29');
      const impossible = await runCliHere(['run', 'token-count-reset', '--now', '2026-02-31T00:00:00Z'], env);
      assert.equal(impossible.code, 2, 'February 31st is not an instant');
      assert.match(impossible.stderr, /--now: "2026-02-31T00:00:00Z" is not an ISO-8601 instant/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('postgres: a role that owns its schema but may not create schemas migrates it', async () => {
    const name = `tgj_role_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      // A new role has no CREATE right on the database; the schema is made for it by someone who has.
      await admin.query(`CREATE ROLE ${name} LOGIN`);
      await admin.query(`CREATE SCHEMA ${name} AUTHORIZATION ${name}`);
      const url = new URL(PG_URL);
      url.username = name;
      url.password = '';
      url.searchParams.set('schema', name);
      const r = await runCli(['migrate'], { DATABASE_URL: url.toString() });
      assert.equal(r.code, 0, r.stderr);
      const t = await admin.query('SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1', [
        name,
      ]);
      const n = (t.rows[0] as { n: number }).n;
      assert.ok(n > 10, `tables in ${name}: ${n}`);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`).catch(() => {});
      await admin.query(`DROP ROLE IF EXISTS ${name}`).catch(() => {});
      await admin.end();
    }
  });

  test('run message-deleter without BOT_TOKEN exits 2 naming BOT_TOKEN', async () => {
    const dir = tmp();
    try {
      const r = await runCliHere(['run', 'message-deleter'], { DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}` });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /BOT_TOKEN/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
