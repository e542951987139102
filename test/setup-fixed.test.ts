/**
 * "chat not found" answers that came while the setup was wrong and fixed since (a token swapped back, a Bot API
 * server restored): a run still holding them when the first success comes must not take them for the chats' own.
 * Each held chat is asked itself; one that answers keeps its work (tried again later) and its user stays unmarked.
 * These tests fail on the code before the fix (the users were marked, the rows dropped without a notice).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, type Clock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { BroadcastSender } from '../src/bot/broadcast-sender.ts';
import { deleteDueMessages } from '../src/jobs/message-deleter.ts';
import { deleteExpiredBroadcasts } from '../src/jobs/broadcast-deleter.ts';
import * as broadcasts from '../src/store/broadcasts.ts';
import * as deletions from '../src/store/deletions.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { emulatorTelegram } from './support/telegram.ts';
import { driveUntil } from './support/clock.ts';
import { runContext } from './support/context.ts';
import { addUsers, adminBroadcast, blockedUsers } from './support/world.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-12-06T10:00:00Z').getTime();
const HOUR = 3600_000;
const ADMIN = 4242;
const NOT_FOUND = { kind: 'status', code: 400, description: 'Bad Request: chat not found' } as const;

const ctx = (clock: Clock) => runContext(clock, logger);

for (const backend of BACKENDS) {
  describe(`${backend}: "chat not found" from a setup fixed before the first success`, () => {
    test('message deleter: the chats that answer keep their rows (deleted on the retry); the gone one is marked', async () => {
      const emu = await BotApiEmulator.start({ now: () => T0 });
      try {
        await withTestDb(backend, async (store) => {
          const chats = [61_001, 61_002, 61_003, 61_004, 61_005];
          const goneChat = 61_009;
          await addUsers(store, [...chats, goneChat], T0);
          for (const c of [...chats, goneChat]) {
            await deletions.insertDeletion(store, {
              userId: c,
              chatId: c,
              messageIds: [emu.addMessage(c, { text: 'file' })],
              deleteAt: T0 - 1000,
              createdAt: T0 - HOUR,
            });
          }
          // The first three calls meet the broken setup (whichever chats they are for); the setup is fixed after.
          emu.failNext('deleteMessages', NOT_FOUND, 3);
          emu.failChat(goneChat, NOT_FOUND);
          const clock = new FakeClock(T0);
          const deps = { store, telegram: emulatorTelegram(emu), owner: 'a', concurrency: 1 };
          const s = await deleteDueMessages(deps, ctx(clock));
          assert.equal(s.unreachable, 1, 'only the chat still "not found" when asked');
          assert.deepEqual(await blockedUsers(store), [goneChat]);
          const left = await store.db.selectFrom('pending_deletions').select('chat_id').execute();
          assert.equal(left.length, 3, 'the three rows met by the broken setup are kept');
          assert.equal(emu.callsOf('sendMessage').length, 2, 'a notice for each row deleted, none for the kept');
          // Their back-off passes: the retry deletes them and tells their users.
          clock.set(new Date(T0 + 10 * 60_000));
          const again = await deleteDueMessages(deps, ctx(clock));
          assert.equal(again.rows, 3);
          assert.equal(again.unreachable, 0);
          assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
          assert.equal(emu.callsOf('sendMessage').length, 5);
          assert.deepEqual(await blockedUsers(store), [goneChat]);
        });
      } finally {
        await emu.close();
      }
    });

    test('broadcast deleter: the recipients that answer stay for a later run; nobody is marked', async () => {
      const emu = await BotApiEmulator.start({ now: () => T0 });
      try {
        await withTestDb(backend, async (store) => {
          const chats = [62_001, 62_002, 62_003, 62_004];
          await addUsers(store, chats, T0);
          const id = await adminBroadcast(emu, store, { admin: ADMIN, createdAt: T0 - HOUR });
          await store.db
            .updateTable('broadcasts')
            .set({ delete_at: T0 - 1000 })
            .where('id', '=', id)
            .execute();
          await broadcasts.finishSending(store, id);
          for (const c of chats) await broadcasts.addRecipient(store, id, c, emu.addMessage(c, { text: 'News' }));
          emu.failNext('deleteMessage', NOT_FOUND, 2);
          const telegram = emulatorTelegram(emu);
          const s = await deleteExpiredBroadcasts(
            { store, telegram, owner: 'd', concurrency: 1 },
            ctx(new FakeClock(T0)),
          );
          assert.equal(s.unreachable, 0);
          assert.deepEqual(await blockedUsers(store), []);
          const left = await store.db.selectFrom('broadcast_messages').select('chat_id').execute();
          assert.equal(left.length, 2, 'the two recipients met by the broken setup stay');
          // The next run, after the broadcast's rest, deletes them.
          const later = await deleteExpiredBroadcasts(
            { store, telegram, owner: 'd', concurrency: 1 },
            ctx(new FakeClock(T0 + 5 * 60_000)),
          );
          assert.equal(later.messages_deleted, 2);
          assert.equal((await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).length, 0);
          assert.deepEqual(await blockedUsers(store), []);
        });
      } finally {
        await emu.close();
      }
    });

    test('broadcast sender: the users that answer get their copy on the next pass; nobody is marked', async () => {
      const emu = await BotApiEmulator.start({ now: () => T0 });
      try {
        await withTestDb(backend, async (store) => {
          const users = [63_001, 63_002, 63_003, 63_004, 63_005, 63_006];
          await addUsers(store, users, T0);
          const id = await adminBroadcast(emu, store, { admin: ADMIN, createdAt: T0 });
          // A copy worked in an earlier pass (so "chat not found" reads as the recipient's), then the setup broke.
          await broadcasts.addRecipient(store, id, users[0]!, emu.addMessage(users[0]!, { text: 'News' }));
          await store.db
            .updateTable('broadcasts')
            .set({ send_cursor: users[0]!, sent_count: 1 })
            .where('id', '=', id)
            .execute();
          emu.failNext('copyMessage', NOT_FOUND, 2);
          const { api } = emulatorTelegram(emu);
          const clock = new FakeClock(T0);
          const s = new BroadcastSender({
            store,
            api,
            clock,
            logger,
            owner: 'sender',
            timezone: 'UTC',
            pollMs: 20,
          });
          s.start();
          try {
            const row = () =>
              store.db.selectFrom('broadcasts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
            // The ended pass's back-off passes on the fake clock.
            await driveUntil(clock, async () => (await row()).status === 'sent', 'the sending to finish');
            const b = await row();
            assert.deepEqual([Number(b.sent_count), Number(b.failed_count)], [6, 0], 'everyone got it');
          } finally {
            await s.stop();
          }
          assert.deepEqual(await blockedUsers(store), []);
          const got = await store.db.selectFrom('broadcast_messages').select('chat_id').execute();
          assert.deepEqual(got.map((r) => Number(r.chat_id)).sort(), users);
        });
      } finally {
        await emu.close();
      }
    });
  });
}
