import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { checkHealth, collectStatus } from '../src/jobs/status.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { BACKENDS, createTestDb } from './support/db.ts';

const NOW = Date.parse('2026-11-29T12:00:00Z');
const MIN = 60_000;

for (const backend of BACKENDS) {
  test(`${backend}: pending deletions on the status page: total, overdue (due at now included), next hour, earliest`, async () => {
    const tdb = await createTestDb(backend);
    try {
      const store = await tdb.open();
      const config = loadConfig({ DATABASE_URL: tdb.url });
      const src = { config, store, clock: new FakeClock(NOW), startedAt: null, telegram: false };
      assert.deepEqual(
        (await collectStatus(src)).deletions,
        { total: 0, overdue: 0, due_next_hour: 0, next_due_at: null },
        'an empty table',
      );
      const offsets = [-30 * MIN, -1 * MIN, 0, 1, 60 * MIN, 60 * MIN + 1, 5 * 60 * MIN];
      for (const [i, off] of offsets.entries()) {
        await insertDeletion(store, {
          userId: 1,
          chatId: 1,
          messageIds: [i + 1],
          deleteAt: NOW + off,
          uniqueId: null,
          createdAt: NOW - 3600_000,
        });
      }
      assert.deepEqual((await collectStatus(src)).deletions, {
        total: 7,
        overdue: 3,
        due_next_hour: 2,
        next_due_at: new Date(NOW - 30 * MIN).toISOString(),
      });
      // A database that never ran a job has nothing to judge: healthy, without reading every job's history.
      assert.deepEqual(await checkHealth(src), { ok: true, problems: [], failing: [] });
    } finally {
      await tdb.drop();
    }
  });
}
