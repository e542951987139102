import { test } from 'node:test';
import type { StatusSnapshot } from '../src/jobs/status.ts';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliProcess } from './support/cli.ts';
import { JOB_NAMES } from '../src/config.ts';

test('npx tg-janitor demo: a URL, then every job runs and deletions happen; Ctrl-C ends it and removes its database', async () => {
  // A .env and environment that would break a normal start: the demo must ignore them.
  const cwd = mkdtempSync(join(tmpdir(), 'tgj-demo-cwd-'));
  writeFileSync(
    join(cwd, '.env'),
    'DATABASE_URL=postgres://nobody@127.0.0.1:1/nothing\nBOT_TOKEN=1:bad\nTIMEZONE=Not/AZone\n',
  );
  const demo = new CliProcess(
    ['demo'],
    { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nothing', BOT_TOKEN: 'garbage', LOG_LEVEL: 'warn' },
    cwd,
  );
  try {
    const deadline = Date.now() + 15_000;
    while (!/Status page: (\S+)/.test(demo.stdout)) {
      assert.ok(Date.now() < deadline, `no URL within 15 s; stderr: ${demo.stderr.slice(-1500)}`);
      assert.equal(demo.child.exitCode, null, demo.stderr.slice(-1500));
      await new Promise((r) => setTimeout(r, 100));
    }
    const url = /Status page: (\S+)/.exec(demo.stdout)![1]!;
    let s: StatusSnapshot;
    const until = Date.now() + 60_000;
    for (;;) {
      s = (await (await fetch(`${url}status.json`)).json()) as StatusSnapshot;
      const allRan = s.jobs.every((j) => j.last_run?.status === 'ok');
      const deleted = s.deleted_per_hour.reduce((a, h) => a + h.messages, 0);
      if (allRan && deleted > 0 && s.deletions.total === 0) break;
      assert.ok(
        Date.now() < until,
        `not every job ran within 60 s: ${JSON.stringify(s.jobs.map((j) => [j.name, j.last_run?.status]))}`,
      );
      await new Promise((r) => setTimeout(r, 200)); // a look at the status, not a wait for time to pass
    }
    const page = await (await fetch(url)).text();
    // Every job the service knows is on the page.
    for (const job of JOB_NAMES) assert.match(page, new RegExp(`data-job="${job}"`));
    const dbDir = dirname(s.database.replace(/^sqlite:/, ''));
    assert.ok(existsSync(dbDir));
    const exit = await demo.kill('SIGINT');
    assert.equal(exit.code, 0, demo.stderr.slice(-1500));
    assert.match(demo.stdout, /demo stopped/);
    assert.equal(existsSync(dbDir), false, 'the temporary database is removed');
  } finally {
    if (demo.child.exitCode === null) await demo.kill('SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  }
});
