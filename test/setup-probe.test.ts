/**
 * "chat not found" that no success followed is judged by a chat that answered lately (`known_chats`): the run that
 * meets one such chat at a time (an on-time wake-up) still tells a gone user from a wrong setup. Also: a fault is
 * cleared only by the run that saw it, the deleter tells the admin of a sending its deadline cut, and a reservation
 * is left a grace after delete_at.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { BroadcastSender } from '../src/bot/broadcast-sender.ts';
import { deleteDueMessages } from '../src/jobs/message-deleter.ts';
import { deleteExpiredBroadcasts, RESERVED_GRACE_MS } from '../src/jobs/broadcast-deleter.ts';
import * as broadcasts from '../src/store/broadcasts.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { clearFault, recordFault, rememberChats } from '../src/store/faults.ts';
import type { Broadcast } from '../src/store/schema.ts';
import type { Store } from '../src/store/db.ts';
import { SetupFaultError } from '../src/telegram/errors.ts';
import { BACKENDS, withTestDb, type Backend } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { emulatorTelegram } from './support/telegram.ts';
import { until } from './support/wait.ts';
import { runContext } from './support/context.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-11-29T10:00:00Z').getTime();
const HOUR = 3600_000;
const ADMIN = 4242;
const KNOWN = 12_345;
const ctx = (clock: FakeClock) => runContext(clock, logger);

async function withWorld(backend: Backend, fn: (emu: BotApiEmulator, store: Store) => Promise<void>): Promise<void> {
  const emu = await BotApiEmulator.start({ now: () => T0, strictChats: true });
  try {
    await withTestDb(backend, (store) => fn(emu, store));
  } finally {
    await emu.close();
  }
}

async function addUser(store: Store, id: number): Promise<void> {
  const u = { user_id: id, username: null, first_name: 'U', joined_at: T0, is_banned: 0, user_access_count: 0 };
  await store.db
    .insertInto('users')
    .values({ ...u, blocked_at: null })
    .execute();
}

const blocked = async (store: Store) =>
  (await store.db.selectFrom('users').select('user_id').where('blocked_at', 'is not', null).execute()).map((r) =>
    Number(r.user_id),
  );

async function broadcastTo(emu: BotApiEmulator, store: Store, chats: number[], deleteAt: number): Promise<number> {
  emu.addChat(ADMIN);
  const id = await broadcasts.insertBroadcast(store, {
    fromChatId: ADMIN,
    messageId: emu.addMessage(ADMIN, { text: 'News', fromBot: false }),
    text: 'News',
    caption: null,
    fileId: null,
    durationHours: 1,
    createdAt: T0 - HOUR,
    progressChatId: null,
    progressMessageId: null,
  });
  await store.db.updateTable('broadcasts').set({ delete_at: deleteAt }).where('id', '=', id).execute();
  for (const c of chats) await broadcasts.addRecipient(store, id, c, 7);
  return id;
}

for (const backend of BACKENDS) {
  describe(`${backend}: a lone "chat not found" is judged by a chat that answered lately`, () => {
    test('a wake-up meeting one row: the known chat is "not found" too, so nothing is removed', async () => {
      await withWorld(backend, async (emu, store) => {
        // The chat answered before the Bot API server lost its state; now no chat is known to it.
        await rememberChats(store, [KNOWN], T0 - HOUR);
        await addUser(store, 501);
        await insertDeletion(store, { userId: 501, chatId: 501, messageIds: [1], deleteAt: T0, createdAt: T0 - 1 });
        const before = await store.db.selectFrom('pending_deletions').selectAll().execute();
        const deps = { store, telegram: emulatorTelegram(emu), owner: 'w' };
        await assert.rejects(deleteDueMessages(deps, ctx(new FakeClock(T0))), (e: unknown) => {
          assert.ok(e instanceof SetupFaultError);
          assert.match(e.message, new RegExp(`chat ${KNOWN}, which answered lately`));
          return true;
        });
        assert.deepEqual(await store.db.selectFrom('pending_deletions').selectAll().execute(), before);
        assert.deepEqual(await blocked(store), []);
        assert.equal(emu.callsOf('getChat').length, 1);
      });
    });

    test('a wake-up meeting one row: the known chat answers, so that user is gone (row dropped, marked)', async () => {
      await withWorld(backend, async (emu, store) => {
        emu.addChat(KNOWN);
        await rememberChats(store, [KNOWN], T0 - HOUR);
        await addUser(store, 502);
        await insertDeletion(store, { userId: 502, chatId: 502, messageIds: [1], deleteAt: T0, createdAt: T0 - 1 });
        const deps = { store, telegram: emulatorTelegram(emu), owner: 'w' };
        const s = await deleteDueMessages(deps, ctx(new FakeClock(T0)));
        assert.equal(s.unreachable, 1);
        assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
        assert.deepEqual(await blocked(store), [502]);
      });
    });

    test('broadcast deleter: small broadcasts, one after another, do not hide a setup fault', async () => {
      await withWorld(backend, async (emu, store) => {
        await rememberChats(store, [KNOWN], T0 - HOUR);
        const ids = [];
        for (let b = 0; b < 3; b++) {
          ids.push(
            await broadcastTo(
              emu,
              store,
              Array.from({ length: 10 }, (_, i) => 600 + 10 * b + i),
              T0 - 1000,
            ),
          );
          await broadcasts.finishSending(store, ids[b]!);
        }
        const telegram = emulatorTelegram(emu);
        await assert.rejects(
          deleteExpiredBroadcasts({ store, telegram, owner: 'd' }, ctx(new FakeClock(T0))),
          SetupFaultError,
        );
        assert.equal((await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).length, 30);
        assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 3);
        assert.deepEqual(await blocked(store), []);
      });
    });

    test('sender: three first users "not found" and so is a chat that answered lately: paused, not given up', async () => {
      await withWorld(backend, async (emu, store) => {
        await rememberChats(store, [KNOWN], T0 - HOUR);
        for (const u of [701, 702, 703, 704]) await addUser(store, u);
        const id = await broadcastTo(emu, store, [], T0 + HOUR);
        const { api } = emulatorTelegram(emu);
        const sender = new BroadcastSender({
          store,
          api,
          clock: new FakeClock(T0),
          logger,
          owner: 's',
          timezone: 'UTC',
          pollMs: 20,
        });
        sender.start();
        try {
          await until(
            async () => (await store.db.selectFrom('job_faults').select('job').execute()).length === 1,
            'the fault',
          );
        } finally {
          await sender.stop();
        }
        const b = await store.db.selectFrom('broadcasts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        assert.equal(b.status, 'sending', 'it resumes once the setup is fixed');
        assert.deepEqual([Number(b.sent_count), Number(b.failed_count), Number(b.send_cursor)], [0, 0, 0]);
        assert.deepEqual(await blocked(store), []);
      });
    });
  });

  describe(`${backend}: faults, deadlines and reservations`, () => {
    test('a fault is cleared only as the run saw it: one recorded meanwhile stays', async () => {
      await withTestDb(backend, async (store) => {
        const seen = await recordFault(store, 'message-deleter', 'x', T0);
        const later = await recordFault(store, 'message-deleter', 'x', seen.retry_at + 1);
        assert.equal(later.count, 2);
        assert.equal(await clearFault(store, 'message-deleter', seen.retry_at), false);
        assert.equal(await clearFault(store, 'message-deleter', later.retry_at), true);
      });
    });

    test('the deleter tells of a broadcast whose deadline cut its sending, and leaves a reservation a grace', async () => {
      await withWorld(backend, async (emu, store) => {
        emu.addChat(801);
        const id = await broadcastTo(emu, store, [], T0);
        await broadcasts.addRecipient(store, id, 801, emu.addMessage(801, { text: 'News' }));
        // 802's copy was asked for by a sender that has not answered yet.
        await store.db
          .insertInto('broadcast_messages')
          .values({ broadcast_id: id, chat_id: 802, message_id: 0 })
          .execute();
        const cut: Broadcast[] = [];
        const deps = {
          store,
          telegram: emulatorTelegram(emu),
          owner: 'd',
          onSendingCut: (b: Broadcast) => cut.push(b),
        };
        const s1 = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0 + 60_000)));
        assert.deepEqual(
          cut.map((b) => Number(b.id)),
          [id],
          'told once, as it was taken from sending',
        );
        assert.equal(s1.messages_deleted, 1);
        const left = await store.db.selectFrom('broadcast_messages').select(['chat_id', 'message_id']).execute();
        assert.deepEqual(
          left.map((r) => [Number(r.chat_id), Number(r.message_id)]),
          [[802, 0]],
          'the reservation waits',
        );
        await store.db.updateTable('broadcasts').set({ claim_expires_at: null }).execute();
        const s2 = await deleteExpiredBroadcasts(deps, ctx(new FakeClock(T0 + RESERVED_GRACE_MS + 1)));
        assert.equal(s2.unconfirmed, 1);
        assert.equal(cut.length, 1, 'not told again');
        assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 0);
      });
    });
  });
}
