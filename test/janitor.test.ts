import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createJanitor } from '../src/janitor.ts';
import type { JobName } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { createTestDb } from './support/db.ts';

test('a manual run that cannot be recorded rejects, started or not (it never resolves to nothing)', async () => {
  const tdb = await createTestDb('sqlite');
  try {
    const store = await tdb.open();
    const janitor = await createJanitor({
      store,
      logger: createLogger({ level: 'silent' }),
      config: { schedules: { 'token-cleanup': 'off', 'token-count-reset': 'off' } },
    });
    assert.equal((await janitor.run('token-cleanup')).status, 'ok');
    await sql`drop table job_runs`.execute(store.db);
    await assert.rejects(janitor.run('token-cleanup'), /job_runs/, 'not started');
    await janitor.start();
    try {
      await assert.rejects(janitor.cleanupExpiredTokens(), /job_runs/, 'started: the same failure, not null');
    } finally {
      await janitor.stop();
    }
    await assert.rejects(janitor.run('message-deleter'), /talks to Telegram: set BOT_TOKEN/);
    // A JavaScript caller may pass any string: it is refused at run time too.
    await assert.rejects(janitor.run('frobnicate' as JobName), /unknown job "frobnicate"/);
  } finally {
    await tdb.drop();
  }
});
