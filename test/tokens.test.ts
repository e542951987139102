import { test } from 'node:test';
import assert from 'node:assert/strict';
import { insertToken, markToken, redeemVerifiedToken } from '../src/store/tokens.ts';
import { BACKENDS, withTestDb } from './support/db.ts';

for (const backend of BACKENDS) {
  test(`${backend}: a verified token redeemed twice at once grants its accesses once`, async () => {
    await withTestDb(backend, async (store) => {
      await store.db
        .insertInto('users')
        .values({
          user_id: 42,
          username: null,
          first_name: null,
          joined_at: 0,
          is_banned: 0,
          user_access_count: 1,
          blocked_at: null,
        })
        .execute();
      await insertToken(store.db, {
        token: 't1',
        unique_id: 'u1',
        created_by: 42,
        created_at: 0,
        expires_at: 1e13,
        file_unique_id: null,
      });
      assert.equal(await redeemVerifiedToken(store, 't1', 42, 5), null, 'not verified yet: nothing granted');
      assert.ok(await markToken(store.db, 't1', 'verified'));
      const results = await Promise.all([
        redeemVerifiedToken(store, 't1', 42, 5),
        redeemVerifiedToken(store, 't1', 42, 5),
      ]);
      assert.deepEqual(results.sort(), [6, null].sort(), 'one redeem wins with the new count, the other finds nothing');
      const u = await store.db
        .selectFrom('users')
        .select('user_access_count')
        .where('user_id', '=', 42)
        .executeTakeFirstOrThrow();
      assert.equal(u.user_access_count, 6);
      assert.equal((await store.db.selectFrom('tokens').select('token').execute()).length, 0, 'the token is gone');
    });
  });
}
