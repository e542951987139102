/**
 * The idle waker (issue 13, part 2): it asks for due work only when the store's change token moved, when the known
 * due time came, or after its safety poll — and each store's token moves when work is written by any process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { Waker } from '../src/scheduler/waker.ts';
import * as deletions from '../src/store/deletions.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { until } from './support/wait.ts';

const T0 = new Date('2026-12-06T10:00:00Z').getTime();
const logger = createLogger({ level: 'silent' });
const settle = () => new Promise((r) => setImmediate(r));

/** Lets time pass to `T0 + ms`, timer by timer, with each step's promises settled before the next timer. */
async function passTo(clock: FakeClock, ms: number): Promise<void> {
  for (let at = clock.nextAt(); at !== null && at <= T0 + ms; at = clock.nextAt()) await clock.runNext();
  clock.set(T0 + ms);
  await settle();
}

test('the waker reads the due time only when the token moves, the known time comes, or the safety poll is due', async () => {
  const clock = new FakeClock(T0);
  let token = 'a';
  let due: number | null = null;
  const reads: number[] = [];
  const worked: number[] = [];
  const w = new Waker({
    name: 'test',
    clock,
    logger,
    pollMs: 250,
    safetyPollMs: 10_000,
    changeToken: async () => token,
    earliest: async (now) => {
      reads.push(now - T0);
      return due;
    },
    work: async () => {
      worked.push(clock.now().getTime() - T0);
      due = null;
      return 1;
    },
  });
  w.start();
  try {
    await settle();
    // Nothing due, nothing changes: one read at the start, then the token checks alone until the safety poll.
    await passTo(clock, 9_900);
    assert.deepEqual(reads, [0]);
    await passTo(clock, 10_100);
    assert.deepEqual(reads, [0, 10_000]);
    // Another process adds a row due at +12.3 s: the next check sees the token move and reads once.
    due = T0 + 12_300;
    token = 'b';
    await passTo(clock, 10_350);
    assert.deepEqual(reads, [0, 10_000, 10_250]);
    // It sleeps to that instant (no read in between) and works it there, to the millisecond.
    await passTo(clock, 12_400);
    assert.deepEqual(worked, [12_300]);
    assert.deepEqual(reads, [0, 10_000, 10_250, 12_300, 12_300]);
  } finally {
    await w.stop();
  }
});

for (const backend of BACKENDS) {
  test(`${backend}: the change token moves when work is written, by this process or another, and only then`, async () => {
    await withTestDb(backend, async (store, tdb) => {
      const other = await tdb.open();
      const first = await store.changeToken();
      // Wait for the listener (PostgreSQL) to be up; nothing was written, so the token holds still.
      await new Promise((r) => setTimeout(r, 100));
      const quiet = await store.changeToken();
      assert.equal(await store.changeToken(), quiet, 'no write, no change');
      await deletions.insertDeletion(other, {
        userId: 1,
        chatId: 1,
        messageIds: [1],
        deleteAt: T0,
        createdAt: T0,
      });
      await until(async () => (await store.changeToken()) !== quiet, 'a row written by another connection to be seen');
      const after = await store.changeToken();
      await deletions.insertDeletion(store, { userId: 2, chatId: 2, messageIds: [2], deleteAt: T0, createdAt: T0 });
      await until(async () => (await store.changeToken()) !== after, 'a row written by this one to be seen');
      assert.notEqual(first, undefined);
    });
  });
}

test('postgres: a write in another schema does not move the token', async () => {
  await withTestDb('postgres', async (a) => {
    await withTestDb('postgres', async (b) => {
      await a.changeToken();
      await new Promise((r) => setTimeout(r, 100));
      const before = await a.changeToken();
      await deletions.insertDeletion(b, { userId: 1, chatId: 1, messageIds: [1], deleteAt: T0, createdAt: T0 });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await a.changeToken(), before);
    });
  });
});

for (const backend of BACKENDS) {
  test(`${backend}: the earliest workable instant counts the first lease end of held rows`, async () => {
    await withTestDb(backend, async (store) => {
      await deletions.insertDeletion(store, { userId: 1, chatId: 1, messageIds: [1], deleteAt: T0, createdAt: T0 });
      await deletions.insertDeletion(store, {
        userId: 2,
        chatId: 2,
        messageIds: [2],
        deleteAt: T0 + 60_000,
        createdAt: T0,
      });
      assert.equal(await deletions.earliestWorkable(store, T0), T0);
      // The due row is held by a live process until +5 s: it is workable then, before the other row's +60 s.
      await store.db
        .updateTable('pending_deletions')
        .set({ claimed_by: 'x', claim_expires_at: T0 + 5000 })
        .where('chat_id', '=', 1)
        .execute();
      assert.equal(await deletions.earliestWorkable(store, T0), T0 + 5000);
      assert.equal(await deletions.earliestWorkable(store, T0 + 6000), T0);
    });
  });
}
