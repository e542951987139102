import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, systemClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import {
  broadcastDeleterJob,
  deleteExpiredBroadcasts,
  type BroadcastDeleterDeps,
} from '../src/jobs/broadcast-deleter.ts';
import { jobWaker } from '../src/scheduler/waker.ts';
import type { Store } from '../src/store/db.ts';
import { BACKENDS, createTestDb, type TestDb } from './support/db.ts';
import { until } from './support/wait.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { emulatorTelegram } from './support/telegram.ts';
import { runContext } from './support/context.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-11-29T10:00:00Z').getTime();
const HOUR = 3600_000;

let seq = 0;
/** A broadcast sent to `chats` (each gets its own message in the emulator) at `sentAt`, due at `deleteAt`. */
async function broadcast(
  store: Store,
  emu: BotApiEmulator,
  chats: number[],
  sentAt: number,
  deleteAt: number,
): Promise<number> {
  const row = await store.db
    .insertInto('broadcasts')
    .values({
      source_id: null,
      dedupe_key: `test:${++seq}`,
      message_id: 1,
      text: 'hello',
      caption: null,
      file_id: null,
      duration_hours: (deleteAt - sentAt) / HOUR,
      channel_message_id: null,
      created_at: sentAt,
      delete_at: deleteAt,
      status: 'sent',
      from_chat_id: null,
      send_cursor: null,
      sent_count: chats.length,
      failed_count: 0,
      claimed_by: null,
      claim_expires_at: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const id = Number(row.id);
  for (let i = 0; i < chats.length; i += 500) {
    const values = chats
      .slice(i, i + 500)
      .map((c) => ({ broadcast_id: id, chat_id: c, message_id: emu.addMessage(c, { text: 'hello', sentAt }) }));
    await store.db.insertInto('broadcast_messages').values(values).execute();
  }
  return id;
}

const ctx = (clock: FakeClock, signal?: AbortSignal) => runContext(clock, logger, signal);
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

for (const backend of BACKENDS) {
  describe(`broadcast deleter on ${backend}`, () => {
    let emu: BotApiEmulator;
    let tdb: TestDb;
    let store: Store;
    let deps: BroadcastDeleterDeps;
    before(async () => {
      emu = await BotApiEmulator.start({ now: () => T0 });
      tdb = await createTestDb(backend);
      store = await tdb.open();
      deps = { store, telegram: emulatorTelegram(emu), owner: 'bd-test' };
    });
    after(async () => {
      await tdb.drop();
      await emu.close();
    });
    // Each test starts from no broadcasts or users and an empty call log (chat ids differ per test).
    beforeEach(async () => {
      await store.db.deleteFrom('broadcast_messages').execute();
      await store.db.deleteFrom('broadcasts').execute();
      await store.db.deleteFrom('users').execute();
      emu.resetCalls();
    });

    test("deletes each recipient's own message; blocked users are marked; a failing chat stays for the next run", async () => {
      const chats = range(10_000, 50);
      await store.db
        .insertInto('users')
        .values(
          chats.map((c) => ({
            user_id: c,
            username: null,
            first_name: null,
            joined_at: T0,
            is_banned: 0,
            user_access_count: 0,
            blocked_at: null,
          })),
        )
        .execute();
      const id = await broadcast(store, emu, chats, T0 - 2 * HOUR, T0 - 1);
      const notDue = await broadcast(store, emu, range(20_000, 3), T0 - HOUR, T0 + HOUR);
      emu.blockUser(10_001);
      emu.deactivateUser(10_002);
      emu.failChat(10_003, { kind: 'status', code: 500, description: 'Internal Server Error' });
      const s1 = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0)));
      assert.equal(s1.messages_deleted, 47);
      assert.equal(s1.unreachable, 2);
      assert.equal(s1.remaining, 1);
      assert.equal(s1.broadcasts_done, 0);
      const blocked = await store.db
        .selectFrom('users')
        .select('user_id')
        .where('blocked_at', 'is not', null)
        .orderBy('user_id')
        .execute();
      assert.deepEqual(
        blocked.map((u) => u.user_id),
        [10_001, 10_002],
      );
      const left = await store.db
        .selectFrom('broadcast_messages')
        .select('chat_id')
        .where('broadcast_id', '=', id)
        .execute();
      assert.deepEqual(
        left.map((r) => r.chat_id),
        [10_003],
      );
      assert.equal(emu.messages(10_000).length, 0);

      emu.resetCalls();
      const rested = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0 + 30_000)));
      assert.equal(emu.callsOf('deleteMessage').length, 0, 'a broadcast with failures rests before it is taken again');
      assert.equal(rested.remaining, 1);
      emu.failChat(10_003, null);
      emu.resetCalls();
      const s2 = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0 + HOUR - 1)));
      assert.equal(s2.messages_deleted, 1);
      assert.equal(s2.broadcasts_done, 1);
      assert.equal(emu.callsOf('deleteMessage').length, 1, 'finished recipients are not redone');
      assert.equal(
        await store.db.selectFrom('broadcasts').select('id').where('id', '=', id).executeTakeFirst(),
        undefined,
      );
      assert.ok(
        await store.db.selectFrom('broadcasts').select('id').where('id', '=', notDue).executeTakeFirst(),
        'a broadcast not yet due stays',
      );
    });

    test('stopped midway, a run resumes where it stopped and redoes no finished recipient', async () => {
      const chats = range(30_000, 600);
      await broadcast(store, emu, chats, T0 - HOUR, T0);
      const stop = new AbortController();
      const d = {
        ...deps,
        pageSize: 50,
        concurrency: 4,
        onProgress: (_id: number, left: number) => left <= 400 && stop.abort(),
      };
      const s1 = await deleteExpiredBroadcasts(d, ctx(new FakeClock(T0), stop.signal));
      assert.ok(
        s1.messages_deleted >= 200 && s1.messages_deleted < 600,
        `first run stopped midway (${s1.messages_deleted})`,
      );
      const s2 = await deleteExpiredBroadcasts(d, ctx(new FakeClock(T0)));
      assert.equal(s1.messages_deleted + s2.messages_deleted, 600);
      assert.equal(s2.broadcasts_done, 1);
      const perChat = emu.callsPerChat('deleteMessage');
      assert.equal(perChat.size, 600);
      assert.ok(
        [...perChat.values()].every((n) => n === 1),
        'every recipient deleted exactly once',
      );
      assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 0);
    });

    test('messages Telegram will no longer delete (sent more than 48 h ago) are asked once, reported undeletable, and removed', async () => {
      await broadcast(store, emu, range(40_000, 5), T0 - 49 * HOUR, T0 - HOUR);
      const s = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0)));
      assert.equal(s.undeletable, 5);
      assert.equal(s.broadcasts_done, 1);
      assert.equal(emu.callsOf('deleteMessage').length, 5, 'each recipient asked once: nothing is dropped untried');
      const s2 = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0)));
      assert.equal(s2.undeletable, 0, 'not retried');
      assert.equal((await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).length, 0);
    });

    test('a broadcast without recipient records (imported from the original) is reported and removed', async () => {
      await broadcast(store, emu, [], T0 - HOUR, T0 - 1);
      const s = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0)));
      assert.equal(s.without_recipients, 1);
      assert.equal(s.broadcasts_done, 1);
      assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 0);
    });

    test('the broadcast waker deletes a broadcast at its delete_at, without waiting for the hourly sweep', async () => {
      const now = Date.now();
      const chats = range(60_000, 5);
      const wemu = await BotApiEmulator.start();
      try {
        const wdeps = { ...deps, telegram: emulatorTelegram(wemu) };
        await broadcast(store, wemu, chats, now - HOUR, now + 500);
        const job = broadcastDeleterJob(wdeps, '0 * * * *');
        const waker = jobWaker({ ...job, wake: { ...job.wake!, pollMs: 50 } }, { clock: systemClock, logger });
        waker.start();
        try {
          // Wait for the whole run, the record's removal included: stopping between the last delete and the removal
          // would (rightly) leave the record for the next run.
          await until(
            async () => (await store.db.selectFrom('broadcasts').select('id').execute()).length === 0,
            'the broadcast to be deleted',
          );
        } finally {
          await waker.stop();
        }
        assert.ok(chats.every((c) => wemu.messages(c).length === 0));
        assert.ok(
          wemu.callsOf('deleteMessage').every((c) => c.at >= now + 500),
          'not before delete_at',
        );
        assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 0);
      } finally {
        await wemu.close();
      }
    });

    test('a dry run counts and changes nothing', async () => {
      await broadcast(store, emu, range(50_000, 7), T0 - HOUR, T0 - 1);
      const s = await deleteExpiredBroadcasts(deps, { ...ctx(new FakeClock(T0)), dryRun: true });
      assert.equal(s.would_delete, 7);
      assert.equal(s.would_delete_broadcasts, 1);
      assert.equal(emu.calls.length, 0);
      assert.equal((await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).length, 7);
    });
  });
}
