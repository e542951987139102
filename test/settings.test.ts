import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../src/config.ts';
import { numberSetting, setSetting } from '../src/store/settings.ts';
import { ImportError, importCollection } from '../src/transfer/import.ts';
import { BACKENDS, createTestDb } from './support/db.ts';

for (const backend of BACKENDS) {
  test(`${backend}: a numeric setting in force is the admin's value when valid, else the configuration's`, async () => {
    const tdb = await createTestDb(backend);
    try {
      const store = await tdb.open();
      const config = loadConfig({ DATABASE_URL: tdb.url, DELETE_AFTER_MINUTES: '45', TOKEN_GENERATION_LIMIT: '7' });
      assert.equal(await numberSetting(store, config, 'delete_after_minutes'), 45, 'unset: DELETE_AFTER_MINUTES');
      await setSetting(store, 'delete_after_minutes', 10);
      assert.equal(await numberSetting(store, config, 'delete_after_minutes'), 10);
      // Values that reached the table some other way (an old bot's data, a hand edit) never take effect.
      for (const bad of ['5', 0, 2881, 1.5, null]) {
        await setSetting(store, 'token_generation_limit', bad);
        assert.equal(await numberSetting(store, config, 'token_generation_limit'), 7, JSON.stringify(bad));
      }
    } finally {
      await tdb.drop();
    }
  });
}

test('importing settings checks the values the bots read, as the admin commands do, and imports nothing on error', async () => {
  const tdb = await createTestDb('sqlite');
  try {
    const store = await tdb.open();
    const cases: [string, RegExp][] = [
      [
        '{"key":"delete_after_minutes","value":"30"}',
        /line 2: field "value": expected a whole number 1–2880 for delete_after_minutes, got "30"/,
      ],
      [
        '{"key":"media_access_count","value":1001}',
        /line 2: field "value": expected a whole number 1–1000 for media_access_count, got 1001/,
      ],
      [
        '{"key":"deleted_notice_text","value":42}',
        /line 2: field "value": expected a string for deleted_notice_text, got 42/,
      ],
    ];
    for (const [bad, message] of cases) {
      await assert.rejects(
        importCollection(store, 'settings', `{"key":"welcome","value":"hi"}\n${bad}`, { now: new Date() }),
        (e: Error) => e instanceof ImportError && message.test(e.message),
      );
      assert.equal((await store.db.selectFrom('settings').select('key').execute()).length, 0, 'nothing was imported');
    }
    const ok = await importCollection(
      store,
      'settings',
      '{"key":"delete_after_minutes","value":2880}\n{"key":"other","value":"5"}\n{"key":"constructor","value":"x"}\n{"key":"media_access_count","value":{"$numberInt":"7"}}',
      { now: new Date() },
    );
    assert.equal(ok.inserted, 4, 'valid values, unknown keys (even "constructor") and mongoexport numbers are kept');
    const stored = await store.db
      .selectFrom('settings')
      .select('value')
      .where('key', '=', 'media_access_count')
      .executeTakeFirstOrThrow();
    assert.equal(stored.value, '7', 'stored as the plain number the bots read');
  } finally {
    await tdb.drop();
  }
});
